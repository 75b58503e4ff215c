//! Compact block benchmark: `cargo bench --bench compact`.
//!
//! For a full block (4 999 transfers, the chain's limit with the coinbase) it prints:
//! 1. the relay message's size: the full block's consensus encoding against its compact form
//!    when the receiver holds every transfer, 99 % of them (the rest prefilled by a sender that
//!    lacked them too) and none (every transfer prefilled);
//! 2. the time to build the compact form (short ids of 4 999 txids), and to rebuild the block
//!    on the receiver: decode, the short ids of a 20 000-transfer pool (the block's and 15 001
//!    others), the lookup and the Merkle root check; and the full block's decode for scale.
//!
//! Each measurement is repeated in interleaved rounds; the median is reported with the min and
//! max. CPU model and SHA backend are printed beside the figures.

mod common;

use common::{Stats, load_average};
use gossipchain::chain::compact::{Candidates, CompactBlock, Rebuilt};
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

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn sha_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha") {
        return "x86 SHA extensions";
    }
    "software"
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
        let found = c.candidates(&pool);
        let r = c.reconstruct(|s| found.get(&s).copied().unwrap_or(Candidates::None));
        assert!(matches!(r, Rebuilt::Full(_)));
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
}
