//! Compact blocks (after BIP 152): a block relayed as its header, its coinbase, a salt, a 6-byte
//! short id for each transfer the receiver is expected to hold already, and the transfers it is
//! expected to lack in full ("prefilled"). The receiver rebuilds the block from its mempool and
//! a small pool of transfers that recently left it ([`RecentPool`]), asks the sender for the
//! few it lacks by index, and checks the rebuilt block against the header's Merkle root.
//!
//! Short ids are SipHash-2-4 of the txid, keyed from SHA-256 of the header and the salt
//! ([`ShortIdKeys`]): nobody can aim a collision at a block before its proof of work is done.
//! Collisions still happen by chance (one block in hundreds of thousands); every one of them
//! ends in the receiver fetching the full block, never in a wrong block being accepted, and
//! never in blame. The layout and the rules are in `proto/PROTOCOL.md` §14.7.
//!
//! Pure: no I/O, no clock.

use super::block::{Block, HEADER_LEN, Header};
use super::encode::{DecodeError, Reader};
use super::hash::{Txid, sha256};
use super::merkle;
use super::tx::{COINBASE_LEN, Coinbase, TRANSFER_LEN, Transaction, Transfer};
use siphasher::sip::SipHasher24;
use std::collections::{HashMap, VecDeque};

/// Encoded size of a short id.
pub const SHORT_ID_LEN: usize = 6;
/// Encoded size of one prefilled entry: its index (u32) and the transfer.
pub const PREFILLED_LEN: usize = 4 + TRANSFER_LEN;
/// Encoded size of a compact block with no transfers: header, salt, coinbase, two counts.
pub const FIXED_LEN: usize = HEADER_LEN + 8 + COINBASE_LEN + 4 + 4;

/// A transfer's 48-bit short id in one block's compact form: the low 48 bits of SipHash-2-4 of
/// its txid, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ShortId(pub [u8; SHORT_ID_LEN]);

/// The SipHash-2-4 keys of one compact block: the first and second little-endian u64 of
/// SHA-256(header || salt), the salt as 8 big-endian bytes (BIP 152's derivation, in this
/// chain's byte order for the salt).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ShortIdKeys {
    /// SipHash key k0.
    pub k0: u64,
    /// SipHash key k1.
    pub k1: u64,
}

impl ShortIdKeys {
    /// The keys for `header` and `salt`.
    pub fn new(header: &Header, salt: u64) -> Self {
        let mut buf = [0u8; HEADER_LEN + 8];
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        buf[HEADER_LEN..].copy_from_slice(&salt.to_be_bytes());
        let h = sha256(&buf);
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        Self {
            k0: word(0),
            k1: word(8),
        }
    }

    /// The short id of `txid` under these keys.
    pub fn short_id(&self, txid: &Txid) -> ShortId {
        let full = self.short_id_bits(txid).to_be_bytes();
        let mut out = [0u8; SHORT_ID_LEN];
        out.copy_from_slice(&full[8 - SHORT_ID_LEN..]);
        ShortId(out)
    }

    /// The short id of `txid` as the number its bytes spell (big-endian, 48 bits): what a
    /// rebuild compares, without the bytes.
    fn short_id_bits(&self, txid: &Txid) -> u64 {
        SipHasher24::new_with_keys(self.k0, self.k1).hash(txid.as_bytes()) & SHORT_ID_MASK
    }
}

/// The 48 bits of a short id.
const SHORT_ID_MASK: u64 = (1 << (8 * SHORT_ID_LEN)) - 1;

impl ShortId {
    /// The number the id's bytes spell, big-endian.
    fn bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b[8 - SHORT_ID_LEN..].copy_from_slice(&self.0);
        u64::from_be_bytes(b)
    }
}

/// A map keyed by short ids or txids: values an attacker may choose, so randomly seeded, but
/// cheaper than the standard library's SipHash-1-3 for the tens of thousands of lookups a full
/// block's rebuild makes.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Why bytes are not a compact block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The bytes do not decode (short input, leftovers, unknown tag, over the limits).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The transaction after the salt is not a coinbase.
    #[error("the first transaction is not a coinbase")]
    NoCoinbase,
    /// A prefilled transaction is a coinbase.
    #[error("prefilled transaction {0} is a coinbase")]
    PrefilledCoinbase(u32),
    /// A prefilled index is 0, not above the one before it, or past the block's end.
    #[error("prefilled index {index} is out of order or past the block's {count} transactions")]
    BadIndex {
        /// The index.
        index: u32,
        /// The block's transaction count.
        count: u32,
    },
}

