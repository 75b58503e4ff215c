//! Block bodies and undo records: read from memory or from the [`BlockSource`](super::BlockSource), and which
//! of them stay in memory (the recent ones, and those the store has not committed yet).

use super::super::block::{Block, BlockKey};
use super::super::checked::CheckedBlock;
use super::super::hash::BlockHash;
use super::super::ledger::Undo;
use super::source::Cached;
use super::{ChainState, MIN_RECENT_BLOCKS, RECENT_BLOCKS};
use std::collections::BTreeMap;
use std::sync::Arc;

impl ChainState {
    /// A valid block by hash, with its hash, txids and wire bytes: from memory, or read from
    /// the source (a read error is logged and gives `None`).
    pub fn checked(&self, hash: &BlockHash) -> Option<Arc<CheckedBlock>> {
        let pos = self.index.find(hash)?;
        self.body_at(pos).ok()
    }

    pub(super) fn body_at(&self, pos: u32) -> Result<Arc<CheckedBlock>, String> {
        if pos == 0 {
            return Ok(self.genesis.clone());
        }
        let slot = self.index.get(pos);
        let hash = slot.hash;
        if let Some(c) = self.bodies.get(&hash) {
            return Ok(c.value.clone());
        }
        let read = match &self.source {
            Some(source) => source.block(&BlockKey::new(u64::from(slot.height), hash)),
            None => Err("no store holds it".into()),
        };
        match read {
            Ok(Some(block)) => Ok(block),
            Ok(None) => Err(format!("block {hash} is not in the store")),
            Err(e) => Err(e),
        }
        .inspect_err(|e| tracing::error!("cannot read block {hash}: {e}"))
    }

    /// A valid block by hash.
    pub fn block(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        self.checked(hash).map(|c| c.block().clone())
    }

