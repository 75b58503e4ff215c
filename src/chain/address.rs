//! Addresses as people read, copy and type them. An account is the 32 bytes of an Ed25519
//! public key; its text form is bech32m (BIP 350): a human-readable part naming the kind of
//! chain (`gc` on the default chain, `gct` on any other), the separator `1`, the key in 52
//! five-bit characters and a 6-character checksum that catches every change of up to 4
//! characters. Parsers also take the older form, 64 hex digits, which has no checksum.
//! Only the text changes: blocks and signing bytes carry the 32 bytes (PROTOCOL.md §8).

use super::hash::ChainId;
use super::params::ChainParams;
use super::sig;
use bech32::primitives::decode::{CharError, UncheckedHrpstring};
use bech32::{Bech32m, Hrp};
use ed25519_zebra::SigningKey;
use std::fmt;
use std::sync::OnceLock;

/// An account address: the 32 bytes of an Ed25519 public key. Its text form depends on the
/// chain ([`ChainKind::encode`]), so it has no `Display`; `Debug` shows the first bytes in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The address of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        Self(sig::public_key(key))
    }

    /// The 32 bytes in hex: the form inside the hex encodings of blocks and transactions.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(&self.0[..8]))
    }
}

/// Longest bech32 string (BIP 173): within it the checksum's guarantees hold.
pub const MAX_BECH32_LEN: usize = 90;

/// Which kind of chain an address is for, named by its human-readable part. The kind is not
/// the chain: two test chains share `gct`. It keeps coins meant for the default chain from being
/// sent on a test chain by a slip of the clipboard, and tells a reader which one an address is
/// for; the chain id in every signature still keeps a transfer on its own chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    /// The chain of the default parameters ([`ChainParams::default`]): `gc`.
    Main,
    /// Any other chain (another block time, a fixed difficulty, another genesis message): `gct`.
    Test,
}

impl ChainKind {
    /// The kind of the chain with this id.
    pub fn of(chain_id: &ChainId) -> Self {
        // The default chain id costs a genesis hash; computed once.
        static MAIN: OnceLock<ChainId> = OnceLock::new();
        if chain_id == MAIN.get_or_init(|| ChainParams::default().chain_id()) {
            Self::Main
        } else {
            Self::Test
        }
    }

    /// The human-readable part of its addresses.
    pub const fn hrp(self) -> &'static str {
        match self {
            Self::Main => "gc",
            Self::Test => "gct",
        }
    }

    /// What the kind is called in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Main => "the default chain",
            Self::Test => "a test chain",
        }
    }

    fn from_hrp(hrp: &str) -> Option<Self> {
        [Self::Main, Self::Test]
            .into_iter()
            .find(|k| k.hrp().eq_ignore_ascii_case(hrp))
    }

    /// The bech32m text of `address` on this kind of chain (lower case).
    pub fn encode(self, address: &Address) -> String {
        let hrp = Hrp::parse_unchecked(self.hrp());
        // 3 + 52 + 6 characters, far below the 1023 a bech32m checksum covers.
        bech32::encode_lower::<Bech32m>(hrp, &address.0).expect("61-62 characters")
    }

    /// A short form for tables and logs: the prefix and first characters, then the last ones.
    pub fn short(self, address: &Address) -> String {
        let s = self.encode(address);
        let head = self.hrp().len() + 1 + 6;
        format!("{}…{}", &s[..head], &s[s.len() - 6..])
    }

    /// Parses an address typed or pasted by a user of a chain of this kind: bech32m with this
    /// kind's prefix (lower or upper case), or 64 hex digits. Leading and trailing blanks are
    /// ignored.
    pub fn parse(self, text: &str) -> Result<Address, ParseAddressError> {
        let s = text.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            hex::decode_to_slice(s, &mut out).map_err(|_| self.not_an_address(s))?;
            out
        } else {
            self.decode_bech32m(s)?
        };
        if !sig::is_public_key(&bytes) {
            return Err(ParseAddressError::NotAKey);
        }
        Ok(Address(bytes))
    }

    fn not_an_address(self, s: &str) -> ParseAddressError {
        ParseAddressError::NotAnAddress {
            hrp: self.hrp(),
            len: s.chars().count(),
        }
    }

    fn decode_bech32m(self, s: &str) -> Result<[u8; 32], ParseAddressError> {
        let unchecked = unchecked(s).map_err(|e| e.unwrap_or_else(|| self.not_an_address(s)))?;
        let hrp = unchecked.hrp().to_lowercase();
        // The prefix first: a mistyped or foreign prefix (a Bitcoin `bc1…`) is named as such,
        // not as a bad checksum.
        let Some(kind) = Self::from_hrp(&hrp) else {
            return Err(ParseAddressError::UnknownPrefix(hrp));
        };
        if !unchecked.has_valid_checksum::<Bech32m>() {
            return Err(ParseAddressError::Checksum);
        }
        if kind != self {
            return Err(ParseAddressError::WrongChain {
                found: kind,
                want: self,
            });
        }
        let checked = unchecked.remove_checksum::<Bech32m>();
        // 256 bits are 52 characters with 4 zero bits of padding; anything else is another
        // length, or a second spelling of the same key.
        if checked.data_part_ascii_no_checksum().len() != 52
            || checked.validate_segwit_padding().is_err()
        {
            return Err(ParseAddressError::Length);
        }
        let mut out = [0u8; 32];
        for (o, b) in out.iter_mut().zip(checked.byte_iter()) {
            *o = b;
        }
        Ok(out)
    }
}

