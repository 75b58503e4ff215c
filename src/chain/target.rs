//! Proof-of-work targets and work. A block meets its target when its hash, read as a 256-bit
//! big-endian number, is at most the target. The header carries the target in 4 bytes in
//! Bitcoin's compact form (`nBits`): an exponent byte and a 23-bit mantissa. A block's work is
//! the expected number of hashes to meet its target, floor(2^256 / (target + 1)); the best
//! chain is the one with the most cumulative work, summed in a 256-bit integer.
//!
//! The 256-bit arithmetic is the `uint` crate's (the integer type behind `primitive-types`):
//! fixed width, `Copy`, no allocation, with the shifts, division and overflow checks these
//! rules need.

use super::hash::BlockHash;
use std::fmt;

#[allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]
mod wide {
    uint::construct_uint! {
        /// An unsigned 256-bit integer.
        pub struct U256(4);
    }
}
pub use wide::U256;

/// Why 4 bytes are not a usable compact target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit (0x00800000) is set.
    #[error("compact target {0:#010x} has its sign bit set")]
    Negative(u32),
    /// The target is zero: no hash meets it.
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
    /// The target does not fit 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    /// Another encoding of the same target is the canonical one.
    #[error(
        "compact target {got:#010x} is not canonical (the canonical form is {canonical:#010x})"
    )]
    NotCanonical {
        /// The header's value.
        got: u32,
        /// The encoding of the same target that [`Target::to_compact`] gives.
        canonical: u32,
    },
}

/// A proof-of-work target: a hash meets it when hash <= target. Always in 1..2^256.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(U256);

impl Target {
    /// The target `value`, or `None` for zero.
    pub fn new(value: U256) -> Option<Self> {
        (!value.is_zero()).then_some(Self(value))
    }

    /// The 256-bit value.
    pub fn value(&self) -> U256 {
        self.0
    }

    /// Decodes a canonical compact target: exponent `e = bits >> 24`, sign bit `0x00800000`
    /// clear, mantissa `m = bits & 0x007fffff`, target = m * 256^(e-3) (m >> 8*(3-e) when
    /// e < 3), which must be in 1..2^256, and `bits` must equal the compact form of that
    /// target ([`Target::to_compact`]).
    pub fn from_compact(bits: u32) -> Result<Self, CompactError> {
        let value = decode_compact(bits)?;
        let target = Self::new(value).ok_or(CompactError::Zero(bits))?;
        let canonical = target.to_compact();
        if canonical != bits {
            return Err(CompactError::NotCanonical {
                got: bits,
                canonical,
            });
        }
        Ok(target)
    }

    /// The compact form, rounding the target down to its 3 most significant bytes (Bitcoin's
    /// `GetCompact`): `e` is the target's length in bytes, `m` its first 3 bytes; if that sets
    /// the sign bit, `m` is shifted right one byte and `e` grows by one.
    pub fn to_compact(&self) -> u32 {
        encode_compact(self.0)
    }

    /// The largest target whose compact form is exact and that is at most `value` (`None` for
    /// zero): `value` rounded down to compact precision.
    pub fn round_down(value: U256) -> Option<Self> {
        let bits = encode_compact(value);
        decode_compact(bits).ok().and_then(Self::new)
    }

