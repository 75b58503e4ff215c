//! A seeded, deterministic simulator of a gossipchain network that runs, per node, the node's
//! own core: a real [`ChainState`], the real block-acquisition component [`Sync`], the real
//! [`Mempool`], and the node's relay decision for gossiped blocks
//! ([`gossipchain::node::gossip_verdict`]: validate, then forward; an orphan asks its sender).
//! The component's actions are carried out as `node/fetch.rs` carries them out: answers are
//! served with `sync::serve`, headers decoded from their 96-byte encodings, bodies with
//! [`decode_bodies`], batches applied with `sync::apply` (`verify`, `apply_in_order`,
//! `result`). Only the swarm and the clock are replaced: no tokio, no sockets.
//!
//! The network: per-link one-way latency (uniform, or a region map), per-node upload
//! bandwidth (a message leaves after those queued before it), loss of gossip messages
//! (requests ride reliable streams), partitions and heals (links across a partition close;
//! they reopen on heal), crashes and restarts (a restarted node keeps its chain, as the store
//! is crash-safe, and loses its sync state and mempool). Time is simulated (an [`Instant`] base
//! plus an offset; the wall clock follows it). Miners find blocks after exponential delays and
//! build on their tip with `testkit::block_on`, including mempool transfers signed with
//! `testkit::key` wallets. CPU is charged: a block's validation takes
//! [`VALIDATE_BLOCK_US`] + [`VALIDATE_TRANSFER_US`] per transfer of simulated time on its node,
//! one validation at a time, before a gossiped block is accepted or a batch reported applied.
//!
//! Faulty peers: silent (never answers), slow (answers late), staller (claims the chain, never
//! answers bodies), liar (claims work it cannot serve, and serves headers that do not link),
//! forger (serves bodies that are not the blocks asked, or do not match their header), flooder
//! (claims huge work and serves a long run of valid, linked headers of a weak fork; comes back
//! under a fresh identity when banned).
//!
//! Invariants are checked as the run goes ([`Sim::violations`]) and at its end
//! ([`Sim::finish`]); see [`Invariant`].

#![allow(dead_code)]

use gossipchain::chain::{
    Address, Block, BlockHash, ChainId, ChainState, Header, Mempool, MempoolLimits, Outcome,
    Processed, TipChange, Transaction, Transfer, Txid, ValidationError,
};
use gossipchain::net::protocol::{self, Bytes, Request, Response, Status};
use gossipchain::node::{GossipVerdict, decode_bodies, gossip_verdict};
use gossipchain::sync::apply::{self, Verified};
use gossipchain::sync::{
    Action, BatchId, Body, Event, Failure, Now, Req, RequestKind, Sync, SyncConfig, Tag, serve,
};
use gossipchain::testkit;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A node of the simulation.
pub type Id = u32;

/// Simulated validation time of a block, besides its transfers (µs). Fitted to
/// `cargo bench --bench validation` (docs/benchmarks.md, 2-core machine): a block of one
/// transfer validates at 14 415 blocks/s (69 µs), one of 100 at 387 blocks/s (2.58 ms).
pub const VALIDATE_BLOCK_US: u64 = 50;
/// Simulated validation time of each transfer of a block (µs); see [`VALIDATE_BLOCK_US`].
pub const VALIDATE_TRANSFER_US: u64 = 25;
/// The extra delay of a slow peer's answers.
pub const SLOW_ANSWER: Duration = Duration::from_millis(1500);
/// Block reward of the test chain (`ChainParams::default`).
const REWARD: u64 = 50;
/// Depth at which a transfer counts as confirmed.
pub const CONFIRMED_DEPTH: u64 = 6;

/// How a faulty peer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Connects and never answers or sends anything.
    Silent,
    /// Runs the node's core, answers every request [`SLOW_ANSWER`] late.
    Slow,
    /// Runs the node's core and claims its chain, never answers a bodies request.
    Staller,
    /// Runs the node's core, claims far more work than it has, and serves headers with one
    /// replaced by a valid header of another branch (they do not link).
    Liar,
    /// Runs the node's core and serves bodies that are not the blocks asked (another block
    /// of its chain) or do not match their header (a changed coinbase).
    Forger,
    /// No core: claims huge work and serves a weak fork's valid, linked headers; never a
    /// body. Comes back under a fresh identity when every peer banned it.
    Flooder,
}

impl Fault {
    /// Every kind.
    pub const ALL: [Fault; 6] = [
        Fault::Silent,
        Fault::Slow,
        Fault::Staller,
        Fault::Liar,
        Fault::Forger,
        Fault::Flooder,
    ];

    /// Whether honest nodes must ban it (it breaks a rule they can see).
    pub fn bannable(self) -> bool {
        matches!(self, Fault::Liar | Fault::Forger | Fault::Flooder)
    }
}

/// A scheduled event of the scenario.
#[derive(Clone, Debug)]
pub enum Incident {
    /// Splits the nodes: links between nodes of different sides close.
    Partition(Vec<u8>),
    /// Ends any partition.
    Heal,
    /// The node stops (links close, pending work is lost).
    Crash(Id),
    /// The node starts again with its chain, a new sync component and an empty mempool.
    Restart(Id),
    /// Mining and new transfers stop (for the end of a run).
    StopMining,
    /// One more block by this miner (to settle ties at the end).
    MineOnce(Id),
}

/// One-way latencies.
#[derive(Clone, Debug)]
pub enum Latency {
    /// Each link's latency drawn once, uniformly, in this range (ms).
    Uniform(u64, u64),
    /// Nodes placed in regions by weight; a link's latency is the matrix entry (ms).
    Regions {
        /// Relative number of nodes per region.
        weights: Vec<u32>,
        /// `ms[from][to]`.
        ms: Vec<Vec<u64>>,
    },
}

/// The scenario.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seeds every random choice.
    pub seed: u64,
    /// Nodes without faults.
    pub honest: usize,
    /// How many of them mine.
    pub miners: usize,
    /// Mean time between blocks of the whole network.
    pub block_interval: Duration,
    /// Mean time between new transfers (none if `None`).
    pub tx_interval: Option<Duration>,
    /// Faulty peers, each linked to `fault_links` honest nodes (all if 0).
    pub faults: Vec<Fault>,
    /// Links of each faulty peer.
    pub fault_links: usize,
    /// Extra random links each honest node opens (besides a ring).
    pub chords: usize,
    /// One-way latencies.
    pub latency: Latency,
    /// Upload bandwidths (bytes per ms) and their weights.
    pub bandwidth: Vec<(u64, u32)>,
    /// Probability that a gossip message is lost.
    pub loss: f64,
    /// Blocks every node starts with.
    pub prefix: usize,
    /// Incidents, at their times.
    pub plan: Vec<(Duration, Incident)>,
    /// Bound on reaching the most work after a heal or restart.
    pub heal_bound: Duration,
    /// Check invariants as the run goes (off for the large benchmark).
    pub check: bool,
    /// Wallets that send transfers.
    pub wallets: usize,
}

impl Config {
    /// A small network with no faults and no incidents.
    pub fn small(seed: u64) -> Self {
        Config {
            seed,
            honest: 6,
            miners: 2,
            block_interval: Duration::from_secs(5),
            tx_interval: Some(Duration::from_millis(700)),
            faults: Vec::new(),
            fault_links: 0,
            chords: 1,
            latency: Latency::Uniform(5, 150),
            bandwidth: vec![(12_500, 1)],
            loss: 0.02,
            prefix: 40,
            plan: Vec::new(),
            heal_bound: Duration::from_secs(30),
            check: true,
            wallets: 6,
        }
    }

    /// A seeded random scenario with faults: 5 to 8 honest nodes, faulty peers of random
    /// kinds, a partition and its heal, a crash and restart, then a quiet end.
    pub fn with_faults(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
        let mut c = Config::small(seed);
        c.honest = rng.random_range(5..=8);
        c.miners = rng.random_range(2..=3);
        c.loss = rng.random_range(0.0..0.05);
        c.faults = Fault::ALL
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.6))
            .collect();
        let n = c.honest as Id + c.faults.len() as Id;
        let mut t = rng.random_range(10..25);
        let mut plan = Vec::new();
        // A partition of the honest nodes (faulty ones land on random sides), then its heal.
        let sides: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
        plan.push((Duration::from_secs(t), Incident::Partition(sides)));
        t += rng.random_range(10..40);
        plan.push((Duration::from_secs(t), Incident::Heal));
        // A crash and a restart (ids are shuffled: any node may be hit).
        let crashed = rng.random_range(0..n);
        let down = rng.random_range(5..30);
        let at = rng.random_range(5..t + 10);
        plan.push((Duration::from_secs(at), Incident::Crash(crashed)));
        plan.push((Duration::from_secs(at + down), Incident::Restart(crashed)));
        let end = t.max(at + down) + rng.random_range(5..20);
        plan.push((Duration::from_secs(end), Incident::StopMining));
        plan.push((Duration::from_secs(end + 3), Incident::MineOnce(0)));
        plan.sort_by_key(|(t, _)| *t);
        c.plan = plan;
        c
    }

    /// When the last incident happens.
    pub fn last_incident(&self) -> Duration {
        self.plan.iter().map(|(t, _)| *t).max().unwrap_or_default()
    }
}