/// A block in compact form. Its layout is written in `proto/PROTOCOL.md` §14.7.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CompactBlock {
    /// The block's header.
    pub header: Header,
    /// The sender's salt, mixed into the short-id keys.
    pub salt: u64,
    /// The block's coinbase (its transaction 0).
    pub coinbase: Coinbase,
    /// The short ids of the transactions not prefilled, in block order.
    pub short_ids: Vec<ShortId>,
    /// Transfers sent in full, with their index in the block (from 1, strictly increasing).
    pub prefilled: Vec<(u32, Transfer)>,
}

/// Where a short id may point, among the transfers the receiver holds (what the tests' lookups
/// answer; [`CompactBlock::rebuild`] finds it in the pool itself).
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Candidates {
    /// No transfer held has this short id.
    None,
    /// Exactly one (by txid).
    One(Txid, Transfer),
    /// Two or more different transfers: the slot is asked for like a missing one (BIP 152).
    Many,
}

/// Why a rebuilt block cannot be trusted to be the header's block: fetch the full block from
/// the sender, blaming no one (chance collisions are expected).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Collision {
    /// The message names one short id twice: the slots cannot be told apart.
    DuplicateShortIds,
    /// The rebuilt transactions do not give the header's Merkle root: a transfer held here took
    /// the short id of the block's own (or the message is false, which the full block shows).
    RootMismatch,
}

/// What rebuilding from the held transfers gave.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Rebuilt {
    /// The whole block, with its txids in order (computed from its transactions here, or the
    /// mempool's keys, which are: validation need not hash them again). Its Merkle root was
    /// checked (`root_checked`) if any transaction came by short id; a block sent entirely in
    /// full is returned as it came, for validation to check (its root cannot have been broken
    /// by a collision, so a mismatch there is the sender's fault).
    Full {
        /// The block.
        block: Block,
        /// Its txids, coinbase first.
        txids: Vec<Txid>,
        /// Whether they were checked against the header's Merkle root.
        root_checked: bool,
    },
    /// Some transfers are missing; ask the sender for [`Partial::missing`].
    Missing(Partial),
    /// Fetch the full block.
    Collision(Collision),
}

/// A block rebuilt but for some transfers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Partial {
    /// The header.
    header: Header,
    /// The keys, to check that each supplied transfer has its slot's short id.
    keys: ShortIdKeys,
    /// Every transaction with its txid, `None` where missing.
    slots: Vec<Option<(Txid, Transaction)>>,
    /// The missing indexes, increasing, with the short id each must have.
    missing: Vec<(u32, ShortId)>,
}

/// Why the transfers supplied for a [`Partial`] do not complete it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FillError {
    /// Not one transfer per missing index: the supplier's fault.
    #[error("{got} transfers for {wanted} missing")]
    Count {
        /// How many were asked for.
        wanted: usize,
        /// How many came.
        got: usize,
    },
    /// A supplied transfer does not have its slot's short id: the supplier's fault.
    #[error("the transfer for index {0} does not have its short id")]
    WrongTransfer(u32),
    /// The completed block does not give the header's Merkle root: a chance collision among
    /// the transfers held here; fetch the full block, no blame.
    #[error("the rebuilt block does not match its Merkle root")]
    RootMismatch,
}

