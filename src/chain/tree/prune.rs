//! Pruning side branches that fell far behind the best chain or exceed the cap, and removing
//! subtrees from the index.

use super::super::block::BlockKey;
use super::super::hash::BlockHash;
use super::ChainState;
use std::collections::HashMap;

impl ChainState {
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

    /// Removes the block at `root` (not on the best chain) and its descendants from the tree;
    /// returns their hashes, which are also recorded for [`ChainState::take_dropped`].
    pub(super) fn remove_subtree(&mut self, root: u32) -> Vec<BlockHash> {
        self.remove_subtrees(&[root])
    }

    /// [`ChainState::remove_subtree`] for several roots at once, in one pass over the index.
    pub(super) fn remove_subtrees(&mut self, roots: &[u32]) -> Vec<BlockHash> {
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
            self.forget_body(hash);
            self.forget_undo(hash);
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
