//! Beyond one LAN: nodes on three subnets joined by a router (unicast routing, no multicast
//! across subnets, so mDNS stays within each), each told only one bootnode's address. They
//! must find peers of other subnets through the Kademlia DHT, agree on mined blocks, and stay
//! connected and in agreement once the bootnode is gone.
//!
//! Same harness and prerequisites as tests/lan.rs (root, `ip netns`, `tc`); the real binary
//! runs in each host namespace, driven through stdin.

#[path = "binary/mod.rs"]
mod binary;
#[path = "lan/harness.rs"]
mod harness;

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
    /// The namespaces (dropped after the nodes).
    _lan: Lan,
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
            _lan: lan,
            hosts,
            dirs,
        }
    }

    /// Starts host `i`'s node, told only the bootnode (host 0) unless it is the bootnode.
    fn start(&mut self, i: usize) {
        let boot = format!("/ip4/{}/tcp/4001", self.hosts[0].ip);
        let extra: Vec<&str> = if i == 0 {
            vec![]
        } else {
            vec!["--peer", &boot]
        };
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
