//! The block tree and fork choice. Every valid block is kept; the best chain is the one with the
//! most cumulative work (floor(2^256 / (target + 1)) a block), and on a tie the one seen first stays. The ledger
//! follows the best chain: a reorganisation undoes blocks down to the fork point and applies the
//! new branch, and if a block of that branch breaks a ledger rule it and its descendants are
//! dropped and the best remaining chain is restored. Blocks whose parent is unknown wait in a
//! bounded orphan pool.

use super::block::Block;
use super::hash::{BlockHash, ChainId, Txid};
use super::ledger::{Ledger, Undo};
use super::mempool::Mempool;
use super::merkle;
use super::params::ChainParams;
use super::retarget::{self, ParentInfo};
use super::target::{Target, Work};
use super::tx::{Address, Coinbase, Transaction};
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
    pub disconnected: Vec<Arc<Block>>,
    /// Blocks that joined the best chain, from the fork point up.
    pub connected: Vec<Arc<Block>>,
}

/// Everything one call changed.
#[derive(Debug)]
pub struct Processed {
    /// What became of the submitted block.
    pub outcome: Outcome,
    /// Blocks newly stored as valid, parents first: the submitted one and orphans it connected.
    pub accepted: Vec<(BlockHash, Arc<Block>)>,
    /// Other blocks found invalid on the way (orphans, or side-branch blocks that failed the
    /// ledger rules during a reorganisation); a stored one must be deleted.
    pub rejected: Vec<(BlockHash, ValidationError)>,
    /// The net change of the best chain, if any.
    pub tip_change: Option<TipChange>,
}

/// A valid block in the tree.
struct Entry {
    /// The block itself, shared with the store and the network without copying.
    block: Arc<Block>,
    /// Cumulative work from genesis through this block.
    work: Work,
    /// Timestamp of this block's ancestor at height 1 (itself at height 1, 0 for genesis):
    /// the anchor of the retarget schedule on this block's branch.
    anchor_time: u64,
    /// Arrival order: on equal work the earlier tip wins.
    seq: u64,
    /// Known valid children, to drop descendants of a block found invalid.
    children: Vec<BlockHash>,
    /// The txids, hashed once when the block was checked and reused when it is connected
    /// (empty for genesis, which is never applied to the ledger).
    txids: Vec<Txid>,
}

/// Blocks waiting for their parent.
#[derive(Default)]
struct OrphanPool {
    /// Orphans by hash.
    blocks: HashMap<BlockHash, Arc<Block>>,
    /// Orphan hashes by the parent they wait for.
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Arrival order, oldest first, for eviction.
    order: VecDeque<BlockHash>,
    /// Total encoded bytes held.
    bytes: usize,
}

