//! A real LAN: the release binary run in Linux network namespaces joined by a bridge, with mDNS
//! on and no `--peer` (except where docker-compose.yml has one), driven through stdin/stdout.
//! Each scenario builds a LAN of its own (namespaces named `gclan<pid>-<scenario>-...`, fresh
//! data directories), asserts on what the nodes print, and reports its figures on stderr and
//! in `target/lan-figures.txt`. Node logs go to `target/lan-logs/gclan<pid>/`.
//!
//! Needs root, iproute2 (`ip netns`, `tc`) and nftables. Without them each test prints a loud
//! SKIPPED notice and passes, unless GOSSIPCHAIN_REQUIRE_LAN=1 (CI sets it), which makes it
//! fail. GOSSIPCHAIN_LAN_PRETEND_NOT_ROOT=1 simulates an unprivileged run.
//!
//! Network safety: mDNS-enabled nodes only ever run inside the namespaces made here; the bridge
//! sits in a namespace of its own and no interface of the host's namespace is touched. The
//! scenarios run one at a time (they share two cores); every wait has a deadline; see
//! `lan/harness.rs` for how everything is torn down.

#[path = "binary/mod.rs"]
mod binary;
#[path = "lan/compose.rs"]
mod compose;
#[path = "lan/harness.rs"]
mod harness;

use harness::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Difficulty of the LAN chains: a block in about a thousand hashes.
const DIFFICULTY: u32 = 10;
/// The block interval of the LAN tests on a retargeting chain: the genesis target is then
/// about 3.4 M hashes, a fraction of a second on one core.
const BLOCK_TIME: &str = "200ms";
/// Deadline of anything that crosses the LAN.
const NET_WAIT: Duration = Duration::from_secs(60);

/// A LAN with a node slot per host. Fields drop in order: nodes (killed and reaped) before the
/// namespaces, the namespaces before the data directories.
struct Setup {
    nodes: Vec<Node>,
    lan: Lan,
    hosts: Vec<Host>,
    dirs: Vec<TempDir>,
    difficulty: u32,
    /// A retargeting chain's `--block-time` instead of the fixed difficulty.
    block_time: Option<&'static str>,
    /// More arguments for every node.
    extra: Vec<&'static str>,
}

impl Setup {
    /// `n` hosts h1..hn at 10.77.`net`.11, .12, ... on one bridge; no node started yet.
    fn new(scenario: &str, net: u8, n: usize, difficulty: u32) -> Self {
        let mut lan = Lan::new(scenario, 24);
        let mut hosts = Vec::new();
        let mut dirs = Vec::new();
        for i in 1..=n {
            hosts.push(lan.add_host(&format!("h{i}"), &format!("10.77.{net}.{}", 10 + i)));
            dirs.push(data_dir());
        }
        Self {
            nodes: Vec::new(),
            lan,
            hosts,
            dirs,
            difficulty,
            block_time: None,
            extra: Vec::new(),
        }
    }

    /// Like [`Setup::new`] on a retargeting chain of [`BLOCK_TIME`] blocks.
    fn retargeting(scenario: &str, net: u8, n: usize) -> Self {
        let mut s = Self::new(scenario, net, n, 0);
        s.block_time = Some(BLOCK_TIME);
        s
    }

    /// One more host (and data directory), not started.
    fn add_host(&mut self, net: u8) -> usize {
        let i = self.hosts.len() + 1;
        let h = self
            .lan
            .add_host(&format!("h{i}"), &format!("10.77.{net}.{}", 10 + i));
        self.hosts.push(h);
        self.dirs.push(data_dir());
        i - 1
    }

    fn spawn(&self, i: usize) -> Node {
        let dir = self.dirs[i].path();
        let args = match self.block_time {
            Some(t) => lan_args_on(dir, &["--block-time", t], &self.extra),
            None => lan_args(dir, self.difficulty, &self.extra),
        };
        Node::spawn(&self.hosts[i].name, &self.hosts[i], &args, &[])
    }

    /// Starts the node of host `i` (as the next node).
    fn start(&mut self, i: usize) {
        assert_eq!(i, self.nodes.len(), "start hosts in order");
        let node = self.spawn(i);
        self.nodes.push(node);
    }

    /// Checks node `i`'s store (the node must be stopped): every block, and the stored ledger,
    /// undo records and txid index against a replay of its stored best chain.
    fn verify_store(&self, i: usize) -> gossipchain::store::Verified {
        let params = gossipchain::chain::ChainParams::with_bits(self.difficulty);
        let path = self.dirs[i].path().join("blocks.redb");
        let store = gossipchain::store::Store::open(&path, &params)
            .unwrap_or_else(|e| panic!("node {i}'s store: {e}"));
        store
            .verify()
            .unwrap_or_else(|e| panic!("node {i}'s store after a SIGKILL: {e}"))
    }

