//! The network layer. [`new`] returns a [`Client`] to send commands, a receiver of typed
//! [`Event`]s, and the [`EventLoop`] that alone owns the libp2p swarm (the shape of the
//! rust-libp2p file-sharing example). It turns wire messages into events and commands into
//! wire messages; what to accept, request or publish is the node's decision.

pub mod behaviour;
pub mod discovery;
mod event_loop;
pub mod peer_book;
pub mod protocol;
pub mod wrappers;

pub use event_loop::EventLoop;

use crate::chain::ChainId;
use behaviour::BehaviourConfig;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId, identity};
use protocol::{Request, Response};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How a connected peer was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Announced by mDNS on the LAN.
    Mdns,
    /// A `--peer` address given at start-up (redialled after a drop while the node is short
    /// of peers).
    Bootstrap,
    /// A `dial` command.
    Dial,
    /// It connected to us.
    Inbound,
    /// Found in the Kademlia DHT.
    Kad,
}

impl std::fmt::Display for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Discovery::Mdns => "mdns",
            Discovery::Bootstrap => "--peer",
            Discovery::Dial => "dial",
            Discovery::Inbound => "inbound",
            Discovery::Kad => "kad",
        })
    }
}

/// A connected peer, as the `peers` command shows it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// Remote addresses of its open connections.
    pub addresses: Vec<Multiaddr>,
    /// How it was found.
    pub found_by: Discovery,
    /// Its agent string, once identify has run.
    pub agent: Option<String>,
    /// Last ping round trip.
    pub rtt: Option<Duration>,
    /// Its gossipsub score.
    pub score: f64,
}

/// Which gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Mined blocks, as compact blocks.
    Blocks,
    /// New transfers.
    Txs,
}

/// What the network reports to the node.
#[derive(Debug)]
pub enum Event {
    /// Listening on a new address.
    Listening(Multiaddr),
    /// The addresses others can dial this node at changed (one was confirmed, by
    /// `--external-addr`, a peer that sees this node at one of its own addresses or AutoNAT,
    /// or one expired): all of them now.
    Reachable(Vec<Multiaddr>),
    /// First connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// How it was found.
        found_by: Discovery,
    },
    /// Last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A gossip message awaiting validation: the node must answer with
    /// [`Client::report_validation`].
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The peer that forwarded it to us.
        source: PeerId,
        /// Its gossip id.
        id: MessageId,
        /// The payload (a block or transfer in consensus encoding).
        data: Vec<u8>,
    },
    /// A sync request to answer with [`Client::respond`].
    Request {
        /// Who asks.
        peer: PeerId,
        /// What.
        request: Request,
        /// Where the answer goes.
        channel: ResponseChannel<Response>,
    },
    /// The answer to a [`Client::request`], or why there is none.
    Response {
        /// Who answered.
        peer: PeerId,
        /// The tag given with the request.
        tag: u64,
        /// The response, or the failure (timeout, closed connection, bad encoding).
        result: Result<Response, RequestFailure>,
    },
}

/// Commands to the event loop.
#[derive(Debug)]
enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    Validation {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Request {
        peer: PeerId,
        request: Request,
        tag: u64,
    },
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Ban {
        peer: PeerId,
        reason: String,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, DialFailed>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Shutdown,
}

impl Command {
    /// What the command is, for logs.
    fn kind(&self) -> &'static str {
        match self {
            Command::Publish { .. } => "publish",
            Command::Validation { .. } => "gossip verdict",
            Command::Request { .. } => "sync request",
            Command::Respond { .. } => "sync response",
            Command::Ban { .. } => "ban",
            Command::Dial { .. } => "dial",
            Command::Peers { .. } => "peers",
            Command::ListenAddrs { .. } => "listen addresses",
            Command::Shutdown => "shutdown",
        }
    }
}

/// Why a command did not reach the network's event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotQueued {
    /// Its queue was full.
    #[error("its queue is full")]
    Full,
    /// It has stopped.
    #[error("it has stopped")]
    Stopped,
}

/// Settings of the network layer.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and redial with backoff (`--peer`).
    pub bootstrap: Vec<Multiaddr>,
    /// Behaviour settings.
    pub behaviour: BehaviourConfig,
    /// Inbound sync requests a peer may send per second, sustained.
    pub requests_per_sec: f64,
    /// Inbound sync requests a peer may send in a burst.
    pub request_burst: f64,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Addresses others can reach this node at (`--external-addr`), announced in the DHT.
    pub external: Vec<Multiaddr>,
    /// Connections the node seeks through the DHT (it stops dialling there).
    pub target_peers: usize,
    /// Where libp2p registers its metrics (bandwidth, connections, gossipsub, identify, kad,
    /// ping) at start-up, for `GET /metrics`; none: they are kept nowhere.
    pub metrics: Option<std::sync::Arc<std::sync::Mutex<prometheus_client::registry::Registry>>>,
}

impl NetConfig {
    /// Defaults for a chain: listen on any IPv4 address with an OS-chosen port, mDNS on.
    pub fn new(chain_id: ChainId, max_block_bytes: u32) -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            behaviour: BehaviourConfig {
                chain_id,
                max_block_bytes,
                mdns: true,
                kad: true,
                max_peers: 64,
                request_timeout: Duration::from_secs(20),
                heartbeat: Duration::from_millis(500),
            },
            requests_per_sec: 50.0,
            request_burst: 200.0,
            ban_duration: Duration::from_secs(600),
            external: Vec::new(),
            target_peers: 8,
            metrics: None,
        }
    }
}

