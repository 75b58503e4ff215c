//! Migration of a schema 1 store (blocks, a (height, hash) index and the tip only) to schema 2:
//! index records for every block, then the ledger, undo records and txid index built by
//! applying the stored best chain once. Runs inside the transaction that opens the store, so a
//! crash during it leaves the schema 1 store as it was.

use super::commit::Tables;
use super::{
    BY_HEIGHT_V1, INDEX, INDEX_V2, META, SCHEMA, Store, StoreError, decode_record_v2, encode_record,
};
use crate::chain::BlockHash;
use redb::{ReadableTable, WriteTransaction};
use std::collections::HashMap;

impl Store {
    /// Brings a store of `schema` (1 or 2) to [`SCHEMA`].
    pub(super) fn migrate(&self, tx: &WriteTransaction, schema: u8) -> Result<(), StoreError> {
        if schema == 2 {
            self.rekey_v2(tx)?;
        } else {
            self.migrate_v1(tx)?;
        }
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert("schema", [SCHEMA].as_slice())
            .map_err(|e| self.err(e))?;
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
                    .insert((r.height, r.hash.as_bytes()), encode_record(r).as_slice())
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
        let tip = self.stored_tip(tx)?.unwrap_or(chain_id);
        {
            let mut t = Tables::open(self, tx)?;
            for (height, hash) in &heights {
                let block = {
                    let v = t
                        .blocks
                        .get(hash.as_bytes())
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
                        encode_record(&record).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
            }
            // The stored ledger of schema 1 is empty, at genesis: apply the best chain.
            let mut best = Vec::new();
            let mut hash = tip;
            while hash != chain_id {
                let record = self.must_record(&t, &hash, "the recorded tip")?;
                best.push(hash);
                hash = record.prev;
            }
            let none = HashMap::new();
            for hash in best.iter().rev() {
                self.connect(&mut t, hash, &none)?;
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
