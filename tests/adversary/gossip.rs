//! Attacks over gossip: invalid and malformed blocks and transfers, oversized messages, an
//! orphan flood, a block from the future.

use crate::common::*;
use crate::forge::{self, Ctx, Forged};
use crate::peers::*;
use gossipchain::chain::{
    Address, Block, BlockHash, Coinbase, Transaction, Transfer, ValidationError,
};
use gossipchain::net::Topic;
use gossipchain::node::BlockState;
use gossipchain::testkit::{self, key};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Publishes fresh valid blocks on the honest tip until the honest node takes one from `liar`
/// by gossip: from then on the liar's gossip reaches it. Returns that block.
async fn gossip_ready(net: &mut Net, liar: &RawPeer, seed: &mut u64) -> BlockHash {
    let deadline = Instant::now() + DEADLINE;
    let mut published = Vec::new();
    loop {
        *seed += 1;
        let b = net.valid_block(*seed);
        published.push(b.compute_hash());
        liar.client
            .publish(Topic::Blocks, testkit::compact_wire(&b));
        let (s, _) = net
            .honest
            .handle
            .wait_for(Duration::from_millis(200), |s| published.contains(&s.tip))
            .await;
        if published.contains(&s.tip) {
            net.follow(s.tip).await;
            return s.tip;
        }
        assert!(Instant::now() < deadline, "the liar's gossip never arrived");
    }
}

/// Publishes one more valid block from `liar` and waits until the honest node has taken it:
/// everything the liar gossiped before it has been processed (one stream, in order).
async fn gossip_barrier(net: &mut Net, liar: &RawPeer, seed: &mut u64) {
    *seed += 1;
    let b = net.valid_block(*seed);
    let hash = b.compute_hash();
    liar.client
        .publish(Topic::Blocks, testkit::compact_wire(&b));
    net.honest
        .wait("the liar's barrier block", |s| s.tip == hash)
        .await;
    net.follow(hash).await;
}

