//! Reorganisation: fork choice by cumulative work (first seen wins a tie), the ledger after a
//! reorganisation equal to a replay of the new best chain, transfers of disconnected blocks
//! returning to the mempool, branches failing a ledger rule, orphans, and the orphan bound.

mod chain_util;

use chain_util::{REWARD, addr, child_of, txid};
use gossipchain::chain::block::Block;
use gossipchain::chain::tree::TreeLimits;
use gossipchain::chain::{
    Address, BlockHash, ChainState, Mempool, MempoolLimits, Outcome, TipChange, Transaction,
    Transfer, Txid, ValidationError,
};
use gossipchain::testkit::{self, NOW, key};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A branch of `n` blocks on `parent` paying `miner`, with `transfers[i]` in its i-th block.
fn branch(
    parent: &Block,
    n: usize,
    miner: Address,
    transfers: &[Vec<Transfer>],
) -> Vec<Arc<Block>> {
    let mut out: Vec<Arc<Block>> = Vec::new();
    for i in 0..n {
        let p = out.last().map_or(parent, |b| b.as_ref());
        let txs = transfers.get(i).cloned().unwrap_or_default();
        out.push(child_of(p, &txs, miner));
    }
    out
}

fn hash(b: &Block) -> BlockHash {
    b.compute_hash()
}

/// The hashes of `blocks`, in order.
fn hashes<'a>(blocks: impl IntoIterator<Item = &'a Arc<Block>>) -> Vec<BlockHash> {
    blocks.into_iter().map(|b| hash(b)).collect()
}

/// The blocks of a tip change, to compare with the ones fed.
fn blocks(checked: &[Arc<gossipchain::chain::CheckedBlock>]) -> Vec<Arc<Block>> {
    checked.iter().map(|b| b.block().clone()).collect()
}

/// Processes a block that must be valid; returns the tip change.
fn feed(chain: &mut ChainState, block: &Arc<Block>) -> Option<TipChange> {
    let r = chain
        .process_block(block.clone(), NOW)
        .expect("the block is valid");
    assert_eq!(r.outcome, Outcome::Accepted);
    assert!(r.rejected.is_empty());
    r.tip_change
}

/// Feeds `blocks` in order; each must be valid.
fn feed_all<'a>(chain: &mut ChainState, blocks: impl IntoIterator<Item = &'a Arc<Block>>) {
    for b in blocks {
        feed(chain, b);
    }
}

/// A fresh chain that loads the best chain of `chain` from genesis, both trusted (as from the
/// store) and fully checked (as from the network).
fn assert_ledger_is_replay(chain: &ChainState) {
    let mut trusted = ChainState::new(chain.params().clone());
    let mut checked = ChainState::new(chain.params().clone());
    for h in 1..=chain.height() {
        let b = chain.block_at(h).unwrap().clone();
        trusted.load_trusted(b.clone()).expect("replay");
        checked.process_block(b, NOW).expect("replay");
    }
    assert_eq!(trusted.tip(), chain.tip());
    assert_eq!(checked.tip(), chain.tip());
    assert_eq!(trusted.ledger(), chain.ledger());
    assert_eq!(checked.ledger(), chain.ledger());
}

/// The best chain, genesis first.
fn active(chain: &ChainState) -> Vec<BlockHash> {
    (0..=chain.height())
        .map(|h| chain.hash_at(h).unwrap())
        .collect()
}

/// The txids of every transfer on the best chain.
fn active_transfers(chain: &ChainState) -> HashSet<Txid> {
    (1..=chain.height())
        .flat_map(|h| chain.block_at(h).unwrap().txs.clone())
        .filter(|tx| matches!(tx, Transaction::Transfer(_)))
        .map(|tx| tx.compute_txid())
        .collect()
}

/// The genesis block and three blocks paying addr(1), addr(2), addr(3) (50 each), then one
/// more paying addr(1) (100 in all).
fn common_prefix() -> Vec<Arc<Block>> {
    let genesis = testkit::params().genesis();
    let mut out = vec![Arc::new(genesis)];
    for miner in [1, 2, 3, 1] {
        let b = child_of(out.last().unwrap(), &[], addr(miner));
        out.push(b);
    }
    out
}

