//! The node's Prometheus metrics, served by `GET /metrics` beside libp2p's own (registered in
//! the same registry under `libp2p_`, by the network at start-up).
//!
//! Counters and the histograms are updated where things happen (the actor); the gauges of the
//! node's state (height, mempool, sync) at the end of each actor step, those of the network's
//! peers when scraped.

use crate::chain::{MempoolError, ValidationError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a block or a transfer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Mined, submitted or sent by this node.
    Local,
    /// Relayed by a peer over gossipsub.
    Gossip,
    /// Fetched or pushed over the sync protocol.
    Sync,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Gossip => "gossip",
            Origin::Sync => "sync",
        }
    }
}

/// `{origin}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabel {
    /// local, gossip or sync.
    pub origin: &'static str,
}

/// `{origin, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// local, gossip or sync.
    pub origin: &'static str,
    /// The error's kind, in snake case (`insufficient_work`, `nonce_too_low`, ...): the
    /// error's `label()`, never its `Debug` form.
    pub reason: &'static str,
}

/// `{found_by}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FoundByLabel {
    /// mdns, bootstrap, dial, inbound or kad.
    pub found_by: String,
}

/// `{event}` of block acquisition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabel {
    /// headers_requested, headers_checked, bodies_requested, bodies_received,
    /// batches_applied, timeout, stall or failure.
    pub event: &'static str,
}

/// `{event}` of compact block relay.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompactLabel {
    /// rebuilt (from held transfers, no round trip), asked (missing transfers requested),
    /// filled (completed by them), fell_back (the full block fetched) or given_up.
    pub event: &'static str,
}

/// `{lane}` of the HTTP server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabel {
    /// prompt (answered at the node's priority) or idle (in the idle scheduling class); see
    /// `http::lanes`.
    pub lane: &'static str,
}

/// Every metric of the node, and the registry that holds them and libp2p's.
#[derive(Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Best chain height.
    pub height: Gauge,
    /// Blocks accepted into the tree (best chain or side branch).
    pub blocks_accepted: Family<OriginLabel, Counter>,
    /// Blocks refused.
    pub blocks_rejected: Family<RejectLabels, Counter>,
    /// Time to validate one block (structure, proof of work, signatures, tree and ledger).
    pub validation_seconds: Histogram,
    /// Reorganisations of the best chain.
    pub reorgs: Counter,
    /// Blocks each reorganisation took off the best chain.
    pub reorg_depth: Histogram,
    /// Pending transfers.
    pub mempool: Gauge,
    /// Transfers admitted to the mempool.
    pub transfers_accepted: Family<OriginLabel, Counter>,
    /// Transfers refused.
    pub transfers_rejected: Family<RejectLabels, Counter>,
    /// 1 while a block download runs.
    pub syncing: Gauge,
    /// The highest best-chain height a connected peer claims.
    pub sync_target_height: Gauge,
    /// Sync pages requested, applied, timed out, failed.
    pub sync: Family<SyncLabel, Counter>,
    /// Compact blocks received, by what rebuilding them took.
    pub compact_blocks: Family<CompactLabel, Counter>,
    /// This node's miner: hashes per second of its last solved block.
    pub miner_hash_rate: Gauge<f64, AtomicU64>,
    /// Hashes this node's miner computed for the blocks it found.
    pub miner_hashes: Counter,
    /// The network's hash rate, estimated from the work and time span of recent blocks.
    pub network_hash_rate: Gauge<f64, AtomicU64>,
    /// Connected peers by how they were found.
    pub peers: Family<FoundByLabel, Gauge>,
    /// HTTP requests, by the lane of the server that handled them.
    pub http_requests: Family<LaneLabel, Counter>,
}

