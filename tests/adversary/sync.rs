//! Attacks over the sync protocol: bytes that are not a message, messages over the size
//! limits, statuses that lie, answers that do not connect or do not exist, a request flood.
//! The lies are a table ([`lies`]): each row is run against the same honest network and must
//! end in a ban that moves no tip and leaves the node serving.

use crate::common::*;
use crate::forge;
use crate::peers::*;
use gossipchain::chain::block::HEADER_LEN;
use gossipchain::chain::target::Target;
use gossipchain::chain::tx::SignatureError;
use gossipchain::chain::{
    Address, Block, BlockHash, ChainState, Coinbase, Transaction, Transfer, ValidationError,
};
use gossipchain::net::protocol::{Bytes, Request, Response, Status};
use gossipchain::node::BlockState;
use gossipchain::node::events::{NodeEvent, Numbered};
use gossipchain::testkit::{self, key};
use libp2p::PeerId;
use std::time::{Duration, Instant};

/// A status on the test chain claiming far more work than anyone has.
fn boastful(net: &Net) -> Status {
    Status::new(
        net.mirror.chain_id(),
        BlockHash([0x77; 32]),
        1_000_000,
        u128::MAX / 2,
    )
}

/// The tips of both honest nodes, to check that an attack moved neither.
fn tips(net: &Net) -> (BlockHash, BlockHash) {
    (net.honest.status().tip, net.other.status().tip)
}

/// After `liar` was disconnected: the honest node is left with its honest peers, refuses the
/// liar's redial, adopted nothing, and keeps serving.
async fn after_raw_peer_ban(
    net: &mut Net,
    liar: &mut RawPeer,
    before: (BlockHash, BlockHash),
    what: &str,
) {
    net.assert_only_honest_peers(what).await;
    assert_redial_refused(net, liar, what).await;
    assert_eq!(tips(net), before, "{what}: a tip moved");
    net.assert_still_serving(what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_sync_message_get_the_sender_banned() {
    let mut net = Net::start().await;
    let honest = net.honest.status().peer_id;
    let genesis = net.mirror.chain_id();
    // A locator of 20 000 hashes: 680 KB of well-formed CBOR, over the 512 KiB request limit.
    // Were it read whole it would only be refused (too long a locator), so a ban can only
    // come from its size.
    let oversized = cbor(&Request::GetBlocks {
        locator: vec![genesis; 20_000],
        max: 1,
    });
    assert!(oversized.len() > 512 * 1024);
    let requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "a request that is not CBOR",
            vec![0xff, 0xfe, 0x00, 0x13, 0x37],
        ),
        ("a request naming no message", cbor(&"Gimme")),
        (
            "a request with a field of the wrong type",
            cbor(&std::collections::BTreeMap::from([(
                "GetBlocks",
                "everything",
            )])),
        ),
        ("a request over 512 KiB", oversized),
    ];
    for (what, bytes) in requests {
        let before = tips(&net);
        let mut liar = RawSync::connect(&net.honest.addr, raw_quiet()).await;
        net.honest
            .wait("the liar to connect", |s| s.peers == 3)
            .await;
        liar.request(honest, bytes);
        liar.expect(&format!("{what}: the ban"), |n| {
            matches!(n, SyncNote::Disconnected)
        })
        .await;
        net.assert_only_honest_peers(what).await;
        liar.assert_redial_refused(&net.honest.addr).await;
        assert!(!net.honest_connected_to(liar.id).await, "{what}: back");
        assert_eq!(tips(&net), before, "{what}: a tip moved");
        drop(liar);
        net.assert_still_serving(what).await;
    }

    // The same as answers to the node's own requests (it asks every new peer for its status
    // and mempool).
    let answers: Vec<(&str, Vec<u8>)> = vec![
        ("an answer that is not CBOR", b"\xff\xff garbage".to_vec()),
        ("an answer naming no message", cbor(&"Whatever")),
        // Over the 4 MiB + max_block_bytes + 64 KiB response limit.
        ("an answer over the response limit", vec![0x40; 6 << 20]),
    ];
    for (what, bytes) in answers {
        let before = tips(&net);
        let mut liar =
            RawSync::connect(&net.honest.addr, Box::new(move |_| Some(bytes.clone()))).await;
        liar.expect(&format!("{what}: the ban"), |n| {
            matches!(n, SyncNote::Disconnected)
        })
        .await;
        net.assert_only_honest_peers(what).await;
        liar.assert_redial_refused(&net.honest.addr).await;
        assert!(!net.honest_connected_to(liar.id).await, "{what}: back");
        assert_eq!(tips(&net), before, "{what}: a tip moved");
        drop(liar);
        net.assert_still_serving(what).await;
    }
    net.stop().await;
}

