//! Discovery beyond one LAN: how many connections the node seeks, which peers of the Kademlia
//! routing table it dials, and when it walks the DHT for more. mDNS and `--peer` addresses are
//! dialled by their own rules; this policy tops the connection count up to a target with peers
//! the DHT knows, and stops there (inbound connections are still accepted up to the limit).
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

/// What to do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Peers to dial (the routing table knows their addresses).
    pub dial: Vec<PeerId>,
    /// Whether to start a lookup of a random id.
    pub walk: bool,
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

    /// What to do at `now`, with `connected` peers, `dialing` dials of this policy in flight,
    /// and the routing table's peers that are not connected (`candidates`, closest first);
    /// `excluded` tells peers never to dial (banned, this node).
    pub fn plan(
        &mut self,
        now: Instant,
        connected: usize,
        dialing: usize,
        candidates: impl IntoIterator<Item = PeerId>,
        excluded: impl Fn(&PeerId) -> bool,
    ) -> Plan {
        self.tried
            .retain(|_, at| now.duration_since(*at) < REDIAL_AFTER);
        let below = connected < self.target;
        let mut plan = Plan::default();
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
        if now >= self.next_walk && connected > 0 {
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
        let plan = p.plan(t0, 2, 0, c.clone(), |_| false);
        // 6 missing, at most MAX_PENDING_DIALS at once.
        assert_eq!(plan.dial, c[..MAX_PENDING_DIALS].to_vec());
        assert!(plan.walk);
        // Dials in flight count against the room.
        let plan = p.plan(t0, 2, 3, c.clone(), |_| false);
        assert_eq!(plan.dial, c[4..5].to_vec());
        // At the target: no dial.
        let plan = p.plan(t0, 8, 0, c.clone(), |_| false);
        assert!(plan.dial.is_empty());
        let plan = p.plan(t0, 12, 0, c, |_| false);
        assert!(plan.dial.is_empty());
    }

    #[test]
    fn never_dials_excluded_peers_and_waits_before_a_redial() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(4, t0);
        let c = peers(3);
        let banned = c[0];
        let plan = p.plan(t0, 0, 0, c.clone(), |q| *q == banned);
        assert_eq!(plan.dial, c[1..].to_vec());
        // The same candidates right after: already tried.
        let plan = p.plan(t0 + Duration::from_secs(1), 0, 0, c.clone(), |q| {
            *q == banned
        });
        assert!(plan.dial.is_empty());
        // After REDIAL_AFTER they may be dialled again; the banned one never.
        let plan = p.plan(t0 + REDIAL_AFTER, 0, 0, c.clone(), |q| *q == banned);
        assert_eq!(plan.dial, c[1..].to_vec());
    }

    #[test]
    fn walks_often_below_the_target_and_rarely_at_it() {
        let t0 = Instant::now();
        let mut p = DiscoveryPolicy::new(4, t0);
        // Nobody connected: nobody to ask.
        assert!(!p.plan(t0, 0, 0, [], |_| false).walk);
        assert!(p.plan(t0, 1, 0, [], |_| false).walk);
        assert!(!p.plan(t0 + WALK_BELOW_TARGET / 2, 1, 0, [], |_| false).walk);
        let t1 = t0 + WALK_BELOW_TARGET;
        assert!(p.plan(t1, 4, 0, [], |_| false).walk);
        assert!(!p.plan(t1 + WALK_BELOW_TARGET, 4, 0, [], |_| false).walk);
        assert!(p.plan(t1 + WALK_AT_TARGET, 4, 0, [], |_| false).walk);
    }
}