impl OrphanPool {
    fn insert(&mut self, hash: BlockHash, block: Arc<Block>, limits: &TreeLimits) {
        let size = block.encoded_len();
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

    fn remove(&mut self, hash: &BlockHash) -> Option<Arc<Block>> {
        let block = self.blocks.remove(hash)?;
        self.bytes -= block.encoded_len();
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

    fn take_children(&mut self, parent: &BlockHash) -> Vec<(BlockHash, Arc<Block>)> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes
            .into_iter()
            .filter_map(|h| self.remove(&h).map(|b| (h, b)))
            .collect()
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
    accepted: Vec<(BlockHash, Arc<Block>)>,
    rejected: Vec<(BlockHash, ValidationError)>,
    disconnected: Vec<Arc<Block>>,
    connected: Vec<Arc<Block>>,
}

impl Changes {
    /// Records a block leaving the best chain; one connected earlier in this call cancels out.
    fn disconnect(&mut self, block: Arc<Block>) {
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
    fn connect(&mut self, block: Arc<Block>) {
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
        let genesis = Arc::new(params.genesis());
        let chain_id = genesis.compute_hash();
        let mut entries = HashMap::new();
        entries.insert(
            chain_id,
            Entry {
                block: genesis,
                work: params.genesis_target().work(),
                anchor_time: 0,
                seq: 0,
                children: Vec::new(),
                txids: Vec::new(),
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
        self.entries.get(hash).map(|e| &e.block)
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
        self.process(block, now_ms, true)
    }

    /// Re-inserts a block this node validated before (read back from its own store): signatures
    /// are not verified again and the clock is not consulted; every other rule still runs.
    pub fn load_trusted(&mut self, block: Arc<Block>) -> Result<Processed, ValidationError> {
        self.process(block, u64::MAX - self.params.max_future_ms, false)
    }

    fn process(
        &mut self,
        block: Arc<Block>,
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
        let hash = block.compute_hash();
        let outcome = self.accept(hash, block, now_ms, verify_signatures, &mut changes)?;
        if outcome == Outcome::Accepted {
            let mut parents = vec![hash];
            while let Some(parent) = parents.pop() {
                for (child_hash, child) in self.orphans.take_children(&parent) {
                    match self.accept(child_hash, child, now_ms, verify_signatures, &mut changes) {
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

    /// Validates one block whose hash is `hash` and stores it if valid; switches the best
    /// chain if it now has the most work.
    fn accept(
        &mut self,
        hash: BlockHash,
        block: Arc<Block>,
        now_ms: u64,
        verify_signatures: bool,
        changes: &mut Changes,
    ) -> Result<Outcome, ValidationError> {
        if self.entries.contains_key(&hash) || self.orphans.blocks.contains_key(&hash) {
            return Ok(Outcome::AlreadyKnown);
        }
        if let Some(e) = self.invalid.get(&hash) {
            return Err(e.clone());
        }
        let checked = self.check_block(&block, now_ms, verify_signatures);
        let (work, parent_anchor, txids) = match checked {
            Ok(Some(checked)) => checked,
            Ok(None) => {
                let missing_parent = block.header.prev_hash;
                self.orphans.insert(hash, block, &self.limits);
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
                txids,
            },
        );
        self.next_seq += 1;
        if let Some(p) = self.entries.get_mut(&prev) {
            p.children.push(hash);
        }
        changes.accepted.push((hash, block));
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

    /// Every rule but the ledger's. `Ok(None)`: the parent is unknown (the block is an orphan
    /// that passed the checks that need no parent); otherwise the block's cumulative work, its
    /// parent's retarget anchor time and the block's txids.
    fn check_block(
        &self,
        block: &Block,
        now_ms: u64,
        verify_signatures: bool,
    ) -> Result<Option<(Work, u64, Vec<Txid>)>, ValidationError> {
        validate::check_header(&block.header, &self.params)?;
        let own_work = Target::from_compact(block.header.bits)
            .map_err(ValidationError::BadBits)?
            .work();
        let txids = validate::check_body(block, &self.params)?;
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
        if verify_signatures {
            validate::check_signatures(block, &txids, &self.chain_id)?;
        }
        Ok(Some((
            parent.work.saturating_add(own_work),
            parent.anchor_time,
            txids,
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
                .apply_block(&block, &entry.txids, &self.params)
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
            changes.accepted.retain(|(h, _)| *h != hash);
            self.remember_invalid(hash, &error);
            changes.rejected.push((hash, error));
        }
    }

    /// A block on the tip, ready to mine (nonce 0): the best transfers of `mempool`, and a
    /// coinbase paying the reward and their fees to `miner`. Its timestamp is `now_ms`, or just
    /// after the median past time if the clock is behind it.
    pub fn block_template(&self, mempool: &Mempool, miner: Address, now_ms: u64) -> Block {
        let tip = self.tip();
        let height = self.height() + 1;
        let room_txs = self.params.max_block_txs.saturating_sub(1) as usize;
        let room_bytes = (self.params.max_block_bytes as usize)
            .saturating_sub(super::block::HEADER_LEN + 4 + super::tx::COINBASE_LEN);
        let transfers =
            mempool.select(&self.ledger, room_txs, room_bytes, self.params.block_reward);
        let fees: u64 = transfers.iter().map(|t| t.fee).sum();
        let mut txs = Vec::with_capacity(transfers.len() + 1);
        txs.push(Transaction::Coinbase(Coinbase {
            height,
            to: miner,
            amount: self.params.block_reward + fees,
        }));
        txs.extend(transfers.into_iter().map(Transaction::Transfer));
        let txids: Vec<_> = txs.iter().map(Transaction::compute_txid).collect();
        let header = super::block::Header {
            version: super::block::BLOCK_VERSION,
            height,
            prev_hash: tip,
            tx_root: merkle::tx_root(&txids),
            timestamp: now_ms.max(self.median_time_past(&tip) + 1),
            bits: self.next_bits(),
            nonce: 0,
        };
        Block { header, txs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{MempoolLimits, Transfer};
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