/// A chain holding `blocks` (genesis first).
fn chain_with(blocks: &[Arc<Block>]) -> ChainState {
    let mut chain = ChainState::new(testkit::params());
    feed_all(&mut chain, &blocks[1..]);
    chain
}

/// A chain holding the common prefix, and the prefix's last block, where the branches of a
/// test fork.
fn on_prefix() -> (ChainState, Arc<Block>) {
    let prefix = common_prefix();
    let fork = prefix.last().unwrap().clone();
    (chain_with(&prefix), fork)
}

/// [`on_prefix`] with a main branch of three blocks mined by addr(10) fed on the fork point:
/// the chain, the fork point and the main branch.
fn on_main_branch() -> (ChainState, Arc<Block>, Vec<Arc<Block>>) {
    let (mut chain, fork) = on_prefix();
    let main = branch(&fork, 3, addr(10), &[]);
    feed_all(&mut chain, &main);
    (chain, fork, main)
}

/// A transfer of 51 coins from addr(`seed`), which holds 50 after the common prefix: signed
/// correctly for `chain`, but breaking the balance rule.
fn overspend(chain: &ChainState, seed: u64) -> Transfer {
    Transfer::sign(&key(seed), &chain.chain_id(), addr(7), 51, 0, 0)
}

#[test]
fn a_one_block_longer_fork_overtakes() {
    let (mut chain, fork) = on_prefix();
    let id = chain.chain_id();
    let pay = Transfer::sign(&key(1), &id, addr(7), 40, 1, 0);
    let a = branch(&fork, 1, addr(10), &[vec![pay]]);
    let b = branch(&fork, 2, addr(20), &[]);
    assert!(feed(&mut chain, &a[0]).is_some());
    assert_eq!(chain.ledger().account(&addr(7)).balance, 40);
    assert!(
        feed(&mut chain, &b[0]).is_none(),
        "a tie keeps the first seen"
    );
    assert_eq!(chain.tip(), hash(&a[0]));
    let change = feed(&mut chain, &b[1]).expect("more work wins");
    assert_eq!(change.old_tip, hash(&a[0]));
    assert_eq!(change.new_tip, hash(&b[1]));
    assert_eq!(blocks(&change.disconnected), vec![a[0].clone()]);
    assert_eq!(blocks(&change.connected), vec![b[0].clone(), b[1].clone()]);
    assert_eq!(chain.tip(), hash(&b[1]));
    assert_eq!(chain.ledger().account(&addr(7)).balance, 0);
    assert_eq!(chain.ledger().account(&addr(1)).balance, 100);
    assert!(chain.contains(&hash(&a[0])) && !chain.is_active(&hash(&a[0])));
    assert_ledger_is_replay(&chain);
}

