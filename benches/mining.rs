//! Mining benchmark: `cargo bench --bench mining`.
//!
//! Prints, in one run and side by side:
//! 1. the single-thread hash rate of every multi-lane backend this CPU has (`miner::search`
//!    with `miner::lanes::Backend`) against `Midstate::search` (sha2's `compress256` per nonce,
//!    the former path) and against hashing the whole encoded 96-byte header per nonce with
//!    `sha2::Sha256::digest`;
//! 2. the multi-thread rate, 1 thread against 2, measured two ways: the best backend on plain
//!    std threads over a fixed number of nonces per thread, and `miner::solve` itself at a
//!    moderate difficulty, counting the `hashes` it reports over every solve in a time budget;
//! 3. how long a cancelled `miner::solve` takes to return once the flag is set.
//!
//! The machine may be shared and noisy, so each measurement is repeated in interleaved rounds
//! (A, B, A, B, ...) and the median is reported, with the min and max beside it.

mod common;

use common::{Stats, cpu_delta, load_average, process_cpu_secs, thread_cpu_secs};
use gossipchain::chain::ChainParams;
use gossipchain::chain::block::Header;
use gossipchain::chain::pow::Midstate;
use gossipchain::miner::lanes::{Backend, Template};
use gossipchain::miner::{self, Mined};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Difficulty no search can meet in the time a benchmark runs.
const IMPOSSIBLE_BITS: u32 = 90;
/// Interleaved rounds per comparison.
const ROUNDS: usize = 5;
/// Nonces per single-thread measurement.
const SINGLE_NONCES: u64 = 1 << 24;
/// Rounds of the thread-scaling comparisons: many short ones, so some fall between the bursts
/// of other work on a shared machine.
const SCALING_ROUNDS: usize = 9;
/// Nonces per thread in the std-thread scaling measurement.
const PER_THREAD_NONCES: u64 = 1 << 25;
/// Difficulty of the `miner::solve` scaling measurement: 2^24 = 16.8 M hashes a solve on average.
const SOLVE_BITS: u32 = 24;
/// Time budget of one `miner::solve` measurement (whole solves only, so slightly more).
const SOLVE_BUDGET: Duration = Duration::from_millis(1000);
/// Cancellation runs.
const CANCEL_RUNS: usize = 20;

fn header(bits: u32, salt: u64) -> Header {
    let mut h = ChainParams::with_bits(bits).genesis().header;
    h.height = 1;
    h.prev_hash = ChainParams::default().chain_id();
    h.timestamp += 1000 + salt;
    h
}

fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b != 0 {
            return n + b.leading_zeros();
        }
        n += 8;
    }
    n
}

/// M hashes/s of `Midstate::search` over `count` nonces on this thread: per wall-clock second
/// and per second of CPU the thread got.
fn midstate_rate(h: &Header, count: u64) -> (f64, f64) {
    let mid = Midstate::new(h);
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    let r = mid.search(black_box(IMPOSSIBLE_BITS), black_box(0), 1, count);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_delta(cpu0, thread_cpu_secs());
    assert!(black_box(r).is_none());
    (count as f64 / secs / 1e6, count as f64 / cpu / 1e6)
}

/// M hashes/s of `miner::search` with `backend` over `count` nonces on this thread (wall, CPU).
fn backend_rate(h: &Header, backend: Backend, count: u64) -> (f64, f64) {
    let t = Template::new(h);
    let bound = miner::first_word_bound(IMPOSSIBLE_BITS).expect("a hash of zeros meets it");
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    let r = miner::search(&t, backend, black_box(IMPOSSIBLE_BITS), bound, 0, count);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_delta(cpu0, thread_cpu_secs());
    assert!(black_box(r).is_none());
    (count as f64 / secs / 1e6, count as f64 / cpu / 1e6)
}

