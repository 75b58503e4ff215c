//! The JSON shapes of the API: blocks, transactions, peers, events. Hashes and signatures are
//! hex in natural byte order, as in PROTOCOL.md; addresses are bech32m text of the node's chain
//! kind (PROTOCOL.md §8); amounts are numbers.

use crate::chain::{Block, ChainKind, Transaction, Transfer, Txid};
use crate::net::PeerInfo;
use crate::node::BlockInfo;
use crate::node::events::{Arrival, NodeEvent};
use serde::Serialize;

/// A transaction.
#[derive(Serialize)]
pub struct TxView {
    /// Its txid.
    pub txid: String,
    /// "coinbase" or "transfer".
    pub kind: &'static str,
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
                kind: "coinbase",
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
                kind: "transfer",
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
#[derive(Serialize)]
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
#[derive(Serialize)]
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
#[derive(Serialize)]
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
