//! The block tree and fork choice. Every valid block is indexed compactly in memory
//! ([`index`]: header fields, height, cumulative work, parent link); bodies and undo records
//! live in the store and are read through a [`BlockSource`] when needed, only the recent ones
//! (and those not yet stored) staying in memory. The best chain is the one with the most
//! cumulative work (floor(2^256 / (target + 1)) a block), and on a tie the one seen first
//! stays. The ledger follows the best chain: a reorganisation undoes blocks down to the fork
//! point and applies the new branch, and if a block of that branch breaks a ledger rule it and
//! its descendants are dropped and the best remaining chain is restored. Blocks whose parent is
//! unknown wait in a bounded orphan pool.
//!
//! Here the types and the state with its queries; by job: [`process`] accepts blocks (fork
//! choice, reorganisation), [`bodies`] reads bodies and decides which stay in memory,
//! [`prune`] bounds side branches, [`restore`] rebuilds a chain from a store, [`serving`]
//! reads headers and blocks by hash for peers.

mod bodies;
mod index;
mod orphans;
mod process;
mod prune;
mod restore;
mod serving;
mod source;
#[cfg(test)]
mod tests;

pub use restore::Restore;
pub use source::BlockSource;

use super::block::BlockKey;
use super::checked::CheckedBlock;
use super::hash::{BlockHash, ChainId};
use super::ledger::{Ledger, Undo};
use super::params::ChainParams;
use super::retarget::{self, ParentInfo};
use super::target::{U256, Work};
use super::validate::{self, ValidationError};
use index::{BlockIndex, NONE, Slot};
use orphans::OrphanPool;
use source::Cached;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Bounds on what the tree keeps besides the best chain.
#[derive(Clone, Debug)]
pub struct TreeLimits {
    /// Most orphan blocks held.
    pub max_orphans: usize,
    /// Most bytes of orphan blocks held.
    pub max_orphan_bytes: usize,
    /// How many invalid block hashes are remembered, so a resent one is refused at once.
    pub max_remembered_invalid: usize,
    /// A side branch whose highest block is this many heights below the tip is pruned (from
    /// memory and, through [`ChainState::take_dropped`], from the store).
    pub prune_depth: u64,
    /// Most side-branch blocks kept, whatever peers send: beyond it the branches with the
    /// least work are pruned first.
    pub max_side_blocks: usize,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_orphans: 512,
            max_orphan_bytes: 32 << 20,
            max_remembered_invalid: 16_384,
            prune_depth: 2_016,
            max_side_blocks: 8_192,
        }
    }
}

/// What became of a submitted block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the tree or the orphan pool.
    AlreadyKnown,
    /// Parent unknown: held in the orphan pool until it arrives.
    Orphan {
        /// The block to fetch.
        missing_parent: BlockHash,
    },
    /// Valid and stored (on the best chain or a side branch).
    Accepted,
}

/// A change of the best chain.
#[derive(Debug, Clone)]
pub struct TipChange {
    /// The tip before.
    pub old_tip: BlockHash,
    /// The tip after.
    pub new_tip: BlockHash,
    /// Blocks that left the best chain, from the old tip down.
    pub disconnected: Vec<Arc<CheckedBlock>>,
    /// Blocks that joined the best chain, from the fork point up.
    pub connected: Vec<Arc<CheckedBlock>>,
}

impl TipChange {
    /// Appends a change that followed this one: the result goes from this change's old tip to
    /// `later`'s new tip. A block `later` disconnects that this change connected cancels out,
    /// so several changes (one sync page) make one net change for the mempool and the miner.
    pub fn merge(&mut self, later: TipChange) {
        for block in later.disconnected {
            push_or_cancel(&mut self.disconnected, &mut self.connected, block);
        }
        self.connected.extend(later.connected);
        self.new_tip = later.new_tip;
    }
}

/// Records `block` moving one way along the best chain (onto `moves`), unless it is the last
/// block of `opposite`, the move just made the other way, which it cancels.
fn push_or_cancel(
    moves: &mut Vec<Arc<CheckedBlock>>,
    opposite: &mut Vec<Arc<CheckedBlock>>,
    block: Arc<CheckedBlock>,
) {
    if opposite.last().is_some_and(|b| b.hash() == block.hash()) {
        opposite.pop();
    } else {
        moves.push(block);
    }
}

/// Everything one call changed.
#[derive(Debug)]
pub struct Processed {
    /// What became of the submitted block.
    pub outcome: Outcome,
    /// Blocks newly stored as valid, parents first: the submitted one and orphans it connected.
    pub accepted: Vec<Arc<CheckedBlock>>,
    /// Other blocks found invalid on the way (orphans, or side-branch blocks that failed the
    /// ledger rules during a reorganisation); a stored one must be deleted.
    pub rejected: Vec<(BlockHash, ValidationError)>,
    /// The net change of the best chain, if any.
    pub tip_change: Option<TipChange>,
}

