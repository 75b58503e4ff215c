//! Planted bugs, for the simulator's test that each is caught (`tests/sim_mutants.rs`). Each
//! [`Mutation`] is a small, plausible mistake at one place of the product code. Without the
//! `mutants` feature [`active`] is the constant `false` and the compiler removes every
//! mutation point; with it, one mutation at a time is switched on at run time through
//! [`MUTATION`], so a single build tests them all.

/// The planted bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mutation {
    /// Fork choice off by one block: a branch with one block less work than the tip wins
    /// (chain/tree/process.rs).
    ForkChoiceOffByOne = 1,
    /// A reorganisation does not return the transfers of disconnected blocks to the mempool
    /// (chain/mempool.rs, `resync`).
    ReorgForgetsMempool = 2,
    /// The stall timeout is never armed: a peer holding the window's first block keeps it
    /// until its request's deadline (sync/bodies.rs).
    StallNeverArmed = 3,
    /// A served body is taken without checking its hash against the one asked
    /// (sync/bodies.rs).
    BodyHashUnchecked = 4,
    /// Headers are accepted without checking that each links to the one before
    /// (chain/headers.rs).
    HeadersUnlinked = 5,
    /// A stalling peer loses its heights but its requests stay in flight, so the same blocks
    /// are asked of two peers at once (sync/bodies.rs).
    StallKeepsRequests = 6,
}

impl Mutation {
    /// Every planted bug.
    pub const ALL: [Mutation; 6] = [
        Mutation::ForkChoiceOffByOne,
        Mutation::ReorgForgetsMempool,
        Mutation::StallNeverArmed,
        Mutation::BodyHashUnchecked,
        Mutation::HeadersUnlinked,
        Mutation::StallKeepsRequests,
    ];
}

/// The mutation switched on (`Mutation as u8`), 0 for none.
#[cfg(feature = "mutants")]
pub static MUTATION: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Switches `m` on (`None`: off). Process-wide: tests that use it run one at a time.
#[cfg(feature = "mutants")]
pub fn set(m: Option<Mutation>) {
    MUTATION.store(
        m.map_or(0, |m| m as u8),
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Whether mutation `m` is switched on; always `false` without the `mutants` feature.
#[inline(always)]
pub fn active(m: Mutation) -> bool {
    #[cfg(feature = "mutants")]
    {
        MUTATION.load(std::sync::atomic::Ordering::Relaxed) == m as u8
    }
    #[cfg(not(feature = "mutants"))]
    {
        let _ = m;
        false
    }
}
