//! Writing a batch: new blocks and their index records, deletions, the new tip, and the stored
//! ledger moved to that tip, all in one transaction.

use super::bodyfile::Location;
use super::{
    ACCOUNTS, BODIES, INDEX, META, Store, StoreError, TXIDS, UNDO, catch_panic, decode_entry,
    decode_undo, encode_record,
};
use crate::chain::ledger::Undo;
use crate::chain::target::Target;
use crate::chain::tree::HeaderRecord;
use crate::chain::{
    Account, Address, Block, BlockHash, BlockKey, CheckedBlock, Ledger, Transaction, Txid,
};
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The tables a commit writes, open in one transaction.
pub(super) struct Tables<'t> {
    pub(super) bodies: Table<'t, (u64, &'static [u8; 32]), &'static [u8]>,
    pub(super) index: Table<'t, (u64, &'static [u8; 32]), &'static [u8]>,
    pub(super) accounts: Table<'t, &'static [u8; 32], (u64, u64)>,
    pub(super) undo: Table<'t, &'static [u8; 32], &'static [u8]>,
    pub(super) txids: Table<'t, &'static [u8; 32], &'static [u8; 32]>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(store: &Store, tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            bodies: tx.open_table(BODIES).map_err(|e| store.err(e))?,
            index: tx.open_table(INDEX).map_err(|e| store.err(e))?,
            accounts: tx.open_table(ACCOUNTS).map_err(|e| store.err(e))?,
            undo: tx.open_table(UNDO).map_err(|e| store.err(e))?,
            txids: tx.open_table(TXIDS).map_err(|e| store.err(e))?,
        })
    }
}

/// Every address a block's transactions touch.
fn touched(block: &Block) -> Vec<Address> {
    let mut out = Vec::with_capacity(block.txs.len() * 2);
    for tx in &block.txs {
        match tx {
            Transaction::Coinbase(c) => out.push(c.to),
            Transaction::Transfer(t) => {
                out.push(t.from);
                out.push(t.to);
            }
        }
    }
    out
}

impl Store {
    /// Writes `accepted` blocks (their wire bytes as they are), deletes `rejected` ones, and
    /// records `tip` with the ledger at `tip`, in one durable transaction. Every accepted
    /// block's parent must be stored or come earlier in `accepted`, and `tip` must be stored.
    /// Those of the accepted blocks that lead to `tip` go to the body file, made durable first;
    /// the others' bodies to the `bodies` table.
    pub fn commit(
        &self,
        accepted: &[Arc<CheckedBlock>],
        rejected: &[BlockKey],
        tip: BlockKey,
    ) -> Result<(), StoreError> {
        catch_panic(&self.path, || self.commit_inner(accepted, rejected, tip))
    }

