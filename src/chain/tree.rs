//! The block tree and fork choice. Every valid block is kept; the best chain is the one with the
//! most cumulative work (floor(2^256 / (target + 1)) a block), and on a tie the one seen first stays. The ledger
//! follows the best chain: a reorganisation undoes blocks down to the fork point and applies the
//! new branch, and if a block of that branch breaks a ledger rule it and its descendants are
//! dropped and the best remaining chain is restored. Blocks whose parent is unknown wait in a
//! bounded orphan pool.

use super::block::Block;
use super::checked::CheckedBlock;
use super::hash::{BlockHash, ChainId};
use super::ledger::{Ledger, Undo};
use super::params::ChainParams;
use super::retarget::{self, ParentInfo};
use super::target::{Target, Work};
use super::validate::{self, ValidationError};
use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Bounds on what the tree keeps besides valid blocks.
#[derive(Clone, Debug)]
pub struct TreeLimits {
    /// Most orphan blocks held.
    pub max_orphans: usize,
    /// Most bytes of orphan blocks held.
    pub max_orphan_bytes: usize,
    /// How many invalid block hashes are remembered, so a resent one is refused at once.
    pub max_remembered_invalid: usize,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_orphans: 512,
            max_orphan_bytes: 32 << 20,
            max_remembered_invalid: 16_384,
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

/// A valid block in the tree.
struct Entry {
    /// The block with its hash, txids and wire bytes, shared with the store and the network
    /// without copying.
    block: Arc<CheckedBlock>,
    /// Cumulative work from genesis through this block.
    work: Work,
    /// Timestamp of this block's ancestor at height 1 (itself at height 1, 0 for genesis):
    /// the anchor of the retarget schedule on this block's branch.
    anchor_time: u64,
    /// Arrival order: on equal work the earlier tip wins.
    seq: u64,
    /// Known valid children, to drop descendants of a block found invalid.
    children: Vec<BlockHash>,
}

/// Blocks waiting for their parent.
#[derive(Default)]
struct OrphanPool {
    /// Orphans by hash.
    blocks: HashMap<BlockHash, Arc<CheckedBlock>>,
    /// Orphan hashes by the parent they wait for.
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Arrival order, oldest first, for eviction.
    order: VecDeque<BlockHash>,
    /// Total encoded bytes held.
    bytes: usize,
}

impl OrphanPool {
    fn insert(&mut self, block: Arc<CheckedBlock>, limits: &TreeLimits) {
        let hash = block.hash();
        let size = block.wire().len();
        while !self.order.is_empty()
            && (self.blocks.len() >= limits.max_orphans
                || self.bytes + size > limits.max_orphan_bytes)
        {
            if let Some(old) = self.order.pop_front() {
                self.remove(&old);
            }
        }
        self.by_parent
            .entry(block.header.prev_hash)
            .or_default()
            .push(hash);
        self.bytes += size;
        self.blocks.insert(hash, block);
        self.order.push_back(hash);
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Arc<CheckedBlock>> {
        let block = self.blocks.remove(hash)?;
        self.bytes -= block.wire().len();
        let parent = block.header.prev_hash;
        if let Some(siblings) = self.by_parent.get_mut(&parent) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
        self.order.retain(|h| h != hash);
        Some(block)
    }

    fn take_children(&mut self, parent: &BlockHash) -> Vec<Arc<CheckedBlock>> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes.into_iter().filter_map(|h| self.remove(&h)).collect()
    }
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
            .is_some_and(|b| Arc::ptr_eq(b, &block))
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
            .is_some_and(|b| Arc::ptr_eq(b, &block))
        {
            self.disconnected.pop();
        } else {
            self.connected.push(block);
        }
    }
}