    /// The best chain's block at `height`, with its hash, txids and wire bytes.
    pub fn checked_at(&self, height: u64) -> Option<Arc<CheckedBlock>> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        self.body_at(pos).ok()
    }

    /// The best chain's block at `height`.
    pub fn block_at(&self, height: u64) -> Option<Arc<Block>> {
        self.checked_at(height).map(|c| c.block().clone())
    }

    /// The consensus encoding of the best chain's block at `height`, read without decoding it.
    pub fn wire_at(&self, height: u64) -> Option<Vec<u8>> {
        let pos = *self.active.get(usize::try_from(height).ok()?)?;
        let hash = self.index.get(pos).hash;
        if pos == 0 {
            return Some(self.genesis.wire().to_vec());
        }
        if let Some(c) = self.bodies.get(&hash) {
            return Some(c.value.wire().to_vec());
        }
        match self.source.as_ref()?.wire(&BlockKey::new(height, hash)) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::error!("cannot read block {hash}: {e}");
                None
            }
        }
    }

    /// The consensus encodings of the best chain's blocks from height `start` on: at most
    /// `max` of them, and no more than `budget` bytes in all (the first one whatever its
    /// size). Those not in memory are read from the source in runs, each in one read and in
    /// height order, so a page costs a few sequential reads rather than one lookup a block.
    pub fn wires_from(&self, start: u64, max: u64, budget: usize) -> Vec<Vec<u8>> {
        let end = start.saturating_add(max).min(self.active.len() as u64);
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut used = 0usize;
        let mut height = start;
        while height < end {
            let pos = self.active[height as usize];
            let slot = self.index.get(pos);
            let in_memory = if pos == 0 {
                Some(self.genesis.wire())
            } else {
                self.bodies.get(&slot.hash).map(|c| c.value.wire())
            };
            if let Some(wire) = in_memory {
                if !out.is_empty() && used + wire.len() > budget {
                    break;
                }
                used += wire.len();
                out.push(wire.to_vec());
                height += 1;
                continue;
            }
            // A run of heights whose bodies are only in the source.
            let mut run = Vec::new();
            while height < end {
                let slot = self.index.get(self.active[height as usize]);
                if self.bodies.contains_key(&slot.hash) {
                    break;
                }
                run.push(BlockKey::new(height, slot.hash));
                height += 1;
            }
            let Some(source) = &self.source else {
                break;
            };
            let wanted = run.len();
            // Keeps the first block of the page whatever its size, as above.
            let room = if out.is_empty() {
                budget
            } else {
                budget.saturating_sub(used)
            };
            let read = match source.wires(&run, room) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!("cannot read blocks from height {}: {e}", run[0].height);
                    break;
                }
            };
            if !out.is_empty() && read.first().is_some_and(|w| used + w.len() > budget) {
                break;
            }
            let complete = read.len() == wanted;
            used += read.iter().map(Vec::len).sum::<usize>();
            out.extend(read);
            if !complete {
                break;
            }
        }
        out
    }

    /// The generation now made values belong to; the caller (the node) hands the store what
    /// changed, then calls this to start the next one. Once the store reports a generation
    /// committed ([`ChainState::persisted`]), bodies and undo records of that generation may
    /// leave memory.
    pub fn next_generation(&mut self) -> u64 {
        let g = self.generation;
        self.generation += 1;
        g
    }

    /// The store has committed every generation up to `generation`: drop from memory what it
    /// holds, except the recent blocks.
    pub fn persisted(&mut self, generation: u64) {
        if generation <= self.persisted {
            return;
        }
        self.persisted = generation;
        self.evict();
    }

    /// Drops stored bodies and undo records that are not recent. Recent: the blocks of the
    /// highest heights (every branch) whose bodies and undo records fit in
    /// [`TreeLimits::max_recent_bytes`](super::TreeLimits::max_recent_bytes), at most
    /// [`RECENT_BLOCKS`] heights and never fewer than [`MIN_RECENT_BLOCKS`]. What the store has
    /// not committed yet stays whatever it weighs.
    pub(super) fn evict(&mut self) {
        if self.source.is_none() {
            return;
        }
        let keep_from = self.keep_from();
        let persisted = self.persisted;
        let old = |c: &u64, h: &u64| *c <= persisted && *h < keep_from;
        let mut freed = 0;
        self.bodies.retain(|_, c| {
            let drop = old(&c.generation, &c.height);
            freed += if drop { c.bytes } else { 0 };
            !drop
        });
        self.undos.retain(|_, c| {
            let drop = old(&c.generation, &c.height);
            freed += if drop { c.bytes } else { 0 };
            !drop
        });
        self.memory_bytes -= freed;
    }

    /// The lowest height whose bodies stay in memory once stored (see [`ChainState::evict`]).
    fn keep_from(&self) -> u64 {
        let mut by_height: BTreeMap<u64, usize> = BTreeMap::new();
        for c in self.bodies.values() {
            *by_height.entry(c.height).or_default() += c.bytes;
        }
        for c in self.undos.values() {
            *by_height.entry(c.height).or_default() += c.bytes;
        }
        let top = self.height();
        let floor = top.saturating_sub(RECENT_BLOCKS);
        let mut used = 0usize;
        let mut keep_from = top.saturating_add(1);
        // Heights above the tip (a side branch ahead by work it lacks) count as well.
        for (&height, &bytes) in by_height.iter().rev() {
            if height < floor {
                break;
            }
            let needed = height + MIN_RECENT_BLOCKS > top;
            if !needed && used.saturating_add(bytes) > self.limits.max_recent_bytes {
                break;
            }
            used = used.saturating_add(bytes);
            keep_from = height;
        }
        keep_from.min(top.saturating_sub(MIN_RECENT_BLOCKS - 1))
    }

    /// Keeps a body in memory (until stored and old).
    pub(super) fn cache_body(&mut self, block: Arc<CheckedBlock>) {
        let generation = self.generation;
        let height = block.height();
        let bytes = block.memory_bytes();
        self.memory_bytes += bytes;
        if let Some(old) = self.bodies.insert(
            block.hash(),
            Cached {
                value: block,
                generation,
                height,
                bytes,
            },
        ) {
            self.memory_bytes -= old.bytes;
        }
    }

    /// Keeps a best-chain block's undo record in memory (until stored and old).
    pub(super) fn cache_undo(&mut self, hash: BlockHash, height: u64, undo: Undo) {
        let bytes = undo.memory_bytes();
        self.memory_bytes += bytes;
        let generation = self.generation;
        if let Some(old) = self.undos.insert(
            hash,
            Cached {
                value: undo,
                generation,
                height,
                bytes,
            },
        ) {
            self.memory_bytes -= old.bytes;
        }
    }

    /// Drops a body from memory.
    pub(super) fn forget_body(&mut self, hash: &BlockHash) {
        if let Some(c) = self.bodies.remove(hash) {
            self.memory_bytes -= c.bytes;
        }
    }

    /// Drops an undo record from memory.
    pub(super) fn forget_undo(&mut self, hash: &BlockHash) {
        if let Some(c) = self.undos.remove(hash) {
            self.memory_bytes -= c.bytes;
        }
    }

    /// The undo record of a best-chain block: from memory or the source.
    pub(super) fn undo_at(&self, pos: u32) -> Result<Undo, String> {
        let slot = self.index.get(pos);
        if let Some(c) = self.undos.get(&slot.hash) {
            return Ok(c.value.clone());
        }
        match &self.source {
            Some(source) => source
                .undo(&slot.hash)?
                .ok_or_else(|| format!("the undo record of block {} is not stored", slot.hash)),
            None => Err(format!("no undo record of block {}", slot.hash)),
        }
    }
}
