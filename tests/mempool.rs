//! The mempool: per-sender nonce order, fee priority, replacement, bounds and eviction, the
//! admission checks, resync after a new best block, and block templates that a chain accepts.

mod chain_util;

use chain_util::{G, REWARD, addr, not_a_key, txid};
use gossipchain::chain::mempool::{self, Resync};
use gossipchain::chain::tx::{SignatureError, TRANSFER_LEN};
use gossipchain::chain::{
    Address, ChainParams, ChainState, Ledger, Mempool, MempoolError, MempoolLimits, Outcome,
    Transfer,
};
use gossipchain::testkit::{self, NOW, key, mine_header, next_block};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// A clock an hour after the test chain's genesis: ahead of every block here.
const HOUR_AFTER_GENESIS: u64 = G + 3_600_000;

/// A chain where each of `senders` mined two blocks (100 coins each).
fn funded(senders: impl IntoIterator<Item = u64>) -> ChainState {
    funded_with(testkit::params(), senders)
}

fn funded_with(params: ChainParams, senders: impl IntoIterator<Item = u64>) -> ChainState {
    let mut chain = ChainState::new(params);
    for s in senders {
        testkit::extend(&mut chain, 2, addr(s));
    }
    chain
}

fn pool_for(chain: &ChainState) -> Mempool {
    Mempool::new(chain.chain_id(), MempoolLimits::default())
}

fn limited(chain: &ChainState, max_txs: usize, max_bytes: usize) -> Mempool {
    Mempool::new(
        chain.chain_id(),
        MempoolLimits {
            max_txs,
            max_bytes,
            ..MempoolLimits::default()
        },
    )
}

/// Transfer of `amount` + `fee` from key(`from`) to addr(99), signed for `chain`.
fn pay(chain: &ChainState, from: u64, amount: u64, fee: u64, nonce: u64) -> Transfer {
    Transfer::sign(&key(from), &chain.chain_id(), addr(99), amount, fee, nonce)
}

/// Everything that fits in a block: no limit that matters here.
fn select_all(pool: &Mempool, ledger: &Ledger) -> Vec<Transfer> {
    pool.select(ledger, usize::MAX, usize::MAX, REWARD)
}

/// Mines the chain's template from `pool`, processes it, resyncs the pool; returns the block.
fn mine_template(
    chain: &mut ChainState,
    pool: &mut Mempool,
    miner: Address,
    now: u64,
) -> (Arc<gossipchain::chain::Block>, Resync) {
    let mut block = gossipchain::chain::template::block_template(chain, pool, miner, now);
    mine_header(&mut block.header);
    let block = Arc::new(block);
    let r = chain
        .process_block(block.clone(), now)
        .expect("a template is a valid block");
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(chain.tip(), block.compute_hash());
    let stats = pool.resync(
        &r.tip_change.expect("the template extends the tip"),
        chain.ledger(),
    );
    (block, stats)
}

// ---------------------------------------------------------------------------------------------
// Nonce order.

#[test]
fn a_future_nonce_waits_for_its_predecessors() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    let t: Vec<_> = (0..3).map(|n| pay(&chain, 1, 10, 1, n)).collect();
    pool.add(t[2], chain.ledger()).unwrap();
    assert!(pool.contains(&txid(&t[2])));
    assert!(select_all(&pool, chain.ledger()).is_empty());
    pool.add(t[1], chain.ledger()).unwrap();
    assert!(select_all(&pool, chain.ledger()).is_empty());
    assert_eq!(pool.next_nonce(&addr(1), chain.ledger()), 3);
    pool.add(t[0], chain.ledger()).unwrap();
    assert_eq!(select_all(&pool, chain.ledger()), t);
}

#[test]
fn select_stops_at_a_gap_in_a_senders_nonces() {
    let chain = funded([1, 2]);
    let mut pool = pool_for(&chain);
    // addr(1): 0, 1, 3 (2 missing); addr(2): 1 only (0 missing).
    for n in [0, 1, 3] {
        pool.add(pay(&chain, 1, 1, 1, n), chain.ledger()).unwrap();
    }
    pool.add(pay(&chain, 2, 1, 50, 1), chain.ledger()).unwrap();
    let picked = select_all(&pool, chain.ledger());
    assert_eq!(
        picked,
        vec![pay(&chain, 1, 1, 1, 0), pay(&chain, 1, 1, 1, 1)]
    );
    assert_eq!(pool.len(), 4);
}

