//! Kademlia at scale, not in CI: `cargo bench --bench kad_scale` (root; `ip netns`).
//!
//! 200 real nodes (KAD_SCALE_NODES) in network namespaces on 20 subnets of 10, joined by a
//! router that delays every packet crossing subnets by 50 ms (KAD_SCALE_DELAY_MS; a delay
//! line in user space, tests/lan/delay.rs, as this kernel has no netem). mDNS is off and every
//! node is told only the two bootnodes' addresses, so every other peer is found through the
//! DHT. Printed: the time until every node has its target number of peers (8, the default),
//! the peers per node and how they were found, block propagation to all nodes (p50/p99 of the
//! arrival delay over every node and block, and of the time to the last node), and resident
//! memory per node.

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
use std::time::{Duration, Instant};

/// A block in about a thousand hashes.
const DIFFICULTY: u32 = 10;
const PER_SUBNET: usize = 10;
/// The nodes' default target.
const TARGET_PEERS: usize = 8;
const BLOCKS: usize = 10;
const PEER_WAIT: Duration = Duration::from_secs(300);
const BLOCK_WAIT: Duration = Duration::from_secs(120);
/// How often the nodes still below the target are printed while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !lan_or_skip("kad-scale", &["sysctl"]) {
        return;
    }
    let n = env_number("KAD_SCALE_NODES", 200) as usize;
    let delay_ms = env_number("KAD_SCALE_DELAY_MS", 50);
    let subnets = n.div_ceil(PER_SUBNET);
    assert!(
        (2..=100).contains(&subnets),
        "KAD_SCALE_NODES from {} to {}",
        PER_SUBNET + 1,
        100 * PER_SUBNET
    );
    println!(
        "gossipchain Kademlia at scale: {n} nodes on {subnets} subnets of {PER_SUBNET}, {delay_ms} \
         ms across subnets, told only 2 bootnodes, no mDNS; load average at start: {}",
        load_average()
    );
    let _serial = serial();
    let t_setup = Instant::now();
    let mut lan = Lan::new("kadscale", 24);
    let bridges: Vec<String> = (0..subnets).map(|s| format!("br{s}")).collect();
    for b in &bridges[1..] {
        lan.add_bridge(b);
    }
    // Subnet s is 10.80.(20 + s).0/24, its router at .1 and its hosts from .11.
    let prefix = |s: usize| format!("10.80.{}", 20 + s);
    let gateways: Vec<String> = (0..subnets).map(|s| format!("{}.1", prefix(s))).collect();
    let links: Vec<(&str, &str)> = bridges
        .iter()
        .map(String::as_str)
        .zip(gateways.iter().map(String::as_str))
        .collect();
    lan.add_router("router", &links);
    let mut hosts = Vec::new();
    for i in 0..n {
        let s = i / PER_SUBNET;
        let ip = format!("{}.{}", prefix(s), 11 + i % PER_SUBNET);
        let h = lan.add_host_on(&bridges[s], &format!("n{i}"), &ip);
        lan.route_via(&h, &gateways[s]);
        hosts.push(h);
    }
    lan.static_neighbours();
    let router = lan.router_ns("router");
    let router_links: Vec<String> = (0..subnets).map(|i| format!("eth{i}")).collect();
    let router_links: Vec<&str> = router_links.iter().map(String::as_str).collect();
    let slow = DelayLine::start(
        &router,
        &router_links,
        Impairment {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            loss_per_10k: 0,
        },
    );
    println!(
        "  namespaces, links and router set up in {:.1} s",
        t_setup.elapsed().as_secs_f64()
    );

    // The bootnodes are on the first two subnets.
    let boots = [0, PER_SUBNET];
    let boot_addrs: Vec<String> = boots
        .iter()
        .map(|&b| format!("/ip4/{}/tcp/4001", hosts[b].ip))
        .collect();
    let dirs: Vec<_> = (0..n).map(|_| data_dir()).collect();
    let mut nodes = Vec::new();
    let t_spawn = Instant::now();
    for i in 0..n {
        let mut extra = vec!["--no-mdns"];
        for (b, addr) in boots.iter().zip(&boot_addrs) {
            if *b != i {
                extra.extend(["--peer", addr.as_str()]);
            }
        }
        let args = lan_args(dirs[i].path(), DIFFICULTY, &extra);
        nodes.push(Node::spawn(&hosts[i].name, &hosts[i], &args, &[]));
    }
    let spawned = t_spawn.elapsed();
    let pids: Vec<u32> = nodes.iter().map(|n| n.pid()).collect();
    println!("  {n} nodes spawned in {:.1} s", spawned.as_secs_f64());

    // Every node at its target.
    // Polled until every node is there, or the deadline: then what was reached is printed.
    let t_peers = Instant::now();
    let mut below = Vec::new();
    let mut next_progress = PROGRESS_EVERY;
    let mut diag_at: Vec<Duration> = if std::env::var_os("KAD_SCALE_DIAG").is_some() {
        [60, 150, 280].map(Duration::from_secs).to_vec()
    } else {
        Vec::new()
    };
    loop {
        below.clear();
        for (i, node) in nodes.iter_mut().enumerate() {
            let peers: usize = node.status()["peers"].parse().unwrap_or(0);
            if peers < TARGET_PEERS {
                below.push((i, peers));
            }
        }
        if below.is_empty() || t_peers.elapsed() > PEER_WAIT {
            break;
        }
        if t_peers.elapsed() >= next_progress {
            next_progress += PROGRESS_EVERY;
            if diag_at.first().is_some_and(|d| t_peers.elapsed() >= *d) {
                diag_at.remove(0);
                diagnose(&lan, &hosts, &mut nodes, &below, &boots);
            }
            let mut short: Vec<usize> = below.iter().map(|(_, p)| *p).collect();
            short.sort_unstable();
            println!(
                "  {:>4.0} s: {} of {n} nodes below {TARGET_PEERS} peers, their peer counts {short:?}",
                t_peers.elapsed().as_secs_f64(),
                below.len()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let peers_time = t_peers.elapsed();
    if !below.is_empty() {
        println!(
            "  NOT MET: after {:.0} s, {} of {n} nodes below {TARGET_PEERS} peers (node, peers): \
             {below:?}",
            peers_time.as_secs_f64(),
            below.len()
        );
    }
    let mut counts = Vec::new();
    let (mut by_kad, mut by_peer, mut inbound, mut other_subnet) = (0, 0, 0, 0);
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers = node.peers();
        let own = format!("/ip4/{}.", prefix(i / PER_SUBNET));
        counts.push(peers.len());
        for p in &peers {
            match p.found_by.as_str() {
                "kad" => by_kad += 1,
                "--peer" => by_peer += 1,
                _ => inbound += 1,
            }
            if !p.addrs.contains(&own) {
                other_subnet += 1;
            }
        }
    }
    counts.sort_unstable();
    let ends: usize = counts.iter().sum();
    if below.is_empty() {
        println!(
            "  every node had >= {TARGET_PEERS} peers {:.1} s after the last spawn ({:.1} s \
             after the first)",
            peers_time.as_secs_f64(),
            (peers_time + spawned).as_secs_f64()
        );
    }
    println!(
        "  peers per node: min {} median {} max {}; of {ends} connection ends: {by_kad} found by \
         kad, {by_peer} by --peer, {inbound} other (inbound, identify); {other_subnet} to \
         another subnet",
        counts[0],
        counts[counts.len() / 2],
        counts[counts.len() - 1]
    );

    // Blocks mined one at a time on nodes spread over the subnets.
    let mut arrivals = Vec::new();
    let mut to_all = Vec::new();
    for b in 0..BLOCKS {
        let origin = (b * 37 + 5) % n;
        let mined = nodes[origin].mine(1, BLOCK_WAIT).remove(0);
        wait_tip(
            &mut nodes,
            &mined.hash,
            "the block on every node",
            BLOCK_WAIT,
        );
        let pat = format!("block={}", &mined.hash[..16]);
        let mut at = Vec::new();
        for node in nodes.iter_mut() {
            let t = node
                .logs(|l| l.contains("block accepted") && l.contains(&pat))
                .first()
                .and_then(|l| log_time(l));
            at.push(t);
        }
        let Some(t0) = at[origin] else { continue };
        let delays: Vec<f64> = at
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != origin)
            .filter_map(|(_, t)| t.map(|t| (t - t0) * 1000.0))
            .collect();
        if delays.len() == n - 1 {
            to_all.push(delays.iter().copied().fold(0.0, f64::max));
        }
        arrivals.extend(delays);
    }
    arrivals.sort_by(f64::total_cmp);
    to_all.sort_by(f64::total_cmp);
    println!(
        "  {BLOCKS} blocks, each mined on one node: arrival on each other node p50 {:.0} ms, p99 \
         {:.0} ms ({} arrivals); on all {} nodes p50 {:.0} ms, p99 {:.0} ms (max {:.0} ms)",
        percentile(&arrivals, 0.5),
        percentile(&arrivals, 0.99),
        arrivals.len(),
        n,
        percentile(&to_all, 0.5),
        percentile(&to_all, 0.99),
        to_all.last().copied().unwrap_or(f64::NAN)
    );

    let mut rss: Vec<f64> = pids
        .iter()
        .filter_map(|p| common::rss_kb(&p.to_string()))
        .map(|kb| kb as f64 / 1024.0)
        .collect();
    rss.sort_by(f64::total_cmp);
    println!(
        "  resident memory per node: median {:.1} MB, max {:.1} MB, all {} nodes {:.0} MB",
        percentile(&rss, 0.5),
        rss.last().copied().unwrap_or(f64::NAN),
        rss.len(),
        rss.iter().sum::<f64>()
    );
    let mut counts: Vec<usize> = nodes.iter_mut().map(|node| node.peers().len()).collect();
    counts.sort_unstable();
    println!(
        "  peers per node at the end: min {} median {} max {}",
        counts[0],
        counts[counts.len() / 2],
        counts[counts.len() - 1]
    );
    let (late, lost) = slow.counts();
    let overflows = slow
        .overflows()
        .map_or("unknown".to_string(), |n| n.to_string());
    println!(
        "  router: {late} packets delayed, {lost} dropped, {overflows} lost in the delay line's \
         queue"
    );
    // Every node is told to quit first, then each is waited for: one at a time, the last
    // ones would spend minutes losing peers and dialling others while the rest wait.
    for node in nodes.iter_mut() {
        node.send_line("quit");
    }
    for node in nodes.iter_mut() {
        node.expect_line("bye", |l| l == "bye", WAIT);
        node.close_stdin();
        node.expect_clean_exit();
        let bad = node.logs(|l| l.contains(" ERROR ") || l.contains("panicked"));
        if !bad.is_empty() {
            node.fail(&format!("errors in the log: {bad:?}"));
        }
    }
    drop(nodes);
    drop(slow);
    println!("load average at end: {}", load_average());
}

