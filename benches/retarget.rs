//! Retargeting without mining: a deterministic simulation of the consensus rule
//! (`retarget::next_bits`, the MTP and max-future rules) under synthetic hash rates.
//!
//! Each block's solve time is drawn from the exponential distribution with mean
//! work(target) / hash rate, from a fixed seed, so every run prints the same figures. Printed
//! per scenario: blocks to settle after a change (the first block whose expected interval,
//! work / hash rate, is within 10 % of the target interval), the mean interval of the blocks
//! after settling, and the worst interval (the longest drawn, and the longest expected).
//!
//! Scenarios, on the default chain (10 s, half-life 16 intervals) and on the 500 ms chain:
//! steady; the hash rate 2x, 0.5x (a laptop joins or leaves); 10x and 0.1x; and miners whose
//! timestamps sit at the edge of the rules: every block 2 minutes ahead (the max-future
//! limit), and every block at the median time past + 1 ms (the oldest allowed).
//!
//! `cargo bench --bench retarget`

use gossipchain::chain::ChainParams;
use gossipchain::chain::pow::Target;
use gossipchain::chain::retarget::{self, ParentInfo};
use gossipchain::chain::validate::median;

/// SplitMix64: a tiny seeded generator, enough for exponential draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Exponential with mean 1.
    fn exp(&mut self) -> f64 {
        let u = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -u.ln()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stamp {
    /// The real time (at least MTP + 1).
    Honest,
    /// Real time + max_future_ms: the latest a block may carry.
    Future,
    /// MTP + 1: the earliest a block may carry.
    Oldest,
}

struct Sim {
    params: ChainParams,
    block_time_ms: u64,
    /// Real time, ms.
    now: f64,
    times: Vec<u64>,
    bits: Vec<u32>,
    rng: Rng,
}

struct Block {
    interval_ms: f64,
    expected_ms: f64,
}

impl Sim {
    fn new(block_time_ms: u64, seed: u64) -> Self {
        let params = ChainParams::with_block_time(block_time_ms);
        let start = params.genesis_timestamp as f64 + 3_600_000.0;
        Self {
            block_time_ms,
            times: vec![params.genesis_timestamp],
            bits: vec![params.genesis_bits()],
            params,
            now: start,
            rng: Rng(seed),
        }
    }

    /// Mines one block at `hash_rate` hashes/s whose timestamp follows `stamp`.
    fn step(&mut self, hash_rate: f64, stamp: Stamp) -> Block {
        let h = self.times.len() as u64 - 1;
        let parent = ParentInfo {
            height: h,
            timestamp: self.times[h as usize],
            anchor_time: self.times.get(1).copied().unwrap_or(0),
        };
        let bits = retarget::next_bits(&self.params, &parent);
        let work = Target::from_compact(bits).expect("valid").work().as_f64();
        let expected_ms = work / hash_rate * 1000.0;
        let interval_ms = expected_ms * self.rng.exp();
        self.now += interval_ms;
        let span = self.params.median_time_span as usize;
        let mut last: Vec<u64> = self.times[self.times.len().saturating_sub(span)..].to_vec();
        let mtp = median(&mut last);
        let real = self.now as u64;
        let ts = match stamp {
            Stamp::Honest => real.max(mtp + 1),
            Stamp::Future => real + self.params.max_future_ms,
            Stamp::Oldest => mtp + 1,
        };
        assert!(ts > mtp && ts <= real + self.params.max_future_ms);
        self.times.push(ts);
        self.bits.push(bits);
        Block {
            interval_ms,
            expected_ms,
        }
    }

    /// `n` blocks; returns them.
    fn run(&mut self, n: usize, hash_rate: f64, stamp: Stamp) -> Vec<Block> {
        (0..n).map(|_| self.step(hash_rate, stamp)).collect()
    }

    /// The hash rate for which the genesis target gives one block per interval.
    fn unit_rate(&self) -> f64 {
        self.params.genesis_target().work().as_f64() / (self.block_time_ms as f64 / 1000.0)
    }
}

struct Summary {
    settle: Option<usize>,
    mean_after: f64,
    worst_drawn: f64,
    worst_expected: f64,
}

fn summarize(blocks: &[Block], t: f64) -> Summary {
    let settle = blocks
        .iter()
        .position(|b| (b.expected_ms - t).abs() <= 0.1 * t);
    let from = settle.unwrap_or(blocks.len());
    let after = &blocks[from..];
    let mean_after = if after.is_empty() {
        f64::NAN
    } else {
        after.iter().map(|b| b.interval_ms).sum::<f64>() / after.len() as f64
    };
    Summary {
        settle,
        mean_after,
        worst_drawn: blocks.iter().map(|b| b.interval_ms).fold(0.0, f64::max),
        worst_expected: blocks.iter().map(|b| b.expected_ms).fold(0.0, f64::max),
    }
}

fn print(name: &str, s: &Summary, t: f64) {
    println!(
        "  {name:<44} settle {:>9}  mean after {:>6.3} T  worst interval {:>6.2} T drawn, {:>6.2} T expected",
        s.settle
            .map(|n| format!("{n} blocks"))
            .unwrap_or_else(|| "never".into()),
        s.mean_after / t,
        s.worst_drawn / t,
        s.worst_expected / t,
    );
}

/// Runs `seeds` simulations of a step from `before` to `after` (multiples of the unit rate)
/// and prints the median settle time with the summary of the median run.
fn step_scenario(block_time_ms: u64, name: &str, before: f64, after: f64, seeds: u64) {
    let t = block_time_ms as f64;
    let mut runs = Vec::new();
    for seed in 0..seeds {
        let mut sim = Sim::new(block_time_ms, 1 + seed);
        let unit = sim.unit_rate();
        // Settle at the first rate, then change it.
        sim.run(400, unit * before, Stamp::Honest);
        let blocks = sim.run(600, unit * after, Stamp::Honest);
        runs.push(summarize(&blocks, t));
    }
    runs.sort_by_key(|s| s.settle.unwrap_or(usize::MAX));
    let worst = runs.last().and_then(|s| s.settle);
    let med = &runs[runs.len() / 2];
    print(name, med, t);
    println!(
        "  {:<44} (median of {seeds} seeds; slowest seed settles in {})",
        "",
        worst
            .map(|n| format!("{n} blocks"))
            .unwrap_or_else(|| "never".into())
    );
}

fn steady_noise(block_time_ms: u64) {
    let t = block_time_ms as f64;
    let mut sim = Sim::new(block_time_ms, 99);
    let unit = sim.unit_rate();
    sim.run(500, unit, Stamp::Honest);
    let blocks = sim.run(10_000, unit, Stamp::Honest);
    let logs: Vec<f64> = blocks.iter().map(|b| (b.expected_ms / t).log2()).collect();
    let mean = logs.iter().sum::<f64>() / logs.len() as f64;
    let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
    let mean_interval = blocks.iter().map(|b| b.interval_ms).sum::<f64>() / blocks.len() as f64;
    println!(
        "  steady hash rate, 10 000 blocks: mean interval {:.3} T; difficulty noise sd {:.3} in log2 (x/÷ {:.2}); worst interval {:.1} T",
        mean_interval / t,
        sd,
        2f64.powf(sd),
        blocks.iter().map(|b| b.interval_ms).fold(0.0, f64::max) / t
    );
}

/// A miner with `share` of the hash rate stamps every block it finds with `stamp`; the rest
/// are honest. Prints the blocks gained over 1000 intervals of real time and the easiest
/// target reached relative to the honest run.
fn liar(block_time_ms: u64, name: &str, share: f64, stamp: Stamp) {
    let t = block_time_ms as f64;
    let mut honest = Sim::new(block_time_ms, 7);
    let mut sim = Sim::new(block_time_ms, 7);
    let unit = sim.unit_rate();
    honest.run(400, unit, Stamp::Honest);
    sim.run(400, unit, Stamp::Honest);
    let (t0, h0) = (sim.now, sim.times.len());
    let mut blocks = Vec::new();
    let mut pick = Rng(11);
    while sim.now - t0 < 1000.0 * t {
        let s = if (pick.next() >> 11) as f64 / (1u64 << 53) as f64 <= share {
            stamp
        } else {
            Stamp::Honest
        };
        blocks.push(sim.step(unit, s));
    }
    let (ht0, hh0) = (honest.now, honest.times.len());
    while honest.now - ht0 < 1000.0 * t {
        honest.step(unit, Stamp::Honest);
    }
    let gained = (sim.times.len() - h0) as f64 - (honest.times.len() - hh0) as f64;
    let s = summarize(&blocks, t);
    let easiest = blocks
        .iter()
        .map(|b| b.expected_ms / t)
        .fold(f64::MAX, f64::min);
    println!(
        "  {name:<44} {:>5.0} blocks in 1000 T ({:+.0} vs honest); mean interval {:.3} T; easiest block {:.2} T expected ({:.2}x easier); worst interval {:.2} T",
        (sim.times.len() - h0) as f64,
        gained,
        blocks.iter().map(|b| b.interval_ms).sum::<f64>() / blocks.len() as f64 / t,
        easiest,
        1.0 / easiest,
        s.worst_drawn / t
    );
}

fn main() {
    println!("gossipchain retarget simulation (no mining; seeded, deterministic)");
    for block_time_ms in [10_000u64, 500] {
        let p = ChainParams::with_block_time(block_time_ms);
        println!(
            "\n{} (T = {block_time_ms} ms); max_future {} ms, MTP of {} blocks",
            p.difficulty, p.max_future_ms, p.median_time_span
        );
        steady_noise(block_time_ms);
        step_scenario(
            block_time_ms,
            "hash rate 2x (a second laptop joins)",
            1.0,
            2.0,
            21,
        );
        step_scenario(
            block_time_ms,
            "hash rate 0.5x (a laptop leaves)",
            2.0,
            1.0,
            21,
        );
        step_scenario(block_time_ms, "hash rate 10x jump", 1.0, 10.0, 21);
        step_scenario(block_time_ms, "hash rate 0.1x drop", 10.0, 1.0, 21);
        liar(
            block_time_ms,
            "all blocks stamped +max_future (the limit)",
            1.0,
            Stamp::Future,
        );
        liar(
            block_time_ms,
            "half the blocks stamped +max_future",
            0.5,
            Stamp::Future,
        );
        liar(
            block_time_ms,
            "all blocks stamped MTP + 1 ms (the oldest)",
            1.0,
            Stamp::Oldest,
        );
    }
}
