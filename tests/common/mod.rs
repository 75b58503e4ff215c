//! Shared helpers of the network tests: nodes in this process, on 127.0.0.1 with mDNS off,
//! explicit dials, a low difficulty, and temp data directories.

#![allow(dead_code)]

use gossipchain::chain::ChainParams;
use gossipchain::node::{self, NodeConfig, NodeHandle, NodeStatus};
use libp2p::Multiaddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// How long any single wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A node running in this process.
pub struct TestNode {
    pub handle: NodeHandle,
    pub task: Option<JoinHandle<()>>,
    pub dir: TempDir,
    pub addr: Multiaddr,
}

impl TestNode {
    pub fn status(&self) -> NodeStatus {
        self.handle.status()
    }

    /// Waits for `pred` with the test deadline; panics with `what` and the last status.
    pub async fn wait(&self, what: &str, pred: impl FnMut(&NodeStatus) -> bool) -> NodeStatus {
        let (s, ok) = self.handle.wait_for(DEADLINE, pred).await;
        assert!(ok, "timed out waiting for {what}; last status: {s:?}");
        s
    }

    /// Stops the node and waits until it has closed everything.
    pub async fn stop(&mut self) {
        self.handle.shutdown().await;
        if let Some(task) = self.task.take() {
            task.await.expect("node task does not panic");
        }
    }
}

/// Parameters of the test chain.
pub fn params() -> ChainParams {
    gossipchain::testkit::params()
}

/// A config for a test node in `dir` dialling `peers`.
pub fn config(dir: &TempDir, peers: &[Multiaddr]) -> NodeConfig {
    let mut c = NodeConfig::new(dir.path().to_path_buf(), params());
    c.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.net.behaviour.mdns = false;
    c.net.bootstrap = peers.to_vec();
    c.threads = 1;
    c.status_interval = Duration::from_secs(2);
    c
}

/// Starts a node with `config`, waiting until it listens.
pub async fn start_with(dir: TempDir, config: NodeConfig) -> TestNode {
    let (handle, task) = node::start(config).await.expect("node starts");
    let (s, ok) = handle.wait_for(DEADLINE, |s| !s.listen.is_empty()).await;
    assert!(ok, "node never listened");
    let addr = s.listen[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(s.peer_id));
    TestNode {
        handle,
        task: Some(task),
        dir,
        addr,
    }
}

/// Starts a node in a fresh temp dir dialling `peers`.
pub async fn start(peers: &[Multiaddr]) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir, peers);
    start_with(dir, c).await
}

/// Builds `n` blocks on genesis with testkit, each paying `miner`, and writes them into the
/// store of `dir` (one transaction), so a node started there begins at height `n`.
pub fn preload(
    dir: &TempDir,
    n: usize,
    miner: gossipchain::chain::Address,
) -> Vec<std::sync::Arc<gossipchain::chain::Block>> {
    use gossipchain::chain::ChainState;
    use gossipchain::store::Store;
    let p = params();
    let mut chain = ChainState::new(p.clone());
    gossipchain::testkit::extend(&mut chain, n, miner);
    let blocks: Vec<_> = (1..=n as u64)
        .map(|h| chain.checked_at(h).unwrap().clone())
        .collect();
    let store = Store::open(&dir.path().join("blocks.redb"), &p).unwrap();
    store.commit(&blocks, &[], chain.tip_key()).unwrap();
    blocks.into_iter().map(|b| b.block().clone()).collect()
}