impl CompactBlock {
    /// The compact form of `block` (coinbase first, then transfers; `txids` are its txids in
    /// order): every transfer `in_mempool` says the sender holds is sent as a short id, the
    /// others in full. If that would exceed `max_bytes`, the last prefilled transfers are sent
    /// as short ids instead (receivers ask for them), so a valid block always has a compact
    /// form within the block size limit. `None` if the block does not start with a coinbase,
    /// has a coinbase elsewhere, or `txids` does not match its length.
    pub fn from_block(
        block: &Block,
        txids: &[Txid],
        salt: u64,
        in_mempool: impl Fn(&Txid) -> bool,
        max_bytes: usize,
    ) -> Option<Self> {
        let Some(Transaction::Coinbase(coinbase)) = block.txs.first() else {
            return None;
        };
        if txids.len() != block.txs.len() {
            return None;
        }
        let keys = ShortIdKeys::new(&block.header, salt);
        // Room for prefilled transfers once every transfer has its short id.
        let n = block.txs.len() - 1;
        let base = FIXED_LEN + n * SHORT_ID_LEN;
        let mut room = max_bytes.saturating_sub(base) / (PREFILLED_LEN - SHORT_ID_LEN);
        let mut short_ids = Vec::with_capacity(n);
        let mut prefilled = Vec::new();
        for (i, (tx, txid)) in block.txs.iter().zip(txids).enumerate().skip(1) {
            let Transaction::Transfer(t) = tx else {
                return None;
            };
            if room > 0 && !in_mempool(txid) {
                room -= 1;
                prefilled.push((i as u32, *t));
            } else {
                short_ids.push(keys.short_id(txid));
            }
        }
        Some(Self {
            header: block.header,
            salt,
            coinbase: *coinbase,
            short_ids,
            prefilled,
        })
    }

    /// The keys of this block's short ids.
    pub fn keys(&self) -> ShortIdKeys {
        ShortIdKeys::new(&self.header, self.salt)
    }

    /// The block's transaction count, coinbase included.
    pub fn tx_count(&self) -> usize {
        1 + self.short_ids.len() + self.prefilled.len()
    }

