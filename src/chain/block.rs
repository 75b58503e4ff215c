//! Blocks: the fixed 96-byte header whose SHA-256 is the block hash, and the body of
//! transactions. The hash is taken over the consensus encoding itself, never a second form.

use super::encode::{DecodeError, Reader};
use super::hash::{BlockHash, TxRoot, Txid, sha256};
use super::merkle;
use super::tx::Transaction;

/// Size of an encoded header.
pub const HEADER_LEN: usize = 96;
/// The only header version defined so far.
pub const BLOCK_VERSION: u32 = 1;

/// A block header. Its layout is written in `proto/PROTOCOL.md`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// Format version, 1.
    pub version: u32,
    /// Distance from genesis (0).
    pub height: u64,
    /// The parent's hash; zeros for genesis.
    pub prev_hash: BlockHash,
    /// RFC 6962 Merkle root of the txids.
    pub tx_root: TxRoot,
    /// Milliseconds since the Unix epoch, set by the miner.
    pub timestamp: u64,
    /// Required number of leading zero bits of the block hash.
    pub bits: u32,
    /// What the miner varies.
    pub nonce: u64,
}

impl Header {
    /// The 96-byte big-endian encoding.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.version.to_be_bytes());
        b[4..12].copy_from_slice(&self.height.to_be_bytes());
        b[12..44].copy_from_slice(self.prev_hash.as_bytes());
        b[44..76].copy_from_slice(self.tx_root.as_bytes());
        b[76..84].copy_from_slice(&self.timestamp.to_be_bytes());
        b[84..88].copy_from_slice(&self.bits.to_be_bytes());
        b[88..96].copy_from_slice(&self.nonce.to_be_bytes());
        b
    }

    /// Reads a header from a cursor.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: r.u32()?,
            height: r.u64()?,
            prev_hash: BlockHash(r.array()?),
            tx_root: TxRoot(r.array()?),
            timestamp: r.u64()?,
            bits: r.u32()?,
            nonce: r.u64()?,
        })
    }

    /// Decodes exactly 96 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let h = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(h)
    }

    /// SHA-256 of the 96 encoded bytes (hashes each call).
    pub fn compute_hash(&self) -> BlockHash {
        BlockHash(sha256(&self.encode()))
    }
}

/// A block named by its height and hash: the key the store files a block under (blocks of one
/// height sit together, in height order), and what deleting or finding a stored block needs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockKey {
    /// The block's height.
    pub height: u64,
    /// The block's hash.
    pub hash: BlockHash,
}

impl BlockKey {
    /// The id of the block at `height` with `hash`.
    pub fn new(height: u64, hash: BlockHash) -> Self {
        Self { height, hash }
    }
}

/// A header and its transactions, coinbase first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// The header, committing to the transactions through `tx_root`.
    pub header: Header,
    /// The transactions, coinbase first.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The block hash (hashes the header each call).
    pub fn compute_hash(&self) -> BlockHash {
        self.header.compute_hash()
    }

    /// Header, transaction count (u32), then each transaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&(self.txs.len() as u32).to_be_bytes());
        for tx in &self.txs {
            tx.encode_to(&mut out);
        }
        out
    }

    /// Length of [`Block::encode`], computed without encoding.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + self.txs.iter().map(Transaction::encoded_len).sum::<usize>()
    }

    /// Decodes one block, refusing inputs over `max_bytes` or declaring over `max_txs`
    /// transactions before allocating for them.
    pub fn decode(bytes: &[u8], max_bytes: usize, max_txs: u32) -> Result<Self, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLong {
                len: bytes.len(),
                max: max_bytes,
            });
        }
        let mut r = Reader::new(bytes);
        let header = Header::decode_from(&mut r)?;
        let count = r.u32()?;
        if count > max_txs {
            return Err(DecodeError::TooManyTransactions {
                count: count.into(),
                max: max_txs.into(),
            });
        }
        let mut txs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            txs.push(Transaction::decode_from(&mut r)?);
        }
        r.finish()?;
        Ok(Self { header, txs })
    }

    /// The txids in block order (hashes every transaction).
    pub fn compute_txids(&self) -> Vec<Txid> {
        self.txs.iter().map(Transaction::compute_txid).collect()
    }

    /// The Merkle root of the transactions as they are (hashes every transaction).
    pub fn compute_tx_root(&self) -> TxRoot {
        merkle::tx_root(&self.compute_txids())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tx::{Address, Coinbase};

    fn sample() -> Block {
        let txs = vec![Transaction::Coinbase(Coinbase {
            height: 3,
            to: Address([5; 32]),
            amount: 50,
        })];
        let header = Header {
            version: 1,
            height: 3,
            prev_hash: BlockHash([1; 32]),
            tx_root: merkle::tx_root(&[txs[0].compute_txid()]),
            timestamp: 1_700_000_000_000,
            bits: 8,
            nonce: 42,
        };
        Block { header, txs }
    }

    #[test]
    fn header_layout_offsets() {
        let h = sample().header;
        let b = h.encode();
        assert_eq!(&b[0..4], &[0, 0, 0, 1]);
        assert_eq!(&b[4..12], &3u64.to_be_bytes());
        assert_eq!(&b[12..44], &[1; 32]);
        assert_eq!(&b[84..88], &8u32.to_be_bytes());
        assert_eq!(&b[88..96], &42u64.to_be_bytes());
        assert_eq!(Header::decode(&b), Ok(h));
    }

    #[test]
    fn block_round_trip_and_limits() {
        let b = sample();
        let bytes = b.encode();
        assert_eq!(bytes.len(), b.encoded_len());
        assert_eq!(Block::decode(&bytes, 1 << 20, 10), Ok(b.clone()));
        assert_eq!(
            Block::decode(&bytes, 10, 10),
            Err(DecodeError::TooLong {
                len: bytes.len(),
                max: 10
            })
        );
        let mut huge = bytes[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Block::decode(&huge, 1 << 20, 10),
            Err(DecodeError::TooManyTransactions { .. })
        ));
    }
}
