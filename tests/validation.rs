//! One test (and where it helps, one property) per block validation rule. Every invalid block is
//! a valid block with one change, re-sealed unless the rule is the Merkle root or the proof of
//! work itself, and must be refused by `ChainState::process_block` with the rule's own
//! `ValidationError` variant, leave the chain untouched, and be refused again when resent.

mod chain_util;

use chain_util::{G, REWARD, addr, child_with_reward, not_a_key, txid};
use gossipchain::chain::block::{Block, Header};
use gossipchain::chain::pow::{Target, meets_target};

/// The compact target of the test chain (fixed difficulty, 8 leading zero bits).
fn bits8() -> u32 {
    testkit::params().genesis_bits()
}
use gossipchain::chain::tx::{SignatureError, TRANSFER_LEN};
use gossipchain::chain::{
    Address, BlockHash, ChainParams, ChainState, Coinbase, Ledger, Outcome, Transaction, Transfer,
    TxRoot, ValidationError,
};
use gossipchain::testkit::{self, NOW, key, mine_header, next_block, seal};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// What an invalid block must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tip: BlockHash,
    height: u64,
    work: u128,
    ledger: Ledger,
    blocks: usize,
    orphans: usize,
}

impl Snapshot {
    fn of(chain: &ChainState) -> Self {
        Self {
            tip: chain.tip(),
            height: chain.height(),
            work: chain.tip_work(),
            ledger: chain.ledger().clone(),
            blocks: chain.block_count(),
            orphans: chain.orphan_count(),
        }
    }
}

/// Processes `block` at `now`, expects `expected`, an unchanged chain, and the same refusal
/// when the block is sent again.
fn assert_rejected_at(chain: &mut ChainState, block: Block, now: u64, expected: &ValidationError) {
    let before = Snapshot::of(chain);
    let hash = block.compute_hash();
    let block = Arc::new(block);
    let err = chain
        .process_block(block.clone(), now)
        .expect_err("the changed block must be refused");
    assert_eq!(&err, expected);
    assert_eq!(
        Snapshot::of(chain),
        before,
        "an invalid block changed the chain"
    );
    assert!(!chain.contains(&hash));
    assert!(!chain.is_orphan(&hash));
    let again = chain
        .process_block(block, now)
        .expect_err("a resent invalid block must be refused again");
    assert_eq!(&again, expected);
    assert_eq!(Snapshot::of(chain), before);
}

fn assert_rejected(chain: &mut ChainState, block: Block, expected: &ValidationError) {
    assert_rejected_at(chain, block, NOW, expected);
}

/// Processes a block that must become the new tip.
fn assert_accepted_at(chain: &mut ChainState, block: Block, now: u64) {
    let hash = block.compute_hash();
    let r = chain
        .process_block(Arc::new(block), now)
        .expect("the block is valid");
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(chain.tip(), hash);
}

fn assert_accepted(chain: &mut ChainState, block: Block) {
    assert_accepted_at(chain, block, NOW);
}

/// A chain of three blocks (heights 1 and 2 pay addr(1), height 3 pays addr(2): balances 100
/// and 50), and a valid block at height 4 on its tip holding `t0` (1 -> 3, 30 + fee 2, nonce 0)
/// and `t1` (2 -> 4, 10 + fee 1, nonce 0), paying addr(9).
struct Fixture {
    chain: ChainState,
    base: Block,
    t0: Transfer,
    t1: Transfer,
}

fn fixture_with(params: ChainParams) -> Fixture {
    let mut chain = ChainState::new(params);
    for miner in [1, 1, 2] {
        let b = next_block(&chain, &[], addr(miner));
        assert_accepted(&mut chain, b);
    }
    let id = chain.chain_id();
    let t0 = Transfer::sign(&key(1), &id, addr(3), 30, 2, 0);
    let t1 = Transfer::sign(&key(2), &id, addr(4), 10, 1, 0);
    let base = next_block(&chain, &[t0, t1], addr(9));
    Fixture {
        chain,
        base,
        t0,
        t1,
    }
}

fn fixture() -> Fixture {
    fixture_with(testkit::params())
}

impl Fixture {
    /// The base block with one more transfer (addr(1)'s next, fee 0 so the coinbase amount
    /// stays right), re-sealed.
    fn with_extra_transfer(&self) -> Block {
        let extra = Transfer::sign(&key(1), &self.chain.chain_id(), addr(5), 1, 0, 1);
        resealed(&self.base, |b| b.txs.push(Transaction::Transfer(extra)))
    }

    /// Expects `bad` refused with `expected` (see [`assert_rejected`]), then the base block
    /// accepted: the refusal condemned nothing but `bad`.
    fn reject_then_accept_base(mut self, bad: Block, expected: &ValidationError) {
        assert_rejected(&mut self.chain, bad, expected);
        assert_accepted(&mut self.chain, self.base);
    }
}

/// A copy of `block` changed by `change`, then re-sealed (Merkle root and proof of work).
fn resealed(block: &Block, change: impl FnOnce(&mut Block)) -> Block {
    let mut b = block.clone();
    change(&mut b);
    seal(&mut b);
    b
}

fn coinbase_mut(block: &mut Block) -> &mut Coinbase {
    match &mut block.txs[0] {
        Transaction::Coinbase(c) => c,
        Transaction::Transfer(_) => panic!("the first transaction is the coinbase"),
    }
}

fn transfer_mut(block: &mut Block, i: usize) -> &mut Transfer {
    match &mut block.txs[i] {
        Transaction::Transfer(t) => t,
        Transaction::Coinbase(_) => panic!("transaction {i} is a transfer"),
    }
}

