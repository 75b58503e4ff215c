//! The node: an actor that owns the chain state, the mempool, the store and the miner. It reacts
//! to network events and to commands from a [`NodeHandle`] (the REPL, the CLI, tests), and
//! decides: accept or reject, request what is missing, publish, persist.
//!
//! One file per job: [`handle`] (the public types and the handle), `relay` (gossip and
//! transfer admission, compact blocks), `admission` (transfers' signatures verified in batches
//! off the actor),
//! `fetch` (carries out what [`crate::sync`] asks, answers peers' sync requests), `mining`,
//! `commands` (the handle's requests), `persist` (the store writer). This file holds the state,
//! [`start`], the loop and its dispatch.
//!
//! Each turn of the loop handles one event or command, then [`Node::end_of_step`] does the side
//! effects once: one mempool re-check and one miner restart for however many blocks changed the
//! tip (a sync batch of 256 blocks gives one of each), one status publish, one store batch.
//!
//! Nothing here awaits the network: commands to it are queued without waiting, so the network
//! can always hand the node its next event. No lock is shared with other tasks: state changes
//! happen inside the actor, and readers see a [`NodeStatus`] snapshot through a `watch`.

mod admission;
mod commands;
pub mod events;
mod fetch;
pub mod handle;
mod mining;
mod persist;
mod relay;

pub use fetch::decode_bodies;
pub use handle::{
    BlockId, BlockInfo, BlockState, MineError, NodeConfig, NodeError, NodeHandle, NodeStatus,
    SendError, Stopped,
};
pub use relay::{GossipVerdict, gossip_verdict};

use crate::chain::pace::ChainPace;
use crate::chain::{
    Block, BlockHash, BlockKey, ChainState, CheckedBlock, Mempool, Processed, TipChange,
    ValidationError,
};
use crate::metrics::{Metrics, Origin};
use crate::net::protocol::Status;
use crate::net::{self, Event, Topic};
use crate::store::Store;
use crate::sync::{Event as SyncEvent, SyncConfig};
use crate::wallet::{self, Wallet};
use events::Watch;
use fetch::{Fetch, VerifiedBatch};
use handle::Command;
use libp2p::{PeerId, identity};
use mining::{Job, MineWaiter, MinedResult, MinerThread};
use persist::{Batch, Persister};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// The actor's state.
struct Node {
    config: NodeConfig,
    chain: ChainState,
    mempool: Mempool,
    /// Writes accepted blocks on its own thread.
    persister: Persister,
    /// Reads the store (the txid index) while the writer writes it.
    store: crate::store::StoreReader,
    wallet: Wallet,
    net: net::Client,
    /// Block acquisition and its executor's timer.
    fetch: Fetch,
    status: watch::Sender<NodeStatus>,
    /// Blocks accepted but not yet committed, parents first.
    unsaved: Vec<Arc<CheckedBlock>>,
    /// Stored blocks found invalid, to delete at the next commit.
    unsaved_rejected: Vec<BlockKey>,
    /// Whether the tip changed since the last commit.
    tip_dirty: bool,
    /// The store writer's queue was full at the last flush: retry soon.
    store_behind: bool,
    /// The net change of the best chain during this step, applied to the mempool and the miner
    /// at its end.
    tip_change: Option<TipChange>,
    mining: bool,
    job: Option<Job>,
    next_job: u64,
    /// Who waits for blocks of this node's miner, first served first.
    mine_waiters: std::collections::VecDeque<MineWaiter>,
    /// Runs the mining jobs.
    miner: MinerThread,
    /// Where sync batches checked off the actor come back.
    verified_tx: mpsc::Sender<VerifiedBatch>,
    /// Events for watchers, block arrivals and the txid index.
    watch: Watch,
    /// Counters and gauges for `GET /metrics`.
    metrics: Arc<Metrics>,
    /// Transfers waiting for their signatures to be verified off the actor.
    admission: admission::Admission,
    /// Compact block relay's pending reconstructions and served blocks.
    compact: crate::sync::compact::CompactRelay<PeerId, libp2p::gossipsub::MessageId>,
    /// Transfers that left the mempool recently, for rebuilding compact blocks.
    recent: crate::chain::compact::RecentPool,
}

/// Who a block came from, for logs.
fn origin(from: Option<PeerId>) -> String {
    from.map_or_else(|| "this node".into(), |p| p.to_string())
}

