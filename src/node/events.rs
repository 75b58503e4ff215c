//! What the node tells its watchers (the HTTP API's event stream, the dashboard): a broadcast of
//! block arrivals, tip changes, admitted and replaced transfers and peers; and the bounded records behind
//! the queries that need history: when and from which peer each recent block arrived (the block
//! tree view), and which best-chain block holds a txid.
//!
//! The broadcast never blocks the actor: a watcher that falls behind by more than the channel's
//! capacity misses events and is told how many (tokio's `RecvError::Lagged`); it can then
//! re-read the state through the handle's queries.
//!
//! Events are numbered in the order the actor emits them, and the block tree snapshot
//! ([`TreeSnapshot`]) carries the number of the last event it reflects: a watcher that reads a
//! snapshot while events keep coming applies exactly the events numbered after it, whatever
//! arrived first.

use crate::chain::{
    Address, Block, BlockHash, ChainState, CheckedBlock, TipChange, Transaction, Transfer, Txid,
};
use crate::net::Discovery;
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use tokio::sync::broadcast;

/// Events buffered per watcher before a slow one starts missing them.
pub const EVENT_CAPACITY: usize = 1024;
/// Recent block arrivals remembered for the block tree view.
pub const MAX_ARRIVALS: usize = 4096;
/// Best-chain blocks recorded at start-up (loaded from the store, arrival unknown).
const LOADED_ARRIVALS: u64 = 256;
/// Best-chain blocks whose txids are indexed in memory: the newest, which the store may not
/// have committed yet (older ones are looked up in the store's txid index). At most this many
/// blocks, and no more than [`TXID_INDEX_BYTES`] of txids.
const MAX_TXID_BLOCKS: usize = 4096;
/// Memory of the in-memory txid index: 8 MiB, about 70 000 txids (14 full blocks of 4 999
/// transfers; all 4 096 blocks when they are nearly empty).
pub const TXID_INDEX_BYTES: usize = 8 << 20;
/// What one indexed txid costs: its entry in the map (a txid and a block hash, 64 bytes, in a
/// table at most 7/8 full) and its copy in the per-block list (32 bytes).
const TXID_ENTRY_BYTES: usize = 120;
/// Blocks indexed whatever their size: a store commit lags the tip by a step or so, and a
/// transfer just confirmed must be found meanwhile.
const MIN_TXID_BLOCKS: usize = 8;

/// Something that happened in the node.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A valid block was stored (best chain or side branch).
    Block(Arrival),
    /// The best chain changed.
    Tip {
        /// The new tip.
        hash: BlockHash,
        /// Its height.
        height: u64,
        /// Blocks that left the best chain (0 when the tip just extended it).
        reorg_depth: usize,
        /// Those blocks, from the old tip down.
        disconnected: Vec<BlockHash>,
        /// Blocks that joined the best chain, from the fork point up.
        connected: Vec<BlockHash>,
    },
    /// A transfer entered the mempool.
    Tx {
        /// Its txid.
        txid: Txid,
        /// The transfer.
        tx: Transfer,
    },
    /// A pending transfer was evicted by a replacement: same sender and nonce, a fee at least
    /// 10 % higher. The replacement's own [`NodeEvent::Tx`] follows.
    Replaced {
        /// The evicted transfer's txid.
        txid: Txid,
        /// The evicted transfer.
        tx: Transfer,
        /// The replacement's txid.
        by: Txid,
        /// The replacement's fee.
        new_fee: u64,
    },
    /// A peer connected or disconnected.
    Peer {
        /// The peer.
        peer: PeerId,
        /// Connected (else disconnected).
        connected: bool,
        /// How it was found (known on connection only).
        found_by: Option<Discovery>,
    },
}

/// An event with its number: 1, 2, 3, … in the order the actor emitted them since it started.
#[derive(Clone, Debug)]
pub struct Numbered {
    /// Its number.
    pub seq: u64,
    /// The event.
    pub event: NodeEvent,
}

/// The recent block tree, as the actor saw it at one moment.
#[derive(Clone, Debug)]
pub struct TreeSnapshot {
    /// The number of the last event emitted before it: the snapshot reflects that event and
    /// every earlier one, and none after.
    pub seq: u64,
    /// The best tip then.
    pub tip: BlockHash,
    /// Its height.
    pub height: u64,
    /// Recently arrived blocks (best chain and side branches, lowest first), each with whether
    /// it was on the best chain then.
    pub blocks: Vec<(Arrival, bool)>,
}

/// When and from where a block reached this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The block hash.
    pub hash: BlockHash,
    /// Its parent.
    pub parent: BlockHash,
    /// Its height.
    pub height: u64,
    /// The miner's address (the coinbase recipient).
    pub miner: Address,
    /// Transactions in it, coinbase included.
    pub txs: usize,
    /// Milliseconds since the Unix epoch when it was accepted here; `None` for blocks loaded
    /// from the store at start-up.
    pub arrived_ms: Option<u64>,
    /// Where it came from: `None` if this node mined or submitted it or loaded it from disk.
    pub origin: Option<PeerId>,
    /// Whether it was loaded from the store at start-up.
    pub loaded: bool,
}