    /// Starts the node of host `i` again on its data directory, once its process has ended.
    fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].exited(), "{} still runs", self.nodes[i].name);
        self.nodes[i] = self.spawn(i);
    }

    fn peer_ids(&mut self) -> Vec<String> {
        self.nodes.iter_mut().map(|n| n.peer_id()).collect()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Waits until every node in `idx` lists exactly `txids` in its mempool.
#[track_caller]
fn wait_mempools(nodes: &mut [Node], idx: &[usize], txids: &[&str], what: &str) -> Duration {
    let mut want: Vec<String> = txids.iter().map(|t| t.to_string()).collect();
    want.sort();
    wait_until(what, NET_WAIT, || {
        let mut off = Vec::new();
        for &i in idx {
            let mut got = nodes[i].mempool();
            got.sort();
            if got != want {
                off.push(format!("{} has {} txs", nodes[i].name, got.len()));
            }
        }
        if off.is_empty() {
            Ok(())
        } else {
            Err(off.join(", "))
        }
    })
}

/// Log time (seconds of the day) of a node's first log line satisfying `pred`.
fn first_log_time(n: &mut Node, pred: impl Fn(&str) -> bool) -> Option<f64> {
    n.logs(pred).first().and_then(|l| log_time(l))
}

fn last_log_time(n: &mut Node, pred: impl Fn(&str) -> bool) -> Option<f64> {
    n.logs(pred).last().and_then(|l| log_time(l))
}

/// How long a block took to reach every node, from the node logs (one clock): the latest
/// "block accepted" of `hash` minus its acceptance on `origin`, in milliseconds.
fn block_spread(nodes: &mut [Node], origin: usize, hash: &str) -> Option<f64> {
    let pat = format!("block={}", &hash[..16]);
    let accepted =
        |n: &mut Node| first_log_time(n, |l| l.contains("block accepted") && l.contains(&pat));
    let t0 = accepted(&mut nodes[origin])?;
    let mut latest = t0;
    for n in nodes.iter_mut() {
        latest = latest.max(accepted(n)?);
    }
    Some((latest - t0) * 1000.0)
}

fn spread_text(spread: Option<f64>) -> String {
    spread.map_or("?".into(), |ms| format!("{ms:.1} ms"))
}

/// Rounds of the discovery scenario (each on a fresh LAN): the time to a full mesh varies
/// with how the nodes' first mDNS queries and answers interleave.
const DISCOVERY_ROUNDS: usize = 5;

/// Five hosts start at once with mDNS and no `--peer`; each ends up connected to the four
/// others, every link opened by an mDNS discovery.
#[test]
fn lan_discovery_five_hosts_full_mesh_by_mdns() {
    const T: &str = "discovery";
    if !lan_or_skip(T, &[]) {
        return;
    }
    let _serial = serial();
    let mut meshes = Vec::new();
    let mut log_meshes = Vec::new();
    let (mut both, mut one, mut via_mdns) = (0, 0, 0);
    for round in 1..=DISCOVERY_ROUNDS {
        let mut s = Setup::retargeting(&format!("disc{round}"), 1, 5);
        // mDNS alone: with the DHT on, a random walk through the first peer may find a host
        // before its mDNS answer arrives (tests/wan.rs covers discovery through the DHT).
        s.extra = vec!["--no-kad"];
        let t0 = Instant::now();
        for i in 0..5 {
            s.start(i);
        }
        let ids = s.peer_ids();
        wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);
        meshes.push(t0.elapsed());

        // How each link was found: every connection was dialled because of an mDNS
        // discovery, so each pair shows `mdns` on at least one side (the other side may show
        // `inbound`).
        let mut found: HashMap<(usize, usize), String> = HashMap::new();
        for i in 0..5 {
            for p in s.nodes[i].peers() {
                let j = ids.iter().position(|id| *id == p.id).unwrap();
                assert!(
                    p.found_by == "mdns" || p.found_by == "inbound",
                    "{}: peer {} found by {}",
                    s.nodes[i].name,
                    s.nodes[j].name,
                    p.found_by
                );
                found.insert((i, j), p.found_by);
            }
        }
        for i in 0..5 {
            for j in i + 1..5 {
                let (a, b) = (&found[&(i, j)], &found[&(j, i)]);
                assert!(
                    a == "mdns" || b == "mdns",
                    "h{} and h{}: neither found the other by mdns ({a}, {b})",
                    i + 1,
                    j + 1
                );
                if a == "mdns" && b == "mdns" {
                    both += 1;
                } else {
                    one += 1;
                }
            }
        }
        for n in s.nodes.iter_mut() {
            n.wait_status("4 peers in status", WAIT, |st| st["peers"] == "4");
        }
        // The same from the nodes' own clocks: the first "node started" to the last "peer
        // connected".
        let started = s
            .nodes
            .iter_mut()
            .filter_map(|n| first_log_time(n, |l| l.contains("node started")))
            .fold(f64::MAX, f64::min);
        let last_conn = s
            .nodes
            .iter_mut()
            .filter_map(|n| last_log_time(n, |l| l.contains("peer connected")))
            .fold(0.0, f64::max);
        log_meshes.push(Duration::from_secs_f64((last_conn - started).max(0.0)));
        via_mdns += s
            .nodes
            .iter_mut()
            .map(|n| {
                n.logs(|l| l.contains("peer connected") && l.contains("via=mdns"))
                    .len()
            })
            .sum::<usize>();
        for n in s.nodes.iter_mut() {
            n.quit();
        }
    }
    let list = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ");
    let slow = meshes.iter().filter(|d| d.as_secs() >= 1).count();
    figure(
        T,
        &format!(
            "5 hosts, mDNS only, {DISCOVERY_ROUNDS} rounds on fresh LANs: full mesh (10 links, \
             each node lists the 4 others) after the first spawn (polled): {}; first 'node \
             started' to last 'peer connected' (node logs): {}; rounds over 1 s: {slow} (a pair \
             that missed each other's first mDNS answers meets at the next query, 10 s later); \
             links found by mdns on both sides {both}, on one side (other side inbound) {one}; \
             {via_mdns} 'peer connected via=mdns' log lines",
            list(&meshes),
            list(&log_meshes)
        ),
    );
}

