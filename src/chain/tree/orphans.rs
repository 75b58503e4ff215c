//! Blocks whose parent is unknown, waiting for it in a pool bounded in count and bytes (the
//! oldest are evicted first).

use super::super::checked::CheckedBlock;
use super::super::hash::BlockHash;
use super::TreeLimits;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Blocks waiting for their parent.
#[derive(Default)]
pub(super) struct OrphanPool {
    /// Orphans by hash.
    pub(super) blocks: HashMap<BlockHash, Arc<CheckedBlock>>,
    /// Orphan hashes by the parent they wait for.
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// Arrival order, oldest first, for eviction.
    order: VecDeque<BlockHash>,
    /// Total encoded bytes held.
    bytes: usize,
}

impl OrphanPool {
    pub(super) fn insert(&mut self, block: Arc<CheckedBlock>, limits: &TreeLimits) {
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

    /// Encoded bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn remove(&mut self, hash: &BlockHash) -> Option<Arc<CheckedBlock>> {
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

    pub(super) fn take_children(&mut self, parent: &BlockHash) -> Vec<Arc<CheckedBlock>> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes.into_iter().filter_map(|h| self.remove(&h)).collect()
    }
}
