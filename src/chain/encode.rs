//! The consensus encoding: fixed-width big-endian integers and fixed-size byte strings, read
//! from a byte slice with no I/O. Decoding is bounded by the caller's limits and rejects
//! leftover bytes, so one value has exactly one encoding and its hash cannot drift.

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} more bytes at offset {offset}")]
    UnexpectedEnd {
        /// Where the read started.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes were left after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A transaction kind tag that no rule defines.
    #[error("unknown transaction kind {0:#04x}")]
    UnknownTxKind(u8),
    /// A block declares more transactions than the limit allows.
    #[error("block declares {count} transactions, limit is {max}")]
    TooManyTransactions {
        /// The declared count.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// The input is longer than the limit for this kind of value.
    #[error("encoding is {len} bytes, limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A cursor over bytes being decoded.
pub struct Reader<'a> {
    /// The whole input.
    data: &'a [u8],
    /// Offset of the next unread byte.
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.data.len() - self.pos;
        if n > rest {
            return Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: n - rest,
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_reports_short_input() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0xff]);
        assert_eq!(r.u32(), Ok(1));
        assert_eq!(
            r.u32(),
            Err(DecodeError::UnexpectedEnd {
                offset: 4,
                needed: 3
            })
        );
    }

    #[test]
    fn finish_rejects_leftover_bytes() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(2)));
    }
}