/// Blocks mined on any host and a transaction sent from another reach every host.
#[test]
fn lan_transactions_and_blocks_reach_every_host() {
    const T: &str = "propagation";
    if !lan_or_skip(T, &[]) {
        return;
    }
    let _serial = serial();
    let mut s = Setup::retargeting("prop", 2, 5);
    for i in 0..5 {
        s.start(i);
    }
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);

    let mined = s.nodes[0].mine(3, WAIT);
    let h1_tip = mined[2].hash.clone();
    let t_h1 = wait_tip(&mut s.nodes, &h1_tip, "h1's 3 blocks", NET_WAIT);
    let mined = s.nodes[1].mine(1, WAIT);
    let h2_tip = mined[0].hash.clone();
    let t_h2 = wait_tip(&mut s.nodes, &h2_tip, "h2's block", NET_WAIT);

    let to = s.nodes[4].address();
    let from = s.nodes[1].address();
    let txid = s.nodes[1].send(&to, 10, 1);
    let t_tx = wait_mempools(&mut s.nodes, &[0, 1, 2, 3, 4], &[&txid], "h2's transaction");

    let mined = s.nodes[2].mine(1, WAIT);
    assert_eq!(mined[0].txs, 2, "h3's block holds the transfer");
    let t_h3 = wait_tip(&mut s.nodes, &mined[0].hash, "h3's block", NET_WAIT);
    wait_mempools(&mut s.nodes, &[0, 1, 2, 3, 4], &[], "empty mempools");
    for n in s.nodes.iter_mut() {
        assert_eq!(n.height(), 5, "{}", n.name);
        assert_eq!(n.balance(&to), (10, 0), "{}: the recipient", n.name);
        assert_eq!(n.balance(&from), (50 - 11, 1), "{}: the sender", n.name);
        let (h, best, lines) = n.block(&mined[0].hash).unwrap();
        assert!(h == 5 && best, "{}", n.name);
        assert!(
            lines.iter().any(|l| l.contains(&txid)),
            "{}: {lines:?}",
            n.name
        );
    }
    let spreads: Vec<String> = [(0, &h1_tip), (1, &h2_tip), (2, &mined[0].hash)]
        .iter()
        .map(|(o, h)| {
            format!(
                "h{}'s {}",
                o + 1,
                spread_text(block_spread(&mut s.nodes, *o, h))
            )
        })
        .collect();
    figure(
        T,
        &format!(
            "5 hosts: 3 blocks mined on h1 on every tip within {}, h2's block within {}, a \
             transfer sent from h2 in all 5 mempools within {}, h3's block with it on every \
             tip within {} (after the command returned, polling all 5 nodes: upper bounds); \
             from the node logs, a block's acceptance on its miner to its acceptance on the \
             last of the 4 others: {}; balances agree on all 5",
            ms(t_h1),
            ms(t_h2),
            ms(t_tx),
            ms(t_h3),
            spreads.join(", ")
        ),
    );
    for n in s.nodes.iter_mut() {
        n.quit();
    }
}

/// How long the partition lasts: longer than a status round (15 s) and close to the sync
/// request timeout (20 s), so that requests across the cut fail and the nodes live with
/// connections that carry nothing.
const PARTITION_HOLD: Duration = Duration::from_secs(20);

/// Two groups cut apart by nftables mine separately, each with a transaction; after the heal
/// every host is on the most-work chain, the losing branch's transaction is back in every
/// mempool and is mined later; no transaction is lost. The connections across the cut
/// outlive it (TCP retransmits until the heal).
#[test]
fn lan_partition_and_heal_converge_on_most_work_and_lose_nothing() {
    const T: &str = "partition";
    if !lan_or_skip(T, &["nft"]) {
        return;
    }
    let _serial = serial();
    partition_scenario(T, "part", 3, false);
}

/// The same with connections that do not outlive the cut: TCP gives up after 3 retransmissions
/// (`net.ipv4.tcp_retries2=3` in every host namespace, as a long partition or a sleeping
/// laptop would with the default), so the hosts must find each other again by mDNS.
#[test]
fn lan_long_partition_drops_connections_then_mdns_reconnects() {
    const T: &str = "long partition";
    if !lan_or_skip(T, &["nft"]) {
        return;
    }
    let _serial = serial();
    partition_scenario(T, "lpart", 7, true);
}

