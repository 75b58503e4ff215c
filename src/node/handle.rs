//! The node's public face: its configuration, the [`NodeStatus`] snapshot, what a block query
//! answers, and the [`NodeHandle`] the REPL, the CLI and tests hold. Every request is a
//! [`Command`] to the actor with a `oneshot` for the answer.

use super::events::{Numbered, TreeSnapshot, TxStatus};
use crate::chain::mempool::MempoolLimits;
use crate::chain::tree::TreeLimits;
use crate::chain::{
    Account, Address, Block, BlockHash, ChainId, ChainKind, ChainParams, MempoolError, Outcome,
    Transfer, Txid, ValidationError,
};
use crate::net::{self, NetConfig};
use crate::store::StoreError;
use crate::wallet::KeyFileError;
use libp2p::{Multiaddr, PeerId};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

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
    /// The system refused a thread for the miner.
    #[error("cannot start the miner thread: {0}")]
    MinerThread(std::io::Error),
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
    pub pace: crate::chain::pace::ChainPace,
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
    /// Addresses others can dial us at, as confirmed (`--external-addr`, a peer that sees us
    /// at one of our own addresses, or AutoNAT); the DHT serves and announces them.
    pub reachable: Vec<Multiaddr>,
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
    /// When this node's miner found it (a block returned by [`NodeHandle::mine_one`]), taken
    /// on the mining thread; `None` for any other block.
    pub found_at: Option<std::time::Instant>,
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

/// What a [`NodeHandle`] asks the actor.
pub(super) enum Command {
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
    Mine {
        n: u64,
        blocks: mpsc::UnboundedSender<Result<BlockInfo, MineError>>,
    },
    SetMining {
        on: bool,
    },
    Sync {
        reply: oneshot::Sender<usize>,
    },
    Tx {
        txid: Txid,
        reply: oneshot::Sender<TxStatus>,
    },
    Tree {
        min_height: u64,
        max: usize,
        reply: oneshot::Sender<TreeSnapshot>,
    },
    Shutdown,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    /// Commands to the actor.
    pub(super) tx: mpsc::Sender<Command>,
    /// The network, for queries the actor has no part in (peers, dial).
    pub(super) net: net::Client,
    /// The latest status.
    pub(super) status: watch::Receiver<NodeStatus>,
    /// The event broadcast, to subscribe to.
    pub(super) events: broadcast::Sender<Numbered>,
    /// Where the HTTP API listens, once it does (for `status`).
    pub(super) http_url: Arc<std::sync::OnceLock<String>>,
    /// The node's and libp2p's metrics.
    pub(super) metrics: Arc<crate::metrics::Metrics>,
}

/// The actor stopped: every request after that fails with this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct Stopped;

/// Why a `mine` request ended before all its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MineError {
    /// The miner's thread stopped.
    #[error("the miner has stopped")]
    MinerStopped,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl NodeHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Where a transaction stands: pending, in a best-chain block, or unknown.
    pub async fn tx(&self, txid: Txid) -> Result<TxStatus, Stopped> {
        self.ask(|reply| Command::Tx { txid, reply }).await
    }

    /// Recently arrived blocks at `min_height` or above (best chain and side branches, lowest
    /// first, at most `max`), each with whether it is on the best chain now; with the tip and
    /// the number of the last event this reflects (see [`Numbered`]).
    pub async fn tree(&self, min_height: u64, max: usize) -> Result<TreeSnapshot, Stopped> {
        self.ask(|reply| Command::Tree {
            min_height,
            max,
            reply,
        })
        .await
    }

    /// Events from now on, numbered: blocks, tip changes, transfers, peers.
    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.events.subscribe()
    }

    /// Records where the HTTP API listens (once; later calls are ignored).
    pub fn set_http_url(&self, url: String) {
        let _ = self.http_url.set(url);
    }

    /// Where the HTTP API listens, if it does.
    pub fn http_url(&self) -> Option<&str> {
        self.http_url.get().map(String::as_str)
    }

    /// The node's and libp2p's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The kind of the node's chain: how addresses are written and which ones it takes.
    pub fn address_kind(&self) -> ChainKind {
        ChainKind::of(&self.status.borrow().chain_id)
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// The latest status without asking the actor anything, or [`Stopped`] once the actor
    /// has stopped (the snapshot would then be its last word, not the present).
    pub fn live_status(&self) -> Result<NodeStatus, Stopped> {
        if self.tx.is_closed() {
            return Err(Stopped);
        }
        Ok(self.status())
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
    pub async fn mine_one(&self) -> Result<Result<BlockInfo, MineError>, Stopped> {
        self.mine(1).await?.recv().await.ok_or(Stopped)
    }

    /// Mines `n` blocks one after the other, each on the tip the one before made, and yields
    /// each once accepted: the next search starts as soon as a block is accepted, with no
    /// round trip to the caller in between. An error (the node stopping) ends the stream.
    /// Dropping the receiver stops the search after the block in progress.
    pub async fn mine(
        &self,
        n: u64,
    ) -> Result<mpsc::UnboundedReceiver<Result<BlockInfo, MineError>>, Stopped> {
        let (blocks, rx) = mpsc::unbounded_channel();
        if n > 0 {
            self.tx
                .send(Command::Mine { n, blocks })
                .await
                .map_err(|_| Stopped)?;
        }
        Ok(rx)
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
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, net::DialFailed> {
        self.net.dial(addr).await
    }

    /// Asks the node to stop: it cancels mining, flushes the store and closes connections.
    /// Await the join handle from [`start`] to know it finished.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}
