//! Unit tests of the tree.

use super::*;
use crate::chain::{Address, Mempool, MempoolLimits, Transaction, Transfer};
use crate::testkit::{self, NOW, block_on, key, next_block};

fn addr(seed: u64) -> Address {
    Address::of(&key(seed))
}

#[test]
fn extends_and_applies_rewards() {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 3, addr(1));
    assert_eq!(chain.height(), 3);
    assert_eq!(chain.ledger().account(&addr(1)).balance, 150);
}

#[test]
fn fork_with_more_work_reorganises_and_returns_transfers_to_the_mempool() {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 2, addr(1));
    let fork_point = chain.tip();
    let pay = Transfer::sign(&key(1), &chain.chain_id(), addr(2), 30, 2, 0);
    let a1 = next_block(&chain, &[pay], addr(1));
    chain.process_block(Arc::new(a1), NOW).unwrap();
    assert_eq!(chain.ledger().account(&addr(2)).balance, 30);

    let mut pool = Mempool::new(chain.chain_id(), MempoolLimits::default());
    let b1 = block_on(&chain, fork_point, &[], addr(3));
    let b1h = b1.compute_hash();
    let r = chain.process_block(Arc::new(b1), NOW).unwrap();
    assert!(r.tip_change.is_none(), "equal work: first seen stays");
    let mut replay = ChainState::new(testkit::params());
    for h in 1..=2 {
        replay
            .load_trusted(chain.block_at(h).unwrap().clone())
            .unwrap();
    }
    let b2 = {
        // build on b1 without making it the tip
        let p = chain.block(&b1h).unwrap().clone();
        let mut b = block_on(&chain, b1h, &[], addr(3));
        b.header.timestamp = p.header.timestamp + 1000;
        testkit::seal(&mut b);
        b
    };
    let r = chain.process_block(Arc::new(b2), NOW).unwrap();
    let change = r.tip_change.expect("more work wins");
    assert_eq!(change.disconnected.len(), 1);
    assert_eq!(change.connected.len(), 2);
    assert_eq!(chain.ledger().account(&addr(2)).balance, 0);
    let stats = pool.resync(&change, chain.ledger());
    assert_eq!(stats.returned.len(), 1);
    assert!(pool.contains(&Transaction::Transfer(pay).compute_txid()));

    for h in 3..=4 {
        replay
            .load_trusted(chain.block_at(h).unwrap().clone())
            .unwrap();
    }
    assert_eq!(replay.ledger(), chain.ledger());
}

#[test]
fn merged_tip_changes_are_the_net_change() {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 2, addr(1));
    let fork = chain.tip();
    let a1 = Arc::new(next_block(&chain, &[], addr(1)));
    let first = chain
        .process_block(a1.clone(), NOW)
        .unwrap()
        .tip_change
        .unwrap();
    // A branch from the fork point overtakes a1: the second change disconnects it.
    let b1 = block_on(&chain, fork, &[], addr(2));
    let b1h = b1.compute_hash();
    chain.process_block(Arc::new(b1), NOW).unwrap();
    let b2 = block_on(&chain, b1h, &[], addr(2));
    let second = chain
        .process_block(Arc::new(b2), NOW)
        .unwrap()
        .tip_change
        .unwrap();
    assert_eq!(second.disconnected.len(), 1);
    let mut merged = first.clone();
    merged.merge(second);
    // a1 came and went within the merged span: it is neither connected nor disconnected.
    assert_eq!(merged.old_tip, fork);
    assert_eq!(merged.new_tip, chain.tip());
    assert!(merged.disconnected.is_empty());
    let connected: Vec<_> = merged.connected.iter().map(|b| b.hash()).collect();
    assert_eq!(connected, vec![b1h, chain.tip()]);
}

#[test]
fn orphans_connect_when_the_parent_arrives() {
    let mut source = ChainState::new(testkit::params());
    testkit::extend(&mut source, 3, addr(1));
    let mut chain = ChainState::new(testkit::params());
    for h in [3, 2] {
        let r = chain
            .process_block(source.block_at(h).unwrap().clone(), NOW)
            .unwrap();
        assert!(matches!(r.outcome, Outcome::Orphan { .. }));
    }
    let r = chain
        .process_block(source.block_at(1).unwrap().clone(), NOW)
        .unwrap();
    assert_eq!(r.accepted.len(), 3);
    assert_eq!(chain.tip(), source.tip());
    assert_eq!(r.tip_change.unwrap().connected.len(), 3);
}

