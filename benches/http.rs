//! The HTTP interface under load: `cargo bench --bench http`.
//!
//! Two nodes on 127.0.0.1 (mDNS off), A dialled by B, each with its HTTP server. Prints:
//!
//! 1. API reads per second on A: [`READERS`] keep-alive clients for [`READ_FOR`] each on
//!    `/blocks/tip/height`, `/node/status` and `/blocks` (a page of ten blocks).
//! 2. SSE fan-out: [`SSE_CLIENTS`] clients on A's `/events` while A mines [`FANOUT_BLOCKS`]
//!    blocks that B receives by gossip: how many `tip` events arrived, and the delay from the
//!    node's own event to each client's receipt (p50, p99, max).
//! 3. Block propagation A -> B (from the moment A's miner found the block to B's acceptance),
//!    p50 and p99 over rounds of [`ROUND_BLOCKS`] blocks, alternating an idle HTTP server with
//!    a busy one (the readers and the SSE clients of 1 and 2 on A, all the time); the ratio of
//!    the p99s (target: busy <= 1.2x idle).

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

/// Concurrent readers.
const READERS: usize = 8;
/// How long each read route is measured.
const READ_FOR: Duration = Duration::from_secs(3);
/// Event stream clients.
const SSE_CLIENTS: usize = 100;
/// Blocks mined while the event streams are measured.
const FANOUT_BLOCKS: u64 = 30;
/// Blocks in one propagation round.
const ROUND_BLOCKS: usize = 25;
/// Propagation rounds of each kind (idle, busy), interleaved.
const ROUNDS: usize = 4;
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
        .pool_max_idle_per_host(READERS * 2)
        .build()
        .expect("client")
}

