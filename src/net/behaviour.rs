//! The libp2p behaviours the node runs, and their configuration: gossipsub with manual
//! validation and peer scoring, the sync request-response protocol with size limits, mDNS,
//! a Kademlia DHT for discovery beyond one LAN, AutoNAT v2 to learn whether others can dial this
//! node, identify, ping, connection limits and a block list for misbehaving peers.

use super::protocol::{self, Request, Response};
use super::wrappers::{Dht, DialBack, Reachability};
use crate::chain::ChainId;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, gossipsub, identify, identity,
    kad, mdns, ping, request_response,
};
use sha2::{Digest, Sha256};
use std::io;
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
/// occupy the id (and the duplicate cache) of the real block with the same header. Anonymous
/// messages need it: gossipsub's default id (author and sequence number) would give every
/// one of them the same id.
pub fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
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

/// Gossip messages of more protobuf bytes than this are announced with an IDONTWANT to the
/// mesh on receipt (not on publishing); an IDONTWANT costs about 40 bytes a peer. A transfer's
/// message takes 193 bytes, an empty compact block's 205: both are announced.
pub const IDONTWANT_MIN_BYTES: usize = 100;

/// Builds the gossipsub behaviour of a node: anonymous messages (no author, sequence number or
/// signature, as Ethereum's consensus layer sends them), SHA-256 message ids, the message size
/// limit and heartbeat of `config`, and peer scoring on the chain's blocks and transactions
/// topics. It needs no key: the node's identity is its transport's (Noise), and its gossip
/// messages are not signed.
///
/// With `validate_messages`, a received message is forwarded only once the application has
/// reported it valid (what a node does); without it, at once. Both the node and the propagation
/// benchmark's bare gossipsub network build theirs here, so they cannot drift apart.
pub fn new_gossipsub(
    config: &BehaviourConfig,
    validate_messages: bool,
) -> Result<gossipsub::Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let topics = [
        gossipsub::IdentTopic::new(protocol::blocks_topic(&config.chain_id)).hash(),
        gossipsub::IdentTopic::new(protocol::txs_topic(&config.chain_id)).hash(),
    ];
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        // Anonymous (libp2p's StrictNoSign): a message with an author, sequence number or
        // signature is invalid. Gossipsub's signature proves only who first published the
        // bytes, which nothing here needs: a transfer is signed by its sender, a block carries
        // its proof of work, the node judges and bans the peer that relayed a message (the
        // propagation source), never its author, and message ids are the payload's SHA-256
        // (so duplicates are found without author or sequence number). The envelope cost 165
        // bytes of a transfer's 358-byte message.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(message_id)
        .max_transmit_size(protocol::max_transmit_size(config.max_block_bytes))
        // Over a topic's own limit, gossipsub counts a message as invalid (a score penalty);
        // over the frame limit above it only drops the stream, unseen by scoring and the node.
        .max_transmit_size_for_topic(protocol::MAX_TX_GOSSIP_BYTES, topics[1].clone())
        .heartbeat_interval(config.heartbeat)
        // IDONTWANT (gossipsub v1.2) for every message that is not tiny: a transfer's message
        // takes 193 bytes, under the library's 1 000-byte default, so without this the
        // mesh peers that receive a transfer at the same time all send it on to each other.
        .idontwant_message_size_threshold(IDONTWANT_MIN_BYTES)
        // Not after publishing (the library's default): the publisher sends the message to
        // every mesh peer at once, so none has it from another route first to send it back;
        // an IDONTWANT ahead of it only cost each of them about 40 bytes a message.
        .idontwant_on_publish(false);
    if validate_messages {
        builder.validate_messages();
    }
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, builder.build()?)?;
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
        let gossipsub = new_gossipsub(config, true)?;

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
