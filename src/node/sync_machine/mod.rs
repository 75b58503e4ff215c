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

use crate::chain::BlockHash;
use crate::net::protocol::Status;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::time::Instant;

mod types;

pub use types::*;
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
mod tests;
