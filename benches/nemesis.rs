//! The nemesis, not in CI: `cargo bench --bench nemesis` (root; `ip netns`, nft, libfaketime).
//!
//! Eight real nodes in network namespaces on two subnets joined by a delay line, three mining
//! on a `--block-time 2s` chain, about 50 transfers a second from many wallets, and for
//! NEMESIS_SECS (default 1800) a random schedule of faults drawn from NEMESIS_SEED (default:
//! the time; printed, so that a failing schedule replays; NEMESIS_REBROADCAST=0 stops the load
//! posting again what waits unconfirmed): kill -9 and restart, partitions,
//! one that splits the miners, clock skew inside and beyond the max-future rule, a slow lossy
//! link, a full disk, a SIGSTOP longer than the request deadline. Printed: the schedule, the
//! faults by kind, the invariant checks made, the violations, and the heal convergence
//! p50/p99. See tests/nemesis/mod.rs.

#[path = "../tests/binary/mod.rs"]
mod binary;
#[path = "../tests/lan/delay.rs"]
mod delay;
#[path = "../tests/nemesis/mod.rs"]
mod engine;
#[path = "../tests/lan/harness.rs"]
mod harness;

use engine::{Config, FAKETIME_LIB, Nemesis, schedule};
use harness::*;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !lan_or_skip("nemesis", &["sysctl", "nft", "mount", "faketime"]) {
        return;
    }
    assert!(
        std::path::Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} missing (Debian: libfaketime)"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cfg = Config {
        secs: env_number("NEMESIS_SECS", 1800),
        seed: env_number("NEMESIS_SEED", now),
        wallets: env_number("NEMESIS_WALLETS", 40) as usize,
        rate: env_number("NEMESIS_RATE", 50) as f64,
        short: false,
        rebroadcast: env_number("NEMESIS_REBROADCAST", 1) != 0,
    };
    println!(
        "gossipchain nemesis: seed {} (replay with NEMESIS_SEED={}), {} s of faults, {} wallets, {} transfers/s; load average {}",
        cfg.seed,
        cfg.seed,
        cfg.secs,
        cfg.wallets,
        cfg.rate,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("the schedule's first faults:");
    for f in schedule(cfg.seed, 12, false) {
        println!("  {f}");
    }
    let _serial = serial();
    let report = Nemesis::start(cfg.clone()).run();
    println!("{}", report.render());
    let mut c = report.convergence.clone();
    c.sort_by(f64::total_cmp);
    figure(
        "nemesis-bench",
        &format!(
            "seed {}, {} s, faults {:?}, {} checks, {} violations, heal convergence p50 {:.2} s p99 {:.2} s",
            cfg.seed,
            cfg.secs,
            report.faults,
            report.checks.values().sum::<u64>(),
            report.violations.len(),
            percentile(&c, 0.5),
            percentile(&c, 0.99)
        ),
    );
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
