//! The adversary's tools: peers that speak the protocol without a node behind them, a swarm
//! that writes arbitrary bytes on `/gossipchain/sync/1`, and a network of two honest nodes and a
//! watcher to attack.

use crate::common::*;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use gossipchain::chain::{Address, Block, BlockHash, ChainParams, ChainState, Transfer};
use gossipchain::net::protocol::{self, Request, Response, Status};
use gossipchain::net::{self, Event, NetConfig, Topic};
use gossipchain::node::{BlockId, BlockState};
use gossipchain::testkit::{self, key};
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, identity, noise, tcp, yamux};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a raw peer does with a sync request it receives.
pub enum Answer {
    /// Answer with this.
    Respond(Response),
    /// Keep the channel open and never answer (the requester times out).
    Hold,
}

/// Decides the answer to each request a raw peer receives.
pub type Responder = Box<dyn FnMut(&Request) -> Answer + Send>;

/// A status on `chain_id` at genesis with no work: claims nothing.
pub fn genesis_status(chain_id: gossipchain::chain::ChainId) -> Status {
    Status::new(chain_id, chain_id, 0, 0)
}

/// Answers like a peer at genesis with nothing to offer: a genesis status, an empty mempool,
/// no blocks (it claims no work, so an empty answer is honest).
pub fn quiet() -> Responder {
    let chain_id = params().chain_id();
    Box::new(move |r| {
        Answer::Respond(match r {
            Request::Status(_) => Response::Status(genesis_status(chain_id)),
            Request::GetMempool => Response::Transactions(Vec::new()),
            Request::GetBlocks { .. } | Request::GetBodies { .. } => Response::Blocks(Vec::new()),
            Request::GetHeaders { .. } => Response::Headers(Vec::new()),
            Request::Transactions(_) => Response::Accepted(0),
            Request::GetBlockTxs { .. } => Response::Refused("no such block".into()),
        })
    })
}

/// Answers the node's status request with `status`, and `blocks` to its requests for a chain
/// (headers, bodies or blocks); the rest as [`quiet`].
pub fn claiming(status: Status, mut blocks: impl FnMut() -> Answer + Send + 'static) -> Responder {
    let mut rest = quiet();
    Box::new(move |r| match r {
        Request::Status(_) => Answer::Respond(Response::Status(status)),
        Request::GetBlocks { .. } | Request::GetHeaders { .. } | Request::GetBodies { .. } => {
            blocks()
        }
        other => rest(other),
    })
}

/// Whether a request asks for a chain: the first request of a download (headers first).
pub fn is_download(n: &Note) -> bool {
    matches!(
        n,
        Note::Request(Request::GetHeaders { .. } | Request::GetBlocks { .. })
    )
}

/// What a raw peer reports to the test.
#[derive(Debug)]
pub enum Note {
    Connected,
    Disconnected,
    /// A gossip message (the raw peer never forwards it).
    Gossip(Topic, Vec<u8>),
    /// A sync request it received (answered by its responder).
    Request(Request),
    /// The answer to one of its own requests.
    Response(u64, Result<Response, gossipchain::net::RequestFailure>),
}

/// A peer built from our own network layer with no node actor behind it: it validates nothing
/// and says what its responder says. Its event loop runs on a task; dropping it shuts it down.
pub struct RawPeer {
    pub client: net::Client,
    pub id: PeerId,
    notes: mpsc::UnboundedReceiver<Note>,
    task: JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.client.shutdown();
        self.task.abort();
    }
}

/// How a raw peer is built.
pub struct RawOpts {
    /// The chain whose topics it joins.
    pub params: ChainParams,
    /// Block size its gossip limits are derived from (a liar may raise its own).
    pub max_block_bytes: u32,
    pub responder: Responder,
}

impl RawOpts {
    pub fn new(responder: Responder) -> Self {
        let params = params();
        Self {
            max_block_bytes: params.max_block_bytes,
            params,
            responder,
        }
    }
}

