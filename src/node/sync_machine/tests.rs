use super::*;
use crate::net::RequestFailure;
use std::time::Duration;

const S: Duration = Duration::from_secs(1);

fn hash(n: u8) -> BlockHash {
    BlockHash([n; 32])
}

fn config() -> SyncConfig {
    SyncConfig::new(BlockHash([7; 32]))
}

fn status(height: u64, work: u128) -> Status {
    Status::new(BlockHash([7; 32]), hash(height as u8), height, work)
}

fn machine() -> (SyncMachine<u32>, Instant) {
    let tip = Tip {
        hash: hash(0),
        height: 0,
        work: 1,
    };
    (SyncMachine::new(config(), tip), Instant::now())
}

/// The tags and targets of the page requests among `actions`.
fn pages(actions: &[Action<u32>]) -> Vec<(u32, Tag, BlockHash)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                peer,
                tag,
                req: Req::GetBlocks { from },
            } => Some((*peer, *tag, *from)),
            _ => None,
        })
        .collect()
}

/// Connects `peer` and has it claim `height` blocks of work `height + 1`; returns the
/// actions of the status answer.
fn connect(m: &mut SyncMachine<u32>, peer: u32, height: u64, now: Instant) -> Vec<Action<u32>> {
    let actions = m.handle(Event::Connected(peer), now);
    let tag = actions
        .iter()
        .find_map(|a| match a {
            Action::Request {
                tag,
                req: Req::Status,
                ..
            } => Some(*tag),
            _ => None,
        })
        .expect("a status request on connect");
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Request {
            req: Req::GetMempool,
            ..
        }
    )));
    m.handle(
        Event::Status {
            peer,
            tag: Some(tag),
            status: status(height, height as u128 + 1),
        },
        now,
    )
}

#[test]
fn downloads_from_the_peer_with_the_most_work() {
    let (mut m, t) = machine();
    assert!(pages(&connect(&mut m, 1, 10, t)).len() == 1);
    // A better peer does not start a second download.
    assert!(pages(&connect(&mut m, 2, 20, t)).is_empty());
    assert_eq!(m.downloading_from(), Some(1));
    assert!(m.is_syncing());
}

#[test]
fn the_next_page_is_asked_before_the_received_one_is_applied() {
    let (mut m, t) = machine();
    let (_, tag, from) = pages(&connect(&mut m, 1, 1000, t))[0];
    assert_eq!(from, hash(0));
    let end = PageEnd {
        hash: hash(99),
        height: 512,
    };
    let actions = m.handle(
        Event::Page {
            peer: 1,
            tag,
            blocks: 512,
            last: Some(end),
        },
        t,
    );
    let next = pages(&actions);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].2, hash(99), "the next range starts after the page");
    let apply = actions
        .iter()
        .position(|a| *a == Action::Apply { tag })
        .unwrap();
    let request = actions
        .iter()
        .position(|a| matches!(a, Action::Request { .. }))
        .unwrap();
    assert!(request < apply, "{actions:?}");
    // The second page arrives while the first is being applied: held, not applied yet,
    // and no third request (two held pages fill the pipeline).
    let tag2 = next[0].1;
    let actions = m.handle(
        Event::Page {
            peer: 1,
            tag: tag2,
            blocks: 10,
            last: Some(PageEnd {
                hash: hash(98),
                height: 522,
            }),
        },
        t,
    );
    assert!(actions.is_empty(), "{actions:?}");
    m.handle(
        Event::LocalTip(Tip {
            hash: hash(99),
            height: 512,
            work: 513,
        }),
        t,
    );
    let actions = m.handle(
        Event::PageApplied {
            tag,
            result: PageResult::Applied { new: 512, known: 0 },
        },
        t,
    );
    assert_eq!(pages(&actions)[0].2, hash(98));
    assert!(actions.contains(&Action::Apply { tag: tag2 }));
    assert_eq!(m.stats().pages_applied, 1);
}

#[test]
fn a_page_past_its_deadline_moves_the_download_to_another_peer_and_is_ignored_later() {
    let (mut m, t) = machine();
    let (_, tag, from) = pages(&connect(&mut m, 1, 10, t))[0];
    connect(&mut m, 2, 10, t);
    let actions = m.handle(Event::Tick, t + config().page_timeout);
    let retry = pages(&actions);
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].0, retry[0].2), (2, from));
    // The page, and the two mempool requests nobody answered.
    assert_eq!(m.stats().timeouts, 3);
    let late = m.handle(
        Event::Page {
            peer: 1,
            tag,
            blocks: 3,
            last: Some(PageEnd {
                hash: hash(3),
                height: 3,
            }),
        },
        t + 16 * S,
    );
    assert_eq!(late, vec![Action::Discard { tag }]);
    assert_eq!(m.ranges_in_flight(), vec![from]);
}

#[test]
fn refusal_failure_and_disconnect_each_move_the_download_on() {
    for case in 0..4 {
        let (mut m, t) = machine();
        let (_, tag, from) = pages(&connect(&mut m, 1, 10, t))[0];
        connect(&mut m, 2, 9, t);
        let event = match case {
            0 => Event::Failed {
                peer: 1,
                tag,
                failure: Failure::Refused("rate limit".into()),
            },
            1 => Event::Failed {
                peer: 1,
                tag,
                failure: Failure::NotSent,
            },
            2 => Event::Failed {
                peer: 1,
                tag,
                failure: Failure::Io(RequestFailure::ConnectionClosed),
            },
            _ => Event::Disconnected(1),
        };
        let retry = pages(&m.handle(event, t));
        assert_eq!(retry, vec![(2, retry[0].1, from)], "case {case}");
        // Peer 1 is backed off: peer 2 failing too leaves nobody until the backoff ends.
        if case < 3 {
            let none = m.handle(
                Event::Failed {
                    peer: 2,
                    tag: retry[0].1,
                    failure: Failure::NotSent,
                },
                t,
            );
            assert!(pages(&none).is_empty(), "case {case}: {none:?}");
            let again = pages(&m.handle(Event::Tick, t + config().retry_min));
            assert_eq!(again.len(), 1, "case {case}");
        }
    }
}

