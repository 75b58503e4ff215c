//! Sync policy as a state machine without I/O, in the shape of iroh-gossip's `proto` module:
//! [`SyncMachine::handle`] takes an [`Event`] and the current time and returns the [`Action`]s
//! to take. It never reads a clock, never touches the swarm and never sees a block: the node
//! turns network answers into events, carries out the actions (requests, bans, applying a page
//! to the chain) and reports back what happened. So every sync decision can be tested by a
//! seeded simulator without sockets (`tests/sync_sim.rs`).
//!
//! The rules:
//! - Every connected peer is asked for its status when it connects and every
//!   [`SyncConfig::status_interval`]. A peer on another chain is banned.
//! - One download at a time, from the peer that claims the most work above ours (a gossiped
//!   orphan also starts one from its sender). A download is a series of `GetBlocks` pages, each
//!   starting after the last block of the one before (its *range* is named by that start hash).
//! - The pipeline: when a page arrives its successor is requested at once, while the node
//!   validates the page; at most [`SyncConfig::pipeline`] received pages wait to be applied,
//!   and they are applied one at a time, in order.
//! - Every request has a deadline. A page that misses it, a refusal, a failed or unsent request
//!   and a disconnect end the download with that peer; it is not chosen again before a backoff
//!   (doubling per consecutive failure) and the download resumes from the next peer that is
//!   ahead, from where it stopped. Answers that come after their deadline are ignored.
//! - Never two requests in flight for one range.
//! - A peer that serves an invalid or malformed page, claims work it cannot serve, or answers
//!   with the wrong kind of response is banned.

use crate::chain::{BlockHash, ChainId};
use crate::net::protocol::Status;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Names one request; answers and failures carry it back.
pub type Tag = u64;

/// The policy's knobs.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Peers with another genesis are banned.
    pub chain_id: ChainId,
    /// Deadline of a status or mempool request.
    pub request_timeout: Duration,
    /// Deadline of a page of blocks (serving and sending up to 4 MiB).
    pub page_timeout: Duration,
    /// How often every peer is asked for its status.
    pub status_interval: Duration,
    /// Pages received but not yet applied, at most; the next page is requested only below it.
    pub pipeline: usize,
    /// Wait before a peer whose download failed is chosen again, after its first failure.
    pub retry_min: Duration,
    /// Longest such wait (it doubles with each consecutive failure).
    pub retry_max: Duration,
}

impl SyncConfig {
    /// Defaults for a chain.
    pub fn new(chain_id: ChainId) -> Self {
        Self {
            chain_id,
            request_timeout: Duration::from_secs(10),
            page_timeout: Duration::from_secs(15),
            status_interval: Duration::from_secs(15),
            pipeline: 2,
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
        }
    }
}

/// Our best tip, as the machine needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
    /// Cumulative work of the best chain.
    pub work: u128,
}

/// A request the node is to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// Our status, asking for theirs.
    Status,
    /// The best-chain blocks after `from` (which our chain holds or a received page ends with):
    /// the node sends a locator that starts at `from`.
    GetBlocks {
        /// The range's start.
        from: BlockHash,
    },
    /// Their pending transfers.
    GetMempool,
}

/// Why a request brought no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The network could not queue it.
    NotSent,
    /// The transport failed (connection closed, stream reset, timeout below us).
    Io(String),
    /// The peer answered `Refused`.
    Refused(String),
    /// The answer could not be decoded (a malformed block in a page): the peer is banned.
    Malformed(String),
}

/// The last block of a received page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageEnd {
    /// Its hash: the next page starts after it.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
}

/// What applying a page to the chain did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageResult {
    /// Every block was valid.
    Applied {
        /// Blocks new to us.
        new: usize,
        /// Blocks we had already.
        known: usize,
    },
    /// A block broke a rule, or the page does not connect: the sender is banned.
    Invalid(String),
    /// A block cannot be accepted yet (a timestamp ahead of our clock): the download stops
    /// without blame and resumes later.
    Paused(String),
}

