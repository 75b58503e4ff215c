//! Block validation on mutations of a valid block: the input's first byte chooses whether the
//! mutated block is re-sealed (Merkle root recomputed and proof of work re-mined, so the deeper
//! rules are reached; the difficulty is then reset to the chain's); the rest is XORed over the valid block's bytes. Whatever comes out,
//! `process_block` never panics, and an accepted block keeps the ledger's supply equal to the
//! rewards minted.
#![no_main]

use gossipchain::chain::{Address, Block, ChainState, Transfer};
use gossipchain::testkit::{self, key};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// A chain of 3 blocks paying key(1), and a valid 4th block with two transfers.
fn base() -> &'static (Vec<Arc<Block>>, Vec<u8>) {
    static BASE: OnceLock<(Vec<Arc<Block>>, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut c = ChainState::new(testkit::params());
        testkit::extend(&mut c, 3, Address::of(&key(1)));
        let id = c.chain_id();
        let t1 = Transfer::sign(&key(1), &id, Address::of(&key(2)), 30, 2, 0);
        let t2 = Transfer::sign(&key(1), &id, Address::of(&key(3)), 5, 1, 1);
        let next = testkit::next_block(&c, &[t1, t2], Address::of(&key(4)));
        let blocks = (1..=3).map(|h| c.block_at(h).unwrap().clone()).collect();
        (blocks, next.encode())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, patch)) = data.split_first() else {
        return;
    };
    let (blocks, valid) = base();
    let mut bytes = valid.clone();
    for (i, b) in patch.iter().enumerate().take(bytes.len()) {
        bytes[i] ^= b;
    }
    if flags & 2 != 0 && patch.len() > bytes.len() {
        bytes.extend_from_slice(&patch[bytes.len()..]);
    }
    let p = testkit::params();
    let Ok(mut block) = Block::decode(&bytes, p.max_block_bytes as usize, p.max_block_txs) else {
        return;
    };
    if flags & 1 != 0 {
        // Re-mining needs the chain's difficulty (other bits are the unsealed path's rule).
        block.header.bits = p.genesis_bits();
        testkit::seal(&mut block);
    }
    let mut chain = ChainState::new(p.clone());
    for b in blocks {
        chain.load_trusted(b.clone()).expect("base chain is valid");
    }
    let now = blocks[2].header.timestamp + 10_000;
    if chain.process_block(Arc::new(block), now).is_ok() {
        assert_eq!(
            chain.ledger().total_supply(),
            p.block_reward * chain.height()
        );
    }
});
