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
//! doubling, at most about 340 bytes; `cargo bench --bench headers` measures about 190 (100 000
//! headers held: 18 MB). [`HeaderChain::advance_fork`] frees the headers whose blocks joined the
//! index.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::params::Difficulty;
    use crate::chain::{Address, Block};
    use crate::testkit;
    use std::sync::{Arc, OnceLock};

    fn headers_of(chain: &ChainState, from: u64, to: u64) -> Vec<Header> {
        (from..=to)
            .map(|h| chain.block_at(h).expect("on the chain").header)
            .collect()
    }

    /// A fixed-difficulty chain of `n` blocks mined by `miner`.
    fn fixed_chain(n: usize, miner: u8) -> ChainState {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, n, Address([miner; 32]));
        chain
    }

    /// Retargeting parameters whose genesis target is near the easiest allowed (about 2^20
    /// hashes a block), with a short half-life so that bits move from block to block.
    fn asert_params() -> ChainParams {
        ChainParams {
            difficulty: Difficulty::Asert {
                block_time_ms: 4,
                half_life_ms: 40,
            },
            ..ChainParams::default()
        }
    }

    /// Milliseconds between consecutive blocks of [`asert_chain`]: mostly ahead of the 4 ms
    /// schedule (the target tightens), with gaps that let it ease back.
    const ASERT_GAPS: [u64; 10] = [1, 1, 2, 1, 9, 1, 1, 3, 1, 1];

    /// A retargeting chain whose blocks' bits differ, accepted block by block by the tree.
    fn asert_chain() -> &'static (ChainState, Vec<Block>) {
        static CHAIN: OnceLock<(ChainState, Vec<Block>)> = OnceLock::new();
        CHAIN.get_or_init(|| {
            let mut chain = ChainState::new(asert_params());
            let mut blocks = Vec::new();
            for gap in ASERT_GAPS {
                let parent = chain.block(&chain.tip()).expect("the tip");
                let mut block = testkit::next_block(&chain, &[], Address([1; 32]));
                block.header.timestamp = parent.header.timestamp + gap;
                testkit::seal(&mut block);
                chain
                    .process_block(Arc::new(block.clone()), testkit::NOW)
                    .expect("a valid block");
                blocks.push(block);
            }
            (chain, blocks)
        })
    }

    fn remined(mut header: Header, change: impl FnOnce(&mut Header)) -> Header {
        change(&mut header);
        testkit::mine_header(&mut header);
        header
    }

    /// Extends a fresh run from `fork` of `chain` with `headers` and returns it with the result.
    fn run(
        chain: &ChainState,
        fork: BlockHash,
        headers: &[Header],
    ) -> (HeaderChain, Result<usize, HeaderError>) {
        let mut run = HeaderChain::new(chain, fork).expect("the fork is in the index");
        let result = run.extend(chain.params(), headers, testkit::NOW);
        (run, result)
    }

    #[test]
    fn a_valid_run_passes_with_the_work_and_lookups_of_the_chain() {
        let full = fixed_chain(30, 1);
        let genesis_only = ChainState::new(testkit::params());
        let headers = headers_of(&full, 1, 30);
        let mut run = HeaderChain::new(&genesis_only, genesis_only.chain_id()).unwrap();
        assert!(run.is_empty());
        assert_eq!(run.last_hash(), full.chain_id());
        assert_eq!(run.work(), genesis_only.tip_chainwork());
        // In two pieces, as pages arrive.
        let params = genesis_only.params();
        assert_eq!(run.extend(params, &headers[..12], testkit::NOW), Ok(12));
        assert_eq!(run.extend(params, &headers[12..], testkit::NOW), Ok(18));
        assert_eq!(run.extend(params, &[], testkit::NOW), Ok(0));
        assert_eq!(run.len(), 30);
        assert_eq!(run.last_height(), 30);
        assert_eq!(run.last_hash(), full.tip());
        assert_eq!(run.work(), full.tip_chainwork());
        assert_eq!(run.fork_height(), 0);
        for h in 1..=30 {
            let c = run.get(h).unwrap();
            assert_eq!(c.hash, full.hash_at(h).unwrap());
            assert_eq!(c.header, headers[h as usize - 1]);
            assert_eq!(Some(c.work), full.work(&c.hash));
            assert_eq!(run.contains(&c.hash), Some(h));
        }
        assert!(run.get(0).is_none() && run.get(31).is_none());
        assert_eq!(run.contains(&full.chain_id()), None);
        assert_eq!(run.contains(&BlockHash([7; 32])), None);
        assert!(HeaderChain::new(&genesis_only, BlockHash([7; 32])).is_none());
    }

    /// Breaks header 5 (height 6) of a 10-header run from genesis with `change`, and checks
    /// that the run keeps the five before it and the error names it.
    fn broken_at_six(
        params_chain: &ChainState,
        headers: &[Header],
        broken: Header,
        now_ms: u64,
    ) -> (HeaderChain, HeaderError) {
        let mut headers = headers.to_vec();
        headers[5] = broken;
        let mut run = HeaderChain::new(params_chain, params_chain.chain_id()).unwrap();
        let error = run
            .extend(params_chain.params(), &headers, now_ms)
            .expect_err("header 6 is bad");
        assert_eq!(run.len(), 5, "the good prefix stays");
        assert_eq!(run.last_hash(), headers[4].compute_hash());
        let (HeaderError::DoesNotConnect { height, hash }
        | HeaderError::Invalid { height, hash, .. }) = &error;
        assert_eq!((*height, *hash), (broken.height, broken.compute_hash()));
        (run, error)
    }

    fn rule(error: &HeaderError) -> &ValidationError {
        match error {
            HeaderError::Invalid { error, .. } => error,
            other => panic!("not a rule: {other}"),
        }
    }

    #[test]
    fn each_broken_rule_is_caught_and_the_good_prefix_kept() {
        let full = fixed_chain(10, 1);
        let genesis_only = ChainState::new(testkit::params());
        let headers = headers_of(&full, 1, 10);
        let six = headers[5];
        let now = testkit::NOW;

        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            remined(six, |h| h.prev_hash = headers[3].compute_hash()),
            now,
        );
        assert!(matches!(e, HeaderError::DoesNotConnect { .. }), "{e}");

        let (_, e) = broken_at_six(&genesis_only, &headers, remined(six, |h| h.height = 7), now);
        assert_eq!(
            rule(&e),
            &ValidationError::BadHeight {
                expected: 6,
                got: 7
            }
        );

        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            remined(six, |h| h.version = 2),
            now,
        );
        assert_eq!(rule(&e), &ValidationError::BadVersion(2));

        let (_, e) = broken_at_six(&genesis_only, &headers, remined(six, |h| h.bits = 7), now);
        assert!(
            matches!(rule(&e), ValidationError::WrongBits { got: 7, .. }),
            "{e}"
        );

        // A nonce whose hash misses the target.
        let mut weak = six;
        while Target::from_compact(weak.bits)
            .unwrap()
            .is_met_by(&weak.compute_hash())
        {
            weak.nonce = weak.nonce.wrapping_add(1);
        }
        let (_, e) = broken_at_six(&genesis_only, &headers, weak, now);
        assert!(
            matches!(rule(&e), ValidationError::InsufficientWork { .. }),
            "{e}"
        );

        // At the median of the previous blocks (not after it): blocks are 1 s apart, so the
        // median of the 6 timestamps up to block 5 is block 3's.
        let median = headers[2].timestamp;
        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            remined(six, |h| h.timestamp = median),
            now,
        );
        assert_eq!(
            rule(&e),
            &ValidationError::TimestampTooOld {
                timestamp: median,
                median
            }
        );
        // Just after it passes that rule (and then the next header, 1 s after the original
        // sixth, no longer links).
        let (run, e) = broken_at_six_ok(&genesis_only, &headers, median + 1);
        assert_eq!(run.len(), 6);
        assert!(matches!(e, HeaderError::DoesNotConnect { height: 7, .. }));

        // Too far ahead of the clock: not permanent.
        let clock = six.timestamp - genesis_only.params().max_future_ms - 1;
        let (_, e) = broken_at_six(&genesis_only, &headers, six, clock);
        assert!(
            matches!(rule(&e), ValidationError::TimestampTooNew { .. }),
            "{e}"
        );
        assert!(!rule(&e).is_permanent());
    }

    /// Header 6 restamped at `timestamp` and re-mined, in the run of `headers`.
    fn broken_at_six_ok(
        chain: &ChainState,
        headers: &[Header],
        timestamp: u64,
    ) -> (HeaderChain, HeaderError) {
        let mut headers = headers.to_vec();
        headers[5] = remined(headers[5], |h| h.timestamp = timestamp);
        let (run, result) = run(chain, chain.chain_id(), &headers);
        (run, result.expect_err("header 7 does not link"))
    }

    #[test]
    fn a_run_may_fork_below_the_tip_and_its_median_mixes_index_and_run() {
        // Ours: 6 blocks shared with the peer's chain, then 5 of our own.
        let theirs = fixed_chain(14, 1);
        let mut ours = ChainState::new(testkit::params());
        for h in 1..=6 {
            ours.process_block(theirs.block_at(h).unwrap(), testkit::NOW)
                .unwrap();
        }
        testkit::extend(&mut ours, 5, Address([2; 32]));
        assert_eq!(ours.height(), 11);
        let fork = theirs.hash_at(6).unwrap();
        let (run, result) = run(&ours, fork, &headers_of(&theirs, 7, 14));
        assert_eq!(result, Ok(8));
        assert_eq!((run.fork_hash(), run.fork_height()), (fork, 6));
        assert_eq!(run.last_hash(), theirs.tip());
        assert_eq!(run.work(), theirs.tip_chainwork());
        assert!(run.work() > ours.tip_chainwork());
        // Header 7 at the median of blocks 1..6 of the index (block 3's timestamp): refused.
        let median = theirs.block_at(3).unwrap().header.timestamp;
        let early = remined(theirs.block_at(7).unwrap().header, |h| h.timestamp = median);
        let (run, result) = super::tests::run(&ours, fork, &[early]);
        assert!(run.is_empty());
        assert!(matches!(
            result.map_err(|e| rule(&e).clone()),
            Err(ValidationError::TimestampTooOld { .. })
        ));
        // Starting on a header the run would not link to.
        let (_, result) = super::tests::run(&ours, ours.tip(), &headers_of(&theirs, 7, 8));
        assert!(matches!(
            result,
            Err(HeaderError::DoesNotConnect { height: 7, .. })
        ));
    }

    #[test]
    fn advancing_the_fork_drops_the_headers_below_it_and_the_run_goes_on() {
        let full = fixed_chain(20, 1);
        let genesis_only = ChainState::new(testkit::params());
        let headers = headers_of(&full, 1, 20);
        let (mut run, result) = run(&genesis_only, genesis_only.chain_id(), &headers[..12]);
        assert_eq!(result, Ok(12));
        run.advance_fork(8);
        assert_eq!(
            (run.fork_height(), run.fork_hash()),
            (8, full.hash_at(8).unwrap())
        );
        assert_eq!(run.len(), 4);
        assert!(run.get(8).is_none());
        assert_eq!(run.get(9).unwrap().hash, full.hash_at(9).unwrap());
        assert_eq!(run.contains(&full.hash_at(5).unwrap()), None);
        assert_eq!(run.contains(&full.hash_at(11).unwrap()), Some(11));
        run.advance_fork(3);
        assert_eq!(run.fork_height(), 8);
        // The median still spans the headers dropped.
        assert_eq!(
            run.extend(genesis_only.params(), &headers[12..], testkit::NOW),
            Ok(8)
        );
        assert_eq!(run.work(), full.tip_chainwork());
        run.advance_fork(u64::MAX);
        assert!(run.is_empty());
        assert_eq!(run.last_hash(), full.tip());
        assert_eq!(run.work(), full.tip_chainwork());
        assert_eq!(run.last_height(), 20);
    }

    #[test]
    fn retargeting_runs_from_genesis_and_from_a_fork_take_the_right_anchor() {
        let (full, blocks) = asert_chain();
        let headers: Vec<Header> = blocks.iter().map(|b| b.header).collect();
        let distinct: std::collections::HashSet<u32> = headers.iter().map(|h| h.bits).collect();
        assert!(distinct.len() >= 3, "the bits move: {distinct:?}");
        // From genesis: the anchor is the run's own first header.
        let genesis_only = ChainState::new(asert_params());
        let (run, result) = run(&genesis_only, genesis_only.chain_id(), &headers);
        assert_eq!(result, Ok(headers.len()));
        assert_eq!(run.work(), full.tip_chainwork());
        // From block 4 of the index: the anchor is the index's block 1.
        let mut prefix = ChainState::new(asert_params());
        for b in &blocks[..4] {
            prefix
                .process_block(Arc::new(b.clone()), testkit::NOW)
                .unwrap();
        }
        let (run, result) = super::tests::run(&prefix, prefix.tip(), &headers[4..]);
        assert_eq!(result, Ok(headers.len() - 4));
        assert_eq!(run.last_hash(), full.tip());
        // Advanced past block 1, a run from genesis keeps its anchor.
        let (mut run, _) = super::tests::run(&genesis_only, genesis_only.chain_id(), &headers[..5]);
        run.advance_fork(4);
        assert_eq!(
            run.extend(genesis_only.params(), &headers[5..], testkit::NOW),
            Ok(headers.len() - 5)
        );
    }

    #[test]
    fn retargeting_rules_are_caught() {
        let (_, blocks) = asert_chain();
        let headers: Vec<Header> = blocks.iter().map(|b| b.header).collect();
        let genesis_only = ChainState::new(asert_params());
        let now = testkit::NOW;
        // Header 6 carrying another block's bits (mined to them).
        let other = headers
            .iter()
            .map(|h| h.bits)
            .find(|&b| b != headers[5].bits)
            .expect("the bits move");
        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            remined(headers[5], |h| h.bits = other),
            now,
        );
        assert_eq!(
            rule(&e),
            &ValidationError::WrongBits {
                expected: headers[5].bits,
                got: other
            }
        );
        // Not a canonical compact target (a negative mantissa); easier than the limit.
        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            Header {
                bits: 0x1e80_0000,
                ..headers[5]
            },
            now,
        );
        assert!(matches!(rule(&e), ValidationError::BadBits(_)), "{e}");
        let (_, e) = broken_at_six(
            &genesis_only,
            &headers,
            Header {
                bits: 0x2100_ffff,
                ..headers[5]
            },
            now,
        );
        assert_eq!(
            rule(&e),
            &ValidationError::TargetAboveLimit { bits: 0x2100_ffff }
        );
    }

    #[test]
    fn a_header_held_costs_what_the_module_says() {
        assert_eq!(std::mem::size_of::<CheckedHeader>(), 160);
    }
}
