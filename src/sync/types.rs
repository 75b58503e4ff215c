//! What the block-acquisition component takes and gives: its knobs, the events the node tells
//! it, the actions it asks for, and its counters.

use crate::chain::{Block, BlockHash, ChainId, Header};
use crate::net::RequestFailure;
use crate::net::protocol::{Bytes, Status};

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Names one request; answers and failures carry it back.
pub type Tag = u64;

/// Names one batch of blocks handed to the node to apply.
pub type BatchId = u64;

/// The component's knobs.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Peers with another genesis are banned.
    pub chain_id: ChainId,
    /// Deadline of a status, headers, mempool or push request.
    pub request_timeout: Duration,
    /// Deadline of a bodies request (serving and sending up to 4 MiB).
    pub bodies_timeout: Duration,
    /// How often every peer is asked for its status.
    pub status_interval: Duration,
    /// Bodies are fetched at most this many heights past the first one not yet applied
    /// (Bitcoin Core's `BLOCK_DOWNLOAD_WINDOW`).
    pub window: u64,
    /// Block hashes asked in one `GetBodies` request.
    pub bodies_per_request: usize,
    /// Bodies requests in flight to one peer at most.
    pub requests_per_peer: usize,
    /// Bodies held received and not yet handed to the node, at most (bytes); the window stops
    /// moving past it.
    pub held_bytes: usize,
    /// Blocks handed to the node in one batch, at most.
    pub batch_blocks: usize,
    /// A peer holding the window's first block longer than this loses it to another peer
    /// (Bitcoin Core: 2 s). It doubles each time it fires, up to [`Self::stall_max`], and
    /// shrinks back as blocks arrive.
    pub stall_timeout: Duration,
    /// Longest stall timeout.
    pub stall_max: Duration,
    /// Headers held beyond our best chain that do not (yet) beat it, at most: past it the run
    /// is dropped, so a flood of cheap headers costs a bounded amount of memory.
    pub max_headers: usize,
    /// Wait before a peer whose request failed is chosen again, after its first failure.
    pub retry_min: Duration,
    /// Longest such wait (it doubles with each consecutive failure).
    pub retry_max: Duration,
}

impl SyncConfig {
    /// Defaults for a chain.
    pub fn new(chain_id: ChainId) -> Self {
        Self {
            chain_id,
            request_timeout: Duration::from_secs(10),
            bodies_timeout: Duration::from_secs(15),
            status_interval: Duration::from_secs(15),
            window: 1024,
            bodies_per_request: 64,
            requests_per_peer: 2,
            held_bytes: 64 << 20,
            batch_blocks: 256,
            stall_timeout: Duration::from_secs(2),
            stall_max: Duration::from_secs(64),
            max_headers: 200_000,
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
        }
    }
}

/// The time of an event: a monotonic instant for deadlines, and the wall clock in ms since the
/// Unix epoch for the header timestamp rule. The component reads no clock itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For deadlines and timers.
    pub mono: Instant,
    /// For "a header at most `max_future_ms` ahead".
    pub wall_ms: u64,
}

/// A request the node is to send, built by the component (locators included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    /// Our status, asking for theirs.
    Status,
    /// Headers of the peer's best chain after the first of these hashes it has on it.
    GetHeaders {
        /// The locator, newest first.
        locator: Vec<BlockHash>,
    },
    /// The bodies of these blocks, in this order.
    GetBodies {
        /// Their hashes.
        hashes: Vec<BlockHash>,
    },
    /// Their pending transfers.
    GetMempool,
    /// Transfers they may lack (after a reorganisation returned them to our mempool).
    Transactions(Arc<Vec<Bytes>>),
}

/// Why a request brought no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The network could not queue it.
    NotSent,
    /// The transport failed (connection closed, stream reset, timeout below us).
    Io(RequestFailure),
    /// The peer answered `Refused`.
    Refused(String),
    /// The answer could not be decoded or was the wrong kind: the peer is banned.
    Malformed(String),
}

/// A block as decoding gave it: the block, its header's hash, its wire bytes.
#[derive(Clone, Debug)]
pub struct Body {
    /// The block.
    pub block: Block,
    /// Its header's hash.
    pub hash: BlockHash,
    /// Its consensus encoding, to store and serve without re-encoding.
    pub wire: Vec<u8>,
}

