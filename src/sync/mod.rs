//! Block acquisition: every request the node makes of its peers, in one component with no I/O
//! and no clock, in the shape of iroh-gossip's `proto` module. [`Sync::handle`] takes an
//! [`Event`], the time and a read-only view of the chain, and returns the [`Action`]s to take:
//! requests to send, batches of blocks to apply, bans, and the instant to be woken at. The
//! node (`node/fetch.rs`) carries them out and reports back; it keeps no download state of
//! its own. The seeded simulator (`tests/sim`) drives this same component.
//!
//! How the node gets blocks, in order:
//! 1. **Status.** Every peer is asked for its status when it connects and every
//!    [`SyncConfig::status_interval`]; its mempool once, when it connects. A peer on another
//!    chain is banned.
//! 2. **Headers first.** When a peer claims more work than ours (or gossips a block whose parent
//!    we lack), its header chain is fetched, 2 000 headers a request, from a locator of ours,
//!    and each header is checked ([`crate::chain::headers::HeaderChain`]: link, height, proof
//!    of work against the retargeted bits, timestamps) before any body is asked for. The
//!    checked run lives here, not in the block index: a run that cannot beat our chain never
//!    enters it, and one longer than [`SyncConfig::max_headers`] that still does not beat it
//!    is dropped (module `headers`).
//! 3. **Bodies from every peer.** Once the run has more work than our chain, its bodies are
//!    fetched by hash in a moving window ([`SyncConfig::window`] heights past the first block
//!    not yet applied), [`SyncConfig::bodies_per_request`] a request and
//!    [`SyncConfig::requests_per_peer`] requests at a time, from every peer that claims the
//!    work of those blocks. A peer that answers sooner is asked again sooner, so a slow peer
//!    gets less. A peer holding the window's first block past the stall timeout loses all it
//!    was asked and gets no more of this run (module `bodies`).
//! 4. **Applied in order.** Received bodies are handed to the node in batches, in height
//!    order, one batch at a time; the node validates them off its actor while the next ones
//!    download ([`apply`] holds the code both the node and the simulator run).
//!
//! 5. **Compact blocks** ([`compact`]): a gossiped compact block that the mempool cannot
//!    complete asks its sender for the missing transfers (`GetBlockTxs`), then for the full
//!    block, each with a deadline; a state machine of the same shape, beside this one.
//!
//! Penalties: a peer is banned when it serves headers that do not connect or break a header
//! rule, a body that is not the block asked for, an invalid block, an undecodable answer or the
//! wrong kind of answer, or claims more work than it can serve. A timeout, a refusal or a
//! failed stream is no fault: the peer is not asked again before a backoff that doubles with
//! each consecutive failure.

pub mod apply;
mod bodies;
pub mod compact;
mod headers;
pub mod serve;
mod types;

pub use types::*;

use crate::chain::headers::HeaderChain;
use crate::chain::{BlockHash, ChainState};
use crate::net::protocol::{self, Status};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// What we know of one connected peer.
#[derive(Clone, Debug, Default)]
struct PeerState {
    /// Its last status.
    claim: Option<Status>,
    /// Consecutive failed requests of headers or bodies.
    strikes: u32,
    /// Not asked for headers or bodies before this.
    not_before: Option<Instant>,
    /// Banned: ignored until it disconnects.
    banned: bool,
    /// It answered a bodies request of the current run with nothing: it is on another branch.
    lacks_run: bool,
    /// It held the window's first block past the stall timeout: no more bodies of this run.
    stalled: bool,
}

/// What a request in flight asked.
#[derive(Clone, Debug)]
enum Kind {
    Status,
    Headers {
        /// The locator sent: the answer's first header must build on one of these.
        locator: Vec<BlockHash>,
        /// The work the peer claimed when we asked. Its answer reflects its chain when it
        /// answered, so it must reach this much; a status that arrived after we asked may
        /// claim more than the answer, as the two travel apart.
        claimed: Option<u128>,
    },
    Bodies {
        /// The heights asked, in order.
        heights: Vec<u64>,
        /// Their hashes.
        hashes: Vec<BlockHash>,
    },
    Mempool,
    Push,
}

#[derive(Clone, Debug)]
struct InFlight<P> {
    peer: P,
    kind: Kind,
    sent: Instant,
    deadline: Instant,
}

/// The header run being downloaded, and where its bodies stand.
struct Run<P> {
    /// Names the run, so that a batch of an earlier one is told apart.
    id: u64,
    /// The checked headers past a block of our chain.
    headers: HeaderChain,
    /// The peer its headers come from, while one does.
    source: Option<P>,
    /// The last headers answer was full: the source may have more.
    more: bool,
    /// First height not yet handed to the node.
    next_hand: u64,
    /// Heights of the window asked or received (absent: missing).
    slots: BTreeMap<u64, Slot<P>>,
    /// Bytes of received bodies not yet handed over.
    held_bytes: usize,
}

