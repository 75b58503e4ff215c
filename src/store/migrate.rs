//! Migration of a schema 1 store (blocks, a (height, hash) index and the tip only) to schema 2:
//! index records for every block, then the ledger, undo records and txid index built by
//! applying the stored best chain once. Runs inside the transaction that opens the store, so a
//! crash during it leaves the schema 1 store as it was.

use super::commit::Tables;
use super::{BY_HEIGHT_V1, META, SCHEMA, Store, StoreError, encode_record};
use crate::chain::BlockHash;
use redb::{ReadableTable, WriteTransaction};
use std::collections::HashMap;

impl Store {
    pub(super) fn migrate(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
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
                    .insert(hash.as_bytes(), encode_record(&record).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            // The stored ledger of schema 1 is empty, at genesis: apply the best chain.
            let mut best = Vec::new();
            let mut hash = tip;
            while hash != chain_id {
                let record = self
                    .read_record(&t.index, &hash)?
                    .ok_or_else(|| self.corrupt(format!("the recorded tip {tip} is not stored")))?;
                best.push(hash);
                hash = record.prev;
            }
            let none = HashMap::new();
            for hash in best.iter().rev() {
                self.connect(&mut t, hash, &none)?;
            }
        }
        tx.delete_table(BY_HEIGHT_V1).map_err(|e| self.err(e))?;
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert("schema", [SCHEMA].as_slice())
            .map_err(|e| self.err(e))?;
        tracing::info!(
            path = %self.path.display(),
            blocks = heights.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "block store migrated to schema {SCHEMA}: the ledger is stored from now on"
        );
        Ok(())
    }
}
