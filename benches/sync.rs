//! Block download (sync) benchmark: `cargo bench --bench sync`.
//!
//! Prints, in one run:
//! (a) a fresh node catching up a 10 000-block chain whose blocks carry 10 signed transfers
//!     each (between 100 funded keys), from a serving node started on a preloaded store, in
//!     blocks/s: from the fresh node's dial until its tip is the server's. Next to it, the same
//!     blocks validated from local storage with no network (a fresh `ChainState` and
//!     `process_block` for each block in order, signatures verified), in blocks/s; and the ratio
//!     (target: network sync >= 50% of local validation speed). Each is measured three times,
//!     interleaved, and the better run is compared.
//! (b) catch-up cost against chain length: a node holding 49 990 blocks of a 50 000-block chain
//!     catching up the last 10, against a node holding 90 of a 100-block chain catching up 10
//!     (both sides' stores preloaded; the lagging store holds a prefix of the server's chain).
//!     Each lagging node is started first, without the server's address (loading its store is
//!     not timed), then dials the server: the time runs from the dial until its tip is the
//!     server's. Several rounds alternate the two sizes; medians and their ratio are printed
//!     (target <= 3x).
//!
//! Nodes run in this process on 127.0.0.1 with mDNS off and the test difficulty (8 bits).

mod common;

use common::{Node, Stats, chains, load_average};
use gossipchain::chain::{Address, Block, BlockHash, ChainParams, ChainState};
use gossipchain::store::Store;
use gossipchain::testkit::{self, key};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Blocks of the chain with transactions.
const TX_BLOCKS: usize = 10_000;
/// Transfers in each of its blocks (after the funding blocks).
const TXS_PER_BLOCK: usize = 10;
/// Funded keys; the first this many blocks pay one each and carry no transfer.
const KEYS: usize = 100;
/// Rounds of (a), each one local validation and one network sync.
const ROUNDS_A: usize = 3;
/// Length of the long chain of (b) and of the short one.
const LONG: usize = 50_000;
const SHORT: usize = 100;
/// Blocks the lagging node misses in (b).
const MISSING: usize = 10;
/// Rounds of (b), each one catch-up of each size.
const ROUNDS_B: usize = 9;
/// Longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(180);

impl Node {
    /// Dials `server` and returns the seconds until this node's tip is `tip`.
    async fn catch_up(&self, server: &Node, tip: BlockHash) -> f64 {
        let t0 = Instant::now();
        self.handle
            .dial(server.addr.clone())
            .await
            .expect("dial the server");
        let (s, ok) = self.handle.wait_for(DEADLINE, |s| s.tip == tip).await;
        let secs = t0.elapsed().as_secs_f64();
        assert!(ok, "never caught up; last status: {s:?}");
        secs
    }
}

/// A node started on a copy of the store files (database and body file) in `template`.
async fn start_copy(template: &Path, params: &ChainParams) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in ["blocks.redb", "blocks.bodies"] {
        std::fs::copy(template.join(file), dir.path().join(file)).expect("copy the store");
    }
    Node::start(dir, params, DEADLINE).await
}

async fn part_a(params: &ChainParams) {
    println!();
    println!(
        "(a) catching up {TX_BLOCKS} blocks of {TXS_PER_BLOCK} transfers each (the first {KEYS} \
         fund the senders and carry none)"
    );
    let t = Instant::now();
    let built = chains::with_transfers(params, TX_BLOCKS, KEYS, TXS_PER_BLOCK);
    let server_dir = tempfile::tempdir().expect("temp dir");
    chains::preload(server_dir.path(), params, &built);
    drop(built);
    // The blocks as the local validation reads them: decoded from the store.
    let t_read = Instant::now();
    let blocks: Vec<Arc<Block>> = {
        let store =
            Store::open(&server_dir.path().join("blocks.redb"), params).expect("store opens");
        store
            .blocks()
            .expect("store reads")
            .into_iter()
            .map(|(_, b)| Arc::new(b))
            .collect()
    };
    let read_secs = t_read.elapsed().as_secs_f64();
    assert_eq!(blocks.len(), TX_BLOCKS);
    let bytes: usize = blocks.iter().map(|b| b.encode().len()).sum();
    println!(
        "    built and stored in {:.1} s; {:.1} MB encoded, {} transfers; reading and decoding \
         them back from the store took {:.2} s",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        blocks.iter().map(|b| b.txs.len() - 1).sum::<usize>(),
        read_secs
    );
    let server = Node::start(server_dir, params, DEADLINE).await;
    let tip = server.handle.status().tip;
    assert_eq!(server.handle.status().height, TX_BLOCKS as u64);

    let mut local = Vec::new();
    let mut network = Vec::new();
    for round in 1..=ROUNDS_A {
        let secs = chains::validate_locally(params, &blocks);
        local.push(secs);
        println!(
            "    round {round}: local validation {:8.0} blocks/s ({:.2} s)",
            TX_BLOCKS as f64 / secs,
            secs
        );
        let fresh = Node::start(tempfile::tempdir().expect("temp dir"), params, DEADLINE).await;
        let secs = fresh.catch_up(&server, tip).await;
        network.push(secs);
        println!(
            "    round {round}: network sync     {:8.0} blocks/s ({:.2} s)",
            TX_BLOCKS as f64 / secs,
            secs
        );
        fresh.stop().await;
    }
    server.stop().await;
    let best_local = local.iter().copied().fold(f64::INFINITY, f64::min);
    let best_network = network.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = best_local / best_network;
    println!(
        "    best: network sync {:.0} blocks/s, local validation {:.0} blocks/s ({:.0} with the \
         store read included)",
        TX_BLOCKS as f64 / best_network,
        TX_BLOCKS as f64 / best_local,
        TX_BLOCKS as f64 / (best_local + read_secs)
    );
    println!(
        "    network sync / local validation: {:.0}% (target >= 50%: {})",
        ratio * 100.0,
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );
}