#[test]
fn select_follows_the_fee_order_but_keeps_each_senders_nonce_order() {
    let chain = funded([1, 2, 3]);
    let mut pool = pool_for(&chain);
    // addr(1): a cheap first transfer holding back an expensive second one.
    let a0 = pay(&chain, 1, 1, 1, 0);
    let a1 = pay(&chain, 1, 1, 30, 1);
    let b0 = pay(&chain, 2, 1, 10, 0);
    let c0 = pay(&chain, 3, 1, 20, 0);
    for t in [a1, a0, b0, c0] {
        pool.add(t, chain.ledger()).unwrap();
    }
    assert_eq!(select_all(&pool, chain.ledger()), vec![c0, b0, a0, a1]);
    // With room for two, the highest-fee heads win.
    assert_eq!(
        pool.select(chain.ledger(), 2, usize::MAX, REWARD),
        vec![c0, b0]
    );
    // The byte room counts whole transfers.
    assert_eq!(
        pool.select(chain.ledger(), usize::MAX, 3 * TRANSFER_LEN - 1, REWARD),
        vec![c0, b0]
    );
}

#[test]
fn equal_fees_go_in_arrival_order() {
    let chain = funded(1..=5);
    let mut pool = pool_for(&chain);
    let order = [3, 1, 5, 2, 4];
    for s in order {
        pool.add(pay(&chain, s, 1, 7, 0), chain.ledger()).unwrap();
    }
    let picked: Vec<_> = select_all(&pool, chain.ledger())
        .iter()
        .map(|t| t.from)
        .collect();
    assert_eq!(picked, order.map(addr).to_vec());
}

#[test]
fn select_never_pays_more_than_a_senders_balance() {
    let rich = funded([1]);
    let mut pool = pool_for(&rich);
    // Admitted against 100 coins: 31 + 31 + 11 = 73.
    let t0 = pay(&rich, 1, 30, 1, 0);
    let t1 = pay(&rich, 1, 30, 1, 1);
    let t2 = pay(&rich, 1, 10, 1, 2);
    for t in [t0, t1, t2] {
        pool.add(t, rich.ledger()).unwrap();
    }
    assert_eq!(select_all(&pool, rich.ledger()), vec![t0, t1, t2]);
    // On a branch of the same chain where addr(1) mined one block (50 coins, same nonce),
    // t1 no longer fits, and t2 is not picked after the gap t1 leaves.
    let mut poorer = ChainState::new(testkit::params());
    testkit::extend(&mut poorer, 1, addr(1));
    assert_eq!(poorer.chain_id(), rich.chain_id());
    assert_eq!(poorer.ledger().account(&addr(1)).balance, 50);
    assert_eq!(select_all(&pool, poorer.ledger()), vec![t0]);
    // The reward plus the fees must not overflow either.
    assert_eq!(
        pool.select(rich.ledger(), usize::MAX, usize::MAX, u64::MAX - 1),
        vec![t0]
    );
}

// ---------------------------------------------------------------------------------------------
// Replacement and admission checks.

/// The refusal of a replacement of `pending` (paying `old_fee`) by one paying `got`.
fn underpriced(
    pending: gossipchain::chain::Txid,
    old_fee: u64,
    min_fee: u128,
    got: u64,
) -> MempoolError {
    MempoolError::ReplacementUnderpriced {
        pending,
        old_fee,
        min_fee,
        got,
    }
}

#[test]
fn replacement_needs_a_fee_at_least_ten_percent_higher() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    let first = pay(&chain, 1, 10, 50, 0);
    let first_id = pool.add(first, chain.ledger()).unwrap();
    for fee in [0, 49, 50, 54] {
        let other = Transfer::sign(&key(1), &chain.chain_id(), addr(98), 10, fee, 0);
        assert_eq!(
            pool.add(other, chain.ledger()),
            Err(underpriced(first_id, 50, 55, fee))
        );
    }
    // Exactly 10 % more is enough; the replaced one is evicted and reported.
    let better = Transfer::sign(&key(1), &chain.chain_id(), addr(98), 10, 55, 0);
    let admitted = pool.admit(better, chain.ledger()).unwrap();
    assert_eq!(admitted.replaced, Some((first_id, first)));
    let better_id = admitted.txid;
    assert!(pool.contains(&better_id));
    assert!(!pool.contains(&first_id));
    assert_eq!(pool.len(), 1);
    assert_eq!(select_all(&pool, chain.ledger()), vec![better]);
    // The replaced one cannot come back at its old fee.
    assert_eq!(
        pool.add(first, chain.ledger()),
        Err(underpriced(better_id, 55, 61, 50))
    );
    let e = pool.add(first, chain.ledger()).unwrap_err().to_string();
    assert!(
        e.starts_with("replacement fee too low: needs at least 61"),
        "{e}"
    );
}

