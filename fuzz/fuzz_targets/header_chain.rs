//! Header-chain checking on mutations of a valid run: the input's first byte picks the fork (a
//! chain holding genesis only, or one holding the run's first 10 blocks), whether mutated
//! headers are re-linked and re-mined (so the deeper rules are reached), and the clock; the
//! second where the run is split into two `extend` calls; the rest is XORed over the run's
//! 96-byte headers. `HeaderChain::extend` never panics, and it agrees header by header with a
//! plain reading of the rules: every header it appends passes them, and the one it stops at
//! breaks one.
#![no_main]

use gossipchain::chain::block::HEADER_LEN;
use gossipchain::chain::retarget::ParentInfo;
use gossipchain::chain::target::Target;
use gossipchain::chain::validate;
use gossipchain::chain::{Address, BlockHash, ChainState, Header, HeaderChain, HeaderError};
use gossipchain::testkit;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Headers in the run.
const RUN: u64 = 30;
/// Blocks the second fork's chain holds.
const FORK: u64 = 10;

/// A valid run of 30 headers, a chain at genesis and one holding the run's first 10 blocks.
fn base() -> &'static (Vec<Header>, ChainState, ChainState) {
    static BASE: OnceLock<(Vec<Header>, ChainState, ChainState)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut full = ChainState::new(testkit::params());
        testkit::extend(&mut full, RUN as usize, Address([1; 32]));
        let headers = (1..=RUN)
            .map(|h| full.block_at(h).unwrap().header)
            .collect();
        let mut forked = ChainState::new(testkit::params());
        for h in 1..=FORK {
            forked
                .process_block(full.block_at(h).unwrap(), testkit::NOW)
                .unwrap();
        }
        (headers, ChainState::new(testkit::params()), forked)
    })
}

/// The rules read plainly: `ctx` holds (height, timestamp, hash) of every block from genesis
/// to the parent.
fn oracle(
    chain: &ChainState,
    ctx: &[(u64, u64, BlockHash)],
    header: &Header,
    now: u64,
) -> Result<(), String> {
    let params = chain.params();
    let &(height, timestamp, hash) = ctx.last().unwrap();
    if header.prev_hash != hash {
        return Err("does not connect".into());
    }
    validate::check_header(header, params).map_err(|e| e.to_string())?;
    let parent = ParentInfo {
        height,
        timestamp,
        anchor_time: if height == 0 { 0 } else { ctx[1].1 },
    };
    let span = params.median_time_span as usize;
    let mut times: Vec<u64> = ctx[ctx.len().saturating_sub(span)..]
        .iter()
        .map(|c| c.1)
        .collect();
    let mtp = validate::median(&mut times);
    validate::check_context(header, &parent, mtp, now, params).map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let [flags, split, patch @ ..] = data else {
        return;
    };
    let (valid, at_genesis, forked) = base();
    let (chain, skip) = if flags & 1 != 0 {
        (forked, FORK as usize)
    } else {
        (at_genesis, 0)
    };
    let mut bytes: Vec<u8> = valid[skip..].iter().flat_map(|h| h.encode()).collect();
    for (b, p) in bytes.iter_mut().zip(patch) {
        *b ^= p;
    }
    let mut headers: Vec<Header> = bytes
        .chunks(HEADER_LEN)
        .map(|c| Header::decode(c).expect("96 bytes"))
        .collect();
    if flags & 2 != 0 {
        // Re-link and re-mine, keeping the chain's bits so that proof of work can be met.
        let mut prev = chain.tip();
        for h in &mut headers {
            h.prev_hash = prev;
            // A mutated target may take far more hashes than a fuzz run can spend (a search
            // of 2^40 never ends here): past about 4 096 expected hashes, the chain's own.
            let too_hard = Target::from_compact(h.bits)
                .map_or(true, |t| t.work().saturating_u128() > 4096);
            if flags & 8 != 0 || too_hard {
                h.bits = chain.params().genesis_bits();
            }
            testkit::mine_header(h);
            prev = h.compute_hash();
        }
    }
    let now = if flags & 4 != 0 {
        valid[RUN as usize / 2].timestamp
    } else {
        testkit::NOW
    };

    let mut run = HeaderChain::new(chain, chain.tip()).expect("the tip is in the index");
    let cut = (*split as usize).min(headers.len());
    let first = run.extend(chain.params(), &headers[..cut], now);
    let result = match first {
        Ok(n) => {
            assert_eq!(n, cut);
            run.extend(chain.params(), &headers[cut..], now)
                .map(|m| n + m)
        }
        Err(e) => Err(e),
    };
    let appended = run.len();
    match &result {
        Ok(n) => assert_eq!((*n, appended), (headers.len(), headers.len())),
        Err(HeaderError::DoesNotConnect { hash, .. } | HeaderError::Invalid { hash, .. }) => {
            assert_eq!(*hash, headers[appended].compute_hash())
        }
    }

    // Every appended header passes the rules read plainly, and the one refused breaks one.
    let mut ctx: Vec<(u64, u64, BlockHash)> = (0..=chain.height())
        .map(|h| {
            let r = chain.header_at(h).unwrap();
            (r.height, r.timestamp, r.hash)
        })
        .collect();
    let mut work = chain.tip_chainwork();
    for (i, header) in headers.iter().enumerate().take(appended + 1) {
        let verdict = oracle(chain, &ctx, header, now);
        if i == appended {
            if result.is_err() {
                assert!(verdict.is_err(), "header {i} refused but valid");
            }
            break;
        }
        assert_eq!(verdict, Ok(()), "header {i} appended but invalid");
        let checked = run.get(header.height).expect("appended");
        assert_eq!(checked.header, *header);
        work = work.saturating_add(Target::from_compact(header.bits).unwrap().work());
        assert_eq!(checked.work, work);
        ctx.push((header.height, header.timestamp, checked.hash));
    }
    assert_eq!(run.work(), work);
});
