//! The nemesis: real `gossipchain` processes in network namespaces on two subnets joined by
//! the delay line, three of them mining on a `--block-time 2s` chain, a load of transfers from
//! many wallets posted to their HTTP APIs, and a seeded random schedule of faults (`kill -9`
//! and restart, partitions and heals by nftables, one that splits the miners, clock skew by
//! libfaketime inside and beyond the max-future rule, a slow and lossy link, a full disk under
//! one node's data dir, a SIGSTOP longer than the request deadline). The invariants are
//! checked all along and at the end; what it injected, checked and found is a [`Report`].
//!
//! Shared by the short run in CI (`tests/nemesis.rs`) and the long one (`benches/nemesis.rs`).
//! The same seed gives the same schedule (kinds, targets, durations, order), so a failing
//! schedule replays; timings within it follow the machine.
//!
//! Every process, namespace, mount and nftables table goes with the [`Nemesis`] value (Drop
//! guards), on success or failure.

pub mod http;

use crate::delay::{DelayLine, Impairment};
use crate::harness::*;
use gossipchain::chain::address::ChainKind;
use gossipchain::chain::{ChainId, ChainParams, Transaction};
use gossipchain::wallet::Wallet;
use http::Http;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Nodes: four on each subnet.
pub const NODES: usize = 8;
const PER_SUBNET: usize = 4;
/// The mining nodes: two on the first subnet, one on the second (a split of the subnets
/// splits the miners).
const MINERS: [usize; 3] = [0, 1, 4];
/// The node whose data dir is a small tmpfs (not a miner: it takes blocks from the others).
const DISK_NODE: usize = 3;
/// The tmpfs's size.
const DISK_SIZE: &str = "64m";
/// The chain: a block every 2 s on average.
const BLOCK_TIME: &str = "2s";
const BLOCK_TIME_MS: u64 = 2000;
/// The link between the subnets, normally and while the link fault lasts.
const LINK: Impairment = Impairment {
    delay: Duration::from_millis(20),
    jitter: Duration::from_millis(5),
    loss_per_10k: 0,
};
const LINK_BAD: Impairment = Impairment {
    delay: Duration::from_millis(300),
    jitter: Duration::from_millis(100),
    loss_per_10k: 1000,
};
/// The bound stated for convergence after a heal: every node on one tip within it.
pub const CONVERGE_BOUND: Duration = Duration::from_secs(90);
/// Blocks a node may lose in a `kill -9`: those accepted in the last instant, not yet written
/// (the store writer commits within a fraction of a second of each block).
const KILL_LOSS_BOUND: u64 = 5;
/// The peers' request deadline (src/net: request-response timeout): a pause lasts longer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);
/// Deadline for a restarted node to log that it started.
const START_WAIT: Duration = Duration::from_secs(60);
/// How often the invariants are checked while faults run.
const ROUND_EVERY: Duration = Duration::from_secs(3);
/// Every this many rounds, the ledger checks (balances, nonces) too.
const LEDGER_EVERY: u64 = 4;
/// Confirmations that make a transfer final.
const DEEP: u64 = 6;
/// Transfers a wallet has waiting at most.
const MAX_PENDING: u64 = 16;
/// The tag of a rebroadcast's request (others carry the sender's index and the nonce).
const REBROADCAST: u64 = 1 << 63;
/// Whence libfaketime is preloaded (Debian's libfaketime package).
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// What the run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seconds of faults (after the set-up, before the final checks).
    pub secs: u64,
    /// Seed of the schedule and the load.
    pub seed: u64,
    /// Wallets besides the miners'.
    pub wallets: usize,
    /// Transfers posted per second.
    pub rate: f64,
    /// Shorter holds (the CI run).
    pub short: bool,
    /// Whether the load posts again to every node what waits 15 s unconfirmed (as a wallet
    /// would); off, what the network itself delivers is measured.
    pub rebroadcast: bool,
}

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `kill -9` and restart.
    Kill,
    /// A random set of nodes cut from the rest.
    Partition,
    /// The first subnet cut from the second: two miners against one.
    MinerSplit,
    /// A node's clock off by up to ±60 s (inside the max-future rule).
    Skew,
    /// A miner's clock off by more than the max-future rule allows.
    SkewBeyond,
    /// The link between the subnets slow and lossy.
    Link,
    /// The disk under a node's data dir full.
    DiskFull,
    /// A node stopped (SIGSTOP) for longer than the request deadline, then continued.
    Pause,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Kill,
        Kind::Partition,
        Kind::MinerSplit,
        Kind::Skew,
        Kind::SkewBeyond,
        Kind::Link,
        Kind::DiskFull,
        Kind::Pause,
    ];
}

/// One fault of the schedule.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    /// The node it hits (unused by partitions, the split and the link).
    pub target: usize,
    /// The nodes cut from the others (partitions).
    pub cut: Vec<usize>,
    /// Clock offset in seconds (skews).
    pub skew: i64,
    /// How long it lasts.
    pub hold: Duration,
    /// Quiet time before it.
    pub gap: Duration,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            Kind::Kill => format!("kill -9 n{} and restart", self.target),
            Kind::Partition => format!("partition {:?} from the rest", self.cut),
            Kind::MinerSplit => "partition subnet 1 (miners n0 n1) from subnet 2 (miner n4)".into(),
            Kind::Skew | Kind::SkewBeyond => format!("clock of n{} {:+} s", self.target, self.skew),
            Kind::Link => format!(
                "link between subnets {} ms ± {} ms, {} % loss",
                LINK_BAD.delay.as_millis(),
                LINK_BAD.jitter.as_millis(),
                LINK_BAD.loss_per_10k / 100
            ),
            Kind::DiskFull => format!("disk of n{} full", self.target),
            Kind::Pause => format!("SIGSTOP n{}", self.target),
        };
        write!(
            f,
            "after {:>2} s: {what} for {} s",
            self.gap.as_secs(),
            self.hold.as_secs()
        )
    }
}

