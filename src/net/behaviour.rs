//! The libp2p behaviours the node runs, and their configuration: gossipsub with manual
//! validation and peer scoring, the sync request-response protocol with size limits, mDNS,
//! a Kademlia DHT for discovery beyond one LAN, AutoNAT v2 to learn whether others can dial this
//! node, identify, ping, connection limits and a block list for misbehaving peers.

use super::protocol::{self, Request, Response};
use crate::chain::ChainId;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite};
use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, gossipsub, identify, identity,
    kad, mdns, ping, request_response,
};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::Duration;

/// Connections accepted beyond `max_peers` for a moment: the event loop then closes the
/// accepted connection open longest, so that a full node (a bootnode everyone names) still lets
/// newcomers in to learn the network through it, where refusing them would leave them with no
/// peer at all. The hard limit is `max_peers` plus this.
pub const ROOM_TO_EVICT: u32 = 8;

/// How often the Kademlia routing table is refreshed by a bootstrap (a lookup of our own id and
/// of a random id per bucket), by the event loop.
pub const KAD_BOOTSTRAP: Duration = Duration::from_secs(300);

/// How often AutoNAT asks a peer to dial back the addresses not yet tested.
pub const AUTONAT_PROBE: Duration = Duration::from_secs(5);

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
pub struct Reachability(autonat::v2::client::Behaviour);

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
    let Some(ip) = target.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }) else {
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
    fn new() -> Self {
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
pub struct Dht(kad::Behaviour<kad::store::MemoryStore>);

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

/// All behaviours of a node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses connections from banned peers and closes theirs.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps connections.
    pub limits: connection_limits::Behaviour,
    /// Block and transaction relay.
    pub gossipsub: gossipsub::Behaviour,
    /// Status and block download.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// LAN discovery, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Discovery beyond the LAN: a Kademlia routing table of the chain's nodes, when enabled.
    /// It stores no records; it only finds peers.
    pub kad: Toggle<Dht>,
    /// Whether others can dial this node where peers see it (behind a NAT, an address that is
    /// not one of its own): asks a peer to dial that address back on a new connection, and
    /// confirms it when the peer gets through (AutoNAT v2). Runs with the DHT, whose server
    /// mode waits for a confirmed address.
    pub autonat: Toggle<Reachability>,
    /// Dials back the addresses peers ask about (AutoNAT v2), with the DHT: only public ones,
    /// or on a subnet shared with the requester ([`dial_back_allowed`]).
    pub autonat_server: Toggle<DialBack>,
    /// Learns peers' listen addresses and agent versions.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub ping: ping::Behaviour,
}

/// Settings that shape the behaviours.
#[derive(Clone, Debug)]
pub struct BehaviourConfig {
    /// The chain, for topic names.
    pub chain_id: ChainId,
    /// Largest valid block, for message size limits.
    pub max_block_bytes: u32,
    /// Whether mDNS discovery runs.
    pub mdns: bool,
    /// Whether the Kademlia DHT runs.
    pub kad: bool,
    /// Most connected peers in all. A node at the limit still accepts a newcomer and closes
    /// the connection it accepted longest ago instead (see [`ROOM_TO_EVICT`]).
    pub max_peers: u32,
    /// How long a sync request may wait for its response.
    pub request_timeout: Duration,
    /// Gossipsub heartbeat (mesh maintenance); shorter forms meshes sooner.
    pub heartbeat: Duration,
}

/// Gossip message id: SHA-256 of the whole payload. For a transaction this is its txid; for a
/// block it is not the block hash on purpose, so that a block with a tampered body cannot
/// occupy the id (and the duplicate cache) of the real block with the same header.
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::new(&Sha256::digest(&message.data))
}

/// A sync message over its size limit, or one that does not decode: the sender's fault, unlike
/// a transport failure or a stream closed before the message was complete.
#[derive(Debug, thiserror::Error)]
#[error("malformed sync message: {0}")]
pub struct Malformed(String);

impl Malformed {
    /// Whether a failed sync read was the sender's fault.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<Malformed>())
    }
}