#[test]
fn exactly_ten_percent_is_accepted_and_just_below_is_refused() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    // Fees of a few coins (the chain's balances are small): 10 → 11 is exactly 10 %.
    let old = pool.add(pay(&chain, 1, 10, 10, 0), chain.ledger()).unwrap();
    let e = pool.add(pay(&chain, 1, 9, 10, 0), chain.ledger());
    assert_eq!(e, Err(underpriced(old, 10, 11, 10)));
    let new = pool.add(pay(&chain, 1, 10, 11, 0), chain.ledger()).unwrap();
    assert!(!pool.contains(&old) && pool.contains(&new));
    // The rule in large numbers, where 9.99 % is a whole fee: 10 000 needs 11 000.
    assert_eq!(mempool::min_replacement_fee(10_000), 11_000);
    assert_eq!(mempool::min_replacement_fee(100), 110);
    // Rounded up: 15 · 1.1 = 16.5 needs 17; 1 needs 2; 0 needs 1.
    assert_eq!(mempool::min_replacement_fee(15), 17);
    assert_eq!(mempool::min_replacement_fee(1), 2);
    assert_eq!(mempool::min_replacement_fee(0), 1);
    // An old fee near the top cannot be outbid: the rule needs more than a u64.
    assert!(mempool::min_replacement_fee(u64::MAX) > u128::from(u64::MAX));
}

#[test]
fn nine_point_nine_nine_percent_more_is_refused() {
    let params = ChainParams {
        block_reward: 1_000_000,
        ..testkit::params()
    };
    let chain = funded_with(params, [1]);
    let mut pool = pool_for(&chain);
    let old = pool
        .add(pay(&chain, 1, 1, 10_000, 0), chain.ledger())
        .unwrap();
    assert_eq!(
        pool.add(pay(&chain, 1, 1, 10_999, 0), chain.ledger()),
        Err(underpriced(old, 10_000, 11_000, 10_999))
    );
    let new = pool
        .add(pay(&chain, 1, 1, 11_000, 0), chain.ledger())
        .unwrap();
    assert_eq!(pool.by_fee(), vec![(new, pay(&chain, 1, 1, 11_000, 0))]);
}

#[test]
fn another_sender_with_the_same_nonce_replaces_nothing() {
    let chain = funded([1, 2]);
    let mut pool = pool_for(&chain);
    let a = pool.add(pay(&chain, 1, 10, 5, 0), chain.ledger()).unwrap();
    let b = pool
        .admit(pay(&chain, 2, 10, 50, 0), chain.ledger())
        .unwrap();
    assert_eq!(b.replaced, None);
    assert!(pool.contains(&a) && pool.contains(&b.txid));
    // Nor does the same sender with another nonce.
    let c = pool
        .admit(pay(&chain, 1, 10, 50, 1), chain.ledger())
        .unwrap();
    assert_eq!(c.replaced, None);
    assert_eq!(pool.len(), 3);
}

#[test]
fn replacing_one_nonce_of_a_chain_keeps_the_others() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    let n0 = pool.add(pay(&chain, 1, 10, 1, 0), chain.ledger()).unwrap();
    let n1 = pool.add(pay(&chain, 1, 10, 1, 1), chain.ledger()).unwrap();
    let n2 = pool.add(pay(&chain, 1, 10, 1, 2), chain.ledger()).unwrap();
    // Replace the middle one: its neighbours stay, and a block takes all three in order.
    let r = pool
        .admit(pay(&chain, 1, 10, 2, 1), chain.ledger())
        .unwrap();
    assert_eq!(r.replaced.map(|(id, _)| id), Some(n1));
    assert!(pool.contains(&n0) && pool.contains(&n2) && !pool.contains(&n1));
    assert_eq!(pool.next_nonce(&addr(1), chain.ledger()), 3);
    let picked = select_all(&pool, chain.ledger());
    assert_eq!(
        picked.iter().map(|t| (t.nonce, t.fee)).collect::<Vec<_>>(),
        vec![(0, 1), (1, 2), (2, 1)]
    );
    // Replacing the first of the chain works the same way.
    let r0 = pool
        .admit(pay(&chain, 1, 10, 3, 0), chain.ledger())
        .unwrap();
    assert_eq!(r0.replaced.map(|(id, _)| id), Some(n0));
    assert_eq!(pool.len(), 3);
    assert_eq!(pool.pending_spend(&addr(1)), 10 + 3 + 10 + 2 + 10 + 1);
}

