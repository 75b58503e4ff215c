//! Headers-first download, the CPU side: 100 000 headers served, carried and checked.
//!
//! Builds a 100 000-block chain (fixed difficulty, 8 bits, one coinbase a block) straight into a
//! store in a temporary directory and loads it as a node does at start (no body in memory: every
//! header is read from the store's body file, 96 bytes each). Then, per round:
//!
//! - serve: `sync::serve::headers_after` for 50 pages of 2 000 headers (each page after the
//!   last header of the one before, as a downloading peer asks), each header encoded as the
//!   `Headers` response carries it;
//! - CBOR: each page encoded as the `Headers` response and decoded back (what libp2p's CBOR
//!   codec does on either side), then each 96-byte header decoded;
//! - check: `HeaderChain::extend` over all 100 000 from a chain at genesis, page by page (link,
//!   proof of work, bits, median time past, clock: one SHA-256 a header and a median of 11).
//!
//! Prints headers/s of each step and the total against the 5 s target of the issue (100 000
//! headers fetched and checked; loopback adds the transfer of about 9.8 MB, a few ms), the
//! memory a run of 100 000 checked headers holds, the CPU model and the SHA-256 backend.
//!
//! `cargo bench --bench headers`

mod common;

use common::{Stats, cpu_model, load_average, rss_kb, sha_extensions};
use gossipchain::chain::tree::TreeLimits;
use gossipchain::chain::{
    Address, Block, BlockHash, ChainParams, ChainState, CheckedBlock, Coinbase, Header,
    HeaderChain, Transaction,
};
use gossipchain::net::protocol::{self, Bytes, Response};
use gossipchain::store::Store;
use gossipchain::sync::serve::headers_after;
use gossipchain::testkit;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// Blocks of the chain.
const BLOCKS: u64 = 100_000;
/// Headers a page (the protocol's most).
const PAGE: u32 = protocol::MAX_HEADERS_PER_RESPONSE;
/// Blocks a store commit while building.
const BATCH: u64 = 20_000;
/// Rounds; the median is reported with the range.
const ROUNDS: usize = 5;
/// The target for fetching and checking 100 000 headers, seconds.
const TARGET_SECS: f64 = 5.0;

/// Writes `BLOCKS` blocks after genesis into `store`.
fn build(store: &Store, params: &ChainParams) {
    let miner = Address([7; 32]);
    let mut parent = params.genesis().header;
    while parent.height < BLOCKS {
        let end = (parent.height + BATCH).min(BLOCKS);
        let mut batch = Vec::with_capacity((end - parent.height) as usize);
        while parent.height < end {
            let height = parent.height + 1;
            let mut block = Block {
                header: Header {
                    version: 1,
                    height,
                    prev_hash: parent.compute_hash(),
                    tx_root: Default::default(),
                    timestamp: parent.timestamp + 1000,
                    bits: params.genesis_bits(),
                    nonce: 0,
                },
                txs: vec![Transaction::Coinbase(Coinbase {
                    height,
                    to: miner,
                    amount: params.block_reward,
                })],
            };
            testkit::seal(&mut block);
            parent = block.header;
            let hash = block.compute_hash();
            let checked =
                CheckedBlock::check(Arc::new(block), hash, None, params).expect("a valid block");
            batch.push(Arc::new(checked));
        }
        let tip = batch.last().expect("a block").key();
        store.commit(&batch, &[], tip).expect("commit");
    }
}

/// The pages a downloading peer receives: each asked after the last header of the one before.
fn serve(chain: &ChainState) -> Vec<Vec<Bytes>> {
    let mut pages = Vec::new();
    let mut after: BlockHash = chain.chain_id();
    loop {
        let headers = headers_after(chain, &[after], PAGE).expect("on our chain");
        let Some(last) = headers.last() else {
            break;
        };
        after = last.compute_hash();
        pages.push(headers.iter().map(|h| Bytes(h.encode().to_vec())).collect());
    }
    pages
}

