//! Memory and restart against chain length: stores of 1 000, 100 000 and 1 000 000 blocks
//! (fixed difficulty 1, one coinbase a block, written straight through the store API), then for
//! each: the real binary restarted on the store (time until it logs "node started", resident
//! memory then, from /proc/<pid>/status), the memory slope per block, and in-process the
//! latency of a block by height, `chain 10` and one GetBlocks page, 1 M against 1 k side by
//! side.
//!
//! `cargo bench --bench chain_scale` (set `CHAIN_SCALE_MAX` to stop at a smaller chain).

mod common;

use gossipchain::chain::tree::TreeLimits;
use gossipchain::chain::{
    Address, Block, ChainParams, ChainState, CheckedBlock, Coinbase, Header, Transaction,
};
use gossipchain::node::{self, BlockId, NodeConfig, NodeHandle};
use gossipchain::store::Store;
use gossipchain::sync::serve::blocks_after;
use gossipchain::testkit;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];
/// Blocks per store commit while building.
const BUILD_BATCH: u64 = 20_000;
/// Samples of each latency in a round.
const SAMPLES: usize = 300;
/// Rounds of the side-by-side comparison.
const ROUNDS: u64 = 7;

/// Appends blocks until the store holds `to`; returns the new tip's header.
fn grow(store: &Store, params: &ChainParams, mut parent: Header, to: u64) -> Header {
    let miner = Address([7; 32]);
    while parent.height < to {
        let end = (parent.height + BUILD_BATCH).min(to);
        let mut batch = Vec::with_capacity((end - parent.height) as usize);
        while parent.height < end {
            let height = parent.height + 1;
            let mut block = Block {
                header: Header {
                    version: 1,
                    height,
                    prev_hash: parent.compute_hash(),
                    tx_root: Default::default(),
                    timestamp: parent.timestamp + 1000,
                    bits: params.genesis_bits(),
                    nonce: 0,
                },
                txs: vec![Transaction::Coinbase(Coinbase {
                    height,
                    to: miner,
                    amount: params.block_reward,
                })],
            };
            testkit::seal(&mut block);
            parent = block.header;
            let hash = block.compute_hash();
            let checked =
                CheckedBlock::check(Arc::new(block), hash, None, params).expect("a valid block");
            batch.push(Arc::new(checked));
        }
        let tip = batch.last().expect("a block").key();
        store.commit(&batch, &[], tip).expect("commit");
    }
    parent
}

/// Resident memory of a process, kB (VmRSS).
fn rss_kb(pid: u32) -> u64 {
    common::rss_kb(&pid.to_string()).expect("VmRSS")
}

/// Starts the node binary on `dir`, waits for "node started"; returns (time to ready, RSS kB).
fn restart(dir: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gossipchain"))
        .args(["--data-dir"])
        .arg(dir)
        .args([
            "--difficulty",
            "1",
            "--no-mdns",
            "--no-http",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the node");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let ready = loop {
        line.clear();
        if stderr.read_line(&mut line).expect("read the log") == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node exited before it started");
        }
        if line.contains("node started") {
            break t.elapsed();
        }
    };
    // Settled memory: what the running node holds, a moment after start.
    std::thread::sleep(Duration::from_millis(300));
    let rss = rss_kb(child.id());
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = writeln!(stdin, "quit");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Drain what is left of the log so the pipe never blocks the exit.
    let _ = std::io::Read::read_to_end(&mut stderr, &mut Vec::new());
    (ready, rss)
}

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Median of per-call times, µs.
fn median_us(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// What [`latencies`] measures, in its order.
const MEASURED: [&str; 3] = ["block by height", "chain 10", "GetBlocks page (512)"];

/// Starts a node (no mining, no mDNS, listening on loopback) on the store in `dir`.
async fn start_node(dir: &Path, params: &ChainParams) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let mut c = NodeConfig::new(dir.to_path_buf(), params.clone());
    c.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    c.net.behaviour.mdns = false;
    node::start(c).await.expect("node starts")
}

/// `block <random height>` and `chain 10` as the REPL asks them: a command to the running
/// node's task and its answer (what is printed aside), medians of one round, µs.
async fn command_latencies(handle: &NodeHandle, top: u64, seed: u64) -> [f64; 2] {
    let mut rng = Rng(seed);
    let mut block = Vec::with_capacity(SAMPLES);
    let mut chain10 = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let h = 1 + rng.below(top);
        let t = Instant::now();
        let info = handle.block(BlockId::Height(h)).await.expect("running");
        block.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(info.map(|b| b.block.header.height), Some(h));
        let t = Instant::now();
        let list = handle.chain(10).await.expect("running");
        chain10.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(list.len(), 10);
    }
    for v in [&mut block, &mut chain10] {
        v.sort_by(f64::total_cmp);
    }
    [block[SAMPLES / 2], chain10[SAMPLES / 2]]
}

