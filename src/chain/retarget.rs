//! Difficulty retargeting: the target each block must meet, from its parent.
//!
//! A retargeting chain uses ASERT (aserti3-2d, the absolutely scheduled exponentially rising
//! targets that Bitcoin Cash adopted in November 2020), in the same integer arithmetic, so
//! every implementation computes the same target bit for bit. The schedule is anchored at
//! block 1: block h (h >= 1) is due at `t1 + T * (h - 1)`, where t1 is block 1's timestamp and
//! T the target block interval, and the target of the block after a parent at height p >= 1
//! with timestamp tp is
//!
//! ```text
//! target = genesis_target * 2^(((tp - t1) - T * (p - 1)) / half_life)
//! ```
//!
//! clamped to `[1, ASERT_POW_LIMIT]`: every half-life the chain runs behind its schedule
//! doubles the target (halves the difficulty), every half-life ahead halves it. Blocks 1 and 2
//! use the genesis target. Anchoring at block 1 rather than genesis: the genesis timestamp is
//! a constant written with the parameters, long before anyone mines, while block 1 is mined
//! when the chain really starts; counting from genesis would make the first blocks of a chain
//! started months later come at the easiest target until the schedule caught up.

use super::params::{ChainParams, Difficulty};
use super::target::{Target, U256};

/// The easiest target a retargeting chain allows: 2^236 - 1 (about 2^20 = 1 M hashes a block,
/// some 50 ms on one core). Below 2^239 so that `target * factor` (factor < 2^17) never
/// overflows 256 bits in [`calculate_asert`].
pub fn asert_pow_limit() -> U256 {
    (U256::one() << 236) - U256::one()
}

/// Hashes per second per core assumed for the genesis target: 2^24 = 16.8 M, a little under
/// the 20-25 M/s one core of a laptop does (the mining benchmark), so that the first blocks
/// of a new chain mined on one core come within about one target interval.
pub const GENESIS_HASHES_PER_SECOND: u64 = 1 << 24;

/// The genesis target of a retargeting chain with a `block_time_ms` interval: the compact
/// rounding down of (2^256 - 1) / W, W = 2^24 * block_time_ms / 1000 (integer division, at
/// least 1) the expected hashes of one core in one interval, capped at the pow limit.
pub fn genesis_target(block_time_ms: u64) -> Target {
    let w = (u128::from(GENESIS_HASHES_PER_SECOND) * u128::from(block_time_ms) / 1000).max(1);
    let value = (U256::MAX / U256::from(w)).min(asert_pow_limit());
    Target::round_down(value).expect("(2^256 - 1) / w > 0 for w < 2^128")
}

/// What the target of a child depends on, about its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParentInfo {
    /// The parent's height.
    pub height: u64,
    /// The parent's timestamp, ms.
    pub timestamp: u64,
    /// The timestamp of the parent's ancestor at height 1 (the parent itself at height 1;
    /// unused at height 0).
    pub anchor_time: u64,
}

/// The compact target (`bits`) the child of `parent` must carry.
pub fn next_bits(params: &ChainParams, parent: &ParentInfo) -> u32 {
    match params.difficulty {
        Difficulty::Fixed { .. } => params.genesis_bits(),
        Difficulty::Asert {
            block_time_ms,
            half_life_ms,
        } => {
            if parent.height == 0 {
                return params.genesis_bits();
            }
            let reference = genesis_target(block_time_ms).value();
            let spacing = i128::from(block_time_ms);
            // As Bitcoin Cash's formula: the time since the anchor's (virtual) parent, due at
            // t1 - T, and the height difference to the anchor.
            let time_diff = i128::from(parent.timestamp) - i128::from(parent.anchor_time) + spacing;
            let height_diff = i128::from(parent.height - 1);
            let next = calculate_asert(
                reference,
                spacing,
                time_diff,
                height_diff,
                asert_pow_limit(),
                i128::from(half_life_ms),
            );
            Target::new(next)
                .expect("calculate_asert returns at least 1")
                .to_compact()
        }
    }
}

