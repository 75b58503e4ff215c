//! The wrappers that filter what libp2p's behaviours see or do, each for one reason named in
//! its doc: the AutoNAT client is never asked to confirm a loopback address ([`Reachability`]),
//! the AutoNAT server dials back only addresses a peer may not use it to probe
//! ([`DialBack`], [`dial_back_allowed`]), and Kademlia does not bootstrap a node that is alone
//! ([`Dht`]). Everything else goes to the wrapped behaviour as is.

use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId, autonat, kad};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Whether an address names this machine only (loopback, or unspecified): never one another
/// machine could dial.
pub(super) fn local_only(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback() || ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_loopback() || ip.is_unspecified(),
        _ => false,
    })
}

/// AutoNAT v2's client, told only of the candidate addresses another machine could dial: an
/// observed loopback (or unspecified) address is where a peer on this same machine sees the
/// node, never an address to confirm and announce. Everything else goes to the client as is.
pub struct Reachability(pub(super) autonat::v2::client::Behaviour);

impl NetworkBehaviour for Reachability {
    type ConnectionHandler =
        <autonat::v2::client::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = autonat::v2::client::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        self.0.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::NewExternalAddrCandidate(c) = &event
            && local_only(c.addr)
        {
            return;
        }
        self.0.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0
            .on_connection_handler_event(peer, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// Whether an AutoNAT server may dial `target` back for a requester seen at `requester` (the
/// IPs of its inbound connections), given the node's own listen IPs `own`. A server must not
/// let a peer use it to probe the networks it sits in (AutoNAT v2: a server SHOULD NOT dial
/// private addresses):
/// - a public (globally routable) address: yes;
/// - a private one (RFC 1918, 100.64/10, IPv6 unique-local): only on a subnet the node itself is
///   on, when the requester is on it too (a LAN's nodes confirm each other's addresses); a
///   subnet is the /24 (IPv4) or /64 (IPv6) of one of the node's own addresses;
/// - loopback: only when the node listens on loopback alone (nodes on one machine);
/// - anything else (unspecified, link-local, multicast, broadcast, documentation), a DNS name
///   or an address without an IP: never.
pub fn dial_back_allowed(target: &Multiaddr, requester: &[IpAddr], own: &[IpAddr]) -> bool {
    let Some(ip) = ip_of(target) else {
        return false;
    };
    if ip.is_loopback() {
        return !own.is_empty() && own.iter().all(IpAddr::is_loopback);
    }
    match classify(ip) {
        IpClass::Public => true,
        IpClass::Private => {
            own.iter().any(|o| same_subnet(*o, ip)) && requester.iter().any(|r| same_subnet(*r, ip))
        }
        IpClass::Never => false,
    }
}

enum IpClass {
    Public,
    Private,
    Never,
}

fn classify(ip: IpAddr) -> IpClass {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
            {
                IpClass::Never
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                IpClass::Private
            } else {
                IpClass::Public
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            if v6.is_unspecified() || v6.is_multicast() || (first & 0xffc0) == 0xfe80 {
                IpClass::Never
            } else if (first & 0xfe00) == 0xfc00 {
                IpClass::Private
            } else if (first & 0xe000) == 0x2000 && !(first == 0x2001 && v6.segments()[1] == 0x0db8)
            {
                IpClass::Public
            } else {
                IpClass::Never
            }
        }
    }
}

/// Whether two addresses share a /24 (IPv4) or a /64 (IPv6).
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

/// AutoNAT v2's server, dialling back only the addresses [`dial_back_allowed`] permits. The
/// library's server dials whatever address a client names; this wrapper notes the dials it
/// asks for and denies those to other addresses as the swarm starts them, which the server sees
/// as a failed dial-back (the client is told the dial failed).
pub struct DialBack {
    inner: autonat::v2::server::Behaviour,
    /// The dial-backs the server asked for and the swarm has not started yet.
    dialling: HashSet<ConnectionId>,
    /// The remote IP of each inbound connection: where each requester is seen.
    inbound: HashMap<ConnectionId, (PeerId, IpAddr)>,
    /// The node's own listen IPs.
    own: Vec<IpAddr>,
}

impl DialBack {
    /// libp2p's AutoNAT v2 server behind the dial-back rule.
    pub(super) fn new() -> Self {
        Self {
            inner: autonat::v2::server::Behaviour::default(),
            dialling: HashSet::new(),
            inbound: HashMap::new(),
            own: Vec::new(),
        }
    }
}

/// Why a dial-back was refused (the swarm's `ConnectionDenied` cause).
#[derive(Debug, thiserror::Error)]
#[error(
    "AutoNAT dial-back to {0} refused: not a public address, nor one on this node's own subnet shared with the requester"
)]
pub struct DialBackRefused(Multiaddr);

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for DialBack {
    type ConnectionHandler =
        <autonat::v2::server::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = autonat::v2::server::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        if let Some(ip) = ip_of(remote_addr) {
            self.inbound.insert(connection_id, (peer, ip));
        }
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if self.dialling.remove(&connection_id)
            && let Some(peer) = maybe_peer
        {
            let requester: Vec<IpAddr> = self
                .inbound
                .values()
                .filter(|(p, _)| *p == peer)
                .map(|(_, ip)| *ip)
                .collect();
            if let Some(refused) = addresses
                .iter()
                .find(|a| !dial_back_allowed(a, &requester, &self.own))
            {
                tracing::debug!(%peer, addr = %refused, "AutoNAT: refusing to dial back an address that is not public nor on a shared subnet");
                return Err(ConnectionDenied::new(DialBackRefused(refused.clone())));
            }
        }
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionClosed(c) => {
                self.inbound.remove(&c.connection_id);
            }
            FromSwarm::DialFailure(f) => {
                self.dialling.remove(&f.connection_id);
            }
            FromSwarm::NewListenAddr(l) => {
                if let Some(ip) = ip_of(l.addr)
                    && !self.own.contains(&ip)
                {
                    self.own.push(ip);
                }
            }
            FromSwarm::ExpiredListenAddr(l) => {
                if let Some(ip) = ip_of(l.addr) {
                    self.own.retain(|o| *o != ip);
                }
            }
            _ => {}
        }
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let event = self.inner.poll(cx);
        if let Poll::Ready(ToSwarm::Dial { opts }) = &event {
            self.dialling.insert(opts.connection_id());
        }
        event
    }
}

