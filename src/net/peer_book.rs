//! Peer policy in one place, without I/O: bans with expiry, the per-peer rate limit on inbound
//! sync requests, and when to dial again (`--peer` addresses and peers mDNS reports, each with
//! a backoff that doubles on every failed attempt; a `--peer` that has answered once is a
//! bootnode, redialled after a drop only while the node is short of peers). Time is an argument, so every rule is
//! tested here without a swarm; the event loop asks the book and does the dialling and
//! blocking itself.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The peer id an address names with `/p2p/`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// The policy's knobs.
#[derive(Clone, Debug)]
pub struct PeerBookConfig {
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Inbound sync requests a peer may send per second, sustained.
    pub requests_per_sec: f64,
    /// Inbound sync requests a peer may send in a burst.
    pub request_burst: f64,
    /// Requests over the rate limit a peer may send before it is banned for flooding.
    pub flood_strikes: u32,
    /// First wait before dialling a lost peer again.
    pub redial_min: Duration,
    /// Longest wait (the wait doubles after each failed attempt).
    pub redial_max: Duration,
    /// First wait before dialling again a peer mDNS reports but that is not connected.
    pub mdns_redial: Duration,
    /// Longest such wait: a LAN peer is cheap to try, and one that comes back after a long
    /// partition should be found within this.
    pub mdns_redial_max: Duration,
    /// A `--peer` connection that closes sooner than this counts as a failed attempt (the
    /// backoff goes on doubling): a full node that takes the connection and closes it at once
    /// is not dialled again every second.
    pub stable_after: Duration,
}

impl Default for PeerBookConfig {
    fn default() -> Self {
        Self {
            ban_duration: Duration::from_secs(600),
            requests_per_sec: 50.0,
            request_burst: 200.0,
            flood_strikes: 200,
            redial_min: Duration::from_secs(1),
            redial_max: Duration::from_secs(60),
            mdns_redial: Duration::from_secs(5),
            mdns_redial_max: Duration::from_secs(20),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// Whether an inbound request may be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Within the peer's rate.
    Serve,
    /// Over it: answer `Refused`.
    Refuse,
    /// Over it for too long: ban the peer (the caller bans it, by the event loop's one ban
    /// function, which records the ban here).
    Ban(String),
}

/// Token bucket for one peer's inbound requests.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Requests refused since the bucket was last full.
    strikes: u32,
}

/// When to try a peer or address again.
#[derive(Clone, Debug)]
struct Backoff {
    next_attempt: Instant,
    wait: Duration,
}

impl Backoff {
    fn new(now: Instant, first: Duration) -> Self {
        Self {
            next_attempt: now,
            wait: first,
        }
    }

    fn failed(&mut self, now: Instant, max: Duration) {
        self.next_attempt = now + self.wait;
        self.wait = (self.wait * 2).min(max);
    }
}

/// A `--peer` address kept connected.
#[derive(Clone, Debug)]
struct Bootstrap {
    addr: Multiaddr,
    /// The peer behind it, once known (or given with `/p2p/`).
    peer: Option<PeerId>,
    /// A dial is in flight.
    dialing: bool,
    /// It has been connected: the node has joined through it.
    joined: bool,
    /// When its current connection opened.
    since: Option<Instant>,
    backoff: Backoff,
}

/// A dial the event loop should start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDial {
    /// Index of the `--peer` entry (report the result with it).
    pub index: usize,
    /// Its address.
    pub addr: Multiaddr,
    /// The peer behind it, if known.
    pub peer: Option<PeerId>,
}

/// The book; see the module doc.
#[derive(Debug)]
pub struct PeerBook {
    config: PeerBookConfig,
    local: PeerId,
    /// Banned peers and when their ban ends.
    bans: HashMap<PeerId, Instant>,
    /// Rate limit state of connected peers.
    buckets: HashMap<PeerId, Bucket>,
    bootstrap: Vec<Bootstrap>,
    /// Backoff of peers mDNS reported, while they are not connected.
    mdns: HashMap<PeerId, Backoff>,
}

