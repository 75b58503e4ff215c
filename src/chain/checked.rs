//! A block as validation leaves it: decoded once, its header hashed once, its txids computed
//! once and its wire bytes kept. The tree, the ledger, the mempool and the store all read these
//! instead of hashing or encoding the block again, and a `GetBlocks` answer serves the bytes as
//! they came.

use super::block::{Block, BlockKey};
use super::hash::{BlockHash, ChainId, Txid};
use super::params::ChainParams;
use super::sigcache::SigCache;
use super::validate::{self, ValidationError};
use std::ops::Deref;
use std::sync::Arc;

/// A block that passed the rules that need no chain state (header, body structure), with what
/// those checks computed. Signatures are verified here too when the caller asks
/// ([`CheckedBlock::verify_signatures`]); otherwise the block tree verifies them once the parent
/// is known. Dereferences to the [`Block`].
#[derive(Debug)]
pub struct CheckedBlock {
    /// The block, shared with the node's answers without copying.
    block: Arc<Block>,
    /// The header's hash.
    hash: BlockHash,
    /// Each transaction's id, in block order.
    txids: Vec<Txid>,
    /// The consensus encoding: as received, or encoded once for a block made here.
    wire: Vec<u8>,
    /// Whether every transfer's signature was verified for the chain.
    signatures_verified: bool,
}

impl CheckedBlock {
    /// Checks the rules of the header and the body's structure. `hash` is
    /// `block.header.compute_hash()`, computed once by the caller (it looks the hash up first);
    /// `wire` is the block's encoding if it arrived as bytes (else it is encoded once here).
    pub fn check(
        block: Arc<Block>,
        hash: BlockHash,
        wire: Option<Vec<u8>>,
        params: &ChainParams,
    ) -> Result<Self, ValidationError> {
        debug_assert_eq!(
            hash,
            block.compute_hash(),
            "the caller's hash is the header's"
        );
        validate::check_header_hashed(&block.header, &hash, params)?;
        let txids = validate::check_body(&block, params)?;
        Ok(Self::unverified(block, hash, txids, wire))
    }

    /// [`CheckedBlock::check`] for a block whose txids the caller computed from its
    /// transactions, and whose Merkle root it compared with them if `root_checked` (a compact
    /// block's rebuild): the same rules and verdict, without hashing the transactions again.
    pub fn check_known(
        block: Arc<Block>,
        hash: BlockHash,
        txids: Vec<Txid>,
        root_checked: bool,
        params: &ChainParams,
    ) -> Result<Self, ValidationError> {
        debug_assert_eq!(
            hash,
            block.compute_hash(),
            "the caller's hash is the header's"
        );
        debug_assert_eq!(
            txids,
            block.compute_txids(),
            "the caller's txids are the block's"
        );
        validate::check_header_hashed(&block.header, &hash, params)?;
        validate::check_body_known(&block, &txids, root_checked, params)?;
        Ok(Self::unverified(block, hash, txids, None))
    }

    /// A block whose header and body rules passed, its signatures not yet verified; `wire` is
    /// its encoding if it arrived as bytes (else it is encoded once here).
    fn unverified(
        block: Arc<Block>,
        hash: BlockHash,
        txids: Vec<Txid>,
        wire: Option<Vec<u8>>,
    ) -> Self {
        let wire = wire.unwrap_or_else(|| block.encode());
        Self {
            block,
            hash,
            txids,
            wire,
            signatures_verified: false,
        }
    }

    /// A block this node validated before and read back from its own store: its checks are
    /// not run again (signatures included), only its hash and txids are recomputed.
    pub fn stored(block: Block, wire: Vec<u8>) -> Self {
        Self {
            hash: block.compute_hash(),
            txids: block.compute_txids(),
            block: Arc::new(block),
            wire,
            signatures_verified: true,
        }
    }

    /// The genesis block of `params`, which no rule applies to (it is part of the parameters).
    pub(crate) fn genesis(params: &ChainParams) -> Self {
        let block = Arc::new(params.genesis());
        Self {
            hash: block.compute_hash(),
            txids: block.compute_txids(),
            wire: block.encode(),
            block,
            signatures_verified: true,
        }
    }

    /// Verifies every transfer's signature for `chain_id` (the costly rule, which needs no
    /// chain state: a caller may run it off the thread that owns the chain), except those
    /// `cache` holds; records the ones it verifies there.
    pub fn verify_signatures(
        &mut self,
        chain_id: &ChainId,
        cache: &SigCache,
    ) -> Result<(), ValidationError> {
        if !self.signatures_verified {
            validate::check_signatures_cached(&self.block, &self.txids, chain_id, cache)?;
            self.signatures_verified = true;
        }
        Ok(())
    }

    /// Whether [`CheckedBlock::verify_signatures`] succeeded.
    pub fn signatures_verified(&self) -> bool {
        self.signatures_verified
    }

    /// The block.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// The txids, in block order.
    pub fn txids(&self) -> &[Txid] {
        &self.txids
    }

    /// The consensus encoding.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Memory the checked block holds: the decoded transactions, the txids and the wire
    /// bytes. What the tree's byte budget of bodies in memory counts, so that a full block
    /// costs what it weighs (about 1.7 MB for 4 999 transfers).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of::<Block>()
            + self.block.txs.capacity() * std::mem::size_of::<super::tx::Transaction>()
            + self.txids.capacity() * std::mem::size_of::<Txid>()
            + self.wire.capacity()
    }

    /// The height in the header.
    pub fn height(&self) -> u64 {
        self.block.header.height
    }

    /// The height and hash.
    pub fn key(&self) -> BlockKey {
        BlockKey::new(self.height(), self.hash)
    }
}

impl Deref for CheckedBlock {
    type Target = Block;
    fn deref(&self) -> &Block {
        &self.block
    }
}

impl PartialEq for CheckedBlock {
    /// Equal blocks have equal hashes (the header commits to the rest through `tx_root`,
    /// and a checked block's body matches its root).
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for CheckedBlock {}
