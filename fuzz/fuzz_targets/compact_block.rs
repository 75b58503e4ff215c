//! Any bytes a peer sends as a compact block, rebuilt against a pool of transfers also taken
//! from the input: decoding and rebuilding never panic, what decodes re-encodes to the same
//! bytes, and no block comes out whose transactions do not give its header's Merkle root
//! (unless it was sent whole: then validation refuses it), and that the txids a rebuild hands
//! to validation are the block's and give the same verdict as hashing them anew.
//!
//! Input: a u16 (big-endian) message length, the message, then 153-byte transfers (tag
//! included): the first half the receiver's pool, the rest what the sender answers.
#![no_main]

use gossipchain::chain::compact::{CompactBlock, Rebuilt};
use gossipchain::chain::tx::TRANSFER_LEN;
use gossipchain::chain::{Block, ChainParams, Transaction, Transfer, Txid, merkle, validate};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fn root_holds(block: &Block, count: usize) {
    assert_eq!(block.txs.len(), count);
    assert_eq!(block.compute_tx_root(), block.header.tx_root);
}

fuzz_target!(|data: &[u8]| {
    let p = ChainParams::default();
    if data.len() < 2 {
        return;
    }
    let len = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (message, rest) = data[2..].split_at(len);
    let Ok(c) = CompactBlock::decode(message, p.max_block_bytes as usize, p.max_block_txs) else {
        return;
    };
    assert_eq!(c.encode(), message);
    assert_eq!(c.encoded_len(), message.len());
    let transfers: Vec<(Txid, Transfer)> = rest
        .chunks_exact(TRANSFER_LEN)
        .filter_map(|b| match Transaction::decode(b) {
            Ok(tx @ Transaction::Transfer(t)) => Some((tx.compute_txid(), t)),
            _ => None,
        })
        .collect();
    let (pool, answers) = transfers.split_at(transfers.len() / 2);
    let pool: HashMap<Txid, Transfer> = pool.iter().copied().collect();
    match c.rebuild(&pool) {
        Rebuilt::Full {
            block,
            txids,
            root_checked,
        } => {
            assert_eq!(txids, block.compute_txids());
            assert_eq!(
                validate::check_body_known(&block, &txids, root_checked, &p),
                validate::check_body(&block, &p).map(|_| ())
            );
            if c.short_ids.is_empty() {
                // A block sent entirely in full is validation's to check (and reject).
                assert!(!root_checked);
                assert_eq!(block.txs.len(), c.tx_count());
                if block.compute_tx_root() != block.header.tx_root {
                    assert!(validate::check_body(&block, &p).is_err());
                }
            } else {
                assert!(root_checked);
                root_holds(&block, c.tx_count());
            }
        }
        Rebuilt::Missing(partial) => {
            assert!(partial.missing_count() > 0);
            let answer: Vec<Transfer> = answers
                .iter()
                .map(|(_, t)| *t)
                .take(partial.missing_count())
                .collect();
            if let Ok(block) = partial.fill(&answer) {
                root_holds(&block, c.tx_count());
                assert_eq!(merkle::tx_root(&block.compute_txids()), block.header.tx_root);
            }
        }
        Rebuilt::Collision(_) => {}
    }
});