    /// Length of [`CompactBlock::encode`].
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.short_ids.len() * SHORT_ID_LEN + self.prefilled.len() * PREFILLED_LEN
    }

    /// Header, salt, coinbase, short-id count (u32) and short ids, prefilled count (u32) and
    /// each prefilled index (u32) with its transfer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.salt.to_be_bytes());
        Transaction::Coinbase(self.coinbase).encode_to(&mut out);
        out.extend_from_slice(&(self.short_ids.len() as u32).to_be_bytes());
        for id in &self.short_ids {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.prefilled.len() as u32).to_be_bytes());
        for (index, t) in &self.prefilled {
            out.extend_from_slice(&index.to_be_bytes());
            Transaction::Transfer(*t).encode_to(&mut out);
        }
        out
    }

    /// Decodes one compact block, refusing inputs over `max_bytes`, a block of over `max_txs`
    /// transactions (checked before allocating), and prefilled indexes that are not strictly
    /// increasing within the block.
    pub fn decode(bytes: &[u8], max_bytes: usize, max_txs: u32) -> Result<Self, CompactError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLong {
                len: bytes.len(),
                max: max_bytes,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let header = Header::decode_from(&mut r)?;
        let salt = r.u64()?;
        let Transaction::Coinbase(coinbase) = Transaction::decode_from(&mut r)? else {
            return Err(CompactError::NoCoinbase);
        };
        let too_many = |count: u64| {
            CompactError::from(DecodeError::TooManyTransactions {
                count,
                max: max_txs.into(),
            })
        };
        let n_short = r.u32()?;
        if u64::from(n_short) + 1 > u64::from(max_txs) {
            return Err(too_many(u64::from(n_short) + 1));
        }
        let ids = r.take(n_short as usize * SHORT_ID_LEN)?;
        let short_ids = ids
            .chunks_exact(SHORT_ID_LEN)
            .map(|c| ShortId(c.try_into().expect("6 bytes")))
            .collect();
        let n_pre = r.u32()?;
        let count = u64::from(n_short) + u64::from(n_pre) + 1;
        if count > u64::from(max_txs) {
            return Err(too_many(count));
        }
        // Each entry takes PREFILLED_LEN bytes: a count the input cannot hold allocates nothing.
        if n_pre as usize > r.remaining() / PREFILLED_LEN {
            return Err(DecodeError::UnexpectedEnd {
                offset: bytes.len() - r.remaining(),
                needed: n_pre as usize * PREFILLED_LEN - r.remaining(),
            }
            .into());
        }
        let count = count as u32;
        let mut prefilled = Vec::with_capacity(n_pre as usize);
        let mut last = 0u32;
        for _ in 0..n_pre {
            let index = r.u32()?;
            if index <= last || index >= count {
                return Err(CompactError::BadIndex { index, count });
            }
            last = index;
            match Transaction::decode_from(&mut r)? {
                Transaction::Transfer(t) => prefilled.push((index, t)),
                Transaction::Coinbase(_) => return Err(CompactError::PrefilledCoinbase(index)),
            }
        }
        r.finish()?;
        Ok(Self {
            header,
            salt,
            coinbase,
            short_ids,
            prefilled,
        })
    }

    /// Rebuilds the block from `pool` (the mempool, the recent pool): each pool entry is hashed
    /// once (SipHash) and looked up among the message's short ids. Gives the whole block if
    /// every slot is filled by exactly one transfer and the Merkle root matches, else the
    /// indexes still missing (none held, or several candidates: BIP 152 asks for those too),
    /// else a [`Collision`].
    pub fn rebuild<'a>(&self, pool: impl IntoIterator<Item = (&'a Txid, &'a Transfer)>) -> Rebuilt {
        let Some(positions) = self.positions() else {
            return Rebuilt::Collision(Collision::DuplicateShortIds);
        };
        let keys = self.keys();
        let mut found: Vec<Held<'a>> = vec![Held::None; self.short_ids.len()];
        for (txid, t) in pool {
            let Some(&k) = positions.get(&keys.short_id_bits(txid)) else {
                continue;
            };
            let slot = &mut found[k as usize];
            *slot = match *slot {
                Held::None => Held::One(txid, t),
                Held::One(held, _) if held == txid => continue,
                _ => Held::Many,
            };
        }
        self.assemble(|k| match found[k] {
            Held::One(txid, t) => Some((*txid, *t)),
            Held::None | Held::Many => None,
        })
    }

    /// [`CompactBlock::rebuild`] from what `lookup` says each short id points to: the tests'
    /// way to pose any case (several candidates, a wrong one) without a real collision.
    #[cfg(test)]
    pub(crate) fn reconstruct(&self, lookup: impl Fn(ShortId) -> Candidates) -> Rebuilt {
        if self.positions().is_none() {
            return Rebuilt::Collision(Collision::DuplicateShortIds);
        }
        self.assemble(|k| match lookup(self.short_ids[k]) {
            Candidates::One(txid, t) => Some((txid, t)),
            Candidates::None | Candidates::Many => None,
        })
    }

    /// The position of each short id among the message's, by its bits; `None` if one is named
    /// twice (the slots could not be told apart).
    fn positions(&self) -> Option<FastMap<u64, u32>> {
        let mut at = FastMap::with_capacity_and_hasher(self.short_ids.len(), Default::default());
        for (k, id) in self.short_ids.iter().enumerate() {
            if at.insert(id.bits(), k as u32).is_some() {
                return None;
            }
        }
        Some(at)
    }

    /// The block from the transfer `held(k)` gives for the `k`-th short id (`None`: missing).
    fn assemble(&self, held: impl Fn(usize) -> Option<(Txid, Transfer)>) -> Rebuilt {
        let count = self.tx_count();
        let coinbase = Transaction::Coinbase(self.coinbase);
        let mut txids = Vec::with_capacity(count);
        let mut txs = Vec::with_capacity(count);
        txids.push(coinbase.compute_txid());
        txs.push(coinbase);
        let mut missing = Vec::new();
        let mut prefilled = self.prefilled.iter().peekable();
        let mut next = 0;
        for i in 1..count as u32 {
            if let Some((_, t)) = prefilled.next_if(|(index, _)| *index == i) {
                let tx = Transaction::Transfer(*t);
                txids.push(tx.compute_txid());
                txs.push(tx);
                continue;
            }
            // Decoding guarantees one short id for every index not prefilled.
            let Some(&id) = self.short_ids.get(next) else {
                return Rebuilt::Collision(Collision::RootMismatch);
            };
            match held(next) {
                Some((txid, t)) => {
                    txids.push(txid);
                    txs.push(Transaction::Transfer(t));
                }
                None => {
                    missing.push((i, id));
                    // A placeholder, never read: the slot is `None` below.
                    txids.push(Txid([0; 32]));
                    txs.push(coinbase);
                }
            }
            next += 1;
        }
        if !missing.is_empty() {
            let mut slots: Vec<Option<(Txid, Transaction)>> =
                txids.into_iter().zip(txs).map(Some).collect();
            for (i, _) in &missing {
                slots[*i as usize] = None;
            }
            return Rebuilt::Missing(Partial {
                header: self.header,
                keys: self.keys(),
                slots,
                missing,
            });
        }
        let block = Block {
            header: self.header,
            txs,
        };
        if self.short_ids.is_empty() {
            // Every transaction came in full: nothing can have collided, so a wrong root is
            // the message's own fault, for validation to reject with its rule.
            return Rebuilt::Full {
                block,
                txids,
                root_checked: false,
            };
        }
        if merkle::tx_root(&txids) != self.header.tx_root {
            return Rebuilt::Collision(Collision::RootMismatch);
        }
        Rebuilt::Full {
            block,
            txids,
            root_checked: true,
        }
    }
}

