//! Accepting blocks: the checks that need the tree, fork choice, the reorganisation that moves
//! the ledger to the best chain, and dropping a branch that breaks a ledger rule.

use super::super::block::Block;
use super::super::checked::CheckedBlock;
use super::super::hash::BlockHash;
use super::super::target::Target;
use super::super::validate::{self, ValidationError};
use super::index::Slot;
use super::{
    ChainState, Outcome, PRUNE_EVERY, Processed, RECENT_BLOCKS, TipChange, push_or_cancel,
};
use crate::mutants::Mutation;
use std::cmp::Reverse;
use std::sync::Arc;

/// Whether `error` condemns the block that `block`'s hash names. The hash commits to the body
/// only through `tx_root`: a body error in a body that does not match the header's root says
/// nothing about the real block (anyone can relay a valid header with altered transactions),
/// so remembering that hash as invalid would make the node refuse the real block and every
/// block built on it.
///
/// Every variant is named, with no catch-all: a rule added later is a compile error here until
/// someone decides whether the header alone decides it.
pub(super) fn condemns_hash(block: &Block, error: &ValidationError) -> bool {
    use ValidationError as E;
    match error {
        // Header rules: the hash commits to every field they read.
        E::BadVersion(_)
        | E::BadBits(_)
        | E::TargetAboveLimit { .. }
        | E::WrongBits { .. }
        | E::InsufficientWork { .. }
        | E::BadHeight { .. }
        | E::TimestampTooOld { .. }
        | E::InvalidAncestor(_) => true,
        // May become valid as the clock advances: never remembered.
        E::TimestampTooNew { .. } => false,
        // Body rules: the block is condemned only if its body is the one the header commits to.
        E::TooManyTransactions { .. }
        | E::BlockTooLarge { .. }
        | E::MissingCoinbase
        | E::CoinbaseHeight { .. }
        | E::CoinbaseAmount { .. }
        | E::ExtraCoinbase { .. }
        | E::DuplicateTxid(_)
        | E::TxRootMismatch { .. }
        | E::BadSignature { .. }
        | E::BadNonce { .. }
        | E::InsufficientBalance { .. }
        | E::AmountOverflow { .. } => block.compute_tx_root() == block.header.tx_root,
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
        push_or_cancel(&mut self.disconnected, &mut self.connected, block);
    }

    /// Records a block joining the best chain; one disconnected earlier in this call cancels.
    fn connect(&mut self, block: Arc<CheckedBlock>) {
        push_or_cancel(&mut self.connected, &mut self.disconnected, block);
    }
}

/// Why a reorganisation stopped.
enum ReorgError {
    /// A block of the new branch broke a ledger rule.
    Invalid(BlockHash, ValidationError),
    /// A body or undo record could not be read; nothing was changed.
    Unavailable(String),
}

impl ChainState {
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
    pub(super) fn trusted_clock(&self) -> u64 {
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

    pub(super) fn submit(
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

    pub(super) fn remember_invalid(&mut self, hash: BlockHash, error: &ValidationError) {
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
        let better = work > self.tip_work()
            || (crate::mutants::active(Mutation::ForkChoiceOffByOne)
                && work.saturating_add(own_work(&block)) > self.tip_work());
        self.cache_body(block.clone());
        changes.accepted.push(block);
        if better {
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
    pub(super) fn check_block(
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
            validate::check_signatures_cached(
                block,
                block.txids(),
                &self.chain_id,
                &self.sig_cache,
            )?;
        }
        Ok(Some((
            parent,
            self.index.get(parent).work().saturating_add(own_work),
        )))
    }

    /// The valid block with the most work, the earliest seen among equals.
    pub(super) fn best_entry(&self) -> u32 {
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
            self.forget_undo(&body.hash());
            changes.disconnect(body);
        }
        for (p, block) in up {
            let undo = self
                .ledger
                .apply_block(&block, block.txids(), &self.params)
                .map_err(|e| ReorgError::Invalid(block.hash(), e))?;
            self.cache_undo(block.hash(), block.height(), undo);
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
    pub(super) fn after_tip_change(&mut self) {
        if self.bodies.len() > 2 * RECENT_BLOCKS as usize
            || self.memory_bytes > self.limits.max_recent_bytes
        {
            self.evict();
        }
        self.side_since_prune = self.side_since_prune.saturating_add(1);
        if self.side_since_prune >= PRUNE_EVERY {
            self.prune();
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
}

/// A block's own work (the planted fork-choice bug needs it).
fn own_work(block: &CheckedBlock) -> u128 {
    Target::from_compact(block.header.bits).map_or(0, |t| t.work().saturating_u128())
}
