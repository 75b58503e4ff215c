//! Mining: one job at a time on a blocking thread, on a template of the best tip; a new tip
//! cancels the job (at the end of the step that changed it) and the next one starts on the new
//! tip. A found block is processed like any other and published.

use super::{BlockInfo, Node, now_ms};
use crate::chain::template::block_template;
use crate::chain::{Block, Outcome};
use crate::miner::{self, Mined};
use crate::net::Topic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    /// runs. Not while a tip change waits for the end of the step: the mempool would still hold
    /// transfers the new tip includes.
    pub(super) fn maybe_start_mining(&mut self) {
        let wanted = self.mining || !self.mine_waiters.is_empty();
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
        let threads = self.config.threads;
        let tx = self.mined_tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = miner::solve(&template.header, threads, &cancel);
            let at = Instant::now();
            let _ = tx.blocking_send(MinedResult {
                job: id,
                template,
                result,
                at,
                took: at - started,
            });
        });
    }

    /// Turns continuous mining on or off (a job for a waiting `mine_one` keeps running).
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
        // Taken before processing: the tip change restarts the miner only for the waiters
        // still left.
        let waiter = (!self.mine_waiters.is_empty()).then(|| self.mine_waiters.remove(0));
        match self.process_block(block, hash, None, None) {
            Ok(p) if p.outcome == Outcome::Accepted && !p.accepted.is_empty() => {
                // The mined block is the first accepted (orphans it connected follow).
                let checked = &p.accepted[0];
                self.net.publish(Topic::Blocks, checked.wire().to_vec());
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(BlockInfo {
                        hash,
                        on_best_chain: self.chain.is_active(&hash),
                        block: checked.block().clone(),
                        found_at: Some(mined.at),
                    }));
                }
            }
            other => {
                if let Err(e) = other {
                    tracing::error!("our own mined block was rejected: {e}");
                }
                if let Some(waiter) = waiter {
                    self.mine_waiters.insert(0, waiter);
                }
            }
        }
    }
}
