//! A peer that lies: it joins with the node's own network layer (no node actor behind it, so it
//! validates nothing) and gossips invalid blocks. The honest node rejects each, does not forward
//! it, bans the sender, and keeps serving honest peers.

mod common;

use common::*;
use gossipchain::chain::{Address, Block, ChainState, Transfer};
use gossipchain::net::{self, Event, NetConfig, Topic};
use gossipchain::testkit::{self, key};
use libp2p::identity;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A bare network endpoint on the test chain.
struct RawPeer {
    client: net::Client,
    events: mpsc::Receiver<Event>,
}

fn raw_peer(dial: &[libp2p::Multiaddr]) -> RawPeer {
    let p = params();
    let mut c = NetConfig::new(p.chain_id(), p.max_block_bytes);
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.behaviour.mdns = false;
    c.bootstrap = dial.to_vec();
    let (client, events, event_loop) = net::new(identity::Keypair::generate_ed25519(), c).unwrap();
    tokio::spawn(event_loop.run());
    RawPeer { client, events }
}

impl RawPeer {
    /// Waits for the next event matching `pred`, answering sync requests with nothing useful.
    async fn next_matching(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("network running");
            if pred(&event) {
                return event;
            }
        }
    }
}

/// Invalid variants of a block on the honest tip, each with a valid proof of work unless the
/// proof of work itself is what is wrong.
fn invalid_blocks(chain: &ChainState) -> Vec<(&'static str, Block)> {
    let miner = Address::of(&key(50));
    let mut out = Vec::new();

    let mut bad_pow = testkit::next_block(chain, &[], miner);
    while gossipchain::chain::pow::meets_target(&bad_pow.compute_hash(), bad_pow.header.bits) {
        bad_pow.header.nonce += 1;
    }
    out.push(("bad proof of work", bad_pow));

    let pay = Transfer::sign(&key(1), &chain.chain_id(), miner, 1, 0, 0);
    let mut bad_sig = pay;
    bad_sig.signature[0] ^= 1;
    out.push((
        "bad signature",
        testkit::next_block(chain, &[bad_sig], miner),
    ));

    let over = Transfer::sign(&key(1), &chain.chain_id(), miner, 1_000_000, 0, 0);
    out.push(("overspend", testkit::next_block(chain, &[over], miner)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_blocks_are_rejected_not_forwarded_and_their_sender_banned() {
    // key(1) owns the two blocks of a common history.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let blocks = preload(&dirs[0], 2, Address::of(&key(1)));
    preload(&dirs[1], 2, Address::of(&key(1)));
    let mut chain = ChainState::new(params());
    for b in &blocks {
        chain.process_block(b.clone(), testkit::NOW).unwrap();
    }
    let mut it = dirs.into_iter();
    let d = it.next().unwrap();
    let c = config(&d, &[]);
    let mut honest = start_with(d, c).await;
    let d = it.next().unwrap();
    let c = config(&d, std::slice::from_ref(&honest.addr));
    let mut other = start_with(d, c).await;
    honest.wait("the honest peer", |s| s.peers == 1).await;
    // A watcher that would see anything the honest node forwards.
    let mut watcher = raw_peer(std::slice::from_ref(&honest.addr));
    honest.wait("the watcher", |s| s.peers == 2).await;

    for (what, block) in invalid_blocks(&chain) {
        let mut liar = raw_peer(std::slice::from_ref(&honest.addr));
        let peer_count = honest.status().peers;
        honest
            .wait("the liar to connect", |s| s.peers == peer_count + 1)
            .await;
        // Gossip until the honest node bans the liar (the first sends may precede the
        // subscription exchange); every copy differs so none is a gossip duplicate.
        let deadline = Instant::now() + DEADLINE;
        let mut variant = block.clone();
        loop {
            liar.client.publish(Topic::Blocks, variant.encode());
            let got = tokio::time::timeout(Duration::from_millis(200), liar.events.recv()).await;
            if let Ok(Some(Event::PeerDisconnected { .. })) = got {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the liar was never banned"
            );
            variant.header.timestamp += 1;
            if what != "bad proof of work" {
                testkit::mine_header(&mut variant.header);
            }
        }
        honest
            .wait("the liar gone", |s| s.peers == peer_count)
            .await;
        // Banned: a redial is closed by the honest side at once (the liar may see the
        // transport connect before the honest node's block list closes it).
        if liar.client.dial(honest.addr.clone()).await.is_ok() {
            liar.next_matching("the banned redial to be closed", |e| {
                matches!(e, Event::PeerDisconnected { .. })
            })
            .await;
        }
        assert_eq!(
            honest.status().peers,
            peer_count,
            "{what}: the banned peer is not back"
        );
        assert_eq!(honest.status().height, 2, "{what}: not adopted");
        assert_eq!(other.status().height, 2, "{what}: not forwarded to peers");
        drop(liar);
    }
    // The watcher never received any of them.
    while let Ok(event) = watcher.events.try_recv() {
        assert!(
            !matches!(
                event,
                Event::Gossip {
                    topic: Topic::Blocks,
                    ..
                }
            ),
            "an invalid block was forwarded"
        );
    }

    // Honest nodes keep serving each other.
    let good = honest.handle.mine_one().await.unwrap().unwrap();
    other.wait("the honest block", |s| s.tip == good.hash).await;
    let seen = watcher
        .next_matching("the honest block gossiped to the watcher", |e| {
            matches!(
                e,
                Event::Gossip {
                    topic: Topic::Blocks,
                    ..
                }
            )
        })
        .await;
    if let Event::Gossip { data, .. } = seen {
        let b = Block::decode(&data, 1 << 20, 10).unwrap();
        assert_eq!(b.compute_hash(), good.hash);
    }
    other.stop().await;
    honest.stop().await;
}