impl Metrics {
    /// Registers every metric of the node under `gossipchain_` in a new registry.
    pub fn new() -> Arc<Self> {
        let mut root = Registry::default();
        let r = root.sub_registry_with_prefix("gossipchain");
        let m = Self {
            registry: Arc::default(),
            height: Gauge::default(),
            blocks_accepted: Family::default(),
            blocks_rejected: Family::default(),
            // 50 µs to ~13 s.
            validation_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 19)),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0]),
            mempool: Gauge::default(),
            transfers_accepted: Family::default(),
            transfers_rejected: Family::default(),
            syncing: Gauge::default(),
            sync_target_height: Gauge::default(),
            sync: Family::default(),
            compact_blocks: Family::default(),
            miner_hash_rate: Gauge::default(),
            miner_hashes: Counter::default(),
            network_hash_rate: Gauge::default(),
            peers: Family::default(),
            http_requests: Family::default(),
        };
        r.register("chain_height", "Best chain height", m.height.clone());
        r.register(
            "blocks_accepted",
            "Blocks accepted into the block tree, by origin",
            m.blocks_accepted.clone(),
        );
        r.register(
            "blocks_rejected",
            "Blocks refused, by origin and reason",
            m.blocks_rejected.clone(),
        );
        r.register(
            "block_validation_seconds",
            "Time to validate one block",
            m.validation_seconds.clone(),
        );
        r.register(
            "reorgs",
            "Reorganisations of the best chain",
            m.reorgs.clone(),
        );
        r.register(
            "reorg_depth_blocks",
            "Blocks a reorganisation took off the best chain",
            m.reorg_depth.clone(),
        );
        r.register("mempool_transfers", "Pending transfers", m.mempool.clone());
        r.register(
            "transfers_accepted",
            "Transfers admitted to the mempool, by origin",
            m.transfers_accepted.clone(),
        );
        r.register(
            "transfers_rejected",
            "Transfers refused, by origin and reason",
            m.transfers_rejected.clone(),
        );
        r.register(
            "syncing",
            "1 while a block download runs",
            m.syncing.clone(),
        );
        r.register(
            "sync_target_height",
            "Highest best-chain height a connected peer claims",
            m.sync_target_height.clone(),
        );
        r.register(
            "sync",
            "Block acquisition: requests, headers, bodies, batches, timeouts, stalls, failures",
            m.sync.clone(),
        );
        r.register(
            "compact_blocks",
            "Compact blocks received, by what rebuilding them took",
            m.compact_blocks.clone(),
        );
        r.register(
            "miner_hash_rate",
            "Hashes per second of this node's miner on its last solved block",
            m.miner_hash_rate.clone(),
        );
        r.register(
            "miner_hashes",
            "Hashes computed by this node's miner for the blocks it found",
            m.miner_hashes.clone(),
        );
        r.register(
            "network_hash_rate",
            "Network hash rate estimated from recent blocks",
            m.network_hash_rate.clone(),
        );
        r.register(
            "peers",
            "Connected peers by how they were found",
            m.peers.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests, by the server lane that handled them (prompt or idle)",
            m.http_requests.clone(),
        );
        *m.registry.lock().expect("not poisoned") = root;
        Arc::new(m)
    }

    /// The registry, for libp2p to register its metrics in at start-up.
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    /// Everything in the Prometheus text exposition format (OpenMetrics), `# EOF` last.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Counts the blocks a validation accepted, or its rejection, and its time.
    pub fn block_result<T>(
        &self,
        origin: Origin,
        result: &Result<T, ValidationError>,
        accepted: impl FnOnce(&T) -> usize,
        took: Duration,
    ) {
        self.validation_seconds.observe(took.as_secs_f64());
        let origin = origin.as_str();
        match result {
            Ok(p) => {
                let n = accepted(p) as u64;
                if n > 0 {
                    self.blocks_accepted
                        .get_or_create(&OriginLabel { origin })
                        .inc_by(n);
                }
            }
            Err(e) => {
                self.blocks_rejected
                    .get_or_create(&RejectLabels {
                        origin,
                        reason: e.label(),
                    })
                    .inc();
            }
        }
    }

    /// Counts a transfer admitted to the mempool or refused.
    pub fn transfer_result<T>(&self, origin: Origin, result: &Result<T, MempoolError>) {
        let origin = origin.as_str();
        match result {
            Ok(_) => {
                self.transfers_accepted
                    .get_or_create(&OriginLabel { origin })
                    .inc();
            }
            Err(e) => {
                self.transfers_rejected
                    .get_or_create(&RejectLabels {
                        origin,
                        reason: e.label(),
                    })
                    .inc();
            }
        }
    }

    /// Counts a transfer refused before it reached the mempool (undecodable, a coinbase).
    pub fn transfer_refused(&self, origin: Origin, reason: &'static str) {
        self.transfers_rejected
            .get_or_create(&RejectLabels {
                origin: origin.as_str(),
                reason,
            })
            .inc();
    }

    /// Counts a block refused before validation (undecodable).
    pub fn block_refused(&self, origin: Origin, reason: &'static str) {
        self.blocks_rejected
            .get_or_create(&RejectLabels {
                origin: origin.as_str(),
                reason,
            })
            .inc();
    }

    /// The counter of a compact block event (see [`CompactLabel`]).
    pub fn compact(&self, event: &'static str) -> Counter {
        self.compact_blocks
            .get_or_create(&CompactLabel { event })
            .clone()
    }

    /// A reorganisation that took `depth` blocks off the best chain.
    pub fn reorg(&self, depth: usize) {
        self.reorgs.inc();
        self.reorg_depth.observe(depth as f64);
    }

    /// Raises a counter only the node writes to a cumulative total it keeps elsewhere.
    pub fn catch_up(counter: &Counter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_labelled_by_the_errors_label() {
        let m = Metrics::new();
        m.transfer_result::<()>(
            Origin::Gossip,
            &Err(MempoolError::NonceTooLow {
                expected: 3,
                got: 1,
            }),
        );
        m.block_result::<()>(
            Origin::Sync,
            &Err(ValidationError::BadHeight {
                expected: 2,
                got: 9,
            }),
            |_| 0,
            Duration::from_millis(1),
        );
        let text = m.encode();
        for needle in [
            "gossipchain_transfers_rejected_total{origin=\"gossip\",reason=\"nonce_too_low\"} 1",
            "gossipchain_blocks_rejected_total{origin=\"sync\",reason=\"bad_height\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }

    #[test]
    fn the_text_format_names_every_family_and_ends_with_eof() {
        let m = Metrics::new();
        m.height.set(7);
        m.reorg(2);
        m.block_refused(Origin::Gossip, "malformed");
        let text = m.encode();
        for needle in [
            "gossipchain_chain_height 7",
            "gossipchain_reorgs_total 1",
            "gossipchain_reorg_depth_blocks_count 1",
            "gossipchain_blocks_rejected_total{origin=\"gossip\",reason=\"malformed\"} 1",
            "# TYPE gossipchain_block_validation_seconds histogram",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
