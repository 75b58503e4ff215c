//! A slow, lossy router in user space, since this kernel has no netem: a TUN device in the
//! router's namespace that every packet crossing subnets is routed through once. A thread holds
//! each packet for the link's delay (uniform within ± the jitter, so packets may overtake one
//! another, as with netem's `delay D J`) and drops a share of them at random, then writes it
//! back into the device, where the kernel forwards it on to its subnet. The endpoints see only
//! real IP packets late or lost: their TCP retransmits and reorders as on a real slow path.
//!
//! Routing in the router's namespace: a policy rule per link (`iif ethN lookup 100`) sends
//! what arrives from the subnets to table 100, whose only route is the TUN device; what the
//! thread writes back arrives from the TUN device, so the main table forwards it.

use crate::harness::must;
use std::collections::BinaryHeap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The device's name in the router's namespace.
const DEVICE: &str = "gcdly0";
/// The routing table of packets to delay.
const TABLE: &str = "100";
/// How often the thread looks at its stop flag when idle.
const IDLE: Duration = Duration::from_millis(10);
/// Packets the kernel queues for the thread (the device's transmit queue; 500 by default,
/// which a burst across 200 nodes overflows).
const QUEUE: &str = "20000";
/// The thread's nice value: a router is hardware of its own, not a process the nodes it
/// connects compete with for the CPU. At the nodes' priority, on a machine with more nodes
/// than cores, it fell behind and the kernel dropped a quarter of the packets.
const NICE: libc::c_int = -15;

/// What every crossing packet suffers.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub delay: Duration,
    pub jitter: Duration,
    /// Packets lost, per ten thousand.
    pub loss_per_10k: u32,
}

/// Packet counts of a delay line.
#[derive(Default)]
pub struct Counts {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    /// Packets the device did not take back (a failed write).
    pub unsent: AtomicU64,
}

/// The impairment in force, changeable while the line runs ([`DelayLine::set`]).
struct Live {
    delay_us: AtomicU64,
    jitter_us: AtomicU64,
    loss_per_10k: AtomicU64,
}

impl Live {
    fn new(imp: Impairment) -> Self {
        let live = Self {
            delay_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            loss_per_10k: AtomicU64::new(0),
        };
        live.store(imp);
        live
    }
    fn store(&self, imp: Impairment) {
        self.delay_us
            .store(imp.delay.as_micros() as u64, Ordering::Relaxed);
        self.jitter_us
            .store(imp.jitter.as_micros() as u64, Ordering::Relaxed);
        self.loss_per_10k
            .store(u64::from(imp.loss_per_10k), Ordering::Relaxed);
    }
    fn load(&self) -> Impairment {
        Impairment {
            delay: Duration::from_micros(self.delay_us.load(Ordering::Relaxed)),
            jitter: Duration::from_micros(self.jitter_us.load(Ordering::Relaxed)),
            loss_per_10k: self.loss_per_10k.load(Ordering::Relaxed) as u32,
        }
    }
}

/// The running delay line; dropping it stops the thread (the device goes with its file).
pub struct DelayLine {
    ns: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    live: Arc<Live>,
    thread: Option<JoinHandle<()>>,
}