/// The partition scenarios; with `drop_connections`, TCP gives up on the connections across
/// the cut and the test checks that they are gone before the heal.
fn partition_scenario(t: &str, tag: &str, net: u8, drop_connections: bool) {
    let mut s = Setup::new(tag, net, 5, DIFFICULTY);
    if drop_connections {
        for h in &s.hosts {
            must(&[
                "ip",
                "netns",
                "exec",
                &h.ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.tcp_retries2=3",
            ]);
        }
    }
    for i in 0..5 {
        s.start(i);
    }
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);

    // A common history: h1 and h4 (one in each group) earn 100 coins each.
    let m = s.nodes[0].mine(2, WAIT);
    wait_tip(&mut s.nodes, &m[1].hash, "h1's blocks", NET_WAIT);
    let m = s.nodes[3].mine(2, WAIT);
    wait_tip(&mut s.nodes, &m[1].hash, "h4's blocks", NET_WAIT);
    let addr: Vec<String> = s.nodes.iter_mut().map(|n| n.address()).collect();

    let (a, b) = ([0usize, 1, 2], [3usize, 4]);
    {
        let ha: Vec<&Host> = a.iter().map(|&i| &s.hosts[i]).collect();
        let hb: Vec<&Host> = b.iter().map(|&i| &s.hosts[i]).collect();
        s.lan.partition(&ha, &hb);
    }
    let t_cut = Instant::now();

    // Group A: h1 pays h2 10; h2 mines 4 blocks (the first holds the transfer).
    let tx_a = s.nodes[0].send(&addr[1], 10, 1);
    wait_mempools(&mut s.nodes, &a, &[&tx_a], "tx_a in group A");
    let blocks_a = s.nodes[1].mine(4, WAIT);
    assert_eq!(blocks_a[0].txs, 2);
    let tip_a = blocks_a[3].hash.clone();
    wait_tip(&mut s.nodes[0..3], &tip_a, "group A's tip", NET_WAIT);
    // Group B: h4 pays h5 7; h5 mines 2 blocks (less work).
    let tx_b = s.nodes[3].send(&addr[4], 7, 1);
    wait_mempools(&mut s.nodes, &b, &[&tx_b], "tx_b in group B");
    let blocks_b = s.nodes[4].mine(2, WAIT);
    assert_eq!(blocks_b[0].txs, 2);
    let tip_b = blocks_b[1].hash.clone();
    wait_tip(&mut s.nodes[3..5], &tip_b, "group B's tip", NET_WAIT);

    // Hold the cut, then check that nothing crossed it.
    let mut dropped_after = None;
    if drop_connections {
        // Each side's connections across the cut end (status traffic and the blocks mined
        // keep TCP retransmitting).
        let groups = [(a.as_slice(), b.as_slice()), (b.as_slice(), a.as_slice())];
        dropped_after = Some(wait_until(
            "the connections across the cut to end",
            Duration::from_secs(90),
            || {
                let mut left = Vec::new();
                for (side, other) in groups {
                    for &i in side {
                        let peers = s.nodes[i].peers();
                        let across = peers
                            .iter()
                            .filter(|p| other.iter().any(|&j| ids[j] == p.id))
                            .count();
                        if across > 0 {
                            left.push(format!("{}: {across}", s.nodes[i].name));
                        }
                    }
                }
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still connected across: {}", left.join(", ")))
                }
            },
        ));
    }
    let left = PARTITION_HOLD.saturating_sub(t_cut.elapsed());
    std::thread::sleep(left);
    for &i in &a {
        let n = &mut s.nodes[i];
        assert_eq!(n.head(), (8, tip_a.clone()), "{} during the cut", n.name);
        assert!(n.block(&tip_b).is_none(), "{} knows B's tip", n.name);
        assert_eq!(n.mempool(), Vec::<String>::new(), "{}", n.name);
    }
    for &i in &b {
        let n = &mut s.nodes[i];
        assert_eq!(n.head(), (6, tip_b.clone()), "{} during the cut", n.name);
        assert!(n.block(&tip_a).is_none(), "{} knows A's tip", n.name);
    }
    let drops = s.lan.partition_drops();
    assert!(drops > 0, "the partition rules dropped nothing");
    let held = t_cut.elapsed();

    s.lan.heal();
    let t_heal = Instant::now();
    let mut tip_times = [None; 5];
    let (mut reconnect, mut converged) = (None, None);
    wait_until(
        "convergence after the heal",
        Duration::from_secs(120),
        || {
            let mut off = Vec::new();
            let mut mesh = true;
            for (i, n) in s.nodes.iter_mut().enumerate() {
                let st = n.status();
                mesh &= st["peers"] == "4";
                let tip = &st["tip"];
                if *tip == tip_a && tip_times[i].is_none() {
                    tip_times[i] = Some(t_heal.elapsed());
                }
                let pool = n.mempool();
                if *tip != tip_a || pool != [tx_b.clone()] {
                    off.push(format!(
                        "{} at #{}, {} txs pending",
                        n.name,
                        st["height"],
                        pool.len()
                    ));
                }
            }
            if mesh && reconnect.is_none() {
                reconnect = Some(t_heal.elapsed());
            }
            if off.is_empty() && converged.is_none() {
                converged = Some(t_heal.elapsed());
            }
            if converged.is_some() && reconnect.is_some() {
                Ok(())
            } else {
                Err(format!("{}; full mesh: {mesh}", off.join(", ")))
            }
        },
    );
    let (reconnect, converge) = (reconnect.unwrap(), converged.unwrap());
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);
    for &i in &b {
        let line =
            s.nodes[i].wait_log("the reorganisation", WAIT, |l| l.contains("reorganisation"));
        assert_eq!(log_field(&line, "disconnected"), Some("2"), "{line}");
    }

    // The returned transfer is mined later, by a host of the winning group.
    let last = s.nodes[2].mine(1, WAIT);
    assert_eq!(last[0].txs, 2, "h3's block holds tx_b");
    wait_tip(&mut s.nodes, &last[0].hash, "h3's block", NET_WAIT);
    wait_mempools(&mut s.nodes, &[0, 1, 2, 3, 4], &[], "empty mempools");
    // None lost: both transfers on every host's best chain, every balance as expected.
    for n in s.nodes.iter_mut() {
        let (h, best, lines) = n.block(&blocks_a[0].hash).unwrap();
        assert!(
            h == 5 && best && lines.iter().any(|l| l.contains(&tx_a)),
            "{}",
            n.name
        );
        let (h, best, lines) = n.block(&last[0].hash).unwrap();
        assert!(
            h == 9 && best && lines.iter().any(|l| l.contains(&tx_b)),
            "{}",
            n.name
        );
        assert_eq!(n.balance(&addr[0]), (100 - 11, 1), "{}: h1", n.name);
        assert_eq!(n.balance(&addr[1]), (10 + 51 + 150, 0), "{}: h2", n.name);
        assert_eq!(n.balance(&addr[3]), (100 - 8, 1), "{}: h4", n.name);
        assert_eq!(
            n.balance(&addr[4]),
            (7, 0),
            "{}: h5 (its branch lost)",
            n.name
        );
    }
    let per_node: Vec<String> = tip_times
        .iter()
        .enumerate()
        .map(|(i, t)| format!("h{}: {}", i + 1, t.map_or("?".into(), secs)))
        .collect();
    let connections = match dropped_after {
        Some(d) => format!(
            "connections across the cut ended {} into it (tcp_retries2=3); after the heal \
             full mesh again by mDNS in {}",
            secs(d),
            secs(reconnect)
        ),
        None => format!(
            "connections across the cut outlived it (full mesh {} after the heal)",
            secs(reconnect)
        ),
    };
    figure(
        t,
        &format!(
            "5 hosts cut 3|2 by nftables for {} ({drops} packets dropped); A mined 4 blocks \
             with tx_a (work to #8), B 2 with tx_b (#6); {connections}; all 5 on A's tip and \
             tx_b back in all 5 mempools {} after the heal (tip reached: {}); tx_b mined in \
             the next block; both transfers on every best chain, balances agree",
            secs(held),
            secs(converge),
            per_node.join(", ")
        ),
    );
    for n in s.nodes.iter_mut() {
        n.quit();
    }
}

