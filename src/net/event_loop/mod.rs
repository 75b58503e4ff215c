//! The event loop: the only owner of the swarm. It forwards swarm events to the node as typed
//! [`Event`]s and executes the node's commands. Which peers to ban, refuse or dial again is
//! the [`PeerBook`]'s decision; this module is the swarm plumbing around it (and how each peer
//! was found, for `peers`); `peers.rs` carries out the peer policy: room, top-ups, addresses.

mod peers;

use super::behaviour::{Behaviour, BehaviourEvent, KAD_BOOTSTRAP, Malformed, SyncRequest};
use super::discovery::DiscoveryPolicy;
use super::peer_book::{Admission, PeerBook, PeerBookConfig, peer_of};
use super::protocol::{self, Response};
use super::wrappers::local_only;
use super::{
    Command, DialFailed, Discovery, Event, NetConfig, NetError, PeerInfo, RequestFailure, Topic,
};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, identify, identity, kad, mdns, noise, ping,
    tcp, yamux,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often the discovery policy is consulted.
const DISCOVERY_EVERY: Duration = Duration::from_secs(1);

/// What the loop knows of a connected peer.
struct PeerState {
    /// Remote address of each open connection, without a trailing `/p2p/<id>` (a dialled
    /// address carries it, an accepted one does not: the same address either way).
    addresses: HashMap<ConnectionId, Multiaddr>,
    /// How it was found (of its first connection).
    found_by: Discovery,
    /// Agent string from identify.
    agent: Option<String>,
    /// Last ping round trip.
    rtt: Option<Duration>,
    /// When its first connection opened.
    since: Instant,
    /// Whether it counts as one of the node's peers: false while its only connections are
    /// ones a Kademlia lookup opened (closed after their lookup unless the discovery policy
    /// keeps them).
    kept: bool,
}

/// Why an outgoing connection was opened.
enum DialPurpose {
    /// mDNS discovery.
    Mdns,
    /// Bootstrap entry `index`.
    Bootstrap(usize),
    /// A user's `dial`, with its reply.
    User(oneshot::Sender<Result<PeerId, DialFailed>>),
    /// A peer of the Kademlia routing table, to top the connections up.
    Kad,
}

/// Owns the swarm; see the module doc.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    config: NetConfig,
    blocks_topic: IdentTopic,
    txs_topic: IdentTopic,
    peers: HashMap<PeerId, PeerState>,
    dials: HashMap<ConnectionId, DialPurpose>,
    /// Peers whose connections are being closed to make room (still counted by libp2p until
    /// they are closed).
    closing: HashSet<PeerId>,
    pending: HashMap<OutboundRequestId, u64>,
    /// Bans, rate limits, redials.
    book: PeerBook,
    listen_addrs: Vec<Multiaddr>,
    /// Which DHT peers to dial and when to walk the DHT.
    discovery: DiscoveryPolicy,
    /// When to consult it next.
    next_discovery: Instant,
    /// When to refresh the DHT's routing table next (a bootstrap), if it has peers by then.
    next_kad_bootstrap: Instant,
    /// This chain's Kademlia protocol, to tell which peers speak it.
    kad_protocol: StreamProtocol,
    /// libp2p's event metrics (connections, identify, kad, ping, gossipsub events).
    metrics: libp2p::metrics::Metrics,
}

/// A failed dial in one line for the user: for each address tried, the innermost cause
/// ("Connection refused (os error 111)"), not the transport layers' nested lists.
fn dial_error_text(error: &libp2p::swarm::DialError) -> String {
    match error {
        libp2p::swarm::DialError::Transport(tries) => {
            let causes: Vec<String> = tries
                .iter()
                .map(|(addr, e)| {
                    let mut cause: &dyn std::error::Error = e;
                    while let Some(inner) = cause.source() {
                        cause = inner;
                    }
                    let text = cause.to_string();
                    let text = text.lines().last().unwrap_or_default().trim();
                    (addr, text.trim_start_matches("- ").to_string())
                })
                .map(|(addr, text)| {
                    if tries.len() == 1 {
                        text
                    } else {
                        format!("{addr}: {text}")
                    }
                })
                .collect();
            causes.join("; ")
        }
        other => other.to_string().lines().collect::<Vec<_>>().join(" "),
    }
}

