//! Mining: one job at a time on the miner's own thread, on a template of the best tip; a new
//! tip cancels the job (at the end of the step that changed it) and the next one starts on the
//! new tip. A found block is processed like any other and published.
//!
//! The template follows the mempool while the search runs, as pool software refreshes its
//! jobs: when transfers arrived since it was built and it is [`REFRESH_INTERVAL`] old, or
//! sooner when they pay enough new fees ([`refresh_due`]), the node builds a new one and it
//! replaces the job; the node's loop wakes for it ([`Node::refresh_at`]) even when nothing
//! else happens. A template that took long to build (a full mempool on a busy machine) waits
//! [`REFRESH_COST_FACTOR`] times its build time instead, so that building templates never
//! takes more than a small share of the node's thread. Nothing is lost by a rebuild: every
//! nonce tried is an independent draw, so the search on the new template is as close to a
//! block as the old one was.
//!
//! The miner thread lives as long as the node, at the normal scheduling class but
//! [`MINER_NICE`] steps nicer than the node ([`crate::priority::lower_this_thread_by`]): in
//! the idle class it got only what everything else on the machine left (a quarter of its hash
//! rate while the node validated a thousand transfers a second, and nothing at all while
//! another program kept the cores busy), so block intervals stretched to many times the
//! target. Relay still comes first: while the node processes a block ([`RelayGuard`]) the
//! search pauses within a chunk of nonces and gives its core to validation and gossip.
//! After a job it polls for the next one for [`SPIN`]
//! before it sleeps: the next job usually comes within a fraction of that (the block accepted,
//! a new template), and a sleeping thread can take as long to wake as a block takes to find at
//! low difficulty. It yields its core between two polls: the next job comes only once the
//! actor has handled the result, and the actor, woken by that result, is often queued on the
//! miner's own core.
//!
//! A job can carry a follow-up: a coinbase-only block on the block the job will find
//! ([`follow_up_template`]). The miner starts it the moment it finds the job's block, before
//! the node has even seen that block, so the search never waits for the node. The node keeps
//! the follow-up running when the block is accepted as the new tip and the template it would
//! build is the same but for a fresher timestamp (no transfer waiting, the follow-up's stamp
//! under [`FOLLOW_UP_STALE_MS`] old), and hands the miner the follow-up's own follow-up;
//! otherwise it cancels it and starts a job as before. Only where more blocks are wanted after
//! the job's: `mine N` finds N blocks, not one more.

use super::{BlockInfo, MineError, Node, now_ms};
use crate::chain::template::{block_template, follow_up_template};
use crate::chain::tree::TipChange;
use crate::chain::{Block, BlockHash, Header, Outcome, Transaction, ValidationError};
use crate::miner::{self, Mined};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A mining job's result.
pub(super) struct MinedResult {
    /// The job it answers.
    job: u64,
    /// The block mined on (nonce 0).
    template: Block,
    /// A solution, or why there is none.
    result: Mined,
    /// When the search ended.
    at: Instant,
    /// How long it ran.
    took: std::time::Duration,
}

/// Someone waiting for `left` more blocks of this node's miner.
pub(super) struct MineWaiter {
    /// Blocks still wanted (at least 1 while queued).
    pub(super) left: u64,
    /// Where each accepted block goes.
    pub(super) blocks: mpsc::UnboundedSender<Result<BlockInfo, MineError>>,
}

/// A search to run: the template to solve, on how many threads, its cancel flag, and what to
/// mine next if it finds a block.
struct JobSpec {
    id: u64,
    template: Block,
    threads: usize,
    cancel: Arc<AtomicBool>,
    follow: Option<FollowUp>,
}

/// A search to start as soon as a job finds its block, on that block.
#[derive(Clone)]
struct FollowUp {
    id: u64,
    /// Its parent hash is filled in by the miner.
    template: Block,
    cancel: Arc<AtomicBool>,
}

/// What the node tells the miner thread.
enum ToMiner {
    /// Search this now (any earlier search was cancelled).
    Job(JobSpec),
    /// When job `after` finds its block, go on with `follow`.
    Follow { after: u64, follow: FollowUp },
}

/// A follow-up stamped longer ago than this is replaced by a fresh template.
const FOLLOW_UP_STALE_MS: u64 = 1000;

