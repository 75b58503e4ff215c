//! A seeded, deterministic simulator of sync: many honest nodes (each a real
//! [`ChainState`] driven by a [`SyncMachine`]) and faulty peers exchange sync messages
//! through an event queue with random latencies, in simulated time, without sockets or
//! tokio. The honest nodes serve and apply blocks with the node's own helpers
//! (`blocks_after`, `locator_for`, `decode_page`, `apply_page`); only the swarm is replaced.

use gossipchain::chain::{Address, Block, BlockHash, ChainState};
use gossipchain::net::protocol::{Bytes, Status};
use gossipchain::node::sync::{PageBlock, apply_page, blocks_after, decode_page, locator_for};
use gossipchain::node::sync_machine::{
    Action, Event, Failure, Req, SyncConfig, SyncMachine, Tag, Tip,
};
use gossipchain::testkit;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A peer in the simulation.
pub type Id = u32;

/// Blocks per page in the simulation (small, so that a chain of a hundred blocks takes many
/// pages and the pipeline is exercised).
pub const PAGE: u32 = 8;
/// Simulated validation time per block.
const VALIDATE_PER_BLOCK_MS: u64 = 3;
/// Ticks given to each honest machine.
const TICK_MS: u64 = 500;

/// How a faulty peer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Connects and never answers anything.
    Silent,
    /// Claims far more work than anyone, answers statuses, never answers a page.
    Staller,
    /// Holds the best chain and answers everything, after three page deadlines.
    Slow,
    /// Claims far more work than anyone and answers every page empty.
    Liar,
    /// Holds the best chain, claims it, and disconnects when asked for blocks, then
    /// reconnects a second later (a bounded number of times).
    Disconnecter,
    /// Floods statuses claiming ever more work, answers pages with blocks that break the
    /// rules, and comes back with a fresh identity after each ban (a bounded number of times).
    Flooder,
}

/// A sync message on the simulated wire.
#[derive(Clone, Debug)]
enum Wire {
    Connect,
    Disconnect,
    Request { tag: Tag, req: WireReq },
    Response { tag: Tag, resp: WireResp },
}

#[derive(Clone, Debug)]
enum WireReq {
    Status(Status),
    GetBlocks { locator: Vec<BlockHash> },
    GetMempool,
}

#[derive(Clone, Debug)]
enum WireResp {
    Status(Status),
    Blocks(Vec<Bytes>),
    Mempool,
}

#[derive(Clone, Debug)]
enum Job {
    Deliver { to: Id, from: Id, wire: Wire },
    Tick(Id),
    Applied { node: Id, tag: Tag },
    Flood(Id),
}

/// An honest node.
pub struct Honest {
    /// Its chain.
    pub chain: ChainState,
    /// Its sync policy.
    pub machine: SyncMachine<Id>,
    /// Connected peers.
    connected: BTreeSet<Id>,
    /// Peers it banned.
    pub banned: BTreeSet<Id>,
    /// Locators of the pages it asked for.
    locators: HashMap<Tag, Vec<BlockHash>>,
    /// Received pages waiting for `Apply`/`Discard`.
    held: HashMap<Tag, Vec<PageBlock>>,
    /// A page being validated, applied when its simulated validation time is over.
    validating: Option<(Tag, Vec<PageBlock>)>,
    /// Most pages requested and not yet answered at once, seen over the run.
    pub max_pages_in_flight: usize,
    /// Pages whose validation started while the next page was already asked for.
    pub overlapped_requests: u64,
}

/// A faulty peer.
struct Faulty {
    fault: Fault,
    /// Honest nodes it is connected to.
    connected: BTreeSet<Id>,
    /// Reconnections or fresh identities left.
    lives: u32,
    /// Its claimed work grows with each flood message.
    flood_count: u64,
}

/// The simulated world.
pub struct Sim {
    rng: StdRng,
    t0: Instant,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    jobs: Vec<Option<Job>>,
    /// The honest nodes, by id `0..n`.
    pub honest: Vec<Honest>,
    faulty: BTreeMap<Id, Faulty>,
    next_id: Id,
    config: SyncConfig,
    /// The chain the best-chain holders (slow, disconnecting peers) serve.
    best: Arc<ChainState>,
    /// A block that breaks the rules (wrong difficulty), for flooders.
    bad_block: Block,
    /// Every ban, as (banning node, banned peer, fault of the banned peer if faulty).
    pub bans: Vec<(Id, Id, Option<Fault>)>,
    /// Violations of "never two requests in flight for one range".
    pub duplicate_ranges: u64,
}

