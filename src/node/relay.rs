//! Gossip admission: what the node does with a block or transfer a peer relayed, or one made
//! here, and the verdict gossipsub gets (accept and forward, ignore, reject and penalise).

use super::{Node, SendError};
use crate::chain::mempool::{Admitted, min_replacement_fee};
use crate::chain::{
    Address, Block, MempoolError, Outcome, Processed, Transaction, Transfer, Txid, ValidationError,
};
use crate::metrics::Origin;
use crate::net::Topic;
use crate::net::protocol;
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
    pub(super) fn on_gossip_block(&mut self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let params = self.chain.params();
        let block =
            match Block::decode(&data, params.max_block_bytes as usize, params.max_block_txs) {
                Ok(b) => b,
                Err(e) => {
                    self.metrics.block_refused(Origin::Gossip, "malformed");
                    self.net
                        .report_validation(id, source, MessageAcceptance::Reject);
                    self.net.ban(source, format!("malformed block: {e}"));
                    return;
                }
            };
        let hash = block.compute_hash();
        let processed = self.process_block(block, hash, Some(data), Some(source));
        let acceptance = match gossip_verdict(&processed) {
            GossipVerdict::Forward => MessageAcceptance::Accept,
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
        let added = self.mempool.admit(tx, self.chain.ledger());
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
        let mut accepted = 0;
        for bytes in txs {
            let tx = match Transaction::decode(&bytes.0) {
                Ok(Transaction::Transfer(t)) => t,
                Ok(Transaction::Coinbase(_)) | Err(_) => {
                    self.metrics.transfer_refused(Origin::Sync, "malformed");
                    self.net.ban(peer, "sent a malformed transaction");
                    return None;
                }
            };
            let added = self.mempool.admit(tx, self.chain.ledger());
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

    /// Admits a transfer made or submitted here and gossips it.
    pub(super) fn admit_local(&mut self, tx: Transfer) -> Result<Txid, MempoolError> {
        let added = self.mempool.admit(tx, self.chain.ledger());
        self.metrics.transfer_result(Origin::Local, &added);
        let admitted = added?;
        let txid = admitted.txid;
        self.announce(admitted, tx);
        tracing::info!(tx = %txid.short(), amount = tx.amount, fee = tx.fee, "transaction submitted");
        self.net
            .publish(Topic::Txs, Transaction::Transfer(tx).encode());
        Ok(txid)
    }
}