#[test]
fn a_replacement_in_a_full_pool_takes_its_predecessors_place() {
    let chain = funded([1, 2]);
    let mut pool = limited(&chain, 2, usize::MAX);
    let a = pool.add(pay(&chain, 1, 10, 5, 0), chain.ledger()).unwrap();
    let b = pool.add(pay(&chain, 2, 10, 1, 0), chain.ledger()).unwrap();
    // Full: the replacement of a evicts a alone, not b (the lowest fee).
    let r = pool
        .admit(pay(&chain, 1, 10, 6, 0), chain.ledger())
        .unwrap();
    assert_eq!(r.replaced.map(|(id, _)| id), Some(a));
    assert!(pool.contains(&b) && pool.contains(&r.txid));
    assert_eq!(pool.len(), 2);
    // An underpriced one in a full pool is refused as underpriced, and changes nothing.
    assert_eq!(
        pool.add(pay(&chain, 2, 9, 1, 0), chain.ledger()),
        Err(underpriced(b, 1, 2, 1))
    );
    assert_eq!(pool.len(), 2);
}

#[test]
fn a_replacement_is_checked_against_the_balance_without_the_one_it_replaces() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    pool.add(pay(&chain, 1, 50, 1, 0), chain.ledger()).unwrap();
    pool.add(pay(&chain, 1, 40, 1, 1), chain.ledger()).unwrap();
    // Replacing nonce 1 with 48 + 2: 51 + 50 = 101 > 100.
    assert_eq!(
        pool.add(pay(&chain, 1, 48, 2, 1), chain.ledger()),
        Err(MempoolError::InsufficientBalance {
            balance: 100,
            needed: 101
        })
    );
    // 47 + 2 fits exactly.
    pool.add(pay(&chain, 1, 47, 2, 1), chain.ledger()).unwrap();
    assert_eq!(pool.pending_spend(&addr(1)), 100);
    assert_eq!(pool.len(), 2);
}

#[test]
fn the_balance_check_covers_all_pending_transfers_of_a_sender() {
    let chain = funded([1, 2]);
    let mut pool = pool_for(&chain);
    pool.add(pay(&chain, 1, 40, 1, 0), chain.ledger()).unwrap();
    pool.add(pay(&chain, 1, 40, 1, 1), chain.ledger()).unwrap();
    pool.add(pay(&chain, 1, 17, 1, 2), chain.ledger()).unwrap();
    assert_eq!(pool.pending_spend(&addr(1)), 100);
    assert_eq!(
        pool.add(pay(&chain, 1, 1, 0, 3), chain.ledger()),
        Err(MempoolError::InsufficientBalance {
            balance: 100,
            needed: 101
        })
    );
    // A future nonce counts too, and another sender is unaffected.
    let mut pool = pool_for(&chain);
    pool.add(pay(&chain, 1, 90, 0, 5), chain.ledger()).unwrap();
    assert_eq!(
        pool.add(pay(&chain, 1, 11, 0, 0), chain.ledger()),
        Err(MempoolError::InsufficientBalance {
            balance: 100,
            needed: 101
        })
    );
    pool.add(pay(&chain, 2, 100, 0, 0), chain.ledger()).unwrap();
    // An unfunded sender can send nothing that costs.
    assert_eq!(
        pool.add(pay(&chain, 7, 0, 1, 0), chain.ledger()),
        Err(MempoolError::InsufficientBalance {
            balance: 0,
            needed: 1
        })
    );
}