/// What the node tells the machine.
#[derive(Clone, Debug)]
pub enum Event<P> {
    /// A peer's first connection opened.
    Connected(P),
    /// A peer's last connection closed.
    Disconnected(P),
    /// A peer's status: the answer to our request `tag`, or (`tag: None`) its own request.
    Status {
        /// Who.
        peer: P,
        /// The request it answers, if any.
        tag: Option<Tag>,
        /// What it claims.
        status: Status,
    },
    /// A page of blocks answering `tag` arrived (decoded, not yet validated); the node holds
    /// it until an [`Action::Apply`] or [`Action::Discard`] names the tag.
    Page {
        /// Who sent it.
        peer: P,
        /// The request it answers.
        tag: Tag,
        /// Blocks in it.
        blocks: usize,
        /// Its last block, if it is not empty.
        last: Option<PageEnd>,
    },
    /// A peer answered our mempool request.
    Mempool {
        /// Who.
        peer: P,
        /// The request.
        tag: Tag,
    },
    /// Request `tag` brought no usable answer.
    Failed {
        /// To whom it went.
        peer: P,
        /// The request.
        tag: Tag,
        /// Why.
        failure: Failure,
    },
    /// The node applied the page of `tag` (after an [`Action::Apply`]). Report a tip change
    /// with [`Event::LocalTip`] before this.
    PageApplied {
        /// The page.
        tag: Tag,
        /// What came of it.
        result: PageResult,
    },
    /// Gossip brought a block whose parent we lack: this peer has blocks we do not.
    Orphan(P),
    /// Our best tip changed.
    LocalTip(Tip),
    /// Time passed: deadlines and periodic status requests are checked (call it every second or
    /// so; any event checks them too).
    Tick,
    /// Ask every peer for its status now.
    SyncNow,
}

/// What the machine asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send `req` to `peer`; report its answer or failure with `tag`.
    Request {
        /// To whom.
        peer: P,
        /// Its tag.
        tag: Tag,
        /// What.
        req: Req,
    },
    /// Validate and apply the held page of `tag` (pages come in order, one at a time), then
    /// report [`Event::PageApplied`].
    Apply {
        /// The page.
        tag: Tag,
    },
    /// Drop the held page of `tag` unapplied (its download was abandoned).
    Discard {
        /// The page.
        tag: Tag,
    },
    /// Disconnect and ban `peer`.
    Ban {
        /// Who.
        peer: P,
        /// Why, for the log.
        reason: String,
    },
}

/// Counters, for logs, tests and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Pages requested.
    pub pages_requested: u64,
    /// Pages applied.
    pub pages_applied: u64,
    /// Requests whose deadline passed.
    pub timeouts: u64,
    /// Downloads ended by a refusal, a failure or a disconnect.
    pub failures: u64,
    /// Bans asked for.
    pub bans: u64,
    /// Answers ignored because they came late or were never asked for.
    pub ignored: u64,
}

/// What we know of one connected peer.
#[derive(Clone, Debug, Default)]
struct PeerState {
    /// Its last status.
    claim: Option<Status>,
    /// Consecutive failed downloads.
    strikes: u32,
    /// Not chosen for a download before this.
    not_before: Option<Instant>,
    /// Banned: ignored until it disconnects.
    banned: bool,
}

/// What a request in flight asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Status,
    Page { from: BlockHash },
    Mempool,
}

#[derive(Clone, Debug)]
struct InFlight<P> {
    peer: P,
    kind: Kind,
    deadline: Instant,
}

/// A received page waiting for (or under) application.
#[derive(Clone, Debug)]
struct Held<P> {
    tag: Tag,
    peer: P,
    end: PageEnd,
}

/// The current download.
#[derive(Clone, Debug)]
struct Download<P> {
    peer: P,
    /// Started by an orphan from a peer whose claim we do not know: one page is asked anyway.
    hinted: bool,
}

/// The sync policy of one node; see the module doc.
#[derive(Debug)]
pub struct SyncMachine<P> {
    config: SyncConfig,
    tip: Tip,
    peers: BTreeMap<P, PeerState>,
    in_flight: BTreeMap<Tag, InFlight<P>>,
    /// Received pages in order; the first is being applied when `applying` is set.
    held: VecDeque<Held<P>>,
    applying: bool,
    download: Option<Download<P>>,
    next_tag: Tag,
    next_status: Option<Instant>,
    stats: SyncStats,
}