/// The chain state: block tree, best chain, ledger and orphans. Pure: no I/O, time is passed in.
pub struct ChainState {
    /// The consensus parameters.
    params: ChainParams,
    /// The genesis hash.
    chain_id: ChainId,
    /// Every valid block by hash.
    entries: HashMap<BlockHash, Entry>,
    /// The best chain: `active[h]` is the hash at height h.
    active: Vec<BlockHash>,
    /// Balances and nonces at the tip of the best chain.
    ledger: Ledger,
    /// How to undo each block of the best chain but genesis.
    undos: HashMap<BlockHash, Undo>,
    /// Hashes known invalid, with why; bounded, oldest forgotten first.
    invalid: HashMap<BlockHash, ValidationError>,
    /// Insertion order of `invalid`.
    invalid_order: VecDeque<BlockHash>,
    /// Blocks waiting for their parent.
    orphans: OrphanPool,
    /// The bounds.
    limits: TreeLimits,
    /// Next arrival number.
    next_seq: u64,
    /// Valid blocks later dropped as invalid (their branch broke a ledger rule), for the
    /// caller to delete from its store; see [`ChainState::take_dropped`].
    dropped: Vec<BlockHash>,
}

impl ChainState {
    /// A chain holding only the genesis block of `params`.
    pub fn new(params: ChainParams) -> Self {
        Self::with_limits(params, TreeLimits::default())
    }

    /// Like [`ChainState::new`] with explicit bounds.
    pub fn with_limits(params: ChainParams, limits: TreeLimits) -> Self {
        let genesis = Arc::new(CheckedBlock::genesis(&params));
        let chain_id = genesis.hash();
        let mut entries = HashMap::new();
        entries.insert(
            chain_id,
            Entry {
                block: genesis,
                work: params.genesis_target().work(),
                anchor_time: 0,
                seq: 0,
                children: Vec::new(),
            },
        );
        Self {
            params,
            chain_id,
            entries,
            active: vec![chain_id],
            ledger: Ledger::default(),
            undos: HashMap::new(),
            invalid: HashMap::new(),
            invalid_order: VecDeque::new(),
            orphans: OrphanPool::default(),
            limits,
            next_seq: 1,
            dropped: Vec::new(),
        }
    }

    /// Rebuilds a chain from what a store kept: `records` of every block but genesis, parents
    /// before children (height order); the best `tip`; the `ledger` at that tip; the bodies;
    /// the undo records of the best chain. Nothing is validated again: the blocks were
    /// validated before they were stored. Fails if a record's parent or body is missing, or
    /// the tip is unknown.
    pub fn restore(
        params: ChainParams,
        limits: TreeLimits,
        records: Vec<HeaderRecord>,
        tip: BlockHash,
        ledger: Ledger,
        mut bodies: HashMap<BlockHash, Arc<CheckedBlock>>,
        mut undos: HashMap<BlockHash, Undo>,
    ) -> Result<Self, String> {
        let mut chain = Self::with_limits(params, limits);
        chain.entries.reserve(records.len());
        for record in records {
            let hash = record.hash;
            let block = bodies
                .remove(&hash)
                .ok_or_else(|| format!("block {hash} is indexed but missing"))?;
            let parent = chain
                .entries
                .get_mut(&record.prev)
                .ok_or_else(|| format!("stored block {hash} has no stored parent"))?;
            parent.children.push(hash);
            let anchor_time = if record.height == 1 {
                record.timestamp
            } else {
                parent.anchor_time
            };
            chain.entries.insert(
                hash,
                Entry {
                    block,
                    work: record.work,
                    anchor_time,
                    seq: 0,
                    children: Vec::new(),
                },
            );
        }
        if !chain.entries.contains_key(&tip) {
            return Err(format!("the recorded tip {tip} is not stored"));
        }
        let mut active = Vec::new();
        let mut hash = tip;
        loop {
            active.push(hash);
            let header = &chain.entries[&hash].block.header;
            if header.height == 0 {
                break;
            }
            hash = header.prev_hash;
        }
        active.reverse();
        for hash in active.iter().skip(1) {
            let undo = undos
                .remove(hash)
                .ok_or_else(|| format!("best-chain block {hash} has no undo record"))?;
            chain.undos.insert(*hash, undo);
        }
        // Arrival order: among equal work the recorded best chain stays best, as it was.
        let mut seq = 1;
        for hash in &active {
            if let Some(e) = chain.entries.get_mut(hash) {
                e.seq = seq;
                seq += 1;
            }
        }
        for e in chain.entries.values_mut() {
            if e.seq == 0 && e.block.header.height > 0 {
                e.seq = seq;
                seq += 1;
            }
        }
        chain.next_seq = seq;
        chain.active = active;
        chain.ledger = ledger;
        Ok(chain)
    }

