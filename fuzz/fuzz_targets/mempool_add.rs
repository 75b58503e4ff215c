//! Any bytes gossiped as a transaction, admitted to a mempool over a funded ledger: no panic,
//! and the pool's invariants hold (each sender's pending spend within its balance).
#![no_main]

use gossipchain::chain::{Address, ChainState, Mempool, MempoolLimits, Transaction};
use gossipchain::testkit::{self, key};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn chain() -> &'static ChainState {
    static CHAIN: OnceLock<ChainState> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut c = ChainState::new(testkit::params());
        testkit::extend(&mut c, 2, Address::of(&key(1)));
        c
    })
}

fuzz_target!(|data: &[u8]| {
    let c = chain();
    let mut pool = Mempool::new(
        c.chain_id(),
        MempoolLimits {
            max_txs: 4,
            max_bytes: 4 * 153,
            max_nonce_gap: 3,
        },
    );
    for chunk in data.chunks(153) {
        if let Ok(Transaction::Transfer(t)) = Transaction::decode(chunk) {
            if pool.add(t, c.ledger()).is_ok() {
                assert!(pool.pending_spend(&t.from) <= c.ledger().account(&t.from).balance);
            }
        }
    }
    assert!(pool.len() <= 4);
    let picked = pool.select(c.ledger(), 10, 10_000, 50);
    assert!(picked.len() <= pool.len());
});
