//! The JSON shapes of the API: blocks, transactions, peers, events. Hashes and signatures are
//! hex in natural byte order, as in PROTOCOL.md; addresses are bech32m text of the node's chain
//! kind (PROTOCOL.md §8); amounts are numbers.

use crate::chain::{Block, ChainKind, Transaction, Transfer, Txid};
use crate::net::PeerInfo;
use crate::node::BlockInfo;
use crate::node::NodeStatus;
use crate::node::events::{Arrival, NodeEvent};
use serde::{Deserialize, Serialize};

/// A transaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TxView {
    /// Its txid.
    pub txid: String,
    /// "coinbase" or "transfer".
    pub kind: String,
    /// Sender (transfers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipient.
    pub to: String,
    /// Coins received.
    pub amount: u64,
    /// Fee (0 for a coinbase).
    pub fee: u64,
    /// Sender's nonce (transfers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// Coinbase height (coinbase only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Signature, hex (transfers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The PROTOCOL.md encoding, hex.
    pub hex: String,
}

impl TxView {
    /// The view of a transaction whose txid is known.
    pub fn of(txid: Txid, tx: &Transaction, kind: ChainKind) -> Self {
        let hex = hex::encode(tx.encode());
        match tx {
            Transaction::Coinbase(c) => Self {
                txid: txid.to_hex(),
                kind: "coinbase".into(),
                from: None,
                to: kind.encode(&c.to),
                amount: c.amount,
                fee: 0,
                nonce: None,
                height: Some(c.height),
                signature: None,
                hex,
            },
            Transaction::Transfer(t) => Self {
                txid: txid.to_hex(),
                kind: "transfer".into(),
                from: Some(kind.encode(&t.from)),
                to: kind.encode(&t.to),
                amount: t.amount,
                fee: t.fee,
                nonce: Some(t.nonce),
                height: None,
                signature: Some(hex::encode(t.signature)),
                hex,
            },
        }
    }

    /// The view of a transfer.
    pub fn transfer(txid: Txid, t: &Transfer, kind: ChainKind) -> Self {
        Self::of(txid, &Transaction::Transfer(*t), kind)
    }
}

/// A block's header and summary, as in a page of `/blocks`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockSummary {
    /// Its hash.
    pub id: String,
    /// Its height.
    pub height: u64,
    /// Parent hash.
    pub previousblockhash: String,
    /// Milliseconds since the Unix epoch, set by its miner.
    pub timestamp: u64,
    /// Required leading zero bits.
    pub bits: u32,
    /// The nonce.
    pub nonce: u64,
    /// Header format version.
    pub version: u32,
    /// Merkle root of its txids.
    pub merkle_root: String,
    /// Transactions, coinbase included.
    pub tx_count: usize,
    /// Encoded size in bytes.
    pub size: usize,
    /// Whether it is on the best chain.
    pub in_best_chain: bool,
    /// The coinbase recipient.
    pub miner: String,
}

impl BlockSummary {
    /// The summary of a block.
    pub fn of(info: &BlockInfo, kind: ChainKind) -> Self {
        let b: &Block = &info.block;
        let miner = match b.txs.first() {
            Some(Transaction::Coinbase(c)) => kind.encode(&c.to),
            _ => String::new(),
        };
        Self {
            id: info.hash.to_hex(),
            height: b.header.height,
            previousblockhash: b.header.prev_hash.to_hex(),
            timestamp: b.header.timestamp,
            bits: b.header.bits,
            nonce: b.header.nonce,
            version: b.header.version,
            merkle_root: b.header.tx_root.to_hex(),
            tx_count: b.txs.len(),
            size: b.encoded_len(),
            in_best_chain: info.on_best_chain,
            miner,
        }
    }
}

/// A whole block.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockView {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: BlockSummary,
    /// Its transactions in block order.
    pub txs: Vec<TxView>,
}

impl BlockView {
    /// The view of a block.
    pub fn of(info: &BlockInfo, kind: ChainKind) -> Self {
        let txids = info.block.compute_txids();
        Self {
            summary: BlockSummary::of(info, kind),
            txs: txids
                .into_iter()
                .zip(&info.block.txs)
                .map(|(id, tx)| TxView::of(id, tx, kind))
                .collect(),
        }
    }
}