impl DelayLine {
    /// Routes every packet that arrives on `links` of router namespace `ns` through a delay
    /// line with `imp`.
    #[track_caller]
    pub fn start(ns: &str, links: &[&str], imp: Impairment) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let live = Arc::new(Live::new(imp));
        let (stop2, counts2, ns2) = (stop.clone(), counts.clone(), ns.to_string());
        let live2 = live.clone();
        let thread = std::thread::Builder::new()
            .name("delay-line".into())
            .spawn(move || match open_tun_in(&ns2) {
                Ok(fd) => {
                    let _ = tx.send(Ok(()));
                    run(&fd, &live2, &stop2, &counts2);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .expect("a thread for the delay line");
        let opened = rx.recv().expect("the delay line thread answers");
        if let Err(e) = opened {
            panic!("delay line in {ns}: {e}");
        }
        let line = Self {
            ns: ns.to_string(),
            stop,
            counts,
            live,
            thread: Some(thread),
        };
        must(&[
            "ip",
            "-n",
            ns,
            "link",
            "set",
            DEVICE,
            "txqueuelen",
            QUEUE,
            "up",
        ]);
        must(&[
            "ip", "-n", ns, "route", "add", "default", "dev", DEVICE, "table", TABLE,
        ]);
        for link in links {
            must(&["ip", "-n", ns, "rule", "add", "iif", link, "lookup", TABLE]);
        }
        for conf in ["all", "default", DEVICE] {
            must(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.conf.{conf}.rp_filter=0"),
            ]);
        }
        line
    }

    /// Changes the impairment of the packets that arrive from now on (a link that gets worse,
    /// or better, while the nodes run).
    #[allow(dead_code)] // Not every scenario that includes this file changes its link.
    pub fn set(&self, imp: Impairment) {
        self.live.store(imp);
    }

    /// Packets forwarded late and packets dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.forwarded.load(Ordering::Relaxed),
            self.counts.dropped.load(Ordering::Relaxed),
        )
    }

    /// Packets lost beyond the impairment's, which a run should not have: those the kernel
    /// dropped because the thread did not take them in time (the device's queue was full),
    /// and those the device did not take back. None if `ip` does not say.
    pub fn overflows(&self) -> Option<u64> {
        let unsent = self.counts.unsent.load(Ordering::Relaxed);
        let out = std::process::Command::new("ip")
            .args(["-n", &self.ns, "-s", "link", "show", "dev", DEVICE])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "TX:  bytes packets errors dropped ..." and the figures on the next line.
        let mut lines = text.lines();
        lines.find(|l| l.trim_start().starts_with("TX:"))?;
        let dropped: u64 = lines.next()?.split_whitespace().nth(3)?.parse().ok()?;
        Some(dropped + unsent)
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves this thread into namespace `ns` (network namespaces are per thread) and creates the
/// TUN device there, non-blocking, without packet information headers.
fn open_tun_in(ns: &str) -> Result<OwnedFd, String> {
    let path = format!("/var/run/netns/{ns}\0");
    // SAFETY: plain system calls on a NUL-terminated path and on descriptors this function
    // owns; `ifr` is a zeroed `ifreq` of the size the kernel expects for TUNSETIFF.
    unsafe {
        let nsfd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if nsfd < 0 {
            return Err(format!("open {ns}: {}", std::io::Error::last_os_error()));
        }
        let nsfd = OwnedFd::from_raw_fd(nsfd);
        if libc::setns(nsfd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let fd = libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(format!("/dev/net/tun: {}", std::io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(DEVICE.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        if libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &ifr) != 0 {
            return Err(format!("TUNSETIFF: {}", std::io::Error::last_os_error()));
        }
        Ok(fd)
    }
}

/// A packet waiting for its time, soonest first (then in arrival order).
struct Held {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// xorshift64*: the randomness of delays and losses (seeded, so a run is repeatable in shape).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn run(fd: &OwnedFd, live: &Live, stop: &AtomicBool, counts: &Counts) {
    // SAFETY: sets this thread's own priority (Linux's setpriority on a thread id); failure
    // (no privilege) only leaves it at the default.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE);
    }
    let mut held = BinaryHeap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seq = 0u64;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let imp = live.load();
        let spread = 2 * imp.jitter.as_micros() as u64 + 1;
        let now = Instant::now();
        let wait = held
            .peek()
            .map_or(IDLE, |h: &Held| h.due.saturating_duration_since(now))
            .min(IDLE);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up to whole milliseconds: a packet is never sent early.
        let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, ms) };
        loop {
            // SAFETY: reads into a buffer of the length given, from a descriptor we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            if rng.below(10_000) < u64::from(imp.loss_per_10k) {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let offset = Duration::from_micros(rng.below(spread));
            let due = Instant::now() + imp.delay.saturating_sub(imp.jitter) + offset;
            seq += 1;
            held.push(Held {
                due,
                seq,
                packet: buf[..n as usize].to_vec(),
            });
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            let h = held.pop().expect("peeked");
            // SAFETY: writes a whole packet from a buffer of its length to a descriptor we own.
            let n =
                unsafe { libc::write(fd.as_raw_fd(), h.packet.as_ptr().cast(), h.packet.len()) };
            if n > 0 {
                counts.forwarded.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.unsent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