/// What the tree keeps of a stored block besides its body: the header fields the rules of its
/// children need, and its cumulative work. A store keeps one per block, so a restart rebuilds
/// the tree without reading the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRecord {
    /// The block hash.
    pub hash: BlockHash,
    /// The parent's hash.
    pub prev: BlockHash,
    /// The height.
    pub height: u64,
    /// The header's timestamp, ms.
    pub timestamp: u64,
    /// The header's compact target.
    pub bits: u32,
    /// Cumulative work from genesis through this block.
    pub work: Work,
}

/// Bodies and undo records kept in memory at the tip even once stored: the blocks within this
/// many heights of it (what a GetBlocks near the tip, `chain 10` and a short reorganisation
/// read).
pub const RECENT_BLOCKS: u64 = 512;

/// Tip changes between two prunings of side branches.
const PRUNE_EVERY: u32 = 256;

/// The chain state: the block index, the best chain, the ledger and orphans. Pure: no I/O, time
/// is passed in; block bodies beyond the recent ones are read through a [`BlockSource`].
pub struct ChainState {
    /// The consensus parameters.
    params: ChainParams,
    /// The genesis hash.
    chain_id: ChainId,
    /// The genesis block, never read from a store (it is part of the parameters).
    genesis: Arc<CheckedBlock>,
    /// Every valid block, compactly.
    index: BlockIndex,
    /// The best chain: `active[h]` is the position of the block at height h.
    active: Vec<u32>,
    /// Balances and nonces at the tip of the best chain.
    ledger: Ledger,
    /// Bodies held in memory: all of them without a source; else the recent ones and those
    /// the store has not committed yet.
    bodies: HashMap<BlockHash, Cached<Arc<CheckedBlock>>>,
    /// Undo records held in memory, on the same terms (best-chain blocks only).
    undos: HashMap<BlockHash, Cached<Undo>>,
    /// Where the others are read from; `None`: everything stays in memory.
    source: Option<Arc<dyn BlockSource>>,
    /// The generation values made now belong to (see [`ChainState::next_generation`]).
    generation: u64,
    /// The last generation the store has committed.
    persisted: u64,
    /// Hashes known invalid, with why; bounded, oldest forgotten first.
    invalid: HashMap<BlockHash, ValidationError>,
    /// Insertion order of `invalid`.
    invalid_order: VecDeque<BlockHash>,
    /// Blocks waiting for their parent.
    orphans: OrphanPool,
    /// The bounds.
    limits: TreeLimits,
    /// Tip changes since side branches were last pruned.
    side_since_prune: u32,
    /// Valid blocks later dropped (their branch broke a ledger rule, or was pruned), for the
    /// caller to delete from its store; see [`ChainState::take_dropped`].
    dropped: Vec<BlockKey>,
}

impl ChainState {
    /// A chain holding only the genesis block of `params`.
    pub fn new(params: ChainParams) -> Self {
        Self::with_limits(params, TreeLimits::default())
    }

    /// Like [`ChainState::new`] with explicit bounds.
    pub fn with_limits(params: ChainParams, limits: TreeLimits) -> Self {
        Self::empty(params, limits, 1)
    }

    fn empty(params: ChainParams, limits: TreeLimits, capacity: usize) -> Self {
        let genesis = Arc::new(CheckedBlock::genesis(&params));
        let chain_id = genesis.hash();
        let slot = Slot::new(
            chain_id,
            params.genesis_target().work().saturating_u128(),
            genesis.header.timestamp,
            NONE,
            0,
            genesis.header.bits,
            0,
        );
        Self {
            chain_id,
            genesis,
            index: BlockIndex::new(slot, capacity),
            active: Vec::with_capacity(capacity),
            ledger: Ledger::default(),
            bodies: HashMap::new(),
            undos: HashMap::new(),
            source: None,
            generation: 1,
            persisted: 0,
            invalid: HashMap::new(),
            invalid_order: VecDeque::new(),
            orphans: OrphanPool::default(),
            limits,
            dropped: Vec::new(),
            side_since_prune: 0,
            params,
        }
        .with_active_genesis()
    }

    fn with_active_genesis(mut self) -> Self {
        self.active.push(0);
        self
    }

    /// The consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The chain id (genesis hash).
    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    fn tip_pos(&self) -> u32 {
        self.active[self.active.len() - 1]
    }

    /// The best chain's tip.
    pub fn tip(&self) -> BlockHash {
        self.index.get(self.tip_pos()).hash
    }

    /// The best chain's tip, with its height.
    pub fn tip_key(&self) -> BlockKey {
        BlockKey::new(self.height(), self.tip())
    }

    /// The best chain's height.
    pub fn height(&self) -> u64 {
        (self.active.len() - 1) as u64
    }

    /// Cumulative work of the best chain, saturated to a u128 (the form of the sync `Status`
    /// message; no real chain comes near 2^128 hashes).
    pub fn tip_work(&self) -> u128 {
        self.index.get(self.tip_pos()).work()
    }