impl<P: Copy + Ord + Debug> SyncMachine<P> {
    /// A machine for a node whose best tip is `tip`.
    pub fn new(config: SyncConfig, tip: Tip) -> Self {
        Self {
            config,
            tip,
            peers: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            held: VecDeque::new(),
            applying: false,
            download: None,
            next_tag: 0,
            next_status: None,
            stats: SyncStats::default(),
        }
    }

    /// A tag the machine will never use, for the node's own requests (transfers it pushes).
    pub fn reserve_tag(&mut self) -> Tag {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    /// Connected peers, not banned.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.iter().filter(|(_, s)| !s.banned).map(|(p, _)| p)
    }

    /// A peer's last status.
    pub fn claim(&self, peer: &P) -> Option<Status> {
        self.peers.get(peer).and_then(|s| s.claim)
    }

    /// The peer we download from, if any.
    pub fn downloading_from(&self) -> Option<P> {
        self.download.as_ref().map(|d| d.peer)
    }

    /// Whether a download is in progress (requested or received pages not yet applied).
    pub fn is_syncing(&self) -> bool {
        self.download.is_some() || !self.held.is_empty()
    }

    /// The start hashes of the pages in flight, for checks that no range is asked twice.
    pub fn ranges_in_flight(&self) -> Vec<BlockHash> {
        self.in_flight
            .values()
            .filter_map(|f| match f.kind {
                Kind::Page { from } => Some(from),
                _ => None,
            })
            .collect()
    }

