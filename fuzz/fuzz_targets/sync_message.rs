//! Any bytes on a sync stream, read by the node's own SyncCodec (its size limits, its Malformed
//! path) as a request and as a response: no panic; a failed read is either the sender's fault
//! (Malformed) or an early end; a decoded request is answered from a small chain without
//! panicking, within the protocol's bounds (GetBlocks, GetHeaders and GetBodies: their caps,
//! and what they serve is what was asked).
#![no_main]

use gossipchain::chain::{Address, ChainState};
use gossipchain::net::behaviour::{Malformed, SyncCodec, SyncRequest};
use gossipchain::net::protocol::{self, Request};
use gossipchain::sync::serve::{blocks_after, bodies_of, headers_after};
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
    let mut codec = SyncCodec::new(testkit::params().max_block_bytes);
    match codec.decode_request(data) {
        Ok(SyncRequest::Valid(Request::GetBlocks { locator, max })) => {
            assert!(data.len() as u64 <= protocol::MAX_REQUEST_BYTES);
            if let Some(blocks) = blocks_after(chain(), &locator, max) {
                assert!(blocks.len() <= protocol::MAX_BLOCKS_PER_RESPONSE as usize);
            }
        }
        Ok(SyncRequest::Valid(Request::GetHeaders { locator, max })) => {
            assert!(data.len() as u64 <= protocol::MAX_REQUEST_BYTES);
            if let Some(headers) = headers_after(chain(), &locator, max) {
                assert!(headers.len() <= max.min(protocol::MAX_HEADERS_PER_RESPONSE) as usize);
                // Consecutive headers of the best chain, after a locator hash on it.
                for pair in headers.windows(2) {
                    assert_eq!(pair[1].prev_hash, pair[0].compute_hash());
                }
                if let Some(first) = headers.first() {
                    assert!(locator.contains(&first.prev_hash));
                }
            }
        }
        Ok(SyncRequest::Valid(Request::GetBodies { hashes })) => {
            assert!(data.len() as u64 <= protocol::MAX_REQUEST_BYTES);
            let bodies = bodies_of(chain(), &hashes);
            assert!(bodies.len() <= hashes.len().min(protocol::MAX_BODIES_PER_REQUEST));
            // The blocks asked, in the order asked.
            for (wire, hash) in bodies.iter().zip(&hashes) {
                let header = gossipchain::chain::Header::decode(&wire[..96]).unwrap();
                assert_eq!(header.compute_hash(), *hash);
            }
        }
        Ok(SyncRequest::Valid(_)) => assert!(data.len() as u64 <= protocol::MAX_REQUEST_BYTES),
        Ok(SyncRequest::Malformed(_)) => {}
        // Only an early end passes through: everything else is the sender's fault.
        Err(e) => assert!(!Malformed::is(&e), "a malformed request surfaced as an error: {e}"),
    }
    if let Err(e) = codec.decode_response(data) {
        assert!(
            Malformed::is(&e) || e.kind() == std::io::ErrorKind::UnexpectedEof,
            "a response read failed for another reason: {e}"
        );
    }
});
