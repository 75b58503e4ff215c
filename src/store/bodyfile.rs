//! The body file: best-chain block bodies, appended in the order they join the best chain, so
//! that reading one costs one positioned read whatever the chain's length, and a run of them
//! (a GetBlocks page) one read of neighbouring bytes. redb holds where each body is (its index
//! record) and how far the file is committed (`meta` "bodies_end"); bytes past that, written by
//! a commit that did not finish, are cut off when the store opens.
//!
//! Where the best chain's bodies are, by height, is also kept in memory ([`Locations`], 8
//! bytes a block), so reading a best-chain body asks redb nothing. Bodies of blocks off the
//! best chain when they are stored stay in redb's `bodies` table, which pruning empties; the
//! file only ever holds blocks that were on the best chain, so what it keeps of later
//! reorganised-away blocks is bounded by the work of the best chain itself.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Where a body sits in the body file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Location {
    /// Its first byte.
    pub offset: u64,
    /// Its length (0: not in the file).
    pub len: u32,
}

impl Location {
    /// A body not in the file (kept in redb's `bodies` table).
    pub const NONE: Self = Self { offset: 0, len: 0 };

    /// Whether the body is in the file.
    pub fn is_some(self) -> bool {
        self.len > 0
    }

    /// The 12 bytes an index record ends with: offset (u64), length (u32), big-endian.
    pub fn encode(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Reads [`Location::encode`]'s bytes.
    pub fn decode(bytes: &[u8; 12]) -> Self {
        let (offset, len) = bytes.split_at(8);
        Self {
            offset: u64::from_be_bytes(offset.try_into().expect("8 bytes")),
            len: u32::from_be_bytes(len.try_into().expect("4 bytes")),
        }
    }
}

/// Where the best chain's bodies are, by height (genesis, at 0, never is): one word a height,
/// the offset's 40 bits then the length's 24 (0: not known here, read through redb). A body
/// past 1 TiB of file or over 16 MiB is not kept here and reads through redb.
#[derive(Default)]
pub struct Locations {
    packed: Vec<u64>,
}

impl Locations {
    const LEN_BITS: u32 = 24;

    fn pack(at: Location) -> u64 {
        if at.len == 0 || at.len >= 1 << Self::LEN_BITS || at.offset >= 1 << (64 - Self::LEN_BITS) {
            return 0;
        }
        at.offset << Self::LEN_BITS | u64::from(at.len)
    }

    /// The location of the best-chain body at `height`, if in the file.
    pub fn get(&self, height: u64) -> Option<Location> {
        let word = *self.packed.get(usize::try_from(height).ok()?)?;
        let len = (word & ((1 << Self::LEN_BITS) - 1)) as u32;
        (len > 0).then_some(Location {
            offset: word >> Self::LEN_BITS,
            len,
        })
    }

    /// The best chain now ends at `tip_height`, and `from` on its blocks are at `locations`
    /// (one a height, [`Location::NONE`] for those not in the file).
    pub fn set(&mut self, from: u64, locations: &[Location], tip_height: u64) {
        let keep = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(self.packed.len());
        self.packed.truncate(keep);
        // Heights below `from` this store never had in memory (a fresh load fills from 1).
        self.packed
            .resize(usize::try_from(from).unwrap_or(usize::MAX).max(keep), 0);
        self.packed
            .extend(locations.iter().map(|&at| Self::pack(at)));
        let end = usize::try_from(tip_height.saturating_add(1)).unwrap_or(usize::MAX);
        self.packed.truncate(end);
    }
}

/// The open body file.
pub struct BodyFile {
    file: File,
    path: PathBuf,
    /// Committed length: what redb's `meta` "bodies_end" says. Only the writer changes it.
    end: RwLock<u64>,
    /// The best chain's bodies, by height, as of the last commit.
    pub locations: RwLock<Locations>,
}

impl BodyFile {
    /// The body file of the store at `db` (beside it, `.bodies` for `.redb`).
    pub fn path_of(db: &Path) -> PathBuf {
        db.with_extension("bodies")
    }