#[test]
fn a_ledger_invalid_branch_is_dropped_and_the_old_chain_restored() {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 1, addr(1));
    let fork = chain.tip();
    testkit::extend(&mut chain, 1, addr(1));
    let tip = chain.tip();
    // A branch spending more than addr(1) has at the fork (50): valid signatures, bad ledger.
    let over = Transfer::sign(&key(1), &chain.chain_id(), addr(2), 60, 0, 0);
    let b1 = block_on(&chain, fork, &[over], addr(3));
    let b1h = b1.compute_hash();
    chain.process_block(Arc::new(b1), NOW).unwrap();
    assert!(chain.take_dropped().is_empty());
    let b2 = block_on(&chain, b1h, &[], addr(3));
    let b2h = b2.compute_hash();
    let err = chain.process_block(Arc::new(b2), NOW).unwrap_err();
    assert_eq!(err, ValidationError::InvalidAncestor(b1h));
    // b1 was stored as a valid side block by the earlier call: the caller learns to
    // delete it even though this call failed.
    let mut dropped: Vec<BlockHash> = chain.take_dropped().iter().map(|k| k.hash).collect();
    dropped.sort();
    let mut want = vec![b1h, b2h];
    want.sort();
    assert_eq!(dropped, want);
    assert_eq!(chain.tip(), tip);
    assert!(matches!(
        chain.invalid_reason(&b1h),
        Some(ValidationError::InsufficientBalance { .. })
    ));
}

#[test]
fn side_branches_far_behind_are_pruned_and_may_come_back() {
    let limits = TreeLimits {
        prune_depth: 5,
        ..TreeLimits::default()
    };
    let mut chain = ChainState::with_limits(testkit::params(), limits);
    testkit::extend(&mut chain, 2, addr(1));
    let fork = chain.hash_at(1).unwrap();
    let side = block_on(&chain, fork, &[], addr(2));
    let side_hash = side.compute_hash();
    chain.process_block(Arc::new(side.clone()), NOW).unwrap();
    assert!(chain.contains(&side_hash));
    // Within the depth it stays.
    testkit::extend(&mut chain, 3, addr(1));
    chain.prune();
    assert!(chain.contains(&side_hash));
    assert!(chain.take_dropped().is_empty());
    testkit::extend(&mut chain, 5, addr(1));
    chain.prune();
    assert!(!chain.contains(&side_hash), "pruned");
    let dropped = chain.take_dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].hash, side_hash);
    assert_eq!(dropped[0].height, 2);
    assert_eq!(chain.block_count(), chain.height() as usize + 1);
    // Pruned is not invalid: sent again, it is accepted again (as a side block).
    assert!(chain.invalid_reason(&side_hash).is_none());
    let r = chain.process_block(Arc::new(side), NOW).unwrap();
    assert_eq!(r.outcome, Outcome::Accepted);
    // The best chain and its ledger are untouched.
    assert_eq!(
        chain.ledger().account(&addr(1)).balance,
        50 * chain.height()
    );
}

#[test]
fn side_branch_storage_is_bounded_whatever_peers_send() {
    let limits = TreeLimits {
        max_side_blocks: 3,
        ..TreeLimits::default()
    };
    let mut chain = ChainState::with_limits(testkit::params(), limits);
    testkit::extend(&mut chain, 4, addr(1));
    let tip = chain.tip();
    let parent = chain.hash_at(3).unwrap();
    // Eight competitors of the tip (equal work: the tip, seen first, stays).
    for miner in 10..18 {
        let b = block_on(&chain, parent, &[], addr(miner));
        chain.process_block(Arc::new(b), NOW).unwrap();
    }
    assert_eq!(chain.block_count(), 5 + 8);
    chain.prune();
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.block_count() - chain.height() as usize - 1, 3);
    assert_eq!(chain.take_dropped().len(), 5);
    // Every block of the best chain is still there and readable.
    for h in 0..=chain.height() {
        assert!(chain.block_at(h).is_some());
    }
}

