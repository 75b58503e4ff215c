//! The actor's side of the [`NodeHandle`](super::NodeHandle): each [`Command`] answered from
//! the state it owns.

use super::events::{TreeSnapshot, TxStatus};
use super::handle::Command;
use super::mining::MineWaiter;
use super::{BlockId, BlockInfo, BlockState, Node};
use crate::chain::block::HEADER_LEN;
use crate::chain::{CheckedBlock, Outcome};
use std::sync::Arc;

/// What a query shows of a stored block.
fn info(block: &Arc<CheckedBlock>, on_best_chain: bool) -> BlockInfo {
    BlockInfo {
        hash: block.hash(),
        block: block.block().clone(),
        on_best_chain,
        found_at: None,
    }
}

impl Node {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Chain { count, reply } => {
                let top = self.chain.height();
                let list = (0..count as u64)
                    .map_while(|i| top.checked_sub(i))
                    .filter_map(|h| self.chain.checked_at(h))
                    .map(|b| info(&b, true))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Block { id, reply } => {
                let block = match id {
                    BlockId::Height(h) => self.chain.checked_at(h),
                    BlockId::Hash(h) => self.chain.checked(&h),
                };
                let _ = reply.send(block.map(|b| info(&b, self.chain.is_active(&b.hash()))));
            }
            Command::BlockState { hash, reply } => {
                let _ = reply.send(self.block_state(&hash));
            }
            Command::Balance { address, reply } => {
                let account = self.chain.ledger().account(&address);
                let _ = reply.send((account, self.mempool.pending_spend(&address)));
            }
            Command::Send {
                to,
                amount,
                fee,
                reply,
            } => {
                let _ = reply.send(self.send(to, amount, fee));
            }
            Command::Bump { txid, fee, reply } => {
                let _ = reply.send(self.bump(txid, fee));
            }
            Command::Submit { tx, reply } => self.submit(tx, reply),
            Command::SubmitBlock { block, reply } => {
                let hash = block.compute_hash();
                let result = self.process_block(block, hash, None, None);
                if let Ok(p) = &result
                    && p.outcome == Outcome::Accepted
                    && let Some(checked) = p.accepted.first()
                {
                    self.publish_block(checked);
                }
                let _ = reply.send(result.map(|p| p.outcome));
            }
            Command::Mempool { reply } => {
                let _ = reply.send(self.mempool.by_fee());
            }
            Command::Headers { from, count, reply } => {
                let headers = self
                    .chain
                    .wires_from(from, count, super::handle::HEADERS_BUDGET)
                    .iter()
                    .filter_map(|w| w.get(..HEADER_LEN)?.try_into().ok())
                    .collect();
                let _ = reply.send(headers);
            }
            Command::Mine { n, blocks } => {
                self.mine_waiters.push_back(MineWaiter { left: n, blocks });
            }
            Command::SetMining { on } => self.set_mining(on),
            Command::Sync { reply } => {
                let n = self.fetch.sync.peers().count();
                self.ask_statuses();
                let _ = reply.send(n);
            }
            Command::Tx { txid, reply } => {
                let _ = reply.send(self.tx_status(&txid));
            }
            Command::Tree {
                min_height,
                max,
                reply,
            } => {
                let blocks = self
                    .watch
                    .arrivals_from(min_height, max)
                    .into_iter()
                    .filter(|a| self.chain.contains(&a.hash))
                    .map(|a| {
                        let best = self.chain.is_active(&a.hash);
                        (a, best)
                    })
                    .collect();
                // Every event of earlier steps has been emitted, none of later ones: the
                // snapshot and the event numbers agree.
                let _ = reply.send(TreeSnapshot {
                    seq: self.watch.seq(),
                    tip: self.chain.tip(),
                    height: self.chain.height(),
                    blocks,
                });
            }
            Command::Shutdown => {}
        }
    }

    /// Where a transaction stands: the mempool, a best-chain block, or neither.
    fn tx_status(&self, txid: &crate::chain::Txid) -> TxStatus {
        if let Some(tx) = self.mempool.get(txid) {
            return TxStatus::Mempool(*tx);
        }
        let stored = || match self.store.block_of(txid) {
            Ok(hash) => hash,
            Err(e) => {
                tracing::error!("cannot read the txid index: {e}");
                None
            }
        };
        // The store's index may lag the tip by a commit: the block must still be on the best
        // chain.
        let Some(hash) = self
            .watch
            .block_of(txid)
            .or_else(stored)
            .filter(|h| self.chain.is_active(h))
        else {
            return TxStatus::Unknown;
        };
        let found = self.chain.block(&hash).and_then(|b| {
            b.txs
                .iter()
                .find(|t| t.compute_txid() == *txid)
                .map(|t| (*t, b.header.height))
        });
        match found {
            Some((tx, height)) => TxStatus::Confirmed {
                tx,
                block: hash,
                height,
            },
            None => TxStatus::Unknown,
        }
    }

    /// What the node knows of a block hash.
    fn block_state(&self, hash: &crate::chain::BlockHash) -> BlockState {
        if self.chain.contains(hash) {
            BlockState::Valid {
                on_best_chain: self.chain.is_active(hash),
            }
        } else if self.chain.is_orphan(hash) {
            BlockState::Orphan
        } else if let Some(e) = self.chain.invalid_reason(hash) {
            BlockState::Invalid(e.clone())
        } else {
            BlockState::Unknown
        }
    }
}
