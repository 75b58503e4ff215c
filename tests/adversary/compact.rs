//! Attacks on compact block relay (PROTOCOL.md §14.7): short ids that collide, prefilled
//! transfers that are invalid, short ids of transfers nobody has, and `GetBlockTxs` for a block
//! never sent or asked again and again. Collisions are no one's fault; the rest never holds the
//! node's memory or its honest blocks.

use crate::common::*;
use crate::peers::*;
use gossipchain::chain::compact::CompactBlock;
use gossipchain::chain::compact::ShortId;
use gossipchain::chain::{Address, Block, BlockHash, Transfer, ValidationError};
use gossipchain::net::Topic;
use gossipchain::net::protocol::{Bytes, Request, Response};
use gossipchain::node::BlockState;
use gossipchain::testkit::{self, key};
use std::time::{Duration, Instant};

/// key(1)'s transfers from its next nonce on, as the shared history leaves it (140 coins).
fn spends(net: &Net, n: u64) -> Vec<Transfer> {
    let payer = Address::of(&key(1));
    let first = net.mirror.ledger().account(&payer).nonce;
    (first..first + n)
        .map(|nonce| {
            Transfer::sign(
                &key(1),
                &net.mirror.chain_id(),
                Address::of(&key(2)),
                1,
                1,
                nonce,
            )
        })
        .collect()
}

/// The compact form of `block` with every transfer as a short id, salt `salt`.
fn all_short(block: &Block, salt: u64) -> CompactBlock {
    CompactBlock::from_block(block, &block.compute_txids(), salt, |_| true, 1 << 20)
        .expect("a block with a coinbase first")
}

