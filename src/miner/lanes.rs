//! Multi-lane nonce search: many nonces of one header hashed at once per thread.
//!
//! A header is 96 bytes, so its SHA-256 is two compressions; the first 64 bytes do not change
//! while mining (their state, the midstate, is computed once per template), and in the second
//! block only the nonce words W6 and W7 vary. So each nonce costs one compression, of which
//! rounds 0-5 and schedule words W16-W20 are the same for every nonce and computed once too.
//!
//! Backends, chosen at run time by CPU feature detection ([`Backend::best`]):
//! - [`Backend::Avx512`]: 16 nonces per instruction in the 512-bit lanes of AVX-512F;
//! - [`Backend::ShaNi`]: the x86 SHA extensions, [`SHANI_STREAMS`] independent nonces
//!   interleaved so the SHA units never wait for a result;
//! - [`Backend::Avx2`]: 8 nonces per instruction in 256-bit lanes;
//! - [`Backend::ArmSha2`]: the ARMv8 SHA-256 instructions, two nonces interleaved;
//! - [`Backend::Portable`]: `sha2`'s `compress256` per nonce (itself accelerated where it can).
//!
//! No published crate searches a midstate over many lanes (SIMD SHA-256 crates hash whole
//! messages), hence this hand-written `std::arch` code. Every backend answers the same
//! question, "which is the first nonce in a range whose digest's first big-endian word is at
//! most a bound", and the caller confirms each candidate against the full target with the
//! scalar hash, so a backend can only cost speed, never correctness; the tests check every
//! backend against `sha2` on random headers and nonces. All of the crate's SIMD `unsafe` is in
//! this file: calling a function compiled for a CPU feature, only after detecting the feature.

use crate::chain::block::{HEADER_LEN, Header};
use sha2::block_api::compress256;
use std::sync::OnceLock;

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Independent nonces the SHA-NI backend keeps in flight per thread.
pub const SHANI_STREAMS: usize = 4;

fn ssig0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn ssig1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One scalar SHA-256 round on the working variables `a..h`.
fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(kw);
    let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
        .wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// A header prepared for the search: everything that does not depend on the nonce.
#[derive(Clone, Debug)]
pub struct Template {
    /// SHA-256 state after the header's first 64 bytes.
    mid: [u32; 8],
    /// The second block (header bytes 64..96, padding, length) with a zero nonce.
    tail: [u8; 64],
    /// Message schedule words that do not depend on the nonce: W0-W5, W8-W20 (W6 and W7, the
    /// nonce, are 0 here; W21 onwards depend on them and are 0 here too).
    w: [u32; 64],
    /// The working variables after rounds 0-5 (the x86 kernels start at round 6).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    s6: [u32; 8],
    /// The working variables after rounds 0-3 (the ARMv8 kernel works in groups of four).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    s4: [u32; 8],
    /// Schedule words 16..20 as `sha256msg1(W0..3, W4..7)` gives them for SHA-NI:
    /// `W[i] + sigma0(W[i+1])` for i in 0..4 (only W4 of the second vector is used).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    msg1_0: [u32; 4],
}

impl Template {
    /// Prepares `header` (whose nonce is ignored).
    pub fn new(header: &Header) -> Self {
        let bytes = header.encode();
        let mut mid = IV;
        let mut first = [0u8; 64];
        first.copy_from_slice(&bytes[..64]);
        compress256(&mut mid, &[first]);
        let mut tail = [0u8; 64];
        tail[..32].copy_from_slice(&bytes[64..HEADER_LEN]);
        tail[24..32].fill(0);
        tail[32] = 0x80;
        tail[56..].copy_from_slice(&((HEADER_LEN as u64) * 8).to_be_bytes());
        let mut w = [0u32; 64];
        for (i, word) in tail.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for i in 16..21 {
            w[i] = ssig1(w[i - 2])
                .wrapping_add(w[i - 7])
                .wrapping_add(ssig0(w[i - 15]))
                .wrapping_add(w[i - 16]);
        }
        let mut s = mid;
        let mut s4 = mid;
        for i in 0..6 {
            if i == 4 {
                s4 = s;
            }
            round(&mut s, K[i].wrapping_add(w[i]));
        }
        let msg1_0 = [0, 1, 2, 3].map(|i| w[i].wrapping_add(ssig0(w[i + 1])));
        Self {
            mid,
            tail,
            w,
            s6: s,
            s4,
            msg1_0,
        }
    }

