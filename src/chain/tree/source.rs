//! Where the tree finds the bodies and undo records it does not keep in memory: a
//! [`BlockSource`] (the node's store). A tree without one keeps everything in memory.

use super::super::block::{BlockKey, HEADER_LEN, Header};
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
    /// The headers of `ids` (the first 96 bytes of each stored encoding): those of the longest
    /// prefix of `ids` that is stored. This default reads each whole block; a source that can
    /// read the header alone should (a page of 2 000 headers then reads 192 KB, not blocks).
    fn headers(&self, ids: &[BlockKey]) -> Result<Vec<Header>, String> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(wire) = self.wire(id)? else {
                break;
            };
            let header = wire
                .get(..HEADER_LEN)
                .and_then(|b| Header::decode(b).ok())
                .ok_or_else(|| format!("block {} is stored damaged", id.hash))?;
            out.push(header);
        }
        Ok(out)
    }
}

/// A value the tree holds in memory, with the generation it was made in: once the store has
/// committed that generation the value can be read back from it, and may be dropped here.
pub(super) struct Cached<T> {
    pub(super) value: T,
    pub(super) generation: u64,
    /// The block's height, to keep the ones near the tip.
    pub(super) height: u64,
}
