//! The compact block index: what the tree keeps in memory of every valid block, 72 bytes each
//! in a `Vec`, found by hash through a table of 4-byte positions (the hash itself is stored
//! once, in the slot). The body of a block is not here: it lives in the store, or in the
//! tree's cache of recent blocks.

use super::super::hash::BlockHash;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// "No slot": the parent of genesis, and the anchor of a removed slot.
pub(super) const NONE: u32 = u32::MAX;

/// One valid block. Cumulative work is kept as a u128 (two words, so the slot stays 8-byte
/// aligned), saturating: 2^128 hashes is beyond any real chain, and the exact 256-bit sum is
/// in the store.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    /// The block hash.
    pub(super) hash: BlockHash,
    /// Cumulative work, low word.
    work_lo: u64,
    /// Cumulative work, high word.
    work_hi: u64,
    /// The header's timestamp, ms (for median-time-past and the retarget schedule).
    pub(super) timestamp: u64,
    /// The parent's position ([`NONE`] for genesis); always below this slot's.
    pub(super) parent: u32,
    /// The height (a u32: four billion blocks is beyond any chain this runs).
    pub(super) height: u32,
    /// The header's compact target.
    pub(super) bits: u32,
    /// The position of this block's ancestor at height 1 (the retarget anchor; itself at
    /// height 1, 0 for genesis), or [`NONE`] once the slot is removed.
    pub(super) anchor: u32,
}

impl Slot {
    /// A slot; `anchor` as documented on the field.
    pub(super) fn new(
        hash: BlockHash,
        work: u128,
        timestamp: u64,
        parent: u32,
        height: u32,
        bits: u32,
        anchor: u32,
    ) -> Self {
        Self {
            hash,
            work_lo: work as u64,
            work_hi: (work >> 64) as u64,
            timestamp,
            parent,
            height,
            bits,
            anchor,
        }
    }

    /// Cumulative work from genesis through this block.
    pub(super) fn work(&self) -> u128 {
        (u128::from(self.work_hi) << 64) | u128::from(self.work_lo)
    }

    /// Whether the slot holds a block (it was not removed).
    pub(super) fn live(&self) -> bool {
        self.anchor != NONE
    }
}

/// Every valid block, by position and by hash. Positions only grow: a parent's is below its
/// children's, and the position is the arrival order (on equal work the earlier tip wins).
pub(super) struct BlockIndex {
    /// The slots, in arrival order; removed ones stay as tombstones until [`BlockIndex::compact`].
    slots: Vec<Slot>,
    /// Positions of live slots, hashed by their slot's hash.
    table: hashbrown::HashTable<u32>,
    /// Keyed hashing, so that nobody can choose block hashes that collide in the table.
    hasher: RandomState,
    /// Live slots.
    live: usize,
}

impl BlockIndex {
    /// An index holding `genesis` only, with room for `capacity` slots.
    pub(super) fn new(genesis: Slot, capacity: usize) -> Self {
        let mut index = Self {
            slots: Vec::with_capacity(capacity.max(1)),
            table: hashbrown::HashTable::with_capacity(capacity.max(1)),
            hasher: RandomState::new(),
            live: 0,
        };
        index.push(genesis);
        index
    }

    /// The position of a live block.
    pub(super) fn find(&self, hash: &BlockHash) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(self.hasher.hash_one(hash), |&i| {
                slots[i as usize].hash == *hash
            })
            .copied()
    }

    /// Adds a slot (its hash not yet present); returns its position.
    pub(super) fn push(&mut self, slot: Slot) -> u32 {
        let pos = u32::try_from(self.slots.len()).expect("fewer than 2^32 blocks");
        let hash = self.hasher.hash_one(slot.hash);
        self.slots.push(slot);
        let slots = &self.slots;
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, pos, |&i| hasher.hash_one(slots[i as usize].hash));
        self.live += 1;
        pos
    }

    /// The slot at `pos` (live or removed).
    pub(super) fn get(&self, pos: u32) -> &Slot {
        &self.slots[pos as usize]
    }

    /// Removes the block at `pos` (it stays a tombstone in the vector).
    pub(super) fn remove(&mut self, pos: u32) {
        let slot = &mut self.slots[pos as usize];
        if !slot.live() {
            return;
        }
        let hash = slot.hash;
        slot.anchor = NONE;
        let slots = &self.slots;
        if let Ok(entry) = self.table.find_entry(self.hasher.hash_one(hash), |&i| {
            slots[i as usize].hash == hash
        }) {
            entry.remove();
        }
        self.live -= 1;
    }

    /// Number of live blocks.
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// Number of slots, tombstones included (positions are below it).
    pub(super) fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Live positions from `from` on, in order.
    pub(super) fn live_from(&self, from: u32) -> impl Iterator<Item = u32> + '_ {
        (from..self.len()).filter(|&i| self.slots[i as usize].live())
    }

    /// Drops the tombstones if they are more than a quarter of the slots, renumbering the
    /// live ones (their order kept). Returns the map old position -> new position
    /// ([`NONE`] for a removed one), or `None` if nothing was done.
    pub(super) fn compact(&mut self) -> Option<Vec<u32>> {
        let dead = self.slots.len() - self.live;
        if dead * 4 <= self.slots.len() {
            return None;
        }
        let mut map = vec![NONE; self.slots.len()];
        let mut slots = Vec::with_capacity(self.live + self.live / 8);
        for (old, slot) in self.slots.iter().enumerate() {
            if !slot.live() {
                continue;
            }
            let mut s = *slot;
            map[old] = slots.len() as u32;
            if s.parent != NONE {
                s.parent = map[s.parent as usize];
            }
            s.anchor = map[s.anchor as usize];
            slots.push(s);
        }
        self.slots = slots;
        self.table = hashbrown::HashTable::with_capacity(self.slots.len());
        for (i, slot) in self.slots.iter().enumerate() {
            let hash = self.hasher.hash_one(slot.hash);
            let slots = &self.slots;
            let hasher = &self.hasher;
            self.table
                .insert_unique(hash, i as u32, |&j| hasher.hash_one(slots[j as usize].hash));
        }
        Some(map)
    }
}
