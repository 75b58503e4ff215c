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

use super::{BlockInfo, Node, now_ms};
use crate::chain::template::block_template;
use crate::chain::{Block, Outcome};
use crate::miner::{self, Mined};
use crate::net::Topic;
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
    pub(super) blocks: mpsc::UnboundedSender<Result<BlockInfo, String>>,
}

/// A search to run: the template to solve, on how many threads, and its cancel flag.
struct JobSpec {
    id: u64,
    template: Block,
    threads: usize,
    cancel: Arc<AtomicBool>,
}

/// How long the miner thread polls for its next job before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// The miner thread's queue. Dropping it ends the thread once its job ends.
pub(super) struct MinerThread {
    jobs: std_mpsc::Sender<JobSpec>,
}

impl MinerThread {
    /// Starts the thread; results go to `results`.
    pub(super) fn spawn(results: mpsc::Sender<MinedResult>) -> std::io::Result<Self> {
        let (jobs, rx) = std_mpsc::channel::<JobSpec>();
        std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || {
                // Below everything else of the node: blocks are relayed and the dashboard
                // answers at once, even when the miner has every core.
                crate::priority::idle_this_thread("miner");
                while let Some(job) = next_job(&rx) {
                    let started = Instant::now();
                    let result = miner::solve(&job.template.header, job.threads, &job.cancel);
                    let at = Instant::now();
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
                }
            })?;
        Ok(Self { jobs })
    }
}

/// The next job: polled for [`SPIN`], yielding the core between two polls (a busy-wait would
/// keep the actor that makes the job waiting behind it), then waited for. `None` once the node
/// dropped the queue.
fn next_job(rx: &std_mpsc::Receiver<JobSpec>) -> Option<JobSpec> {
    let until = Instant::now() + SPIN;
    while Instant::now() < until {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(std_mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            Err(std_mpsc::TryRecvError::Disconnected) => return None,
        }
    }
    rx.recv().ok()
}

/// The running mining job.
pub(super) struct Job {
    /// Matches its [`MinedResult`].
    id: u64,
    /// Set to stop the search.
    cancel: Arc<AtomicBool>,
}

impl Job {
    /// Stops the search; its result, if any, is ignored.
    pub(super) fn cancel(self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Node {
    /// Starts a job if mining is wanted (continuous, or someone waits for a block) and none
    /// runs; stops the running one if nobody wants it any more. Starts none while a tip change
    /// waits for the end of the step: the mempool would still hold transfers the new tip
    /// includes.
    pub(super) fn maybe_start_mining(&mut self) {
        // Those who stopped listening want nothing more.
        self.mine_waiters.retain(|w| !w.blocks.is_closed());
        let wanted = self.mining || !self.mine_waiters.is_empty();
        if !wanted && let Some(job) = self.job.take() {
            job.cancel();
        }
        if self.job.is_some() || !wanted || self.tip_change.is_some() {
            return;
        }
        let template = block_template(&self.chain, &self.mempool, self.wallet.address(), now_ms());
        let cancel = Arc::new(AtomicBool::new(false));
        let id = self.next_job;
        self.next_job += 1;
        self.job = Some(Job {
            id,
            cancel: cancel.clone(),
        });
        let job = JobSpec {
            id,
            template,
            threads: self.config.threads,
            cancel,
        };
        if self.miner.jobs.send(job).is_err() {
            tracing::error!("the miner thread has stopped; no block can be mined");
            self.job = None;
            self.mining = false;
            for waiter in self.mine_waiters.drain(..) {
                let _ = waiter.blocks.send(Err("the miner has stopped".into()));
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
        if self.job.as_ref().is_some_and(|j| j.id == mined.job) {
            self.job = None;
        }
        let Mined::Found { header, hashes } = mined.result else {
            return;
        };
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
                self.net.publish(Topic::Blocks, checked.wire().to_vec());
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
            Err(e) => tracing::error!("our own mined block was rejected: {e}"),
        }
    }
}
