//! What the sync machine takes and gives: its knobs, the events the node tells it, the
//! actions it asks for, and its counters.

use crate::chain::{BlockHash, ChainId};
use crate::net::RequestFailure;
use crate::net::protocol::Status;

use std::fmt::Debug;
use std::time::Duration;

/// Names one request; answers and failures carry it back.
pub type Tag = u64;

/// The policy's knobs.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Peers with another genesis are banned.
    pub chain_id: ChainId,
    /// Deadline of a status or mempool request.
    pub request_timeout: Duration,
    /// Deadline of a page of blocks (serving and sending up to 4 MiB).
    pub page_timeout: Duration,
    /// How often every peer is asked for its status.
    pub status_interval: Duration,
    /// Pages received but not yet applied, at most; the next page is requested only below it.
    pub pipeline: usize,
    /// Wait before a peer whose download failed is chosen again, after its first failure.
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
            page_timeout: Duration::from_secs(15),
            status_interval: Duration::from_secs(15),
            pipeline: 2,
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
        }
    }
}

/// Our best tip, as the machine needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
    /// Cumulative work of the best chain.
    pub work: u128,
}

/// A request the node is to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// Our status, asking for theirs.
    Status,
    /// The best-chain blocks after `from` (which our chain holds or a received page ends with):
    /// the node sends a locator that starts at `from`.
    GetBlocks {
        /// The range's start.
        from: BlockHash,
    },
    /// Their pending transfers.
    GetMempool,
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
    /// The answer could not be decoded (a malformed block in a page): the peer is banned.
    Malformed(String),
}

/// The last block of a received page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageEnd {
    /// Its hash: the next page starts after it.
    pub hash: BlockHash,
    /// Its height.
    pub height: u64,
}

/// What applying a page to the chain did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageResult {
    /// Every block was valid.
    Applied {
        /// Blocks new to us.
        new: usize,
        /// Blocks we had already.
        known: usize,
    },
    /// A block broke a rule, or the page does not connect: the sender is banned.
    Invalid(String),
    /// A block cannot be accepted yet (a timestamp ahead of our clock): the download stops
    /// without blame and resumes later.
    Paused(String),
}

/// What the node tells the machine.
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
    /// A page of blocks answering `tag` arrived (decoded, not yet validated); the node holds
    /// it until an [`Action::Apply`] or [`Action::Discard`] names the tag.
    Page {
        /// Who sent it.
        peer: P,
        /// The request it answers.
        tag: Tag,
        /// Blocks in it.
        blocks: usize,
        /// Its last block, if it is not empty.
        last: Option<PageEnd>,
    },
    /// A peer answered our mempool request.
    Mempool {
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
    /// The node applied the page of `tag` (after an [`Action::Apply`]). Report a tip change
    /// with [`Event::LocalTip`] before this.
    PageApplied {
        /// The page.
        tag: Tag,
        /// What came of it.
        result: PageResult,
    },
    /// Gossip brought a block whose parent we lack: this peer has blocks we do not.
    Orphan(P),
    /// Our best tip changed.
    LocalTip(Tip),
    /// Time passed: deadlines and periodic status requests are checked (call it every second or
    /// so; any event checks them too).
    Tick,
    /// Ask every peer for its status now.
    SyncNow,
}

/// What the machine asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Validate and apply the held page of `tag` (pages come in order, one at a time), then
    /// report [`Event::PageApplied`].
    Apply {
        /// The page.
        tag: Tag,
    },
    /// Drop the held page of `tag` unapplied (its download was abandoned).
    Discard {
        /// The page.
        tag: Tag,
    },
    /// Disconnect and ban `peer`.
    Ban {
        /// Who.
        peer: P,
        /// Why, for the log.
        reason: String,
    },
}

/// Counters, for logs, tests and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Pages requested.
    pub pages_requested: u64,
    /// Pages applied.
    pub pages_applied: u64,
    /// Requests whose deadline passed.
    pub timeouts: u64,
    /// Downloads ended by a refusal, a failure or a disconnect.
    pub failures: u64,
    /// Bans asked for.
    pub bans: u64,
    /// Answers ignored because they came late or were never asked for.
    pub ignored: u64,
}
