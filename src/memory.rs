//! Memory given back to the system once a load has passed.
//!
//! glibc's allocator keeps what the program frees for its own reuse: a load of transfers fills
//! the mempool, the admission queue and gossipsub's caches, and when they drain the bytes stay
//! in the process's heaps (one arena per busy thread, up to eight per core), so the resident
//! size stays at its peak long after the node holds only its bounded caches
//! (`docs/operations.md`, Memory). [`spawn_trimmer`] compares every [`TRIM_EVERY`] the
//! process's resident anonymous memory with what the program has allocated
//! ([`mallinfo2`](libc::mallinfo2)) and, when the difference reaches [`TRIM_MIN_FREE`], hands
//! the free pages of every arena back with `malloc_trim(0)`, which no allocator setting does
//! by itself for pages in the middle of a heap.
//!
//! Under load the check trims too (free memory then comes and goes between two checks): what
//! it costs is the page faults of memory reused afterwards, a few milliseconds of CPU every
//! [`TRIM_EVERY`], against a resident size that follows what the node holds.
//!
//! Elsewhere than glibc (musl, macOS), [`spawn_trimmer`] does nothing.

use std::time::Duration;

/// How often the resident memory is compared with what is in use.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Resident bytes the program does not use that are kept without a trim: the churn of a few
/// steps of the node, which the allocator would hand out again at once.
pub const TRIM_MIN_FREE: usize = 16 << 20;

/// What the allocator holds, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// In use by the program (allocated and not freed).
    pub in_use: usize,
    /// The process's resident anonymous memory: what is in use, what the allocator keeps
    /// free without having given its pages back, and the threads' stacks.
    pub resident: usize,
}

impl HeapStats {
    /// Resident memory the program does not use: mostly free memory the allocator keeps.
    pub fn idle(&self) -> usize {
        self.resident.saturating_sub(self.in_use)
    }
}

/// The allocator's figures now, where it gives them (glibc on Linux).
pub fn heap_stats() -> Option<HeapStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no argument and returns a plain struct (glibc 2.33 and
        // later); it locks each arena while it reads.
        let info = unsafe { libc::mallinfo2() };
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let resident = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<usize>()
            .ok()?
            * 1024;
        Some(HeapStats {
            in_use: info.uordblks + info.hblkhd,
            resident,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Whether the resident memory the program does not use is worth a trim.
pub fn trim_due(stats: &HeapStats) -> bool {
    stats.idle() >= TRIM_MIN_FREE
}

/// Returns the allocator's free pages to the system now; `true` if some were. Does nothing
/// (and says `false`) elsewhere than glibc.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain size and only releases memory the allocator owns
        // and holds free.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Starts the thread that trims the allocator's free memory every [`TRIM_EVERY`] when at
/// least [`TRIM_MIN_FREE`] of the resident memory is not in use. It lives as long as the process; where the allocator
/// gives no figures it is not started.
pub fn spawn_trimmer() {
    if heap_stats().is_none() {
        return;
    }
    let started = std::thread::Builder::new()
        .name("memtrim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                let Some(before) = heap_stats() else { return };
                if !trim_due(&before) {
                    continue;
                }
                let t = std::time::Instant::now();
                let released = trim();
                let after = heap_stats().unwrap_or(before);
                tracing::debug!(
                    in_use_mb = before.in_use >> 20,
                    resident_mb = before.resident >> 20,
                    after_mb = after.resident >> 20,
                    released,
                    took_ms = t.elapsed().as_millis() as u64,
                    "allocator's free memory returned to the system"
                );
            }
        });
    if let Err(e) = started {
        tracing::warn!("memory trimming not started: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_idle_memory_is_kept() {
        let stats = |in_use, resident| HeapStats { in_use, resident };
        assert!(!trim_due(&stats(
            500 << 20,
            (500 << 20) + TRIM_MIN_FREE - 1
        )));
        assert!(trim_due(&stats(1 << 20, (1 << 20) + TRIM_MIN_FREE)));
        // In use beyond the resident size (swapped out): nothing idle.
        assert!(!trim_due(&stats(600 << 20, 500 << 20)));
    }
}