#[test]
fn a_deep_reorg_with_transfers_on_both_branches_restores_ledger_and_mempool() {
    let (mut chain, fork) = on_prefix();
    let id = chain.chain_id();
    let t = |seed, to, amount, fee, nonce| {
        Transfer::sign(&key(seed), &id, addr(to), amount, fee, nonce)
    };

    // Branch A, 5 blocks mined by addr(10).
    let s1n0 = t(1, 5, 10, 1, 0);
    let s2n0 = t(2, 6, 5, 2, 0);
    let s1n1 = t(1, 5, 10, 1, 1);
    let s3n0 = t(3, 7, 20, 3, 0);
    let from_a_coinbase = t(10, 8, 5, 0, 0);
    let s1n2 = t(1, 6, 1, 1, 2);
    let a = branch(
        &fork,
        5,
        addr(10),
        &[
            vec![s1n0, s2n0],
            vec![s1n1],
            vec![s3n0],
            vec![from_a_coinbase],
            vec![s1n2],
        ],
    );
    // Branch B, 6 blocks mined by addr(20): s1n0 again, a conflicting nonce 0 of addr(2), and
    // `q`, a transfer that waits in the mempool while A is best.
    let alt2 = t(2, 9, 7, 1, 0);
    let q = t(2, 11, 3, 1, 1);
    let b = branch(&fork, 6, addr(20), &[vec![s1n0], vec![alt2], vec![q]]);

    let mut pool = Mempool::new(id, MempoolLimits::default());
    for blk in &a {
        let change = feed(&mut chain, blk).expect("A extends the tip");
        pool.resync(&change, chain.ledger());
    }
    assert_eq!(chain.tip(), hash(&a[4]));
    let s1n3 = t(1, 12, 5, 1, 3);
    pool.add(s1n3, chain.ledger()).unwrap();
    pool.add(q, chain.ledger()).unwrap();
    let ledger_on_a = chain.ledger().clone();

    // B's first five blocks are a side branch (the fifth ties A: first seen stays).
    for blk in &b[..5] {
        assert!(feed(&mut chain, blk).is_none());
        assert_eq!(chain.tip(), hash(&a[4]));
        assert_eq!(chain.ledger(), &ledger_on_a);
    }
    let change = feed(&mut chain, &b[5]).expect("B overtakes");
    assert_eq!(change.old_tip, hash(&a[4]));
    assert_eq!(change.new_tip, hash(&b[5]));
    assert_eq!(
        hashes(&blocks(&change.disconnected)),
        hashes(a.iter().rev()),
        "from the old tip down"
    );
    assert_eq!(hashes(&blocks(&change.connected)), hashes(&b));
    assert_ledger_is_replay(&chain);
    for blk in &a {
        assert!(chain.contains(&hash(blk)) && !chain.is_active(&hash(blk)));
    }

    let stats = pool.resync(&change, chain.ledger());
    assert_eq!(
        (stats.included, stats.returned.len(), stats.dropped),
        (1, 3, 2)
    );
    // Still valid on B and not in it: back (s1n1, s1n2, s3n0) or kept (s1n3).
    let mut in_pool: Vec<_> = pool.by_fee().into_iter().map(|(id, _)| id).collect();
    in_pool.sort();
    let mut expected: Vec<_> = [s1n1, s1n2, s3n0, s1n3].iter().map(txid).collect();
    expected.sort();
    assert_eq!(in_pool, expected);
    // None is lost: every transfer of A is on B, in the pool, or invalid on B: s2n0 (addr(2)'s
    // nonce 0 went to alt2) and the spend of A's coinbase (addr(10) has nothing on B).
    let on_b = active_transfers(&chain);
    for tx in [s1n0, s2n0, s1n1, s3n0, from_a_coinbase, s1n2] {
        let id = txid(&tx);
        let invalid = tx == s2n0 || tx == from_a_coinbase;
        assert_eq!(on_b.contains(&id) || pool.contains(&id), !invalid, "{tx:?}");
        assert!(!(on_b.contains(&id) && pool.contains(&id)));
    }
    assert!(!pool.contains(&txid(&q)), "q is in B now");
    assert_eq!(chain.ledger().account(&addr(10)).balance, 0);
    assert_eq!(chain.ledger().account(&addr(20)).balance, 6 * REWARD + 3);

    // A block built from the pool on the new tip is valid and empties it.
    let mut template = gossipchain::chain::template::block_template(&chain, &pool, addr(30), NOW);
    testkit::mine_header(&mut template.header);
    assert_eq!(template.txs.len(), 5);
    let change = feed(&mut chain, &Arc::new(template)).unwrap();
    let stats = pool.resync(&change, chain.ledger());
    assert_eq!(stats.included, 4);
    assert!(pool.is_empty());
    assert_ledger_is_replay(&chain);
}

#[test]
fn a_tie_keeps_the_first_seen_tip() {
    let prefix = common_prefix();
    let fork = prefix.last().unwrap().clone();
    let x = branch(&fork, 3, addr(10), &[]);
    let y = branch(&fork, 3, addr(20), &[]);
    for (first, second) in [(&x, &y), (&y, &x)] {
        let mut chain = chain_with(&prefix);
        feed_all(&mut chain, first.iter());
        let ledger = chain.ledger().clone();
        for blk in second.iter() {
            assert!(feed(&mut chain, blk).is_none());
        }
        assert_eq!(chain.tip(), hash(&first[2]));
        assert_eq!(chain.ledger(), &ledger);
        assert_eq!(chain.work(&hash(&second[2])), Some(chain.tip_chainwork()));
        // Interleaved arrival: the first to reach a height keeps it.
        let mut chain = chain_with(&prefix);
        for i in 0..3 {
            feed(&mut chain, &first[i]);
            assert!(feed(&mut chain, &second[i]).is_none());
            assert_eq!(chain.tip(), hash(&first[i]));
        }
        // One block more breaks the tie.
        let more = child_of(&second[2], &[], addr(30));
        assert!(feed(&mut chain, &more).is_some());
        assert_eq!(chain.tip(), hash(&more));
        assert_ledger_is_replay(&chain);
    }
}