/// What an invariant check found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// A node's best chain does not revalidate from genesis.
    InvalidChain,
    /// After a heal or restart, a node did not reach the most work in time; or at the end,
    /// the nodes are not all on the most-work tip.
    NotConverged,
    /// The sum of balances differs from the coins the best chain created.
    CoinsNotConserved,
    /// A sender's next nonce went back on a node without a restart.
    NonceWentBack,
    /// A transfer 6 deep left the best chain without a reorganisation that deep.
    ConfirmedLost,
    /// A block hash was asked of two peers at once.
    AskedTwice,
    /// The best chain moved to less work though no block was found invalid.
    LessWork,
    /// A peer served a body that is not the block asked, or headers that do not link, and
    /// was not banned for it.
    FaultNotBanned,
    /// An honest peer was banned.
    HonestBanned,
}

/// One violation: when, where, what.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Simulated time.
    pub at: Duration,
    /// The node that saw it.
    pub node: Id,
    /// Which invariant.
    pub what: Invariant,
    /// Details.
    pub detail: String,
}

/// Blocks and headers shared by the runs of one prefix length: the common prefix, funding the
/// wallets, and the weak fork the flooders and liars serve.
struct World {
    prefix: Vec<Arc<Block>>,
    /// A fork from genesis, shorter than the prefix.
    weak: Vec<Header>,
    chain_id: ChainId,
}

fn wallet_key(i: usize) -> ed25519_zebra::SigningKey {
    testkit::key(100 + i as u64)
}

/// Where miner `i`'s coinbases go (never a sender: senders are funded by the prefix only, so a
/// reorganisation never makes a returned transfer unaffordable).
fn miner_address(i: Id) -> Address {
    Address([
        0xA0 ^ (i as u8),
        (i >> 8) as u8,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
        7,
    ])
}

/// Where transfers go.
fn sink(i: u64) -> Address {
    let mut a = [0x51; 32];
    a[..8].copy_from_slice(&i.to_be_bytes());
    Address(a)
}

fn world(prefix: usize, wallets: usize) -> Arc<World> {
    type Worlds = Mutex<HashMap<(usize, usize), Arc<World>>>;
    static WORLDS: OnceLock<Worlds> = OnceLock::new();
    let worlds = WORLDS.get_or_init(Default::default);
    if let Some(w) = worlds.lock().expect("not poisoned").get(&(prefix, wallets)) {
        return w.clone();
    }
    let mut chain = ChainState::new(testkit::params());
    let addresses: Vec<Address> = (0..wallets).map(|i| Address::of(&wallet_key(i))).collect();
    for h in 0..prefix {
        let block = testkit::next_block(&chain, &[], addresses[h % wallets]);
        chain
            .process_block(Arc::new(block), testkit::NOW)
            .expect("a block on the tip is valid");
    }
    let blocks: Vec<Arc<Block>> = (1..=prefix as u64)
        .map(|h| chain.block_at(h).expect("on the best chain"))
        .collect();
    let mut weak = ChainState::new(testkit::params());
    testkit::extend(&mut weak, prefix * 3 / 4, Address([0xEE; 32]));
    let weak_headers = (1..=weak.height())
        .map(|h| weak.block_at(h).expect("on the best chain").header)
        .collect();
    let w = Arc::new(World {
        prefix: blocks,
        weak: weak_headers,
        chain_id: chain.chain_id(),
    });
    worlds
        .lock()
        .expect("not poisoned")
        .insert((prefix, wallets), w.clone());
    w
}

/// A message on the simulated wire.
#[derive(Clone, Debug)]
enum Msg {
    Req { tag: Tag, req: Request },
    Resp { tag: Tag, resp: Response },
    Block(Arc<Vec<u8>>),
    Tx(Arc<Vec<u8>>),
}

impl Msg {
    /// Bytes on the wire, roughly (framing included).
    fn size(&self) -> u64 {
        let list = |v: &[Bytes]| v.iter().map(|b| b.0.len() as u64 + 4).sum::<u64>();
        64 + match self {
            Msg::Req { req, .. } => match req {
                Request::GetHeaders { locator, .. } | Request::GetBlocks { locator, .. } => {
                    32 * locator.len() as u64
                }
                Request::GetBodies { hashes } => 32 * hashes.len() as u64,
                Request::Transactions(txs) => list(txs),
                _ => 80,
            },
            Msg::Resp { resp, .. } => match resp {
                Response::Blocks(b) | Response::Headers(b) | Response::Transactions(b) => list(b),
                _ => 80,
            },
            Msg::Block(b) | Msg::Tx(b) => b.len() as u64,
        }
    }
}

enum Job {
    Deliver {
        from: Id,
        to: Id,
        generation: u64,
        msg: Msg,
    },
    Wake {
        node: Id,
        epoch: u32,
    },
    /// A batch's validation is over: apply it.
    BatchDone {
        node: Id,
        epoch: u32,
        batch: BatchId,
        blocks: Vec<Verified>,
        from: Vec<Id>,
    },
    /// A gossiped (or mined) block's validation is over: accept it and forward it.
    BlockDone {
        node: Id,
        epoch: u32,
        from: Option<Id>,
        body: Body,
        data: Arc<Vec<u8>>,
    },
    Mine {
        node: Id,
    },
    NewTx,
    Incident(Incident),
    /// Every node up since `since` must have at least `work` (the most at that time).
    CheckWork {
        since: u64,
        work: u128,
        why: &'static str,
        only: Option<Id>,
    },
}

impl Job {
    fn trace(&self, h: &mut DefaultHasher) {
        match self {
            Job::Deliver { from, to, msg, .. } => {
                (0u8, from, to, msg.size()).hash(h);
                match msg {
                    Msg::Req { tag, .. } | Msg::Resp { tag, .. } => tag.hash(h),
                    Msg::Block(b) | Msg::Tx(b) => b.hash(h),
                }
            }
            Job::Wake { node, .. } => (1u8, node).hash(h),
            Job::BatchDone { node, batch, .. } => (2u8, node, batch).hash(h),
            Job::BlockDone { node, body, .. } => (3u8, node, body.hash.0).hash(h),
            Job::Mine { node } => (4u8, node).hash(h),
            Job::NewTx => 5u8.hash(h),
            Job::Incident(i) => (6u8, format!("{i:?}")).hash(h),
            Job::CheckWork { since, work, .. } => (7u8, since, work).hash(h),
        }
    }
}

/// A node's core: what the node runs, minus the network and the store.
pub struct Core {
    /// Its chain.
    pub chain: ChainState,
    /// Its block acquisition.
    pub sync: Sync<Id>,
    /// Its pending transfers.
    pub mempool: Mempool,
    wake: Option<u64>,
    cpu_free: u64,
    seen_blocks: HashSet<BlockHash>,
    seen_txs: HashSet<Txid>,
    /// What each request in flight asked (for the checks of answers).
    asked: HashMap<Tag, Req>,
    /// The tip change of this step, for the mempool at its end.
    tip_change: Option<TipChange>,
    seen_tip: BlockHash,
    /// Each sender's next nonce as last seen (never goes back without a restart).
    next_nonce: BTreeMap<Address, u64>,
    /// Blocks holding transfers 6 deep, by hash.
    confirmed: BTreeSet<BlockHash>,
    /// The best chain moved to less work with no block found invalid (for the checks).
    less_work: Option<String>,
}

/// A node of the simulation, honest or faulty.
pub struct Node {
    /// Its id.
    pub id: Id,
    /// How it misbehaves, if it does.
    pub fault: Option<Fault>,
    /// Its core (none for silent peers and flooders).
    pub core: Option<Core>,
    /// Running.
    pub up: bool,
    /// Restarts so far (work queued before one is dropped).
    epoch: u32,
    /// When it last came up (µs).
    up_since: u64,
    /// Linked peers now connected.
    pub connected: BTreeSet<Id>,
    /// Peers it banned.
    pub banned: BTreeSet<Id>,
    up_bw: u64,
    up_free: u64,
    region: usize,
    /// Mines, paying this address.
    miner: Option<Address>,
    /// Fresh identities left (flooders).
    lives: u32,
}

#[derive(Clone, Debug)]
struct Link {
    /// One-way latency a→b and b→a (µs), a < b.
    lat: (u64, u64),
    up: bool,
    generation: u64,
}

