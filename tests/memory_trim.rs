//! The allocator's free memory goes back to the system (`gossipchain::memory`), in a process
//! of its own: the figures are the whole process's.

use gossipchain::memory::{TRIM_MIN_FREE, heap_stats, trim, trim_due};

/// Many small blocks freed together (as a drained mempool leaves them) stay resident until a
/// trim, which gives most of them back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_memory_is_resident_until_a_trim() {
    let blocks: Vec<Vec<u8>> = (0..64_000u32).map(|i| vec![i as u8; 1000]).collect();
    let held = heap_stats().expect("glibc gives figures");
    // Every other block is kept: the freed ones cannot all go back by shrinking the heap's
    // top, only by a trim of the pages in its middle.
    let kept: Vec<Vec<u8>> = blocks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 64 == 0)
        .map(|(_, b)| b)
        .collect();
    let freed = heap_stats().expect("glibc gives figures");
    assert!(
        freed.in_use + (40 << 20) < held.in_use,
        "{held:?} then {freed:?}"
    );
    assert!(trim_due(&freed), "{freed:?}: {TRIM_MIN_FREE} idle wanted");
    trim();
    let trimmed = heap_stats().expect("glibc gives figures");
    assert!(
        trimmed.resident + (40 << 20) < freed.resident,
        "{freed:?} then {trimmed:?}"
    );
    assert!(!trim_due(&trimmed), "{trimmed:?}");
    assert_eq!(kept.len(), 1000);
}
