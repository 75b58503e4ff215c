//! The pace of the best chain, for `status`: the difficulty the next block must meet, the mean
//! interval of recent blocks and the hash rate they imply.

use super::target::{Target, Work};
use super::tree::ChainState;

/// How many of the last blocks [`ChainPace`] measures.
pub const PACE_WINDOW: u64 = 60;

/// The difficulty of the next block and the recent block rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainPace {
    /// The compact target the next block must carry.
    pub next_bits: u32,
    /// Expected hashes to find the next block (its work).
    pub expected_hashes: Work,
    /// The target block interval (retargeting chains).
    pub block_time_ms: Option<u64>,
    /// Intervals measured: the last blocks of the best chain, genesis left out (its timestamp
    /// is fixed by the parameters, not by mining).
    pub intervals: u64,
    /// Their mean, ms (`None` with fewer than one interval or no time elapsed).
    pub mean_interval_ms: Option<f64>,
    /// The hash rate they imply: their work over their time span, hashes/s.
    pub hash_rate: Option<f64>,
}

impl ChainPace {
    /// Measures the last [`PACE_WINDOW`] blocks of `chain`'s best chain.
    pub fn of(chain: &ChainState) -> Self {
        let next_bits = chain.next_bits();
        let expected_hashes = Target::from_compact(next_bits)
            .map(|t| t.work())
            .unwrap_or(Work::ZERO);
        let tip = chain.height();
        let from = tip.saturating_sub(PACE_WINDOW).max(1);
        let intervals = tip.saturating_sub(from);
        let (mut mean_interval_ms, mut hash_rate) = (None, None);
        if let (Some(first), Some(last)) = (chain.header_at(from), chain.header_at(tip))
            && intervals > 0
            && last.timestamp > first.timestamp
        {
            let span_ms = (last.timestamp - first.timestamp) as f64;
            mean_interval_ms = Some(span_ms / intervals as f64);
            let mut work = Work::ZERO;
            for h in from + 1..=tip {
                if let Some(t) = chain
                    .header_at(h)
                    .and_then(|b| Target::from_compact(b.bits).ok())
                {
                    work = work.saturating_add(t.work());
                }
            }
            hash_rate = Some(work.as_f64() / (span_ms / 1000.0));
        }
        Self {
            next_bits,
            expected_hashes,
            block_time_ms: chain.params().block_time_ms(),
            intervals,
            mean_interval_ms,
            hash_rate,
        }
    }
}

/// A count with an SI prefix: 23.4 M, 1.2 G.
pub fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e12 {
        (x / 1e12, " T")
    } else if x >= 1e9 {
        (x / 1e9, " G")
    } else if x >= 1e6 {
        (x / 1e6, " M")
    } else if x >= 1e3 {
        (x / 1e3, " k")
    } else {
        (x, " ")
    };
    format!("{v:.2}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn measures_the_last_blocks_without_genesis() {
        let mut chain = ChainState::new(testkit::params());
        let empty = ChainPace::of(&chain);
        assert_eq!((empty.intervals, empty.mean_interval_ms), (0, None));
        testkit::extend(&mut chain, 5, crate::chain::Address([1; 32]));
        let pace = ChainPace::of(&chain);
        // testkit blocks are one second apart; blocks 1..=5 give 4 intervals.
        assert_eq!(pace.intervals, 4);
        assert_eq!(pace.mean_interval_ms, Some(1000.0));
        let per_block = chain.params().genesis_target().work().as_f64();
        let rate = pace.hash_rate.expect("measured");
        assert!((rate - per_block).abs() < 1e-6 * per_block, "{rate}");
        assert_eq!(pace.next_bits, chain.params().genesis_bits());
        assert_eq!(si(23_400_000.0), "23.40 M");
    }
}