/// The simulated world.
pub struct Sim {
    /// The scenario.
    pub config: Config,
    rng: StdRng,
    t0: Instant,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Job>,
    /// Every node, by id.
    pub nodes: Vec<Node>,
    links: BTreeMap<(Id, Id), Link>,
    sides: Option<Vec<u8>>,
    world: Arc<World>,
    sync_config: SyncConfig,
    mining: bool,
    /// Every ban: (banning node, banned peer, the banned peer's fault).
    pub bans: Vec<(Id, Id, Option<Fault>)>,
    /// What the checks found.
    pub violations: Vec<Violation>,
    trace: DefaultHasher,
    /// Events processed.
    pub steps: u64,
    /// When and by whom each block was mined (µs).
    mined_at: HashMap<BlockHash, (u64, Id)>,
    /// Delay from mining to acceptance, one per (node, mined block) (µs).
    pub arrivals: Vec<u64>,
    /// Blocks mined.
    pub blocks_mined: u64,
    /// Transfers made.
    pub transfers_made: u64,
    next_id: Id,
}

fn status_of(chain: &ChainState) -> Status {
    Status::new(
        chain.chain_id(),
        chain.tip(),
        chain.height(),
        chain.tip_work(),
    )
}

fn encode_headers(headers: &[Header]) -> Vec<Bytes> {
    headers.iter().map(|h| Bytes(h.encode().to_vec())).collect()
}

