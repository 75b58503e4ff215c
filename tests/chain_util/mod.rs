//! Shared helpers of the chain tests (validation, reorganisation, mempool): addresses and
//! txids of test keys, and sealed blocks on any parent.
//!
//! Each test file uses a subset of these.

#![allow(dead_code)]

use gossipchain::chain::block::{BLOCK_VERSION, Block, Header};
use gossipchain::chain::{Address, Coinbase, Transaction, Transfer, TxRoot, Txid};
use gossipchain::testkit::{key, seal};
use std::sync::Arc;

/// The block reward of the test chain (`testkit::params`).
pub const REWARD: u64 = 50;
/// Genesis timestamp of the test chain; testkit blocks are one second apart from it.
pub const G: u64 = 1_767_225_600_000;

/// The address of the test key `seed`.
pub fn addr(seed: u64) -> Address {
    Address::of(&key(seed))
}

pub fn txid(t: &Transfer) -> Txid {
    Transaction::Transfer(*t).compute_txid()
}

/// 32 bytes that are not an Ed25519 public key.
pub fn not_a_key() -> Address {
    (0u8..=255)
        .map(|i| Address([i; 32]))
        .find(|a| !gossipchain::chain::sig::is_public_key(&a.0))
        .expect("some repeated byte is not a curve point")
}

/// A sealed block on `parent` (which need not be in any chain), one second after it, paying
/// `reward` and the fees to `miner`. The fee arithmetic wraps, so that blocks meant to overflow
/// can be built.
pub fn child_with_reward(
    parent: &Block,
    transfers: &[Transfer],
    miner: Address,
    reward: u64,
) -> Block {
    let height = parent.header.height + 1;
    let fees = transfers.iter().fold(0u64, |a, t| a.wrapping_add(t.fee));
    let mut txs = vec![Transaction::Coinbase(Coinbase {
        height,
        to: miner,
        amount: reward.wrapping_add(fees),
    })];
    txs.extend(transfers.iter().copied().map(Transaction::Transfer));
    let mut block = Block {
        header: Header {
            version: BLOCK_VERSION,
            height,
            prev_hash: parent.compute_hash(),
            tx_root: TxRoot::default(),
            timestamp: parent.header.timestamp + 1000,
            bits: parent.header.bits,
            nonce: 0,
        },
        txs,
    };
    seal(&mut block);
    block
}

/// A sealed block on `parent` paying the test chain's reward and the fees to `miner`.
pub fn child_of(parent: &Block, transfers: &[Transfer], miner: Address) -> Arc<Block> {
    Arc::new(child_with_reward(parent, transfers, miner, REWARD))
}
