//! Validation benchmark: `cargo bench --bench validation`.
//!
//! Prints, in one run and side by side:
//! 1. full block validation (`ChainState::process_block`: header, body, context, signatures,
//!    ledger, tree bookkeeping) for blocks of 1, 100 and 1000 transfers from distinct funded
//!    senders, in blocks/s and transfers/s, with the time split by rule group;
//! 2. on the very messages of the 1000-transfer block: ed25519-dalek's `verify_strict` (the
//!    former consensus rule, the baseline) on pre-decompressed keys, on one core; ZIP 215 (the
//!    rule, ed25519-zebra) one at a time and `Transfer::verify` (what gossip admission calls);
//!    ZIP 215 batches of 1000 and of 100 on one thread; `sig::verify_on` on every core;
//! 3. the ratios: full validation and signature checking to raw single-core `verify_strict`,
//!    the batch gain alone (one thread), the core scaling alone (batches, all cores vs one);
//! 4. a full block (4 999 transfers) through `ChainState::process_block` with the signature
//!    cache cold (every signature verified) and warm (every transfer admitted to the mempool
//!    before, as on a node that relays: none verified again), side by side.
//!
//! Validation spreads a big block's signatures over the cores, so "CPU" figures are the CPU
//! time of the whole process (all threads), and the wall figures are what a node sees.
//!
//! `ChainState` is not `Clone`, so each timed `process_block` runs on a state rebuilt (untimed)
//! from the same two funding blocks with `load_trusted`. Every measurement is repeated in
//! interleaved rounds and the median reported, with the min and max beside it.

mod common;

use common::{Stats, cpu_delta, load_average, process_cpu_secs};
use ed25519_dalek::{Signature, VerifyingKey};
use gossipchain::chain::sig;
use gossipchain::chain::validate::{check_body, check_header, check_signatures};
use gossipchain::chain::{Address, Block, ChainParams, ChainState, Transfer};
use gossipchain::testkit::{NOW, extend, key, next_block};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Interleaved rounds.
const ROUNDS: usize = 5;
/// Wall time (setup included) of one measurement; at least [`MIN_ITERS`] iterations run.
const BUDGET: Duration = Duration::from_millis(400);
/// Fewest iterations of one measurement.
const MIN_ITERS: u32 = 5;
/// Block sizes measured, in transfers (plus the coinbase).
const SIZES: [usize; 3] = [1, 100, 1000];
/// Most transfers in a measured block: the number of funded senders.
const SENDERS: usize = 1000;
/// Transfers in a full block (the chain's 5 000 transactions, less the coinbase): five from
/// each funded sender, nonces 0 to 4.
const FULL: usize = 4_999;

/// Mean seconds per timed call: wall clock, and CPU time of this process, all threads (which
/// excludes the time other processes took the cores away; NaN without a CPU clock).
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Runs `setup` (untimed) then `timed` on its output until the budget is spent.
fn measure<S, T>(mut setup: impl FnMut() -> S, mut timed: impl FnMut(&mut S) -> T) -> Timing {
    let wall = Instant::now();
    let (mut spent, mut cpu) = (Duration::ZERO, 0.0);
    let mut iters = 0u32;
    while iters < MIN_ITERS || wall.elapsed() < BUDGET {
        let mut input = setup();
        let cpu0 = process_cpu_secs();
        let start = Instant::now();
        let out = timed(&mut input);
        spent += start.elapsed();
        cpu += cpu_delta(cpu0, process_cpu_secs());
        black_box(out);
        drop(input);
        iters += 1;
    }
    Timing {
        wall: spent.as_secs_f64() / f64::from(iters),
        cpu: cpu / f64::from(iters),
    }
}

/// A chain whose block 1 pays a rich key and whose block 2 gives each of [`SENDERS`] keys
/// coins, then one block per size on top of block 2 with transfers from distinct senders.
struct Setup {
    params: ChainParams,
    /// Blocks 1 and 2, replayed into every fresh state.
    base: Vec<Arc<Block>>,
    /// Height-3 blocks of `SIZES[i]` transfers.
    blocks: Vec<Arc<Block>>,
    /// A height-3 block of [`FULL`] transfers.
    full: Arc<Block>,
}

