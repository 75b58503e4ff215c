//! The block tree and fork choice. Every valid block is indexed compactly in memory
//! ([`index`]: header fields, height, cumulative work, parent link); bodies and undo records
//! live in the store and are read through a [`BlockSource`] when needed, only the recent ones
//! (and those not yet stored) staying in memory. The best chain is the one with the most
//! cumulative work (floor(2^256 / (target + 1)) a block), and on a tie the one seen first
//! stays. The ledger follows the best chain: a reorganisation undoes blocks down to the fork
//! point and applies the new branch, and if a block of that branch breaks a ledger rule it and
//! its descendants are dropped and the best remaining chain is restored. Blocks whose parent is
//! unknown wait in a bounded orphan pool.

mod index;
mod orphans;
mod source;
#[cfg(test)]
mod tests;

pub use source::BlockSource;

use super::block::{Block, BlockKey};
use super::checked::CheckedBlock;
use super::hash::{BlockHash, ChainId};
use super::ledger::{Ledger, Undo};
use super::params::ChainParams;
use super::retarget::{self, ParentInfo};
use super::target::{Target, U256, Work};
use super::validate::{self, ValidationError};
use index::{BlockIndex, NONE, Slot};
use orphans::OrphanPool;
use source::Cached;
use std::cmp::Reverse;
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
            if self
                .connected
                .last()
                .is_some_and(|b| b.hash() == block.hash())
            {
                self.connected.pop();
            } else {
                self.disconnected.push(block);
            }
        }
        self.connected.extend(later.connected);
        self.new_tip = later.new_tip;
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

/// Whether `error` condemns the block that `block`'s hash names. The hash commits to the body
/// only through `tx_root`: a body error in a body that does not match the header's root says
/// nothing about the real block (anyone can relay a valid header with altered transactions),
/// so remembering that hash as invalid would make the node refuse the real block and every
/// block built on it.
fn condemns_hash(block: &Block, error: &ValidationError) -> bool {
    match error {
        ValidationError::TooManyTransactions { .. }
        | ValidationError::BlockTooLarge { .. }
        | ValidationError::MissingCoinbase
        | ValidationError::CoinbaseHeight { .. }
        | ValidationError::ExtraCoinbase { .. }
        | ValidationError::DuplicateTxid(_)
        | ValidationError::TxRootMismatch { .. } => block.compute_tx_root() == block.header.tx_root,
        _ => true,
    }
}

/// A chain being rebuilt from a store's records (see [`ChainState::restore`]). Nothing is
/// validated again: the blocks were validated before they were stored.
pub struct Restore {
    chain: ChainState,
}

impl Restore {
    /// Adds a stored block's record; its parent must have been added (or be genesis).
    pub fn push(&mut self, record: &HeaderRecord) -> Result<(), String> {
        let chain = &mut self.chain;
        let hash = record.hash;
        let height = u32::try_from(record.height)
            .ok()
            .filter(|h| *h < u32::MAX)
            .ok_or_else(|| format!("stored block {hash} has an impossible height"))?;
        if chain.index.find(&hash).is_some() {
            return Ok(());
        }
        let parent = chain
            .index
            .find(&record.prev)
            .ok_or_else(|| format!("stored block {hash} has no stored parent"))?;
        let p = *chain.index.get(parent);
        if p.height + 1 != height {
            return Err(format!("stored block {hash} has the wrong height"));
        }
        let anchor = if height == 1 {
            chain.index.len()
        } else {
            p.anchor
        };
        chain.index.push(Slot::new(
            hash,
            record.work.saturating_u128(),
            record.timestamp,
            parent,
            height,
            record.bits,
            anchor,
        ));
        Ok(())
    }

