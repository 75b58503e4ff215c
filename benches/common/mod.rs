//! Shared helpers of the benchmarks: statistics over repeated measurements, the machine's load,
//! CPU-time clocks, and a node running in the benchmark's process on 127.0.0.1.
//!
//! Each benchmark uses a subset of these.

#![allow(dead_code)]

pub mod chains;

use gossipchain::chain::ChainParams;
use gossipchain::node::{self, NodeConfig, NodeHandle};
use libp2p::Multiaddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// The 1-minute load average, to judge how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Resident memory (VmRSS) of process `pid` ("self" for this one), kB.
pub fn rss_kb(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A statistic over repeated measurements.
pub struct Stats(pub Vec<f64>);

impl Stats {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    pub fn min(&self) -> f64 {
        self.sorted()[0]
    }
    pub fn max(&self) -> f64 {
        *self.sorted().last().expect("non-empty")
    }
    pub fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i]
    }
}

/// A CPU-time clock of `clock_gettime` (Linux): seconds of CPU this process (all threads,
/// finished ones included) or this thread has used; `None` elsewhere. std has no CPU clock.
fn cpu_clock(clock: i32) -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec (64-bit time_t and long on the 64-bit
        // Linux targets this builds for), and clock_gettime writes nothing else.
        let rc = unsafe { clock_gettime(clock, &mut ts) };
        (rc == 0 && cfg!(target_pointer_width = "64"))
            .then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = clock;
        None
    }
}

/// CPU seconds used by the whole process (CLOCK_PROCESS_CPUTIME_ID).
pub fn process_cpu_secs() -> Option<f64> {
    cpu_clock(2)
}

/// CPU seconds used by the calling thread (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_secs() -> Option<f64> {
    cpu_clock(3)
}

/// CLOCK_MONOTONIC in seconds, the clock `Instant` reads on Linux and the same in every
/// process of the machine (to compare times taken in two processes); NaN elsewhere.
pub fn monotonic_secs() -> f64 {
    cpu_clock(1).unwrap_or(f64::NAN)
}

/// Seconds between two CPU clock readings, NaN if the clock is missing.
pub fn cpu_delta(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    }
}

/// Runs `future` to completion on a multi-thread tokio runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// The links of `n` nodes as a ring plus chords to the opposite node (a Möbius ladder: 3 peers
/// each, diameter 3 for 10 nodes), as (dialler, dialled).
pub fn ring_with_chords(n: usize) -> Vec<(usize, usize)> {
    let mut l: Vec<_> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    l.extend((0..n / 2).map(|i| (i, i + n / 2)));
    l
}

/// Peers of node `i` in `links`.
pub fn degree(links: &[(usize, usize)], i: usize) -> usize {
    links.iter().filter(|(a, b)| *a == i || *b == i).count()
}

/// Asks `handle` what the REPL's `status` asks (one round trip through the node's command
/// queue, then the status snapshot) every `every` until `done`; returns the round trips, ms.
pub fn poll_status(
    handle: NodeHandle,
    every: Duration,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> JoinHandle<Vec<f64>> {
    tokio::spawn(async move {
        let mut times = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let t = std::time::Instant::now();
            handle.chain(0).await.expect("node running");
            let _ = handle.status();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(every).await;
        }
        times
    })
}

/// A node running in this process.
pub struct Node {
    pub handle: NodeHandle,
    pub task: JoinHandle<()>,
    /// Its TCP listen address with `/p2p/<peer id>`, to dial it.
    pub addr: Multiaddr,
    _dir: TempDir,
}

impl Node {
    /// Starts a node on `dir` (mDNS off, no peers, one mining thread, listening on 127.0.0.1)
    /// and waits up to `deadline` until it listens.
    pub async fn start(dir: TempDir, params: &ChainParams, deadline: Duration) -> Node {
        let mut c = NodeConfig::new(dir.path().to_path_buf(), params.clone());
        c.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
        c.net.behaviour.mdns = false;
        c.threads = 1;
        let (handle, task) = node::start(c).await.expect("node starts");
        let (s, ok) = handle.wait_for(deadline, |s| !s.listen.is_empty()).await;
        assert!(ok, "node never listened");
        let addr = s.listen[0]
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(s.peer_id));
        Node {
            handle,
            task,
            addr,
            _dir: dir,
        }
    }

    /// Shuts the node down and waits for its task.
    pub async fn stop(self) {
        self.handle.shutdown().await;
        self.task.await.expect("node task does not panic");
    }
}

/// The CPU model (Linux's /proc/cpuinfo), "unknown" elsewhere.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the CPU has the x86 SHA extensions (what the sha2 crate uses for SHA-256 when
/// present).
pub fn sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The Ed25519 verification backend curve25519-dalek picks at run time on this CPU (its AVX2
/// backend when the CPU has AVX2; its IFMA one needs a nightly build, so not here).
pub fn ed25519_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return "curve25519-dalek avx2";
    }
    "curve25519-dalek serial"
}
