//! Chain parameters and the genesis block derived from them. Every consensus parameter is
//! committed to by the genesis block, whose hash is the chain id: two nodes with any parameter
//! different compute different chain ids and never exchange blocks or transactions.

use super::block::{BLOCK_VERSION, Block, Header};
use super::hash::{BlockHash, ChainId, sha256};
use super::merkle;
use super::retarget;
use super::target::{Target, U256};
use super::tx::{Address, Coinbase, Transaction};

/// Largest fixed difficulty, in leading zero bits.
pub const MAX_BITS: u32 = 255;

/// Default target block interval: 10 s, for a LAN of a few laptops. Short enough that a
/// transfer confirms within seconds, long enough that a block reaches every node of a LAN
/// (milliseconds) long before the next is found, so few blocks are orphaned, and that a
/// network of a dozen nodes wastes little work on stale tips.
pub const DEFAULT_BLOCK_TIME_MS: u64 = 10_000;

/// The ASERT half-life, in target intervals: every 16 intervals (160 s at 10 s) the chain is
/// behind or ahead of its schedule doubles or halves the target. PROTOCOL.md §6.3 gives the
/// reasons: a LAN's hash rate changes by whole laptops (2x, 0.5x) at once, and 16 intervals
/// settle such a step in about 50 blocks while keeping the target's own noise near ±15 %.
pub const HALF_LIFE_BLOCKS: u64 = 16;

/// Shortest and longest target block intervals.
pub const BLOCK_TIME_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=86_400_000;

/// How the target of each block is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difficulty {
    /// Every block meets one fixed target: hashes with at least `bits` leading zero bits
    /// (the target (2^256 - 1) >> bits, rounded down to compact precision). For tests,
    /// benchmarks and experiments, like Bitcoin's regtest.
    Fixed {
        /// Leading zero bits, 0..=255.
        bits: u32,
    },
    /// ASERT retargeting towards one block every `block_time_ms` (see [`super::retarget`]).
    Asert {
        /// The target block interval, ms.
        block_time_ms: u64,
        /// The half-life, ms.
        half_life_ms: u64,
    },
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difficulty::Fixed { bits } => write!(f, "fixed difficulty {bits} bits"),
            Difficulty::Asert {
                block_time_ms,
                half_life_ms,
            } => write!(
                f,
                "retargeting to {} blocks (half-life {})",
                humantime::format_duration(std::time::Duration::from_millis(*block_time_ms)),
                humantime::format_duration(std::time::Duration::from_millis(*half_life_ms))
            ),
        }
    }
}

/// The consensus parameters of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// How block targets are set.
    pub difficulty: Difficulty,
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
            difficulty: Difficulty::Asert {
                block_time_ms: DEFAULT_BLOCK_TIME_MS,
                half_life_ms: HALF_LIFE_BLOCKS * DEFAULT_BLOCK_TIME_MS,
            },
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
    /// Block interval outside [`BLOCK_TIME_RANGE_MS`].
    #[error("block time must be 100ms..=24h, got {0} ms")]
    BlockTime(u64),
    /// A zero half-life.
    #[error("ASERT half-life must be at least 1 ms")]
    HalfLife,
    /// A block must hold at least a coinbase.
    #[error("block limits too small to hold a coinbase")]
    Limits,
    /// The median span must be at least one block.
    #[error("median time span must be at least 1")]
    MedianSpan,
}

impl ChainParams {
    /// Default parameters with a fixed difficulty of `bits` leading zero bits and no
    /// retargeting (private test chains).
    pub fn with_bits(bits: u32) -> Self {
        Self {
            difficulty: Difficulty::Fixed { bits },
            ..Self::default()
        }
    }

    /// Default parameters retargeting towards one block every `block_time_ms`, with a
    /// half-life of [`HALF_LIFE_BLOCKS`] intervals.
    pub fn with_block_time(block_time_ms: u64) -> Self {
        Self {
            difficulty: Difficulty::Asert {
                block_time_ms,
                half_life_ms: HALF_LIFE_BLOCKS.saturating_mul(block_time_ms),
            },
            ..Self::default()
        }
    }

    /// The target block interval of a retargeting chain.
    pub fn block_time_ms(&self) -> Option<u64> {
        match self.difficulty {
            Difficulty::Fixed { .. } => None,
            Difficulty::Asert { block_time_ms, .. } => Some(block_time_ms),
        }
    }

    /// The compact target of genesis: the fixed target, or a retargeting chain's starting one.
    pub fn genesis_bits(&self) -> u32 {
        self.genesis_target().to_compact()
    }

    /// The target of genesis (and of blocks 1 and 2 of a retargeting chain).
    pub fn genesis_target(&self) -> Target {
        match self.difficulty {
            Difficulty::Fixed { bits } => {
                Target::round_down(U256::MAX >> bits.min(MAX_BITS) as usize)
                    .expect("(2^256 - 1) >> 255 = 1")
            }
            Difficulty::Asert { block_time_ms, .. } => retarget::genesis_target(block_time_ms),
        }
    }

    /// The easiest target any block may carry (checked before the parent is known).
    pub fn pow_limit(&self) -> U256 {
        match self.difficulty {
            Difficulty::Fixed { .. } => self.genesis_target().value(),
            Difficulty::Asert { .. } => retarget::asert_pow_limit(),
        }
    }

    /// Checks that the parameters describe a chain that can exist.
    pub fn check(&self) -> Result<(), ParamsError> {
        match self.difficulty {
            Difficulty::Fixed { bits } if bits > MAX_BITS => return Err(ParamsError::Bits(bits)),
            Difficulty::Fixed { .. } => {}
            Difficulty::Asert {
                block_time_ms,
                half_life_ms,
            } => {
                if !BLOCK_TIME_RANGE_MS.contains(&block_time_ms) {
                    return Err(ParamsError::BlockTime(block_time_ms));
                }
                if half_life_ms == 0 {
                    return Err(ParamsError::HalfLife);
                }
            }
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
        let mut b = b"gossipchain/genesis/v2".to_vec();
        match self.difficulty {
            Difficulty::Fixed { bits } => {
                b.push(0);
                b.extend_from_slice(&bits.to_be_bytes());
            }
            Difficulty::Asert {
                block_time_ms,
                half_life_ms,
            } => {
                b.push(1);
                b.extend_from_slice(&block_time_ms.to_be_bytes());
                b.extend_from_slice(&half_life_ms.to_be_bytes());
            }
        }
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
    /// not mined: its hash need not meet its target.
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
            bits: self.genesis_bits(),
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
            ChainParams::with_bits(256).check(),
            Err(ParamsError::Bits(256))
        );
        assert_eq!(
            ChainParams::with_block_time(99).check(),
            Err(ParamsError::BlockTime(99))
        );
        assert_eq!(ChainParams::with_block_time(100).check(), Ok(()));
        assert_ne!(
            ChainParams::with_block_time(500).chain_id(),
            ChainParams::default().chain_id()
        );
    }
}