/// The Kademlia behaviour, kept from its start-up bootstrap: Kademlia bootstraps whenever a
/// listen address appears while it has no peer, and on a node that is alone (no `--peer`, or
/// before mDNS finds anyone) that only warns "Failed to trigger bootstrap: No known peers", a
/// warning about nothing wrong. So the listen addresses are not passed to it (it uses them
/// only for provider records, which this node neither stores nor serves); it still
/// bootstraps as soon as its first peer enters the routing table, and the event loop refreshes
/// the table periodically. Everything else goes to Kademlia as is; it derefs to it.
pub struct Dht(pub(super) kad::Behaviour<kad::store::MemoryStore>);

impl std::ops::Deref for Dht {
    type Target = kad::Behaviour<kad::store::MemoryStore>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Dht {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl NetworkBehaviour for Dht {
    type ConnectionHandler =
        <kad::Behaviour<kad::store::MemoryStore> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<Self::ConnectionHandler, ConnectionDenied> {
        self.0.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::NewListenAddr(_) | FromSwarm::ExpiredListenAddr(_) = event {
            return;
        }
        self.0.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0
            .on_connection_handler_event(peer, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn dial_back_goes_to_public_addresses_and_shared_subnets_only() {
        let own = [ip("10.1.2.3"), ip("203.0.114.9")];
        let lan_peer = [ip("10.1.2.40")];
        let far_peer = [ip("198.51.99.7")];
        // Public: whoever asks.
        assert!(dial_back_allowed(
            &addr("/ip4/8.8.4.4/tcp/4001"),
            &far_peer,
            &own
        ));
        assert!(dial_back_allowed(
            &addr("/ip6/2a00:1450::1/tcp/4001"),
            &far_peer,
            &own
        ));
        // Private: on our subnet, asked by a peer on it.
        assert!(dial_back_allowed(
            &addr("/ip4/10.1.2.99/tcp/4001"),
            &lan_peer,
            &own
        ));
        // ... not for a peer elsewhere (probing our LAN), nor another private network.
        assert!(!dial_back_allowed(
            &addr("/ip4/10.1.2.99/tcp/4001"),
            &far_peer,
            &own
        ));
        assert!(!dial_back_allowed(
            &addr("/ip4/192.168.0.1/tcp/22"),
            &[ip("192.168.0.5")],
            &own
        ));
        assert!(!dial_back_allowed(
            &addr("/ip4/100.64.0.1/tcp/4001"),
            &lan_peer,
            &own
        ));
        // Loopback: only for a node that listens on loopback alone.
        assert!(!dial_back_allowed(
            &addr("/ip4/127.0.0.1/tcp/4001"),
            &[ip("127.0.0.1")],
            &own
        ));
        assert!(dial_back_allowed(
            &addr("/ip4/127.0.0.1/tcp/4001"),
            &[ip("127.0.0.1")],
            &[ip("127.0.0.1")]
        ));
        assert!(!dial_back_allowed(
            &addr("/ip4/127.0.0.1/tcp/4001"),
            &[ip("127.0.0.1")],
            &[]
        ));
        // Never: link-local, unspecified, multicast, documentation, names.
        for never in [
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip4/224.0.0.251/udp/5353",
            "/ip4/192.0.2.1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/dns4/example.com/tcp/1",
        ] {
            assert!(!dial_back_allowed(&addr(never), &far_peer, &own), "{never}");
        }
        // IPv6 unique-local: like a private IPv4 network, /64.
        let own6 = [ip("fd00:1:2:3::1")];
        assert!(dial_back_allowed(
            &addr("/ip6/fd00:1:2:3::9/tcp/1"),
            &[ip("fd00:1:2:3::5")],
            &own6
        ));
        assert!(!dial_back_allowed(
            &addr("/ip6/fd00:1:2:4::9/tcp/1"),
            &[ip("fd00:1:2:4::5")],
            &own6
        ));
    }
}