impl Sim {
    /// Builds the world of a scenario: node ids are a seeded permutation (faulty peers and
    /// miners anywhere in the order the component iterates peers in).
    pub fn new(config: Config) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let world = world(config.prefix, config.wallets);
        let mut sync_config = SyncConfig::new(world.chain_id);
        // As the node sets them (node/mod.rs with NodeConfig's defaults).
        sync_config.request_timeout = Duration::from_secs(20);
        sync_config.bodies_timeout = Duration::from_secs(20);
        sync_config.status_interval = Duration::from_secs(15);
        let n = config.honest + config.faults.len();
        let mut ids: Vec<Id> = (0..n as Id).collect();
        for i in (1..ids.len()).rev() {
            let j = rng.random_range(0..=i);
            ids.swap(i, j);
        }
        let mut roles: Vec<Option<Fault>> = vec![None; n];
        for (k, f) in config.faults.iter().enumerate() {
            roles[ids[config.honest + k] as usize] = Some(*f);
        }
        let regions = match &config.latency {
            Latency::Uniform(..) => vec![0; n],
            Latency::Regions { weights, .. } => (0..n).map(|_| pick(&mut rng, weights)).collect(),
        };
        let bw_weights: Vec<u32> = config.bandwidth.iter().map(|(_, w)| *w).collect();
        let t0 = Instant::now();
        let mut sim = Sim {
            rng,
            t0,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::with_capacity(n),
            links: BTreeMap::new(),
            sides: None,
            world,
            sync_config,
            mining: true,
            bans: Vec::new(),
            violations: Vec::new(),
            trace: DefaultHasher::new(),
            steps: 0,
            mined_at: HashMap::new(),
            arrivals: Vec::new(),
            blocks_mined: 0,
            transfers_made: 0,
            next_id: n as Id,
            config,
        };
        for (i, fault) in roles.iter().enumerate() {
            let bw = sim.config.bandwidth[pick(&mut sim.rng, &bw_weights)].0;
            let node = sim.make_node(i as Id, *fault, regions[i], bw);
            sim.nodes.push(node);
        }
        // Honest nodes (in id order): a ring plus random chords; the first `miners` mine.
        let honest: Vec<Id> = (0..n as Id)
            .filter(|i| roles[*i as usize].is_none())
            .collect();
        for (k, &a) in honest.iter().enumerate() {
            if k < sim.config.miners {
                sim.nodes[a as usize].miner = Some(miner_address(a));
            }
            if honest.len() > 1 {
                let b = honest[(k + 1) % honest.len()];
                sim.add_link(a, b);
            }
            for _ in 0..sim.config.chords {
                let b = honest[sim.rng.random_range(0..honest.len())];
                sim.add_link(a, b);
            }
        }
        for i in 0..n as Id {
            if roles[i as usize].is_some() {
                let mut targets = honest.clone();
                let keep = match sim.config.fault_links {
                    0 => targets.len(),
                    k => k.min(targets.len()),
                };
                for j in (1..targets.len()).rev() {
                    let k = sim.rng.random_range(0..=j);
                    targets.swap(j, k);
                }
                for &b in &targets[..keep] {
                    sim.add_link(i, b);
                }
            }
        }
        for i in 0..n as Id {
            sim.start_node(i);
        }
        let plan = sim.config.plan.clone();
        for (at, incident) in plan {
            sim.schedule(at.as_micros() as u64, Job::Incident(incident));
        }
        for i in 0..n as Id {
            if sim.nodes[i as usize].miner.is_some() {
                sim.schedule_mining(i);
            }
        }
        if let Some(every) = sim.config.tx_interval {
            let at = sim.exp(every);
            sim.schedule(at, Job::NewTx);
        }
        sim
    }

    fn make_node(&mut self, id: Id, fault: Option<Fault>, region: usize, up_bw: u64) -> Node {
        let core = match fault {
            Some(Fault::Silent | Fault::Flooder) => None,
            _ => Some(self.new_core(None)),
        };
        Node {
            id,
            fault,
            core,
            up: true,
            epoch: 0,
            up_since: 0,
            connected: BTreeSet::new(),
            banned: BTreeSet::new(),
            up_bw,
            up_free: 0,
            region,
            miner: None,
            lives: 3,
        }
    }

    /// A core with `chain`, or a fresh copy of the prefix.
    fn new_core(&self, chain: Option<ChainState>) -> Core {
        let chain = chain.unwrap_or_else(|| {
            let mut c = ChainState::new(testkit::params());
            for b in &self.world.prefix {
                c.load_trusted(b.clone()).expect("the prefix is valid");
            }
            c
        });
        Core {
            seen_tip: chain.tip(),
            sync: Sync::new(self.sync_config.clone()),
            mempool: Mempool::new(chain.chain_id(), MempoolLimits::default()),
            chain,
            wake: None,
            cpu_free: 0,
            seen_blocks: HashSet::new(),
            seen_txs: HashSet::new(),
            asked: HashMap::new(),
            tip_change: None,
            next_nonce: BTreeMap::new(),
            confirmed: BTreeSet::new(),
            less_work: None,
        }
    }

    fn add_link(&mut self, a: Id, b: Id) {
        if a == b {
            return;
        }
        let key = (a.min(b), a.max(b));
        if self.links.contains_key(&key) {
            return;
        }
        let lat = match &self.config.latency {
            Latency::Uniform(lo, hi) => {
                let ms = self.rng.random_range(*lo..=*hi);
                (ms * 1000, ms * 1000)
            }
            Latency::Regions { ms, .. } => {
                let (ra, rb) = (
                    self.nodes[key.0 as usize].region,
                    self.nodes[key.1 as usize].region,
                );
                (ms[ra][rb] * 1000, ms[rb][ra] * 1000)
            }
        };
        self.links.insert(
            key,
            Link {
                lat,
                up: false,
                generation: 0,
            },
        );
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.now)
    }

    fn at(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_micros(self.now),
            wall_ms: testkit::NOW + self.now / 1000,
        }
    }

    fn schedule(&mut self, at: u64, job: Job) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), job);
    }

    /// An exponential delay of mean `mean`, from now (µs).
    fn exp(&mut self, mean: Duration) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        self.now + (-u.ln() * mean.as_micros() as f64) as u64
    }

    fn schedule_mining(&mut self, node: Id) {
        // Each of m miners finds a block after an exponential delay of m × the interval, so
        // the network finds one per interval.
        let miners = self.config.miners.max(1) as u32;
        let at = self.exp(self.config.block_interval * miners);
        self.schedule(at, Job::Mine { node });
    }

    /// Hash of every event processed so far, in order.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    fn violation(&mut self, node: Id, what: Invariant, detail: String) {
        if self.violations.len() < 100 {
            self.violations.push(Violation {
                at: self.elapsed(),
                node,
                what,
                detail,
            });
        }
    }

    /// Runs until `limit` of simulated time or until the queue is empty.
    pub fn run_for(&mut self, limit: Duration) {
        let end = limit.as_micros() as u64;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((at, _), job) = entry.remove_entry();
            self.now = at;
            self.steps += 1;
            at.hash(&mut self.trace);
            job.trace(&mut self.trace);
            self.step(job);
        }
        self.now = self.now.max(end);
    }

    fn step(&mut self, job: Job) {
        match job {
            Job::Deliver {
                from,
                to,
                generation,
                msg,
            } => {
                let key = (from.min(to), from.max(to));
                if !self
                    .links
                    .get(&key)
                    .is_some_and(|l| l.up && l.generation == generation)
                {
                    return;
                }
                self.deliver(from, to, msg);
                self.end_of_step(to);
            }
            Job::Wake { node, epoch } => {
                let n = &self.nodes[node as usize];
                let due = n.core.as_ref().and_then(|c| c.wake);
                if n.up && n.epoch == epoch && due.is_some_and(|t| t <= self.now) {
                    if let Some(c) = self.nodes[node as usize].core.as_mut() {
                        c.wake = None;
                    }
                    self.sync_event(node, Event::Timer);
                    self.end_of_step(node);
                }
            }
            Job::BatchDone {
                node,
                epoch,
                batch,
                blocks,
                from,
            } => {
                if !self.alive(node, epoch) {
                    return;
                }
                self.apply_batch(node, batch, blocks, from);
                self.end_of_step(node);
            }
            Job::BlockDone {
                node,
                epoch,
                from,
                body,
                data,
            } => {
                if !self.alive(node, epoch) {
                    return;
                }
                self.accept_block(node, from, body, data);
                self.end_of_step(node);
            }
            Job::Mine { node } => {
                if self.mining {
                    if self.nodes[node as usize].up {
                        self.mine(node);
                    }
                    self.schedule_mining(node);
                }
            }
            Job::NewTx => {
                if self.mining {
                    self.new_transfer();
                    if let Some(every) = self.config.tx_interval {
                        let at = self.exp(every);
                        self.schedule(at, Job::NewTx);
                    }
                }
            }
            Job::Incident(i) => self.incident(i),
            Job::CheckWork {
                since,
                work,
                why,
                only,
            } => self.check_work(since, work, why, only),
        }
    }

    fn alive(&self, node: Id, epoch: u32) -> bool {
        let n = &self.nodes[node as usize];
        n.up && n.epoch == epoch
    }

    // ---- links ----

    fn link_should_be_up(&self, a: Id, b: Id) -> bool {
        let (na, nb) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        na.up
            && nb.up
            && !na.banned.contains(&b)
            && !nb.banned.contains(&a)
            && self
                .sides
                .as_ref()
                .is_none_or(|s| s[a as usize] == s[b as usize])
    }

    /// Opens or closes the links of `node` (all links if `None`) as the state says.
    fn refresh_links(&mut self, node: Option<Id>) {
        let keys: Vec<(Id, Id)> = self
            .links
            .keys()
            .filter(|(a, b)| node.is_none_or(|n| *a == n || *b == n))
            .copied()
            .collect();
        for (a, b) in keys {
            let should = self.link_should_be_up(a, b);
            let link = self.links.get_mut(&(a, b)).expect("listed");
            if link.up == should {
                continue;
            }
            link.up = should;
            link.generation += 1;
            for (x, y) in [(a, b), (b, a)] {
                let n = &mut self.nodes[x as usize];
                if should {
                    n.connected.insert(y);
                } else {
                    n.connected.remove(&y);
                }
                if n.up && n.core.is_some() {
                    let event = if should {
                        Event::Connected(y)
                    } else {
                        Event::Disconnected(y)
                    };
                    self.sync_event(x, event);
                    self.end_of_step(x);
                }
            }
        }
    }

    fn start_node(&mut self, id: Id) {
        self.nodes[id as usize].up = true;
        self.nodes[id as usize].up_since = self.now;
        self.refresh_links(Some(id));
        if self.nodes[id as usize].core.is_some() {
            self.sync_event(id, Event::Timer);
            self.end_of_step(id);
        }
    }

    /// Sends `msg`; lost if the link is down (or, for gossip, by chance). `extra`: a delay
    /// before it leaves (a slow peer).
    fn send(&mut self, from: Id, to: Id, msg: Msg, extra: u64) {
        let key = (from.min(to), from.max(to));
        let Some(link) = self.links.get(&key) else {
            return;
        };
        if !link.up {
            return;
        }
        if matches!(msg, Msg::Block(_) | Msg::Tx(_)) && self.rng.random_bool(self.config.loss) {
            return;
        }
        let generation = link.generation;
        let lat = if from < to { link.lat.0 } else { link.lat.1 };
        let size = msg.size();
        let n = &mut self.nodes[from as usize];
        let leave = n.up_free.max(self.now + extra);
        n.up_free = leave + size * 1000 / n.up_bw;
        let arrive = n.up_free + lat;
        self.schedule(
            arrive,
            Job::Deliver {
                from,
                to,
                generation,
                msg,
            },
        );
    }

    fn gossip(&mut self, from: Id, except: Option<Id>, msg: Msg) {
        let peers: Vec<Id> = self.nodes[from as usize]
            .connected
            .iter()
            .copied()
            .filter(|p| Some(*p) != except)
            .collect();
        for p in peers {
            self.send(from, p, msg.clone(), 0);
        }
    }

    // ---- the executor (node/fetch.rs) ----

    fn core(&mut self, node: Id) -> &mut Core {
        self.nodes[node as usize]
            .core
            .as_mut()
            .expect("a node with a core")
    }

    /// Hands an event to the node's component and carries out its actions, as
    /// `Node::sync_event` does, checking the component's answer to bad headers and bodies.
    fn sync_event(&mut self, node: Id, event: Event<Id>) {
        let now = self.at();
        let check = self.config.check;
        let wrong = if check {
            self.wrong_answer(node, &event)
        } else {
            None
        };
        let trace = trace_node() == Some(node);
        if trace {
            println!(
                "{:?} node {node} <- {}",
                self.elapsed(),
                short_event(&event)
            );
        }
        let core = self.core(node);
        core.seen_tip = core.chain.tip();
        let actions = core.sync.handle(event, now, &core.chain);
        if trace {
            for a in &actions {
                println!("    -> {}", short_action(a));
            }
        }
        if let Some((peer, what, cause)) = wrong {
            // Banned for that very fault (another cause, such as an inflated claim, would
            // hide a rule that no longer holds).
            let banned = actions.iter().any(
                |a| matches!(a, Action::Ban { peer: p, reason } if *p == peer && reason.contains(cause)),
            );
            if !banned {
                self.violation(
                    node,
                    Invariant::FaultNotBanned,
                    format!("peer {peer} {what} and was not banned"),
                );
            }
        }
        let mut queue: VecDeque<Action<Id>> = actions.into();
        while let Some(action) = queue.pop_front() {
            let follow = match action {
                Action::Request { peer, tag, req } => self.send_sync_request(node, peer, tag, req),
                Action::Apply {
                    batch,
                    blocks,
                    from,
                } => {
                    self.start_batch(node, batch, blocks, from);
                    None
                }
                Action::Ban { peer, reason } => {
                    self.ban(node, peer, &reason);
                    None
                }
                Action::WakeAt(at) => {
                    let at = at.duration_since(self.t0).as_micros() as u64;
                    let epoch = self.nodes[node as usize].epoch;
                    self.core(node).wake = Some(at);
                    self.schedule(at, Job::Wake { node, epoch });
                    None
                }
            };
            if let Some(event) = follow {
                let now = self.at();
                let core = self.core(node);
                queue.extend(core.sync.handle(event, now, &core.chain));
            }
        }
        if check {
            self.check_in_flight(node);
        }
    }

    /// Whether an answer is one the component must ban for: bodies that are not the blocks
    /// asked, or headers that do not link to each other.
    fn wrong_answer(
        &mut self,
        node: Id,
        event: &Event<Id>,
    ) -> Option<(Id, &'static str, &'static str)> {
        let core = self.nodes[node as usize].core.as_ref()?;
        match event {
            Event::Bodies { peer, tag, blocks } => {
                let Some(Req::GetBodies { hashes }) = core.asked.get(tag) else {
                    return None;
                };
                (core.sync.request_of(*tag).is_some()
                    && blocks.iter().zip(hashes).any(|(b, h)| b.hash != *h))
                .then_some((*peer, "served a block that was not asked", "served block"))
            }
            Event::Headers { peer, tag, headers } => {
                let unlinked = headers
                    .windows(2)
                    .any(|w| w[1].prev_hash != w[0].compute_hash());
                (core.sync.request_of(*tag).is_some() && unlinked).then_some((
                    *peer,
                    "served headers that do not link",
                    "header",
                ))
            }
            _ => None,
        }
    }

    fn check_in_flight(&mut self, node: Id) {
        let Some(core) = self.nodes[node as usize].core.as_ref() else {
            return;
        };
        let mut seen = HashMap::new();
        let mut twice = None;
        for (peer, hashes) in core.sync.bodies_in_flight() {
            for h in hashes {
                if let Some(other) = seen.insert(h, peer) {
                    twice = Some((h, other, peer));
                }
            }
        }
        if let Some((h, a, b)) = twice {
            self.violation(
                node,
                Invariant::AskedTwice,
                format!("block {} asked of {a} and {b} at once", h.short()),
            );
        }
    }

    fn send_sync_request(&mut self, node: Id, peer: Id, tag: Tag, req: Req) -> Option<Event<Id>> {
        let request = {
            let core = self.core(node);
            core.asked.insert(tag, req.clone());
            match req {
                Req::Status => Request::Status(self.status_of(node)),
                Req::GetMempool => Request::GetMempool,
                Req::GetHeaders { locator } => Request::GetHeaders {
                    locator,
                    max: protocol::MAX_HEADERS_PER_RESPONSE,
                },
                Req::GetBodies { hashes } => Request::GetBodies { hashes },
                Req::Transactions(txs) => Request::Transactions(txs.as_ref().clone()),
            }
        };
        if !self.nodes[node as usize].connected.contains(&peer) {
            return Some(Event::Failed {
                peer,
                tag,
                failure: Failure::NotSent,
            });
        }
        self.send(node, peer, Msg::Req { tag, req: request }, 0);
        None
    }

    /// What the node says of its chain (a liar inflates it).
    fn status_of(&self, node: Id) -> Status {
        let n = &self.nodes[node as usize];
        match (&n.core, n.fault) {
            (Some(c), Some(Fault::Liar)) => Status::new(
                c.chain.chain_id(),
                c.chain.tip(),
                c.chain.height() + 1000,
                c.chain.tip_work().saturating_mul(1000),
            ),
            (Some(c), _) => status_of(&c.chain),
            (None, _) => {
                let last = self.world.weak.last().expect("a weak fork");
                Status::new(self.world.chain_id, last.compute_hash(), 1 << 20, 1 << 100)
            }
        }
    }

    fn ban(&mut self, node: Id, peer: Id, _reason: &str) {
        let fault = self.nodes.get(peer as usize).and_then(|n| n.fault);
        self.bans.push((node, peer, fault));
        if self.config.check
            && !fault.is_some_and(Fault::bannable)
            && self.nodes[node as usize].fault.is_none()
        {
            self.violation(
                node,
                Invariant::HonestBanned,
                format!("banned {peer} ({fault:?}): {_reason}"),
            );
        }
        self.nodes[node as usize].banned.insert(peer);
        let key = (node.min(peer), node.max(peer));
        if let Some(link) = self.links.get_mut(&key)
            && link.up
        {
            link.up = false;
            link.generation += 1;
            self.nodes[node as usize].connected.remove(&peer);
            self.nodes[peer as usize].connected.remove(&node);
            // The banning node's component already forgot the peer; the other side sees the
            // connection close.
            if self.nodes[peer as usize].core.is_some() && self.nodes[peer as usize].up {
                self.sync_event(peer, Event::Disconnected(node));
                self.end_of_step(peer);
            }
        }
        self.maybe_respawn(peer);
    }

    /// A flooder banned by every peer comes back under a fresh identity, linked to the same
    /// nodes.
    fn maybe_respawn(&mut self, peer: Id) {
        let n = &self.nodes[peer as usize];
        if n.fault != Some(Fault::Flooder) || n.lives == 0 || !n.connected.is_empty() {
            return;
        }
        let lives = n.lives - 1;
        let (region, bw) = (n.region, n.up_bw);
        let linked: Vec<Id> = self
            .links
            .keys()
            .filter_map(|&(a, b)| {
                if a == peer {
                    Some(b)
                } else if b == peer {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        self.nodes[peer as usize].lives = 0;
        let id = self.next_id;
        self.next_id += 1;
        let mut node = self.make_node(id, Some(Fault::Flooder), region, bw);
        node.lives = lives;
        node.up_since = self.now;
        self.nodes.push(node);
        if let Some(s) = self.sides.as_mut() {
            let side = s[peer as usize];
            s.push(side);
        }
        for b in linked {
            self.add_link(id, b);
        }
        self.refresh_links(Some(id));
    }

    /// Starts a batch: `known` now and the checks without chain state (as the node does off
    /// its actor), then the apply once the simulated CPU time has passed.
    fn start_batch(&mut self, node: Id, batch: BatchId, blocks: Vec<Body>, from: Vec<Id>) {
        let now = self.now;
        let epoch = self.nodes[node as usize].epoch;
        let core = self.core(node);
        let known: Vec<bool> = blocks
            .iter()
            .map(|b| core.chain.known(&b.hash).is_some())
            .collect();
        let cost: u64 = blocks
            .iter()
            .zip(&known)
            .filter(|(_, k)| !**k)
            .map(|(b, _)| validation_cost(&b.block))
            .sum();
        let params = core.chain.params().clone();
        let chain_id = core.chain.chain_id();
        let cache = core.chain.sig_cache().clone();
        let verified = apply::verify(blocks, &known, &params, &chain_id, &cache);
        let done = core.cpu_free.max(now) + cost;
        core.cpu_free = done;
        self.schedule(
            done,
            Job::BatchDone {
                node,
                epoch,
                batch,
                blocks: verified,
                from,
            },
        );
    }

    fn apply_batch(&mut self, node: Id, batch: BatchId, blocks: Vec<Verified>, from: Vec<Id>) {
        let wall = self.at().wall_ms;
        let mut accepted = Vec::new();
        let core = self.core(node);
        let mut senders = from.into_iter();
        let stopped = apply::apply_in_order(blocks, |v| {
            let _sender = senders.next();
            let p = process_verified(core, v, wall);
            if let Ok(p) = &p {
                accepted.extend(p.accepted.iter().map(|b| b.hash()));
            }
            p
        });
        let result = apply::result(stopped, |h| core.chain.invalid_reason(h).is_some());
        self.record_arrivals(node, &accepted);
        self.sync_event(node, Event::Applied { batch, result });
    }

    fn record_arrivals(&mut self, node: Id, accepted: &[BlockHash]) {
        for h in accepted {
            self.core(node).seen_blocks.insert(*h);
            if let Some((t, miner)) = self.mined_at.get(h)
                && *miner != node
            {
                self.arrivals.push(self.now - t);
            }
        }
    }

    /// A request from a peer, answered as `Node::answer` does (with the faults' twists).
    fn answer(&mut self, node: Id, peer: Id, tag: Tag, req: Request) {
        let fault = self.nodes[node as usize].fault;
        let extra = if fault == Some(Fault::Slow) {
            SLOW_ANSWER.as_micros() as u64
        } else {
            0
        };
        let resp = match fault {
            Some(Fault::Silent) => return,
            Some(Fault::Flooder) => self.flooder_answer(node, req),
            Some(Fault::Staller) if matches!(req, Request::GetBodies { .. }) => return,
            // A liar serves from the third locator hash on: a branch of a few headers the
            // asker holds, so that the one it changes is seen.
            Some(Fault::Liar) => match req {
                Request::GetHeaders { locator, max } => {
                    let from = locator.len().saturating_sub(1).min(2);
                    self.honest_answer(
                        node,
                        peer,
                        Request::GetHeaders {
                            locator: locator[from..].to_vec(),
                            max,
                        },
                    )
                }
                req => self.honest_answer(node, peer, req),
            },
            _ => self.honest_answer(node, peer, req),
        };
        let resp = match (fault, resp) {
            (Some(Fault::Liar), Response::Headers(mut h)) if h.len() >= 2 => {
                // One header with another parent, sealed again: valid alone, not linked.
                let i = h.len() / 2;
                let mut header = Header::decode(&h[i].0).expect("ours");
                header.prev_hash = BlockHash([0xAB; 32]);
                testkit::mine_header(&mut header);
                h[i] = Bytes(header.encode().to_vec());
                Response::Headers(h)
            }
            (Some(Fault::Forger), Response::Blocks(mut b)) if !b.is_empty() => {
                let core = self.nodes[node as usize].core.as_ref().expect("a core");
                if self.rng.random_bool(0.5) {
                    // Another block of its chain.
                    let other = core.chain.block_at(1).expect("a prefix");
                    b[0] = Bytes(other.encode());
                } else {
                    // The header asked, with a changed coinbase: the body does not match.
                    let mut block = Block::decode(&b[0].0, 1 << 24, 1 << 16).expect("ours");
                    if let Some(Transaction::Coinbase(c)) = block.txs.first_mut() {
                        c.amount += 1;
                    }
                    b[0] = Bytes(block.encode());
                }
                Response::Blocks(b)
            }
            (_, r) => r,
        };
        self.send(node, peer, Msg::Resp { tag, resp }, extra);
    }

    fn flooder_answer(&mut self, node: Id, req: Request) -> Response {
        match req {
            Request::Status(_) => Response::Status(self.status_of(node)),
            Request::GetHeaders { locator, .. } => {
                let weak = &self.world.weak;
                let start = locator.iter().find_map(|h| {
                    if *h == self.world.chain_id {
                        return Some(0);
                    }
                    weak.iter()
                        .position(|w| w.compute_hash() == *h)
                        .map(|i| i + 1)
                });
                match start {
                    Some(s) => {
                        let end = weak
                            .len()
                            .min(s + protocol::MAX_HEADERS_PER_RESPONSE as usize);
                        Response::Headers(encode_headers(&weak[s..end]))
                    }
                    None => Response::Refused("no locator hash is on our best chain".into()),
                }
            }
            Request::GetBodies { .. } | Request::GetBlocks { .. } => Response::Blocks(Vec::new()),
            Request::GetMempool => Response::Transactions(Vec::new()),
            Request::Transactions(_) => Response::Accepted(0),
            // The simulator gossips full blocks: nobody is ever asked a compact block's
            // transfers.
            Request::GetBlockTxs { .. } => Response::Refused("no compact blocks here".into()),
        }
    }

    fn honest_answer(&mut self, node: Id, peer: Id, req: Request) -> Response {
        let bad_locator = |locator: &[BlockHash]| {
            (locator.is_empty() || locator.len() > protocol::MAX_LOCATOR)
                .then(|| Response::Refused("a locator holds 1 to 64 hashes".into()))
        };
        let not_on_chain = || Response::Refused("no locator hash is on our best chain".into());
        match req {
            Request::Status(status) => {
                let ours = self.status_of(node);
                self.sync_event(
                    node,
                    Event::Status {
                        peer,
                        tag: None,
                        status,
                    },
                );
                Response::Status(ours)
            }
            Request::GetBlocks { locator, max } => {
                if let Some(r) = bad_locator(&locator) {
                    return r;
                }
                match serve::blocks_after(&self.core(node).chain, &locator, max) {
                    Some(b) => Response::Blocks(b),
                    None => not_on_chain(),
                }
            }
            Request::GetHeaders { locator, max } => {
                if let Some(r) = bad_locator(&locator) {
                    return r;
                }
                match serve::headers_after(&self.core(node).chain, &locator, max) {
                    Some(h) => Response::Headers(encode_headers(&h)),
                    None => not_on_chain(),
                }
            }
            Request::GetBodies { hashes } => {
                if hashes.is_empty() || hashes.len() > protocol::MAX_BODIES_PER_REQUEST {
                    return Response::Refused("a bodies request names 1 to 64 blocks".into());
                }
                Response::Blocks(
                    serve::bodies_of(&self.core(node).chain, &hashes)
                        .into_iter()
                        .map(Bytes)
                        .collect(),
                )
            }
            Request::GetMempool => Response::Transactions(
                self.core(node)
                    .mempool
                    .by_fee()
                    .into_iter()
                    .take(protocol::MAX_TXS_PER_MESSAGE)
                    .map(|(_, t)| Bytes(Transaction::Transfer(t).encode()))
                    .collect(),
            ),
            Request::Transactions(txs) => match self.admit_from_peer(node, peer, txs) {
                Some(n) => Response::Accepted(n),
                None => Response::Refused("malformed or forged transactions".into()),
            },
            // Blocks gossip in full here, so no node relayed a compact block to ask about.
            Request::GetBlockTxs { .. } => Response::Refused("no compact block relayed".into()),
        }
    }

    /// The answer to a request of ours, turned into an event as `Node::on_response` does.
    fn on_response(&mut self, node: Id, peer: Id, tag: Tag, resp: Response) {
        let Some((_, asked)) = self.core(node).sync.request_of(tag) else {
            return;
        };
        self.core(node)
            .asked
            .retain(|t, _| *t >= tag.saturating_sub(100_000));
        let malformed = |reason: String| Event::Failed {
            peer,
            tag,
            failure: Failure::Malformed(reason),
        };
        let event = match (asked, resp) {
            (_, Response::Refused(reason)) => Event::Failed {
                peer,
                tag,
                failure: Failure::Refused(reason),
            },
            (RequestKind::Status, Response::Status(status)) => Event::Status {
                peer,
                tag: Some(tag),
                status,
            },
            (RequestKind::Headers, Response::Headers(raw)) => {
                match raw.iter().map(|b| Header::decode(&b.0)).collect() {
                    Ok(headers) => Event::Headers { peer, tag, headers },
                    Err(e) => malformed(format!("a malformed header: {e}")),
                }
            }
            (RequestKind::Bodies, Response::Blocks(raw)) => {
                match decode_bodies(self.core(node).chain.params(), raw) {
                    Ok(blocks) => Event::Bodies { peer, tag, blocks },
                    Err(reason) => malformed(reason),
                }
            }
            (RequestKind::Mempool, Response::Transactions(txs)) => {
                self.admit_from_peer(node, peer, txs);
                Event::Answered { peer, tag }
            }
            (RequestKind::Push, Response::Accepted(_)) => Event::Answered { peer, tag },
            (_, _) => malformed("the wrong kind of response".into()),
        };
        self.sync_event(node, event);
    }

    fn deliver(&mut self, from: Id, to: Id, msg: Msg) {
        let has_core = self.nodes[to as usize].core.is_some();
        match msg {
            Msg::Req { tag, req } => self.answer(to, from, tag, req),
            Msg::Resp { tag, resp } if has_core => self.on_response(to, from, tag, resp),
            Msg::Block(data) if has_core => self.on_gossip_block(to, from, data),
            Msg::Tx(data) if has_core => self.on_gossip_tx(to, from, &data),
            _ => {}
        }
    }

    // ---- relay (node/relay.rs) ----

    fn on_gossip_block(&mut self, node: Id, from: Id, data: Arc<Vec<u8>>) {
        let now = self.now;
        let epoch = self.nodes[node as usize].epoch;
        let core = self.core(node);
        let params = core.chain.params();
        let Ok(block) = Block::decode(&data, params.max_block_bytes as usize, params.max_block_txs)
        else {
            self.ban(node, from, "malformed block");
            return;
        };
        let hash = block.compute_hash();
        // Gossipsub's duplicate cache: a message seen once is not validated again.
        if !core.seen_blocks.insert(hash) {
            return;
        }
        let cost = if core.chain.known(&hash).is_some() {
            0
        } else {
            validation_cost(&block)
        };
        let done = core.cpu_free.max(now) + cost;
        core.cpu_free = done;
        let wire = data.to_vec();
        self.schedule(
            done,
            Job::BlockDone {
                node,
                epoch,
                from: Some(from),
                body: Body { block, hash, wire },
                data,
            },
        );
    }

    /// A block from gossip (or mined here): validated with the path batches take, judged by
    /// the node's verdict, forwarded if accepted.
    fn accept_block(&mut self, node: Id, from: Option<Id>, body: Body, data: Arc<Vec<u8>>) {
        let wall = self.at().wall_ms;
        let core = self.core(node);
        let known = [core.chain.known(&body.hash).is_some()];
        let params = core.chain.params().clone();
        let chain_id = core.chain.chain_id();
        let hash = body.hash;
        let cache = core.chain.sig_cache().clone();
        let mut verified = apply::verify(vec![body], &known, &params, &chain_id, &cache);
        let v = verified.pop().expect("one block");
        let processed = process_verified(core, v, wall);
        let accepted: Vec<BlockHash> = match &processed {
            Ok(p) => p.accepted.iter().map(|b| b.hash()).collect(),
            Err(_) => Vec::new(),
        };
        self.record_arrivals(node, &accepted);
        match (gossip_verdict(&processed), from) {
            (GossipVerdict::Forward, _) => self.gossip(node, from, Msg::Block(data)),
            (GossipVerdict::Orphan(_), Some(peer)) => self.sync_event(node, Event::Orphan(peer)),
            (GossipVerdict::Reject(e), Some(peer)) => {
                self.ban(node, peer, &format!("relayed an invalid block: {e}"))
            }
            (GossipVerdict::Reject(e), None) => {
                self.violation(
                    node,
                    Invariant::InvalidChain,
                    format!("mined an invalid block {}: {e}", hash.short()),
                );
            }
            _ => {}
        }
    }

    fn on_gossip_tx(&mut self, node: Id, from: Id, data: &Arc<Vec<u8>>) {
        let core = self.core(node);
        let Ok(Transaction::Transfer(tx)) = Transaction::decode(data) else {
            self.ban(node, from, "relayed a malformed transaction");
            return;
        };
        if !core
            .seen_txs
            .insert(Transaction::Transfer(tx).compute_txid())
        {
            return;
        }
        if core.mempool.admit(tx, core.chain.ledger()).is_ok() {
            self.gossip(node, Some(from), Msg::Tx(data.clone()));
        }
    }

    fn admit_from_peer(&mut self, node: Id, peer: Id, txs: Vec<Bytes>) -> Option<u32> {
        if txs.len() > protocol::MAX_TXS_PER_MESSAGE {
            self.ban(node, peer, "sent too many transactions in one message");
            return None;
        }
        let mut accepted = 0;
        for bytes in txs {
            let Ok(Transaction::Transfer(tx)) = Transaction::decode(&bytes.0) else {
                self.ban(node, peer, "sent a malformed transaction");
                return None;
            };
            let core = self.core(node);
            core.seen_txs
                .insert(Transaction::Transfer(tx).compute_txid());
            if core.mempool.admit(tx, core.chain.ledger()).is_ok() {
                accepted += 1;
                self.gossip(node, None, Msg::Tx(Arc::new(bytes.0)));
            }
        }
        Some(accepted)
    }

    /// The end of a node's step (`Node::end_of_step`): the tip change goes to the mempool
    /// (returned transfers are pushed to peers) and the component hears of a new tip; then
    /// the checks.
    fn end_of_step(&mut self, node: Id) {
        if !self.nodes[node as usize].up {
            return;
        }
        let Some(core) = self.nodes[node as usize].core.as_mut() else {
            return;
        };
        if let Some(change) = core.tip_change.take() {
            let resync = core.mempool.resync(&change, core.chain.ledger());
            let deep = change.disconnected.len() as u64;
            if self.config.check {
                self.check_tip_change(node, deep);
            }
            if !resync.returned.is_empty() {
                for chunk in resync.returned.chunks(protocol::MAX_TXS_PER_MESSAGE) {
                    let encoded = chunk
                        .iter()
                        .map(|t| Bytes(Transaction::Transfer(*t).encode()))
                        .collect();
                    self.sync_event(node, Event::Push(encoded));
                }
            }
        }
        let core = self.core(node);
        if core.seen_tip != core.chain.tip() {
            self.sync_event(node, Event::Timer);
        }
        if self.config.check {
            self.check_nonces(node);
            if let Some(detail) = self.core(node).less_work.take() {
                self.violation(node, Invariant::LessWork, detail);
            }
        }
    }

    // ---- mining and transfers ----

    fn mine(&mut self, node: Id) {
        let Some(address) = self.nodes[node as usize].miner else {
            return;
        };
        let epoch = self.nodes[node as usize].epoch;
        let core = self.core(node);
        let params = core.chain.params().clone();
        let txs = core.mempool.select(
            core.chain.ledger(),
            (params.max_block_txs - 1) as usize,
            params.max_block_bytes as usize / 2,
            params.block_reward,
        );
        let block = testkit::block_on(&core.chain, core.chain.tip(), &txs, address);
        let hash = block.compute_hash();
        let wire = block.encode();
        core.seen_blocks.insert(hash);
        self.blocks_mined += 1;
        self.mined_at.insert(hash, (self.now, node));
        // The miner validates its own block too (the node processes it like any other).
        let cost = validation_cost(&block);
        let now = self.now;
        let core = self.core(node);
        let done = core.cpu_free.max(now) + cost;
        core.cpu_free = done;
        let data = Arc::new(wire.clone());
        self.schedule(
            done,
            Job::BlockDone {
                node,
                epoch,
                from: None,
                body: Body { block, hash, wire },
                data,
            },
        );
    }

    fn new_transfer(&mut self) {
        let honest: Vec<Id> = (0..self.nodes.len() as Id)
            .filter(|i| {
                let n = &self.nodes[*i as usize];
                n.up && n.fault.is_none() && n.core.is_some()
            })
            .collect();
        if honest.is_empty() {
            return;
        }
        let node = honest[self.rng.random_range(0..honest.len())];
        let w = self.rng.random_range(0..self.config.wallets);
        let key = wallet_key(w);
        let amount = self.rng.random_range(1..=3);
        let fee = self.rng.random_range(1..=3);
        let to = sink(self.rng.random_range(0..4));
        let core = self.core(node);
        let from = Address::of(&key);
        let nonce = core.mempool.next_nonce(&from, core.chain.ledger());
        let tx = Transfer::sign(&key, &core.chain.chain_id(), to, amount, fee, nonce);
        core.seen_txs
            .insert(Transaction::Transfer(tx).compute_txid());
        if core.mempool.admit(tx, core.chain.ledger()).is_ok() {
            self.transfers_made += 1;
            let data = Arc::new(Transaction::Transfer(tx).encode());
            self.gossip(node, None, Msg::Tx(data));
        }
    }

    // ---- incidents ----

    fn incident(&mut self, incident: Incident) {
        match incident {
            Incident::Partition(mut sides) => {
                sides.resize(self.nodes.len(), 0);
                self.sides = Some(sides);
                self.refresh_links(None);
            }
            Incident::Heal => {
                self.sides = None;
                self.refresh_links(None);
                let since = self.now;
                let honest: Vec<Id> = self.honest_up().map(|n| n.id).collect();
                for id in honest {
                    let work = self.reachable_work(id);
                    self.schedule(
                        since + self.config.heal_bound.as_micros() as u64,
                        Job::CheckWork {
                            since,
                            work,
                            why: "heal",
                            only: Some(id),
                        },
                    );
                }
            }
            Incident::Crash(id) => {
                let Some(n) = self.nodes.get_mut(id as usize) else {
                    return;
                };
                if !n.up {
                    return;
                }
                n.up = false;
                n.epoch += 1;
                self.refresh_links(Some(id));
            }
            Incident::Restart(id) => {
                let Some(n) = self.nodes.get_mut(id as usize) else {
                    return;
                };
                if n.up {
                    return;
                }
                if let Some(core) = n.core.take() {
                    // The chain survives (the store is crash-safe); sync state and mempool
                    // do not.
                    let core = self.new_core(Some(core.chain));
                    self.nodes[id as usize].core = Some(core);
                }
                self.nodes[id as usize].up_free = self.now;
                self.start_node(id);
                let work = self.reachable_work(id);
                let since = self.now;
                self.schedule(
                    since + self.config.heal_bound.as_micros() as u64,
                    Job::CheckWork {
                        since,
                        work,
                        why: "restart",
                        only: Some(id),
                    },
                );
            }
            Incident::StopMining => self.mining = false,
            Incident::MineOnce(k) => {
                // The k-th honest miner that is up.
                let miner = (0..self.nodes.len() as Id)
                    .filter(|i| {
                        let n = &self.nodes[*i as usize];
                        n.up && n.miner.is_some()
                    })
                    .nth(k as usize);
                if let Some(m) = miner {
                    self.mine(m);
                }
            }
        }
    }

    /// The most work among honest nodes that are up.
    fn most_work(&self) -> u128 {
        self.honest_up()
            .filter_map(|n| n.core.as_ref())
            .map(|c| c.chain.tip_work())
            .max()
            .unwrap_or(0)
    }

    /// The most work among the honest nodes `id` reaches through open links and honest
    /// nodes (a partition, a crashed or a silent neighbour can cut it off).
    fn reachable_work(&self, id: Id) -> u128 {
        let mut seen = BTreeSet::from([id]);
        let mut todo = vec![id];
        let mut best = 0;
        while let Some(n) = todo.pop() {
            let node = &self.nodes[n as usize];
            if let Some(c) = &node.core {
                best = best.max(c.chain.tip_work());
            }
            for p in &node.connected {
                let peer = &self.nodes[*p as usize];
                if peer.fault.is_none() && peer.up && seen.insert(*p) {
                    todo.push(*p);
                }
            }
        }
        best
    }

    fn honest_up(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.up && n.fault.is_none())
    }

    fn check_work(&mut self, since: u64, work: u128, why: &'static str, only: Option<Id>) {
        let late: Vec<(Id, u128)> = self
            .honest_up()
            .filter(|n| n.up_since <= since && only.is_none_or(|o| o == n.id))
            .filter_map(|n| n.core.as_ref().map(|c| (n.id, c.chain.tip_work())))
            .filter(|(_, w)| *w < work)
            .collect();
        for (id, w) in late {
            self.violation(
                id,
                Invariant::NotConverged,
                format!(
                    "{:?} after the {why}: work {w} < {work}",
                    self.config.heal_bound
                ),
            );
        }
    }

    // ---- invariants ----

    /// After a tip change: coins conserved, transfers 6 deep kept unless the reorganisation
    /// was that deep.
    fn check_tip_change(&mut self, node: Id, disconnected: u64) {
        let core = self.nodes[node as usize].core.as_mut().expect("a core");
        let chain = &core.chain;
        let supply = chain.ledger().total_supply();
        let created = chain.height() * REWARD;
        let mut found = Vec::new();
        if supply != created {
            found.push((
                Invariant::CoinsNotConserved,
                format!(
                    "supply {supply} at height {}, {created} created",
                    chain.height()
                ),
            ));
        }
        if disconnected >= CONFIRMED_DEPTH {
            core.confirmed.clear();
        } else {
            let lost = core.confirmed.iter().find(|h| !chain.is_active(h));
            if let Some(h) = lost {
                found.push((
                    Invariant::ConfirmedLost,
                    format!(
                        "block {} with transfers 6 deep left the chain in a reorganisation of {disconnected}",
                        h.short()
                    ),
                ));
            }
        }
        let deep = chain.height().saturating_sub(CONFIRMED_DEPTH - 1);
        for h in deep.saturating_sub(3)..=deep {
            if h > self.config.prefix as u64
                && let Some(b) = chain.block_at(h)
                && b.txs.len() > 1
            {
                core.confirmed.insert(b.compute_hash());
            }
        }
        for (what, detail) in found {
            self.violation(node, what, detail);
        }
    }

    /// A sender's next nonce never goes back on a node (a restart resets what it remembers).
    fn check_nonces(&mut self, node: Id) {
        let Some(core) = self.nodes[node as usize].core.as_mut() else {
            return;
        };
        let mut back = None;
        for w in 0..self.config.wallets {
            let a = Address::of(&wallet_key(w));
            let next = core.mempool.next_nonce(&a, core.chain.ledger());
            let before = core.next_nonce.insert(a, next).unwrap_or(0);
            if next < before {
                back = Some((w, before, next));
            }
        }
        if let Some((w, before, next)) = back {
            self.violation(
                node,
                Invariant::NonceWentBack,
                format!("wallet {w}'s next nonce went from {before} to {next}"),
            );
        }
    }

    /// Stops mining, heals, restarts every crashed node, runs `quiet` more, then checks the
    /// end state: every best chain revalidates from genesis with its coins conserved, and
    /// every honest node is on the most-work tip.
    pub fn finish(&mut self, quiet: Duration) {
        self.mining = false;
        let mut chains = Vec::new();
        let stop = self.elapsed();
        self.incident(Incident::Heal);
        for i in 0..self.nodes.len() as Id {
            if !self.nodes[i as usize].up {
                self.incident(Incident::Restart(i));
            }
        }
        let last = self.elapsed();
        self.incident(Incident::MineOnce(0));
        self.run_for(last + quiet);
        let _ = stop;
        let best = self.most_work();
        for n in &self.nodes {
            let Some(core) = &n.core else { continue };
            chains.push((n.id, n.fault, core.chain.tip(), core.chain.tip_work()));
        }
        let tips: BTreeSet<BlockHash> = chains
            .iter()
            .filter(|c| c.1.is_none())
            .map(|c| c.2)
            .collect();
        for (id, fault, _, work) in &chains {
            if fault.is_none() && *work < best {
                self.violation(
                    *id,
                    Invariant::NotConverged,
                    format!("at the end: work {work} < {best} after {quiet:?} of quiet"),
                );
            }
        }
        if tips.len() > 1 {
            self.violation(
                0,
                Invariant::NotConverged,
                format!("at the end: {} different tips", tips.len()),
            );
        }
        for i in 0..self.nodes.len() {
            if let Some(core) = &self.nodes[i].core
                && let Err(e) = revalidate(&core.chain)
            {
                let what = if e.starts_with("coins") {
                    Invariant::CoinsNotConserved
                } else {
                    Invariant::InvalidChain
                };
                self.violation(i as Id, what, e);
            }
        }
    }

    /// Whether every honest node that is up has this tip.
    pub fn converged(&self) -> bool {
        let tips: BTreeSet<BlockHash> = self
            .honest_up()
            .filter_map(|n| n.core.as_ref().map(|c| c.chain.tip()))
            .collect();
        tips.len() == 1
    }

    /// Honest nodes.
    pub fn honest(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.fault.is_none())
    }
}

