//! Sync: the bookkeeping ([`SyncState`]: what each peer claims, which requests are in flight,
//! which peer we download from), what we serve to peers ([`locator_from`], [`blocks_after`]),
//! and the node's decisions that use them (which peer to download from, what to do with a page
//! of blocks or a failed request, how to answer a peer's request).

use super::Node;
use super::sync_machine::{PageEnd, PageResult};
use crate::chain::{
    Block, BlockHash, ChainParams, ChainState, CheckedBlock, Outcome, Processed, Transaction,
    ValidationError,
};
use crate::net::protocol::{self, Request, Response, Status};
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::Arc;

/// A request in flight.
#[derive(Debug, Clone)]
pub enum Pending {
    /// We sent our status and wait for theirs.
    Status,
    /// We asked for the blocks after this locator.
    Blocks {
        /// The locator sent.
        locator: Vec<BlockHash>,
    },
    /// We asked for the peer's mempool.
    Mempool,
    /// We pushed transfers.
    Push,
}

/// The sync state of the node.
#[derive(Default)]
pub struct SyncState {
    /// Each connected peer's last status, once known.
    peers: HashMap<PeerId, Option<Status>>,
    /// Requests in flight by tag.
    pending: HashMap<u64, (PeerId, Pending)>,
    /// Next request tag.
    next_tag: u64,
    /// The peer we are downloading blocks from, if any.
    pub active: Option<PeerId>,
}

impl SyncState {
    /// A peer connected.
    pub fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_insert(None);
    }

    /// A peer disconnected: forgets it and its requests.
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.pending.retain(|_, (p, _)| p != peer);
        if self.active == Some(*peer) {
            self.active = None;
        }
    }

    /// Connected peers.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Records a peer's status.
    pub fn set_status(&mut self, peer: PeerId, status: Status) {
        self.peers.insert(peer, Some(status));
    }

    /// Forgets what a peer claimed until its next status (it failed to serve it).
    pub fn forget_claim(&mut self, peer: &PeerId) {
        if let Some(status) = self.peers.get_mut(peer) {
            *status = None;
        }
    }

    /// A peer's last status.
    pub fn status(&self, peer: &PeerId) -> Option<Status> {
        self.peers.get(peer).copied().flatten()
    }

    /// Registers a request and returns its tag.
    pub fn start(&mut self, peer: PeerId, pending: Pending) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, (peer, pending));
        tag
    }

    /// Takes the request answered by `tag`.
    pub fn finish(&mut self, tag: u64) -> Option<(PeerId, Pending)> {
        self.pending.remove(&tag)
    }

    /// The peer claiming the most work above `work`, if any.
    pub fn best_peer_above(&self, work: u128) -> Option<PeerId> {
        self.peers
            .iter()
            .filter_map(|(p, s)| s.map(|s| (p, s.work())))
            .filter(|(_, w)| *w > work)
            .max_by_key(|(_, w)| *w)
            .map(|(p, _)| *p)
    }
}

