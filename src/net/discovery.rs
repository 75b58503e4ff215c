//! Discovery beyond one LAN: how many connections the node seeks, which peers of the Kademlia
//! routing table it dials, and when it walks the DHT for more. mDNS and `--peer` addresses are
//! dialled by their own rules; this policy tops the connection count up to a target with peers
//! the DHT knows, and stops there (inbound connections are still accepted up to the limit).
//!
//! Kademlia's lookups open connections of their own, to every peer they ask. Left open (the
//! blocks topic keeps any connection alive), a node would end up connected to every peer its
//! walks ever reached: the target would mean nothing, and in a network larger than the peer
//! limit every node would sit at the limit, each new connection closing another. So a lookup's
//! connection is kept as a peer only while the node is below its target, and is otherwise
//! closed once no lookup is running (or after [`LOOKUP_GRACE`], for a long one).
//!
//! No swarm and no clock: the event loop passes in what it sees and the time, and carries out
//! the plan, so the rules are tested without a network.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the DHT is walked (a lookup of a random id) while below the target.
pub const WALK_BELOW_TARGET: Duration = Duration::from_secs(5);
/// How often it is walked once the target is met, to keep the routing table fresh.
pub const WALK_AT_TARGET: Duration = Duration::from_secs(60);
/// A peer this policy dialled is not dialled again by it for this long.
pub const REDIAL_AFTER: Duration = Duration::from_secs(30);
/// Most dials this policy has in flight at once.
pub const MAX_PENDING_DIALS: usize = 4;
/// Longest a connection a lookup opened stays open while lookups go on, if the node does not
/// keep it: as long as Kademlia waits for an answer on it.
pub const LOOKUP_GRACE: Duration = Duration::from_secs(10);

/// What to do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Peers to dial (the routing table knows their addresses).
    pub dial: Vec<PeerId>,
    /// Whether to start a lookup of a random id.
    pub walk: bool,
    /// Peers connected by a lookup to keep as peers (the node is below its target).
    pub keep: Vec<PeerId>,
    /// Peers connected by a lookup to disconnect (the node has its target without them, and
    /// no lookup runs or theirs had its time).
    pub close: Vec<PeerId>,
}

/// The discovery policy; see the module doc.
#[derive(Debug)]
pub struct DiscoveryPolicy {
    /// Connections the policy tops up to.
    target: usize,
    /// When the next walk may start.
    next_walk: Instant,
    /// When this policy last dialled each peer (pruned after [`REDIAL_AFTER`]).
    tried: HashMap<PeerId, Instant>,
}

impl DiscoveryPolicy {
    /// A policy seeking `target` connections; the first walk may start at once.
    pub fn new(target: usize, now: Instant) -> Self {
        Self {
            target,
            next_walk: now,
            tried: HashMap::new(),
        }
    }

    /// The connection count sought.
    pub fn target(&self) -> usize {
        self.target
    }

