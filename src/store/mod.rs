//! The block store: an embedded ACID database (redb) holding every valid block, a compact index
//! of them, the ledger at the best tip and what undoing each best-chain block needs. Each batch
//! of accepted blocks and the new tip are committed in one transaction, durable when `commit`
//! returns, and that transaction also moves the stored ledger to the new tip (undoing and
//! applying blocks as the tree did), so a node killed at any instant reopens a store whose
//! ledger is exactly a replay of its stored best chain. A restart reads the tip, the index and
//! the ledger; it replays and re-verifies nothing (the blocks were validated before they were
//! written). [`Store::verify`] checks everything against a replay, for tests and repairs.
//!
//! Tables (schema 5; `meta` "schema" = 5):
//!
//! | table | key | value |
//! |---|---|---|
//! | `headers` | (height, block hash) | [`HeaderRecord`]: parent, timestamp, bits, cumulative work (genesis included), and where the body is in the body file |
//! | `bodies` | (height, block hash) | the consensus encoding, as received, of a block not in the body file |
//! | `accounts` | address | (balance, nonce) at the best tip |
//! | `undo` | block hash | the accounts a best-chain block touched, before it ([`Undo::encode`]) |
//! | `txids` | txid | the best-chain block holding it |
//! | `meta` | `chain_id`, `tip`, `tip_height`, `schema`, `bodies_end` | the chain the store belongs to, the best tip and its height, the format, the committed length of the body file |
//!
//! Bodies of blocks that join the best chain when stored go to the body file beside the
//! database (`blocks.bodies`, see [`bodyfile`]), appended in chain order: reading one is a
//! single positioned read found through an in-memory table, whatever the chain's length, and a
//! GetBlocks page is one read of neighbouring bytes. The file is made durable before the
//! transaction that records it commits, and bytes past the recorded end are cut off on open,
//! so a crash at any instant leaves the two consistent. Other blocks (side branches) keep
//! their bodies in `bodies`, from which pruning deletes them.
//!
//! Older stores are migrated when opened, in one transaction. Schema 4 kept every body in
//! `bodies`: they move to the body file. Schema 3 kept bodies keyed by
//! hash alone (`blocks`); they are re-keyed. Schema 2 kept the index records keyed by hash
//! alone (`index`); they are re-keyed too. Schema 1 (blocks, `by_height` and meta only) gets
//! its index built and the ledger replayed once from the stored best chain.

pub mod bodyfile;
mod commit;
mod load;
mod migrate;
mod reader;

pub use load::Verified;
pub use reader::StoreReader;

use crate::chain::ledger::Undo;
use crate::chain::target::Work;
use crate::chain::tree::HeaderRecord;
use crate::chain::{BlockHash, BlockKey, ChainId, ChainParams};
use bodyfile::{BodyFile, Location};
use redb::{Database, ReadableTable, TableDefinition};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Encoded blocks by (height, hash), of those not in the body file.
const BODIES: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("bodies");
/// Schemas 1 to 3's encoded blocks by hash alone, replaced by [`BODIES`]; read only by the
/// migration.
const BLOCKS_V3: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// A [`HeaderRecord`] of every stored block and of genesis, by (height, hash): read in key
/// order, parents come before children.
const INDEX: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("headers");
/// Schema 2's index by hash alone, replaced by [`INDEX`]; read only by the migration.
const INDEX_V2: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("index");
/// (balance, nonce) of every account at the best tip.
const ACCOUNTS: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("accounts");
/// The undo record of every best-chain block but genesis.
const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
/// The best-chain block of every best-chain transaction.
const TXIDS: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("txids");
/// Single values: the chain id the store belongs to, the best tip and its height, the schema.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Schema 1's (height, hash) index, replaced by [`INDEX`]; read only by the migration.
const BY_HEIGHT_V1: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("by_height");

/// redb's page cache (bodies are read from the body file, through the OS page cache).
const CACHE_BYTES: usize = 16 << 20;

/// The format written by this version.
const SCHEMA: u8 = 5;

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
    /// The store was written by a newer version of gossipchain.
    #[error(
        "block store {path} has format {found}, newer than this version's ({SCHEMA}): run a newer gossipchain, or use another data directory"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The store's schema.
        found: u8,
    },
}

/// An open block store.
pub struct Store {
    /// The database, shared with [`StoreReader`]s; `None` only while being dropped.
    db: Option<Arc<Database>>,
    /// Its file, for error messages.
    path: PathBuf,
    /// The chain's parameters: the genesis and the ledger rules the stored ledger follows.
    params: ChainParams,
    /// The best chain's bodies, shared with [`StoreReader`]s.
    file: Arc<BodyFile>,
}

