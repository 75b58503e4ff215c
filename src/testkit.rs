//! Helpers that build valid blocks and chains at a low difficulty, for tests, benchmarks and
//! fuzzing. They use only the public consensus API, so what they build is what a node accepts.

use crate::chain::block::{BLOCK_VERSION, Block, Header};
use crate::chain::pow::{Midstate, Target};
use crate::chain::retarget;
use crate::chain::{
    Address, BlockHash, ChainParams, ChainState, Coinbase, Transaction, Transfer, merkle,
};
use ed25519_zebra::SigningKey;

/// A deterministic signing key for `seed`.
pub fn key(seed: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8] = 0x5e;
    SigningKey::from_bytes(&bytes)
}

/// Parameters of a test chain: difficulty 8 bits (256 hashes a block on average).
pub fn params() -> ChainParams {
    ChainParams::with_bits(8)
}

/// Recomputes `tx_root` from the transactions, then searches a nonce that meets its target.
pub fn seal(block: &mut Block) {
    block.header.tx_root = merkle::tx_root(&block.compute_txids());
    mine_header(&mut block.header);
}

/// Searches a nonce from 0 that meets the header's target (single thread). A header whose bits
/// are not a valid compact target is left as it is: no nonce can meet it.
pub fn mine_header(header: &mut Header) {
    let Ok(target) = Target::from_compact(header.bits) else {
        return;
    };
    let mid = Midstate::new(header);
    header.nonce = mid
        .search(&target, 0, 1, u64::MAX)
        .expect("the whole nonce space holds a solution at test difficulty");
}

/// A sealed block on `parent` (which must be in `chain`) with `transfers`, paying the reward and
/// fees to `miner`, timestamped one second after the parent.
pub fn block_on(
    chain: &ChainState,
    parent: BlockHash,
    transfers: &[Transfer],
    miner: Address,
) -> Block {
    let p = chain.block(&parent).expect("parent is in the chain");
    let height = p.header.height + 1;
    let fees: u64 = transfers.iter().map(|t| t.fee).sum();
    let mut txs = vec![Transaction::Coinbase(Coinbase {
        height,
        to: miner,
        amount: chain.params().block_reward + fees,
    })];
    txs.extend(transfers.iter().copied().map(Transaction::Transfer));
    let mut block = Block {
        header: Header {
            version: BLOCK_VERSION,
            height,
            prev_hash: parent,
            tx_root: Default::default(),
            timestamp: p.header.timestamp + 1000,
            bits: retarget::next_bits(
                chain.params(),
                &chain.parent_info(&parent).expect("parent is in the chain"),
            ),
            nonce: 0,
        },
        txs,
    };
    seal(&mut block);
    block
}

/// A sealed block on the tip of `chain`.
pub fn next_block(chain: &ChainState, transfers: &[Transfer], miner: Address) -> Block {
    block_on(chain, chain.tip(), transfers, miner)
}

/// A clock far enough ahead of any test block's timestamp.
pub const NOW: u64 = u64::MAX / 2;

/// Extends `chain` by `n` empty blocks paying `miner`.
pub fn extend(chain: &mut ChainState, n: usize, miner: Address) {
    for _ in 0..n {
        let block = next_block(chain, &[], miner);
        chain
            .process_block(std::sync::Arc::new(block), NOW)
            .expect("a block built on the tip is valid");
    }
}

/// `block` as a compact block's bytes (salt 0) with every transfer sent in full: what a peer
/// that holds none of them receives, and what tests gossip. A block a compact block cannot
/// express (no coinbase first, a coinbase later) is laid out the same way, which decoding
/// refuses.
pub fn compact_wire(block: &Block) -> Vec<u8> {
    let mut out = block.header.encode().to_vec();
    out.extend_from_slice(&0u64.to_be_bytes());
    let Some((first, rest)) = block.txs.split_first() else {
        return out;
    };
    first.encode_to(&mut out);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rest.len() as u32).to_be_bytes());
    for (i, tx) in rest.iter().enumerate() {
        out.extend_from_slice(&(i as u32 + 1).to_be_bytes());
        tx.encode_to(&mut out);
    }
    out
}

/// Whether `block` has a compact form: a coinbase first and only there.
pub fn has_compact_form(block: &Block) -> bool {
    matches!(block.txs.first(), Some(Transaction::Coinbase(_)))
        && block.txs[1..]
            .iter()
            .all(|t| matches!(t, Transaction::Transfer(_)))
}