impl RawPeer {
    /// Starts a raw peer with a fresh identity (it listens nowhere and dials nobody yet).
    pub fn spawn(opts: RawOpts) -> Self {
        let mut c = NetConfig::new(opts.params.chain_id(), opts.max_block_bytes);
        c.listen = Vec::new();
        c.behaviour.mdns = false;
        let (client, mut events, event_loop) =
            net::new(identity::Keypair::generate_ed25519(), c).expect("raw peer starts");
        tokio::spawn(event_loop.run());
        let (tx, notes) = mpsc::unbounded_channel();
        let answering = client.clone();
        let mut responder = opts.responder;
        let task = tokio::spawn(async move {
            let mut held: Vec<ResponseChannel<Response>> = Vec::new();
            while let Some(event) = events.recv().await {
                let note = match event {
                    Event::Listening(_) | Event::Reachable(_) => continue,
                    Event::PeerConnected { .. } => Note::Connected,
                    Event::PeerDisconnected { .. } => Note::Disconnected,
                    Event::Gossip {
                        topic,
                        source,
                        id,
                        data,
                    } => {
                        answering.report_validation(id, source, MessageAcceptance::Ignore);
                        Note::Gossip(topic, data)
                    }
                    Event::Request {
                        request, channel, ..
                    } => {
                        match responder(&request) {
                            Answer::Respond(r) => answering.respond(channel, r),
                            Answer::Hold => held.push(channel),
                        }
                        Note::Request(request)
                    }
                    Event::Response { tag, result, .. } => Note::Response(tag, result),
                };
                if tx.send(note).is_err() {
                    break;
                }
            }
        });
        let id = client.local_peer_id();
        Self {
            client,
            id,
            notes,
            task,
        }
    }

    /// Starts a raw peer and connects it to `addr`.
    pub async fn connect(addr: &Multiaddr, opts: RawOpts) -> Self {
        let peer = Self::spawn(opts);
        peer.client
            .dial(addr.clone())
            .await
            .expect("the raw peer connects");
        peer
    }

    /// The next note, or `None` after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Note> {
        tokio::time::timeout(timeout, self.notes.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for a note matching `pred` (others are dropped) with the test deadline.
    pub async fn expect(&mut self, what: &str, mut pred: impl FnMut(&Note) -> bool) -> Note {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(n) if pred(&n) => return n,
                Some(_) => {}
                None => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Notes already received, without waiting.
    pub fn drain(&mut self) -> Vec<Note> {
        let mut out = Vec::new();
        while let Ok(n) = self.notes.try_recv() {
            out.push(n);
        }
        out
    }
}

/// A request-response codec that reads and writes raw bytes: whatever the test wants on the
/// wire, well-formed or not.
#[derive(Clone, Default)]
pub struct RawCodec;

/// Most bytes the raw codec reads of one message.
const RAW_LIMIT: u64 = 64 << 20;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(RAW_LIMIT).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(RAW_LIMIT).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await
    }
}

/// CBOR of a sync message, as a well-behaved peer writes it.
pub fn cbor<T: serde::Serialize>(message: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), message).expect("encodes")
}

/// What a [`RawSync`] peer reports.
#[derive(Debug)]
pub enum SyncNote {
    Connected,
    Disconnected,
    DialFailed,
    /// It received a request (and answered it as its responder said).
    Request,
    /// One of its requests was answered, or failed.
    Response,
}

enum SyncCmd {
    Dial(Multiaddr),
    Request(PeerId, Vec<u8>),
}

/// Answers each request a [`RawSync`] peer receives with bytes, or drops it with `None`.
pub type RawResponder = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// Answers like [`quiet`], in well-formed CBOR.
pub fn raw_quiet() -> RawResponder {
    let chain_id = params().chain_id();
    Box::new(move |bytes| {
        let request: Request = cbor4ii::serde::from_slice(bytes).ok()?;
        Some(cbor(&match request {
            Request::Status(_) => Response::Status(genesis_status(chain_id)),
            Request::GetMempool => Response::Transactions(Vec::new()),
            Request::GetBlocks { .. } | Request::GetBodies { .. } => Response::Blocks(Vec::new()),
            Request::GetHeaders { .. } => Response::Headers(Vec::new()),
            Request::Transactions(_) => Response::Accepted(0),
            Request::GetBlockTxs { .. } => Response::Refused("no such block".into()),
        }))
    })
}

