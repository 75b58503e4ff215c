//! The HTTP interface under load: `cargo bench --bench http`.
//!
//! Two nodes on 127.0.0.1 (mDNS off), A dialled by B, each with its HTTP server, in this
//! process. The load on A's server comes from a separate process (this binary again, run as a
//! load generator), so that the clients' own work is not counted against the node, and every
//! figure says how much CPU each side used. The clients of a real node are on other machines:
//! here the load generator runs in Linux's idle scheduling class, so that it takes only CPU
//! the nodes leave and never holds a core a node thread wakes up to (it would otherwise
//! compete with both nodes for the 2 cores as an equal). Each round says how many reads per
//! second it actually served, against how many were asked. Prints:
//!
//! 1. API reads per second on A: the load generator flat out on [`LOAD_CONNECTIONS`] keep-alive
//!    connections for [`READ_FOR`] each on `/blocks/tip/height`, `/node/status` and `/blocks`
//!    (a page of ten blocks).
//! 2. SSE fan-out: [`SSE_CLIENTS`] clients (in a load generator process) on A's `/events`
//!    while A mines [`FANOUT_BLOCKS`] blocks, one every [`BLOCK_EVERY`], that B receives by
//!    gossip: how many `tip` events arrived, and the delay from the node's own event to each
//!    client's receipt (p50, p99, max; both times on CLOCK_MONOTONIC, which every process of
//!    the machine shares).
//! 3. Block propagation A -> B (from the moment A's miner found the block to B's acceptance),
//!    in [`ROUNDS`] rounds of [`ROUND_BLOCKS`] blocks, one mined every [`BLOCK_EVERY`], for each
//!    load, interleaved: idle; busy (a busy dashboard crowd: [`BUSY_RATE`] reads/s and
//!    [`SSE_CLIENTS`] event streams); and flat out (reads as fast as the server answers, plus
//!    the streams: overload). A round starts once the load has run for [`WARM_UP`], and its
//!    reads per second are counted over the round itself. The medians over the rounds of p50
//!    and p99, and the ratio of the p99s (target: busy <= 1.2x idle).

mod common;

use common::{Node, Stats, load_average};
use futures::StreamExt;
use gossipchain::http::{self, HttpConfig, HttpServer};
use gossipchain::node::events::NodeEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Keep-alive connections the load generator reads on.
const LOAD_CONNECTIONS: usize = 8;
/// How long each read route is measured.
const READ_FOR: Duration = Duration::from_secs(3);
/// Event stream clients.
const SSE_CLIENTS: usize = 100;
/// Blocks mined while the event streams are measured.
const FANOUT_BLOCKS: u64 = 30;
/// Reads per second of the busy rounds: a hundred open dashboards each reading ten times a
/// second (one reads about four times per block, and polls every 5 s).
const BUSY_RATE: u64 = 1000;
/// Blocks in one propagation round.
const ROUND_BLOCKS: usize = 100;
/// One block is mined every so often in a propagation round (far more often than any real
/// chain, but with the node idle between two blocks, as it is between two real ones), so that
/// a round lasts long enough for its load to be steady. It is longer than the server's event
/// batch delay ([`gossipchain::http::sse::BATCH_DELAY`]) plus the fan-out to the streams, as
/// the time between two real blocks is.
const BLOCK_EVERY: Duration = Duration::from_millis(10);
/// How long the load runs before a round starts: its connections and streams open, its
/// schedule steady.
const WARM_UP: Duration = Duration::from_millis(300);
/// Propagation rounds of each load, interleaved.
const ROUNDS: usize = 7;
/// The routes the busy and flat-out rounds read, in turn.
const BUSY_PATHS: &str = "/blocks,/node/status,/blocks/tip/height";
/// Set in the load generator's environment: `URL RATE PATHS STREAMS` (RATE 0: flat out;
/// PATHS comma-separated, or `-`: no reads, and the arrival of every `tip` event reported).
const LOAD_ENV: &str = "GOSSIPCHAIN_BENCH_HTTP_LOAD";
/// Longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(60);

