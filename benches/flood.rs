//! Flood benchmark: `cargo bench --bench flood`.
//!
//! Ten honest nodes run in this process on 127.0.0.1 (mDNS off, the test difficulty), linked
//! as a ring with chords across (3 peers each). Blocks are mined in turn on each node with
//! `mine_one`, one every 100 ms; a block's propagation time runs from the instant its miner found it
//! (`BlockInfo::found_at`) until the last of the 9 other nodes has adopted it.
//!
//! Two phases, side by side in one run:
//! 1. quiet: [`BLOCKS`] blocks, no attacker;
//! 2. flood: the same, while attackers flood node 0 one after another, each with a fresh
//!    identity, as fast as the node lets them connect: each publishes malformed blocks, blocks
//!    whose proof of work fails and forged transfers (bad signatures) on the gossip topics until
//!    node 0 bans it and closes its connection, then the next one dials.
//!
//! Printed: propagation p50 and p99 of each phase and their ratio (target: flood p99 within 2x
//! of quiet), node 0's `status` round trip (through its command queue, every 2 ms) p50 and p99
//! in each phase (target: p99 <= 50 ms), the attackers banned and their messages, the time a
//! late joiner takes to sync the chain from node 0 during the flood, and the process's resident
//! memory (all ten nodes) before and after.

mod common;

use common::{Node, Stats, load_average};
use futures::StreamExt;
use gossipchain::chain::pow::Target;
use gossipchain::chain::{Block, Transaction, Transfer};
use gossipchain::net::{behaviour, protocol};
use gossipchain::testkit::{self, key};
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, SwarmBuilder, noise, tcp, yamux};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Honest nodes.
const NODES: usize = 10;
/// Blocks measured per phase.
const BLOCKS: usize = 200;
/// One block is mined every this long, so that a phase lasts `BLOCKS * PACE` (20 s): long
/// enough for thousands of attackers.
const PACE: Duration = Duration::from_millis(100);
/// Blocks mined before measuring.
const WARMUP: usize = 5;
/// Longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two `status` round trips.
const POLL: Duration = Duration::from_millis(2);
/// An attacker that is not banned within this long leaves and the next one comes.
const ATTACK_MAX: Duration = Duration::from_secs(5);

/// Resident memory of this process, MB.
fn rss_mb() -> f64 {
    common::rss_kb("self").map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// Mines one block on `miner`; the time from the instant its miner found it until every other
/// node's tip is that block, seconds.
async fn propagate(nodes: &[Node], miner: usize) -> f64 {
    let height = nodes[miner].handle.status().height;
    let waiters: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != miner)
        .map(|(_, n)| {
            let h = n.handle.clone();
            tokio::spawn(async move {
                let (s, ok) = h.wait_for(DEADLINE, |s| s.height > height).await;
                assert!(ok, "a node never adopted block {}: {s:?}", height + 1);
                (s.tip, Instant::now())
            })
        })
        .collect();
    let mined = nodes[miner]
        .handle
        .mine_one()
        .await
        .expect("node running")
        .expect("mined");
    let t0 = mined
        .found_at
        .expect("a mined block has its finding instant");
    let mut last = t0;
    for w in waiters {
        let (tip, at) = w.await.expect("waiter does not panic");
        assert_eq!(tip, mined.hash, "a node adopted another block");
        last = last.max(at);
    }
    last.saturating_duration_since(t0).as_secs_f64()
}

/// What the attackers did.
#[derive(Default, Debug)]
struct Attack {
    /// Identities that connected.
    identities: usize,
    /// Of those, the ones the node disconnected (banned).
    banned: usize,
    /// Messages published.
    messages: usize,
}

/// Attackers, one after another, against `target` until `stop`.
async fn flood(target: Multiaddr, blocks: Vec<Block>, stop: Arc<AtomicBool>) -> Attack {
    let params = testkit::params();
    let chain_id = params.chain_id();
    let blocks_topic = IdentTopic::new(protocol::blocks_topic(&chain_id));
    let txs_topic = IdentTopic::new(protocol::txs_topic(&chain_id));
    let mut attack = Attack::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|_| {
                // Anonymous, as nodes publish: a signed message would be dropped by gossipsub
                // before the node under attack saw it.
                let config = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Anonymous)
                    // The node's ids: gossipsub's default (author and sequence number) is the
                    // same for every anonymous message.
                    .message_id_fn(behaviour::message_id)
                    .max_transmit_size(protocol::max_transmit_size(params.max_block_bytes))
                    .build()
                    .expect("gossipsub config");
                let behaviour: gossipsub::Behaviour =
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                        .expect("gossipsub");
                behaviour
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build();
        swarm.behaviour_mut().subscribe(&blocks_topic).expect("sub");
        swarm.behaviour_mut().subscribe(&txs_topic).expect("sub");
        if swarm.dial(target.clone()).is_err() {
            continue;
        }
        let until = Instant::now() + ATTACK_MAX;
        let mut ready = false;
        let mut connected = false;
        loop {
            if stop.load(Ordering::Relaxed) || Instant::now() > until {
                break;
            }
            if ready {
                // One message of each kind, then a look at the swarm's events.
                n += 1;
                let mut bad_pow = blocks[(n as usize) % blocks.len()].clone();
                loop {
                    bad_pow.header.nonce = bad_pow.header.nonce.wrapping_add(1);
                    let met = Target::from_compact(bad_pow.header.bits)
                        .is_ok_and(|t| t.is_met_by(&bad_pow.compute_hash()));
                    if !met {
                        break;
                    }
                }
                let mut forged = Transfer::sign(
                    &key(1 + n % 50),
                    &chain_id,
                    gossipchain::chain::Address::of(&key(99)),
                    1,
                    1,
                    n,
                );
                forged.signature[0] ^= 1;
                let garbage: Vec<u8> = (0..200u64).map(|i| (i * 31 + n) as u8).collect();
                let b = swarm.behaviour_mut();
                for (topic, data) in [
                    (&blocks_topic, garbage),
                    (&blocks_topic, testkit::compact_wire(&bad_pow)),
                    (&txs_topic, Transaction::Transfer(forged).encode()),
                ] {
                    if b.publish(topic.clone(), data).is_ok() {
                        attack.messages += 1;
                    }
                }
            }
            let wait = if ready {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(50)
            };
            match tokio::time::timeout(wait, swarm.select_next_some()).await {
                Ok(SwarmEvent::ConnectionEstablished { .. }) => {
                    connected = true;
                    attack.identities += 1;
                }
                Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })) => ready = true,
                Ok(SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                }) => {
                    if connected {
                        attack.banned += 1;
                    }
                    break;
                }
                Ok(SwarmEvent::OutgoingConnectionError { .. }) => break,
                _ => {}
            }
        }
    }
    attack
}