#[test]
fn a_tie_completed_by_orphans_keeps_the_first_seen_tip() {
    let (mut chain, fork) = on_prefix();
    let x = branch(&fork, 2, addr(10), &[]);
    let y = branch(&fork, 2, addr(20), &[]);
    // y[1] waits as an orphan; x arrives; then y[0] connects y[1] at equal work.
    let r = chain.process_block(y[1].clone(), NOW).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Orphan {
            missing_parent: hash(&y[0])
        }
    );
    feed_all(&mut chain, &x);
    let r = chain.process_block(y[0].clone(), NOW).unwrap();
    assert_eq!(r.accepted.len(), 2);
    assert!(r.tip_change.is_none());
    assert_eq!(chain.tip(), hash(&x[1]));
}

#[test]
fn reorg_back_and_forth() {
    let (mut chain, fork) = on_prefix();
    let id = chain.chain_id();
    // Each branch pays from addr(1) and addr(2) with different recipients.
    let on_a = [
        Transfer::sign(&key(1), &id, addr(40), 10, 1, 0),
        Transfer::sign(&key(2), &id, addr(41), 10, 1, 0),
    ];
    let on_b = [
        Transfer::sign(&key(1), &id, addr(42), 20, 2, 0),
        Transfer::sign(&key(3), &id, addr(43), 20, 2, 0),
    ];
    let mut a = branch(&fork, 2, addr(10), &[vec![on_a[0]], vec![on_a[1]]]);
    let mut b = branch(&fork, 3, addr(20), &[vec![on_b[0]], vec![on_b[1]]]);
    let mut pool = Mempool::new(id, MempoolLimits::default());
    for blk in &a {
        let change = feed(&mut chain, blk).unwrap();
        pool.resync(&change, chain.ledger());
    }
    let mut flips = 0;
    for round in 0..4 {
        // The losing branch grows until it has one block more than the winner.
        let (winner, loser) = if round % 2 == 0 {
            (&a, &mut b)
        } else {
            (&b, &mut a)
        };
        while loser.len() <= winner.len() {
            let next = child_of(loser.last().unwrap(), &[], addr(50 + round));
            loser.push(next);
        }
        let mut change = None;
        for blk in loser.iter() {
            if chain.contains(&hash(blk)) {
                continue;
            }
            if let Some(c) = feed(&mut chain, blk) {
                assert!(change.is_none(), "one switch, at the last block");
                change = Some(c);
            }
        }
        let change = change.expect("the loser overtakes");
        flips += 1;
        assert_eq!(chain.tip(), hash(loser.last().unwrap()));
        assert_eq!(change.disconnected.len(), winner.len());
        assert_eq!(change.connected.len(), loser.len());
        assert_ledger_is_replay(&chain);
        pool.resync(&change, chain.ledger());
        // The other branch's transfers that are still valid wait in the pool; none doubles.
        let mined = active_transfers(&chain);
        let (mine, theirs) = if round % 2 == 0 {
            (&on_b, &on_a)
        } else {
            (&on_a, &on_b)
        };
        for t in mine {
            assert!(mined.contains(&txid(t)) && !pool.contains(&txid(t)));
        }
        // addr(1)'s nonce 0 is taken by the winner's own transfer; addr(2)/addr(3) are free.
        assert!(!pool.contains(&txid(&theirs[0])));
        assert!(pool.contains(&txid(&theirs[1])));
        assert_eq!(pool.len(), 1);
    }
    assert_eq!(flips, 4);
}

