//! Block validation rules, one typed error per rule. Checks run cheapest first: the header
//! alone, then the body's structure, then what needs the parent, then signatures; the ledger
//! rules (nonces, balances, coinbase amount) run in [`super::ledger::Ledger::apply_block`] when
//! the block joins the best chain.

use super::block::{BLOCK_VERSION, Block, Header};
use super::hash::{BlockHash, ChainId, TxRoot, Txid};
use super::merkle;
use super::params::{ChainParams, Difficulty};
use super::pow;
use super::retarget::{self, ParentInfo};
use super::sig;
use super::sigcache::SigCache;
use super::target::{CompactError, Target};
use super::tx::{SignatureError, Transaction, Transfer};
use std::collections::HashSet;

/// A rule that a block breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Header version other than 1.
    #[error("unknown block version {0}")]
    BadVersion(u32),
    /// `bits` is not a canonical compact target.
    #[error("header bits: {0}")]
    BadBits(CompactError),
    /// `bits` is easier than the chain's easiest target.
    #[error("header bits {bits:#010x} is above the chain's target limit")]
    TargetAboveLimit {
        /// The header's value.
        bits: u32,
    },
    /// `bits` differs from the target the chain requires of this block.
    #[error("header bits {got:#010x}, the chain requires {expected:#010x}")]
    WrongBits {
        /// The required compact target.
        expected: u32,
        /// The header's value.
        got: u32,
    },
    /// The hash is above the header's target.
    #[error("hash {hash} does not meet target bits {bits:#010x}")]
    InsufficientWork {
        /// The block hash.
        hash: BlockHash,
        /// The header's compact target.
        bits: u32,
    },
    /// Encoded block over the size limit.
    #[error("block is {size} bytes, limit {max}")]
    BlockTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// More transactions than the limit.
    #[error("block has {count} transactions, limit {max}")]
    TooManyTransactions {
        /// Transactions in the block.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// No transactions, or the first is not a coinbase.
    #[error("first transaction is not a coinbase")]
    MissingCoinbase,
    /// A coinbase after the first position.
    #[error("coinbase {txid} is not the first transaction")]
    ExtraCoinbase {
        /// The misplaced coinbase.
        txid: Txid,
    },
    /// The coinbase does not commit to the block's height.
    #[error("coinbase commits to height {got}, block height is {expected}")]
    CoinbaseHeight {
        /// The header's height.
        expected: u64,
        /// The coinbase's height.
        got: u64,
    },
    /// The coinbase pays other than reward + fees.
    #[error("coinbase pays {got}, must pay reward + fees = {expected}")]
    CoinbaseAmount {
        /// reward + fees.
        expected: u64,
        /// What it pays.
        got: u64,
    },
    /// The same txid twice in a block.
    #[error("duplicate transaction {0}")]
    DuplicateTxid(Txid),
    /// `tx_root` does not match the transactions.
    #[error("tx_root {got} does not match the transactions' root {expected}")]
    TxRootMismatch {
        /// Root of the transactions.
        expected: TxRoot,
        /// The header's value.
        got: TxRoot,
    },
    /// The parent, or an ancestor, is invalid.
    #[error("descends from invalid block {0}")]
    InvalidAncestor(BlockHash),
    /// Height other than parent height + 1.
    #[error("height {got}, parent height + 1 is {expected}")]
    BadHeight {
        /// parent height + 1.
        expected: u64,
        /// The header's height.
        got: u64,
    },
    /// Timestamp not after the median of the previous blocks.
    #[error("timestamp {timestamp} is not after the median {median} of the previous blocks")]
    TimestampTooOld {
        /// The header's timestamp.
        timestamp: u64,
        /// The median past time.
        median: u64,
    },
    /// Timestamp too far ahead of the local clock. Not a permanent fault: the block may become
    /// valid later, so it is not remembered as invalid.
    #[error(
        "timestamp {timestamp} is more than the allowed drift ahead of the local clock (limit {limit})"
    )]
    TimestampTooNew {
        /// The header's timestamp.
        timestamp: u64,
        /// Local clock + allowed drift.
        limit: u64,
    },
    /// A transfer whose signature does not verify.
    #[error("transaction {txid}: {reason}")]
    BadSignature {
        /// The transfer.
        txid: Txid,
        /// Why.
        reason: SignatureError,
    },
    /// A transfer whose nonce is not the sender's next.
    #[error("transaction {txid}: nonce {got}, sender's next nonce is {expected}")]
    BadNonce {
        /// The transfer.
        txid: Txid,
        /// The sender's next nonce.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// A transfer spending more than the sender has.
    #[error("transaction {txid}: needs {needed}, sender has {balance}")]
    InsufficientBalance {
        /// The transfer.
        txid: Txid,
        /// The sender's balance.
        balance: u64,
        /// amount + fee.
        needed: u64,
    },
    /// An amount, fee sum or balance that overflows u64.
    #[error("transaction {txid}: amount overflow")]
    AmountOverflow {
        /// The transaction.
        txid: Txid,
    },
}