/// Latencies on a loaded chain: block by random height, chain 10, GetBlocks page, µs.
fn latencies(chain: &ChainState, seed: u64) -> [f64; 3] {
    let top = chain.height();
    let mut rng = Rng(seed);
    let block = median_us(|| {
        let h = 1 + rng.below(top);
        assert!(chain.checked_at(h).is_some());
    });
    let chain10 = median_us(|| {
        let list: Vec<_> = (0..10).filter_map(|i| chain.checked_at(top - i)).collect();
        assert_eq!(list.len(), 10);
    });
    let page = median_us(|| {
        let from = rng.below(top.saturating_sub(600).max(1));
        let locator = [chain.hash_at(from).expect("on the chain")];
        let page = blocks_after(chain, &locator, 512).expect("a page");
        assert!(!page.is_empty());
    });
    [block, chain10, page]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let max: u64 = std::env::var("CHAIN_SCALE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let params = ChainParams::with_bits(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blocks.redb");
    let mut tip = params.genesis().header;
    println!(
        "chain_scale: fixed difficulty 1, one coinbase a block; node binary restarted on each"
    );
    let mut rows = Vec::new();
    for &n in SIZES.iter().filter(|&&n| n <= max) {
        let t = Instant::now();
        {
            let store = Store::open(&path, &params).expect("store");
            tip = grow(&store, &params, tip, n);
        }
        let built = t.elapsed();
        let file_mb = std::fs::metadata(&path).map_or(0, |m| m.len()) / 1_000_000;
        let (ready, rss) = restart(dir.path());
        let store = Store::open(&path, &params).expect("store");
        let t = Instant::now();
        let chain = store.load_chain(TreeLimits::default()).expect("load");
        let load = t.elapsed();
        assert_eq!(chain.height(), n);
        let lat = latencies(&chain, n);
        println!(
            "  {n:>9} blocks: built in {:.1} s ({file_mb} MB file); node ready {:.0} ms after \
             spawn, RSS {:.1} MB; load_chain {:.0} ms; block by height {:.1} µs, chain 10 \
             {:.1} µs, GetBlocks page (512) {:.0} µs",
            built.as_secs_f64(),
            ready.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0,
            load.as_secs_f64() * 1000.0,
            lat[0],
            lat[1],
            lat[2]
        );
        rows.push((n, ready, rss, lat));
    }
    if let (Some(a), Some(b)) = (
        rows.iter().find(|r| r.0 == 100_000),
        rows.iter().find(|r| r.0 == 1_000_000),
    ) {
        let slope = (b.2 as f64 - a.2 as f64) * 1024.0 / (b.0 - a.0) as f64;
        println!(
            "  memory per additional block (RSS slope 100 k -> 1 M): {slope:.0} bytes (target <= 150)"
        );
        println!(
            "  1 M blocks: ready in {:.0} ms (target <= 1000), RSS {:.1} MB (target <= 150)",
            b.1.as_secs_f64() * 1000.0,
            b.2 as f64 / 1024.0
        );
    }
    if let (Some(small), Some(big)) = (rows.first(), rows.last())
        && big.0 > small.0
    {
        // Measured again side by side, alternating, so both see the same machine load.
        let s_store = {
            let d = tempfile::tempdir().expect("temp dir");
            let p = d.path().join("blocks.redb");
            let store = Store::open(&p, &params).expect("store");
            grow(&store, &params, params.genesis().header, small.0);
            (d, store)
        };
        let s_chain = s_store.1.load_chain(TreeLimits::default()).expect("load");
        let b_store = Store::open(&path, &params).expect("store");
        let b_chain = b_store.load_chain(TreeLimits::default()).expect("load");
        // Both stores opened and loaded the same way in this process, one warm-up round of
        // each thrown away, then rounds alternating between them; each figure is the median
        // over rounds of the per-round medians.
        let _ = (latencies(&s_chain, 99), latencies(&b_chain, 99));
        let (mut s, mut b) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            s.push(latencies(&s_chain, round));
            b.push(latencies(&b_chain, round));
        }
        let med = |v: &[[f64; 3]], i: usize| {
            let mut x: Vec<f64> = v.iter().map(|r| r[i]).collect();
            x.sort_by(f64::total_cmp);
            x[x.len() / 2]
        };
        println!(
            "  {} vs {} blocks, side by side ({ROUNDS} alternating rounds of {SAMPLES} samples, \
             medians), target ratio <= 2:",
            big.0, small.0
        );
        for (i, name) in MEASURED.iter().enumerate() {
            let (x, y) = (med(&s, i), med(&b, i));
            println!(
                "    {name:<21} {x:>8.1} µs at {} vs {y:>8.1} µs at {}: {:.2}x",
                small.0,
                big.0,
                y / x
            );
        }
        // The same commands through a running node on each store, as the REPL sends them.
        drop((s_chain, b_chain, b_store));
        let (s_dir, s_store) = s_store;
        drop(s_store);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let (s_node, s_task) = start_node(s_dir.path(), &params).await;
            let (b_node, b_task) = start_node(dir.path(), &params).await;
            let _ = command_latencies(&s_node, small.0, 99).await;
            let _ = command_latencies(&b_node, big.0, 99).await;
            let (mut s, mut b) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                s.push(command_latencies(&s_node, small.0, round).await);
                b.push(command_latencies(&b_node, big.0, round).await);
            }
            let med = |v: &[[f64; 2]], i: usize| {
                let mut x: Vec<f64> = v.iter().map(|r| r[i]).collect();
                x.sort_by(f64::total_cmp);
                x[x.len() / 2]
            };
            println!(
                "  the REPL's commands through a running node (NodeHandle), {ROUNDS} alternating \
                 rounds, medians, target ratio <= 2:"
            );
            for (i, name) in ["block <height>", "chain 10"].iter().enumerate() {
                let (x, y) = (med(&s, i), med(&b, i));
                println!(
                    "    {name:<21} {x:>8.1} µs at {} vs {y:>8.1} µs at {}: {:.2}x",
                    small.0,
                    big.0,
                    y / x
                );
            }
            for (handle, task) in [(s_node, s_task), (b_node, b_task)] {
                handle.shutdown().await;
                task.await.expect("node task does not panic");
            }
        });
    }
}