#[test]
fn a_branch_failing_a_ledger_rule_midway_is_dropped_and_the_old_tip_restored() {
    let (mut chain, fork, main) = on_main_branch();
    let (tip, ledger) = (chain.tip(), chain.ledger().clone());
    // f[0] is valid; f[1] overspends addr(2) (50) with valid signatures; f[2..] build on it.
    let ok = Transfer::sign(&key(1), &chain.chain_id(), addr(7), 10, 0, 0);
    let over = overspend(&chain, 2);
    let f = branch(&fork, 5, addr(20), &[vec![ok], vec![over]]);
    let overspent = ValidationError::InsufficientBalance {
        txid: txid(&over),
        balance: 50,
        needed: 51,
    };
    for blk in &f[..3] {
        // Less or equal work: stored without the ledger rules.
        assert!(feed(&mut chain, blk).is_none());
    }
    let err = chain
        .process_block(f[3].clone(), NOW)
        .expect_err("the branch breaks a ledger rule");
    assert_eq!(err, ValidationError::InvalidAncestor(hash(&f[1])));
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.ledger(), &ledger);
    assert_eq!(active(&chain)[5..], hashes(&main));
    assert_ledger_is_replay(&chain);
    assert!(chain.contains(&hash(&f[0])), "the valid part stays");
    assert!(!chain.is_active(&hash(&f[0])));
    assert_eq!(chain.invalid_reason(&hash(&f[1])), Some(&overspent));
    for blk in &f[1..4] {
        assert!(!chain.contains(&hash(blk)));
    }
    assert_eq!(
        chain.invalid_reason(&hash(&f[2])),
        Some(&ValidationError::InvalidAncestor(hash(&f[1])))
    );
    // Later blocks of the branch are refused at once; resending the bad ones too.
    assert_eq!(
        chain.process_block(f[4].clone(), NOW).unwrap_err(),
        ValidationError::InvalidAncestor(hash(&f[3]))
    );
    assert_eq!(
        chain.process_block(f[1].clone(), NOW).unwrap_err(),
        overspent
    );
    // The main chain still grows.
    let next = child_of(main.last().unwrap(), &[], addr(10));
    assert!(feed(&mut chain, &next).is_some());
    assert_ledger_is_replay(&chain);
}

#[test]
fn a_failed_reorg_restores_the_first_seen_of_equal_tips() {
    let (mut chain, fork) = on_prefix();
    // The tip m[1], then an equal side branch s, then a longer branch f that fails at f[0].
    let m = branch(&fork, 2, addr(10), &[]);
    let s = branch(&fork, 2, addr(20), &[]);
    let f = branch(&fork, 3, addr(30), &[vec![overspend(&chain, 3)]]);
    feed_all(&mut chain, m.iter().chain(&s));
    let ledger = chain.ledger().clone();
    for blk in &f[..2] {
        assert!(feed(&mut chain, blk).is_none());
    }
    assert_eq!(
        chain.process_block(f[2].clone(), NOW).unwrap_err(),
        ValidationError::InvalidAncestor(hash(&f[0]))
    );
    assert_eq!(chain.tip(), hash(&m[1]), "the first seen of the equal tips");
    assert_eq!(chain.ledger(), &ledger);
    assert!(chain.contains(&hash(&s[1])));
    assert_ledger_is_replay(&chain);
}

#[test]
fn a_ledger_invalid_branch_arriving_as_orphans_is_dropped_in_one_call() {
    let (mut chain, fork, _) = on_main_branch();
    let (tip, ledger) = (chain.tip(), chain.ledger().clone());
    let f = branch(&fork, 4, addr(20), &[vec![], vec![overspend(&chain, 2)]]);
    for blk in f[1..].iter().rev() {
        let r = chain.process_block(blk.clone(), NOW).unwrap();
        assert!(matches!(r.outcome, Outcome::Orphan { .. }));
    }
    let r = chain.process_block(f[0].clone(), NOW).unwrap();
    assert_eq!(r.outcome, Outcome::Accepted);
    assert!(r.tip_change.is_none(), "the old tip is back: no net change");
    let accepted: Vec<_> = r.accepted.iter().map(|b| b.hash()).collect();
    assert_eq!(accepted, vec![hash(&f[0])]);
    let rejected: HashMap<_, _> = r.rejected.into_iter().collect();
    assert_eq!(rejected.len(), 3);
    assert!(matches!(
        rejected[&hash(&f[1])],
        ValidationError::InsufficientBalance { .. }
    ));
    for blk in &f[2..] {
        assert_eq!(
            rejected[&hash(blk)],
            ValidationError::InvalidAncestor(hash(&f[1]))
        );
    }
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.ledger(), &ledger);
    assert_eq!(chain.orphan_count(), 0);
    assert_ledger_is_replay(&chain);
}