/// How applying a batch went, as the node reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// Every block was stored (or was known already).
    Applied,
    /// Block `index` of the batch broke a rule; those after it were not applied.
    Invalid {
        /// Its position in the batch.
        index: usize,
        /// The rule, for the log.
        reason: String,
        /// Whether the block itself is invalid (its hash is condemned: the header chain is
        /// bad from there), or only the body the peer served (another body may be valid).
        condemned: bool,
    },
    /// Block `index` cannot be accepted yet (a timestamp ahead of our clock) or no longer
    /// connects (its branch was pruned): no one is blamed, the download resumes later.
    Paused {
        /// Its position in the batch.
        index: usize,
        /// Why, for the log.
        reason: String,
    },
}

/// What the node tells the component.
#[derive(Clone, Debug)]
pub enum Event<P> {
    /// A peer's first connection opened.
    Connected(P),
    /// A peer's last connection closed.
    Disconnected(P),
    /// A peer's status: the answer to our request `tag`, or (`tag: None`) its own request.
    Status {
        /// Who.
        peer: P,
        /// The request it answers, if any.
        tag: Option<Tag>,
        /// What it claims.
        status: Status,
    },
    /// Headers answering `tag` (decoded, not checked).
    Headers {
        /// Who sent them.
        peer: P,
        /// The request.
        tag: Tag,
        /// The headers, oldest first.
        headers: Vec<Header>,
    },
    /// Bodies answering `tag` (decoded, not validated).
    Bodies {
        /// Who sent them.
        peer: P,
        /// The request.
        tag: Tag,
        /// The blocks, in the order received.
        blocks: Vec<Body>,
    },
    /// A peer answered our mempool request or our push (its transfers were handed to the
    /// mempool by the node).
    Answered {
        /// Who.
        peer: P,
        /// The request.
        tag: Tag,
    },
    /// Request `tag` brought no usable answer.
    Failed {
        /// To whom it went.
        peer: P,
        /// The request.
        tag: Tag,
        /// Why.
        failure: Failure,
    },
    /// The node applied batch `batch` (after an [`Action::Apply`]).
    Applied {
        /// The batch.
        batch: BatchId,
        /// What came of it.
        result: BatchResult,
    },
    /// Gossip brought a block whose parent we lack: this peer has blocks we do not.
    Orphan(P),
    /// Transfers to push to every peer (see [`Req::Transactions`]).
    Push(Vec<Bytes>),
    /// A timer asked for by [`Action::WakeAt`] fired (or any time passed: deadlines and the
    /// periodic status round are checked on every event).
    Timer,
    /// Ask every peer for its status now.
    SyncNow,
}

/// What the component asks the node to do.
#[derive(Clone, Debug)]
pub enum Action<P> {
    /// Send `req` to `peer`; report its answer or failure with `tag`.
    Request {
        /// To whom.
        peer: P,
        /// Its tag.
        tag: Tag,
        /// What.
        req: Req,
    },
    /// Validate and apply these blocks, in order, each building on the one before (the
    /// first on a block the chain holds), then report [`Event::Applied`]. One batch at a time.
    Apply {
        /// The batch.
        batch: BatchId,
        /// Its blocks.
        blocks: Vec<Body>,
        /// Who served each block (for logs).
        from: Vec<P>,
    },
    /// Disconnect and ban `peer`.
    Ban {
        /// Who.
        peer: P,
        /// Why, for the log.
        reason: String,
    },
    /// Report [`Event::Timer`] at this instant (replaces any earlier one asked for; given after
    /// every event while anything is pending).
    WakeAt(Instant),
}

/// Counters, for logs, metrics, tests and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Headers requests sent.
    pub headers_requested: u64,
    /// Headers received and checked.
    pub headers_checked: u64,
    /// Bodies requests sent.
    pub bodies_requested: u64,
    /// Blocks received by a bodies request.
    pub bodies_received: u64,
    /// Batches the node applied.
    pub batches_applied: u64,
    /// Requests whose deadline passed.
    pub timeouts: u64,
    /// Times a peer holding the window's first block lost it.
    pub stalls: u64,
    /// Requests ended by a refusal, a failure or a disconnect.
    pub failures: u64,
    /// Bans asked for.
    pub bans: u64,
    /// Answers ignored because they came late or were never asked for.
    pub ignored: u64,
    /// Header runs dropped without beating our chain (too long, or served no further).
    pub runs_dropped: u64,
}