/// The schedule of seed `seed`: every kind once in a shuffled order, again and again, each
/// with its target and durations.
pub fn schedule(seed: u64, count: usize, short: bool) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    while out.len() < count {
        let mut kinds = Kind::ALL.to_vec();
        for i in (1..kinds.len()).rev() {
            let j = rng.random_range(0..=i);
            kinds.swap(i, j);
        }
        for kind in kinds {
            let secs = |rng: &mut StdRng, lo: u64, hi: u64| {
                let (lo, hi) = if short {
                    (lo.div_ceil(3).max(4), hi.div_ceil(3).max(6))
                } else {
                    (lo, hi)
                };
                Duration::from_secs(rng.random_range(lo..=hi))
            };
            let target = rng.random_range(0..NODES);
            let mut cut = Vec::new();
            let mut skew = 0;
            let hold = match kind {
                Kind::Kill => secs(&mut rng, 1, 6),
                Kind::Partition => {
                    let k = rng.random_range(1..=3);
                    while cut.len() < k {
                        let n = rng.random_range(0..NODES);
                        if !cut.contains(&n) {
                            cut.push(n);
                        }
                    }
                    cut.sort_unstable();
                    secs(&mut rng, 10, 40)
                }
                Kind::MinerSplit => secs(&mut rng, 15, 45),
                Kind::Skew => {
                    let s = rng.random_range(10..=60);
                    skew = if rng.random_range(0..2) == 0 { s } else { -s };
                    secs(&mut rng, 20, 40)
                }
                Kind::SkewBeyond => {
                    let s = rng.random_range(150..=300);
                    skew = if rng.random_range(0..2) == 0 { s } else { -s };
                    secs(&mut rng, 20, 40)
                }
                Kind::Link => secs(&mut rng, 15, 40),
                Kind::DiskFull => secs(&mut rng, 10, 30),
                // Longer than the deadline whatever the run.
                Kind::Pause => REQUEST_DEADLINE + Duration::from_secs(rng.random_range(3..=12)),
            };
            let target = match kind {
                Kind::SkewBeyond => MINERS[rng.random_range(0..MINERS.len())],
                Kind::DiskFull => DISK_NODE,
                _ => target,
            };
            let gap = secs(&mut rng, 3, 10);
            out.push(Fault {
                kind,
                target,
                cut,
                skew,
                hold,
                gap,
            });
        }
    }
    out.truncate(count);
    out
}

/// What a run injected, checked and found.
#[derive(Default, Debug)]
pub struct Report {
    /// The faults run, in order.
    pub schedule: Vec<String>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Invariant checks made, by invariant.
    pub checks: BTreeMap<&'static str, u64>,
    /// Checks that could not be made (a node not answering, a tip that moved), by invariant.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Violations of an invariant.
    pub violations: Vec<String>,
    /// Seconds from each heal until every node was on one tip.
    pub convergence: Vec<f64>,
    /// What the faults did (expected effects, measurements).
    pub notes: Vec<String>,
    /// The load's figures.
    pub load: String,
}

impl Report {
    fn check(&mut self, what: &'static str) {
        *self.checks.entry(what).or_default() += 1;
    }
    fn skip(&mut self, what: &'static str) {
        *self.skipped.entry(what).or_default() += 1;
    }
    fn violation(&mut self, what: String) {
        eprintln!("nemesis VIOLATION: {what}");
        self.violations.push(what);
    }
    fn note(&mut self, what: String) {
        eprintln!("nemesis: {what}");
        self.notes.push(what);
    }

    /// The report as printed.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("schedule:\n");
        for l in &self.schedule {
            s.push_str(&format!("  {l}\n"));
        }
        s.push_str(&format!("faults injected by kind: {:?}\n", self.faults));
        s.push_str(&format!("invariant checks made: {:?}\n", self.checks));
        s.push_str(&format!("checks skipped: {:?}\n", self.skipped));
        let mut c = self.convergence.clone();
        c.sort_by(f64::total_cmp);
        s.push_str(&format!(
            "heal convergence (every node on one tip; bound {} s): {} heals, p50 {:.2} s, p99 {:.2} s, max {:.2} s\n",
            CONVERGE_BOUND.as_secs(),
            c.len(),
            percentile(&c, 0.5),
            percentile(&c, 0.99),
            c.last().copied().unwrap_or(f64::NAN)
        ));
        s.push_str(&format!("load: {}\n", self.load));
        s.push_str("notes:\n");
        for n in &self.notes {
            s.push_str(&format!("  {n}\n"));
        }
        s.push_str(&format!("violations: {}\n", self.violations.len()));
        for v in &self.violations {
            s.push_str(&format!("  {v}\n"));
        }
        s
    }
}

/// A block as the checks need it.
struct Blk {
    height: u64,
    prev: String,
    txs: Vec<Tx>,
}

struct Tx {
    txid: String,
    /// None for a coinbase.
    from: Option<String>,
    to: String,
    amount: u64,
    fee: u64,
    nonce: u64,
}

/// Balances and nonces replayed from a chain.
#[derive(Clone, Default)]
struct Ledger {
    balance: HashMap<String, u64>,
    nonce: HashMap<String, u64>,
    /// The coinbases' amounts.
    minted: u64,
    /// The fees the coinbases collected (paid by transfers in their blocks).
    fees: u64,
}

/// What the load generator reads: the ledger of the most advanced chain, and which nodes to
/// post to.
struct Shared {
    up: Vec<AtomicBool>,
    view: Mutex<Option<Ledger>>,
    stop: AtomicBool,
    posted: AtomicU64,
    accepted: AtomicU64,
    rebroadcast: AtomicU64,
    resets: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
    /// Transfers a node accepted (first posts): txid -> (sender, nonce).
    acked: Mutex<HashMap<String, (String, u64)>>,
}

/// A tmpfs mounted as a node's data dir; unmounted on drop.
struct Tmpfs {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = data_dir();
        let path = dir.path().to_path_buf();
        must(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            &path.to_string_lossy(),
        ]);
        Self {
            dir: Some(dir),
            path,
        }
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    /// Fills the file system with a file (until ENOSPC, bounded by its size).
    fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("the filler file");
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        for _ in 0..1024 {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // The last partial pages.
        for _ in 0..1024 {
            match f.write(&chunk[..4096]) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        written
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = tool(&["umount", &self.path.to_string_lossy()]) {
            eprintln!("nemesis: {e}; lazy unmount");
            let _ = tool(&["umount", "-l", &self.path.to_string_lossy()]);
        }
        drop(self.dir.take());
    }
}

/// Unmounts tmpfs data dirs left by runs whose process is gone (killed before their guards).
fn sweep_mounts() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let base = target_dir().join("lan-data");
    let base = base.to_string_lossy();
    for line in mounts.lines() {
        let Some(point) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some(rest) = point.strip_prefix(&format!("{base}/gclan")) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = tool(&["umount", "-l", point]);
        }
    }
}

/// One node's place in the run.
struct Slot {
    host: Host,
    dir: PathBuf,
    miner: bool,
    node: Option<Node>,
    paused: bool,
    /// Clock offset of the running process, seconds.
    skew: i64,
    /// ERROR and panic lines of the running process already judged.
    judged: usize,
    /// Restarted since the last nonce observation.
    restarted: bool,
}

/// A running nemesis.
pub struct Nemesis {
    // Field order is drop order: the load stops, the processes die, then the link, the
    // mount and the namespaces go.
    load: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    http: Arc<Vec<Http>>,
    line: Option<DelayLine>,
    disk: Option<Tmpfs>,
    /// The data dirs, deleted with the run.
    _dirs: Vec<tempfile::TempDir>,
    lan: Lan,
    cfg: Config,
    chain_id: ChainId,
    /// New coins in a block.
    reward: u64,
    /// The max-future rule.
    max_future_ms: u64,
    report: Report,
    /// Every block seen, by hash.
    blocks: HashMap<String, Arc<Blk>>,
    /// Each node's best chain as last seen (hashes by height).
    chains: Vec<Vec<String>>,
    /// Senders whose transfers a reorganisation took out of a node's chain since the last
    /// nonce observation there.
    reorged: Vec<HashSet<String>>,
    /// Each node's last nonce of each account.
    nonces: Vec<HashMap<String, u64>>,
    /// Transfers that were `DEEP` deep on every node.
    final_txs: HashSet<String>,
    final_tip: Option<(u64, String)>,
    /// The disk fault is on (its ERROR lines are the fault's).
    disk_full: bool,
    rounds: u64,
    deepest_reorg: usize,
    store_losses: Vec<u64>,
}

