//! Sync in the node: what we serve to peers ([`locator_from`], [`blocks_after`]), the helpers
//! that turn a received page into blocks and apply it ([`decode_page`], [`apply_page`]), and
//! the glue between the network and the policy: [`SyncDriver`] holds the
//! [`SyncMachine`](super::sync_machine::SyncMachine), which decides, and what the node keeps
//! for it (locators sent, pages received); [`Node::sync_event`] feeds the machine and carries
//! out its actions.

use super::Node;
use super::sync_machine::{
    Action, Event, Failure, PageEnd, PageResult, Req, SyncConfig, SyncMachine, Tag, Tip,
};
use crate::chain::{
    Block, BlockHash, ChainParams, ChainState, CheckedBlock, Outcome, Processed, Transaction,
    ValidationError,
};
use crate::net::protocol::{self, Request, Response};
use libp2p::PeerId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// The node's side of sync.
pub(super) struct SyncDriver {
    /// The policy.
    pub machine: SyncMachine<PeerId>,
    /// Locators of the pages asked for, by tag (a page must connect to its locator).
    locators: HashMap<Tag, Vec<BlockHash>>,
    /// Received pages waiting for the machine's `Apply` or `Discard`, with their sender. At
    /// most the pipeline's depth: the machine asks for no more.
    held: HashMap<Tag, (PeerId, Vec<PageBlock>)>,
    /// Tags of the transfers we pushed: their answers need nothing.
    pushes: HashSet<Tag>,
    /// The tip the machine was last told.
    told: BlockHash,
    /// The page whose blocks are being checked off the actor, if any.
    verifying: Option<Tag>,
}

impl SyncDriver {
    /// A driver for a node whose chain is `chain`.
    pub fn new(config: SyncConfig, chain: &ChainState) -> Self {
        Self {
            machine: SyncMachine::new(config, tip_of(chain)),
            locators: HashMap::new(),
            held: HashMap::new(),
            pushes: HashSet::new(),
            told: chain.tip(),
            verifying: None,
        }
    }

    /// A tag for transfers pushed to a peer.
    pub fn push_tag(&mut self) -> Tag {
        let tag = self.machine.reserve_tag();
        self.pushes.insert(tag);
        tag
    }
}

fn tip_of(chain: &ChainState) -> Tip {
    Tip {
        hash: chain.tip(),
        height: chain.height(),
        work: chain.tip_work(),
    }
}

/// A block locator starting at `from` (any valid block): its ancestors at the heights of
/// [`protocol::locator_heights`]. Walks back only to the best chain, then reads heights from it,
/// so the cost does not grow with the chain.
pub fn locator_from(chain: &ChainState, from: BlockHash) -> Vec<BlockHash> {
    let Some(header) = chain.header(&from) else {
        return locator_from(chain, chain.tip());
    };
    let heights = protocol::locator_heights(header.height);
    let mut out = Vec::with_capacity(heights.len());
    let mut hash = from;
    let mut height = header.height;
    for h in heights {
        // Step back along the side branch until on the best chain or at height h.
        while height > h && !chain.is_active(&hash) {
            let Some(b) = chain.header(&hash) else { break };
            hash = b.prev;
            height -= 1;
        }
        if chain.is_active(&hash) {
            if let Some(a) = chain.hash_at(h) {
                out.push(a);
            }
        } else if height == h {
            out.push(hash);
        }
    }
    out
}

/// What to answer to a `GetBlocks`: the best-chain blocks after the first locator hash on our
/// best chain, at most `max` (capped at [`protocol::MAX_BLOCKS_PER_RESPONSE`]) and within
/// [`protocol::RESPONSE_BLOCK_BYTES`] (always at least one). `None` if no locator hash is on
/// our best chain.
pub fn blocks_after(
    chain: &ChainState,
    locator: &[BlockHash],
    max: u32,
) -> Option<Vec<protocol::Bytes>> {
    let fork = locator.iter().find(|h| chain.is_active(h))?;
    let start = chain.header(fork)?.height + 1;
    let max = max.min(protocol::MAX_BLOCKS_PER_RESPONSE) as u64;
    Some(
        chain
            .wires_from(start, max, protocol::RESPONSE_BLOCK_BYTES)
            .into_iter()
            .map(protocol::Bytes)
            .collect(),
    )
}

