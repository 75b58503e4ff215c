//! The peer-to-peer wire protocol: gossip topics, the sync request-response messages and their
//! limits. Blocks and transactions travel in their consensus encoding (the bytes their hashes
//! are computed over); sync messages are CBOR. `proto/PROTOCOL.md` is the normative text.

use crate::chain::hash::ByteArray;
use crate::chain::{BlockHash, ChainId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The sync protocol id.
pub const SYNC_PROTOCOL: &str = "/gossipchain/sync/1";
/// The identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/gossipchain/id/1";

/// Most hashes accepted in a block locator (enough for 2^50 blocks with 10 dense entries).
pub const MAX_LOCATOR: usize = 64;
/// Most blocks in one `Blocks` response.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 512;
/// Most headers in one `Headers` response.
pub const MAX_HEADERS_PER_RESPONSE: u32 = 2000;
/// Most hashes in one `GetBodies` request.
pub const MAX_BODIES_PER_REQUEST: usize = 128;
/// Most transfers in one `Transactions` request or response.
pub const MAX_TXS_PER_MESSAGE: usize = 2000;
/// Largest encoded request: [`MAX_TXS_PER_MESSAGE`] transfers plus framing (a locator or a
/// `GetBodies` list of hashes is far smaller: 64 or 128 hashes of 34 CBOR bytes each).
pub const MAX_REQUEST_BYTES: u64 = 512 * 1024;
/// Budget of block bytes in one response; the largest single block always fits.
pub const RESPONSE_BLOCK_BYTES: usize = 4 << 20;
/// Largest encoded response accepted: the block budget plus one maximal block and framing (a
/// `Headers` page, 2000 headers of 98 CBOR bytes each, is far smaller).
pub fn max_response_bytes(max_block_bytes: u32) -> u64 {
    (RESPONSE_BLOCK_BYTES + max_block_bytes as usize + 64 * 1024) as u64
}
/// Largest gossip message: one maximal block plus framing.
pub fn max_transmit_size(max_block_bytes: u32) -> usize {
    max_block_bytes as usize + 16 * 1024
}

/// The Kademlia protocol of a chain: `/gossipchain/<chain id hex>/kad/1`. Nodes of other chains
/// speak another protocol, so they never enter each other's routing tables.
pub fn kad_protocol(chain_id: &ChainId) -> String {
    format!("/gossipchain/{}/kad/1", chain_id.to_hex())
}

/// Largest gossipsub message accepted on the transfers topic, counted as
/// [`max_transmit_size`] is: the whole protobuf `Message` (payload and topic; an anonymous
/// message has no author, sequence number, signature or key). A transfer's takes 194 bytes; a
/// bigger one (a signed one included) is an invalid message that costs its sender gossipsub
/// score at once (under the graylist threshold).
pub const MAX_TX_GOSSIP_BYTES: usize = 2048;

/// The part of a chain id that names its gossip topics: the first 8 bytes in lower-case hex.
/// Every gossip message carries its topic, so the whole id (64 hex digits) cost 48 bytes a
/// transfer. Topics only keep chains apart among peers that have not yet been disconnected
/// for another chain id (the `Status` exchange, §14.3); 64 bits do that as well as 256 against
/// accident, and a chain crafted to share them gains nothing: its messages fail validation.
fn topic_chain_tag(chain_id: &ChainId) -> String {
    hex::encode(&chain_id.as_bytes()[..8])
}

/// The gossip topic carrying mined blocks, each as a compact block
/// ([`crate::chain::compact::CompactBlock`]): `/gossipchain/<first 8 bytes of the chain id in
/// hex>/cblocks/2`. Named `cblocks`, not `blocks`, because its message kind changed; version 2
/// because messages became anonymous (no author, sequence number or signature) and the topic
/// shorter: a node of either older kind is on another topic and never sends one here.
pub fn blocks_topic(chain_id: &ChainId) -> String {
    format!("/gossipchain/{}/cblocks/2", topic_chain_tag(chain_id))
}

/// The gossip topic carrying new transfers: `/gossipchain/<first 8 bytes of the chain id in
/// hex>/txs/2` (version 2: anonymous messages, see [`blocks_topic`]).
pub fn txs_topic(chain_id: &ChainId) -> String {
    format!("/gossipchain/{}/txs/2", topic_chain_tag(chain_id))
}

/// A node's view of its best chain, exchanged when a connection opens and on periodic checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The genesis hash: peers on another chain are disconnected.
    pub chain_id: ChainId,
    /// Best tip.
    pub tip: BlockHash,
    /// Best tip's height.
    pub height: u64,
    /// Cumulative work of the best chain, a 128-bit big-endian integer (CBOR integers stop at
    /// 64 bits).
    pub work: ByteArray<16>,
}