#[test]
fn a_bad_signature_is_refused() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    let mut t = pay(&chain, 1, 10, 1, 0);
    t.signature[0] ^= 1;
    assert_eq!(
        pool.add(t, chain.ledger()),
        Err(MempoolError::BadSignature(SignatureError::BadSignature))
    );
    let mut t = pay(&chain, 1, 10, 1, 0);
    t.amount = 11;
    assert_eq!(
        pool.add(t, chain.ledger()),
        Err(MempoolError::BadSignature(SignatureError::BadSignature))
    );
    let mut t = pay(&chain, 1, 10, 1, 0);
    t.from = not_a_key();
    assert_eq!(
        pool.add(t, chain.ledger()),
        Err(MempoolError::BadSignature(SignatureError::BadPublicKey))
    );
    assert!(pool.is_empty());
}

#[test]
fn a_transfer_for_another_chain_is_refused() {
    let chain = funded([1]);
    let other = ChainParams {
        genesis_message: "another chain".into(),
        ..testkit::params()
    };
    assert_ne!(other.chain_id(), chain.chain_id());
    let foreign = Transfer::sign(&key(1), &other.chain_id(), addr(2), 10, 1, 0);
    let mut pool = pool_for(&chain);
    assert_eq!(
        pool.add(foreign, chain.ledger()),
        Err(MempoolError::BadSignature(SignatureError::BadSignature))
    );
    // And a pool of the other chain refuses ours.
    let mut theirs = Mempool::new(other.chain_id(), MempoolLimits::default());
    assert_eq!(
        theirs.add(pay(&chain, 1, 10, 1, 0), chain.ledger()),
        Err(MempoolError::BadSignature(SignatureError::BadSignature))
    );
}

#[test]
fn nonce_too_low_and_too_high() {
    let mut chain = funded([1]);
    let t0 = pay(&chain, 1, 10, 1, 0);
    let b = next_block(&chain, &[t0], addr(2));
    chain.process_block(Arc::new(b), NOW).unwrap();
    let mut pool = pool_for(&chain);
    assert_eq!(
        pool.add(t0, chain.ledger()),
        Err(MempoolError::NonceTooLow {
            expected: 1,
            got: 0
        })
    );
    let gap = MempoolLimits::default().max_nonce_gap;
    assert_eq!(
        pool.add(pay(&chain, 1, 0, 0, 1 + gap + 1), chain.ledger()),
        Err(MempoolError::NonceTooHigh {
            expected: 1,
            got: 2 + gap
        })
    );
    assert_eq!(
        pool.add(pay(&chain, 1, 0, 0, u64::MAX), chain.ledger()),
        Err(MempoolError::NonceTooHigh {
            expected: 1,
            got: u64::MAX
        })
    );
    // The largest allowed gap is accepted.
    pool.add(pay(&chain, 1, 0, 0, 1 + gap), chain.ledger())
        .unwrap();
    assert_eq!(pool.len(), 1);
}

