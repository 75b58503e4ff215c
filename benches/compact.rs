//! Compact block benchmark: `cargo bench --bench compact`.
//!
//! For a full block (4 999 transfers, the chain's limit with the coinbase) it prints:
//! 1. the relay message's size: the full block's consensus encoding against its compact form
//!    when the receiver holds every transfer, 99 % of them (the rest prefilled by a sender that
//!    lacked them too) and none (every transfer prefilled);
//! 2. the time to build the compact form (short ids of 4 999 txids), and to rebuild the block
//!    on the receiver: decode, the short ids of a 20 000-transfer pool (the block's and 15 001
//!    others), the lookup and the Merkle root check; and the full block's decode for scale;
//! 3. one-hop propagation on loopback: two nodes in this process (127.0.0.1, mDNS off, test
//!    difficulty), both holding the same 4 999 transfers in their mempools (signed before the
//!    clock starts, gossiped from A to B); A mines a full block, and the time from the instant
//!    it was found (on the mining thread) until B has rebuilt, validated, stored and adopted it
//!    is measured, beside an empty block's on the same pair, with B's count of blocks rebuilt
//!    with no round trip.
//!
//! Each measurement is repeated in interleaved rounds; the median is reported with the min and
//! max. CPU model and SHA backend are printed beside the figures.

mod common;

use common::{Node, Stats, cpu_model, load_average};
use gossipchain::chain::compact::{CompactBlock, Rebuilt};
use gossipchain::chain::{
    Address, Block, BlockHash, ChainParams, Coinbase, Header, Transaction, Transfer, Txid, merkle,
};
use gossipchain::testkit::key;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

/// Transfers in the full block.
const N: usize = 4_999;
/// Transfers in the receiver's pool beyond the block's.
const OTHERS: usize = 15_001;
/// Interleaved rounds.
const ROUNDS: usize = 15;

/// The SHA-256 backend the sha2 crate uses on this CPU.
fn sha_backend() -> &'static str {
    if common::sha_extensions() {
        "x86 SHA extensions"
    } else {
        "software"
    }
}

/// Distinct signed transfers (the signatures are real; the rebuild does not check them).
fn transfers(n: usize, salt: u64) -> Vec<Transfer> {
    let chain_id = ChainParams::default().chain_id();
    let keys: Vec<_> = (0..64).map(|i| key(salt * 1000 + i)).collect();
    (0..n)
        .map(|i| {
            Transfer::sign(
                &keys[i % 64],
                &chain_id,
                Address([9; 32]),
                1 + i as u64,
                1,
                (i / 64) as u64,
            )
        })
        .collect()
}

fn block_of(ts: &[Transfer]) -> Block {
    let mut txs = vec![Transaction::Coinbase(Coinbase {
        height: 100,
        to: Address([1; 32]),
        amount: 50 + ts.len() as u64,
    })];
    txs.extend(ts.iter().map(|t| Transaction::Transfer(*t)));
    let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    Block {
        header: Header {
            version: 1,
            height: 100,
            prev_hash: BlockHash([2; 32]),
            tx_root: merkle::tx_root(&txids),
            timestamp: 1_767_225_700_000,
            bits: 0x2000_ffff,
            nonce: 7,
        },
        txs,
    }
}