    /// What to do at `now`, with `kept` connected peers (every connection but those only a
    /// lookup opened), the peers connected only by a lookup with when they connected
    /// (`lookups`), whether a lookup is running (`looking_up`), `dialing` dials of this
    /// policy in flight, and the routing table's peers that are not connected (`candidates`,
    /// closest first); `excluded` tells peers never to dial (banned, this node).
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        now: Instant,
        kept: usize,
        lookups: &[(PeerId, Instant)],
        looking_up: bool,
        dialing: usize,
        candidates: impl IntoIterator<Item = PeerId>,
        excluded: impl Fn(&PeerId) -> bool,
    ) -> Plan {
        self.tried
            .retain(|_, at| now.duration_since(*at) < REDIAL_AFTER);
        let mut plan = Plan::default();
        // Below the target, a lookup's connections (oldest first) are peers found in the DHT
        // like any other, and cost no dial; the rest go once no lookup needs them.
        let mut lookups = lookups.to_vec();
        lookups.sort_by_key(|(_, since)| *since);
        for (peer, since) in lookups.iter().copied() {
            if kept + plan.keep.len() < self.target && !excluded(&peer) {
                plan.keep.push(peer);
            } else if !looking_up || now.saturating_duration_since(since) >= LOOKUP_GRACE {
                plan.close.push(peer);
            }
        }
        let connected = kept + plan.keep.len();
        let below = connected < self.target;
        if below {
            let room = (self.target - connected)
                .min(MAX_PENDING_DIALS)
                .saturating_sub(dialing);
            for peer in candidates {
                if plan.dial.len() >= room {
                    break;
                }
                if excluded(&peer) || self.tried.contains_key(&peer) || plan.dial.contains(&peer) {
                    continue;
                }
                self.tried.insert(peer, now);
                plan.dial.push(peer);
            }
        }
        // Walk only once there is someone to ask (a lookup with an empty table fails at once).
        if now >= self.next_walk && kept + lookups.len() > 0 {
            plan.walk = true;
            self.next_walk = now
                + if below {
                    WALK_BELOW_TARGET
                } else {
                    WALK_AT_TARGET
                };
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn tops_up_to_the_target_and_stops_there() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(8, t0);
        let c = peers(20);
        let plan = p.plan(t0, 2, &[], true, 0, c.clone(), |_| false);
        // 6 missing, at most MAX_PENDING_DIALS at once.
        assert_eq!(plan.dial, c[..MAX_PENDING_DIALS].to_vec());
        assert!(plan.walk);
        // Dials in flight count against the room.
        let plan = p.plan(t0, 2, &[], true, 3, c.clone(), |_| false);
        assert_eq!(plan.dial, c[4..5].to_vec());
        // At the target: no dial.
        let plan = p.plan(t0, 8, &[], true, 0, c.clone(), |_| false);
        assert!(plan.dial.is_empty());
        let plan = p.plan(t0, 12, &[], true, 0, c, |_| false);
        assert!(plan.dial.is_empty());
    }

    #[test]
    fn never_dials_excluded_peers_and_waits_before_a_redial() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(4, t0);
        let c = peers(3);
        let banned = c[0];
        let plan = p.plan(t0, 0, &[], true, 0, c.clone(), |q| *q == banned);
        assert_eq!(plan.dial, c[1..].to_vec());
        // The same candidates right after: already tried.
        let plan = p.plan(
            t0 + Duration::from_secs(1),
            0,
            &[],
            true,
            0,
            c.clone(),
            |q| *q == banned,
        );
        assert!(plan.dial.is_empty());
        // After REDIAL_AFTER they may be dialled again; the banned one never.
        let plan = p.plan(t0 + REDIAL_AFTER, 0, &[], true, 0, c.clone(), |q| {
            *q == banned
        });
        assert_eq!(plan.dial, c[1..].to_vec());
    }

    #[test]
    fn a_lookups_connections_are_kept_below_the_target_and_closed_after_their_grace_above() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(4, t0);
        let c = peers(6);
        let s = Duration::from_secs(1);
        // Connected by a walk, the newest first in the list: kept oldest first, up to the
        // target with the 2 kept peers; the others stay while their lookup may use them.
        let lookups: Vec<(PeerId, Instant)> =
            (0..5).map(|i| (c[i], t0 + (5 - i as u32) * s)).collect();
        let at = t0 + 6 * s;
        let plan = p.plan(at, 2, &lookups, true, 0, c[5..].to_vec(), |_| false);
        assert_eq!(plan.keep, vec![c[4], c[3]]);
        assert!(plan.close.is_empty());
        // With the target met, nothing is dialled.
        assert!(plan.dial.is_empty());
        // Once their grace is over, the unkept ones go, and only they.
        let at = t0 + 3 * s + LOOKUP_GRACE;
        let plan = p.plan(at, 4, &lookups[..3], true, 0, c[5..].to_vec(), |_| false);
        assert!(plan.keep.is_empty());
        assert_eq!(plan.close, vec![c[2]]);
        // Below the target again (a peer left): a lookup's connection fills the gap before
        // any dial, and a banned one is never kept.
        let banned = c[2];
        let plan = p.plan(at, 3, &lookups[..3], true, 0, c[5..].to_vec(), |q| {
            *q == banned
        });
        assert_eq!(plan.keep, vec![c[1]]);
        assert_eq!(plan.close, vec![banned]);
        assert!(plan.dial.is_empty());
        // Far below: the lookups' connections and dials together make up the gap.
        let mut p = DiscoveryPolicy::new(8, t0);
        let plan = p.plan(t0, 0, &lookups[..2], true, 0, c[5..].to_vec(), |_| false);
        assert_eq!(plan.keep, vec![c[1], c[0]]);
        assert_eq!(plan.dial, vec![c[5]]);
        // Once no lookup runs, the unkept ones go at once, whatever their age.
        let mut p = DiscoveryPolicy::new(4, t0);
        let plan = p.plan(t0 + 6 * s, 3, &lookups[..3], false, 0, [], |_| false);
        assert_eq!(plan.keep, vec![c[2]]);
        assert_eq!(plan.close, vec![c[1], c[0]]);
    }

    #[test]
    fn walks_often_below_the_target_and_rarely_at_it() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(4, t0);
        // Nobody connected: nobody to ask.
        assert!(!p.plan(t0, 0, &[], true, 0, [], |_| false).walk);
        // A lookup's connection is someone to ask.
        let mut q = DiscoveryPolicy::new(4, t0);
        assert!(
            q.plan(t0, 0, &[(PeerId::random(), t0)], true, 0, [], |_| false)
                .walk
        );
        assert!(p.plan(t0, 1, &[], true, 0, [], |_| false).walk);
        assert!(
            !p.plan(t0 + WALK_BELOW_TARGET / 2, 1, &[], true, 0, [], |_| false)
                .walk
        );
        let t1 = t0 + WALK_BELOW_TARGET;
        assert!(p.plan(t1, 4, &[], true, 0, [], |_| false).walk);
        assert!(
            !p.plan(t1 + WALK_BELOW_TARGET, 4, &[], true, 0, [], |_| false)
                .walk
        );
        assert!(
            p.plan(t1 + WALK_AT_TARGET, 4, &[], true, 0, [], |_| false)
                .walk
        );
    }
}