    fn commit_inner(
        &self,
        accepted: &[Arc<CheckedBlock>],
        rejected: &[BlockKey],
        tip: BlockKey,
    ) -> Result<(), StoreError> {
        let tx = self.db().begin_write().map_err(|e| self.err(e))?;
        let mut batch: HashMap<BlockHash, &Arc<CheckedBlock>> = HashMap::new();
        for block in accepted {
            batch.insert(block.hash(), block);
        }
        // The accepted blocks on the way to the new tip, in height order: to the body file.
        let mut leading = HashSet::new();
        let mut at = tip.hash;
        while let Some(block) = batch.get(&at) {
            leading.insert(at);
            at = block.header.prev_hash;
        }
        let (moved, end) = {
            let mut t = Tables::open(self, &tx)?;
            let mut new = Vec::new();
            let mut seen = HashSet::new();
            for block in accepted {
                let hash = block.hash();
                if !seen.insert(hash)
                    || t.index
                        .get((block.height(), hash.as_bytes()))
                        .map_err(|e| self.err(e))?
                        .is_some()
                {
                    continue;
                }
                new.push(block);
            }
            let to_file: Vec<&[u8]> = new
                .iter()
                .filter(|b| leading.contains(&b.hash()))
                .map(|b| b.wire())
                .collect();
            let (locations, end) = self
                .file
                .append(&to_file)
                .map_err(|e| self.err(redb::Error::Io(e)))?;
            let mut locations = locations.into_iter();
            let mut filed: HashMap<BlockHash, Location> = HashMap::new();
            for block in new {
                let hash = block.hash();
                let record = self.record_of(&t, block.block(), hash)?;
                let at = if leading.contains(&hash) {
                    let at = locations.next().expect("one location a filed body");
                    filed.insert(hash, at);
                    at
                } else {
                    Location::NONE
                };
                t.index
                    .insert(
                        (record.height, hash.as_bytes()),
                        encode_record(&record, at).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
                if !at.is_some() {
                    t.bodies
                        .insert((record.height, hash.as_bytes()), block.wire())
                        .map_err(|e| self.err(e))?;
                }
            }
            let old_tip = self.stored_tip(&tx)?.unwrap_or(self.genesis_id());
            let moved = if old_tip != tip {
                Some(self.move_tip(&mut t, old_tip, tip, &batch)?)
            } else {
                None
            };
            let chain_id = self.params.chain_id();
            for id in rejected.iter().filter(|id| id.hash != chain_id) {
                let key = (id.height, id.hash.as_bytes());
                if t.index.remove(key).map_err(|e| self.err(e))?.is_some() {
                    t.bodies.remove(key).map_err(|e| self.err(e))?;
                    t.undo.remove(id.hash.as_bytes()).map_err(|e| self.err(e))?;
                }
            }
            (moved, end)
        };
        self.write_tip(&tx, tip)?;
        self.write_end(&tx, end)?;
        tx.commit().map_err(|e| self.err(e))?;
        self.file.committed(end);
        if let Some((from, connected)) = moved {
            self.file
                .locations
                .write()
                .expect("locations lock")
                .set(from, &connected, tip.height);
        }
        Ok(())
    }

    /// The index record of a new block, from its parent's.
    pub(super) fn record_of(
        &self,
        t: &Tables<'_>,
        block: &Block,
        hash: BlockHash,
    ) -> Result<HeaderRecord, StoreError> {
        let prev = block.header.prev_hash;
        let parent = self
            .read_record(&t.index, block.header.height.wrapping_sub(1), &prev)?
            .ok_or_else(|| self.corrupt(format!("stored block {hash} has no stored parent")))?;
        let own = Target::from_compact(block.header.bits)
            .map_err(|e| self.corrupt(format!("block {hash}: {e}")))?
            .work();
        Ok(HeaderRecord {
            hash,
            prev,
            height: block.header.height,
            timestamp: block.header.timestamp,
            bits: block.header.bits,
            work: parent.work.saturating_add(own),
        })
    }

    /// The index record of `hash` at `height`, if stored.
    pub(super) fn read_record(
        &self,
        index: &impl ReadableTable<(u64, &'static [u8; 32]), &'static [u8]>,
        height: u64,
        hash: &BlockHash,
    ) -> Result<Option<HeaderRecord>, StoreError> {
        Ok(self.read_entry(index, height, hash)?.map(|(r, _)| r))
    }

    /// The index record of `hash` at `height` and where its body is, if stored.
    pub(super) fn read_entry(
        &self,
        index: &impl ReadableTable<(u64, &'static [u8; 32]), &'static [u8]>,
        height: u64,
        hash: &BlockHash,
    ) -> Result<Option<(HeaderRecord, Location)>, StoreError> {
        let Some(v) = index
            .get((height, hash.as_bytes()))
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        decode_entry(height, *hash, v.value())
            .map(Some)
            .ok_or_else(|| self.corrupt(format!("the index record of block {hash} is damaged")))
    }

    /// The index record of a stored block (or genesis), which must be there.
    pub(super) fn must_record(
        &self,
        t: &Tables<'_>,
        id: BlockKey,
        role: &str,
    ) -> Result<HeaderRecord, StoreError> {
        self.read_record(&t.index, id.height, &id.hash)?
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{role} {} (height {}) is not stored",
                    id.hash, id.height
                ))
            })
    }

    /// Genesis, as a block id.
    pub(super) fn genesis_id(&self) -> BlockKey {
        BlockKey::new(0, self.params.chain_id())
    }

    /// The record of the parent of `child`.
    fn parent_record(
        &self,
        t: &Tables<'_>,
        child: &HeaderRecord,
    ) -> Result<HeaderRecord, StoreError> {
        self.read_record(&t.index, child.height.wrapping_sub(1), &child.prev)?
            .ok_or_else(|| {
                self.corrupt(format!(
                    "the parent of stored block {} is not stored",
                    child.hash
                ))
            })
    }

    /// Moves the stored ledger, undo records and txid index from the best chain ending at
    /// `old` to the one ending at `new`: undoes blocks down to their fork point, then applies
    /// `new`'s branch. Returns the first height past the fork point and where the bodies of
    /// the applied blocks are, in height order.
    fn move_tip(
        &self,
        t: &mut Tables<'_>,
        old: BlockKey,
        new: BlockKey,
        batch: &HashMap<BlockHash, &Arc<CheckedBlock>>,
    ) -> Result<(u64, Vec<Location>), StoreError> {
        let (mut a, mut b) = (
            self.must_record(t, old, "the recorded tip")?,
            self.must_record(t, new, "the new tip")?,
        );
        let id = |r: &HeaderRecord| BlockKey::new(r.height, r.hash);
        let mut disconnect = Vec::new();
        let mut connect = Vec::new();
        while a.height > b.height {
            disconnect.push(id(&a));
            a = self.parent_record(t, &a)?;
        }
        while b.height > a.height {
            connect.push(id(&b));
            b = self.parent_record(t, &b)?;
        }
        while a.hash != b.hash {
            if a.height == 0 {
                return Err(self.corrupt(format!(
                    "blocks {} and {} share no ancestor",
                    old.hash, new.hash
                )));
            }
            disconnect.push(id(&a));
            connect.push(id(&b));
            a = self.parent_record(t, &a)?;
            b = self.parent_record(t, &b)?;
        }
        for block in disconnect {
            self.disconnect(t, block, batch)?;
        }
        let from = b.height + 1;
        let mut locations = Vec::with_capacity(connect.len());
        for block in connect.into_iter().rev() {
            self.connect(t, block, batch)?;
            let (_, at) = self
                .read_entry(&t.index, block.height, &block.hash)?
                .ok_or_else(|| self.corrupt(format!("block {} is not indexed", block.hash)))?;
            locations.push(at);
        }
        Ok((from, locations))
    }

    /// A stored block with its txids: from the batch, or read and decoded.
    fn body(
        &self,
        t: &Tables<'_>,
        id: BlockKey,
        batch: &HashMap<BlockHash, &Arc<CheckedBlock>>,
    ) -> Result<(Arc<Block>, Vec<Txid>), StoreError> {
        let hash = &id.hash;
        if let Some(b) = batch.get(hash) {
            return Ok((b.block().clone(), b.txids().to_vec()));
        }
        let (_, at) = self
            .read_entry(&t.index, id.height, hash)?
            .ok_or_else(|| self.corrupt(format!("block {hash} is not indexed")))?;
        let wire = self.stored_wire(&t.bodies, id, at)?;
        let block = self.decode_block(hash, &wire)?;
        let txids = block.compute_txids();
        Ok((Arc::new(block), txids))
    }

    /// Decodes a stored block and checks it is the one its key names.
    pub(super) fn decode_block(&self, hash: &BlockHash, bytes: &[u8]) -> Result<Block, StoreError> {
        let block = Block::decode(
            bytes,
            self.params.max_block_bytes as usize,
            self.params.max_block_txs,
        )
        .map_err(|e| self.corrupt(format!("block {hash}: {e}")))?;
        if block.compute_hash() != *hash {
            return Err(self.corrupt(format!("block {hash} does not match its key")));
        }
        Ok(block)
    }

    /// The stored accounts of `addresses`, as a ledger holding only them.
    fn accounts_of(
        &self,
        t: &Tables<'_>,
        addresses: impl IntoIterator<Item = Address>,
    ) -> Result<Ledger, StoreError> {
        let mut found = Vec::new();
        for address in addresses {
            if let Some(v) = t.accounts.get(&address.0).map_err(|e| self.err(e))? {
                let (balance, nonce) = v.value();
                found.push((address, Account { balance, nonce }));
            }
        }
        Ok(Ledger::from_accounts(found))
    }

    /// Writes back the accounts `undo` names from `ledger` (deleting those it no longer has).
    fn write_accounts(
        &self,
        t: &mut Tables<'_>,
        ledger: &Ledger,
        undo: &Undo,
    ) -> Result<(), StoreError> {
        for address in undo.addresses() {
            match ledger.get(address) {
                Some(a) => t
                    .accounts
                    .insert(&address.0, (a.balance, a.nonce))
                    .map_err(|e| self.err(e))?,
                None => t.accounts.remove(&address.0).map_err(|e| self.err(e))?,
            };
        }
        Ok(())
    }

    fn disconnect(
        &self,
        t: &mut Tables<'_>,
        id: BlockKey,
        batch: &HashMap<BlockHash, &Arc<CheckedBlock>>,
    ) -> Result<(), StoreError> {
        let hash = &id.hash;
        let undo = {
            let v = t
                .undo
                .remove(hash.as_bytes())
                .map_err(|e| self.err(e))?
                .ok_or_else(|| {
                    self.corrupt(format!("best-chain block {hash} has no undo record"))
                })?;
            decode_undo(hash, v.value()).map_err(|e| self.corrupt(e))?
        };
        let mut ledger = self.accounts_of(t, undo.addresses().copied())?;
        ledger.undo_block(undo.clone());
        self.write_accounts(t, &ledger, &undo)?;
        let (_, txids) = self.body(t, id, batch)?;
        for txid in txids {
            t.txids.remove(txid.as_bytes()).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub(super) fn connect(
        &self,
        t: &mut Tables<'_>,
        id: BlockKey,
        batch: &HashMap<BlockHash, &Arc<CheckedBlock>>,
    ) -> Result<(), StoreError> {
        let hash = &id.hash;
        let (block, txids) = self.body(t, id, batch)?;
        let mut ledger = self.accounts_of(t, touched(&block))?;
        let undo = ledger
            .apply_block(&block, &txids, &self.params)
            .map_err(|e| self.corrupt(format!("stored block {hash} is invalid: {e}")))?;
        self.write_accounts(t, &ledger, &undo)?;
        t.undo
            .insert(hash.as_bytes(), undo.encode().as_slice())
            .map_err(|e| self.err(e))?;
        for txid in txids {
            t.txids
                .insert(txid.as_bytes(), hash.as_bytes())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The tip recorded in `tx`.
    pub(super) fn stored_tip(&self, tx: &WriteTransaction) -> Result<Option<BlockKey>, StoreError> {
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        self.tip_of(&meta)
    }

    /// Records `tip` in `tx`.
    pub(super) fn write_tip(&self, tx: &WriteTransaction, tip: BlockKey) -> Result<(), StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        meta.insert("tip", tip.hash.as_bytes().as_slice())
            .map_err(|e| self.err(e))?;
        meta.insert("tip_height", tip.height.to_be_bytes().as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
