//! The signature cache: the txids of transfers whose signature this node has verified, so that a
//! transfer checked on entering the mempool is not checked again when it arrives inside a block
//! (Bitcoin Core's signature cache, by transaction).
//!
//! The key is the txid, the SHA-256 of the transfer's whole encoding, signature included
//! (`proto/PROTOCOL.md` 4.3): a cached txid means "this exact encoding verified under ZIP 215
//! for this chain", nothing more. A copy with other signature bytes has another txid and is
//! verified anew. A cache belongs to one chain (the chain id is in the signed bytes, not in the
//! txid), which is why the node shares one instance between its mempool and its block tree.
//!
//! It is bounded in bytes and forgets the oldest entries first. It is shared by the actor and
//! the threads that verify blocks and transfers off it, behind a `std` mutex: every call takes
//! the lock once for a whole batch of txids, and never holds it while verifying.

use super::hash::Txid;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Memory one entry costs: the txid in the hash set (32 bytes, one control byte, buckets at
/// most 7/8 full and sized to a power of two: under 76 bytes with the table allocated at its
/// full capacity up front, as [`SigCache::new`] does) and again in the eviction queue (32).
pub const ENTRY_BYTES: usize = 108;

/// The node's cache size: 8 MiB, about 77 000 txids: four full mempools of the default size
/// (20 000 transfers), or fifteen full blocks (4 999 transfers).
pub const DEFAULT_BYTES: usize = 8 << 20;

/// Txids whose transfer's signature verified, bounded in bytes, oldest forgotten first.
#[derive(Debug)]
pub struct SigCache {
    /// Most entries: the byte budget over [`ENTRY_BYTES`].
    capacity: usize,
    /// The set and its insertion order.
    inner: Mutex<Inner>,
    /// Signatures verified through [`SigCache::verify_missing`] (the misses): lets tests and
    /// metrics see what the cache saved.
    verified: AtomicU64,
    /// Signatures found in the cache and not verified again.
    hits: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<Txid>,
    order: VecDeque<Txid>,
}

impl Default for SigCache {
    fn default() -> Self {
        Self::new(DEFAULT_BYTES)
    }
}

impl SigCache {
    /// A cache of at most `max_bytes` (see [`ENTRY_BYTES`]). Its tables are allocated at their
    /// full size at once, so they never grow past the budget; the pages are touched only as
    /// entries arrive.
    pub fn new(max_bytes: usize) -> Self {
        let capacity = max_bytes / ENTRY_BYTES;
        Self {
            capacity,
            inner: Mutex::new(Inner {
                set: HashSet::with_capacity(capacity),
                order: VecDeque::with_capacity(capacity),
            }),
            verified: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The set stays consistent whatever panicked while holding the lock (each call changes
        // it with one insert or remove at a time): carry on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held by the entries, counted as [`ENTRY_BYTES`] each.
    pub fn bytes(&self) -> usize {
        self.len() * ENTRY_BYTES
    }

    /// Whether the transfer with this txid verified before.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.lock().set.contains(txid)
    }

    /// Records transfers whose signature verified, forgetting the oldest entries beyond the
    /// budget.
    pub fn insert_all<'a>(&self, txids: impl IntoIterator<Item = &'a Txid>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        for txid in txids {
            if inner.set.contains(txid) {
                continue;
            }
            if inner.order.len() >= self.capacity
                && let Some(old) = inner.order.pop_front()
            {
                inner.set.remove(&old);
            }
            inner.set.insert(*txid);
            inner.order.push_back(*txid);
        }
    }

    /// Records one transfer whose signature verified.
    pub fn insert(&self, txid: &Txid) {
        self.insert_all(std::iter::once(txid));
    }

    /// Which of `txids` are not in the cache (their indexes, in order), counting the others as
    /// hits: the ones a caller still has to verify.
    pub fn missing<'a>(&self, txids: impl IntoIterator<Item = &'a Txid>) -> Vec<usize> {
        let inner = self.lock();
        let mut hits = 0;
        let missing = txids
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| {
                if inner.set.contains(t) {
                    hits += 1;
                    None
                } else {
                    Some(i)
                }
            })
            .collect();
        drop(inner);
        self.hits.fetch_add(hits, Ordering::Relaxed);
        missing
    }

    /// Counts `n` signatures verified because the cache did not have them.
    pub fn count_verified(&self, n: usize) {
        self.verified.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Signatures verified by callers on a miss, since the cache was made.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Signatures found in the cache and not verified again, since the cache was made.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(i: u32) -> Txid {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_be_bytes());
        Txid(b)
    }

    #[test]
    fn holds_what_was_inserted_and_counts_hits() {
        let cache = SigCache::new(100 * ENTRY_BYTES);
        cache.insert_all(&[txid(1), txid(2)]);
        assert!(cache.contains(&txid(1)));
        assert!(!cache.contains(&txid(3)));
        assert_eq!(
            cache.missing(&[txid(1), txid(3), txid(2), txid(4)]),
            vec![1, 3]
        );
        assert_eq!(cache.hits(), 2);
        // Inserting again changes nothing.
        cache.insert(&txid(1));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_byte_bound_holds_and_the_oldest_go_first() {
        let budget = 1000 * ENTRY_BYTES + ENTRY_BYTES / 2;
        let cache = SigCache::new(budget);
        assert_eq!(cache.capacity(), 1000);
        for i in 0..5000 {
            cache.insert(&txid(i));
            assert!(cache.bytes() <= budget);
        }
        assert_eq!(cache.len(), 1000);
        assert!(!cache.contains(&txid(3999)));
        assert!((4000..5000).all(|i| cache.contains(&txid(i))));
        let empty = SigCache::new(ENTRY_BYTES - 1);
        empty.insert(&txid(1));
        assert!(empty.is_empty());
    }
}