/// The parts of a bech32 string, its length, characters and case checked (not its checksum).
/// `Err(None)`: not bech32 at all.
fn unchecked(s: &str) -> Result<UncheckedHrpstring<'_>, Option<ParseAddressError>> {
    use bech32::primitives::decode::UncheckedHrpstringError as E;
    if s.len() > MAX_BECH32_LEN || !s.contains('1') {
        return Err(None);
    }
    UncheckedHrpstring::new(s).map_err(|e| match e {
        E::Char(CharError::InvalidChar(c)) => Some(ParseAddressError::BadChar(c)),
        E::Char(CharError::MixedCase) | E::Hrp(bech32::primitives::hrp::Error::MixedCase) => {
            Some(ParseAddressError::MixedCase)
        }
        _ => None,
    })
}

/// Checks a bech32m string of any prefix as BIP 350 defines it: at most 90 characters, a
/// non-empty prefix of printable ASCII, the separator, data characters, one case, and the
/// checksum. Returns the prefix in lower case. (For BIP 350's own vectors; addresses go
/// through [`ChainKind::parse`].)
pub fn check_bech32m(s: &str) -> Result<String, ParseAddressError> {
    let not_bech32 = || ParseAddressError::NotAnAddress {
        hrp: "",
        len: s.chars().count(),
    };
    let u = unchecked(s).map_err(|e| e.unwrap_or_else(not_bech32))?;
    if !u.has_valid_checksum::<Bech32m>() {
        return Err(ParseAddressError::Checksum);
    }
    Ok(u.hrp().to_lowercase())
}

/// Why text is not an address of this chain. Each message is one line a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    /// Neither bech32m nor 64 hex digits.
    #[error(
        "an address is {hrp}1 and 58 more letters and digits (bech32m), or 64 hex digits; got {len} characters"
    )]
    NotAnAddress {
        /// The prefix this chain's addresses have.
        hrp: &'static str,
        /// Characters given.
        len: usize,
    },
    /// A character outside the bech32 alphabet.
    #[error(
        "'{0}' cannot be in an address (bech32m uses the digits 0, 2-9 and the letters except b, i, o)"
    )]
    BadChar(char),
    /// Upper and lower case mixed.
    #[error("an address is all lower case or all upper case, not mixed")]
    MixedCase,
    /// A prefix that is neither `gc` nor `gct`.
    #[error("unknown address prefix '{0}1': addresses start with gc1 (the default chain) or gct1")]
    UnknownPrefix(String),
    /// The checksum does not match: a character is wrong, missing or extra.
    #[error(
        "the address's checksum does not match: a character is mistyped, missing or extra (compare it with the original)"
    )]
    Checksum,
    /// A valid address of the other kind of chain.
    #[error(
        "this address is for {} ({}1…), but this node runs {} (its addresses start with {}1)",
        found.name(), found.hrp(), want.name(), want.hrp()
    )]
    WrongChain {
        /// The kind the address names.
        found: ChainKind,
        /// The kind of this node's chain.
        want: ChainKind,
    },
    /// A valid bech32m string that does not hold exactly 32 bytes.
    #[error("not an address: it does not hold a 32-byte key")]
    Length,
    /// 32 bytes that are not a point on the curve: nobody could ever spend from it.
    #[error("not a valid Ed25519 public key")]
    NotAKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::key;

    #[test]
    fn round_trips_in_both_kinds_and_takes_hex() {
        let a = Address::of(&key(4));
        for kind in [ChainKind::Main, ChainKind::Test] {
            let s = kind.encode(&a);
            assert!(s.starts_with(&format!("{}1", kind.hrp())), "{s}");
            assert_eq!(s.len(), kind.hrp().len() + 1 + 52 + 6);
            assert_eq!(kind.parse(&s), Ok(a));
            assert_eq!(kind.parse(&format!("  {}\n", s.to_uppercase())), Ok(a));
            assert_eq!(kind.parse(&a.to_hex()), Ok(a));
        }
        assert_eq!(
            ChainKind::of(&ChainParams::default().chain_id()),
            ChainKind::Main
        );
        assert_eq!(
            ChainKind::of(&ChainParams::with_bits(8).chain_id()),
            ChainKind::Test
        );
    }

    #[test]
    fn every_kind_of_bad_text_has_its_error() {
        let a = Address::of(&key(4));
        let main = ChainKind::Main;
        let s = main.encode(&a);
        assert!(matches!(
            main.parse("abc"),
            Err(ParseAddressError::NotAnAddress { len: 3, .. })
        ));
        let mut typo = s.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
        assert_eq!(
            main.parse(std::str::from_utf8(&typo).unwrap()),
            Err(ParseAddressError::Checksum)
        );
        assert_eq!(
            main.parse(&s.replacen('q', "b", 1)),
            Err(ParseAddressError::BadChar('b'))
        );
        let mixed = format!("GC{}", &s[2..]);
        assert_eq!(main.parse(&mixed), Err(ParseAddressError::MixedCase));
        assert_eq!(
            main.parse(&format!("bc{}", &s[2..])),
            Err(ParseAddressError::UnknownPrefix("bc".into()))
        );
        assert_eq!(
            main.parse(&ChainKind::Test.encode(&a)),
            Err(ParseAddressError::WrongChain {
                found: ChainKind::Test,
                want: ChainKind::Main
            })
        );
        let short = bech32::encode_lower::<Bech32m>(Hrp::parse_unchecked("gc"), &a.0[..31]);
        assert_eq!(main.parse(&short.unwrap()), Err(ParseAddressError::Length));
        let bad = (0..=255u8)
            .map(|b| Address([b; 32]))
            .find(|a| !sig::is_public_key(&a.0))
            .expect("half of all 32-byte strings are not keys");
        assert_eq!(
            main.parse(&main.encode(&bad)),
            Err(ParseAddressError::NotAKey)
        );
    }
}