impl Node {
    /// Hands an event to the sync machine and carries out what it asks, including the events
    /// that doing so produces (a request that could not be queued, a page applied).
    pub(super) fn sync_event(&mut self, event: Event<PeerId>) {
        let mut queue: VecDeque<Action<PeerId>> =
            self.sync.machine.handle(event, Instant::now()).into();
        while let Some(action) = queue.pop_front() {
            let follow = match action {
                Action::Request { peer, tag, req } => self.send_sync_request(peer, tag, req),
                Action::Apply { tag } => self.apply_held(tag),
                Action::Discard { tag } => {
                    self.sync.held.remove(&tag);
                    self.sync.locators.remove(&tag);
                    if self.sync.verifying == Some(tag) {
                        // Its checks finish unused: the page is dropped when they come back.
                        self.sync.verifying = None;
                    }
                    Vec::new()
                }
                Action::Ban { peer, reason } => {
                    self.net.ban(peer, reason);
                    Vec::new()
                }
            };
            for event in follow {
                queue.extend(self.sync.machine.handle(event, Instant::now()));
            }
        }
    }

    /// Tells the machine our tip if it moved since it was last told.
    pub(super) fn tell_tip(&mut self) {
        if self.sync.told != self.chain.tip() {
            self.sync.told = self.chain.tip();
            self.sync_event(Event::LocalTip(tip_of(&self.chain)));
        }
    }

    fn send_sync_request(&mut self, peer: PeerId, tag: Tag, req: Req) -> Vec<Event<PeerId>> {
        let request = match req {
            Req::Status => Request::Status(self.our_status()),
            Req::GetMempool => Request::GetMempool,
            Req::GetBlocks { from } => {
                let locator = locator_for(&self.chain, from);
                self.sync.locators.insert(tag, locator.clone());
                Request::GetBlocks {
                    locator,
                    max: protocol::MAX_BLOCKS_PER_RESPONSE,
                }
            }
        };
        if self.net.request(peer, request, tag).is_ok() {
            Vec::new()
        } else {
            self.sync.locators.remove(&tag);
            vec![Event::Failed {
                peer,
                tag,
                failure: Failure::NotSent,
            }]
        }
    }

    /// Starts applying a held page: its links are checked here (cheap), then the checks that
    /// need no chain state (each block's structure and signatures, the costly part) run on a
    /// blocking thread so that the node keeps answering meanwhile; [`Node::on_verified_page`]
    /// applies the results in order and reports to the machine.
    fn apply_held(&mut self, tag: Tag) -> Vec<Event<PeerId>> {
        let Some((peer, blocks)) = self.sync.held.remove(&tag) else {
            return Vec::new();
        };
        let locator = self.sync.locators.remove(&tag).unwrap_or_default();
        if !page_connects(&blocks, &locator) {
            let result = PageResult::Invalid("blocks that do not connect to the locator".into());
            tracing::warn!(%peer, "sync page rejected: blocks that do not connect to the locator");
            return vec![Event::PageApplied { tag, result }];
        }
        let page: Vec<(PageBlock, bool)> = blocks
            .into_iter()
            .map(|b| {
                let known = self.chain.known(&b.hash).is_some();
                (b, known)
            })
            .collect();
        self.sync.verifying = Some(tag);
        let params = self.chain.params().clone();
        let chain_id = self.chain.chain_id();
        let done = self.verified_tx.clone();
        tokio::task::spawn_blocking(move || {
            let blocks = verify_page(page, &params, &chain_id);
            // Fails only when the node has stopped.
            let _ = done.blocking_send(VerifiedPage { tag, peer, blocks });
        });
        Vec::new()
    }

