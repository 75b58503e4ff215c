//! Beyond one LAN: nodes on three subnets joined by a router (unicast routing, no multicast
//! across subnets, so mDNS stays within each), each told only one bootnode's address. They
//! must find peers of other subnets through the Kademlia DHT, agree on mined blocks, and stay
//! connected and in agreement once the bootnode is gone.
//!
//! Same harness and prerequisites as tests/lan.rs (root, `ip netns`, `tc`); the real binary
//! runs in each host namespace, driven through stdin.

#[path = "binary/mod.rs"]
mod binary;
#[path = "lan/delay.rs"]
mod delay;
#[path = "lan/harness.rs"]
mod harness;

use binary::log_time;
use delay::{DelayLine, Impairment};
use harness::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Difficulty of these chains: a block in about a thousand hashes.
const DIFFICULTY: u32 = 10;
const SUBNETS: u8 = 3;
const PER_SUBNET: usize = 4;
/// Peers every node reaches.
const MIN_PEERS: usize = 4;
const DISCOVERY_WAIT: Duration = Duration::from_secs(30);
const NET_WAIT: Duration = Duration::from_secs(60);

/// Three subnets 10.77.10x.0/24 with a router at .1 of each; hosts at .11, .12, ...
struct Wan {
    nodes: Vec<Node>,
    /// A slow router, if any (stopped before the namespaces go).
    slow: Option<DelayLine>,
    /// The namespaces (dropped after the nodes).
    lan: Lan,
    hosts: Vec<Host>,
    dirs: Vec<TempDir>,
}

fn subnet_of(ip: &str) -> &str {
    ip.rsplit_once('.').map_or(ip, |(net, _)| net)
}

impl Wan {
    fn new(scenario: &str) -> Self {
        let mut lan = Lan::new(scenario, 24);
        let bridges: Vec<String> = (0..SUBNETS).map(|s| format!("br{s}")).collect();
        for b in &bridges[1..] {
            lan.add_bridge(b);
        }
        let gateways: Vec<String> = (0..SUBNETS)
            .map(|s| format!("10.77.{}.1", 100 + s))
            .collect();
        let links: Vec<(&str, &str)> = bridges
            .iter()
            .map(String::as_str)
            .zip(gateways.iter().map(String::as_str))
            .collect();
        lan.add_router("router", &links);
        let mut hosts = Vec::new();
        let mut dirs = Vec::new();
        for s in 0..SUBNETS {
            for i in 0..PER_SUBNET {
                let name = format!("s{}h{}", s + 1, i + 1);
                let ip = format!("10.77.{}.{}", 100 + s, 11 + i);
                let h = lan.add_host_on(&bridges[s as usize], &name, &ip);
                lan.route_via(&h, &gateways[s as usize]);
                hosts.push(h);
                dirs.push(data_dir());
            }
        }
        Self {
            nodes: Vec::new(),
            slow: None,
            lan,
            hosts,
            dirs,
        }
    }

    /// Starts host `i`'s node, told only the bootnode (host 0) unless it is the bootnode.
    fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// [`Wan::start`] with more arguments.
    fn start_with(&mut self, i: usize, more: &[&str]) {
        let boot = format!("/ip4/{}/tcp/4001", self.hosts[0].ip);
        let mut extra: Vec<&str> = if i == 0 {
            vec![]
        } else {
            vec!["--peer", &boot]
        };
        extra.extend_from_slice(more);
        let args = lan_args(self.dirs[i].path(), DIFFICULTY, &extra);
        let node = Node::spawn(&self.hosts[i].name, &self.hosts[i], &args, &[]);
        assert_eq!(self.nodes.len(), i, "start in order");
        self.nodes.push(node);
    }
}

/// Each live node's peers: (count, how many are on another subnet, how many of those it
/// was not told about (not `--peer`)).
fn peer_view(wan: &mut Wan, live: &[usize]) -> Vec<(usize, usize, usize)> {
    live.iter()
        .map(|&i| {
            let own = subnet_of(&wan.hosts[i].ip).to_string();
            let peers = wan.nodes[i].peers();
            let other: Vec<&Peer> = peers
                .iter()
                .filter(|p| !p.addrs.contains(&format!("/ip4/{own}.")))
                .collect();
            let untold = other.iter().filter(|p| p.found_by != "--peer").count();
            (peers.len(), other.len(), untold)
        })
        .collect()
}

fn wait_discovery(wan: &mut Wan, live: &[usize], what: &str) -> Duration {
    let mut last = Vec::new();
    wait_until(what, DISCOVERY_WAIT, || {
        last = peer_view(wan, live);
        let short: Vec<String> = live
            .iter()
            .zip(&last)
            .filter(|(_, (n, _, untold))| *n < MIN_PEERS || *untold == 0)
            .map(|(&i, v)| format!("{} {v:?}", wan.nodes[i].name))
            .collect();
        if short.is_empty() {
            Ok(())
        } else {
            Err(short.join(", "))
        }
    })
}

