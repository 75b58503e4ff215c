//! Migration of older stores to the current schema, inside the transaction that opens the
//! store, so a crash during it leaves the old store as it was (the body file it was writing
//! is cut back when the store next opens). Schema 4 kept every body in the `bodies` table:
//! they move to the body file, in key order, and each index record gains its location.
//! Schemas 1 to 3 kept bodies by
//! hash alone: they are re-keyed by (height, hash) and the tip's height recorded. Schema 2's
//! index records are re-keyed the same way. Schema 1 (blocks, a (height, hash) index and the
//! tip only) gets index records for every block, then the ledger, undo records and txid index
//! built by applying the stored best chain once.

use super::bodyfile::Location;
use super::commit::Tables;
use super::{
    BLOCKS_V3, BODIES, BY_HEIGHT_V1, INDEX, INDEX_V2, META, SCHEMA, Store, StoreError,
    decode_entry, decode_record_v2, encode_record,
};
use crate::chain::{BlockHash, BlockKey};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use std::collections::HashMap;

/// The height in a stored block's header (bytes 4..12 of its encoding).
fn header_height(wire: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(wire.get(4..12)?.try_into().ok()?))
}

impl Store {
    /// Brings a store of `schema` (1 to 4) to [`SCHEMA`].
    pub(super) fn migrate(&self, tx: &WriteTransaction, schema: u8) -> Result<(), StoreError> {
        if schema <= 3 {
            self.rekey_bodies(tx)?;
            if schema == 2 {
                self.rekey_v2(tx)?;
            } else if schema == 1 {
                self.migrate_v1(tx)?;
            }
        }
        self.file_bodies(tx)?;
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert("schema", [SCHEMA].as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Schema 4 -> 5: every body moves from the `bodies` table to the body file, in key order
    /// (height first), and its index record says where.
    fn file_bodies(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        /// Bodies written to the file at a time.
        const CHUNK_BYTES: usize = 8 << 20;
        let started = std::time::Instant::now();
        let mut moved = 0u64;
        let mut end = self.file.end();
        {
            let bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            let mut index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
            let mut rows = bodies.iter().map_err(|e| self.err(e))?;
            loop {
                let mut keys: Vec<(u64, [u8; 32])> = Vec::new();
                let mut chunk: Vec<Vec<u8>> = Vec::new();
                let mut bytes = 0usize;
                for row in rows.by_ref() {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    let (height, hash) = k.value();
                    keys.push((height, *hash));
                    bytes += v.value().len();
                    chunk.push(v.value().to_vec());
                    if bytes >= CHUNK_BYTES {
                        break;
                    }
                }
                if keys.is_empty() {
                    break;
                }
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                let (spots, new_end) = self
                    .file
                    .append(&refs)
                    .map_err(|e| self.err(redb::Error::Io(e)))?;
                // The next chunk goes after this one (the store is not committed yet).
                self.file.committed(new_end);
                end = new_end;
                for ((height, hash), at) in keys.iter().zip(spots) {
                    let id = BlockHash(*hash);
                    let record = {
                        let v = index
                            .get((*height, hash))
                            .map_err(|e| self.err(e))?
                            .ok_or_else(|| {
                                self.corrupt(format!("stored block {id} has no index record"))
                            })?;
                        decode_entry(*height, id, v.value())
                            .ok_or_else(|| {
                                self.corrupt(format!("the index record of block {id} is damaged"))
                            })?
                            .0
                    };
                    index
                        .insert((*height, hash), encode_record(&record, at).as_slice())
                        .map_err(|e| self.err(e))?;
                }
                moved += keys.len() as u64;
            }
        }
        tx.delete_table(BODIES).map_err(|e| self.err(e))?;
        tx.open_table(BODIES).map_err(|e| self.err(e))?;
        self.write_end(tx, end)?;
        tracing::info!(
            path = %self.path.display(),
            blocks = moved,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "block store bodies moved to {} for schema {SCHEMA}",
            self.file.path().display()
        );
        Ok(())
    }

    /// Schemas 1 to 3 -> 4: the bodies re-keyed by (height, hash), and the tip's height
    /// recorded beside it.
    fn rekey_bodies(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let chain_id = self.params.chain_id();
        let tip = {
            let meta = tx.open_table(META).map_err(|e| self.err(e))?;
            self.tip_hash(&meta)?
        };
        let mut tip_height = None;
        let moved = {
            let old = tx.open_table(BLOCKS_V3).map_err(|e| self.err(e))?;
            let mut bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            // The keys first, then the bodies inserted in key order: appended, they fill
            // whole pages in sequence, as commits do.
            let mut keys = Vec::with_capacity(old.len().map_err(|e| self.err(e))? as usize);
            for row in old.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let hash = BlockHash(*k.value());
                let height = header_height(v.value())
                    .ok_or_else(|| self.corrupt(format!("stored block {hash} is truncated")))?;
                if Some(hash) == tip {
                    tip_height = Some(height);
                }
                keys.push(BlockKey::new(height, hash));
            }
            keys.sort_unstable_by_key(|k| (k.height, k.hash.0));
            for key in &keys {
                let v = old
                    .get(key.hash.as_bytes())
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| self.corrupt(format!("block {} vanished", key.hash)))?;
                bodies
                    .insert((key.height, key.hash.as_bytes()), v.value())
                    .map_err(|e| self.err(e))?;
            }
            keys.len()
        };
        tx.delete_table(BLOCKS_V3).map_err(|e| self.err(e))?;
        if let Some(tip) = tip {
            let height = if tip == chain_id { Some(0) } else { tip_height };
            let height = height
                .ok_or_else(|| self.corrupt(format!("the recorded tip {tip} is not stored")))?;
            self.write_tip(tx, BlockKey::new(height, tip))?;
        }
        tracing::info!(
            path = %self.path.display(),
            blocks = moved,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "block store bodies re-keyed by height for schema {SCHEMA}"
        );
        Ok(())
    }

