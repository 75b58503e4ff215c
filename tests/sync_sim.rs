//! Sync policy under a seeded simulator: many honest nodes and faulty peers, no sockets. Each
//! run checks that every honest node ends on the chain with the most work within a bounded
//! simulated time, that no range is ever requested twice at once, and that peers proven
//! faulty are banned while honest ones are not.

mod sim;

use gossipchain::chain::ChainState;
use sim::{Fault, Sim, copy, world};
use std::time::Duration;

const ALL_FAULTS: [Fault; 6] = [
    Fault::Silent,
    Fault::Staller,
    Fault::Slow,
    Fault::Liar,
    Fault::Disconnecter,
    Fault::Flooder,
];

/// Eight honest nodes: one on the best chain, one on a weaker fork, one on the common prefix,
/// five at genesis.
fn honest_chains(w: &sim::World) -> Vec<ChainState> {
    let mut chains = vec![copy(&w.best, w.best.height())];
    chains.push(copy(&w.others[1], w.others[1].height()));
    chains.push(copy(&w.others[0], w.others[0].height()));
    for _ in 0..5 {
        chains.push(copy(&w.others[0], 0));
    }
    chains
}

fn run(seed: u64, faults: &[Fault], limit: Duration) -> (Sim, bool) {
    let w = world(20, 30, 15, 60);
    let target = w.best.tip();
    let mut sim = Sim::new(seed, honest_chains(&w), &w.best, faults);
    let done = sim.run_until(limit, |s| s.converged_on(target));
    (sim, done)
}

#[test]
fn honest_nodes_converge_on_the_most_work_despite_every_kind_of_faulty_peer() {
    for seed in 1..=6 {
        let (sim, done) = run(seed, &ALL_FAULTS, Duration::from_secs(300));
        assert!(
            done,
            "seed {seed}: not converged after {:?}: heights {:?}",
            sim.elapsed(),
            sim.honest
                .iter()
                .map(|h| h.chain.height())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            sim.duplicate_ranges, 0,
            "seed {seed}: a range was asked twice at once"
        );
        for (node, peer, fault) in &sim.bans {
            assert!(
                matches!(fault, Some(Fault::Liar | Fault::Flooder)),
                "seed {seed}: node {node} banned {peer} ({fault:?}), which broke no rule"
            );
        }
        // The liar claims the most work of all, so every node tries it, and bans it.
        for i in 0..sim.honest.len() as u32 {
            assert!(
                sim.bans
                    .iter()
                    .any(|(n, _, f)| *n == i && *f == Some(Fault::Liar)),
                "seed {seed}: node {i} did not ban the liar"
            );
        }
        assert!(
            sim.bans.iter().any(|(_, _, f)| *f == Some(Fault::Flooder)),
            "seed {seed}: no flooder was banned"
        );
        let timeouts: u64 = sim.honest.iter().map(|h| h.machine.stats().timeouts).sum();
        assert!(
            timeouts > 0,
            "seed {seed}: the staller and the slow peer never timed out"
        );
    }
}

#[test]
fn with_only_honest_peers_sync_is_quick_and_pipelined() {
    let w = world(150, 10, 140, 100);
    let target = w.best.tip();
    let chains = vec![copy(&w.best, w.best.height()), copy(&w.best, 0)];
    let mut sim = Sim::new(7, chains, &w.best, &[]);
    assert!(sim.run_until(Duration::from_secs(60), |s| s.converged_on(target)));
    let syncing = &sim.honest[1];
    let stats = syncing.machine.stats();
    // 240 blocks at 8 a page: 30 pages, none lost, none repeated.
    assert_eq!(stats.pages_applied, 30, "{stats:?}");
    assert_eq!(stats.timeouts + stats.failures + stats.bans, 0, "{stats:?}");
    assert!(
        syncing.overlapped_requests >= 20,
        "{} pages overlapped",
        syncing.overlapped_requests
    );
    assert!(syncing.max_pages_in_flight <= 1);
    assert_eq!(sim.duplicate_ranges, 0);
    // No waiting on deadlines: 30 round trips and 240 blocks of validation, a few seconds.
    assert!(
        sim.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sim.elapsed()
    );
}

#[test]
fn a_stalling_peer_that_claims_the_most_work_delays_sync_by_its_deadlines_only() {
    let (sim, done) = run(
        11,
        &[Fault::Staller, Fault::Staller],
        Duration::from_secs(120),
    );
    assert!(done, "not converged after {:?}", sim.elapsed());
    assert!(sim.bans.is_empty(), "{:?}", sim.bans);
    assert_eq!(sim.duplicate_ranges, 0);
}

#[test]
fn flooders_with_fresh_identities_are_each_banned() {
    let (sim, done) = run(
        5,
        &[Fault::Flooder, Fault::Flooder],
        Duration::from_secs(300),
    );
    assert!(done, "not converged after {:?}", sim.elapsed());
    let banned: std::collections::BTreeSet<u32> = sim.bans.iter().map(|(_, p, _)| *p).collect();
    // Two flooders, each coming back six times under a new identity.
    assert_eq!(banned.len(), 14, "{banned:?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, _) = run(3, &ALL_FAULTS, Duration::from_secs(300));
    let (b, _) = run(3, &ALL_FAULTS, Duration::from_secs(300));
    assert_eq!(a.elapsed(), b.elapsed());
    assert_eq!(a.bans, b.bans);
    let stats = |s: &Sim| {
        s.honest
            .iter()
            .map(|h| h.machine.stats().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(stats(&a), stats(&b));
}
