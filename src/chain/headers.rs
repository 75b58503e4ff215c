//! Header chains checked ahead of their blocks (headers-first download): a run of headers that
//! continues a valid block of the index, each one checked with the rules a header alone and its
//! ancestors' headers decide (§9 steps 1 and 4 of `proto/PROTOCOL.md`): linkage and height, the
//! version, a canonical target within the chain's limit, proof of work, the target its parent
//! requires, and its timestamp against the median time past and the local clock. The rules are
//! [`validate::check_header_hashed`] and [`validate::check_context`] themselves, the ones a block
//! passes, so a header this accepts fails as a block only for its body or the ledger.
//!
//! Memory: each header held costs one [`CheckedHeader`] (160 bytes: the 96-byte header, its
//! 32-byte hash and 32-byte cumulative work) in a `VecDeque`, plus an 8-byte entry and a
//! control byte in the hash table that finds it by hash; with the slack of both growing by
//! doubling, at most about 340 bytes and on average about 210 (so 100 000 headers hold about
//! 21 MB). [`HeaderChain::advance_fork`] frees the headers whose blocks joined the index.

use super::block::Header;
use super::hash::BlockHash;
use super::params::ChainParams;
use super::retarget::ParentInfo;
use super::target::{Target, Work};
use super::tree::ChainState;
use super::validate::{self, ValidationError};
use crate::mutants::Mutation;
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// A header that passed the checks, with what they computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedHeader {
    /// The header.
    pub header: Header,
    /// Its hash.
    pub hash: BlockHash,
    /// Cumulative work from genesis through it.
    pub work: Work,
}

/// Why [`HeaderChain::extend`] stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first header's parent is not the run's last block (nor the fork when empty), or a
    /// header's parent is not the one before it.
    #[error("header {hash} at height {height} does not connect to the chain before it")]
    DoesNotConnect {
        /// The header's height field.
        height: u64,
        /// Its hash.
        hash: BlockHash,
    },
    /// A header broke a rule (`error` says which; `error.is_permanent()` false: it is only too
    /// far in the future for now).
    #[error("header {hash} at height {height}: {error}")]
    Invalid {
        /// The header's height field.
        height: u64,
        /// Its hash.
        hash: BlockHash,
        /// The rule.
        error: ValidationError,
    },
}

/// A run of checked headers continuing a valid block of the index (the fork). See the module
/// documentation for what is checked and what it costs.
pub struct HeaderChain {
    /// The block the run starts after.
    fork_hash: BlockHash,
    /// Its height.
    fork_height: u64,
    /// Its timestamp.
    fork_timestamp: u64,
    /// Cumulative work through it.
    fork_work: Work,
    /// The timestamp of the branch's block at height 1 (the retarget anchor): read from the
    /// index when the fork is above genesis, else from the run's first header once it has one.
    anchor_time: Option<u64>,
    /// The timestamps of the last block of the run (the fork when empty) and its ancestors,
    /// oldest first, at most `median_time_span`: the median time past of the next header.
    recent_times: VecDeque<u64>,
    /// How many timestamps the median spans.
    span: usize,
    /// The run, oldest first: `headers[i]` is at height `fork_height + 1 + i`.
    headers: VecDeque<CheckedHeader>,
    /// Heights of the run's headers, found by hash.
    by_hash: hashbrown::HashTable<u64>,
    /// Keyed hashing, so that nobody can choose hashes that collide in the table.
    hasher: RandomState,
}

impl HeaderChain {
    /// A run starting after `fork`, a valid block of `chain`'s index; `None` if it is not one.
    pub fn new(chain: &ChainState, fork: BlockHash) -> Option<Self> {
        let record = chain.header(&fork)?;
        let info = chain.parent_info(&fork)?;
        let span = chain.params().median_time_span.max(1) as usize;
        // The fork's timestamp and its ancestors', as the median of a block's child reads them.
        let mut recent_times = VecDeque::with_capacity(span);
        let mut at = record;
        loop {
            recent_times.push_front(at.timestamp);
            if recent_times.len() == span || at.height == 0 {
                break;
            }
            match chain.header(&at.prev) {
                Some(parent) => at = parent,
                None => break,
            }
        }
        Some(Self {
            fork_hash: fork,
            fork_height: record.height,
            fork_timestamp: record.timestamp,
            fork_work: record.work,
            anchor_time: (record.height >= 1).then_some(info.anchor_time),
            recent_times,
            span,
            headers: VecDeque::new(),
            by_hash: hashbrown::HashTable::new(),
            hasher: RandomState::new(),
        })
    }

