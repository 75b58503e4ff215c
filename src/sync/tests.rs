//! Unit tests of block acquisition: one node's component against scripted peers whose chains
//! are real [`ChainState`]s, answers built with the node's own serving functions.

use super::*;
use crate::chain::{Address, ChainState, Header};
use crate::testkit;
use std::collections::BTreeSet;

type Peer = u32;

fn chain_of(n: usize) -> ChainState {
    let mut c = ChainState::new(testkit::params());
    testkit::extend(&mut c, n, Address([1; 32]));
    c
}

fn status(chain: &ChainState) -> Status {
    Status::new(
        chain.chain_id(),
        chain.tip(),
        chain.height(),
        chain.tip_work(),
    )
}

/// A node with a component, its chain, and a clock.
struct Harness {
    sync: Sync<Peer>,
    chain: ChainState,
    t0: Instant,
    ms: u64,
}

impl Harness {
    fn new(chain: ChainState) -> Self {
        let config = SyncConfig {
            bodies_per_request: 16,
            ..SyncConfig::new(chain.chain_id())
        };
        Self {
            sync: Sync::new(config),
            chain,
            t0: Instant::now(),
            ms: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_millis(self.ms),
            wall_ms: testkit::NOW,
        }
    }

    fn feed(&mut self, event: Event<Peer>) -> Vec<Action<Peer>> {
        let now = self.now();
        self.sync.handle(event, now, &self.chain)
    }

    /// Connects `peer`, answers its status and mempool requests with `remote`'s.
    fn connect(&mut self, peer: Peer, remote: &ChainState) -> Vec<Action<Peer>> {
        let mut out = Vec::new();
        for a in self.feed(Event::Connected(peer)) {
            match a {
                Action::Request {
                    tag,
                    req: Req::Status,
                    ..
                } => out.extend(self.feed(Event::Status {
                    peer,
                    tag: Some(tag),
                    status: status(remote),
                })),
                Action::Request {
                    tag,
                    req: Req::GetMempool,
                    ..
                } => out.extend(self.feed(Event::Answered { peer, tag })),
                other => out.push(other),
            }
        }
        out
    }

    /// Applies a batch the way the node does (no signatures to check here: testkit blocks
    /// carry none) and reports it.
    fn apply(&mut self, batch: BatchId, blocks: Vec<Body>) -> Vec<Action<Peer>> {
        let known: Vec<bool> = blocks
            .iter()
            .map(|b| self.chain.known(&b.hash).is_some())
            .collect();
        let params = self.chain.params().clone();
        let cache = self.chain.sig_cache().clone();
        let verified = apply::verify(blocks, &known, &params, &self.chain.chain_id(), &cache);
        let chain = &mut self.chain;
        let stopped = apply::apply_in_order(verified, |v| match v {
            apply::Verified::Known(_) => Ok(crate::chain::Processed {
                outcome: crate::chain::Outcome::AlreadyKnown,
                accepted: Vec::new(),
                rejected: Vec::new(),
                tip_change: None,
            }),
            apply::Verified::Checked(c) => chain.process_checked(c, testkit::NOW, true),
            apply::Verified::Invalid { error, .. } => Err(error),
        });
        let result = apply::result(stopped, |h| self.chain.invalid_reason(h).is_some());
        self.feed(Event::Applied { batch, result })
    }
}

fn headers_answer(remote: &ChainState, locator: &[BlockHash]) -> Vec<Header> {
    serve::headers_after(remote, locator, protocol::MAX_HEADERS_PER_RESPONSE).unwrap_or_default()
}

fn bodies_answer(remote: &ChainState, hashes: &[BlockHash]) -> Vec<Body> {
    serve::bodies_of(remote, hashes)
        .into_iter()
        .map(|wire| {
            let block = crate::chain::Block::decode(&wire, 1 << 24, 100_000).unwrap();
            Body {
                hash: block.compute_hash(),
                block,
                wire,
            }
        })
        .collect()
}