#[test]
fn a_body_rule_condemns_the_hash_only_when_the_body_is_the_committed_one() {
    use super::process::condemns_hash;
    use crate::chain::Txid;
    use crate::chain::tx::SignatureError;
    use crate::chain::validate::ValidationError as E;
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 2, addr(1));
    let id = chain.chain_id();
    let t = Transfer::sign(&key(1), &id, addr(2), 1, 0, 0);
    let honest = next_block(&chain, &[t], addr(3));
    let mut altered = honest.clone();
    if let Transaction::Transfer(t) = &mut altered.txs[1] {
        t.amount += 1;
    }
    assert_eq!(altered.compute_hash(), honest.compute_hash());
    let txid = Txid([7; 32]);
    let body_errors = [
        E::CoinbaseAmount {
            expected: 1,
            got: 2,
        },
        E::BadSignature {
            txid,
            reason: SignatureError::BadSignature,
        },
        E::BadNonce {
            txid,
            expected: 0,
            got: 1,
        },
        E::InsufficientBalance {
            txid,
            balance: 0,
            needed: 1,
        },
        E::AmountOverflow { txid },
        E::DuplicateTxid(txid),
        E::MissingCoinbase,
    ];
    for e in &body_errors {
        assert!(!condemns_hash(&altered, e), "{e} condemned an altered body");
        assert!(condemns_hash(&honest, e), "{e} spared the committed body");
    }
    let header_error = E::BadHeight {
        expected: 1,
        got: 2,
    };
    assert!(condemns_hash(&altered, &header_error));
    let too_new = E::TimestampTooNew {
        timestamp: 2,
        limit: 1,
    };
    assert!(!condemns_hash(&honest, &too_new));
}

/// A chain where key(1) holds coins, and a mempool sharing the chain's signature cache.
fn funded_with_pool() -> (ChainState, Mempool) {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 2, addr(1));
    let pool = Mempool::new(chain.chain_id(), MempoolLimits::default())
        .with_sig_cache(chain.sig_cache().clone());
    (chain, pool)
}

#[test]
fn a_block_of_admitted_transfers_verifies_no_signature_again() {
    let (mut chain, mut pool) = funded_with_pool();
    let pays: Vec<Transfer> = (0..3)
        .map(|n| Transfer::sign(&key(1), &chain.chain_id(), addr(2), 5, 1, n))
        .collect();
    for t in &pays {
        pool.add(*t, chain.ledger()).unwrap();
    }
    let cache = chain.sig_cache().clone();
    let block = Arc::new(next_block(&chain, &pays, addr(1)));
    // A node whose cache is cold verifies every one.
    let mut cold = ChainState::new(testkit::params());
    for h in 1..=2 {
        cold.process_block(chain.block_at(h).unwrap(), NOW).unwrap();
    }
    let before = cold.sig_cache().verified();
    cold.process_block(block.clone(), NOW).unwrap();
    assert_eq!(cold.sig_cache().verified() - before, 3);

    let (verified, hits) = (cache.verified(), cache.hits());
    let r = chain.process_block(block, NOW).unwrap();
    assert!(r.tip_change.is_some());
    assert_eq!(cache.verified(), verified, "no signature verified again");
    assert_eq!(cache.hits() - hits, 3);
}

#[test]
fn a_malleated_signature_is_refused_though_its_sibling_is_cached() {
    let (mut chain, mut pool) = funded_with_pool();
    let pay = Transfer::sign(&key(1), &chain.chain_id(), addr(2), 5, 1, 0);
    pool.add(pay, chain.ledger()).unwrap();
    assert!(
        chain
            .sig_cache()
            .contains(&Transaction::Transfer(pay).compute_txid())
    );
    // S + l: the classic malleation, a signature the cofactored equation would accept but
    // ZIP 215 refuses (S must be below l). Other bytes, so another txid.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut forged = pay;
    let mut carry = 0u16;
    for (i, l) in L.iter().enumerate() {
        let sum = u16::from(forged.signature[32 + i]) + u16::from(*l) + carry;
        forged.signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let forged_id = Transaction::Transfer(forged).compute_txid();
    assert!(!chain.sig_cache().contains(&forged_id));
    let block = Arc::new(next_block(&chain, &[forged], addr(1)));
    let verified = chain.sig_cache().verified();
    assert!(matches!(
        chain.process_block(block, NOW),
        Err(ValidationError::BadSignature { txid, .. }) if txid == forged_id
    ));
    assert_eq!(chain.sig_cache().verified() - verified, 1);
    assert!(!chain.sig_cache().contains(&forged_id));
}