/// What else must hold once a liar over sync is banned.
enum After {
    /// Nothing more than the common checks.
    Nothing,
    /// These blocks were dropped whole: not even held as orphans.
    Dropped(Vec<BlockHash>),
    /// This block was rejected for this rule, and neither forwarded nor stored by the other
    /// honest node.
    Rejected(Block, ValidationError),
    /// The mempool admitted nothing.
    MempoolEmpty,
}

/// One lie over sync: how the liar answers the node's requests, a request it sends of its own
/// (if any), whether the ban must follow a block download the liar started, and what else
/// must hold after the ban.
struct Lie {
    what: &'static str,
    responder: Responder,
    request: Option<Request>,
    after_download: bool,
    after: After,
}

/// Every lie over sync that gets its sender banned.
fn lies(net: &Net) -> Vec<Lie> {
    let foreign_status = genesis_status(forge::other_chain(8).chain_id());
    let claim = boastful(net);
    // A liar serving `answer` as its chain: to a headers request, the headers of the blocks
    // in it (a block's encoding starts with its 96-byte header), to a bodies request the
    // blocks; any other kind of answer as it is.
    // It claims the work of the chain it serves when that chain builds on the node's tip
    // (so that only the lie under test gets it banned), else far more than anyone.
    let mirror_tip = net.mirror.tip();
    let mirror_work = net.mirror.tip_work();
    let claim_of = move |blocks: &[Block]| match blocks.first() {
        Some(b) if b.header.prev_hash == mirror_tip => {
            let last = blocks.last().expect("not empty");
            let work: u128 = (blocks.iter())
                .map(|b| {
                    Target::from_compact(b.header.bits)
                        .unwrap()
                        .work()
                        .saturating_u128()
                })
                .sum();
            Status::new(
                claim.chain_id,
                last.compute_hash(),
                last.header.height,
                mirror_work + work,
            )
        }
        _ => claim,
    };
    let serving = |answer: Response| -> Responder {
        let claim = match &answer {
            Response::Blocks(bytes) => {
                let blocks: Vec<Block> = (bytes.iter())
                    .filter_map(|b| Block::decode(&b.0, 1 << 24, 100_000).ok())
                    .collect();
                claim_of(&blocks)
            }
            _ => claim,
        };
        let mut rest = quiet();
        Box::new(move |r| match r {
            Request::Status(_) => Answer::Respond(Response::Status(claim)),
            Request::GetHeaders { .. } => Answer::Respond(match &answer {
                Response::Blocks(blocks) => Response::Headers(
                    (blocks.iter())
                        .map(|b| Bytes(b.0[..HEADER_LEN].to_vec()))
                        .collect(),
                ),
                other => other.clone(),
            }),
            Request::GetBlocks { .. } | Request::GetBodies { .. } => {
                Answer::Respond(answer.clone())
            }
            other => rest(other),
        })
    };
    let lie = |what, responder, request, after| Lie {
        what,
        responder,
        request,
        after_download: false,
        after,
    };

    // The chain of another network: valid blocks, but their parent is no block the node named.
    let mut other_chain = forge::other_chain(8);
    testkit::extend(&mut other_chain, 3, Address::of(&key(9)));
    let unconnected: Vec<Block> = (1..=3)
        .map(|h| (*other_chain.block_at(h).unwrap()).clone())
        .collect();

    // An invalid block that does connect: a forged signature.
    let chain_id = net.mirror.chain_id();
    let payer = Address::of(&key(1));
    let nonce = net.mirror.ledger().account(&payer).nonce;
    let mut forged = Transfer::sign(&key(1), &chain_id, Address::of(&key(2)), 3, 0, nonce);
    forged.signature[40] ^= 1;
    let bad = testkit::next_block(&net.mirror, &[forged], Address::of(&key(8)));
    let bad_error = ValidationError::BadSignature {
        txid: Transaction::Transfer(forged).compute_txid(),
        reason: SignatureError::BadSignature,
    };
    let push = |tx: Vec<u8>| Some(Request::Transactions(vec![Bytes(tx)]));
    let coinbase = Transaction::Coinbase(Coinbase {
        height: 7,
        to: payer,
        amount: 1_000,
    });

    vec![
        lie(
            "a Status request with another chain id",
            quiet(),
            Some(Request::Status(foreign_status)),
            After::Nothing,
        ),
        lie(
            "a Status answer with another chain id",
            claiming(foreign_status, || {
                Answer::Respond(Response::Blocks(Vec::new()))
            }),
            None,
            After::Nothing,
        ),
        Lie {
            after_download: true,
            ..lie(
                "a Status claiming work it cannot serve",
                serving(Response::Blocks(Vec::new())),
                None,
                After::Nothing,
            )
        },
        lie(
            "a chain that does not connect to the locator",
            serving(Response::Blocks(
                unconnected.iter().map(|b| Bytes(b.encode())).collect(),
            )),
            None,
            After::Dropped(unconnected.iter().map(|b| b.compute_hash()).collect()),
        ),
        {
            // Headers of one valid block, then another valid block as its body.
            let promised = net.valid_block(1);
            let served = net.valid_block(2);
            let served_hash = served.compute_hash();
            let headers = Response::Headers(vec![Bytes(promised.header.encode().to_vec())]);
            let body = Response::Blocks(vec![Bytes(served.encode())]);
            let claim = claim_of(std::slice::from_ref(&promised));
            let mut rest = quiet();
            let responder: Responder = Box::new(move |r| match r {
                Request::Status(_) => Answer::Respond(Response::Status(claim)),
                Request::GetHeaders { .. } => Answer::Respond(headers.clone()),
                Request::GetBodies { .. } => Answer::Respond(body.clone()),
                other => rest(other),
            });
            lie(
                "a body that is not the block its header promised",
                responder,
                None,
                After::Dropped(vec![served_hash, promised.compute_hash()]),
            )
        },
        lie(
            "an invalid block served by sync",
            serving(Response::Blocks(vec![Bytes(bad.encode())])),
            None,
            After::Rejected(bad, bad_error),
        ),
        lie(
            "the wrong kind of answer",
            serving(Response::Transactions(Vec::new())),
            None,
            After::Nothing,
        ),
        lie(
            "a forged transfer pushed by request",
            quiet(),
            push(Transaction::Transfer(forged).encode()),
            After::MempoolEmpty,
        ),
        lie(
            "a coinbase pushed by request",
            quiet(),
            push(coinbase.encode()),
            After::MempoolEmpty,
        ),
        lie(
            "bytes that are not a transfer pushed by request",
            quiet(),
            push(vec![1, 2, 3]),
            After::MempoolEmpty,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_lie_over_sync_are_banned() {
    let mut net = Net::start().await;
    let honest = net.honest.status().peer_id;
    // Each lie is built on the chain as it is when its turn comes: the checks after a ban mine
    // a block, and a served chain must still have more work than the node's to be fetched.
    for i in 0..lies(&net).len() {
        let lie = lies(&net).swap_remove(i);
        let what = lie.what;
        let before = tips(&net);
        let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(lie.responder)).await;
        if let Some(request) = lie.request {
            liar.client
                .request(honest, request, 1)
                .expect("the request is queued");
        }
        if lie.after_download {
            liar.expect("the download from the liar", is_download).await;
        }
        liar.expect(what, |n| matches!(n, Note::Disconnected)).await;
        match lie.after {
            After::Nothing => {}
            After::Dropped(hashes) => {
                for hash in hashes {
                    assert_eq!(net.state(hash).await, BlockState::Unknown, "{what}");
                }
            }
            After::Rejected(block, error) => {
                let hash = block.compute_hash();
                assert_eq!(net.state(hash).await, BlockState::Invalid(error), "{what}");
                assert_eq!(
                    net.other.handle.block_state(hash).await.unwrap(),
                    BlockState::Unknown,
                    "{what}: forwarded"
                );
                net.watcher
                    .assert_never_saw(what, std::slice::from_ref(&block.encode()));
            }
            After::MempoolEmpty => {
                assert_eq!(net.honest.status().mempool, 0, "{what}: admitted");
            }
        }
        after_raw_peer_ban(&mut net, &mut liar, before, what).await;
        drop(liar);
    }

    // Another chain's node: refused as soon as statuses are exchanged.
    let foreign = forge::other_chain(8);
    let chain_id = net.mirror.chain_id();
    let what = "a node of another chain";
    let before = tips(&net);
    let d = tempfile::tempdir().unwrap();
    let mut c = config(&d, std::slice::from_ref(&net.honest.addr));
    c.params = foreign.params().clone();
    // Subscribed before the stranger exists, so its connection and its drop are both seen.
    let mut events = net.honest.handle.subscribe();
    let mut stranger = start_with(d, c).await;
    let stranger_id = stranger.status().peer_id;
    // Each bans the other: wait until the honest node has dropped the stranger (the
    // stranger's own peer count is 0 before it has even dialled, so it proves nothing).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: the honest node never dropped it"));
        match event {
            Ok(Numbered {
                event:
                    NodeEvent::Peer {
                        peer,
                        connected: false,
                        ..
                    },
                ..
            }) if peer == stranger_id => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
    net.assert_only_honest_peers(what).await;
    assert!(!net.honest_connected_to(stranger_id).await, "{what}");
    assert_eq!(tips(&net), before, "{what}: a tip moved");
    stranger.stop().await;
    net.assert_still_serving(what).await;

    // Well-formed requests the node refuses without punishing: an empty locator, one too
    // long, one the node does not know; and a block request capped at what it has.
    let mut asker = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    let refused: Vec<Vec<BlockHash>> =
        vec![Vec::new(), vec![chain_id; 65], vec![BlockHash([0x42; 32])]];
    for (tag, locator) in refused.into_iter().enumerate() {
        asker
            .client
            .request(honest, Request::GetBlocks { locator, max: 10 }, tag as u64)
            .expect("the request is queued");
        let n = asker
            .expect(
                "the answer",
                |n| matches!(n, Note::Response(t, _) if *t == tag as u64),
            )
            .await;
        assert!(
            matches!(n, Note::Response(_, Ok(Response::Refused(_)))),
            "{n:?}"
        );
    }
    asker
        .client
        .request(
            honest,
            Request::GetBlocks {
                locator: vec![chain_id],
                max: u32::MAX,
            },
            9,
        )
        .expect("the request is queued");
    let n = asker
        .expect("the blocks", |n| matches!(n, Note::Response(9, _)))
        .await;
    let Note::Response(_, Ok(Response::Blocks(blocks))) = n else {
        panic!("{n:?}")
    };
    assert_eq!(blocks.len() as u64, net.honest.status().height);
    // The same for headers and blocks by hash: refused out of bounds, served within.
    let refused = [
        Request::GetHeaders {
            locator: Vec::new(),
            max: 10,
        },
        Request::GetHeaders {
            locator: vec![chain_id; 65],
            max: 10,
        },
        Request::GetHeaders {
            locator: vec![BlockHash([0x42; 32])],
            max: 10,
        },
        Request::GetBodies { hashes: Vec::new() },
        Request::GetBodies {
            hashes: vec![chain_id; 129],
        },
    ];
    for (tag, request) in (20u64..).zip(refused) {
        asker
            .client
            .request(honest, request.clone(), tag)
            .expect("the request is queued");
        let n = asker
            .expect(
                "the answer",
                |n| matches!(n, Note::Response(t, _) if *t == tag),
            )
            .await;
        assert!(
            matches!(n, Note::Response(_, Ok(Response::Refused(_)))),
            "{request:?}: {n:?}"
        );
    }
    asker
        .client
        .request(
            honest,
            Request::GetHeaders {
                locator: vec![chain_id],
                max: u32::MAX,
            },
            30,
        )
        .expect("the request is queued");
    let n = asker
        .expect("the headers", |n| matches!(n, Note::Response(30, _)))
        .await;
    let Note::Response(_, Ok(Response::Headers(headers))) = n else {
        panic!("{n:?}")
    };
    assert_eq!(headers.len(), blocks.len());
    let mut hashes = Vec::new();
    for (header, block) in headers.iter().zip(&blocks) {
        assert_eq!(header.0, block.0[..96], "a block's own header");
        hashes.push(
            gossipchain::chain::Header::decode(&header.0)
                .unwrap()
                .compute_hash(),
        );
    }
    // Blocks by hash, in the order asked, up to the first the node lacks.
    hashes.reverse();
    hashes.push(BlockHash([0x42; 32]));
    hashes.push(chain_id);
    asker
        .client
        .request(honest, Request::GetBodies { hashes }, 31)
        .expect("the request is queued");
    let n = asker
        .expect("the bodies", |n| matches!(n, Note::Response(31, _)))
        .await;
    let Note::Response(_, Ok(Response::Blocks(bodies))) = n else {
        panic!("{n:?}")
    };
    let mut want = blocks.clone();
    want.reverse();
    assert_eq!(bodies, want);
    assert!(
        net.honest_connected_to(asker.id).await,
        "refused, not banned"
    );
    drop(asker);
    net.assert_only_honest_peers("after the refusals").await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_claims_work_and_never_answers_does_not_stall_sync() {
    // The node under attack gives up on a request after 1 s (20 s by default).
    let mut chain = ChainState::new(params());
    testkit::extend(&mut chain, 3, Address::of(&key(1)));
    let blocks: Vec<_> = (1..=3)
        .map(|h| chain.block_at(h).unwrap().clone())
        .collect();
    let d = tempfile::tempdir().unwrap();
    preload_blocks(&d, &blocks);
    let mut c = config(&d, &[]);
    c.net.behaviour.request_timeout = Duration::from_secs(1);
    let mut node = start_with(d, c).await;

    // The liar claims more work than anyone and holds every block request unanswered.
    let claim = Status::new(
        chain.chain_id(),
        BlockHash([0x77; 32]),
        1_000_000,
        u128::MAX / 2,
    );
    let mut liar =
        RawPeer::connect(&node.addr, RawOpts::new(claiming(claim, || Answer::Hold))).await;
    liar.expect("the node to download from the liar", is_download)
        .await;

    // An honest peer 5 blocks ahead joins: the node must get its chain despite the liar.
    testkit::extend(&mut chain, 5, Address::of(&key(2)));
    let ahead: Vec<_> = (1..=8)
        .map(|h| chain.block_at(h).unwrap().clone())
        .collect();
    let d = tempfile::tempdir().unwrap();
    preload_blocks(&d, &ahead);
    let c = config(&d, std::slice::from_ref(&node.addr));
    let mut honest = start_with(d, c).await;
    let (s, ok) = node
        .handle
        .wait_for(Duration::from_secs(20), |s| s.tip == chain.tip())
        .await;
    assert!(ok, "the node never synced from the honest peer: {s:?}");
    drop(liar);
    honest.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_refused_then_banned_while_honest_peers_are_served() {
    let mut net = Net::start().await;
    let honest: PeerId = net.honest.status().peer_id;
    let genesis = net.mirror.chain_id();
    let height = net.honest.status().height;
    let mut asker = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    let mut liar = RawPeer::connect(&net.honest.addr, RawOpts::new(quiet())).await;
    net.honest
        .wait("the asker and the liar", |s| s.peers == 4)
        .await;
    let before = tips(&net);

    // The liar sends up to 10 000 block requests as fast as the node takes them (32 streams
    // in flight, the per-connection limit); an honest peer asks for blocks too, every 50
    // requests of the flood.
    let get = || Request::GetBlocks {
        locator: vec![genesis],
        max: 512,
    };
    let start = Instant::now();
    let (mut sent, mut in_flight, mut served, mut refused) = (0u64, 0, 0u64, 0u64);
    let mut asked = 0u64;
    let banned_at = loop {
        while in_flight < 32 && sent < 10_000 {
            liar.client
                .request(honest, get(), sent)
                .expect("the request is queued");
            sent += 1;
            in_flight += 1;
            if sent % 50 == 0 {
                asker
                    .client
                    .request(honest, get(), asked)
                    .expect("the request is queued");
                asked += 1;
            }
        }
        match liar.next_within(DEADLINE).await.expect("the flood goes on") {
            Note::Response(_, r) => {
                in_flight -= 1;
                match r {
                    Ok(Response::Blocks(b)) => {
                        assert_eq!(b.len() as u64, height);
                        served += 1
                    }
                    Ok(Response::Refused(reason)) => {
                        assert!(reason.contains("rate"), "{reason}");
                        refused += 1
                    }
                    Ok(other) => panic!("unexpected answer {other:?}"),
                    Err(_) => {}
                }
            }
            Note::Disconnected => break Instant::now(),
            _ => {}
        }
        assert!(
            sent < 10_000 || in_flight > 0,
            "10 000 requests and never banned ({served} served, {refused} refused)"
        );
    };
    let elapsed = banned_at - start;
    println!(
        "flood: {sent} sent, {served} served, {refused} refused, banned after {elapsed:?}; \
         the honest peer asked {asked} times meanwhile"
    );
    // The burst of 200 is served, then little more than 50/s; 200 refusals in a row ban.
    assert!(served >= 200, "only {served} served before the limit");
    assert!(
        (served as f64) <= 200.0 + 50.0 * elapsed.as_secs_f64() + 1.0,
        "{served} served in {elapsed:?}"
    );
    assert!(refused >= 1, "never refused");
    assert!(sent < 10_000, "banned only after all 10 000");

    // The honest peer's requests sent during the flood are all answered in full.
    assert!(asked >= 4);
    for tag in 0..asked {
        let n = asker
            .expect(
                "an answer to the honest peer",
                |n| matches!(n, Note::Response(t, _) if *t == tag),
            )
            .await;
        match n {
            Note::Response(_, Ok(Response::Blocks(b))) => assert_eq!(b.len() as u64, height),
            other => panic!("the honest peer got {other:?} during the flood"),
        }
    }
    assert!(net.honest_connected_to(asker.id).await);
    drop(asker);
    assert_redial_refused(&net, &mut liar, "the flood").await;
    drop(liar);
    net.assert_only_honest_peers("after the flood").await;
    assert_eq!(tips(&net), before);
    net.assert_still_serving("after the flood").await;
    net.stop().await;
}
