//! Balances and nonces, derived from the best chain. Applying a block returns an [`Undo`]
//! record of the accounts it touched, so a reorganisation steps back exactly, block by block,
//! without replaying the chain from genesis.

use super::block::Block;
use super::hash::Txid;
use super::params::ChainParams;
use super::tx::{Address, Transaction};
use super::validate::ValidationError;
use std::collections::HashMap;

/// One account's state.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Account {
    /// Spendable coins.
    pub balance: u64,
    /// The nonce the account's next transfer must carry (= transfers sent so far).
    pub nonce: u64,
}

/// The prior state of every account a block touched, in the order it touched them.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Undo {
    /// `None`: the account did not exist before the block.
    prior: Vec<(Address, Option<Account>)>,
}

/// Every account with a balance or a nonce.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// Accounts by address; an address never credited nor debited is absent.
    accounts: HashMap<Address, Account>,
}

impl Ledger {
    /// The state of `address` (zero balance, nonce 0 if never seen).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no account exists.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Sum of all balances (saturating), for checks.
    pub fn total_supply(&self) -> u64 {
        self.accounts
            .values()
            .fold(0u64, |acc, a| acc.saturating_add(a.balance))
    }

    /// Applies every transaction of `block`, checking nonces, balances, overflow and the
    /// coinbase amount. On error the ledger is left exactly as it was.
    pub fn apply_block(
        &mut self,
        block: &Block,
        txids: &[Txid],
        params: &ChainParams,
    ) -> Result<Undo, ValidationError> {
        let mut undo = Undo::default();
        match self.apply_inner(block, txids, params, &mut undo) {
            Ok(()) => Ok(undo),
            Err(e) => {
                self.undo_block(undo);
                Err(e)
            }
        }
    }

    fn touch(&mut self, undo: &mut Undo, address: Address) -> &mut Account {
        // An account touched twice is recorded twice; undoing in reverse order still ends on
        // its first prior state, and recording costs no search.
        undo.prior
            .push((address, self.accounts.get(&address).copied()));
        self.accounts.entry(address).or_default()
    }

    fn apply_inner(
        &mut self,
        block: &Block,
        txids: &[Txid],
        params: &ChainParams,
        undo: &mut Undo,
    ) -> Result<(), ValidationError> {
        let mut fees: u64 = 0;
        for (tx, txid) in block.txs.iter().zip(txids).skip(1) {
            let Transaction::Transfer(t) = tx else {
                return Err(ValidationError::ExtraCoinbase { txid: *txid });
            };
            let cost = t
                .total_cost()
                .ok_or(ValidationError::AmountOverflow { txid: *txid })?;
            fees = fees
                .checked_add(t.fee)
                .ok_or(ValidationError::AmountOverflow { txid: *txid })?;
            let sender = self.touch(undo, t.from);
            if t.nonce != sender.nonce {
                return Err(ValidationError::BadNonce {
                    txid: *txid,
                    expected: sender.nonce,
                    got: t.nonce,
                });
            }
            if sender.balance < cost {
                return Err(ValidationError::InsufficientBalance {
                    txid: *txid,
                    balance: sender.balance,
                    needed: cost,
                });
            }
            sender.balance -= cost;
            sender.nonce += 1;
            let recipient = self.touch(undo, t.to);
            recipient.balance = recipient
                .balance
                .checked_add(t.amount)
                .ok_or(ValidationError::AmountOverflow { txid: *txid })?;
        }
        let Some(Transaction::Coinbase(cb)) = block.txs.first() else {
            return Err(ValidationError::MissingCoinbase);
        };
        let expected = params
            .block_reward
            .checked_add(fees)
            .ok_or(ValidationError::AmountOverflow { txid: txids[0] })?;
        if cb.amount != expected {
            return Err(ValidationError::CoinbaseAmount {
                expected,
                got: cb.amount,
            });
        }
        let miner = self.touch(undo, cb.to);
        miner.balance = miner
            .balance
            .checked_add(cb.amount)
            .ok_or(ValidationError::AmountOverflow { txid: txids[0] })?;
        Ok(())
    }

    /// Restores the accounts a block touched to their state before it.
    pub fn undo_block(&mut self, undo: Undo) {
        for (address, prior) in undo.prior.into_iter().rev() {
            match prior {
                Some(account) => self.accounts.insert(address, account),
                None => self.accounts.remove(&address),
            };
        }
    }
}