    /// The consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The chain id (genesis hash).
    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// The best chain's tip.
    pub fn tip(&self) -> BlockHash {
        self.active[self.active.len() - 1]
    }

    /// The best chain's height.
    pub fn height(&self) -> u64 {
        (self.active.len() - 1) as u64
    }

    /// Cumulative work of the best chain, saturated to a u128 (the form of the sync `Status`
    /// message; no real chain comes near 2^128 hashes).
    pub fn tip_work(&self) -> u128 {
        self.entries[&self.tip()].work.saturating_u128()
    }

    /// Cumulative work of the best chain, exact.
    pub fn tip_chainwork(&self) -> Work {
        self.entries[&self.tip()].work
    }

    /// What the target of a child of `hash` depends on, if `hash` is a valid block.
    pub fn parent_info(&self, hash: &BlockHash) -> Option<ParentInfo> {
        self.entries.get(hash).map(|e| ParentInfo {
            height: e.block.header.height,
            timestamp: e.block.header.timestamp,
            anchor_time: e.anchor_time,
        })
    }

    /// The compact target a child of the tip must carry.
    pub fn next_bits(&self) -> u32 {
        let parent = self
            .parent_info(&self.tip())
            .expect("the tip is a valid block");
        retarget::next_bits(&self.params, &parent)
    }

    /// The ledger at the tip.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A valid block by hash.
    pub fn block(&self, hash: &BlockHash) -> Option<&Arc<Block>> {
        self.entries.get(hash).map(|e| e.block.block())
    }

    /// A valid block by hash, with its hash, txids and wire bytes.
    pub fn checked(&self, hash: &BlockHash) -> Option<&Arc<CheckedBlock>> {
        self.entries.get(hash).map(|e| &e.block)
    }

    /// The best chain's block at `height`, with its hash, txids and wire bytes.
    pub fn checked_at(&self, height: u64) -> Option<&Arc<CheckedBlock>> {
        let hash = self.active.get(usize::try_from(height).ok()?)?;
        self.checked(hash)
    }

    /// Cumulative work through a valid block.
    pub fn work(&self, hash: &BlockHash) -> Option<Work> {
        self.entries.get(hash).map(|e| e.work)
    }

    /// The best chain's block at `height`.
    pub fn block_at(&self, height: u64) -> Option<&Arc<Block>> {
        let hash = self.active.get(usize::try_from(height).ok()?)?;
        self.block(hash)
    }