/// A template with room is rebuilt once it is this old if any transfer arrived since: a
/// transfer that reached the mempool is searched on within this (and the time to build the
/// template), whatever the block interval. Building one for a full mempool takes a few
/// milliseconds of the node's thread ([`REFRESH_COST_FACTOR`] bounds that share).
pub(super) const REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// A template is not rebuilt before it is this many times as old as its own build took: at
/// most about 1 / `REFRESH_COST_FACTOR` of the node's thread goes to building templates.
pub(super) const REFRESH_COST_FACTOR: u32 = 20;

/// No template is rebuilt younger than this, however many fees arrive: building one for a full
/// mempool takes milliseconds of the node's own thread.
pub(super) const REFRESH_MIN_AGE: Duration = Duration::from_millis(100);

/// Transfers that arrived since the template was built rebuild it early when their fees reach
/// 1 / `REFRESH_FEE_SHARE` of the template's own fees.
pub(super) const REFRESH_FEE_SHARE: u64 = 10;

/// How many steps nicer than the node the miner thread runs.
pub(super) const MINER_NICE: i32 = 10;

/// What the refresh policy looks at: the running template and what arrived since it was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Freshness {
    /// Time since the template was built.
    pub(super) age: Duration,
    /// Transfers admitted to the mempool since.
    pub(super) arrived: u64,
    /// The fees they pay.
    pub(super) arrived_fees: u64,
    /// The fees of the template's transfers.
    pub(super) template_fees: u64,
    /// Whether the template could hold more transfers.
    pub(super) room: bool,
    /// How long building the template took.
    pub(super) build: Duration,
}

/// How old a template with room must be before arrivals rebuild it: [`REFRESH_INTERVAL`], or
/// [`REFRESH_COST_FACTOR`] times its build time if that is longer.
pub(super) fn refresh_interval(build: Duration) -> Duration {
    REFRESH_INTERVAL.max(build.saturating_mul(REFRESH_COST_FACTOR))
}

/// Whether the running template should be rebuilt from the mempool: something arrived and
/// either it pays enough new fees ([`REFRESH_FEE_SHARE`], not sooner than [`REFRESH_MIN_AGE`]
/// nor half its [`refresh_interval`]) or the template has room and is [`refresh_interval`]
/// old. A full template gains only from better fees: transfers that pay no more than those it
/// carries would not enter it.
pub(super) fn refresh_due(f: &Freshness) -> bool {
    let interval = refresh_interval(f.build);
    if f.arrived == 0 || f.age < REFRESH_MIN_AGE.max(interval / 2) {
        return false;
    }
    let fees =
        f.arrived_fees > 0 && f.arrived_fees.saturating_mul(REFRESH_FEE_SHARE) >= f.template_fees;
    fees || (f.room && f.age >= interval)
}

/// Pauses the miner while it lives: made when the node starts processing a block, so that the
/// block is validated and relayed on every core first.
pub(super) struct RelayGuard(Arc<AtomicBool>);

impl RelayGuard {
    /// Pauses the search until the guard is dropped.
    pub(super) fn new(pause: &Arc<AtomicBool>) -> Self {
        pause.store(true, Ordering::Relaxed);
        Self(pause.clone())
    }
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// How long the miner thread polls for its next job before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// The miner thread's queue. Dropping it ends the thread once its job ends.
pub(super) struct MinerThread {
    jobs: std_mpsc::Sender<ToMiner>,
    /// Set while the node processes a block: the search waits ([`RelayGuard`]).
    pub(super) pause: Arc<AtomicBool>,
}

impl MinerThread {
    /// Starts the thread; results go to `results`.
    pub(super) fn spawn(results: mpsc::Sender<MinedResult>) -> std::io::Result<Self> {
        let (jobs, rx) = std_mpsc::channel::<ToMiner>();
        let pause = Arc::new(AtomicBool::new(false));
        let paused = pause.clone();
        std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || {
                // Below the node's own threads, but not in the idle class: it keeps a share
                // of the CPU when validation or other programs want every core.
                crate::priority::lower_this_thread_by(MINER_NICE, "miner");
                let mut queue = Queue {
                    rx,
                    follows: Vec::new(),
                };
                let mut next = queue.next_job();
                while let Some(mut job) = next {
                    if job.follow.is_none() {
                        job.follow = queue.take_follow(job.id);
                    }
                    let started = Instant::now();
                    let result = miner::solve_pausing(
                        &job.template.header,
                        job.threads,
                        &job.cancel,
                        &paused,
                    );
                    let at = Instant::now();
                    let found = match &result {
                        Mined::Found { header, .. } => Some(header.compute_hash()),
                        _ => None,
                    };
                    let sent = results.blocking_send(MinedResult {
                        job: job.id,
                        template: job.template,
                        result,
                        at,
                        took: at - started,
                    });
                    if sent.is_err() {
                        break;
                    }
                    next = match found {
                        Some(hash) => queue.after_found(job.id, job.follow, hash, job.threads),
                        None => queue.next_job(),
                    };
                }
            })?;
        Ok(Self { jobs, pause })
    }
}