impl ValidationError {
    /// A stable snake-case name of the rule that failed, for metric labels: few distinct values
    /// (unlike the message, which carries hashes and amounts), and renaming a variant does not
    /// rename the label.
    pub fn label(&self) -> &'static str {
        match self {
            ValidationError::BadVersion(_) => "bad_version",
            ValidationError::BadBits(_) => "bad_bits",
            ValidationError::TargetAboveLimit { .. } => "target_above_limit",
            ValidationError::WrongBits { .. } => "wrong_bits",
            ValidationError::InsufficientWork { .. } => "insufficient_work",
            ValidationError::BlockTooLarge { .. } => "block_too_large",
            ValidationError::TooManyTransactions { .. } => "too_many_transactions",
            ValidationError::MissingCoinbase => "missing_coinbase",
            ValidationError::ExtraCoinbase { .. } => "extra_coinbase",
            ValidationError::CoinbaseHeight { .. } => "coinbase_height",
            ValidationError::CoinbaseAmount { .. } => "coinbase_amount",
            ValidationError::DuplicateTxid(_) => "duplicate_txid",
            ValidationError::TxRootMismatch { .. } => "tx_root_mismatch",
            ValidationError::InvalidAncestor(_) => "invalid_ancestor",
            ValidationError::BadHeight { .. } => "bad_height",
            ValidationError::TimestampTooOld { .. } => "timestamp_too_old",
            ValidationError::TimestampTooNew { .. } => "timestamp_too_new",
            ValidationError::BadSignature { .. } => "bad_signature",
            ValidationError::BadNonce { .. } => "bad_nonce",
            ValidationError::InsufficientBalance { .. } => "insufficient_balance",
            ValidationError::AmountOverflow { .. } => "amount_overflow",
        }
    }

    /// Whether the block can never become valid (so it is worth remembering and the sender
    /// is at fault). A timestamp ahead of our clock may resolve later. (A block whose parent
    /// is unknown is no error: it waits in the orphan pool.)
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ValidationError::TimestampTooNew { .. })
    }
}

/// The rules the header alone decides: version, a canonical target within the chain's limit
/// (on a fixed-difficulty chain, the chain's target), proof of work against that target.
/// Whether the target is the one the parent requires is [`check_context`]'s rule.
pub fn check_header(header: &Header, params: &ChainParams) -> Result<BlockHash, ValidationError> {
    let hash = header.compute_hash();
    check_header_hashed(header, &hash, params)?;
    Ok(hash)
}

/// [`check_header`] for a header whose hash the caller has computed already.
pub fn check_header_hashed(
    header: &Header,
    hash: &BlockHash,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    if header.version != BLOCK_VERSION {
        return Err(ValidationError::BadVersion(header.version));
    }
    if let Difficulty::Fixed { .. } = params.difficulty {
        let expected = params.genesis_bits();
        if header.bits != expected {
            return Err(ValidationError::WrongBits {
                expected,
                got: header.bits,
            });
        }
    }
    let target = Target::from_compact(header.bits).map_err(ValidationError::BadBits)?;
    if target.value() > params.pow_limit() {
        return Err(ValidationError::TargetAboveLimit { bits: header.bits });
    }
    if !pow::meets_target(hash, &target) {
        return Err(ValidationError::InsufficientWork {
            hash: *hash,
            bits: header.bits,
        });
    }
    Ok(())
}

/// The body's structure: limits, one coinbase first at the block's height, no duplicate
/// txids, the Merkle root. Returns the txids (computed once, reused by later checks).
pub fn check_body(block: &Block, params: &ChainParams) -> Result<Vec<Txid>, ValidationError> {
    check_body_shape(block, params)?;
    let txids = block.compute_txids();
    check_body_txids(block, &txids, false)?;
    Ok(txids)
}

/// [`check_body`] for a block whose txids the caller computed from its transactions already
/// (a compact block's rebuild: the mempool's keys and the prefilled transfers' hashes), and
/// whose Merkle root it checked against them if `root_checked`: the same rules and the same
/// verdict, without hashing the transactions again.
pub fn check_body_known(
    block: &Block,
    txids: &[Txid],
    root_checked: bool,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    debug_assert_eq!(txids.len(), block.txs.len(), "one txid per transaction");
    check_body_shape(block, params)?;
    check_body_txids(block, txids, root_checked)
}

