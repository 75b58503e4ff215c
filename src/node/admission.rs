//! Transfer admission in batches, off the actor: transfers that arrive by gossip or are
//! submitted through the handle (`POST /tx`, the CLI) wait here up to [`BATCH_WAIT`] (or until
//! [`MAX_BATCH`] of them wait), their signatures are verified together on a blocking thread
//! (ZIP 215 batches, cached ones skipped: [`validate::transfer_verdicts`]), and the actor then
//! admits them in arrival order, checking only nonces, balances and the pool's bounds
//! ([`Mempool::admit_verified`](crate::chain::Mempool::admit_verified)).
//!
//! One batch is verified at a time: the batches finish in the order they started, so arrival
//! order holds across batches too (a sender's nonce n+1 right after n is admitted after it),
//! and the batch size follows the load: what arrives while one batch is being verified goes
//! into the next.

use crate::chain::tx::SignatureError;
use crate::chain::{ChainId, MempoolError, SigCache, Transfer, Txid, validate};
use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

/// How long the first transfer of a batch waits for others: a few milliseconds add little to
/// a submission's answer, and at 1 000 transfers a second make batches of several.
pub(super) const BATCH_WAIT: Duration = Duration::from_millis(2);
/// Most transfers in one batch (the rest wait for the next).
pub(super) const MAX_BATCH: usize = 1024;
/// Most transfers waiting or being verified; beyond it a gossiped transfer is ignored (not
/// forwarded, no penalty) and a submitted one is checked on the actor as before.
pub(super) const MAX_WAITING: usize = 16_384;

/// Where a waiting transfer came from, and so where its verdict goes.
pub(super) enum Source {
    /// Gossip: the verdict goes to gossipsub (accept and forward, ignore, or reject and ban).
    Gossip {
        /// The peer that relayed it.
        peer: PeerId,
        /// The message, to report on.
        id: MessageId,
    },
    /// The handle: the submitter waits for the answer.
    Local {
        /// The answer.
        reply: oneshot::Sender<Result<Txid, MempoolError>>,
    },
}

/// A transfer waiting for its signature's verdict.
pub(super) struct Candidate {
    /// The transfer.
    pub(super) tx: Transfer,
    /// Its txid, computed once on arrival.
    pub(super) txid: Txid,
    /// Where it came from.
    pub(super) source: Source,
}

/// A batch back from its verification: each candidate with its signature's verdict, in arrival
/// order.
pub(super) struct Verdicts {
    /// The candidates and their verdicts.
    pub(super) checked: Vec<(Candidate, Result<(), SignatureError>)>,
}

/// The transfers waiting for verification, and the batch being verified.
pub(super) struct Admission {
    /// Arrived, not yet handed to a worker, oldest first.
    waiting: Vec<Candidate>,
    /// When the oldest waiting transfer has waited [`BATCH_WAIT`].
    deadline: Option<Instant>,
    /// Transfers in the batch being verified (0: none is).
    in_flight: usize,
    /// Where verified batches go back to the actor; one batch at a time, so one slot is
    /// enough.
    done: mpsc::Sender<Verdicts>,
    /// The chain's signature cache.
    cache: Arc<SigCache>,
    /// The chain whose signatures are checked.
    chain_id: ChainId,
}

impl Admission {
    /// No transfer waiting; verified batches are sent to `done`.
    pub(super) fn new(
        chain_id: ChainId,
        cache: Arc<SigCache>,
        done: mpsc::Sender<Verdicts>,
    ) -> Self {
        Self {
            waiting: Vec::new(),
            deadline: None,
            in_flight: 0,
            done,
            cache,
            chain_id,
        }
    }

    /// Whether [`MAX_WAITING`] transfers are waiting or being verified: no more are queued.
    pub(super) fn is_full(&self) -> bool {
        self.waiting.len() + self.in_flight >= MAX_WAITING
    }

    /// Queues a transfer (the caller checked [`Admission::is_full`]).
    pub(super) fn queue(&mut self, candidate: Candidate) {
        if self.waiting.is_empty() {
            self.deadline = Some(Instant::now() + BATCH_WAIT);
        }
        self.waiting.push(candidate);
        self.start_if_due();
    }

    /// When the loop must wake to start a batch: `None` if none waits or one is being
    /// verified (its end starts the next).
    pub(super) fn due(&self) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        self.deadline
    }

    /// Starts verifying a batch if none is being verified and the oldest waiting transfer has
    /// waited long enough or the batch is full.
    pub(super) fn start_if_due(&mut self) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if self.in_flight > 0 || (self.waiting.len() < MAX_BATCH && Instant::now() < deadline) {
            return;
        }
        let rest = self.waiting.split_off(self.waiting.len().min(MAX_BATCH));
        let batch = std::mem::replace(&mut self.waiting, rest);
        // What is left has waited as long as the batch: it goes as soon as this one is back.
        self.deadline = (!self.waiting.is_empty()).then(Instant::now);
        self.in_flight = batch.len();
        let (cache, chain_id, done) = (self.cache.clone(), self.chain_id, self.done.clone());
        tokio::task::spawn_blocking(move || {
            let transfers: Vec<(Transfer, Txid)> = batch.iter().map(|c| (c.tx, c.txid)).collect();
            let verdicts = validate::transfer_verdicts(&transfers, &chain_id, &cache);
            let checked = batch.into_iter().zip(verdicts).collect();
            // Fails only when the node has stopped.
            let _ = done.blocking_send(Verdicts { checked });
        });
    }

    /// A batch is back: the next may start.
    pub(super) fn finished(&mut self) {
        self.in_flight = 0;
    }
}