/// Whether `liar` is disconnected within `timeout`.
async fn disconnected_within(liar: &mut RawPeer, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match liar.next_within(left).await {
            Some(Note::Disconnected) => return true,
            Some(_) => {}
            None => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_block_is_rejected_for_its_rule_not_forwarded_and_its_sender_banned() {
    let mut net = Net::start().await;
    let mut invalid: Option<(BlockHash, u64)> = None;
    for (what, build) in forge::ban_cases() {
        let tip = net.honest.status().tip;
        let other_tip = net.other.status().tip;
        let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
        net.honest
            .wait("the liar to connect", |s| s.peers == 3)
            .await;
        // Gossip until the honest node bans the liar (the first sends may precede the
        // subscription exchange); every variant differs, so none is a gossip duplicate.
        let ctx = Ctx {
            chain: &net.mirror,
            mined: net.mined_transfer,
            invalid,
        };
        let mut sent: Vec<Forged> = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let f = build(&ctx, sent.len() as u64);
            liar.client.publish(Topic::Blocks, f.bytes.clone());
            sent.push(f);
            if disconnected_within(&mut liar, Duration::from_millis(200)).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the liar was never banned"
            );
        }

        // Banned: gone, and refused when it comes back.
        net.assert_only_honest_peers(what).await;
        assert_redial_refused(&net, &mut liar, what).await;
        drop(liar);

        // Rejected for the rule it breaks: every variant that arrived is remembered with
        // exactly that error (unless the body does not match its header: then nothing is
        // remembered against the hash), and validating it again gives the same error.
        let mut remembered = 0;
        for f in &sent {
            let Some(block) = &f.block else { continue };
            let error = f.error.clone().unwrap();
            let hash = block.compute_hash();
            match net.state(hash).await {
                BlockState::Unknown => {}
                BlockState::Invalid(e) => {
                    assert_eq!(e, error, "{what}: rejected for another reason");
                    assert!(f.remembered(), "{what}: remembered against a real header");
                    remembered += 1;
                    invalid = Some((hash, block.header.height));
                }
                s => panic!("{what}: the node holds it as {s:?}"),
            }
            // Not forwarded: the other honest node never even saw it.
            assert_eq!(
                net.other.handle.block_state(hash).await.unwrap(),
                BlockState::Unknown,
                "{what}: reached the other honest node"
            );
        }
        if sent[0].remembered() {
            assert!(remembered > 0, "{what}: no variant remembered as invalid");
        }
        if let Some(block) = &sent[0].block {
            let again = net.honest.handle.submit_block(block.clone()).await.unwrap();
            assert_eq!(again, Err(sent[0].error.clone().unwrap()), "{what}");
        }
        assert_eq!(net.honest.status().tip, tip, "{what}: adopted");
        assert_eq!(
            net.other.status().tip,
            other_tip,
            "{what}: reached the other node"
        );
        let payloads: Vec<_> = sent.iter().map(|f| f.bytes.clone()).collect();
        net.watcher.assert_never_saw(what, &payloads);

        // A forgery over a real header does not spoil the real block.
        if let Some(real) = sent.iter().find_map(|f| f.real.clone()) {
            let hash = real.compute_hash();
            let r = net.honest.handle.submit_block(real).await.unwrap();
            assert_eq!(r, Ok(gossipchain::chain::Outcome::Accepted), "{what}");
            net.follow(hash).await;
        }
        net.assert_still_serving(what).await;
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_from_the_future_is_ignored_without_a_ban() {
    let mut net = Net::start().await;
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let mut seed = 0;
    gossip_ready(&mut net, &liar, &mut seed).await;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut future = net.valid_block(9_999);
    future.header.timestamp = now + 10 * 60 * 1000;
    testkit::seal(&mut future);
    let hash = future.compute_hash();
    liar.client
        .publish(Topic::Blocks, testkit::compact_wire(&future));
    gossip_barrier(&mut net, &liar, &mut seed).await;

    // Ignored, not condemned: not remembered (it may become valid), not forwarded, and its
    // sender is not punished for it.
    assert_eq!(net.state(hash).await, BlockState::Unknown);
    assert_eq!(
        net.other.handle.block_state(hash).await.unwrap(),
        BlockState::Unknown
    );
    net.watcher
        .assert_never_saw("the future block", &[testkit::compact_wire(&future)]);
    assert!(
        !liar.drain().iter().any(|n| matches!(n, Note::Disconnected)),
        "banned for a block from the future"
    );
    assert!(net.honest_connected_to(liar.id).await);
    // Validating it again gives the same, non-permanent, error.
    match net.honest.handle.submit_block(future).await.unwrap() {
        Err(e @ ValidationError::TimestampTooNew { .. }) => assert!(!e.is_permanent()),
        other => panic!("expected TimestampTooNew, got {other:?}"),
    }
    drop(liar);
    net.assert_only_honest_peers("after the future block").await;
    net.assert_still_serving("after the future block").await;
    net.stop().await;
}

/// An orphan for the flood: a valid proof of work on a parent nobody has, with `filler`
/// transfers (orphans are judged without their parent, so only the structure must hold).
fn orphan(i: u64, filler: usize) -> Block {
    let height = 1_000 + i;
    let mut parent = [0u8; 32];
    parent[..8].copy_from_slice(&i.to_be_bytes());
    parent[8] = 0xaa;
    let junk = Transfer {
        from: Address([1; 32]),
        to: Address([2; 32]),
        amount: 1,
        fee: 0,
        nonce: 0,
        signature: [3; 64],
    };
    let mut txs = vec![Transaction::Coinbase(Coinbase {
        height,
        to: forge::miner(i),
        amount: 50,
    })];
    txs.extend((0..filler as u64).map(|n| Transaction::Transfer(Transfer { nonce: n, ..junk })));
    forge::forge(
        BlockHash(parent),
        height,
        1_767_225_700_000 + i,
        gossipchain::testkit::params().genesis_bits(),
        txs,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_flood_keeps_the_pool_and_memory_bounded() {
    let mut net = Net::start_with(|c| c.tree.max_remembered_invalid = 64).await;
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let mut seed = 0;
    gossip_ready(&mut net, &liar, &mut seed).await;
    let rss_before = rss_kib();

    // 700 orphans of ~8 KB with unknown parents, then blocks of another chain (same
    // difficulty, so only their parent is unknown here).
    let mut flood: Vec<Block> = (0..700).map(|i| orphan(i, 50)).collect();
    let mut foreign = forge::other_chain(8);
    for i in 0..5 {
        let b = testkit::next_block(&foreign, &[], forge::miner(i));
        foreign
            .process_block(b.clone().into(), testkit::NOW)
            .unwrap();
        flood.push(b);
    }
    for b in &flood {
        liar.client.publish(Topic::Blocks, testkit::compact_wire(b));
    }
    gossip_barrier(&mut net, &liar, &mut seed).await;

    // Held, not condemned: the pool is full but bounded, the oldest are evicted, the newest
    // (the foreign blocks) wait for a parent that will never come.
    let s = net.honest.status();
    assert!(s.orphans <= 512, "orphan pool grew to {}", s.orphans);
    assert_eq!(s.orphans, 512, "the flood should fill the pool");
    assert_eq!(
        net.state(flood[0].compute_hash()).await,
        BlockState::Unknown
    );
    for b in &flood[flood.len() - 5..] {
        assert_eq!(net.state(b.compute_hash()).await, BlockState::Orphan);
    }
    for b in flood.iter().step_by(50) {
        assert_eq!(
            net.other
                .handle
                .block_state(b.compute_hash())
                .await
                .unwrap(),
            BlockState::Unknown,
            "an orphan was forwarded"
        );
    }
    let payloads: Vec<_> = flood.iter().map(Block::encode).collect();
    net.watcher.assert_never_saw("the orphan flood", &payloads);
    // An orphan is no fault (its parent may exist): the sender is not banned.
    assert!(
        !liar.drain().iter().any(|n| matches!(n, Note::Disconnected)),
        "banned for orphans"
    );
    assert!(net.honest_connected_to(liar.id).await);
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        // ~6 MB of orphans went in; the pool keeps at most 512 of them.
        assert!(
            after < before + 128 * 1024,
            "RSS grew from {before} KiB to {after} KiB"
        );
    }
    drop(liar);

    // Remembered invalid hashes are bounded too (64 here): the oldest are forgotten.
    let mut hashes = Vec::new();
    for i in 0..100 {
        let mut b = net.valid_block(50_000 + i);
        let target = gossipchain::chain::pow::Target::from_compact(b.header.bits).expect("valid");
        while gossipchain::chain::pow::meets_target(&b.compute_hash(), &target) {
            b.header.nonce += 1;
        }
        hashes.push(b.compute_hash());
        let r = net.honest.handle.submit_block(b).await.unwrap();
        assert!(matches!(r, Err(ValidationError::InsufficientWork { .. })));
    }
    assert_eq!(net.state(hashes[0]).await, BlockState::Unknown);
    assert!(matches!(
        net.state(hashes[99]).await,
        BlockState::Invalid(ValidationError::InsufficientWork { .. })
    ));

    net.assert_only_honest_peers("after the orphan flood").await;
    net.assert_still_serving("after the orphan flood").await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_gossip_message_is_dropped_unread_and_not_forwarded() {
    let mut net = Net::start().await;
    // The liar raises its own size limit; the honest node's is max_block_bytes + 16 KiB.
    let liar = GossipLiar::connect(&net.honest.addr, 8 << 20).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    // Its gossip flows: a valid block of its reaches the honest node.
    let first = net.valid_block(1);
    let first_hash = first.compute_hash();
    liar.publish(testkit::compact_wire(&first));
    net.honest
        .wait("the liar's valid block", |s| s.tip == first_hash)
        .await;
    net.follow(first_hash).await;

    // A 1.2 MB "block" (also undecodable: had the node seen it, the liar would be banned),
    // then another valid block behind it on the same stream.
    let mut big = net.valid_block(2).header.encode().to_vec();
    big.extend_from_slice(&8000u32.to_be_bytes());
    big.resize(1_200_000, 0xab);
    let mut refused = gossip_frames_refused();
    let before = *refused.borrow();
    let behind = net.valid_block(3);
    liar.publish(big.clone());
    liar.publish(testkit::compact_wire(&behind));
    // The honest node's gossipsub refuses the frame once it grows over the limit (it never
    // buffers more than that) and abandons the stream it came on: the block behind it on that
    // stream is never read either.
    tokio::time::timeout(DEADLINE, refused.wait_for(|n| *n > before))
        .await
        .expect("the oversized frame was never refused")
        .unwrap();
    // Never handed to the node (so no ban: the node never saw it), never forwarded.
    assert!(net.honest_connected_to(liar.id).await);
    net.watcher
        .assert_never_saw("the oversized message", std::slice::from_ref(&big));
    net.assert_still_serving("after the oversized message")
        .await;
    assert_eq!(net.state(behind.compute_hash()).await, BlockState::Unknown);
    drop(liar);
    net.assert_only_honest_peers("after the oversized message")
        .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_on_the_transfers_topic_costs_its_sender_score() {
    let mut net = Net::start().await;
    let topic = gossipchain::net::protocol::txs_topic(&net.mirror.chain_id());
    // Within the frame limit, over the transfers topic's own limit of 2048 bytes.
    let liar = GossipLiar::connect_on(&net.honest.addr, 1 << 20, topic).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let big = vec![0x01; 10_000];
    liar.publish(big.clone());
    // Gossipsub counts it as an invalid message: the sender falls under the graylist
    // threshold (-80) at once; the node never sees it, so nothing is admitted or forwarded.
    net.wait_graylisted(liar.id).await;
    assert_eq!(net.honest.status().mempool, 0);
    net.watcher
        .assert_never_saw("the oversized transfer", std::slice::from_ref(&big));
    drop(liar);
    net.assert_only_honest_peers("after the oversized transfer")
        .await;
    net.assert_still_serving("after the oversized transfer")
        .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_gossip_message_costs_its_sender_score_and_is_never_seen() {
    let mut net = Net::start().await;
    let chain_id = net.mirror.chain_id();
    let topic = gossipchain::net::protocol::txs_topic(&chain_id);
    // A valid transfer in a message with an author, a sequence number and a signature (libp2p's
    // StrictSign, what the topics' version 1 carried): the topics take anonymous messages
    // only, so gossipsub counts it as invalid before the node sees it.
    let tx = Transaction::Transfer(Transfer::sign(
        &key(1),
        &chain_id,
        Address::of(&key(3)),
        5,
        1,
        1,
    ))
    .encode();
    let signed = GossipLiar::connect_with(&net.honest.addr, 1 << 20, topic.clone(), true).await;
    net.honest
        .wait("the signed liar to connect", |s| s.peers == 3)
        .await;
    signed.publish(tx.clone());
    net.wait_graylisted(signed.id).await;
    assert_eq!(net.honest.status().mempool, 0, "admitted");
    net.watcher
        .assert_never_saw("the signed message", std::slice::from_ref(&tx));
    drop(signed);

    // The same transfer, anonymous: admitted and forwarded. The envelope was the fault.
    let anonymous = GossipLiar::connect_on(&net.honest.addr, 1 << 20, topic).await;
    anonymous.publish(tx);
    net.honest
        .wait("the anonymous transfer admitted", |s| s.mempool == 1)
        .await;
    net.other
        .wait("the anonymous transfer forwarded", |s| s.mempool == 1)
        .await;
    drop(anonymous);
    net.assert_only_honest_peers("after the signed message")
        .await;
    net.assert_still_serving("after the signed message").await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_transfers_are_rejected_not_forwarded_and_their_sender_banned() {
    let mut net = Net::start().await;
    let chain_id = net.mirror.chain_id();
    let mut forged = Transfer::sign(&key(1), &chain_id, Address::of(&key(3)), 5, 1, 1);
    forged.signature[40] ^= 1;
    let other_chain_tx = Transfer::sign(
        &key(1),
        &forge::other_chain(8).chain_id(),
        Address::of(&key(3)),
        5,
        1,
        1,
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a forged signature", Transaction::Transfer(forged).encode()),
        (
            "a transfer signed for another chain",
            Transaction::Transfer(other_chain_tx).encode(),
        ),
        (
            "a coinbase as a transaction",
            Transaction::Coinbase(Coinbase {
                height: 9,
                to: Address::of(&key(3)),
                amount: 1_000,
            })
            .encode(),
        ),
        (
            "bytes that are not a transaction",
            b"\x01 not a transfer".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
        net.honest
            .wait("the liar to connect", |s| s.peers == 3)
            .await;
        // Banned, as the same transfer sent by sync is. A publish before the subscription
        // exchange is dropped at the liar (no peer yet, and not remembered), after it a repeat
        // is a duplicate the liar does not send: publish until the ban shows it arrived.
        let deadline = Instant::now() + DEADLINE;
        loop {
            liar.client.publish(Topic::Txs, bytes.clone());
            if disconnected_within(&mut liar, Duration::from_millis(200)).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the sender was never banned"
            );
        }
        assert_eq!(net.honest.status().mempool, 0, "{what}: admitted");
        assert_eq!(net.other.status().mempool, 0, "{what}: forwarded");
        net.watcher
            .assert_never_saw(what, std::slice::from_ref(&bytes));
        net.assert_only_honest_peers(what).await;
        assert_redial_refused(&net, &mut liar, what).await;
        drop(liar);
    }
    net.assert_still_serving("after invalid transfers").await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_transfer_among_good_ones_is_rejected_alone_and_its_sender_banned() {
    let mut net = Net::start().await;
    let chain_id = net.mirror.chain_id();
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let mut seed = 1_000;
    gossip_ready(&mut net, &liar, &mut seed).await;
    // key(1) is at nonce 1 with 140 coins: twenty transfers of 1 coin and fee 1 are all valid,
    // each after its predecessor. The liar gossips the first ten and a forgery from another
    // sender; the node is handed the next ten meanwhile: they are verified in the same few
    // batches.
    let good: Vec<Transfer> = (1..=20)
        .map(|nonce| Transfer::sign(&key(1), &chain_id, Address::of(&key(3)), 1, 1, nonce))
        .collect();
    let mut forged = Transfer::sign(&key(4), &chain_id, Address::of(&key(3)), 1, 1, 0);
    forged.signature[40] ^= 1;
    for tx in &good[..10] {
        liar.client
            .publish(Topic::Txs, Transaction::Transfer(*tx).encode());
    }
    liar.client
        .publish(Topic::Txs, Transaction::Transfer(forged).encode());
    let submits: Vec<_> = good[10..]
        .iter()
        .map(|tx| {
            let handle = net.honest.handle.clone();
            let tx = *tx;
            tokio::spawn(async move { handle.submit(tx).await })
        })
        .collect();
    for (i, submit) in submits.into_iter().enumerate() {
        let answer = submit.await.expect("task").expect("node running");
        assert!(answer.is_ok(), "good transfer {}: {answer:?}", i + 11);
    }
    assert!(
        disconnected_within(&mut liar, DEADLINE).await,
        "the forger was never banned"
    );
    net.honest
        .wait("the twenty good transfers", |s| s.mempool == 20)
        .await;
    let pool = net.honest.handle.mempool().await.expect("node running");
    let forged_id = Transaction::Transfer(forged).compute_txid();
    assert!(pool.iter().all(|(txid, _)| *txid != forged_id));
    for tx in &good {
        let txid = Transaction::Transfer(*tx).compute_txid();
        assert!(pool.iter().any(|(id, _)| *id == txid), "nonce {}", tx.nonce);
    }
    net.watcher.assert_never_saw(
        "the forged transfer",
        &[Transaction::Transfer(forged).encode()],
    );
    net.assert_only_honest_peers("after the forged transfer")
        .await;
    net.assert_still_serving("after the forged transfer").await;
    net.stop().await;
}