/// Milliseconds of `f`, median [min..max] over the rounds.
fn time(mut f: impl FnMut()) -> Stats {
    Stats(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn show(what: &str, s: &Stats) {
    println!(
        "  {what:<58} {:>8.3} ms  [{:.3}..{:.3}]",
        s.median(),
        s.min(),
        s.max()
    );
}

fn main() {
    let p = ChainParams::default();
    println!("compact blocks: a full block of {N} transfers");
    println!(
        "CPU: {}; cores: {}; SHA-256 backend: {}; rounds: {ROUNDS} (median [min..max]); load average at start: {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        sha_backend(),
        load_average()
    );
    let ts = transfers(N, 1);
    let block = block_of(&ts);
    let txids = block.compute_txids();
    let full = block.encode();
    let max = p.max_block_bytes as usize;
    let all_held = CompactBlock::from_block(&block, &txids, 1, |_| true, max).unwrap();
    let lacked: std::collections::HashSet<Txid> = txids.iter().step_by(100).copied().collect();
    let most_held =
        CompactBlock::from_block(&block, &txids, 1, |t| !lacked.contains(t), max).unwrap();
    let none_held = CompactBlock::from_block(&block, &txids, 1, |_| false, max).unwrap();

    println!("\nrelay message size");
    let kb = |n: usize| n as f64 / 1000.0;
    println!(
        "  full block (consensus encoding)      {:>9.1} KB",
        kb(full.len())
    );
    for (what, c) in [
        ("compact, receiver holds all", &all_held),
        ("compact, 1 % prefilled", &most_held),
        ("compact, all prefilled", &none_held),
    ] {
        let n = c.encode().len();
        println!(
            "  {what:<36} {:>9.1} KB  ({:.1} % of the full block, {} prefilled)",
            kb(n),
            100.0 * n as f64 / full.len() as f64,
            c.prefilled.len()
        );
    }

    // The receiver's pool: the block's transfers and others.
    let mut pool: HashMap<Txid, Transfer> = ts
        .iter()
        .map(|t| (Transaction::Transfer(*t).compute_txid(), *t))
        .collect();
    for t in transfers(OTHERS, 2) {
        pool.insert(Transaction::Transfer(t).compute_txid(), t);
    }
    let wire = all_held.encode();

    println!("\ntime (one thread)");
    let build = time(|| {
        black_box(CompactBlock::from_block(
            black_box(&block),
            &txids,
            1,
            |_| true,
            max,
        ));
    });
    let rebuild = time(|| {
        let c = CompactBlock::decode(black_box(&wire), max, p.max_block_txs).unwrap();
        let r = c.rebuild(&pool);
        assert!(matches!(r, Rebuilt::Full { .. }));
        black_box(r);
    });
    let decode_full = time(|| {
        black_box(Block::decode(black_box(&full), max, p.max_block_txs).unwrap());
    });
    let root = time(|| {
        black_box(merkle::tx_root(black_box(&txids)));
    });
    show("build the compact form (4 999 short ids)", &build);
    show(
        &format!(
            "rebuild: decode, {} pool short ids, lookup, Merkle root",
            pool.len()
        ),
        &rebuild,
    );
    show("for scale: decode the full block", &decode_full);
    show("for scale: the Merkle root of 5 000 txids", &root);

    common::block_on(propagation());
}

/// Full blocks measured on loopback.
const FULL_BLOCKS: usize = 3;
/// Funded senders: each sends 50 transfers a block (within the mempool's nonce gap of 64).
const SENDERS: u64 = 100;
/// How long any wait may take.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// The count of compact block `event` in `node`'s metrics.
fn compact_count(node: &Node, event: &str) -> u64 {
    let key = format!("gossipchain_compact_blocks_total{{event=\"{event}\"}} ");
    node.handle
        .metrics()
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// A store in a temp dir holding `blocks` (a chain from genesis).
fn preloaded(
    params: &ChainParams,
    blocks: &[std::sync::Arc<gossipchain::chain::CheckedBlock>],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = gossipchain::store::Store::open(&dir.path().join("blocks.redb"), params)
        .expect("store opens");
    let tip = blocks.last().expect("blocks").key();
    store.commit(blocks, &[], tip).expect("store commit");
    dir
}

/// Milliseconds from `a` mining a block until `b` adopts it; the block's transaction count.
async fn one_hop(a: &Node, b: &Node) -> (f64, usize) {
    let height = b.handle.status().height;
    let h = b.handle.clone();
    let waiter = tokio::spawn(async move {
        let (s, ok) = h.wait_for(DEADLINE, |s| s.height > height).await;
        (s.tip, ok, Instant::now())
    });
    let mined = a.handle.mine_one().await.expect("running").expect("mined");
    let (tip, ok, at) = waiter.await.expect("waiter");
    assert!(ok && tip == mined.hash, "B never adopted A's block");
    let t0 = mined.found_at.expect("found_at");
    (
        at.saturating_duration_since(t0).as_secs_f64() * 1e3,
        mined.block.txs.len(),
    )
}

async fn propagation() {
    use gossipchain::testkit;
    let params = testkit::params();
    // Three blocks per sender, 50 coins each: three full blocks of 1-coin transfers, fee 0.
    let mut chain = gossipchain::chain::ChainState::new(params.clone());
    for _ in 0..FULL_BLOCKS {
        for s in 0..SENDERS {
            let b = testkit::next_block(&chain, &[], Address::of(&key(10_000 + s)));
            chain
                .process_block(std::sync::Arc::new(b), testkit::NOW)
                .expect("valid");
        }
    }
    let blocks: Vec<_> = (1..=chain.height())
        .map(|h| chain.checked_at(h).expect("on the chain"))
        .collect();
    let a = Node::start(preloaded(&params, &blocks), &params, DEADLINE).await;
    let b = Node::start(preloaded(&params, &blocks), &params, DEADLINE).await;
    a.handle.dial(b.addr.clone()).await.expect("dial");
    // Until the gossip mesh forms, blocks may reach B by sync: mine until one arrives as a
    // compact block.
    let started = Instant::now();
    while compact_count(&b, "rebuilt") == 0 {
        one_hop(&a, &b).await;
        assert!(started.elapsed() < DEADLINE, "no gossip from A to B");
    }
    let chain_id = params.chain_id();
    let mut full = Vec::new();
    let mut empty = Vec::new();
    let mut next_nonce = vec![0u64; SENDERS as usize];
    for round in 0..FULL_BLOCKS as u64 {
        let batch: Vec<Transfer> = (0..N as u64)
            .map(|i| {
                let s = i % SENDERS;
                let nonce = next_nonce[s as usize];
                next_nonce[s as usize] += 1;
                Transfer::sign(&key(10_000 + s), &chain_id, Address([9; 32]), 1, 0, nonce)
            })
            .collect();
        for t in batch {
            a.handle
                .submit(t)
                .await
                .expect("running")
                .expect("admitted");
        }
        let (s, ok) = b.handle.wait_for(DEADLINE, |s| s.mempool == N).await;
        assert!(ok, "B's mempool never got the transfers: {}", s.mempool);
        let (asked, rebuilt) = (compact_count(&b, "asked"), compact_count(&b, "rebuilt"));
        let (ms, txs) = one_hop(&a, &b).await;
        // The class of full blocks: 4 000 transfers or more.
        assert!(txs > 4_000, "a full block: {txs} transactions");
        full.push(ms);
        println!(
            "  full block {} ({} transfers): {ms:.1} ms (rebuilt with no round trip: {})",
            round + 1,
            txs - 1,
            compact_count(&b, "rebuilt") > rebuilt && compact_count(&b, "asked") == asked
        );
        let (ms, _) = one_hop(&a, &b).await;
        empty.push(ms);
    }
    println!("\none-hop propagation on loopback (found on A until adopted by B)");
    let (full, empty) = (Stats(full), Stats(empty));
    println!(
        "  full blocks ({N} transfers): median {:.1} ms [{:.1}..{:.1}]; empty blocks: median {:.1} ms [{:.1}..{:.1}]",
        full.median(),
        full.min(),
        full.max(),
        empty.median(),
        empty.min(),
        empty.max()
    );
    a.stop().await;
    b.stop().await;
}