/// Carries out one action as an honest network would: requests answered from
/// `remotes[peer]` (none for peers in `silent`, returned as unanswered), batches applied.
fn step(
    h: &mut Harness,
    action: Action<Peer>,
    remotes: &BTreeMap<Peer, &ChainState>,
    silent: &BTreeSet<Peer>,
    unanswered: &mut Vec<(Peer, Tag, Req)>,
) -> Vec<Action<Peer>> {
    match action {
        Action::Request { peer, tag, req } if silent.contains(&peer) => {
            unanswered.push((peer, tag, req));
            Vec::new()
        }
        Action::Request { peer, tag, req } => {
            let remote = remotes[&peer];
            match req {
                Req::Status => h.feed(Event::Status {
                    peer,
                    tag: Some(tag),
                    status: status(remote),
                }),
                Req::GetHeaders { locator } => h.feed(Event::Headers {
                    peer,
                    tag,
                    headers: headers_answer(remote, &locator),
                }),
                Req::GetBodies { hashes } => h.feed(Event::Bodies {
                    peer,
                    tag,
                    blocks: bodies_answer(remote, &hashes),
                }),
                Req::GetMempool | Req::Transactions(_) => h.feed(Event::Answered { peer, tag }),
            }
        }
        Action::Apply { batch, blocks, .. } => h.apply(batch, blocks),
        Action::Ban { peer, reason } => panic!("banned honest peer {peer}: {reason}"),
        Action::WakeAt(_) => Vec::new(),
    }
}

/// Runs [`step`] until nothing is left to do; returns the requests left unanswered.
fn run_honest(
    h: &mut Harness,
    mut actions: Vec<Action<Peer>>,
    remotes: &BTreeMap<Peer, &ChainState>,
    silent: &BTreeSet<Peer>,
) -> Vec<(Peer, Tag, Req)> {
    let mut unanswered = Vec::new();
    for _ in 0..10_000 {
        let Some(a) = actions.pop() else {
            return unanswered;
        };
        actions.extend(step(h, a, remotes, silent, &mut unanswered));
    }
    panic!("no end to the exchange");
}

#[test]
fn a_new_peer_is_asked_its_status_and_mempool() {
    let mut h = Harness::new(chain_of(0));
    let acts = h.feed(Event::Connected(7));
    let reqs: Vec<&Req> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Request { peer: 7, req, .. } => Some(req),
            _ => None,
        })
        .collect();
    assert_eq!(reqs, [&Req::Status, &Req::GetMempool]);
    assert!(
        acts.iter().any(|a| matches!(a, Action::WakeAt(_))),
        "the component asks to be woken for the deadlines: {acts:?}"
    );
}

#[test]
fn headers_come_first_then_bodies_from_every_peer_and_the_chain_catches_up() {
    let remote = chain_of(300);
    let mut h = Harness::new(chain_of(0));
    let mut first = Vec::new();
    for p in 1..=3 {
        first.extend(h.connect(p, &remote));
    }
    // Only one peer is asked for headers, and no body before headers.
    let headers: Vec<_> = first
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Request {
                    req: Req::GetHeaders { .. },
                    ..
                }
            )
        })
        .collect();
    assert_eq!(headers.len(), 1, "{first:?}");
    assert!(!first.iter().any(|a| matches!(
        a,
        Action::Request {
            req: Req::GetBodies { .. },
            ..
        }
    )));
    let (peer, tag) = match headers[0] {
        Action::Request { peer, tag, .. } => (*peer, *tag),
        _ => unreachable!(),
    };
    let locator = serve::locator_from(&h.chain, h.chain.tip());
    let acts = h.feed(Event::Headers {
        peer,
        tag,
        headers: headers_answer(&remote, &locator),
    });
    assert_eq!(h.sync.headers_height(), Some(300));
    // Bodies are asked of all three peers at once, no hash twice.
    let mut asked_of = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    for a in &acts {
        if let Action::Request {
            peer,
            req: Req::GetBodies { hashes: hs },
            ..
        } = a
        {
            asked_of.insert(*peer);
            for x in hs {
                assert!(hashes.insert(*x), "a block asked twice");
            }
        }
    }
    assert_eq!(asked_of, BTreeSet::from([1, 2, 3]), "{acts:?}");
    let remotes = BTreeMap::from([(1, &remote), (2, &remote), (3, &remote)]);
    run_honest(&mut h, acts, &remotes, &BTreeSet::new());
    assert_eq!(h.chain.tip(), remote.tip());
    assert!(!h.sync.is_syncing());
    assert_eq!(h.sync.stats().bans, 0);
}