#[test]
fn the_backoff_doubles_with_each_failure_of_a_peer() {
    let (mut m, mut t) = machine();
    pages(&connect(&mut m, 1, 10, t));
    let mut waits = Vec::new();
    for _ in 0..5 {
        let (_, tag, _) = *m
            .in_flight
            .iter()
            .filter(|(_, f)| matches!(f.kind, Kind::Page { .. }))
            .map(|(tag, f)| (f.peer, *tag, f.kind))
            .collect::<Vec<_>>()
            .first()
            .expect("a page in flight");
        m.handle(
            Event::Failed {
                peer: 1,
                tag,
                failure: Failure::NotSent,
            },
            t,
        );
        let start = t;
        loop {
            t += Duration::from_millis(250);
            if !pages(&m.handle(Event::Tick, t)).is_empty() {
                break;
            }
        }
        waits.push((t - start).as_secs());
    }
    assert_eq!(waits, vec![2, 4, 8, 16, 32]);
}

#[test]
fn lying_and_misbehaving_peers_are_banned() {
    // Claims more work but serves nothing.
    let (mut m, t) = machine();
    let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
    let a = m.handle(
        Event::Page {
            peer: 1,
            tag,
            blocks: 0,
            last: None,
        },
        t,
    );
    assert!(
        a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
        "{a:?}"
    );
    assert!(!m.is_syncing());
    // Another chain.
    let (mut m, t) = machine();
    m.handle(Event::Connected(1), t);
    let mut other = status(5, 6);
    other.chain_id = BlockHash([8; 32]);
    let a = m.handle(
        Event::Status {
            peer: 1,
            tag: None,
            status: other,
        },
        t,
    );
    assert!(matches!(&a[..], [Action::Ban { peer: 1, .. }]), "{a:?}");
    // Answers a page request with a status.
    let (mut m, t) = machine();
    let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
    let a = m.handle(
        Event::Status {
            peer: 1,
            tag: Some(tag),
            status: status(10, 11),
        },
        t,
    );
    assert!(
        a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
        "{a:?}"
    );
    // Serves a malformed page, or an invalid one: banned, the download moves on.
    for malformed in [true, false] {
        let (mut m, t) = machine();
        let (_, tag, _) = pages(&connect(&mut m, 1, 10, t))[0];
        connect(&mut m, 2, 10, t);
        let a = if malformed {
            m.handle(
                Event::Failed {
                    peer: 1,
                    tag,
                    failure: Failure::Malformed("a malformed block".into()),
                },
                t,
            )
        } else {
            let end = Some(PageEnd {
                hash: hash(5),
                height: 5,
            });
            let a = m.handle(
                Event::Page {
                    peer: 1,
                    tag,
                    blocks: 5,
                    last: end,
                },
                t,
            );
            assert!(a.contains(&Action::Apply { tag }));
            m.handle(
                Event::PageApplied {
                    tag,
                    result: PageResult::Invalid("bad proof of work".into()),
                },
                t,
            )
        };
        assert!(
            a.iter().any(|a| matches!(a, Action::Ban { peer: 1, .. })),
            "{a:?}"
        );
        let next = pages(&a);
        assert_eq!(next.len(), 1, "{a:?}");
        assert_eq!((next[0].0, next[0].2), (2, hash(0)));
    }
}

#[test]
fn a_paused_page_discards_the_pages_after_it_without_blame() {
    let (mut m, t) = machine();
    let (_, tag, _) = pages(&connect(&mut m, 1, 1000, t))[0];
    let end = |n: u8| {
        Some(PageEnd {
            hash: hash(n),
            height: n as u64 * 10,
        })
    };
    let a = m.handle(
        Event::Page {
            peer: 1,
            tag,
            blocks: 10,
            last: end(1),
        },
        t,
    );
    let tag2 = pages(&a)[0].1;
    m.handle(
        Event::Page {
            peer: 1,
            tag: tag2,
            blocks: 10,
            last: end(2),
        },
        t,
    );
    let a = m.handle(
        Event::PageApplied {
            tag,
            result: PageResult::Paused("timestamp too new".into()),
        },
        t,
    );
    assert!(a.contains(&Action::Discard { tag: tag2 }), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, Action::Ban { .. })));
    assert!(!m.is_syncing());
}

#[test]
fn an_orphan_starts_a_download_from_its_sender() {
    let (mut m, t) = machine();
    m.handle(Event::Connected(3), t);
    let a = m.handle(Event::Orphan(3), t);
    assert_eq!(pages(&a).len(), 1, "{a:?}");
    assert_eq!(m.downloading_from(), Some(3));
}

#[test]
fn statuses_are_asked_every_interval_and_on_demand() {
    let (mut m, t) = machine();
    m.handle(Event::Connected(1), t);
    m.handle(Event::Connected(2), t);
    let statuses = |a: &[Action<u32>]| {
        a.iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Request {
                        req: Req::Status,
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(statuses(&m.handle(Event::Tick, t + S)), 0);
    assert_eq!(
        statuses(&m.handle(Event::Tick, t + config().status_interval)),
        2
    );
    assert_eq!(statuses(&m.handle(Event::SyncNow, t + 16 * S)), 2);
    assert!(m.next_wakeup().is_some());
}
