//! The node: an actor that owns the chain state, the mempool, the store and the miner. It reacts
//! to network events and to commands from a [`NodeHandle`] (the REPL, the CLI, tests), and
//! decides: accept or reject, request what is missing, publish, persist.
//!
//! Nothing here awaits the network: commands to it are queued without waiting, so the network
//! can always hand the node its next event. No lock is shared with other tasks: state changes
//! happen inside the actor, and readers see a [`NodeStatus`] snapshot through a `watch`.

mod persist;
pub mod sync;

use crate::chain::mempool::MempoolLimits;
use crate::chain::pace::ChainPace;
use crate::chain::tree::TreeLimits;
use crate::chain::{
    Account, Address, Block, BlockHash, ChainId, ChainParams, ChainState, Mempool, MempoolError,
    Outcome, Processed, Transaction, Transfer, Txid, ValidationError,
};
use crate::miner::{self, Mined};
use crate::net::protocol::{self, Request, Response, Status};
use crate::net::{self, Event, NetConfig, Topic};
use crate::store::{Store, StoreError};
use crate::wallet::{self, KeyFileError, Wallet};
use libp2p::gossipsub::MessageAcceptance;
use libp2p::{Multiaddr, PeerId, identity};
use persist::{Batch, Persister};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use sync::{Pending, SyncState};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Everything needed to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Holds the block store, the wallet and the network identity.
    pub data_dir: PathBuf,
    /// The chain's consensus parameters.
    pub params: ChainParams,
    /// Network settings (the chain id and block size in it are set from `params` at start).
    pub net: NetConfig,
    /// Mine continuously from the start.
    pub mine: bool,
    /// Mining threads.
    pub threads: usize,
    /// Mempool bounds.
    pub mempool: MempoolLimits,
    /// Block tree bounds.
    pub tree: TreeLimits,
    /// How often peers are asked for their status (catches up on anything gossip missed).
    pub status_interval: Duration,
}

impl NodeConfig {
    /// Defaults for `params`, storing in `data_dir`.
    pub fn new(data_dir: PathBuf, params: ChainParams) -> Self {
        let net = NetConfig::new(params.chain_id(), params.max_block_bytes);
        Self {
            data_dir,
            params,
            net,
            mine: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mempool: MempoolLimits::default(),
            tree: TreeLimits::default(),
            status_interval: Duration::from_secs(15),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The parameters are unusable.
    #[error("invalid chain parameters: {0}")]
    Params(#[from] crate::chain::params::ParamsError),
    /// The data directory could not be created.
    #[error("data directory {path}: {cause}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key file failed.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The network failed to start.
    #[error(transparent)]
    Net(#[from] net::NetError),
}

/// A snapshot of the node for `status` and for waiting on progress.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// Our network identity.
    pub peer_id: PeerId,
    /// The chain.
    pub chain_id: ChainId,
    /// Best tip.
    pub tip: BlockHash,
    /// Its height.
    pub height: u64,
    /// Cumulative work of the best chain.
    pub work: u128,
    /// The next block's difficulty and the recent block rate.
    pub pace: ChainPace,
    /// Connected peers.
    pub peers: usize,
    /// Pending transfers.
    pub mempool: usize,
    /// Blocks held waiting for their parent.
    pub orphans: usize,
    /// Continuous mining on.
    pub mining: bool,
    /// Whether a block download is in progress.
    pub syncing: bool,
    /// The wallet's address (mining rewards go there).
    pub address: Address,
    /// Addresses we listen on.
    pub listen: Vec<Multiaddr>,
}

/// Which block: by height on the best chain, or by hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockId {
    /// A height on the best chain.
    Height(u64),
    /// A block hash.
    Hash(BlockHash),
}

impl FromStr for BlockId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 64 {
            s.parse()
                .map(BlockId::Hash)
                .map_err(|_| format!("'{s}' is not a block hash (64 hex digits)"))
        } else {
            s.parse()
                .map(BlockId::Height)
                .map_err(|_| format!("'{s}' is neither a height nor a block hash (64 hex digits)"))
        }
    }
}