/// Sleeps until `at`, or for ever when there is no such instant.
async fn wait_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How soon a batch the store writer had no room for is offered again.
const STORE_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Byte budget of the pool of transfers that recently left the mempool (about 16 000 transfers,
/// three full blocks), counted as [`crate::chain::compact::RECENT_ENTRY_BYTES`] each.
const RECENT_POOL_BYTES: usize = 4 << 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the data directory, loads the chain, starts the network and the actor. Returns the
/// handle and the actor's task, which ends after a shutdown once everything is closed.
pub async fn start(mut config: NodeConfig) -> Result<(NodeHandle, JoinHandle<()>), NodeError> {
    config.params.check()?;
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|cause| NodeError::DataDir {
        path: dir.clone(),
        cause,
    })?;
    let chain_id = config.params.chain_id();
    let store = Store::open(&dir.join("blocks.redb"), &config.params)?;
    let chain = store.load_chain(config.tree.clone())?;
    let reader = store.reader();
    let persister = Persister::spawn(store).map_err(|cause| NodeError::DataDir {
        path: dir.clone(),
        cause,
    })?;
    let (wallet, created) = Wallet::load_or_create(&dir.join("wallet.key"))?;
    if created {
        let address = crate::chain::ChainKind::of(&chain_id).encode(&wallet.address());
        tracing::info!(
            %address,
            "created a new wallet (a random key, backed up by copying wallet.key; `gossipchain wallet new` makes one with backup words)"
        );
    }
    let (id_secret, _) = wallet::load_or_create_secret(&dir.join("node.key"))?;
    let keypair = identity::Keypair::ed25519_from_bytes(id_secret)
        .map_err(|e| net::NetError::Build(e.to_string()))?;
    config.net.behaviour.chain_id = chain_id;
    config.net.behaviour.max_block_bytes = config.params.max_block_bytes;
    let metrics = Metrics::new();
    config.net.metrics = Some(metrics.registry());
    let (client, events, event_loop) = net::new(keypair, config.net.clone())?;
    let net_task = tokio::spawn(event_loop.run());

    let status = NodeStatus {
        peer_id: client.local_peer_id(),
        chain_id,
        tip: chain.tip(),
        height: chain.height(),
        work: chain.tip_work(),
        pace: ChainPace::of(&chain),
        peers: 0,
        mempool: 0,
        orphans: chain.orphan_count(),
        mining: config.mine,
        syncing: false,
        address: wallet.address(),
        listen: Vec::new(),
        reachable: Vec::new(),
    };
    tracing::info!(
        peer_id = %status.peer_id,
        chain = %chain_id.short(),
        height = status.height,
        tip = %status.tip.short(),
        "node started"
    );
    let (status_tx, status_rx) = watch::channel(status);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (mined_tx, mined_rx) = mpsc::channel(4);
    let miner = MinerThread::spawn(mined_tx).map_err(NodeError::MinerThread)?;
    let fetch = Fetch::new(
        SyncConfig {
            request_timeout: config.net.behaviour.request_timeout,
            bodies_timeout: config.net.behaviour.request_timeout,
            status_interval: config.status_interval,
            ..SyncConfig::new(chain_id)
        },
        chain.tip(),
    );
    // One batch at a time is validated, so a few slots are plenty.
    let (verified_tx, verified_rx) = mpsc::channel(4);
    // One batch of transfers is verified at a time: one slot.
    let (verdicts_tx, verdicts_rx) = mpsc::channel(1);
    let admission = admission::Admission::new(chain_id, chain.sig_cache().clone(), verdicts_tx);
    let (events_tx, _) = broadcast::channel(events::EVENT_CAPACITY);
    let watch = Watch::new(&chain, events_tx.clone());
    let node = Node {
        watch,
        mempool: Mempool::new(chain_id, config.mempool.clone())
            .with_sig_cache(chain.sig_cache().clone()),
        mining: config.mine,
        config,
        chain,
        persister,
        store: reader,
        wallet,
        net: client.clone(),
        fetch,
        status: status_tx,
        unsaved: Vec::new(),
        unsaved_rejected: Vec::new(),
        tip_dirty: false,
        store_behind: false,
        tip_change: None,
        job: None,
        next_job: 0,
        mine_waiters: std::collections::VecDeque::new(),
        miner,
        verified_tx,
        metrics: metrics.clone(),
        admission,
        compact: crate::sync::compact::CompactRelay::new(
            crate::sync::compact::CompactConfig::default(),
        ),
        recent: crate::chain::compact::RecentPool::new(RECENT_POOL_BYTES),
    };
    let task = tokio::spawn(node.run(events, cmd_rx, mined_rx, verified_rx, verdicts_rx, net_task));
    Ok((
        NodeHandle {
            tx: cmd_tx,
            net: client,
            status: status_rx,
            events: events_tx,
            http_url: Arc::default(),
            metrics,
        },
        task,
    ))
}

