//! Thread priorities: when the CPU is short, what keeps the node in the network (gossip,
//! validation, the actor, the store writer, at the default priority) has it first; the HTTP
//! server handles every request but the cheapest in Linux's idle class ([`idle_this_thread`]),
//! where it gets what is left: a node that serves a crowd of dashboards still relays blocks at
//! once. The cheap ones (status reads, `POST /tx`) are answered at the default priority within
//! a CPU budget (`http::lanes`): in the idle class they waited seconds while the node
//! validated a load of transfers. The miner runs at the
//! normal class, [`lower_this_thread_by`] ten steps: in the idle class it got no CPU at all
//! while the node validated a load of transfers or another program kept the cores busy, and
//! block intervals stretched to many times the target; it pauses instead while the node
//! processes a block (`node/mining.rs`).
//!
//! A nice value only sets a thread's share of the CPU: a thread at nice 5 or 10 that is
//! running is not interrupted when a node thread wakes up, and the node thread can wait for
//! the rest of its time slice (milliseconds) on that core. A thread of the idle class is: the
//! scheduler hands its core to any other thread that becomes runnable, at once, and counts a
//! core running only idle-class threads as free when it places a waking thread. What it costs:
//! on a machine busy with other work (a build on every core, or the node's own validation of
//! a load of transfers), the HTTP server's idle lane gets almost no CPU until that work ends;
//! the node's own threads get their usual share.

/// The nice value of a thread that cannot enter the idle class ([`idle_this_thread`]).
pub const IDLE_FALLBACK_NICE: i32 = 19;

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

/// Makes the calling thread `steps` nicer than it is (at most 19), in the normal scheduling
/// class: it keeps a share of the CPU (a thread 10 steps nicer weighs a tenth of one at the
/// node's own value) however busy the machine is, which a thread of the idle class does not.
/// Elsewhere than Linux, does nothing.
pub fn lower_this_thread_by(steps: i32, what: &str) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and getpriority take no pointers; errno is this thread's own and is
        // cleared first because -1 is also a valid nice value.
        let now = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
            (*libc::__errno_location() == 0).then_some(nice)
        };
        lower_this_thread(now.unwrap_or(0).saturating_add(steps).min(19), what);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (steps, what);
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`; threads it starts
/// inherit it): it runs only on CPU no other thread wants, and gives its core up at once to
/// any thread that wakes. If that is refused, lowers it to nice [`IDLE_FALLBACK_NICE`].
/// Elsewhere, does nothing.
pub fn idle_this_thread(what: &str) {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the calling
        // thread, and any thread may move itself to SCHED_IDLE (Linux 2.6.39 and later).
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!(
                "could not move the {what} thread to the idle class: {}",
                std::io::Error::last_os_error()
            );
            lower_this_thread(IDLE_FALLBACK_NICE, what);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn idle_class_is_set_and_inherited() {
        let (policy, child) = std::thread::spawn(|| {
            idle_this_thread("test");
            // SAFETY: sched_getscheduler takes no pointers; pid 0 is the calling thread.
            let own = unsafe { libc::sched_getscheduler(0) };
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
                .join()
                .expect("no panic");
            (own, child)
        })
        .join()
        .expect("no panic");
        assert_eq!(policy, libc::SCHED_IDLE);
        assert_eq!(child, libc::SCHED_IDLE);
    }
}
