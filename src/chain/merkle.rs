//! The transaction Merkle root, as RFC 6962 (Certificate Transparency) defines it: leaves are
//! hashed as `SHA-256(0x00 || txid)` and inner nodes as `SHA-256(0x01 || left || right)`, and a
//! list of n items splits at the largest power of two below n. No node is ever duplicated, so
//! unlike Bitcoin's tree, `[a, b, c]` and `[a, b, c, c]` have different roots.
//!
//! Inclusion proofs are RFC 6962's audit paths (section 2.1.1): the sibling hashes from a leaf
//! up to the root. A light client that holds a block's header checks that a txid is in the
//! block by recomputing `tx_root` from the txid, its position, the block's transaction count
//! and the path ([`verify_proof`]); [`proof`] builds the path from the block's txids.

use super::hash::{TxRoot, Txid};
use sha2::{Digest, Sha256};

fn leaf(txid: &Txid) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(txid.as_bytes())
        .finalize()
        .into()
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

fn subtree(txids: &[Txid]) -> [u8; 32] {
    match txids {
        [] => Sha256::digest([]).into(),
        [one] => leaf(one),
        _ => {
            // The largest power of two strictly below the length.
            let k = split(txids.len());
            node(&subtree(&txids[..k]), &subtree(&txids[k..]))
        }
    }
}

/// The root over `txids`, in block order. The empty list hashes to SHA-256 of nothing.
pub fn tx_root(txids: &[Txid]) -> TxRoot {
    TxRoot(subtree(txids))
}

/// The largest power of two strictly below `n` (n ≥ 2): where RFC 6962 splits a list.
fn split(n: usize) -> usize {
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The audit path of the txid at `pos` among `txids` (RFC 6962 section 2.1.1): the sibling
/// subtree hashes from the leaf's level up to the root's children, nearest first. `None` if
/// `pos` is not a position in the list.
pub fn proof(txids: &[Txid], pos: usize) -> Option<Vec<[u8; 32]>> {
    if pos >= txids.len() {
        return None;
    }
    let mut path = Vec::new();
    // Walk down from the root, noting each sibling, then reverse to nearest-first.
    let (mut lo, mut hi) = (0, txids.len());
    while hi - lo > 1 {
        let k = lo + split(hi - lo);
        if pos < k {
            path.push(subtree(&txids[k..hi]));
            hi = k;
        } else {
            path.push(subtree(&txids[lo..k]));
            lo = k;
        }
    }
    path.reverse();
    Some(path)
}

/// Why an inclusion proof does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The position is not below the transaction count.
    #[error("position {pos} is not below the transaction count {count}")]
    BadPosition {
        /// The claimed position.
        pos: u64,
        /// The claimed count.
        count: u64,
    },
    /// The path is not as long as a tree of this size and position needs.
    #[error("the path has {got} hashes; a tree of {count} with position {pos} needs {needed}")]
    BadLength {
        /// The claimed position.
        pos: u64,
        /// The claimed count.
        count: u64,
        /// The hashes given.
        got: usize,
        /// The hashes needed.
        needed: usize,
    },
    /// The root recomputed from the txid and the path is not the header's.
    #[error("the path leads to root {computed}, not the header's {expected}")]
    RootMismatch {
        /// What the path gives.
        computed: TxRoot,
        /// The header's `tx_root`.
        expected: TxRoot,
    },
}