async fn serve(node: &Node) -> (HttpServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = HttpConfig {
        addr: "127.0.0.1:0".parse().expect("an address"),
        fallback: false,
        cors: Vec::new(),
    };
    let server = http::start(node.handle.clone(), config, dir.path())
        .await
        .expect("HTTP starts");
    (server, dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .pool_max_idle_per_host(2)
        .build()
        .expect("client")
}

/// Readers on `urls` until `stop`, one keep-alive connection each, [`LOAD_CONNECTIONS`] of
/// them: `rate` reads per second in all on a fixed schedule (0: each as fast as the server
/// answers). Counts answers into `count`.
fn spawn_readers(
    urls: Vec<String>,
    rate: u64,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..LOAD_CONNECTIONS)
        .map(|i| {
            let (stop, count, urls) = (stop.clone(), count.clone(), urls.clone());
            let c = client();
            tokio::spawn(async move {
                let mut tick = (rate > 0).then(|| {
                    let mut t = tokio::time::interval(Duration::from_secs_f64(
                        LOAD_CONNECTIONS as f64 / rate as f64,
                    ));
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = &mut tick {
                        t.tick().await;
                    }
                    let url = &urls[n % urls.len()];
                    n += 1;
                    let r = c.get(url).send().await.expect("the server answers");
                    assert!(r.status().is_success(), "{url}: {}", r.status());
                    r.bytes().await.expect("a body");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// An event stream client: sends (height, when) for each `tip` event.
fn spawn_sse(
    url: String,
    tips: mpsc::UnboundedSender<(u64, Instant)>,
    ready: mpsc::UnboundedSender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .expect("events open");
        let mut stream = r.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let now = Instant::now();
                let mut event = "message";
                let mut data = "";
                for line in frame.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data = d.trim();
                    }
                }
                match event {
                    "hello" => {
                        let _ = ready.send(());
                    }
                    "tip" => {
                        let v: serde_json::Value = serde_json::from_str(data).expect("JSON");
                        let h = v["height"].as_u64().expect("a height");
                        if tips.send((h, now)).is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    })
}

/// Opens `n` event streams on the server at `base` and waits until each is live.
async fn open_streams(
    base: &str,
    n: usize,
    tips: &mpsc::UnboundedSender<(u64, Instant)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let streams: Vec<_> = (0..n)
        .map(|_| spawn_sse(format!("{base}/events"), tips.clone(), ready_tx.clone()))
        .collect();
    for _ in 0..n {
        tokio::time::timeout(DEADLINE, ready_rx.recv())
            .await
            .expect("every stream opens");
    }
    streams
}

/// Mines one block on A; returns how long B took to accept it from the moment it was found.
async fn propagate(a: &Node, b_blocks: &mut mpsc::UnboundedReceiver<(String, Instant)>) -> f64 {
    let info = a
        .handle
        .mine_one()
        .await
        .expect("node runs")
        .expect("a block");
    let found = info.found_at.expect("mined here");
    let want = info.hash.to_hex();
    loop {
        let (hash, at) = tokio::time::timeout(DEADLINE, b_blocks.recv())
            .await
            .expect("B gets the block")
            .expect("B runs");
        if hash == want {
            return at.saturating_duration_since(found).as_secs_f64() * 1e3;
        }
    }
}

/// The load generator's side: `spec` is [`LOAD_ENV`]'s value. Opens the streams, says
/// `ready`, reads until its standard input closes, then prints (with PATHS `-`) a line
/// `tip HEIGHT SECS` for each tip event a stream received (SECS on
/// [`common::monotonic_secs`]'s clock) and `report READS TIPS CPU_SECS WALL_SECS`, and exits. Each byte read on its standard input
/// before that makes it print `count READS TIPS` (what it has done so far).
fn load_generator(spec: &str) {
    // Remote clients: CPU the nodes leave, and never in a node thread's way (see the top).
    // Set before the runtime starts, so that every thread of this process inherits it.
    gossipchain::priority::idle_this_thread("load generator");
    let parts: Vec<&str> = spec.split(' ').collect();
    let [base, rate, paths, streams] = parts[..] else {
        panic!("{LOAD_ENV}: want URL RATE PATHS STREAMS, got {spec:?}");
    };
    let rate: u64 = rate.parse().expect("a rate");
    let n: usize = streams.parse().expect("a stream count");
    let record = paths == "-";
    let urls: Vec<String> = if record {
        Vec::new()
    } else {
        paths.split(',').map(|p| format!("{base}{p}")).collect()
    };
    let cpu0 = common::process_cpu_secs();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            // Every arrival is later than this (to read `Instant`s on the shared clock).
            let (base_at, base_secs) = (Instant::now(), common::monotonic_secs());
            let (tips_tx, mut tips_rx) = mpsc::unbounded_channel();
            let streams = open_streams(base, n, &tips_tx).await;
            println!("ready");
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let t0 = Instant::now();
            let readers = if record {
                Vec::new()
            } else {
                spawn_readers(urls, rate, stop.clone(), count.clone())
            };
            let mut tips = 0u64;
            let mut arrivals = Vec::new();
            let mut stdin = tokio::io::stdin();
            let mut byte = [0u8; 1];
            loop {
                tokio::select! {
                    r = tokio::io::AsyncReadExt::read(&mut stdin, &mut byte) => {
                        if matches!(r, Ok(0) | Err(_)) {
                            break;
                        }
                        println!("count {} {tips}", count.load(Ordering::Relaxed));
                    }
                    Some((h, at)) = tips_rx.recv() => {
                        tips += 1;
                        if record {
                            let secs = at.saturating_duration_since(base_at).as_secs_f64();
                            arrivals.push((h, base_secs + secs));
                        }
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                r.await.expect("reader");
            }
            let wall = t0.elapsed().as_secs_f64();
            for s in streams {
                s.abort();
            }
            let cpu = common::cpu_delta(cpu0, common::process_cpu_secs());
            for (h, secs) in arrivals {
                println!("tip {h} {secs:.6}");
            }
            println!(
                "report {} {tips} {cpu:.3} {wall:.3}",
                count.load(Ordering::Relaxed)
            );
        });
}

/// A load generator process on A's server.
struct LoadGen {
    child: tokio::process::Child,
    out: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// What a load generator did.
struct LoadReport {
    reads: u64,
    /// Each tip event's height and arrival ([`common::monotonic_secs`]), with PATHS `-`.
    arrivals: Vec<(u64, f64)>,
    cpu_secs: f64,
    wall_secs: f64,
}

impl LoadGen {
    /// Starts one and waits until its streams are open.
    async fn start(base: &str, rate: u64, paths: &str, streams: usize) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
            .env(LOAD_ENV, format!("{base} {rate} {paths} {streams}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the load generator starts");
        let mut out = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(DEADLINE, out.next_line())
            .await
            .expect("the load generator gets ready in time")
            .expect("its output");
        assert_eq!(line.as_deref(), Some("ready"));
        Self { child, out }
    }

    /// Reads and tip events it has had so far.
    async fn count(&mut self) -> (u64, u64) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b".")
            .await
            .expect("the load generator runs");
        stdin.flush().await.expect("the load generator runs");
        let line = tokio::time::timeout(DEADLINE, self.out.next_line())
            .await
            .expect("the load generator counts in time")
            .expect("its output")
            .expect("a count");
        let f: Vec<u64> = line
            .strip_prefix("count ")
            .expect("a count line")
            .split(' ')
            .map(|n| n.parse().expect("a number"))
            .collect();
        (f[0], f[1])
    }

    /// Stops it and reads its report.
    async fn stop(mut self) -> LoadReport {
        drop(self.child.stdin.take());
        let mut arrivals = Vec::new();
        let line = loop {
            let line = tokio::time::timeout(DEADLINE, self.out.next_line())
                .await
                .expect("the load generator reports in time")
                .expect("its output")
                .expect("a report");
            let Some(tip) = line.strip_prefix("tip ") else {
                break line;
            };
            let (h, secs) = tip.split_once(' ').expect("tip HEIGHT SECS");
            arrivals.push((h.parse().expect("a height"), secs.parse().expect("seconds")));
        };
        let f: Vec<&str> = line
            .strip_prefix("report ")
            .expect("a report line")
            .split(' ')
            .collect();
        let _ = self.child.wait().await;
        LoadReport {
            reads: f[0].parse().expect("reads"),
            arrivals,
            cpu_secs: f[2].parse().expect("cpu"),
            wall_secs: f[3].parse().expect("wall"),
        }
    }
}

/// The loads of the propagation rounds.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    Idle,
    Busy,
    FlatOut,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Idle => "idle",
            Load::Busy => "busy",
            Load::FlatOut => "flat out",
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        load_generator(&spec);
        return;
    }
    // B, the receiving peer, runs on a runtime of its own, as it would on another machine:
    // A's HTTP work is never queued ahead of B's tasks (they share only the 2 cores, through
    // the OS scheduler, with A and the load generator).
    let b_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("B's runtime");
    let b_rt = b_runtime.handle().clone();
    common::block_on(async move {
        let params = gossipchain::testkit::params();
        let a = Node::start(tempfile::tempdir().unwrap(), &params, DEADLINE).await;
        let p = params.clone();
        let b = b_rt
            .spawn(async move { Node::start(tempfile::tempdir().unwrap(), &p, DEADLINE).await })
            .await
            .expect("B starts");
        b.handle.dial(a.addr.clone()).await.expect("B dials A");
        let (sa, _da) = serve(&a).await;
        let b_node = b.handle.clone();
        let (sb, _db) = b_rt
            .spawn(async move {
                let d = tempfile::tempdir().expect("temp dir");
                let config = HttpConfig {
                    addr: "127.0.0.1:0".parse().expect("an address"),
                    fallback: false,
                    cors: Vec::new(),
                };
                let server = http::start(b_node, config, d.path())
                    .await
                    .expect("HTTP starts");
                (server, d)
            })
            .await
            .expect("B's HTTP starts");
        // B's accepted blocks, as they happen (timed on B's runtime).
        let (btx, mut b_blocks) = mpsc::unbounded_channel();
        let mut b_events = b.handle.subscribe();
        b_rt.spawn(async move {
            while let Ok(e) = b_events.recv().await {
                if let NodeEvent::Block(arr) = e.event
                    && btx.send((arr.hash.to_hex(), Instant::now())).is_err()
                {
                    return;
                }
            }
        });
        // A short chain, so that /blocks pages are full, and B in the gossip mesh.
        for _ in 0..12 {
            propagate(&a, &mut b_blocks).await;
        }
        println!(
            "two nodes on 127.0.0.1, test chain at height {}; load average {}",
            a.handle.status().height,
            load_average()
        );

        // 1. Reads per second.
        println!(
            "\nAPI reads, a load generator process flat out on {LOAD_CONNECTIONS} keep-alive \
             connections, {READ_FOR:?} each:"
        );
        for path in ["/blocks/tip/height", "/node/status", "/blocks"] {
            let generator = LoadGen::start(&sa.url(), 0, path, 0).await;
            let cpu0 = common::process_cpu_secs();
            tokio::time::sleep(READ_FOR).await;
            let r = generator.stop().await;
            let node_cpu = common::cpu_delta(cpu0, common::process_cpu_secs());
            println!(
                "  GET {path:<20} {:>8.0} requests/s (CPU: nodes {:.0}%, load generator {:.0}%)",
                r.reads as f64 / r.wall_secs,
                100.0 * node_cpu / r.wall_secs,
                100.0 * r.cpu_secs / r.wall_secs
            );
        }

        // A's own tip events, live: the reference the streams' delays are measured from (on
        // the clock every process shares).
        let emitted: Arc<std::sync::Mutex<HashMap<u64, f64>>> = Arc::default();
        let mut a_events = a.handle.subscribe();
        let em = emitted.clone();
        tokio::spawn(async move {
            while let Ok(e) = a_events.recv().await {
                if let NodeEvent::Tip { height, .. } = e.event {
                    em.lock().unwrap().insert(height, common::monotonic_secs());
                }
            }
        });

        // 2. SSE fan-out while A mines and relays to B; the clients in a load generator
        // process (remote clients, like the rounds' below).
        let mut generator = LoadGen::start(&sa.url(), 0, "-", SSE_CLIENTS).await;
        let start = a.handle.status().height;
        let mut pace = tokio::time::interval(BLOCK_EVERY);
        for _ in 0..FANOUT_BLOCKS {
            pace.tick().await;
            propagate(&a, &mut b_blocks).await;
        }
        let expected = SSE_CLIENTS * FANOUT_BLOCKS as usize;
        let until = Instant::now() + Duration::from_secs(5);
        while (generator.count().await.1 as usize) < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report = generator.stop().await;
        let emitted = emitted.lock().unwrap().clone();
        let delays: Vec<f64> = report
            .arrivals
            .iter()
            .filter(|(h, _)| *h > start)
            .map(|(h, at)| {
                // Recorded by A's own subscriber, which may run after a stream's client.
                let from = emitted.get(h).copied().unwrap_or(*at);
                (at - from).max(0.0) * 1e3
            })
            .collect();
        let delivered = delays.len();
        let d = Stats(delays);
        println!(
            "\nSSE fan-out, {SSE_CLIENTS} clients in a load generator process, {FANOUT_BLOCKS} \
             blocks mined by A (one every {BLOCK_EVERY:?}) and relayed to B:\n  \
             {delivered} of {expected} tip events delivered; from the node's event to the client: \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.median(),
            d.quantile(0.99),
            d.max()
        );

        // 3. Propagation under each load, interleaved (the order turns each round).
        println!(
            "\nblock propagation A -> B, {ROUNDS} rounds of {ROUND_BLOCKS} blocks per load (one \
             every {BLOCK_EVERY:?}), interleaved; load from a separate process in the idle \
             class, running {WARM_UP:?} before each round; load average {}:",
            load_average()
        );
        let loads = [Load::Idle, Load::Busy, Load::FlatOut];
        let mut p50s: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut p99s: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut all: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut served: HashMap<&str, Vec<f64>> = HashMap::new();
        for round in 0..ROUNDS {
            for k in 0..loads.len() {
                let load = loads[(round + k) % loads.len()];
                let mut generator = match load {
                    Load::Idle => None,
                    Load::Busy => {
                        Some(LoadGen::start(&sa.url(), BUSY_RATE, BUSY_PATHS, SSE_CLIENTS).await)
                    }
                    Load::FlatOut => {
                        Some(LoadGen::start(&sa.url(), 0, BUSY_PATHS, SSE_CLIENTS).await)
                    }
                };
                let before = match &mut generator {
                    Some(g) => {
                        tokio::time::sleep(WARM_UP).await;
                        Some(g.count().await)
                    }
                    None => None,
                };
                let cpu0 = common::process_cpu_secs();
                let t0 = Instant::now();
                let mut this = Vec::new();
                let mut pace = tokio::time::interval(BLOCK_EVERY);
                for _ in 0..ROUND_BLOCKS {
                    pace.tick().await;
                    this.push(propagate(&a, &mut b_blocks).await);
                }
                let wall = t0.elapsed().as_secs_f64();
                let node_cpu = 100.0 * common::cpu_delta(cpu0, common::process_cpu_secs()) / wall;
                all.entry(load.name()).or_default().extend(&this);
                let st = Stats(this);
                let alongside = match (generator, before) {
                    (Some(mut g), Some((reads0, tips0))) => {
                        let (reads1, tips1) = g.count().await;
                        let r = g.stop().await;
                        let rate = (reads1 - reads0) as f64 / wall;
                        served.entry(load.name()).or_default().push(rate);
                        format!(
                            "; {rate:.0} reads/s and {} tip events served in the round, load \
                             generator CPU {:.0}%",
                            tips1 - tips0,
                            100.0 * r.cpu_secs / r.wall_secs
                        )
                    }
                    _ => String::new(),
                };
                println!(
                    "  round {} {:<8} p50 {:>6.2} ms, p99 {:>6.2} ms (nodes' CPU {node_cpu:.0}%{alongside})",
                    round + 1,
                    load.name(),
                    st.median(),
                    st.quantile(0.99),
                );
                p50s.entry(load.name()).or_default().push(st.median());
                p99s.entry(load.name()).or_default().push(st.quantile(0.99));
            }
        }
        let med = |m: &HashMap<&str, Vec<f64>>, l: Load| Stats(m[l.name()].clone()).median();
        println!("  medians over the {ROUNDS} rounds:");
        for l in loads {
            let pooled = Stats(all[l.name()].clone());
            println!(
                "    {:<8} p50 {:>6.2} ms, p99 {:>6.2} ms (all {} blocks pooled: p50 {:.2} ms, p99 {:.2} ms)",
                l.name(),
                med(&p50s, l),
                med(&p99s, l),
                pooled.0.len(),
                pooled.median(),
                pooled.quantile(0.99)
            );
        }
        let busy_served = Stats(served[Load::Busy.name()].clone());
        println!(
            "  reads served in the busy rounds: median {:.0}/s, lowest {:.0}/s (asked: {BUSY_RATE}/s); \
             flat out: median {:.0}/s",
            busy_served.median(),
            busy_served.min(),
            Stats(served[Load::FlatOut.name()].clone()).median()
        );
        let pooled = |l: Load| Stats(all[l.name()].clone()).quantile(0.99);
        println!(
            "  p99 busy ({BUSY_RATE} reads/s + {SSE_CLIENTS} event streams) / idle = {:.2}x \
             (target <= 1.2x; pooled {:.2}x); flat out / idle = {:.2}x (pooled {:.2}x, reported)",
            med(&p99s, Load::Busy) / med(&p99s, Load::Idle),
            pooled(Load::Busy) / pooled(Load::Idle),
            med(&p99s, Load::FlatOut) / med(&p99s, Load::Idle),
            pooled(Load::FlatOut) / pooled(Load::Idle)
        );
        println!("load average at the end {}", load_average());
        sa.shutdown().await;
        b_rt.spawn(async move {
            sb.shutdown().await;
            b.stop().await;
        })
        .await
        .expect("B stops");
        a.stop().await;
    });
}