/// A block with what the node knows of it.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Its hash.
    pub hash: BlockHash,
    /// The block.
    pub block: Arc<Block>,
    /// Whether it is on the best chain.
    pub on_best_chain: bool,
}

/// What the node knows of a block hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Stored as valid.
    Valid {
        /// On the best chain (else a side branch).
        on_best_chain: bool,
    },
    /// Held in the orphan pool, waiting for its parent.
    Orphan,
    /// Rejected, with the rule it broke (remembered for the most recent invalid blocks).
    Invalid(ValidationError),
    /// Never seen, or forgotten.
    Unknown,
}

/// Why the node could not send coins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Zero coins.
    #[error("amount must be at least 1")]
    ZeroAmount,
    /// Sending to ourselves achieves nothing but a fee.
    #[error("that is this node's own address")]
    ToSelf,
    /// The mempool refused it.
    #[error("{0}")]
    Mempool(#[from] MempoolError),
}

enum Command {
    Chain {
        count: usize,
        reply: oneshot::Sender<Vec<BlockInfo>>,
    },
    Block {
        id: BlockId,
        reply: oneshot::Sender<Option<BlockInfo>>,
    },
    BlockState {
        hash: BlockHash,
        reply: oneshot::Sender<BlockState>,
    },
    Balance {
        address: Address,
        reply: oneshot::Sender<(Account, u64)>,
    },
    Send {
        to: Address,
        amount: u64,
        fee: u64,
        reply: oneshot::Sender<Result<Txid, SendError>>,
    },
    Submit {
        tx: Transfer,
        reply: oneshot::Sender<Result<Txid, MempoolError>>,
    },
    SubmitBlock {
        block: Block,
        reply: oneshot::Sender<Result<Outcome, ValidationError>>,
    },
    Mempool {
        reply: oneshot::Sender<Vec<(Txid, Transfer)>>,
    },
    MineOne {
        reply: oneshot::Sender<Result<BlockInfo, String>>,
    },
    SetMining {
        on: bool,
    },
    Sync {
        reply: oneshot::Sender<usize>,
    },
    Shutdown,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    /// Commands to the actor.
    tx: mpsc::Sender<Command>,
    /// The network, for queries the actor has no part in (peers, dial).
    net: net::Client,
    /// The latest status.
    status: watch::Receiver<NodeStatus>,
}

/// The actor stopped: every request after that fails with this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct Stopped;