    /// Whether `hash`, read as a big-endian number, is at most this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_big_endian(hash.as_bytes()) <= self.0
    }

    /// The target as eight big-endian 32-bit words, word 0 the most significant, the form
    /// in which SHA-256 leaves the hash (see [`words_meet`]).
    pub fn words(&self) -> [u32; 8] {
        let bytes = self.0.to_big_endian();
        let mut w = [0u32; 8];
        for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        w
    }

    /// The work of a block at this target: floor(2^256 / (target + 1)), the expected number
    /// of hashes to find one. Computed as (!target / (target + 1)) + 1, which is exact and
    /// never overflows for a target below 2^256 - 1 (every compact target is).
    pub fn work(&self) -> Work {
        if self.0 == U256::MAX {
            return Work(U256::one());
        }
        Work((!self.0 / (self.0 + U256::one())) + U256::one())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({:#010x})", self.to_compact())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0.to_big_endian()))
    }
}

/// Whether a hash given as SHA-256's eight output words (word 0 most significant) is at most
/// the target given as [`Target::words`]: a lexicographic comparison, cheap enough for the
/// miner's inner loop.
#[inline]
pub fn words_meet(hash: &[u32; 8], target: &[u32; 8]) -> bool {
    for (h, t) in hash.iter().zip(target) {
        if h != t {
            return h < t;
        }
    }
    true
}

fn decode_compact(bits: u32) -> Result<U256, CompactError> {
    let exponent = bits >> 24;
    let mantissa = bits & 0x007f_ffff;
    if bits & 0x0080_0000 != 0 {
        // Bitcoin reads this as a negative number (or a negative zero); a target is neither.
        return Err(CompactError::Negative(bits));
    }
    if exponent <= 3 {
        return Ok(U256::from(mantissa >> (8 * (3 - exponent))));
    }
    let m = U256::from(mantissa);
    let shift = 8 * (exponent as usize - 3);
    // The mantissa's significant bits plus the shift must stay within 256 bits.
    let m_bits = m.bits();
    if mantissa != 0 && m_bits + shift > 256 {
        return Err(CompactError::Overflow(bits));
    }
    Ok(m << shift)
}

fn encode_compact(value: U256) -> u32 {
    let mut size = value.bits().div_ceil(8) as u32;
    let mut mantissa: u32 = if size <= 3 {
        (value.low_u64() as u32) << (8 * (3 - size))
    } else {
        (value >> (8 * (size as usize - 3))).low_u64() as u32
    };
    if mantissa & 0x0080_0000 != 0 {
        mantissa >>= 8;
        size += 1;
    }
    (size << 24) | mantissa
}

/// Amount of work (expected hashes), a 256-bit unsigned integer; sums saturate at 2^256 - 1,
/// far beyond any chain (2^128 hashes would take every computer on Earth for ages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Work(pub U256);

impl Work {
    /// No work.
    pub const ZERO: Work = Work(U256([0; 4]));

    /// The sum, saturating.
    pub fn saturating_add(self, other: Work) -> Work {
        Work(self.0.saturating_add(other.0))
    }

    /// The value as a u128, saturating (the form of the sync `Status` message, §14.3).
    pub fn saturating_u128(&self) -> u128 {
        if self.0 > U256::from(u128::MAX) {
            u128::MAX
        } else {
            self.0.as_u128()
        }
    }

    /// The value as an approximate f64, for display and rates.
    pub fn as_f64(&self) -> f64 {
        let mut x = 0f64;
        for word in self.0.0.iter().rev() {
            x = x * 18_446_744_073_709_551_616.0 + *word as f64;
        }
        x
    }

    /// 32 big-endian bytes, the form kept in the store.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// Reads 32 big-endian bytes.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Work {
        Work(U256::from_big_endian(bytes))
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bits: u32) -> U256 {
        Target::from_compact(bits).expect("valid").value()
    }

    #[test]
    fn bitcoin_compact_examples() {
        // Bitcoin's genesis target and its regtest limit.
        assert_eq!(t(0x1d00ffff), U256::from(0xffffu64) << 208);
        assert_eq!(t(0x207fffff), U256::from(0x7fffffu64) << 232);
        assert_eq!(t(0x01010000), U256::one());
        assert_eq!(t(0x01120000), U256::from(0x12u64));
        assert_eq!(t(0x02008000), U256::from(0x80u64));
        assert_eq!(t(0x04123456), U256::from(0x12345600u64));
        assert_eq!(encode_compact(U256::from(0x12345600u64)), 0x04123456);
        assert_eq!(encode_compact(U256::from(0x80u64)), 0x02008000);
        assert_eq!(encode_compact(U256::MAX), 0x2100ffff);
    }

    #[test]
    fn invalid_encodings_are_refused() {
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(CompactError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0x01800000),
            Err(CompactError::Negative(0x01800000))
        );
        assert_eq!(Target::from_compact(0), Err(CompactError::Zero(0)));
        assert_eq!(
            Target::from_compact(0x01003456),
            Err(CompactError::Zero(0x01003456))
        );
        assert_eq!(
            Target::from_compact(0x22000100),
            Err(CompactError::Overflow(0x22000100))
        );
        assert_eq!(
            Target::from_compact(0x2101_0000),
            Err(CompactError::Overflow(0x2101_0000))
        );
        // 0xff << 216 written with a one-byte mantissa.
        assert_eq!(
            Target::from_compact(0x1e0000ff),
            Err(CompactError::NotCanonical {
                got: 0x1e0000ff,
                canonical: 0x1d00ff00
            })
        );
        // 0x12 written with bytes that the exponent drops.
        assert_eq!(
            Target::from_compact(0x01123456),
            Err(CompactError::NotCanonical {
                got: 0x01123456,
                canonical: 0x01120000
            })
        );
        assert!(Target::from_compact(0x2100ffff).is_ok());
        assert_eq!(
            Target::from_compact(0x2200ff00),
            Err(CompactError::Overflow(0x2200ff00))
        );
    }

    #[test]
    fn work_is_floor_of_2_256_over_target_plus_one() {
        let one = Target::new(U256::one()).expect("non-zero");
        assert_eq!(one.work().0, U256::one() << 255);
        let half = Target::new(U256::MAX >> 1).expect("non-zero");
        assert_eq!(half.work().0, U256::from(2u64));
        let t8 = Target::new((U256::one() << 248) - U256::one()).expect("non-zero");
        assert_eq!(t8.work().0, U256::from(256u64));
        assert_eq!(
            Target::new(U256::MAX).expect("non-zero").work().0,
            U256::one()
        );
    }

    #[test]
    fn words_compare_like_numbers() {
        let target = Target::from_compact(0x2000ffff).expect("valid");
        let tw = target.words();
        let mut below = [0u8; 32];
        below[1] = 0xff;
        below[2] = 0xfe;
        let mut above = [0u8; 32];
        above[1] = 0xff;
        above[2] = 0xff;
        above[3] = 1;
        for (bytes, want) in [(below, true), (above, false)] {
            let hash = BlockHash(bytes);
            let mut w = [0u32; 8];
            for (word, c) in w.iter_mut().zip(bytes.chunks_exact(4)) {
                *word = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            }
            assert_eq!(words_meet(&w, &tw), want);
            assert_eq!(target.is_met_by(&hash), want);
        }
    }
}