#[test]
fn a_peer_holding_the_first_block_past_the_stall_timeout_loses_it_once() {
    let remote = chain_of(200);
    let mut h = Harness::new(chain_of(0));
    let remotes = BTreeMap::from([(1, &remote), (2, &remote)]);
    let mut acts = h.connect(1, &remote);
    acts.extend(h.connect(2, &remote));
    // Peer 2 never answers bodies; peer 1 answers everything.
    let silent_bodies = |acts: Vec<Action<Peer>>, h: &mut Harness| {
        let (stalled, rest): (Vec<_>, Vec<_>) = acts.into_iter().partition(|a| {
            matches!(
                a,
                Action::Request {
                    peer: 2,
                    req: Req::GetBodies { .. },
                    ..
                }
            )
        });
        let left = run_honest(h, rest, &remotes, &BTreeSet::from([2]));
        stalled.len() + left.len()
    };
    let withheld = silent_bodies(acts, &mut h);
    assert!(withheld > 0, "peer 2 was never asked for bodies");
    assert!(h.chain.height() < 200, "nothing stalled");
    let stuck = h.chain.height();
    // Before the timeout nothing moves; after it, peer 1 gets the blocks and the chain ends.
    h.ms += 1_900;
    let acts = h.feed(Event::Timer);
    assert!(!acts.iter().any(|a| matches!(
        a,
        Action::Request {
            peer: 1,
            req: Req::GetBodies { .. },
            ..
        }
    )));
    assert_eq!(h.sync.stats().stalls, 0);
    h.ms += 200;
    let acts = h.feed(Event::Timer);
    assert_eq!(h.sync.stats().stalls, 1);
    silent_bodies(acts, &mut h);
    assert!(h.chain.height() > stuck);
    assert_eq!(h.chain.tip(), remote.tip(), "peer 1 served the rest");
    assert_eq!(
        h.sync.stats().stalls,
        1,
        "the staller is not asked again in this run"
    );
    assert_eq!(h.sync.stats().bans, 0, "a stall is no fault");
}

#[test]
fn headers_that_do_not_connect_or_a_wrong_body_get_the_peer_banned() {
    let remote = chain_of(50);
    let other = {
        let mut c = ChainState::new(testkit::params());
        testkit::extend(&mut c, 60, Address([9; 32]));
        c
    };
    // Headers building on nothing we sent.
    let mut h = Harness::new(chain_of(5));
    let acts = h.connect(1, &remote);
    let tag = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetHeaders { .. },
                ..
            } => Some(*tag),
            _ => None,
        })
        .expect("headers asked");
    let stray = headers_answer(&remote, &[remote.hash_at(20).unwrap()]);
    let acts = h.feed(Event::Headers {
        peer: 1,
        tag,
        headers: stray,
    });
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Ban { peer: 1, .. })),
        "{acts:?}"
    );

    // A body that is not the block asked for.
    let mut h = Harness::new(chain_of(0));
    let acts = h.connect(1, &remote);
    let tag = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetHeaders { .. },
                ..
            } => Some(*tag),
            _ => None,
        })
        .unwrap();
    let locator = serve::locator_from(&h.chain, h.chain.tip());
    let acts = h.feed(Event::Headers {
        peer: 1,
        tag,
        headers: headers_answer(&remote, &locator),
    });
    let (tag, hashes) = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetBodies { hashes },
                ..
            } => Some((*tag, hashes.clone())),
            _ => None,
        })
        .expect("bodies asked");
    let wrong = bodies_answer(&other, &[other.hash_at(1).unwrap()]);
    assert_ne!(wrong[0].hash, hashes[0]);
    let acts = h.feed(Event::Bodies {
        peer: 1,
        tag,
        blocks: wrong,
    });
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Ban { peer: 1, .. })),
        "{acts:?}"
    );
    assert_eq!(h.chain.height(), 0);
}

#[test]
fn a_peer_claiming_work_it_cannot_serve_is_banned() {
    let remote = chain_of(10);
    let mut h = Harness::new(chain_of(10));
    let mut liar = status(&remote);
    liar.work = crate::chain::hash::ByteArray((remote.tip_work() * 2).to_be_bytes());
    let acts = h.feed(Event::Connected(1));
    let tag = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::Status,
                ..
            } => Some(*tag),
            _ => None,
        })
        .unwrap();
    let acts = h.feed(Event::Status {
        peer: 1,
        tag: Some(tag),
        status: liar,
    });
    let tag = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetHeaders { .. },
                ..
            } => Some(*tag),
            _ => None,
        })
        .expect("the claim starts a headers request");
    let acts = h.feed(Event::Headers {
        peer: 1,
        tag,
        headers: Vec::new(),
    });
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Ban { peer: 1, .. })),
        "{acts:?}"
    );
}