/// What a rebuild found for one short id in the pool.
#[derive(Clone, Copy)]
enum Held<'a> {
    None,
    One(&'a Txid, &'a Transfer),
    Many,
}

impl Partial {
    /// The block's hash.
    pub fn hash(&self) -> super::BlockHash {
        self.header.compute_hash()
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The indexes to ask for, increasing.
    pub fn missing(&self) -> Vec<u32> {
        self.missing.iter().map(|(i, _)| *i).collect()
    }

    /// How many transfers are missing.
    pub fn missing_count(&self) -> usize {
        self.missing.len()
    }

    /// Memory held, roughly: what a pending reconstruction costs against its budget.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Option<(Txid, Transaction)>>()
            + self.missing.len() * std::mem::size_of::<(u32, ShortId)>()
    }

    /// Completes the block with `txs`, the transfers of [`Partial::missing`] in that order:
    /// each must have its slot's short id, and the whole must give the header's Merkle root.
    pub fn fill(mut self, txs: &[Transfer]) -> Result<Block, FillError> {
        if txs.len() != self.missing.len() {
            return Err(FillError::Count {
                wanted: self.missing.len(),
                got: txs.len(),
            });
        }
        for ((index, id), t) in self.missing.iter().zip(txs) {
            let tx = Transaction::Transfer(*t);
            let txid = tx.compute_txid();
            if self.keys.short_id(&txid) != *id {
                return Err(FillError::WrongTransfer(*index));
            }
            self.slots[*index as usize] = Some((txid, tx));
        }
        self.missing.clear();
        self.into_block().ok_or(FillError::RootMismatch)
    }

    /// The block if every slot is filled and the root matches.
    fn into_block(self) -> Option<Block> {
        let mut txids = Vec::with_capacity(self.slots.len());
        let mut txs = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let (txid, tx) = slot?;
            txids.push(txid);
            txs.push(tx);
        }
        (merkle::tx_root(&txids) == self.header.tx_root).then_some(Block {
            header: self.header,
            txs,
        })
    }
}

/// Transfers that left the mempool recently (replaced by a higher fee, included in a block,
/// dropped by a re-check), kept so that a compact block naming one of them (a competing block,
/// a peer that saw the replacement later) still rebuilds without a round trip. Oldest out
/// first, bounded in bytes.
#[derive(Debug)]
pub struct RecentPool {
    /// The transfers by txid.
    txs: HashMap<Txid, Transfer>,
    /// Insertion order, oldest first.
    order: VecDeque<Txid>,
    /// Most entries, from the byte budget.
    max_entries: usize,
}

/// What one entry of a [`RecentPool`] costs: the transfer, its txid twice (map key and
/// queue) and the map's overhead, rounded up.
pub const RECENT_ENTRY_BYTES: usize = 256;