    /// Applies a page whose blocks were checked off the actor, in order, and tells the machine
    /// how it went (a page discarded meanwhile is dropped).
    pub(super) fn on_verified_page(&mut self, page: VerifiedPage) {
        if self.sync.verifying != Some(page.tag) {
            tracing::debug!(peer = %page.peer, "a discarded sync page finished its checks");
            return;
        }
        self.sync.verifying = None;
        let (tag, peer) = (page.tag, page.peer);
        let (mut new, mut known) = (0, 0);
        let mut end = None;
        for verified in page.blocks {
            let started = std::time::Instant::now();
            let processed = match verified {
                Verified::Known(hash) => self.apply_known(hash),
                Verified::Checked(checked) => self.apply_checked(checked, Some(peer)),
                Verified::Invalid { block, hash, error } => {
                    self.reject_unchecked(&block, hash, error, Some(peer))
                }
            };
            self.metrics.block_result(
                crate::metrics::Origin::Sync,
                &processed,
                |p| p.accepted.len(),
                started.elapsed(),
            );
            if let Some(result) = tally(processed, &mut new, &mut known) {
                end = Some(result);
                break;
            }
        }
        let result = end.unwrap_or(PageResult::Applied { new, known });
        match &result {
            PageResult::Applied { new, known } => {
                tracing::debug!(%peer, new, known, height = self.chain.height(), "sync page applied")
            }
            PageResult::Invalid(reason) => tracing::warn!(%peer, "sync page rejected: {reason}"),
            PageResult::Paused(reason) => tracing::info!(%peer, "sync paused: {reason}"),
        }
        self.tell_tip();
        self.sync_event(Event::PageApplied { tag, result });
    }

    /// Asks every peer for its status now.
    pub(super) fn ask_statuses(&mut self) {
        self.sync_event(Event::SyncNow);
    }

    /// The answer to a request of ours, or why there is none.
    pub(super) fn on_response(
        &mut self,
        peer: PeerId,
        tag: u64,
        result: Result<Response, crate::net::RequestFailure>,
    ) {
        if super::compact::CompactRelay::<PeerId, ()>::owns(tag) {
            return self.on_compact_response(peer, tag, result);
        }
        if self.sync.pushes.remove(&tag) {
            if let Err(e) = result {
                tracing::debug!(%peer, "pushing transfers failed: {e}");
            }
            return;
        }
        let asked = self.sync.machine.request_of(tag).map(|(_, req)| req);
        let event = match result {
            Err(e) => {
                tracing::debug!(%peer, "sync request failed: {e}");
                Event::Failed {
                    peer,
                    tag,
                    failure: Failure::Io(e),
                }
            }
            Ok(Response::Status(status)) => Event::Status {
                peer,
                tag: Some(tag),
                status,
            },
            Ok(Response::Blocks(page)) if matches!(asked, Some(Req::GetBlocks { .. })) => {
                match decode_page(self.chain.params(), page) {
                    Ok((blocks, last)) => {
                        let n = blocks.len();
                        self.sync.held.insert(tag, (peer, blocks));
                        Event::Page {
                            peer,
                            tag,
                            blocks: n,
                            last,
                        }
                    }
                    Err(reason) => Event::Failed {
                        peer,
                        tag,
                        failure: Failure::Malformed(format!("served {reason}")),
                    },
                }
            }
            Ok(Response::Transactions(txs)) if asked == Some(Req::GetMempool) => {
                self.admit_from_peer(peer, txs);
                Event::Mempool { peer, tag }
            }
            Ok(Response::Refused(reason)) => {
                tracing::debug!(%peer, %reason, "request refused");
                Event::Failed {
                    peer,
                    tag,
                    failure: Failure::Refused(reason),
                }
            }
            Ok(_) if asked.is_none() => return,
            Ok(_) => Event::Failed {
                peer,
                tag,
                failure: Failure::Malformed("the wrong kind of response".into()),
            },
        };
        self.sync_event(event);
    }

