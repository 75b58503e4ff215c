//! Block propagation benchmark: `cargo bench --bench propagation`.
//!
//! Prints, in one run and side by side:
//! 1. our network: 10 nodes in this process on 127.0.0.1 (own temp dirs, mDNS off, test
//!    difficulty) connected as a ring with 5 chords across (every node has 3 peers, up to 3
//!    hops apart). For each of 100 blocks, mined in turn on each node with `mine_one`, the time
//!    from the instant the miner found it (taken on the mining thread, `BlockInfo::found_at`:
//!    before the node validated, stored and published it) until the last of the 9 other nodes
//!    has validated, stored and adopted it (its status tip is the block's hash), p50 and p99;
//! 2. a bare gossipsub network of the same shape: 10 libp2p swarms running only gossipsub, built
//!    by the node's own `behaviour::new_gossipsub` (heartbeat, anonymous messages, max transmit
//!    size, SHA-256 message ids, peer scoring) but without validation or any processing, carrying
//!    the very bytes of the same blocks (as compact blocks): the time from publishing until the last of the 9 other
//!    swarms receives the message, p50 and p99;
//! 3. the ratio of the p99s (target: ours within 1.5x of bare gossipsub).
//!
//! Both networks run at the same time on one tokio runtime; each block is measured on ours and
//! then, with the same bytes, on the bare one, so machine noise falls on both alike. Waits are
//! event-driven (the node status `watch`, swarm events); nothing polls with sleeps while
//! measuring.

mod common;

use common::{Node, load_average};
use futures::StreamExt;
use gossipchain::net::behaviour::{self, BehaviourConfig};
use gossipchain::net::protocol;
use gossipchain::node::{NodeConfig, NodeStatus};
use gossipchain::testkit;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, SwarmBuilder, noise, tcp, yamux};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Nodes in each network.
const NODES: usize = 10;
/// Measured blocks.
const BLOCKS: usize = 100;
/// Blocks mined (and messages published) before measuring.
const WARMUP: usize = 5;
/// Longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// The links: [`common::ring_with_chords`] of [`NODES`].
fn links() -> Vec<(usize, usize)> {
    common::ring_with_chords(NODES)
}

/// Peers of node `i` in [`links`].
fn degree(i: usize) -> usize {
    common::degree(&links(), i)
}

/// Sorted latencies in seconds.
struct Latencies(Vec<f64>);