// ---------------------------------------------------------------------------------------------
// The valid starting points.

#[test]
fn the_fixture_block_is_valid_and_pays_everyone() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    assert_accepted(&mut chain, base);
    let l = chain.ledger();
    assert_eq!(l.account(&addr(1)).balance, 100 - 32);
    assert_eq!(l.account(&addr(1)).nonce, 1);
    assert_eq!(l.account(&addr(2)).balance, 50 - 11);
    assert_eq!(l.account(&addr(3)).balance, 30);
    assert_eq!(l.account(&addr(4)).balance, 10);
    assert_eq!(l.account(&addr(9)).balance, REWARD + 3);
    assert_eq!(l.total_supply(), 4 * REWARD);
}

#[test]
fn a_valid_block_with_many_transfers_is_accepted_with_exact_balances() {
    let mut chain = ChainState::new(testkit::params());
    for miner in 1..=4 {
        testkit::extend(&mut chain, 2, addr(miner));
    }
    let id = chain.chain_id();
    // Each of four senders (100 coins) sends 12 transfers of 5 + fee 1 to addr(20 + i % 5).
    let mut transfers = Vec::new();
    for nonce in 0..12 {
        for sender in 1..=4 {
            let to = addr(20 + (nonce + sender) % 5);
            transfers.push(Transfer::sign(&key(sender), &id, to, 5, 1, nonce));
        }
    }
    let block = next_block(&chain, &transfers, addr(30));
    assert_accepted(&mut chain, block);
    let l = chain.ledger();
    for sender in 1..=4 {
        assert_eq!(l.account(&addr(sender)).balance, 100 - 12 * 6);
        assert_eq!(l.account(&addr(sender)).nonce, 12);
    }
    let received: u64 = (20..25).map(|s| l.account(&addr(s)).balance).sum();
    assert_eq!(received, 48 * 5);
    for s in 20..25 {
        assert_eq!(l.account(&addr(s)).balance % 5, 0);
    }
    assert_eq!(l.account(&addr(30)).balance, REWARD + 48);
    assert_eq!(l.total_supply(), 9 * REWARD);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random affordable transfers from four funded senders, all in one block: accepted, and the
    /// ledger equals a simple model of balances and nonces.
    #[test]
    fn random_valid_transfers_give_the_modelled_ledger(
        txs in prop::collection::vec((1u64..=4, 0u64..6, 0u64..=40, 0u64..=5), 1..40),
    ) {
        let mut chain = ChainState::new(testkit::params());
        for miner in 1..=4 {
            testkit::extend(&mut chain, 1, addr(miner));
        }
        let id = chain.chain_id();
        let mut model: HashMap<Address, (u64, u64)> =
            (1..=4).map(|s| (addr(s), (REWARD, 0))).collect();
        let mut transfers = Vec::new();
        let mut fees = 0;
        for (sender, to, amount, fee) in txs {
            let (from, to) = (addr(sender), addr(to));
            let (balance, nonce) = model.get(&from).copied().unwrap_or_default();
            if amount + fee > balance {
                continue;
            }
            transfers.push(Transfer::sign(&key(sender), &id, to, amount, fee, nonce));
            model.insert(from, (balance - amount - fee, nonce + 1));
            model.entry(to).or_default().0 += amount;
            fees += fee;
        }
        let block = next_block(&chain, &transfers, addr(99));
        assert_accepted(&mut chain, block);
        model.entry(addr(99)).or_default().0 += REWARD + fees;
        for (a, (balance, nonce)) in &model {
            let acc = chain.ledger().account(a);
            prop_assert_eq!((acc.balance, acc.nonce), (*balance, *nonce));
        }
        prop_assert_eq!(chain.ledger().total_supply(), 5 * REWARD);
    }
}

// ---------------------------------------------------------------------------------------------
// Header rules.

#[test]
fn bad_version() {
    for version in [0, 2, u32::MAX] {
        let Fixture {
            mut chain, base, ..
        } = fixture();
        let bad = resealed(&base, |b| b.header.version = version);
        let expected = ValidationError::BadVersion(version);
        assert_rejected(&mut chain, bad.clone(), &expected);
        assert_eq!(chain.invalid_reason(&bad.compute_hash()), Some(&expected));
        assert_accepted(&mut chain, base);
    }
}

#[test]
fn wrong_bits() {
    for bits in [0, 7, 9, 12] {
        let f = fixture();
        let bad = resealed(&f.base, |b| b.header.bits = bits);
        let expected = ValidationError::WrongBits {
            expected: bits8(),
            got: bits,
        };
        f.reject_then_accept_base(bad, &expected);
    }
}

/// The first nonce from `from` whose hash misses the header's bits.
fn failing_nonce(header: &Header, from: u64) -> Header {
    let mut h = *header;
    h.nonce = from;
    let target = Target::from_compact(h.bits).expect("a valid target");
    while meets_target(&h.compute_hash(), &target) {
        h.nonce = h.nonce.wrapping_add(1);
    }
    h
}