/// The miner thread's side of the queue, with the follow-ups the node sent for jobs not over
/// yet (a follow-up can arrive before the search it follows has started).
struct Queue {
    rx: std_mpsc::Receiver<ToMiner>,
    follows: Vec<(u64, FollowUp)>,
}

impl Queue {
    /// Takes a message in: a job is returned (and every follow-up noted so far is void), a
    /// follow-up noted.
    fn note(&mut self, msg: ToMiner) -> Option<JobSpec> {
        match msg {
            ToMiner::Job(job) => {
                self.follows.clear();
                Some(job)
            }
            ToMiner::Follow { after, follow } => {
                self.follows.push((after, follow));
                None
            }
        }
    }

    /// The follow-up noted for job `id`; those of earlier jobs are dropped.
    fn take_follow(&mut self, id: u64) -> Option<FollowUp> {
        self.follows.retain(|(after, _)| *after >= id);
        let i = self.follows.iter().position(|(after, _)| *after == id)?;
        Some(self.follows.swap_remove(i).1)
    }

    /// The next message: polled for [`SPIN`] from `since`, yielding the core between two
    /// polls (a busy-wait would keep the actor that makes the job waiting behind it), then
    /// waited for. `None` once the node dropped the queue.
    fn recv(&self, since: Instant) -> Option<ToMiner> {
        while since.elapsed() < SPIN {
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(std_mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(std_mpsc::TryRecvError::Disconnected) => return None,
            }
        }
        self.rx.recv().ok()
    }

    /// The next job.
    fn next_job(&mut self) -> Option<JobSpec> {
        let since = Instant::now();
        loop {
            let msg = self.recv(since)?;
            if let Some(job) = self.note(msg) {
                return Some(job);
            }
        }
    }

    /// What to search once job `id` found the block `hash`: a job the node sent meanwhile,
    /// else the job's follow-up (given with it, or sent since) on that block, else the next
    /// job.
    fn after_found(
        &mut self,
        id: u64,
        follow: Option<FollowUp>,
        hash: BlockHash,
        threads: usize,
    ) -> Option<JobSpec> {
        loop {
            match self.rx.try_recv() {
                Ok(msg) => {
                    if let Some(job) = self.note(msg) {
                        return Some(job);
                    }
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return None,
            }
        }
        let mut follow = follow.or_else(|| self.take_follow(id));
        let since = Instant::now();
        loop {
            match follow.take() {
                Some(f) if !f.cancel.load(Ordering::Relaxed) => {
                    let mut template = f.template;
                    template.header.prev_hash = hash;
                    return Some(JobSpec {
                        id: f.id,
                        template,
                        threads,
                        cancel: f.cancel,
                        follow: self.take_follow(f.id),
                    });
                }
                // Cancelled: the node sends a job.
                Some(_) => return self.next_job(),
                None => {
                    let msg = self.recv(since)?;
                    if let Some(job) = self.note(msg) {
                        return Some(job);
                    }
                    follow = self.take_follow(id);
                }
            }
        }
    }
}

/// The running mining job.
pub(super) struct Job {
    /// Matches its [`MinedResult`].
    id: u64,
    /// Set to stop the search.
    cancel: Arc<AtomicBool>,
    /// The header searched (nonce 0; a follow-up's with its parent filled in).
    header: Header,
    /// Whether it is a follow-up, started by the miner before the node saw its parent.
    speculative: bool,
    /// What the miner goes on with when this job finds its block.
    follow: Option<FollowUp>,
    /// When its template was built (or, for a follow-up, found right).
    built: Instant,
    /// [`crate::chain::Mempool::arrivals`] then.
    arrivals: (u64, u64),
    /// Fees of its transfers.
    fees: u64,
    /// Whether it could hold more transfers.
    room: bool,
    /// How long building its template took.
    build: Duration,
}

impl Job {
    /// Its template's [`Freshness`] against the mempool's `arrivals` now.
    fn freshness(&self, arrivals: (u64, u64)) -> Freshness {
        Freshness {
            age: self.built.elapsed(),
            arrived: arrivals.0.saturating_sub(self.arrivals.0),
            arrived_fees: arrivals.1.saturating_sub(self.arrivals.1),
            template_fees: self.fees,
            room: self.room,
            build: self.build,
        }
    }