/// Network state of up to three nodes below the target and of the bootnodes: their sockets,
/// TCP counters, conntrack in the switch namespace, the host's FORWARD counters.
fn diagnose(
    lan: &Lan,
    hosts: &[Host],
    nodes: &mut [Node],
    below: &[(usize, usize)],
    boots: &[usize],
) {
    let run = |args: &[&str]| tool(args).unwrap_or_else(|e| e);
    println!("  ---- diagnosis: {} nodes below target", below.len());
    let sw = format!("{}-sw", lan.tag);
    println!(
        "  switch ns: {}",
        run(&[
            "ip",
            "netns",
            "exec",
            &sw,
            "sysctl",
            "net.bridge.bridge-nf-call-iptables",
            "net.netfilter.nf_conntrack_count"
        ])
        .replace('\n', "; ")
    );
    println!(
        "  host FORWARD:\n{}",
        run(&["iptables", "-L", "FORWARD", "-v", "-n", "-x"])
    );
    let counters = |ns: &str| {
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "nstat",
            "-asz",
            "TcpExtListenOverflows",
            "TcpExtListenDrops",
            "TcpExtTCPAbortOnTimeout",
            "TcpExtTCPAbortOnData",
            "TcpExtTCPAbortOnClose",
            "TcpExtSyncookiesSent",
            "TcpExtTCPReqQFullDrop",
            "TcpExtTCPReqQFullDoCookies",
            "TcpActiveOpens",
            "TcpPassiveOpens",
            "TcpAttemptFails",
            "TcpEstabResets",
            "TcpCurrEstab",
            "TcpRetransSegs",
            "TcpOutRsts",
            "TcpExtTCPTimeouts",
            "TcpExtTCPSynRetrans",
        ])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(" ")
    };
    for &b in boots {
        let h = &hosts[b];
        println!("  bootnode n{b} ({}): {}", h.ip, counters(&h.ns));
        println!(
            "    listen: {}",
            run(&["ip", "netns", "exec", &h.ns, "ss", "-ltn"]).replace('\n', " | ")
        );
    }
    for &(i, peers) in below.iter().take(3) {
        let h = &hosts[i];
        println!(
            "  node n{i} ({}) at {peers} peers: {}",
            h.ip,
            counters(&h.ns)
        );
        println!("{}", run(&["ip", "netns", "exec", &h.ns, "ss", "-tnio"]));
        for p in nodes[i].peers() {
            println!("    believes: {} {} {}", p.id, p.found_by, p.addrs);
        }
        for &b in boots {
            let s = run(&[
                "ip",
                "netns",
                "exec",
                &hosts[b].ns,
                "ss",
                "-tnio",
                "dst",
                &h.ip,
            ]);
            println!("    bootnode n{b}'s sockets to it:\n{s}");
        }
        let log =
            nodes[i].logs(|l| l.contains("WARN") || l.contains("connection") || l.contains("dial"));
        for l in log.iter().rev().take(15).rev() {
            println!("    log: {l}");
        }
    }
    println!("  ---- end of diagnosis");
}