    /// The chain with `tip` as its best tip and `ledger` its ledger; bodies and undo records
    /// are read from `source` when needed. Fails if the tip was not added.
    pub fn finish(
        self,
        tip: BlockHash,
        ledger: Ledger,
        source: Arc<dyn BlockSource>,
    ) -> Result<ChainState, String> {
        let mut chain = self.chain;
        chain.source = Some(source);
        let tip_pos = chain
            .index
            .find(&tip)
            .ok_or_else(|| format!("the recorded tip {tip} is not stored"))?;
        let mut active = Vec::with_capacity(chain.index.len() as usize + 1024);
        active.resize(chain.index.get(tip_pos).height as usize + 1, NONE);
        let mut pos = tip_pos;
        while pos != NONE {
            let slot = chain.index.get(pos);
            active[slot.height as usize] = pos;
            pos = slot.parent;
        }
        chain.active = active;
        chain.ledger = ledger;
        Ok(chain)
    }
}

/// What a call has changed so far; turned into [`Processed`] at the end.
struct Changes {
    accepted: Vec<Arc<CheckedBlock>>,
    rejected: Vec<(BlockHash, ValidationError)>,
    disconnected: Vec<Arc<CheckedBlock>>,
    connected: Vec<Arc<CheckedBlock>>,
}

impl Changes {
    /// Records a block leaving the best chain; one connected earlier in this call cancels out.
    fn disconnect(&mut self, block: Arc<CheckedBlock>) {
        if self
            .connected
            .last()
            .is_some_and(|b| b.hash() == block.hash())
        {
            self.connected.pop();
        } else {
            self.disconnected.push(block);
        }
    }

    /// Records a block joining the best chain; one disconnected earlier in this call cancels.
    fn connect(&mut self, block: Arc<CheckedBlock>) {
        if self
            .disconnected
            .last()
            .is_some_and(|b| b.hash() == block.hash())
        {
            self.disconnected.pop();
        } else {
            self.connected.push(block);
        }
    }
}

/// Why a reorganisation stopped.
enum ReorgError {
    /// A block of the new branch broke a ledger rule.
    Invalid(BlockHash, ValidationError),
    /// A body or undo record could not be read; nothing was changed.
    Unavailable(String),
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

    /// Starts rebuilding a chain from what a store kept, with room for `capacity` blocks:
    /// [`Restore::push`] each block's record, parents first, then [`Restore::finish`].
    pub fn restore(params: ChainParams, limits: TreeLimits, capacity: usize) -> Restore {
        // Some room for growth too, so a long chain is not copied at the next block.
        let room = capacity + capacity / 16 + 1024;
        Restore {
            chain: Self::empty(params, limits, room),
        }
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

    /// A valid block by hash, with its hash, txids and wire bytes: from memory, or read from
    /// the source (a read error is logged and gives `None`).
    pub fn checked(&self, hash: &BlockHash) -> Option<Arc<CheckedBlock>> {
        let pos = self.index.find(hash)?;
        self.body_at(pos).ok()
    }

    fn body_at(&self, pos: u32) -> Result<Arc<CheckedBlock>, String> {
        if pos == 0 {
            return Ok(self.genesis.clone());
        }
        let slot = self.index.get(pos);
        let hash = slot.hash;
        if let Some(c) = self.bodies.get(&hash) {
            return Ok(c.value.clone());
        }
        let read = match &self.source {
            Some(source) => source.block(&BlockKey::new(u64::from(slot.height), hash)),
            None => Err("no store holds it".into()),
        };
        match read {
            Ok(Some(block)) => Ok(block),
            Ok(None) => Err(format!("block {hash} is not in the store")),
            Err(e) => Err(e),
        }
        .inspect_err(|e| tracing::error!("cannot read block {hash}: {e}"))
    }

    /// A valid block by hash.
    pub fn block(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        self.checked(hash).map(|c| c.block().clone())
    }

    /// The best chain's block at `height`, with its hash, txids and wire bytes.
    pub fn checked_at(&self, height: u64) -> Option<Arc<CheckedBlock>> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        self.body_at(pos).ok()
    }

    /// The best chain's block at `height`.
    pub fn block_at(&self, height: u64) -> Option<Arc<Block>> {
        self.checked_at(height).map(|c| c.block().clone())
    }