/// Chains for a scenario: `best` has the most work; `others` are weaker forks of it.
pub struct World {
    /// The chain with the most work.
    pub best: ChainState,
    /// Forks with less work, sharing a prefix with `best`.
    pub others: Vec<ChainState>,
}

/// Builds a common prefix of `base` blocks, a fork of `weak` more blocks from its top, and the
/// best chain: `strong` blocks from height `fork_at` of the prefix.
pub fn world(base: usize, weak: usize, fork_at: u64, strong: usize) -> World {
    let mut prefix = ChainState::new(testkit::params());
    testkit::extend(&mut prefix, base, Address([1; 32]));
    let mut weak_chain = copy(&prefix, prefix.height());
    testkit::extend(&mut weak_chain, weak, Address([2; 32]));
    let mut best = copy(&prefix, fork_at);
    testkit::extend(&mut best, strong, Address([3; 32]));
    assert!(best.tip_work() > weak_chain.tip_work());
    World {
        best,
        others: vec![prefix, weak_chain],
    }
}

/// A new chain holding `chain`'s best chain up to `height`.
pub fn copy(chain: &ChainState, height: u64) -> ChainState {
    let mut out = ChainState::new(chain.params().clone());
    for h in 1..=height.min(chain.height()) {
        let block = chain.block_at(h).expect("height on the best chain").clone();
        out.process_block(block, testkit::NOW)
            .expect("a valid chain copies");
    }
    out
}

fn tip_of(chain: &ChainState) -> Tip {
    Tip {
        hash: chain.tip(),
        height: chain.height(),
        work: chain.tip_work(),
    }
}

fn status_of(chain: &ChainState) -> Status {
    Status::new(
        chain.chain_id(),
        chain.tip(),
        chain.height(),
        chain.tip_work(),
    )
}

