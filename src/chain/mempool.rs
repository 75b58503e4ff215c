//! The mempool: valid transfers waiting for a block. Each sender's transfers are kept in nonce
//! order (one with a future nonce waits for its predecessors), the pool is bounded in count and
//! bytes and evicts the lowest fee first, and block templates take the highest fee first. After
//! every change of the best chain the pool is re-checked against the new ledger: included
//! transfers leave, and transfers of disconnected blocks come back if still valid.
//!
//! Replace-by-fee: a transfer with the sender and nonce of a pending one replaces it when its
//! fee is at least [`REPLACE_PERCENT`] % of the old fee (10 % higher, geth's rule), which lets
//! a user speed up a transfer stuck behind better-paying ones. The step keeps a flood of
//! near-identical replacements from costing every relaying node work and bandwidth for a
//! penny each.

use super::hash::{ChainId, Txid};
use super::ledger::Ledger;
use super::sigcache::SigCache;
use super::tree::TipChange;
use super::tx::{Address, SignatureError, TRANSFER_LEN, Transaction, Transfer};
use crate::mutants::Mutation;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

/// A replacement's fee must be at least this percentage of the fee it replaces (10 % more;
/// exactly 10 % more is enough). Integer arithmetic: `new_fee * 100 >= old_fee * 110`.
pub const REPLACE_PERCENT: u64 = 110;

/// The lowest fee that replaces a pending transfer paying `old_fee`: `⌈old_fee · 1.1⌉`, so
/// that `new_fee · 100 ≥ old_fee · 110`, and at least 1 when `old_fee` is 0 (a replacement
/// must pay more). Above `u64::MAX` (an old fee near the top) nothing replaces it.
pub fn min_replacement_fee(old_fee: u64) -> u128 {
    (u128::from(old_fee) * u128::from(REPLACE_PERCENT))
        .div_ceil(100)
        .max(1)
}

/// Bounds of the pool.
#[derive(Clone, Debug)]
pub struct MempoolLimits {
    /// Most transfers held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// How far ahead of the sender's next nonce a transfer may be.
    pub max_nonce_gap: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 20_000,
            max_bytes: 20_000 * TRANSFER_LEN,
            max_nonce_gap: 64,
        }
    }
}

/// Why a transfer was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already in the pool.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(Txid),
    /// The signature does not verify for this chain.
    #[error("{0}")]
    BadSignature(SignatureError),
    /// The nonce was used already.
    #[error("nonce {got} already used; the sender's next nonce is {expected}")]
    NonceTooLow {
        /// The sender's next nonce on the chain.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// The nonce is too far ahead of the sender's next.
    #[error("nonce {got} is too far ahead of the sender's next nonce {expected}")]
    NonceTooHigh {
        /// The sender's next nonce on the chain.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// Another pending transfer has this sender and nonce, and this one's fee is not enough to
    /// replace it.
    #[error(
        "replacement fee too low: needs at least {min_fee} (10 % above the fee {old_fee} of pending transaction {pending} with the same nonce), got {got}"
    )]
    ReplacementUnderpriced {
        /// The pending transfer with this sender and nonce.
        pending: Txid,
        /// Its fee.
        old_fee: u64,
        /// The lowest fee that would replace it (above `u64::MAX` for an old fee near the
        /// top: nothing can).
        min_fee: u128,
        /// This transfer's fee.
        got: u64,
    },
    /// amount + fee overflows.
    #[error("amount + fee overflows")]
    AmountOverflow,
    /// The sender's pending transfers with this one spend more than the balance.
    #[error("insufficient balance: pending spending would be {needed}, balance is {balance}")]
    InsufficientBalance {
        /// The sender's balance on the chain.
        balance: u64,
        /// Total of the sender's pending transfers including this one.
        needed: u64,
    },
    /// The pool is full of transfers paying at least this fee.
    #[error("mempool full: fee must exceed {min_fee}")]
    Full {
        /// The lowest fee that could be evicted.
        min_fee: u64,
    },
}

impl MempoolError {
    /// A stable snake-case name of the refusal: the HTTP API's error code and the metric label
    /// (see [`ValidationError::label`](super::ValidationError::label)).
    pub fn label(&self) -> &'static str {
        match self {
            MempoolError::AlreadyKnown(_) => "already_known",
            MempoolError::BadSignature(_) => "bad_signature",
            MempoolError::NonceTooLow { .. } => "nonce_too_low",
            MempoolError::NonceTooHigh { .. } => "nonce_too_high",
            MempoolError::ReplacementUnderpriced { .. } => "replacement_underpriced",
            MempoolError::AmountOverflow => "amount_overflow",
            MempoolError::InsufficientBalance { .. } => "insufficient_balance",
            MempoolError::Full { .. } => "mempool_full",
        }
    }
}

