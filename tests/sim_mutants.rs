//! The simulator bites: each planted bug of `gossipchain::mutants` is switched on in turn and
//! must make some seed of the faulty scenarios (tests/sim) fail a check within
//! [`MAX_SEEDS`] seeds; the seed that caught it is printed. Needs the `mutants` feature:
//! `cargo test --release --features mutants --test sim_mutants -- --nocapture`.

mod sim;

use gossipchain::mutants::{self, Mutation};

/// Seeds tried per mutation at most.
const MAX_SEEDS: u64 = 300;

#[test]
fn every_planted_bug_is_caught_within_a_few_hundred_seeds() {
    let mut missed = Vec::new();
    for m in Mutation::ALL {
        mutants::set(Some(m));
        let caught = (0..MAX_SEEDS).find_map(|seed| sim::check_seed(seed).map(|why| (seed, why)));
        mutants::set(None);
        match caught {
            Some((seed, why)) => println!("{m:?}: caught by seed {seed}: {why}"),
            None => missed.push(m),
        }
    }
    assert!(
        missed.is_empty(),
        "not caught in {MAX_SEEDS} seeds: {missed:?}"
    );
}