/// A libp2p swarm speaking only `/gossipchain/sync/1`, with raw bytes as messages.
pub struct RawSync {
    pub id: PeerId,
    cmds: mpsc::UnboundedSender<SyncCmd>,
    notes: mpsc::UnboundedReceiver<SyncNote>,
    task: JoinHandle<()>,
}

impl Drop for RawSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawSync {
    /// Starts one with a fresh identity and dials `addr`; waits until connected.
    pub async fn connect(addr: &Multiaddr, mut responder: RawResponder) -> Self {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RawCodec,
                    [(
                        StreamProtocol::new(protocol::SYNC_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(64),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let id = *swarm.local_peer_id();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let (note_tx, notes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let note = tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        None => break,
                        Some(SyncCmd::Dial(addr)) => match swarm.dial(addr) {
                            Ok(()) => continue,
                            Err(_) => SyncNote::DialFailed,
                        },
                        Some(SyncCmd::Request(peer, bytes)) => {
                            swarm.behaviour_mut().send_request(&peer, bytes);
                            continue;
                        }
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { num_established, .. }
                            if num_established.get() == 1 => SyncNote::Connected,
                        SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                            SyncNote::Disconnected
                        }
                        SwarmEvent::OutgoingConnectionError { .. } => SyncNote::DialFailed,
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message, ..
                        }) => match message {
                            request_response::Message::Request { request, channel, .. } => {
                                if let Some(answer) = responder(&request) {
                                    let _ = swarm.behaviour_mut().send_response(channel, answer);
                                }
                                SyncNote::Request
                            }
                            request_response::Message::Response { .. } => SyncNote::Response,
                        },
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                            ..
                        }) => SyncNote::Response,
                        _ => continue,
                    },
                };
                if note_tx.send(note).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            id,
            cmds: cmd_tx,
            notes,
            task,
        };
        peer.dial(addr);
        peer.expect("the raw sync peer to connect", |n| {
            matches!(n, SyncNote::Connected)
        })
        .await;
        peer
    }

    pub fn dial(&self, addr: &Multiaddr) {
        let _ = self.cmds.send(SyncCmd::Dial(addr.clone()));
    }

    /// Sends `bytes` as a request on a new stream.
    pub fn request(&self, peer: PeerId, bytes: Vec<u8>) {
        let _ = self.cmds.send(SyncCmd::Request(peer, bytes));
    }

    /// Waits for a note matching `pred` with the test deadline.
    pub async fn expect(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&SyncNote) -> bool,
    ) -> SyncNote {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.notes.recv()).await {
                Ok(Some(n)) if pred(&n) => return n,
                Ok(Some(_)) => {}
                _ => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// After a ban: a redial is refused (fails, or is closed at once by the honest side).
    pub async fn assert_redial_refused(&mut self, addr: &Multiaddr) {
        self.dial(addr);
        self.expect("the banned redial to fail or be closed", |n| {
            matches!(n, SyncNote::DialFailed | SyncNote::Disconnected)
        })
        .await;
    }
}

/// The watcher: a raw peer connected only to the honest node that records every gossip message
/// the honest node forwards to it.
pub struct Watcher {
    pub peer: RawPeer,
    /// Every gossip payload received so far.
    pub seen: Vec<(Topic, Vec<u8>)>,
}

impl Watcher {
    fn pull(&mut self) {
        for n in self.peer.drain() {
            if let Note::Gossip(t, d) = n {
                self.seen.push((t, d));
            }
        }
    }