impl Arrival {
    fn of(hash: BlockHash, block: &Block, arrived_ms: Option<u64>, origin: Option<PeerId>) -> Self {
        let miner = match block.txs.first() {
            Some(Transaction::Coinbase(c)) => c.to,
            _ => Address::default(),
        };
        Self {
            hash,
            parent: block.header.prev_hash,
            height: block.header.height,
            miner,
            txs: block.txs.len(),
            arrived_ms,
            origin,
            loaded: arrived_ms.is_none(),
        }
    }
}

/// Where a transaction stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Pending in the mempool.
    Mempool(Transfer),
    /// In a block of the best chain.
    Confirmed {
        /// The transaction.
        tx: Transaction,
        /// The block.
        block: BlockHash,
        /// Its height.
        height: u64,
    },
    /// Neither (never seen, or on a side branch only).
    Unknown,
}

/// The broadcast and the records; owned by the actor.
pub(crate) struct Watch {
    /// Subscribers get a receiver from the handle's `subscribe`.
    events: broadcast::Sender<Numbered>,
    /// The number of the last event emitted.
    seq: u64,
    /// Events of the current step, sent at its end ([`Watch::send_step`]): after the step's
    /// network commands (a block to publish or relay), so that waking every watcher (one task
    /// per open event stream) never delays the relay.
    step: Vec<NodeEvent>,
    /// Recent arrivals by hash, and their order for eviction.
    arrivals: HashMap<BlockHash, Arrival>,
    arrival_order: VecDeque<BlockHash>,
    /// Best-chain txid → block hash, for the last [`MAX_TXID_BLOCKS`] blocks connected.
    txids: HashMap<Txid, BlockHash>,
    /// Those blocks with their txids, oldest first.
    txid_blocks: VecDeque<(BlockHash, Vec<Txid>)>,
    /// Txids in `txid_blocks`, to keep the index within [`TXID_INDEX_BYTES`].
    txid_count: usize,
}

impl Watch {
    /// Records the last blocks of the loaded best chain (for the tree and the txid index;
    /// older txids are looked up in the store).
    pub(crate) fn new(chain: &ChainState, events: broadcast::Sender<Numbered>) -> Self {
        let mut w = Self {
            events,
            seq: 0,
            step: Vec::new(),
            arrivals: HashMap::new(),
            arrival_order: VecDeque::new(),
            txids: HashMap::new(),
            txid_blocks: VecDeque::new(),
            txid_count: 0,
        };
        let top = chain.height();
        for h in top.saturating_sub(LOADED_ARRIVALS - 1)..=top {
            let Some(block) = chain.checked_at(h) else {
                continue;
            };
            if h > 0 {
                w.index_txids(&block);
            }
            w.remember(Arrival::of(block.hash(), &block, None, None));
        }
        w
    }

    /// Indexes a best-chain block's txids, forgetting those of the oldest indexed blocks beyond
    /// [`MAX_TXID_BLOCKS`] or [`TXID_INDEX_BYTES`] (the store's txid index has them).
    fn index_txids(&mut self, block: &CheckedBlock) {
        for txid in block.txids() {
            self.txids.insert(*txid, block.hash());
        }
        self.txid_blocks
            .push_back((block.hash(), block.txids().to_vec()));
        self.txid_count += block.txids().len();
        while self.txid_blocks.len() > MAX_TXID_BLOCKS
            || (self.txid_index_bytes() > TXID_INDEX_BYTES
                && self.txid_blocks.len() > MIN_TXID_BLOCKS)
        {
            if let Some((hash, txids)) = self.txid_blocks.pop_front() {
                self.txid_count -= txids.len();
                for txid in txids {
                    if self.txids.get(&txid) == Some(&hash) {
                        self.txids.remove(&txid);
                    }
                }
            }
        }
    }

    /// Memory the txid index holds, counted as [`TXID_ENTRY_BYTES`] a txid.
    pub(crate) fn txid_index_bytes(&self) -> usize {
        self.txid_count * TXID_ENTRY_BYTES
    }

    fn send(&mut self, event: NodeEvent) {
        self.step.push(event);
    }

    /// Sends the events of the step that ends, numbered, in the order they happened.
    pub(crate) fn send_step(&mut self) {
        for event in self.step.drain(..) {
            self.seq += 1;
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(Numbered {
                seq: self.seq,
                event,
            });
        }
    }

