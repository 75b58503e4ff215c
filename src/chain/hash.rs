//! Hash newtypes: one type per role of a SHA-256 digest, so the compiler keeps a block hash, a
//! txid and a Merkle root apart (the habit of rust-bitcoin).

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Single SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Error for a hash given as text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex digits")]
pub struct ParseHashError;

macro_rules! hash_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The all-zero value (the genesis block's parent).
            pub const ZERO: Self = Self([0; 32]);

            /// The raw digest bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex of the bytes, in order (no byte reversal).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 bytes in hex, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..8])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError)?;
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::chain::hash::ByteArray::<32>::deserialize(d).map(|b| Self(b.0))
            }
        }
    };
}

hash_newtype!(
    /// SHA-256 of a block's 96-byte header.
    BlockHash
);
hash_newtype!(
    /// SHA-256 of a transaction's canonical encoding.
    Txid
);
hash_newtype!(
    /// Root of the RFC 6962 Merkle tree over a block's txids.
    TxRoot
);

/// The chain id is the genesis block's hash: nodes whose parameters differ never mix.
pub type ChainId = BlockHash;

/// A fixed-size byte array that (de)serializes as a CBOR byte string of exactly `N` bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ByteArray<const N: usize>(pub [u8; N]);

impl<const N: usize> serde::Serialize for ByteArray<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for ByteArray<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> serde::de::Visitor<'de> for V<N> {
            type Value = ByteArray<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string of {N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                <[u8; N]>::try_from(v)
                    .map(ByteArray)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_fips_180_2() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_bad_text() {
        let h = BlockHash(sha256(b"x"));
        assert_eq!(h.to_hex().parse::<BlockHash>(), Ok(h));
        assert_eq!("zz".parse::<BlockHash>(), Err(ParseHashError));
        assert_eq!("00".repeat(33).parse::<Txid>(), Err(ParseHashError));
    }
}