    /// What request `tag` asked of whom, while it is in flight (an answer to anything else is
    /// late or was never asked for).
    pub fn request_of(&self, tag: Tag) -> Option<(P, Req)> {
        self.in_flight.get(&tag).map(|f| {
            let req = match f.kind {
                Kind::Status => Req::Status,
                Kind::Mempool => Req::GetMempool,
                Kind::Page { from } => Req::GetBlocks { from },
            };
            (f.peer, req)
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// The earliest deadline or periodic check, so a caller can sleep until then.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let deadlines = self.in_flight.values().map(|f| f.deadline);
        let cooldowns = self.peers.values().filter_map(|s| s.not_before);
        deadlines.chain(cooldowns).chain(self.next_status).min()
    }

    /// Takes one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, event: Event<P>, now: Instant) -> Vec<Action<P>> {
        let mut out = Vec::new();
        match event {
            Event::Connected(peer) => {
                self.peers.entry(peer).or_default();
                self.request(peer, Kind::Status, now, &mut out);
                self.request(peer, Kind::Mempool, now, &mut out);
            }
            Event::Disconnected(peer) => {
                self.peers.remove(&peer);
                self.in_flight.retain(|_, f| f.peer != peer);
                if self.downloading_from() == Some(peer) {
                    self.stats.failures += 1;
                    self.download = None;
                }
            }
            Event::Status { peer, tag, status } => {
                if let Some(tag) = tag
                    && !self.answered(peer, tag, Kind::Status, &mut out)
                {
                    return self.finish(now, out);
                }
                self.on_status(peer, status, &mut out);
            }
            Event::Page {
                peer,
                tag,
                blocks,
                last,
            } => self.on_page(peer, tag, blocks, last, now, &mut out),
            Event::Mempool { peer, tag } => {
                self.answered(peer, tag, Kind::Mempool, &mut out);
            }
            Event::Failed { peer, tag, failure } => {
                self.on_failed(peer, tag, failure, now, &mut out)
            }
            Event::PageApplied { tag, result } => self.on_applied(tag, result, now, &mut out),
            Event::Orphan(peer) => {
                if self.download.is_none() && self.choosable(&peer, now) {
                    self.download = Some(Download { peer, hinted: true });
                }
                if !self
                    .in_flight
                    .values()
                    .any(|f| f.peer == peer && f.kind == Kind::Status)
                {
                    self.request(peer, Kind::Status, now, &mut out);
                }
            }
            Event::LocalTip(tip) => self.tip = tip,
            Event::Tick => {}
            Event::SyncNow => self.ask_statuses(now, &mut out),
        }
        self.finish(now, out)
    }

    /// Deadlines, periodic statuses and the next request, after every event.
    fn finish(&mut self, now: Instant, mut out: Vec<Action<P>>) -> Vec<Action<P>> {
        self.expire(now);
        match self.next_status {
            None => self.next_status = Some(now + self.config.status_interval),
            Some(t) if t <= now => self.ask_statuses(now, &mut out),
            Some(_) => {}
        }
        self.pump(now, &mut out);
        out
    }

    fn ask_statuses(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        self.next_status = Some(now + self.config.status_interval);
        let peers: Vec<P> = self.peers().copied().collect();
        for peer in peers {
            self.request(peer, Kind::Status, now, out);
        }
    }

    fn request(&mut self, peer: P, kind: Kind, now: Instant, out: &mut Vec<Action<P>>) {
        let tag = self.reserve_tag();
        let (req, timeout) = match kind {
            Kind::Status => (Req::Status, self.config.request_timeout),
            Kind::Mempool => (Req::GetMempool, self.config.request_timeout),
            Kind::Page { from } => {
                self.stats.pages_requested += 1;
                (Req::GetBlocks { from }, self.config.page_timeout)
            }
        };
        self.in_flight.insert(
            tag,
            InFlight {
                peer,
                kind,
                deadline: now + timeout,
            },
        );
        out.push(Action::Request { peer, tag, req });
    }

    /// Takes the answered request off the books; false if it was not ours (late, unknown,
    /// from someone else). A peer answering with the wrong kind of response is banned.
    fn answered(&mut self, peer: P, tag: Tag, got: Kind, out: &mut Vec<Action<P>>) -> bool {
        match self.in_flight.get(&tag) {
            Some(f) if f.peer == peer => {
                let asked = f.kind;
                self.in_flight.remove(&tag);
                let same = matches!(
                    (asked, got),
                    (Kind::Status, Kind::Status)
                        | (Kind::Mempool, Kind::Mempool)
                        | (Kind::Page { .. }, Kind::Page { .. })
                );
                if !same {
                    self.ban(peer, "answered with the wrong kind of response", out);
                }
                same
            }
            _ => {
                self.stats.ignored += 1;
                false
            }
        }
    }

    fn on_status(&mut self, peer: P, status: Status, out: &mut Vec<Action<P>>) {
        if status.chain_id != self.config.chain_id {
            let reason = format!("on another chain ({})", status.chain_id.short());
            return self.ban(peer, &reason, out);
        }
        if let Some(s) = self.peers.get_mut(&peer)
            && !s.banned
        {
            s.claim = Some(status);
        }
    }

    fn on_page(
        &mut self,
        peer: P,
        tag: Tag,
        blocks: usize,
        last: Option<PageEnd>,
        now: Instant,
        out: &mut Vec<Action<P>>,
    ) {
        let expected = self
            .in_flight
            .get(&tag)
            .is_some_and(|f| f.peer == peer && matches!(f.kind, Kind::Page { .. }));
        if !self.answered(
            peer,
            tag,
            Kind::Page {
                from: self.tip.hash,
            },
            out,
        ) {
            out.push(Action::Discard { tag });
            return;
        }
        debug_assert!(expected);
        let ours = self.downloading_from() == Some(peer);
        match last {
            Some(end) if blocks > 0 && ours => {
                self.held.push_back(Held { tag, peer, end });
            }
            Some(_) if blocks > 0 => {
                // The download moved on while this page was on its way (it cannot: pages are
                // asked only of the current download's peer, and a change drops them).
                self.stats.ignored += 1;
                out.push(Action::Discard { tag });
            }
            _ => {
                out.push(Action::Discard { tag });
                let claimed = self.claim(&peer).map_or(0, |s| s.work());
                let waiting = self.held.iter().any(|h| h.peer == peer);
                if claimed > self.tip.work && !waiting {
                    self.ban(peer, "claimed more work than it can serve", out);
                } else if waiting {
                    // It served nothing after a page it sent: the download ends (without
                    // blame: its chain may have changed); asking it again at once would only
                    // repeat the same answer while its pages wait to be applied.
                    self.drop_download(peer, now);
                } else if ours {
                    self.download = None;
                }
            }
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
        let Some(f) = self.in_flight.get(&tag) else {
            self.stats.ignored += 1;
            return;
        };
        if f.peer != peer {
            self.stats.ignored += 1;
            return;
        }
        let kind = f.kind;
        self.in_flight.remove(&tag);
        match failure {
            Failure::Malformed(reason) => {
                self.ban(peer, &format!("sent a malformed answer: {reason}"), out)
            }
            _ if matches!(kind, Kind::Page { .. }) => self.drop_download(peer, now),
            _ => {}
        }
    }

    fn on_applied(&mut self, tag: Tag, result: PageResult, now: Instant, out: &mut Vec<Action<P>>) {
        if !self.applying || self.held.front().map(|h| h.tag) != Some(tag) {
            self.stats.ignored += 1;
            return;
        }
        self.applying = false;
        let Some(page) = self.held.pop_front() else {
            return;
        };
        match result {
            PageResult::Applied { .. } => {
                self.stats.pages_applied += 1;
                if let Some(s) = self.peers.get_mut(&page.peer) {
                    s.strikes = 0;
                }
            }
            PageResult::Invalid(reason) => {
                self.discard_held(out);
                self.ban(page.peer, &format!("served an invalid page: {reason}"), out);
            }
            PageResult::Paused(_) => {
                // Later pages build on this one: they cannot be applied either.
                self.discard_held(out);
                self.drop_download(page.peer, now);
            }
        }
    }

    fn discard_held(&mut self, out: &mut Vec<Action<P>>) {
        for h in self.held.drain(..) {
            out.push(Action::Discard { tag: h.tag });
        }
        self.applying = false;
    }

    /// Ends the download with `peer` (if it is the one) and backs the peer off.
    fn drop_download(&mut self, peer: P, now: Instant) {
        self.stats.failures += 1;
        if let Some(s) = self.peers.get_mut(&peer) {
            let wait = self
                .config
                .retry_min
                .saturating_mul(1 << s.strikes.min(16))
                .min(self.config.retry_max);
            s.strikes += 1;
            s.not_before = Some(now + wait);
        }
        if self.downloading_from() == Some(peer) {
            self.download = None;
            // Pages still in flight from it would start ranges the next peer is asked for.
            self.in_flight
                .retain(|_, f| !(f.peer == peer && matches!(f.kind, Kind::Page { .. })));
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
        self.in_flight.retain(|_, f| f.peer != peer);
        if self.downloading_from() == Some(peer) {
            self.download = None;
        }
        out.push(Action::Ban {
            peer,
            reason: reason.to_string(),
        });
    }

    fn expire(&mut self, now: Instant) {
        let late: Vec<(Tag, P, Kind)> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(t, f)| (*t, f.peer, f.kind))
            .collect();
        for (tag, peer, kind) in late {
            self.in_flight.remove(&tag);
            self.stats.timeouts += 1;
            if matches!(kind, Kind::Page { .. }) {
                self.drop_download(peer, now);
            }
        }
        for s in self.peers.values_mut() {
            if s.not_before.is_some_and(|t| t <= now) {
                s.not_before = None;
            }
        }
    }

    fn choosable(&self, peer: &P, now: Instant) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|s| !s.banned && s.not_before.is_none_or(|t| t <= now))
    }