/// Readers on `url` until `stop`; counts answers into `count`.
fn spawn_readers(
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..READERS)
        .map(|i| {
            let (url, stop, count) = (urls[i % urls.len()].clone(), stop.clone(), count.clone());
            let c = client();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = c.get(&url).send().await.expect("the server answers");
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

/// Opens [`SSE_CLIENTS`] event streams on `server` and waits until each is live.
async fn open_streams(
    server: &HttpServer,
    tips: &mpsc::UnboundedSender<(u64, Instant)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let streams: Vec<_> = (0..SSE_CLIENTS)
        .map(|_| {
            spawn_sse(
                format!("{}/events", server.url()),
                tips.clone(),
                ready_tx.clone(),
            )
        })
        .collect();
    for _ in 0..SSE_CLIENTS {
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

fn main() {
    common::block_on(async {
        let params = gossipchain::testkit::params();
        let a = Node::start(tempfile::tempdir().unwrap(), &params, DEADLINE).await;
        let b = Node::start(tempfile::tempdir().unwrap(), &params, DEADLINE).await;
        b.handle.dial(a.addr.clone()).await.expect("B dials A");
        let ((sa, _da), (sb, _db)) = (serve(&a).await, serve(&b).await);
        // B's accepted blocks, as they happen.
        let (btx, mut b_blocks) = mpsc::unbounded_channel();
        let mut b_events = b.handle.subscribe();
        tokio::spawn(async move {
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
        println!("\nAPI reads, {READERS} keep-alive clients, {READ_FOR:?} each:");
        for path in ["/blocks/tip/height", "/node/status", "/blocks"] {
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let t0 = Instant::now();
            let tasks = spawn_readers(
                vec![format!("{}{path}", sa.url())],
                stop.clone(),
                count.clone(),
            );
            tokio::time::sleep(READ_FOR).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await.expect("reader");
            }
            let n = count.load(Ordering::Relaxed);
            println!(
                "  GET {path:<20} {:>8.0} requests/s",
                n as f64 / t0.elapsed().as_secs_f64()
            );
        }

        // A's own tip events, live: the reference the streams' delays are measured from.
        let emitted: Arc<std::sync::Mutex<HashMap<u64, Instant>>> = Arc::default();
        let mut a_events = a.handle.subscribe();
        let em = emitted.clone();
        tokio::spawn(async move {
            while let Ok(e) = a_events.recv().await {
                if let NodeEvent::Tip { height, .. } = e.event {
                    em.lock().unwrap().insert(height, Instant::now());
                }
            }
        });

        // 2. SSE fan-out while A mines and relays to B.
        let (tips_tx, mut tips_rx) = mpsc::unbounded_channel();
        let sse = open_streams(&sa, &tips_tx).await;
        let start = a.handle.status().height;
        for _ in 0..FANOUT_BLOCKS {
            propagate(&a, &mut b_blocks).await;
        }
        let expected = SSE_CLIENTS * FANOUT_BLOCKS as usize;
        let mut delays = Vec::new();
        while delays.len() < expected {
            match tokio::time::timeout(Duration::from_secs(5), tips_rx.recv()).await {
                Ok(Some((h, at))) if h > start => {
                    let from = emitted.lock().unwrap()[&h];
                    delays.push(at.saturating_duration_since(from).as_secs_f64() * 1e3);
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        for t in sse {
            t.abort();
        }
        let delivered = delays.len();
        let d = Stats(delays);
        println!(
            "\nSSE fan-out, {SSE_CLIENTS} clients, {FANOUT_BLOCKS} blocks mined by A and relayed to B:\n  \
             {delivered} of {expected} tip events delivered; from the node's event to the client: \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.median(),
            d.quantile(0.99),
            d.max()
        );

        // 3. Propagation, idle vs busy, interleaved.
        println!("\nblock propagation A -> B, rounds of {ROUND_BLOCKS} blocks, interleaved:");
        let mut idle = Vec::new();
        let mut busy = Vec::new();
        let reads = Arc::new(AtomicU64::new(0));
        for round in 0..2 * ROUNDS {
            let loaded = round % 2 == 1;
            let stop = Arc::new(AtomicBool::new(false));
            let (readers, streams) = if loaded {
                let streams = open_streams(&sa, &tips_tx).await;
                let readers = spawn_readers(
                    vec![
                        format!("{}/blocks", sa.url()),
                        format!("{}/node/status", sa.url()),
                        format!("{}/blocks/tip/height", sa.url()),
                    ],
                    stop.clone(),
                    reads.clone(),
                );
                (readers, streams)
            } else {
                (Vec::new(), Vec::new())
            };
            let before = reads.load(Ordering::Relaxed);
            let t0 = Instant::now();
            let mut this = Vec::new();
            for _ in 0..ROUND_BLOCKS {
                this.push(propagate(&a, &mut b_blocks).await);
            }
            let rate = (reads.load(Ordering::Relaxed) - before) as f64 / t0.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for t in readers {
                t.await.expect("reader");
            }
            for t in streams {
                t.abort();
            }
            let mut events = 0;
            while tips_rx.try_recv().is_ok() {
                events += 1;
            }
            let st = Stats(this.clone());
            if loaded {
                println!(
                    "  busy: p50 {:.2} ms, p99 {:.2} ms ({rate:.0} API reads/s and {events} tip events streamed alongside)",
                    st.median(),
                    st.quantile(0.99)
                );
                busy.extend(this);
            } else {
                println!(
                    "  idle: p50 {:.2} ms, p99 {:.2} ms",
                    st.median(),
                    st.quantile(0.99)
                );
                idle.extend(this);
            }
        }
        let (i, b_) = (Stats(idle), Stats(busy));
        println!(
            "  all {} blocks of each: idle p50 {:.2} ms, p99 {:.2} ms; busy ({READERS} readers + \
             {SSE_CLIENTS} event streams) p50 {:.2} ms, p99 {:.2} ms\n  p99 busy / idle = {:.2}x \
             (target <= 1.2x)",
            ROUND_BLOCKS * ROUNDS,
            i.median(),
            i.quantile(0.99),
            b_.median(),
            b_.quantile(0.99),
            b_.quantile(0.99) / i.quantile(0.99)
        );
        println!("load average at the end {}", load_average());
        sa.shutdown().await;
        sb.shutdown().await;
        b.stop().await;
        a.stop().await;
    });
}
