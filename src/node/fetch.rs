//! The executor of block acquisition: hands events to the [`Sync`] component and carries
//! out what it asks (send a request, apply a batch, ban, wake up later), and answers the sync
//! requests of peers. It keeps no download state: what was asked, received and applied lives
//! in the component.

use super::{Node, now_ms};
use crate::chain::{Block, Header, Transaction};
use crate::metrics::Origin;
use crate::net::protocol::{self, Request, Response};
use crate::sync::apply::{self, Verified};
use crate::sync::{
    Action, BatchId, BatchResult, Body, Event, Failure, Now, Req, RequestKind, Sync, SyncConfig,
    Tag, serve,
};
use libp2p::PeerId;
use std::collections::VecDeque;
use std::time::Instant;

/// The component and the one timer it asked for.
pub(super) struct Fetch {
    /// Block acquisition.
    pub sync: Sync<PeerId>,
    /// When to report [`Event::Timer`].
    pub wake: Option<Instant>,
    /// The tip the component last looked at (a change is reported as a timer event).
    seen_tip: crate::chain::BlockHash,
}

impl Fetch {
    /// The component for a node whose chain has this tip.
    pub fn new(config: SyncConfig, tip: crate::chain::BlockHash) -> Self {
        Self {
            sync: Sync::new(config),
            wake: None,
            seen_tip: tip,
        }
    }
}

/// A batch whose blocks were checked off the actor, for [`Node::on_verified_batch`].
pub(super) struct VerifiedBatch {
    batch: BatchId,
    blocks: Vec<Verified>,
    /// Who served each block.
    from: Vec<PeerId>,
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall_ms: now_ms(),
    }
}

impl Node {
    /// Hands an event to the component and carries out what it asks, including the events
    /// that doing so produces (a request that could not be queued).
    pub(super) fn sync_event(&mut self, event: Event<PeerId>) {
        self.fetch.seen_tip = self.chain.tip();
        let stalls = self.fetch.sync.stats().stalls;
        let mut queue: VecDeque<Action<PeerId>> =
            self.fetch.sync.handle(event, now(), &self.chain).into();
        while let Some(action) = queue.pop_front() {
            let follow = match action {
                Action::Request { peer, tag, req } => self.send_sync_request(peer, tag, req),
                Action::Apply {
                    batch,
                    blocks,
                    from,
                } => {
                    self.start_batch(batch, blocks, from);
                    None
                }
                Action::Ban { peer, reason } => {
                    self.net.ban(peer, reason);
                    None
                }
                Action::WakeAt(at) => {
                    self.fetch.wake = Some(at);
                    None
                }
            };
            if let Some(event) = follow {
                queue.extend(self.fetch.sync.handle(event, now(), &self.chain));
            }
        }
        let stalled = self.fetch.sync.stats().stalls - stalls;
        if stalled > 0 {
            tracing::info!(
                stalls = self.fetch.sync.stats().stalls,
                "sync stalled on a peer past the stall timeout; what it was asked goes to others"
            );
        }
    }

    /// Tells the component the chain moved, if it did since it last looked.
    pub(super) fn tell_tip(&mut self) {
        if self.fetch.seen_tip != self.chain.tip() {
            self.sync_event(Event::Timer);
        }
    }

    fn send_sync_request(&mut self, peer: PeerId, tag: Tag, req: Req) -> Option<Event<PeerId>> {
        let request = match req {
            Req::Status => Request::Status(self.our_status()),
            Req::GetMempool => Request::GetMempool,
            Req::GetHeaders { locator } => Request::GetHeaders {
                locator,
                max: protocol::MAX_HEADERS_PER_RESPONSE,
            },
            Req::GetBodies { hashes } => Request::GetBodies { hashes },
            Req::Transactions(txs) => Request::Transactions(txs.as_ref().clone()),
        };
        match self.net.request(peer, request, tag) {
            Ok(()) => None,
            Err(_) => Some(Event::Failed {
                peer,
                tag,
                failure: Failure::NotSent,
            }),
        }
    }

    /// Starts applying a batch: the checks that need no chain state (each block's structure
    /// and signatures, the costly part) run on a blocking thread so that the node keeps
    /// answering meanwhile; [`Node::on_verified_batch`] applies the results in order.
    fn start_batch(&mut self, batch: BatchId, blocks: Vec<Body>, from: Vec<PeerId>) {
        let known: Vec<bool> = (blocks.iter())
            .map(|b| self.chain.known(&b.hash).is_some())
            .collect();
        let params = self.chain.params().clone();
        let chain_id = self.chain.chain_id();
        let done = self.verified_tx.clone();
        let cache = self.chain.sig_cache().clone();
        tokio::task::spawn_blocking(move || {
            let blocks = apply::verify(blocks, &known, &params, &chain_id, &cache);
            // Fails only when the node has stopped.
            let _ = done.blocking_send(VerifiedBatch {
                batch,
                blocks,
                from,
            });
        });
    }

