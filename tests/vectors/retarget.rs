//! Retargeting vectors: `proto/vectors/retarget.txt`, written by `proto/vectors/retarget.py`
//! (a second implementation of PROTOCOL.md section 6, in Python). Every line is checked
//! against the Rust implementation: compact targets, work, fixed-difficulty targets, genesis
//! targets, ASERT on the default chain, a 40-block walk through the block tree, and Bitcoin
//! Cash's own ASERT test values.

use super::Vectors;
use gossipchain::chain::pow::Target;
use gossipchain::chain::retarget::{self, ParentInfo, asert_pow_limit, calculate_asert};
use gossipchain::chain::target::{CompactError, U256};
use gossipchain::chain::{
    Address, Block, ChainParams, ChainState, Coinbase, Difficulty, Header, Transaction, merkle,
};
use std::sync::Arc;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/vectors/retarget.txt");

fn vectors() -> Vectors {
    Vectors::parse(&std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("{PATH}: {e}")))
}

fn hex_u256(s: &str) -> U256 {
    let bytes = hex::decode(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(bytes.len(), 32, "{s}");
    U256::from_big_endian(&bytes)
}

fn hex_u32(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn numbers(s: &str) -> Vec<i128> {
    s.split_whitespace()
        .map(|x| x.parse().unwrap_or_else(|e| panic!("{x}: {e}")))
        .collect()
}

/// Indices 0.. of keys `prefix.N.suffix` present in the file.
fn count(v: &Vectors, prefix: &str, suffix: &str) -> usize {
    (0..)
        .take_while(|i| v.0.contains_key(&format!("{prefix}.{i}{suffix}")))
        .count()
}

#[test]
fn compact_targets_work_and_fixed_difficulty() {
    let v = vectors();
    let n = count(&v, "compact", ".bits");
    assert!(n >= 20, "{n} compact cases");
    for i in 0..n {
        let bits = v.bits(&format!("compact.{i}.bits"));
        let got = Target::from_compact(bits);
        if let Some(t) = v.0.get(&format!("compact.{i}.target")) {
            let t = hex_u256(t);
            assert_eq!(got.map(|x| x.value()), Ok(t), "compact.{i}");
            assert_eq!(Target::new(t).map(|x| x.to_compact()), Some(bits));
        } else {
            let name = match got {
                Err(CompactError::Negative(_)) => "Negative",
                Err(CompactError::Overflow(_)) => "Overflow",
                Err(CompactError::Zero(_)) => "Zero",
                Err(CompactError::NotCanonical { .. }) => "NotCanonical",
                Ok(t) => panic!("compact.{i}: {bits:08x} accepted as {t}"),
            };
            assert_eq!(name, v.str(&format!("compact.{i}.error")), "compact.{i}");
        }
    }
    for i in 0..count(&v, "round", ".value") {
        let value = hex_u256(v.str(&format!("round.{i}.value")));
        let bits = v.bits(&format!("round.{i}.bits"));
        let t = Target::round_down(value).expect("non-zero");
        assert_eq!(t.to_compact(), bits, "round.{i}");
        assert!(t.value() <= value);
    }
    for i in 0..count(&v, "work", ".bits") {
        let t = Target::from_compact(v.bits(&format!("work.{i}.bits"))).expect("valid");
        let want = U256::from_dec_str(v.str(&format!("work.{i}.work"))).expect("decimal");
        assert_eq!(t.work().0, want, "work.{i}");
    }
    for b in [0u32, 1, 8, 22, 27, 255] {
        let p = ChainParams::with_bits(b);
        assert_eq!(
            p.genesis_bits(),
            v.bits(&format!("fixed.{b}.bits")),
            "fixed {b}"
        );
        assert_eq!(p.genesis().header.bits, p.genesis_bits());
    }
}

#[test]
fn genesis_targets_and_asert_on_the_default_chain() {
    let v = vectors();
    assert_eq!(asert_pow_limit(), hex_u256(v.str("asert_pow_limit")));
    for t in [100u64, 500, 2000, 10_000, 600_000, 86_400_000] {
        let p = ChainParams::with_block_time(t);
        assert_eq!(
            p.genesis_bits(),
            v.bits(&format!("genesis.{t}.bits")),
            "{t} ms"
        );
    }
    let p = ChainParams::default();
    assert_eq!(
        p.difficulty,
        Difficulty::Asert {
            block_time_ms: v.u64("asert.block_time_ms"),
            half_life_ms: v.u64("asert.half_life_ms"),
        }
    );
    let n = count(&v, "asert", ".bits");
    assert!(n >= 15, "{n} cases");
    for i in 0..n {
        let x = numbers(v.str(&format!("asert.{i}")));
        let parent = ParentInfo {
            height: x[0] as u64,
            timestamp: x[1] as u64,
            anchor_time: x[2] as u64,
        };
        assert_eq!(
            retarget::next_bits(&p, &parent),
            v.bits(&format!("asert.{i}.bits")),
            "asert.{i}: {parent:?}"
        );
    }
}

/// The walk's blocks built and accepted one by one by the block tree: each must carry the
/// file's bits, and one with any other bits is refused.
#[test]
fn a_walk_through_the_block_tree() {
    let v = vectors();
    let block_time_ms = v.u64("walk.block_time_ms");
    let p = ChainParams {
        difficulty: Difficulty::Asert {
            block_time_ms,
            half_life_ms: v.u64("walk.half_life_ms"),
        },
        genesis_timestamp: v.u64("walk.genesis_timestamp"),
        ..ChainParams::with_block_time(block_time_ms)
    };
    let times: Vec<u64> = v
        .str("walk.timestamps")
        .split(',')
        .map(|t| t.parse().expect("decimal"))
        .collect();
    let bits: Vec<u32> = v.str("walk.bits").split(',').map(hex_u32).collect();
    assert_eq!((times.len(), bits.len()), (40, 40));
    let mut chain = ChainState::new(p.clone());
    let miner = Address([7; 32]);
    for (i, (&timestamp, &want)) in times.iter().zip(&bits).enumerate() {
        let height = i as u64 + 1;
        assert_eq!(chain.next_bits(), want, "block {height}");
        let txs = vec![Transaction::Coinbase(Coinbase {
            height,
            to: miner,
            amount: p.block_reward,
        })];
        let mut block = Block {
            header: Header {
                version: 1,
                height,
                prev_hash: chain.tip(),
                tx_root: merkle::tx_root(&[txs[0].compute_txid()]),
                timestamp,
                bits: want,
                nonce: 0,
            },
            txs,
        };
        // Once in each phase of the walk, a block with half the required target (and valid
        // proof of work for it) is refused: the target is the parent's to decide.
        if i % 10 == 5 {
            let mut wrong = block.clone();
            let half = Target::from_compact(want).expect("valid").value() >> 1;
            wrong.header.bits = Target::round_down(half).expect("non-zero").to_compact();
            gossipchain::testkit::mine_header(&mut wrong.header);
            assert!(
                matches!(
                    chain.process_block(Arc::new(wrong), timestamp),
                    Err(gossipchain::chain::ValidationError::WrongBits { .. })
                ),
                "block {height} with other bits"
            );
        }
        gossipchain::testkit::mine_header(&mut block.header);
        chain
            .process_block(Arc::new(block), timestamp)
            .unwrap_or_else(|e| panic!("block {height}: {e}"));
    }
    assert_eq!(chain.height(), 40);
}

#[test]
fn bitcoin_cash_asert_values() {
    let v = vectors();
    let spacing = i128::from(v.u64("bch.spacing"));
    let half_life = i128::from(v.u64("bch.half_life"));
    let limit = hex_u256(v.str("bch.pow_limit"));
    let n = count(&v, "bch.calc", ".target");
    assert_eq!(n, 18);
    for i in 0..n {
        let args: Vec<&str> = v.str(&format!("bch.calc.{i}")).split(' ').collect();
        let reference = hex_u256(args[0]);
        let (time_diff, height_diff) = (
            args[1].parse().expect("decimal"),
            args[2].parse().expect("decimal"),
        );
        let want = hex_u256(v.str(&format!("bch.calc.{i}.target")));
        let got = calculate_asert(reference, spacing, time_diff, height_diff, limit, half_life);
        assert_eq!(got, want, "bch.calc.{i}");
        // The same in milliseconds: the exponent is the same rational number, so the same.
        let ms = calculate_asert(
            reference,
            spacing * 1000,
            time_diff * 1000,
            height_diff,
            limit,
            half_life * 1000,
        );
        assert_eq!(ms, want, "bch.calc.{i} in ms");
    }
    for run in ["run1", "run2", "run3", "run4", "run5", "run9", "run12"] {
        let anchor: Vec<&str> = v.str(&format!("bch.{run}.anchor")).split(' ').collect();
        let reference = Target::from_compact(hex_u32(anchor[0])).expect("valid");
        let anchor_height: i128 = anchor[1].parse().expect("decimal");
        let anchor_time: i128 = anchor[2].parse().expect("decimal");
        let rows = v.str(&format!("bch.{run}"));
        for row in rows.split(',') {
            let x: Vec<&str> = row.split(' ').collect();
            let height: i128 = x[0].parse().expect("decimal");
            let time: i128 = x[1].parse().expect("decimal");
            let got = calculate_asert(
                reference.value(),
                spacing,
                time - anchor_time,
                height - anchor_height,
                limit,
                half_life,
            );
            let got = Target::new(got).expect("at least 1").to_compact();
            assert_eq!(got, hex_u32(x[2]), "bch.{run} at height {height}");
        }
    }
}