/// The body rules that need no txid: count, size, the coinbase first and at its height.
fn check_body_shape(block: &Block, params: &ChainParams) -> Result<(), ValidationError> {
    if block.txs.len() > params.max_block_txs as usize {
        return Err(ValidationError::TooManyTransactions {
            count: block.txs.len(),
            max: params.max_block_txs,
        });
    }
    let size = block.encoded_len();
    if size > params.max_block_bytes as usize {
        return Err(ValidationError::BlockTooLarge {
            size,
            max: params.max_block_bytes,
        });
    }
    let Some(Transaction::Coinbase(cb)) = block.txs.first() else {
        return Err(ValidationError::MissingCoinbase);
    };
    if cb.height != block.header.height {
        return Err(ValidationError::CoinbaseHeight {
            expected: block.header.height,
            got: cb.height,
        });
    }
    Ok(())
}

/// The body rules on the txids, in order: no second coinbase, no txid twice, the Merkle root
/// (unless `root_checked`: the caller compared it already).
fn check_body_txids(
    block: &Block,
    txids: &[Txid],
    root_checked: bool,
) -> Result<(), ValidationError> {
    for (tx, txid) in block.txs.iter().zip(txids).skip(1) {
        if matches!(tx, Transaction::Coinbase(_)) {
            return Err(ValidationError::ExtraCoinbase { txid: *txid });
        }
    }
    // Txids are SHA-256 outputs, keyed into a randomly seeded hasher: nothing to flood.
    let mut seen: HashSet<Txid, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(txids.len(), Default::default());
    for txid in txids {
        if !seen.insert(*txid) {
            return Err(ValidationError::DuplicateTxid(*txid));
        }
    }
    if !root_checked {
        let root = merkle::tx_root(txids);
        if root != block.header.tx_root {
            return Err(ValidationError::TxRootMismatch {
                expected: root,
                got: block.header.tx_root,
            });
        }
    }
    Ok(())
}

/// The rules that need the parent: height, the target the parent requires
/// ([`retarget::next_bits`]), and a timestamp after the median of the previous
/// `median_time_span` blocks and at most `max_future_ms` ahead of `now_ms`.
pub fn check_context(
    header: &Header,
    parent: &ParentInfo,
    median_time_past: u64,
    now_ms: u64,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    let expected = parent.height.saturating_add(1);
    if header.height != expected {
        return Err(ValidationError::BadHeight {
            expected,
            got: header.height,
        });
    }
    let expected = retarget::next_bits(params, parent);
    if header.bits != expected {
        return Err(ValidationError::WrongBits {
            expected,
            got: header.bits,
        });
    }
    if header.timestamp <= median_time_past {
        return Err(ValidationError::TimestampTooOld {
            timestamp: header.timestamp,
            median: median_time_past,
        });
    }
    let limit = now_ms.saturating_add(params.max_future_ms);
    if header.timestamp > limit {
        return Err(ValidationError::TimestampTooNew {
            timestamp: header.timestamp,
            limit,
        });
    }
    Ok(())
}

/// Verifies every transfer's signature under ZIP 215, in batches spread over the cores (sized
/// to the block: small blocks stay on one thread). The error names the first transfer in block
/// order that fails and why, the same as checking each alone (see `proto/PROTOCOL.md` 4.5).
pub fn check_signatures(
    block: &Block,
    txids: &[Txid],
    chain_id: &ChainId,
) -> Result<(), ValidationError> {
    let transfers: Vec<(&Txid, &super::tx::Transfer, _)> = block
        .txs
        .iter()
        .zip(txids)
        .filter_map(|(tx, txid)| {
            tx.as_transfer()
                .map(|t| (txid, t, t.signing_bytes(chain_id)))
        })
        .collect();
    let items: Vec<sig::Item<'_>> = transfers
        .iter()
        .map(|(_, t, msg)| (&t.from.0, &t.signature, &msg[..]))
        .collect();
    sig::verify_parallel(&items).map_err(|(i, reason)| ValidationError::BadSignature {
        txid: *transfers[i].0,
        reason,
    })
}