impl Status {
    /// Builds a status.
    pub fn new(chain_id: ChainId, tip: BlockHash, height: u64, work: u128) -> Self {
        Self {
            chain_id,
            tip,
            height,
            work: ByteArray(work.to_be_bytes()),
        }
    }

    /// The cumulative work as a number.
    pub fn work(&self) -> u128 {
        u128::from_be_bytes(self.work.0)
    }
}

/// A byte string of any length (CBOR major type 2).
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// "Here is my status; what is yours?"
    Status(Status),
    /// "Send the blocks of your best chain after the first of these hashes you have on it."
    GetBlocks {
        /// Hashes from the requester's chain, newest first, spaced exponentially, ending at
        /// genesis; at most [`MAX_LOCATOR`].
        locator: Vec<BlockHash>,
        /// Most blocks wanted; the responder caps it at [`MAX_BLOCKS_PER_RESPONSE`].
        max: u32,
    },
    /// "Send me your pending transfers" (asked of a newly connected peer).
    GetMempool,
    /// "Send the headers of your best chain after the first of these hashes you have on it."
    GetHeaders {
        /// Hashes from the requester's chain, newest first, as in `GetBlocks`; at most
        /// [`MAX_LOCATOR`].
        locator: Vec<BlockHash>,
        /// Most headers wanted; the responder caps it at [`MAX_HEADERS_PER_RESPONSE`].
        max: u32,
    },
    /// "Send these blocks" (on any of your branches), by hash, in this order; at most
    /// [`MAX_BODIES_PER_REQUEST`].
    GetBodies {
        /// The blocks wanted.
        hashes: Vec<BlockHash>,
    },
    /// "Here are transfers you may lack": sent after a reorganisation returned transfers to our
    /// mempool, which gossip cannot repeat (its duplicate cache remembers them). At most
    /// [`MAX_TXS_PER_MESSAGE`], each in consensus encoding.
    Transactions(Vec<Bytes>),
    /// "Send the transfers at these indexes of this block", asked of the peer that relayed
    /// its compact block (`proto/PROTOCOL.md` §14.7). Answered with `Transactions` in the
    /// order asked.
    GetBlockTxs {
        /// The block.
        block: BlockHash,
        /// Indexes in the block, strictly increasing, from 1 (the coinbase is in the compact
        /// block); at most the chain's `max_block_txs`.
        indexes: Vec<u32>,
    },
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The responder's status.
    Status(Status),
    /// Blocks in consensus encoding. To `GetBlocks`: consecutive blocks of the responder's best
    /// chain, oldest first; empty when the responder has nothing after the locator. To
    /// `GetBodies`: the blocks asked, in the order asked, up to the first one the responder
    /// does not hold or the response budget; empty when it holds none.
    Blocks(Vec<Bytes>),
    /// Consecutive headers of the responder's best chain, oldest first, each in its 96-byte
    /// consensus encoding (the answer to `GetHeaders`); empty when nothing follows the
    /// locator.
    Headers(Vec<Bytes>),
    /// Pending transfers, highest fee first, at most [`MAX_TXS_PER_MESSAGE`], each in
    /// consensus encoding (the answer to `GetMempool`).
    Transactions(Vec<Bytes>),
    /// Receipt of a `Transactions` request: how many were new and valid.
    Accepted(u32),
    /// The request was refused (another chain, malformed locator, rate limit).
    Refused(String),
}

/// Hashes back from `height` on a chain, newest first: the 10 most recent, then doubling gaps,
/// always ending with genesis (height 0). The caller maps each height to its chain's hash there
/// (see `sync::serve::locator_from`, which also starts a locator on a side branch).
pub fn locator_heights(height: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h = height;
    let mut step = 1u64;
    loop {
        out.push(h);
        if h == 0 || out.len() == MAX_LOCATOR - 1 {
            break;
        }
        if out.len() >= 10 {
            step = step.saturating_mul(2);
        }
        h = h.saturating_sub(step);
    }
    if *out.last().unwrap_or(&1) != 0 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_is_dense_then_exponential_and_ends_at_genesis() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        let l = locator_heights(100_000);
        assert_eq!(
            &l[..10],
            &[
                100_000, 99_999, 99_998, 99_997, 99_996, 99_995, 99_994, 99_993, 99_992, 99_991
            ]
        );
        assert_eq!(*l.last().unwrap(), 0);
        assert!(l.len() <= MAX_LOCATOR);
        assert!(l.windows(2).all(|w| w[0] > w[1]));
        let huge = locator_heights(u64::MAX);
        assert!(huge.len() <= MAX_LOCATOR);
        assert_eq!(*huge.last().unwrap(), 0);
    }
}