impl Setup {
    fn new() -> Self {
        // Difficulty 8 keeps building cheap; checking the proof of work is one hash at any
        // difficulty. A big reward funds every sender from one coinbase.
        let params = ChainParams {
            block_reward: 1 << 40,
            ..ChainParams::with_bits(8)
        };
        let miner = Address::of(&key(u64::MAX));
        let rich = key(0);
        let mut chain = ChainState::new(params.clone());
        extend(&mut chain, 1, Address::of(&rich));
        let chain_id = chain.chain_id();
        let funding: Vec<Transfer> = (1..=SENDERS as u64)
            .map(|i| Transfer::sign(&rich, &chain_id, Address::of(&key(i)), 1_000_000, 1, i - 1))
            .collect();
        let block2 = next_block(&chain, &funding, miner);
        chain
            .process_block(Arc::new(block2), NOW)
            .expect("funding block is valid");
        let base = vec![
            chain.block_at(1).expect("block 1").clone(),
            chain.block_at(2).expect("block 2").clone(),
        ];
        let blocks = SIZES
            .iter()
            .map(|&n| {
                let transfers: Vec<Transfer> = (1..=n as u64)
                    .map(|i| {
                        let to = Address::of(&key(100_000 + i));
                        Transfer::sign(&key(i), &chain_id, to, 1000 + i, 2, 0)
                    })
                    .collect();
                Arc::new(next_block(&chain, &transfers, miner))
            })
            .collect();
        let transfers: Vec<Transfer> = (0..FULL as u64)
            .map(|i| {
                let (sender, nonce) = (1 + i % SENDERS as u64, i / SENDERS as u64);
                let to = Address::of(&key(200_000 + i));
                Transfer::sign(&key(sender), &chain_id, to, 1000 + i, 2, nonce)
            })
            .collect();
        let full = Arc::new(next_block(&chain, &transfers, miner));
        Self {
            params,
            base,
            blocks,
            full,
        }
    }

    /// A state at block 2, ready to take any measured block.
    fn fresh(&self) -> ChainState {
        let mut state = ChainState::new(self.params.clone());
        for b in &self.base {
            state
                .load_trusted(b.clone())
                .expect("base blocks are valid");
        }
        state
    }
}

/// Time per call of each piece of validation for one block.
struct Pieces {
    total: Timing,
    header: Timing,
    body: Timing,
    signatures: Timing,
    ledger: Timing,
    /// `load_trusted`: every rule but the signatures, and the same bookkeeping.
    trusted: Timing,
}

fn validate_once(setup: &Setup, block: &Arc<Block>) -> Pieces {
    let total = measure(
        || setup.fresh(),
        |state| {
            let r = state
                .process_block(block.clone(), NOW)
                .expect("measured block is valid");
            assert!(r.tip_change.is_some(), "the block extends the tip");
            r
        },
    );
    let trusted = measure(
        || setup.fresh(),
        |state| {
            let r = state
                .load_trusted(block.clone())
                .expect("measured block is valid");
            assert!(r.tip_change.is_some(), "the block extends the tip");
            r
        },
    );
    let state = setup.fresh();
    let chain_id = state.chain_id();
    let params = &setup.params;
    let txids = check_body(block, params).expect("valid body");
    let header = measure(
        || (),
        |_| check_header(&block.header, params).expect("valid"),
    );
    let body = measure(|| (), |_| check_body(block, params).expect("valid"));
    let signatures = measure(
        || (),
        |_| check_signatures(block, &txids, &chain_id).expect("valid"),
    );
    let ledger = measure(
        || state.ledger().clone(),
        |ledger| ledger.apply_block(block, &txids, params).expect("valid"),
    );
    Pieces {
        total,
        header,
        body,
        signatures,
        ledger,
        trusted,
    }
}

/// A full block through `process_block` on a fresh state whose signature cache holds every
/// transfer (`warm`) or none: the time, and the signatures verified per call.
fn full_block(setup: &Setup, warm: bool) -> (Timing, u64) {
    let txids = setup.full.compute_txids();
    let mut verified = 0;
    let mut calls = 0;
    let t = measure(
        || {
            let state = setup.fresh();
            if warm {
                // What admission to the mempool left there.
                state.sig_cache().insert_all(&txids[1..]);
            }
            let before = state.sig_cache().verified();
            (state, before)
        },
        |(state, before)| {
            let r = state
                .process_block(setup.full.clone(), NOW)
                .expect("the full block is valid");
            assert!(r.tip_change.is_some(), "the block extends the tip");
            verified += state.sig_cache().verified() - *before;
            calls += 1;
            r
        },
    );
    (t, verified / calls)
}