/// A transfer admitted to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Its txid.
    pub txid: Txid,
    /// The pending transfer it replaced (same sender and nonce, lower fee), now evicted.
    pub replaced: Option<(Txid, Transfer)>,
}

/// A transfer in the pool.
#[derive(Clone, Debug)]
struct Entry {
    /// The transfer.
    tx: Transfer,
    /// Arrival order: among equal fees the earlier goes first.
    seq: u64,
}

/// What a re-check after a change of the best chain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resync {
    /// Transfers that left because a new best block includes them.
    pub included: usize,
    /// Transfers of disconnected blocks put back, to relay again: peers that only knew the
    /// losing branch never saw them.
    pub returned: Vec<Transfer>,
    /// Transfers dropped as no longer valid (spent nonce, balance).
    pub dropped: usize,
}

/// Valid transfers waiting for a block.
pub struct Mempool {
    /// The chain whose signatures are accepted.
    chain_id: ChainId,
    /// The bounds.
    limits: MempoolLimits,
    /// Transfers by txid.
    txs: HashMap<Txid, Entry>,
    /// Txids by sender, in nonce order.
    by_sender: HashMap<Address, BTreeMap<u64, Txid>>,
    /// Next arrival number: also the count of transfers admitted so far.
    next_seq: u64,
    /// Where admitted transfers' txids are recorded as verified (see [`SigCache`]).
    sig_cache: Option<Arc<SigCache>>,
    /// Fees of all the transfers admitted so far (saturating).
    fees_in: u64,
}

impl Mempool {
    /// An empty pool for `chain_id`.
    pub fn new(chain_id: ChainId, limits: MempoolLimits) -> Self {
        Self {
            chain_id,
            limits,
            txs: HashMap::new(),
            by_sender: HashMap::new(),
            next_seq: 0,
            sig_cache: None,
            fees_in: 0,
        }
    }