    /// Applies a batch whose blocks were checked off the actor, in order, and tells the
    /// component how it went.
    pub(super) fn on_verified_batch(&mut self, verified: VerifiedBatch) {
        let VerifiedBatch {
            batch,
            blocks,
            from,
        } = verified;
        let mut senders = from.into_iter();
        let stopped = apply::apply_in_order(blocks, |v| {
            let started = std::time::Instant::now();
            let sender = senders.next();
            let processed = match v {
                Verified::Known(hash) => self.apply_known(hash),
                Verified::Checked(checked) => self.apply_checked(checked, sender),
                Verified::Invalid { block, hash, error } => {
                    self.reject_unchecked(&block, hash, error, sender)
                }
            };
            self.metrics.block_result(
                Origin::Sync,
                &processed,
                |p| p.accepted.len(),
                started.elapsed(),
            );
            processed
        });
        let result = apply::result(stopped, |h| self.chain.invalid_reason(h).is_some());
        match &result {
            BatchResult::Applied => {
                tracing::debug!(height = self.chain.height(), "sync batch applied")
            }
            BatchResult::Invalid { reason, .. } => tracing::warn!("sync batch rejected: {reason}"),
            BatchResult::Paused { reason, .. } => tracing::info!("sync paused: {reason}"),
        }
        self.sync_event(Event::Applied { batch, result });
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
        if crate::sync::compact::CompactRelay::<PeerId, ()>::owns(tag) {
            return self.on_compact_response(peer, tag, result);
        }
        let Some((_, asked)) = self.fetch.sync.request_of(tag) else {
            // Late, or never ours: the component counts it and ignores it.
            if let Err(e) = &result {
                tracing::debug!(%peer, "sync request failed after its deadline: {e}");
            }
            return;
        };
        let malformed = |reason: String| Event::Failed {
            peer,
            tag,
            failure: Failure::Malformed(reason),
        };
        let event = match (asked, result) {
            (_, Err(e)) => {
                tracing::debug!(%peer, "sync request failed: {e}");
                Event::Failed {
                    peer,
                    tag,
                    failure: Failure::Io(e),
                }
            }
            (_, Ok(Response::Refused(reason))) => {
                tracing::debug!(%peer, %reason, "request refused");
                Event::Failed {
                    peer,
                    tag,
                    failure: Failure::Refused(reason),
                }
            }
            (RequestKind::Status, Ok(Response::Status(status))) => Event::Status {
                peer,
                tag: Some(tag),
                status,
            },
            (RequestKind::Headers, Ok(Response::Headers(raw))) => {
                match raw.iter().map(|b| Header::decode(&b.0)).collect() {
                    Ok(headers) => Event::Headers { peer, tag, headers },
                    Err(e) => malformed(format!("a malformed header: {e}")),
                }
            }
            (RequestKind::Bodies, Ok(Response::Blocks(raw))) => {
                match decode_bodies(self.chain.params(), raw) {
                    Ok(blocks) => Event::Bodies { peer, tag, blocks },
                    Err(reason) => malformed(reason),
                }
            }
            (RequestKind::Mempool, Ok(Response::Transactions(txs))) => {
                self.admit_from_peer(peer, txs);
                Event::Answered { peer, tag }
            }
            (RequestKind::Push, Ok(Response::Accepted(_))) => Event::Answered { peer, tag },
            (_, Ok(_)) => malformed("the wrong kind of response".into()),
        };
        self.sync_event(event);
    }

    /// The answer to a peer's sync request.
    pub(super) fn answer(&mut self, peer: PeerId, request: Request) -> Response {
        let bad_locator = |locator: &[crate::chain::BlockHash]| {
            (locator.is_empty() || locator.len() > protocol::MAX_LOCATOR).then(|| {
                Response::Refused(format!(
                    "a locator holds 1 to {} hashes",
                    protocol::MAX_LOCATOR
                ))
            })
        };
        let not_on_chain = || Response::Refused("no locator hash is on our best chain".into());
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
                if let Some(refusal) = bad_locator(&locator) {
                    return refusal;
                }
                match serve::blocks_after(&self.chain, &locator, max) {
                    Some(blocks) => Response::Blocks(blocks),
                    None => not_on_chain(),
                }
            }
            Request::GetHeaders { locator, max } => {
                if let Some(refusal) = bad_locator(&locator) {
                    return refusal;
                }
                match serve::headers_after(&self.chain, &locator, max) {
                    Some(headers) => Response::Headers(
                        (headers.iter())
                            .map(|h| protocol::Bytes(h.encode().to_vec()))
                            .collect(),
                    ),
                    None => not_on_chain(),
                }
            }
            Request::GetBodies { hashes } => {
                if hashes.is_empty() || hashes.len() > protocol::MAX_BODIES_PER_REQUEST {
                    return Response::Refused(format!(
                        "a bodies request names 1 to {} blocks",
                        protocol::MAX_BODIES_PER_REQUEST
                    ));
                }
                Response::Blocks(
                    serve::bodies_of(&self.chain, &hashes)
                        .into_iter()
                        .map(protocol::Bytes)
                        .collect(),
                )
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

/// Decodes the blocks of an answer (bounded by the chain's block limits). `Err` says why the
/// answer is malformed.
pub fn decode_bodies(
    params: &crate::chain::ChainParams,
    raw: Vec<protocol::Bytes>,
) -> Result<Vec<Body>, String> {
    raw.into_iter()
        .map(|bytes| {
            let block = Block::decode(
                &bytes.0,
                params.max_block_bytes as usize,
                params.max_block_txs,
            )
            .map_err(|e| format!("served a malformed block: {e}"))?;
            Ok(Body {
                hash: block.compute_hash(),
                block,
                wire: bytes.0,
            })
        })
        .collect()
}