    /// The best chain's hash at `height`.
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.active.get(usize::try_from(height).ok()?).copied()
    }

    /// Whether the block is stored as valid (on any branch).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.entries.contains_key(hash)
    }

    /// Whether the block is on the best chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.active.get(e.block.header.height as usize) == Some(hash))
    }

    /// Why a block was found invalid, if it is remembered.
    pub fn invalid_reason(&self, hash: &BlockHash) -> Option<&ValidationError> {
        self.invalid.get(hash)
    }

    /// The blocks accepted as valid earlier and dropped since the last call, because their
    /// branch broke a ledger rule in a reorganisation. Reported whether or not the call that
    /// dropped them succeeded, so a store can delete every one.
    pub fn take_dropped(&mut self) -> Vec<BlockHash> {
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
        self.entries.len()
    }

    /// Median timestamp of `parent` and up to `median_time_span - 1` of its ancestors (0 if
    /// `parent` is unknown).
    pub fn median_time_past(&self, parent: &BlockHash) -> u64 {
        let mut times = Vec::with_capacity(self.params.median_time_span as usize);
        let mut hash = *parent;
        while let Some(e) = self.entries.get(&hash) {
            times.push(e.block.header.timestamp);
            if times.len() == self.params.median_time_span as usize || e.block.header.height == 0 {
                break;
            }
            hash = e.block.header.prev_hash;
        }
        validate::median(&mut times)
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

    /// Re-inserts a block this node validated before (read back from its own store): signatures
    /// are not verified again and the clock is not consulted; every other rule still runs.
    pub fn load_trusted(&mut self, block: Arc<Block>) -> Result<Processed, ValidationError> {
        self.submit(block, None, self.trusted_clock(), false)
    }

    /// [`ChainState::load_trusted`] for a stored block and its stored bytes.
    pub fn load_stored(
        &mut self,
        block: Block,
        wire: Vec<u8>,
    ) -> Result<Processed, ValidationError> {
        self.submit(Arc::new(block), Some(wire), self.trusted_clock(), false)
    }

    /// A clock under which no stored block is too new.
    fn trusted_clock(&self) -> u64 {
        u64::MAX - self.params.max_future_ms
    }

    /// What the tree already knows of a block hash: `Some(Ok(AlreadyKnown))` if it is stored or
    /// an orphan, `Some(Err(why))` if it was found invalid, `None` if it is new. Lets a caller
    /// skip a block's checks before running them.
    pub fn known(&self, hash: &BlockHash) -> Option<Result<Outcome, ValidationError>> {
        if self.entries.contains_key(hash) || self.orphans.blocks.contains_key(hash) {
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
        let (work, parent_anchor) = match self.check_block(&block, now_ms, verify_signatures) {
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
        let anchor_time = if block.header.height == 1 {
            block.header.timestamp
        } else {
            parent_anchor
        };
        let prev = block.header.prev_hash;
        self.entries.insert(
            hash,
            Entry {
                block: block.clone(),
                work,
                anchor_time,
                seq: self.next_seq,
                children: Vec::new(),
            },
        );
        self.next_seq += 1;
        if let Some(p) = self.entries.get_mut(&prev) {
            p.children.push(hash);
        }
        changes.accepted.push(block);
        if work > self.tip_chainwork() {
            self.activate_best(hash, changes);
        }
        if self.entries.contains_key(&hash) {
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
    /// block's cumulative work and its parent's retarget anchor time.
    fn check_block(
        &self,
        block: &CheckedBlock,
        now_ms: u64,
        verify_signatures: bool,
    ) -> Result<Option<(Work, u64)>, ValidationError> {
        let own_work = Target::from_compact(block.header.bits)
            .map_err(ValidationError::BadBits)?
            .work();
        let prev = block.header.prev_hash;
        if self.invalid.contains_key(&prev) {
            return Err(ValidationError::InvalidAncestor(prev));
        }
        let Some(parent) = self.entries.get(&prev) else {
            return Ok(None);
        };
        let mtp = self.median_time_past(&prev);
        let info = ParentInfo {
            height: parent.block.header.height,
            timestamp: parent.block.header.timestamp,
            anchor_time: parent.anchor_time,
        };
        validate::check_context(&block.header, &info, mtp, now_ms, &self.params)?;
        if verify_signatures && !block.signatures_verified() {
            validate::check_signatures(block, block.txids(), &self.chain_id)?;
        }
        Ok(Some((
            parent.work.saturating_add(own_work),
            parent.anchor_time,
        )))
    }

    /// The valid block with the most work, the earliest seen among equals.
    fn best_entry(&self) -> BlockHash {
        self.entries
            .iter()
            .max_by_key(|(_, e)| (e.work, Reverse(e.seq)))
            .map(|(h, _)| *h)
            .unwrap_or(self.chain_id)
    }

    /// Makes `target` the tip; if a block on the way breaks a ledger rule, drops it with its
    /// descendants and settles on the best chain that remains.
    fn activate_best(&mut self, target: BlockHash, changes: &mut Changes) {
        let mut target = target;
        // Each failure removes at least one block, so this ends.
        loop {
            match self.reorganize_to(target, changes) {
                Ok(()) => return,
                Err((bad, error)) => {
                    self.drop_invalid(bad, error, changes);
                    target = self.best_entry();
                }
            }
        }
    }

    /// Undoes the best chain down to the fork point with `target`'s branch, then applies the
    /// branch. Stops at the first block that breaks a ledger rule.
    fn reorganize_to(
        &mut self,
        target: BlockHash,
        changes: &mut Changes,
    ) -> Result<(), (BlockHash, ValidationError)> {
        let mut branch = Vec::new();
        let mut hash = target;
        while !self.is_active(&hash) {
            branch.push(hash);
            hash = self.entries[&hash].block.header.prev_hash;
        }
        let fork_height = self.entries[&hash].block.header.height as usize;
        while self.active.len() > fork_height + 1 {
            let top = self.active.pop().expect("above the fork point");
            if let Some(undo) = self.undos.remove(&top) {
                self.ledger.undo_block(undo);
            }
            changes.disconnect(self.entries[&top].block.clone());
        }
        for hash in branch.into_iter().rev() {
            let entry = &self.entries[&hash];
            let block = entry.block.clone();
            let undo = self
                .ledger
                .apply_block(&block, block.txids(), &self.params)
                .map_err(|e| (hash, e))?;
            self.undos.insert(hash, undo);
            self.active.push(hash);
            changes.connect(block);
        }
        Ok(())
    }

    /// Removes `bad` and every descendant from the tree and remembers them as invalid.
    fn drop_invalid(&mut self, bad: BlockHash, error: ValidationError, changes: &mut Changes) {
        if let Some(prev) = self.entries.get(&bad).map(|e| e.block.header.prev_hash)
            && let Some(p) = self.entries.get_mut(&prev)
        {
            p.children.retain(|h| *h != bad);
        }
        let mut stack = vec![(bad, error)];
        while let Some((hash, error)) = stack.pop() {
            if let Some(entry) = self.entries.remove(&hash) {
                self.dropped.push(hash);
                for child in entry.children {
                    stack.push((child, ValidationError::InvalidAncestor(bad)));
                }
            }
            changes.accepted.retain(|b| b.hash() != hash);
            self.remember_invalid(hash, &error);
            changes.rejected.push((hash, error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Address, Mempool, MempoolLimits, Transaction, Transfer};
    use crate::testkit::{self, NOW, block_on, key, next_block};

    fn addr(seed: u64) -> Address {
        Address::of(&key(seed))
    }

    #[test]
    fn extends_and_applies_rewards() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 3, addr(1));
        assert_eq!(chain.height(), 3);
        assert_eq!(chain.ledger().account(&addr(1)).balance, 150);
    }

    #[test]
    fn fork_with_more_work_reorganises_and_returns_transfers_to_the_mempool() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 2, addr(1));
        let fork_point = chain.tip();
        let pay = Transfer::sign(&key(1), &chain.chain_id(), addr(2), 30, 2, 0);
        let a1 = next_block(&chain, &[pay], addr(1));
        chain.process_block(Arc::new(a1), NOW).unwrap();
        assert_eq!(chain.ledger().account(&addr(2)).balance, 30);

        let mut pool = Mempool::new(chain.chain_id(), MempoolLimits::default());
        let b1 = block_on(&chain, fork_point, &[], addr(3));
        let b1h = b1.compute_hash();
        let r = chain.process_block(Arc::new(b1), NOW).unwrap();
        assert!(r.tip_change.is_none(), "equal work: first seen stays");
        let mut replay = ChainState::new(testkit::params());
        for h in 1..=2 {
            replay
                .load_trusted(chain.block_at(h).unwrap().clone())
                .unwrap();
        }
        let b2 = {
            // build on b1 without making it the tip
            let p = chain.block(&b1h).unwrap().clone();
            let mut b = block_on(&chain, b1h, &[], addr(3));
            b.header.timestamp = p.header.timestamp + 1000;
            testkit::seal(&mut b);
            b
        };
        let r = chain.process_block(Arc::new(b2), NOW).unwrap();
        let change = r.tip_change.expect("more work wins");
        assert_eq!(change.disconnected.len(), 1);
        assert_eq!(change.connected.len(), 2);
        assert_eq!(chain.ledger().account(&addr(2)).balance, 0);
        let stats = pool.resync(&change, chain.ledger());
        assert_eq!(stats.returned.len(), 1);
        assert!(pool.contains(&Transaction::Transfer(pay).compute_txid()));

        for h in 3..=4 {
            replay
                .load_trusted(chain.block_at(h).unwrap().clone())
                .unwrap();
        }
        assert_eq!(replay.ledger(), chain.ledger());
    }

    #[test]
    fn merged_tip_changes_are_the_net_change() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 2, addr(1));
        let fork = chain.tip();
        let a1 = Arc::new(next_block(&chain, &[], addr(1)));
        let first = chain
            .process_block(a1.clone(), NOW)
            .unwrap()
            .tip_change
            .unwrap();
        // A branch from the fork point overtakes a1: the second change disconnects it.
        let b1 = block_on(&chain, fork, &[], addr(2));
        let b1h = b1.compute_hash();
        chain.process_block(Arc::new(b1), NOW).unwrap();
        let b2 = block_on(&chain, b1h, &[], addr(2));
        let second = chain
            .process_block(Arc::new(b2), NOW)
            .unwrap()
            .tip_change
            .unwrap();
        assert_eq!(second.disconnected.len(), 1);
        let mut merged = first.clone();
        merged.merge(second);
        // a1 came and went within the merged span: it is neither connected nor disconnected.
        assert_eq!(merged.old_tip, fork);
        assert_eq!(merged.new_tip, chain.tip());
        assert!(merged.disconnected.is_empty());
        let connected: Vec<_> = merged.connected.iter().map(|b| b.hash()).collect();
        assert_eq!(connected, vec![b1h, chain.tip()]);
    }

    #[test]
    fn orphans_connect_when_the_parent_arrives() {
        let mut source = ChainState::new(testkit::params());
        testkit::extend(&mut source, 3, addr(1));
        let mut chain = ChainState::new(testkit::params());
        for h in [3, 2] {
            let r = chain
                .process_block(source.block_at(h).unwrap().clone(), NOW)
                .unwrap();
            assert!(matches!(r.outcome, Outcome::Orphan { .. }));
        }
        let r = chain
            .process_block(source.block_at(1).unwrap().clone(), NOW)
            .unwrap();
        assert_eq!(r.accepted.len(), 3);
        assert_eq!(chain.tip(), source.tip());
        assert_eq!(r.tip_change.unwrap().connected.len(), 3);
    }

    #[test]
    fn a_ledger_invalid_branch_is_dropped_and_the_old_chain_restored() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 1, addr(1));
        let fork = chain.tip();
        testkit::extend(&mut chain, 1, addr(1));
        let tip = chain.tip();
        // A branch spending more than addr(1) has at the fork (50): valid signatures, bad ledger.
        let over = Transfer::sign(&key(1), &chain.chain_id(), addr(2), 60, 0, 0);
        let b1 = block_on(&chain, fork, &[over], addr(3));
        let b1h = b1.compute_hash();
        chain.process_block(Arc::new(b1), NOW).unwrap();
        assert!(chain.take_dropped().is_empty());
        let b2 = block_on(&chain, b1h, &[], addr(3));
        let b2h = b2.compute_hash();
        let err = chain.process_block(Arc::new(b2), NOW).unwrap_err();
        assert_eq!(err, ValidationError::InvalidAncestor(b1h));
        // b1 was stored as a valid side block by the earlier call: the caller learns to
        // delete it even though this call failed.
        let mut dropped = chain.take_dropped();
        dropped.sort();
        let mut want = vec![b1h, b2h];
        want.sort();
        assert_eq!(dropped, want);
        assert_eq!(chain.tip(), tip);
        assert!(matches!(
            chain.invalid_reason(&b1h),
            Some(ValidationError::InsufficientBalance { .. })
        ));
    }
}
