//! Gossip admission: what the node does with a block or transfer a peer relayed, or one made
//! here, and the verdict gossipsub gets (accept and forward, ignore, reject and penalise).
//! Transfers from gossip and the handle have their signatures verified in batches off the
//! actor ([`super::admission`]); what comes back is admitted here in arrival order.
//! Blocks travel as compact blocks: rebuilt here from the mempool and the recent pool, with
//! the missing transfers asked of the relaying peer through [`crate::sync::compact`], whose actions
//! this file carries out; it also answers peers' `GetBlockTxs`.

use super::admission::{Candidate, Source, Verdicts};
use super::{KnownTxids, Node, SendError};
use crate::chain::compact::{CompactBlock, Rebuilt};
use crate::chain::mempool::{Admitted, min_replacement_fee};
use crate::chain::{
    Address, Block, BlockHash, CheckedBlock, MempoolError, Outcome, Processed, Transaction,
    Transfer, Txid, ValidationError, validate,
};
use crate::metrics::Origin;
use crate::net::Topic;
use crate::net::protocol::{self, Request, Response};
use crate::sync::compact::{Action as CompactAction, Event as CompactEvent, Failure, Serve};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};

/// What to do with a gossiped block, given what processing it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid and new: forward it to our peers (validate, then forward).
    Forward,
    /// Known already, or not acceptable yet through no fault of the sender (a timestamp
    /// ahead of our clock): neither forwarded nor penalised.
    Ignore,
    /// Its parent (this hash) is unknown: the sender has blocks we lack; ask it
    /// ([`crate::sync::Event::Orphan`]). Not forwarded.
    Orphan(crate::chain::BlockHash),
    /// It breaks a rule: not forwarded, the sender is banned.
    Reject(ValidationError),
}

/// The verdict on a gossiped block from the result of processing it; the node and the
/// simulator (tests/sim) both decide with it.
pub fn gossip_verdict(processed: &Result<Processed, ValidationError>) -> GossipVerdict {
    match processed {
        Ok(p) => match p.outcome {
            Outcome::Accepted => GossipVerdict::Forward,
            Outcome::AlreadyKnown => GossipVerdict::Ignore,
            Outcome::Orphan { missing_parent } => GossipVerdict::Orphan(missing_parent),
        },
        Err(e) if e.is_permanent() => GossipVerdict::Reject(e.clone()),
        Err(_) => GossipVerdict::Ignore,
    }
}