impl NodeHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// Waits until the status satisfies `pred` or `timeout` passes; returns the last status
    /// seen and whether `pred` held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&NodeStatus) -> bool,
    ) -> (NodeStatus, bool) {
        let mut rx = self.status.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await {
            Ok(Ok(s)) => (s.clone(), true),
            _ => (self.status(), false),
        }
    }

    /// The last `count` blocks of the best chain, newest first.
    pub async fn chain(&self, count: usize) -> Result<Vec<BlockInfo>, Stopped> {
        self.ask(|reply| Command::Chain { count, reply }).await
    }

    /// A block by height or hash.
    pub async fn block(&self, id: BlockId) -> Result<Option<BlockInfo>, Stopped> {
        self.ask(|reply| Command::Block { id, reply }).await
    }

    /// What the node knows of a block hash: valid, waiting for its parent, rejected and why.
    pub async fn block_state(&self, hash: BlockHash) -> Result<BlockState, Stopped> {
        self.ask(|reply| Command::BlockState { hash, reply }).await
    }

    /// An account on the best chain, and what its pending transfers spend.
    pub async fn balance(&self, address: Address) -> Result<(Account, u64), Stopped> {
        self.ask(|reply| Command::Balance { address, reply }).await
    }

    /// Signs a transfer from the node's wallet (next free nonce), admits and gossips it.
    pub async fn send(
        &self,
        to: Address,
        amount: u64,
        fee: u64,
    ) -> Result<Result<Txid, SendError>, Stopped> {
        self.ask(|reply| Command::Send {
            to,
            amount,
            fee,
            reply,
        })
        .await
    }

    /// Admits and gossips a transfer signed elsewhere.
    pub async fn submit(&self, tx: Transfer) -> Result<Result<Txid, MempoolError>, Stopped> {
        self.ask(|reply| Command::Submit { tx, reply }).await
    }

    /// Validates a block as if a peer had sent it; publishes it if accepted.
    pub async fn submit_block(
        &self,
        block: Block,
    ) -> Result<Result<Outcome, ValidationError>, Stopped> {
        self.ask(|reply| Command::SubmitBlock { block, reply })
            .await
    }

    /// Pending transfers, highest fee first.
    pub async fn mempool(&self) -> Result<Vec<(Txid, Transfer)>, Stopped> {
        self.ask(|reply| Command::Mempool { reply }).await
    }

    /// Mines one block on the current tip (restarting if the tip moves) and returns it once
    /// accepted.
    pub async fn mine_one(&self) -> Result<Result<BlockInfo, String>, Stopped> {
        self.ask(|reply| Command::MineOne { reply }).await
    }

    /// Turns continuous mining on or off.
    pub async fn set_mining(&self, on: bool) -> Result<(), Stopped> {
        self.tx
            .send(Command::SetMining { on })
            .await
            .map_err(|_| Stopped)
    }

    /// Asks every peer for its status now (downloads from any that is ahead); returns how many
    /// peers were asked.
    pub async fn sync(&self) -> Result<usize, Stopped> {
        self.ask(|reply| Command::Sync { reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<net::PeerInfo> {
        self.net.peers().await
    }

    /// Dials a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, String> {
        self.net.dial(addr).await
    }

    /// Asks the node to stop: it cancels mining, flushes the store and closes connections.
    /// Await the join handle from [`start`] to know it finished.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

/// A mining job's result.
struct MinedResult {
    job: u64,
    template: Block,
    result: Mined,
}

/// The running mining job.
struct Job {
    id: u64,
    cancel: Arc<AtomicBool>,
}

/// The actor's state.
struct Node {
    config: NodeConfig,
    chain: ChainState,
    mempool: Mempool,
    /// Writes accepted blocks on its own thread.
    persister: Persister,
    wallet: Wallet,
    net: net::Client,
    sync: SyncState,
    status: watch::Sender<NodeStatus>,
    /// Blocks accepted but not yet committed, parents first.
    unsaved: Vec<(BlockHash, Arc<Block>)>,
    /// Stored blocks found invalid, to delete at the next commit.
    unsaved_rejected: Vec<BlockHash>,
    /// Whether the tip changed since the last commit.
    tip_dirty: bool,
    mining: bool,
    job: Option<Job>,
    next_job: u64,
    mine_waiters: Vec<oneshot::Sender<Result<BlockInfo, String>>>,
    mined_tx: mpsc::Sender<MinedResult>,
}

/// Who a block came from, for logs.
fn origin(from: Option<PeerId>) -> String {
    from.map_or_else(|| "this node".into(), |p| p.to_string())
}

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
    let store = Store::open(&dir.join("blocks.redb"), chain_id)?;
    let chain = store.load_chain(&config.params, config.tree.clone())?;
    let persister = Persister::spawn(store).map_err(|cause| NodeError::DataDir {
        path: dir.clone(),
        cause,
    })?;
    let (wallet, created) = Wallet::load_or_create(&dir.join("wallet.key"))?;
    if created {
        tracing::info!(address = %wallet.address(), "created a new wallet");
    }
    let (id_secret, _) = wallet::load_or_create_secret(&dir.join("node.key"))?;
    let keypair = identity::Keypair::ed25519_from_bytes(id_secret)
        .map_err(|e| net::NetError::Build(e.to_string()))?;
    config.net.behaviour.chain_id = chain_id;
    config.net.behaviour.max_block_bytes = config.params.max_block_bytes;
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
    let node = Node {
        mempool: Mempool::new(chain_id, config.mempool.clone()),
        mining: config.mine,
        config,
        chain,
        persister,
        wallet,
        net: client.clone(),
        sync: SyncState::default(),
        status: status_tx,
        unsaved: Vec::new(),
        unsaved_rejected: Vec::new(),
        tip_dirty: false,
        job: None,
        next_job: 0,
        mine_waiters: Vec::new(),
        mined_tx,
    };
    let task = tokio::spawn(node.run(events, cmd_rx, mined_rx, net_task));
    Ok((
        NodeHandle {
            tx: cmd_tx,
            net: client,
            status: status_rx,
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
        net_task: JoinHandle<()>,
    ) {
        let mut tick = tokio::time::interval(self.config.status_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        self.maybe_start_mining();
        loop {
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
                _ = tick.tick() => self.ask_statuses(),
            }
            self.publish_status();
            self.flush();
        }
        if let Some(job) = self.job.take() {
            job.cancel.store(true, Ordering::Relaxed);
        }
        for waiter in self.mine_waiters.drain(..) {
            let _ = waiter.send(Err("the node is shutting down".into()));
        }
        self.flush();
        self.net.shutdown();
        drop(events);
        let _ = net_task.await;
        let persister = self.persister;
        let _ = tokio::task::spawn_blocking(move || persister.close()).await;
        tracing::info!(height = self.chain.height(), "node stopped");
    }

    /// Hands accepted blocks and the tip to the store writer (one transaction per batch).
    fn flush(&mut self) {
        if self.unsaved.is_empty() && self.unsaved_rejected.is_empty() && !self.tip_dirty {
            return;
        }
        self.persister.submit(Batch {
            accepted: std::mem::take(&mut self.unsaved),
            rejected: std::mem::take(&mut self.unsaved_rejected),
            tip: self.chain.tip(),
        });
        self.tip_dirty = false;
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
        let peers = self.sync.peers().count();
        let mempool = self.mempool.len();
        let orphans = self.chain.orphan_count();
        let (mining, syncing) = (self.mining, self.sync.active.is_some());
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

    /// Validates a block from anywhere and applies what follows: persistence (at the next
    /// flush), the mempool, the miner.
    fn process_block(
        &mut self,
        block: Arc<Block>,
        from: Option<PeerId>,
    ) -> Result<Processed, ValidationError> {
        let hash = block.compute_hash();
        let result = self.chain.process_block(block, now_ms());
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
        for (h, b) in &processed.accepted {
            tracing::info!(
                height = b.header.height,
                block = %h.short(),
                from = %origin(from),
                txs = b.txs.len(),
                "block accepted"
            );
        }
        self.unsaved.extend(processed.accepted.iter().cloned());
        if let Some(change) = &processed.tip_change {
            self.tip_dirty = true;
            if !change.disconnected.is_empty() {
                tracing::warn!(
                    from = %change.old_tip.short(),
                    to = %change.new_tip.short(),
                    disconnected = change.disconnected.len(),
                    connected = change.connected.len(),
                    "reorganisation"
                );
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
            self.restart_mining();
        }
        Ok(processed)
    }

    fn on_net_event(&mut self, event: Event) {
        match event {
            Event::Listening(addr) => {
                self.status.send_modify(|s| s.listen.push(addr));
            }
            Event::PeerConnected { peer, .. } => {
                self.sync.add_peer(peer);
                let tag = self.sync.start(peer, Pending::Status);
                self.net
                    .request(peer, Request::Status(self.our_status()), tag);
                let tag = self.sync.start(peer, Pending::Mempool);
                self.net.request(peer, Request::GetMempool, tag);
            }
            Event::PeerDisconnected { peer } => {
                let was_active = self.sync.active == Some(peer);
                self.sync.remove_peer(&peer);
                if was_active {
                    self.sync_from_best();
                }
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

    fn on_gossip_block(&mut self, source: PeerId, id: libp2p::gossipsub::MessageId, data: Vec<u8>) {
        let params = self.chain.params();
        let block =
            match Block::decode(&data, params.max_block_bytes as usize, params.max_block_txs) {
                Ok(b) => b,
                Err(e) => {
                    self.net
                        .report_validation(id, source, MessageAcceptance::Reject);
                    self.net.ban(source, format!("malformed block: {e}"));
                    return;
                }
            };
        let acceptance = match self.process_block(Arc::new(block), Some(source)) {
            Ok(p) => match p.outcome {
                Outcome::Accepted => MessageAcceptance::Accept,
                Outcome::AlreadyKnown => MessageAcceptance::Ignore,
                Outcome::Orphan { missing_parent } => {
                    tracing::debug!(parent = %missing_parent.short(), %source, "orphan block: syncing");
                    if self.sync.active.is_none() {
                        self.request_blocks(source, self.chain.tip());
                    }
                    MessageAcceptance::Ignore
                }
            },
            Err(e) if e.is_permanent() => {
                self.net
                    .ban(source, format!("relayed an invalid block: {e}"));
                MessageAcceptance::Reject
            }
            Err(_) => MessageAcceptance::Ignore,
        };
        self.net.report_validation(id, source, acceptance);
    }

    fn on_gossip_tx(&mut self, source: PeerId, id: libp2p::gossipsub::MessageId, data: Vec<u8>) {
        let tx = match Transaction::decode(&data) {
            Ok(Transaction::Transfer(t)) => t,
            Ok(Transaction::Coinbase(_)) => {
                self.net
                    .report_validation(id, source, MessageAcceptance::Reject);
                return;
            }
            Err(e) => {
                tracing::debug!(%source, "malformed transaction: {e}");
                self.net
                    .report_validation(id, source, MessageAcceptance::Reject);
                return;
            }
        };
        let acceptance = match self.mempool.add(tx, self.chain.ledger()) {
            Ok(txid) => {
                tracing::debug!(tx = %txid.short(), %source, "transaction accepted");
                MessageAcceptance::Accept
            }
            // A forged signature is the sender's fault; anything else may just be a view of the
            // chain that differs from ours (a nonce already mined here, a balance not yet).
            Err(MempoolError::BadSignature(_)) => MessageAcceptance::Reject,
            Err(e) => {
                tracing::debug!(%source, "transaction ignored: {e}");
                MessageAcceptance::Ignore
            }
        };
        self.net.report_validation(id, source, acceptance);
    }

    fn answer(&mut self, peer: PeerId, request: Request) -> Response {
        match request {
            Request::Status(status) => {
                let ours = self.our_status();
                self.on_peer_status(peer, status);
                Response::Status(ours)
            }
            Request::GetBlocks { locator, max } => {
                if locator.is_empty() || locator.len() > protocol::MAX_LOCATOR {
                    return Response::Refused(format!(
                        "a locator holds 1 to {} hashes",
                        protocol::MAX_LOCATOR
                    ));
                }
                match sync::blocks_after(&self.chain, &locator, max) {
                    Some(blocks) => Response::Blocks(blocks),
                    None => Response::Refused("no locator hash is on our best chain".into()),
                }
            }
            Request::GetMempool => Response::Transactions(
                self.mempool
                    .by_fee()
                    .into_iter()
                    .take(protocol::MAX_TXS_PER_MESSAGE)
                    .map(|(_, t)| protocol::Bytes(Transaction::Transfer(t).encode()))
                    .collect(),
            ),
            Request::Transactions(txs) => match self.admit_from_peer(peer, txs) {
                Some(n) => Response::Accepted(n),
                None => Response::Refused("malformed or forged transactions".into()),
            },
        }
    }

    /// Admits transfers a peer sent over sync and gossips the new ones onwards. `None` (and a
    /// ban) if the message is over the limit or holds a malformed or forged transfer.
    fn admit_from_peer(&mut self, peer: PeerId, txs: Vec<protocol::Bytes>) -> Option<u32> {
        if txs.len() > protocol::MAX_TXS_PER_MESSAGE {
            self.net
                .ban(peer, "sent too many transactions in one message");
            return None;
        }
        let mut accepted = 0;
        for bytes in txs {
            let tx = match Transaction::decode(&bytes.0) {
                Ok(Transaction::Transfer(t)) => t,
                Ok(Transaction::Coinbase(_)) | Err(_) => {
                    self.net.ban(peer, "sent a malformed transaction");
                    return None;
                }
            };
            match self.mempool.add(tx, self.chain.ledger()) {
                Ok(_) => {
                    accepted += 1;
                    self.net
                        .publish(Topic::Txs, Transaction::Transfer(tx).encode());
                }
                Err(MempoolError::BadSignature(_)) => {
                    self.net
                        .ban(peer, "sent a transaction with a forged signature");
                    return None;
                }
                Err(_) => {}
            }
        }
        Some(accepted)
    }

    /// Sends transfers to every connected peer over sync (see [`Request::Transactions`]).
    fn push_to_peers(&mut self, txs: &[Transfer]) {
        let peers: Vec<PeerId> = self.sync.peers().copied().collect();
        for chunk in txs.chunks(protocol::MAX_TXS_PER_MESSAGE) {
            let encoded: Vec<_> = chunk
                .iter()
                .map(|t| protocol::Bytes(Transaction::Transfer(*t).encode()))
                .collect();
            for peer in &peers {
                let tag = self.sync.start(*peer, Pending::Push);
                self.net
                    .request(*peer, Request::Transactions(encoded.clone()), tag);
            }
        }
    }

    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        if status.chain_id != self.chain.chain_id() {
            self.net.ban(
                peer,
                format!("on another chain ({})", status.chain_id.short()),
            );
            return;
        }
        self.sync.set_status(peer, status);
        if self.sync.active.is_none() && status.work() > self.chain.tip_work() {
            tracing::info!(%peer, height = status.height, "peer is ahead: syncing");
            self.request_blocks(peer, self.chain.tip());
        }
    }

    fn request_blocks(&mut self, peer: PeerId, from: BlockHash) {
        let locator = sync::locator_from(&self.chain, from);
        let tag = self.sync.start(
            peer,
            Pending::Blocks {
                locator: locator.clone(),
            },
        );
        self.sync.active = Some(peer);
        self.net.request(
            peer,
            Request::GetBlocks {
                locator,
                max: protocol::MAX_BLOCKS_PER_RESPONSE,
            },
            tag,
        );
    }

    /// Starts downloading from the peer that claims the most work above ours, if any.
    fn sync_from_best(&mut self) {
        if self.sync.active.is_none()
            && let Some(peer) = self.sync.best_peer_above(self.chain.tip_work())
        {
            self.request_blocks(peer, self.chain.tip());
        }
    }

    fn ask_statuses(&mut self) {
        let peers: Vec<PeerId> = self.sync.peers().copied().collect();
        for peer in peers {
            let tag = self.sync.start(peer, Pending::Status);
            self.net
                .request(peer, Request::Status(self.our_status()), tag);
        }
    }

    fn on_response(&mut self, peer: PeerId, tag: u64, result: Result<Response, String>) {
        let Some((_, pending)) = self.sync.finish(tag) else {
            return;
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "sync request failed: {e}");
                if matches!(pending, Pending::Blocks { .. }) && self.sync.active == Some(peer) {
                    self.sync.active = None;
                    // Do not pick it again before its next status: a peer claiming the most
                    // work that never answers would otherwise hold the download forever.
                    self.sync.forget_claim(&peer);
                    self.sync_from_best();
                }
                return;
            }
        };
        match (pending, response) {
            (Pending::Status, Response::Status(status)) => self.on_peer_status(peer, status),
            (Pending::Blocks { locator }, Response::Blocks(blocks)) => {
                self.on_blocks(peer, &locator, blocks)
            }
            (Pending::Mempool, Response::Transactions(txs)) => {
                self.admit_from_peer(peer, txs);
            }
            (Pending::Push, Response::Accepted(_)) => {}
            (_, Response::Refused(reason)) => {
                tracing::debug!(%peer, %reason, "request refused");
                if self.sync.active == Some(peer) {
                    self.sync.active = None;
                }
            }
            (_, _) => {
                self.end_sync_with(peer, "answered with the wrong kind of response");
            }
        }
    }

    fn end_sync_with(&mut self, peer: PeerId, reason: &str) {
        self.net.ban(peer, reason);
        if self.sync.active == Some(peer) {
            self.sync.active = None;
        }
        self.sync.remove_peer(&peer);
        self.sync_from_best();
    }

    /// A page of blocks from a sync: they must connect to our locator and to each other, and
    /// every one must be valid.
    fn on_blocks(&mut self, peer: PeerId, locator: &[BlockHash], blocks: Vec<protocol::Bytes>) {
        if self.sync.active == Some(peer) {
            self.sync.active = None;
        }
        let claimed = self.sync.status(&peer).map_or(0, |s| s.work());
        if blocks.is_empty() {
            if claimed > self.chain.tip_work() {
                self.end_sync_with(peer, "claimed more work than it can serve");
            }
            return;
        }
        let params = self.chain.params().clone();
        let mut prev: Option<BlockHash> = None;
        let mut last = None;
        for bytes in blocks {
            let block = match Block::decode(
                &bytes.0,
                params.max_block_bytes as usize,
                params.max_block_txs,
            ) {
                Ok(b) => b,
                Err(e) => {
                    return self.end_sync_with(peer, &format!("served a malformed block: {e}"));
                }
            };
            let parent = block.header.prev_hash;
            let connects = match prev {
                None => locator.contains(&parent),
                Some(p) => parent == p,
            };
            if !connects {
                return self
                    .end_sync_with(peer, "served blocks that do not connect to the locator");
            }
            let hash = block.compute_hash();
            match self.process_block(Arc::new(block), Some(peer)) {
                Ok(p) if matches!(p.outcome, Outcome::Orphan { .. }) => {
                    return self.end_sync_with(peer, "served a block whose parent it did not send");
                }
                Ok(_) => {}
                Err(e) if e.is_permanent() => {
                    return self.end_sync_with(peer, &format!("served an invalid block: {e}"));
                }
                Err(e) => {
                    tracing::info!(%peer, "sync paused: {e}");
                    return;
                }
            }
            prev = Some(hash);
            last = Some(hash);
        }
        if let Some(last) = last
            && claimed > self.chain.tip_work()
        {
            self.request_blocks(peer, last);
        } else {
            self.sync_from_best();
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Chain { count, reply } => {
                let top = self.chain.height();
                let list = (0..count as u64)
                    .map_while(|i| top.checked_sub(i))
                    .filter_map(|h| self.chain.block_at(h))
                    .map(|b| BlockInfo {
                        hash: b.compute_hash(),
                        block: b.clone(),
                        on_best_chain: true,
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Block { id, reply } => {
                let block = match id {
                    BlockId::Height(h) => self.chain.block_at(h),
                    BlockId::Hash(h) => self.chain.block(&h),
                };
                let info = block.map(|b| {
                    let hash = b.compute_hash();
                    BlockInfo {
                        hash,
                        block: b.clone(),
                        on_best_chain: self.chain.is_active(&hash),
                    }
                });
                let _ = reply.send(info);
            }
            Command::BlockState { hash, reply } => {
                let state = if self.chain.contains(&hash) {
                    BlockState::Valid {
                        on_best_chain: self.chain.is_active(&hash),
                    }
                } else if self.chain.is_orphan(&hash) {
                    BlockState::Orphan
                } else if let Some(e) = self.chain.invalid_reason(&hash) {
                    BlockState::Invalid(e.clone())
                } else {
                    BlockState::Unknown
                };
                let _ = reply.send(state);
            }
            Command::Balance { address, reply } => {
                let account = self.chain.ledger().account(&address);
                let _ = reply.send((account, self.mempool.pending_spend(&address)));
            }
            Command::Send {
                to,
                amount,
                fee,
                reply,
            } => {
                let _ = reply.send(self.send(to, amount, fee));
            }
            Command::Submit { tx, reply } => {
                let _ = reply.send(self.admit_local(tx));
            }
            Command::SubmitBlock { block, reply } => {
                let block = Arc::new(block);
                let result = self.process_block(block.clone(), None);
                if let Ok(p) = &result
                    && p.outcome == Outcome::Accepted
                {
                    self.net.publish(Topic::Blocks, block.encode());
                }
                let _ = reply.send(result.map(|p| p.outcome));
            }
            Command::Mempool { reply } => {
                let _ = reply.send(self.mempool.by_fee());
            }
            Command::MineOne { reply } => {
                self.mine_waiters.push(reply);
                self.maybe_start_mining();
            }
            Command::SetMining { on } => {
                self.mining = on;
                if on {
                    self.maybe_start_mining();
                } else if self.mine_waiters.is_empty()
                    && let Some(job) = self.job.take()
                {
                    job.cancel.store(true, Ordering::Relaxed);
                }
            }
            Command::Sync { reply } => {
                let n = self.sync.peers().count();
                self.ask_statuses();
                let _ = reply.send(n);
            }
            Command::Shutdown => {}
        }
    }

    fn send(&mut self, to: Address, amount: u64, fee: u64) -> Result<Txid, SendError> {
        if amount == 0 {
            return Err(SendError::ZeroAmount);
        }
        if to == self.wallet.address() {
            return Err(SendError::ToSelf);
        }
        let nonce = self
            .mempool
            .next_nonce(&self.wallet.address(), self.chain.ledger());
        let tx = self
            .wallet
            .sign(&self.chain.chain_id(), to, amount, fee, nonce);
        Ok(self.admit_local(tx)?)
    }

    fn admit_local(&mut self, tx: Transfer) -> Result<Txid, MempoolError> {
        let txid = self.mempool.add(tx, self.chain.ledger())?;
        tracing::info!(tx = %txid.short(), amount = tx.amount, fee = tx.fee, "transaction submitted");
        self.net
            .publish(Topic::Txs, Transaction::Transfer(tx).encode());
        Ok(txid)
    }

    fn restart_mining(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel.store(true, Ordering::Relaxed);
        }
        self.maybe_start_mining();
    }

    fn maybe_start_mining(&mut self) {
        let wanted = self.mining || !self.mine_waiters.is_empty();
        if self.job.is_some() || !wanted {
            return;
        }
        let template = self
            .chain
            .block_template(&self.mempool, self.wallet.address(), now_ms());
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
            let result = miner::solve(&template.header, threads, &cancel);
            let _ = tx.blocking_send(MinedResult {
                job: id,
                template,
                result,
            });
        });
    }

    fn on_mined(&mut self, mined: MinedResult) {
        if self.job.as_ref().is_some_and(|j| j.id == mined.job) {
            self.job = None;
        }
        if let Mined::Found { header, hashes } = mined.result {
            let mut block = mined.template;
            block.header = header;
            let block = Arc::new(block);
            let hash = block.compute_hash();
            tracing::info!(height = header.height, block = %hash.short(), hashes, "mined a block");
            // Taken before processing: the tip change restarts the miner only for the waiters
            // still left.
            let waiter = (!self.mine_waiters.is_empty()).then(|| self.mine_waiters.remove(0));
            match self.process_block(block.clone(), None) {
                Ok(p) if p.outcome == Outcome::Accepted => {
                    self.net.publish(Topic::Blocks, block.encode());
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(Ok(BlockInfo {
                            hash,
                            on_best_chain: self.chain.is_active(&hash),
                            block,
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
        self.maybe_start_mining();
    }
}