    /// Transfers admitted and the fees they pay, counted since the pool was made (transfers
    /// a reorganisation returns are not counted again): what arrived since an earlier reading
    /// is the difference, which the miner uses to decide when its template is stale.
    pub fn arrivals(&self) -> (u64, u64) {
        (self.next_seq, self.fees_in)
    }

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.txs.len() * TRANSFER_LEN
    }

    /// Whether a transfer is pending.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.txs.contains_key(txid)
    }

    /// A pending transfer.
    pub fn get(&self, txid: &Txid) -> Option<&Transfer> {
        self.txs.get(txid).map(|e| &e.tx)
    }

    /// Every pending transfer with its txid, in no order (what compact blocks are rebuilt from).
    pub fn iter(&self) -> impl Iterator<Item = (&Txid, &Transfer)> {
        self.txs.iter().map(|(id, e)| (id, &e.tx))
    }

    /// Every pending transfer with its txid, highest fee first.
    pub fn by_fee(&self) -> Vec<(Txid, Transfer)> {
        let mut v: Vec<_> = self.txs.iter().map(|(id, e)| (*id, e.tx, e.seq)).collect();
        v.sort_by_key(|(_, t, seq)| (Reverse(t.fee), *seq));
        v.into_iter().map(|(id, t, _)| (id, t)).collect()
    }

    /// The nonce `sender`'s next new transfer should carry: after its pending ones.
    pub fn next_nonce(&self, sender: &Address, ledger: &Ledger) -> u64 {
        let chain_next = ledger.account(sender).nonce;
        self.by_sender
            .get(sender)
            .and_then(|m| m.keys().next_back())
            .map_or(chain_next, |n| chain_next.max(n + 1))
    }

    /// What `sender`'s pending transfers spend in all.
    pub fn pending_spend(&self, sender: &Address) -> u64 {
        self.by_sender.get(sender).map_or(0, |m| {
            m.values()
                .map(|id| self.txs[id].tx.total_cost().unwrap_or(u64::MAX))
                .fold(0u64, u64::saturating_add)
        })
    }

    /// Shares `cache` with the pool: an admitted transfer's txid is recorded there (a block
    /// carrying it is then not verified again), and [`Mempool::admit`] skips the signature of
    /// a transfer found there.
    pub fn with_sig_cache(mut self, cache: Arc<SigCache>) -> Self {
        self.sig_cache = Some(cache);
        self
    }

    /// Verifies the signature and admits the transfer if the ledger allows it; its txid.
    pub fn add(&mut self, tx: Transfer, ledger: &Ledger) -> Result<Txid, MempoolError> {
        self.admit(tx, ledger).map(|a| a.txid)
    }

    /// As [`Mempool::add`], and says which pending transfer the new one replaced, if any.
    pub fn admit(&mut self, tx: Transfer, ledger: &Ledger) -> Result<Admitted, MempoolError> {
        let txid = Transaction::Transfer(tx).compute_txid();
        if self.txs.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        if !self.sig_cache.as_ref().is_some_and(|c| c.contains(&txid)) {
            tx.verify(&self.chain_id)
                .map_err(MempoolError::BadSignature)?;
        }
        self.admit_verified(tx, txid, ledger)
    }

    /// Admits a transfer whose signature the caller has verified for this pool's chain (in a
    /// batch, off the thread that owns the pool), if the ledger allows it: every rule of
    /// [`Mempool::admit`] but the signature. `txid` is the transfer's.
    pub fn admit_verified(
        &mut self,
        tx: Transfer,
        txid: Txid,
        ledger: &Ledger,
    ) -> Result<Admitted, MempoolError> {
        debug_assert_eq!(txid, Transaction::Transfer(tx).compute_txid());
        let admitted = self.insert_verified(tx, txid, None, ledger)?;
        if let Some(cache) = &self.sig_cache {
            cache.insert(&txid);
        }
        Ok(admitted)
    }

    /// Admits a transfer whose signature is known to be valid, with its arrival number `seq`
    /// if it had one (a transfer kept across a change of the best chain), else a new one.
    fn insert_verified(
        &mut self,
        tx: Transfer,
        txid: Txid,
        seq: Option<u64>,
        ledger: &Ledger,
    ) -> Result<Admitted, MempoolError> {
        if self.txs.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }
        let account = ledger.account(&tx.from);
        if tx.nonce < account.nonce {
            return Err(MempoolError::NonceTooLow {
                expected: account.nonce,
                got: tx.nonce,
            });
        }
        if tx.nonce - account.nonce > self.limits.max_nonce_gap {
            return Err(MempoolError::NonceTooHigh {
                expected: account.nonce,
                got: tx.nonce,
            });
        }
        let cost = tx.total_cost().ok_or(MempoolError::AmountOverflow)?;
        let replaced = self
            .by_sender
            .get(&tx.from)
            .and_then(|m| m.get(&tx.nonce))
            .copied();
        let mut others: u64 = 0;
        if let Some(m) = self.by_sender.get(&tx.from) {
            for (nonce, id) in m {
                if *nonce != tx.nonce {
                    others =
                        others.saturating_add(self.txs[id].tx.total_cost().unwrap_or(u64::MAX));
                }
            }
        }
        if let Some(old) = replaced {
            let old_fee = self.txs[&old].tx.fee;
            let min_fee = min_replacement_fee(old_fee);
            if u128::from(tx.fee) < min_fee {
                return Err(MempoolError::ReplacementUnderpriced {
                    pending: old,
                    old_fee,
                    min_fee,
                    got: tx.fee,
                });
            }
        }
        let needed = others
            .checked_add(cost)
            .ok_or(MempoolError::AmountOverflow)?;
        if needed > account.balance {
            return Err(MempoolError::InsufficientBalance {
                balance: account.balance,
                needed,
            });
        }
        // A replacement takes the place of the one it replaces: it never needs room made, so a
        // full pool neither refuses it nor evicts anything else for it.
        let replaced = replaced.and_then(|old| self.remove(&old).map(|t| (old, t)));
        self.make_room(&tx)?;
        self.by_sender
            .entry(tx.from)
            .or_default()
            .insert(tx.nonce, txid);
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.fees_in = self.fees_in.saturating_add(tx.fee);
            self.next_seq - 1
        });
        self.txs.insert(txid, Entry { tx, seq });
        Ok(Admitted { txid, replaced })
    }

    /// Evicts the lowest-fee transfers that end another sender's queue until `tx` fits, or
    /// fails if `tx` pays no more than they do. Only queue ends are evicted so that no
    /// sender is left with a gap.
    fn make_room(&mut self, tx: &Transfer) -> Result<(), MempoolError> {
        while self.txs.len() >= self.limits.max_txs
            || self.bytes() + TRANSFER_LEN > self.limits.max_bytes
        {
            let lowest = self
                .by_sender
                .iter()
                .filter(|(sender, _)| **sender != tx.from)
                .filter_map(|(_, m)| m.values().next_back())
                .map(|id| (self.txs[id].tx.fee, Reverse(self.txs[id].seq), *id))
                .min();
            match lowest {
                Some((fee, _, id)) if fee < tx.fee => {
                    self.remove(&id);
                }
                other => {
                    return Err(MempoolError::Full {
                        min_fee: other.map_or(u64::MAX, |(fee, _, _)| fee),
                    });
                }
            }
        }
        Ok(())
    }

    fn remove(&mut self, txid: &Txid) -> Option<Transfer> {
        let entry = self.txs.remove(txid)?;
        if let Some(m) = self.by_sender.get_mut(&entry.tx.from) {
            m.remove(&entry.tx.nonce);
            if m.is_empty() {
                self.by_sender.remove(&entry.tx.from);
            }
        }
        Some(entry.tx)
    }

    /// The transfers for a block on a tip with `ledger`: highest fee first among each sender's
    /// next transfer, in nonce order per sender, within `max_txs` and `max_bytes`, and with
    /// `reward` plus the fees not overflowing.
    pub fn select(
        &self,
        ledger: &Ledger,
        max_txs: usize,
        max_bytes: usize,
        reward: u64,
    ) -> Vec<Transfer> {
        let mut heap = BinaryHeap::new();
        let mut next: HashMap<Address, u64> = HashMap::new();
        let mut spent: HashMap<Address, u64> = HashMap::new();
        for (sender, m) in &self.by_sender {
            let nonce = ledger.account(sender).nonce;
            if let Some(id) = m.get(&nonce) {
                let e = &self.txs[id];
                heap.push((e.tx.fee, Reverse(e.seq), *id));
                next.insert(*sender, nonce);
            }
        }
        let mut out = Vec::new();
        let mut total = reward;
        let max = max_txs.min(max_bytes / TRANSFER_LEN);
        while let Some((_, _, id)) = heap.pop() {
            if out.len() >= max {
                break;
            }
            let tx = self.txs[&id].tx;
            let balance = ledger.account(&tx.from).balance;
            let spent_so_far = spent.entry(tx.from).or_default();
            let Some(cost) = tx.total_cost() else {
                continue;
            };
            let Some(new_total) = total.checked_add(tx.fee) else {
                continue;
            };
            if spent_so_far.saturating_add(cost) > balance {
                continue;
            }
            *spent_so_far += cost;
            total = new_total;
            out.push(tx);
            let n = next.entry(tx.from).or_default();
            *n += 1;
            if let Some(id) = self.by_sender.get(&tx.from).and_then(|m| m.get(n)) {
                let e = &self.txs[id];
                heap.push((e.tx.fee, Reverse(e.seq), *id));
            }
        }
        out
    }

    /// Re-checks the pool after the best chain changed to `ledger`: transfers in connected
    /// blocks leave, transfers of disconnected blocks come back, and whatever the new ledger
    /// no longer allows is dropped. A transfer that stays keeps its arrival order (among equal
    /// fees the earlier still goes first); one that comes back from a block counts as new.
    pub fn resync(&mut self, change: &TipChange, ledger: &Ledger) -> Resync {
        let included: HashSet<Txid> = change
            .connected
            .iter()
            .flat_map(|b| b.txids().iter().copied())
            .collect();
        let mut stats = Resync::default();
        // (transfer, txid, its arrival number if it was pending)
        let mut candidates: Vec<(Transfer, Txid, Option<u64>)> = Vec::new();
        for (txid, entry) in self.txs.drain() {
            if included.contains(&txid) {
                stats.included += 1;
            } else {
                candidates.push((entry.tx, txid, Some(entry.seq)));
            }
        }
        self.by_sender.clear();
        let disconnected: &[_] = if crate::mutants::active(Mutation::ReorgForgetsMempool) {
            &[]
        } else {
            &change.disconnected
        };
        for block in disconnected {
            for (tx, txid) in block.txs.iter().zip(block.txids()) {
                if let Transaction::Transfer(t) = tx
                    && !included.contains(txid)
                {
                    candidates.push((*t, *txid, None));
                }
            }
        }
        // Each sender's in nonce order, so that each is checked against what its predecessors
        // spend; the pending copy first where a block returns one already pending.
        candidates.sort_by_key(|(t, _, seq)| (t.from, t.nonce, Reverse(t.fee), seq.is_none()));
        for (tx, txid, seq) in candidates {
            match self.insert_verified(tx, txid, seq, ledger) {
                Ok(_) if seq.is_none() => stats.returned.push(tx),
                Ok(_) => {}
                Err(MempoolError::AlreadyKnown(_)) => {}
                Err(_) => stats.dropped += 1,
            }
        }
        stats
    }
}
