//! The proof-of-work search on several threads. Each thread hashes its own slice of the nonce
//! space with the fastest [`lanes::Backend`] this CPU has (many nonces at once from the
//! header's midstate) and checks, every [`CHUNK`] nonces, whether another thread succeeded or
//! the caller cancelled (the tip changed), or asks it to pause ([`solve_pausing`]: the node
//! relays a block first): at 25-80 M hashes/s a chunk lasts well under a millisecond, so a
//! cancelled search stops, and a paused one gives its core up, within milliseconds.
//!
//! The lanes only pre-filter on the hash's first 32-bit word; every candidate is confirmed
//! with [`pow::meets_target`] on the full hash, so the rule stays in `chain::pow`.

pub mod lanes;

use crate::chain::block::Header;
use crate::chain::hash::BlockHash;
use crate::chain::pow::{self, Target};
use lanes::{Backend, Template};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Nonces tried between two looks at the stop flags.
pub const CHUNK: u64 = 1 << 14;

/// The largest first word (big-endian u32) a hash meeting `target` can start with, or `None`
/// if no hash can. Found by bisection on [`pow::meets_target`] itself over hashes
/// `w || 0..0`: the target is a threshold on the hash read as a big-endian number, so a hash
/// whose first word is above the bound is above the target. Thirty-two checks per template.
pub fn first_word_bound(target: &Target) -> Option<u32> {
    let meets = |w: u32| {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&w.to_be_bytes());
        pow::meets_target(&BlockHash(h), target)
    };
    if !meets(0) {
        return None;
    }
    let (mut lo, mut hi) = (0u32, u32::MAX);
    // Invariant: meets(lo), and every w > hi fails.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if meets(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Tries `count` nonces of `t` from `start` (wrapping) with `backend`; returns the first whose
/// hash meets `target` (`bound` is [`first_word_bound`] of `target`).
pub fn search(
    t: &Template,
    backend: Backend,
    target: &Target,
    bound: u32,
    start: u64,
    count: u64,
) -> Option<u64> {
    let (mut nonce, mut left) = (start, count);
    while left > 0 {
        let candidate = backend.scan(t, nonce, left, bound)?;
        if pow::meets_target(&BlockHash(t.hash(candidate)), target) {
            return Some(candidate);
        }
        left -= candidate.wrapping_sub(nonce) + 1;
        nonce = candidate.wrapping_add(1);
    }
    None
}

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
}

/// Searches nonces for `header` on `threads` threads (at least one) until one meets
/// `header.bits` or `cancel` becomes true, with the best backend of this CPU. Blocking: run
/// it off the async runtime.
pub fn solve(header: &Header, threads: usize, cancel: &AtomicBool) -> Mined {
    solve_with(header, threads, cancel, Backend::best())
}

/// [`solve`] that waits, between two chunks, while `pause` is set (the node relays a block
/// first). A cancel ends the wait.
pub fn solve_pausing(
    header: &Header,
    threads: usize,
    cancel: &AtomicBool,
    pause: &AtomicBool,
) -> Mined {
    solve_inner(header, threads, cancel, Some(pause), Backend::best())
}

/// [`solve`] with a chosen backend (one this CPU lacks runs as [`Backend::Portable`]).
pub fn solve_with(header: &Header, threads: usize, cancel: &AtomicBool, backend: Backend) -> Mined {
    solve_inner(header, threads, cancel, None, backend)
}

/// How long a paused search sleeps between two looks at the flags.
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_micros(200);

fn solve_inner(
    header: &Header,
    threads: usize,
    cancel: &AtomicBool,
    pause: Option<&AtomicBool>,
    backend: Backend,
) -> Mined {
    let threads = threads.max(1) as u64;
    let mid = Template::new(header);
    let target = Target::from_compact(header.bits).ok();
    let target = target.as_ref();
    let Some((target, bound)) = target.and_then(|t| Some((t, first_word_bound(t)?))) else {
        // Not a valid compact target, or no hash can meet it: search until cancelled, as for
        // any hard target.
        while !cancel.load(Ordering::Relaxed) {
            std::thread::park_timeout(std::time::Duration::from_millis(1));
        }
        return Mined::Cancelled;
    };
    let found = AtomicBool::new(false);
    let winner = AtomicU64::new(0);
    let hashes = AtomicU64::new(0);
    // Thread i starts at i * (2^64 / threads): the slices never meet before 2^64 / threads
    // nonces, far more than any difficulty this chain accepts needs on average.
    let stride = u64::MAX / threads;
    let slice = |i: u64| {
        let mut nonce = i.wrapping_mul(stride);
        let mut tried = 0;
        while !found.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
            if pause.is_some_and(|p| p.load(Ordering::Relaxed)) {
                // Asleep, not spinning: the core goes to the node's threads.
                std::thread::sleep(PAUSE_POLL);
                continue;
            }
            if let Some(n) = search(&mid, backend, target, bound, nonce, CHUNK) {
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
    };
    if threads == 1 {
        // On the caller's thread: at low difficulty a thread's start would cost as much as
        // the search.
        slice(0);
    } else {
        std::thread::scope(|s| {
            for i in 0..threads {
                s.spawn(move || slice(i));
            }
        });
    }
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
    fn a_paused_search_waits_and_a_cancel_ends_it() {
        let mut header = ChainParams::with_bits(4).genesis().header;
        header.height = 1;
        let pause = Arc::new(AtomicBool::new(true));
        let cancel = Arc::new(AtomicBool::new(false));
        let (p, c) = (pause.clone(), cancel.clone());
        let search = std::thread::spawn(move || solve_pausing(&header, 1, &c, &p));
        // While paused, even a 16-hash target is not searched; the cancel is still seen.
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(search.join().expect("no panic"), Mined::Cancelled);
        // Unpaused, the same search finds its block.
        pause.store(false, Ordering::Relaxed);
        let found = solve_pausing(&header, 1, &AtomicBool::new(false), &pause);
        assert!(matches!(found, Mined::Found { .. }));
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