impl Store {
    /// Opens or creates the store at `path` for the chain of `params`; a store of an older
    /// format is migrated first.
    pub fn open(path: &Path, params: &ChainParams) -> Result<Self, StoreError> {
        catch_panic(path, || Self::open_inner(path, params))
    }

    fn open_inner(path: &Path, params: &ChainParams) -> Result<Self, StoreError> {
        // redb's default cache (1 GiB) would fill with every page a restart reads; a small
        // one keeps memory flat in the chain's length (the OS page cache does the rest).
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| Self::db_err(path, e))?;
        let end = Self::committed_end(&db, path)?;
        let file =
            BodyFile::open(&BodyFile::path_of(path), end).map_err(|what| StoreError::Corrupt {
                path: path.to_path_buf(),
                what,
            })?;
        let store = Self {
            db: Some(Arc::new(db)),
            path: path.to_path_buf(),
            params: params.clone(),
            file: Arc::new(file),
        };
        let chain_id = params.chain_id();
        let tx = store.db().begin_write().map_err(|e| store.err(e))?;
        let schema = {
            let mut meta = tx.open_table(META).map_err(|e| store.err(e))?;
            let existing = meta
                .get("chain_id")
                .map_err(|e| store.err(e))?
                .map(|v| v.value().to_vec());
            let schema = meta
                .get("schema")
                .map_err(|e| store.err(e))?
                .map(|v| v.value().first().copied().unwrap_or(0));
            match existing {
                Some(found) if found != chain_id.as_bytes() => {
                    return Err(StoreError::WrongChain {
                        path: store.path.clone(),
                        expected: chain_id,
                        found: hex::encode(found),
                    });
                }
                Some(_) => schema.unwrap_or(1),
                None => {
                    meta.insert("chain_id", chain_id.as_bytes().as_slice())
                        .map_err(|e| store.err(e))?;
                    meta.insert("schema", [SCHEMA].as_slice())
                        .map_err(|e| store.err(e))?;
                    SCHEMA
                }
            }
        };
        if schema > SCHEMA {
            return Err(StoreError::TooNew {
                path: store.path.clone(),
                found: schema,
            });
        }
        // Opened after `meta` is closed: a write table still open while redb unwinds from a
        // panic (on a damaged file) panics again in its destructor, which aborts the process.
        tx.open_table(BODIES).map_err(|e| store.err(e))?;
        tx.open_table(ACCOUNTS).map_err(|e| store.err(e))?;
        tx.open_table(UNDO).map_err(|e| store.err(e))?;
        tx.open_table(TXIDS).map_err(|e| store.err(e))?;
        {
            let mut index = tx.open_table(INDEX).map_err(|e| store.err(e))?;
            if index
                .get((0, chain_id.as_bytes()))
                .map_err(|e| store.err(e))?
                .is_none()
            {
                let genesis = params.genesis();
                let record = HeaderRecord {
                    hash: chain_id,
                    prev: genesis.header.prev_hash,
                    height: 0,
                    timestamp: genesis.header.timestamp,
                    bits: genesis.header.bits,
                    work: params.genesis_target().work(),
                };
                index
                    .insert(
                        (0, chain_id.as_bytes()),
                        encode_record(&record, Location::NONE).as_slice(),
                    )
                    .map_err(|e| store.err(e))?;
            }
        }
        if schema < SCHEMA {
            // Should the commit fail, the store is not opened, and what the migration wrote to
            // the body file is cut off when it next opens.
            store.migrate(&tx, schema)?;
        }
        tx.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// The body file's committed length recorded in `db` (0 for a new store or one of a
    /// schema without the file).
    fn committed_end(db: &Database, path: &Path) -> Result<u64, StoreError> {
        use redb::ReadableDatabase;
        let tx = db.begin_read().map_err(|e| Self::db_err(path, e))?;
        let meta = match tx.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(Self::db_err(path, e)),
        };
        let Some(v) = meta.get("bodies_end").map_err(|e| Self::db_err(path, e))? else {
            return Ok(0);
        };
        let bytes: [u8; 8] = v.value().try_into().map_err(|_| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "the body file's length record is not 8 bytes".into(),
        })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Records the body file's committed length in `tx`.
    fn write_end(&self, tx: &redb::WriteTransaction, end: u64) -> Result<(), StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert("bodies_end", end.to_be_bytes().as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The stored encoding of the block `id`, whose index record says where it is (`at`):
    /// from the body file, or from `bodies`.
    fn stored_wire(
        &self,
        bodies: &impl ReadableTable<(u64, &'static [u8; 32]), &'static [u8]>,
        id: BlockKey,
        at: Location,
    ) -> Result<Vec<u8>, StoreError> {
        read_wire(&self.file, &self.path, &self.params, bodies, id, at)
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

    /// The best tip a `meta` table records.
    fn tip_of(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<BlockKey>, StoreError> {
        let Some(hash) = self.tip_hash(meta)? else {
            return Ok(None);
        };
        let height = meta
            .get("tip_height")
            .map_err(|e| self.err(e))?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .ok_or_else(|| self.corrupt("the tip's height record is missing or damaged".into()))?;
        Ok(Some(BlockKey::new(u64::from_be_bytes(height), hash)))
    }

    /// The hash of the best tip a `meta` table records (every schema has it).
    fn tip_hash(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<BlockHash>, StoreError> {
        let Some(v) = meta.get("tip").map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = v
            .value()
            .try_into()
            .map_err(|_| self.corrupt("tip record is not 32 bytes".into()))?;
        Ok(Some(BlockHash(bytes)))
    }

    /// The chain's parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// A handle that reads this store on any thread, while it is written.
    pub fn reader(&self) -> StoreReader {
        StoreReader::new(
            self.db
                .clone()
                .expect("the database is open until the store is dropped"),
            self.path.clone(),
            self.params.clone(),
            self.file.clone(),
        )
    }
}

/// The stored encoding of the block `id`, at `at` in `file` or else in `bodies`.
fn read_wire(
    file: &BodyFile,
    path: &Path,
    params: &ChainParams,
    bodies: &impl ReadableTable<(u64, &'static [u8; 32]), &'static [u8]>,
    id: BlockKey,
    at: Location,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let hash = id.hash;
    if at.is_some() {
        if at.len > params.max_block_bytes {
            return Err(corrupt(format!(
                "the index record of block {hash} gives a body of {} bytes",
                at.len
            )));
        }
        return file.read(at).map_err(|e| {
            corrupt(format!(
                "block {hash} cannot be read from {}: {e}",
                file.path().display()
            ))
        });
    }
    let v = bodies
        .get((id.height, hash.as_bytes()))
        .map_err(|e| StoreError::Db {
            path: path.to_path_buf(),
            cause: Box::new(e.into()),
        })?
        .ok_or_else(|| corrupt(format!("block {hash} is indexed but missing")))?;
    Ok(v.value().to_vec())
}

/// The 88 bytes of a [`HeaderRecord`] in the `headers` table (whose key holds the height and
/// the hash): parent hash, timestamp (u64), bits (u32), cumulative work (32 bytes), then where
/// the body is in the body file ([`Location::encode`]; length 0 for a body in `bodies`),
/// integers big-endian. Schema 4 wrote the first 76 alone.
fn encode_record(r: &HeaderRecord, at: Location) -> [u8; 88] {
    let mut out = [0u8; 88];
    out[0..32].copy_from_slice(r.prev.as_bytes());
    out[32..40].copy_from_slice(&r.timestamp.to_be_bytes());
    out[40..44].copy_from_slice(&r.bits.to_be_bytes());
    out[44..76].copy_from_slice(&r.work.to_be_bytes());
    out[76..88].copy_from_slice(&at.encode());
    out
}

/// Reads [`encode_record`]'s bytes (or schema 4's 76) for the block `hash` at `height`.
fn decode_entry(height: u64, hash: BlockHash, bytes: &[u8]) -> Option<(HeaderRecord, Location)> {
    let at = match bytes.len() {
        76 => Location::NONE,
        88 => Location::decode(bytes[76..88].try_into().ok()?),
        _ => return None,
    };
    Some((decode_record(height, hash, &bytes[..76])?, at))
}

/// Reads the first 76 bytes of [`encode_record`] for the block `hash` at `height`.
fn decode_record(height: u64, hash: BlockHash, bytes: &[u8]) -> Option<HeaderRecord> {
    let b: &[u8; 76] = bytes.get(..76)?.try_into().ok()?;
    Some(HeaderRecord {
        hash,
        height,
        prev: BlockHash(b[0..32].try_into().ok()?),
        timestamp: u64::from_be_bytes(b[32..40].try_into().ok()?),
        bits: u32::from_be_bytes(b[40..44].try_into().ok()?),
        work: Work::from_be_bytes(b[44..76].try_into().ok()?),
    })
}

/// Reads a schema 2 `index` record (84 bytes: the height first, then as [`encode_record`]).
fn decode_record_v2(hash: BlockHash, bytes: &[u8]) -> Option<HeaderRecord> {
    let (height, rest) = bytes.split_at_checked(8)?;
    decode_record(u64::from_be_bytes(height.try_into().ok()?), hash, rest)
}

/// Decodes an undo record, or says which block's is damaged.
fn decode_undo(hash: &BlockHash, bytes: &[u8]) -> Result<Undo, String> {
    Undo::decode(bytes).ok_or_else(|| format!("the undo record of block {hash} does not decode"))
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