    /// Opens (or creates) the file, committed up to `end`: a longer file loses its uncommitted
    /// tail, a shorter one is an error (it was truncated or replaced).
    pub fn open(path: &Path, end: u64) -> Result<Self, String> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(end == 0)
            .truncate(false)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!(
                    "{} is missing but the store has committed {end} bytes to it: put it back, \
                     or start again with an empty data directory",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len < end {
            return Err(format!(
                "{} holds {len} bytes but the store has committed {end}: it was truncated or \
                 replaced; put the original back, or start again with an empty data directory",
                path.display()
            ));
        }
        if len > end {
            file.set_len(end)
                .map_err(|e| format!("cannot cut {} to {end} bytes: {e}", path.display()))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            end: RwLock::new(end),
            locations: RwLock::new(Locations::default()),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bodies` one after another past the committed end and makes them durable;
    /// returns their locations and the end to commit. Nothing counts as written until
    /// [`BodyFile::committed`] is called with that end: a failed commit's bytes are written
    /// over by the next one.
    pub fn append(&self, bodies: &[&[u8]]) -> io::Result<(Vec<Location>, u64)> {
        let start = *self.end.read().expect("end lock");
        let mut out = Vec::with_capacity(bodies.len());
        let mut buf = Vec::with_capacity(bodies.iter().map(|b| b.len()).sum());
        let mut at = start;
        for body in bodies {
            let len = u32::try_from(body.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a body over 4 GiB"))?;
            out.push(Location { offset: at, len });
            buf.extend_from_slice(body);
            at += u64::from(len);
        }
        if !buf.is_empty() {
            self.file.write_all_at(&buf, start)?;
            self.file.sync_data()?;
        }
        Ok((out, at))
    }

    /// The store committed the file up to `end`.
    pub fn committed(&self, end: u64) {
        *self.end.write().expect("end lock") = end;
    }

    /// The committed length.
    pub fn end(&self) -> u64 {
        *self.end.read().expect("end lock")
    }

    /// Reads the bytes of `at` (which the caller bounds to a sane length first).
    pub fn read(&self, at: Location) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; at.len as usize];
        self.read_into(at.offset, &mut out)?;
        Ok(out)
    }

    /// Fills `out` from `offset`, refusing to read past the committed end.
    pub fn read_into(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(out.len() as u64);
        if end.is_none_or(|e| e > self.end()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} bytes at {offset} lie past the committed end ({})",
                    out.len(),
                    self.end()
                ),
            ));
        }
        self.file.read_exact_at(out, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_tail_is_cut_and_a_short_file_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.bodies");
        let f = BodyFile::open(&path, 0).expect("open");
        let (locs, end) = f.append(&[b"abc", b"defgh"]).expect("append");
        assert_eq!(
            locs,
            [
                Location { offset: 0, len: 3 },
                Location { offset: 3, len: 5 }
            ]
        );
        // Not committed: unreadable, then written over.
        assert!(f.read(locs[0]).is_err());
        let (again, end2) = f.append(&[b"xyz"]).expect("append");
        assert_eq!(again[0].offset, 0);
        f.committed(end2);
        assert_eq!(f.read(again[0]).expect("read"), b"xyz");
        drop(f);
        assert_eq!(end, 8);
        // The file holds 8 bytes, 3 of them committed.
        let f = BodyFile::open(&path, 3).expect("reopen");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 3);
        assert_eq!(
            f.read(Location { offset: 0, len: 3 }).expect("read"),
            b"xyz"
        );
        drop(f);
        let err = BodyFile::open(&path, 10)
            .err()
            .expect("a short file is refused");
        assert!(err.contains("truncated or replaced"), "{err}");
    }

    #[test]
    fn locations_follow_the_best_chain() {
        let mut l = Locations::default();
        let at = |o| Location { offset: o, len: 1 };
        l.set(1, &[at(0), at(1), at(2)], 3);
        assert_eq!(l.get(2), Some(at(1)));
        assert_eq!(l.get(0), None);
        // A reorganisation from height 2: the new branch is one block longer, its first
        // body kept in redb.
        l.set(2, &[Location::NONE, at(7), at(8)], 4);
        assert_eq!(l.get(1), Some(at(0)));
        assert_eq!(l.get(2), None);
        assert_eq!(l.get(4), Some(at(8)));
        // A shorter best chain.
        l.set(3, &[], 2);
        assert_eq!(l.get(3), None);
        assert_eq!(l.get(1), Some(at(0)));
        // Out of the packed range: not kept (read through redb).
        let big = Location {
            offset: 1 << 41,
            len: 10,
        };
        let huge = Location {
            offset: 5,
            len: 1 << 24,
        };
        l.set(3, &[big, huge], 4);
        assert_eq!((l.get(3), l.get(4)), (None, None));
    }
}