/// A connected peer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PeerView {
    /// Its peer id.
    pub peer_id: String,
    /// Remote addresses of its connections.
    pub addresses: Vec<String>,
    /// How it was found: mdns, --peer, dial, inbound.
    pub found_by: String,
    /// Its agent string, once known.
    pub agent: Option<String>,
    /// Last ping round trip in milliseconds.
    pub ping_ms: Option<f64>,
    /// Its gossipsub score.
    pub score: f64,
}

impl PeerView {
    /// The view of a peer.
    pub fn of(p: &PeerInfo) -> Self {
        Self {
            peer_id: p.peer.to_string(),
            addresses: p.addresses.iter().map(|a| a.to_string()).collect(),
            found_by: p.found_by.to_string(),
            agent: p.agent.clone(),
            ping_ms: p.rtt.map(|r| r.as_secs_f64() * 1000.0),
            score: p.score,
        }
    }
}

/// The node's state: everything `status` shows (`GET /node/status`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusView {
    /// Its network identity.
    pub peer_id: String,
    /// The chain (its genesis hash).
    pub chain_id: String,
    /// Height of the best tip.
    pub height: u64,
    /// The best tip.
    pub tip: String,
    /// Cumulative work of the best chain, decimal (it may exceed what JSON numbers hold).
    pub work: String,
    /// Connected peers.
    pub peers: usize,
    /// Pending transfers.
    pub mempool: usize,
    /// Blocks waiting for their parent.
    pub orphans: usize,
    /// Continuous mining on.
    pub mining: bool,
    /// A block download in progress.
    pub syncing: bool,
    /// The wallet's address (mining rewards go there).
    pub address: String,
    /// Addresses the node listens on.
    pub listen_addresses: Vec<String>,
    /// Addresses others can dial it at, as confirmed.
    pub reachable_addresses: Vec<String>,
    /// Where its HTTP API listens.
    pub http: Option<String>,
    /// The next block's difficulty and the recent block rate.
    pub pace: PaceView,
}

impl StatusView {
    /// The view of a status snapshot, with the HTTP API's URL.
    pub fn of(st: &NodeStatus, http: Option<&str>) -> Self {
        let p = &st.pace;
        Self {
            peer_id: st.peer_id.to_string(),
            chain_id: st.chain_id.to_hex(),
            height: st.height,
            tip: st.tip.to_hex(),
            work: st.work.to_string(),
            peers: st.peers,
            mempool: st.mempool,
            orphans: st.orphans,
            mining: st.mining,
            syncing: st.syncing,
            address: ChainKind::of(&st.chain_id).encode(&st.address),
            listen_addresses: st.listen.iter().map(|a| a.to_string()).collect(),
            reachable_addresses: st.reachable.iter().map(|a| a.to_string()).collect(),
            http: http.map(str::to_string),
            pace: PaceView {
                next_bits: p.next_bits,
                expected_hashes: p.expected_hashes.as_f64(),
                block_time_ms: p.block_time_ms,
                intervals: p.intervals,
                mean_interval_ms: p.mean_interval_ms,
                hash_rate: p.hash_rate,
            },
        }
    }
}

/// The next block's difficulty and the recent block rate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PaceView {
    /// The compact target the next block must carry.
    pub next_bits: u32,
    /// Hashes expected to find the next block.
    pub expected_hashes: f64,
    /// The target block interval, ms (`null`: fixed difficulty, no retargeting).
    pub block_time_ms: Option<u64>,
    /// Block intervals measured (the last blocks of the best chain).
    pub intervals: u64,
    /// Their mean, ms (`null` before two blocks were mined).
    pub mean_interval_ms: Option<f64>,
    /// The network hash rate they imply, hashes/s.
    pub hash_rate: Option<f64>,
}