impl Node {
    /// A compact block from gossip: checked as far as the message allows (decoding, the
    /// header's proof of work), rebuilt from the mempool and the recent pool, and validated
    /// whole before its message is accepted (and so forwarded); what is missing is asked of the
    /// peer that relayed it ([`compact`](super::compact)).
    pub(super) fn on_gossip_block(&mut self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let params = self.chain.params();
        let c = match CompactBlock::decode(
            &data,
            params.max_block_bytes as usize,
            params.max_block_txs,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.block_refused(Origin::Gossip, "malformed");
                self.net
                    .report_validation(id, source, MessageAcceptance::Reject);
                self.net
                    .ban(source, format!("malformed compact block: {e}"));
                return;
            }
        };
        let hash = c.header.compute_hash();
        match self.chain.known(&hash) {
            Some(Err(e)) if e.is_permanent() => {
                self.net
                    .ban(source, format!("relayed an invalid block: {e}"));
                return self
                    .net
                    .report_validation(id, source, MessageAcceptance::Reject);
            }
            Some(_) => {
                return self
                    .net
                    .report_validation(id, source, MessageAcceptance::Ignore);
            }
            None => {}
        }
        // Proof of work first: a header without it costs no lookup and no request.
        if let Err(e) = validate::check_header_hashed(&c.header, &hash, params) {
            self.metrics.block_refused(Origin::Gossip, e.label());
            // A header rule condemns the hash whatever the body.
            let header_only = Block {
                header: c.header,
                txs: Vec::new(),
            };
            self.chain.note_invalid(&header_only, hash, &e);
            tracing::warn!(block = %hash.short(), %source, "compact block rejected: {e}");
            self.net
                .report_validation(id, source, MessageAcceptance::Reject);
            self.net
                .ban(source, format!("relayed an invalid block: {e}"));
            return;
        }
        match c.rebuild(self.mempool.iter().chain(self.recent.iter())) {
            Rebuilt::Full {
                block,
                txids,
                root_checked,
            } => {
                self.metrics.compact("rebuilt").inc();
                let known = KnownTxids {
                    txids,
                    root_checked,
                };
                self.validate_rebuilt(source, id, block, Some(known))
            }
            Rebuilt::Missing(partial) => {
                tracing::debug!(
                    block = %hash.short(),
                    missing = partial.missing_count(),
                    %source,
                    "compact block: asking for missing transfers"
                );
                self.compact_event(CompactEvent::Missing {
                    peer: source,
                    message: id,
                    partial,
                })
            }
            Rebuilt::Collision(why) => {
                tracing::debug!(block = %hash.short(), %source, "compact block: {why:?}, fetching it whole");
                self.compact_event(CompactEvent::Collision {
                    peer: source,
                    message: id,
                    hash,
                })
            }
        }
    }

    /// Validates a block rebuilt from gossip message `id` and reports the verdict for the
    /// message (accepted: forwarded).
    fn validate_rebuilt(
        &mut self,
        source: PeerId,
        id: MessageId,
        block: Block,
        txids: Option<KnownTxids>,
    ) {
        let hash = block.compute_hash();
        let processed = self.process_block(block, hash, txids, Some(source));
        let acceptance = match gossip_verdict(&processed) {
            GossipVerdict::Forward => {
                // Forwarded on acceptance: its receivers may ask us for transfers.
                self.compact.relayed(hash);
                MessageAcceptance::Accept
            }
            GossipVerdict::Ignore => MessageAcceptance::Ignore,
            GossipVerdict::Orphan(missing_parent) => {
                tracing::debug!(parent = %missing_parent.short(), %source, "orphan block: syncing");
                self.sync_event(crate::sync::Event::Orphan(source));
                MessageAcceptance::Ignore
            }
            GossipVerdict::Reject(e) => {
                self.net
                    .ban(source, format!("relayed an invalid block: {e}"));
                MessageAcceptance::Reject
            }
        };
        self.net.report_validation(id, source, acceptance);
    }

    /// Publishes a block accepted here (mined or submitted) as a compact block: the transfers
    /// this node holds as short ids (its peers have most of them), the others in full.
    pub(super) fn publish_block(&mut self, checked: &CheckedBlock) {
        let max = self.chain.params().max_block_bytes as usize;
        let held = |txid: &Txid| self.mempool.contains(txid) || self.recent.contains(txid);
        let salt = rand::random::<u64>();
        let Some(c) = CompactBlock::from_block(checked.block(), checked.txids(), salt, held, max)
        else {
            // A valid block always starts with its only coinbase.
            tracing::error!(block = %checked.hash().short(), "a valid block has no compact form");
            return;
        };
        tracing::debug!(
            block = %checked.hash().short(),
            bytes = c.encoded_len(),
            full = checked.wire().len(),
            prefilled = c.prefilled.len(),
            "publishing a compact block"
        );
        self.compact.relayed(checked.hash());
        self.net.publish(Topic::Blocks, c.encode());
    }

    /// Hands an event to compact relay and carries out what it asks.
    pub(super) fn compact_event(&mut self, event: CompactEvent<PeerId, MessageId>) {
        let actions = self.compact.handle(event, std::time::Instant::now());
        let stats = self.compact.stats();
        for (event, total) in [
            ("asked", stats.asked_txs),
            ("filled", stats.filled),
            ("fell_back", stats.fell_back),
            ("given_up", stats.given_up),
        ] {
            crate::metrics::Metrics::catch_up(&self.metrics.compact(event), total);
        }
        for action in actions {
            match action {
                CompactAction::GetBlockTxs {
                    peer,
                    tag,
                    block,
                    indexes,
                } => {
                    if self
                        .net
                        .request(peer, Request::GetBlockTxs { block, indexes }, tag)
                        .is_err()
                    {
                        self.compact_event(CompactEvent::Failed {
                            tag,
                            failure: Failure::NoAnswer("request not sent".into()),
                        });
                    }
                }
                CompactAction::GetBlock { peer, tag, block } => {
                    tracing::debug!(block = %block.short(), %peer, "fetching a compact block whole");
                    let request = Request::GetBodies {
                        hashes: vec![block],
                    };
                    if self.net.request(peer, request, tag).is_err() {
                        self.compact_event(CompactEvent::Failed {
                            tag,
                            failure: Failure::NoAnswer("request not sent".into()),
                        });
                    }
                }
                CompactAction::Validate {
                    peer,
                    message,
                    block,
                } => self.validate_rebuilt(peer, message, block, None),
                CompactAction::Ignore {
                    peer,
                    message,
                    reason,
                } => {
                    tracing::debug!(%peer, "compact block ignored: {reason}");
                    self.net
                        .report_validation(message, peer, MessageAcceptance::Ignore);
                }
                CompactAction::Ban { peer, reason } => self.net.ban(peer, reason),
            }
        }
    }

    /// The answer to a request of compact relay's (`tag` is one of its tags; the state knows
    /// whom it asked).
    pub(super) fn on_compact_response(
        &mut self,
        _peer: PeerId,
        tag: u64,
        result: Result<Response, crate::net::RequestFailure>,
    ) {
        let params = self.chain.params();
        let (max_bytes, max_txs) = (params.max_block_bytes as usize, params.max_block_txs);
        let event = match result {
            // Which request it was does not matter: the state knows.
            Err(e) => CompactEvent::Failed {
                tag,
                failure: Failure::NoAnswer(e.to_string()),
            },
            Ok(Response::Refused(reason)) => CompactEvent::Failed {
                tag,
                failure: Failure::NoAnswer(format!("refused: {reason}")),
            },
            Ok(Response::Transactions(txs)) => {
                let decoded: Result<Vec<Transfer>, Failure> = if txs.len() > max_txs as usize {
                    Err(Failure::Malformed(
                        "sent more transfers than a block holds".into(),
                    ))
                } else {
                    txs.iter()
                        .map(|b| match Transaction::decode(&b.0) {
                            Ok(Transaction::Transfer(t)) => Ok(t),
                            _ => Err(Failure::Malformed("sent a malformed transfer".into())),
                        })
                        .collect()
                };
                CompactEvent::Transactions {
                    tag,
                    result: decoded,
                }
            }
            Ok(Response::Blocks(blocks)) => {
                let result = match blocks.first() {
                    None => Err(Failure::NoAnswer("the block is not served".into())),
                    Some(b) => Block::decode(&b.0, max_bytes, max_txs)
                        .map_err(|e| Failure::Malformed(format!("served a malformed block: {e}"))),
                };
                CompactEvent::FullBlock { tag, result }
            }
            Ok(_) => CompactEvent::Failed {
                tag,
                failure: Failure::Malformed("answered with the wrong kind of response".into()),
            },
        };
        self.compact_event(event);
    }

    /// The answer to a peer's `GetBlockTxs`: the transfers at `indexes` of a block this node
    /// relayed to it, in that order, or `Refused` (and a strike; a ban after several).
    pub(super) fn answer_block_txs(
        &mut self,
        peer: PeerId,
        block: BlockHash,
        indexes: Vec<u32>,
    ) -> Response {
        let refuse = |this: &mut Self, reason: &str| match this.compact.strike(peer, reason) {
            Serve::Ban(reason) => {
                this.net.ban(peer, reason.clone());
                Response::Refused(reason)
            }
            Serve::Refuse(reason) => Response::Refused(reason),
            Serve::Yes => Response::Refused(reason.into()),
        };
        match self.compact.serve(peer, block) {
            Serve::Yes => {}
            Serve::Refuse(reason) => return Response::Refused(reason),
            Serve::Ban(reason) => {
                self.net.ban(peer, reason.clone());
                return Response::Refused(reason);
            }
        }
        let Some(checked) = self.chain.checked(&block) else {
            return refuse(self, "block no longer held");
        };
        let txs = &checked.block().txs;
        let valid = indexes.len() < txs.len()
            && indexes.windows(2).all(|w| w[0] < w[1])
            && indexes.first().is_none_or(|&i| i >= 1)
            && indexes.last().is_none_or(|&i| (i as usize) < txs.len());
        if !valid {
            return refuse(
                self,
                "indexes must increase from 1 and stay within the block",
            );
        }
        Response::Transactions(
            indexes
                .iter()
                .map(|&i| protocol::Bytes(txs[i as usize].encode()))
                .collect(),
        )
    }

    pub(super) fn on_gossip_tx(&mut self, source: PeerId, id: MessageId, data: Vec<u8>) {
        // Undecodable bytes, a coinbase or a forged signature are the sender's fault (an honest
        // node validates before it forwards), and are banned as they are when sent by sync.
        let tx = match Transaction::decode(&data) {
            Ok(Transaction::Transfer(t)) => t,
            Ok(Transaction::Coinbase(_)) => {
                self.metrics.transfer_refused(Origin::Gossip, "coinbase");
                return self.reject_gossip_tx(id, source, "relayed a coinbase as a transaction");
            }
            Err(e) => {
                self.metrics.transfer_refused(Origin::Gossip, "malformed");
                return self.reject_gossip_tx(
                    id,
                    source,
                    &format!("relayed a malformed transaction: {e}"),
                );
            }
        };
        let txid = Transaction::Transfer(tx).compute_txid();
        // Known already (relayed by several peers): no signature to check.
        if self.mempool.contains(&txid) {
            let known = Err(MempoolError::AlreadyKnown(txid));
            return self.finish_gossip_tx(source, id, tx, known);
        }
        if self.admission.is_full() {
            // More waiting than the workers keep up with: dropped unforwarded, no penalty.
            tracing::debug!(%source, "transaction ignored: admission queue full");
            self.metrics.transfer_refused(Origin::Gossip, "queue_full");
            self.net
                .report_validation(id, source, MessageAcceptance::Ignore);
            return;
        }
        self.admission.queue(Candidate {
            tx,
            txid,
            source: Source::Gossip { peer: source, id },
        });
    }

    /// Admits transfers whose signatures were verified off the actor (or refuses the forged
    /// ones), in arrival order, and answers where each came from.
    pub(super) fn on_verdicts(&mut self, verdicts: Verdicts) {
        self.admission.finished();
        for (candidate, verdict) in verdicts.checked {
            let Candidate { tx, txid, source } = candidate;
            let added = match verdict {
                Ok(()) => self.mempool.admit_verified(tx, txid, self.chain.ledger()),
                Err(e) => Err(MempoolError::BadSignature(e)),
            };
            match source {
                Source::Gossip { peer, id } => self.finish_gossip_tx(peer, id, tx, added),
                Source::Local { reply } => {
                    let _ = reply.send(self.finish_local(tx, added));
                }
            }
        }
        self.admission.start_if_due();
    }

    /// What follows a gossiped transfer's verdict: announced and forwarded, ignored, or
    /// rejected with its sender banned (a forged signature).
    fn finish_gossip_tx(
        &mut self,
        source: PeerId,
        id: MessageId,
        tx: Transfer,
        added: Result<Admitted, MempoolError>,
    ) {
        self.metrics.transfer_result(Origin::Gossip, &added);
        let acceptance = match added {
            Ok(admitted) => {
                tracing::debug!(tx = %admitted.txid.short(), %source, "transaction accepted");
                self.announce(admitted, tx);
                MessageAcceptance::Accept
            }
            Err(MempoolError::BadSignature(e)) => {
                return self.reject_gossip_tx(
                    id,
                    source,
                    &format!("relayed a transaction with a forged signature: {e}"),
                );
            }
            // Anything else may just be a view of the chain that differs from ours (a nonce
            // already mined here, a balance not yet).
            Err(e) => {
                tracing::debug!(%source, "transaction ignored: {e}");
                MessageAcceptance::Ignore
            }
        };
        self.net.report_validation(id, source, acceptance);
    }

    /// Rejects a gossiped transfer (not forwarded, the sender's score penalised) and bans its
    /// sender.
    fn reject_gossip_tx(&mut self, id: MessageId, source: PeerId, reason: &str) {
        tracing::warn!(%source, "transaction rejected: {reason}");
        self.net
            .report_validation(id, source, MessageAcceptance::Reject);
        self.net.ban(source, reason);
    }

    /// Admits transfers a peer sent over sync and gossips the new ones onwards. `None` (and a
    /// ban) if the message is over the limit or holds a malformed or forged transfer.
    pub(super) fn admit_from_peer(
        &mut self,
        peer: PeerId,
        txs: Vec<protocol::Bytes>,
    ) -> Option<u32> {
        if txs.len() > protocol::MAX_TXS_PER_MESSAGE {
            self.net
                .ban(peer, "sent too many transactions in one message");
            return None;
        }
        // Decoded up to the first malformed one; their signatures checked together, then
        // admitted in order: the same outcome as one at a time.
        let mut decoded = Vec::with_capacity(txs.len());
        let mut malformed = false;
        for bytes in txs {
            match Transaction::decode(&bytes.0) {
                Ok(Transaction::Transfer(t)) => {
                    let txid = Transaction::Transfer(t).compute_txid();
                    decoded.push(((t, txid), bytes));
                }
                Ok(Transaction::Coinbase(_)) | Err(_) => {
                    malformed = true;
                    break;
                }
            }
        }
        let transfers: Vec<(Transfer, Txid)> = decoded.iter().map(|(t, _)| *t).collect();
        let verdicts =
            validate::transfer_verdicts(&transfers, &self.chain.chain_id(), self.chain.sig_cache());
        let mut accepted = 0;
        for (((tx, txid), bytes), verdict) in decoded.into_iter().zip(verdicts) {
            let added = match verdict {
                Ok(()) => self.mempool.admit_verified(tx, txid, self.chain.ledger()),
                Err(e) => Err(MempoolError::BadSignature(e)),
            };
            self.metrics.transfer_result(Origin::Sync, &added);
            match added {
                Ok(admitted) => {
                    accepted += 1;
                    self.announce(admitted, tx);
                    self.net.publish(Topic::Txs, bytes.0);
                }
                Err(MempoolError::BadSignature(_)) => {
                    self.net
                        .ban(peer, "sent a transaction with a forged signature");
                    return None;
                }
                Err(_) => {}
            }
        }
        if malformed {
            self.metrics.transfer_refused(Origin::Sync, "malformed");
            self.net.ban(peer, "sent a malformed transaction");
            return None;
        }
        Some(accepted)
    }

    /// Sends transfers to every connected peer over sync (see [`protocol::Request::Transactions`]): a
    /// push that fails is only logged, the peer asks for our mempool when it reconnects.
    pub(super) fn push_to_peers(&mut self, txs: &[Transfer]) {
        for chunk in txs.chunks(protocol::MAX_TXS_PER_MESSAGE) {
            let encoded: Vec<_> = chunk
                .iter()
                .map(|t| protocol::Bytes(Transaction::Transfer(*t).encode()))
                .collect();
            self.sync_event(crate::sync::Event::Push(encoded));
        }
    }

    /// Signs a transfer from the wallet with the next free nonce, admits and gossips it.
    pub(super) fn send(&mut self, to: Address, amount: u64, fee: u64) -> Result<Txid, SendError> {
        if amount == 0 {
            return Err(SendError::ZeroAmount);
        }
        if to == self.wallet.address() {
            return Err(SendError::ToSelf);
        }
        let nonce = self
            .mempool
            .next_nonce(&self.wallet.address(), self.chain.ledger());
        let tx = self
            .wallet
            .sign(&self.chain.chain_id(), to, amount, fee, nonce);
        Ok(self.admit_local(tx)?)
    }

    /// Re-signs this wallet's pending transfer `txid` with a higher `fee` (same recipient,
    /// amount and nonce), admits and gossips it: the replacement evicts the original here and
    /// on every peer that applies the replacement rule.
    pub(super) fn bump(&mut self, txid: Txid, fee: u64) -> Result<Txid, SendError> {
        let Some(old) = self.mempool.get(&txid).copied() else {
            return Err(SendError::NotPending(txid));
        };
        if old.from != self.wallet.address() {
            return Err(SendError::NotOurs(txid));
        }
        // Checked before signing: the same fee would sign the very same transfer (Ed25519 is
        // deterministic), which the pool would call already known rather than too cheap.
        let min_fee = min_replacement_fee(old.fee);
        if u128::from(fee) < min_fee {
            return Err(MempoolError::ReplacementUnderpriced {
                pending: txid,
                old_fee: old.fee,
                min_fee,
                got: fee,
            }
            .into());
        }
        let tx = self
            .wallet
            .sign(&self.chain.chain_id(), old.to, old.amount, fee, old.nonce);
        Ok(self.admit_local(tx)?)
    }

    /// Tells the watchers of an admitted transfer, and of the one it replaced.
    fn announce(&mut self, admitted: Admitted, tx: Transfer) {
        if let Some((old, old_tx)) = admitted.replaced {
            // A peer that has not seen the replacement may still mine the original.
            self.recent.insert(old, old_tx);
            tracing::info!(
                old = %old.short(),
                new = %admitted.txid.short(),
                old_fee = old_tx.fee,
                new_fee = tx.fee,
                "transaction replaced by a higher fee"
            );
            self.watch.tx_replaced(old, old_tx, admitted.txid, tx.fee);
        }
        self.watch.tx_admitted(admitted.txid, tx);
    }

    /// Admits a transfer made here (the wallet signed it) and gossips it, verifying its
    /// signature on the actor.
    pub(super) fn admit_local(&mut self, tx: Transfer) -> Result<Txid, MempoolError> {
        let added = self.mempool.admit(tx, self.chain.ledger());
        self.finish_local(tx, added)
    }

    /// Queues a transfer submitted through the handle for batch verification; the answer goes
    /// to `reply` once it is admitted or refused. Checked on the actor at once if it is known
    /// already or the queue is full.
    pub(super) fn submit(
        &mut self,
        tx: Transfer,
        reply: tokio::sync::oneshot::Sender<Result<Txid, MempoolError>>,
    ) {
        let txid = Transaction::Transfer(tx).compute_txid();
        if self.mempool.contains(&txid) {
            let _ = reply.send(self.finish_local(tx, Err(MempoolError::AlreadyKnown(txid))));
            return;
        }
        if self.admission.is_full() {
            let _ = reply.send(self.admit_local(tx));
            return;
        }
        self.admission.queue(Candidate {
            tx,
            txid,
            source: Source::Local { reply },
        });
    }

    /// What follows a local transfer's admission: announced and gossiped; the txid.
    fn finish_local(
        &mut self,
        tx: Transfer,
        added: Result<Admitted, MempoolError>,
    ) -> Result<Txid, MempoolError> {
        self.metrics.transfer_result(Origin::Local, &added);
        let admitted = added?;
        let txid = admitted.txid;
        self.announce(admitted, tx);
        // One line per transfer: at DEBUG, as those that arrive by gossip (at a thousand a
        // second an INFO line each would be a gigabyte of log a day).
        tracing::debug!(tx = %txid.short(), amount = tx.amount, fee = tx.fee, "transaction submitted");
        self.net
            .publish(Topic::Txs, Transaction::Transfer(tx).encode());
        Ok(txid)
    }
}