fn main() {
    let params = testkit::params();
    println!("gossipchain headers benchmark");
    println!(
        "CPU: {}; cores: {}; SHA-256 (sha2 crate) on x86 SHA extensions: {}; {}; load average \
         at start: {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        sha_extensions(),
        params.difficulty,
        load_average()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let store = Store::open(&dir.path().join("chain.redb"), &params).expect("store");
    build(&store, &params);
    let chain = store.load_chain(TreeLimits::default()).expect("load");
    assert_eq!(chain.height(), BLOCKS);
    assert_eq!(chain.bodies_in_memory(), 0);
    println!(
        "built and loaded a {BLOCKS}-block store in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let genesis_only = ChainState::new(params.clone());

    let (mut serve_s, mut cbor_s, mut check_s, mut total_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut held_kb = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let pages = serve(&chain);
        let served = t.elapsed().as_secs_f64();
        assert_eq!(pages.len() as u64, BLOCKS / u64::from(PAGE));

        let t = Instant::now();
        let mut received: Vec<Vec<Header>> = Vec::with_capacity(pages.len());
        for page in pages {
            let wire = cbor4ii::serde::to_vec(Vec::new(), &Response::Headers(page)).expect("cbor");
            let Response::Headers(page) =
                cbor4ii::serde::from_slice(black_box(&wire)).expect("cbor")
            else {
                panic!("a Headers response");
            };
            received.push(
                page.iter()
                    .map(|b| Header::decode(&b.0).expect("96 bytes"))
                    .collect(),
            );
        }
        let carried = t.elapsed().as_secs_f64();

        let rss0 = rss_kb("self");
        let t = Instant::now();
        let mut run = HeaderChain::new(&genesis_only, genesis_only.chain_id()).expect("genesis");
        for page in &received {
            let n = run
                .extend(&params, page, testkit::NOW)
                .expect("a valid run");
            assert_eq!(n, page.len());
        }
        let checked = t.elapsed().as_secs_f64();
        assert_eq!(run.last_hash(), chain.tip());
        assert_eq!(run.work(), chain.tip_chainwork());
        if let (Some(a), Some(b)) = (rss0, rss_kb("self")) {
            held_kb.push(b.saturating_sub(a) as f64);
        }
        drop(black_box(run));

        serve_s.push(served);
        cbor_s.push(carried);
        check_s.push(checked);
        total_s.push(served + carried + checked);
    }

    let n = BLOCKS as f64;
    let line = |name: &str, s: &[f64]| {
        let st = Stats(s.to_vec());
        println!(
            "  {name:<44} {:>8.1} ms [{:.1}..{:.1}]  {:>10.0} headers/s",
            st.median() * 1e3,
            st.min() * 1e3,
            st.max() * 1e3,
            n / st.median()
        );
    };
    println!();
    println!(
        "{BLOCKS} headers, {} pages of {PAGE}; {ROUNDS} rounds, median [min..max]:",
        BLOCKS / u64::from(PAGE)
    );
    line("serve (headers_after, from the store)", &serve_s);
    line("CBOR encode + decode, header decode", &cbor_s);
    line("check (HeaderChain::extend)", &check_s);
    line("total", &total_s);
    let total = Stats(total_s).median();
    println!(
        "total {:.2} s against the target of {TARGET_SECS} s: {}",
        total,
        if total <= TARGET_SECS {
            "met"
        } else {
            "MISSED"
        }
    );
    if !held_kb.is_empty() {
        // The first round's: later ones reuse memory the allocator kept.
        let kb = Stats(held_kb).max();
        println!(
            "a run of {BLOCKS} checked headers holds about {:.1} MB ({:.0} bytes a header, RSS \
             growth while checking)",
            kb / 1024.0,
            kb * 1024.0 / n
        );
    }
    println!("load average at end: {}", load_average());
}