#[test]
fn orphans_arriving_in_reverse_order_connect() {
    let prefix = common_prefix();
    let id = testkit::params().chain_id();
    let pays: Vec<Vec<Transfer>> = (0..8)
        .map(|n| vec![Transfer::sign(&key(1), &id, addr(60 + n), 2, 1, n)])
        .collect();
    let blocks = branch(prefix.last().unwrap(), 8, addr(10), &pays);
    let mut source = chain_with(&prefix);
    feed_all(&mut source, &blocks);
    let mut chain = chain_with(&prefix);
    let tip = chain.tip();
    for (i, b) in blocks.iter().enumerate().skip(1).rev() {
        let r = chain.process_block(b.clone(), NOW).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Orphan {
                missing_parent: hash(&blocks[i - 1])
            }
        );
        assert!(r.tip_change.is_none());
        assert!(chain.is_orphan(&hash(b)));
        // Resent orphans are known.
        assert_eq!(
            chain.process_block(b.clone(), NOW).unwrap().outcome,
            Outcome::AlreadyKnown
        );
    }
    assert_eq!(chain.orphan_count(), 7);
    assert_eq!(chain.tip(), tip);
    let r = chain.process_block(blocks[0].clone(), NOW).unwrap();
    assert_eq!(r.outcome, Outcome::Accepted);
    let accepted: Vec<_> = r.accepted.iter().map(|b| b.hash()).collect();
    assert_eq!(accepted, hashes(&blocks));
    let change = r.tip_change.unwrap();
    assert_eq!(change.old_tip, tip);
    assert_eq!(self::blocks(&change.connected), blocks);
    assert!(change.disconnected.is_empty());
    assert_eq!(chain.orphan_count(), 0);
    assert_eq!(chain.tip(), source.tip());
    assert_eq!(chain.ledger(), source.ledger());
    assert_eq!(chain.ledger().account(&addr(1)).nonce, 8);
}

#[test]
fn a_fork_arriving_as_orphans_reorganises_in_one_call() {
    let (mut chain, fork) = on_prefix();
    let id = chain.chain_id();
    let pay = Transfer::sign(&key(3), &id, addr(8), 5, 5, 0);
    let a = branch(&fork, 5, addr(10), &[vec![pay]]);
    feed_all(&mut chain, &a);
    let b = branch(&fork, 6, addr(20), &[]);
    for blk in b[1..].iter().rev() {
        chain.process_block(blk.clone(), NOW).unwrap();
    }
    let r = chain.process_block(b[0].clone(), NOW).unwrap();
    let change = r.tip_change.expect("the fork overtakes once connected");
    assert_eq!(change.disconnected.len(), 5);
    assert_eq!(blocks(&change.connected), b);
    assert_ledger_is_replay(&chain);
    let mut pool = Mempool::new(id, MempoolLimits::default());
    let stats = pool.resync(&change, chain.ledger());
    assert_eq!(stats.returned.len(), 1);
    assert!(pool.contains(&txid(&pay)));
}

