//! Any bytes a peer gossips as a transaction: decoding never panics, what decodes re-encodes to
//! the same bytes, and signature checking never panics.
#![no_main]

use gossipchain::chain::{ChainParams, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data);
        if let Transaction::Transfer(t) = tx {
            let _ = t.verify(&ChainParams::default().chain_id());
            let _ = t.total_cost();
        }
    }
});