/// Difficulty of the crash scenario: `mine on` makes a few thousand blocks a second, so the
/// kill lands in the middle of mining, publishing and writing.
const CRASH_DIFFICULTY: u32 = 12;
/// Times the mining node is killed and restarted.
const CRASH_ROUNDS: usize = 3;
/// The chain the late node syncs when it is killed: ten pages of 512 blocks.
const CRASH_CHAIN: u64 = 5000;
/// The late node is killed once it has accepted this height: into its second page, so that
/// the first one has likely been written.
const CRASH_KILL_AT: u64 = 700;

/// SIGKILL a node while it mines, and another while it syncs; each restarts on its data
/// directory, finds the others again by mDNS and catches up.
#[test]
fn lan_crash_while_mining_and_while_syncing_then_rejoin() {
    const T: &str = "crash";
    if !lan_or_skip(T, &[]) {
        return;
    }
    let _serial = serial();
    let mut s = Setup::new("crash", 4, 3, CRASH_DIFFICULTY);
    s.start(0);
    s.start(1);
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);

    // h1 mines continuously; kill -9 it in full flight, restart it; again.
    let mut rounds = Vec::new();
    let mut rates = Vec::new();
    for round in 1..=CRASH_ROUNDS {
        let (start_h, _) = s.nodes[0].head();
        assert_eq!(s.nodes[0].run1("mine on"), "mining on");
        s.nodes[0].wait_status("h1 to mine 300 blocks", NET_WAIT, |st| {
            st["height"].parse::<u64>().unwrap() >= start_h + 300
        });
        s.nodes[1].wait_status("h2 to follow", NET_WAIT, |st| {
            st["height"].parse::<u64>().unwrap() >= start_h + 100
        });
        let st = s.nodes[0].status();
        assert_eq!(st["mining"], "on");
        let status = s.nodes[0].kill9();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
        let mined_lines = s.nodes[0].logs(|l| l.contains("mined a block"));
        let h1_mined = mined_lines
            .last()
            .and_then(|l| log_field(l, "height"))
            .and_then(|h| h.parse::<u64>().ok())
            .unwrap_or(0);
        if let (Some(a), Some(b)) = (
            mined_lines.first().and_then(|l| log_time(l)),
            mined_lines.last().and_then(|l| log_time(l)),
        ) && b > a
        {
            rates.push((mined_lines.len() - 1) as f64 / (b - a));
        }
        let (h2_at_kill, _) = s.nodes[1].head();
        s.nodes[1].wait_status("h2 to see h1 gone", NET_WAIT, |st| st["peers"] == "0");
        let verified = s.verify_store(0);
        assert!(verified.height >= start_h, "round {round}: {verified:?}");

        // Restart h1 on its data directory: it keeps its peer id and chain, rejoins by mDNS.
        s.restart(0);
        let t_restart = Instant::now();
        let started = s.nodes[0].wait_log("h1 restarted", WAIT, |l| l.contains("node started"));
        let h1_stored: u64 = log_field(&started, "height").unwrap().parse().unwrap();
        assert!(
            h1_stored >= start_h && h1_stored <= h1_mined,
            "round {round}: mined from #{start_h} to #{h1_mined}; {started}"
        );
        assert_eq!(log_field(&started, "peer_id"), Some(ids[0].as_str()));
        let rejoin = wait_until("h1 to rejoin", NET_WAIT, || {
            let p = s.nodes[0].peers();
            match p.as_slice() {
                [p] if p.id == ids[1] => Ok(()),
                _ => Err(format!("{p:?}")),
            }
        });
        let found_by = s.nodes[0].peers()[0].found_by.clone();
        // A common tip: h2 mines on whatever it holds; h1 must end up on it.
        s.nodes[1].mine(3, WAIT);
        wait_until("h1 and h2 on one tip", NET_WAIT, || {
            let (t1, t2) = (s.nodes[0].tip(), s.nodes[1].tip());
            if t1 == t2 {
                Ok(())
            } else {
                Err(format!("h1 {t1}, h2 {t2}"))
            }
        });
        rounds.push(format!(
            "round {round}: mined #{start_h}..#{h1_mined}, killed (h2 had #{h2_at_kill}), \
             #{h1_stored} on disk at restart, rejoined by {found_by} in {}, on a common tip {} \
             after the restart",
            ms(rejoin),
            ms(t_restart.elapsed())
        ));
    }

    // A long chain for the late node, then start it and kill it during its sync.
    let (h, _) = s.nodes[1].head();
    if h < CRASH_CHAIN {
        s.nodes[1].mine(CRASH_CHAIN - h, Duration::from_secs(120));
    }
    let (target, target_tip) = s.nodes[1].head();
    wait_tip(
        &mut s.nodes[0..2],
        &target_tip,
        "h1 on the target",
        NET_WAIT,
    );
    s.start(2);
    let kill_at = CRASH_KILL_AT;
    let line = s.nodes[2].wait_log("h3 syncing", NET_WAIT, |l| {
        l.contains("block accepted")
            && log_field(l, "height").and_then(|h| h.parse::<u64>().ok()) >= Some(kill_at)
    });
    s.nodes[2].kill9();
    let accepted = s.nodes[2]
        .logs(|l| l.contains("block accepted"))
        .iter()
        .filter_map(|l| log_field(l, "height").and_then(|h| h.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    assert!(
        accepted < target,
        "h3 was killed after its sync ended ({accepted} of {target}); first line {line}"
    );
    assert!(s.verify_store(2).height <= accepted);
    s.restart(2);
    let t3 = Instant::now();
    let started = s.nodes[2].wait_log("h3 restarted", WAIT, |l| l.contains("node started"));
    let h3_stored: u64 = log_field(&started, "height").unwrap().parse().unwrap();
    assert!(h3_stored <= accepted, "{started}");
    wait_tip(&mut s.nodes, &target_tip, "all on the target", NET_WAIT);
    let h3_catch_up = t3.elapsed();
    let mine_rate = rates
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join("/");
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);
    // And they go on together.
    let next = s.nodes[2].mine(1, WAIT);
    wait_tip(&mut s.nodes, &next[0].hash, "h3's block", NET_WAIT);
    figure(
        T,
        &format!(
            "difficulty {CRASH_DIFFICULTY}: h1 killed (SIGKILL) while mining ({} blocks/s in \
             the rounds), restarted on its data dir with the same peer id, {CRASH_ROUNDS} \
             times: {}; h3 \
             started late, killed during its sync to #{target} after accepting #{accepted}, \
             restarted with #{h3_stored} on disk, on the common tip {} after the restart",
            mine_rate,
            rounds.join("; "),
            secs(h3_catch_up)
        ),
    );
    for n in s.nodes.iter_mut() {
        n.quit();
    }
}

