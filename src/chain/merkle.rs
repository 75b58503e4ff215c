//! The transaction Merkle root, as RFC 6962 (Certificate Transparency) defines it: leaves are
//! hashed as `SHA-256(0x00 || txid)` and inner nodes as `SHA-256(0x01 || left || right)`, and a
//! list of n items splits at the largest power of two below n. No node is ever duplicated, so
//! unlike Bitcoin's tree, `[a, b, c]` and `[a, b, c, c]` have different roots.

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
            let k = 1usize << (usize::BITS - 1 - (txids.len() - 1).leading_zeros());
            node(&subtree(&txids[..k]), &subtree(&txids[k..]))
        }
    }
}

/// The root over `txids`, in block order. The empty list hashes to SHA-256 of nothing.
pub fn tx_root(txids: &[Txid]) -> TxRoot {
    TxRoot(subtree(txids))
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
    fn order_matters() {
        let v = ids(2);
        let r: Vec<_> = v.iter().rev().copied().collect();
        assert_ne!(tx_root(&v), tx_root(&r));
    }
}
