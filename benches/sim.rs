//! Simulator benchmark: `cargo bench --bench sim`.
//!
//! 1 000 nodes running the node's core (tests/sim: chain state, sync component, mempool,
//! relay), 8 peers each on average (a ring plus 3 random links each), under the 8-region
//! latency map of libp2p's gossipsub-interop test plan (test-plans, gossipsub-interop/
//! network_graph.py: one-way 2-220 ms between and within australia, europe, east_asia,
//! west_asia, na_east, na_west, south_africa, south_america; nodes placed by that plan's
//! weights, which follow Ethereum's node counts; 20 % "supernodes" of 1 024 Mbit/s upload,
//! 80 % "fullnodes" of 50 Mbit/s). 20 miners find a block every 12 s between them; transfers
//! arrive 5 a second. Prints the arrival of each block at every other node, from the instant
//! it was mined (p50, p99, max, in simulated time; goal p99 ≤ 1.5 s), and the wall time per
//! simulated minute. `SIM_MINUTES` sets the simulated length (default 3).

mod common;
#[path = "../tests/sim/mod.rs"]
mod sim;

use common::{Stats, cpu_model, load_average};
use sim::{Config, Latency, Sim};
use std::time::{Duration, Instant};

/// Region weights (australia, europe, east_asia, west_asia, na_east, na_west, south_africa,
/// south_america), from the test plan.
const WEIGHTS: [u32; 8] = [290, 5599, 1059, 161, 2894, 1240, 47, 36];

/// One-way latency (ms) from region `i` to region `j`, from the test plan's edge list.
const MS: [[u64; 8]; 8] = [
    // au   eu   ea   wa   nae  naw  saf  sam
    [2, 165, 110, 180, 150, 110, 220, 190], // australia
    [165, 2, 125, 60, 70, 110, 95, 140],    // europe
    [110, 125, 4, 110, 140, 100, 175, 175], // east_asia
    [180, 60, 110, 5, 110, 150, 110, 145],  // west_asia
    [150, 70, 140, 110, 2, 60, 130, 100],   // na_east
    [110, 110, 100, 150, 60, 2, 160, 100],  // na_west
    [220, 95, 175, 110, 130, 160, 7, 190],  // south_africa
    [190, 140, 175, 145, 100, 100, 195, 7], // south_america
];

fn main() {
    let minutes: u64 = std::env::var("SIM_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("gossipchain simulator benchmark");
    println!(
        "CPU: {}; load average at start: {}",
        cpu_model(),
        load_average()
    );
    let config = Config {
        seed: 1,
        honest: 1000,
        miners: 20,
        block_interval: Duration::from_secs(12),
        tx_interval: Some(Duration::from_millis(200)),
        faults: Vec::new(),
        fault_links: 0,
        chords: 3,
        latency: Latency::Regions {
            weights: WEIGHTS.to_vec(),
            ms: MS.iter().map(|r| r.to_vec()).collect(),
        },
        // 1 024 and 50 Mbit/s in bytes per ms.
        bandwidth: vec![(128_000, 20), (6_250, 80)],
        loss: 0.0,
        prefix: 40,
        plan: Vec::new(),
        heal_bound: Duration::from_secs(12),
        check: false,
        wallets: 6,
    };
    let built = Instant::now();
    let mut sim = Sim::new(config);
    let links: usize = sim.nodes.iter().map(|n| n.connected.len()).sum();
    println!(
        "{} nodes, {:.1} peers each on average, built in {:.1} s",
        sim.nodes.len(),
        links as f64 / sim.nodes.len() as f64,
        built.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    sim.run_for(Duration::from_secs(60 * minutes));
    let wall = started.elapsed().as_secs_f64();
    let arrivals = Stats(sim.arrivals.iter().map(|us| *us as f64 / 1e3).collect());
    println!(
        "simulated {minutes} min: {} blocks mined, {} transfers, {} events",
        sim.blocks_mined, sim.transfers_made, sim.steps
    );
    println!(
        "block arrival at every other node ({} arrivals): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal p99 <= 1500 ms)",
        sim.arrivals.len(),
        arrivals.quantile(0.5),
        arrivals.quantile(0.99),
        arrivals.max()
    );
    println!(
        "wall time: {:.1} s per simulated minute ({:.1} s in all)",
        wall / minutes as f64,
        wall
    );
}