    /// The consensus encoding of the best chain's block at `height`, read without decoding it.
    pub fn wire_at(&self, height: u64) -> Option<Vec<u8>> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        let hash = self.index.get(pos).hash;
        if pos == 0 {
            return Some(self.genesis.wire().to_vec());
        }
        if let Some(c) = self.bodies.get(&hash) {
            return Some(c.value.wire().to_vec());
        }
        match self.source.as_ref()?.wire(&BlockKey::new(height, hash)) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::error!("cannot read block {hash}: {e}");
                None
            }
        }
    }

    /// The consensus encodings of the best chain's blocks from height `start` on: at most
    /// `max` of them, and no more than `budget` bytes in all (the first one whatever its
    /// size). Those not in memory are read from the source in runs, each in one read and in
    /// height order, so a page costs a few sequential reads rather than one lookup a block.
    pub fn wires_from(&self, start: u64, max: u64, budget: usize) -> Vec<Vec<u8>> {
        let end = start.saturating_add(max).min(self.active.len() as u64);
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut used = 0usize;
        let mut height = start;
        while height < end {
            let pos = self.active[height as usize];
            let slot = self.index.get(pos);
            let in_memory = if pos == 0 {
                Some(self.genesis.wire())
            } else {
                self.bodies.get(&slot.hash).map(|c| c.value.wire())
            };
            if let Some(wire) = in_memory {
                if !out.is_empty() && used + wire.len() > budget {
                    break;
                }
                used += wire.len();
                out.push(wire.to_vec());
                height += 1;
                continue;
            }
            // A run of heights whose bodies are only in the source.
            let mut run = Vec::new();
            while height < end {
                let slot = self.index.get(self.active[height as usize]);
                if self.bodies.contains_key(&slot.hash) {
                    break;
                }
                run.push(BlockKey::new(height, slot.hash));
                height += 1;
            }
            let Some(source) = &self.source else {
                break;
            };
            let wanted = run.len();
            // Keeps the first block of the page whatever its size, as above.
            let room = if out.is_empty() {
                budget
            } else {
                budget.saturating_sub(used)
            };
            let read = match source.wires(&run, room) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!("cannot read blocks from height {}: {e}", run[0].height);
                    break;
                }
            };
            if !out.is_empty() && read.first().is_some_and(|w| used + w.len() > budget) {
                break;
            }
            let complete = read.len() == wanted;
            used += read.iter().map(Vec::len).sum::<usize>();
            out.extend(read);
            if !complete {
                break;
            }
        }
        out
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

    /// Median timestamp of `parent` and up to `median_time_span - 1` of its ancestors (0 if
    /// `parent` is unknown).
    pub fn median_time_past(&self, parent: &BlockHash) -> u64 {
        match self.index.find(parent) {
            Some(pos) => self.median_time_past_at(pos),
            None => validate::median(&mut []),
        }
    }

    /// The generation now made values belong to; the caller (the node) hands the store what
    /// changed, then calls this to start the next one. Once the store reports a generation
    /// committed ([`ChainState::persisted`]), bodies and undo records of that generation may
    /// leave memory.
    pub fn next_generation(&mut self) -> u64 {
        let g = self.generation;
        self.generation += 1;
        g
    }

    /// The store has committed every generation up to `generation`: drop from memory what it
    /// holds, except the recent blocks.
    pub fn persisted(&mut self, generation: u64) {
        if generation <= self.persisted {
            return;
        }
        self.persisted = generation;
        self.evict();
    }

    /// Drops stored bodies and undo records that are not recent.
    fn evict(&mut self) {
        if self.source.is_none() {
            return;
        }
        let keep_from = self.height().saturating_sub(RECENT_BLOCKS);
        let persisted = self.persisted;
        let old = |c: &u64, h: &u64| *c <= persisted && *h < keep_from;
        self.bodies.retain(|_, c| !old(&c.generation, &c.height));
        self.undos.retain(|_, c| !old(&c.generation, &c.height));
    }

    /// Keeps a body in memory (until stored and old).
    fn cache_body(&mut self, block: Arc<CheckedBlock>) {
        let generation = self.generation;
        let height = block.height();
        self.bodies.insert(
            block.hash(),
            Cached {
                value: block,
                generation,
                height,
            },
        );
    }

    /// The undo record of a best-chain block: from memory or the source.
    fn undo_at(&self, pos: u32) -> Result<Undo, String> {
        let slot = self.index.get(pos);
        if let Some(c) = self.undos.get(&slot.hash) {
            return Ok(c.value.clone());
        }
        match &self.source {
            Some(source) => source
                .undo(&slot.hash)?
                .ok_or_else(|| format!("the undo record of block {} is not stored", slot.hash)),
            None => Err(format!("no undo record of block {}", slot.hash)),
        }
    }

    /// Validates and stores a block received from anyone. `now_ms` is the local clock.
    /// `Err` means the submitted block itself is invalid.
    pub fn process_block(
        &mut self,
        block: Arc<Block>,
        now_ms: u64,
    ) -> Result<Processed, ValidationError> {
        self.submit(block, None, now_ms, true)
    }

    /// [`ChainState::process_block`] for a block that arrived as `wire`, its encoding: the
    /// bytes are kept, to store and serve as they are.
    pub fn process_wire(
        &mut self,
        block: Block,
        wire: Vec<u8>,
        now_ms: u64,
    ) -> Result<Processed, ValidationError> {
        self.submit(Arc::new(block), Some(wire), now_ms, true)
    }

    /// Re-inserts a block this node validated before: signatures are not verified again and
    /// the clock is not consulted; every other rule still runs.
    pub fn load_trusted(&mut self, block: Arc<Block>) -> Result<Processed, ValidationError> {
        self.submit(block, None, self.trusted_clock(), false)
    }

    /// A clock under which no stored block is too new.
    fn trusted_clock(&self) -> u64 {
        u64::MAX - self.params.max_future_ms
    }

    /// What the tree already knows of a block hash: `Some(Ok(AlreadyKnown))` if it is stored or
    /// an orphan, `Some(Err(why))` if it was found invalid, `None` if it is new. Lets a caller
    /// skip a block's checks before running them.
    pub fn known(&self, hash: &BlockHash) -> Option<Result<Outcome, ValidationError>> {
        if self.contains(hash) || self.orphans.blocks.contains_key(hash) {
            return Some(Ok(Outcome::AlreadyKnown));
        }
        self.invalid.get(hash).map(|e| Err(e.clone()))
    }

    /// Remembers that `block` (whose hash is `hash`) broke a rule checked without the tree
    /// (see [`CheckedBlock::check`]), if the error condemns the hash: a resent copy is then
    /// refused at once.
    pub fn note_invalid(&mut self, block: &Block, hash: BlockHash, error: &ValidationError) {
        if condemns_hash(block, error) {
            self.remember_invalid(hash, error);
        }
    }

    fn submit(
        &mut self,
        block: Arc<Block>,
        wire: Option<Vec<u8>>,
        now_ms: u64,
        verify_signatures: bool,
    ) -> Result<Processed, ValidationError> {
        let hash = block.compute_hash();
        if let Some(known) = self.known(&hash) {
            return known.map(|outcome| Processed {
                outcome,
                accepted: Vec::new(),
                rejected: Vec::new(),
                tip_change: None,
            });
        }
        let checked = match CheckedBlock::check(block.clone(), hash, wire, &self.params) {
            Ok(c) => c,
            Err(e) => {
                self.note_invalid(&block, hash, &e);
                return Err(e);
            }
        };
        self.process_checked(Arc::new(checked), now_ms, verify_signatures)
    }

    /// Validates a checked block against the tree (parent, context, signatures unless
    /// `verify_signatures` is false or they were verified already, then the ledger when it joins
    /// the best chain) and stores it.
    pub fn process_checked(
        &mut self,
        block: Arc<CheckedBlock>,
        now_ms: u64,
        verify_signatures: bool,
    ) -> Result<Processed, ValidationError> {
        let old_tip = self.tip();
        let mut changes = Changes {
            accepted: Vec::new(),
            rejected: Vec::new(),
            disconnected: Vec::new(),
            connected: Vec::new(),
        };
        let hash = block.hash();
        let outcome = self.accept(block, now_ms, verify_signatures, &mut changes)?;
        if outcome == Outcome::Accepted {
            let mut parents = vec![hash];
            while let Some(parent) = parents.pop() {
                for child in self.orphans.take_children(&parent) {
                    let child_hash = child.hash();
                    match self.accept(child, now_ms, verify_signatures, &mut changes) {
                        Ok(Outcome::Accepted) => parents.push(child_hash),
                        Ok(_) => {}
                        Err(e) => changes.rejected.push((child_hash, e)),
                    }
                }
            }
        }
        let new_tip = self.tip();
        if new_tip != old_tip {
            self.after_tip_change();
        }
        let tip_change = (new_tip != old_tip).then(|| TipChange {
            old_tip,
            new_tip,
            disconnected: std::mem::take(&mut changes.disconnected),
            connected: std::mem::take(&mut changes.connected),
        });
        Ok(Processed {
            outcome,
            accepted: changes.accepted,
            rejected: changes.rejected,
            tip_change,
        })
    }

    fn remember_invalid(&mut self, hash: BlockHash, error: &ValidationError) {
        if !error.is_permanent() || self.invalid.contains_key(&hash) {
            return;
        }
        if self.invalid_order.len() >= self.limits.max_remembered_invalid
            && let Some(old) = self.invalid_order.pop_front()
        {
            self.invalid.remove(&old);
        }
        self.invalid.insert(hash, error.clone());
        self.invalid_order.push_back(hash);
    }

    /// Validates one checked block and stores it if valid; switches the best chain if it now
    /// has the most work.
    fn accept(
        &mut self,
        block: Arc<CheckedBlock>,
        now_ms: u64,
        verify_signatures: bool,
        changes: &mut Changes,
    ) -> Result<Outcome, ValidationError> {
        let hash = block.hash();
        if let Some(known) = self.known(&hash) {
            return known;
        }
        let (parent, work) = match self.check_block(&block, now_ms, verify_signatures) {
            Ok(Some(checked)) => checked,
            Ok(None) => {
                let missing_parent = block.header.prev_hash;
                self.orphans.insert(block, &self.limits);
                return Ok(Outcome::Orphan { missing_parent });
            }
            Err(e) => {
                if condemns_hash(&block, &e) {
                    self.remember_invalid(hash, &e);
                }
                return Err(e);
            }
        };
        let p = *self.index.get(parent);
        let anchor = if p.height == 0 {
            self.index.len()
        } else {
            p.anchor
        };
        let pos = self.index.push(Slot::new(
            hash,
            work,
            block.header.timestamp,
            parent,
            p.height + 1,
            block.header.bits,
            anchor,
        ));
        self.cache_body(block.clone());
        changes.accepted.push(block);
        if work > self.tip_work() {
            self.activate_best(pos, changes);
        }
        if self.contains(&hash) {
            Ok(Outcome::Accepted)
        } else {
            // The block (or an ancestor on its branch) broke a ledger rule while connecting.
            let pos = changes.rejected.iter().position(|(h, _)| *h == hash);
            Err(pos
                .map(|i| changes.rejected.remove(i).1)
                .unwrap_or(ValidationError::InvalidAncestor(hash)))
        }
    }

    /// The rules that need the tree, but not the ledger's. `Ok(None)`: the parent is unknown
    /// (the block is an orphan, having passed the checks that need no parent); otherwise the
    /// parent's position and the block's cumulative work.
    fn check_block(
        &self,
        block: &CheckedBlock,
        now_ms: u64,
        verify_signatures: bool,
    ) -> Result<Option<(u32, u128)>, ValidationError> {
        let own_work = Target::from_compact(block.header.bits)
            .map_err(ValidationError::BadBits)?
            .work()
            .saturating_u128();
        let prev = block.header.prev_hash;
        if self.invalid.contains_key(&prev) {
            return Err(ValidationError::InvalidAncestor(prev));
        }
        let Some(parent) = self.index.find(&prev) else {
            return Ok(None);
        };
        let mtp = self.median_time_past_at(parent);
        let info = self.parent_info_at(parent);
        validate::check_context(&block.header, &info, mtp, now_ms, &self.params)?;
        if verify_signatures && !block.signatures_verified() {
            validate::check_signatures(block, block.txids(), &self.chain_id)?;
        }
        Ok(Some((
            parent,
            self.index.get(parent).work().saturating_add(own_work),
        )))
    }

    /// The valid block with the most work, the earliest seen among equals.
    fn best_entry(&self) -> u32 {
        self.index
            .live_from(0)
            .max_by_key(|&pos| (self.index.get(pos).work(), Reverse(pos)))
            .unwrap_or(0)
    }

    /// Makes `target` the tip; if a block on the way breaks a ledger rule, drops it with its
    /// descendants and settles on the best chain that remains.
    fn activate_best(&mut self, target: u32, changes: &mut Changes) {
        let mut target = target;
        // Each failure removes at least one block, so this ends.
        loop {
            match self.reorganize_to(target, changes) {
                Ok(()) => return,
                Err(ReorgError::Invalid(bad, error)) => {
                    self.drop_invalid(bad, error, changes);
                    target = self.best_entry();
                }
                Err(ReorgError::Unavailable(why)) => {
                    // The best chain stays as it is; the block stays stored on its side
                    // branch, and the next block on that branch tries again.
                    tracing::error!("cannot switch to the branch with the most work: {why}");
                    return;
                }
            }
        }
    }

    /// Undoes the best chain down to the fork point with `target`'s branch, then applies the
    /// branch. Reads every body and undo record it needs first, so a read error changes
    /// nothing; stops at the first block that breaks a ledger rule.
    fn reorganize_to(&mut self, target: u32, changes: &mut Changes) -> Result<(), ReorgError> {
        let mut branch = Vec::new();
        let mut pos = target;
        while !self.is_active_pos(pos) {
            branch.push(pos);
            pos = self.index.get(pos).parent;
        }
        let fork_height = self.index.get(pos).height as usize;
        let mut down = Vec::with_capacity(self.active.len() - fork_height - 1);
        for &top in self.active[fork_height + 1..].iter().rev() {
            let body = self.body_at(top).map_err(ReorgError::Unavailable)?;
            let undo = self.undo_at(top).map_err(ReorgError::Unavailable)?;
            down.push((body, undo));
        }
        let mut up = Vec::with_capacity(branch.len());
        for &p in branch.iter().rev() {
            up.push((p, self.body_at(p).map_err(ReorgError::Unavailable)?));
        }
        for (body, undo) in down {
            self.active.pop();
            self.ledger.undo_block(undo);
            self.undos.remove(&body.hash());
            changes.disconnect(body);
        }
        for (p, block) in up {
            let undo = self
                .ledger
                .apply_block(&block, block.txids(), &self.params)
                .map_err(|e| ReorgError::Invalid(block.hash(), e))?;
            let generation = self.generation;
            self.undos.insert(
                block.hash(),
                Cached {
                    value: undo,
                    generation,
                    height: block.height(),
                },
            );
            if !self.bodies.contains_key(&block.hash()) {
                self.cache_body(block.clone());
            }
            self.active.push(p);
            changes.connect(block);
        }
        Ok(())
    }

    /// What follows a change of the tip: old bodies leave memory, and now and then side
    /// branches far behind are pruned.
    fn after_tip_change(&mut self) {
        if self.bodies.len() > 2 * RECENT_BLOCKS as usize {
            self.evict();
        }
        self.side_since_prune = self.side_since_prune.saturating_add(1);
        if self.side_since_prune >= PRUNE_EVERY {
            self.prune();
        }
    }

    /// Removes the side branches whose highest block is more than `prune_depth` below the
    /// tip, then, while more than `max_side_blocks` side blocks remain, the branches whose best
    /// block has the least work. A branch is a subtree hanging off the best chain; it goes
    /// whole. Scans the index once (a few milliseconds at a million blocks).
    pub fn prune(&mut self) {
        self.side_since_prune = 0;
        let tip_height = self.height();
        let side: Vec<u32> = self
            .index
            .live_from(1)
            .filter(|&p| !self.is_active_pos(p))
            .collect();
        if side.is_empty() {
            return;
        }
        // Per side block: the highest height, the most work and the block count of its
        // subtree. Children come after parents, so one pass from the end carries them up.
        let mut sub: HashMap<u32, (u32, u128, usize)> = side
            .iter()
            .map(|&p| {
                let s = self.index.get(p);
                (p, (s.height, s.work(), 1))
            })
            .collect();
        let mut roots = Vec::new();
        for &p in side.iter().rev() {
            let parent = self.index.get(p).parent;
            let mine = sub[&p];
            match sub.get_mut(&parent) {
                Some(b) => *b = (b.0.max(mine.0), b.1.max(mine.1), b.2 + mine.2),
                None => roots.push((p, mine)),
            }
        }
        roots.sort_by_key(|&(_, (_, work, _))| work);
        let mut kept = side.len();
        let mut doomed = Vec::new();
        for (root, (height, _, size)) in roots {
            let far = u64::from(height) + self.limits.prune_depth < tip_height;
            if far || kept > self.limits.max_side_blocks {
                doomed.push(root);
                kept -= size;
            }
        }
        if !doomed.is_empty() {
            let pruned = self.remove_subtrees(&doomed).len();
            tracing::info!(pruned, kept, "side branches pruned");
        }
    }

    /// Removes `bad` and every descendant from the tree and remembers them as invalid.
    fn drop_invalid(&mut self, bad: BlockHash, error: ValidationError, changes: &mut Changes) {
        let Some(bad_pos) = self.index.find(&bad) else {
            return;
        };
        let removed = self.remove_subtree(bad_pos);
        for hash in removed {
            let why = if hash == bad {
                error.clone()
            } else {
                ValidationError::InvalidAncestor(bad)
            };
            changes.accepted.retain(|b| b.hash() != hash);
            self.remember_invalid(hash, &why);
            changes.rejected.push((hash, why));
        }
    }

    /// Removes the block at `root` (not on the best chain) and its descendants from the tree;
    /// returns their hashes, which are also recorded for [`ChainState::take_dropped`].
    fn remove_subtree(&mut self, root: u32) -> Vec<BlockHash> {
        self.remove_subtrees(&[root])
    }

    /// [`ChainState::remove_subtree`] for several roots at once, in one pass over the index.
    fn remove_subtrees(&mut self, roots: &[u32]) -> Vec<BlockHash> {
        let mut removed = Vec::new();
        let mut ids = Vec::new();
        for &root in roots {
            let slot = *self.index.get(root);
            if slot.live() {
                removed.push(slot.hash);
                ids.push(BlockKey::new(u64::from(slot.height), slot.hash));
                self.index.remove(root);
            }
        }
        let Some(&first) = roots.iter().min() else {
            return removed;
        };
        // Children come after their parent: one pass finds every descendant.
        let later: Vec<u32> = self.index.live_from(first + 1).collect();
        for pos in later {
            let slot = *self.index.get(pos);
            if !self.index.get(slot.parent).live() {
                removed.push(slot.hash);
                ids.push(BlockKey::new(u64::from(slot.height), slot.hash));
                self.index.remove(pos);
            }
        }
        for hash in &removed {
            self.bodies.remove(hash);
            self.undos.remove(hash);
        }
        self.dropped.extend(ids);
        // Tombstones are dropped once they are a quarter of the index.
        if let Some(map) = self.index.compact() {
            for pos in &mut self.active {
                *pos = map[*pos as usize];
            }
        }
        removed
    }
}