    /// Appends headers continuing the run, checking each: it links to the one before (the
    /// first to [`HeaderChain::last_hash`]), its height is its parent's + 1, the header rules
    /// ([`validate::check_header_hashed`]: version, canonical bits within the limit, proof of
    /// work), the bits its parent requires (`retarget::next_bits`), a timestamp after the median
    /// time past of the previous `median_time_span` blocks (the index's below the fork, the
    /// run's above it) and at most `now_ms + max_future_ms`. `params` must be the chain's.
    /// Stops at the first bad header: the ones before it stay appended and the error names it.
    /// Returns how many were appended.
    pub fn extend(
        &mut self,
        params: &ChainParams,
        headers: &[Header],
        now_ms: u64,
    ) -> Result<usize, HeaderError> {
        for header in headers {
            let hash = header.compute_hash();
            if header.prev_hash != self.last_hash()
                && !crate::mutants::active(Mutation::HeadersUnlinked)
            {
                return Err(HeaderError::DoesNotConnect {
                    height: header.height,
                    hash,
                });
            }
            let invalid = |error| HeaderError::Invalid {
                height: header.height,
                hash,
                error,
            };
            validate::check_header_hashed(header, &hash, params).map_err(invalid)?;
            let parent = self.last_parent_info();
            let mtp = validate::median(&mut self.recent_times.iter().copied().collect::<Vec<_>>());
            validate::check_context(header, &parent, mtp, now_ms, params).map_err(invalid)?;
            // check_header_hashed has parsed the bits.
            let own = Target::from_compact(header.bits)
                .map_err(|e| invalid(ValidationError::BadBits(e)))?
                .work();
            let work = self.work().saturating_add(own);
            self.push(CheckedHeader {
                header: *header,
                hash,
                work,
            });
        }
        Ok(headers.len())
    }

    /// What the target of the next header depends on.
    fn last_parent_info(&self) -> ParentInfo {
        let (height, timestamp) = match self.headers.back() {
            Some(last) => (last.header.height, last.header.timestamp),
            None => (self.fork_height, self.fork_timestamp),
        };
        ParentInfo {
            height,
            timestamp,
            // Unused for a parent at height 0; a parent at height 1 is its own anchor, and then
            // is either the fork (anchor read from the index) or the run's first header.
            anchor_time: if height == 0 {
                0
            } else {
                self.anchor_time.unwrap_or(timestamp)
            },
        }
    }

    fn push(&mut self, checked: CheckedHeader) {
        let height = checked.header.height;
        if height == 1 {
            self.anchor_time = Some(checked.header.timestamp);
        }
        if self.recent_times.len() == self.span {
            self.recent_times.pop_front();
        }
        self.recent_times.push_back(checked.header.timestamp);
        let key = self.hasher.hash_one(checked.hash);
        self.headers.push_back(checked);
        let (headers, hasher, base) = (&self.headers, &self.hasher, self.fork_height + 1);
        self.by_hash.insert_unique(key, height, |&h| {
            hasher.hash_one(headers[(h - base) as usize].hash)
        });
    }

    /// The block the run starts after.
    pub fn fork_hash(&self) -> BlockHash {
        self.fork_hash
    }

    /// The fork's height.
    pub fn fork_height(&self) -> u64 {
        self.fork_height
    }

    /// Number of headers in the run.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the run holds no header.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The hash of the run's last header (the fork when empty).
    pub fn last_hash(&self) -> BlockHash {
        self.headers.back().map_or(self.fork_hash, |h| h.hash)
    }

    /// The height of the run's last header (the fork's when empty).
    pub fn last_height(&self) -> u64 {
        self.fork_height + self.headers.len() as u64
    }

    /// Cumulative work through the last header (the fork's when empty).
    pub fn work(&self) -> Work {
        self.headers.back().map_or(self.fork_work, |h| h.work)
    }

    /// The run's header at `height`.
    pub fn get(&self, height: u64) -> Option<&CheckedHeader> {
        let i = height.checked_sub(self.fork_height + 1)?;
        self.headers.get(usize::try_from(i).ok()?)
    }

    /// The height of the run's header `hash`, if it holds it.
    pub fn contains(&self, hash: &BlockHash) -> Option<u64> {
        let base = self.fork_height + 1;
        self.by_hash
            .find(self.hasher.hash_one(hash), |&h| {
                self.headers[(h - base) as usize].hash == *hash
            })
            .copied()
    }

    /// The fork moves up to `height` (the blocks of the headers up to it are in the index now):
    /// those headers are dropped from memory. A height at or below the fork does nothing; one
    /// above the run stops at its last header.
    pub fn advance_fork(&mut self, height: u64) {
        let height = height.min(self.last_height());
        if height <= self.fork_height {
            return;
        }
        let drop = (height - self.fork_height) as usize;
        for _ in 0..drop {
            let Some(gone) = self.headers.front().copied() else {
                break;
            };
            let base = self.fork_height + 1;
            let headers = &self.headers;
            if let Ok(entry) = self
                .by_hash
                .find_entry(self.hasher.hash_one(gone.hash), |&h| {
                    headers[(h - base) as usize].hash == gone.hash
                })
            {
                entry.remove();
            }
            self.headers.pop_front();
            self.fork_hash = gone.hash;
            self.fork_height = gone.header.height;
            self.fork_timestamp = gone.header.timestamp;
            self.fork_work = gone.work;
        }
        if self.headers.capacity() > 2 * self.headers.len() + 64 {
            self.headers.shrink_to_fit();
            self.by_hash.shrink_to(0, |&h| {
                self.hasher
                    .hash_one(self.headers[(h - self.fork_height - 1) as usize].hash)
            });
        }
    }
}
