//! Chains for the download benchmarks (`sync`, `ibd`): a chain of signed transfers, a store
//! preloaded with it, and the time to validate it locally.

use gossipchain::chain::{Address, Block, ChainParams, ChainState, CheckedBlock, Transfer};
use gossipchain::store::Store;
use gossipchain::testkit::{NOW, key, next_block};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The best chain of `chain` from height 1 to its tip.
pub fn best_chain(chain: &ChainState) -> Vec<Arc<Block>> {
    (1..=chain.height())
        .map(|h| chain.block_at(h).expect("on the best chain").clone())
        .collect()
}

/// A chain of `n` blocks: the first `keys` pay one key each, every later one carries
/// `per_block` transfers between those keys (distinct senders in a block) and pays its reward
/// to one of them in turn.
pub fn with_transfers(
    params: &ChainParams,
    n: usize,
    keys: usize,
    per_block: usize,
) -> Vec<Arc<Block>> {
    let signers: Vec<_> = (1..=keys as u64).map(key).collect();
    let addrs: Vec<_> = signers.iter().map(Address::of).collect();
    let mut nonces = vec![0u64; keys];
    let mut chain = ChainState::new(params.clone());
    let chain_id = chain.chain_id();
    for b in 0..n {
        let transfers: Vec<Transfer> = if b < keys {
            Vec::new()
        } else {
            (0..per_block)
                .map(|j| {
                    let from = (b * per_block + j) % keys;
                    let to = (from + 1 + 7 * j) % keys;
                    let t =
                        Transfer::sign(&signers[from], &chain_id, addrs[to], 1, 1, nonces[from]);
                    nonces[from] += 1;
                    t
                })
                .collect()
        };
        let block = next_block(&chain, &transfers, addrs[b % keys]);
        chain
            .process_block(Arc::new(block), NOW)
            .expect("a block built on the tip is valid");
    }
    best_chain(&chain)
}

/// Writes `blocks` (heights 1.. in order) into the store of `dir`, in transactions of 5 000
/// blocks.
pub fn preload(dir: &Path, params: &ChainParams, blocks: &[Arc<Block>]) {
    let store = Store::open(&dir.join("blocks.redb"), params).expect("store opens");
    for batch in blocks.chunks(5_000) {
        let rows: Vec<Arc<CheckedBlock>> = batch
            .iter()
            .map(|b| {
                let checked = CheckedBlock::check(b.clone(), b.compute_hash(), None, params)
                    .expect("a valid block");
                Arc::new(checked)
            })
            .collect();
        let tip = rows.last().expect("non-empty batch").key();
        store.commit(&rows, &[], tip).expect("store commit");
    }
}

/// Seconds to validate `blocks` in order on a fresh chain state, signatures verified.
pub fn validate_locally(params: &ChainParams, blocks: &[Arc<Block>]) -> f64 {
    let mut chain = ChainState::new(params.clone());
    let t0 = Instant::now();
    for b in blocks {
        chain
            .process_block(b.clone(), NOW)
            .expect("stored blocks are valid");
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(chain.height(), blocks.len() as u64);
    secs
}