/// Bitcoin Cash's `CalculateASERT` (src/pow.cpp), in the same integer steps:
///
/// ```text
/// exponent = ((time_diff - spacing * (height_diff + 1)) * 65536) / half_life  (truncated)
/// shifts   = exponent >> 16  (floor)     frac = exponent & 0xffff
/// factor   = 65536 + ((195766423245049*frac + 971821376*frac^2 + 5127*frac^3 + 2^47) >> 48)
/// next     = (ref_target * factor) shifted left by shifts - 16 (right if negative)
/// ```
///
/// then 0 becomes 1 and anything above `pow_limit` (or past 2^256) becomes `pow_limit`. The
/// polynomial approximates 2^frac within 0.013 %. Bitcoin Cash computes in 64-bit integers
/// and requires |time_diff - spacing * height_diff| < 2^47; here the exponent is a 128-bit
/// integer, which gives the same result wherever that holds and saturates beyond it.
/// Requires `1 <= ref_target <= pow_limit < 2^239` and `half_life > 0`.
pub fn calculate_asert(
    ref_target: U256,
    spacing: i128,
    time_diff: i128,
    height_diff: i128,
    pow_limit: U256,
    half_life: i128,
) -> U256 {
    debug_assert!(!ref_target.is_zero() && ref_target <= pow_limit);
    debug_assert!(pow_limit >> 239 == U256::zero() && half_life > 0);
    let lag = time_diff.saturating_sub(spacing.saturating_mul(height_diff.saturating_add(1)));
    let exponent = lag.saturating_mul(65536) / half_life;
    let shifts = exponent >> 16;
    let frac = (exponent & 0xffff) as u128;
    let factor = 65536
        + ((195_766_423_245_049u128 * frac
            + 971_821_376u128 * frac * frac
            + 5127u128 * frac * frac * frac
            + (1u128 << 47))
            >> 48);
    // ref_target < 2^239 and factor < 2^17: the product fits.
    let next = ref_target * U256::from(factor as u64);
    let shifts = shifts - 16;
    let next = if shifts <= 0 {
        if shifts <= -256 {
            U256::zero()
        } else {
            next >> (-shifts) as usize
        }
    } else if shifts >= 256 || (next << shifts as usize) >> shifts as usize != next {
        // Wider integers would hold a value >= 2^256, past the limit anyway.
        pow_limit
    } else {
        next << shifts as usize
    };
    if next.is_zero() {
        U256::one()
    } else if next > pow_limit {
        pow_limit
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_schedule_keeps_the_genesis_target_and_a_half_life_doubles_it() {
        let p = ChainParams::with_block_time(10_000);
        let g = p.genesis_bits();
        let at = |height, timestamp| {
            next_bits(
                &p,
                &ParentInfo {
                    height,
                    timestamp,
                    anchor_time: 1_000_000,
                },
            )
        };
        assert_eq!(at(0, 0), g);
        assert_eq!(at(1, 1_000_000), g);
        assert_eq!(at(101, 1_000_000 + 100 * 10_000), g);
        let Difficulty::Asert { half_life_ms, .. } = p.difficulty else {
            panic!("retargeting chain");
        };
        let slow =
            Target::from_compact(at(101, 1_000_000 + 100 * 10_000 + half_life_ms)).expect("valid");
        let genesis = Target::from_compact(g).expect("valid");
        assert_eq!(
            slow.value(),
            Target::round_down(genesis.value() * U256::from(2u64))
                .expect("non-zero")
                .value()
        );
    }

    #[test]
    fn the_genesis_target_follows_the_block_time() {
        let t10 = genesis_target(10_000).work();
        let t1 = genesis_target(1_000).work();
        let ratio = t10.as_f64() / t1.as_f64();
        assert!((ratio - 10.0).abs() < 0.01, "{ratio}");
        // About 2^24 hashes a second of target interval.
        assert!((t1.as_f64() / 16_777_216.0 - 1.0).abs() < 0.01);
        assert_eq!(genesis_target(1).value(), {
            Target::round_down(asert_pow_limit())
                .expect("non-zero")
                .value()
        });
    }
}
