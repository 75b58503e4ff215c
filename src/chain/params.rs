//! Chain parameters and the genesis block derived from them. Every consensus parameter is
//! committed to by the genesis block, whose hash is the chain id: two nodes with any parameter
//! different compute different chain ids and never exchange blocks or transactions.

use super::block::{BLOCK_VERSION, Block, Header};
use super::hash::{BlockHash, ChainId, sha256};
use super::merkle;
use super::tx::{Address, Coinbase, Transaction};

/// Largest accepted difficulty; keeps cumulative work inside a u128.
pub const MAX_BITS: u32 = 96;

/// Default difficulty: about 2^27 = 134 M hashes a block, a few seconds for a LAN of laptops
/// mining on all cores at about 23 M hashes/s per core (the README's benchmark figures).
pub const DEFAULT_BITS: u32 = 27;

/// The consensus parameters of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Leading zero bits every block hash must have (fixed difficulty).
    pub bits: u32,
    /// New coins in each block, on top of its fees.
    pub block_reward: u64,
    /// Largest encoded block, header included.
    pub max_block_bytes: u32,
    /// Most transactions in a block, coinbase included.
    pub max_block_txs: u32,
    /// How far ahead of the local clock a block timestamp may be, in ms.
    pub max_future_ms: u64,
    /// A block's timestamp must exceed the median of this many previous blocks.
    pub median_time_span: u32,
    /// Genesis timestamp, ms since the Unix epoch.
    pub genesis_timestamp: u64,
    /// Free text committed to by genesis, to start a distinct chain with equal parameters.
    pub genesis_message: String,
}

impl Default for ChainParams {
    fn default() -> Self {
        Self {
            bits: DEFAULT_BITS,
            block_reward: 50,
            max_block_bytes: 1_000_000,
            max_block_txs: 5_000,
            max_future_ms: 2 * 60 * 1000,
            median_time_span: 11,
            // 2026-01-01T00:00:00Z
            genesis_timestamp: 1_767_225_600_000,
            genesis_message: "gossipchain genesis: blocks by gossip, not by polling".into(),
        }
    }
}

/// Why parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Difficulty outside 0..=MAX_BITS.
    #[error("difficulty must be 0..={MAX_BITS} bits, got {0}")]
    Bits(u32),
    /// A block must hold at least a coinbase.
    #[error("block limits too small to hold a coinbase")]
    Limits,
    /// The median span must be at least one block.
    #[error("median time span must be at least 1")]
    MedianSpan,
}

impl ChainParams {
    /// Default parameters with another difficulty (private test chains).
    pub fn with_bits(bits: u32) -> Self {
        Self {
            bits,
            ..Self::default()
        }
    }

    /// Checks that the parameters describe a chain that can exist.
    pub fn check(&self) -> Result<(), ParamsError> {
        if self.bits > MAX_BITS {
            return Err(ParamsError::Bits(self.bits));
        }
        if self.max_block_txs < 1 || self.max_block_bytes < 200 {
            return Err(ParamsError::Limits);
        }
        if self.median_time_span < 1 {
            return Err(ParamsError::MedianSpan);
        }
        Ok(())
    }

    /// The bytes genesis commits to: a domain tag, then every parameter.
    fn commitment(&self) -> Vec<u8> {
        let mut b = b"gossipchain/genesis/v1".to_vec();
        b.extend_from_slice(&self.bits.to_be_bytes());
        b.extend_from_slice(&self.block_reward.to_be_bytes());
        b.extend_from_slice(&self.max_block_bytes.to_be_bytes());
        b.extend_from_slice(&self.max_block_txs.to_be_bytes());
        b.extend_from_slice(&self.max_future_ms.to_be_bytes());
        b.extend_from_slice(&self.median_time_span.to_be_bytes());
        b.extend_from_slice(&self.genesis_timestamp.to_be_bytes());
        b.extend_from_slice(self.genesis_message.as_bytes());
        b
    }

    /// The genesis block: height 0, zero parent, nonce 0, and one coinbase of amount 0 paid to
    /// SHA-256 of the parameter commitment (an address nobody holds a key for). It is defined,
    /// not mined: its hash need not meet `bits`.
    pub fn genesis(&self) -> Block {
        let txs = vec![Transaction::Coinbase(Coinbase {
            height: 0,
            to: Address(sha256(&self.commitment())),
            amount: 0,
        })];
        let header = Header {
            version: BLOCK_VERSION,
            height: 0,
            prev_hash: BlockHash::ZERO,
            tx_root: merkle::tx_root(&[txs[0].compute_txid()]),
            timestamp: self.genesis_timestamp,
            bits: self.bits,
            nonce: 0,
        };
        Block { header, txs }
    }

    /// The chain id: the genesis hash.
    pub fn chain_id(&self) -> ChainId {
        self.genesis().compute_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_deterministic_and_parameters_change_the_chain_id() {
        let p = ChainParams::default();
        assert_eq!(p.genesis(), ChainParams::default().genesis());
        assert_ne!(p.chain_id(), ChainParams::with_bits(8).chain_id());
        let mut other = ChainParams::default();
        other.block_reward += 1;
        assert_ne!(p.chain_id(), other.chain_id());
        other = ChainParams::default();
        other.genesis_message.push('!');
        assert_ne!(p.chain_id(), other.chain_id());
    }

    #[test]
    fn check_rejects_impossible_parameters() {
        assert_eq!(ChainParams::default().check(), Ok(()));
        assert_eq!(
            ChainParams::with_bits(97).check(),
            Err(ParamsError::Bits(97))
        );
    }
}