/// An account (`GET /address/{address}`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AccountView {
    /// The address.
    pub address: String,
    /// Coins on the best chain.
    pub balance: u64,
    /// Transfers it sent on the best chain (the nonce its next one takes, mempool aside).
    pub nonce: u64,
    /// The nonce its next transfer takes, counting those in the mempool.
    pub next_nonce: u64,
    /// What its transfers in the mempool spend (amounts and fees).
    pub pending_spend: u64,
    /// Transfers in the mempool from or to it.
    pub pending: Vec<TxView>,
}

/// The mempool as `mempool` shows it: its size and its first transfers, highest fee first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MempoolView {
    /// Transfers in it.
    pub count: usize,
    /// The first of them (at most [`super::api::MEMPOOL_PAGE`]), highest fee first.
    pub txs: Vec<TxView>,
}

/// The node's wallet address (`address`; `GET /node/identity` has it too).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AddressView {
    /// The address mining rewards go to.
    pub address: String,
}

/// The answer to `POST /wallet/send`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SentView {
    /// The new transfer's txid.
    pub txid: String,
}

/// The answer to `POST /mine {"on": ...}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MiningView {
    /// Continuous mining is now on.
    pub mining: bool,
}

/// The answer to `POST /node/dial`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DialView {
    /// The peer connected to.
    pub peer_id: String,
}

/// The answer to `POST /node/sync`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SyncView {
    /// Peers asked for their chain.
    pub peers: usize,
}

/// A block of the tree view.
#[derive(Serialize)]
pub struct TreeBlock {
    /// Its hash.
    pub hash: String,
    /// Its parent.
    pub parent: String,
    /// Its height.
    pub height: u64,
    /// The coinbase recipient.
    pub miner: String,
    /// Transactions, coinbase included.
    pub txs: usize,
    /// When it reached this node (ms since the epoch), `null` if loaded from disk.
    pub arrived_ms: Option<u64>,
    /// The peer it came from; `null` if this node mined or submitted it or loaded it.
    pub origin: Option<String>,
    /// "peer", "local" (mined or submitted here) or "store" (loaded at start-up).
    pub source: &'static str,
    /// On the best chain now.
    pub in_best_chain: bool,
}

impl TreeBlock {
    /// The view of an arrival.
    pub fn of(a: &Arrival, in_best_chain: bool, kind: ChainKind) -> Self {
        Self {
            hash: a.hash.to_hex(),
            parent: a.parent.to_hex(),
            height: a.height,
            miner: kind.encode(&a.miner),
            txs: a.txs,
            arrived_ms: a.arrived_ms,
            origin: a.origin.map(|p| p.to_string()),
            source: match (a.loaded, a.origin) {
                (true, _) => "store",
                (false, Some(_)) => "peer",
                (false, None) => "local",
            },
            in_best_chain,
        }
    }
}

/// An event's SSE name and JSON data.
pub fn event(e: &NodeEvent, kind: ChainKind) -> (&'static str, serde_json::Value) {
    use serde_json::json;
    match e {
        NodeEvent::Block(a) => ("block", json!(TreeBlock::of(a, false, kind))),
        NodeEvent::Tip {
            hash,
            height,
            reorg_depth,
            disconnected,
            connected,
        } => (
            "tip",
            json!({
                "hash": hash.to_hex(),
                "height": height,
                "reorg_depth": reorg_depth,
                "disconnected": disconnected.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                "connected": connected.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            }),
        ),
        NodeEvent::Tx { txid, tx } => ("tx", json!(TxView::transfer(*txid, tx, kind))),
        NodeEvent::Replaced {
            txid,
            tx,
            by,
            new_fee,
        } => (
            "replaced",
            json!({
                "txid": txid.to_hex(),
                "from": kind.encode(&tx.from),
                "nonce": tx.nonce,
                "fee": tx.fee,
                "replaced_by": by.to_hex(),
                "new_fee": new_fee,
            }),
        ),
        NodeEvent::Peer {
            peer,
            connected,
            found_by,
        } => (
            "peer",
            json!({
                "peer_id": peer.to_string(),
                "connected": connected,
                "found_by": found_by.map(|f| f.to_string()),
            }),
        ),
    }
}