/// Publishes `bytes` from `liar` until the honest node has reacted (`done`), republishing
/// with a new salt from `make` while the gossip mesh forms.
async fn publish_until(
    liar: &RawPeer,
    mut make: impl FnMut(u64) -> Vec<u8>,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    for salt in 0.. {
        liar.client.publish(Topic::Blocks, make(salt));
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(Instant::now() < deadline, "the honest node never reacted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_short_ids_fetch_the_full_block_and_blame_no_one() {
    let mut net = Net::start().await;
    let block = testkit::next_block(&net.mirror, &spends(&net, 3), Address::of(&key(7)));
    let hash = block.compute_hash();
    // The liar serves the real block when asked for it whole.
    let wire = block.encode();
    let serves = claiming(genesis_status(params().chain_id()), move || {
        Answer::Respond(Response::Blocks(vec![Bytes(wire.clone())]))
    });
    let liar = RawPeer::connect(&net.honest.addr, RawOpts::new(serves)).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let fell_back = compact_count(&net.honest, "fell_back");
    let honest = &net.honest;
    publish_until(
        &liar,
        |salt| {
            let mut c = all_short(&block, salt);
            c.short_ids[2] = c.short_ids[0];
            c.encode()
        },
        async || honest.status().tip == hash,
    )
    .await;
    assert!(compact_count(&net.honest, "fell_back") > fell_back);
    assert!(
        net.honest_connected_to(liar.id).await,
        "a collision is no one's fault"
    );
    net.follow(hash).await;
    assert!(
        net.watcher.sees_block(hash, DEADLINE).await,
        "the rebuilt block is forwarded"
    );
    net.assert_still_serving("after a collision").await;
    drop(liar);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_prefilled_transfer_is_rejected_and_its_sender_banned() {
    let mut net = Net::start().await;
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let tip = net.honest.status().tip;
    let mut forged = spends(&net, 1)[0];
    forged.amount = 2; // the signature no longer matches
    let mut sent = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    // Each variant pays another miner: a new block (and message) each time.
    for v in 0.. {
        let block = testkit::next_block(&net.mirror, &[forged], Address::of(&key(100 + v)));
        let bytes = testkit::compact_wire(&block);
        liar.client.publish(Topic::Blocks, bytes.clone());
        sent.push((block.compute_hash(), bytes));
        if let Some(Note::Disconnected) = liar.next_within(Duration::from_millis(200)).await {
            break;
        }
        assert!(Instant::now() < deadline, "the liar was never banned");
    }
    let mut condemned = 0;
    for (hash, _) in &sent {
        match net.state(*hash).await {
            BlockState::Invalid(ValidationError::BadSignature { .. }) => condemned += 1,
            BlockState::Unknown => {}
            s => panic!("the forged block is held as {s:?}"),
        }
    }
    assert!(
        condemned > 0,
        "no forged block was rejected for its signature"
    );
    let payloads: Vec<_> = sent.into_iter().map(|(_, b)| b).collect();
    net.watcher
        .assert_never_saw("the forged compact block", &payloads);
    assert_eq!(net.honest.status().tip, tip);
    net.assert_only_honest_peers("after the forged block").await;
    net.assert_still_serving("after the forged block").await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_nobody_has_cost_a_deadline_never_the_honest_block() {
    let mut net = Net::start().await;
    // A liar that never answers: neither the missing transfers nor the full block.
    let mut holds = claiming(genesis_status(params().chain_id()), || Answer::Hold);
    let holds_all: Responder = Box::new(move |r: &Request| match r {
        Request::GetBlockTxs { .. } => Answer::Hold,
        other => holds(other),
    });
    let liar = RawPeer::connect(&net.honest.addr, RawOpts::new(holds_all)).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let tip = net.honest.status().tip;
    // 40 compact blocks on the tip, each naming 500 transfers that exist nowhere (the liar
    // invents short ids; the headers carry real proof of work).
    let asked_before = compact_count(&net.honest, "asked");
    let honest = &net.honest;
    let mut v = 0u64;
    publish_until(
        &liar,
        |salt| {
            v += 1;
            let block = testkit::next_block(&net.mirror, &[], Address::of(&key(200 + v)));
            let mut c = all_short(&block, salt);
            c.short_ids = (0..500u32)
                .map(|i| {
                    let mut id = [0u8; 6];
                    id[..4].copy_from_slice(&i.to_be_bytes());
                    id[4..].copy_from_slice(&(v as u16).to_be_bytes());
                    ShortId(id)
                })
                .collect();
            c.encode()
        },
        async || compact_count(honest, "asked") > asked_before,
    )
    .await;
    for i in 0..40u64 {
        let block = testkit::next_block(&net.mirror, &[], Address::of(&key(1000 + i)));
        let mut c = all_short(&block, i);
        c.short_ids = (0..500u32)
            .map(|n| {
                let mut id = [0xee; 6];
                id[..4].copy_from_slice(&n.to_be_bytes());
                ShortId(id)
            })
            .collect();
        liar.client.publish(Topic::Blocks, c.encode());
    }
    // Pending reconstructions stay bounded (16 at once), and honest blocks pass meanwhile.
    net.assert_still_serving("while compact blocks wait for transfers")
        .await;
    let asked = compact_count(&net.honest, "asked") - asked_before;
    assert!(asked >= 1);
    // Every reconstruction ends: 2 s for the transfers, 10 s for the full block, then given
    // up; the liar is not banned for silence (its link may be slow), nothing was adopted.
    let deadline = Instant::now() + DEADLINE;
    while compact_count(&net.honest, "given_up") < asked {
        assert!(
            Instant::now() < deadline,
            "reconstructions never given up: asked {asked}, given up {}",
            compact_count(&net.honest, "given_up")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        asked <= 16 + 1,
        "at most 16 reconstructions at once, got {asked} asked"
    );
    assert_ne!(net.honest.status().tip, tip, "honest blocks were taken");
    assert!(net.honest_connected_to(liar.id).await);
    net.assert_still_serving("after the reconstructions ended")
        .await;
    drop(liar);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_block_txs_for_a_block_never_sent_is_refused_then_banned() {
    let mut net = Net::start().await;
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the liar to connect", |s| s.peers == 3)
        .await;
    let honest = net.honest.status().peer_id;
    // A block the honest node relayed: served, but not again and again.
    let relayed = net.honest.status().tip;
    let ask = |liar: &RawPeer, block: BlockHash, tag: u64| {
        liar.client
            .request(
                honest,
                Request::GetBlockTxs {
                    block,
                    indexes: vec![],
                },
                tag,
            )
            .expect("queued");
    };
    for tag in 0..2 {
        ask(&liar, relayed, tag);
        let note = liar
            .expect("the answer", |n| matches!(n, Note::Response(..)))
            .await;
        assert!(
            matches!(note, Note::Response(_, Ok(Response::Transactions(ref t))) if t.is_empty()),
            "{note:?}"
        );
    }
    let mut refused = 0;
    for tag in 2.. {
        let block = if tag % 2 == 0 {
            relayed
        } else {
            BlockHash([tag as u8; 32])
        };
        ask(&liar, block, tag);
        match liar
            .expect("an answer or a ban", |n| {
                matches!(n, Note::Response(..) | Note::Disconnected)
            })
            .await
        {
            Note::Response(_, Ok(Response::Refused(_))) => refused += 1,
            Note::Response(_, Err(_)) | Note::Disconnected => break,
            other => panic!("{other:?}"),
        }
        assert!(tag < 20, "never banned");
    }
    assert!(refused >= 7, "refused {refused} times before the ban");
    net.assert_only_honest_peers("after the GetBlockTxs flood")
        .await;
    assert_redial_refused(&net, &mut liar, "GetBlockTxs flood").await;
    net.assert_still_serving("after the GetBlockTxs flood")
        .await;
    net.stop().await;
}