/// Whether an address is on a loopback interface.
fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

impl EventLoop {
    pub(super) fn new(
        keypair: identity::Keypair,
        config: NetConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Result<Self, NetError> {
        let build = |e: &dyn std::fmt::Display| NetError::Build(e.to_string());
        let behaviour_config = config.behaviour.clone();
        // libp2p's metrics go to the node's registry, or to one dropped with the event loop.
        let shared = config.metrics.clone();
        let mut own = prometheus_client::registry::Registry::default();
        let mut guard = shared
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()));
        let registry = match guard.as_deref_mut() {
            Some(r) => r,
            None => &mut own,
        };
        let metrics = libp2p::metrics::Metrics::new(registry);
        let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| build(&e))?;
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        // `/dns4`, `/dns6` and `/dns` addresses (`--peer /dns4/node1/tcp/4001`), resolved with
        // the system's resolver configuration (/etc/resolv.conf) when dialled.
        let builder = builder.with_dns().map_err(|e| build(&e))?;
        let mut swarm = builder
            .with_bandwidth_metrics(registry.sub_registry_with_prefix("libp2p"))
            .with_behaviour(|key| {
                Behaviour::new(key, &behaviour_config)
                    .map(|b| b.with_metrics(registry.sub_registry_with_prefix("libp2p")))
            })
            .map_err(|e| build(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let blocks_topic = IdentTopic::new(protocol::blocks_topic(&config.behaviour.chain_id));
        let txs_topic = IdentTopic::new(protocol::txs_topic(&config.behaviour.chain_id));
        for topic in [&blocks_topic, &txs_topic] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| build(&e))?;
        }
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        for addr in &config.external {
            // Confirmed as given: Kademlia then runs in server mode and announces it.
            swarm.add_external_address(addr.clone());
        }
        let kad_protocol =
            StreamProtocol::try_from_owned(protocol::kad_protocol(&config.behaviour.chain_id))
                .map_err(|e| build(&e))?;
        let now = Instant::now();
        let discovery = DiscoveryPolicy::new(config.target_peers, now);
        let book = PeerBook::new(
            PeerBookConfig {
                ban_duration: config.ban_duration,
                requests_per_sec: config.requests_per_sec,
                request_burst: config.request_burst,
                ..PeerBookConfig::default()
            },
            *swarm.local_peer_id(),
            &config.bootstrap,
            now,
        );
        Ok(Self {
            swarm,
            commands,
            events,
            config,
            blocks_topic,
            txs_topic,
            peers: HashMap::new(),
            dials: HashMap::new(),
            closing: HashSet::new(),
            pending: HashMap::new(),
            book,
            listen_addrs: Vec::new(),
            discovery,
            next_discovery: now,
            next_kad_bootstrap: now + KAD_BOOTSTRAP,
            kad_protocol,
            metrics,
        })
    }

    /// Runs until [`super::Client::shutdown`] or until every client and the event receiver are
    /// gone. Dropping the swarm at the end closes every connection.
    pub async fn run(mut self) {
        if self.swarm.external_addresses().next().is_some() && !self.emit_reachable().await {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    if !self.on_swarm_event(event).await {
                        break;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => {
                        self.on_command(command);
                        if !self.drain_commands() {
                            break;
                        }
                    }
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("network event loop stopped");
    }

    /// Runs every command queued behind the one just taken (at most a queue's worth, so swarm
    /// events still get their turn): a burst from the node is never left waiting behind one
    /// swarm event per command. False on a shutdown.
    fn drain_commands(&mut self) -> bool {
        for _ in 0..super::CHANNEL {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) => return false,
                Ok(command) => self.on_command(command),
                Err(_) => break,
            }
        }
        true
    }

    /// Counts a swarm event, and the behaviour events libp2p's metrics know, in the registry.
    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        self.metrics.record(event);
        if let SwarmEvent::Behaviour(e) = event {
            match e {
                BehaviourEvent::Gossipsub(e) => self.metrics.record(e),
                BehaviourEvent::Identify(e) => self.metrics.record(e),
                BehaviourEvent::Kad(e) => self.metrics.record(e),
                BehaviourEvent::Ping(e) => self.metrics.record(e),
                _ => {}
            }
        }
    }

    /// Hands an event to the node; false if the node is gone.
    async fn emit(&mut self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Tells the node every address others can dial this node at.
    async fn emit_reachable(&mut self) -> bool {
        let all = self.swarm.external_addresses().cloned().collect();
        self.emit(Event::Reachable(all)).await
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for peer in self.book.expire_bans(now) {
            self.unban(peer);
        }
        if now >= self.next_discovery {
            self.next_discovery = now + DISCOVERY_EVERY;
            self.discover(now);
        }
        if now >= self.next_kad_bootstrap {
            self.next_kad_bootstrap = now + KAD_BOOTSTRAP;
            self.refresh_routing_table();
        }
        self.redial_mdns_peers(now);
        // Without the DHT nothing replaces a bootnode: it is redialled whatever the count.
        let short =
            self.kept_peers() < self.discovery.target() || !self.swarm.behaviour().kad.is_enabled();
        let swarm = &self.swarm;
        let due = self
            .book
            .due_bootstrap_dials(now, short, |p| swarm.is_connected(p));
        for dial in due {
            let opts = match dial.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![dial.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id()
                    .address(dial.addr.clone())
                    .build(),
            };
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.dials.insert(id, DialPurpose::Bootstrap(dial.index));
                }
                Err(e) => {
                    tracing::debug!(addr = %dial.addr, "dial not started: {e}");
                    self.book.bootstrap_failed(dial.index, now);
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => {
                let topic = match topic {
                    Topic::Blocks => self.blocks_topic.clone(),
                    Topic::Txs => self.txs_topic.clone(),
                };
                match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    Ok(_) => {}
                    // Nobody to send to yet, or already sent: peers will get it by sync.
                    Err(PublishError::NoPeersSubscribedToTopic | PublishError::Duplicate) => {}
                    Err(e) => tracing::warn!("publish failed: {e}"),
                }
            }
            Command::Validation {
                id,
                source,
                acceptance,
            } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::Request { peer, request, tag } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncRequest::Valid(request));
                self.pending.insert(id, tag);
            }
            Command::Respond { channel, response } => {
                // Fails only if the requester went away meanwhile.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Command::Ban { peer, reason } => self.ban(peer, &reason),
            Command::Dial { addr, reply } => self.dial_user(addr, reply),
            Command::Peers { reply } => {
                let gossip = &self.swarm.behaviour().gossipsub;
                let mut list: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .map(|(peer, s)| PeerInfo {
                        peer: *peer,
                        addresses: s
                            .addresses
                            .values()
                            .cloned()
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        found_by: s.found_by,
                        agent: s.agent.clone(),
                        rtt: s.rtt,
                        score: gossip.peer_score(peer).unwrap_or(0.0),
                    })
                    .collect();
                list.sort_by_key(|p| p.peer.to_string());
                let _ = reply.send(list);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Shutdown => {}
        }
    }

    fn dial_user(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, DialFailed>>) {
        let local = *self.swarm.local_peer_id();
        let opts = match peer_of(&addr) {
            Some(peer) if peer == local => {
                let _ = reply.send(Err(DialFailed::OwnAddress));
                return;
            }
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer).addresses(vec![addr]).build(),
            None => DialOpts::unknown_peer_id().address(addr).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, DialPurpose::User(reply));
            }
            Err(e) => {
                let _ = reply.send(Err(DialFailed::Refused(dial_error_text(&e))));
            }
        }
    }

    /// Handles one swarm event; false when the node is gone and the loop should end.
    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> bool {
        self.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address.clone());
                return self.emit(Event::Listening(address)).await;
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ExternalAddrConfirmed { .. } | SwarmEvent::ExternalAddrExpired { .. } => {
                return self.emit_reachable().await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let purpose = self.dials.remove(&connection_id);
                let dialer = matches!(endpoint, ConnectedPoint::Dialer { .. });
                // A dial none of ours started: Kademlia's, for a lookup (nothing else dials
                // on its own).
                let lookup = purpose.is_none() && dialer && self.swarm.behaviour().kad.is_enabled();
                let found_by = match &purpose {
                    Some(DialPurpose::Mdns) => Discovery::Mdns,
                    Some(DialPurpose::Bootstrap(_)) => Discovery::Bootstrap,
                    Some(DialPurpose::User(_)) => Discovery::Dial,
                    Some(DialPurpose::Kad) => Discovery::Kad,
                    None if matches!(endpoint, ConnectedPoint::Listener { .. }) => {
                        Discovery::Inbound
                    }
                    // Only Kademlia dials on its own (its lookups reach the peers they learn of).
                    None if self.swarm.behaviour().kad.is_enabled() => Discovery::Kad,
                    None => Discovery::Dial,
                };
                match purpose {
                    Some(DialPurpose::User(reply)) => {
                        let _ = reply.send(Ok(peer_id));
                    }
                    Some(DialPurpose::Bootstrap(i)) => {
                        self.book.bootstrap_connected(i, peer_id, Instant::now())
                    }
                    _ => {}
                }
                self.book.connected(peer_id, Instant::now());
                let state = self.peers.entry(peer_id).or_insert(PeerState {
                    addresses: HashMap::new(),
                    found_by,
                    agent: None,
                    rtt: None,
                    since: Instant::now(),
                    kept: false,
                });
                state.kept |= !lookup;
                let mut addr = endpoint.get_remote_address().clone();
                if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                    addr.pop();
                }
                state.addresses.insert(connection_id, addr);
                if num_established.get() > 1 {
                    tracing::debug!(peer = %peer_id, lookup, dialer, kept = state.kept, "another connection to a peer");
                }
                self.make_room(peer_id);
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), via = %found_by, "peer connected");
                    return self
                        .emit(Event::PeerConnected {
                            peer: peer_id,
                            found_by,
                        })
                        .await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(s) = self.peers.get_mut(&peer_id) {
                    s.addresses.remove(&connection_id);
                }
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    self.closing.remove(&peer_id);
                    self.book.disconnected(peer_id, Instant::now());
                    tracing::info!(peer = %peer_id, "peer disconnected");
                    return self.emit(Event::PeerDisconnected { peer: peer_id }).await;
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => match self.dials.remove(&connection_id) {
                Some(DialPurpose::User(reply)) => {
                    let _ = reply.send(Err(DialFailed::Unreachable(dial_error_text(&error))));
                }
                Some(DialPurpose::Bootstrap(i)) => {
                    if let Some(addr) = self.book.bootstrap_addr(i) {
                        tracing::debug!(%addr, "dial failed: {error}");
                    }
                    self.book.bootstrap_failed(i, Instant::now());
                }
                _ => tracing::debug!("dial failed: {error}"),
            },
            SwarmEvent::NewExternalAddrCandidate { address } => {
                let confirmed = self.on_external_candidate(&address);
                if confirmed {
                    return self.emit_reachable().await;
                }
            }
            SwarmEvent::Behaviour(event) => return self.on_behaviour_event(event).await,
            _ => {}
        }
        true
    }

    async fn on_behaviour_event(&mut self, event: BehaviourEvent) -> bool {
        match event {
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in list {
                    by_peer.entry(peer).or_default().push(addr);
                }
                let now = Instant::now();
                for (peer, addrs) in by_peer {
                    self.book.mdns_announced(peer, now);
                    if self.swarm.is_connected(&peer) || !self.book.should_dial_mdns(peer, now) {
                        continue;
                    }
                    tracing::debug!(%peer, ?addrs, "mdns discovered");
                    // A new local port, not the listening one: two nodes that discover each
                    // other at once would otherwise dial port-to-port, and the crossing SYNs
                    // make one TCP connection (simultaneous open) on which both Noise
                    // handshakes fail; mDNS does not report the peer again, so they would
                    // never connect.
                    let opts = DialOpts::peer_id(peer)
                        .addresses(addrs)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .allocate_new_port()
                        .build();
                    let id = opts.connection_id();
                    if self.swarm.dial(opts).is_ok() {
                        self.dials.insert(id, DialPurpose::Mdns);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_)) => {}
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let topic = if message.topic == self.blocks_topic.hash() {
                    Topic::Blocks
                } else if message.topic == self.txs_topic.hash() {
                    Topic::Txs
                } else {
                    return true;
                };
                return self
                    .emit(Event::Gossip {
                        topic,
                        source: propagation_source,
                        id: message_id,
                        data: message.data,
                    })
                    .await;
            }
            BehaviourEvent::Gossipsub(_) => {}
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        let request = match request {
                            SyncRequest::Valid(request) => request,
                            SyncRequest::Malformed(reason) => {
                                drop(channel);
                                self.ban(peer, &format!("sent a {reason}"));
                                return true;
                            }
                        };
                        match self.book.admit_request(peer, Instant::now()) {
                            Admission::Serve => {}
                            Admission::Refuse => {
                                let _ = self
                                    .swarm
                                    .behaviour_mut()
                                    .sync
                                    .send_response(channel, Response::Refused("rate limit".into()));
                                return true;
                            }
                            Admission::Ban(reason) => {
                                drop(channel);
                                self.ban(peer, &reason);
                                return true;
                            }
                        }
                        return self
                            .emit(Event::Request {
                                peer,
                                request,
                                channel,
                            })
                            .await;
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(tag) = self.pending.remove(&request_id) {
                            return self
                                .emit(Event::Response {
                                    peer,
                                    tag,
                                    result: Ok(response),
                                })
                                .await;
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let request_response::OutboundFailure::Io(e) = &error
                    && Malformed::is(e)
                {
                    self.ban(peer, &format!("answered with a {e}"));
                }
                if let Some(tag) = self.pending.remove(&request_id) {
                    return self
                        .emit(Event::Response {
                            peer,
                            tag,
                            result: Err(RequestFailure::from(&error)),
                        })
                        .await;
                }
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(%peer, "inbound sync request failed: {error}");
            }
            BehaviourEvent::Sync(_) => {}
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                // Kademlia learns a peer's listen addresses from identify, if it speaks this
                // chain's DHT. Loopback addresses only from a peer on loopback itself.
                let on_loopback = self
                    .peers
                    .get(&peer_id)
                    .is_some_and(|s| s.addresses.values().any(is_loopback));
                if info.protocols.contains(&self.kad_protocol)
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    for addr in info.listen_addrs {
                        if !is_loopback(&addr) || on_loopback {
                            kad.add_address(&peer_id, addr);
                        }
                    }
                }
                if let Some(s) = self.peers.get_mut(&peer_id) {
                    s.agent = Some(info.agent_version);
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Ping(ping::Event { peer, result, .. }) => {
                if let (Ok(rtt), Some(s)) = (result, self.peers.get_mut(&peer)) {
                    s.rtt = Some(rtt);
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                tracing::debug!(%peer, "DHT routing table updated");
            }
            BehaviourEvent::Kad(kad::Event::ModeChanged { new_mode }) => {
                tracing::info!(mode = %new_mode, "DHT mode changed (server: this node answers DHT queries and is announced)");
            }
            BehaviourEvent::Kad(_) => {}
            BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            }) => match result {
                Ok(()) => {
                    tracing::info!(addr = %tested_addr, %server, "external address confirmed (a peer dialled it back: AutoNAT)")
                }
                Err(e) => {
                    tracing::info!(addr = %tested_addr, %server, "not reachable there: a peer's dial-back failed ({e}); others cannot dial this node at that address (behind a NAT, forward the port, or give --external-addr)")
                }
            },
            BehaviourEvent::AutonatServer(autonat::v2::server::Event {
                client,
                tested_addr,
                result,
                ..
            }) => {
                tracing::debug!(peer = %client, addr = %tested_addr, ok = result.is_ok(), "dialled a peer back for AutoNAT");
            }
            BehaviourEvent::Blocked(_) | BehaviourEvent::Limits(_) => {}
        }
        true
    }
}
