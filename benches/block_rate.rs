//! The block rate of a retargeting chain as miners join: real nodes on 127.0.0.1 (in this
//! process), each mining with one thread, on a chain of `--block-time 500ms`.
//!
//! Phase 1: one miner; phase 2: a second joins; phase 3: two more join (four in all). Each
//! phase lasts `BLOCKS_PER_PHASE` blocks of the best chain. Printed per phase, from the header
//! timestamps of the final best chain (what the consensus rule sees): the mean interval of its
//! last 100 blocks against the target, the hash rate those blocks imply (their work over their
//! time span), and the blocks the rate took to settle after the change: the first block of the
//! phase from which the expected interval (a block's work over that hash rate), averaged over
//! the next 16 blocks (one half-life), is within ±25 % of the target. Single intervals are
//! exponentially distributed, so the settle measure uses the difficulty the blocks carry, not
//! the noisy intervals themselves.
//!
//! The miners share the machine's cores: once there are more mining threads than cores, a new
//! miner adds no hash rate. The core count and the load average are printed with the figures.
//!
//! `cargo bench --bench block_rate` (about 6 minutes: 600 blocks at 500 ms).

mod common;

use common::{Node, block_on, load_average};
use gossipchain::chain::ChainParams;
use gossipchain::chain::pow::Target;
use std::time::{Duration, Instant};

/// The target interval, ms.
const BLOCK_TIME_MS: u64 = 500;
/// Blocks of the best chain per phase.
const BLOCKS_PER_PHASE: u64 = 200;
/// Blocks at the end of a phase whose mean interval is reported.
const TAIL: usize = 100;
/// The longest a phase may take before the bench gives up.
const PHASE_DEADLINE: Duration = Duration::from_secs(600);
/// Miners in each phase.
const PHASES: [usize; 3] = [1, 2, 4];

fn main() {
    block_on(run());
}

async fn run() {
    let params = ChainParams::with_block_time(BLOCK_TIME_MS);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "block rate: --block-time {BLOCK_TIME_MS}ms, {BLOCKS_PER_PHASE} blocks per phase, \
         miners {PHASES:?} (one thread each), {cores} cores, load {}",
        load_average()
    );
    let mut nodes: Vec<Node> = Vec::new();
    // Heights at which each phase started.
    let mut starts = Vec::new();
    for (phase, &miners) in PHASES.iter().enumerate() {
        while nodes.len() < miners {
            let dir = tempfile::tempdir().expect("temp dir");
            let node = Node::start(dir, &params, Duration::from_secs(10)).await;
            for other in &nodes {
                node.handle
                    .dial(other.addr.clone())
                    .await
                    .expect("dial a miner on 127.0.0.1");
            }
            // Caught up before it mines, so that it mines on the shared chain.
            if let Some(first) = nodes.first() {
                let tip = first.handle.status().height;
                let (_, ok) = node
                    .handle
                    .wait_for(Duration::from_secs(30), |s| s.height >= tip)
                    .await;
                assert!(ok, "the new miner never synced");
            }
            node.handle.set_mining(true).await.expect("node running");
            nodes.push(node);
        }
        let start = nodes[0].handle.status().height;
        starts.push(start);
        let began = Instant::now();
        let (_, ok) = nodes[0]
            .handle
            .wait_for(PHASE_DEADLINE, |s| s.height >= start + BLOCKS_PER_PHASE)
            .await;
        assert!(
            ok,
            "phase {} did not reach {BLOCKS_PER_PHASE} blocks",
            phase + 1
        );
        println!(
            "  phase {}: {miners} miner(s), {BLOCKS_PER_PHASE} blocks in {:.1} s (load {})",
            phase + 1,
            began.elapsed().as_secs_f64(),
            load_average()
        );
    }
    let end = nodes[0].handle.status().height;
    let chain = nodes[0]
        .handle
        .chain(end as usize + 1)
        .await
        .expect("node running");
    // Header timestamps and expected hashes by height, from genesis up.
    let mut times = vec![0u64; end as usize + 1];
    let mut work = vec![0f64; end as usize + 1];
    for info in &chain {
        let h = info.block.header.height as usize;
        if h < times.len() {
            times[h] = info.block.header.timestamp;
            work[h] =
                Target::from_compact(info.block.header.bits).map_or(0.0, |t| t.work().as_f64());
        }
    }
    println!(
        "  {:>5} {:>7} {:>7} {:>12} {:>8} {:>12} {:>14}",
        "phase", "miners", "blocks", "mean last100", "vs 500", "hash rate", "settled after"
    );
    for (i, &miners) in PHASES.iter().enumerate() {
        let from = starts[i];
        let to = starts.get(i + 1).copied().unwrap_or(end);
        // Intervals of blocks from+1 ..= to (block 1's parent is genesis, whose timestamp is
        // fixed by the parameters: left out).
        let intervals: Vec<f64> = (from.max(1) + 1..=to)
            .map(|h| times[h as usize].saturating_sub(times[h as usize - 1]) as f64)
            .collect();
        let tail = &intervals[intervals.len().saturating_sub(TAIL)..];
        let span_ms = tail.iter().sum::<f64>();
        let mean = span_ms / tail.len().max(1) as f64;
        let tail_from = to as usize + 1 - tail.len();
        let tail_work: f64 = work[tail_from..=to as usize].iter().sum();
        let hash_rate = tail_work / (span_ms / 1000.0);
        // Expected interval of each block of the phase at the phase's final hash rate, ms.
        let expected: Vec<f64> = (from as usize + 1..=to as usize)
            .map(|h| work[h] / hash_rate * 1000.0)
            .collect();
        let settled = settle(&expected, BLOCK_TIME_MS as f64);
        println!(
            "  {:>5} {:>7} {:>7} {:>9.0} ms {:>+7.1}% {:>8.2} MH/s {:>14}",
            i + 1,
            miners,
            to - from,
            mean,
            (mean / BLOCK_TIME_MS as f64 - 1.0) * 100.0,
            hash_rate / 1e6,
            settled.map_or("never".into(), |n| format!("{n} blocks")),
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

/// Blocks in the settle measure's window: the half-life of the 500 ms chain, in blocks.
const WINDOW: usize = 16;

/// The number of blocks before the first window of [`WINDOW`] expected intervals whose mean is
/// within ±25 % of `target`.
fn settle(expected: &[f64], target: f64) -> Option<usize> {
    expected.windows(WINDOW).position(|w| {
        let mean = w.iter().sum::<f64>() / WINDOW as f64;
        (mean - target).abs() <= 0.25 * target
    })
}