    /// Waits until the honest node gossiped the block `hash` to the watcher; false after
    /// `timeout`.
    pub async fn sees_block(&mut self, hash: BlockHash, timeout: Duration) -> bool {
        let decoded = |d: &[u8]| {
            gossipchain::chain::compact::CompactBlock::decode(d, 1 << 20, 10_000)
                .ok()
                .map(|c| c.header.compute_hash())
        };
        self.pull();
        if self
            .seen
            .iter()
            .any(|(t, d)| *t == Topic::Blocks && decoded(d) == Some(hash))
        {
            return true;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.peer.next_within(left).await {
                Some(Note::Gossip(t, d)) => {
                    let hit = t == Topic::Blocks && decoded(&d) == Some(hash);
                    self.seen.push((t, d));
                    if hit {
                        return true;
                    }
                }
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Asserts that none of `payloads` reached the watcher.
    pub fn assert_never_saw(&mut self, what: &str, payloads: &[Vec<u8>]) {
        self.pull();
        for (_, d) in &self.seen {
            assert!(
                !payloads.contains(d),
                "{what}: the honest node forwarded it to the watcher"
            );
        }
    }
}

/// The network under attack: `honest` (the target), `other` (an honest node connected to it
/// only) and the watcher; `mirror` follows the honest best chain. The shared history: two
/// blocks paying key(1), then a block in which key(1) pays key(2) 10 coins with fee 1
/// (`mined_transfer`), so key(1) holds 140 coins (it mined that block too) at nonce 1.
pub struct Net {
    pub honest: TestNode,
    pub other: TestNode,
    pub watcher: Watcher,
    pub mirror: ChainState,
    pub mined_transfer: Transfer,
}

/// The shared history's blocks, written into the store of `dir`.
fn history() -> (Vec<Arc<Block>>, Transfer) {
    let mut chain = ChainState::new(params());
    testkit::extend(&mut chain, 2, Address::of(&key(1)));
    let pay = Transfer::sign(&key(1), &chain.chain_id(), Address::of(&key(2)), 10, 1, 0);
    let b3 = testkit::next_block(&chain, &[pay], Address::of(&key(1)));
    chain
        .process_block(Arc::new(b3), testkit::NOW)
        .expect("valid");
    let blocks = (1..=3)
        .map(|h| chain.block_at(h).unwrap().clone())
        .collect();
    (blocks, pay)
}

/// Writes `blocks` (a chain from genesis) into the store of `dir`.
pub fn preload_blocks(dir: &tempfile::TempDir, blocks: &[Arc<Block>]) {
    let p = params();
    let store =
        gossipchain::store::Store::open(&dir.path().join("blocks.redb"), &p).expect("store opens");
    let list: Vec<_> = blocks
        .iter()
        .map(|b| {
            let checked =
                gossipchain::chain::CheckedBlock::check(b.clone(), b.compute_hash(), None, &p)
                    .expect("a valid block");
            Arc::new(checked)
        })
        .collect();
    let tip = list
        .last()
        .map_or(gossipchain::chain::BlockKey::new(0, p.chain_id()), |b| {
            b.key()
        });
    store.commit(&list, &[], tip).expect("store commit");
}

impl Net {
    /// Starts the network and waits until gossip flows from the honest node to the watcher.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Net::start`], with a change to the honest node's config.
    pub async fn start_with(tweak: impl FnOnce(&mut gossipchain::node::NodeConfig)) -> Self {
        let (blocks, mined_transfer) = history();
        let mut mirror = ChainState::new(params());
        for b in &blocks {
            mirror.process_block(b.clone(), testkit::NOW).unwrap();
        }
        let d = tempfile::tempdir().unwrap();
        preload_blocks(&d, &blocks);
        let mut c = config(&d, &[]);
        tweak(&mut c);
        let honest = start_with(d, c).await;
        let d = tempfile::tempdir().unwrap();
        preload_blocks(&d, &blocks);
        let c = config(&d, std::slice::from_ref(&honest.addr));
        let other = start_with(d, c).await;
        let watcher = Watcher {
            peer: RawPeer::connect(&honest.addr, RawOpts::new(quiet())).await,
            seen: Vec::new(),
        };
        honest.wait("other and the watcher", |s| s.peers == 2).await;
        let mut net = Self {
            honest,
            other,
            watcher,
            mirror,
            mined_transfer,
        };
        // Until the gossip mesh has formed a mined block may reach peers only by sync; mine
        // until one reaches the watcher by gossip.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mined = net.honest.handle.mine_one().await.unwrap().unwrap();
            net.follow(mined.hash).await;
            if net
                .watcher
                .sees_block(mined.hash, Duration::from_millis(500))
                .await
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gossip never reached the watcher"
            );
        }
        let tip = net.honest.status().tip;
        net.other
            .wait("the other node to follow", |s| s.tip == tip)
            .await;
        net
    }

    /// Adds a block the honest node holds to the mirror (after its parents).
    pub async fn follow(&mut self, hash: BlockHash) {
        let info = self
            .honest
            .handle
            .block(BlockId::Hash(hash))
            .await
            .unwrap()
            .expect("the honest node holds the block");
        self.mirror
            .process_block(info.block, testkit::NOW)
            .expect("the honest node's blocks are valid");
    }

    /// Waits until the honest node's gossipsub score of `peer` is under the graylist threshold
    /// (-80): the penalty of an invalid message, which the node itself never sees.
    pub async fn wait_graylisted(&self, peer: PeerId) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let score = (self.honest.handle.peers().await.into_iter())
                .find(|p| p.peer == peer)
                .map(|p| p.score);
            if score.is_some_and(|s| s < -80.0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never penalised (score {score:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The honest node keeps serving honest peers: a block mined by `other` reaches it by
    /// gossip (or, failing that, sync), and it forwards the block to the watcher.
    pub async fn assert_still_serving(&mut self, what: &str) {
        // Mine on the same tip, or the honest node would keep its own block of equal work.
        let tip = self.honest.status().tip;
        self.other
            .wait("the other node on the same tip", |s| s.tip == tip)
            .await;
        let mined = self.other.handle.mine_one().await.unwrap().unwrap();
        let (s, ok) = self
            .honest
            .handle
            .wait_for(DEADLINE, |s| s.tip == mined.hash)
            .await;
        assert!(
            ok,
            "{what}: the honest node stopped taking honest blocks: {s:?}"
        );
        self.follow(mined.hash).await;
        let _ = self
            .watcher
            .sees_block(mined.hash, Duration::from_millis(500))
            .await;
    }

    /// The honest node stays connected to `other` and the watcher and to nobody else.
    pub async fn assert_only_honest_peers(&self, what: &str) {
        let (s, ok) = self
            .honest
            .handle
            .wait_for(DEADLINE, |s| s.peers == 2)
            .await;
        assert!(
            ok,
            "{what}: peers {} (expected other and the watcher)",
            s.peers
        );
    }

    /// Whether the honest node lists `peer` as connected.
    pub async fn honest_connected_to(&self, peer: PeerId) -> bool {
        self.honest
            .handle
            .peers()
            .await
            .iter()
            .any(|p| p.peer == peer)
    }

    /// A valid block on the honest tip paying `seed`'s address (distinct per seed).
    pub fn valid_block(&self, seed: u64) -> Block {
        testkit::next_block(&self.mirror, &[], Address::of(&key(seed)))
    }

    pub async fn state(&self, hash: BlockHash) -> BlockState {
        self.honest.handle.block_state(hash).await.unwrap()
    }

    pub async fn stop(mut self) {
        self.other.stop().await;
        self.honest.stop().await;
    }
}

/// After a ban, a redial by the same identity is refused: it fails, or the honest side closes
/// it at once, and the honest node does not list it as a peer.
pub async fn assert_redial_refused(net: &Net, liar: &mut RawPeer, what: &str) {
    if liar.client.dial(net.honest.addr.clone()).await.is_ok() {
        liar.expect("the banned redial to be closed", |n| {
            matches!(n, Note::Disconnected)
        })
        .await;
    }
    assert!(
        !net.honest_connected_to(liar.id).await,
        "{what}: the banned peer is back"
    );
}

/// The count of compact block `event` in `node`'s metrics (see `CompactLabel`).
pub fn compact_count(node: &TestNode, event: &str) -> u64 {
    let key = format!("gossipchain_compact_blocks_total{{event=\"{event}\"}} ");
    node.handle
        .metrics()
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Process resident memory in KiB, from `/proc/self/status` (None where there is no procfs).
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A bare gossipsub swarm on the test chain's block topic with its own size limit and, if asked,
/// signed messages: it can publish what the node's own network layer refuses to send.
pub struct GossipLiar {
    pub id: PeerId,
    publish: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Drop for GossipLiar {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GossipLiar {
    /// Starts one with a fresh identity that sends messages up to `max_transmit` bytes, dials
    /// `addr` and waits until the peer there is subscribed to the block topic (from then on a
    /// publish reaches it).
    pub async fn connect(addr: &Multiaddr, max_transmit: usize) -> Self {
        Self::connect_on(
            addr,
            max_transmit,
            protocol::blocks_topic(&params().chain_id()),
        )
        .await
    }

    /// [`GossipLiar::connect`] publishing on `topic` instead of the block topic.
    pub async fn connect_on(addr: &Multiaddr, max_transmit: usize, topic: String) -> Self {
        Self::connect_with(addr, max_transmit, topic, false).await
    }

    /// [`GossipLiar::connect_on`], with `signed` publishing as libp2p's StrictSign does (an
    /// author, a sequence number and a signature in every message, what the topics' version 1
    /// carried) instead of anonymously as the node does.
    pub async fn connect_with(
        addr: &Multiaddr,
        max_transmit: usize,
        topic: String,
        signed: bool,
    ) -> Self {
        use libp2p::gossipsub;
        let topic = gossipsub::IdentTopic::new(topic);
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|key| {
                let (mode, authenticity) = if signed {
                    (
                        gossipsub::ValidationMode::Strict,
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                    )
                } else {
                    (
                        gossipsub::ValidationMode::Anonymous,
                        gossipsub::MessageAuthenticity::Anonymous,
                    )
                };
                let config = gossipsub::ConfigBuilder::default()
                    .validation_mode(mode)
                    // The node's ids: without them every anonymous message would have the
                    // same id, and each publish after the first would be a duplicate.
                    .message_id_fn(gossipchain::net::behaviour::message_id)
                    .max_transmit_size(max_transmit)
                    .build()
                    .expect("gossipsub config");
                let behaviour: gossipsub::Behaviour =
                    gossipsub::Behaviour::new(authenticity, config).expect("gossipsub");
                behaviour
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.behaviour_mut().subscribe(&topic).expect("subscribe");
        swarm.dial(addr.clone()).expect("dial");
        let id = *swarm.local_peer_id();
        let (publish, mut to_publish) = mpsc::unbounded_channel::<Vec<u8>>();
        let (subscribed, mut is_subscribed) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    data = to_publish.recv() => match data {
                        None => break,
                        Some(data) => {
                            // A message the peer stopped reading may hold up the queue: later
                            // publishes may fail, which is the point of some tests.
                            let _ = swarm.behaviour_mut().publish(topic.clone(), data);
                        }
                    },
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { topic: t, .. }) = event
                            && t == topic.hash()
                        {
                            subscribed.send_replace(true);
                        }
                    }
                }
            }
        });
        tokio::time::timeout(DEADLINE, is_subscribed.wait_for(|s| *s))
            .await
            .expect("the peer never subscribed")
            .expect("the liar runs");
        Self { id, publish, task }
    }

    pub fn publish(&self, data: Vec<u8>) {
        let _ = self.publish.send(data);
    }
}

/// Counts the frames any gossipsub in this process refused for exceeding its size limit (it
/// logs each at debug level and tells the application nothing): the only evidence that a node
/// read and discarded an oversized message. Installs a process-wide log layer on first use.
pub fn gossip_frames_refused() -> tokio::sync::watch::Receiver<usize> {
    use std::sync::OnceLock;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter::Targets};

    static COUNT: OnceLock<tokio::sync::watch::Sender<usize>> = OnceLock::new();

    struct Refusals;
    struct Message(bool);
    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" && format!("{value:?}").contains("exceeds maximum") {
                self.0 = true;
            }
        }
    }
    impl<S: tracing::Subscriber> Layer<S> for Refusals {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut m = Message(false);
            event.record(&mut m);
            if m.0
                && let Some(count) = COUNT.get()
            {
                count.send_modify(|n| *n += 1);
            }
        }
    }

    COUNT
        .get_or_init(|| {
            let (tx, _) = tokio::sync::watch::channel(0);
            let filter =
                Targets::new().with_target("libp2p_gossipsub::handler", tracing::Level::DEBUG);
            tracing_subscriber::registry()
                .with(Refusals.with_filter(filter))
                .try_init()
                .expect("no other log subscriber in the adversary tests");
            tx
        })
        .subscribe()
}
