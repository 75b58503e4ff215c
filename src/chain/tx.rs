//! Transactions in the account model: a coinbase that creates the block reward, and transfers
//! signed with Ed25519 over domain-separated bytes that name the chain, so a transfer is valid on
//! one chain only and, through its per-sender nonce, only once.

pub use super::address::Address;
use super::encode::{DecodeError, Reader};
use super::hash::{ChainId, Txid, sha256};
use super::sig;
use ed25519_zebra::SigningKey;

/// Domain separation for transfer signatures; the version lets the format change safely.
pub const TX_SIGNING_DOMAIN: &[u8; 17] = b"gossipchain/tx/v1";

/// Tag byte of a coinbase in the canonical encoding.
pub const COINBASE_TAG: u8 = 0x00;
/// Tag byte of a transfer in the canonical encoding.
pub const TRANSFER_TAG: u8 = 0x01;
/// Encoded size of a coinbase: tag, height, to, amount.
pub const COINBASE_LEN: usize = 1 + 8 + 32 + 8;
/// Encoded size of a transfer: tag, from, to, amount, fee, nonce, signature.
pub const TRANSFER_LEN: usize = 1 + 32 + 32 + 8 + 8 + 8 + 64;

/// The transaction that creates a block's reward; first in every block, and only there.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Coinbase {
    /// The block height: makes every coinbase, hence its txid, unique.
    pub height: u64,
    /// The miner's address.
    pub to: Address,
    /// Block reward plus the fees of the block's transfers.
    pub amount: u64,
}

/// A payment from one account to another.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Transfer {
    /// The sender, whose key signed it.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// What the recipient receives.
    pub amount: u64,
    /// What the miner receives.
    pub fee: u64,
    /// The sender's sequence number, from 0: it orders the sender's transfers and stops replays.
    pub nonce: u64,
    /// Ed25519 signature over [`Transfer::signing_bytes`].
    pub signature: [u8; 64],
}

/// Why a transfer's signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The sender is not a valid Ed25519 public key.
    #[error("sender is not a valid Ed25519 public key")]
    BadPublicKey,
    /// The signature does not verify (ZIP 215).
    #[error("signature does not verify")]
    BadSignature,
}