/// After 500 blocks a new host appears on the LAN, finds the others by mDNS and syncs.
#[test]
fn lan_late_joiner_syncs_500_blocks() {
    const T: &str = "late joiner";
    if !lan_or_skip(T, &[]) {
        return;
    }
    let _serial = serial();
    let mut s = Setup::new("late", 5, 3, DIFFICULTY);
    for i in 0..3 {
        s.start(i);
    }
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, NET_WAIT);
    let t_mine = Instant::now();
    let blocks = s.nodes[0].mine(500, Duration::from_secs(120));
    let mine_time = t_mine.elapsed();
    let tip = blocks[499].hash.clone();
    let follow = wait_tip(&mut s.nodes, &tip, "500 blocks on h1..h3", NET_WAIT);

    let i = s.add_host(5);
    s.start(i);
    let spawned = s.nodes[i].spawned;
    let late = &mut s.nodes[i];
    wait_until("h4 to sync 500 blocks", NET_WAIT, || {
        let (h, t) = late.head();
        if t == tip {
            Ok(())
        } else {
            Err(format!("h4 at #{h}"))
        }
    });
    let sync = spawned.elapsed();
    let connected = first_log_time(late, |l| l.contains("peer connected"));
    let first_block = first_log_time(late, |l| l.contains("block accepted"));
    let last_block = last_log_time(late, |l| {
        l.contains("block accepted") && l.contains("height=500 ")
    });
    let (Some(connected), Some(first_block), Some(last_block)) =
        (connected, first_block, last_block)
    else {
        late.fail("no connection or block acceptance in the log");
    };
    let from_connect = last_block - connected;
    let download = last_block - first_block;
    wait_until("h4 connected to the 3 others", NET_WAIT, || {
        match late.peers().len() {
            3 => Ok(()),
            n => Err(format!("{n} peers")),
        }
    });
    let next = s.nodes[1].mine(1, WAIT);
    wait_tip(
        &mut s.nodes,
        &next[0].hash,
        "the next block on all 4",
        NET_WAIT,
    );
    figure(
        T,
        &format!(
            "h1 mined 500 blocks (difficulty {DIFFICULTY}) in {}, on h2/h3 within {} of the \
             end; new host h4: on the tip {} after its spawn ({:.0} blocks/s), {:.0} ms from \
             its first connection ({:.0} blocks/s), {:.0} ms from the first to the 500th \
             accepted block ({:.0} blocks/s, node log clock); then follows gossip",
            secs(mine_time),
            ms(follow),
            ms(sync),
            500.0 / sync.as_secs_f64(),
            from_connect * 1000.0,
            500.0 / from_connect.max(1e-6),
            download * 1000.0,
            500.0 / download.max(1e-6),
        ),
    );
    for n in s.nodes.iter_mut() {
        n.quit();
    }
}

/// Blocks mined on h1 for the lossy host to receive.
const LOSSY_BLOCKS: u64 = 300;
/// Transfers sent to the lossy host, and by it.
const LOSSY_TXS_IN: u64 = 20;
const LOSSY_TXS_OUT: u64 = 10;