impl RecentPool {
    /// An empty pool holding at most `max_bytes` (counted as [`RECENT_ENTRY_BYTES`] per entry).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            txs: HashMap::new(),
            order: VecDeque::new(),
            max_entries: max_bytes / RECENT_ENTRY_BYTES,
        }
    }

    /// Remembers `t` (whose txid is `txid`), forgetting the oldest entries beyond the budget.
    pub fn insert(&mut self, txid: Txid, t: Transfer) {
        if self.max_entries == 0 || self.txs.insert(txid, t).is_some() {
            return;
        }
        self.order.push_back(txid);
        while self.order.len() > self.max_entries {
            if let Some(old) = self.order.pop_front() {
                self.txs.remove(&old);
            }
        }
    }

    /// Number of transfers held.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether `txid` is held.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.txs.contains_key(txid)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Bytes held, as counted against the budget.
    pub fn bytes(&self) -> usize {
        self.txs.len() * RECENT_ENTRY_BYTES
    }

    /// Every transfer held with its txid.
    pub fn iter(&self) -> impl Iterator<Item = (&Txid, &Transfer)> {
        self.txs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::hash::{BlockHash, TxRoot};
    use crate::chain::tx::Address;
    use ed25519_zebra::SigningKey;
    use std::collections::HashSet;

    const MAX: usize = 1_000_000;

    fn transfers(n: usize) -> Vec<Transfer> {
        let key = SigningKey::from([3; 32]);
        (0..n)
            .map(|i| {
                Transfer::sign(
                    &key,
                    &BlockHash([7; 32]),
                    Address([9; 32]),
                    1 + i as u64,
                    1,
                    i as u64,
                )
            })
            .collect()
    }

    fn block_of(ts: &[Transfer]) -> (Block, Vec<Txid>) {
        let mut txs = vec![Transaction::Coinbase(Coinbase {
            height: 5,
            to: Address([1; 32]),
            amount: 50,
        })];
        txs.extend(ts.iter().map(|t| Transaction::Transfer(*t)));
        let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
        let header = Header {
            version: 1,
            height: 5,
            prev_hash: BlockHash([2; 32]),
            tx_root: merkle::tx_root(&txids),
            timestamp: 1_700_000_000_000,
            bits: 4,
            nonce: 11,
        };
        (Block { header, txs }, txids)
    }

    fn pool_of(ts: &[Transfer]) -> HashMap<Txid, Transfer> {
        ts.iter()
            .map(|t| (Transaction::Transfer(*t).compute_txid(), *t))
            .collect()
    }

    fn rebuild(c: &CompactBlock, pool: &HashMap<Txid, Transfer>) -> Rebuilt {
        let fast = c.rebuild(pool);
        // The same answer through a lookup, as the slow reading of the rules gives it.
        let found = found(c, pool);
        let slow = c.reconstruct(|id| found.get(&id).copied().unwrap_or(Candidates::None));
        assert_eq!(fast, slow);
        fast
    }

    /// What each short id of `c` points to in `pool`, the plain way.
    fn found(c: &CompactBlock, pool: &HashMap<Txid, Transfer>) -> HashMap<ShortId, Candidates> {
        let keys = c.keys();
        let mut out = HashMap::new();
        for (txid, t) in pool {
            let id = keys.short_id(txid);
            if !c.short_ids.contains(&id) {
                continue;
            }
            let next = match out.get(&id) {
                None => Candidates::One(*txid, *t),
                Some(_) => Candidates::Many,
            };
            out.insert(id, next);
        }
        out
    }

    /// The whole block as a rebuild gives it.
    fn full(block: Block, root_checked: bool) -> Rebuilt {
        Rebuilt::Full {
            txids: block.compute_txids(),
            block,
            root_checked,
        }
    }

    #[test]
    fn round_trip_and_size() {
        let ts = transfers(10);
        let (block, txids) = block_of(&ts);
        let held: HashSet<Txid> = txids[..7].iter().copied().collect();
        let c = CompactBlock::from_block(&block, &txids, 42, |t| held.contains(t), MAX).unwrap();
        assert_eq!(c.short_ids.len(), 6);
        assert_eq!(
            c.prefilled.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
        let bytes = c.encode();
        assert_eq!(bytes.len(), c.encoded_len());
        assert_eq!(bytes.len(), FIXED_LEN + 6 * 6 + 4 * PREFILLED_LEN);
        assert_eq!(CompactBlock::decode(&bytes, MAX, 5000), Ok(c.clone()));
        assert!(matches!(
            CompactBlock::decode(&bytes[..bytes.len() - 1], MAX, 5000),
            Err(CompactError::Decode(DecodeError::UnexpectedEnd { .. }))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            CompactBlock::decode(&long, MAX, 5000),
            Err(CompactError::Decode(DecodeError::TrailingBytes(1)))
        );
    }

    #[test]
    fn rebuilds_with_all_some_or_none_held() {
        let ts = transfers(20);
        let (block, txids) = block_of(&ts);
        let c = CompactBlock::from_block(&block, &txids, 7, |_| true, MAX).unwrap();
        assert_eq!(c.prefilled.len(), 0);
        // All held.
        assert_eq!(rebuild(&c, &pool_of(&ts)), full(block.clone(), true));
        // Some held: the rest asked for by index, then filled.
        let Rebuilt::Missing(p) = rebuild(&c, &pool_of(&ts[5..])) else {
            panic!("some are missing");
        };
        assert_eq!(p.missing(), vec![1, 2, 3, 4, 5]);
        assert_eq!(p.clone().fill(&ts[..5]), Ok(block.clone()));
        assert_eq!(
            p.clone().fill(&ts[..4]),
            Err(FillError::Count { wanted: 5, got: 4 })
        );
        assert_eq!(
            p.fill(&ts[1..6]),
            Err(FillError::WrongTransfer(1)),
            "a transfer that is not the slot's"
        );
        // None held.
        let Rebuilt::Missing(p) = rebuild(&c, &HashMap::new()) else {
            panic!("all are missing");
        };
        assert_eq!(p.missing_count(), 20);
        assert_eq!(p.fill(&ts), Ok(block));
    }

    #[test]
    fn prefilled_and_short_ids_interleave() {
        let ts = transfers(8);
        let (block, txids) = block_of(&ts);
        let held: HashSet<Txid> = [2, 4, 5, 8].iter().map(|&i| txids[i]).collect();
        let c = CompactBlock::from_block(&block, &txids, 1, |t| held.contains(t), MAX).unwrap();
        assert_eq!(
            c.prefilled.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 3, 6, 7]
        );
        let pool: HashMap<Txid, Transfer> = [1, 3, 4, 7]
            .iter()
            .map(|&i| (txids[i + 1], ts[i]))
            .collect();
        let decoded = CompactBlock::decode(&c.encode(), MAX, 5000).unwrap();
        assert_eq!(rebuild(&decoded, &pool), full(block, true));
    }

    #[test]
    fn two_candidates_for_one_short_id_are_asked_for() {
        let ts = transfers(3);
        let (block, txids) = block_of(&ts);
        let c = CompactBlock::from_block(&block, &txids, 9, |_| true, MAX).unwrap();
        let pool = pool_of(&ts);
        let other = transfers(4)[3];
        let found = found(&c, &pool);
        let id = c.short_ids[1];
        let r = c.reconstruct(|s| {
            if s == id {
                Candidates::Many
            } else {
                found.get(&s).copied().unwrap_or(Candidates::None)
            }
        });
        let Rebuilt::Missing(p) = r else {
            panic!("the ambiguous slot is missing")
        };
        assert_eq!(p.missing(), vec![2]);
        assert_eq!(p.clone().fill(&[other]), Err(FillError::WrongTransfer(2)));
        assert_eq!(p.fill(&[ts[1]]), Ok(block));
    }

    #[test]
    fn a_wrong_candidate_is_a_root_mismatch() {
        let ts = transfers(3);
        let (block, txids) = block_of(&ts);
        let c = CompactBlock::from_block(&block, &txids, 9, |_| true, MAX).unwrap();
        let decoy = transfers(5)[4];
        let decoy_id = Transaction::Transfer(decoy).compute_txid();
        let found = found(&c, &pool_of(&ts));
        let id = c.short_ids[0];
        let r = c.reconstruct(|s| {
            if s == id {
                Candidates::One(decoy_id, decoy)
            } else {
                found.get(&s).copied().unwrap_or(Candidates::None)
            }
        });
        assert_eq!(r, Rebuilt::Collision(Collision::RootMismatch));
    }

    #[test]
    fn a_wrong_merkle_root_is_never_a_block() {
        let ts = transfers(4);
        let (mut block, txids) = block_of(&ts);
        block.header.tx_root = TxRoot([0xee; 32]);
        let c = CompactBlock::from_block(&block, &txids, 3, |t| *t != txids[2], MAX).unwrap();
        assert_eq!(
            rebuild(&c, &pool_of(&ts)),
            Rebuilt::Collision(Collision::RootMismatch)
        );
        let Rebuilt::Missing(p) = rebuild(&c, &pool_of(&ts[2..])) else {
            panic!("missing")
        };
        assert_eq!(p.fill(&ts[..1]), Err(FillError::RootMismatch));
    }

    #[test]
    fn a_block_sent_whole_is_left_to_validation() {
        let ts = transfers(2);
        let (mut block, txids) = block_of(&ts);
        block.header.tx_root = TxRoot([0xee; 32]);
        let c = CompactBlock::from_block(&block, &txids, 3, |_| false, MAX).unwrap();
        assert_eq!(rebuild(&c, &HashMap::new()), full(block, false));
    }

    #[test]
    fn duplicate_short_ids_are_a_collision() {
        let ts = transfers(3);
        let (block, txids) = block_of(&ts);
        let mut c = CompactBlock::from_block(&block, &txids, 3, |_| true, MAX).unwrap();
        c.short_ids[2] = c.short_ids[0];
        let c = CompactBlock::decode(&c.encode(), MAX, 5000).unwrap();
        assert_eq!(
            rebuild(&c, &pool_of(&ts)),
            Rebuilt::Collision(Collision::DuplicateShortIds)
        );
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        let ts = transfers(10);
        let (block, txids) = block_of(&ts);
        let c = CompactBlock::from_block(&block, &txids, 3, |_| false, MAX).unwrap();
        let bytes = c.encode();
        assert!(matches!(
            CompactBlock::decode(&bytes, bytes.len() - 1, 5000),
            Err(CompactError::Decode(DecodeError::TooLong { .. }))
        ));
        assert!(matches!(
            CompactBlock::decode(&bytes, MAX, 10),
            Err(CompactError::Decode(DecodeError::TooManyTransactions {
                count: 11,
                max: 10
            }))
        ));
        // A short-id count far beyond the input is refused before allocating.
        let mut huge = bytes[..HEADER_LEN + 8 + COINBASE_LEN].to_vec();
        huge.extend_from_slice(&4000u32.to_be_bytes());
        assert!(matches!(
            CompactBlock::decode(&huge, MAX, 5000),
            Err(CompactError::Decode(DecodeError::UnexpectedEnd { .. }))
        ));
        let mut huge = bytes[..HEADER_LEN + 8 + COINBASE_LEN].to_vec();
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&4000u32.to_be_bytes());
        assert!(matches!(
            CompactBlock::decode(&huge, MAX, 5000),
            Err(CompactError::Decode(DecodeError::UnexpectedEnd { .. }))
        ));
        // Prefilled indexes must increase within the block.
        let mut bad = c.clone();
        bad.prefilled.swap(0, 1);
        assert!(matches!(
            CompactBlock::decode(&bad.encode(), MAX, 5000),
            Err(CompactError::BadIndex { index: 1, .. })
        ));
        let mut bad = c.clone();
        bad.prefilled[9].0 = 11;
        assert_eq!(
            CompactBlock::decode(&bad.encode(), MAX, 5000),
            Err(CompactError::BadIndex {
                index: 11,
                count: 11
            })
        );
        // No coinbase where it belongs.
        let mut b = bytes.clone();
        b[HEADER_LEN + 8] = 1;
        assert!(CompactBlock::decode(&b, MAX, 5000).is_err());
    }

    #[test]
    fn prefilled_transfers_yield_to_the_size_limit() {
        let ts = transfers(10);
        let (block, txids) = block_of(&ts);
        let max = FIXED_LEN + 10 * SHORT_ID_LEN + 3 * (PREFILLED_LEN - SHORT_ID_LEN);
        let c = CompactBlock::from_block(&block, &txids, 3, |_| false, max).unwrap();
        assert_eq!(c.prefilled.len(), 3);
        assert!(c.encoded_len() <= max);
        let Rebuilt::Missing(p) = rebuild(&c, &HashMap::new()) else {
            panic!("missing")
        };
        assert_eq!(p.fill(&ts[3..]), Ok(block));
    }

    #[test]
    fn recent_pool_is_bounded_in_bytes() {
        let ts = transfers(10);
        let mut pool = RecentPool::new(4 * RECENT_ENTRY_BYTES);
        for t in &ts {
            pool.insert(Transaction::Transfer(*t).compute_txid(), *t);
        }
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.bytes(), 4 * RECENT_ENTRY_BYTES);
        let kept: HashSet<u64> = pool.iter().map(|(_, t)| t.nonce).collect();
        assert_eq!(kept, [6, 7, 8, 9].into_iter().collect());
    }
}
