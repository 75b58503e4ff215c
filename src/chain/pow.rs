//! Proof of work: a hash meets a target when, read as a big-endian number, it is at most the
//! target ([`super::target`] defines targets and work). The miner's inner loop hashes one
//! 64-byte SHA-256 block per nonce: the first 64 header bytes never change while mining, so
//! their compression (the midstate) is computed once per template.

use super::block::{HEADER_LEN, Header};
use super::hash::BlockHash;
pub use super::target::{Target, Work, words_meet};
use sha2::block_api::compress256;

/// Number of leading zero bits of a hash read as a big-endian number.
pub fn leading_zero_bits(hash: &BlockHash) -> u32 {
    let mut n = 0;
    for byte in hash.as_bytes() {
        if *byte == 0 {
            n += 8;
        } else {
            return n + byte.leading_zeros();
        }
    }
    n
}

/// Whether `hash` is at most `target`.
pub fn meets_target(hash: &BlockHash, target: &Target) -> bool {
    target.is_met_by(hash)
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A header prepared for nonce search: the state after its first 64 bytes, and the second
/// SHA-256 block (the last 32 header bytes plus padding for a 768-bit message).
#[derive(Clone)]
pub struct Midstate {
    /// SHA-256 state after compressing header bytes 0..64.
    state: [u32; 8],
    /// Header bytes 64..96, then 0x80, zeros, and the length 768 as a big-endian u64.
    tail: [u8; 64],
}

/// Offset of the nonce inside [`Midstate::tail`].
const NONCE_AT: usize = 88 - 64;

impl Midstate {
    /// Precomputes the first compression of `header` (whose nonce is ignored).
    pub fn new(header: &Header) -> Self {
        let bytes = header.encode();
        let mut state = SHA256_IV;
        let mut first = [0u8; 64];
        first.copy_from_slice(&bytes[..64]);
        compress256(&mut state, &[first]);
        let mut tail = [0u8; 64];
        tail[..32].copy_from_slice(&bytes[64..HEADER_LEN]);
        tail[32] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_LEN as u64) * 8).to_be_bytes());
        Self { state, tail }
    }

    /// The state words after hashing the header with `nonce`; word 0 holds the first 4 bytes.
    #[inline]
    fn words(&self, nonce: u64) -> [u32; 8] {
        let mut state = self.state;
        let mut tail = self.tail;
        tail[NONCE_AT..NONCE_AT + 8].copy_from_slice(&nonce.to_be_bytes());
        compress256(&mut state, &[tail]);
        state
    }

    /// The block hash the header would have with `nonce`.
    pub fn hash(&self, nonce: u64) -> BlockHash {
        let words = self.words(nonce);
        let mut out = [0u8; 32];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        BlockHash(out)
    }

    /// Tries `count` nonces from `start`, stepping by `step`; returns the first whose hash
    /// meets `target`. Nonces wrap around u64.
    pub fn search(&self, target: &Target, start: u64, step: u64, count: u64) -> Option<u64> {
        let target = target.words();
        let mut nonce = start;
        for _ in 0..count {
            if words_meet(&self.words(nonce), &target) {
                return Some(nonce);
            }
            nonce = nonce.wrapping_add(step);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::hash::TxRoot;

    fn header() -> Header {
        Header {
            version: 1,
            height: 9,
            prev_hash: BlockHash([0xab; 32]),
            tx_root: TxRoot([0xcd; 32]),
            timestamp: 1_767_225_600_000,
            bits: 0x1f3fffff,
            nonce: 0,
        }
    }

    #[test]
    fn midstate_hash_equals_plain_hash() {
        let mut h = header();
        let mid = Midstate::new(&h);
        for nonce in [0, 1, 255, u64::MAX, 0x0102_0304_0506_0708] {
            h.nonce = nonce;
            assert_eq!(mid.hash(nonce), h.compute_hash());
        }
    }

    #[test]
    fn search_finds_a_nonce_that_meets_the_target() {
        let mut h = header();
        let target = Target::from_compact(h.bits).expect("valid");
        let nonce = Midstate::new(&h)
            .search(&target, 0, 1, 1 << 20)
            .expect("2^20 tries");
        h.nonce = nonce;
        assert!(meets_target(&h.compute_hash(), &target));
        assert!(leading_zero_bits(&h.compute_hash()) >= 10);
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut b = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&BlockHash(b)), 0);
        b[0] = 0;
        b[1] = 0x10;
        assert_eq!(leading_zero_bits(&BlockHash(b)), 11);
        assert_eq!(leading_zero_bits(&BlockHash::ZERO), 256);
    }
}