    /// Stops the search and its follow-up; a result, if any, is ignored.
    pub(super) fn cancel(self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(f) = self.follow {
            f.cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl Node {
    /// Whether blocks are wanted after the `n`-th from now (continuous mining, or a `mine`
    /// waiting for more).
    fn wanted_after(&self, n: u64) -> bool {
        self.mining || self.mine_waiters.iter().map(|w| w.left).sum::<u64>() > n
    }

    /// A follow-up for a job on `header`, if a block is wanted after it.
    fn follow_up(&mut self, header: &Header) -> Option<FollowUp> {
        if !self.wanted_after(1) {
            return None;
        }
        let id = self.next_job;
        self.next_job += 1;
        Some(FollowUp {
            id,
            template: follow_up_template(&self.chain, header, self.wallet.address(), now_ms()),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// At a change of the best chain: whether the running job is a follow-up that is what a
    /// fresh template would be, but for a timestamp not much older (the block before it became
    /// the tip, nothing else changed, no transfer is waiting).
    fn follow_up_still_right(&self, job: &Job, change: &TipChange) -> bool {
        job.speculative
            && change.disconnected.is_empty()
            && job.header.prev_hash == self.chain.tip()
            && job.header.height == self.chain.height() + 1
            && job.header.bits == self.chain.next_bits()
            && self.mempool.is_empty()
            && now_ms() <= job.header.timestamp.saturating_add(FOLLOW_UP_STALE_MS)
            && self.wanted_after(0)
    }

    /// Keeps the running follow-up if it is still right (and gives the miner the follow-up
    /// after it), else cancels the running job.
    pub(super) fn tip_changed_for_miner(&mut self, change: &TipChange) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        if !self.follow_up_still_right(&job, change) {
            job.cancel();
            return;
        }
        // What arrives from now on is what the coinbase-only follow-up lacks.
        job.built = Instant::now();
        job.arrivals = self.mempool.arrivals();
        if job.follow.is_none()
            && let Some(next) = self.follow_up(&job.header)
        {
            let sent = self.miner.jobs.send(ToMiner::Follow {
                after: job.id,
                follow: next.clone(),
            });
            if sent.is_ok() {
                job.follow = Some(next);
            }
        }
        self.job = Some(job);
    }

    /// When the running template becomes due for a rebuild by age alone ([`refresh_due`]):
    /// transfers arrived since it was built and it has room. The node's loop wakes then, so
    /// that the last transfers before a quiet spell are searched on too.
    pub(super) fn refresh_at(&self) -> Option<Instant> {
        let job = self.job.as_ref()?;
        let arrived = self.mempool.arrivals().0 > job.arrivals.0;
        let on_tip = !job.speculative || job.header.prev_hash == self.chain.tip();
        (arrived && job.room && on_tip && self.tip_change.is_none())
            .then(|| job.built + refresh_interval(job.build))
    }

    /// Starts a job if mining is wanted (continuous, or someone waits for a block) and none
    /// runs; stops the running one if nobody wants it any more, or if it is a follow-up whose
    /// parent did not become the tip. Starts none while a tip change waits for the end of the
    /// step: the mempool would still hold transfers the new tip includes.
    pub(super) fn maybe_start_mining(&mut self) {
        // Those who stopped listening want nothing more.
        self.mine_waiters.retain(|w| !w.blocks.is_closed());
        let wanted = self.mining || !self.mine_waiters.is_empty();
        let astray = self.job.as_ref().is_some_and(|j| {
            j.speculative && self.tip_change.is_none() && j.header.prev_hash != self.chain.tip()
        });
        // A template the mempool has outgrown is replaced, once the tip is settled (a
        // follow-up only on the tip it was found on).
        let stale = self.tip_change.is_none()
            && self.job.as_ref().is_some_and(|j| {
                (!j.speculative || j.header.prev_hash == self.chain.tip())
                    && refresh_due(&j.freshness(self.mempool.arrivals()))
            });
        if (!wanted || astray || stale)
            && let Some(job) = self.job.take()
        {
            job.cancel();
        }
        if self.job.is_some() || !wanted || self.tip_change.is_some() {
            return;
        }
        let arrivals = self.mempool.arrivals();
        let started = Instant::now();
        let template = block_template(&self.chain, &self.mempool, self.wallet.address(), now_ms());
        let build = started.elapsed();
        let transfers = template.txs.len().saturating_sub(1);
        let fees = template
            .txs
            .iter()
            .map(|t| match t {
                Transaction::Transfer(t) => t.fee,
                Transaction::Coinbase(_) => 0,
            })
            .fold(0u64, u64::saturating_add);
        let room = transfers < self.chain.params().max_block_txs.saturating_sub(1) as usize;
        tracing::debug!(
            height = template.header.height,
            transfers,
            build_us = build.as_micros() as u64,
            "new block template"
        );
        let cancel = Arc::new(AtomicBool::new(false));
        let id = self.next_job;
        self.next_job += 1;
        let follow = self.follow_up(&template.header);
        self.job = Some(Job {
            id,
            cancel: cancel.clone(),
            header: template.header,
            speculative: false,
            follow: follow.clone(),
            built: Instant::now(),
            arrivals,
            fees,
            room,
            build,
        });
        let job = JobSpec {
            id,
            template,
            threads: self.config.threads,
            cancel,
            follow,
        };
        if self.miner.jobs.send(ToMiner::Job(job)).is_err() {
            tracing::error!("the miner thread has stopped; no block can be mined");
            self.job = None;
            self.mining = false;
            for waiter in self.mine_waiters.drain(..) {
                let _ = waiter.blocks.send(Err(MineError::MinerStopped));
            }
        }
    }

    /// Turns continuous mining on or off (a job for a waiting `mine` keeps running).
    pub(super) fn set_mining(&mut self, on: bool) {
        self.mining = on;
        if !on
            && self.mine_waiters.is_empty()
            && let Some(job) = self.job.take()
        {
            job.cancel();
        }
    }

    pub(super) fn on_mined(&mut self, mined: MinedResult) {
        let current = self.job.as_ref().is_some_and(|j| j.id == mined.job);
        if current {
            let job = self.job.take().expect("the running job");
            if let Mined::Found { header, .. } = &mined.result
                && let Some(f) = job.follow
            {
                // The miner went on with the follow-up at once, on this block; the tip change
                // it makes decides whether it keeps it.
                let mut next = f.template.header;
                next.prev_hash = header.compute_hash();
                self.job = Some(Job {
                    id: f.id,
                    cancel: f.cancel,
                    header: next,
                    speculative: true,
                    follow: None,
                    built: Instant::now(),
                    arrivals: self.mempool.arrivals(),
                    fees: 0,
                    room: true,
                    build: Duration::ZERO,
                });
            }
        }
        let Mined::Found { header, hashes } = mined.result else {
            return;
        };
        if !current && header.prev_hash != self.chain.tip() {
            // A search cancelled too late, on a parent that is no longer the tip: its block
            // would only fork our own chain.
            tracing::debug!(
                height = header.height,
                "dropped a block found by a cancelled search"
            );
            return;
        }
        let mut block = mined.template;
        block.header = header;
        let hash = block.compute_hash();
        tracing::info!(height = header.height, block = %hash.short(), hashes, "mined a block");
        self.metrics.miner_hashes.inc_by(hashes);
        let secs = mined.took.as_secs_f64();
        if secs > 0.0 {
            self.metrics.miner_hash_rate.set(hashes as f64 / secs);
        }
        // Served before the end of the step, so that the tip change restarts the miner only
        // for the blocks still wanted.
        match self.process_block(block, hash, None, None) {
            Ok(p) if p.outcome == Outcome::Accepted && !p.accepted.is_empty() => {
                // The mined block is the first accepted (orphans it connected follow).
                let checked = &p.accepted[0];
                self.publish_block(checked);
                if let Some(waiter) = self.mine_waiters.front_mut() {
                    let _ = waiter.blocks.send(Ok(BlockInfo {
                        hash,
                        on_best_chain: self.chain.is_active(&hash),
                        block: checked.block().clone(),
                        found_at: Some(mined.at),
                    }));
                    waiter.left -= 1;
                    if waiter.left == 0 {
                        self.mine_waiters.pop_front();
                    }
                }
            }
            Ok(_) => {}
            // Not a fault of the node: its clock stepped back while the search ran, or it is
            // behind the chain's (the template's timestamp must follow the median of the last
            // blocks). The block may not be relayed before the clock catches up; it is dropped.
            Err(e @ ValidationError::TimestampTooNew { .. }) => tracing::warn!(
                "our own mined block is stamped ahead of this machine's clock and was dropped: \
                 {e} (the clock stepped back, or it is behind the other nodes': check the \
                 system clock)"
            ),
            Err(e) => tracing::error!("our own mined block was rejected: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(age_ms: u64, arrived: u64, arrived_fees: u64, template_fees: u64, room: bool) -> bool {
        refresh_due(&Freshness {
            age: Duration::from_millis(age_ms),
            arrived,
            arrived_fees,
            template_fees,
            room,
            build: Duration::from_millis(1),
        })
    }

    #[test]
    fn nothing_new_never_rebuilds() {
        assert!(!fresh(60_000, 0, 0, 0, true));
        assert!(!fresh(60_000, 0, 0, 100, false));
    }

    #[test]
    fn a_template_with_room_follows_the_mempool_every_interval() {
        let interval = REFRESH_INTERVAL.as_millis() as u64;
        // Feeless arrivals: only the interval rebuilds.
        assert!(!fresh(interval - 1, 500, 0, 1000, true));
        assert!(fresh(interval, 1, 0, 1000, true));
    }

    #[test]
    fn enough_new_fees_rebuild_sooner_but_not_before_the_minimum_age() {
        let min = REFRESH_MIN_AGE.as_millis() as u64;
        // A tenth of the template's fees.
        assert!(fresh(min, 3, 100, 1000, true));
        assert!(!fresh(min, 3, 99, 1000, true));
        assert!(!fresh(min - 1, 3, 10_000, 1000, true));
        // An empty template: any fee is enough.
        assert!(fresh(min, 1, 1, 0, true));
    }

    #[test]
    fn a_full_template_is_rebuilt_only_for_fees() {
        assert!(!fresh(60_000, 5000, 0, 5000, false));
        assert!(!fresh(60_000, 5000, 499, 5000, false));
        assert!(fresh(
            REFRESH_MIN_AGE.as_millis() as u64,
            5,
            500,
            5000,
            false
        ));
    }

    /// A template that took long to build is rebuilt less often: the node's thread spends at
    /// most about 1 / REFRESH_COST_FACTOR of its time on templates.
    #[test]
    fn a_costly_template_waits_in_proportion_to_its_cost() {
        let slow = |age_ms: u64, arrived_fees: u64| {
            refresh_due(&Freshness {
                age: Duration::from_millis(age_ms),
                arrived: 10,
                arrived_fees,
                template_fees: 1000,
                room: true,
                build: Duration::from_millis(50),
            })
        };
        let interval = 50 * u64::from(REFRESH_COST_FACTOR);
        assert!(interval > REFRESH_INTERVAL.as_millis() as u64);
        assert!(!slow(interval - 1, 0));
        assert!(slow(interval, 0));
        // Fees: from half of it.
        assert!(!slow(interval / 2 - 1, 1000));
        assert!(slow(interval / 2, 1000));
        assert_eq!(
            refresh_interval(Duration::from_micros(10)),
            REFRESH_INTERVAL
        );
    }
}
