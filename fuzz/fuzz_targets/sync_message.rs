//! Any bytes on a sync stream, decoded as libp2p's CBOR codec does: no panic, and a decoded
//! request is answered from a small chain without panicking, within the protocol's bounds.
#![no_main]

use gossipchain::chain::{Address, ChainState};
use gossipchain::net::protocol::{self, Request, Response};
use gossipchain::node::sync::blocks_after;
use gossipchain::testkit;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn chain() -> &'static ChainState {
    static CHAIN: OnceLock<ChainState> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut c = ChainState::new(testkit::params());
        testkit::extend(&mut c, 20, Address::of(&testkit::key(1)));
        c
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::GetBlocks { locator, max }) = cbor4ii::serde::from_slice::<Request>(data) {
        if let Some(blocks) = blocks_after(chain(), &locator, max) {
            assert!(blocks.len() <= protocol::MAX_BLOCKS_PER_RESPONSE as usize);
        }
    }
    let _ = cbor4ii::serde::from_slice::<Response>(data);
});