fn main() {
    let params = testkit::params();
    println!(
        "flood: {NODES} honest nodes on 127.0.0.1 (ring with chords), {BLOCKS} blocks per \
         phase mined in turn, attackers with fresh identities against node 0; load {}",
        load_average()
    );
    common::block_on(async {
        let mut nodes = Vec::new();
        for _ in 0..NODES {
            nodes.push(Node::start(TempDir::new().expect("temp dir"), &params, DEADLINE).await);
        }
        let links = common::ring_with_chords(NODES);
        for &(a, b) in &links {
            nodes[a]
                .handle
                .dial(nodes[b].addr.clone())
                .await
                .expect("dial a node on 127.0.0.1");
        }
        for (i, n) in nodes.iter().enumerate() {
            let want = common::degree(&links, i);
            let (_, ok) = n.handle.wait_for(DEADLINE, |s| s.peers >= want).await;
            assert!(ok, "node {i} never had its {want} peers");
        }
        for i in 0..WARMUP {
            propagate(&nodes, i % NODES).await;
        }
        let rss_before = rss_mb();

        let mut quiet = Vec::new();
        let done = Arc::new(AtomicBool::new(false));
        let poller = common::poll_status(nodes[0].handle.clone(), POLL, done.clone());
        let mut pace = tokio::time::interval(PACE);
        for i in 0..BLOCKS {
            pace.tick().await;
            quiet.push(propagate(&nodes, i % NODES).await * 1e3);
        }
        done.store(true, Ordering::Relaxed);
        let quiet_status = poller.await.expect("poller");

        // Blocks of the chain, whose nonces the attackers alter (their proof of work fails).
        let samples: Vec<Block> = nodes[0]
            .handle
            .chain(8)
            .await
            .expect("node running")
            .into_iter()
            .map(|b| (*b.block).clone())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = tokio::spawn(flood(nodes[0].addr.clone(), samples, stop.clone()));
        let done = Arc::new(AtomicBool::new(false));
        let poller = common::poll_status(nodes[0].handle.clone(), POLL, done.clone());
        let mut flooded = Vec::new();
        for i in 0..BLOCKS {
            pace.tick().await;
            flooded.push(propagate(&nodes, i % NODES).await * 1e3);
        }
        // A late joiner syncs from node 0 while the flood goes on.
        let height = nodes[0].handle.status().height;
        let joiner = Node::start(TempDir::new().expect("temp dir"), &params, DEADLINE).await;
        let t = Instant::now();
        joiner
            .handle
            .dial(nodes[0].addr.clone())
            .await
            .expect("dial node 0");
        let (s, ok) = joiner
            .handle
            .wait_for(DEADLINE, |s| s.height >= height)
            .await;
        assert!(ok, "the late joiner never synced: {s:?}");
        let join_ms = t.elapsed().as_secs_f64() * 1e3;
        done.store(true, Ordering::Relaxed);
        let flood_status = poller.await.expect("poller");
        stop.store(true, Ordering::Relaxed);
        let attack = attacker.await.expect("attacker");
        let rss_after = rss_mb();

        let (q, f) = (Stats(quiet), Stats(flooded));
        println!(
            "  propagation  quiet p50 {:7.2} ms  p99 {:7.2} ms",
            q.median(),
            q.quantile(0.99)
        );
        println!(
            "  propagation  flood p50 {:7.2} ms  p99 {:7.2} ms  (p99 ratio {:.2}x, target <= 2x)",
            f.median(),
            f.quantile(0.99),
            f.quantile(0.99) / q.quantile(0.99)
        );
        let (qs, fs) = (Stats(quiet_status), Stats(flood_status));
        println!(
            "  node 0 status quiet p50 {:.2} ms p99 {:.2} ms; flood p50 {:.2} ms p99 {:.2} ms \
             max {:.2} ms ({} answers; target p99 <= 50 ms)",
            qs.median(),
            qs.quantile(0.99),
            fs.median(),
            fs.quantile(0.99),
            fs.max(),
            fs.0.len()
        );
        println!(
            "  attackers: {} connected, {} banned, {} messages published",
            attack.identities, attack.banned, attack.messages
        );
        println!(
            "  late joiner: synced {height} blocks from node 0 in {join_ms:.1} ms (from its \
             dial) during the flood"
        );
        println!(
            "  resident memory of the process (10 nodes): {rss_before:.0} MB before, \
             {rss_after:.0} MB after; load {}",
            load_average()
        );
        joiner.stop().await;
        for n in nodes {
            n.stop().await;
        }
    });
}