#[derive(Debug)]
enum Slot<P> {
    /// Asked by this request.
    Asked(Tag),
    /// Received from this peer.
    Got(Box<Body>, P),
}

/// The batch the node is applying.
#[derive(Debug)]
struct Applying<P> {
    id: BatchId,
    /// The run it belongs to.
    run: u64,
    /// Height and sender of each of its blocks.
    from: Vec<(u64, P)>,
}

/// Block acquisition for one node; see the module doc.
pub struct Sync<P> {
    config: SyncConfig,
    peers: BTreeMap<P, PeerState>,
    in_flight: HashMap<Tag, InFlight<P>>,
    run: Option<Run<P>>,
    applying: Option<Applying<P>>,
    /// The stall timeout now (it grows when it fires, shrinks as blocks arrive).
    stall_timeout: Duration,
    next_tag: Tag,
    next_batch: BatchId,
    next_run: u64,
    next_status: Option<Instant>,
    /// The stalled bodies request for which the other peers were last asked their status.
    stall_probe: Option<Tag>,
    stats: SyncStats,
}

impl<P: Copy + Ord + Debug> Sync<P> {
    /// A component with no peers yet.
    pub fn new(config: SyncConfig) -> Self {
        Self {
            stall_timeout: config.stall_timeout,
            config,
            peers: BTreeMap::new(),
            in_flight: HashMap::new(),
            run: None,
            applying: None,
            next_tag: 0,
            next_batch: 0,
            next_run: 0,
            next_status: None,
            stall_probe: None,
            stats: SyncStats::default(),
        }
    }

