//! What the tree reads to answer peers: the headers of a stretch of the best chain and the
//! encodings of blocks named by hash. Headers are not in the index (it keeps 72 bytes a
//! block, without the Merkle root and nonce), so a header comes from the body held in memory
//! or from the [`BlockSource`](super::BlockSource), which reads only its first 96 bytes.

use super::super::block::{BlockKey, Header};
use super::super::hash::BlockHash;
use super::ChainState;

impl ChainState {
    /// The header of a block whose body is in memory (genesis included).
    fn header_in_memory(&self, pos: u32) -> Option<Header> {
        if pos == 0 {
            return Some(self.genesis.header);
        }
        let hash = self.index.get(pos).hash;
        self.bodies.get(&hash).map(|c| c.value.header)
    }

    /// The headers of the best chain's blocks from height `start` on, at most `max`, in order.
    /// Those whose bodies are not in memory are read from the source in runs; a read that
    /// fails (logged) ends the list early.
    pub fn headers_from(&self, start: u64, max: u64) -> Vec<Header> {
        let end = start.saturating_add(max).min(self.active.len() as u64);
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut height = start;
        while height < end {
            if let Some(header) = self.header_in_memory(self.active[height as usize]) {
                out.push(header);
                height += 1;
                continue;
            }
            // A run of heights whose bodies are only in the source.
            let mut run = Vec::new();
            while height < end {
                let pos = self.active[height as usize];
                if pos == 0 || self.bodies.contains_key(&self.index.get(pos).hash) {
                    break;
                }
                run.push(BlockKey::new(height, self.index.get(pos).hash));
                height += 1;
            }
            let Some(source) = &self.source else {
                break;
            };
            match source.headers(&run) {
                Ok(read) => {
                    let missing = run.get(read.len()).map(|id| id.hash);
                    out.extend(read);
                    if let Some(hash) = missing {
                        tracing::error!("cannot read the header of block {hash}: not stored");
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!("cannot read headers from height {}: {e}", run[0].height);
                    break;
                }
            }
        }
        out
    }

    /// The consensus encodings of the valid blocks `hashes` (on any branch), in order: those
    /// of the longest prefix the tree holds, within `budget` bytes (the first whatever its
    /// size). Bodies not in memory are read from the source, a run at a time.
    pub fn wires_of(&self, hashes: &[BlockHash], budget: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut used = 0usize;
        let mut i = 0;
        while i < hashes.len() {
            let Some(pos) = self.index.find(&hashes[i]) else {
                break;
            };
            let in_memory = if pos == 0 {
                Some(self.genesis.wire())
            } else {
                self.bodies.get(&hashes[i]).map(|c| c.value.wire())
            };
            if let Some(wire) = in_memory {
                if !out.is_empty() && used + wire.len() > budget {
                    break;
                }
                used += wire.len();
                out.push(wire.to_vec());
                i += 1;
                continue;
            }
            // A run of held blocks whose bodies are only in the source.
            let mut run = Vec::new();
            while let Some(hash) = hashes.get(i) {
                match self.index.find(hash) {
                    Some(pos) if pos != 0 && !self.bodies.contains_key(hash) => {
                        run.push(BlockKey::new(u64::from(self.index.get(pos).height), *hash));
                        i += 1;
                    }
                    _ => break,
                }
            }
            let Some(source) = &self.source else {
                break;
            };
            let room = if out.is_empty() {
                budget
            } else {
                budget.saturating_sub(used)
            };
            let read = match source.wires(&run, room) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!("cannot read block {}: {e}", run[0].hash);
                    break;
                }
            };
            if !out.is_empty() && read.first().is_some_and(|w| used + w.len() > budget) {
                break;
            }
            let complete = read.len() == run.len();
            used += read.iter().map(Vec::len).sum::<usize>();
            out.extend(read);
            if !complete {
                break;
            }
        }
        out
    }
}
