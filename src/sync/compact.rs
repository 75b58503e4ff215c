//! The requests of compact block relay, as a state machine with no I/O and no clock (time is
//! an argument): the reconstructions waiting for missing transfers (`GetBlockTxs`) or for a
//! full block, their deadlines and the fallback between them, and the serving side's record of
//! which blocks this node relayed and who asked for their transfers how often.
//!
//! The node feeds it [`Event`]s and carries out the [`Action`]s it returns (see
//! `relay.rs`); requests go through the network client with the tags it picks (from
//! [`TAG_BASE`] up, apart from sync's). Every pending reconstruction ends: rebuilt, fetched in
//! full, or given up at a deadline, and their number and memory are bounded, so a compact block
//! naming transfers nobody has costs a deadline and a request, never the honest block.

use crate::chain::compact::{FillError, Partial};
use crate::chain::{Block, BlockHash, Transfer};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A request's tag.
pub type Tag = u64;
/// The first tag of this component: sync's tags count up from 0 and never get here.
pub const TAG_BASE: Tag = 1 << 62;

/// The knobs; [`CompactConfig::default`] is what the node uses and PROTOCOL.md §14.7 states.
#[derive(Clone, Debug)]
pub struct CompactConfig {
    /// How long the missing transfers may take before the full block is fetched instead.
    pub txs_deadline: Duration,
    /// How long the full block may take before the reconstruction is given up.
    pub full_deadline: Duration,
    /// Most reconstructions pending at once.
    pub max_pending: usize,
    /// Most pending reconstructions of one block (from different peers).
    pub max_pending_per_block: usize,
    /// Memory the pending partial blocks may hold; beyond it a reconstruction fetches the full
    /// block at once and keeps nothing.
    pub max_pending_bytes: usize,
    /// How many recently relayed blocks a peer may ask transfers of.
    pub relayed_blocks: usize,
    /// How many `GetBlockTxs` one peer may send for one block.
    pub max_asks: u8,
    /// Refused `GetBlockTxs` that get a peer banned.
    pub ban_strikes: u32,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            txs_deadline: Duration::from_secs(2),
            full_deadline: Duration::from_secs(10),
            max_pending: 16,
            max_pending_per_block: 3,
            max_pending_bytes: 16 << 20,
            relayed_blocks: 64,
            max_asks: 2,
            ban_strikes: 8,
        }
    }
}

/// What happened.
#[derive(Debug)]
pub enum Event<P, M> {
    /// A compact block from `peer` (gossip message `message`) rebuilt but for some transfers.
    Missing {
        /// Who relayed it.
        peer: P,
        /// Its gossip message.
        message: M,
        /// What is rebuilt.
        partial: Partial,
    },
    /// A compact block that cannot be rebuilt (a short-id collision): fetch it in full.
    Collision {
        /// Who relayed it.
        peer: P,
        /// Its gossip message.
        message: M,
        /// The block.
        hash: BlockHash,
    },
    /// The answer to a `GetBlockTxs`: the transfers, or why there are none (refused, failed,
    /// malformed).
    Transactions {
        /// The request.
        tag: Tag,
        /// The transfers in the order asked, or the failure.
        result: Result<Vec<Transfer>, Failure>,
    },
    /// The answer to a full-block request: the block served, or why there is none.
    FullBlock {
        /// The request.
        tag: Tag,
        /// The block (its hash is checked here), or the failure.
        result: Result<Block, Failure>,
    },
    /// A request of ours brought nothing usable, whichever it was.
    Failed {
        /// The request.
        tag: Tag,
        /// Why.
        failure: Failure,
    },
    /// Time passed: deadlines are checked.
    Tick,
}

/// Why a request of ours brought nothing usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer, a closed stream, or `Refused`: no fault.
    NoAnswer(String),
    /// An answer no honest peer gives (undecodable, a coinbase, the wrong kind): a ban.
    Malformed(String),
}

