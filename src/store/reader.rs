//! Reading blocks, undo records and the txid index from any thread while the store writer
//! commits: redb gives each read a consistent snapshot of the last committed transaction.

use super::{BLOCKS, StoreError, TXIDS, UNDO, catch_panic, decode_undo};
use crate::chain::ledger::Undo;
use crate::chain::tree::BlockSource;
use crate::chain::{Block, BlockHash, ChainParams, CheckedBlock, Txid};
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
    pub fn wire(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let blocks = tx.open_table(BLOCKS).map_err(|e| self.err(e))?;
            Ok(blocks
                .get(hash.as_bytes())
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        })
    }

    /// A stored block, decoded and checked to be the one its key names.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<CheckedBlock>, StoreError> {
        let Some(wire) = self.wire(hash)? else {
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
    fn block(&self, hash: &BlockHash) -> Result<Option<Arc<CheckedBlock>>, String> {
        StoreReader::block(self, hash)
            .map(|b| b.map(Arc::new))
            .map_err(|e| e.to_string())
    }

    fn wire(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, String> {
        StoreReader::wire(self, hash).map_err(|e| e.to_string())
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, String> {
        StoreReader::undo(self, hash).map_err(|e| e.to_string())
    }
}