impl PeerBook {
    /// A book for the node `local`, keeping `bootstrap` addresses connected from `now` on.
    pub fn new(
        config: PeerBookConfig,
        local: PeerId,
        bootstrap: &[Multiaddr],
        now: Instant,
    ) -> Self {
        let first = config.redial_min;
        let bootstrap = bootstrap
            .iter()
            .map(|addr| Bootstrap {
                addr: addr.clone(),
                peer: peer_of(addr),
                dialing: false,
                joined: false,
                since: None,
                backoff: Backoff::new(now, first),
            })
            .collect();
        Self {
            config,
            local,
            bans: HashMap::new(),
            buckets: HashMap::new(),
            bootstrap,
            mdns: HashMap::new(),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &PeerBookConfig {
        &self.config
    }

    /// Bans `peer` from `now` for the ban duration; returns when it ends.
    pub fn ban(&mut self, peer: PeerId, now: Instant) -> Instant {
        let until = now + self.config.ban_duration;
        self.bans.insert(peer, until);
        self.buckets.remove(&peer);
        self.mdns.remove(&peer);
        until
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans.get(peer).is_some_and(|until| *until > now)
    }

    /// Number of peers banned at `now`.
    pub fn banned_count(&self, now: Instant) -> usize {
        self.bans.values().filter(|until| **until > now).count()
    }

    /// Forgets the bans that ended by `now` and returns those peers (to unblock them).
    pub fn expire_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let mut ended: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        ended.sort();
        for p in &ended {
            self.bans.remove(p);
        }
        ended
    }

    /// Whether an inbound request from `peer` at `now` fits its rate. A peer that keeps
    /// sending over it ([`PeerBookConfig::flood_strikes`] refusals without its bucket filling
    /// up again) is banned.
    pub fn admit_request(&mut self, peer: PeerId, now: Instant) -> Admission {
        let (rate, burst) = (self.config.requests_per_sec, self.config.request_burst);
        let b = self.buckets.entry(peer).or_insert(Bucket {
            tokens: burst,
            last: now,
            strikes: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            if b.tokens >= burst - 1.0 {
                b.strikes = 0;
            }
            return Admission::Serve;
        }
        b.strikes += 1;
        if b.strikes >= self.config.flood_strikes {
            return Admission::Ban(format!(
                "request flood: over {rate}/s with a burst of {burst}"
            ));
        }
        Admission::Refuse
    }

    /// `peer` connected at `now` (by whatever means): its mDNS backoff resets, and so do its
    /// `--peer` entries' once the connection has lasted [`PeerBookConfig::stable_after`].
    pub fn connected(&mut self, peer: PeerId, now: Instant) {
        self.mdns.remove(&peer);
        for b in &mut self.bootstrap {
            if b.peer == Some(peer) {
                b.joined = true;
                b.since.get_or_insert(now);
            }
        }
    }

    /// `peer`'s last connection closed at `now`: its `--peer` entries are redialled after
    /// their backoff, from its first wait if the connection was stable.
    pub fn disconnected(&mut self, peer: PeerId, now: Instant) {
        self.buckets.remove(&peer);
        let (min, max, stable) = (
            self.config.redial_min,
            self.config.redial_max,
            self.config.stable_after,
        );
        for b in &mut self.bootstrap {
            if b.peer != Some(peer) {
                continue;
            }
            if b.since
                .take()
                .is_some_and(|t| now.duration_since(t) >= stable)
            {
                b.backoff = Backoff::new(now, min);
            }
            if !b.dialing {
                b.backoff.failed(now, max);
            }
        }
    }

    /// The `--peer` dials to start at `now`: entries not connected (per `is_connected`), not
    /// being dialled, whose backoff has passed, and not ourselves; and, once an entry has been
    /// connected, only while the node is `short` of peers (below its target). A bootnode that
    /// everyone names is thus held only by the nodes that still need it: were every node to
    /// redial it after each drop, a full bootnode would spend its time closing one newcomer's
    /// connection for the next. Each is marked as dialling.
    pub fn due_bootstrap_dials(
        &mut self,
        now: Instant,
        short: bool,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<DueDial> {
        let mut out = Vec::new();
        for (index, b) in self.bootstrap.iter_mut().enumerate() {
            let connected = b.peer.as_ref().is_some_and(&is_connected);
            if connected
                || (b.joined && !short)
                || b.dialing
                || b.backoff.next_attempt > now
                || b.peer == Some(self.local)
                || b.peer
                    .is_some_and(|p| self.bans.get(&p).is_some_and(|u| *u > now))
            {
                continue;
            }
            b.dialing = true;
            out.push(DueDial {
                index,
                addr: b.addr.clone(),
                peer: b.peer,
            });
        }
        out
    }

    /// A `--peer` dial connected to `peer` at `now`.
    pub fn bootstrap_connected(&mut self, index: usize, peer: PeerId, now: Instant) {
        if let Some(b) = self.bootstrap.get_mut(index) {
            b.peer = Some(peer);
            b.dialing = false;
            b.joined = true;
            b.since.get_or_insert(now);
        }
    }

    /// A `--peer` dial failed (or could not start) at `now`: tried again after the backoff.
    pub fn bootstrap_failed(&mut self, index: usize, now: Instant) {
        let max = self.config.redial_max;
        if let Some(b) = self.bootstrap.get_mut(index) {
            b.dialing = false;
            b.backoff.failed(now, max);
        }
    }

    /// The address of a `--peer` entry, for logs.
    pub fn bootstrap_addr(&self, index: usize) -> Option<&Multiaddr> {
        self.bootstrap.get(index).map(|b| &b.addr)
    }

    /// Whether to dial `peer`, which mDNS reports and which is not connected, at `now`: not
    /// ourselves, not banned, and its backoff passed. A yes starts its next backoff: the
    /// wait doubles from [`PeerBookConfig::mdns_redial`] up to
    /// [`PeerBookConfig::mdns_redial_max`] while the peer stays unreachable, and resets when it
    /// connects.
    pub fn should_dial_mdns(&mut self, peer: PeerId, now: Instant) -> bool {
        if peer == self.local || self.is_banned(&peer, now) {
            return false;
        }
        let (first, max) = (self.config.mdns_redial, self.config.mdns_redial_max);
        let b = self
            .mdns
            .entry(peer)
            .or_insert_with(|| Backoff::new(now, first));
        if b.next_attempt > now {
            return false;
        }
        b.failed(now, max);
        true
    }

    /// mDNS announced `peer` anew: dial it at once, whatever its backoff.
    pub fn mdns_announced(&mut self, peer: PeerId, now: Instant) {
        if let Some(b) = self.mdns.get_mut(&peer) {
            b.next_attempt = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(bootstrap: &[Multiaddr]) -> (PeerBook, Instant) {
        let now = Instant::now();
        (
            PeerBook::new(PeerBookConfig::default(), PeerId::random(), bootstrap, now),
            now,
        )
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_ban_lasts_its_duration_then_expires_once() {
        let (mut b, t0) = book(&[]);
        let p = PeerId::random();
        let until = b.ban(p, t0);
        assert_eq!(until, t0 + Duration::from_secs(600));
        assert!(b.is_banned(&p, t0 + 599 * S));
        assert_eq!(b.banned_count(t0), 1);
        assert!(b.expire_bans(t0 + 599 * S).is_empty());
        assert!(!b.is_banned(&p, t0 + 600 * S));
        assert_eq!(b.expire_bans(t0 + 600 * S), vec![p]);
        assert!(b.expire_bans(t0 + 601 * S).is_empty());
    }

    #[test]
    fn the_rate_limit_serves_a_burst_refuses_above_the_rate_and_bans_a_flood() {
        let (mut b, t0) = book(&[]);
        let p = PeerId::random();
        for _ in 0..200 {
            assert_eq!(b.admit_request(p, t0), Admission::Serve);
        }
        assert_eq!(b.admit_request(p, t0), Admission::Refuse);
        // 50/s refill: after 100 ms five more are served.
        let t = t0 + Duration::from_millis(100);
        let served = (0..10)
            .filter(|_| b.admit_request(p, t) == Admission::Serve)
            .count();
        assert_eq!(served, 5);
        // Keep hammering without pause: banned at the 200th refusal.
        let mut outcome = Admission::Refuse;
        for _ in 0..200 {
            outcome = b.admit_request(p, t);
            if outcome != Admission::Refuse {
                break;
            }
        }
        assert!(matches!(outcome, Admission::Ban(_)), "{outcome:?}");
    }

    #[test]
    fn a_peer_that_paces_itself_is_never_banned() {
        let (mut b, t0) = book(&[]);
        let p = PeerId::random();
        for i in 0..10_000u32 {
            // 40 requests a second, under the rate of 50.
            let t = t0 + Duration::from_millis(25 * i as u64);
            assert_eq!(b.admit_request(p, t), Admission::Serve, "request {i}");
        }
    }

    #[test]
    fn refusals_are_forgiven_once_the_bucket_refills() {
        let (mut b, t0) = book(&[]);
        let p = PeerId::random();
        for round in 0..5u64 {
            let t = t0 + Duration::from_secs(10 * round);
            for _ in 0..200 {
                b.admit_request(p, t);
            }
            for _ in 0..150 {
                assert_eq!(b.admit_request(p, t), Admission::Refuse);
            }
        }
        assert!(!b.is_banned(&p, t0 + Duration::from_secs(40)));
    }

    #[test]
    fn a_bootstrap_address_is_dialled_at_once_then_with_doubling_backoff() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let (mut b, t0) = book(std::slice::from_ref(&addr));
        let due = b.due_bootstrap_dials(t0, true, |_| false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].addr, addr);
        // In flight: not dialled twice.
        assert!(b.due_bootstrap_dials(t0, true, |_| false).is_empty());
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.bootstrap_failed(0, t);
            let mut next = t;
            while b.due_bootstrap_dials(next, true, |_| false).is_empty() {
                next += Duration::from_millis(500);
            }
            waits.push((next - t).as_secs());
            t = next;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_connected_bootstrap_peer_is_redialled_after_it_drops_and_backoff_resets() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let (mut b, t0) = book(&[addr]);
        let peer = PeerId::random();
        b.due_bootstrap_dials(t0, true, |_| false);
        b.bootstrap_failed(0, t0);
        b.due_bootstrap_dials(t0 + S, true, |_| false);
        b.bootstrap_connected(0, peer, t0 + S);
        b.connected(peer, t0 + S);
        assert!(
            b.due_bootstrap_dials(t0 + 20 * S, true, |p| *p == peer)
                .is_empty()
        );
        b.disconnected(peer, t0 + 20 * S);
        assert!(
            b.due_bootstrap_dials(t0 + 20 * S, true, |_| false)
                .is_empty()
        );
        let due = b.due_bootstrap_dials(t0 + 21 * S, true, |_| false);
        assert_eq!(due[0].peer, Some(peer));
    }

    #[test]
    fn a_bootstrap_connection_closed_at_once_counts_as_a_failed_attempt() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let (mut b, t0) = book(&[addr]);
        let peer = PeerId::random();
        // A full node takes each connection and closes it a moment later.
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let mut next = t;
            while b.due_bootstrap_dials(next, true, |_| false).is_empty() {
                next += Duration::from_millis(500);
            }
            waits.push((next - t).as_secs());
            b.bootstrap_connected(0, peer, next);
            b.connected(peer, next);
            t = next + Duration::from_millis(300);
            b.disconnected(peer, t);
        }
        assert_eq!(waits, vec![0, 1, 2, 4, 8, 16, 32, 60]);
        // A connection that lasts starts the backoff over.
        let t = t + 60 * S;
        b.due_bootstrap_dials(t, true, |_| false);
        b.bootstrap_connected(0, peer, t);
        b.connected(peer, t);
        b.disconnected(peer, t + 30 * S);
        assert_eq!(b.due_bootstrap_dials(t + 31 * S, true, |_| false).len(), 1);
    }

    #[test]
    fn a_bootnode_is_redialled_only_while_the_node_is_short_of_peers() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let (mut b, t0) = book(&[addr]);
        let peer = PeerId::random();
        // Before it ever answered, it is dialled (and retried) whatever the peer count: the
        // node may have its target on a LAN and still need the way to the rest.
        assert_eq!(b.due_bootstrap_dials(t0, false, |_| false).len(), 1);
        b.bootstrap_failed(0, t0);
        assert_eq!(b.due_bootstrap_dials(t0 + S, false, |_| false).len(), 1);
        b.bootstrap_connected(0, peer, t0 + S);
        // Dropped (a full bootnode makes room for a newcomer): not redialled while the node
        // has its target, redialled once it is short again.
        b.disconnected(peer, t0 + 2 * S);
        assert!(
            b.due_bootstrap_dials(t0 + 60 * S, false, |_| false)
                .is_empty()
        );
        let due = b.due_bootstrap_dials(t0 + 60 * S, true, |_| false);
        assert_eq!(due[0].peer, Some(peer));
        // The same for a peer named with its id that connected by other means.
        let named = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4002/p2p/{named}")
            .parse()
            .unwrap();
        let (mut b, t0) = book(&[addr]);
        b.connected(named, t0);
        b.disconnected(named, t0);
        assert!(
            b.due_bootstrap_dials(t0 + 60 * S, false, |_| false)
                .is_empty()
        );
        assert_eq!(b.due_bootstrap_dials(t0 + 60 * S, true, |_| false).len(), 1);
    }

    #[test]
    fn our_own_address_and_banned_peers_are_not_dialled() {
        let now = Instant::now();
        let local = PeerId::random();
        let banned = PeerId::random();
        let own: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{local}").parse().unwrap();
        let bad: Multiaddr = format!("/ip4/127.0.0.1/tcp/2/p2p/{banned}")
            .parse()
            .unwrap();
        let mut b = PeerBook::new(PeerBookConfig::default(), local, &[own, bad], now);
        b.ban(banned, now);
        assert!(b.due_bootstrap_dials(now, true, |_| false).is_empty());
        assert!(!b.should_dial_mdns(local, now));
        assert!(!b.should_dial_mdns(banned, now));
        assert_eq!(
            b.due_bootstrap_dials(now + 600 * S, true, |_| false).len(),
            1
        );
    }

    #[test]
    fn an_unreachable_mdns_peer_is_dialled_less_and_less_often_until_announced_again() {
        let (mut b, t0) = book(&[]);
        let p = PeerId::random();
        let mut dials = Vec::new();
        for s in 0..=119u64 {
            if b.should_dial_mdns(p, t0 + S * s as u32) {
                dials.push(s);
            }
        }
        assert_eq!(dials, vec![0, 5, 15, 35, 55, 75, 95, 115]);
        b.mdns_announced(p, t0 + 120 * S);
        assert!(b.should_dial_mdns(p, t0 + 120 * S));
        b.connected(p, t0 + 121 * S);
        assert!(b.should_dial_mdns(p, t0 + 121 * S));
    }
}
