//! Reading the store back: the tip, the index, the ledger, and [`Store::verify`], which checks
//! every table against the stored blocks and a replay of the best chain.

use super::bodyfile::Location;
use super::{
    ACCOUNTS, BODIES, INDEX, META, Store, StoreError, TXIDS, UNDO, catch_panic, decode_entry,
    decode_undo,
};
use crate::chain::ledger::Undo;
use crate::chain::target::Target;
use crate::chain::tree::{HeaderRecord, TreeLimits};
use crate::chain::{
    Account, Address, Block, BlockHash, BlockKey, ChainState, CheckedBlock, Ledger,
};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::HashMap;
use std::sync::Arc;

/// What [`Store::verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Stored blocks (genesis excluded).
    pub blocks: u64,
    /// Height of the best chain.
    pub height: u64,
    /// Accounts in the ledger.
    pub accounts: usize,
}

impl Store {
    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db().begin_read().map_err(|e| self.err(e))
    }

    /// The recorded best tip, if any block was ever committed.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        catch_panic(&self.path, || {
            Ok(self.tip_in(&self.read()?)?.map(|id| id.hash))
        })
    }

    fn tip_in(&self, tx: &ReadTransaction) -> Result<Option<BlockKey>, StoreError> {
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        self.tip_of(&meta)
    }

    /// Number of blocks stored (genesis is not).
    pub fn block_count(&self) -> Result<u64, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.read()?;
            let index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
            Ok(index.len().map_err(|e| self.err(e))?.saturating_sub(1))
        })
    }

    /// The stored ledger (at the recorded tip).
    pub fn ledger(&self) -> Result<Ledger, StoreError> {
        catch_panic(&self.path, || self.ledger_in(&self.read()?))
    }

    fn ledger_in(&self, tx: &ReadTransaction) -> Result<Ledger, StoreError> {
        let table = tx.open_table(ACCOUNTS).map_err(|e| self.err(e))?;
        let mut accounts = Vec::with_capacity(table.len().map_err(|e| self.err(e))? as usize);
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (balance, nonce) = v.value();
            accounts.push((Address(*k.value()), Account { balance, nonce }));
        }
        Ok(Ledger::from_accounts(accounts))
    }

    /// Every index record but genesis's, with where its body is, in height order (then by
    /// hash), to `f`.
    fn each_record(
        &self,
        tx: &ReadTransaction,
        mut f: impl FnMut(HeaderRecord, Location) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
        let mut count = 0;
        for row in index.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (height, hash) = k.value();
            let hash = BlockHash(*hash);
            let (record, at) = decode_entry(height, hash, v.value()).ok_or_else(|| {
                self.corrupt(format!("the index record of block {hash} is damaged"))
            })?;
            if height > 0 {
                f(record, at)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Every index record but genesis's, with where its body is, in height order (then by
    /// hash).
    fn records_in(
        &self,
        tx: &ReadTransaction,
    ) -> Result<Vec<(HeaderRecord, Location)>, StoreError> {
        let mut out = Vec::new();
        self.each_record(tx, |r, at| {
            out.push((r, at));
            Ok(())
        })?;
        Ok(out)
    }

    /// Every stored block with its hash, in height order.
    pub fn blocks(&self) -> Result<Vec<(BlockHash, Block)>, StoreError> {
        catch_panic(&self.path, || {
            let tx = self.read()?;
            let blocks = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for (record, at) in self.records_in(&tx)? {
                let hash = record.hash;
                let wire = self.stored_wire(&blocks, BlockKey::new(record.height, hash), at)?;
                out.push((hash, self.decode_block(&hash, &wire)?));
            }
            Ok(out)
        })
    }

    /// Rebuilds the chain state from the store: the recorded tip, the index, the ledger and the
    /// undo records as they are. Nothing is replayed or re-validated (the blocks were validated
    /// before they were written; [`Store::verify`] checks a store against a replay).
    pub fn load_chain(&self, limits: TreeLimits) -> Result<ChainState, StoreError> {
        catch_panic(&self.path, || self.load_inner(limits))
    }

    fn load_inner(&self, limits: TreeLimits) -> Result<ChainState, StoreError> {
        let tx = self.read()?;
        let tip = self
            .tip_in(&tx)?
            .map_or(self.params.chain_id(), |id| id.hash);
        let count = tx
            .open_table(INDEX)
            .map_err(|e| self.err(e))?
            .len()
            .map_err(|e| self.err(e))?;
        let mut restore = ChainState::restore(self.params.clone(), limits, count as usize);
        // Where each body in the file is, by height, with the first bytes of its hash to tell
        // blocks of one height apart: matched against the best chain once it is known.
        let mut filed: Vec<(u64, [u8; 8], Location)> = Vec::with_capacity(count as usize);
        self.each_record(&tx, |r, at| {
            if at.is_some() {
                filed.push((r.height, r.hash.0[..8].try_into().expect("8 bytes"), at));
            }
            restore.push(&r).map_err(|e| self.corrupt(e))
        })?;
        let ledger = self.ledger_in(&tx)?;
        let chain = restore
            .finish(tip, ledger, Arc::new(self.reader()))
            .map_err(|e| self.corrupt(e))?;
        let top = chain.height();
        let mut best = Vec::with_capacity(top as usize);
        let mut rows = filed.iter().peekable();
        for height in 1..=top {
            let hash = chain.hash_at(height).expect("a best-chain height");
            let mut found = Location::NONE;
            while let Some(&&(h, fragment, at)) = rows.peek() {
                if h > height {
                    break;
                }
                if h == height && fragment == hash.0[..8] {
                    // Two blocks of one height sharing 8 bytes of hash: read through redb.
                    found = if found.is_some() { Location::NONE } else { at };
                }
                rows.next();
            }
            best.push(found);
        }
        drop(filed);
        self.file
            .locations
            .write()
            .expect("locations lock")
            .set(1, &best, top);
        Ok(chain)
    }

    /// Checks the whole store: every block decodes to the hash it is stored under and passes
    /// the rules that need no chain state; its index record matches its header and its parent's
    /// record; and the stored ledger, undo records and txid index equal a replay of the stored
    /// best chain from genesis. Reads every block: the cost grows with the chain.
    pub fn verify(&self) -> Result<Verified, StoreError> {
        catch_panic(&self.path, || self.verify_inner())
    }

    fn verify_inner(&self) -> Result<Verified, StoreError> {
        let tx = self.read()?;
        let params = &self.params;
        let chain_id = params.chain_id();
        let index = tx.open_table(INDEX).map_err(|e| self.err(e))?;
        let blocks = tx.open_table(BODIES).map_err(|e| self.err(e))?;
        let records = self.records_in(&tx)?;
        let inline = records.iter().filter(|(_, at)| !at.is_some()).count() as u64;
        let in_table = blocks.len().map_err(|e| self.err(e))?;
        if in_table != inline {
            return Err(self.corrupt(format!(
                "{in_table} bodies are in the bodies table but {inline} index records point there"
            )));
        }
        let stored = records.len() as u64;
        let mut by_hash: HashMap<BlockHash, Arc<CheckedBlock>> = HashMap::new();
        for (record, at) in &records {
            let hash = record.hash;
            let wire = self.stored_wire(&blocks, BlockKey::new(record.height, hash), *at)?;
            let block = self.decode_block(&hash, &wire)?;
            let checked = CheckedBlock::check(Arc::new(block), hash, Some(wire), params)
                .map_err(|e| self.corrupt(format!("stored block {hash} is invalid: {e}")))?;
            let parent = self
                .read_record(&index, record.height - 1, &record.prev)?
                .ok_or_else(|| self.corrupt(format!("stored block {hash} has no stored parent")))?;
            let own = Target::from_compact(record.bits)
                .map_err(|e| self.corrupt(format!("block {hash}: {e}")))?
                .work();
            let h = &checked.header;
            if h.height != record.height
                || h.prev_hash != record.prev
                || h.timestamp != record.timestamp
                || h.bits != record.bits
                || parent.height + 1 != record.height
                || parent.work.saturating_add(own) != record.work
            {
                return Err(self.corrupt(format!("the index record of block {hash} is wrong")));
            }
            by_hash.insert(hash, Arc::new(checked));
        }
        // The best chain, tip down, then replayed from genesis.
        let tip_key = self.tip_in(&tx)?.unwrap_or(BlockKey::new(0, chain_id));
        let tip = tip_key.hash;
        let mut best = Vec::new();
        let mut hash = tip;
        while hash != chain_id {
            let block = by_hash
                .get(&hash)
                .ok_or_else(|| self.corrupt(format!("the recorded tip {tip} is not stored")))?;
            best.push(block.clone());
            hash = block.header.prev_hash;
        }
        best.reverse();
        if best.len() as u64 != tip_key.height {
            return Err(self.corrupt(format!(
                "the recorded tip {tip} is at height {}, not {}",
                best.len(),
                tip_key.height
            )));
        }
        let undo_table = tx.open_table(UNDO).map_err(|e| self.err(e))?;
        let txids = tx.open_table(TXIDS).map_err(|e| self.err(e))?;
        let mut ledger = Ledger::default();
        let mut tx_count = 0u64;
        for block in &best {
            let hash = block.hash();
            let undo = ledger
                .apply_block(block, block.txids(), params)
                .map_err(|e| self.corrupt(format!("stored block {hash} is invalid: {e}")))?;
            let stored: Option<Undo> = undo_table
                .get(hash.as_bytes())
                .map_err(|e| self.err(e))?
                .map(|v| decode_undo(&hash, v.value()))
                .transpose()
                .map_err(|e| self.corrupt(e))?;
            if stored.as_ref() != Some(&undo) {
                return Err(self.corrupt(format!("the undo record of block {hash} is wrong")));
            }
            for txid in block.txids() {
                let holder = txids.get(txid.as_bytes()).map_err(|e| self.err(e))?;
                if holder.map(|v| *v.value()) != Some(*hash.as_bytes()) {
                    return Err(self.corrupt(format!("txid {txid} is not indexed to block {hash}")));
                }
            }
            tx_count += block.txids().len() as u64;
        }
        let undos = undo_table.len().map_err(|e| self.err(e))?;
        if undos != best.len() as u64 {
            return Err(self.corrupt(format!(
                "{undos} undo records for {} best-chain blocks",
                best.len()
            )));
        }
        let indexed = txids.len().map_err(|e| self.err(e))?;
        if indexed != tx_count {
            return Err(self.corrupt(format!(
                "{indexed} txids indexed for {tx_count} best-chain transactions"
            )));
        }
        if self.ledger_in(&tx)? != ledger {
            return Err(self.corrupt(
                "the stored ledger differs from a replay of the stored best chain".into(),
            ));
        }
        Ok(Verified {
            blocks: stored,
            height: best.len() as u64,
            accounts: ledger.len(),
        })
    }
}