    /// Schema 2 -> 3: the index records re-keyed by (height, hash).
    fn rekey_v2(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let mut records = Vec::new();
        {
            let old = tx.open_table(INDEX_V2).map_err(|e| self.err(e))?;
            for row in old.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let hash = BlockHash(*k.value());
                records.push(decode_record_v2(hash, v.value()).ok_or_else(|| {
                    self.corrupt(format!("the index record of block {hash} is damaged"))
                })?);
            }
        }
        {
            let mut index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
            for r in &records {
                index
                    .insert(
                        (r.height, r.hash.as_bytes()),
                        encode_record(r, Location::NONE).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.delete_table(INDEX_V2).map_err(|e| self.err(e))?;
        tracing::info!(path = %self.path.display(), blocks = records.len(), "block store index re-keyed to schema {SCHEMA}");
        Ok(())
    }

    fn migrate_v1(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let chain_id = self.params.chain_id();
        let mut heights: Vec<(u64, BlockHash)> = Vec::new();
        {
            let by_height = tx.open_table(BY_HEIGHT_V1).map_err(|e| self.err(e))?;
            for row in by_height.iter().map_err(|e| self.err(e))? {
                let (k, _) = row.map_err(|e| self.err(e))?;
                let (height, hash) = k.value();
                heights.push((height, BlockHash(*hash)));
            }
        }
        let tip = self.stored_tip(tx)?.unwrap_or(self.genesis_id());
        {
            let mut t = Tables::open(self, tx)?;
            for (height, hash) in &heights {
                let block = {
                    let v = t
                        .bodies
                        .get((*height, hash.as_bytes()))
                        .map_err(|e| self.err(e))?
                        .ok_or_else(|| {
                            self.corrupt(format!("block {hash} is indexed but missing"))
                        })?;
                    self.decode_block(hash, v.value())?
                };
                if block.header.height != *height {
                    return Err(self.corrupt(format!("block {hash} does not match its key")));
                }
                let record = self.record_of(&t, &block, *hash)?;
                t.index
                    .insert(
                        (*height, hash.as_bytes()),
                        encode_record(&record, Location::NONE).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
            }
            // The stored ledger of schema 1 is empty, at genesis: apply the best chain.
            let mut best = Vec::new();
            let mut id = tip;
            while id.hash != chain_id {
                let record = self.must_record(&t, id, "the recorded tip")?;
                best.push(id);
                id = BlockKey::new(record.height.wrapping_sub(1), record.prev);
            }
            let none = HashMap::new();
            for id in best.iter().rev() {
                self.connect(&mut t, *id, &none)?;
            }
        }
        tx.delete_table(BY_HEIGHT_V1).map_err(|e| self.err(e))?;
        tracing::info!(
            path = %self.path.display(),
            blocks = heights.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "block store migrated to schema {SCHEMA}: the ledger is stored from now on"
        );
        Ok(())
    }
}