/// Validates one block of a batch or from gossip against the chain, as the node's
/// `apply_known` / `apply_checked` / `reject_unchecked` do.
fn process_verified(
    core: &mut Core,
    v: Verified,
    wall_ms: u64,
) -> Result<Processed, ValidationError> {
    let processed = match v {
        Verified::Known(hash) => match core.chain.known(&hash) {
            Some(Err(e)) => Err(e),
            _ => Ok(Processed {
                outcome: Outcome::AlreadyKnown,
                accepted: Vec::new(),
                rejected: Vec::new(),
                tip_change: None,
            }),
        },
        Verified::Checked(checked) => {
            let hash = checked.hash();
            if core.chain.known(&hash).is_some() {
                return match core.chain.known(&hash) {
                    Some(Err(e)) => Err(e),
                    _ => Ok(Processed {
                        outcome: Outcome::AlreadyKnown,
                        accepted: Vec::new(),
                        rejected: Vec::new(),
                        tip_change: None,
                    }),
                };
            }
            let before = core.chain.tip_work();
            let result = core.chain.process_checked(checked, wall_ms, true);
            let _ = core.chain.take_dropped();
            if let Ok(p) = &result
                && p.tip_change.is_some()
                && p.rejected.is_empty()
                && core.chain.tip_work() < before
            {
                core.less_work = Some(format!(
                    "work {before} -> {} on block {}",
                    core.chain.tip_work(),
                    hash.short()
                ));
            }
            result
        }
        Verified::Invalid { block, hash, error } => {
            if core.chain.known(&hash).is_none() {
                core.chain.note_invalid(&block, hash, &error);
            }
            Err(error)
        }
    };
    if let Ok(p) = &processed
        && let Some(change) = &p.tip_change
    {
        match &mut core.tip_change {
            Some(pending) => pending.merge(change.clone()),
            None => core.tip_change = Some(change.clone()),
        }
    }
    processed
}