#[test]
fn insufficient_work() {
    let f = fixture();
    let mut bad = f.base.clone();
    bad.header = failing_nonce(&f.base.header, f.base.header.nonce.wrapping_add(1));
    let expected = ValidationError::InsufficientWork {
        hash: bad.compute_hash(),
        bits: bits8(),
    };
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn header_only_errors_are_found_before_the_parent_is_needed() {
    // A block with bad work on an unknown parent is refused, not held as an orphan.
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let mut bad = base.clone();
    bad.header.prev_hash = BlockHash([0x42; 32]);
    bad.header = failing_nonce(&bad.header, 0);
    let expected = ValidationError::InsufficientWork {
        hash: bad.compute_hash(),
        bits: bits8(),
    };
    assert_rejected(&mut chain, bad, &expected);
    assert_eq!(chain.orphan_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_nonce_that_misses_the_target_is_insufficient_work(start in any::<u64>()) {
        let f = fixture();
        let mut bad = f.base.clone();
        bad.header = failing_nonce(&f.base.header, start);
        let expected = ValidationError::InsufficientWork { hash: bad.compute_hash(), bits: bits8() };
        f.reject_then_accept_base(bad, &expected);
    }

    #[test]
    fn any_version_but_one_is_refused(version in any::<u32>().prop_filter("not 1", |v| *v != 1)) {
        let Fixture { mut chain, base, .. } = fixture();
        let bad = resealed(&base, |b| b.header.version = version);
        assert_rejected(&mut chain, bad, &ValidationError::BadVersion(version));
    }

    /// Which header field is changed decides the rule that refuses the block.
    #[test]
    fn each_header_field_is_guarded_by_its_rule(field in 0usize..7, r in any::<u64>()) {
        let f = fixture();
        let mut bad = f.base.clone();
        let h = &mut bad.header;
        let expected = match field {
            0 => {
                h.version = 2 + (r as u32 % 1000);
                seal(&mut bad);
                ValidationError::BadVersion(bad.header.version)
            }
            1 => {
                // The coinbase still commits to the old height.
                h.height = 5 + r % 1000;
                seal(&mut bad);
                ValidationError::CoinbaseHeight { expected: bad.header.height, got: 4 }
            }
            2 => {
                // Another known block as parent: the height no longer follows it.
                let parent_height = r % 3;
                h.prev_hash = f.chain.hash_at(parent_height).unwrap();
                seal(&mut bad);
                ValidationError::BadHeight { expected: parent_height + 1, got: 4 }
            }
            3 => {
                h.tx_root = TxRoot([r as u8 | 1; 32]);
                mine_header(h);
                ValidationError::TxRootMismatch {
                    expected: f.base.compute_tx_root(),
                    got: bad.header.tx_root,
                }
            }
            4 => {
                // At or before the median (G + 2000) of the parent and its ancestors.
                h.timestamp = G + 2000 - r % 3000;
                seal(&mut bad);
                ValidationError::TimestampTooOld {
                    timestamp: bad.header.timestamp,
                    median: G + 2000,
                }
            }
            5 => {
                h.bits = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10][(r % 10) as usize];
                seal(&mut bad);
                ValidationError::WrongBits { expected: bits8(), got: bad.header.bits }
            }
            _ => {
                *h = failing_nonce(h, r);
                ValidationError::InsufficientWork { hash: bad.compute_hash(), bits: bits8() }
            }
        };
        f.reject_then_accept_base(bad, &expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Body structure.

/// Params with room for exactly the fixture block: a coinbase and two transfers.
fn tight_params() -> ChainParams {
    let base = fixture().base;
    ChainParams {
        max_block_bytes: base.encoded_len() as u32,
        max_block_txs: 3,
        ..testkit::params()
    }
}

#[test]
fn block_too_large() {
    let params = ChainParams {
        max_block_txs: 100,
        ..tight_params()
    };
    let max = params.max_block_bytes;
    let f = fixture_with(params);
    assert_eq!(
        f.base.encoded_len(),
        max as usize,
        "the base block is at the limit"
    );
    let bad = f.with_extra_transfer();
    let expected = ValidationError::BlockTooLarge {
        size: bad.encoded_len(),
        max,
    };
    assert_eq!(bad.encoded_len(), max as usize + TRANSFER_LEN);
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn too_many_transactions() {
    let params = ChainParams {
        max_block_bytes: 1_000_000,
        ..tight_params()
    };
    let f = fixture_with(params);
    let bad = f.with_extra_transfer();
    f.reject_then_accept_base(
        bad,
        &ValidationError::TooManyTransactions { count: 4, max: 3 },
    );
}

#[test]
fn missing_coinbase() {
    let changes: [fn(&mut Block); 3] = [
        |b| {
            b.txs.remove(0);
        },
        |b| b.txs.clear(),
        |b| b.txs.swap(0, 2),
    ];
    for change in changes {
        let f = fixture();
        let bad = resealed(&f.base, change);
        f.reject_then_accept_base(bad, &ValidationError::MissingCoinbase);
    }
}

#[test]
fn extra_coinbase() {
    for position in [1, 2, 3] {
        let f = fixture();
        let second = Transaction::Coinbase(Coinbase {
            height: 4,
            to: addr(8),
            amount: 0,
        });
        let bad = resealed(&f.base, |b| b.txs.insert(position, second));
        let expected = ValidationError::ExtraCoinbase {
            txid: second.compute_txid(),
        };
        f.reject_then_accept_base(bad, &expected);
    }
}

#[test]
fn coinbase_height() {
    for got in [0, 3, 5, u64::MAX] {
        let f = fixture();
        let bad = resealed(&f.base, |b| coinbase_mut(b).height = got);
        f.reject_then_accept_base(bad, &ValidationError::CoinbaseHeight { expected: 4, got });
    }
}

#[test]
fn duplicate_txid() {
    for (which, position) in [(0, 3), (1, 1), (1, 3)] {
        let f = fixture();
        let dup = [f.t0, f.t1][which];
        let bad = resealed(&f.base, |b| {
            b.txs.insert(position, Transaction::Transfer(dup))
        });
        f.reject_then_accept_base(bad, &ValidationError::DuplicateTxid(txid(&dup)));
    }
}

#[test]
fn tx_root_mismatch_in_the_header() {
    let f = fixture();
    let mut bad = f.base.clone();
    bad.header.tx_root = TxRoot([7; 32]);
    mine_header(&mut bad.header);
    let expected = ValidationError::TxRootMismatch {
        expected: f.base.compute_tx_root(),
        got: TxRoot([7; 32]),
    };
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn tx_root_mismatch_from_a_changed_body_does_not_condemn_the_real_block() {
    // The same header (same hash, valid work) with the transfers swapped: the body is not the
    // one the header commits to. The real block must still be accepted afterwards.
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let mut bad = base.clone();
    bad.txs.swap(1, 2);
    assert_eq!(bad.compute_hash(), base.compute_hash());
    let expected = ValidationError::TxRootMismatch {
        expected: bad.compute_tx_root(),
        got: base.header.tx_root,
    };
    assert_rejected(&mut chain, bad, &expected);
    assert_eq!(chain.invalid_reason(&base.compute_hash()), None);
    assert_accepted(&mut chain, base);
}

#[test]
fn no_body_error_under_a_valid_header_condemns_the_real_block() {
    // A peer may relay a valid header with an altered body. Whatever rule the altered body
    // breaks, the hash names the real block, which must stay acceptable.
    type Change = fn(&mut Block, &Transfer);
    let changes: [(Change, ChainParams); 6] = [
        (
            |b, _| {
                b.txs.remove(0);
            },
            testkit::params(),
        ),
        (|b, _| b.txs.truncate(2), testkit::params()),
        (
            |b, t| b.txs.push(Transaction::Transfer(*t)),
            testkit::params(),
        ),
        (|b, _| coinbase_mut(b).height += 1, testkit::params()),
        (
            |b, _| {
                let cb = b.txs[0];
                b.txs.push(cb)
            },
            testkit::params(),
        ),
        (
            |b, t| b.txs.push(Transaction::Transfer(*t)),
            ChainParams {
                max_block_bytes: 1_000_000,
                ..tight_params()
            },
        ),
    ];
    for (change, params) in changes {
        let Fixture {
            mut chain,
            base,
            t0,
            ..
        } = fixture_with(params);
        let mut bad = base.clone();
        change(&mut bad, &t0);
        assert_eq!(bad.compute_hash(), base.compute_hash());
        let before = Snapshot::of(&chain);
        let err = chain
            .process_block(Arc::new(bad), NOW)
            .expect_err("the altered body is refused");
        assert_eq!(Snapshot::of(&chain), before);
        assert_eq!(chain.invalid_reason(&base.compute_hash()), None, "{err}");
        assert_accepted(&mut chain, base);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Reordering, dropping or repeating transfers and re-mining only the header (so the root
    /// is stale) is always a root mismatch.
    #[test]
    fn a_stale_root_is_a_mismatch(
        n in 2usize..8,
        op in 0u8..3,
        i in any::<prop::sample::Index>(),
    ) {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 2, addr(1));
        let id = chain.chain_id();
        let transfers: Vec<_> = (0..n as u64)
            .map(|k| Transfer::sign(&key(1), &id, addr(2), 1, 0, k))
            .collect();
        let base = next_block(&chain, &transfers, addr(3));
        let mut bad = base.clone();
        let k = 1 + i.index(n);
        match op {
            0 => bad.txs.swap(k, if k == n { 1 } else { k + 1 }),
            1 => {
                bad.txs.remove(k);
            }
            _ => bad.txs.insert(k, bad.txs[k]),
        }
        mine_header(&mut bad.header);
        let expected = if op == 2 {
            ValidationError::DuplicateTxid(bad.txs[k].compute_txid())
        } else {
            ValidationError::TxRootMismatch {
                expected: bad.compute_tx_root(),
                got: base.header.tx_root,
            }
        };
        assert_rejected(&mut chain, bad, &expected);
        assert_accepted(&mut chain, base);
    }
}

// ---------------------------------------------------------------------------------------------
// Rules that need the parent.

#[test]
fn invalid_ancestor() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    // `bad`: the base block paying one coin too many (a ledger rule, found when it would
    // become the tip), remembered as invalid.
    let bad = resealed(&base, |b| coinbase_mut(b).amount += 1);
    let bad_hash = bad.compute_hash();
    let expected = ValidationError::CoinbaseAmount {
        expected: REWARD + 3,
        got: REWARD + 4,
    };
    assert_rejected(&mut chain, bad, &expected);
    // A valid block at height 5 on the valid base, moved onto the invalid one.
    assert_accepted(&mut chain, base);
    let valid_child = next_block(&chain, &[], addr(7));
    let child = resealed(&valid_child, |b| b.header.prev_hash = bad_hash);
    let child_hash = child.compute_hash();
    assert_rejected(
        &mut chain,
        child.clone(),
        &ValidationError::InvalidAncestor(bad_hash),
    );
    assert_eq!(
        chain.invalid_reason(&child_hash),
        Some(&ValidationError::InvalidAncestor(bad_hash))
    );
    // Its own child is refused in turn, naming its parent.
    let grandchild = child_with_reward(&child, &[], addr(7), REWARD);
    assert_rejected(
        &mut chain,
        grandchild,
        &ValidationError::InvalidAncestor(child_hash),
    );
    assert_accepted(&mut chain, valid_child);
}

#[test]
fn bad_height() {
    for got in [0, 3, 5, 1000] {
        let f = fixture();
        // The block claims another height; its coinbase agrees, so only the context is wrong.
        let bad = resealed(&f.base, |b| {
            b.header.height = got;
            coinbase_mut(b).height = got;
        });
        f.reject_then_accept_base(bad, &ValidationError::BadHeight { expected: 4, got });
    }
}

#[test]
fn timestamp_too_old_with_few_ancestors() {
    // Parent at height 3: the median of G, G+1000, G+2000, G+3000 is G+2000.
    let Fixture {
        mut chain, base, ..
    } = fixture();
    assert_eq!(chain.median_time_past(&chain.tip()), G + 2000);
    for ts in [G + 2000, G + 1999, G, 0] {
        let bad = resealed(&base, |b| b.header.timestamp = ts);
        let expected = ValidationError::TimestampTooOld {
            timestamp: ts,
            median: G + 2000,
        };
        assert_rejected(&mut chain, bad, &expected);
    }
    // One millisecond after the median is enough, though before the parent's own timestamp.
    let ok = resealed(&base, |b| b.header.timestamp = G + 2001);
    assert_accepted(&mut chain, ok);
}

#[test]
fn timestamp_too_old_uses_the_previous_eleven_blocks() {
    let mut chain = ChainState::new(testkit::params());
    testkit::extend(&mut chain, 13, addr(1));
    // Heights 3..=13 (G+3000..G+13000): median G+8000. All 14 blocks would give G+7000.
    assert_eq!(chain.median_time_past(&chain.tip()), G + 8000);
    let base = next_block(&chain, &[], addr(2));
    let bad = resealed(&base, |b| b.header.timestamp = G + 8000);
    let expected = ValidationError::TimestampTooOld {
        timestamp: G + 8000,
        median: G + 8000,
    };
    assert_rejected(&mut chain, bad, &expected);
    let ok = resealed(&base, |b| b.header.timestamp = G + 8001);
    assert_accepted(&mut chain, ok);
}

#[test]
fn timestamp_too_new() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let ts = base.header.timestamp;
    let drift = chain.params().max_future_ms;
    assert_eq!(drift, 120_000);
    // The clock is one millisecond too far behind.
    let now = ts - drift - 1;
    assert_rejected_at(
        &mut chain,
        base.clone(),
        now,
        &ValidationError::TimestampTooNew {
            timestamp: ts,
            limit: ts - 1,
        },
    );
    // Not a permanent fault: not remembered, and accepted once the clock has caught up.
    assert_eq!(chain.invalid_reason(&base.compute_hash()), None);
    assert_accepted_at(&mut chain, base, now + 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A chain with random (valid) timestamps: a block is refused exactly when its timestamp is
    /// not after the median of the previous min(11, height + 1) timestamps.
    #[test]
    fn median_time_past_boundary(
        steps in prop::collection::vec(-20_000i64..20_000, 1..16),
        offset in -3i64..=3,
    ) {
        let mut chain = ChainState::new(testkit::params());
        let mut times = vec![G];
        let model_mtp = |times: &[u64]| {
            let mut last: Vec<u64> = times.iter().rev().take(11).copied().collect();
            last.sort_unstable();
            last[last.len() / 2]
        };
        for step in steps {
            let mtp = model_mtp(&times);
            let ts = (*times.last().unwrap() as i64 + step).max(mtp as i64 + 1) as u64;
            let b = resealed(&next_block(&chain, &[], addr(1)), |b| b.header.timestamp = ts);
            assert_accepted(&mut chain, b);
            times.push(ts);
        }
        let mtp = model_mtp(&times);
        prop_assert_eq!(chain.median_time_past(&chain.tip()), mtp);
        let b = resealed(&next_block(&chain, &[], addr(2)), |b| {
            b.header.timestamp = (mtp as i64 + offset) as u64;
        });
        if offset <= 0 {
            let expected = ValidationError::TimestampTooOld {
                timestamp: b.header.timestamp,
                median: mtp,
            };
            assert_rejected(&mut chain, b, &expected);
        } else {
            assert_accepted(&mut chain, b);
        }
    }

    /// A block is refused exactly when its timestamp is more than 2 minutes ahead of `now_ms`.
    #[test]
    fn future_drift_boundary(behind in 0u64..240_000) {
        let Fixture { mut chain, base, .. } = fixture();
        let ts = base.header.timestamp;
        let now = ts - behind;
        if behind > 120_000 {
            let expected = ValidationError::TimestampTooNew { timestamp: ts, limit: now + 120_000 };
            assert_rejected_at(&mut chain, base, now, &expected);
        } else {
            assert_accepted_at(&mut chain, base, now);
        }
    }

    #[test]
    fn any_wrong_height_is_refused(got in any::<u64>().prop_filter("not 4", |h| *h != 4)) {
        let Fixture { mut chain, base, .. } = fixture();
        let bad = resealed(&base, |b| {
            b.header.height = got;
            coinbase_mut(b).height = got;
        });
        assert_rejected(&mut chain, bad, &ValidationError::BadHeight { expected: 4, got });
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures.

/// The refusal of `block` for its transaction `i`, whose signature does not verify.
fn bad_signature(block: &Block, i: usize) -> ValidationError {
    ValidationError::BadSignature {
        txid: block.txs[i].compute_txid(),
        reason: SignatureError::BadSignature,
    }
}

#[test]
fn bad_signature_flipped_bit() {
    let f = fixture();
    let bad = resealed(&f.base, |b| transfer_mut(b, 2).signature[10] ^= 0x01);
    let expected = bad_signature(&bad, 2);
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn bad_signature_changed_amount() {
    let f = fixture();
    // 30 -> 29 (still affordable, fee unchanged so the coinbase is right): only the signature
    // is wrong.
    let bad = resealed(&f.base, |b| transfer_mut(b, 1).amount = 29);
    let expected = bad_signature(&bad, 1);
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn bad_signature_sender_not_a_key() {
    let f = fixture();
    let bad = resealed(&f.base, |b| transfer_mut(b, 1).from = not_a_key());
    let expected = ValidationError::BadSignature {
        txid: bad.txs[1].compute_txid(),
        reason: SignatureError::BadPublicKey,
    };
    f.reject_then_accept_base(bad, &expected);
}

#[test]
fn bad_signature_for_another_chain() {
    let f = fixture();
    let other = ChainParams {
        genesis_message: "another chain".into(),
        ..testkit::params()
    };
    assert_ne!(other.chain_id(), f.chain.chain_id());
    let foreign = Transfer::sign(&key(1), &other.chain_id(), addr(3), 30, 2, 0);
    let bad = resealed(&f.base, |b| b.txs[1] = Transaction::Transfer(foreign));
    let expected = bad_signature(&bad, 1);
    f.reject_then_accept_base(bad, &expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_flipped_signature_bit_is_refused(which in 1usize..=2, bit in 0usize..512) {
        let f = fixture();
        let bad = resealed(&f.base, |b| {
            transfer_mut(b, which).signature[bit / 8] ^= 1 << (bit % 8);
        });
        let expected = bad_signature(&bad, which);
        f.reject_then_accept_base(bad, &expected);
    }

    /// Changing any signed field of a transfer after signing breaks its signature.
    #[test]
    fn any_changed_transfer_field_is_refused(field in 0usize..4, delta in 1u64..1000) {
        let f = fixture();
        let bad = resealed(&f.base, |b| {
            let t = transfer_mut(b, 2);
            match field {
                0 => t.to = addr(100 + delta),
                1 => t.amount = t.amount.wrapping_add(delta),
                2 => t.fee = t.fee.wrapping_add(delta),
                _ => t.nonce = t.nonce.wrapping_add(delta),
            }
        });
        let expected = bad_signature(&bad, 2);
        f.reject_then_accept_base(bad, &expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger rules (checked when the block would join the best chain).

#[test]
fn coinbase_amount_over_and_under() {
    for got in [REWARD + 4, REWARD + 2, REWARD, 0, u64::MAX] {
        let Fixture {
            mut chain, base, ..
        } = fixture();
        let bad = resealed(&base, |b| coinbase_mut(b).amount = got);
        let expected = ValidationError::CoinbaseAmount {
            expected: REWARD + 3,
            got,
        };
        assert_rejected(&mut chain, bad.clone(), &expected);
        assert_eq!(chain.invalid_reason(&bad.compute_hash()), Some(&expected));
        assert_accepted(&mut chain, base);
    }
}

#[test]
fn bad_nonce_replay_of_a_mined_transfer() {
    let Fixture {
        mut chain,
        base,
        t0,
        ..
    } = fixture();
    assert_accepted(&mut chain, base);
    // The next block, valid with a fresh transfer of addr(1) (nonce 1), replays t0 instead.
    let fresh = Transfer::sign(&key(1), &chain.chain_id(), addr(3), 30, 2, 1);
    let valid = next_block(&chain, &[fresh], addr(9));
    let bad = resealed(&valid, |b| b.txs[1] = Transaction::Transfer(t0));
    let expected = ValidationError::BadNonce {
        txid: txid(&t0),
        expected: 1,
        got: 0,
    };
    assert_rejected(&mut chain, bad, &expected);
    assert_accepted(&mut chain, valid);
}

#[test]
fn bad_nonce_future_and_out_of_order() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let id = chain.chain_id();
    // A future nonce in place of t0.
    let future = Transfer::sign(&key(1), &id, addr(3), 30, 2, 1);
    let bad = resealed(&base, |b| b.txs[1] = Transaction::Transfer(future));
    let expected = ValidationError::BadNonce {
        txid: txid(&future),
        expected: 0,
        got: 1,
    };
    assert_rejected(&mut chain, bad, &expected);
    // Nonces 1 then 0 from the same sender: the first is early.
    let second = Transfer::sign(&key(1), &id, addr(3), 1, 0, 1);
    let bad = resealed(&base, |b| b.txs.insert(1, Transaction::Transfer(second)));
    let expected = ValidationError::BadNonce {
        txid: txid(&second),
        expected: 0,
        got: 1,
    };
    assert_rejected(&mut chain, bad, &expected);
    // In order, the same two transfers are fine.
    let good = resealed(&base, |b| b.txs.insert(2, Transaction::Transfer(second)));
    assert_accepted(&mut chain, good);
    assert_eq!(chain.ledger().account(&addr(1)).nonce, 2);
}

#[test]
fn insufficient_balance_single_and_cumulative() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let id = chain.chain_id();
    // addr(1) holds 100: 99 + fee 2 is one too many (fee 2 as in t0, so the coinbase is right).
    let over = Transfer::sign(&key(1), &id, addr(3), 99, 2, 0);
    let bad = resealed(&base, |b| b.txs[1] = Transaction::Transfer(over));
    let expected = ValidationError::InsufficientBalance {
        txid: txid(&over),
        balance: 100,
        needed: 101,
    };
    assert_rejected(&mut chain, bad, &expected);
    // t0 (32) then a second transfer of 69: 100 - 32 = 68 left.
    let second = Transfer::sign(&key(1), &id, addr(5), 69, 0, 1);
    let bad = resealed(&base, |b| b.txs.push(Transaction::Transfer(second)));
    let expected = ValidationError::InsufficientBalance {
        txid: txid(&second),
        balance: 68,
        needed: 69,
    };
    assert_rejected(&mut chain, bad, &expected);
    // 68 is exactly the rest.
    let rest = Transfer::sign(&key(1), &id, addr(5), 68, 0, 1);
    let good = resealed(&base, |b| b.txs.push(Transaction::Transfer(rest)));
    assert_accepted(&mut chain, good);
    assert_eq!(chain.ledger().account(&addr(1)).balance, 0);
}

#[test]
fn funds_received_earlier_in_a_block_are_spendable_but_its_coinbase_is_not() {
    let Fixture {
        mut chain, base, ..
    } = fixture();
    let id = chain.chain_id();
    // addr(3) receives 30 from t0 and passes 25 + fee 5 on in the same block.
    let onward = Transfer::sign(&key(3), &id, addr(5), 25, 0, 0);
    let good = resealed(&base, |b| b.txs.push(Transaction::Transfer(onward)));
    // The miner addr(9) cannot spend the coinbase of the block that pays it.
    let from_coinbase = Transfer::sign(&key(9), &id, addr(5), 1, 0, 0);
    let bad = resealed(&base, |b| b.txs.push(Transaction::Transfer(from_coinbase)));
    let expected = ValidationError::InsufficientBalance {
        txid: txid(&from_coinbase),
        balance: 0,
        needed: 1,
    };
    assert_rejected(&mut chain, bad, &expected);
    assert_accepted(&mut chain, good);
    assert_eq!(chain.ledger().account(&addr(3)).balance, 5);
    assert_eq!(chain.ledger().account(&addr(5)).balance, 25);
}

#[test]
fn amount_plus_fee_overflow() {
    let f = fixture();
    // Fee 2 as t0, so the coinbase stays right; amount + fee overflows.
    let huge = Transfer::sign(&key(1), &f.chain.chain_id(), addr(3), u64::MAX - 1, 2, 0);
    let bad = resealed(&f.base, |b| b.txs[1] = Transaction::Transfer(huge));
    f.reject_then_accept_base(bad, &ValidationError::AmountOverflow { txid: txid(&huge) });
}

/// A chain whose reward is half of u64's range: addr(1) and addr(2) each mined one block.
fn rich_chain() -> (ChainState, u64) {
    let reward = 1u64 << 63;
    let mut chain = ChainState::new(ChainParams {
        block_reward: reward,
        ..testkit::params()
    });
    for miner in [1, 2] {
        let b = next_block(&chain, &[], addr(miner));
        assert_accepted(&mut chain, b);
    }
    (chain, reward)
}

#[test]
fn recipient_balance_overflow() {
    let (mut chain, reward) = rich_chain();
    let id = chain.chain_id();
    // addr(1) pays addr(2) a coin less than its balance: fine. All of it would overflow addr(2).
    let fits = Transfer::sign(&key(1), &id, addr(2), reward - 1, 0, 0);
    let overflows = Transfer::sign(&key(1), &id, addr(2), reward, 0, 0);
    let tip = chain.block(&chain.tip()).unwrap().clone();
    let good = child_with_reward(&tip, &[fits], addr(3), reward);
    let bad = resealed(&good, |b| b.txs[1] = Transaction::Transfer(overflows));
    let expected = ValidationError::AmountOverflow {
        txid: txid(&overflows),
    };
    assert_rejected(&mut chain, bad, &expected);
    assert_accepted(&mut chain, good);
    assert_eq!(chain.ledger().account(&addr(2)).balance, u64::MAX);
}

#[test]
fn fee_sum_and_coinbase_overflow() {
    let (mut chain, reward) = rich_chain();
    let id = chain.chain_id();
    let tip = chain.block(&chain.tip()).unwrap().clone();
    // Two fees of 2^62 sum fine, but reward + fees = 2^63 + 2^63 overflows: the coinbase's
    // txid is named.
    let a = Transfer::sign(&key(1), &id, addr(3), 0, 1 << 62, 0);
    let b = Transfer::sign(&key(2), &id, addr(3), 0, 1 << 62, 0);
    let bad = child_with_reward(&tip, &[a, b], addr(3), reward);
    let expected = ValidationError::AmountOverflow {
        txid: bad.txs[0].compute_txid(),
    };
    assert_rejected(&mut chain, bad, &expected);
    // Two fees of 2^63 overflow the fee sum itself, at the second transfer.
    let a = Transfer::sign(&key(1), &id, addr(3), 0, 1 << 63, 0);
    let b = Transfer::sign(&key(2), &id, addr(3), 0, 1 << 63, 0);
    let bad = child_with_reward(&tip, &[a, b], addr(3), reward);
    assert_rejected(
        &mut chain,
        bad,
        &ValidationError::AmountOverflow { txid: txid(&b) },
    );
    // A miner already holding 2^63 cannot be paid another 2^63.
    let bad = child_with_reward(&tip, &[], addr(1), reward);
    let expected = ValidationError::AmountOverflow {
        txid: bad.txs[0].compute_txid(),
    };
    assert_rejected(&mut chain, bad, &expected);
    let good = child_with_reward(&tip, &[], addr(3), reward);
    assert_accepted(&mut chain, good);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_wrong_coinbase_amount_is_refused(got in any::<u64>().prop_filter("not 53", |g| *g != 53)) {
        let f = fixture();
        let bad = resealed(&f.base, |b| coinbase_mut(b).amount = got);
        let expected = ValidationError::CoinbaseAmount { expected: REWARD + 3, got };
        f.reject_then_accept_base(bad, &expected);
    }

    /// A transfer of amount + fee from a 100-coin account: accepted exactly when affordable.
    #[test]
    fn spending_is_accepted_exactly_up_to_the_balance(amount in 0u64..=120, fee in 0u64..=20) {
        let Fixture { mut chain, base, .. } = fixture();
        let t = Transfer::sign(&key(1), &chain.chain_id(), addr(3), amount, fee, 0);
        let block = resealed(&base, |b| {
            b.txs[1] = Transaction::Transfer(t);
            coinbase_mut(b).amount = REWARD + fee + 1;
        });
        if amount + fee > 100 {
            let expected = ValidationError::InsufficientBalance {
                txid: txid(&t),
                balance: 100,
                needed: amount + fee,
            };
            assert_rejected(&mut chain, block, &expected);
        } else {
            assert_accepted(&mut chain, block);
            prop_assert_eq!(chain.ledger().account(&addr(1)).balance, 100 - amount - fee);
            prop_assert_eq!(chain.ledger().account(&addr(3)).balance, amount);
        }
    }

    #[test]
    fn any_nonce_but_the_next_is_refused(nonce in any::<u64>().prop_filter("not 0", |n| *n != 0)) {
        let f = fixture();
        let t = Transfer::sign(&key(1), &f.chain.chain_id(), addr(3), 30, 2, nonce);
        let bad = resealed(&f.base, |b| b.txs[1] = Transaction::Transfer(t));
        let expected = ValidationError::BadNonce { txid: txid(&t), expected: 0, got: nonce };
        f.reject_then_accept_base(bad, &expected);
    }

    #[test]
    fn any_overflowing_amount_plus_fee_is_refused(fee in 1u64..=u64::MAX, k in any::<u64>()) {
        let Fixture { mut chain, base, .. } = fixture();
        // amount in (u64::MAX - fee, u64::MAX]
        let amount = u64::MAX - (k % fee);
        let t = Transfer::sign(&key(1), &chain.chain_id(), addr(3), amount, fee, 0);
        let bad = resealed(&base, |b| {
            b.txs[1] = Transaction::Transfer(t);
            coinbase_mut(b).amount = REWARD.wrapping_add(fee).wrapping_add(1);
        });
        assert_rejected(&mut chain, bad, &ValidationError::AmountOverflow { txid: txid(&t) });
    }
}

// ---------------------------------------------------------------------------------------------
// Chain identity.

#[test]
fn blocks_of_a_chain_with_other_parameters_do_not_enter() {
    let ours = testkit::params();
    let variants = [
        ChainParams {
            genesis_message: "elsewhere".into(),
            ..ours.clone()
        },
        ChainParams {
            block_reward: 51,
            ..ours.clone()
        },
        ChainParams {
            max_block_txs: 4_999,
            ..ours.clone()
        },
        ChainParams {
            genesis_timestamp: G + 1,
            ..ours.clone()
        },
    ];
    for other in variants {
        let Fixture {
            mut chain, base, ..
        } = fixture();
        assert_ne!(other.chain_id(), chain.chain_id());
        let mut foreign_chain = ChainState::new(other);
        testkit::extend(&mut foreign_chain, 2, addr(1));
        let before = Snapshot::of(&chain);
        // Its first block names a genesis we do not have: it cannot connect (held as an
        // orphan at most), and the chain is unchanged.
        for h in 1..=2 {
            let b = foreign_chain.block_at(h).unwrap().clone();
            let r = chain
                .process_block(b, NOW)
                .expect("well formed, just foreign");
            assert!(matches!(r.outcome, Outcome::Orphan { .. }));
            assert!(r.tip_change.is_none());
        }
        assert_eq!(
            chain
                .process_block(foreign_chain.block_at(1).unwrap().clone(), NOW)
                .unwrap()
                .outcome,
            Outcome::AlreadyKnown
        );
        let orphans = before.orphans + 2;
        assert_eq!(Snapshot::of(&chain), Snapshot { orphans, ..before });
        assert_eq!(chain.ledger().account(&addr(1)).balance, 100);
        // A transfer signed for it fails the signature check here.
        let foreign = Transfer::sign(&key(1), &foreign_chain.chain_id(), addr(3), 30, 2, 0);
        let bad = resealed(&base, |b| b.txs[1] = Transaction::Transfer(foreign));
        let expected = bad_signature(&bad, 1);
        assert_rejected(&mut chain, bad, &expected);
        assert_accepted(&mut chain, base);
    }
}

#[test]
fn a_chain_with_other_difficulty_refuses_our_blocks_outright() {
    let Fixture { chain, base, .. } = fixture();
    let mut other = ChainState::new(ChainParams::with_bits(9));
    let ours = chain.block_at(1).unwrap().clone();
    assert_eq!(
        other.process_block(ours, NOW).unwrap_err(),
        ValidationError::WrongBits {
            expected: ChainParams::with_bits(9).genesis_bits(),
            got: bits8()
        }
    );
    assert_eq!(other.height(), 0);
    // And a block mined for our tip with the other chain's bits is refused here.
    let nine = ChainParams::with_bits(9).genesis_bits();
    let hard = resealed(&base, |b| b.header.bits = nine);
    let mut chain = chain;
    let expected = ValidationError::WrongBits {
        expected: bits8(),
        got: nine,
    };
    assert_rejected(&mut chain, hard, &expected);
}
