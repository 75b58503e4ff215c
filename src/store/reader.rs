//! Reading blocks, undo records and the txid index from any thread while the store writer
//! commits: redb gives each read a consistent snapshot of the last committed transaction.

use super::bodyfile::{BodyFile, Location};
use super::{
    BODIES, INDEX, StoreError, TXIDS, UNDO, catch_panic, decode_entry, decode_undo, read_wire,
};
use crate::chain::block::HEADER_LEN;
use crate::chain::hash::sha256;
use crate::chain::ledger::Undo;
use crate::chain::tree::BlockSource;
use crate::chain::{Block, BlockHash, BlockKey, ChainParams, CheckedBlock, Header, Txid};
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
    /// The best chain's bodies.
    file: Arc<BodyFile>,
}

/// Whether `wire` is the encoding of a block hashing to `hash` (its header's SHA-256).
fn hashes_to(wire: &[u8], hash: &BlockHash) -> bool {
    wire.get(..HEADER_LEN)
        .is_some_and(|header| sha256(header) == hash.0)
}

/// The parent hash in a block's encoding (bytes 12..44 of its header).
fn parent_in(wire: &[u8]) -> Option<&[u8]> {
    wire.get(12..44)
}

impl StoreReader {
    pub(super) fn new(
        db: Arc<Database>,
        path: PathBuf,
        params: ChainParams,
        file: Arc<BodyFile>,
    ) -> Self {
        Self {
            db,
            path,
            params,
            file,
        }
    }

    /// The best chain's body at `height` as of the last commit, read from the body file
    /// without checking which block it is.
    fn best_wire(&self, height: u64) -> Option<Vec<u8>> {
        let at = self
            .file
            .locations
            .read()
            .expect("locations lock")
            .get(height)
            .filter(|at| at.len <= self.params.max_block_bytes)?;
        self.file.read(at).ok()
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

    /// The stored encoding of a block: a best-chain block straight from the body file, any
    /// other through its index record.
    pub fn wire(&self, id: &BlockKey) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(wire) = self.best_wire(id.height)
            && hashes_to(&wire, &id.hash)
        {
            return Ok(Some(wire));
        }
        catch_panic(&self.path, || {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
            let Some(v) = index
                .get((id.height, id.hash.as_bytes()))
                .map_err(|e| self.err(e))?
            else {
                return Ok(None);
            };
            let (_, at) = decode_entry(id.height, id.hash, v.value()).ok_or_else(|| {
                self.corrupt(format!("the index record of block {} is damaged", id.hash))
            })?;
            let bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            let wire = read_wire(&self.file, &self.path, &self.params, &bodies, *id, at)?;
            if !hashes_to(&wire, &id.hash) {
                return Err(self.corrupt(format!("block {} does not match its key", id.hash)));
            }
            Ok(Some(wire))
        })
    }

    /// The stored encodings of `ids`, which must be in height order: those of the longest
    /// prefix that is stored and fits in `budget` bytes (the first whatever its size). A run
    /// of best-chain blocks at consecutive heights is read from the body file in one read per
    /// stretch of neighbouring bytes; the rest one by one.
    pub fn wires(&self, ids: &[BlockKey], budget: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(ids.len());
        let mut used = 0usize;
        let fast = self.best_run(ids, budget);
        if !fast.is_empty() {
            used = fast.iter().map(Vec::len).sum();
            out = fast;
        }
        for id in &ids[out.len()..] {
            let Some(wire) = self.wire(id)? else {
                break;
            };
            if !out.is_empty() && used + wire.len() > budget {
                break;
            }
            used += wire.len();
            out.push(wire);
        }
        Ok(out)
    }

    /// The longest prefix of `ids` that is a run of the best chain in the body file and fits
    /// in `budget`, read in as few reads as the file allows; empty if the file's best chain
    /// is not `ids` (a commit moved it, or the ids are not one chain). The last block of the
    /// run is hashed and each one's parent link compared with the ids, which together prove
    /// every block of the run is the one asked for.
    fn best_run(&self, ids: &[BlockKey], budget: usize) -> Vec<Vec<u8>> {
        let mut spots: Vec<Location> = Vec::new();
        {
            let locations = self.file.locations.read().expect("locations lock");
            let mut used = 0usize;
            for (i, id) in ids.iter().enumerate() {
                if i > 0 && id.height != ids[i - 1].height + 1 {
                    break;
                }
                let Some(at) = locations
                    .get(id.height)
                    .filter(|at| at.len <= self.params.max_block_bytes)
                else {
                    break;
                };
                if !spots.is_empty() && used + at.len as usize > budget {
                    break;
                }
                used += at.len as usize;
                spots.push(at);
            }
        }
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(spots.len());
        let mut i = 0;
        while i < spots.len() {
            // A stretch of bodies that follow one another in the file.
            let mut j = i + 1;
            while j < spots.len()
                && spots[j].offset == spots[j - 1].offset + u64::from(spots[j - 1].len)
            {
                j += 1;
            }
            let len: u64 = spots[i..j].iter().map(|s| u64::from(s.len)).sum();
            let mut buf = vec![0u8; len as usize];
            if self.file.read_into(spots[i].offset, &mut buf).is_err() {
                break;
            }
            let mut at = 0usize;
            for s in &spots[i..j] {
                out.push(buf[at..at + s.len as usize].to_vec());
                at += s.len as usize;
            }
            i = j;
        }
        let Some(last) = out.len().checked_sub(1) else {
            return Vec::new();
        };
        let linked = (1..out.len()).all(|k| parent_in(&out[k]) == Some(ids[k - 1].hash.as_bytes()));
        if linked && hashes_to(&out[last], &ids[last].hash) {
            out
        } else {
            Vec::new()
        }
    }

    /// The headers of `ids`: those of the longest prefix that is stored. A best-chain block's
    /// header is read alone from the body file (one 96-byte positioned read, hashed to check
    /// it is the one asked for), any other through [`StoreReader::wire`].
    pub fn headers(&self, ids: &[BlockKey]) -> Result<Vec<Header>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let at = self
                .file
                .locations
                .read()
                .expect("locations lock")
                .get(id.height)
                .filter(|at| at.len as usize >= HEADER_LEN);
            let mut bytes = [0u8; HEADER_LEN];
            let from_file = at.is_some_and(|at| {
                self.file.read_into(at.offset, &mut bytes).is_ok() && hashes_to(&bytes, &id.hash)
            });
            if !from_file {
                let Some(wire) = self.wire(id)? else {
                    break;
                };
                bytes.copy_from_slice(&wire[..HEADER_LEN]);
            }
            let header = Header::decode(&bytes)
                .map_err(|e| self.corrupt(format!("the header of block {}: {e}", id.hash)))?;
            out.push(header);
        }
        Ok(out)
    }

    /// A stored block, decoded and checked to be the one its key names.
    pub fn block(&self, id: &BlockKey) -> Result<Option<CheckedBlock>, StoreError> {
        let hash = &id.hash;
        // The best chain's body, hashed once (by `stored`) to check it is the one asked for.
        if let Some(wire) = self.best_wire(id.height)
            && let Ok(block) = Block::decode(
                &wire,
                self.params.max_block_bytes as usize,
                self.params.max_block_txs,
            )
        {
            let checked = CheckedBlock::stored(block, wire);
            if checked.hash() == *hash {
                return Ok(Some(checked));
            }
        }
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

    fn headers(&self, ids: &[BlockKey]) -> Result<Vec<Header>, String> {
        StoreReader::headers(self, ids).map_err(|e| e.to_string())
    }
}