/// Checks that `txid` is the transaction at `pos` of a block of `count` transactions whose
/// header commits to `root`, given the audit `path` (RFC 9162 section 2.1.3.2, the same
/// algorithm for RFC 6962's tree). The root computed from the path is compared with `root`:
/// a path that hashes consistently but to another root is refused.
pub fn verify_proof(
    txid: &Txid,
    pos: u64,
    count: u64,
    path: &[[u8; 32]],
    root: &TxRoot,
) -> Result<(), ProofError> {
    if pos >= count {
        return Err(ProofError::BadPosition { pos, count });
    }
    let bad_length = |needed| ProofError::BadLength {
        pos,
        count,
        got: path.len(),
        needed,
    };
    let (mut f, mut s) = (pos, count - 1);
    let mut r = leaf(txid);
    for p in path {
        if s == 0 {
            return Err(bad_length(needed_len(pos, count)));
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            // A right-most node without a sibling at this level moves up unchanged.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(bad_length(needed_len(pos, count)));
    }
    if r != root.0 {
        return Err(ProofError::RootMismatch {
            computed: TxRoot(r),
            expected: *root,
        });
    }
    Ok(())
}

/// The length of the audit path of `pos` in a tree of `count` leaves (pos < count).
fn needed_len(pos: u64, count: u64) -> usize {
    let (mut lo, mut hi, mut n) = (0u64, count, 0);
    while hi - lo > 1 {
        let k = lo + (1u64 << (u64::BITS - 1 - (hi - lo - 1).leading_zeros()));
        if pos < k {
            hi = k;
        } else {
            lo = k;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid([i; 32])).collect()
    }

    /// The RFC's definition written out literally, to check the split point arithmetic.
    fn reference(txids: &[Txid]) -> [u8; 32] {
        let n = txids.len();
        if n == 0 {
            return Sha256::digest([]).into();
        }
        if n == 1 {
            return leaf(&txids[0]);
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        node(&reference(&txids[..k]), &reference(&txids[k..]))
    }

    #[test]
    fn matches_rfc_6962_split_for_every_size_up_to_70() {
        for n in 0..70 {
            let v = ids(n);
            assert_eq!(tx_root(&v).0, reference(&v), "n = {n}");
        }
    }

    #[test]
    fn repeating_the_last_txid_changes_the_root() {
        let three = ids(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(tx_root(&three), tx_root(&four));
    }

    #[test]
    fn every_proof_verifies_for_every_size_up_to_40() {
        for n in 1..40u8 {
            let v = ids(n);
            let root = tx_root(&v);
            for pos in 0..n as usize {
                let path = proof(&v, pos).unwrap();
                assert_eq!(path.len(), needed_len(pos as u64, n as u64));
                assert_eq!(
                    verify_proof(&v[pos], pos as u64, n as u64, &path, &root),
                    Ok(()),
                    "n = {n}, pos = {pos}"
                );
            }
            assert_eq!(proof(&v, n as usize), None);
        }
    }

    #[test]
    fn a_proof_for_another_txid_position_count_or_root_is_refused() {
        let v = ids(7);
        let root = tx_root(&v);
        let path = proof(&v, 5).unwrap();
        let refused = |txid: &Txid, pos, count, path: &[[u8; 32]], root: &TxRoot| {
            verify_proof(txid, pos, count, path, root).is_err()
        };
        assert!(refused(&v[4], 5, 7, &path, &root));
        assert!(refused(&v[5], 4, 7, &path, &root));
        assert!(refused(&v[5], 5, 6, &path, &root));
        assert!(refused(&v[5], 7, 7, &path, &root));
        assert!(refused(&v[5], 5, 7, &path[..path.len() - 1], &root));
        let mut longer = path.clone();
        longer.push([0; 32]);
        assert!(refused(&v[5], 5, 7, &longer, &root));
        let mut tampered = path.clone();
        tampered[0][0] ^= 1;
        assert!(matches!(
            verify_proof(&v[5], 5, 7, &tampered, &root),
            Err(ProofError::RootMismatch { .. })
        ));
        // A consistent path, but the root is not the header's.
        let other = tx_root(&ids(6));
        assert!(matches!(
            verify_proof(&v[5], 5, 7, &path, &other),
            Err(ProofError::RootMismatch { .. })
        ));
    }

    #[test]
    fn order_matters() {
        let v = ids(2);
        let r: Vec<_> = v.iter().rev().copied().collect();
        assert_ne!(tx_root(&v), tx_root(&r));
    }
}
