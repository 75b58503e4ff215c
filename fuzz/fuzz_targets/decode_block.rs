//! Any bytes a peer sends as a block: decoding never panics, and what decodes re-encodes to the
//! same bytes (one encoding per block, so hashes cannot drift).
#![no_main]

use gossipchain::chain::{Block, ChainParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = ChainParams::default();
    if let Ok(block) = Block::decode(data, p.max_block_bytes as usize, p.max_block_txs) {
        assert_eq!(block.encode(), data);
        assert_eq!(block.encoded_len(), data.len());
    }
});