/// M hashes/s of encoding the header and hashing all 96 bytes per nonce (wall, CPU).
fn full_header_rate(h: &Header, count: u64) -> (f64, f64) {
    let mut h = *h;
    let mut found = None;
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    for nonce in 0..count {
        h.nonce = nonce;
        let digest = Sha256::digest(h.encode());
        if leading_zero_bits(&digest) >= black_box(IMPOSSIBLE_BITS) {
            found = Some(nonce);
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_delta(cpu0, thread_cpu_secs());
    assert!(black_box(found).is_none());
    (count as f64 / secs / 1e6, count as f64 / cpu / 1e6)
}

/// Total M hashes/s of `threads` std threads, each running `miner::search` with the best
/// backend over `per_thread` nonces of its own slice; timed from a common start barrier until
/// the last thread is done. Also returns the CPU time the process got per wall second (how
/// many cores it really had).
fn threaded_rate(h: &Header, threads: usize, per_thread: u64) -> (f64, f64) {
    let mid = Template::new(h);
    let bound = miner::first_word_bound(IMPOSSIBLE_BITS).expect("a hash of zeros meets it");
    let cpu0 = process_cpu_secs();
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|i| {
                let (mid, barrier) = (&mid, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    miner::search(
                        mid,
                        Backend::best(),
                        IMPOSSIBLE_BITS,
                        bound,
                        i << 60,
                        per_thread,
                    )
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for handle in handles {
            assert!(handle.join().expect("no panic").is_none());
        }
        start.elapsed()
    });
    let secs = elapsed.as_secs_f64();
    let cores = cpu_delta(cpu0, process_cpu_secs()) / secs;
    ((threads as u64 * per_thread) as f64 / secs / 1e6, cores)
}

/// M hashes/s of `miner::solve` on `threads` threads: whole solves at [`SOLVE_BITS`] until the
/// budget is spent, summing the `hashes` each solve reports (every thread's work, the losers'
/// included) over the total wall time (thread start-up and join included).
fn solve_rate(threads: usize, salt: &mut u64) -> (f64, u32, f64) {
    let never = AtomicBool::new(false);
    let cpu0 = process_cpu_secs();
    let mut hashes = 0u64;
    let mut solves = 0;
    let start = Instant::now();
    while start.elapsed() < SOLVE_BUDGET {
        *salt += 1;
        match miner::solve(&header(SOLVE_BITS, *salt), threads, &never) {
            Mined::Found { hashes: n, .. } => hashes += n,
            Mined::Cancelled => unreachable!("never cancelled"),
        }
        solves += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cores = cpu_delta(cpu0, process_cpu_secs()) / secs;
    (hashes as f64 / secs / 1e6, solves, cores)
}

/// Time from setting the cancel flag to `miner::solve` returning, with `threads` threads.
fn cancel_latency(threads: usize) -> Duration {
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let h = header(IMPOSSIBLE_BITS, 0);
    let search = std::thread::spawn(move || {
        let r = miner::solve(&h, threads, &c);
        (r, Instant::now())
    });
    // Let every mining thread get well into its loop.
    std::thread::sleep(Duration::from_millis(30));
    let set_at = Instant::now();
    cancel.store(true, Ordering::Relaxed);
    let (r, returned_at) = search.join().expect("no panic");
    assert_eq!(r, Mined::Cancelled);
    returned_at.duration_since(set_at)
}

/// Prints a 1-thread against 2-thread comparison: each rate with the CPU the process obtained
/// (`notes` go before that figure), the ratio of the rates, and the rate per CPU-second.
///
/// The rate per CPU-second is the hash rate per CPU-second the process actually got: if the
/// 2-thread figure matches the 1-thread one, the threads do not slow each other and any
/// shortfall of the wall-clock ratio is CPU time taken by other processes. ("best rounds" is
/// the fastest 2-thread round over the fastest 1-thread round: other load only ever slows a
/// round down.)
fn print_scaling(one: &Stats, cpu1: &Stats, two: &Stats, cpu2: &Stats, notes: [&str; 2]) {
    for (name, rate, cpu, note) in [
        ("1 thread", one, cpu1, notes[0]),
        ("2 threads (total)", two, cpu2, notes[1]),
    ] {
        println!(
            "  {name:<46}{:7.2} M hashes/s  [{:.2}..{:.2}]  ({note}CPU obtained: {:.2} cores)",
            rate.median(),
            rate.min(),
            rate.max(),
            cpu.median()
        );
    }
    let ratios = Stats(one.0.iter().zip(&two.0).map(|(a, b)| b / a).collect());
    println!(
        "  2 threads / 1 thread                          {:7.2} x          [{:.2}..{:.2}]  best rounds: {:.2} x  (target >= 1.9x)",
        ratios.median(),
        ratios.min(),
        ratios.max(),
        two.max() / one.max()
    );
    let per = |r: &Stats, c: &Stats| Stats(r.0.iter().zip(&c.0).map(|(r, c)| r / c).collect());
    let (p1, p2) = (per(one, cpu1), per(two, cpu2));
    println!(
        "  per CPU-second obtained: 1 thread {:.2}, 2 threads {:.2} M hashes (efficiency {:.0}%)",
        p1.median(),
        p2.median(),
        100.0 * p2.median() / p1.median()
    );
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "x86_64")]
    let sha_ni = std::arch::is_x86_feature_detected!("sha");
    #[cfg(not(target_arch = "x86_64"))]
    let sha_ni = false;
    println!("gossipchain mining benchmark");
    println!(
        "cores available: {cores}; x86 SHA extensions: {sha_ni}; best backend: {}; rounds: {ROUNDS} (median [min..max]); load average at start: {}",
        Backend::best().name(),
        load_average()
    );
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.available() && *b != Backend::Portable)
        .collect();
    for b in Backend::ALL.into_iter().filter(|b| !b.available()) {
        println!("  (this CPU lacks {})", b.name());
    }
    println!();

    // 1. Midstate against hashing the whole header, one thread.
    let h = header(IMPOSSIBLE_BITS, 0);
    // Warm up both paths (CPU frequency, caches, feature detection).
    midstate_rate(&h, 1 << 20);
    full_header_rate(&h, 1 << 20);
    for b in &backends {
        backend_rate(&h, *b, 1 << 20);
    }
    let (mut mid, mut full) = (Vec::new(), Vec::new());
    let (mut mid_cpu, mut full_cpu) = (Vec::new(), Vec::new());
    let mut lanes: Vec<(Vec<f64>, Vec<f64>)> =
        backends.iter().map(|_| Default::default()).collect();
    for _ in 0..ROUNDS {
        for (b, (w, c)) in backends.iter().zip(&mut lanes) {
            let (rw, rc) = backend_rate(&h, *b, SINGLE_NONCES);
            w.push(rw);
            c.push(rc);
        }
        let (w, c) = midstate_rate(&h, SINGLE_NONCES);
        mid.push(w);
        mid_cpu.push(c);
        let (w, c) = full_header_rate(&h, SINGLE_NONCES);
        full.push(w);
        full_cpu.push(c);
    }
    let (mid, full, mid_cpu, full_cpu) = (Stats(mid), Stats(full), Stats(mid_cpu), Stats(full_cpu));
    println!(
        "single thread, {SINGLE_NONCES} nonces per measurement (per wall second; per CPU second the thread got):"
    );
    println!(
        "  Midstate::search (sha2 compress256, former)  {:7.2} M hashes/s  [{:.2}..{:.2}]  CPU: {:.2} M/s",
        mid.median(),
        mid.min(),
        mid.max(),
        mid_cpu.median()
    );
    println!(
        "  Sha256::digest(header.encode()) per nonce     {:7.2} M hashes/s  [{:.2}..{:.2}]  CPU: {:.2} M/s",
        full.median(),
        full.min(),
        full.max(),
        full_cpu.median()
    );
    for (b, (w, c)) in backends.iter().zip(&lanes) {
        let (w, c) = (Stats(w.clone()), Stats(c.clone()));
        let vs = Stats(w.0.iter().zip(&mid.0).map(|(a, m)| a / m).collect());
        let vs_cpu = Stats(c.0.iter().zip(&mid_cpu.0).map(|(a, m)| a / m).collect());
        println!(
            "  lanes: {:<38} {:7.2} M hashes/s  [{:.2}..{:.2}]  CPU: {:.2} M/s  {:.2} x Midstate::search (CPU {:.2} x){}",
            b.name(),
            w.median(),
            w.min(),
            w.max(),
            c.median(),
            vs.median(),
            vs_cpu.median(),
            if *b == Backend::best() {
                "  <- used (target >= 55 M/s, >= 2.2x)"
            } else {
                ""
            }
        );
    }
    let ratios = Stats(mid.0.iter().zip(&full.0).map(|(m, f)| m / f).collect());
    let cpu_ratios = Stats(
        mid_cpu
            .0
            .iter()
            .zip(&full_cpu.0)
            .map(|(m, f)| m / f)
            .collect(),
    );
    println!(
        "  midstate / full header                        {:7.2} x          [{:.2}..{:.2}]  CPU: {:.2} x  (target >= 1.3x; midstate >= 15 M/s)",
        ratios.median(),
        ratios.min(),
        ratios.max(),
        cpu_ratios.median()
    );
    println!();

    // 2a. Scaling on std threads over a fixed amount of work per thread.
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let (mut cpu1, mut cpu2) = (Vec::new(), Vec::new());
    for _ in 0..SCALING_ROUNDS {
        let (r, c) = threaded_rate(&h, 1, PER_THREAD_NONCES);
        one.push(r);
        cpu1.push(c);
        let (r, c) = threaded_rate(&h, 2, PER_THREAD_NONCES);
        two.push(r);
        cpu2.push(c);
    }
    let (one, two, cpu1, cpu2) = (Stats(one), Stats(two), Stats(cpu1), Stats(cpu2));
    println!(
        "miner::search ({}) on std threads, {PER_THREAD_NONCES} nonces per thread, {SCALING_ROUNDS} rounds:",
        Backend::best().name()
    );
    print_scaling(&one, &cpu1, &two, &cpu2, ["", ""]);
    println!();

    // 2b. Scaling of miner::solve itself, from the hashes it reports.
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let (mut cpu1, mut cpu2) = (Vec::new(), Vec::new());
    let (mut solves1, mut solves2) = (0, 0);
    let mut salt = 0;
    for _ in 0..SCALING_ROUNDS {
        let (r, n, c) = solve_rate(1, &mut salt);
        one.push(r);
        solves1 += n;
        cpu1.push(c);
        let (r, n, c) = solve_rate(2, &mut salt);
        two.push(r);
        solves2 += n;
        cpu2.push(c);
    }
    let (one, two, cpu1, cpu2) = (Stats(one), Stats(two), Stats(cpu1), Stats(cpu2));
    println!(
        "miner::solve at {SOLVE_BITS} bits, reported hashes / wall time, {SCALING_ROUNDS} rounds of {:.1} s:",
        SOLVE_BUDGET.as_secs_f64()
    );
    print_scaling(
        &one,
        &cpu1,
        &two,
        &cpu2,
        [
            &format!("{solves1} solves; "),
            &format!("{solves2} solves; "),
        ],
    );
    println!();

    // 3. Cancellation latency.
    println!(
        "miner::solve cancellation at {IMPOSSIBLE_BITS} bits: flag set -> solve returned, {CANCEL_RUNS} runs each (CHUNK = {} nonces):",
        miner::CHUNK
    );
    for threads in [1, 2] {
        let lat = Stats(
            (0..CANCEL_RUNS)
                .map(|_| cancel_latency(threads).as_secs_f64() * 1e3)
                .collect(),
        );
        println!(
            "  {threads} thread{}                                     p50 {:6.3} ms  p90 {:6.3} ms  max {:6.3} ms",
            if threads == 1 { " " } else { "s" },
            lat.median(),
            lat.quantile(0.9),
            lat.max()
        );
    }
    println!();
    println!("load average at end: {}", load_average());
}
