//! Mining against the Flask tutorial node: `cargo bench --bench tutorial`.
//!
//! Side by side in one run, in interleaved rounds: blocks/s of the tutorial's own proof-of-work
//! loop (`benches/tutorial_pow.py`, the BitKhan node of /work/shared/seeds 000: SHA-256 hex
//! digests with 4 leading hex zeros = 16 bits, CPython, one thread) against our node mining at
//! a fixed 16 bits on one thread (`NodeHandle::mine`, what the `mine N` command calls: block
//! template, multi-lane nonce search, validation, store), and the ratio (target >= 90x).
//! At 16 bits the tutorial finds only about 8 blocks a second, so its count in a round is
//! Poisson noise of a few percent; the ratio is also given against its expected rate, its
//! hashes per second / 2^16, which has no such noise. Needs `python3` on the PATH.

mod common;

use common::{Node, Stats, block_on, load_average};
use gossipchain::chain::ChainParams;
use gossipchain::miner::lanes::Backend;
use std::process::Command;
use std::time::{Duration, Instant};

/// Interleaved rounds.
const ROUNDS: usize = 3;
/// Seconds of each side per round.
const SECONDS: f64 = 8.0;
/// Difficulty of both sides: 4 hex zeros is 16 bits.
const BITS: u32 = 16;

/// Blocks/s and M hashes/s of the tutorial loop over `SECONDS`.
fn tutorial_rate() -> (f64, f64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/tutorial_pow.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(SECONDS.to_string())
        .output()
        .expect("python3 runs (it is needed for this benchmark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    let secs = field("seconds");
    (field("blocks") / secs, field("hashes") / secs / 1e6)
}

/// Blocks/s of our node mining one block after another on one thread over `SECONDS`.
async fn node_rate(node: &Node) -> f64 {
    let start = Instant::now();
    let mut blocks = 0u32;
    // More than a round can find; dropping the receiver stops the miner.
    let mut mined = node.handle.mine(1_000_000).await.expect("node running");
    while start.elapsed().as_secs_f64() < SECONDS {
        mined.recv().await.expect("node running").expect("mined");
        blocks += 1;
    }
    let rate = f64::from(blocks) / start.elapsed().as_secs_f64();
    drop(mined);
    // The search in progress stops; the next round starts on a quiet node.
    node.handle.chain(0).await.expect("node running");
    rate
}

/// Blocks per second of the nonce search alone, header after header, without the node: the
/// ceiling of what the node can do.
fn solve_rate(params: &ChainParams) -> f64 {
    let mut header = params.genesis().header;
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let start = Instant::now();
    let mut blocks = 0u32;
    while start.elapsed().as_secs_f64() < SECONDS {
        header.timestamp += 1;
        if let gossipchain::miner::Mined::Found { .. } =
            gossipchain::miner::solve(&header, 1, &cancel)
        {
            blocks += 1;
        }
    }
    f64::from(blocks) / start.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "gossipchain mining vs the Flask tutorial node (BitKhan), both at 16 bits, one thread"
    );
    println!(
        "our backend: {}; rounds: {ROUNDS} of {SECONDS} s each side; load average at start: {}",
        Backend::best().name(),
        load_average()
    );
    let params = ChainParams::with_bits(BITS);
    let dir = tempfile::tempdir().expect("temp dir");
    let (ours, theirs, their_hashes, alone) = block_on(async {
        let node = Node::start(dir, &params, Duration::from_secs(20)).await;
        let (mut ours, mut theirs, mut their_hashes) = (Vec::new(), Vec::new(), Vec::new());
        let mut alone = Vec::new();
        for _ in 0..ROUNDS {
            let p = params.clone();
            alone.push(
                tokio::task::spawn_blocking(move || solve_rate(&p))
                    .await
                    .expect("no panic"),
            );
            ours.push(node_rate(&node).await);
            let (b, h) = tokio::task::spawn_blocking(tutorial_rate)
                .await
                .expect("no panic");
            theirs.push(b);
            their_hashes.push(h);
        }
        node.stop().await;
        (ours, theirs, their_hashes, alone)
    });
    let alone = Stats(alone);
    let ratios = Stats(ours.iter().zip(&theirs).map(|(o, t)| o / t).collect());
    let expected: Vec<f64> = their_hashes.iter().map(|h| h * 1e6 / 65536.0).collect();
    let ratios_expected = Stats(ours.iter().zip(&expected).map(|(o, t)| o / t).collect());
    let expected = Stats(expected);
    let (ours, theirs, their_hashes) = (Stats(ours), Stats(theirs), Stats(their_hashes));
    println!(
        "  tutorial proof_of_work (python3)   {:9.2} blocks/s  [{:.2}..{:.2}]  ({:.2} M hashes/s)",
        theirs.median(),
        theirs.min(),
        theirs.max(),
        their_hashes.median()
    );
    println!(
        "  tutorial, expected from its hashes {:9.2} blocks/s  [{:.2}..{:.2}]  (hashes/s / 2^16)",
        expected.median(),
        expected.min(),
        expected.max()
    );
    println!(
        "  gossipchain mine, 1 thread         {:9.2} blocks/s  [{:.2}..{:.2}]",
        ours.median(),
        ours.min(),
        ours.max()
    );
    println!(
        "  miner::solve alone, no node        {:9.2} blocks/s  [{:.2}..{:.2}]  (the node's ceiling; node / alone {:.2})",
        alone.median(),
        alone.min(),
        alone.max(),
        ours.median() / alone.median()
    );
    println!(
        "  gossipchain / tutorial             {:9.1} x         [{:.1}..{:.1}]  (target >= 90x)",
        ratios.median(),
        ratios.min(),
        ratios.max()
    );
    println!(
        "  gossipchain / tutorial expected    {:9.1} x         [{:.1}..{:.1}]  (target >= 90x)",
        ratios_expected.median(),
        ratios_expected.min(),
        ratios_expected.max()
    );
    println!("load average at end: {}", load_average());
}