#[test]
fn wan_twelve_nodes_three_subnets_one_bootnode_kademlia() {
    const T: &str = "wan-kademlia";
    if !lan_or_skip(T, &["sysctl"]) {
        return;
    }
    let _serial = serial();
    let mut wan = Wan::new("wan");
    let n = wan.hosts.len();
    let t0 = Instant::now();
    for i in 0..n {
        wan.start(i);
    }
    let ids: Vec<String> = wan.nodes.iter_mut().map(|n| n.peer_id()).collect();
    let all: Vec<usize> = (0..n).collect();
    let found = wait_discovery(
        &mut wan,
        &all,
        "every node with 4+ peers, some of other subnets",
    );
    let since_start = t0.elapsed();
    let view = peer_view(&mut wan, &all);
    let kad_links: usize = wan
        .nodes
        .iter_mut()
        .map(|n| n.peers().iter().filter(|p| p.found_by == "kad").count())
        .sum();

    // Blocks mined on the second and third subnets reach all twelve.
    let mined = wan.nodes[PER_SUBNET].mine(3, NET_WAIT);
    let t_spread = wait_tip(
        &mut wan.nodes,
        &mined[2].hash,
        "s2's blocks everywhere",
        NET_WAIT,
    );
    let mined = wan.nodes[2 * PER_SUBNET + 1].mine(2, NET_WAIT);
    wait_tip(
        &mut wan.nodes,
        &mined[1].hash,
        "s3's blocks everywhere",
        NET_WAIT,
    );

    // The bootnode stops: the others stay connected (each keeps peers, on other subnets
    // too) and agree on new blocks.
    wan.nodes[0].quit();
    let live: Vec<usize> = (1..n).collect();
    let t_after = wait_until("peers kept without the bootnode", NET_WAIT, || {
        let v = peer_view(&mut wan, &live);
        let lonely: Vec<String> = live
            .iter()
            .zip(&v)
            .filter(|(_, (n, other, _))| *n < MIN_PEERS - 1 || *other == 0)
            .map(|(&i, v)| format!("{} {v:?}", wan.nodes[i].name))
            .collect();
        if lonely.is_empty() {
            Ok(())
        } else {
            Err(lonely.join(", "))
        }
    });
    let mined = wan.nodes[2 * PER_SUBNET + 3].mine(2, NET_WAIT);
    let tip = mined[1].hash.clone();
    wait_until("the new tip on every live node", NET_WAIT, || {
        let off: Vec<String> = live
            .iter()
            .filter_map(|&i| {
                let (h, t) = wan.nodes[i].head();
                (t != tip).then(|| format!("{} #{h}", wan.nodes[i].name))
            })
            .collect();
        if off.is_empty() {
            Ok(())
        } else {
            Err(off.join(", "))
        }
    });
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), n, "distinct identities");
    for &i in &live {
        wan.nodes[i].quit();
    }
    let counts: Vec<usize> = view.iter().map(|v| v.0).collect();
    let others: Vec<usize> = view.iter().map(|v| v.2).collect();
    figure(
        T,
        &format!(
            "12 nodes on 3 routed subnets (4 each), all told only s1h1's address: every node had \
             >= {MIN_PEERS} peers incl. untold peers of other subnets {:.2} s after the first \
             spawn ({:.2} s after the last); peers per node {counts:?}, untold other-subnet peers \
             {others:?}, {kad_links} connection ends found by kad; s2's blocks on all 12 in {:.2} \
             s; bootnode stopped: every other node kept >= {} peers incl. other subnets after \
             {:.2} s, all on s3's new tip",
            since_start.as_secs_f64(),
            found.as_secs_f64(),
            t_spread.as_secs_f64(),
            MIN_PEERS - 1,
            t_after.as_secs_f64(),
        ),
    );
}

/// Milliseconds from a block's acceptance on `origin` to its acceptance on the last of `live`,
/// from the node logs (one clock).
fn spread_ms(wan: &mut Wan, live: &[usize], origin: usize, hash: &str) -> Option<f64> {
    let pat = format!("block={}", &hash[..16]);
    let mut accepted = |i: usize| {
        wan.nodes[i]
            .logs(|l| l.contains("block accepted") && l.contains(&pat))
            .first()
            .and_then(|l| log_time(l))
    };
    let t0 = accepted(origin)?;
    let mut latest = t0;
    for &i in live {
        latest = latest.max(accepted(i)?);
    }
    Some((latest - t0) * 1000.0)
}