impl Node {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut commands: mpsc::Receiver<Command>,
        mut mined: mpsc::Receiver<MinedResult>,
        mut verified: mpsc::Receiver<VerifiedBatch>,
        mut verdicts: mpsc::Receiver<admission::Verdicts>,
        net_task: JoinHandle<()>,
    ) {
        self.maybe_start_mining();
        self.sync_event(SyncEvent::Timer);
        loop {
            let admission_waits = self.admission.due().is_some();
            let admission_due = self
                .admission
                .due()
                .unwrap_or_else(|| tokio::time::Instant::now() + STORE_RETRY);
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_net_event(event),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                Some(result) = mined.recv() => self.on_mined(result),
                Some(batch) = verified.recv() => self.on_verified_batch(batch),
                Some(batch) = verdicts.recv() => self.on_verdicts(batch),
                // The first waiting transfer has waited long enough for others.
                _ = tokio::time::sleep_until(admission_due), if admission_waits => {
                    self.admission.start_if_due();
                }
                // The instant block acquisition asked to be woken at (a deadline, a stall
                // check, the status round).
                _ = wait_until(self.fetch.wake) => {
                    self.fetch.wake = None;
                    self.sync_event(SyncEvent::Timer);
                }
                // A compact block's missing transfers or full block is overdue.
                _ = wait_until(self.compact.next_deadline()) => {
                    self.compact_event(crate::sync::compact::Event::Tick);
                }
                // The template is due for a rebuild with the transfers that arrived since.
                _ = wait_until(self.refresh_at()) => {}
                // The store writer's queue was full: offer the batch again soon.
                _ = tokio::time::sleep(STORE_RETRY), if self.store_behind => {}
            }
            self.end_of_step();
        }
        if let Some(job) = self.job.take() {
            job.cancel();
        }
        for waiter in self.mine_waiters.drain(..) {
            let _ = waiter.blocks.send(Err(MineError::ShuttingDown));
        }
        let last = self.take_batch();
        self.net.shutdown();
        drop(events);
        let _ = net_task.await;
        let persister = self.persister;
        let _ = tokio::task::spawn_blocking(move || persister.close(last)).await;
        tracing::info!(height = self.chain.height(), "node stopped");
    }

    fn on_net_event(&mut self, event: Event) {
        match event {
            Event::Listening(addr) => {
                self.status.send_modify(|s| s.listen.push(addr));
            }
            Event::Reachable(addrs) => {
                self.status.send_modify(|s| s.reachable = addrs);
            }
            Event::PeerConnected { peer, found_by } => {
                self.watch.peer(peer, true, Some(found_by));
                self.sync_event(SyncEvent::Connected(peer));
            }
            Event::PeerDisconnected { peer } => {
                self.watch.peer(peer, false, None);
                self.sync_event(SyncEvent::Disconnected(peer));
            }
            Event::Gossip {
                topic: Topic::Blocks,
                source,
                id,
                data,
            } => self.on_gossip_block(source, id, data),
            Event::Gossip {
                topic: Topic::Txs,
                source,
                id,
                data,
            } => self.on_gossip_tx(source, id, data),
            Event::Request {
                peer,
                request,
                channel,
            } => {
                let response = self.answer(peer, request);
                self.net.respond(channel, response);
            }
            Event::Response { peer, tag, result } => self.on_response(peer, tag, result),
        }
    }

    /// The side effects of a step, once: the mempool re-checked and the miner restarted for the
    /// net change of the best chain, the status published, the store handed what is new.
    fn end_of_step(&mut self) {
        if let Some(change) = self.tip_change.take() {
            self.apply_tip_change(&change);
        }
        self.maybe_start_mining();
        self.tell_tip();
        self.publish_status();
        self.flush();
        // What the store has committed may leave memory.
        self.chain.persisted(self.persister.committed());
        // Watchers last, after the step's network commands (a block to relay) and the status.
        self.watch.send_step();
    }

    /// What a change of the best chain means for the mempool (included transfers leave, those
    /// of a losing branch come back and are pushed to peers) and the miner (a new template).
    fn apply_tip_change(&mut self, change: &TipChange) {
        self.watch.tip_changed(change, self.chain.height());
        if !change.disconnected.is_empty() {
            self.metrics.reorg(change.disconnected.len());
        }
        // A one-block reorganisation is the daily life of several miners (two found a block
        // at once); a deeper one is worth a warning.
        match change.disconnected.len() {
            0 => {}
            1 => tracing::info!(
                from = %change.old_tip.short(),
                to = %change.new_tip.short(),
                connected = change.connected.len(),
                "reorganisation of one block"
            ),
            depth => tracing::warn!(
                from = %change.old_tip.short(),
                to = %change.new_tip.short(),
                disconnected = depth,
                connected = change.connected.len(),
                "reorganisation"
            ),
        }
        // Included transfers may still be named by a competing block's compact form.
        for block in &change.connected {
            for (tx, txid) in block.txs.iter().zip(block.txids()) {
                if let crate::chain::Transaction::Transfer(t) = tx {
                    self.recent.insert(*txid, *t);
                }
            }
        }
        let resync = self.mempool.resync(change, self.chain.ledger());
        if !resync.returned.is_empty() || resync.dropped > 0 {
            tracing::info!(
                returned = resync.returned.len(),
                dropped = resync.dropped,
                "mempool re-checked"
            );
        }
        if !resync.returned.is_empty() {
            self.push_to_peers(&resync.returned);
        }
        self.tip_changed_for_miner(change);
    }

    /// Hands accepted blocks and the tip to the store writer (one transaction per batch)
    /// without waiting: if its queue is full, the batch stays here, grows with what comes next,
    /// and is offered again after [`STORE_RETRY`].
    fn flush(&mut self) {
        let Some(batch) = self.take_batch() else {
            return;
        };
        match self.persister.try_submit(batch) {
            Ok(()) => self.store_behind = false,
            Err(batch) => {
                if !self.store_behind {
                    tracing::warn!("the store writer is behind; keeping new blocks in memory");
                }
                self.store_behind = true;
                self.unsaved = batch.accepted;
                self.unsaved_rejected = batch.rejected;
                self.tip_dirty = true;
            }
        }
    }

    /// What the store has not been handed yet, if anything.
    fn take_batch(&mut self) -> Option<Batch> {
        if self.unsaved.is_empty() && self.unsaved_rejected.is_empty() && !self.tip_dirty {
            return None;
        }
        self.tip_dirty = false;
        Some(Batch {
            accepted: std::mem::take(&mut self.unsaved),
            rejected: std::mem::take(&mut self.unsaved_rejected),
            tip: self.chain.tip_key(),
            generation: self.chain.next_generation(),
        })
    }

    fn our_status(&self) -> Status {
        Status::new(
            self.chain.chain_id(),
            self.chain.tip(),
            self.chain.height(),
            self.chain.tip_work(),
        )
    }

    fn publish_status(&self) {
        let (tip, height, work) = (self.chain.tip(), self.chain.height(), self.chain.tip_work());
        let peers = self.fetch.sync.peers().count();
        let mempool = self.mempool.len();
        let orphans = self.chain.orphan_count();
        let (mining, syncing) = (self.mining, self.fetch.sync.is_syncing());
        self.update_gauges(height, mempool, syncing);
        self.status.send_if_modified(|s| {
            let changed = s.tip != tip
                || s.peers != peers
                || s.mempool != mempool
                || s.orphans != orphans
                || s.mining != mining
                || s.syncing != syncing;
            if s.tip != tip {
                s.pace = ChainPace::of(&self.chain);
            }
            s.tip = tip;
            s.height = height;
            s.work = work;
            s.peers = peers;
            s.mempool = mempool;
            s.orphans = orphans;
            s.mining = mining;
            s.syncing = syncing;
            changed
        });
    }

    /// The metrics of the node's state, at the end of a step.
    fn update_gauges(&self, height: u64, mempool: usize, syncing: bool) {
        let m = &self.metrics;
        m.height.set(height as i64);
        m.mempool.set(mempool as i64);
        m.syncing.set(syncing as i64);
        let target = (self.fetch.sync.peers())
            .filter_map(|p| self.fetch.sync.claim(p))
            .map(|c| c.height)
            .max()
            .unwrap_or(0);
        m.sync_target_height.set(target.max(height) as i64);
        let stats = self.fetch.sync.stats();
        for (event, total) in [
            ("headers_requested", stats.headers_requested),
            ("headers_checked", stats.headers_checked),
            ("bodies_requested", stats.bodies_requested),
            ("bodies_received", stats.bodies_received),
            ("batches_applied", stats.batches_applied),
            ("timeout", stats.timeouts),
            ("stall", stats.stalls),
            ("failure", stats.failures),
        ] {
            Metrics::catch_up(
                &m.sync.get_or_create(&crate::metrics::SyncLabel { event }),
                total,
            );
        }
    }

    /// Validates a block from anywhere (`hash` is its header's, computed once by the caller;
    /// `txids` its txids if the caller has them, see [`KnownTxids`]) and records what follows
    /// for the end of the step: persistence, the tip change for the mempool and the miner.
    /// Counted in the metrics as from gossip (`from` a peer) or local.
    fn process_block(
        &mut self,
        block: Block,
        hash: BlockHash,
        txids: Option<KnownTxids>,
        from: Option<PeerId>,
    ) -> Result<Processed, ValidationError> {
        let started = std::time::Instant::now();
        // The miner waits while the block is validated and relayed.
        let _relay_first = mining::RelayGuard::new(&self.miner.pause);
        let result = self.validate_block(block, hash, txids, from);
        let origin = if from.is_some() {
            Origin::Gossip
        } else {
            Origin::Local
        };
        self.metrics
            .block_result(origin, &result, |p| p.accepted.len(), started.elapsed());
        result
    }

    /// [`Self::process_block`] without the metrics.
    fn validate_block(
        &mut self,
        block: Block,
        hash: BlockHash,
        txids: Option<KnownTxids>,
        from: Option<PeerId>,
    ) -> Result<Processed, ValidationError> {
        if self.chain.known(&hash).is_some() {
            return self.apply_known(hash);
        }
        let block = Arc::new(block);
        let params = self.chain.params();
        let checked = match txids {
            Some(k) => {
                CheckedBlock::check_known(block.clone(), hash, k.txids, k.root_checked, params)
            }
            None => CheckedBlock::check(block.clone(), hash, None, params),
        };
        match checked {
            Ok(checked) => self.apply_checked(Arc::new(checked), from),
            Err(e) => self.reject_unchecked(&block, hash, e, from),
        }
    }

    /// The answer for a block the tree knows already (stored, orphan, or invalid).
    fn apply_known(&mut self, hash: BlockHash) -> Result<Processed, ValidationError> {
        match self.chain.known(&hash) {
            Some(Err(e)) => Err(e),
            _ => Ok(Processed {
                outcome: crate::chain::Outcome::AlreadyKnown,
                accepted: Vec::new(),
                rejected: Vec::new(),
                tip_change: None,
            }),
        }
    }

    /// A block that broke a rule checked without the tree: remembered if that condemns its hash,
    /// logged.
    fn reject_unchecked(
        &mut self,
        block: &Block,
        hash: BlockHash,
        error: ValidationError,
        from: Option<PeerId>,
    ) -> Result<Processed, ValidationError> {
        if self.chain.known(&hash).is_some() {
            return self.apply_known(hash);
        }
        self.chain.note_invalid(block, hash, &error);
        tracing::warn!(block = %hash.short(), from = %origin(from), "block rejected: {error}");
        Err(error)
    }

    /// Validates a checked block against the tree and records what follows for the end of the
    /// step: persistence, the tip change for the mempool and the miner.
    fn apply_checked(
        &mut self,
        checked: Arc<CheckedBlock>,
        from: Option<PeerId>,
    ) -> Result<Processed, ValidationError> {
        let hash = checked.hash();
        if self.chain.known(&hash).is_some() {
            return self.apply_known(hash);
        }
        let result = self.chain.process_checked(checked, now_ms(), true);
        // Blocks stored earlier that this call found invalid (a branch failing the ledger
        // rules), whether or not the submitted block itself is valid.
        self.unsaved_rejected.extend(self.chain.take_dropped());
        let processed = match result {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(block = %hash.short(), from = %origin(from), "block rejected: {e}");
                return Err(e);
            }
        };
        for (h, e) in &processed.rejected {
            tracing::warn!(block = %h.short(), "block rejected: {e}");
        }
        for b in &processed.accepted {
            tracing::info!(
                height = b.height(),
                block = %b.hash().short(),
                from = %origin(from),
                txs = b.txs.len(),
                "block accepted"
            );
            self.watch.block_accepted(b, now_ms(), from);
        }
        self.unsaved.extend(processed.accepted.iter().cloned());
        if let Some(change) = &processed.tip_change {
            self.tip_dirty = true;
            match &mut self.tip_change {
                Some(pending) => pending.merge(change.clone()),
                None => self.tip_change = Some(change.clone()),
            }
        }
        Ok(processed)
    }
}

/// A block's txids, as a caller that computed them from its transactions hands them to
/// [`Node::process_block`] (a compact block's rebuild has them from the mempool's keys), and
/// whether it compared them with the header's Merkle root: validation then does not hash the
/// transactions again.
pub(super) struct KnownTxids {
    /// The txids, coinbase first.
    pub txids: Vec<crate::chain::Txid>,
    /// Whether their Merkle root was compared with the header's.
    pub root_checked: bool,
}
