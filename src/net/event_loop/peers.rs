//! The event loop's peer policy in action: making room when connections are over the limit,
//! topping peers up to the target (mDNS redials, DHT results), and confirming the addresses
//! others see this node at.

use super::*;

impl EventLoop {
    /// The one way a peer is banned, whatever the cause (an invalid block or transfer from the
    /// node, a malformed request or answer, a request flood): the book records the ban and its
    /// end; the block list closes the peer's connections and refuses new ones; gossipsub
    /// drops it from its meshes and ignores its messages; the DHT forgets it, so that it is
    /// not handed out to others. [`Self::unban`] undoes the last three when the ban ends.
    pub(super) fn ban(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, %reason, "banning peer for {:?}", self.config.ban_duration);
        self.book.ban(peer, Instant::now());
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.block_peer(peer);
        behaviour.gossipsub.blacklist_peer(&peer);
        if let Some(kad) = behaviour.kad.as_mut() {
            kad.remove_peer(&peer);
        }
    }

    /// The DHT's periodic refresh (a lookup of our own id and of a random id per bucket),
    /// run here rather than by Kademlia's own timer: that one warns "Failed to trigger
    /// bootstrap: No known peers" on a node that is alone, which is nothing wrong. A node with
    /// no DHT peers has nothing to refresh; Kademlia bootstraps by itself as soon as its first
    /// peer enters the table.
    pub(super) fn refresh_routing_table(&mut self) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
            && kad.kbuckets().any(|b| b.num_entries() > 0)
            && let Err(e) = kad.bootstrap()
        {
            tracing::debug!("DHT refresh not started: {e}");
        }
    }

    /// A ban ended: the peer may connect, gossip and be learnt by the DHT again.
    pub(super) fn unban(&mut self, peer: PeerId) {
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.unblock_peer(peer);
        behaviour.gossipsub.remove_blacklisted_peer(&peer);
        tracing::info!(%peer, "ban expired");
    }

    /// Over `max_peers` open connections: closes the peers of a connection only a lookup of
    /// this node opened, or else those accepted longest ago (not one this node dialled:
    /// `--peer`, mDNS, `dial` and DHT peers are its own choice), or else the newcomer if it
    /// was accepted, until the connections not being closed are within the limit. A full node
    /// thus keeps taking newcomers, each of which can learn the network from it, while the
    /// peers it has held longest have had time to find others. Connections, not peers, are
    /// counted: the hard limit (`max_peers` + [`super::behaviour::ROOM_TO_EVICT`]) counts
    /// them, and two peers that dialled each other have two; a node whose peers held the hard
    /// limit in connections would refuse every newcomer before it could make room.
    pub(super) fn make_room(&mut self, newcomer: PeerId) {
        let max = self.config.behaviour.max_peers as usize;
        loop {
            let open: usize = self
                .peers
                .iter()
                .filter(|(p, _)| !self.closing.contains(*p))
                .map(|(_, s)| s.addresses.len())
                .sum();
            if open <= max {
                return;
            }
            let accepted = |s: &PeerState| s.found_by == Discovery::Inbound;
            let candidates = || {
                self.peers
                    .iter()
                    .filter(|(p, _)| **p != newcomer && !self.closing.contains(*p))
            };
            let victim = candidates()
                .filter(|(_, s)| !s.kept)
                .min_by_key(|(_, s)| s.since)
                .or_else(|| {
                    candidates()
                        .filter(|(_, s)| accepted(s))
                        .min_by_key(|(_, s)| s.since)
                })
                .map(|(p, _)| *p)
                .or_else(|| {
                    self.peers
                        .get(&newcomer)
                        .filter(|s| accepted(s) && !self.closing.contains(&newcomer))
                        .map(|_| newcomer)
                });
            let Some(victim) = victim else { return };
            tracing::debug!(peer = %victim, "at the peer limit: closing the oldest accepted connection");
            if self.swarm.disconnect_peer_id(victim).is_err() {
                // Not connected after all: its closing event is on its way.
                return;
            }
            self.closing.insert(victim);
        }
    }

    /// Connected peers that count as the node's own (all but those only a lookup connected).
    pub(super) fn kept_peers(&self) -> usize {
        self.peers
            .iter()
            .filter(|(p, s)| s.kept && !self.closing.contains(*p))
            .count()
    }

    /// Dials the peers that mDNS still reports but that are not connected, each as often as
    /// its backoff allows. mDNS reports a peer once, when it appears; without this, a
    /// connection lost later (a long partition, a sleeping laptop, a failed dial) would not be
    /// made again while the peer keeps answering.
    pub(super) fn redial_mdns_peers(&mut self, now: Instant) {
        let Some(mdns) = self.swarm.behaviour().mdns.as_ref() else {
            return;
        };
        let peers: BTreeSet<PeerId> = mdns.discovered_nodes().copied().collect();
        for peer in peers {
            if self.swarm.is_connected(&peer) || !self.book.should_dial_mdns(peer, now) {
                continue;
            }
            // No address: the mDNS behaviour supplies the ones it knows.
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            let id = opts.connection_id();
            if self.swarm.dial(opts).is_ok() {
                tracing::debug!(%peer, "redialling a peer mDNS reports");
                self.dials.insert(id, DialPurpose::Mdns);
            }
        }
    }

    /// Tops the connections up with peers of the Kademlia routing table, and walks the DHT,
    /// as the discovery policy says.
    pub(super) fn discover(&mut self, now: Instant) {
        let local = *self.swarm.local_peer_id();
        let kept = self.kept_peers();
        let lookups: Vec<(PeerId, Instant)> = self
            .peers
            .iter()
            .filter(|(p, s)| !s.kept && !self.closing.contains(*p))
            .map(|(p, s)| (*p, s.since))
            .collect();
        let dialing = self
            .dials
            .values()
            .filter(|d| matches!(d, DialPurpose::Kad))
            .count();
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        let looking_up = kad.iter_queries().next().is_some();
        let known: Vec<PeerId> = kad
            .kbuckets()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .map(|entry| *entry.node.key.preimage())
                    .collect::<Vec<_>>()
            })
            .collect();
        let candidates: Vec<PeerId> = known
            .into_iter()
            .filter(|p| !self.peers.contains_key(p))
            .collect();
        let book = &self.book;
        let plan = self
            .discovery
            .plan(now, kept, &lookups, looking_up, dialing, candidates, |p| {
                *p == local || book.is_banned(p, now)
            });
        if !plan.close.is_empty() || !plan.keep.is_empty() || !plan.dial.is_empty() {
            tracing::debug!(
                kept,
                lookups = lookups.len(),
                looking_up,
                closing = self.closing.len(),
                keep = plan.keep.len(),
                close = plan.close.len(),
                dial = plan.dial.len(),
                "discovery"
            );
        }
        for peer in plan.keep {
            if let Some(s) = self.peers.get_mut(&peer) {
                tracing::debug!(%peer, "keeping a peer a DHT lookup connected");
                s.kept = true;
            }
        }
        for peer in plan.close {
            tracing::debug!(%peer, "closing a DHT lookup's connection (at the target without it)");
            if self.swarm.disconnect_peer_id(peer).is_ok() {
                self.closing.insert(peer);
            }
        }
        if plan.walk
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            kad.get_closest_peers(PeerId::random());
        }
        for peer in plan.dial {
            // No address: the routing table supplies the ones it knows.
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let id = opts.connection_id();
            if self.swarm.dial(opts).is_ok() {
                tracing::debug!(%peer, "dialling a peer the DHT knows");
                self.dials.insert(id, DialPurpose::Kad);
            }
        }
    }

    /// A peer reports the address it sees this node at. With no NAT between them that is one
    /// of this node's own addresses, and the listen address on it is reachable from the peer's
    /// network: confirm it, so that Kademlia serves and announces it. (Behind a NAT the peer
    /// sees another address and nothing is confirmed here: AutoNAT then asks a peer to dial
    /// that address back, and confirms it if the NAT forwards the port; `--external-addr`
    /// says it instead.) True when an address was confirmed.
    pub(super) fn on_external_candidate(&mut self, observed: &Multiaddr) -> bool {
        let ip_of = |a: &Multiaddr| {
            a.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            })
        };
        if local_only(observed) {
            return false;
        }
        let Some(ip) = ip_of(observed) else {
            return false;
        };
        let own: Vec<Multiaddr> = self
            .listen_addrs
            .iter()
            .filter(|a| ip_of(a) == Some(ip))
            .filter(|a| !self.swarm.external_addresses().any(|e| e == *a))
            .cloned()
            .collect();
        for addr in &own {
            tracing::info!(%addr, "external address confirmed (a peer sees this node there)");
            self.swarm.add_external_address(addr.clone());
        }
        !own.is_empty()
    }
}