/// A block locator starting at `from` (any valid block): its ancestors at the heights of
/// [`protocol::locator_heights`]. Walks back only to the best chain, then reads heights from it,
/// so the cost does not grow with the chain.
pub fn locator_from(chain: &ChainState, from: BlockHash) -> Vec<BlockHash> {
    let Some(block) = chain.block(&from) else {
        return locator_from(chain, chain.tip());
    };
    let heights = protocol::locator_heights(block.header.height);
    let mut out = Vec::with_capacity(heights.len());
    let mut hash = from;
    let mut height = block.header.height;
    for h in heights {
        // Step back along the side branch until on the best chain or at height h.
        while height > h && !chain.is_active(&hash) {
            let Some(b) = chain.block(&hash) else { break };
            hash = b.header.prev_hash;
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
    let start = chain.block(fork)?.header.height + 1;
    let max = max.min(protocol::MAX_BLOCKS_PER_RESPONSE) as u64;
    let mut out = Vec::new();
    let mut bytes = 0;
    for height in start..start.saturating_add(max) {
        let Some(block) = chain.checked_at(height) else {
            break;
        };
        let wire = block.wire();
        if !out.is_empty() && bytes + wire.len() > protocol::RESPONSE_BLOCK_BYTES {
            break;
        }
        bytes += wire.len();
        out.push(protocol::Bytes(wire.to_vec()));
    }
    Some(out)
}

impl Node {
    /// A peer told its status (answering ours, or asking): on another chain it is banned; ahead
    /// of us, and with no download running, we download from it.
    pub(super) fn on_peer_status(&mut self, peer: PeerId, status: Status) {
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

    /// Sends a request registered as `pending`. False if the network could not queue it:
    /// then it is forgotten (no answer will come).
    pub(super) fn send_request(
        &mut self,
        peer: PeerId,
        request: Request,
        pending: Pending,
    ) -> bool {
        let tag = self.sync.start(peer, pending);
        if self.net.request(peer, request, tag).is_err() {
            self.sync.finish(tag);
            return false;
        }
        true
    }

    /// Asks `peer` for the blocks after `from` and marks the download active. If the request
    /// cannot leave, the download is retried shortly ([`Node::retry_sync`]).
    pub(super) fn request_blocks(&mut self, peer: PeerId, from: BlockHash) {
        let locator = locator_from(&self.chain, from);
        let request = Request::GetBlocks {
            locator: locator.clone(),
            max: protocol::MAX_BLOCKS_PER_RESPONSE,
        };
        if self.send_request(peer, request, Pending::Blocks { locator }) {
            self.sync.active = Some(peer);
        } else {
            tracing::info!(%peer, "block request not sent (network busy): retrying shortly");
            self.sync_retry = true;
        }
    }

    /// The retry after a block request that could not be sent.
    pub(super) fn retry_sync(&mut self) {
        self.sync_retry = false;
        self.sync_from_best();
    }

    /// Starts downloading from the peer that claims the most work above ours, if any.
    pub(super) fn sync_from_best(&mut self) {
        if self.sync.active.is_none()
            && let Some(peer) = self.sync.best_peer_above(self.chain.tip_work())
        {
            self.request_blocks(peer, self.chain.tip());
        }
    }

    /// Sends our status to every peer (each answers with its own).
    pub(super) fn ask_statuses(&mut self) {
        let peers: Vec<PeerId> = self.sync.peers().copied().collect();
        for peer in peers {
            self.send_request(peer, Request::Status(self.our_status()), Pending::Status);
        }
    }

    pub(super) fn on_response(&mut self, peer: PeerId, tag: u64, result: Result<Response, String>) {
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
            (pending, Response::Refused(reason)) => {
                tracing::debug!(%peer, %reason, "request refused");
                if matches!(pending, Pending::Blocks { .. }) && self.sync.active == Some(peer) {
                    // Another peer may serve what this one refuses (a rate limit, a locator
                    // off its chain); this one is asked again after its next status.
                    self.sync.active = None;
                    self.sync.forget_claim(&peer);
                    self.sync_from_best();
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
    ///
    /// The page is decoded and its links checked here; the costly checks that need no chain
    /// state (each block's structure and signatures) run on a blocking thread, so the node
    /// keeps answering meanwhile; [`Node::on_verified_page`] then applies the results in order.
    /// The download stays marked active for the peer until then.
    fn on_blocks(&mut self, peer: PeerId, locator: &[BlockHash], blocks: Vec<protocol::Bytes>) {
        let claimed = self.sync.status(&peer).map_or(0, |s| s.work());
        if blocks.is_empty() {
            if self.sync.active == Some(peer) {
                self.sync.active = None;
            }
            if claimed > self.chain.tip_work() {
                self.end_sync_with(peer, "claimed more work than it can serve");
            } else {
                self.sync_from_best();
            }
            return;
        }
        let (max_bytes, max_txs) = {
            let params = self.chain.params();
            (params.max_block_bytes as usize, params.max_block_txs)
        };
        let mut prev: Option<BlockHash> = None;
        let mut page = Vec::with_capacity(blocks.len());
        for bytes in blocks {
            let block = match Block::decode(&bytes.0, max_bytes, max_txs) {
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
            prev = Some(hash);
            page.push((Arc::new(block), hash, bytes.0));
        }
        let params = self.chain.params().clone();
        let chain_id = self.chain.chain_id();
        let done = self.verified_tx.clone();
        tokio::task::spawn_blocking(move || {
            let blocks = verify_page(page, &params, &chain_id);
            let _ = done.blocking_send(VerifiedPage { peer, blocks });
        });
    }

    /// Applies a page whose blocks were checked off the actor, in order, then asks for the next
    /// page or moves on.
    pub(super) fn on_verified_page(&mut self, page: VerifiedPage) {
        let peer = page.peer;
        if self.sync.active == Some(peer) {
            self.sync.active = None;
        }
        let mut last = None;
        for verified in page.blocks {
            let (result, hash) = match verified {
                Verified::Checked(checked) => {
                    let hash = checked.hash();
                    (self.apply_checked(checked, Some(peer)), hash)
                }
                Verified::Invalid { block, hash, error } => {
                    (self.reject_unchecked(&block, hash, error, Some(peer)), hash)
                }
            };
            match result {
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
            last = Some(hash);
        }
        let claimed = self.sync.status(&peer).map_or(0, |s| s.work());
        if let Some(last) = last
            && claimed > self.chain.tip_work()
            && self.sync.active.is_none()
        {
            self.request_blocks(peer, last);
        } else {
            self.sync_from_best();
        }
    }

    /// The answer to a peer's sync request.
    pub(super) fn answer(&mut self, peer: PeerId, request: Request) -> Response {
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
        }
    }
}

/// A block of a page after the checks that need no chain state.
pub(super) enum Verified {
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
    /// Who served it.
    peer: PeerId,
    /// Its blocks in order, up to the first invalid one.
    blocks: Vec<Verified>,
}

/// The checks of a page that need no chain state (run on a blocking thread): each block's
/// header and structure, then its signatures; stops at the first block that fails.
fn verify_page(
    page: Vec<(Arc<Block>, BlockHash, Vec<u8>)>,
    params: &ChainParams,
    chain_id: &crate::chain::ChainId,
) -> Vec<Verified> {
    let mut out = Vec::with_capacity(page.len());
    for (block, hash, wire) in page {
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

/// Applies a page that answered `locator`: the first block must build on a locator hash and
/// each next one on the block before it, and every block must be valid (`process` validates
/// and stores one). Stops at the first block that fails.
pub fn apply_page(
    blocks: Vec<PageBlock>,
    locator: &[BlockHash],
    mut process: impl FnMut(PageBlock) -> Result<Processed, ValidationError>,
) -> PageResult {
    let (mut new, mut known) = (0, 0);
    let mut prev: Option<BlockHash> = None;
    for block in blocks {
        let parent = block.block.header.prev_hash;
        let connects = match prev {
            None => locator.contains(&parent),
            Some(p) => parent == p,
        };
        if !connects {
            return PageResult::Invalid("blocks that do not connect to the locator".into());
        }
        let hash = block.hash;
        match process(block) {
            Ok(p) => match p.outcome {
                Outcome::Accepted => new += 1,
                Outcome::AlreadyKnown => known += 1,
                Outcome::Orphan { .. } => {
                    return PageResult::Invalid("a block whose parent it did not send".into());
                }
            },
            Err(e) if e.is_permanent() => return PageResult::Invalid(format!("{e}")),
            Err(e) => return PageResult::Paused(format!("{e}")),
        }
        prev = Some(hash);
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