#[test]
fn duplicates_and_overflow_are_refused() {
    let chain = funded([1]);
    let mut pool = pool_for(&chain);
    let t = pay(&chain, 1, 10, 1, 0);
    let id = pool.add(t, chain.ledger()).unwrap();
    assert_eq!(
        pool.add(t, chain.ledger()),
        Err(MempoolError::AlreadyKnown(id))
    );
    assert_eq!(
        pool.add(pay(&chain, 1, u64::MAX, 1, 1), chain.ledger()),
        Err(MempoolError::AmountOverflow)
    );
    assert_eq!(pool.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Bounds.

#[test]
fn the_count_bound_evicts_the_lowest_fee_or_refuses_the_newcomer() {
    let chain = funded(1..=6);
    let mut pool = limited(&chain, 3, usize::MAX);
    let fee5 = pool.add(pay(&chain, 1, 1, 5, 0), chain.ledger()).unwrap();
    let fee3 = pool.add(pay(&chain, 2, 1, 3, 0), chain.ledger()).unwrap();
    let fee7 = pool.add(pay(&chain, 3, 1, 7, 0), chain.ledger()).unwrap();
    // Fee 4 evicts fee 3.
    let fee4 = pool.add(pay(&chain, 4, 1, 4, 0), chain.ledger()).unwrap();
    assert_eq!(pool.len(), 3);
    assert!(!pool.contains(&fee3));
    for id in [fee5, fee7, fee4] {
        assert!(pool.contains(&id));
    }
    // Fee 4 (not above the lowest) and fee 2 are refused.
    for fee in [2, 4] {
        assert_eq!(
            pool.add(pay(&chain, 5, 1, fee, 0), chain.ledger()),
            Err(MempoolError::Full { min_fee: 4 })
        );
    }
    assert_eq!(pool.len(), 3);
    assert!(pool.contains(&fee4));
    // Among equal lowest fees the newest goes first.
    let mut pool = limited(&chain, 2, usize::MAX);
    let old = pool.add(pay(&chain, 1, 1, 3, 0), chain.ledger()).unwrap();
    let new = pool.add(pay(&chain, 2, 1, 3, 0), chain.ledger()).unwrap();
    pool.add(pay(&chain, 3, 1, 9, 0), chain.ledger()).unwrap();
    assert!(pool.contains(&old) && !pool.contains(&new));
}

#[test]
fn the_byte_bound_evicts_the_lowest_fee_or_refuses_the_newcomer() {
    let chain = funded(1..=4);
    let mut pool = limited(&chain, 1000, 2 * TRANSFER_LEN + TRANSFER_LEN / 2);
    let fee5 = pool.add(pay(&chain, 1, 1, 5, 0), chain.ledger()).unwrap();
    let fee3 = pool.add(pay(&chain, 2, 1, 3, 0), chain.ledger()).unwrap();
    assert_eq!(pool.bytes(), 2 * TRANSFER_LEN);
    assert_eq!(
        pool.add(pay(&chain, 3, 1, 3, 0), chain.ledger()),
        Err(MempoolError::Full { min_fee: 3 })
    );
    let fee4 = pool.add(pay(&chain, 4, 1, 4, 0), chain.ledger()).unwrap();
    assert_eq!(pool.len(), 2);
    assert!(pool.contains(&fee5) && pool.contains(&fee4) && !pool.contains(&fee3));
    assert!(pool.bytes() <= 2 * TRANSFER_LEN + TRANSFER_LEN / 2);
}

#[test]
fn eviction_takes_queue_ends_so_no_sender_is_left_with_a_gap() {
    let chain = funded(1..=4);
    let mut pool = limited(&chain, 3, usize::MAX);
    let a0 = pool.add(pay(&chain, 1, 1, 1, 0), chain.ledger()).unwrap();
    let a1 = pool.add(pay(&chain, 1, 1, 10, 1), chain.ledger()).unwrap();
    let b0 = pool.add(pay(&chain, 2, 1, 3, 0), chain.ledger()).unwrap();
    // a0 pays least but a1 depends on it: the lowest queue end is b0 (3).
    assert_eq!(
        pool.add(pay(&chain, 3, 1, 2, 0), chain.ledger()),
        Err(MempoolError::Full { min_fee: 3 })
    );
    let c0 = pool.add(pay(&chain, 3, 1, 4, 0), chain.ledger()).unwrap();
    assert!(pool.contains(&a0) && pool.contains(&a1) && pool.contains(&c0));
    assert!(!pool.contains(&b0));
    let picked = select_all(&pool, chain.ledger());
    assert_eq!(picked.len(), 3);
    // A sender never evicts its own queue: a full pool refuses it.
    let mut pool = limited(&chain, 2, usize::MAX);
    pool.add(pay(&chain, 1, 1, 1, 0), chain.ledger()).unwrap();
    pool.add(pay(&chain, 1, 1, 1, 1), chain.ledger()).unwrap();
    assert_eq!(
        pool.add(pay(&chain, 1, 1, 50, 2), chain.ledger()),
        Err(MempoolError::Full { min_fee: u64::MAX })
    );
}

// ---------------------------------------------------------------------------------------------
// Following the chain.

#[test]
fn equal_fees_keep_their_arrival_order_across_a_change_of_the_best_chain() {
    let mut chain = funded(1..=6);
    let mut pool = pool_for(&chain);
    // Arrival order unlike address order, so that re-inserting in address order would show.
    let mut order: Vec<u64> = (1..=5).collect();
    order.sort_by_key(|s| std::cmp::Reverse(addr(*s)));
    for s in &order {
        pool.add(pay(&chain, *s, 1, 7, 0), chain.ledger()).unwrap();
    }
    let arrival: Vec<_> = order.iter().map(|s| addr(*s)).collect();
    let before: Vec<_> = pool.by_fee().iter().map(|(_, t)| t.from).collect();
    assert_eq!(before, arrival);
    // A new best block that includes none of them.
    let other = pay(&chain, 6, 1, 1, 0);
    let block = next_block(&chain, &[other], addr(9));
    let r = chain.process_block(Arc::new(block), NOW).unwrap();
    let stats = pool.resync(&r.tip_change.unwrap(), chain.ledger());
    assert_eq!((stats.included, stats.dropped), (0, 0));
    let after: Vec<_> = pool.by_fee().iter().map(|(_, t)| t.from).collect();
    assert_eq!(after, arrival, "mempool order after the tip change");
    let picked: Vec<_> = select_all(&pool, chain.ledger())
        .iter()
        .map(|t| t.from)
        .collect();
    assert_eq!(picked, arrival, "template order after the tip change");
}

#[test]
fn transfers_included_in_a_new_best_block_leave_after_resync() {
    let mut chain = funded([1, 2, 3]);
    let mut pool = pool_for(&chain);
    let a0 = pay(&chain, 1, 10, 1, 0);
    let a1 = pay(&chain, 1, 10, 1, 1);
    let b0 = pay(&chain, 2, 10, 2, 0);
    let c0 = pay(&chain, 3, 10, 3, 0);
    for t in [a0, a1, b0, c0] {
        pool.add(t, chain.ledger()).unwrap();
    }
    // The block holds a0 and b0, and a transfer of addr(3) the pool never saw, which takes
    // c0's nonce.
    let c0_other = Transfer::sign(&key(3), &chain.chain_id(), addr(5), 1, 0, 0);
    let block = next_block(&chain, &[a0, b0, c0_other], addr(9));
    let r = chain.process_block(Arc::new(block), NOW).unwrap();
    let stats = pool.resync(&r.tip_change.unwrap(), chain.ledger());
    assert_eq!(
        (stats.included, stats.returned.len(), stats.dropped),
        (2, 0, 1)
    );
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&txid(&a1)));
    // a1 is now next for addr(1).
    assert_eq!(select_all(&pool, chain.ledger()), vec![a1]);
    assert_eq!(pool.next_nonce(&addr(1), chain.ledger()), 2);
    assert_eq!(pool.next_nonce(&addr(3), chain.ledger()), 1);
}