    /// Where the next page starts: after the last received page, or after our tip.
    fn frontier(&self) -> PageEnd {
        self.held.back().map_or(
            PageEnd {
                hash: self.tip.hash,
                height: self.tip.height,
            },
            |h| h.end,
        )
    }

    /// Starts the next application and the next request, if any is due.
    /// The request comes before the application, so that a node applying synchronously
    /// sends it first and the page travels while the node validates.
    fn pump(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        self.request_next(now, out);
        if !self.applying
            && let Some(h) = self.held.front()
        {
            self.applying = true;
            out.push(Action::Apply { tag: h.tag });
        }
    }

    fn request_next(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        if self.download.is_none() {
            let best = self
                .peers
                .iter()
                .filter(|(p, _)| self.choosable(p, now))
                .filter_map(|(p, s)| s.claim.map(|c| (*p, c.work())))
                .filter(|(_, w)| *w > self.tip.work)
                .max_by_key(|(_, w)| *w);
            if let Some((peer, _)) = best {
                self.download = Some(Download {
                    peer,
                    hinted: false,
                });
            }
        }
        let Some(download) = self.download.clone() else {
            return;
        };
        let peer = download.peer;
        let asking = self
            .in_flight
            .values()
            .any(|f| f.peer == peer && matches!(f.kind, Kind::Page { .. }));
        if asking || self.held.len() >= self.config.pipeline {
            return;
        }
        let frontier = self.frontier();
        let claim = self.claim(&peer);
        let more = match claim {
            Some(c) => {
                c.work() > self.tip.work && (self.held.is_empty() || frontier.height < c.height)
            }
            None => download.hinted && self.held.is_empty(),
        };
        if !more {
            if self.held.iter().all(|h| h.peer != peer) {
                self.download = None;
            }
            return;
        }
        if let Some(d) = self.download.as_mut() {
            d.hinted = false;
        }
        let kind = Kind::Page {
            from: frontier.hash,
        };
        debug_assert!(!self.in_flight.values().any(|f| f.kind == kind));
        if self.in_flight.values().any(|f| f.kind == kind) {
            return;
        }
        self.request(peer, kind, now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn hash(n: u8) -> BlockHash {
        BlockHash([n; 32])
    }

    fn config() -> SyncConfig {
        SyncConfig::new(BlockHash([7; 32]))
    }

    fn status(height: u64, work: u128) -> Status {
        Status::new(BlockHash([7; 32]), hash(height as u8), height, work)
    }

    fn machine() -> (SyncMachine<u32>, Instant) {
        let tip = Tip {
            hash: hash(0),
            height: 0,
            work: 1,
        };
        (SyncMachine::new(config(), tip), Instant::now())
    }

    /// The tags and targets of the page requests among `actions`.
    fn pages(actions: &[Action<u32>]) -> Vec<(u32, Tag, BlockHash)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Request {
                    peer,
                    tag,
                    req: Req::GetBlocks { from },
                } => Some((*peer, *tag, *from)),
                _ => None,
            })
            .collect()
    }

    /// Connects `peer` and has it claim `height` blocks of work `height + 1`; returns the
    /// actions of the status answer.
    fn connect(m: &mut SyncMachine<u32>, peer: u32, height: u64, now: Instant) -> Vec<Action<u32>> {
        let actions = m.handle(Event::Connected(peer), now);
        let tag = actions
            .iter()
            .find_map(|a| match a {
                Action::Request {
                    tag,
                    req: Req::Status,
                    ..
                } => Some(*tag),
                _ => None,
            })
            .expect("a status request on connect");
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Request {
                req: Req::GetMempool,
                ..
            }
        )));
        m.handle(
            Event::Status {
                peer,
                tag: Some(tag),
                status: status(height, height as u128 + 1),
            },
            now,
        )
    }

    #[test]
    fn downloads_from_the_peer_with_the_most_work() {
        let (mut m, t) = machine();
        assert!(pages(&connect(&mut m, 1, 10, t)).len() == 1);
        // A better peer does not start a second download.
        assert!(pages(&connect(&mut m, 2, 20, t)).is_empty());
        assert_eq!(m.downloading_from(), Some(1));
        assert!(m.is_syncing());
    }

    #[test]
    fn the_next_page_is_asked_before_the_received_one_is_applied() {
        let (mut m, t) = machine();
        let (_, tag, from) = pages(&connect(&mut m, 1, 1000, t))[0];
        assert_eq!(from, hash(0));
        let end = PageEnd {
            hash: hash(99),
            height: 512,
        };
        let actions = m.handle(
            Event::Page {
                peer: 1,
                tag,
                blocks: 512,
                last: Some(end),
            },
            t,
        );
        let next = pages(&actions);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].2, hash(99), "the next range starts after the page");
        let apply = actions
            .iter()
            .position(|a| *a == Action::Apply { tag })
            .unwrap();
        let request = actions
            .iter()
            .position(|a| matches!(a, Action::Request { .. }))
            .unwrap();
        assert!(request < apply, "{actions:?}");
        // The second page arrives while the first is being applied: held, not applied yet,
        // and no third request (two held pages fill the pipeline).
        let tag2 = next[0].1;
        let actions = m.handle(
            Event::Page {
                peer: 1,
                tag: tag2,
                blocks: 10,
                last: Some(PageEnd {
                    hash: hash(98),
                    height: 522,
                }),
            },
            t,
        );
        assert!(actions.is_empty(), "{actions:?}");
        m.handle(
            Event::LocalTip(Tip {
                hash: hash(99),
                height: 512,
                work: 513,
            }),
            t,
        );
        let actions = m.handle(
            Event::PageApplied {
                tag,
                result: PageResult::Applied { new: 512, known: 0 },
            },
            t,
        );
        assert_eq!(pages(&actions)[0].2, hash(98));
        assert!(actions.contains(&Action::Apply { tag: tag2 }));
        assert_eq!(m.stats().pages_applied, 1);
    }

    #[test]
    fn a_page_past_its_deadline_moves_the_download_to_another_peer_and_is_ignored_later() {
        let (mut m, t) = machine();
        let (_, tag, from) = pages(&connect(&mut m, 1, 10, t))[0];
        connect(&mut m, 2, 10, t);
        let actions = m.handle(Event::Tick, t + config().page_timeout);
        let retry = pages(&actions);
        assert_eq!(retry.len(), 1);
        assert_eq!((retry[0].0, retry[0].2), (2, from));
        // The page, and the two mempool requests nobody answered.
        assert_eq!(m.stats().timeouts, 3);
        let late = m.handle(
            Event::Page {
                peer: 1,
                tag,
                blocks: 3,
                last: Some(PageEnd {
                    hash: hash(3),
                    height: 3,
                }),
            },
            t + 16 * S,
        );
        assert_eq!(late, vec![Action::Discard { tag }]);
        assert_eq!(m.ranges_in_flight(), vec![from]);
    }

    #[test]
    fn refusal_failure_and_disconnect_each_move_the_download_on() {
        for case in 0..4 {
            let (mut m, t) = machine();
            let (_, tag, from) = pages(&connect(&mut m, 1, 10, t))[0];
            connect(&mut m, 2, 9, t);
            let event = match case {
                0 => Event::Failed {
                    peer: 1,
                    tag,
                    failure: Failure::Refused("rate limit".into()),
                },
                1 => Event::Failed {
                    peer: 1,
                    tag,
                    failure: Failure::NotSent,
                },
                2 => Event::Failed {
                    peer: 1,
                    tag,
                    failure: Failure::Io("connection reset".into()),
                },
                _ => Event::Disconnected(1),
            };
            let retry = pages(&m.handle(event, t));
            assert_eq!(retry, vec![(2, retry[0].1, from)], "case {case}");
            // Peer 1 is backed off: peer 2 failing too leaves nobody until the backoff ends.
            if case < 3 {
                let none = m.handle(
                    Event::Failed {
                        peer: 2,
                        tag: retry[0].1,
                        failure: Failure::NotSent,
                    },
                    t,
                );
                assert!(pages(&none).is_empty(), "case {case}: {none:?}");
                let again = pages(&m.handle(Event::Tick, t + config().retry_min));
                assert_eq!(again.len(), 1, "case {case}");
            }
        }
    }

    #[test]
    fn the_backoff_doubles_with_each_failure_of_a_peer() {
        let (mut m, mut t) = machine();
        pages(&connect(&mut m, 1, 10, t));
        let mut waits = Vec::new();
        for _ in 0..5 {
            let (_, tag, _) = *m
                .in_flight
                .iter()
                .filter(|(_, f)| matches!(f.kind, Kind::Page { .. }))
                .map(|(tag, f)| (f.peer, *tag, f.kind))
                .collect::<Vec<_>>()
                .first()
                .expect("a page in flight");
            m.handle(
                Event::Failed {
                    peer: 1,
                    tag,
                    failure: Failure::NotSent,
                },
                t,
            );
            let start = t;
            loop {
                t += Duration::from_millis(250);
                if !pages(&m.handle(Event::Tick, t)).is_empty() {
                    break;
                }
            }
            waits.push((t - start).as_secs());
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 32]);
    }

    #[test]
    fn lying_and_misbehaving_peers_are_banned() {
        // Claims more work but serves nothing.
        let (mut m, t) = machine();
        let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
        let a = m.handle(
            Event::Page {
                peer: 1,
                tag,
                blocks: 0,
                last: None,
            },
            t,
        );
        assert!(
            a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
            "{a:?}"
        );
        assert!(!m.is_syncing());
        // Another chain.
        let (mut m, t) = machine();
        m.handle(Event::Connected(1), t);
        let mut other = status(5, 6);
        other.chain_id = BlockHash([8; 32]);
        let a = m.handle(
            Event::Status {
                peer: 1,
                tag: None,
                status: other,
            },
            t,
        );
        assert!(matches!(&a[..], [Action::Ban { peer: 1, .. }]), "{a:?}");
        // Answers a page request with a status.
        let (mut m, t) = machine();
        let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
        let a = m.handle(
            Event::Status {
                peer: 1,
                tag: Some(tag),
                status: status(10, 11),
            },
            t,
        );
        assert!(
            a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
            "{a:?}"
        );
        // Serves a malformed page, or an invalid one: banned, the download moves on.
        for malformed in [true, false] {
            let (mut m, t) = machine();
            let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
            connect(&mut m, 2, 10, t);
            let a = if malformed {
                m.handle(
                    Event::Failed {
                        peer: 1,
                        tag,
                        failure: Failure::Malformed("a malformed block".into()),
                    },
                    t,
                )
            } else {
                let end = Some(PageEnd {
                    hash: hash(5),
                    height: 5,
                });
                let a = m.handle(
                    Event::Page {
                        peer: 1,
                        tag,
                        blocks: 5,
                        last: end,
                    },
                    t,
                );
                assert!(a.contains(&Action::Apply { tag }));
                m.handle(
                    Event::PageApplied {
                        tag,
                        result: PageResult::Invalid("bad proof of work".into()),
                    },
                    t,
                )
            };
            assert!(
                a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
                "{a:?}"
            );
            let next = pages(&a);
            assert_eq!(next.len(), 1, "{a:?}");
            assert_eq!((next[0].0, next[0].2), (2, hash(0)));
        }
    }

    #[test]
    fn a_paused_page_discards_the_pages_after_it_without_blame() {
        let (mut m, t) = machine();
        let (_, tag, _) = pages(&connect(&mut m, 1, 1000, t))[0];
        let end = |n: u8| {
            Some(PageEnd {
                hash: hash(n),
                height: n as u64 * 10,
            })
        };
        let a = m.handle(
            Event::Page {
                peer: 1,
                tag,
                blocks: 10,
                last: end(1),
            },
            t,
        );
        let tag2 = pages(&a)[0].1;
        m.handle(
            Event::Page {
                peer: 1,
                tag: tag2,
                blocks: 10,
                last: end(2),
            },
            t,
        );
        let a = m.handle(
            Event::PageApplied {
                tag,
                result: PageResult::Paused("timestamp too new".into()),
            },
            t,
        );
        assert!(a.contains(&Action::Discard { tag: tag2 }), "{a:?}");
        assert!(!a.iter().any(|a| matches!(a, Action::Ban { .. })));
        assert!(!m.is_syncing());
    }

    #[test]
    fn an_orphan_starts_a_download_from_its_sender() {
        let (mut m, t) = machine();
        m.handle(Event::Connected(3), t);
        let a = m.handle(Event::Orphan(3), t);
        assert_eq!(pages(&a).len(), 1, "{a:?}");
        assert_eq!(m.downloading_from(), Some(3));
    }

    #[test]
    fn statuses_are_asked_every_interval_and_on_demand() {
        let (mut m, t) = machine();
        m.handle(Event::Connected(1), t);
        m.handle(Event::Connected(2), t);
        let statuses = |a: &[Action<u32>]| {
            a.iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::Request {
                            req: Req::Status,
                            ..
                        }
                    )
                })
                .count()
        };
        assert_eq!(statuses(&m.handle(Event::Tick, t + S)), 0);
        assert_eq!(
            statuses(&m.handle(Event::Tick, t + config().status_interval)),
            2
        );
        assert_eq!(statuses(&m.handle(Event::SyncNow, t + 16 * S)), 2);
        assert!(m.next_wakeup().is_some());
    }
}