/// A sync request as read from the wire.
#[derive(Debug)]
pub enum SyncRequest {
    /// A well-formed request.
    Valid(Request),
    /// Bytes over the request limit, or that do not decode: the sender's fault. (A failed read
    /// never reaches the behaviour's events, so it is delivered as a request of its own.)
    Malformed(String),
}

/// The sync codec: libp2p's CBOR codec (the wire format is unchanged), except that a message
/// over its limit or that does not decode is reported as the sender's fault: a request as
/// [`SyncRequest::Malformed`], a response as a [`Malformed`] error. On its own the CBOR codec
/// truncates a message at the limit and drops a request it cannot decode without a word, so a
/// peer could send garbage forever, unpunished and outside the request rate limit.
#[derive(Clone)]
pub struct SyncCodec {
    cbor: request_response::cbor::codec::Codec<Request, Response>,
    max_request: u64,
    max_response: u64,
}

/// Reads a whole message of at most `max` bytes; transport errors pass through.
async fn read_whole<T: AsyncRead + Unpin + Send>(io: &mut T, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            Malformed(format!("over the limit of {max} bytes")),
        ));
    }
    Ok(buf)
}

/// A decoding failure is [`Malformed`], except an early end: an empty or cut-off message is what
/// a peer that went away (or dropped our request) leaves behind.
fn decode_error(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        e
    } else {
        io::Error::new(io::ErrorKind::InvalidData, Malformed(e.to_string()))
    }
}

impl SyncCodec {
    /// The codec of a chain whose blocks are at most `max_block_bytes`, with the protocol's
    /// request and response limits.
    pub fn new(max_block_bytes: u32) -> Self {
        Self {
            cbor: Default::default(),
            max_request: protocol::MAX_REQUEST_BYTES,
            max_response: protocol::max_response_bytes(max_block_bytes),
        }
    }

    /// Reads a request from `bytes` exactly as from a stream that ends after them (for fuzzing
    /// and tests: the same limits and the same [`SyncRequest::Malformed`] path).
    pub fn decode_request(&mut self, bytes: &[u8]) -> io::Result<SyncRequest> {
        let protocol = StreamProtocol::new(protocol::SYNC_PROTOCOL);
        let mut stream = futures::io::Cursor::new(bytes);
        futures::executor::block_on(request_response::Codec::read_request(
            self,
            &protocol,
            &mut stream,
        ))
    }

    /// Reads a response from `bytes` exactly as from a stream that ends after them.
    pub fn decode_response(&mut self, bytes: &[u8]) -> io::Result<Response> {
        let protocol = StreamProtocol::new(protocol::SYNC_PROTOCOL);
        let mut stream = futures::io::Cursor::new(bytes);
        futures::executor::block_on(request_response::Codec::read_response(
            self,
            &protocol,
            &mut stream,
        ))
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = Response;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let read = match read_whole(io, self.max_request).await {
            Ok(buf) => self
                .cbor
                .read_request(p, &mut buf.as_slice())
                .await
                .map_err(decode_error),
            Err(e) => Err(e),
        };
        match read {
            Ok(request) => Ok(SyncRequest::Valid(request)),
            Err(e) if Malformed::is(&e) => Ok(SyncRequest::Malformed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_whole(io, self.max_response).await?;
        self.cbor
            .read_response(p, &mut buf.as_slice())
            .await
            .map_err(decode_error)
    }

    async fn write_request<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            SyncRequest::Valid(req) => self.cbor.write_request(p, io, req).await,
            SyncRequest::Malformed(_) => Err(io::Error::other("a malformed request is not sent")),
        }
    }

    async fn write_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.cbor.write_response(p, io, res).await
    }
}

/// Peer scoring: an invalid message costs far more than honest participation can earn, so one
/// rejected message pushes a peer below the graylist threshold.
fn score_params(topics: &[gossipsub::TopicHash]) -> gossipsub::PeerScoreParams {
    let mut params = gossipsub::PeerScoreParams {
        // Nodes of one test or docker host share an address; do not punish that.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    for topic in topics {
        let t = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 3600.0,
            first_message_deliveries_weight: 0.1,
            first_message_deliveries_cap: 100.0,
            // Blocks arrive every few seconds: a quiet mesh peer is not a bad one.
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        params.topics.insert(topic.clone(), t);
    }
    params
}

