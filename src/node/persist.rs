//! Writes accepted blocks to the store on a thread of its own, so that waiting for the disk
//! never stalls the node or the network tasks that share its runtime (a block is relayed and
//! shown as the tip as soon as it is validated). Batches queued while a commit runs are merged
//! into the next one. A crash can lose only the batches not yet committed: blocks the node
//! re-downloads from its peers; what was committed is never lost.

use crate::chain::{BlockKey, CheckedBlock};
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// One change of the store: blocks to add, blocks to delete, the new best tip.
pub struct Batch {
    /// Blocks accepted as valid, parents first.
    pub accepted: Vec<Arc<CheckedBlock>>,
    /// Stored blocks found invalid.
    pub rejected: Vec<BlockKey>,
    /// The best tip after the change.
    pub tip: BlockKey,
    /// The chain state's generation this batch ends ([`crate::chain::ChainState::next_generation`]):
    /// once committed, what the tree made up to it can be read back from the store.
    pub generation: u64,
}

impl Batch {
    /// Appends a later batch (its deletions and tip win).
    fn merge(&mut self, later: Batch) {
        self.accepted.extend(later.accepted);
        self.rejected.extend(later.rejected);
        self.tip = later.tip;
        self.generation = later.generation;
    }
}

/// Batches queued before [`Persister::try_submit`] hands a batch back.
const QUEUE: usize = 64;

/// The writer thread and the queue to it.
pub struct Persister {
    /// The generation of the last batch committed, for the node to release memory.
    committed: Arc<AtomicU64>,
    /// `None` once closed.
    tx: Option<mpsc::SyncSender<Batch>>,
    /// The thread, joined on close.
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// Starts the writer thread, which owns `store` from now on.
    pub fn spawn(store: Store) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
        let committed = Arc::new(AtomicU64::new(0));
        let done = committed.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(&store, &rx, &done))?;
        Ok(Self {
            committed,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a batch without ever waiting. If [`QUEUE`] batches already wait (the disk is
    /// behind), hands it back: the caller keeps it, merges what comes next into it and offers
    /// it again later, so the writer's queue and the caller's thread are never blocked.
    pub fn try_submit(&self, batch: Batch) -> Result<(), Batch> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        match tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(batch)) => Err(batch),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                tracing::error!("the store writer has stopped; blocks are kept in memory only");
                Ok(())
            }
        }
    }

    /// The generation of the last batch the store committed.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Queues `last` (waiting for room if need be), writes everything queued and stops the
    /// thread (blocking).
    pub fn close(mut self, last: Option<Batch>) {
        if let (Some(tx), Some(batch)) = (&self.tx, last)
            && tx.send(batch).is_err()
        {
            tracing::error!("the store writer has stopped; the last blocks were not written");
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(store: &Store, rx: &mpsc::Receiver<Batch>, committed: &AtomicU64) {
    let mut open = true;
    while open {
        let mut batch = match rx.recv() {
            Ok(b) => b,
            Err(_) => return,
        };
        loop {
            while let Ok(more) = rx.try_recv() {
                batch.merge(more);
            }
            match store.commit(&batch.accepted, &batch.rejected, batch.tip) {
                Ok(()) => {
                    committed.store(batch.generation, Ordering::Release);
                    break;
                }
                Err(e) => {
                    tracing::error!("cannot write the block store (retrying in 1 s): {e}");
                    // Waits for the disk to recover, gathering what arrives meanwhile; once
                    // the node has closed the queue, one more attempt is made, then no more.
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(more) => batch.merge(more),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) if open => open = false,
                        Err(RecvTimeoutError::Disconnected) => {
                            tracing::error!(
                                blocks = batch.accepted.len(),
                                "giving up writing the block store; these blocks will be downloaded again from peers"
                            );
                            return;
                        }
                    }
                }
            }
        }
    }
}