/// [`check_signatures`] that skips the transfers `cache` holds (their exact encoding verified
/// before) and records those it verifies. Same answer as [`check_signatures`]: a cached transfer
/// never fails, so the first failing transfer in block order is the same.
pub fn check_signatures_cached(
    block: &Block,
    txids: &[Txid],
    chain_id: &ChainId,
    cache: &SigCache,
) -> Result<(), ValidationError> {
    let transfers: Vec<(&Txid, &super::tx::Transfer)> = block
        .txs
        .iter()
        .zip(txids)
        .filter_map(|(tx, txid)| tx.as_transfer().map(|t| (txid, t)))
        .collect();
    let missing = cache.missing(transfers.iter().map(|(txid, _)| *txid));
    if missing.is_empty() {
        return Ok(());
    }
    let messages: Vec<_> = missing
        .iter()
        .map(|&i| transfers[i].1.signing_bytes(chain_id))
        .collect();
    let items: Vec<sig::Item<'_>> = missing
        .iter()
        .zip(&messages)
        .map(|(&i, msg)| (&transfers[i].1.from.0, &transfers[i].1.signature, &msg[..]))
        .collect();
    cache.count_verified(items.len());
    sig::verify_parallel(&items).map_err(|(i, reason)| ValidationError::BadSignature {
        txid: *transfers[missing[i]].0,
        reason,
    })?;
    cache.insert_all(missing.iter().map(|&i| transfers[i].0));
    Ok(())
}

/// The signature verdict of each transfer (with its txid), for admission to the mempool:
/// those `cache` holds pass unchecked, a txid met twice is checked once, the rest are checked
/// together under ZIP 215 ([`sig::verify_all`]). Nothing is recorded in the cache: the mempool
/// records what it admits.
pub fn transfer_verdicts(
    transfers: &[(Transfer, Txid)],
    chain_id: &ChainId,
    cache: &SigCache,
) -> Vec<Result<(), SignatureError>> {
    let mut verdicts = vec![Ok(()); transfers.len()];
    let mut first: std::collections::HashMap<Txid, usize> = std::collections::HashMap::new();
    // Indexes of the transfers to check, and of the copies that take their verdict.
    let mut unique = Vec::new();
    let mut copies = Vec::new();
    for i in cache.missing(transfers.iter().map(|(_, txid)| txid)) {
        match first.entry(transfers[i].1) {
            std::collections::hash_map::Entry::Occupied(e) => copies.push((i, *e.get())),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
                unique.push(i);
            }
        }
    }
    let messages: Vec<_> = unique
        .iter()
        .map(|&i| transfers[i].0.signing_bytes(chain_id))
        .collect();
    let items: Vec<sig::Item<'_>> = unique
        .iter()
        .zip(&messages)
        .map(|(&i, msg)| (&transfers[i].0.from.0, &transfers[i].0.signature, &msg[..]))
        .collect();
    cache.count_verified(items.len());
    for (&i, verdict) in unique.iter().zip(sig::verify_all(&items)) {
        verdicts[i] = verdict;
    }
    for (i, of) in copies {
        verdicts[i] = verdicts[of];
    }
    verdicts
}

/// Median of a list of timestamps (the upper middle for an even count, as Bitcoin); 0 for
/// an empty list.
pub fn median(timestamps: &mut [u64]) -> u64 {
    timestamps.sort_unstable();
    timestamps.get(timestamps.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Address;
    use crate::testkit::key;

    #[test]
    fn a_forgery_among_good_transfers_is_the_only_one_refused_and_cached_ones_pass_unchecked() {
        let chain_id = ChainId::default();
        let with_id = |t: Transfer| (t, Transaction::Transfer(t).compute_txid());
        let mut batch: Vec<(Transfer, Txid)> = (0..50)
            .map(|n| {
                with_id(Transfer::sign(
                    &key(1),
                    &chain_id,
                    Address::of(&key(2)),
                    1,
                    1,
                    n,
                ))
            })
            .collect();
        let mut forged = batch[20].0;
        forged.signature[40] ^= 1;
        batch.insert(21, with_id(forged));
        // A copy of a good one, checked once.
        batch.push(batch[3]);
        let cache = SigCache::default();
        cache.insert(&batch[0].1);
        let verdicts = transfer_verdicts(&batch, &chain_id, &cache);
        for (i, verdict) in verdicts.iter().enumerate() {
            let want = if i == 21 {
                Err(SignatureError::BadSignature)
            } else {
                Ok(())
            };
            assert_eq!(*verdict, want, "transfer {i}");
        }
        // 52 transfers: one cached, one a copy.
        assert_eq!(cache.verified(), 50);
        // Nothing recorded: the mempool records what it admits.
        assert_eq!(cache.len(), 1);
    }
}
