//! Block templates: what this node proposes to mine on the best tip. Mining policy, not fork
//! choice, so it sits apart from the tree and the mempool and reads both.

use super::block::{BLOCK_VERSION, Block, HEADER_LEN, Header};
use super::hash::BlockHash;
use super::mempool::Mempool;
use super::merkle;
use super::retarget::{self, ParentInfo};
use super::tree::ChainState;
use super::tx::{Address, COINBASE_LEN, Coinbase, Transaction};

/// A block on `chain`'s tip, ready to mine (nonce 0): the best transfers of `mempool`, and a
/// coinbase paying the reward and their fees to `miner`. Its timestamp is `now_ms`, or just
/// after the median past time if the clock is behind it.
pub fn block_template(chain: &ChainState, mempool: &Mempool, miner: Address, now_ms: u64) -> Block {
    let params = chain.params();
    let tip = chain.tip();
    let height = chain.height() + 1;
    let room_txs = params.max_block_txs.saturating_sub(1) as usize;
    let room_bytes =
        (params.max_block_bytes as usize).saturating_sub(HEADER_LEN + 4 + COINBASE_LEN);
    let transfers = mempool.select(chain.ledger(), room_txs, room_bytes, params.block_reward);
    let fees: u64 = transfers.iter().map(|t| t.fee).sum();
    let mut txs = Vec::with_capacity(transfers.len() + 1);
    txs.push(Transaction::Coinbase(Coinbase {
        height,
        to: miner,
        amount: params.block_reward + fees,
    }));
    txs.extend(transfers.into_iter().map(Transaction::Transfer));
    let txids: Vec<_> = txs.iter().map(Transaction::compute_txid).collect();
    let header = Header {
        version: BLOCK_VERSION,
        height,
        prev_hash: tip,
        tx_root: merkle::tx_root(&txids),
        timestamp: now_ms.max(chain.median_time_past(&tip) + 1),
        bits: chain.next_bits(),
        nonce: 0,
    };
    Block { header, txs }
}

/// A block to mine on `next`, a child of `chain`'s tip not yet found (nonce 0, its hash not
/// known): a coinbase alone paying the reward to `miner`, the target `next` calls for, stamped
/// `now_ms` or just after the median past time. Its parent hash is left zero: the miner fills
/// it in with `next`'s hash once found, and starts at once, without waiting for the node to
/// accept `next` (the node then keeps the search only if the block it would build is this one
/// but for the timestamp: see `node/mining.rs`).
pub fn follow_up_template(chain: &ChainState, next: &Header, miner: Address, now_ms: u64) -> Block {
    let params = chain.params();
    let height = next.height + 1;
    let parent = ParentInfo {
        height: next.height,
        timestamp: next.timestamp,
        anchor_time: if next.height == 1 {
            next.timestamp
        } else {
            chain
                .parent_info(&chain.tip())
                .map_or(next.timestamp, |tip| tip.anchor_time)
        },
    };
    let coinbase = Transaction::Coinbase(Coinbase {
        height,
        to: miner,
        amount: params.block_reward,
    });
    let header = Header {
        version: BLOCK_VERSION,
        height,
        prev_hash: BlockHash::default(),
        tx_root: merkle::tx_root(&[coinbase.compute_txid()]),
        timestamp: now_ms.max(chain.median_time_past_after_tip(next.timestamp) + 1),
        bits: retarget::next_bits(params, &parent),
        nonce: 0,
    };
    Block {
        header,
        txs: vec![coinbase],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::mempool::MempoolLimits;
    use crate::chain::{ChainParams, Outcome};
    use std::sync::Arc;

    /// The follow-up a miner starts on a block it just found is the template the node builds
    /// once that block is its tip, but for the parent hash the miner fills in: the same
    /// retargeted bits, coinbase and transaction root, at the same clock.
    #[test]
    fn a_follow_up_is_the_template_of_the_chain_with_its_parent_at_the_tip() {
        let params = ChainParams::with_block_time(100);
        let mut chain = ChainState::new(params.clone());
        let pool = Mempool::new(params.chain_id(), MempoolLimits::default());
        let miner = Address([9; 32]);
        let mut now = params.genesis().header.timestamp + 100;
        for _ in 0..4 {
            let mut next = block_template(&chain, &pool, miner, now);
            let mut follow = follow_up_template(&chain, &next.header, miner, now + 30);
            crate::testkit::mine_header(&mut next.header);
            let processed = chain
                .process_block(Arc::new(next), now + 30)
                .expect("a valid block");
            assert_eq!(processed.outcome, Outcome::Accepted);
            follow.header.prev_hash = chain.tip();
            assert_eq!(follow, block_template(&chain, &pool, miner, now + 30));
            // Faster than the target interval: the bits move.
            now += 30;
        }
        assert_ne!(chain.next_bits(), params.genesis_bits());
    }
}