#[test]
fn the_orphan_pool_stays_bounded_under_a_flood() {
    let params = testkit::params();
    let prefix = common_prefix();
    let limits = TreeLimits {
        max_orphans: 5,
        ..TreeLimits::default()
    };
    let mut chain = ChainState::with_limits(params.clone(), limits);
    feed_all(&mut chain, &prefix[1..]);
    let tip = chain.tip();
    // Fifty orphans of a chain whose first block is held back, then fifty with unknown parents.
    let blocks = branch(prefix.last().unwrap(), 51, addr(10), &[]);
    for b in &blocks[1..] {
        chain.process_block(b.clone(), NOW).unwrap();
        assert!(chain.orphan_count() <= 5);
    }
    assert_eq!(chain.orphan_count(), 5);
    // The oldest went first: the newest five remain.
    for b in &blocks[1..46] {
        assert!(!chain.is_orphan(&hash(b)));
    }
    for b in &blocks[46..] {
        assert!(chain.is_orphan(&hash(b)));
    }
    let mut stranger = (*blocks[0]).clone();
    for i in 0..50u64 {
        stranger.header.timestamp += 1;
        let orphan = child_of(&stranger, &[], addr(100 + i));
        let r = chain.process_block(orphan, NOW).unwrap();
        assert!(matches!(r.outcome, Outcome::Orphan { .. }));
        assert!(chain.orphan_count() <= 5);
    }
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.block_count(), prefix.len());
    // The evicted blocks connect when sent again in order.
    for b in &blocks {
        chain.process_block(b.clone(), NOW).unwrap();
    }
    assert_eq!(chain.tip(), hash(blocks.last().unwrap()));
    assert_ledger_is_replay(&chain);

    // A byte bound of three blocks holds three.
    let size = blocks[1].encoded_len();
    let limits = TreeLimits {
        max_orphan_bytes: 3 * size,
        ..TreeLimits::default()
    };
    let mut chain = ChainState::with_limits(params, limits);
    for b in blocks.iter().skip(1) {
        chain.process_block(b.clone(), NOW).unwrap();
        assert!(chain.orphan_count() <= 3);
    }
    assert_eq!(chain.orphan_count(), 3);
}

// ---------------------------------------------------------------------------------------------
// Random fork trees.

/// One random block: a parent among the blocks built so far, and maybe a transfer from the
/// parent's miner (who holds at least the reward there and has sent nothing on that branch).
#[derive(Debug, Clone)]
struct Op {
    parent: prop::sample::Index,
    pay: Option<(u64, u64, prop::sample::Index)>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        any::<prop::sample::Index>(),
        prop::option::of((0u64..=40, 0u64..=10, any::<prop::sample::Index>())),
    )
        .prop_map(|(parent, pay)| Op { parent, pay })
}

/// The blocks of a random tree, genesis first: block i + 1 is mined by addr(1000 + i + 1) on the
/// parent `ops[i]` picks, holding the payment it may ask of the parent's miner and, if it is
/// marked invalid, a spend from an empty account. Returns the blocks and each one's parent
/// index (genesis is its own).
fn random_tree(ops: &[(Op, bool)]) -> (Vec<Arc<Block>>, Vec<usize>) {
    let params = testkit::params();
    let id = params.chain_id();
    let mut blocks = vec![Arc::new(params.genesis())];
    let mut parents = vec![0];
    for (i, (op, invalid)) in ops.iter().enumerate() {
        let p = op.parent.index(blocks.len());
        let mut transfers = Vec::new();
        if let Some((amount, fee, to)) = op.pay
            && p > 0
        {
            let to = addr(1000 + to.index(blocks.len()) as u64);
            transfers.push(Transfer::sign(
                &key(1000 + p as u64),
                &id,
                to,
                amount,
                fee,
                0,
            ));
        }
        if *invalid {
            transfers.push(Transfer::sign(&key(5000 + i as u64), &id, addr(1), 1, 0, 0));
        }
        blocks.push(child_of(&blocks[p], &transfers, addr(1000 + i as u64 + 1)));
        parents.push(p);
    }
    (blocks, parents)
}

