//! Rebuilding a chain from what a store kept; nothing is validated again.

use super::super::hash::BlockHash;
use super::super::ledger::Ledger;
use super::super::params::ChainParams;
use super::index::{NONE, Slot};
use super::{BlockSource, ChainState, HeaderRecord, TreeLimits};
use std::sync::Arc;

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

impl ChainState {
    /// Starts rebuilding a chain from what a store kept, with room for `capacity` blocks:
    /// [`Restore::push`] each block's record, parents first, then [`Restore::finish`].
    pub fn restore(params: ChainParams, limits: TreeLimits, capacity: usize) -> Restore {
        // Some room for growth too, so a long chain is not copied at the next block.
        let room = capacity + capacity / 16 + 1024;
        Restore {
            chain: Self::empty(params, limits, room),
        }
    }
}