/// What the node should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<P, M> {
    /// Ask `peer` for the transfers at `indexes` of `block`.
    GetBlockTxs {
        /// Whom to ask.
        peer: P,
        /// The request's tag.
        tag: Tag,
        /// The block.
        block: BlockHash,
        /// The indexes, increasing.
        indexes: Vec<u32>,
    },
    /// Ask `peer` for the full block (`GetBodies`).
    GetBlock {
        /// Whom to ask.
        peer: P,
        /// The request's tag.
        tag: Tag,
        /// The block wanted.
        block: BlockHash,
    },
    /// The block of gossip message `message` is whole (its Merkle root checked): validate it
    /// and report the verdict for the message.
    Validate {
        /// Who relayed it.
        peer: P,
        /// Its gossip message.
        message: M,
        /// The block.
        block: Block,
    },
    /// Give up on gossip message `message`: report it ignored (no penalty).
    Ignore {
        /// Who relayed it.
        peer: P,
        /// Its gossip message.
        message: M,
        /// Why, for the log.
        reason: String,
    },
    /// Ban `peer`.
    Ban {
        /// The peer.
        peer: P,
        /// Why.
        reason: String,
    },
}

/// What to do with a peer's `GetBlockTxs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serve {
    /// Answer it.
    Yes,
    /// Answer `Refused(reason)`; the peer has a strike.
    Refuse(String),
    /// Ban the peer: too many refused requests.
    Ban(String),
}

/// A reconstruction waiting for an answer.
#[derive(Debug)]
struct Pending<P, M> {
    peer: P,
    message: M,
    hash: BlockHash,
    deadline: Instant,
    /// The partial block while its transfers are asked for; `None` once the full block is.
    partial: Option<Partial>,
}

/// A block this node relayed, and who asked for its transfers how often.
#[derive(Debug)]
struct Relayed<P> {
    hash: BlockHash,
    asks: HashMap<P, u8>,
}

/// The state; see the module doc.
#[derive(Debug)]
pub struct CompactRelay<P, M> {
    config: CompactConfig,
    pending: HashMap<Tag, Pending<P, M>>,
    /// Bytes held by the pending partial blocks.
    pending_bytes: usize,
    next_tag: Tag,
    /// Blocks relayed, oldest first.
    relayed: VecDeque<Relayed<P>>,
    /// Refused requests per peer.
    strikes: HashMap<P, u32>,
    /// Counters for the metrics and the benchmark.
    stats: CompactStats,
}

/// What compact relay did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Reconstructions that needed a `GetBlockTxs`.
    pub asked_txs: u64,
    /// Reconstructions completed by the transfers asked for.
    pub filled: u64,
    /// Full blocks fetched after a collision, a failed `GetBlockTxs` or a deadline.
    pub fell_back: u64,
    /// Reconstructions given up.
    pub given_up: u64,
}