/// The indices of the `n` blocks but genesis, in the random order `order` gives them.
fn delivery_order(n: usize, order: &[u32]) -> Vec<usize> {
    let mut delivery: Vec<usize> = (1..n).collect();
    delivery.sort_by_key(|i| (order[*i - 1], *i));
    delivery
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random trees of valid blocks (a sequence of "extend this block" ops), delivered in a
    /// random order: after every delivery the tip is the most-work block, the earliest accepted
    /// among equals; tip changes describe the best chain exactly; and the ledger is a replay.
    #[test]
    fn random_fork_trees_settle_on_the_most_work_first_seen_tip(
        ops in prop::collection::vec(op(), 1..16),
        order in prop::collection::vec(any::<u32>(), 16),
    ) {
        let ops: Vec<_> = ops.into_iter().map(|op| (op, false)).collect();
        let (blocks, _) = random_tree(&ops);
        let genesis = hash(&blocks[0]);

        let mut chain = ChainState::new(testkit::params());
        let mut accepted_order: Vec<BlockHash> = vec![genesis];
        let height: HashMap<BlockHash, u64> =
            blocks.iter().map(|b| (hash(b), b.header.height)).collect();
        let mut model_active = vec![genesis];
        for i in delivery_order(blocks.len(), &order) {
            let r = chain.process_block(blocks[i].clone(), NOW).expect("valid");
            prop_assert!(r.rejected.is_empty());
            accepted_order.extend(r.accepted.iter().map(|b| b.hash()));
            // Equal difficulty: work is height + 1 blocks; the first accepted wins a tie.
            let best_height = accepted_order.iter().map(|h| height[h]).max().unwrap();
            let best = *accepted_order.iter().find(|h| height[*h] == best_height).unwrap();
            prop_assert_eq!(chain.tip(), best);
            if let Some(change) = r.tip_change {
                prop_assert_eq!(change.old_tip, *model_active.last().unwrap());
                for b in &change.disconnected {
                    prop_assert_eq!(model_active.pop(), Some(hash(b)));
                }
                for b in &change.connected {
                    prop_assert_eq!(b.header.prev_hash, *model_active.last().unwrap());
                    model_active.push(hash(b));
                }
                prop_assert_eq!(change.new_tip, *model_active.last().unwrap());
            }
            prop_assert_eq!(&model_active, &active(&chain));
        }
        prop_assert_eq!(chain.block_count(), blocks.len());
        prop_assert_eq!(chain.orphan_count(), 0);
        let mut accepted_set: Vec<_> = accepted_order.clone();
        accepted_set.sort();
        accepted_set.dedup();
        prop_assert_eq!(accepted_set.len(), blocks.len());
        assert_ledger_is_replay(&chain);
        prop_assert_eq!(
            chain.ledger().total_supply(),
            chain.height() * REWARD
        );
    }

    /// Random trees where some blocks also spend from an empty account (a ledger rule, found
    /// only when the block would join the best chain): every call keeps the tip at the
    /// most-work valid block (first accepted among equals) and the ledger equal to a replay;
    /// no invalid block is ever on the best chain and every valid block ends up stored.
    #[test]
    fn random_fork_trees_with_invalid_blocks_settle_on_the_best_valid_tip(
        ops in prop::collection::vec((op(), prop::bool::weighted(0.2)), 1..16),
        order in prop::collection::vec(any::<u32>(), 16),
    ) {
        let (blocks, parents) = random_tree(&ops);
        // A block is bad if it spends from an empty account or descends from one that does.
        let mut bad = vec![false];
        for (i, (_, invalid)) in ops.iter().enumerate() {
            bad.push(*invalid || bad[parents[i + 1]]);
        }
        let index: HashMap<BlockHash, usize> =
            blocks.iter().enumerate().map(|(i, b)| (hash(b), i)).collect();

        let mut chain = ChainState::new(testkit::params());
        let mut accepted_order = vec![0usize];
        for i in delivery_order(blocks.len(), &order) {
            match chain.process_block(blocks[i].clone(), NOW) {
                Ok(r) => {
                    accepted_order.extend(r.accepted.iter().map(|b| index[&b.hash()]));
                    for (h, _) in &r.rejected {
                        prop_assert!(bad[index[h]]);
                    }
                }
                Err(_) => prop_assert!(bad[i]),
            }
            let good: Vec<usize> = accepted_order.iter().copied().filter(|j| !bad[*j]).collect();
            let best_height = good.iter().map(|j| blocks[*j].header.height).max().unwrap();
            let best = *good.iter().find(|j| blocks[**j].header.height == best_height).unwrap();
            prop_assert_eq!(chain.tip(), hash(&blocks[best]));
            for h in active(&chain) {
                prop_assert!(!bad[index[&h]]);
            }
        }
        for (i, b) in blocks.iter().enumerate() {
            if !bad[i] {
                prop_assert!(chain.contains(&hash(b)));
            }
        }
        assert_ledger_is_replay(&chain);
    }
}
