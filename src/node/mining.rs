//! Mining: one job at a time on the miner's own thread, on a template of the best tip; a new
//! tip cancels the job (at the end of the step that changed it) and the next one starts on the
//! new tip. A found block is processed like any other and published.
//!
//! The miner thread lives as long as the node, in the idle scheduling class
//! ([`crate::priority::idle_this_thread`]). After a job it polls for the next one for [`SPIN`]
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
use crate::chain::{Block, BlockHash, Header, Outcome, ValidationError};
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

/// How long the miner thread polls for its next job before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// The miner thread's queue. Dropping it ends the thread once its job ends.
pub(super) struct MinerThread {
    jobs: std_mpsc::Sender<ToMiner>,
}

impl MinerThread {
    /// Starts the thread; results go to `results`.
    pub(super) fn spawn(results: mpsc::Sender<MinedResult>) -> std::io::Result<Self> {
        let (jobs, rx) = std_mpsc::channel::<ToMiner>();
        std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || {
                // Below everything else of the node: blocks are relayed and the dashboard
                // answers at once, even when the miner has every core.
                crate::priority::idle_this_thread("miner");
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
                    let result = miner::solve(&job.template.header, job.threads, &job.cancel);
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
        Ok(Self { jobs })
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
}

impl Job {
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
        if (!wanted || astray)
            && let Some(job) = self.job.take()
        {
            job.cancel();
        }
        if self.job.is_some() || !wanted || self.tip_change.is_some() {
            return;
        }
        let template = block_template(&self.chain, &self.mempool, self.wallet.address(), now_ms());
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
