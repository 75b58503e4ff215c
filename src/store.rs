//! The block store: an embedded ACID database (redb) holding every valid block, a height index
//! to reload them parents first, and the best tip. Each batch of accepted blocks and the new tip
//! are committed in one transaction, durable when `commit` returns, so a node killed at any
//! instant reopens a consistent store holding every block it committed. Reloading does not
//! re-verify signatures: the blocks were verified before they were written.

use crate::chain::tree::TreeLimits;
use crate::chain::{Block, BlockHash, ChainId, ChainParams, ChainState, CheckedBlock};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Encoded blocks by hash.
const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// (height, hash) of every block, to reload parents before children.
const BY_HEIGHT: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("by_height");
/// Single values: the chain id the store belongs to, and the best tip.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database itself failed (I/O, or a file that is not a redb database).
    #[error("block store {path}: {cause}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The database error.
        cause: Box<redb::Error>,
    },
    /// The store belongs to another chain (other parameters).
    #[error(
        "block store {path} belongs to chain {found}, not {expected}: use another data directory for other chain parameters"
    )]
    WrongChain {
        /// The database file.
        path: PathBuf,
        /// Our chain id.
        expected: ChainId,
        /// The store's.
        found: String,
    },
    /// A stored record does not decode or does not fit the chain.
    #[error("block store {path} is corrupt: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// An open block store.
pub struct Store {
    /// The database; `None` only while being dropped.
    db: Option<Database>,
    /// Its file, for error messages.
    path: PathBuf,
}

impl Store {
    /// Opens or creates the store at `path` for `chain_id`.
    pub fn open(path: &Path, chain_id: ChainId) -> Result<Self, StoreError> {
        catch_panic(path, || Self::open_inner(path, chain_id))
    }