#[test]
fn a_template_from_the_pool_is_accepted() {
    let mut chain = funded(1..=4);
    let now = HOUR_AFTER_GENESIS;
    let mut pool = pool_for(&chain);
    let mut fees = 0;
    for s in 1..=4 {
        for n in 0..3 {
            let t = pay(&chain, s, 5, s + n, n);
            fees += t.fee;
            pool.add(t, chain.ledger()).unwrap();
        }
    }
    // A transfer waiting for nonces 3 and 4 is left out.
    pool.add(pay(&chain, 1, 1, 1, 5), chain.ledger()).unwrap();
    let (block, stats) = mine_template(&mut chain, &mut pool, addr(20), now);
    assert_eq!(block.header.timestamp, now);
    assert_eq!(block.txs.len(), 13);
    assert_eq!(stats.included, 12);
    assert_eq!(pool.len(), 1);
    assert_eq!(chain.ledger().account(&addr(20)).balance, REWARD + fees);
    assert_eq!(chain.ledger().account(&addr(99)).balance, 12 * 5);
    for s in 1..=4 {
        assert_eq!(chain.ledger().account(&addr(s)).nonce, 3);
    }
    // An empty pool gives a coinbase-only block, also accepted.
    let mut empty = pool_for(&chain);
    let (block, _) = mine_template(&mut chain, &mut empty, addr(20), now + 1);
    assert_eq!(block.txs.len(), 1);
}

#[test]
fn a_template_respects_the_block_limits_and_takes_the_highest_fees() {
    let params = ChainParams {
        max_block_txs: 4,
        ..testkit::params()
    };
    let mut chain = funded_with(params, 1..=6);
    let mut pool = pool_for(&chain);
    for s in 1..=6 {
        pool.add(pay(&chain, s, 1, s * 2, 0), chain.ledger())
            .unwrap();
    }
    let (block, stats) = mine_template(&mut chain, &mut pool, addr(20), HOUR_AFTER_GENESIS);
    let fees: Vec<_> = block.txs.iter().skip(1).map(|t| t.fee()).collect();
    assert_eq!(fees, vec![12, 10, 8]);
    assert_eq!(stats.included, 3);
    assert_eq!(pool.len(), 3);
}

