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

impl Undo {
    /// Memory the record holds (its entries; an undo record of a full block holds two per
    /// transfer), for the tree's byte budget.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.prior.capacity() * std::mem::size_of::<(Address, Option<Account>)>()
    }

    /// The addresses the block touched, in the order it touched them (repeats included).
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.prior.iter().map(|(a, _)| a)
    }

    /// The record as bytes: a u32 count, then per entry the address (32 bytes) and either
    /// `0` (absent before) or `1`, balance and nonce (u64 each); integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.prior.len() * 49);
        out.extend_from_slice(&(self.prior.len() as u32).to_be_bytes());
        for (address, prior) in &self.prior {
            out.extend_from_slice(&address.0);
            match prior {
                None => out.push(0),
                Some(a) => {
                    out.push(1);
                    out.extend_from_slice(&a.balance.to_be_bytes());
                    out.extend_from_slice(&a.nonce.to_be_bytes());
                }
            }
        }
        out
    }

    /// Reads [`Undo::encode`]'s bytes; `None` if they are not exactly such a record.
    pub fn decode(bytes: &[u8]) -> Option<Undo> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = bytes.split_at_checked(n)?;
            *bytes = rest;
            Some(head)
        }
        fn u64_of(bytes: &mut &[u8]) -> Option<u64> {
            Some(u64::from_be_bytes(take(bytes, 8)?.try_into().ok()?))
        }
        let mut rest = bytes;
        let count = u32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
        // Each entry takes at least 33 bytes: a count beyond that is a damaged record.
        if count > rest.len() / 33 {
            return None;
        }
        let mut prior = Vec::with_capacity(count);
        for _ in 0..count {
            let address = Address(take(&mut rest, 32)?.try_into().ok()?);
            let account = match take(&mut rest, 1)?[0] {
                0 => None,
                1 => Some(Account {
                    balance: u64_of(&mut rest)?,
                    nonce: u64_of(&mut rest)?,
                }),
                _ => return None,
            };
            prior.push((address, account));
        }
        rest.is_empty().then_some(Undo { prior })
    }
}

impl Ledger {
    /// A ledger holding exactly `accounts`.
    pub fn from_accounts(accounts: impl IntoIterator<Item = (Address, Account)>) -> Self {
        Self {
            accounts: accounts.into_iter().collect(),
        }
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }

    /// The state of `address` if it has one (an address never credited nor debited has none).
    pub fn get(&self, address: &Address) -> Option<Account> {
        self.accounts.get(address).copied()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_records_round_trip_and_damaged_ones_are_refused() {
        let a = Address([1; 32]);
        let b = Address([2; 32]);
        let undo = Undo {
            prior: vec![
                (a, None),
                (
                    b,
                    Some(Account {
                        balance: 7,
                        nonce: u64::MAX,
                    }),
                ),
                (a, Some(Account::default())),
            ],
        };
        let bytes = undo.encode();
        assert_eq!(bytes.len(), 4 + 33 + 49 + 49);
        assert_eq!(Undo::decode(&bytes), Some(undo.clone()));
        assert_eq!(
            Undo::decode(&Undo::default().encode()),
            Some(Undo::default())
        );
        assert_eq!(undo.addresses().copied().collect::<Vec<_>>(), vec![a, b, a]);
        // Truncated, extended, a bad flag, an absurd count.
        assert_eq!(Undo::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Undo::decode(&[bytes.as_slice(), &[0]].concat()), None);
        let mut flag = bytes.clone();
        flag[4 + 32] = 2;
        assert_eq!(Undo::decode(&flag), None);
        assert_eq!(Undo::decode(&[0xff, 0xff, 0xff, 0xff]), None);
    }
}