    /// Cumulative work of the best chain.
    pub fn tip_chainwork(&self) -> Work {
        Work(U256::from(self.tip_work()))
    }

    fn parent_info_at(&self, pos: u32) -> ParentInfo {
        let slot = self.index.get(pos);
        ParentInfo {
            height: u64::from(slot.height),
            timestamp: slot.timestamp,
            anchor_time: if slot.height == 0 {
                0
            } else {
                self.index.get(slot.anchor).timestamp
            },
        }
    }

    /// What the target of a child of `hash` depends on, if `hash` is a valid block.
    pub fn parent_info(&self, hash: &BlockHash) -> Option<ParentInfo> {
        self.index.find(hash).map(|pos| self.parent_info_at(pos))
    }

    /// The compact target a child of the tip must carry.
    pub fn next_bits(&self) -> u32 {
        retarget::next_bits(&self.params, &self.parent_info_at(self.tip_pos()))
    }

    /// The ledger at the tip.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn record_at(&self, pos: u32) -> HeaderRecord {
        let slot = self.index.get(pos);
        HeaderRecord {
            hash: slot.hash,
            prev: if slot.parent == NONE {
                BlockHash::default()
            } else {
                self.index.get(slot.parent).hash
            },
            height: u64::from(slot.height),
            timestamp: slot.timestamp,
            bits: slot.bits,
            work: Work(U256::from(slot.work())),
        }
    }

    /// What the index holds of a valid block (no body is read).
    pub fn header(&self, hash: &BlockHash) -> Option<HeaderRecord> {
        self.index.find(hash).map(|pos| self.record_at(pos))
    }

    /// What the index holds of the best chain's block at `height`.
    pub fn header_at(&self, height: u64) -> Option<HeaderRecord> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        Some(self.record_at(pos))
    }

    /// Cumulative work through a valid block.
    pub fn work(&self, hash: &BlockHash) -> Option<Work> {
        self.index
            .find(hash)
            .map(|pos| Work(U256::from(self.index.get(pos).work())))
    }

    /// The best chain's hash at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        Some(self.index.get(pos).hash)
    }

    /// Whether the block is stored as valid (on any branch).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.index.find(hash).is_some()
    }

    fn is_active_pos(&self, pos: u32) -> bool {
        self.active.get(self.index.get(pos).height as usize) == Some(&pos)
    }

    /// Whether the block is on the best chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index
            .find(hash)
            .is_some_and(|pos| self.is_active_pos(pos))
    }

    /// Why a block was found invalid, if it is remembered.
    pub fn invalid_reason(&self, hash: &BlockHash) -> Option<&ValidationError> {
        self.invalid.get(hash)
    }

    /// The blocks accepted as valid earlier and dropped since the last call: their branch broke
    /// a ledger rule in a reorganisation, or fell far behind the best chain and was pruned.
    /// Reported whether or not the call that dropped them succeeded, so a store can delete
    /// every one.
    pub fn take_dropped(&mut self) -> Vec<BlockKey> {
        std::mem::take(&mut self.dropped)
    }

    /// Whether a block waits in the orphan pool.
    pub fn is_orphan(&self, hash: &BlockHash) -> bool {
        self.orphans.blocks.contains_key(hash)
    }

    /// Number of orphans held.
    pub fn orphan_count(&self) -> usize {
        self.orphans.blocks.len()
    }

    /// Number of valid blocks on all branches.
    pub fn block_count(&self) -> usize {
        self.index.live()
    }

    /// Number of block bodies held in memory (the rest are read from the source).
    pub fn bodies_in_memory(&self) -> usize {
        self.bodies.len()
    }

    fn median_time_past_at(&self, pos: u32) -> u64 {
        let span = self.params.median_time_span as usize;
        let mut times = Vec::with_capacity(span);
        let mut pos = pos;
        while pos != NONE && times.len() < span {
            let slot = self.index.get(pos);
            times.push(slot.timestamp);
            pos = slot.parent;
        }
        validate::median(&mut times)
    }

    /// The median past time of a child of the tip's child stamped `timestamp`: the median of
    /// that timestamp and up to `median_time_span - 1` of the tip's chain.
    pub fn median_time_past_after_tip(&self, timestamp: u64) -> u64 {
        let span = self.params.median_time_span as usize;
        let mut times = Vec::with_capacity(span);
        times.push(timestamp);
        let mut pos = self.tip_pos();
        while pos != NONE && times.len() < span {
            let slot = self.index.get(pos);
            times.push(slot.timestamp);
            pos = slot.parent;
        }
        validate::median(&mut times)
    }

    /// Median timestamp of `parent` and up to `median_time_span - 1` of its ancestors (0 if
    /// `parent` is unknown).
    pub fn median_time_past(&self, parent: &BlockHash) -> u64 {
        match self.index.find(parent) {
            Some(pos) => self.median_time_past_at(pos),
            None => validate::median(&mut []),
        }
    }
}