impl Sim {
    /// A world of honest nodes with these chains (node i starts with `chains[i]`) and faulty
    /// peers, each connected to every honest node; honest nodes are connected in a ring plus
    /// random chords.
    pub fn new(seed: u64, chains: Vec<ChainState>, best: &ChainState, faults: &[Fault]) -> Self {
        let mut config = SyncConfig::new(best.chain_id());
        config.page_timeout = Duration::from_secs(4);
        config.request_timeout = Duration::from_secs(3);
        config.status_interval = Duration::from_secs(5);
        config.retry_min = Duration::from_secs(1);
        config.retry_max = Duration::from_secs(30);
        let t0 = Instant::now();
        let honest: Vec<Honest> = chains
            .into_iter()
            .map(|chain| Honest {
                machine: SyncMachine::new(config.clone(), tip_of(&chain)),
                chain,
                connected: BTreeSet::new(),
                banned: BTreeSet::new(),
                locators: HashMap::new(),
                held: HashMap::new(),
                validating: None,
                max_pages_in_flight: 0,
                overlapped_requests: 0,
            })
            .collect();
        let mut bad_block = testkit::next_block(best, &[], Address([9; 32]));
        bad_block.header.bits += 1;
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            t0,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            jobs: Vec::new(),
            next_id: honest.len() as Id,
            honest,
            faulty: BTreeMap::new(),
            config,
            best: Arc::new(copy(best, best.height())),
            bad_block,
            bans: Vec::new(),
            duplicate_ranges: 0,
        };
        let n = sim.honest.len() as Id;
        let mut edges = BTreeSet::new();
        for i in 0..n {
            if n > 1 {
                edges.insert((i.min((i + 1) % n), i.max((i + 1) % n)));
            }
        }
        for _ in 0..n {
            let a = sim.rng.random_range(0..n);
            let b = sim.rng.random_range(0..n);
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        }
        for (a, b) in edges {
            let delay = sim.latency();
            sim.push(
                delay,
                Job::Deliver {
                    to: a,
                    from: b,
                    wire: Wire::Connect,
                },
            );
            sim.push(
                delay,
                Job::Deliver {
                    to: b,
                    from: a,
                    wire: Wire::Connect,
                },
            );
        }
        for fault in faults {
            sim.spawn_faulty(*fault, 0);
        }
        for i in 0..n {
            let first = sim.rng.random_range(0..TICK_MS);
            sim.push(first, Job::Tick(i));
        }
        sim
    }

    fn spawn_faulty(&mut self, fault: Fault, after_ms: u64) {
        let id = self.next_id;
        self.next_id += 1;
        let lives = match fault {
            Fault::Disconnecter => 5,
            Fault::Flooder => 6,
            _ => 0,
        };
        self.faulty.insert(
            id,
            Faulty {
                fault,
                connected: BTreeSet::new(),
                lives,
                flood_count: 0,
            },
        );
        self.connect_faulty(id, after_ms);
        if fault == Fault::Flooder {
            self.push(after_ms + 20, Job::Flood(id));
        }
    }

    fn connect_faulty(&mut self, id: Id, after_ms: u64) {
        for node in 0..self.honest.len() as Id {
            let delay = after_ms + self.latency();
            self.push(
                delay,
                Job::Deliver {
                    to: node,
                    from: id,
                    wire: Wire::Connect,
                },
            );
            self.push(
                delay,
                Job::Deliver {
                    to: id,
                    from: node,
                    wire: Wire::Connect,
                },
            );
        }
    }

    fn latency(&mut self) -> u64 {
        self.rng.random_range(2..40)
    }

    fn push(&mut self, after_ms: u64, job: Job) {
        let at = self.now_ms + after_ms;
        self.jobs.push(Some(job));
        self.queue
            .push(Reverse((at, self.seq, self.jobs.len() - 1)));
        self.seq += 1;
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.now_ms)
    }

    /// Simulated time so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.now_ms)
    }

    /// Runs until `done` holds (checked after every step) or `limit` of simulated time passes;
    /// returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let limit = limit.as_millis() as u64;
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            if at > limit {
                return false;
            }
            self.now_ms = at;
            let Some(job) = self.jobs[idx].take() else {
                continue;
            };
            self.step(job);
            if done(self) {
                return true;
            }
        }
        false
    }

    /// Whether every honest node's tip is `tip`.
    pub fn converged_on(&self, tip: BlockHash) -> bool {
        self.honest.iter().all(|h| h.chain.tip() == tip)
    }

    fn step(&mut self, job: Job) {
        match job {
            Job::Tick(node) => {
                self.feed(node, Event::Tick);
                self.push(TICK_MS, Job::Tick(node));
            }
            Job::Applied { node, tag } => self.finish_validation(node, tag),
            Job::Flood(id) => self.flood(id),
            Job::Deliver { to, from, wire } => {
                if (to as usize) < self.honest.len() {
                    self.deliver_honest(to, from, wire);
                } else {
                    self.deliver_faulty(to, from, wire);
                }
            }
        }
    }

    /// Hands an event to honest node `node`'s machine and carries out its actions.
    fn feed(&mut self, node: Id, event: Event<Id>) {
        let now = self.now();
        let actions = self.honest[node as usize].machine.handle(event, now);
        self.check_ranges(node);
        for action in actions {
            self.act(node, action);
        }
    }

    fn check_ranges(&mut self, node: Id) {
        let h = &mut self.honest[node as usize];
        let ranges = h.machine.ranges_in_flight();
        let distinct: BTreeSet<_> = ranges.iter().collect();
        if distinct.len() != ranges.len() {
            self.duplicate_ranges += 1;
        }
        h.max_pages_in_flight = h.max_pages_in_flight.max(ranges.len());
    }

    fn act(&mut self, node: Id, action: Action<Id>) {
        match action {
            Action::Request { peer, tag, req } => {
                let h = &mut self.honest[node as usize];
                if !h.connected.contains(&peer) {
                    return self.feed(
                        node,
                        Event::Failed {
                            peer,
                            tag,
                            failure: Failure::NotSent,
                        },
                    );
                }
                let req = match req {
                    Req::Status => WireReq::Status(status_of(&h.chain)),
                    Req::GetMempool => WireReq::GetMempool,
                    Req::GetBlocks { from } => {
                        let locator = locator_for(&h.chain, from);
                        h.locators.insert(tag, locator.clone());
                        WireReq::GetBlocks { locator }
                    }
                };
                let delay = self.latency();
                self.push(
                    delay,
                    Job::Deliver {
                        to: peer,
                        from: node,
                        wire: Wire::Request { tag, req },
                    },
                );
            }
            Action::Apply { tag } => {
                let h = &mut self.honest[node as usize];
                let blocks = h.held.remove(&tag).expect("Apply names a held page");
                assert!(h.validating.is_none(), "one page is applied at a time");
                if !h.machine.ranges_in_flight().is_empty() {
                    h.overlapped_requests += 1;
                }
                let cost = VALIDATE_PER_BLOCK_MS * blocks.len() as u64;
                h.validating = Some((tag, blocks));
                self.push(cost, Job::Applied { node, tag });
            }
            Action::Discard { tag } => {
                let h = &mut self.honest[node as usize];
                h.held.remove(&tag);
                h.locators.remove(&tag);
            }
            Action::Ban { peer, .. } => {
                let h = &mut self.honest[node as usize];
                h.banned.insert(peer);
                let fault = self.faulty.get(&peer).map(|f| f.fault);
                self.bans.push((node, peer, fault));
                self.disconnect(node, peer);
            }
        }
    }

    fn finish_validation(&mut self, node: Id, tag: Tag) {
        let h = &mut self.honest[node as usize];
        let Some((t, blocks)) = h.validating.take() else {
            return;
        };
        assert_eq!(t, tag);
        let locator = h.locators.remove(&tag).unwrap_or_default();
        let before = h.chain.tip();
        let chain = &mut h.chain;
        let result = apply_page(blocks, &locator, |b| {
            chain.process_block(Arc::new(b.block), testkit::NOW)
        });
        if h.chain.tip() != before {
            let tip = tip_of(&h.chain);
            self.feed(node, Event::LocalTip(tip));
        }
        self.feed(node, Event::PageApplied { tag, result });
    }

    fn disconnect(&mut self, a: Id, b: Id) {
        let delay = self.latency();
        self.push(
            delay,
            Job::Deliver {
                to: a,
                from: b,
                wire: Wire::Disconnect,
            },
        );
        self.push(
            delay,
            Job::Deliver {
                to: b,
                from: a,
                wire: Wire::Disconnect,
            },
        );
    }

    fn deliver_honest(&mut self, node: Id, from: Id, wire: Wire) {
        let h = &mut self.honest[node as usize];
        match wire {
            Wire::Connect => {
                if h.banned.contains(&from) || !h.connected.insert(from) {
                    return;
                }
                self.feed(node, Event::Connected(from));
            }
            Wire::Disconnect => {
                if h.connected.remove(&from) {
                    self.feed(node, Event::Disconnected(from));
                }
            }
            _ if !h.connected.contains(&from) => {}
            Wire::Request { tag, req } => {
                let resp = match req {
                    WireReq::Status(status) => {
                        let ours = status_of(&h.chain);
                        self.feed(
                            node,
                            Event::Status {
                                peer: from,
                                tag: None,
                                status,
                            },
                        );
                        WireResp::Status(ours)
                    }
                    WireReq::GetBlocks { locator } => {
                        let blocks = blocks_after(&h.chain, &locator, PAGE).unwrap_or_default();
                        WireResp::Blocks(blocks)
                    }
                    WireReq::GetMempool => WireResp::Mempool,
                };
                let delay = self.latency();
                self.push(
                    delay,
                    Job::Deliver {
                        to: from,
                        from: node,
                        wire: Wire::Response { tag, resp },
                    },
                );
            }
            Wire::Response { tag, resp } => {
                let event = match resp {
                    WireResp::Status(status) => Event::Status {
                        peer: from,
                        tag: Some(tag),
                        status,
                    },
                    WireResp::Mempool => Event::Mempool { peer: from, tag },
                    WireResp::Blocks(bytes) => match decode_page(h.chain.params(), bytes) {
                        Ok((blocks, last)) => {
                            let n = blocks.len();
                            h.held.insert(tag, blocks);
                            Event::Page {
                                peer: from,
                                tag,
                                blocks: n,
                                last,
                            }
                        }
                        Err(reason) => Event::Failed {
                            peer: from,
                            tag,
                            failure: Failure::Malformed(reason),
                        },
                    },
                };
                self.feed(node, event);
            }
        }
    }

    fn huge_status(&self, extra: u64) -> Status {
        let b = &self.best;
        Status::new(
            b.chain_id(),
            BlockHash([0xee; 32]),
            b.height() + 1000 + extra,
            b.tip_work() * 1000 + extra as u128,
        )
    }

    fn deliver_faulty(&mut self, id: Id, from: Id, wire: Wire) {
        let Some(f) = self.faulty.get_mut(&id) else {
            return;
        };
        let fault = f.fault;
        match wire {
            Wire::Connect => {
                f.connected.insert(from);
            }
            Wire::Disconnect => {
                let was = f.connected.remove(&from);
                if !(was && f.connected.is_empty() && f.lives > 0) {
                    return;
                }
                f.lives -= 1;
                let lives = f.lives;
                match fault {
                    // A fresh identity after being banned.
                    Fault::Flooder => {
                        let fresh = self.next_id;
                        self.spawn_faulty(fault, 100);
                        if let Some(f) = self.faulty.get_mut(&fresh) {
                            f.lives = lives;
                        }
                    }
                    Fault::Disconnecter => self.connect_faulty(id, 1000),
                    _ => {}
                }
            }
            Wire::Response { .. } => {}
            Wire::Request { .. } if !f.connected.contains(&from) => {}
            Wire::Request { tag, req } => {
                let best = self.best.clone();
                let (delay, resp) = match (fault, req) {
                    (Fault::Silent, _) => return,
                    (Fault::Staller, WireReq::Status(_)) => {
                        (self.latency(), WireResp::Status(self.huge_status(0)))
                    }
                    (Fault::Staller, WireReq::GetBlocks { .. }) => return,
                    (Fault::Liar, WireReq::Status(_)) => {
                        (self.latency(), WireResp::Status(self.huge_status(0)))
                    }
                    (Fault::Liar, WireReq::GetBlocks { .. }) => {
                        (self.latency(), WireResp::Blocks(Vec::new()))
                    }
                    (Fault::Slow, req @ WireReq::GetBlocks { .. }) => {
                        let slow = 3 * self.config.page_timeout.as_millis() as u64;
                        (slow, serve(&best, req))
                    }
                    (Fault::Slow, req) => (self.latency(), serve(&best, req)),
                    (Fault::Disconnecter, WireReq::GetBlocks { .. }) => {
                        self.disconnect(id, from);
                        return;
                    }
                    (Fault::Disconnecter, req) => (self.latency(), serve(&best, req)),
                    (Fault::Flooder, WireReq::GetBlocks { .. }) => {
                        (1, WireResp::Blocks(vec![Bytes(self.bad_block.encode())]))
                    }
                    (Fault::Flooder, WireReq::Status(_)) => {
                        (1, WireResp::Status(self.huge_status(0)))
                    }
                    (_, WireReq::GetMempool) => (self.latency(), WireResp::Mempool),
                };
                self.push(
                    delay,
                    Job::Deliver {
                        to: from,
                        from: id,
                        wire: Wire::Response { tag, resp },
                    },
                );
            }
        }
    }

    /// A flooder pushes a status claiming ever more work to every node, every 10 ms, for as
    /// long as it is connected to any.
    fn flood(&mut self, id: Id) {
        let Some(f) = self.faulty.get_mut(&id) else {
            return;
        };
        if f.connected.is_empty() && f.flood_count > 0 {
            return;
        }
        f.flood_count += 1;
        let count = f.flood_count;
        if count > 2000 {
            return;
        }
        let targets: Vec<Id> = f.connected.iter().copied().collect();
        let status = self.huge_status(count);
        for to in targets {
            self.push(
                1,
                Job::Deliver {
                    to,
                    from: id,
                    wire: Wire::Request {
                        tag: u64::MAX - count,
                        req: WireReq::Status(status),
                    },
                },
            );
        }
        self.push(10, Job::Flood(id));
    }
}

/// What an honest holder of `chain` answers.
fn serve(chain: &ChainState, req: WireReq) -> WireResp {
    match req {
        WireReq::Status(_) => WireResp::Status(status_of(chain)),
        WireReq::GetBlocks { locator } => {
            WireResp::Blocks(blocks_after(chain, &locator, PAGE).unwrap_or_default())
        }
        WireReq::GetMempool => WireResp::Mempool,
    }
}