/// Simulated validation time of a block (µs).
fn validation_cost(block: &Block) -> u64 {
    VALIDATE_BLOCK_US + VALIDATE_TRANSFER_US * (block.txs.len() as u64).saturating_sub(1)
}

/// Replays a best chain into a fresh state with every check (signatures included) and checks
/// that the ledger's supply is what its coinbases created, less the fees they collected.
fn revalidate(chain: &ChainState) -> Result<(), String> {
    let mut fresh = ChainState::new(chain.params().clone());
    let mut created: u64 = 0;
    for h in 1..=chain.height() {
        let block = chain
            .block_at(h)
            .ok_or_else(|| format!("no block at height {h}"))?;
        for tx in &block.txs {
            match tx {
                Transaction::Coinbase(c) => created += c.amount,
                Transaction::Transfer(t) => created -= t.fee,
            }
        }
        fresh
            .process_block(block, testkit::NOW)
            .map_err(|e| format!("block at height {h} is invalid: {e}"))?;
    }
    if fresh.tip() != chain.tip() {
        return Err("the replayed chain ends elsewhere".into());
    }
    let supply = chain.ledger().total_supply();
    if supply != created {
        return Err(format!("coins: supply {supply}, created {created}"));
    }
    Ok(())
}

fn pick(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut r = rng.random_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return i;
        }
        r -= w;
    }
    0
}

