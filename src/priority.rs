//! Thread priorities: when the CPU is short, what keeps the node in the network (gossip,
//! validation, the actor, at the default priority) wins it over the HTTP server (nice
//! [`HTTP_NICE`]), which wins it over the miner (nice [`MINER_NICE`]): a node that mines on
//! every core still relays blocks and answers its dashboard at once.

/// The HTTP server's thread.
pub const HTTP_NICE: i32 = 5;
/// The miner's threads (those a search starts inherit it).
pub const MINER_NICE: i32 = 10;

/// Sets the calling thread's nice value to `nice` (on Linux a nice value belongs to one
/// thread, and threads it starts inherit it). Elsewhere, does nothing.
pub fn lower_this_thread(nice: i32, what: &str) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; PRIO_PROCESS with a thread id sets
        // that thread's nice value (Linux), and raising one's own nice value is always allowed.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if rc != 0 {
            tracing::debug!(
                "could not lower the {what} thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, what);
}