/// Blocks mined one at a time on one node, then a long chain, then a late joiner.
const NETEM_BLOCKS: usize = 20;
const LATE_CHAIN: u64 = 2000;

/// The slow router: what netem's `delay 50ms 10ms loss 1%` does, for each packet crossing
/// subnets (see tests/lan/delay.rs).
const SLOW: Impairment = Impairment {
    delay: Duration::from_millis(50),
    jitter: Duration::from_millis(10),
    loss_per_10k: 100,
};

/// The same three subnets with 50 ms ± 10 ms delay and 1 % loss for every packet the router
/// forwards (each packet crossing subnets passes it once): block propagation to all and a late
/// joiner's sync across the router.
#[test]
fn wan_netem_propagation_and_late_joiner() {
    const T: &str = "wan-netem";
    if !lan_or_skip(T, &["sysctl"]) {
        return;
    }
    let _serial = serial();
    let mut wan = Wan::new("wannetem");
    let router = wan.lan.router_ns("router");
    let links: Vec<String> = (0..SUBNETS).map(|i| format!("eth{i}")).collect();
    let links: Vec<&str> = links.iter().map(String::as_str).collect();
    wan.slow = Some(DelayLine::start(&router, &links, SLOW));
    let n = wan.hosts.len();
    // The last host of the third subnet joins late.
    let late = n - 1;
    for i in 0..late {
        wan.start(i);
    }
    let early: Vec<usize> = (0..late).collect();
    let found = wait_discovery(&mut wan, &early, "discovery across a slow router");
    // One block at a time from the second subnet: each must cross the router.
    let origin = PER_SUBNET;
    let mut spreads = Vec::new();
    for _ in 0..NETEM_BLOCKS {
        let b = wan.nodes[origin].mine(1, NET_WAIT).remove(0);
        wait_tip(&mut wan.nodes, &b.hash, "the block everywhere", NET_WAIT);
        if let Some(ms) = spread_ms(&mut wan, &early, origin, &b.hash) {
            spreads.push(ms);
        }
    }
    assert!(
        spreads.len() >= NETEM_BLOCKS / 2,
        "too few spreads measured: {spreads:?}"
    );
    spreads.sort_by(f64::total_cmp);
    // A long chain, then the late joiner (told only the bootnode, on another subnet).
    let mut tip = String::new();
    let mut left = LATE_CHAIN;
    while left > 0 {
        let k = left.min(100);
        tip = wan.nodes[origin].mine(k, NET_WAIT).pop().unwrap().hash;
        left -= k;
    }
    wait_tip(&mut wan.nodes, &tip, "the long chain everywhere", NET_WAIT);
    let height = wan.nodes[origin].height();
    // Neither mDNS (it would find its own subnet's nodes) nor Kademlia: it syncs from the
    // bootnode alone, across the router. Timed from its start.
    let t_join = Instant::now();
    wan.start_with(late, &["--no-mdns", "--no-kad"]);
    wait_until("the late joiner on the tip", NET_WAIT, || {
        let (h, t) = wan.nodes[late].head();
        if t == tip {
            Ok(())
        } else {
            Err(format!("#{h}"))
        }
    });
    let joined = t_join.elapsed();
    for i in 0..n {
        wan.nodes[i].quit();
    }
    let slow = wan.slow.as_ref().expect("the slow router");
    let (forwarded, dropped) = slow.counts();
    // Losses beyond the 1 % asked for would make the figures those of a worse path.
    let overflows = slow.overflows();
    assert!(
        overflows.is_none_or(|n| n <= forwarded / 1000),
        "the delay line lost {overflows:?} packets in its queue"
    );
    assert!(
        dropped > 0 && forwarded > 100 * dropped / 2,
        "{forwarded} late, {dropped} lost"
    );
    figure(
        T,
        &format!(
            "12 nodes on 3 subnets, 50 ms ± 10 ms and 1 % loss per packet through the router \
             ({forwarded} packets forwarded late, {dropped} dropped): discovery {:.2} s; {} \
             blocks mined one by one on s2h1 reached all 11 in p50 {:.0} ms, p99 {:.0} ms (max \
             {:.0} ms); a late joiner on s3 (no mDNS, no Kademlia: only the bootnode, across the router) \
             synced {height} blocks in {:.2} s \
             ({:.0} blocks/s)",
            found.as_secs_f64(),
            spreads.len(),
            percentile(&spreads, 0.5),
            percentile(&spreads, 0.99),
            spreads[spreads.len() - 1],
            joined.as_secs_f64(),
            height as f64 / joined.as_secs_f64().max(1e-3),
        ),
    );
}