/// Builds the gossipsub behaviour of a node for `key`: Strict signing, SHA-256 message ids, the
/// message size limit and heartbeat of `config`, and peer scoring on the chain's blocks and
/// transactions topics.
///
/// With `validate_messages`, a received message is forwarded only once the application has
/// reported it valid (what a node does); without it, at once. Both the node and the propagation
/// benchmark's bare gossipsub network build theirs here, so they cannot drift apart.
pub fn new_gossipsub(
    key: &identity::Keypair,
    config: &BehaviourConfig,
    validate_messages: bool,
) -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let topics = [
        gossipsub::IdentTopic::new(protocol::blocks_topic(&config.chain_id)).hash(),
        gossipsub::IdentTopic::new(protocol::txs_topic(&config.chain_id)).hash(),
    ];
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(message_id)
        .max_transmit_size(protocol::max_transmit_size(config.max_block_bytes))
        // Over a topic's own limit, gossipsub counts a message as invalid (a score penalty);
        // over the frame limit above it only drops the stream, unseen by scoring and the node.
        .max_transmit_size_for_topic(protocol::MAX_TX_GOSSIP_BYTES, topics[1].clone())
        .heartbeat_interval(config.heartbeat);
    if validate_messages {
        builder.validate_messages();
    }
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        builder.build()?,
    )?;
    gossipsub.with_peer_score(
        score_params(&topics),
        gossipsub::PeerScoreThresholds::default(),
    )?;
    Ok(gossipsub)
}

impl Behaviour {
    /// Has gossipsub record its own metrics (mesh, scores, message counts per topic) in
    /// `registry`.
    pub fn with_metrics(self, registry: &mut prometheus_client::registry::Registry) -> Self {
        Self {
            gossipsub: self
                .gossipsub
                .with_metrics(registry, gossipsub::MetricsConfig::default()),
            ..self
        }
    }

    /// Builds every behaviour for `key`.
    pub fn new(
        key: &identity::Keypair,
        config: &BehaviourConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let peer_id = key.public().to_peer_id();
        let gossipsub = new_gossipsub(key, config, true)?;

        let codec = SyncCodec::new(config.max_block_bytes);
        let sync = request_response::Behaviour::with_codec(
            codec,
            [(
                StreamProtocol::new(protocol::SYNC_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(32),
        );
        let mdns = if config.mdns {
            // Queries every 10 s instead of libp2p's 5 min. A node that starts while others
            // exchange their first queries overhears their answers, which ends its start-up
            // probing before its own first query goes out: the nodes that answered before it
            // started learn of it only at the next query.
            Some(mdns::tokio::Behaviour::new(
                mdns::Config {
                    query_interval: Duration::from_secs(10),
                    ..Default::default()
                },
                peer_id,
            )?)
        } else {
            None
        };
        let kad = config.kad.then(|| {
            let protocol = StreamProtocol::try_from_owned(protocol::kad_protocol(&config.chain_id))
                .expect("the protocol name starts with /");
            let mut kad_config = kad::Config::new(protocol);
            kad_config
                // Routing only: no records are stored or served.
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                // The periodic refresh is the event loop's (it skips a node with no peers).
                .set_periodic_bootstrap_interval(None);
            // Client mode until an external address is confirmed (`--external-addr`, a peer
            // that sees this node at one of its own addresses, or AutoNAT): only reachable
            // nodes enter other nodes' routing tables.
            Dht(kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            ))
        });
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_peers + ROOM_TO_EVICT))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(32));
        Ok(Self {
            blocked: Default::default(),
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            sync,
            mdns: mdns.into(),
            kad: kad.into(),
            autonat: config
                .kad
                .then(|| {
                    Reachability(autonat::v2::client::Behaviour::new(
                        rand::make_rng(),
                        autonat::v2::client::Config::default().with_probe_interval(AUTONAT_PROBE),
                    ))
                })
                .into(),
            autonat_server: config.kad.then(DialBack::new).into(),
            identify: identify::Behaviour::new(
                identify::Config::new(protocol::IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("gossipchain/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
        })
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
