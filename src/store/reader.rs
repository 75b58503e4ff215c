//! Reading blocks, undo records and the txid index from any thread while the store writer
//! commits: redb gives each read a consistent snapshot of the last committed transaction.

use super::{BODIES, StoreError, TXIDS, UNDO, catch_panic, decode_undo};
use crate::chain::ledger::Undo;
use crate::chain::tree::BlockSource;
use crate::chain::{Block, BlockHash, BlockKey, ChainParams, CheckedBlock, Txid};
use redb::{Database, ReadableDatabase};
use std::path::PathBuf;
use std::sync::Arc;

/// A cheap handle reading the store (see [`super::Store::reader`]).
#[derive(Clone)]
pub struct StoreReader {
    /// The database, shared with the writer.
    db: Arc<Database>,
    /// Its file, for error messages.
    path: PathBuf,
    /// Decoding bounds.
    params: ChainParams,
}

impl StoreReader {
    pub(super) fn new(db: Arc<Database>, path: PathBuf, params: ChainParams) -> Self {
        Self { db, path, params }
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            cause: Box::new(e.into()),
        }
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    /// The stored encoding of a block.
    pub fn wire(&self, id: &BlockKey) -> Result<Option<Vec<u8>>, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            Ok(bodies
                .get((id.height, id.hash.as_bytes()))
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        })
    }

    /// The stored encodings of `ids`, which must be in height order: those of the longest
    /// prefix that is stored and fits in `budget` bytes (the first whatever its size), read in
    /// one transaction by one walk over the keys from the first to the last (blocks of other
    /// branches at those heights are stepped over).
    pub fn wires(&self, ids: &[BlockKey], budget: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(Vec::new());
        };
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            let range = (first.height, first.hash.as_bytes())..=(last.height, last.hash.as_bytes());
            let mut rows = bodies.range(range).map_err(|e| self.err(e))?;
            let mut out: Vec<Vec<u8>> = Vec::with_capacity(ids.len());
            let mut used = 0usize;
            'wanted: for id in ids {
                for row in rows.by_ref() {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    let (height, hash) = k.value();
                    if height > id.height {
                        // `id` is not stored: the prefix ends here.
                        break 'wanted;
                    }
                    if height < id.height || hash != id.hash.as_bytes() {
                        continue;
                    }
                    let wire = v.value();
                    if !out.is_empty() && used + wire.len() > budget {
                        break 'wanted;
                    }
                    used += wire.len();
                    out.push(wire.to_vec());
                    continue 'wanted;
                }
                break;
            }
            Ok(out)
        })
    }

    /// A stored block, decoded and checked to be the one its key names.
    pub fn block(&self, id: &BlockKey) -> Result<Option<CheckedBlock>, StoreError> {
        let hash = &id.hash;
        let Some(wire) = self.wire(id)? else {
            return Ok(None);
        };
        let block = Block::decode(
            &wire,
            self.params.max_block_bytes as usize,
            self.params.max_block_txs,
        )
        .map_err(|e| self.corrupt(format!("block {hash}: {e}")))?;
        let checked = CheckedBlock::stored(block, wire);
        if checked.hash() != *hash {
            return Err(self.corrupt(format!("block {hash} does not match its key")));
        }
        Ok(Some(checked))
    }

    /// The undo record of a best-chain block.
    pub fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = tx.open_table(UNDO).map_err(|e| self.err(e))?;
            let Some(v) = table.get(hash.as_bytes()).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            decode_undo(hash, v.value())
                .map(Some)
                .map_err(|e| self.corrupt(e))
        })
    }

    /// The stored best-chain block holding `txid` (as of the last commit).
    pub fn block_of(&self, txid: &Txid) -> Result<Option<BlockHash>, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = tx.open_table(TXIDS).map_err(|e| self.err(e))?;
            Ok(table
                .get(txid.as_bytes())
                .map_err(|e| self.err(e))?
                .map(|v| BlockHash(*v.value())))
        })
    }
}

impl BlockSource for StoreReader {
    fn block(&self, id: &BlockKey) -> Result<Option<Arc<CheckedBlock>>, String> {
        StoreReader::block(self, id)
            .map(|b| b.map(Arc::new))
            .map_err(|e| e.to_string())
    }

    fn wire(&self, id: &BlockKey) -> Result<Option<Vec<u8>>, String> {
        StoreReader::wire(self, id).map_err(|e| e.to_string())
    }

    fn wires(&self, ids: &[BlockKey], budget: usize) -> Result<Vec<Vec<u8>>, String> {
        StoreReader::wires(self, ids, budget).map_err(|e| e.to_string())
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, String> {
        StoreReader::undo(self, hash).map_err(|e| e.to_string())
    }
}
