//! The nemesis in CI: three minutes of mixed faults on eight real nodes, seed 21 (the long run
//! is `cargo bench --bench nemesis`; both share tests/nemesis/mod.rs). Root only, as the LAN
//! tests: without root or libfaketime it is skipped with a loud notice, or fails with
//! GOSSIPCHAIN_REQUIRE_LAN=1.

#[path = "binary/mod.rs"]
mod binary;
#[path = "lan/delay.rs"]
mod delay;
#[path = "nemesis/mod.rs"]
mod engine;
#[path = "lan/harness.rs"]
mod harness;

use engine::{Config, FAKETIME_LIB, Nemesis};
use harness::*;

#[test]
fn nemesis_mixed_faults_keep_the_invariants() {
    const T: &str = "nemesis";
    if !lan_or_skip(T, &["sysctl", "nft", "mount", "faketime"]) {
        return;
    }
    assert!(
        std::path::Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} missing (Debian: libfaketime)"
    );
    let _serial = serial();
    let cfg = Config {
        secs: 170,
        seed: 21,
        wallets: 24,
        rate: 50.0,
        short: true,
        rebroadcast: true,
    };
    let report = Nemesis::start(cfg).run();
    let text = report.render();
    eprintln!("{text}");
    let mut c = report.convergence.clone();
    c.sort_by(f64::total_cmp);
    figure(
        T,
        &format!(
            "seed 21, faults {:?}, {} checks, {} violations, heal convergence p50 {:.2} s p99 {:.2} s",
            report.faults,
            report.checks.values().sum::<u64>(),
            report.violations.len(),
            percentile(&c, 0.5),
            percentile(&c, 0.99)
        ),
    );
    assert!(report.faults.values().sum::<u64>() >= 3, "{text}");
    assert!(report.checks.values().sum::<u64>() > 0, "{text}");
    assert!(report.violations.is_empty(), "{text}");
}