async fn part_b(params: &ChainParams) {
    println!();
    println!(
        "(b) catching up the last {MISSING} blocks of a {LONG}-block chain vs of a {SHORT}-block \
         chain (empty blocks; time from the dial)"
    );
    let t = Instant::now();
    let mut chain = ChainState::new(params.clone());
    testkit::extend(&mut chain, LONG, Address::of(&key(7)));
    let blocks = chains::best_chain(&chain);
    drop(chain);
    let dirs: Vec<TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    let [long_server, long_lag, short_server, short_lag] = &dirs[..] else {
        unreachable!()
    };
    chains::preload(long_server.path(), params, &blocks);
    chains::preload(long_lag.path(), params, &blocks[..LONG - MISSING]);
    chains::preload(short_server.path(), params, &blocks[..SHORT]);
    chains::preload(short_lag.path(), params, &blocks[..SHORT - MISSING]);
    println!(
        "    chains built and stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let long = start_copy(long_server.path(), params).await;
    println!(
        "    the {LONG}-block server started in {:.2} s (loading its store)",
        t.elapsed().as_secs_f64()
    );
    let short = start_copy(short_server.path(), params).await;
    let long_tip = long.handle.status().tip;
    let short_tip = short.handle.status().tip;
    assert_eq!(long.handle.status().height, LONG as u64);
    assert_eq!(short.handle.status().height, SHORT as u64);

    let mut long_times = Vec::new();
    let mut short_times = Vec::new();
    for round in 1..=ROUNDS_B {
        // Alternate which size goes first, so that neither always follows the other's stop.
        let mut l = 0.0;
        let mut s = 0.0;
        let mut load = 0.0;
        for long_case in [round % 2 == 1, round % 2 == 0] {
            if long_case {
                let t = Instant::now();
                let lag = start_copy(long_lag.path(), params).await;
                load = t.elapsed().as_secs_f64();
                assert_eq!(lag.handle.status().height, (LONG - MISSING) as u64);
                l = lag.catch_up(&long, long_tip).await;
                lag.stop().await;
            } else {
                let lag = start_copy(short_lag.path(), params).await;
                assert_eq!(lag.handle.status().height, (SHORT - MISSING) as u64);
                s = lag.catch_up(&short, short_tip).await;
                lag.stop().await;
            }
        }
        println!(
            "    round {round}: {}/{LONG}: {:7.2} ms   {}/{SHORT}: {:7.2} ms   (untimed start of \
             the long lagging node: {:.2} s)",
            LONG - MISSING,
            l * 1e3,
            SHORT - MISSING,
            s * 1e3,
            load
        );
        long_times.push(l);
        short_times.push(s);
    }
    long.stop().await;
    short.stop().await;
    let (l, s) = (
        Stats(long_times.clone()).median(),
        Stats(short_times.clone()).median(),
    );
    let ratio = l / s;
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "    median: {LONG}-block chain {:.2} ms, {SHORT}-block chain {:.2} ms; ratio {ratio:.2}x \
         (target <= 3x: {}); fastest: {:.2} ms vs {:.2} ms",
        l * 1e3,
        s * 1e3,
        if ratio <= 3.0 { "met" } else { "MISSED" },
        min(&long_times) * 1e3,
        min(&short_times) * 1e3
    );
}

async fn run() {
    let params = testkit::params();
    println!("gossipchain sync benchmark");
    println!(
        "nodes in this process on 127.0.0.1; {}; tokio workers: {}; load average \
         at start: {}",
        params.difficulty,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );
    let t = Instant::now();
    part_a(&params).await;
    part_b(&params).await;
    println!();
    println!(
        "total {:.1} s; load average at end: {}",
        t.elapsed().as_secs_f64(),
        load_average()
    );
}

fn main() {
    common::block_on(run());
}
