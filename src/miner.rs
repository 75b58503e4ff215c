//! The proof-of-work search on several threads. Each thread hashes its own slice of the nonce
//! space from the header's cached midstate and checks, every [`CHUNK`] nonces, whether another
//! thread succeeded or the caller cancelled (the tip changed): at 15-30 M hashes/s a chunk
//! lasts about a millisecond, so a cancelled search stops within milliseconds.

use crate::chain::block::Header;
use crate::chain::pow::{Midstate, Target};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Nonces tried between two looks at the stop flags.
pub const CHUNK: u64 = 1 << 14;

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mined {
    /// The header with a nonce that meets its bits, and how many hashes were tried in all.
    Found {
        /// The solved header.
        header: Header,
        /// Hashes computed by all threads.
        hashes: u64,
    },
    /// `cancel` was set first.
    Cancelled,
    /// The header's `bits` is not a valid compact target, so no nonce can meet it.
    BadTarget,
}

/// Searches nonces for `header` on `threads` threads (at least one) until one meets the target
/// `header.bits` encodes or `cancel` becomes true. Blocking: run it off the async runtime.
pub fn solve(header: &Header, threads: usize, cancel: &AtomicBool) -> Mined {
    let Ok(target) = Target::from_compact(header.bits) else {
        return Mined::BadTarget;
    };
    let target = &target;
    let threads = threads.max(1) as u64;
    let mid = Midstate::new(header);
    let found = AtomicBool::new(false);
    let winner = AtomicU64::new(0);
    let hashes = AtomicU64::new(0);
    // Thread i starts at i * (2^64 / threads): the slices never meet before 2^64 / threads
    // nonces, far more than any difficulty this chain accepts needs on average.
    let stride = u64::MAX / threads;
    std::thread::scope(|s| {
        for i in 0..threads {
            let (mid, found, winner, hashes) = (&mid, &found, &winner, &hashes);
            s.spawn(move || {
                let mut nonce = i.wrapping_mul(stride);
                let mut tried = 0;
                while !found.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                    if let Some(n) = mid.search(target, nonce, 1, CHUNK) {
                        tried += n.wrapping_sub(nonce) + 1;
                        if !found.swap(true, Ordering::AcqRel) {
                            winner.store(n, Ordering::Release);
                        }
                        break;
                    }
                    tried += CHUNK;
                    nonce = nonce.wrapping_add(CHUNK);
                }
                hashes.fetch_add(tried, Ordering::Relaxed);
            });
        }
    });
    if found.load(Ordering::Acquire) {
        let mut solved = *header;
        solved.nonce = winner.load(Ordering::Acquire);
        Mined::Found {
            header: solved,
            hashes: hashes.load(Ordering::Relaxed),
        }
    } else {
        Mined::Cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainParams;
    use crate::chain::pow::meets_target;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn finds_a_valid_nonce_on_several_threads() {
        let mut header = ChainParams::with_bits(12).genesis().header;
        header.height = 1;
        let Mined::Found { header: solved, .. } = solve(&header, 3, &AtomicBool::new(false)) else {
            panic!("not cancelled, must find");
        };
        let target = Target::from_compact(header.bits).expect("valid");
        assert!(meets_target(&solved.compute_hash(), &target));
    }

    #[test]
    fn cancel_stops_an_impossible_search() {
        let mut header = ChainParams::with_bits(90).genesis().header;
        header.height = 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let search = std::thread::spawn(move || solve(&header, 2, &c));
        cancel.store(true, Ordering::Relaxed);
        // join() is the synchronisation: the search returns only once every thread saw the flag.
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(search.join().expect("no panic"), Mined::Cancelled);
        assert!(Instant::now() < deadline);
    }
}