/// The node whose component's events and actions are printed (`SIM_TRACE=id`), for debugging.
fn trace_node() -> Option<Id> {
    static NODE: OnceLock<Option<Id>> = OnceLock::new();
    *NODE.get_or_init(|| std::env::var("SIM_TRACE").ok().and_then(|s| s.parse().ok()))
}

fn short_event(e: &Event<Id>) -> String {
    match e {
        Event::Headers { peer, tag, headers } => {
            format!("Headers from {peer} tag {tag}: {} headers", headers.len())
        }
        Event::Bodies { peer, tag, blocks } => format!(
            "Bodies from {peer} tag {tag}: heights {:?}",
            blocks
                .iter()
                .map(|b| b.block.header.height)
                .collect::<Vec<_>>()
        ),
        Event::Status { peer, tag, status } => {
            format!("Status from {peer} tag {tag:?}: height {}", status.height)
        }
        Event::Push(_) => "Push".into(),
        e => format!("{e:?}"),
    }
}

fn short_action(a: &Action<Id>) -> String {
    match a {
        Action::Request { peer, tag, req } => match req {
            Req::GetBodies { hashes } => format!("GetBodies to {peer} tag {tag}: {}", hashes.len()),
            Req::GetHeaders { .. } => format!("GetHeaders to {peer} tag {tag}"),
            Req::Transactions(_) => format!("Transactions to {peer} tag {tag}"),
            r => format!("{r:?} to {peer} tag {tag}"),
        },
        Action::Apply {
            batch,
            blocks,
            from,
        } => format!(
            "Apply batch {batch}: heights {:?} from {from:?}",
            blocks
                .iter()
                .map(|b| b.block.header.height)
                .collect::<Vec<_>>()
        ),
        a => format!("{a:?}"),
    }
}