    /// Connected peers, not banned.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.iter().filter(|(_, s)| !s.banned).map(|(p, _)| p)
    }

    /// A peer's last status.
    pub fn claim(&self, peer: &P) -> Option<Status> {
        self.peers.get(peer).and_then(|s| s.claim)
    }

    /// Whether blocks are being downloaded or applied.
    pub fn is_syncing(&self) -> bool {
        self.applying.is_some()
            || self
                .run
                .as_ref()
                .is_some_and(|r| !r.headers.is_empty() || r.more)
            || self
                .in_flight
                .values()
                .any(|f| matches!(f.kind, Kind::Headers { .. }))
    }

    /// The height of the checked header run's end, if a download is under way.
    pub fn headers_height(&self) -> Option<u64> {
        self.run.as_ref().map(|r| r.headers.last_height())
    }

    /// What request `tag` asked of whom, while it is in flight (an answer to anything else is
    /// late or was never asked for).
    pub fn request_of(&self, tag: Tag) -> Option<(P, RequestKind)> {
        self.in_flight.get(&tag).map(|f| {
            let kind = match f.kind {
                Kind::Status => RequestKind::Status,
                Kind::Headers { .. } => RequestKind::Headers,
                Kind::Bodies { .. } => RequestKind::Bodies,
                Kind::Mempool => RequestKind::Mempool,
                Kind::Push => RequestKind::Push,
            };
            (f.peer, kind)
        })
    }

    /// Bodies requests in flight and the block hashes they ask, for checks that no block is
    /// asked twice at once.
    pub fn bodies_in_flight(&self) -> Vec<(P, Vec<BlockHash>)> {
        self.in_flight
            .values()
            .filter_map(|f| match &f.kind {
                Kind::Bodies { hashes, .. } => Some((f.peer, hashes.clone())),
                _ => None,
            })
            .collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// The earliest deadline, stall check, backoff end or status round after `now`: when the
    /// component wants to be woken ([`Action::WakeAt`] carries it after every event).
    pub fn next_wakeup_after(&self, now: Instant) -> Option<Instant> {
        let deadlines = self.in_flight.values().map(|f| f.deadline);
        let cooldowns = self.peers.values().filter_map(|s| s.not_before);
        deadlines
            .chain(cooldowns)
            .chain(self.next_status)
            .chain(self.stall_check())
            .chain(self.headers_stall_check())
            .filter(|t| *t > now)
            .min()
    }

    /// Takes one event; returns what to do, in order.
    pub fn handle(&mut self, event: Event<P>, now: Now, chain: &ChainState) -> Vec<Action<P>> {
        let mut out = Vec::new();
        match event {
            Event::Connected(peer) => {
                self.peers.entry(peer).or_default();
                self.request(peer, Kind::Status, Req::Status, now.mono, &mut out);
                self.request(peer, Kind::Mempool, Req::GetMempool, now.mono, &mut out);
            }
            Event::Disconnected(peer) => {
                self.peers.remove(&peer);
                self.forget_requests_of(peer);
            }
            Event::Status { peer, tag, status } => {
                if let Some(tag) = tag
                    && self
                        .take(peer, tag, |k| matches!(k, Kind::Status))
                        .is_none()
                {
                    return self.finish(now, chain, out);
                }
                self.on_status(peer, status, &mut out);
            }
            Event::Headers { peer, tag, headers } => {
                self.on_headers(peer, tag, headers, now, chain, &mut out)
            }
            Event::Bodies { peer, tag, blocks } => self.on_bodies(peer, tag, blocks, now, &mut out),
            Event::Answered { peer, tag } => {
                let ours = self.take(peer, tag, |k| matches!(k, Kind::Mempool | Kind::Push));
                if ours.is_none() && self.in_flight.get(&tag).is_some_and(|f| f.peer == peer) {
                    self.in_flight.remove(&tag);
                    self.ban(peer, "answered with the wrong kind of response", &mut out);
                }
            }
            Event::Failed { peer, tag, failure } => {
                self.on_failed(peer, tag, failure, now.mono, &mut out)
            }
            Event::Applied { batch, result } => self.on_applied(batch, result, now, &mut out),
            Event::Orphan(peer) => {
                if !self.asking_headers() && self.choosable(&peer, now.mono) {
                    self.ask_headers(peer, now.mono, chain, &mut out);
                }
                if !self
                    .in_flight
                    .values()
                    .any(|f| f.peer == peer && matches!(f.kind, Kind::Status))
                {
                    self.request(peer, Kind::Status, Req::Status, now.mono, &mut out);
                }
            }
            Event::Push(txs) => {
                let txs = std::sync::Arc::new(txs);
                let peers: Vec<P> = self.peers().copied().collect();
                for peer in peers {
                    let req = Req::Transactions(txs.clone());
                    self.request(peer, Kind::Push, req, now.mono, &mut out);
                }
            }
            Event::Timer => {}
            Event::SyncNow => self.ask_statuses(now.mono, &mut out),
        }
        self.finish(now, chain, out)
    }

    /// Deadlines, stalls, periodic statuses, the next requests and batch, and the wake-up,
    /// after every event.
    fn finish(&mut self, now: Now, chain: &ChainState, mut out: Vec<Action<P>>) -> Vec<Action<P>> {
        self.expire(now.mono, &mut out);
        match self.next_status {
            None => self.next_status = Some(now.mono + self.config.status_interval),
            Some(t) if t <= now.mono => self.ask_statuses(now.mono, &mut out),
            Some(_) => {}
        }
        self.pump_headers(now.mono, chain, &mut out);
        self.pump_bodies(now.mono, chain, &mut out);
        self.pump_apply(&mut out);
        // Only instants still ahead: a stall check that could not fire (no other peer to ask)
        // is looked at again with the next event, not in a busy loop.
        if let Some(at) = self.next_wakeup_after(now.mono) {
            out.push(Action::WakeAt(at));
        }
        out
    }

    fn ask_statuses(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        self.next_status = Some(now + self.config.status_interval);
        let peers: Vec<P> = self.peers().copied().collect();
        for peer in peers {
            self.request(peer, Kind::Status, Req::Status, now, out);
        }
    }

    fn request(&mut self, peer: P, kind: Kind, req: Req, now: Instant, out: &mut Vec<Action<P>>) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let timeout = match kind {
            Kind::Bodies { .. } => {
                self.stats.bodies_requested += 1;
                self.config.bodies_timeout
            }
            Kind::Headers { .. } => {
                self.stats.headers_requested += 1;
                self.config.request_timeout
            }
            _ => self.config.request_timeout,
        };
        self.in_flight.insert(
            tag,
            InFlight {
                peer,
                kind,
                sent: now,
                deadline: now + timeout,
            },
        );
        out.push(Action::Request { peer, tag, req });
    }

    /// Takes the answered request off the books if `peer` was asked it and `fits` its kind;
    /// `None` (counted as ignored) if it was not ours: late, unknown, from someone else, or
    /// of another kind (the caller decides what a wrong kind means).
    fn take(&mut self, peer: P, tag: Tag, fits: impl Fn(&Kind) -> bool) -> Option<InFlight<P>> {
        match self.in_flight.get(&tag) {
            Some(f) if f.peer == peer && fits(&f.kind) => self.in_flight.remove(&tag),
            _ => {
                self.stats.ignored += 1;
                None
            }
        }
    }

    /// Handles an answer whose kind does not match the request: the request is dropped and
    /// the peer banned. Returns whether it was so.
    fn wrong_kind(&mut self, peer: P, tag: Tag, out: &mut Vec<Action<P>>) -> bool {
        if self.in_flight.get(&tag).is_some_and(|f| f.peer == peer) {
            if let Some(f) = self.in_flight.remove(&tag) {
                self.release(&f);
            }
            self.ban(peer, "answered with the wrong kind of response", out);
            return true;
        }
        false
    }

    fn on_status(&mut self, peer: P, status: Status, out: &mut Vec<Action<P>>) {
        if status.chain_id != self.config.chain_id {
            let reason = format!("on another chain ({})", status.chain_id.short());
            return self.ban(peer, &reason, out);
        }
        if let Some(s) = self.peers.get_mut(&peer)
            && !s.banned
        {
            // A peer that lacked the run's blocks may hold them once its tip moved (it was
            // on another branch, or behind, when it answered with nothing).
            if s.claim.is_some_and(|c| c.tip != status.tip) {
                s.lacks_run = false;
            }
            s.claim = Some(status);
        }
    }

    fn on_failed(
        &mut self,
        peer: P,
        tag: Tag,
        failure: Failure,
        now: Instant,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(f) = self.take(peer, tag, |_| true) else {
            return;
        };
        self.release(&f);
        match failure {
            Failure::Malformed(reason) => {
                self.ban(peer, &format!("sent a malformed answer: {reason}"), out)
            }
            _ if matches!(f.kind, Kind::Headers { .. } | Kind::Bodies { .. }) => {
                self.stats.failures += 1;
                self.strike(peer, now);
            }
            _ => {}
        }
    }

    /// What a request leaves behind when it ends unanswered: its heights become missing, its
    /// headers source is free.
    fn release(&mut self, f: &InFlight<P>) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        match &f.kind {
            Kind::Bodies { heights, .. } => {
                for h in heights {
                    if matches!(run.slots.get(h), Some(Slot::Asked(_))) {
                        run.slots.remove(h);
                    }
                }
            }
            Kind::Headers { .. } if run.source == Some(f.peer) => run.source = None,
            _ => {}
        }
    }

    /// Drops every request to `peer` (disconnected or banned).
    fn forget_requests_of(&mut self, peer: P) {
        let tags: Vec<Tag> = (self.in_flight.iter())
            .filter(|(_, f)| f.peer == peer)
            .map(|(t, _)| *t)
            .collect();
        for tag in tags {
            if let Some(f) = self.in_flight.remove(&tag) {
                self.release(&f);
            }
        }
        if let Some(run) = self.run.as_mut()
            && run.source == Some(peer)
        {
            run.source = None;
        }
    }

    /// Backs a peer off after a failed request of headers or bodies.
    fn strike(&mut self, peer: P, now: Instant) {
        if let Some(s) = self.peers.get_mut(&peer) {
            let wait = self
                .config
                .retry_min
                .saturating_mul(1 << s.strikes.min(16))
                .min(self.config.retry_max);
            s.strikes += 1;
            s.not_before = Some(now + wait);
        }
    }

    fn ban(&mut self, peer: P, reason: &str, out: &mut Vec<Action<P>>) {
        let Some(s) = self.peers.get_mut(&peer) else {
            return;
        };
        if s.banned {
            return;
        }
        s.banned = true;
        s.claim = None;
        self.stats.bans += 1;
        self.forget_requests_of(peer);
        out.push(Action::Ban {
            peer,
            reason: reason.to_string(),
        });
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        let late: Vec<Tag> = (self.in_flight.iter())
            .filter(|(_, f)| f.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for tag in late {
            let Some(f) = self.in_flight.remove(&tag) else {
                continue;
            };
            self.stats.timeouts += 1;
            self.release(&f);
            if matches!(f.kind, Kind::Headers { .. } | Kind::Bodies { .. }) {
                self.strike(f.peer, now);
            }
        }
        for s in self.peers.values_mut() {
            if s.not_before.is_some_and(|t| t <= now) {
                s.not_before = None;
            }
        }
        self.check_stall(now, out);
        self.check_headers_stall(now);
    }

    fn choosable(&self, peer: &P, now: Instant) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|s| !s.banned && s.not_before.is_none_or(|t| t <= now))
    }

    /// Our chain's locator, or one that starts at `from` (the end of the header run) and
    /// goes on with ours.
    fn locator(chain: &ChainState, from: Option<BlockHash>) -> Vec<BlockHash> {
        let ours = serve::locator_from(chain, chain.tip());
        match from {
            Some(h) if h != chain.tip() => {
                let mut out = vec![h];
                out.extend(ours);
                out.truncate(protocol::MAX_LOCATOR);
                out
            }
            _ => ours,
        }
    }
}

/// What a request in flight asks, for the node routing an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A status.
    Status,
    /// Headers.
    Headers,
    /// Bodies.
    Bodies,
    /// A peer's mempool.
    Mempool,
    /// Transfers we pushed.
    Push,
}

#[cfg(test)]
mod tests;