    /// The number of the last event emitted (0 before the first).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    fn remember(&mut self, arrival: Arrival) {
        if self.arrival_order.len() >= MAX_ARRIVALS
            && let Some(old) = self.arrival_order.pop_front()
        {
            self.arrivals.remove(&old);
        }
        self.arrival_order.push_back(arrival.hash);
        self.arrivals.insert(arrival.hash, arrival);
    }

    /// A block was stored as valid.
    pub(crate) fn block_accepted(
        &mut self,
        block: &CheckedBlock,
        now_ms: u64,
        origin: Option<PeerId>,
    ) {
        let arrival = Arrival::of(block.hash(), block.block(), Some(now_ms), origin);
        self.remember(arrival.clone());
        self.send(NodeEvent::Block(arrival));
    }

    /// The best chain changed.
    pub(crate) fn tip_changed(&mut self, change: &TipChange, height: u64) {
        let disconnected: Vec<BlockHash> = change.disconnected.iter().map(|b| b.hash()).collect();
        let connected: Vec<BlockHash> = change.connected.iter().map(|b| b.hash()).collect();
        for block in &change.disconnected {
            for txid in block.txids() {
                if self.txids.get(txid) == Some(&block.hash()) {
                    self.txids.remove(txid);
                }
            }
        }
        for block in &change.connected {
            self.index_txids(block);
        }
        self.send(NodeEvent::Tip {
            hash: change.new_tip,
            height,
            reorg_depth: disconnected.len(),
            disconnected,
            connected,
        });
    }

    /// A transfer entered the mempool.
    pub(crate) fn tx_admitted(&mut self, txid: Txid, tx: Transfer) {
        self.send(NodeEvent::Tx { txid, tx });
    }

    /// A pending transfer was replaced by `by`, paying `new_fee`.
    pub(crate) fn tx_replaced(&mut self, txid: Txid, tx: Transfer, by: Txid, new_fee: u64) {
        self.send(NodeEvent::Replaced {
            txid,
            tx,
            by,
            new_fee,
        });
    }

    /// A peer connected or left.
    pub(crate) fn peer(&mut self, peer: PeerId, connected: bool, found_by: Option<Discovery>) {
        self.send(NodeEvent::Peer {
            peer,
            connected,
            found_by,
        });
    }

    /// The best-chain block holding `txid`, if it is among the newest (else ask the store).
    pub(crate) fn block_of(&self, txid: &Txid) -> Option<BlockHash> {
        self.txids.get(txid).copied()
    }

    /// Remembered arrivals at `min_height` or above, lowest first, at most `max`.
    pub(crate) fn arrivals_from(&self, min_height: u64, max: usize) -> Vec<Arrival> {
        let mut list: Vec<Arrival> = self
            .arrivals
            .values()
            .filter(|a| a.height >= min_height)
            .cloned()
            .collect();
        list.sort_by_key(|a| (a.height, a.arrived_ms));
        list.truncate(max);
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Coinbase;
    use crate::chain::block::{BLOCK_VERSION, Header};
    use std::sync::Arc;

    /// A block of `n` transfers that only needs distinct txids (the index never validates).
    fn block(height: u64, n: u64) -> Arc<CheckedBlock> {
        let mut txs = vec![Transaction::Coinbase(Coinbase {
            height,
            to: Address::default(),
            amount: 0,
        })];
        txs.extend((0..n).map(|nonce| {
            Transaction::Transfer(Transfer {
                from: Address([height as u8; 32]),
                to: Address::default(),
                amount: 1,
                fee: 0,
                nonce,
                signature: [0; 64],
            })
        }));
        let block = Block {
            header: Header {
                version: BLOCK_VERSION,
                height,
                prev_hash: BlockHash::default(),
                tx_root: Default::default(),
                timestamp: height,
                bits: 0,
                nonce: 0,
            },
            txs,
        };
        Arc::new(CheckedBlock::stored(block, Vec::new()))
    }

    #[test]
    fn the_txid_index_of_full_blocks_stays_within_its_byte_budget() {
        let chain = ChainState::new(crate::testkit::params());
        let mut watch = Watch::new(&chain, broadcast::channel(4).0);
        let blocks: Vec<_> = (1..=30).map(|h| block(h, 4_999)).collect();
        for b in &blocks {
            let change = TipChange {
                old_tip: b.header.prev_hash,
                new_tip: b.hash(),
                disconnected: Vec::new(),
                connected: vec![b.clone()],
            };
            watch.tip_changed(&change, b.height());
            assert!(watch.txid_index_bytes() <= TXID_INDEX_BYTES);
        }
        // The newest blocks are indexed, the oldest left to the store's index.
        let last = blocks.last().unwrap();
        assert_eq!(watch.block_of(&last.txids()[4_999]), Some(last.hash()));
        assert_eq!(watch.block_of(&blocks[0].txids()[1]), None);
        assert!(watch.txid_blocks.len() >= MIN_TXID_BLOCKS);
        assert!(watch.txid_blocks.len() < 30);
        assert_eq!(watch.txids.len(), watch.txid_count);
    }
}
