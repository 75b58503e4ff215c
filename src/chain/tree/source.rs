//! Where the tree finds the bodies and undo records it does not keep in memory: a
//! [`BlockSource`] (the node's store). A tree without one keeps everything in memory.

use super::super::block::BlockKey;
use super::super::checked::CheckedBlock;
use super::super::hash::BlockHash;
use super::super::ledger::Undo;
use std::sync::Arc;

/// Read access to the blocks and undo records a store holds. Errors are the store's, as text:
/// the tree reports them and carries on without the value.
pub trait BlockSource: Send + Sync {
    /// A stored block, its txids computed.
    fn block(&self, id: &BlockKey) -> Result<Option<Arc<CheckedBlock>>, String>;
    /// A stored block's consensus encoding, as stored.
    fn wire(&self, id: &BlockKey) -> Result<Option<Vec<u8>>, String>;
    /// The consensus encodings of `ids` (in height order), read at once: those of the longest
    /// prefix of `ids` that is stored and whose total size stays within `budget` bytes (the
    /// first one whatever its size).
    fn wires(&self, ids: &[BlockKey], budget: usize) -> Result<Vec<Vec<u8>>, String>;
    /// The undo record of a stored best-chain block.
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, String>;
}

/// A value the tree holds in memory, with the generation it was made in: once the store has
/// committed that generation the value can be read back from it, and may be dropped here.
pub(super) struct Cached<T> {
    pub(super) value: T,
    pub(super) generation: u64,
    /// The block's height, to keep the ones near the tip.
    pub(super) height: u64,
    /// Memory the value holds, counted in the tree's byte budget.
    pub(super) bytes: usize,
}