#[test]
fn a_status_overtaking_the_headers_answer_is_no_lie() {
    // The peer mines while we ask: its answer holds its chain when it answered, and the status
    // it sent after (an inbound request of its own, on another stream) arrives first, claiming
    // more. That is no lie (the CI's late-joiner test banned an honest miner for it).
    let mut remote = chain_of(10);
    let mut h = Harness::new(chain_of(5));
    let acts = h.connect(1, &remote);
    let (tag, locator) = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetHeaders { locator },
                ..
            } => Some((*tag, locator.clone())),
            _ => None,
        })
        .expect("the claim starts a headers request");
    let answer = headers_answer(&remote, &locator);
    testkit::extend(&mut remote, 5, Address([1; 32]));
    let mut acts = h.feed(Event::Status {
        peer: 1,
        tag: None,
        status: status(&remote),
    });
    acts.extend(h.feed(Event::Headers {
        peer: 1,
        tag,
        headers: answer,
    }));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Ban { .. })),
        "{acts:?}"
    );
    // And the download goes on to the peer's new tip.
    let remotes = BTreeMap::from([(1, &remote)]);
    let left = run_honest(&mut h, acts, &remotes, &BTreeSet::new());
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(h.chain.tip(), remote.tip());
}

#[test]
fn a_run_with_less_work_than_ours_never_asks_for_bodies() {
    // Ours: 30 blocks. The peer: a fork of 20 that claims (truly) less work: no request at
    // all; claiming more but serving a weaker branch: headers, never bodies, then a ban.
    let ours = chain_of(30);
    let weak = {
        let mut c = chain_of(5);
        testkit::extend(&mut c, 15, Address([7; 32]));
        c
    };
    let mut h = Harness::new(ours);
    let acts = h.connect(1, &weak);
    assert!(!acts.iter().any(|a| matches!(
        a,
        Action::Request {
            req: Req::GetHeaders { .. },
            ..
        }
    )));
    let mut lie = status(&weak);
    lie.work = crate::chain::hash::ByteArray((h.chain.tip_work() + 1).to_be_bytes());
    let acts = h.feed(Event::Status {
        peer: 1,
        tag: None,
        status: lie,
    });
    let (tag, locator) = acts
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::GetHeaders { locator },
                ..
            } => Some((*tag, locator.clone())),
            _ => None,
        })
        .expect("headers asked");
    let acts = h.feed(Event::Headers {
        peer: 1,
        tag,
        headers: headers_answer(&weak, &locator),
    });
    assert!(
        !acts.iter().any(|a| matches!(
            a,
            Action::Request {
                req: Req::GetBodies { .. },
                ..
            }
        )),
        "bodies of a weaker branch asked: {acts:?}"
    );
    assert_eq!(h.chain.height(), 30);
}

#[test]
fn an_invalid_body_bans_its_sender_and_the_block_comes_from_another_peer() {
    let remote = chain_of(40);
    let mut h = Harness::new(chain_of(0));
    let mut acts = h.connect(1, &remote);
    acts.extend(h.connect(2, &remote));
    // Run until the first batch is handed over, then report its first block's body as not
    // matching its header (a peer that served another body with the same header).
    let remotes = BTreeMap::from([(1, &remote), (2, &remote)]);
    let mut pending = acts;
    let mut tampered = None;
    for _ in 0..1000 {
        let Some(a) = pending.pop() else { break };
        match a {
            Action::Apply { batch, from, .. } if tampered.is_none() => {
                tampered = Some(from[0]);
                pending.extend(h.feed(Event::Applied {
                    batch,
                    result: BatchResult::Invalid {
                        index: 0,
                        reason: "tx_root mismatch".into(),
                        condemned: false,
                    },
                }));
            }
            Action::Ban { peer, .. } => assert_eq!(Some(peer), tampered),
            Action::Request { peer, .. } if Some(peer) == tampered => {}
            other => {
                let mut unanswered = Vec::new();
                let silent = BTreeSet::new();
                pending.extend(step(&mut h, other, &remotes, &silent, &mut unanswered));
            }
        }
    }
    let liar = tampered.expect("a batch was applied");
    assert_eq!(h.sync.stats().bans, 1);
    assert_eq!(
        h.chain.tip(),
        remote.tip(),
        "the other peer served the block again"
    );
    assert!(!h.sync.peers().any(|p| *p == liar));
}