/// Why a sync request got no answer (libp2p's outbound failure, with the cause kept as text
/// only where the transport gives nothing more precise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    /// The peer could not be dialled.
    #[error("the peer could not be dialled")]
    Dial,
    /// No answer within the request deadline.
    #[error("no answer within the deadline")]
    Timeout,
    /// The connection closed before the answer.
    #[error("the connection closed before the answer")]
    ConnectionClosed,
    /// The peer does not speak the sync protocol.
    #[error("the peer does not speak the sync protocol")]
    Unsupported,
    /// The stream failed, or the answer could not be decoded.
    #[error("stream error: {0}")]
    Io(String),
}

impl RequestFailure {
    /// A stable snake-case name, for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            RequestFailure::Dial => "dial",
            RequestFailure::Timeout => "timeout",
            RequestFailure::ConnectionClosed => "connection_closed",
            RequestFailure::Unsupported => "unsupported",
            RequestFailure::Io(_) => "io",
        }
    }
}

impl From<&libp2p::request_response::OutboundFailure> for RequestFailure {
    fn from(f: &libp2p::request_response::OutboundFailure) -> Self {
        use libp2p::request_response::OutboundFailure as F;
        match f {
            F::DialFailure => RequestFailure::Dial,
            F::Timeout => RequestFailure::Timeout,
            F::ConnectionClosed => RequestFailure::ConnectionClosed,
            F::UnsupportedProtocols => RequestFailure::Unsupported,
            F::Io(e) => RequestFailure::Io(e.to_string()),
        }
    }
}

/// Why a `dial` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialFailed {
    /// The address is this node's own.
    #[error("that is this node's own address")]
    OwnAddress,
    /// The swarm refused to start the dial (a banned peer, a peer id that does not match, no
    /// address it can use).
    #[error("{0}")]
    Refused(String),
    /// Every address was tried and failed; the innermost cause of each, in one line.
    #[error("{0}")]
    Unreachable(String),
    /// The network has stopped (the node is shutting down).
    #[error("the network has stopped")]
    NetworkStopped,
}

impl DialFailed {
    /// A stable snake-case name, for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            DialFailed::OwnAddress => "own_address",
            DialFailed::Refused(_) => "refused",
            DialFailed::Unreachable(_) => "unreachable",
            DialFailed::NetworkStopped => "network_stopped",
        }
    }
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The swarm could not be built.
    #[error("cannot start the network: {0}")]
    Build(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
}

/// A cheap, cloneable handle that sends commands to the event loop.
#[derive(Clone)]
pub struct Client {
    /// Commands to the loop (bounded).
    tx: mpsc::Sender<Command>,
    /// Our peer id.
    local_peer_id: PeerId,
}

/// Capacity of the command and event channels.
const CHANNEL: usize = 4096;

impl Client {
    /// Our peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Sends without waiting: the node never blocks on the network (the network may be
    /// waiting to hand the node an event). A command that cannot be queued is logged and
    /// reported to the caller.
    fn send(&self, command: Command) -> Result<(), NotQueued> {
        self.tx.try_send(command).map_err(|e| {
            let (why, command) = match e {
                mpsc::error::TrySendError::Full(c) => (NotQueued::Full, c),
                mpsc::error::TrySendError::Closed(c) => (NotQueued::Stopped, c),
            };
            tracing::warn!("network command not queued ({why}): {}", command.kind());
            why
        })
    }

    /// Gossips a block or transfer (its consensus encoding). A failure is logged; peers still
    /// learn of it by sync (status rounds, mempool requests).
    pub fn publish(&self, topic: Topic, data: Vec<u8>) {
        let _ = self.send(Command::Publish { topic, data });
    }

    /// Tells gossipsub whether a message may be forwarded (a failure is logged; gossipsub
    /// forgets an unvalidated message after its cache time).
    pub fn report_validation(&self, id: MessageId, source: PeerId, acceptance: MessageAcceptance) {
        let _ = self.send(Command::Validation {
            id,
            source,
            acceptance,
        });
    }

    /// Sends a sync request; the answer comes as [`Event::Response`] with the same `tag`.
    /// `Err`: the request never left (no event will follow), the caller may retry.
    pub fn request(&self, peer: PeerId, request: Request, tag: u64) -> Result<(), NotQueued> {
        self.send(Command::Request { peer, request, tag })
    }

    /// Answers a sync request (a failure is logged: the requester sees its request time out).
    pub fn respond(&self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self.send(Command::Respond { channel, response });
    }

    /// Disconnects a peer and refuses it for the configured ban duration (a failure is
    /// logged).
    pub fn ban(&self, peer: PeerId, reason: impl Into<String>) {
        let _ = self.send(Command::Ban {
            peer,
            reason: reason.into(),
        });
    }

    /// Asks the loop to stop; it closes every connection as it ends.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Shutdown);
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Dials an address (with or without `/p2p/<id>`), resolving when connected or failed.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, DialFailed> {
        self.ask(|reply| Command::Dial { addr, reply })
            .await
            .unwrap_or(Err(DialFailed::NetworkStopped))
    }

    /// The connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(|reply| Command::Peers { reply })
            .await
            .unwrap_or_default()
    }

    /// Addresses we listen on.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.ask(|reply| Command::ListenAddrs { reply })
            .await
            .unwrap_or_default()
    }
}

/// Builds the swarm and starts listening. Run the returned [`EventLoop`] on a task.
pub fn new(
    keypair: identity::Keypair,
    config: NetConfig,
) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), NetError> {
    let local_peer_id = keypair.public().to_peer_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL);
    let (event_tx, event_rx) = mpsc::channel(CHANNEL);
    let event_loop = EventLoop::new(keypair, config, cmd_rx, event_tx)?;
    Ok((
        Client {
            tx: cmd_tx,
            local_peer_id,
        },
        event_rx,
        event_loop,
    ))
}