/// One host behind a lossy, slow link: 5% of its packets lost each way (nftables on the
/// bridge) and 1 Mbit/s each way (tbf). It still finds the others, receives their blocks and transfers,
/// and its own blocks and transfers reach them.
#[test]
fn lan_lossy_slow_link_still_converges() {
    const T: &str = "lossy link";
    if !lan_or_skip(T, &["nft", "tc"]) {
        return;
    }
    let _serial = serial();
    let mut s = Setup::new("lossy", 6, 3, DIFFICULTY);
    let h3 = s.hosts[2].clone();
    s.lan.impair(&h3, 5, "1mbit", "32kbit", "400ms");
    let t0 = Instant::now();
    for i in 0..3 {
        s.start(i);
    }
    let ids = s.peer_ids();
    wait_full_mesh(&mut s.nodes, &ids, Duration::from_secs(120));
    let mesh = t0.elapsed();
    let addr: Vec<String> = s.nodes.iter_mut().map(|n| n.address()).collect();

    // Blocks to the lossy host.
    let blocks = s.nodes[0].mine(LOSSY_BLOCKS, Duration::from_secs(60));
    let tip = blocks.last().unwrap().hash.clone();
    let t_blocks = wait_tip(&mut s.nodes, &tip, "h1's blocks on every host", NET_WAIT);
    // Transfers to it.
    let t = Instant::now();
    let txs_in: Vec<String> = (0..LOSSY_TXS_IN)
        .map(|_| s.nodes[0].send(&addr[2], 5, 1))
        .collect();
    let want: Vec<&str> = txs_in.iter().map(String::as_str).collect();
    wait_mempools(&mut s.nodes, &[0, 1, 2], &want, "h1's transfers everywhere");
    let t_in = t.elapsed();
    // Its block, holding them, to the others.
    let own = s.nodes[2].mine(1, WAIT);
    assert_eq!(own[0].txs as u64, 1 + LOSSY_TXS_IN);
    let t_own = wait_tip(&mut s.nodes, &own[0].hash, "h3's block", NET_WAIT);
    wait_mempools(&mut s.nodes, &[0, 1, 2], &[], "empty mempools");
    // Its transfers to the others.
    let t = Instant::now();
    let txs_out: Vec<String> = (0..LOSSY_TXS_OUT)
        .map(|_| s.nodes[2].send(&addr[1], 3, 1))
        .collect();
    let want: Vec<&str> = txs_out.iter().map(String::as_str).collect();
    wait_mempools(&mut s.nodes, &[0, 1, 2], &want, "h3's transfers everywhere");
    let t_out = t.elapsed();
    let last = s.nodes[1].mine(1, WAIT);
    assert_eq!(last[0].txs as u64, 1 + LOSSY_TXS_OUT);
    let t_last = wait_tip(&mut s.nodes, &last[0].hash, "h2's block", NET_WAIT);
    wait_mempools(&mut s.nodes, &[0, 1, 2], &[], "empty mempools");
    // Its block's reward and fees, what it received, what it sent with fees.
    let h3_balance = 50 + LOSSY_TXS_IN + 5 * LOSSY_TXS_IN - 4 * LOSSY_TXS_OUT;
    for n in s.nodes.iter_mut() {
        assert_eq!(n.height(), LOSSY_BLOCKS + 2, "{}", n.name);
        assert_eq!(
            n.balance(&addr[2]),
            (h3_balance, LOSSY_TXS_OUT),
            "{}",
            n.name
        );
        assert_eq!(
            n.balance(&addr[1]),
            (50 + 3 * LOSSY_TXS_OUT + LOSSY_TXS_OUT, 0),
            "{}",
            n.name
        );
    }
    let rtt = s.nodes[0]
        .peers()
        .into_iter()
        .find(|p| p.id == ids[2])
        .and_then(|p| p.rtt)
        .unwrap_or_else(|| "?".into());
    let ((out, inn), (tc_out, tc_in)) = s.lan.impairment_stats(&h3);
    assert!(
        out > 0 && inn > 0,
        "the loss rules dropped {out} out, {inn} in"
    );
    figure(
        T,
        &format!(
            "h3 with 5% loss each way (nftables numgen on the bridge) and tbf \
             1mbit/32kbit/400ms each way: \
             full mesh in {}; h1's {LOSSY_BLOCKS} blocks on every tip within {} of the end of \
             `mine`; {LOSSY_TXS_IN} transfers from h1 in all 3 mempools within {}; h3's block \
             with them on every tip within {}; {LOSSY_TXS_OUT} transfers from h3 in all \
             mempools within {}, h2's block with them on every tip within {}; h1's ping rtt \
             to h3 {rtt}; packets dropped by the loss rules: {out} out of h3, {inn} into h3; \
             tbf out of h3: {tc_out}; tbf into h3: {tc_in}",
            secs(mesh),
            ms(t_blocks),
            ms(t_in),
            ms(t_own),
            ms(t_out),
            ms(t_last)
        ),
    );
    for n in s.nodes.iter_mut() {
        n.quit();
    }
}

/// Height every compose node reaches before the agreement checks.
const COMPOSE_HEIGHT: u64 = 15;