impl Latencies {
    fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self(v)
    }
    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        let n = self.0.len();
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        self.0[rank.min(n) - 1]
    }
    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }
    fn line(&self) -> String {
        format!(
            "p50 {:7.2} ms  p90 {:7.2} ms  p99 {:7.2} ms  (min {:.2}, mean {:.2}, max {:.2})",
            self.pct(50.0) * 1e3,
            self.pct(90.0) * 1e3,
            self.pct(99.0) * 1e3,
            self.0[0] * 1e3,
            self.mean() * 1e3,
            self.0[self.0.len() - 1] * 1e3,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Our network.

async fn wait(node: &Node, what: &str, pred: impl FnMut(&NodeStatus) -> bool) -> NodeStatus {
    let (s, ok) = node.handle.wait_for(DEADLINE, pred).await;
    assert!(ok, "timed out waiting for {what}; last status: {s:?}");
    s
}

/// Mines one block on `miner` and returns its encoding and the time from the instant its miner
/// found it until every other node's tip is that block.
async fn propagate_ours(nodes: &[Node], miner: usize) -> (Vec<u8>, f64) {
    let height = nodes[miner].handle.status().height;
    // Waiters start before mining so that no adoption can be missed; each records when its
    // node's status moved past `height`.
    let waiters: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != miner)
        .map(|(_, n)| {
            let h = n.handle.clone();
            tokio::spawn(async move {
                let (s, ok) = h.wait_for(DEADLINE, |s| s.height > height).await;
                let at = Instant::now();
                assert!(ok, "a node never adopted block {}: {s:?}", height + 1);
                (s.tip, at)
            })
        })
        .collect();
    let mined = nodes[miner]
        .handle
        .mine_one()
        .await
        .expect("node running")
        .expect("mined");
    // Not when `mine_one` returned: by then the other nodes may have adopted it already.
    let t0 = mined
        .found_at
        .expect("a block from mine_one has its finding instant");
    assert_eq!(mined.block.header.height, height + 1, "a fork happened");
    let mut last = t0;
    for w in waiters {
        let (tip, at) = w.await.expect("waiter does not panic");
        assert_eq!(tip, mined.hash, "a node adopted another block");
        last = last.max(at);
    }
    (
        testkit::compact_wire(&mined.block),
        last.saturating_duration_since(t0).as_secs_f64(),
    )
}

// ---------------------------------------------------------------------------------------------
// The bare gossipsub network.

enum BareCommand {
    Dial(Multiaddr),
    Publish(Vec<u8>),
    /// (connected peers, mesh peers on the topic)
    Peers(oneshot::Sender<(usize, usize)>),
    Stop,
}

struct Bare {
    tx: mpsc::UnboundedSender<BareCommand>,
    addr: Multiaddr,
    task: JoinHandle<()>,
}

/// Starts a swarm with gossipsub alone, subscribed to the blocks topic; every message received
/// is reported on `received` with the time it arrived.
async fn start_bare(
    index: usize,
    config: &BehaviourConfig,
    received: mpsc::UnboundedSender<(usize, MessageId, Instant)>,
) -> Bare {
    let topic = IdentTopic::new(protocol::blocks_topic(&config.chain_id));
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| behaviour::new_gossipsub(config, false))
        .expect("gossipsub behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.behaviour_mut().subscribe(&topic).expect("subscribes");
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"))
        .expect("listens");
    let peer_id = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message { message_id, .. }) = event {
                        let _ = received.send((index, message_id, Instant::now()));
                    }
                }
                command = rx.recv() => match command {
                    Some(BareCommand::Dial(addr)) => swarm.dial(addr).expect("dial starts"),
                    Some(BareCommand::Publish(data)) => {
                        swarm
                            .behaviour_mut()
                            .publish(topic.clone(), data)
                            .expect("published");
                    }
                    Some(BareCommand::Peers(reply)) => {
                        let connected = swarm.connected_peers().count();
                        let mesh = swarm.behaviour().mesh_peers(&topic.hash()).count();
                        let _ = reply.send((connected, mesh));
                    }
                    Some(BareCommand::Stop) | None => break,
                },
            }
        }
    });
    Bare { tx, addr, task }
}

/// Publishes `data` on `from` and returns the time until every other swarm received it.
async fn propagate_bare(
    bare: &[Bare],
    received: &mut mpsc::UnboundedReceiver<(usize, MessageId, Instant)>,
    from: usize,
    data: Vec<u8>,
) -> f64 {
    let id = MessageId::new(&Sha256::digest(&data));
    let t0 = Instant::now();
    bare[from]
        .tx
        .send(BareCommand::Publish(data))
        .expect("swarm running");
    let mut got = [false; NODES];
    got[from] = true;
    let mut last = t0;
    while got.iter().any(|g| !g) {
        let (i, mid, at) = tokio::time::timeout(DEADLINE, received.recv())
            .await
            .expect("every swarm receives the message in time")
            .expect("swarms running");
        assert_eq!(mid, id, "a message from another round arrived");
        assert!(!got[i], "swarm {i} received the message twice");
        got[i] = true;
        last = last.max(at);
    }
    last.saturating_duration_since(t0).as_secs_f64()
}

// ---------------------------------------------------------------------------------------------

