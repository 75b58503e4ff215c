//! Block templates: what this node proposes to mine on the best tip. Mining policy, not fork
//! choice, so it sits apart from the tree and the mempool and reads both.

use super::block::{BLOCK_VERSION, Block, HEADER_LEN, Header};
use super::mempool::Mempool;
use super::merkle;
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