/// The docker-compose.yml topology: one namespace per service on one bridge with the file's
/// subnet and addresses, each running the service's command with its environment (the image's
/// GOSSIPCHAIN_DATA_DIR=/data points at a temporary directory instead).
#[test]
fn lan_docker_compose_topology() {
    const T: &str = "docker-compose";
    if !lan_or_skip(T, &[]) {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose_path = root.join("docker-compose.yml");
    let text = std::fs::read_to_string(&compose_path).unwrap();
    let c = compose::parse_compose(&text).unwrap_or_else(|e| panic!("{e}"));
    let checked_with = match compose::python_view(&compose_path) {
        Some(py) => {
            assert_eq!(py, compose::our_view(&c), "PyYAML reads the file otherwise");
            "cross-checked with PyYAML"
        }
        None => "PyYAML not available for a cross-check",
    };
    let image =
        compose::parse_dockerfile(&std::fs::read_to_string(root.join("Dockerfile")).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        image.entrypoint,
        ["gossipchain"],
        "the image runs the binary"
    );
    assert_eq!(c.services.len(), 3, "{c:?}");
    let [(network, subnet)] = c.subnets.as_slice() else {
        panic!("expected one network: {:?}", c.subnets)
    };
    // Docker assigns addresses on the network when the file fixes none; so does the test.
    let subnet = subnet
        .clone()
        .unwrap_or_else(|| "10.77.200.0/24".to_string());
    let prefix_len: u8 = subnet.split('/').nth(1).unwrap().parse().unwrap();
    let net_prefix: String = {
        let base = subnet.split('/').next().unwrap();
        base.rsplit_once('.').unwrap().0.to_string()
    };
    let addresses: Vec<String> = c
        .services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            assert_eq!(&svc.network, network);
            let ip = svc
                .ipv4_address
                .clone()
                .unwrap_or_else(|| format!("{net_prefix}.{}", 11 + i));
            assert!(
                ip.starts_with(&format!("{net_prefix}.")),
                "{ip} outside {subnet}"
            );
            ip
        })
        .collect();
    let address_of = |name: &str| {
        let i = c.services.iter().position(|s| s.name == name).unwrap();
        addresses[i].clone()
    };
    let _serial = serial();

    // Declared in reverse drop order: nodes, then data directories, then namespaces.
    let mut lan = Lan::new("compose", prefix_len);
    let mut dirs = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    // Services in dependency order.
    let mut order: Vec<&compose::Service> = Vec::new();
    while order.len() < c.services.len() {
        let next = c
            .services
            .iter()
            .find(|s| {
                !order.iter().any(|o| o.name == s.name)
                    && s.depends_on
                        .iter()
                        .all(|d| order.iter().any(|o| o.name == *d))
            })
            .expect("depends_on has no cycle");
        order.push(next);
    }
    // Every service's namespace first, so that each can resolve the others' names.
    let hosts: Vec<Host> = order
        .iter()
        .map(|svc| lan.add_host(&svc.name, &address_of(&svc.name)))
        .collect();
    let names: Vec<(String, String)> = order
        .iter()
        .map(|svc| (svc.name.clone(), address_of(&svc.name)))
        .collect();
    lan.write_hosts(&names);
    let mut described = Vec::new();
    for (svc, host) in order.iter().zip(&hosts) {
        let dir = data_dir();
        // The image's environment, then the service's; /data (the volume) is a temp dir.
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in image.env.iter().chain(&svc.environment) {
            let v = if k == "GOSSIPCHAIN_DATA_DIR" {
                assert!(
                    svc.volumes.iter().any(|m| m.ends_with(&format!(":{v}"))),
                    "{}: the data dir {v} is not a volume",
                    svc.name
                );
                dir.path().to_string_lossy().into_owned()
            } else {
                v.clone()
            };
            env.retain(|(e, _)| e != k);
            env.push((k.clone(), v));
        }
        let args: Vec<std::ffi::OsString> = svc.command.iter().map(Into::into).collect();
        described.push(format!(
            "{} {} `gossipchain {}`",
            svc.name,
            host.ip,
            svc.command.join(" ")
        ));
        nodes.push(Node::spawn(&svc.name, host, &args, &env));
        dirs.push(dir);
    }
    let t0 = Instant::now();
    let ids: Vec<String> = nodes.iter_mut().map(|n| n.peer_id()).collect();
    wait_full_mesh(&mut nodes, &ids, NET_WAIT);
    let mesh = t0.elapsed();
    let mut links = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        for p in n.peers() {
            let j = ids.iter().position(|id| *id == p.id).unwrap();
            links.push(format!(
                "{}->{} {}",
                order[i].name, order[j].name, p.found_by
            ));
        }
    }
    let chain = nodes[0].status()["chain id"].clone();
    for n in nodes.iter_mut() {
        assert_eq!(n.status()["chain id"], chain, "{}: one chain", n.name);
    }
    let miners: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, s)| s.command.iter().any(|a| a == "--mine"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(miners.len(), 2, "two services mine");

    // While they mine: each tip of one miner ends up on the others' best chains.
    let t_mine = Instant::now();
    wait_until("blocks everywhere", Duration::from_secs(180), || {
        let low: Vec<String> = nodes
            .iter_mut()
            .filter_map(|n| {
                let h = n.height();
                (h < COMPOSE_HEIGHT).then(|| format!("{} at #{h}", n.name))
            })
            .collect();
        if low.is_empty() {
            Ok(())
        } else {
            Err(low.join(", "))
        }
    });
    let mut agreed = Vec::new();
    for &m in &miners {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (h, tip) = nodes[m].head();
            let res = wait_until_opt(Duration::from_secs(30), || {
                nodes
                    .iter_mut()
                    .all(|n| n.block(&tip).is_some_and(|(_, best, _)| best))
            });
            if res {
                agreed.push(format!("{}'s #{h}", order[m].name));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no tip of {} reached every best chain",
                order[m].name
            );
        }
    }
    let mining_heights: Vec<String> = nodes
        .iter_mut()
        .map(|n| {
            let h = n.height();
            format!("{} #{h}", n.name)
        })
        .collect();
    let mined_for = t_mine.elapsed();
    for &m in &miners {
        assert_eq!(nodes[m].run1("mine off"), "mining off");
    }
    let t_off = Instant::now();
    let mut final_tip = String::new();
    wait_until("one tip after mining stops", NET_WAIT, || {
        let heads: Vec<(u64, String)> = nodes.iter_mut().map(|n| n.head()).collect();
        final_tip = format!("#{} {}", heads[0].0, &heads[0].1[..16]);
        if heads.iter().all(|h| *h == heads[0]) {
            Ok(())
        } else {
            Err(format!("{heads:?}"))
        }
    });
    let settle = t_off.elapsed();
    let mined: Vec<String> = nodes
        .iter_mut()
        .map(|n| {
            let k = n.logs(|l| l.contains("mined a block")).len();
            format!("{} {k}", n.name)
        })
        .collect();
    let reorgs: usize = nodes
        .iter_mut()
        .map(|n| n.logs(|l| l.contains("reorganisation")).len())
        .sum();
    figure(
        T,
        &format!(
            "docker-compose.yml ({checked_with}) on network {network} {subnet}: {}; full mesh \
             in {} ({}); while node1/node3 mined (difficulty from the file's env), {} were on \
             every best chain ({} of mining, heights {}); after `mine off` all three on tip \
             {final_tip} within {}; blocks mined: {}; reorganisations (competing miners): \
             {reorgs}",
            described.join(", "),
            secs(mesh),
            links.join(", "),
            agreed.join(" and "),
            secs(mined_for),
            mining_heights.join(", "),
            ms(settle),
            mined.join(", ")
        ),
    );
    for n in nodes.iter_mut() {
        n.quit();
    }
    drop(nodes);
    drop(dirs);
    drop(lan);
}

/// Polls `check` until true or `timeout`; whether it held.
fn wait_until_opt(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}