/// The CPU model, from /proc/cpuinfo (Linux).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The raw material of the signature benchmarks: one message, key and signature per transfer.
struct Sigs {
    transfers: Vec<Transfer>,
    messages: Vec<Vec<u8>>,
    keys: Vec<VerifyingKey>,
    signatures: Vec<Signature>,
}

impl Sigs {
    fn of(block: &Block, chain_id: &gossipchain::chain::ChainId) -> Self {
        let transfers: Vec<Transfer> = block
            .txs
            .iter()
            .filter_map(|t| t.as_transfer().copied())
            .collect();
        Self {
            messages: transfers
                .iter()
                .map(|t| t.signing_bytes(chain_id).to_vec())
                .collect(),
            keys: transfers
                .iter()
                .map(|t| VerifyingKey::from_bytes(&t.from.0).expect("valid key"))
                .collect(),
            signatures: transfers
                .iter()
                .map(|t| Signature::from_bytes(&t.signature))
                .collect(),
            transfers,
        }
    }

    fn len(&self) -> usize {
        self.transfers.len()
    }

    /// The (key, signature, message) triples of the node's signature module.
    fn items(&self) -> Vec<sig::Item<'_>> {
        self.transfers
            .iter()
            .zip(&self.messages)
            .map(|(t, m)| (&t.from.0, &t.signature, m.as_slice()))
            .collect()
    }
}

/// Signatures/s of one signature-checking method over all of `sigs`: per wall second, per CPU
/// second.
fn sig_rate(sigs: &Sigs, mut check_all: impl FnMut(&Sigs)) -> (f64, f64) {
    let t = measure(|| (), |_| check_all(sigs));
    (sigs.len() as f64 / t.wall, sigs.len() as f64 / t.cpu)
}