async fn run() {
    let params = testkit::params();
    // The node's own gossipsub settings, for the bare network.
    let config = NodeConfig::new("unused".into(), params.clone())
        .net
        .behaviour;
    let heartbeat = config.heartbeat;
    println!("gossipchain block propagation benchmark");
    println!(
        "{NODES} nodes per network on 127.0.0.1, ring + {} chords (3 peers each, diameter 3); \
         {}; gossipsub heartbeat {heartbeat:?}; {WARMUP} warm-up + {BLOCKS} \
         measured blocks; tokio workers: {}; load average at start: {}",
        NODES / 2,
        params.difficulty,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );
    let started = Instant::now();

    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let dir = tempfile::tempdir().expect("temp dir");
        nodes.push(Node::start(dir, &params, DEADLINE).await);
    }
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let mut bare = Vec::new();
    for i in 0..NODES {
        bare.push(start_bare(i, &config, received_tx.clone()).await);
    }
    drop(received_tx);
    for (a, b) in links() {
        nodes[a]
            .handle
            .dial(nodes[b].addr.clone())
            .await
            .expect("dial");
        bare[a]
            .tx
            .send(BareCommand::Dial(bare[b].addr.clone()))
            .expect("swarm running");
    }
    for (i, n) in nodes.iter().enumerate() {
        wait(n, "all peers", |s| s.peers >= degree(i)).await;
    }
    // Setup only: wait until each bare swarm has its peers in its mesh.
    let setup_deadline = Instant::now() + DEADLINE;
    for (i, b) in bare.iter().enumerate() {
        loop {
            let (reply, rx) = oneshot::channel();
            b.tx.send(BareCommand::Peers(reply)).expect("swarm running");
            let (connected, mesh) = rx.await.expect("swarm answers");
            if connected >= degree(i) && mesh >= degree(i) {
                break;
            }
            assert!(Instant::now() < setup_deadline, "bare mesh never formed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Warm-up on both, then let the first heartbeats (5 s after start) pass.
    for k in 0..WARMUP {
        let (bytes, _) = propagate_ours(&nodes, k % NODES).await;
        propagate_bare(&bare, &mut received, k % NODES, bytes).await;
    }
    let settle = Duration::from_secs(6);
    if started.elapsed() < settle {
        tokio::time::sleep(settle - started.elapsed()).await;
    }

    let mut ours = Vec::with_capacity(BLOCKS);
    let mut theirs = Vec::with_capacity(BLOCKS);
    let bench = Instant::now();
    for k in 0..BLOCKS {
        let miner = (WARMUP + k) % NODES;
        let (bytes, t) = propagate_ours(&nodes, miner).await;
        ours.push(t);
        theirs.push(propagate_bare(&bare, &mut received, miner, bytes).await);
    }
    let elapsed = bench.elapsed();
    let ours = Latencies::new(ours);
    let theirs = Latencies::new(theirs);
    println!();
    println!(
        "time from a block being mined until all {} other nodes have it, over {BLOCKS} blocks:",
        NODES - 1
    );
    println!(
        "  gossipchain nodes (validate, store, adopt): {}",
        ours.line()
    );
    println!(
        "  bare gossipsub (same shape, same bytes):    {}",
        theirs.line()
    );
    let ratio = ours.pct(99.0) / theirs.pct(99.0);
    println!(
        "  p99 ratio ours / bare gossipsub: {ratio:.2}x (target <= 1.5x: {})",
        if ratio <= 1.5 { "met" } else { "MISSED" }
    );
    println!(
        "  p50 ratio ours / bare gossipsub: {:.2}x",
        ours.pct(50.0) / theirs.pct(50.0)
    );
    println!(
        "measured in {:.1} s; load average at end: {}",
        elapsed.as_secs_f64(),
        load_average()
    );

    for n in &nodes {
        n.handle.shutdown().await;
    }
    for n in nodes {
        n.task.await.expect("node task does not panic");
    }
    for b in &bare {
        let _ = b.tx.send(BareCommand::Stop);
    }
    for b in bare {
        b.task.await.expect("swarm task does not panic");
    }
}

fn main() {
    common::block_on(run());
}