impl Transfer {
    /// Builds and signs a transfer for `chain_id`.
    pub fn sign(
        key: &SigningKey,
        chain_id: &ChainId,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Self {
        let mut tx = Self {
            from: Address::of(key),
            to,
            amount,
            fee,
            nonce,
            signature: [0; 64],
        };
        tx.signature = sig::sign(key, &tx.signing_bytes(chain_id));
        tx
    }

    /// The signed message: domain, chain id, then the encoding without the signature.
    pub fn signing_bytes(&self, chain_id: &ChainId) -> [u8; 17 + 32 + TRANSFER_LEN - 64] {
        let mut out = [0u8; 17 + 32 + TRANSFER_LEN - 64];
        out[..17].copy_from_slice(TX_SIGNING_DOMAIN);
        out[17..49].copy_from_slice(chain_id.as_bytes());
        let mut body = Vec::with_capacity(TRANSFER_LEN);
        self.encode_unsigned(&mut body);
        out[49..].copy_from_slice(&body);
        out
    }

    fn encode_unsigned(&self, out: &mut Vec<u8>) {
        out.push(TRANSFER_TAG);
        out.extend_from_slice(&self.from.0);
        out.extend_from_slice(&self.to.0);
        out.extend_from_slice(&self.amount.to_be_bytes());
        out.extend_from_slice(&self.fee.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
    }

    /// Checks the signature under the consensus rule, ZIP 215 (`proto/PROTOCOL.md` section
    /// 4.5), alone: what a transfer made here gets. Blocks and admission check theirs in batches
    /// ([`super::validate::check_signatures`]), with the same answer.
    pub fn verify(&self, chain_id: &ChainId) -> Result<(), SignatureError> {
        sig::verify(&self.from.0, &self.signature, &self.signing_bytes(chain_id))
    }

    /// amount + fee, or `None` on overflow.
    pub fn total_cost(&self) -> Option<u64> {
        self.amount.checked_add(self.fee)
    }
}

/// A transaction as it appears in a block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transaction {
    /// The block reward.
    Coinbase(Coinbase),
    /// A payment.
    Transfer(Transfer),
}

impl Transaction {
    /// Appends the canonical encoding.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Transaction::Coinbase(c) => {
                out.push(COINBASE_TAG);
                out.extend_from_slice(&c.height.to_be_bytes());
                out.extend_from_slice(&c.to.0);
                out.extend_from_slice(&c.amount.to_be_bytes());
            }
            Transaction::Transfer(t) => {
                t.encode_unsigned(out);
                out.extend_from_slice(&t.signature);
            }
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_to(&mut out);
        out
    }

    /// Length of the canonical encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Transaction::Coinbase(_) => COINBASE_LEN,
            Transaction::Transfer(_) => TRANSFER_LEN,
        }
    }

    /// Reads one transaction.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            COINBASE_TAG => Ok(Transaction::Coinbase(Coinbase {
                height: r.u64()?,
                to: Address(r.array()?),
                amount: r.u64()?,
            })),
            TRANSFER_TAG => Ok(Transaction::Transfer(Transfer {
                from: Address(r.array()?),
                to: Address(r.array()?),
                amount: r.u64()?,
                fee: r.u64()?,
                nonce: r.u64()?,
                signature: r.array()?,
            })),
            tag => Err(DecodeError::UnknownTxKind(tag)),
        }
    }

    /// Decodes exactly one transaction from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tx = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(tx)
    }

    /// SHA-256 of the canonical encoding (hashes the whole transaction each call).
    pub fn compute_txid(&self) -> Txid {
        let mut buf = Vec::with_capacity(TRANSFER_LEN);
        self.encode_to(&mut buf);
        Txid(sha256(&buf))
    }

    /// The transfer inside, if this is one.
    pub fn as_transfer(&self) -> Option<&Transfer> {
        match self {
            Transaction::Transfer(t) => Some(t),
            Transaction::Coinbase(_) => None,
        }
    }

    /// The fee paid to the miner (a coinbase pays none).
    pub fn fee(&self) -> u64 {
        self.as_transfer().map_or(0, |t| t.fee)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::hash::BlockHash;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    #[test]
    fn signed_transfer_verifies_and_round_trips() {
        let chain = BlockHash([7; 32]);
        let tx = Transfer::sign(&key(1), &chain, Address::of(&key(2)), 10, 1, 0);
        assert_eq!(tx.verify(&chain), Ok(()));
        let t = Transaction::Transfer(tx);
        let bytes = t.encode();
        assert_eq!(bytes.len(), TRANSFER_LEN);
        assert_eq!(Transaction::decode(&bytes), Ok(t));
    }

    #[test]
    fn signature_is_bound_to_chain_and_fields() {
        let chain = BlockHash([7; 32]);
        let tx = Transfer::sign(&key(1), &chain, Address::of(&key(2)), 10, 1, 0);
        assert_eq!(
            tx.verify(&BlockHash([8; 32])),
            Err(SignatureError::BadSignature)
        );
        let mut changed = tx;
        changed.amount = 11;
        assert_eq!(changed.verify(&chain), Err(SignatureError::BadSignature));
        let mut renonced = tx;
        renonced.nonce = 1;
        assert_eq!(renonced.verify(&chain), Err(SignatureError::BadSignature));
    }

    #[test]
    fn decode_rejects_unknown_tag_truncation_and_trailing_bytes() {
        assert_eq!(
            Transaction::decode(&[9]),
            Err(DecodeError::UnknownTxKind(9))
        );
        let cb = Transaction::Coinbase(Coinbase {
            height: 1,
            to: Address([3; 32]),
            amount: 50,
        });
        let mut bytes = cb.encode();
        assert!(matches!(
            Transaction::decode(&bytes[..10]),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        bytes.push(0);
        assert_eq!(
            Transaction::decode(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
    }
}