/// Wall and CPU series of one measurement.
#[derive(Default)]
struct Series {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Series {
    fn push(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }
}

fn main() {
    println!("gossipchain validation benchmark");
    println!(
        "validation uses every core for big blocks; rounds: {ROUNDS} of ~{} ms per measurement (median [min..max]); load average at start: {}",
        BUDGET.as_millis(),
        load_average()
    );
    let built = Instant::now();
    let setup = Setup::new();
    let chain_id = setup.fresh().chain_id();
    let big = setup.blocks.last().expect("sizes");
    let sigs = Sigs::of(big, &chain_id);
    println!(
        "setup: {SENDERS} funded senders, measured blocks of {:?} transfers ({:?} bytes), built in {:.1} s",
        SIZES,
        setup
            .blocks
            .iter()
            .map(|b| b.encoded_len())
            .collect::<Vec<_>>(),
        built.elapsed().as_secs_f64()
    );
    println!();

    let mut pieces: Vec<Vec<Pieces>> = SIZES.iter().map(|_| Vec::new()).collect();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let cores = sig::cores();
    let (mut strict, mut zip215, mut transfer_verify, mut former_admission) = (
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
    );
    let (mut batch1000, mut batch100, mut all_cores) =
        (Series::default(), Series::default(), Series::default());
    for _ in 0..ROUNDS {
        for (i, block) in setup.blocks.iter().enumerate() {
            pieces[i].push(validate_once(&setup, block));
        }
        cold.push(full_block(&setup, false));
        warm.push(full_block(&setup, true));
        strict.push(sig_rate(&sigs, |s| {
            for ((m, k), sig) in s.messages.iter().zip(&s.keys).zip(&s.signatures) {
                k.verify_strict(m, sig).expect("valid");
            }
        }));
        zip215.push(sig_rate(&sigs, |s| {
            for (t, m) in s.transfers.iter().zip(&s.messages) {
                sig::verify(&t.from.0, &t.signature, m).expect("valid");
            }
        }));
        transfer_verify.push(sig_rate(&sigs, |s| {
            for t in &s.transfers {
                t.verify(&chain_id).expect("valid");
            }
        }));
        // What gossip admission did under the former rule: decode the key, build the signing
        // bytes, verify_strict.
        former_admission.push(sig_rate(&sigs, |s| {
            for t in &s.transfers {
                let k = VerifyingKey::from_bytes(&t.from.0).expect("valid key");
                let sig = Signature::from_bytes(&t.signature);
                k.verify_strict(&t.signing_bytes(&chain_id), &sig)
                    .expect("valid");
            }
        }));
        let items = sigs.items();
        batch1000.push(sig_rate(&sigs, |_| {
            sig::verify_on(&items, 1).expect("valid");
        }));
        batch100.push(sig_rate(&sigs, |_| {
            for run in items.chunks(100) {
                sig::verify_on(run, 1).expect("valid");
            }
        }));
        all_cores.push(sig_rate(&sigs, |_| {
            sig::verify_on(&items, cores).expect("valid");
        }));
    }

    println!("block validation, ChainState::process_block on a fresh state at height 2:");
    println!(
        "  {:>9}  {:>22}  {:>26}  {:>11}  {:>9}  {:>6}  {:>6}  {:>10}  {:>6}  {:>11}",
        "transfers",
        "blocks/s",
        "transfers/s",
        "transfers/s",
        "ms/block",
        "header",
        "body",
        "signatures",
        "ledger",
        "all-but-sig"
    );
    println!(
        "  {:>9}  {:>22}  {:>26}  {:>11}  {:>9}  {:>52}",
        "", "(wall)", "(wall)", "(CPU)", "(CPU)", "(shares of CPU ms/block)"
    );
    let mut validation = Series::default();
    let mut in_validation = Series::default();
    for (i, &n) in SIZES.iter().enumerate() {
        let p = &pieces[i];
        let bps = Stats(p.iter().map(|x| 1.0 / x.total.wall).collect());
        let tps = Stats(p.iter().map(|x| n as f64 / x.total.wall).collect());
        let tps_cpu = Stats(p.iter().map(|x| n as f64 / x.total.cpu).collect());
        let ms = Stats(p.iter().map(|x| x.total.cpu * 1e3).collect());
        let share = |f: &dyn Fn(&Pieces) -> f64| {
            Stats(p.iter().map(|x| 100.0 * f(x) / x.total.cpu).collect()).median()
        };
        println!(
            "  {:>9}  {:>9.0} [{:>5.0}..{:>5.0}]  {:>10.0} [{:>6.0}..{:>6.0}]  {:>11.0}  {:>9.3}  {:>5.1}%  {:>5.1}%  {:>9.1}%  {:>5.1}%  {:>10.1}%",
            n,
            bps.median(),
            bps.min(),
            bps.max(),
            tps.median(),
            tps.min(),
            tps.max(),
            tps_cpu.median(),
            ms.median(),
            share(&|x| x.header.cpu),
            share(&|x| x.body.cpu),
            share(&|x| x.signatures.cpu),
            share(&|x| x.ledger.cpu),
            share(&|x| x.trusted.cpu),
        );
        if n == SENDERS {
            for x in p {
                validation.push((n as f64 / x.total.wall, n as f64 / x.total.cpu));
                in_validation.push((n as f64 / x.signatures.wall, n as f64 / x.signatures.cpu));
            }
        }
    }
    println!(
        "  (header, body, signatures, ledger: check_header, check_body, check_signatures and\n   Ledger::apply_block timed alone; all-but-sig: the same block through\n   ChainState::load_trusted, i.e. every rule and the bookkeeping but signatures)"
    );
    println!();

    println!(
        "signature checks on the {} messages of the {SENDERS}-transfer block ({cores} cores):",
        sigs.len()
    );
    println!(
        "  {:<58} {:>25}  {:>10}",
        "", "sig/s (wall) [min..max]", "sig/s (CPU)"
    );
    let line = |name: &str, s: &Series| {
        let (w, c) = (Stats(s.wall.clone()), Stats(s.cpu.clone()));
        println!(
            "  {name:<58} {:>7.0} [{:>7.0}..{:>7.0}]  {:>10.0}",
            w.median(),
            w.min(),
            w.max(),
            c.median()
        );
    };
    line(
        "ed25519-dalek verify_strict, one core (keys decompressed)",
        &strict,
    );
    line("ZIP 215 one at a time, one core (sig::verify)", &zip215);
    line(
        "Transfer::verify (gossip admission: ZIP 215 alone)",
        &transfer_verify,
    );
    line("ZIP 215 batch of 1000, one thread", &batch1000);
    line("ZIP 215 10 batches of 100, one thread", &batch100);
    line(
        &format!("ZIP 215 batches on {cores} threads (sig::verify_on)"),
        &all_cores,
    );
    line(
        "check_signatures inside validation (1000-transfer block)",
        &in_validation,
    );
    line(
        "full process_block (1000-transfer block), transfers/s",
        &validation,
    );
    println!();
    let med = |v: &Vec<f64>| Stats(v.clone()).median();
    let ratio = |name: &str, a: &Series, b: &Series, pct: bool, note: &str| {
        let (w, c) = (med(&a.wall) / med(&b.wall), med(&a.cpu) / med(&b.cpu));
        if pct {
            let text = format!(
                "  {name:<44} wall {:6.1} %   CPU {:6.1} %  {note}",
                100.0 * w,
                100.0 * c
            );
            println!("{}", text.trim_end());
        } else {
            let text = format!("  {name:<44} wall {:6.2} x   CPU {:6.2} x  {note}", w, c);
            println!("{}", text.trim_end());
        }
    };
    ratio(
        "full validation / raw verify_strict:",
        &validation,
        &strict,
        false,
        "(1000-transfer blocks vs one core; target >= 4x)",
    );
    ratio(
        "check_signatures / raw verify_strict:",
        &in_validation,
        &strict,
        false,
        "",
    );
    ratio(
        "ZIP 215 single / verify_strict:",
        &zip215,
        &strict,
        false,
        "(one at a time, one core)",
    );
    ratio(
        "Transfer::verify / former admission:",
        &transfer_verify,
        &former_admission,
        false,
        "(gossip admission, new rule / old; target >= 1x)",
    );
    ratio(
        "batch of 1000 / ZIP 215 single:",
        &batch1000,
        &zip215,
        false,
        "(batch gain alone, one thread)",
    );
    ratio(
        "10 batches of 100 / ZIP 215 single:",
        &batch100,
        &zip215,
        false,
        "(batch gain alone, one thread)",
    );
    ratio(
        &format!("batches on {cores} threads / on 1:"),
        &all_cores,
        &batch1000,
        false,
        "(core scaling alone; wall)",
    );
    println!();
    println!(
        "full block ({FULL} transfers, {} bytes), ChainState::process_block on a fresh state at height 2:",
        setup.full.encoded_len()
    );
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let avx2 = false;
    println!(
        "  CPU: {}; ed25519-zebra 5 on curve25519-dalek (AVX2 {}); {cores} cores",
        cpu_model(),
        if avx2 { "available" } else { "not available" }
    );
    println!(
        "  {:<34} {:>26}  {:>14}  {:>19}",
        "signature cache", "ms/block (wall) [min..max]", "ms/block (CPU)", "signatures verified"
    );
    let full_line = |name: &str, runs: &[(Timing, u64)]| {
        let wall = Stats(runs.iter().map(|(t, _)| t.wall * 1e3).collect());
        let cpu = Stats(runs.iter().map(|(t, _)| t.cpu * 1e3).collect());
        println!(
            "  {name:<34} {:>8.2} [{:>7.2}..{:>7.2}]  {:>14.2}  {:>19}",
            wall.median(),
            wall.min(),
            wall.max(),
            cpu.median(),
            runs.iter().map(|(_, v)| *v).max().unwrap_or(0)
        );
    };
    full_line("cold (no transfer seen before)", &cold);
    full_line("warm (every transfer admitted)", &warm);
    let med = |runs: &[(Timing, u64)], f: fn(&Timing) -> f64| {
        Stats(runs.iter().map(|(t, _)| f(t)).collect()).median()
    };
    println!(
        "  cold / warm: wall {:.1} x, CPU {:.1} x",
        med(&cold, |t| t.wall) / med(&warm, |t| t.wall),
        med(&cold, |t| t.cpu) / med(&warm, |t| t.cpu)
    );
    println!();
    println!("load average at end: {}", load_average());
}