impl<P: Copy + Eq + Hash, M: Clone> CompactRelay<P, M> {
    /// An idle state.
    pub fn new(config: CompactConfig) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            pending_bytes: 0,
            next_tag: TAG_BASE,
            relayed: VecDeque::new(),
            strikes: HashMap::new(),
            stats: CompactStats::default(),
        }
    }

    /// Whether `tag` is one of this component's requests.
    pub fn owns(tag: Tag) -> bool {
        tag >= TAG_BASE
    }

    /// The counters.
    pub fn stats(&self) -> CompactStats {
        self.stats
    }

    /// Reconstructions pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes the pending partial blocks hold.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The earliest deadline, for the node's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, event: Event<P, M>, now: Instant) -> Vec<Action<P, M>> {
        match event {
            Event::Missing {
                peer,
                message,
                partial,
            } => {
                let hash = partial.hash();
                if let Some(refused) = self.refuse_new(peer, &message, hash) {
                    return vec![refused];
                }
                self.stats.asked_txs += 1;
                let bytes = partial.bytes();
                if self.pending_bytes + bytes > self.config.max_pending_bytes {
                    // Over the memory budget: keep nothing, fetch the block whole.
                    return self.fetch_full(peer, message, hash, now);
                }
                let tag = self.tag();
                let indexes = partial.missing();
                self.pending_bytes += bytes;
                self.pending.insert(
                    tag,
                    Pending {
                        peer,
                        message,
                        hash,
                        deadline: now + self.config.txs_deadline,
                        partial: Some(partial),
                    },
                );
                vec![Action::GetBlockTxs {
                    peer,
                    tag,
                    block: hash,
                    indexes,
                }]
            }
            Event::Collision {
                peer,
                message,
                hash,
            } => {
                if let Some(refused) = self.refuse_new(peer, &message, hash) {
                    return vec![refused];
                }
                self.fetch_full(peer, message, hash, now)
            }
            Event::Transactions { tag, result } => self.on_transactions(tag, result, now),
            Event::FullBlock { tag, result } => self.on_full_block(tag, result, now),
            Event::Failed { tag, failure } => match self.pending.get(&tag) {
                Some(p) if p.partial.is_some() => self.on_transactions(tag, Err(failure), now),
                Some(_) => self.on_full_block(tag, Err(failure), now),
                None => Vec::new(),
            },
            Event::Tick => self.on_tick(now),
        }
    }

    /// `Some(Ignore)` if a new reconstruction of `hash` would exceed the limits.
    fn refuse_new(&self, peer: P, message: &M, hash: BlockHash) -> Option<Action<P, M>> {
        let of_block = self.pending.values().filter(|p| p.hash == hash).count();
        let reason = if of_block >= self.config.max_pending_per_block {
            "this block is being rebuilt from other peers already"
        } else if self.pending.len() >= self.config.max_pending {
            "too many compact blocks being rebuilt"
        } else {
            return None;
        };
        Some(Action::Ignore {
            peer,
            message: message.clone(),
            reason: reason.into(),
        })
    }

    fn tag(&mut self) -> Tag {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    /// Asks `peer` for the whole block, remembering nothing but its hash.
    fn fetch_full(
        &mut self,
        peer: P,
        message: M,
        hash: BlockHash,
        now: Instant,
    ) -> Vec<Action<P, M>> {
        self.stats.fell_back += 1;
        let tag = self.tag();
        self.pending.insert(
            tag,
            Pending {
                peer,
                message,
                hash,
                deadline: now + self.config.full_deadline,
                partial: None,
            },
        );
        vec![Action::GetBlock {
            peer,
            tag,
            block: hash,
        }]
    }

    fn take(&mut self, tag: Tag) -> Option<Pending<P, M>> {
        let p = self.pending.remove(&tag)?;
        if let Some(partial) = &p.partial {
            self.pending_bytes -= partial.bytes();
        }
        Some(p)
    }

    /// The block is whole: validate it, and drop the other reconstructions of it (their
    /// messages are ignored: the block is known once validated).
    fn done(&mut self, p: Pending<P, M>, block: Block) -> Vec<Action<P, M>> {
        let others: Vec<Tag> = (self.pending.iter())
            .filter(|(_, o)| o.hash == p.hash)
            .map(|(t, _)| *t)
            .collect();
        let mut out = vec![Action::Validate {
            peer: p.peer,
            message: p.message,
            block,
        }];
        for tag in others {
            if let Some(o) = self.take(tag) {
                out.push(Action::Ignore {
                    peer: o.peer,
                    message: o.message,
                    reason: "rebuilt from another peer".into(),
                });
            }
        }
        out
    }

    fn on_transactions(
        &mut self,
        tag: Tag,
        result: Result<Vec<Transfer>, Failure>,
        now: Instant,
    ) -> Vec<Action<P, M>> {
        let Some(mut p) = self.take(tag) else {
            return Vec::new();
        };
        let Some(partial) = p.partial.take() else {
            return self.blame(p, "answered a block request with transfers".into());
        };
        let txs = match result {
            Ok(txs) => txs,
            Err(Failure::NoAnswer(_)) => {
                return self.fetch_full(p.peer, p.message, p.hash, now);
            }
            Err(Failure::Malformed(reason)) => return self.blame(p, reason),
        };
        match partial.fill(&txs) {
            Ok(block) => {
                self.stats.filled += 1;
                self.done(p, block)
            }
            // A chance collision among the transfers held here: no one's fault.
            Err(FillError::RootMismatch) => self.fetch_full(p.peer, p.message, p.hash, now),
            Err(e) => self.blame(p, format!("answered GetBlockTxs wrongly: {e}")),
        }
    }

    /// A peer answered what no honest peer answers: banned, its message ignored (the block
    /// comes from another peer or by sync).
    fn blame(&mut self, p: Pending<P, M>, reason: String) -> Vec<Action<P, M>> {
        self.stats.given_up += 1;
        vec![
            Action::Ban {
                peer: p.peer,
                reason: reason.clone(),
            },
            Action::Ignore {
                peer: p.peer,
                message: p.message,
                reason,
            },
        ]
    }

    fn on_full_block(
        &mut self,
        tag: Tag,
        result: Result<Block, Failure>,
        now: Instant,
    ) -> Vec<Action<P, M>> {
        let Some(p) = self.take(tag) else {
            return Vec::new();
        };
        if p.partial.is_some() {
            // Blocks for a GetBlockTxs: the wrong kind of answer; the full block is asked for
            // properly (a failure is passed as `Failed`, not here).
            return match result {
                Ok(_) => self.blame(p, "answered GetBlockTxs with blocks".into()),
                Err(_) => self.fetch_full(p.peer, p.message, p.hash, now),
            };
        }
        match result {
            Ok(block) if block.compute_hash() == p.hash => self.done(p, block),
            Ok(_) => self.give_up(p, "the peer served another block".into()),
            Err(Failure::NoAnswer(reason)) => self.give_up(p, reason),
            Err(Failure::Malformed(reason)) => self.blame(p, reason),
        }
    }

    fn give_up(&mut self, p: Pending<P, M>, reason: String) -> Vec<Action<P, M>> {
        self.stats.given_up += 1;
        vec![Action::Ignore {
            peer: p.peer,
            message: p.message,
            reason,
        }]
    }

    fn on_tick(&mut self, now: Instant) -> Vec<Action<P, M>> {
        let expired: Vec<Tag> = (self.pending.iter())
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        let mut out = Vec::new();
        for tag in expired {
            let Some(p) = self.take(tag) else { continue };
            if p.partial.is_some() {
                out.extend(self.fetch_full(p.peer, p.message, p.hash, now));
            } else {
                out.extend(self.give_up(p, "no full block in time".into()));
            }
        }
        out
    }

    /// This node published `hash` as a compact block, or accepted one and so forwarded it:
    /// its peers may ask for its transfers.
    pub fn relayed(&mut self, hash: BlockHash) {
        if self.relayed.iter().any(|r| r.hash == hash) {
            return;
        }
        self.relayed.push_back(Relayed {
            hash,
            asks: HashMap::new(),
        });
        while self.relayed.len() > self.config.relayed_blocks {
            self.relayed.pop_front();
        }
    }

    /// Whether to answer `peer`'s `GetBlockTxs` for `hash`: only for a block this node
    /// relayed recently, at most [`CompactConfig::max_asks`] times per peer and block.
    pub fn serve(&mut self, peer: P, hash: BlockHash) -> Serve {
        let max = self.config.max_asks;
        let verdict = match self.relayed.iter_mut().find(|r| r.hash == hash) {
            None => Err("not a block this node relayed recently"),
            Some(r) => {
                let asks = r.asks.entry(peer).or_insert(0);
                if *asks >= max {
                    Err("asked for this block's transfers too often")
                } else {
                    *asks += 1;
                    Ok(())
                }
            }
        };
        match verdict {
            Ok(()) => Serve::Yes,
            Err(reason) => self.strike(peer, reason),
        }
    }

    /// Counts a refused request against `peer`: [`Serve::Refuse`], or [`Serve::Ban`] at
    /// [`CompactConfig::ban_strikes`].
    pub fn strike(&mut self, peer: P, reason: &str) -> Serve {
        // Bounded: a map past a thousand misbehaving peers starts over.
        if self.strikes.len() >= 1024 && !self.strikes.contains_key(&peer) {
            self.strikes.clear();
        }
        let n = self.strikes.entry(peer).or_insert(0);
        *n += 1;
        if *n >= self.config.ban_strikes {
            self.strikes.remove(&peer);
            Serve::Ban(format!(
                "{reason} ({} refused GetBlockTxs)",
                self.config.ban_strikes
            ))
        } else {
            Serve::Refuse(reason.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::compact::{CompactBlock, Rebuilt};
    use crate::chain::{Address, Coinbase, Header, Transaction, Txid, merkle};
    use ed25519_zebra::SigningKey;

    type State = CompactRelay<u8, u32>;

    fn transfers(n: usize) -> Vec<Transfer> {
        let key = SigningKey::from([3; 32]);
        (0..n as u64)
            .map(|i| Transfer::sign(&key, &BlockHash([7; 32]), Address([9; 32]), 1, 1, i))
            .collect()
    }

    /// A block of `n` transfers and its partial rebuild from none held.
    fn partial(n: usize, height: u64) -> (Block, Vec<Transfer>, Partial) {
        let ts = transfers(n);
        let mut txs = vec![Transaction::Coinbase(Coinbase {
            height,
            to: Address([1; 32]),
            amount: 50,
        })];
        txs.extend(ts.iter().map(|t| Transaction::Transfer(*t)));
        let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
        let header = Header {
            version: 1,
            height,
            prev_hash: BlockHash([2; 32]),
            tx_root: merkle::tx_root(&txids),
            timestamp: 0,
            bits: 0,
            nonce: 0,
        };
        let block = Block { header, txs };
        let c = CompactBlock::from_block(&block, &txids, 1, |_| true, 1 << 20).unwrap();
        let Rebuilt::Missing(p) = c.rebuild(std::iter::empty()) else {
            panic!("none held")
        };
        (block, ts, p)
    }

    fn get_txs_tag(actions: &[Action<u8, u32>]) -> Tag {
        match actions {
            [Action::GetBlockTxs { tag, .. }] => *tag,
            other => panic!("expected GetBlockTxs, got {other:?}"),
        }
    }

    #[test]
    fn missing_transfers_are_asked_for_and_fill_the_block() {
        let t0 = Instant::now();
        let mut s = State::new(CompactConfig::default());
        let (block, ts, p) = partial(4, 1);
        let a = s.handle(
            Event::Missing {
                peer: 1,
                message: 10,
                partial: p,
            },
            t0,
        );
        assert!(
            matches!(&a[..], [Action::GetBlockTxs { peer: 1, indexes, .. }] if indexes == &[1, 2, 3, 4])
        );
        assert!(s.pending_bytes() > 0);
        let a = s.handle(
            Event::Transactions {
                tag: get_txs_tag(&a),
                result: Ok(ts),
            },
            t0,
        );
        assert_eq!(
            a,
            vec![Action::Validate {
                peer: 1,
                message: 10,
                block
            }]
        );
        assert_eq!((s.pending(), s.pending_bytes()), (0, 0));
    }

    #[test]
    fn no_answer_falls_back_to_the_full_block_then_gives_up() {
        let t0 = Instant::now();
        let cfg = CompactConfig::default();
        let mut s = State::new(cfg.clone());
        let (block, _, p) = partial(2, 1);
        let hash = block.compute_hash();
        s.handle(
            Event::Missing {
                peer: 1,
                message: 10,
                partial: p,
            },
            t0,
        );
        assert_eq!(s.next_deadline(), Some(t0 + cfg.txs_deadline));
        assert!(
            s.handle(Event::Tick, t0 + Duration::from_millis(10))
                .is_empty()
        );
        let t1 = t0 + cfg.txs_deadline;
        let a = s.handle(Event::Tick, t1);
        let tag = match &a[..] {
            [
                Action::GetBlock {
                    peer: 1,
                    tag,
                    block: b,
                    ..
                },
            ] if *b == hash => *tag,
            other => panic!("{other:?}"),
        };
        assert_eq!(s.pending_bytes(), 0, "the partial block is dropped");
        // A late answer to the first request changes nothing.
        assert!(
            s.handle(
                Event::Transactions {
                    tag: tag - 1,
                    result: Ok(vec![])
                },
                t1
            )
            .is_empty()
        );
        let a = s.handle(Event::Tick, t1 + cfg.full_deadline);
        assert!(matches!(
            &a[..],
            [Action::Ignore {
                peer: 1,
                message: 10,
                ..
            }]
        ));
        assert_eq!(s.pending(), 0);
        assert!(
            s.handle(
                Event::FullBlock {
                    tag,
                    result: Ok(block)
                },
                t1
            )
            .is_empty()
        );
    }

    #[test]
    fn wrong_answers_ban_and_collisions_blame_no_one() {
        let t0 = Instant::now();
        let mut s = State::new(CompactConfig::default());
        let (block, ts, p) = partial(3, 1);
        let a = s.handle(
            Event::Missing {
                peer: 1,
                message: 10,
                partial: p.clone(),
            },
            t0,
        );
        // One transfer short: banned.
        let a = s.handle(
            Event::Transactions {
                tag: get_txs_tag(&a),
                result: Ok(ts[..2].to_vec()),
            },
            t0,
        );
        assert!(matches!(
            &a[..],
            [Action::Ban { peer: 1, .. }, Action::Ignore { .. }]
        ));
        // Refused: the full block instead, which must be the block announced.
        let a = s.handle(
            Event::Missing {
                peer: 2,
                message: 11,
                partial: p,
            },
            t0,
        );
        let a = s.handle(
            Event::Transactions {
                tag: get_txs_tag(&a),
                result: Err(Failure::NoAnswer("refused".into())),
            },
            t0,
        );
        let [Action::GetBlock { tag, .. }] = &a[..] else {
            panic!("{a:?}")
        };
        let (other, _, _) = partial(3, 2);
        let a = s.handle(
            Event::FullBlock {
                tag: *tag,
                result: Ok(other),
            },
            t0,
        );
        assert!(matches!(&a[..], [Action::Ignore { peer: 2, .. }]));
        // A collision fetches the full block at once.
        let a = s.handle(
            Event::Collision {
                peer: 3,
                message: 12,
                hash: block.compute_hash(),
            },
            t0,
        );
        let [Action::GetBlock { tag, .. }] = &a[..] else {
            panic!("{a:?}")
        };
        let a = s.handle(
            Event::FullBlock {
                tag: *tag,
                result: Ok(block.clone()),
            },
            t0,
        );
        assert_eq!(
            a,
            vec![Action::Validate {
                peer: 3,
                message: 12,
                block
            }]
        );
    }

    #[test]
    fn pending_reconstructions_are_bounded() {
        let t0 = Instant::now();
        let cfg = CompactConfig {
            max_pending: 4,
            max_pending_per_block: 2,
            ..CompactConfig::default()
        };
        let mut s = State::new(cfg);
        let (_, ts, p) = partial(2, 1);
        for peer in 0..2 {
            let a = s.handle(
                Event::Missing {
                    peer,
                    message: peer.into(),
                    partial: p.clone(),
                },
                t0,
            );
            assert!(matches!(&a[..], [Action::GetBlockTxs { .. }]));
        }
        let a = s.handle(
            Event::Missing {
                peer: 5,
                message: 5,
                partial: p.clone(),
            },
            t0,
        );
        assert!(
            matches!(&a[..], [Action::Ignore { peer: 5, .. }]),
            "per block"
        );
        for h in 2..4 {
            let (_, _, q) = partial(2, h);
            s.handle(
                Event::Missing {
                    peer: 7,
                    message: 7,
                    partial: q,
                },
                t0,
            );
        }
        let (_, _, q) = partial(2, 9);
        let a = s.handle(
            Event::Missing {
                peer: 8,
                message: 8,
                partial: q,
            },
            t0,
        );
        assert!(matches!(&a[..], [Action::Ignore { peer: 8, .. }]), "in all");
        // Completing one block ignores its other reconstruction.
        let a = s.handle(
            Event::Transactions {
                tag: TAG_BASE,
                result: Ok(ts),
            },
            t0,
        );
        assert!(matches!(
            &a[..],
            [
                Action::Validate { peer: 0, .. },
                Action::Ignore { peer: 1, .. }
            ]
        ));
        assert_eq!(s.pending(), 2);
        // Over the memory budget, nothing is kept: the block is fetched whole.
        let mut s = State::new(CompactConfig {
            max_pending_bytes: 10,
            ..CompactConfig::default()
        });
        let a = s.handle(
            Event::Missing {
                peer: 1,
                message: 1,
                partial: p,
            },
            t0,
        );
        assert!(matches!(&a[..], [Action::GetBlock { .. }]));
        assert_eq!(s.pending_bytes(), 0);
    }

    #[test]
    fn only_relayed_blocks_are_served_a_few_times_each() {
        let mut s = State::new(CompactConfig {
            relayed_blocks: 2,
            max_asks: 2,
            ban_strikes: 3,
            ..CompactConfig::default()
        });
        let (a, b, c) = (BlockHash([1; 32]), BlockHash([2; 32]), BlockHash([3; 32]));
        s.relayed(a);
        s.relayed(b);
        s.relayed(c);
        assert!(matches!(s.serve(1, a), Serve::Refuse(_)), "forgotten");
        assert_eq!(s.serve(1, b), Serve::Yes);
        assert_eq!(s.serve(1, b), Serve::Yes);
        assert_eq!(s.serve(2, b), Serve::Yes, "counted per peer");
        assert!(matches!(s.serve(1, b), Serve::Refuse(_)));
        assert!(matches!(s.serve(1, c), Serve::Yes));
        assert!(matches!(s.serve(1, a), Serve::Ban(_)), "third strike");
    }
}
