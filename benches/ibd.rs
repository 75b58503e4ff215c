//! Initial block download across a slow link: `cargo bench --bench ibd` (root; network
//! namespaces, as the LAN tests).
//!
//! A chain of 10 000 blocks of 10 signed transfers each (`IBD_BLOCKS`) is preloaded into the
//! stores of 4 serving nodes on one subnet; a fresh node on another subnet, behind the delay
//! line (25 ms one way, `IBD_DELAY_MS`; tests/lan/delay.rs, as this kernel has no netem),
//! downloads it. Printed side by side in one run:
//! - local validation: the same blocks through a fresh `ChainState`, signatures verified, on
//!   one thread, in blocks/s (the best of two);
//! - the download from 1 peer, from 4 peers, and from 4 peers of which one stalls (it is
//!   stopped with SIGSTOP once bodies flow, so it claims the chain and never answers again):
//!   blocks/s from the fresh node's start until its tip is the servers', the share of local
//!   validation speed (targets: >= 90 % with 4 peers, >= 80 % with the staller), and the
//!   stalls the node logged.

mod common;

#[path = "../tests/binary/mod.rs"]
mod binary;
#[path = "../tests/lan/delay.rs"]
#[allow(dead_code)]
mod delay;
#[path = "../tests/lan/harness.rs"]
mod harness;

use common::load_average;
use delay::{DelayLine, Impairment};
use harness::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The test chain's difficulty (bits): `testkit::params()`.
const DIFFICULTY: u32 = 8;
/// Transfers in each block after the funding blocks.
const TXS_PER_BLOCK: usize = 10;
/// Funded keys; the first this many blocks pay one each and carry no transfer.
const KEYS: usize = 100;
/// Longest a download may take.
const DEADLINE: Duration = Duration::from_secs(600);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A copy of the template store in a fresh data dir.
fn copy_store(template: &Path) -> tempfile::TempDir {
    let dir = data_dir();
    for file in ["blocks.redb", "blocks.bodies"] {
        std::fs::copy(template.join(file), dir.path().join(file)).expect("copy the store");
    }
    dir
}

struct Outcome {
    secs: f64,
    stalls: usize,
}

/// Starts `servers` serving nodes on the template store, then a fresh node dialling them all;
/// with `stall`, the last server is stopped once bodies flow. Returns the fresh node's time to
/// the servers' tip.
fn download(hosts: &[Host], template: &Path, servers: usize, stall: bool, tip: &str) -> Outcome {
    let dirs: Vec<_> = (0..servers).map(|_| copy_store(template)).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let args = lan_args(dir.path(), DIFFICULTY, &["--no-mdns"]);
        nodes.push(Node::spawn(&format!("server{i}"), &hosts[i], &args, &[]));
    }
    for n in &mut nodes {
        let t = wait_tip(std::slice::from_mut(n), tip, "server loaded", DEADLINE);
        assert!(t < DEADLINE);
    }
    let fresh_host = hosts.last().expect("a host for the fresh node");
    let addrs: Vec<String> = hosts[..servers]
        .iter()
        .map(|h| format!("/ip4/{}/tcp/4001", h.ip))
        .collect();
    let mut extra = vec!["--no-mdns"];
    for a in &addrs {
        extra.extend(["--peer", a.as_str()]);
    }
    let dir = data_dir();
    let args = lan_args(dir.path(), DIFFICULTY, &extra);
    let t0 = Instant::now();
    let mut fresh = Node::spawn("fresh", fresh_host, &args, &[]);
    let mut stopped = None;
    loop {
        let (height, t) = fresh.head();
        if t == tip {
            break;
        }
        if stall && stopped.is_none() && height > 0 {
            let victim = &nodes[servers - 1];
            unsafe { libc::kill(victim.pid() as i32, libc::SIGSTOP) };
            stopped = Some(victim.pid());
        }
        assert!(t0.elapsed() < DEADLINE, "no download after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(pid) = stopped {
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    let stalls = fresh.logs(|l| l.contains("sync stalled on a peer")).len();
    fresh.quit();
    for mut n in nodes {
        n.quit();
    }
    Outcome { secs, stalls }
}

fn main() {
    if !lan_or_skip("ibd", &["sysctl"]) {
        return;
    }
    let n = env_number("IBD_BLOCKS", 10_000) as usize;
    let delay_ms = env_number("IBD_DELAY_MS", 25);
    let params = gossipchain::testkit::params();
    println!(
        "gossipchain initial block download: {n} blocks of {TXS_PER_BLOCK} transfers, servers \
         {delay_ms} ms one way from the fresh node; CPU {}; ed25519 backend {}; load average \
         at start: {}",
        common::cpu_model(),
        common::ed25519_backend(),
        load_average()
    );
    let t = Instant::now();
    let blocks = common::chains::with_transfers(&params, n, KEYS, TXS_PER_BLOCK);
    let tip = blocks.last().expect("a chain").compute_hash().to_string();
    println!("  chain built in {:.1} s", t.elapsed().as_secs_f64());
    let template = tempfile::tempdir().expect("temp dir");
    common::chains::preload(template.path(), &params, &blocks);

    let _serial = serial();
    let mut lan = Lan::new("ibd", 24);
    lan.add_bridge("br1");
    let links = [("br0", "10.81.20.1"), ("br1", "10.81.21.1")];
    lan.add_router("router", &links);
    let mut hosts = Vec::new();
    for i in 0..4 {
        let h = lan.add_host_on("br0", &format!("s{i}"), &format!("10.81.20.{}", 11 + i));
        lan.route_via(&h, "10.81.20.1");
        hosts.push(h);
    }
    let f = lan.add_host_on("br1", "f", "10.81.21.11");
    lan.route_via(&f, "10.81.21.1");
    hosts.push(f);
    lan.static_neighbours();
    let router = lan.router_ns("router");
    let _line = DelayLine::start(
        &router,
        &["eth0", "eth1"],
        Impairment {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            loss_per_10k: 0,
        },
    );

    let local = common::chains::validate_locally(&params, &blocks)
        .min(common::chains::validate_locally(&params, &blocks));
    let local_rate = n as f64 / local;
    println!("  local validation: {local:.2} s, {local_rate:.0} blocks/s (best of 2)");
    let runs = [
        ("1 peer", 1, false),
        ("4 peers", 4, false),
        ("4 peers, 1 stalling", 4, true),
    ];
    println!(
        "  {:<22} {:>8} {:>10} {:>9} {:>7}",
        "download from", "secs", "blocks/s", "of local", "stalls"
    );
    for (name, servers, stall) in runs {
        let o = download(&hosts, template.path(), servers, stall, &tip);
        let rate = n as f64 / o.secs;
        println!(
            "  {name:<22} {:>8.2} {rate:>10.0} {:>8.0} % {:>7}",
            o.secs,
            100.0 * rate / local_rate,
            o.stalls
        );
    }
    println!("  load average at end: {}", load_average());
}