    /// The SHA-256 state words of the header with `nonce` (the block hash, word 0 first,
    /// each big-endian), by `sha2`'s compression.
    pub fn digest(&self, nonce: u64) -> [u32; 8] {
        let mut state = self.mid;
        let mut tail = self.tail;
        tail[24..32].copy_from_slice(&nonce.to_be_bytes());
        compress256(&mut state, &[tail]);
        state
    }

    /// The block hash bytes of the header with `nonce`.
    pub fn hash(&self, nonce: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, w) in out.chunks_exact_mut(4).zip(self.digest(nonce)) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// A way to hash many nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sha2`'s `compress256`, one nonce at a time: any CPU.
    Portable,
    /// AVX2, 8 lanes (x86-64).
    Avx2,
    /// AVX-512F, 16 lanes (x86-64).
    Avx512,
    /// SHA extensions with SSE4.1, [`SHANI_STREAMS`] interleaved nonces (x86-64).
    ShaNi,
    /// ARMv8 SHA-256 instructions, two interleaved nonces (aarch64).
    ArmSha2,
}

impl Backend {
    /// Every backend, in order of preference.
    pub const ALL: [Backend; 5] = [
        Backend::Avx512,
        Backend::ShaNi,
        Backend::ArmSha2,
        Backend::Avx2,
        Backend::Portable,
    ];

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable (sha2 compress256)",
            Backend::Avx2 => "AVX2 x8",
            Backend::Avx512 => "AVX-512 x16",
            Backend::ShaNi => "SHA-NI x4 interleaved",
            Backend::ArmSha2 => "ARMv8 SHA2 x2 interleaved",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => {
                std::arch::is_x86_feature_detected!("sha")
                    && std::arch::is_x86_feature_detected!("sse4.1")
            }
            #[cfg(target_arch = "aarch64")]
            Backend::ArmSha2 => std::arch::is_aarch64_feature_detected!("sha2"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The first available backend of [`Backend::ALL`], detected once.
    pub fn best() -> Backend {
        static BEST: OnceLock<Backend> = OnceLock::new();
        *BEST.get_or_init(|| {
            Backend::ALL
                .into_iter()
                .find(|b| b.available())
                .unwrap_or(Backend::Portable)
        })
    }

    /// The first nonce of `start, start + 1, ..., start + count - 1` (wrapping around u64)
    /// whose digest's first word is at most `word0_max`, if any. An unavailable backend falls
    /// back to [`Backend::Portable`].
    pub fn scan(self, t: &Template, start: u64, count: u64, word0_max: u32) -> Option<u64> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if self.available() => {
                // SAFETY: `available()` just checked that this CPU has AVX-512F, the only
                // feature the function is compiled for; it reads nothing but its arguments.
                unsafe { x86::scan_avx512(t, start, count, word0_max) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 if self.available() => {
                // SAFETY: `available()` just checked that this CPU has AVX2, the only feature
                // the function is compiled for; it reads nothing but its arguments.
                unsafe { x86::scan_avx2(t, start, count, word0_max) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi if self.available() => {
                // SAFETY: `available()` just checked that this CPU has the SHA extensions and
                // SSE4.1, the features the function is compiled for; it reads nothing but its
                // arguments.
                unsafe { x86::scan_shani(t, start, count, word0_max) }
            }
            #[cfg(target_arch = "aarch64")]
            Backend::ArmSha2 if self.available() => {
                // SAFETY: `available()` just checked that this CPU has the SHA2 extension (and
                // NEON, which every aarch64 CPU has), the features the function is compiled
                // for; it reads nothing but its arguments.
                unsafe { arm::scan_sha2(t, start, count, word0_max) }
            }
            _ => scan_portable(t, start, count, word0_max),
        }
    }
}

fn scan_portable(t: &Template, start: u64, count: u64, word0_max: u32) -> Option<u64> {
    let mut nonce = start;
    for _ in 0..count {
        if t.digest(nonce)[0] <= word0_max {
            return Some(nonce);
        }
        nonce = nonce.wrapping_add(1);
    }
    None
}

/// The nonce words (W6 = high half, W7 = low half) of `lanes` consecutive nonces from `base`.
#[inline(always)]
fn nonce_words<const L: usize>(base: u64) -> ([u32; L], [u32; L]) {
    let mut hi = [0u32; L];
    let mut lo = [0u32; L];
    for i in 0..L {
        let n = base.wrapping_add(i as u64);
        hi[i] = (n >> 32) as u32;
        lo[i] = n as u32;
    }
    (hi, lo)
}

/// Lanes of the last group that lie inside the range (`left` nonces were left before it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn valid_lanes(left: u64, lanes: usize) -> u32 {
    if left >= lanes as u64 {
        u32::MAX
    } else {
        (1u32 << left) - 1
    }
}

/// The rounds 6..64 of the compression over vectors of lanes, given the lane operations in
/// scope (`splat`, `add`, `bsig0`, `bsig1`, `ssig0`, `ssig1`, `ch`, `maj`): returns the final
/// `a`. Rounds and schedule are unrolled so every index is a constant.
#[cfg(target_arch = "x86_64")]
macro_rules! lane_rounds {
    ($t:expr, $w6:expr, $w7:expr) => {{
        let t: &Template = $t;
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = [
            splat(t.s6[0]),
            splat(t.s6[1]),
            splat(t.s6[2]),
            splat(t.s6[3]),
            splat(t.s6[4]),
            splat(t.s6[5]),
            splat(t.s6[6]),
            splat(t.s6[7]),
        ];
        let zero = splat(0);
        let mut w = [zero; 16];
        // Slot 5 is read (as W5) by W21's schedule; slots 8-15 are filled as rounds 8-15 use
        // them, slots 0-4 by W16-W20.
        w[5] = splat(t.w[5]);
        w[6] = $w6;
        w[7] = $w7;
        macro_rules! r {
            ($i:literal) => {{
                let i: usize = $i;
                let kw = if i == 6 || i == 7 {
                    add(splat(K[i]), w[i])
                } else if i <= 20 {
                    // W8..W20 do not depend on the nonce: K + W is one constant.
                    splat(K[i].wrapping_add(t.w[i]))
                } else {
                    let wi = add(
                        add(ssig1(w[(i - 2) & 15]), w[(i - 7) & 15]),
                        add(ssig0(w[(i - 15) & 15]), w[(i - 16) & 15]),
                    );
                    w[i & 15] = wi;
                    add(splat(K[i]), wi)
                };
                if (16..=20).contains(&i) {
                    w[i & 15] = splat(t.w[i]);
                } else if (8..16).contains(&i) {
                    w[i] = splat(t.w[i]);
                }
                let t1 = add(add(h, bsig1(e)), add(ch(e, f, g), kw));
                let t2 = add(bsig0(a), maj(a, b, c));
                h = g;
                g = f;
                f = e;
                e = add(d, t1);
                d = c;
                c = b;
                b = a;
                a = add(t1, t2);
            }};
        }
        r!(6);
        r!(7);
        r!(8);
        r!(9);
        r!(10);
        r!(11);
        r!(12);
        r!(13);
        r!(14);
        r!(15);
        r!(16);
        r!(17);
        r!(18);
        r!(19);
        r!(20);
        r!(21);
        r!(22);
        r!(23);
        r!(24);
        r!(25);
        r!(26);
        r!(27);
        r!(28);
        r!(29);
        r!(30);
        r!(31);
        r!(32);
        r!(33);
        r!(34);
        r!(35);
        r!(36);
        r!(37);
        r!(38);
        r!(39);
        r!(40);
        r!(41);
        r!(42);
        r!(43);
        r!(44);
        r!(45);
        r!(46);
        r!(47);
        r!(48);
        r!(49);
        r!(50);
        r!(51);
        r!(52);
        r!(53);
        r!(54);
        r!(55);
        r!(56);
        r!(57);
        r!(58);
        r!(59);
        r!(60);
        r!(61);
        r!(62);
        r!(63);
        let _ = (b, c, d, e, f, g, h);
        a
    }};
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86-64 kernels. Each `scan_*` is compiled for its CPU features and is called only
    //! after they were detected; the helpers carry the same features so they inline.
    use super::{K, SHANI_STREAMS, Template, nonce_words, valid_lanes};
    use std::arch::x86_64::*;

    mod v512 {
        use std::arch::x86_64::*;
        pub type V = __m512i;
        pub const LANES: usize = 16;
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn splat(x: u32) -> V {
            _mm512_set1_epi32(x as i32)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn add(a: V, b: V) -> V {
            _mm512_add_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn bsig0(x: V) -> V {
            let (r2, r13, r22) = (
                _mm512_ror_epi32::<2>(x),
                _mm512_ror_epi32::<13>(x),
                _mm512_ror_epi32::<22>(x),
            );
            _mm512_ternarylogic_epi32::<0x96>(r2, r13, r22)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn bsig1(x: V) -> V {
            let (r6, r11, r25) = (
                _mm512_ror_epi32::<6>(x),
                _mm512_ror_epi32::<11>(x),
                _mm512_ror_epi32::<25>(x),
            );
            _mm512_ternarylogic_epi32::<0x96>(r6, r11, r25)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn ssig0(x: V) -> V {
            let (r7, r18, s3) = (
                _mm512_ror_epi32::<7>(x),
                _mm512_ror_epi32::<18>(x),
                _mm512_srli_epi32::<3>(x),
            );
            _mm512_ternarylogic_epi32::<0x96>(r7, r18, s3)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn ssig1(x: V) -> V {
            let (r17, r19, s10) = (
                _mm512_ror_epi32::<17>(x),
                _mm512_ror_epi32::<19>(x),
                _mm512_srli_epi32::<10>(x),
            );
            _mm512_ternarylogic_epi32::<0x96>(r17, r19, s10)
        }
        /// `e ? f : g`, bit by bit.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn ch(e: V, f: V, g: V) -> V {
            _mm512_ternarylogic_epi32::<0xca>(e, f, g)
        }
        /// The majority of `a`, `b`, `c`, bit by bit.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn maj(a: V, b: V, c: V) -> V {
            _mm512_ternarylogic_epi32::<0xe8>(a, b, c)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn from_array(x: &[u32; LANES]) -> V {
            let x = x.map(|v| v as i32);
            _mm512_setr_epi32(
                x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12],
                x[13], x[14], x[15],
            )
        }
        /// Bit i set when lane i of `x` is at most `max` (unsigned).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn le_mask(x: V, max: u32) -> u32 {
            u32::from(_mm512_cmple_epu32_mask(x, splat(max)))
        }
    }

    mod v256 {
        use std::arch::x86_64::*;
        pub type V = __m256i;
        pub const LANES: usize = 8;
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn splat(x: u32) -> V {
            _mm256_set1_epi32(x as i32)
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn add(a: V, b: V) -> V {
            _mm256_add_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        fn xor3(a: V, b: V, c: V) -> V {
            _mm256_xor_si256(_mm256_xor_si256(a, b), c)
        }
        macro_rules! ror {
            ($x:expr, $n:literal) => {
                _mm256_or_si256(
                    _mm256_srli_epi32::<$n>($x),
                    _mm256_slli_epi32::<{ 32 - $n }>($x),
                )
            };
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn bsig0(x: V) -> V {
            xor3(ror!(x, 2), ror!(x, 13), ror!(x, 22))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn bsig1(x: V) -> V {
            xor3(ror!(x, 6), ror!(x, 11), ror!(x, 25))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn ssig0(x: V) -> V {
            xor3(ror!(x, 7), ror!(x, 18), _mm256_srli_epi32::<3>(x))
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn ssig1(x: V) -> V {
            xor3(ror!(x, 17), ror!(x, 19), _mm256_srli_epi32::<10>(x))
        }
        /// `e ? f : g`, bit by bit: `g ^ (e & (f ^ g))`.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn ch(e: V, f: V, g: V) -> V {
            _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
        }
        /// The majority of `a`, `b`, `c`: `(a & b) | (c & (a | b))`.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn maj(a: V, b: V, c: V) -> V {
            _mm256_or_si256(
                _mm256_and_si256(a, b),
                _mm256_and_si256(c, _mm256_or_si256(a, b)),
            )
        }
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn from_array(x: &[u32; LANES]) -> V {
            let x = x.map(|v| v as i32);
            _mm256_setr_epi32(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])
        }
        /// Bit i set when lane i of `x` is at most `max` (unsigned): min(x, max) == x.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn le_mask(x: V, max: u32) -> u32 {
            let le = _mm256_cmpeq_epi32(_mm256_min_epu32(x, splat(max)), x);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }

    /// Generates a lane scanner from one of the vector modules.
    macro_rules! lane_scan {
        ($name:ident, $feature:literal, $m:ident) => {
            #[target_feature(enable = $feature)]
            // The unrolled schedule writes some slots that the last rounds never read.
            #[allow(unused_assignments)]
            pub fn $name(t: &Template, start: u64, count: u64, word0_max: u32) -> Option<u64> {
                use $m::{LANES, add, bsig0, bsig1, ch, from_array, le_mask, maj, splat};
                use $m::{ssig0, ssig1};
                let mid0 = splat(t.mid[0]);
                let mut done = 0u64;
                while done < count {
                    let base = start.wrapping_add(done);
                    let (hi, lo) = nonce_words::<LANES>(base);
                    let a = lane_rounds!(t, from_array(&hi), from_array(&lo));
                    let mask = le_mask(add(a, mid0), word0_max) & valid_lanes(count - done, LANES);
                    if mask != 0 {
                        return Some(base.wrapping_add(u64::from(mask.trailing_zeros())));
                    }
                    done = done.saturating_add(LANES as u64);
                }
                None
            }
        };
    }

    lane_scan!(scan_avx512, "avx512f", v512);
    lane_scan!(scan_avx2, "avx2", v256);

    /// `_mm_set_epi32` from the four words in lane order (lane 0 first).
    #[inline]
    #[target_feature(enable = "sse4.1")]
    fn lanes4(w0: u32, w1: u32, w2: u32, w3: u32) -> __m128i {
        _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32)
    }

    /// [`SHANI_STREAMS`] nonces, each a separate SHA-NI compression from round 6, interleaved
    /// instruction by instruction. The state is in the ABEF / CDGH layout `sha256rnds2` uses.
    #[target_feature(enable = "sha,sse4.1")]
    pub fn scan_shani(t: &Template, start: u64, count: u64, word0_max: u32) -> Option<u64> {
        const N: usize = SHANI_STREAMS;
        let s = &t.s6;
        // After rounds 0-5: ABEF = (a, b, e, f) from the top lane down, CDGH likewise.
        let abef6 = lanes4(s[5], s[4], s[1], s[0]);
        let cdgh6 = lanes4(s[7], s[6], s[3], s[2]);
        let m0_start = lanes4(t.msg1_0[0], t.msg1_0[1], t.msg1_0[2], t.msg1_0[3]);
        let m2_start = lanes4(t.w[8], t.w[9], t.w[10], t.w[11]);
        let m3_start = lanes4(t.w[12], t.w[13], t.w[14], t.w[15]);
        let kv: [__m128i; 16] = {
            let mut kv = [_mm_setzero_si128(); 16];
            let mut g = 0;
            while g < 16 {
                kv[g] = lanes4(K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]);
                g += 1;
            }
            kv
        };
        let mut done = 0u64;
        while done < count {
            let base = start.wrapping_add(done);
            let (hi, lo) = nonce_words::<N>(base);
            let mut s0 = [abef6; N];
            let mut s1 = [cdgh6; N];
            let mut m = [[_mm_setzero_si128(); N]; 4];
            for j in 0..N {
                // Rounds 6 and 7 (the nonce words), then the state is ABEF in s0, CDGH in s1.
                let wk = lanes4(hi[j].wrapping_add(K[6]), lo[j].wrapping_add(K[7]), 0, 0);
                s0[j] = _mm_sha256rnds2_epu32(cdgh6, abef6, wk);
                s1[j] = abef6;
                m[0][j] = m0_start;
                m[1][j] = lanes4(t.w[4], t.w[5], hi[j], lo[j]);
                m[2][j] = m2_start;
                m[3][j] = m3_start;
            }
            // Groups of four rounds, 8-11 to 60-63; group g uses W[4g..4g+4] = m[g % 4].
            for (g, k) in kv.iter().enumerate().skip(2) {
                let (cur, prev, next) = (g % 4, (g + 3) % 4, (g + 1) % 4);
                for j in 0..N {
                    let msg = _mm_add_epi32(m[cur][j], *k);
                    s1[j] = _mm_sha256rnds2_epu32(s1[j], s0[j], msg);
                    if (3..=14).contains(&g) {
                        let tmp = _mm_alignr_epi8::<4>(m[cur][j], m[prev][j]);
                        let sum = _mm_add_epi32(m[next][j], tmp);
                        m[next][j] = _mm_sha256msg2_epu32(sum, m[cur][j]);
                    }
                    let msg = _mm_shuffle_epi32::<0x0e>(msg);
                    s0[j] = _mm_sha256rnds2_epu32(s0[j], s1[j], msg);
                    if g <= 12 {
                        m[prev][j] = _mm_sha256msg1_epu32(m[prev][j], m[cur][j]);
                    }
                }
            }
            let left = count - done;
            for (j, state) in s0.iter().enumerate().take(left.min(N as u64) as usize) {
                // ABEF: `a` is the top lane.
                let a = _mm_extract_epi32::<3>(*state) as u32;
                if a.wrapping_add(t.mid[0]) <= word0_max {
                    return Some(base.wrapping_add(j as u64));
                }
            }
            done = done.saturating_add(N as u64);
        }
        None
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    //! The aarch64 kernel: ARMv8 SHA-256 instructions, two nonces interleaved.
    use super::{K, Template, nonce_words};
    use std::arch::aarch64::*;

    /// A vector from four words, lane 0 first.
    #[inline]
    #[target_feature(enable = "neon")]
    fn lanes4(w: [u32; 4]) -> uint32x4_t {
        // SAFETY: `w` is four initialised u32, exactly the 16 bytes `vld1q_u32` reads.
        unsafe { vld1q_u32(w.as_ptr()) }
    }

    #[target_feature(enable = "neon,sha2")]
    pub fn scan_sha2(t: &Template, start: u64, count: u64, word0_max: u32) -> Option<u64> {
        const N: usize = 2;
        let s = &t.s4;
        let abcd4 = lanes4([s[0], s[1], s[2], s[3]]);
        let efgh4 = lanes4([s[4], s[5], s[6], s[7]]);
        let mut done = 0u64;
        while done < count {
            let base = start.wrapping_add(done);
            let (hi, lo) = nonce_words::<N>(base);
            let mut abcd = [abcd4; N];
            let mut efgh = [efgh4; N];
            // Group 0 (rounds 0-3) is done; its schedule update gives W16..W19, constants.
            let mut m = [[lanes4([0; 4]); N]; 4];
            for j in 0..N {
                m[0][j] = lanes4([t.w[16], t.w[17], t.w[18], t.w[19]]);
                m[1][j] = lanes4([t.w[4], t.w[5], hi[j], lo[j]]);
                m[2][j] = lanes4([t.w[8], t.w[9], t.w[10], t.w[11]]);
                m[3][j] = lanes4([t.w[12], t.w[13], t.w[14], t.w[15]]);
            }
            for g in 1..16 {
                let k = lanes4([K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]]);
                let cur = g % 4;
                for j in 0..N {
                    let wk = vaddq_u32(m[cur][j], k);
                    if g < 12 {
                        // W[4g+16..4g+20] from W[4g..4g+16], replacing the words just used.
                        let su0 = vsha256su0q_u32(m[cur][j], m[(g + 1) % 4][j]);
                        m[cur][j] = vsha256su1q_u32(su0, m[(g + 2) % 4][j], m[(g + 3) % 4][j]);
                    }
                    let old = abcd[j];
                    abcd[j] = vsha256hq_u32(abcd[j], efgh[j], wk);
                    efgh[j] = vsha256h2q_u32(efgh[j], old, wk);
                }
            }
            let left = count - done;
            for (j, state) in abcd.iter().enumerate().take(left.min(N as u64) as usize) {
                let a = vgetq_lane_u32::<0>(*state);
                if a.wrapping_add(t.mid[0]) <= word0_max {
                    return Some(base.wrapping_add(j as u64));
                }
            }
            done = done.saturating_add(N as u64);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::hash::{BlockHash, TxRoot};
    use proptest::prelude::*;

    fn header(seed: u8, timestamp: u64, bits: u32) -> Header {
        Header {
            version: 1,
            height: u64::from(seed),
            prev_hash: BlockHash([seed; 32]),
            tx_root: TxRoot([seed.wrapping_mul(7); 32]),
            timestamp,
            bits,
            nonce: 0,
        }
    }

    /// The reference: the first nonce in the range whose sha2 digest's first word is <= max.
    fn reference(t: &Template, start: u64, count: u64, max: u32) -> Option<u64> {
        scan_portable(t, start, count, max)
    }

    fn backends() -> Vec<Backend> {
        let (have, lack): (Vec<Backend>, Vec<Backend>) =
            Backend::ALL.into_iter().partition(|b| b.available());
        for b in lack {
            eprintln!("skipping {}: this CPU lacks it", b.name());
        }
        have
    }

    #[test]
    fn digest_is_the_header_hash() {
        let mut h = header(3, 1_767_225_600_000, 8);
        let t = Template::new(&h);
        for nonce in [0, 1, u64::MAX, 0x0102_0304_0506_0708] {
            h.nonce = nonce;
            assert_eq!(BlockHash(t.hash(nonce)), h.compute_hash());
        }
    }

    #[test]
    fn every_backend_finds_what_sha2_finds() {
        let t = Template::new(&header(9, 42, 8));
        // Bounds from "every nonce" to "a few in 2^12"; ranges that straddle the 2^32 carry
        // into the high word and the wrap of u64, and lengths that are not lane multiples.
        let starts = [0, 5, (1 << 32) - 7, u64::MAX - 20, 0xdead_beef_0000_0001];
        for backend in backends() {
            for max in [u32::MAX, 1 << 31, 1 << 24, 1 << 20] {
                for start in starts {
                    for count in [0, 1, 3, 17, 40, 5000] {
                        assert_eq!(
                            backend.scan(&t, start, count, max),
                            reference(&t, start, count, max),
                            "{} max {max:#x} start {start:#x} count {count}",
                            backend.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn best_is_available_and_an_unavailable_backend_falls_back() {
        assert!(Backend::best().available());
        let t = Template::new(&header(1, 2, 3));
        for b in Backend::ALL {
            assert_eq!(b.scan(&t, 7, 100, 1 << 28), reference(&t, 7, 100, 1 << 28));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_headers_and_nonces(
            seed in any::<u8>(),
            timestamp in any::<u64>(),
            bits in any::<u32>(),
            start in any::<u64>(),
            count in 0u64..300,
            max in any::<u32>(),
        ) {
            let t = Template::new(&header(seed, timestamp, bits));
            // Bounds that hit: near the first lane's word, and shifted random ones.
            let first = t.digest(start.wrapping_add(count / 2))[0];
            for backend in backends() {
                for m in [max, max >> 8, first] {
                    prop_assert_eq!(
                        backend.scan(&t, start, count, m),
                        reference(&t, start, count, m),
                        "{}", backend.name()
                    );
                }
            }
        }
    }
}