/// Quiet time given at the end of a run for every node to settle.
pub const QUIET: Duration = Duration::from_secs(15);

/// Runs a scenario through its plan, then [`Sim::finish`].
pub fn run(config: Config) -> Sim {
    let end = config.last_incident() + Duration::from_secs(1);
    let mut sim = Sim::new(config);
    sim.run_for(end);
    sim.finish(QUIET);
    sim
}

/// Runs [`Config::with_faults`]`(seed)` and says what went wrong, if anything: the first
/// violation, a liar or flooder nobody banned.
pub fn check_seed(seed: u64) -> Option<String> {
    let config = Config::with_faults(seed);
    let faults = config.faults.clone();
    let sim = run(config);
    if let Some(v) = sim.violations.first() {
        return Some(format!(
            "seed {seed} ({} violations, faults {faults:?}): first at {:?} on node {}: {:?}: {}",
            sim.violations.len(),
            v.at,
            v.node,
            v.what,
            v.detail
        ));
    }
    // A liar claims the most work: every node it reaches asks it for headers, and bans it.
    for liar in sim.nodes.iter().filter(|n| n.fault == Some(Fault::Liar)) {
        if !sim.bans.iter().any(|(_, p, _)| *p == liar.id) {
            return Some(format!("seed {seed}: liar {} was never banned", liar.id));
        }
    }
    if faults.contains(&Fault::Flooder)
        && !sim.bans.iter().any(|(_, _, f)| *f == Some(Fault::Flooder))
    {
        return Some(format!("seed {seed}: no flooder was banned"));
    }
    None
}
