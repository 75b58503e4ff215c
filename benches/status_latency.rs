//! How long the node takes to answer while it validates a sync download:
//! `cargo bench --bench status_latency`.
//!
//! A server node holds a chain of [`KEYS`] funding blocks and then [`TX_BLOCKS`] blocks of
//! [`TXS_PER_BLOCK`] transfers each. In each of [`ROUNDS`] rounds a fresh node dials it and
//! downloads the whole chain (pages of up to 512 blocks, every signature verified) while a task
//! asks it what the REPL's `status` asks (one round trip through the node's command queue, then
//! the status snapshot) every [`POLL`]; the round trips are timed. Prints p50, p99 and the
//! maximum over all rounds (target: p99 <= 50 ms), and how long each download took.

mod common;

use common::{Node, Stats, load_average};
use gossipchain::chain::{Address, ChainParams, ChainState, CheckedBlock, Transfer};
use gossipchain::store::Store;
use gossipchain::testkit::{self, NOW, key, next_block};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Funded keys; the first this many blocks pay one each and carry no transfer.
const KEYS: usize = 64;
/// Blocks with transfers after the funding blocks.
const TX_BLOCKS: usize = 300;
/// Transfers in each of them (one from every key).
const TXS_PER_BLOCK: usize = 64;
/// Fresh nodes that download the chain, one after another.
const ROUNDS: usize = 5;
/// Pause between two status round trips.
const POLL: Duration = Duration::from_millis(2);
/// Longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(180);

/// The chain: [`KEYS`] blocks paying one key each, then [`TX_BLOCKS`] blocks in which every
/// key pays 1 coin (no fee) to the next.
fn chain(params: &ChainParams) -> Vec<Arc<CheckedBlock>> {
    let keys: Vec<_> = (1..=KEYS as u64).map(key).collect();
    let addrs: Vec<_> = keys.iter().map(Address::of).collect();
    let mut chain = ChainState::new(params.clone());
    let chain_id = chain.chain_id();
    for b in 0..KEYS + TX_BLOCKS {
        let transfers: Vec<Transfer> = if b < KEYS {
            Vec::new()
        } else {
            let nonce = (b - KEYS) as u64;
            (0..TXS_PER_BLOCK)
                .map(|i| Transfer::sign(&keys[i], &chain_id, addrs[(i + 1) % KEYS], 1, 0, nonce))
                .collect()
        };
        let block = next_block(&chain, &transfers, addrs[b % KEYS]);
        chain
            .process_block(Arc::new(block), NOW)
            .expect("a block built on the tip is valid");
    }
    (1..=chain.height())
        .map(|h| chain.checked_at(h).expect("on the best chain").clone())
        .collect()
}

/// One download by a fresh node; returns the status round trips (ms) and the download time (s).
async fn round(server: &Node, params: &ChainParams, height: u64) -> (Vec<f64>, f64) {
    let fresh = Node::start(TempDir::new().expect("temp dir"), params, DEADLINE).await;
    let done = Arc::new(AtomicBool::new(false));
    let poller = common::poll_status(fresh.handle.clone(), POLL, done.clone());
    let start = Instant::now();
    fresh.handle.dial(server.addr.clone()).await.expect("dial");
    let (s, ok) = fresh
        .handle
        .wait_for(DEADLINE, |s| s.height == height)
        .await;
    assert!(ok, "never caught up; last status: {s:?}");
    let took = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let times = poller.await.expect("poller does not panic");
    fresh.stop().await;
    (times, took)
}

fn main() {
    let params = testkit::params();
    let blocks = chain(&params);
    let height = blocks.len() as u64;
    let dir = TempDir::new().expect("temp dir");
    {
        let store = Store::open(&dir.path().join("blocks.redb"), &params).expect("store");
        let tip = blocks.last().expect("blocks").key();
        store.commit(&blocks, &[], tip).expect("store commit");
    }
    println!(
        "status latency while syncing: a fresh node downloads {} blocks ({} of {} transfers, \
         {} in all) from one peer on 127.0.0.1, {} rounds; `status` round trip every {:?}; \
         load average at start: {}",
        height,
        TX_BLOCKS,
        TXS_PER_BLOCK,
        TX_BLOCKS * TXS_PER_BLOCK,
        ROUNDS,
        POLL,
        load_average()
    );
    common::block_on(async {
        let server = Node::start(dir, &params, DEADLINE).await;
        assert_eq!(server.handle.status().height, height);
        let mut all = Vec::new();
        for r in 0..ROUNDS {
            let (times, took) = round(&server, &params, height).await;
            let stats = Stats(times.clone());
            println!(
                "  round {}: download {:.2} s, {} answers, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r + 1,
                took,
                times.len(),
                stats.median(),
                stats.quantile(0.99),
                stats.max()
            );
            all.extend(times);
        }
        let stats = Stats(all);
        println!(
            "all rounds: {} answers, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 50 ms)",
            stats.0.len(),
            stats.median(),
            stats.quantile(0.99),
            stats.max()
        );
        server.stop().await;
    });
}