fn subnet_ip(i: usize) -> String {
    format!("10.79.{}.{}", 1 + i / PER_SUBNET, 11 + i % PER_SUBNET)
}

fn field_u64(v: &Value, k: &str) -> Result<u64, String> {
    v[k].as_u64().ok_or_else(|| format!("no {k} in {v}"))
}

fn field_str(v: &Value, k: &str) -> Result<String, String> {
    v[k].as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no {k} in {v}"))
}

/// Seconds since midnight UTC now (to compare with a log line's time).
fn now_of_day() -> f64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    t % 86400.0
}

impl Nemesis {
    /// Builds the network and starts the nodes and the load.
    pub fn start(cfg: Config) -> Self {
        sweep_mounts();
        let mut lan = Lan::new("nemesis", 24);
        lan.add_bridge("br1");
        lan.add_router("router", &[("br0", "10.79.1.1"), ("br1", "10.79.2.1")]);
        let mut hosts = Vec::new();
        for i in 0..NODES {
            let bridge = if i < PER_SUBNET { "br0" } else { "br1" };
            let h = lan.add_host_on(bridge, &format!("n{i}"), &subnet_ip(i));
            lan.route_via(
                &h,
                if i < PER_SUBNET {
                    "10.79.1.1"
                } else {
                    "10.79.2.1"
                },
            );
            hosts.push(h);
        }
        lan.static_neighbours();
        let line = DelayLine::start(&lan.router_ns("router"), &["eth0", "eth1"], LINK);
        let disk = Tmpfs::mount(DISK_SIZE);
        let mut dirs = Vec::new();
        let mut slots = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let dir = if i == DISK_NODE {
                disk.path.clone()
            } else {
                let d = data_dir();
                let p = d.path().to_path_buf();
                dirs.push(d);
                p
            };
            slots.push(Slot {
                host,
                dir,
                miner: MINERS.contains(&i),
                node: None,
                paused: false,
                skew: 0,
                judged: 0,
                restarted: false,
            });
        }
        let http = Arc::new(slots.iter().map(|s| Http::new(&s.host.ns, 5000)).collect());
        let shared = Arc::new(Shared {
            up: (0..NODES).map(|_| AtomicBool::new(false)).collect(),
            view: Mutex::new(None),
            stop: AtomicBool::new(false),
            posted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rebroadcast: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(HashMap::new()),
        });
        let mut n = Self {
            load: None,
            shared,
            slots,
            http,
            line: Some(line),
            disk: Some(disk),
            _dirs: dirs,
            lan,
            cfg,
            chain_id: ChainParams::with_block_time(BLOCK_TIME_MS).chain_id(),
            reward: ChainParams::with_block_time(BLOCK_TIME_MS).block_reward,
            max_future_ms: ChainParams::with_block_time(BLOCK_TIME_MS).max_future_ms,
            report: Report::default(),
            blocks: HashMap::new(),
            chains: vec![Vec::new(); NODES],
            reorged: vec![HashSet::new(); NODES],
            nonces: vec![HashMap::new(); NODES],
            final_txs: HashSet::new(),
            final_tip: None,
            disk_full: false,
            rounds: 0,
            deepest_reorg: 0,
            store_losses: Vec::new(),
        };
        for i in 0..NODES {
            n.spawn(i);
        }
        for i in 0..NODES {
            n.wait_started(i, None);
        }
        let st = n.http[0].json("/node/status").expect("n0's status");
        assert_eq!(
            st["chain_id"].as_str(),
            Some(n.chain_id.to_hex().as_str()),
            "the chain id the load signs for"
        );
        n
    }

    fn args(&self, i: usize) -> Vec<OsString> {
        let mut extra: Vec<String> = Vec::new();
        // Each subnet's first node is told to every node of the other subnet (mDNS does not
        // cross the router); the DHT does the rest.
        for b in [0, PER_SUBNET] {
            if b != i {
                extra.push("--peer".into());
                extra.push(format!("/ip4/{}/tcp/4001", subnet_ip(b)));
            }
        }
        if self.slots[i].miner {
            extra.push("--mine".into());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        lan_args_on(&self.slots[i].dir, &["--block-time", BLOCK_TIME], &extra)
    }

    fn spawn(&mut self, i: usize) {
        let args = self.args(i);
        let skew = self.slots[i].skew;
        let mut env = Vec::new();
        if skew != 0 {
            env.push(("LD_PRELOAD".to_string(), FAKETIME_LIB.to_string()));
            env.push(("FAKETIME".to_string(), format!("{skew:+}s")));
            // Only the wall clock: timers and intervals (Instant) stay true.
            env.push(("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()));
        }
        let s = &mut self.slots[i];
        let node = Node::spawn(&format!("n{i}"), &s.host, &args, &env);
        // In a process group of its own (the harness's doing): a paused node must not get the
        // SIGHUP the kernel sends to a stopped member of a group that becomes orphaned, as
        // this run's own group does when the shell that started it exits.
        let pid = node.child.id() as libc::pid_t;
        // SAFETY: getpgid(2) on the pid of a child this run has not reaped.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid, "n{i}'s process group");
        s.node = Some(node);
        s.judged = 0;
        s.paused = false;
    }

    /// Waits for the "node started" line of node `i`; checks its height against `before`
    /// (the height it had when killed) and returns the line.
    fn wait_started(&mut self, i: usize, before: Option<u64>) -> Option<String> {
        let deadline = Instant::now() + START_WAIT;
        let line = loop {
            let node = self.slots[i].node.as_mut().expect("spawned");
            if let Some(l) = node.logs(|l| l.contains("node started")).pop() {
                break Some(l);
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                self.report
                    .violation(format!("n{i} exited at start with {status}"));
                break None;
            }
            if Instant::now() > deadline {
                self.report
                    .violation(format!("n{i} did not start within {START_WAIT:?}"));
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The API answers once the node runs.
        let api = Instant::now() + START_WAIT;
        while self.http[i].json("/node/status").is_err() && Instant::now() < api {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.shared.up[i].store(true, Ordering::Relaxed);
        let line = line?;
        if let Some(before) = before {
            self.report.check("store reopens after kill -9");
            let h: u64 = log_field(&line, "height")
                .and_then(|h| h.parse().ok())
                .unwrap_or(0);
            let lost = before.saturating_sub(h);
            self.store_losses.push(lost);
            if lost > KILL_LOSS_BOUND {
                self.report.violation(format!(
                    "n{i} reopened its store at height {h} after kill -9 at height {before}: {lost} blocks lost (bound {KILL_LOSS_BOUND})"
                ));
            }
        }
        Some(line)
    }

    /// kill -9, judging the log of the process first.
    fn kill(&mut self, i: usize) -> u64 {
        self.shared.up[i].store(false, Ordering::Relaxed);
        let before = self.http[i]
            .json("/node/status")
            .ok()
            .and_then(|s| s["height"].as_u64())
            .unwrap_or_else(|| self.chains[i].len().saturating_sub(1) as u64);
        if let Some(mut node) = self.slots[i].node.take() {
            if self.slots[i].paused {
                self.signal(&node, libc::SIGCONT);
            }
            node.kill9();
            self.slots[i].node = Some(node);
            self.judge_log(i);
            self.slots[i].node = None;
        }
        self.slots[i].restarted = true;
        before
    }

    fn signal(&self, node: &Node, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this run spawned and has not reaped.
        unsafe {
            libc::kill(node.child.id() as i32, sig);
        }
    }

    /// Judges the ERROR and panic lines of node `i` not judged yet: those of the fault in
    /// force are its effect, any other is a violation.
    fn judge_log(&mut self, i: usize) {
        let disk = self.disk_full && i == DISK_NODE;
        // A clock beyond the max-future rule: the node's own blocks, stamped by its clock
        // or by the chain's median, fail the rule on that same clock.
        let skewed = self.slots[i].skew.unsigned_abs() * 1000 > self.max_future_ms;
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        let bad = node.logs(|l| l.contains(" ERROR ") || l.contains("panicked"));
        let new: Vec<String> = bad[self.slots[i].judged.min(bad.len())..].to_vec();
        self.slots[i].judged = bad.len();
        for l in new {
            self.report
                .check("log has no ERROR or panic but the fault's");
            if disk && l.contains("cannot write the block store") && !l.contains("panicked") {
                continue;
            }
            if skewed && l.contains("allowed drift ahead of the local clock") {
                continue;
            }
            self.report.violation(format!(
                "n{i} logged: {}",
                l.chars().take(400).collect::<String>()
            ));
        }
    }

    fn judge_logs(&mut self) {
        for i in 0..NODES {
            self.judge_log(i);
        }
    }

    // -----------------------------------------------------------------------------------------
    // The chain as each node sees it

    fn block(&mut self, i: usize, hash: &str) -> Result<Arc<Blk>, String> {
        if let Some(b) = self.blocks.get(hash) {
            return Ok(b.clone());
        }
        let v = self.http[i].json(&format!("/block/{hash}"))?;
        let mut txs = Vec::new();
        for t in v["txs"].as_array().ok_or("no txs")? {
            let coinbase = t["kind"] == "coinbase";
            txs.push(Tx {
                txid: field_str(t, "txid")?,
                from: if coinbase {
                    None
                } else {
                    Some(field_str(t, "from")?)
                },
                to: field_str(t, "to")?,
                amount: field_u64(t, "amount")?,
                fee: field_u64(t, "fee")?,
                nonce: if coinbase { 0 } else { field_u64(t, "nonce")? },
            });
        }
        let b = Arc::new(Blk {
            height: field_u64(&v, "height")?,
            prev: field_str(&v, "previousblockhash")?,
            txs,
        });
        self.blocks.insert(hash.to_string(), b.clone());
        Ok(b)
    }

    /// Brings node `i`'s chain up to its tip; its height and tip.
    fn sync_chain(&mut self, i: usize) -> Result<(u64, String), String> {
        let st = self.http[i].json("/node/status")?;
        let height = field_u64(&st, "height")?;
        let tip = field_str(&st, "tip")?;
        let mut new = Vec::new();
        let (mut cur, mut h) = (tip.clone(), height);
        let keep = loop {
            if self.chains[i].get(h as usize) == Some(&cur) {
                break h as usize + 1;
            }
            let b = self.block(i, &cur)?;
            if b.height != h {
                return Err(format!("block {cur} at height {} not {h}", b.height));
            }
            new.push(cur.clone());
            if h == 0 {
                break 0;
            }
            cur = b.prev.clone();
            h -= 1;
        };
        let keep = keep.min(self.chains[i].len());
        let removed: Vec<String> = self.chains[i].drain(keep..).collect();
        if !removed.is_empty() && keep > 0 {
            self.deepest_reorg = self.deepest_reorg.max(removed.len());
        }
        for r in &removed {
            if let Some(b) = self.blocks.get(r) {
                for t in &b.txs {
                    if let Some(f) = &t.from {
                        self.reorged[i].insert(f.clone());
                    }
                }
            }
        }
        new.reverse();
        self.chains[i].extend(new);
        Ok((height, tip))
    }

    /// Replays node `i`'s chain; a transfer that breaks the rules is a violation.
    fn replay(&mut self, i: usize) -> Ledger {
        let mut l = Ledger::default();
        let mut bad = Vec::new();
        for hash in &self.chains[i] {
            let b = &self.blocks[hash];
            // A coinbase pays the reward and the block's fees: fees move coins, only the
            // reward makes new ones.
            let reward = self.reward;
            let fees: u64 = b
                .txs
                .iter()
                .filter(|t| t.from.is_some())
                .map(|t| t.fee)
                .sum();
            for t in &b.txs {
                match &t.from {
                    None => {
                        *l.balance.entry(t.to.clone()).or_default() += t.amount;
                        l.minted += t.amount;
                        l.fees += fees;
                        if b.height > 0 && t.amount != reward + fees {
                            bad.push(format!(
                                "coinbase of #{} pays {}, reward {reward} + fees {fees}",
                                b.height, t.amount
                            ));
                        }
                    }
                    Some(f) => {
                        let n = l.nonce.entry(f.clone()).or_default();
                        if t.nonce != *n {
                            bad.push(format!("tx {} nonce {} expected {n}", t.txid, t.nonce));
                        }
                        *n = t.nonce + 1;
                        let bal = l.balance.entry(f.clone()).or_default();
                        match bal.checked_sub(t.amount + t.fee) {
                            Some(v) => *bal = v,
                            None => bad.push(format!("tx {} overspends", t.txid)),
                        }
                        *l.balance.entry(t.to.clone()).or_default() += t.amount;
                    }
                }
            }
        }
        self.report
            .check("best chain obeys nonce order and balances");
        for b in bad.into_iter().take(5) {
            self.report.violation(format!("n{i}'s best chain: {b}"));
        }
        l
    }

    fn chain_txids(&self, i: usize) -> HashSet<&str> {
        self.chains[i]
            .iter()
            .flat_map(|h| self.blocks[h].txs.iter().map(|t| t.txid.as_str()))
            .collect()
    }

    /// A node that exited unbidden (a crash) is a violation; it is started again so that the
    /// run goes on.
    fn reap_unexpected(&mut self) {
        for i in 0..NODES {
            let exited = self.slots[i]
                .node
                .as_mut()
                .and_then(|n| n.child.try_wait().ok().flatten());
            let Some(status) = exited else {
                continue;
            };
            self.report.check("no node exits unbidden");
            let tail = self.slots[i]
                .node
                .as_mut()
                .map(|n| {
                    n.logs(|_| true)
                        .into_iter()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            self.report.violation(format!(
                "n{i} exited unbidden ({status}); last log lines {tail:?}"
            ));
            self.judge_log(i);
            self.slots[i].node = None;
            self.slots[i].restarted = true;
            self.shared.up[i].store(false, Ordering::Relaxed);
            self.spawn(i);
            self.wait_started(i, None);
        }
    }

    /// One round of checks over the nodes that run.
    fn round(&mut self) {
        self.rounds += 1;
        self.reap_unexpected();
        let mut answered = Vec::new();
        for i in 0..NODES {
            if !self.shared.up[i].load(Ordering::Relaxed) {
                continue;
            }
            match self.sync_chain(i) {
                Ok((h, _)) => answered.push((i, h)),
                Err(_) => self.report.skip("node answers"),
            }
        }
        // Transfers DEEP deep on every node become final.
        if answered.len() == NODES {
            let mut h = answered.iter().map(|&(_, h)| h).min().unwrap_or(0);
            h = h.saturating_sub(DEEP - 1);
            while h > 0
                && !answered
                    .iter()
                    .all(|&(i, _)| self.chains[i].get(h as usize) == self.chains[0].get(h as usize))
            {
                h -= 1;
            }
            let hash = self.chains[0][h as usize].clone();
            let from = match &self.final_tip {
                Some((fh, fhash)) if self.chains[0].get(*fh as usize) == Some(fhash) => *fh + 1,
                _ => 0,
            };
            if self.final_tip.as_ref().is_none_or(|(fh, _)| h >= *fh) {
                for hh in from..=h {
                    let b = self.blocks[&self.chains[0][hh as usize]].clone();
                    self.final_txs.extend(b.txs.iter().map(|t| t.txid.clone()));
                }
                self.final_tip = Some((h, hash));
            }
        }
        for &(i, h) in &answered {
            self.check_final(i, h);
        }
        // The load's view: the most advanced chain.
        if let Some(&(best, _)) = answered.iter().max_by_key(|&&(_, h)| h) {
            let l = self.replay(best);
            *self.shared.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
        }
        if self.rounds.is_multiple_of(LEDGER_EVERY) {
            for &(i, _) in &answered {
                self.ledger_check(i);
            }
        }
        self.judge_logs();
    }

    /// Every final transfer is on node `i`'s best chain (once it is as high as the final tip).
    fn check_final(&mut self, i: usize, height: u64) {
        let Some((fh, fhash)) = self.final_tip.clone() else {
            return;
        };
        if height < fh {
            self.report.skip("final transfers stay on the best chain");
            return;
        }
        self.report.check("final transfers stay on the best chain");
        if self.chains[i].get(fh as usize) == Some(&fhash) {
            return;
        }
        let have = self.chain_txids(i);
        let missing: Vec<String> = self
            .final_txs
            .iter()
            .filter(|t| !have.contains(t.as_str()))
            .take(3)
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.report.violation(format!(
                "n{i}'s best chain (height {height}) lacks transfers that were {DEEP} deep on every node: {missing:?}"
            ));
        }
    }

    /// Node `i`'s balances and nonces: every nonce at least what it was (unless a reorg took
    /// that sender's transfers out, or the node restarted), and when the tip held still while
    /// they were read, each account as the chain says and the sum equal to the coins minted.
    fn ledger_check(&mut self, i: usize) -> bool {
        let Ok((_, tip1)) = self.sync_chain(i) else {
            self.report.skip("coins conserved");
            return false;
        };
        let ledger = self.replay(i);
        let mut accounts: Vec<String> = ledger.balance.keys().cloned().collect();
        accounts.sort();
        let paths: Vec<String> = accounts.iter().map(|a| format!("/address/{a}")).collect();
        let answers = self.http[i].get_many(&paths);
        let Ok((_, tip2)) = self.sync_chain(i) else {
            self.report.skip("coins conserved");
            return false;
        };
        let mut got = Vec::new();
        for (a, ans) in accounts.iter().zip(answers) {
            let v: Option<Value> = ans
                .ok()
                .filter(|(c, _)| *c == 200)
                .and_then(|(_, b)| serde_json::from_str(&b).ok());
            let Some(v) = v else {
                self.report.skip("nonce never goes back");
                continue;
            };
            let (Some(bal), Some(nonce)) = (v["balance"].as_u64(), v["nonce"].as_u64()) else {
                continue;
            };
            got.push((a.clone(), bal, nonce));
        }
        let restarted = std::mem::take(&mut self.slots[i].restarted);
        let reorged = std::mem::take(&mut self.reorged[i]);
        for (a, _, nonce) in &got {
            self.report.check("nonce never goes back");
            let prev = self.nonces[i].insert(a.clone(), *nonce).unwrap_or(0);
            if *nonce < prev && !restarted && !reorged.contains(a) {
                self.report.violation(format!(
                    "n{i}: nonce of {a} went back from {prev} to {nonce} with no reorganisation"
                ));
            }
        }
        if tip1 != tip2 || got.len() != accounts.len() {
            self.report.skip("coins conserved");
            return false;
        }
        self.report.check("coins conserved");
        let sum: u64 = got.iter().map(|(_, b, _)| b).sum();
        if sum != ledger.minted - ledger.fees {
            self.report.violation(format!(
                "n{i} at {}: balances sum to {sum}, coinbases to {} of which {} fees",
                &tip1[..12],
                ledger.minted,
                ledger.fees
            ));
        }
        for (a, bal, nonce) in &got {
            let want_b = ledger.balance.get(a).copied().unwrap_or(0);
            let want_n = ledger.nonce.get(a).copied().unwrap_or(0);
            if (*bal, *nonce) != (want_b, want_n) {
                self.report.violation(format!(
                    "n{i} at {}: {a} has balance {bal} nonce {nonce}, its chain says {want_b} {want_n}",
                    &tip1[..12]
                ));
            }
        }
        true
    }

    /// Runs check rounds for `d`.
    fn hold(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            let t = Instant::now();
            if t >= end {
                return;
            }
            self.round();
            let next = (t + ROUND_EVERY).min(end);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }

    /// Every node's tip, asked of all at once (None where none came).
    fn tips(&self) -> Vec<Option<String>> {
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, h) in self.http.iter().enumerate() {
            h.start("/node/status", None, i as u64, &tx);
        }
        drop(tx);
        let mut out = vec![None; NODES];
        while let Ok((i, a)) = rx.recv_timeout(http::REQUEST + Duration::from_secs(2)) {
            out[i as usize] = a
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
                .and_then(|v| v["tip"].as_str().map(str::to_string));
        }
        out
    }

    /// Waits until every node is on one tip; records the time (a violation past the bound).
    fn converge(&mut self, after: &str) {
        let t0 = Instant::now();
        let mut last = Vec::new();
        loop {
            self.reap_unexpected();
            let tips = self.tips();
            if tips.iter().all(Option::is_some) && tips.iter().all(|t| *t == tips[0]) {
                let s = t0.elapsed().as_secs_f64();
                self.report.check("one tip within the bound after a heal");
                self.report.convergence.push(s);
                eprintln!("nemesis: one tip {:.2} s after {after}", s);
                return;
            }
            if t0.elapsed() > CONVERGE_BOUND {
                self.report.check("one tip within the bound after a heal");
                let shown: Vec<String> = tips
                    .iter()
                    .map(|t| t.as_deref().map_or("-".into(), |t| t[..12].to_string()))
                    .collect();
                self.report.violation(format!(
                    "no single tip {} s after {after}: {shown:?} (earlier {last:?})",
                    CONVERGE_BOUND.as_secs()
                ));
                return;
            }
            last = tips.iter().map(|t| t.is_some()).collect();
            std::thread::sleep(Duration::from_millis(200));
            if t0.elapsed().as_millis() % 3000 < 200 {
                self.judge_logs();
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The run

    /// Funds the wallets, runs the schedule for the configured time, then the final checks.
    pub fn run(mut self) -> Report {
        let t_setup = Instant::now();
        // Until the miners have coins to give, the load cannot start.
        let mut funded = false;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !funded && Instant::now() < deadline {
            self.hold(ROUND_EVERY);
            if let Some(v) = self
                .shared
                .view
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                funded = v.minted >= 200;
            }
        }
        assert!(funded, "the miners mined nothing in 120 s");
        self.start_load();
        self.report.note(format!(
            "set-up: {NODES} nodes (miners n0 n1 n4, disk n{DISK_NODE} on a {DISK_SIZE} tmpfs) on 10.79.1.0/24 and 10.79.2.0/24 through a {} ms ± {} ms delay line, chain --block-time {BLOCK_TIME}; first coins after {:.1} s",
            LINK.delay.as_millis(),
            LINK.jitter.as_millis(),
            t_setup.elapsed().as_secs_f64()
        ));
        let faults = schedule(self.cfg.seed, 10_000, self.cfg.short);
        let t0 = Instant::now();
        let budget = Duration::from_secs(self.cfg.secs);
        for f in faults {
            // Room for the fault, its heal and convergence.
            let need = f.gap + f.hold + Duration::from_secs(15);
            if t0.elapsed() + need > budget {
                break;
            }
            self.hold(f.gap);
            let line = format!("{:>6.1} s {f}", t0.elapsed().as_secs_f64());
            eprintln!("nemesis: {line}");
            self.report.schedule.push(line);
            *self
                .report
                .faults
                .entry(format!("{:?}", f.kind))
                .or_default() += 1;
            self.inject(&f);
        }
        self.finish()
    }

    fn inject(&mut self, f: &Fault) {
        let i = f.target;
        match f.kind {
            Kind::Kill => {
                let before = self.kill(i);
                self.hold(f.hold);
                self.spawn(i);
                self.wait_started(i, Some(before));
                self.converge(&format!("restarting n{i}"));
            }
            Kind::Partition | Kind::MinerSplit => {
                let cut: Vec<usize> = if f.kind == Kind::MinerSplit {
                    (0..PER_SUBNET).collect()
                } else {
                    f.cut.clone()
                };
                let a: Vec<&Host> = cut.iter().map(|&j| &self.slots[j].host).collect();
                let b: Vec<&Host> = (0..NODES)
                    .filter(|j| !cut.contains(j))
                    .map(|j| &self.slots[j].host)
                    .collect();
                let (a, b): (Vec<Host>, Vec<Host>) = (
                    a.into_iter().cloned().collect(),
                    b.into_iter().cloned().collect(),
                );
                let (ra, rb): (Vec<&Host>, Vec<&Host>) = (a.iter().collect(), b.iter().collect());
                self.lan.partition(&ra, &rb);
                self.hold(f.hold);
                let drops = self.lan.partition_drops();
                // The tips as the split ends (before the rules go).
                let sides: HashSet<Option<String>> = self.tips().into_iter().collect();
                self.lan.heal();
                if f.kind == Kind::MinerSplit {
                    self.report.note(format!(
                        "miner split: {drops} packets dropped, {} distinct tips before the heal",
                        sides.len()
                    ));
                }
                self.converge(&format!("healing {:?}", f.kind));
            }
            Kind::Skew | Kind::SkewBeyond => {
                let before = self.kill(i);
                self.slots[i].skew = f.skew;
                self.spawn(i);
                let line = self.wait_started(i, Some(before));
                let offset = line.as_deref().and_then(log_time).map(|t| t - now_of_day());
                let h0 = self.chains[i].len();
                self.hold(f.hold);
                let tips = self.tips();
                let place = match &tips[i] {
                    None => "not answering",
                    Some(t) if tips.iter().filter(|o| o.as_ref() == Some(t)).count() == 1 => {
                        "on a tip of its own"
                    }
                    Some(_) => "on a shared tip",
                };
                self.report.note(format!(
                    "skew {:+} s on n{i}{}: its log clock read {:+.1} s off; after {} s it was {} (height {} -> {})",
                    f.skew,
                    if self.slots[i].miner { " (a miner)" } else { "" },
                    offset.unwrap_or(f64::NAN),
                    f.hold.as_secs(),
                    place,
                    h0.saturating_sub(1),
                    self.chains[i].len().saturating_sub(1)
                ));
                let before = self.kill(i);
                self.slots[i].skew = 0;
                self.spawn(i);
                self.wait_started(i, Some(before));
                self.converge(&format!("setting n{i}'s clock right"));
            }
            Kind::Link => {
                if let Some(l) = &self.line {
                    l.set(LINK_BAD);
                }
                let (f0, d0) = self.line.as_ref().map_or((0, 0), DelayLine::counts);
                self.hold(f.hold);
                let (f1, d1) = self.line.as_ref().map_or((0, 0), DelayLine::counts);
                if let Some(l) = &self.line {
                    l.set(LINK);
                }
                let overflows = self.line.as_ref().and_then(DelayLine::overflows);
                self.report.note(format!(
                    "bad link for {} s: {} packets crossed late, {} dropped (queue overflows so far: {overflows:?})",
                    f.hold.as_secs(),
                    f1 - f0,
                    d1 - d0
                ));
                self.converge("restoring the link");
            }
            Kind::DiskFull => self.disk_fault(f.hold),
            Kind::Pause => {
                if let Some(node) = &self.slots[i].node {
                    self.signal(node, libc::SIGSTOP);
                }
                self.slots[i].paused = true;
                self.shared.up[i].store(false, Ordering::Relaxed);
                self.hold(f.hold);
                if let Some(node) = &self.slots[i].node {
                    self.signal(node, libc::SIGCONT);
                }
                self.slots[i].paused = false;
                self.shared.up[i].store(true, Ordering::Relaxed);
                self.converge(&format!("continuing n{i}"));
            }
        }
    }

    /// Fills the disk node's file system; it must say so and carry on, and once space returns
    /// write what it accepted meanwhile: after a kill -9 its store has it all.
    fn disk_fault(&mut self, hold: Duration) {
        let i = DISK_NODE;
        self.judge_log(i);
        let filled = self.disk.as_ref().map_or(0, Tmpfs::fill);
        self.disk_full = true;
        let t0 = Instant::now();
        let seen = |n: &mut Self| {
            n.slots[i].node.as_mut().map_or(0, |n| {
                n.logs(|l| l.contains("cannot write the block store")).len()
            })
        };
        let errors0 = seen(self);
        // Held at least `hold`, and until the node has said it cannot write (bounded).
        self.hold(hold);
        while seen(self) == errors0 && t0.elapsed() < hold + Duration::from_secs(60) {
            self.hold(ROUND_EVERY);
        }
        let reported = seen(self) > errors0;
        self.report.check("a full disk is reported");
        let first = self.slots[i].node.as_mut().and_then(|n| {
            n.logs(|l| l.contains("cannot write the block store"))
                .get(errors0)
                .cloned()
        });
        if !reported {
            self.report.violation(format!(
                "n{i}'s disk was full for {:.0} s and it said nothing",
                t0.elapsed().as_secs_f64()
            ));
        }
        let h_full = self.http[i]
            .json("/node/status")
            .ok()
            .and_then(|s| s["height"].as_u64())
            .unwrap_or(0);
        if let Some(d) = &self.disk {
            d.free();
        }
        let t_free = Instant::now();
        // Resumed: no more failed writes for a few retries' time while blocks keep coming.
        let resumed = loop {
            let n = seen(self);
            self.hold(Duration::from_secs(4));
            if seen(self) == n {
                break true;
            }
            if t_free.elapsed() > Duration::from_secs(60) {
                break false;
            }
        };
        self.judge_log(i);
        self.disk_full = false;
        self.report.check("the node resumes when space returns");
        if !resumed {
            self.report
                .violation(format!("n{i} still cannot write 60 s after space returned"));
        }
        let h_ack = self.http[i]
            .json("/node/status")
            .ok()
            .and_then(|s| s["height"].as_u64())
            .unwrap_or(0);
        // What it acknowledged while full must be in its store now.
        let before = self.kill(i);
        self.spawn(i);
        let line = self.wait_started(i, Some(before));
        let h: u64 = line
            .as_deref()
            .and_then(|l| log_field(l, "height"))
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        self.report
            .check("nothing acknowledged lost to a full disk");
        if h < h_full {
            self.report.violation(format!(
                "n{i} had height {h_full} when space returned, {h} after a restart"
            ));
        }
        self.report.note(format!(
            "disk full on n{i} ({} MB filler) for {:.0} s: reported: {}; resumed: {resumed}; height {h_full} when space returned, {h_ack} later, {h} after kill -9",
            filled >> 20,
            t_free.duration_since(t0).as_secs_f64(),
            first.as_deref().map_or("no".to_string(), |l| {
                let msg = l.split(" ERROR ").nth(1).unwrap_or(l);
                // Its start (what failed) and its end (why).
                let chars: Vec<char> = msg.chars().collect();
                let head: String = chars.iter().take(60).collect();
                let tail: String = chars[chars.len().saturating_sub(60)..].iter().collect();
                format!("yes, \"{head} … {tail}\"")
            }),
        ));
        self.converge(&format!("n{i}'s disk recovering"));
    }

    fn finish(mut self) -> Report {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.load.take() {
            let _ = t.join();
        }
        // What was accepted last gets mined (bounded): the fate of every accepted transfer
        // is then known.
        // (Transfers above a nonce gap stay: 20 s is ten blocks.)
        let drained = Instant::now() + Duration::from_secs(20);
        while Instant::now() < drained {
            let waiting: u64 = (0..NODES)
                .filter_map(|i| self.http[i].json("/node/status").ok())
                .filter_map(|s| s["mempool"].as_u64())
                .sum();
            if waiting == 0 {
                break;
            }
            self.hold(ROUND_EVERY);
        }
        self.converge("the last fault");
        // Final checks, until the ledger of every node is read at a steady tip (bounded).
        for i in 0..NODES {
            let mut ok = false;
            for _ in 0..20 {
                if self.ledger_check(i) {
                    ok = true;
                    break;
                }
            }
            if !ok {
                self.report.violation(format!(
                    "n{i}'s ledger never read at a steady tip at the end"
                ));
            }
        }
        self.round();
        // Everything acknowledged and final is still there, on all.
        let final_count = self.final_txs.len();
        let mut losses = self.store_losses.clone();
        losses.sort_unstable();
        self.report.note(format!(
            "{final_count} transfers became {DEEP} deep on every node; deepest reorganisation seen {} blocks; blocks lost per kill -9 {:?}; best chain at the end {} blocks",
            self.deepest_reorg,
            losses,
            self.chains[0].len().saturating_sub(1)
        ));
        let refused = self
            .shared
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let posted = self.shared.posted.load(Ordering::Relaxed);
        // What became of each transfer a node accepted: in the final chain; replaced (another
        // transfer of its sender took its nonce: the load started the sender again); behind a
        // gap (a transfer of its sender at a lower nonce was refused by the node it went to,
        // and the load went on from there); or never confirmed though it was next in line.
        let ledger = self.replay(0);
        let (in_chain, confirmed, replaced, gapped, lost) = {
            let have = self.chain_txids(0);
            let mut taken: HashSet<(String, u64)> = HashSet::new();
            for h in &self.chains[0] {
                for t in &self.blocks[h].txs {
                    if let Some(f) = &t.from {
                        taken.insert((f.clone(), t.nonce));
                    }
                }
            }
            let acked = self.shared.acked.lock().unwrap_or_else(|e| e.into_inner());
            let mut counts = (have.len(), 0u64, 0u64, 0u64, 0u64);
            for (txid, key) in acked.iter() {
                if have.contains(txid.as_str()) {
                    counts.1 += 1;
                } else if taken.contains(key) {
                    counts.2 += 1;
                } else if key.1 > ledger.nonce.get(&key.0).copied().unwrap_or(0) {
                    counts.3 += 1;
                } else {
                    counts.4 += 1;
                }
            }
            counts
        };
        self.report.load = format!(
            "{posted} transfers posted ({:.1}/s over the run), {} accepted, refused {refused:?}, {} rebroadcast requests (rebroadcast {}), {} senders started again; {in_chain} transactions in n0's best chain; of the accepted: {confirmed} in it, {replaced} replaced at their nonce, {gapped} behind a refused predecessor, {lost} never confirmed though next in line",
            posted as f64 / self.cfg.secs.max(1) as f64,
            self.shared.accepted.load(Ordering::Relaxed),
            self.shared.rebroadcast.load(Ordering::Relaxed),
            if self.cfg.rebroadcast { "on" } else { "off" },
            self.shared.resets.load(Ordering::Relaxed),
        );
        // A clean stop: each node quits and exits 0.
        for i in 0..NODES {
            self.judge_log(i);
            if let Some(node) = self.slots[i].node.as_mut() {
                let bin: &mut crate::binary::Node = node;
                bin.quit();
            }
        }
        std::mem::take(&mut self.report)
    }

    // -----------------------------------------------------------------------------------------
    // The load

    fn start_load(&mut self) {
        let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ 0x10ad);
        let mut senders: Vec<(Wallet, bool)> = Vec::new();
        for &m in &MINERS {
            let w = Wallet::load(&self.slots[m].dir.join("wallet.key")).expect("a miner's wallet");
            senders.push((w, true));
        }
        for _ in 0..self.cfg.wallets {
            let secret: [u8; 32] = rng.random();
            senders.push((Wallet::from_secret(secret), false));
        }
        let shared = self.shared.clone();
        let http = self.http.clone();
        let chain_id = self.chain_id;
        let rate = self.cfg.rate;
        let rebroadcast = self.cfg.rebroadcast;
        self.load = Some(
            std::thread::Builder::new()
                .name("nemesis-load".into())
                .spawn(move || load(senders, chain_id, rate, rebroadcast, rng, &shared, &http))
                .expect("the load thread"),
        );
    }
}

/// Posts transfers at `rate` a second from `senders` to random wallets, each to a random node
/// that runs, with each sender's next nonce; rebroadcasts what waits too long, and starts a
/// sender again from its confirmed nonce when its transfers were lost.
fn load(
    senders: Vec<(Wallet, bool)>,
    chain_id: ChainId,
    rate: f64,
    rebroadcast: bool,
    mut rng: StdRng,
    shared: &Shared,
    http: &[Http],
) {
    let n = senders.len();
    let addrs: Vec<String> = senders
        .iter()
        .map(|(w, _)| ChainKind::of(&chain_id).encode(&w.address()))
        .collect();
    let mut next = vec![0u64; n];
    let mut confirmed = vec![0u64; n];
    let mut balance = vec![0u64; n];
    let mut progress = vec![Instant::now(); n];
    let mut rebroadcast_at = vec![Instant::now(); n];
    // Signed and posted, not yet confirmed: nonce -> (hex, cost).
    let mut waiting: Vec<BTreeMap<u64, (String, u64)>> = vec![BTreeMap::new(); n];
    let (tx, rx) = std::sync::mpsc::channel::<(u64, http::Answer)>();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut due = Instant::now();
    let mut viewed = Instant::now() - Duration::from_secs(10);
    let mut rr = 0usize;
    let up = |rng: &mut StdRng| -> Option<usize> {
        let live: Vec<usize> = (0..http.len())
            .filter(|&i| shared.up[i].load(Ordering::Relaxed))
            .collect();
        (!live.is_empty()).then(|| live[rng.random_range(0..live.len())])
    };
    while !shared.stop.load(Ordering::Relaxed) {
        while let Ok((tag, answer)) = rx.try_recv() {
            // A rebroadcast's answer says nothing new.
            if tag & REBROADCAST != 0 {
                continue;
            }
            let (s, nonce) = ((tag >> 40) as usize, tag & ((1 << 40) - 1));
            match answer {
                Ok((200, txid)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    shared
                        .acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(txid.trim().to_string(), (addrs[s].clone(), nonce));
                }
                Ok((_, body)) => {
                    let code = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| {
                            v["error"]["code"]
                                .as_str()
                                .or(v["code"].as_str())
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| "other".into());
                    // Refused for good (the node's view of the sender differs from the
                    // load's): the sender goes on from this nonce, once the view has moved.
                    if code != "already_known" && waiting[s].contains_key(&nonce) {
                        waiting[s].split_off(&nonce);
                        next[s] = nonce;
                    }
                    *shared
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(code)
                        .or_default() += 1;
                }
                Err(_) => {
                    *shared
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry("no answer".into())
                        .or_default() += 1;
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(viewed) >= Duration::from_secs(1) {
            viewed = now;
            let view = shared
                .view
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(v) = view {
                for s in 0..n {
                    let c = v.nonce.get(&addrs[s]).copied().unwrap_or(0);
                    balance[s] = v.balance.get(&addrs[s]).copied().unwrap_or(0);
                    if c != confirmed[s] {
                        confirmed[s] = c;
                        progress[s] = now;
                    }
                    waiting[s] = waiting[s].split_off(&c);
                    next[s] = next[s].max(c);
                    if next[s] > c && now.duration_since(progress[s]) > Duration::from_secs(60) {
                        // Lost (a reorganisation made them invalid, or every node that had
                        // them restarted): start again from the confirmed nonce.
                        next[s] = c;
                        waiting[s].clear();
                        progress[s] = now;
                        shared.resets.fetch_add(1, Ordering::Relaxed);
                    } else if rebroadcast
                        && next[s] > c
                        && now.duration_since(progress[s]) > Duration::from_secs(15)
                        && now.duration_since(rebroadcast_at[s]) > Duration::from_secs(15)
                    {
                        rebroadcast_at[s] = now;
                        for (hex, _) in waiting[s].values() {
                            for (i, h) in http.iter().enumerate() {
                                if shared.up[i].load(Ordering::Relaxed) {
                                    h.start("/tx", Some(hex.clone()), REBROADCAST, &tx);
                                    shared.rebroadcast.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
            }
        }
        if now >= due {
            due += interval;
            if now.duration_since(due) > Duration::from_secs(1) {
                due = now;
            }
            // The next sender, in turn, with room and coins.
            for k in 0..n {
                let s = (rr + k) % n;
                let (wallet, miner) = &senders[s];
                let amount = if *miner { 50 } else { 1 };
                let fee = 1;
                let spent: u64 = waiting[s].values().map(|(_, c)| c).sum();
                if next[s] - confirmed[s] >= MAX_PENDING || balance[s] < spent + amount + fee {
                    continue;
                }
                rr = s + 1;
                let to = loop {
                    let t = rng.random_range(MINERS.len()..n);
                    if t != s {
                        break t;
                    }
                };
                let t = wallet.sign(&chain_id, senders[to].0.address(), amount, fee, next[s]);
                let hex = hex::encode(Transaction::Transfer(t).encode());
                waiting[s].insert(next[s], (hex.clone(), amount + fee));
                next[s] += 1;
                if let Some(i) = up(&mut rng) {
                    http[i].start("/tx", Some(hex), ((s as u64) << 40) | (next[s] - 1), &tx);
                    shared.posted.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        }
        std::thread::sleep(
            due.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(5)),
        );
    }
}