/// A node of the NAT test on `host`, listening on `port`, mDNS off, told only `peer`.
fn nat_node(dir: &TempDir, host: &Host, port: u16, peer: Option<&str>) -> Node {
    let listen = format!("/ip4/0.0.0.0/tcp/{port}");
    let mut extra = vec!["--no-mdns"];
    if let Some(p) = peer {
        extra.extend(["--peer", p]);
    }
    let difficulty = DIFFICULTY.to_string();
    let args = lan_args_at(dir.path(), &listen, &["--difficulty", &difficulty], &extra);
    Node::spawn(&host.name, host, &args, &[])
}

/// Behind a home router's NAT, a node learns from a peer the address it is seen at (the
/// router's, not its own), and AutoNAT asks a peer to dial that address back on a new
/// connection. Where the router forwards the port, the dial-back gets through and the
/// address is confirmed: `status` says the node is reachable there and its DHT runs in server
/// mode, and a node outside reaches it at that address. Where the port is not forwarded, the
/// dial-back fails and the router's address is not confirmed (nobody outside could dial it).
#[test]
fn wan_behind_a_nat_autonat_confirms_a_forwarded_port_only() {
    const T: &str = "wan-nat";
    if !lan_or_skip(T, &["sysctl", "nft"]) {
        return;
    }
    let _serial = serial();
    let mut lan = Lan::new("nat", 24);
    lan.add_bridge("br1");
    lan.add_router("home", &[("br0", "10.77.110.1"), ("br1", "10.77.111.1")]);
    // The router's outside address; port 4001 is forwarded to `fwd`, 4002 is not.
    lan.nat("home", "eth1", &[(4001, "10.77.110.11")]);
    let fwd_host = lan.add_host_on("br0", "fwd", "10.77.110.11");
    let nofwd_host = lan.add_host_on("br0", "nofwd", "10.77.110.12");
    lan.route_via(&fwd_host, "10.77.110.1");
    lan.route_via(&nofwd_host, "10.77.110.1");
    let seed_host = lan.add_host_on("br1", "seed", "10.77.111.11");
    let out_host = lan.add_host_on("br1", "out", "10.77.111.12");
    let dirs: Vec<TempDir> = (0..4).map(|_| data_dir()).collect();
    let seed_addr = "/ip4/10.77.111.11/tcp/4001";
    let forwarded = "/ip4/10.77.111.1/tcp/4001";
    let not_forwarded = "/ip4/10.77.111.1/tcp/4002";

    let mut seed = nat_node(&dirs[0], &seed_host, 4001, None);
    let mut fwd = nat_node(&dirs[1], &fwd_host, 4001, Some(seed_addr));
    let mut nofwd = nat_node(&dirs[2], &nofwd_host, 4002, Some(seed_addr));

    // The forwarded node: confirmed at the router's address by a dial-back, a DHT server.
    let t0 = Instant::now();
    fwd.wait_status("fwd reachable at the router's address", NET_WAIT, |s| {
        s.get("reachable").is_some_and(|r| r.contains(forwarded))
    });
    let confirmed_in = t0.elapsed();
    let line = fwd.expect_log("fwd's AutoNAT confirmation", "a peer dialled it back");
    assert!(line.contains(forwarded), "{line}");
    fwd.wait_log("fwd's DHT in server mode", NET_WAIT, |l| {
        l.contains("DHT mode changed") && l.contains("server")
    });

    // The other: its dial-back fails, the router's address is not confirmed.
    let line = nofwd.wait_log("nofwd's failed dial-back", NET_WAIT, |l| {
        l.contains("not reachable there") && l.contains(not_forwarded)
    });
    assert!(line.contains("dial-back failed"), "{line}");
    let st = nofwd.status();
    assert!(
        !st["reachable"].contains("10.77.111.1/"),
        "nofwd must not claim the router's address: {st:?}"
    );

    // The seed, with no NAT in front of it, is reachable at its own address.
    seed.wait_status("the seed reachable at its own address", NET_WAIT, |s| {
        s.get("reachable").is_some_and(|r| r.contains(seed_addr))
    });

    // From outside: the confirmed address reaches the forwarded node, the other does not.
    let mut out = nat_node(&dirs[3], &out_host, 4001, None);
    let fwd_id = fwd.peer_id();
    assert_eq!(
        out.run1(&format!("dial {forwarded}")),
        format!("connected to {fwd_id}")
    );
    let answer = out.run1(&format!("dial {not_forwarded}"));
    assert!(answer.starts_with("error: cannot dial"), "{answer}");
    figure(
        T,
        &format!(
            "behind a NAT: forwarded port confirmed by AutoNAT {:.1} s after start",
            confirmed_in.as_secs_f64()
        ),
    );
    for n in [&mut out, &mut nofwd, &mut fwd, &mut seed] {
        n.quit();
    }
}