    fn open_inner(path: &Path, chain_id: ChainId) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| Self::db_err(path, e))?;
        let store = Self {
            db: Some(db),
            path: path.to_path_buf(),
        };
        let tx = store.db().begin_write().map_err(|e| store.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| store.err(e))?;
            let existing = meta
                .get("chain_id")
                .map_err(|e| store.err(e))?
                .map(|v| v.value().to_vec());
            match existing {
                Some(found) if found != chain_id.as_bytes() => {
                    return Err(StoreError::WrongChain {
                        path: store.path.clone(),
                        expected: chain_id,
                        found: hex::encode(found),
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("chain_id", chain_id.as_bytes().as_slice())
                        .map_err(|e| store.err(e))?;
                }
            }
        }
        // Opened after `meta` is closed: a write table still open while redb unwinds from a
        // panic (on a damaged file) panics again in its destructor, which aborts the process.
        tx.open_table(BLOCKS).map_err(|e| store.err(e))?;
        tx.open_table(BY_HEIGHT).map_err(|e| store.err(e))?;
        tx.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is open until the store is dropped")
    }

    fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: path.to_path_buf(),
            cause: Box::new(e.into()),
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        Self::db_err(&self.path, e)
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    /// Writes `accepted` blocks (their wire bytes as they are), deletes `rejected` ones, and
    /// records `tip`, in one durable transaction.
    pub fn commit(
        &self,
        accepted: &[Arc<CheckedBlock>],
        rejected: &[BlockHash],
        tip: BlockHash,
    ) -> Result<(), StoreError> {
        catch_panic(&self.path, || self.commit_inner(accepted, rejected, tip))
    }

    fn commit_inner(
        &self,
        accepted: &[Arc<CheckedBlock>],
        rejected: &[BlockHash],
        tip: BlockHash,
    ) -> Result<(), StoreError> {
        let tx = self.db().begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = tx.open_table(BLOCKS).map_err(|e| self.err(e))?;
            let mut by_height = tx.open_table(BY_HEIGHT).map_err(|e| self.err(e))?;
            for block in accepted {
                let hash = block.hash();
                blocks
                    .insert(hash.as_bytes(), block.wire())
                    .map_err(|e| self.err(e))?;
                by_height
                    .insert((block.height(), hash.as_bytes()), ())
                    .map_err(|e| self.err(e))?;
            }
            for hash in rejected {
                // The height sits at bytes 4..12 of the encoded header.
                let height = blocks
                    .remove(hash.as_bytes())
                    .map_err(|e| self.err(e))?
                    .and_then(|v| v.value().get(4..12).map(<[u8]>::to_vec))
                    .and_then(|b| b.try_into().ok().map(u64::from_be_bytes));
                if let Some(height) = height {
                    by_height
                        .remove((height, hash.as_bytes()))
                        .map_err(|e| self.err(e))?;
                }
            }
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("tip", tip.as_bytes().as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The recorded best tip, if any block was ever committed.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        catch_panic(&self.path, || self.tip_inner())
    }

    fn tip_inner(&self) -> Result<Option<BlockHash>, StoreError> {
        let tx = self.db().begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let Some(v) = meta.get("tip").map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = v
            .value()
            .try_into()
            .map_err(|_| self.corrupt("tip record is not 32 bytes".into()))?;
        Ok(Some(BlockHash(bytes)))
    }

    /// Number of blocks stored.
    pub fn block_count(&self) -> Result<u64, StoreError> {
        catch_panic(&self.path, || self.block_count_inner())
    }

    fn block_count_inner(&self) -> Result<u64, StoreError> {
        let tx = self.db().begin_read().map_err(|e| self.err(e))?;
        let blocks = tx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        blocks.len().map_err(|e| self.err(e))
    }

    /// Every stored block with its hash, in height order.
    pub fn blocks(&self, params: &ChainParams) -> Result<Vec<(BlockHash, Block)>, StoreError> {
        let rows = catch_panic(&self.path, || self.blocks_inner(params))?;
        Ok(rows.into_iter().map(|(h, b, _)| (h, b)).collect())
    }

    /// Every stored block with its hash and stored bytes, in height order.
    fn blocks_inner(
        &self,
        params: &ChainParams,
    ) -> Result<Vec<(BlockHash, Block, Vec<u8>)>, StoreError> {
        let tx = self.db().begin_read().map_err(|e| self.err(e))?;
        let blocks = tx.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let by_height = tx.open_table(BY_HEIGHT).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in by_height.iter().map_err(|e| self.err(e))? {
            let (key, _) = row.map_err(|e| self.err(e))?;
            let (height, hash) = key.value();
            let hash = BlockHash(*hash);
            let bytes = blocks
                .get(hash.as_bytes())
                .map_err(|e| self.err(e))?
                .ok_or_else(|| self.corrupt(format!("block {hash} is indexed but missing")))?;
            let block = Block::decode(
                bytes.value(),
                params.max_block_bytes as usize,
                params.max_block_txs,
            )
            .map_err(|e| self.corrupt(format!("block {hash}: {e}")))?;
            if block.compute_hash() != hash || block.header.height != height {
                return Err(self.corrupt(format!("block {hash} does not match its key")));
            }
            out.push((hash, block, bytes.value().to_vec()));
        }
        Ok(out)
    }

    /// Rebuilds the chain state from the store: the recorded best chain first, so that among
    /// equal-work branches the one that was best stays best, then every other branch. Signatures
    /// are not re-verified; every other rule is.
    pub fn load_chain(
        &self,
        params: &ChainParams,
        limits: TreeLimits,
    ) -> Result<ChainState, StoreError> {
        let mut chain = ChainState::with_limits(params.clone(), limits);
        let blocks = catch_panic(&self.path, || self.blocks_inner(params))?;
        let mut by_hash: HashMap<BlockHash, usize> = HashMap::with_capacity(blocks.len());
        for (i, (hash, _, _)) in blocks.iter().enumerate() {
            by_hash.insert(*hash, i);
        }
        let mut order = Vec::with_capacity(blocks.len());
        if let Some(tip) = self.tip()? {
            if tip != chain.chain_id() && !by_hash.contains_key(&tip) {
                return Err(self.corrupt(format!("the recorded tip {tip} is not stored")));
            }
            let mut hash = tip;
            while let Some(&i) = by_hash.get(&hash) {
                order.push(i);
                hash = blocks[i].1.header.prev_hash;
            }
            order.reverse();
        }
        let mut taken = vec![false; blocks.len()];
        for &i in &order {
            taken[i] = true;
        }
        order.extend((0..blocks.len()).filter(|i| !taken[*i]));
        let mut blocks: Vec<Option<(BlockHash, Block, Vec<u8>)>> =
            blocks.into_iter().map(Some).collect();
        for i in order {
            let Some((hash, block, wire)) = blocks[i].take() else {
                continue;
            };
            chain
                .load_stored(block, wire)
                .map_err(|e| self.corrupt(format!("stored block {hash} is invalid: {e}")))?;
            if chain.is_orphan(&hash) {
                return Err(self.corrupt(format!("stored block {hash} has no stored parent")));
            }
        }
        Ok(chain)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing commits redb's allocator state, which can panic on a damaged file too.
        if let Some(db) = self.db.take() {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(db)));
        }
    }
}

/// Runs a database operation, turning a panic into [`StoreError::Corrupt`]: redb 4 panics
/// (`unreachable!`, slice indices out of range) on some damaged files instead of returning an
/// error. The store should not be used after such an error.
fn catch_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!("the database file is damaged (redb panicked: {why})"),
        })
    })
}