    /// The answer to a peer's sync request.
    pub(super) fn answer(&mut self, peer: PeerId, request: Request) -> Response {
        match request {
            Request::Status(status) => {
                let ours = self.our_status();
                self.sync_event(Event::Status {
                    peer,
                    tag: None,
                    status,
                });
                Response::Status(ours)
            }
            Request::GetBlocks { locator, max } => {
                if locator.is_empty() || locator.len() > protocol::MAX_LOCATOR {
                    return Response::Refused(format!(
                        "a locator holds 1 to {} hashes",
                        protocol::MAX_LOCATOR
                    ));
                }
                match blocks_after(&self.chain, &locator, max) {
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
            Request::GetBlockTxs { block, indexes } => self.answer_block_txs(peer, block, indexes),
        }
    }
}

/// A block of a page after the checks that need no chain state.
pub(super) enum Verified {
    /// The node had it already when the page was handed over: not checked again.
    Known(BlockHash),
    /// Structure and signatures hold.
    Checked(Arc<CheckedBlock>),
    /// It breaks a rule; the blocks after it in the page were not checked.
    Invalid {
        /// The block.
        block: Arc<Block>,
        /// Its hash.
        hash: BlockHash,
        /// The rule.
        error: ValidationError,
    },
}

/// A page of blocks checked off the actor, for [`Node::on_verified_page`].
pub(super) struct VerifiedPage {
    /// The page's request.
    tag: Tag,
    /// Who served it.
    peer: PeerId,
    /// Its blocks in order, up to the first invalid one.
    blocks: Vec<Verified>,
}

/// The checks of a page that need no chain state (run on a blocking thread): each block's
/// header and structure, then its signatures; stops at the first block that fails.
fn verify_page(
    page: Vec<(PageBlock, bool)>,
    params: &ChainParams,
    chain_id: &crate::chain::ChainId,
) -> Vec<Verified> {
    let mut out = Vec::with_capacity(page.len());
    for (PageBlock { block, hash, wire }, known) in page {
        if known {
            out.push(Verified::Known(hash));
            continue;
        }
        let block = Arc::new(block);
        let checked =
            CheckedBlock::check(block.clone(), hash, Some(wire), params).and_then(|mut c| {
                c.verify_signatures(chain_id)?;
                Ok(c)
            });
        match checked {
            Ok(c) => out.push(Verified::Checked(Arc::new(c))),
            Err(error) => {
                out.push(Verified::Invalid { block, hash, error });
                break;
            }
        }
    }
    out
}

/// The locator for a page starting after `from`: [`locator_from`] if our chain holds `from`;
/// else (`from` ends a received page not yet applied) `from` followed by our tip's locator, so
/// a peer serves the blocks after `from` without our having applied it first.
pub fn locator_for(chain: &ChainState, from: BlockHash) -> Vec<BlockHash> {
    if chain.contains(&from) {
        return locator_from(chain, from);
    }
    let mut out = vec![from];
    out.extend(locator_from(chain, chain.tip()));
    out.truncate(protocol::MAX_LOCATOR);
    out
}

/// A block of a received page, with what decoding it gave at no extra cost.
#[derive(Clone, Debug)]
pub struct PageBlock {
    /// The block.
    pub block: Block,
    /// Its header's hash.
    pub hash: BlockHash,
    /// Its wire bytes (its consensus encoding), to store and serve without re-encoding.
    pub wire: Vec<u8>,
}

/// Decodes a page of blocks (bounded by the chain's block limits) and finds its last block.
/// `Err` says why the page is malformed.
pub fn decode_page(
    params: &ChainParams,
    page: Vec<protocol::Bytes>,
) -> Result<(Vec<PageBlock>, Option<PageEnd>), String> {
    let mut blocks = Vec::with_capacity(page.len());
    for bytes in page {
        let block = Block::decode(
            &bytes.0,
            params.max_block_bytes as usize,
            params.max_block_txs,
        )
        .map_err(|e| format!("a malformed block: {e}"))?;
        let hash = block.compute_hash();
        blocks.push(PageBlock {
            block,
            hash,
            wire: bytes.0,
        });
    }
    let end = blocks.last().map(|b| PageEnd {
        hash: b.hash,
        height: b.block.header.height,
    });
    Ok((blocks, end))
}

/// Whether a page answers `locator`: its first block builds on a locator hash and each next
/// one on the block before it.
pub fn page_connects(blocks: &[PageBlock], locator: &[BlockHash]) -> bool {
    let mut prev: Option<BlockHash> = None;
    for block in blocks {
        let parent = block.block.header.prev_hash;
        let connects = match prev {
            None => locator.contains(&parent),
            Some(p) => parent == p,
        };
        if !connects {
            return false;
        }
        prev = Some(block.hash);
    }
    true
}

/// Counts one block of a page as new or known; `Some` ends the page: a block whose parent the
/// page lacks or that breaks a rule condemns it, one that cannot be accepted yet pauses it.
fn tally(
    processed: Result<Processed, ValidationError>,
    new: &mut usize,
    known: &mut usize,
) -> Option<PageResult> {
    match processed {
        Ok(p) => match p.outcome {
            Outcome::Accepted => *new += 1,
            Outcome::AlreadyKnown => *known += 1,
            Outcome::Orphan { .. } => {
                return Some(PageResult::Invalid(
                    "a block whose parent it did not send".into(),
                ));
            }
        },
        Err(e) if e.is_permanent() => return Some(PageResult::Invalid(format!("{e}"))),
        Err(e) => return Some(PageResult::Paused(format!("{e}"))),
    }
    None
}

/// Applies a page that answered `locator` in one go (the simulator's way; the node checks
/// structure and signatures off its actor first): the page must connect ([`page_connects`])
/// and every block must be valid (`process` validates and stores one). Stops at the first
/// block that fails.
pub fn apply_page(
    blocks: Vec<PageBlock>,
    locator: &[BlockHash],
    mut process: impl FnMut(PageBlock) -> Result<Processed, ValidationError>,
) -> PageResult {
    if !page_connects(&blocks, locator) {
        return PageResult::Invalid("blocks that do not connect to the locator".into());
    }
    let (mut new, mut known) = (0, 0);
    for block in blocks {
        if let Some(end) = tally(process(block), &mut new, &mut known) {
            return end;
        }
    }
    PageResult::Applied { new, known }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Address;
    use crate::testkit;

    #[test]
    fn locator_of_a_side_branch_starts_on_it_and_ends_at_genesis() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 20, Address([1; 32]));
        let fork = chain.hash_at(15).unwrap();
        let side = testkit::block_on(&chain, fork, &[], Address([2; 32]));
        let side_hash = side.compute_hash();
        chain
            .process_block(std::sync::Arc::new(side), testkit::NOW)
            .unwrap();
        let loc = locator_from(&chain, side_hash);
        assert_eq!(loc[0], side_hash);
        assert_eq!(loc[1], fork);
        assert_eq!(*loc.last().unwrap(), chain.chain_id());
        let served = blocks_after(&chain, &loc, 100).unwrap();
        assert_eq!(served.len(), 20 - 15);
    }

    #[test]
    fn blocks_after_serves_from_the_fork_point_and_refuses_unknown_locators() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 10, Address([1; 32]));
        let loc = vec![BlockHash([9; 32]), chain.hash_at(4).unwrap()];
        let served = blocks_after(&chain, &loc, 3).unwrap();
        assert_eq!(served.len(), 3);
        assert_eq!(
            crate::chain::Block::decode(&served[0].0, 1 << 20, 10)
                .unwrap()
                .header
                .height,
            5
        );
        assert!(blocks_after(&chain, &[BlockHash([9; 32])], 3).is_none());
    }
}