#[test]
fn a_template_timestamp_follows_the_median_when_the_clock_is_behind() {
    let mut chain = funded(1..=3);
    let mut pool = pool_for(&chain);
    pool.add(pay(&chain, 1, 1, 1, 0), chain.ledger()).unwrap();
    let mtp = chain.median_time_past(&chain.tip());
    // The clock is behind the median (but within the allowed drift of it).
    let (block, _) = mine_template(&mut chain, &mut pool, addr(20), mtp - 5);
    assert_eq!(block.header.timestamp, mtp + 1);
}

/// One random pool operation: sender, nonce ahead of the chain's, amount, fee.
fn pool_op() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    (1u64..=4, 0u64..4, 0u64..60, 0u64..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever was added (some refused), the pool's selection respects nonce order and
    /// balances, prefers higher fees among what is available, and its template is a valid block
    /// that leaves the pool consistent with the new ledger.
    #[test]
    fn any_pool_gives_an_ordered_selection_and_a_valid_template(
        ops in prop::collection::vec(pool_op(), 1..30),
        max_txs in 1usize..12,
    ) {
        let mut chain = funded(1..=4);
        let mut pool = limited(&chain, 10, usize::MAX);
        for (s, ahead, amount, fee) in ops {
            let nonce = chain.ledger().account(&addr(s)).nonce + ahead;
            let _ = pool.add(pay(&chain, s, amount, fee, nonce), chain.ledger());
            prop_assert!(pool.len() <= 10);
        }
        // Every pending sender's spending is within its balance.
        for s in 1..=4 {
            prop_assert!(pool.pending_spend(&addr(s)) <= chain.ledger().account(&addr(s)).balance);
        }
        let ledger = chain.ledger().clone();
        let picked = pool.select(&ledger, max_txs, usize::MAX, REWARD);
        prop_assert!(picked.len() <= max_txs);
        let mut next: HashMap<Address, u64> = HashMap::new();
        let mut spent: HashMap<Address, u64> = HashMap::new();
        for (i, t) in picked.iter().enumerate() {
            prop_assert!(pool.contains(&txid(t)));
            let n = next.entry(t.from).or_insert(ledger.account(&t.from).nonce);
            prop_assert_eq!(t.nonce, *n, "predecessor missing");
            *n += 1;
            let s = spent.entry(t.from).or_default();
            *s += t.fee + t.amount;
            prop_assert!(*s <= ledger.account(&t.from).balance);
            // No transfer available at step i (its predecessor already picked, or on chain)
            // and paying more was passed over.
            for later in &picked[i + 1..] {
                let available = later.nonce == ledger.account(&later.from).nonce
                    || picked[..i].iter().any(|p| p.from == later.from && p.nonce + 1 == later.nonce);
                prop_assert!(!available || later.fee <= t.fee);
            }
        }
        // Pending transfers left out while there was room: each waits for a predecessor that
        // was not picked, or is a sender's next one and does not fit its balance.
        if picked.len() < max_txs {
            for (_, t) in pool.by_fee() {
                if picked.contains(&t) {
                    continue;
                }
                let head = next.get(&t.from).copied().unwrap_or(ledger.account(&t.from).nonce);
                prop_assert!(t.nonce >= head);
                if t.nonce == head {
                    let s = spent.get(&t.from).copied().unwrap_or(0);
                    prop_assert!(s + t.amount + t.fee > ledger.account(&t.from).balance);
                }
            }
        }
        let before = pool.len();
        let (block, stats) = mine_template(&mut chain, &mut pool, addr(20), HOUR_AFTER_GENESIS);
        prop_assert_eq!(stats.included, block.txs.len() - 1);
        prop_assert_eq!(stats.returned.len(), 0);
        prop_assert_eq!(pool.len() + stats.included + stats.dropped, before);
        // What remains is still admissible on the new ledger: re-adding it to a fresh pool
        // in nonce order succeeds.
        let mut fresh = pool_for(&chain);
        let mut rest: Vec<_> = pool.by_fee().into_iter().map(|(_, t)| t).collect();
        rest.sort_by_key(|t| (t.from, t.nonce));
        for t in rest {
            prop_assert!(fresh.add(t, chain.ledger()).is_ok());
        }
    }
}
