//! Throughput under transfer load: `cargo bench --bench throughput`.
//!
//! Real `gossipchain` processes on 127.0.0.1 (mDNS and the DHT off, explicit dials, temp data
//! directories, a `--block-time 2s` chain, node 0 mining on one thread), in two topologies: 3
//! nodes in a line (A - B - C, A mining) and 10 nodes with 3 peers each (a ring with chords).
//!
//! Set-up: the data directories start with a chain this process built and wrote into their
//! stores: blocks 1 and 2 at the genesis target, then two blocks per wallet paying it their
//! coinbase (50 coins), stamped far enough behind the chain's schedule that they carry the
//! easiest target (a second each to build instead of hours). Once linked, node 0 mines: the
//! first blocks come fast until the chain is back on its schedule (the warm-up), then at the
//! target interval.
//!
//! Load: every wallet sends 1 coin (fee 0) to the next one, round-robin, so balances stay put;
//! each step's transfers are signed before its clock starts and posted through `POST /tx`,
//! spread round-robin over the nodes, at 100, 300, 1 000, 2 000, 3 000 a second and 1.2x the
//! chain's capacity (capacity: `max_block_txs - 1` transfers per block time). A wallet never has
//! more than [`MAX_PENDING`] transfers unconfirmed (the mempool's nonce-gap rule); a refused
//! transfer is posted again. Blocks are followed on node 0's event stream (`GET /events`) and
//! read back (`GET /block/{hash}`) from another node.
//!
//! Printed per step: offered and posted rates (the load generator's own CPU, so that it is seen
//! not to be the bottleneck), confirmed transfers/s and share of capacity, inclusion latency
//! p50/p99 (from the POST until the miner found the block, the "mined a block" line of its
//! log), block intervals, block propagation per hop by size class (each node's `GET /tree`
//! arrival time against that of the peer it got the block from: one machine, one clock), the
//! size of the relayed block message, bytes received per confirmed transfer per node (the
//! libp2p bandwidth and gossipsub per-topic counters of `GET /metrics`), `GET /node/status`
//! p50/p99 from a separate client, RSS of each node before, during and after, the share of
//! the transfers posted at least 1 s before a block was found that it carries when it has
//! room, and the log lines each node wrote.
//!
//! Environment: `THROUGHPUT_TOPOLOGY=line|mesh|both` (default both), `THROUGHPUT_STEPS=100,300`
//! (default `100,300,1000,2000,3000,cap` where `cap` is 1.2x the capacity),
//! `THROUGHPUT_STEP_SECS` (default 20), `THROUGHPUT_AFTER_SECS` (RSS after the load, default
//! 10), `THROUGHPUT_WALLETS` (default 200), `THROUGHPUT_BIN` (the node binary to run, default
//! this package's `gossipchain`), `THROUGHPUT_DETAIL` (set: each block of a step, its
//! transfers and the eligible ones it carries), `THROUGHPUT_RUST_LOG` (the nodes' `RUST_LOG`,
//! default `info`), `THROUGHPUT_LOGS` (a directory: the nodes' logs are copied there, and
//! `fates.txt`, one line per transfer: txid, first POST in ms, step, node posted to, wallet,
//! block height).

mod common;

use common::{cpu_delta, cpu_model, load_average, process_cpu_secs, rss_kb};
use gossipchain::chain::block::BLOCK_VERSION;
use gossipchain::chain::{
    Address, Block, ChainId, ChainParams, ChainState, Coinbase, Header, Transaction, Transfer,
    merkle, retarget,
};
use gossipchain::miner::{self, Mined};
use gossipchain::store::Store;
use gossipchain::testkit::key;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The node binary: `THROUGHPUT_BIN` if set (to compare two builds), else this package's.
fn bin() -> String {
    std::env::var("THROUGHPUT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gossipchain").into())
}
/// The chain's target interval.
const BLOCK_TIME_MS: u64 = 2000;
/// Longest any set-up wait may take.
const DEADLINE: Duration = Duration::from_secs(240);
/// Most unconfirmed transfers of one wallet: the mempool admits nonces up to 64 ahead of the
/// confirmed one.
const MAX_PENDING: u64 = 60;
/// Longest warm-up before the load starts.
const WARMUP_MAX: Duration = Duration::from_secs(150);
/// Most POSTs in flight at once.
const IN_FLIGHT: usize = 2048;
/// Pause between two `GET /node/status` of the latency probe.
const STATUS_EVERY: Duration = Duration::from_millis(20);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------------
// The chain the nodes start with.

/// Builds `2 * wallets` funding blocks (after blocks 1 and 2) on a `--block-time 2s` chain,
/// block `2 + k` paying wallet `k % wallets`, and returns the blocks and the time of block 1.
fn funding_chain(params: &ChainParams, wallets: &[Address]) -> (Vec<Block>, u64) {
    let n = 2 + 2 * wallets.len() as u64;
    let half_life_ms = 16 * BLOCK_TIME_MS;
    // Every parent from block 2 on is five half-lives behind the schedule (the easiest target,
    // 32x below the genesis one); the last block is a few seconds old.
    let behind = 5 * half_life_ms + 5000;
    let t1 = now_ms() - behind - BLOCK_TIME_MS * (n - 1) - 3000;
    let mut chain = ChainState::new(params.clone());
    let mut blocks = Vec::new();
    let cancel = AtomicBool::new(false);
    for h in 1..=n {
        let parent = chain.tip();
        let to = if h <= 2 {
            wallets[0]
        } else {
            wallets[(h as usize - 3) % wallets.len()]
        };
        let timestamp = if h == 1 {
            t1
        } else {
            t1 + behind + BLOCK_TIME_MS * (h - 1)
        };
        let txs = vec![Transaction::Coinbase(Coinbase {
            height: h,
            to,
            amount: params.block_reward,
        })];
        let mut header = Header {
            version: BLOCK_VERSION,
            height: h,
            prev_hash: parent,
            tx_root: merkle::tx_root(&txs.iter().map(|t| t.compute_txid()).collect::<Vec<_>>()),
            timestamp,
            bits: retarget::next_bits(params, &chain.parent_info(&parent).expect("parent")),
            nonce: 0,
        };
        let Mined::Found { header: solved, .. } = miner::solve(&header, 1, &cancel) else {
            unreachable!("never cancelled");
        };
        header = solved;
        let block = Block { header, txs };
        chain
            .process_block(Arc::new(block.clone()), now_ms() + 60_000)
            .expect("a funding block is valid");
        blocks.push(block);
    }
    (blocks, t1)
}

/// Writes the funding chain into the store of `dir`.
fn preload(dir: &Path, params: &ChainParams, blocks: &[Block]) {
    let mut chain = ChainState::new(params.clone());
    for b in blocks {
        chain
            .process_block(Arc::new(b.clone()), now_ms() + 60_000)
            .expect("valid");
    }
    let checked: Vec<_> = (1..=chain.height())
        .map(|h| chain.checked_at(h).expect("on the chain").clone())
        .collect();
    let store = Store::open(&dir.join("blocks.redb"), params).expect("store");
    store
        .commit(&checked, &[], chain.tip_key())
        .expect("store commit");
}

// ---------------------------------------------------------------------------------------------
// The node processes.

/// A running `gossipchain` process, killed and reaped when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
    base: String,
    token: String,
    peer_id: String,
    addr: String,
    _dir: TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// CPU seconds its thread named `name` has used (utime + stime of /proc), if found.
    fn thread_cpu(&self, name: &str) -> Option<f64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis; utime and stime are the 14th
            // and 15th of the whole line, in clock ticks (100 a second on Linux).
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            return Some(ticks / 100.0);
        }
        None
    }

    /// Open sockets (HTTP connections held by clients, libp2p's): what memory per connection
    /// adds to the RSS.
    fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
    }

    fn rss_mb(&self) -> f64 {
        rss_kb(&self.pid()).map_or(f64::NAN, |kb| kb as f64 / 1024.0)
    }

    /// Lines in its log so far.
    fn log_lines(&self) -> u64 {
        let mut f = match std::fs::File::open(&self.log) {
            Ok(f) => f,
            Err(_) => return 0,
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
        }
        n
    }
}

/// Starts a node on `dir` and waits until its API answers; reads its URL and token from the
/// log's dashboard line.
async fn spawn(dir: TempDir, client: &reqwest::Client) -> Proc {
    let log = dir.path().join("node.log");
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GOSSIPCHAIN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("THROUGHPUT_RUST_LOG").unwrap_or_else(|_| "info".into()),
    )
    .args(["node", "--data-dir"])
    .arg(dir.path())
    .args([
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--block-time",
        "2s",
        "--no-mdns",
        "--no-kad",
        "--threads",
        "1",
        "--no-repl",
        "--http",
        "127.0.0.1:0",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log file"));
    let child = cmd.spawn().expect("spawn gossipchain");
    let until = Instant::now() + DEADLINE;
    let (base, token) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("dashboard: ").nth(1) {
            let url = rest.split_whitespace().next().unwrap_or("");
            if let Some((base, token)) = url.split_once("/#token=") {
                break (base.to_string(), token.to_string());
            }
        }
        assert!(Instant::now() < until, "node never served HTTP: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut p = Proc {
        child,
        log,
        base,
        token,
        peer_id: String::new(),
        addr: String::new(),
        _dir: dir,
    };
    loop {
        let s = get_json(client, &format!("{}/node/status", p.base)).await;
        if let Ok(s) = s
            && let Some(a) = s["listen_addresses"].get(0).and_then(Value::as_str)
        {
            p.peer_id = s["peer_id"].as_str().unwrap_or_default().to_string();
            p.addr = format!("{a}/p2p/{}", p.peer_id);
            break;
        }
        assert!(Instant::now() < until, "node never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("{url}: {code} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))
}

async fn post_action(client: &reqwest::Client, p: &Proc, path: &str, body: Value) {
    let r = client
        .post(format!("{}{path}", p.base))
        .bearer_auth(&p.token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let code = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(code.is_success(), "POST {path}: {code} {text}");
}

/// The counters of `GET /metrics` this bench reads: inbound bytes of all connections, and
/// gossipsub's bytes received per topic (duplicates included).
#[derive(Clone, Default, Debug)]
struct Counters {
    inbound: f64,
    topics: HashMap<String, f64>,
}

async fn counters(client: &reqwest::Client, p: &Proc) -> Counters {
    let text = match client.get(format!("{}/metrics", p.base)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut c = Counters::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        // Registered as `libp2p_libp2p_bandwidth_bytes_total{protocols=...,direction=...}`.
        if name.contains("bandwidth_bytes") && name.to_lowercase().contains("inbound") {
            c.inbound += v;
        } else if name.starts_with("libp2p_topic_msg_recv_bytes_unfiltered")
            && let Some(topic) = name.split("hash=\"").nth(1)
        {
            let topic = topic.split('"').next().unwrap_or("").to_string();
            *c.topics.entry(topic).or_default() += v;
        }
    }
    c
}

// ---------------------------------------------------------------------------------------------
// Shared records of the load.

/// One signed transfer: the hex `POST /tx` takes.
struct Signed {
    hex: String,
}

/// A wallet of the load.
struct Wallet {
    /// Signed transfers by nonce.
    signed: Vec<Signed>,
    /// Next nonce to post.
    next: u64,
    /// Nonce after the last confirmed one.
    confirmed: u64,
}

/// What happened to one transfer.
#[derive(Clone, Default)]
struct Fate {
    /// First POST (ms since the epoch) and the step it was posted in.
    posted: Option<(u64, usize)>,
    /// Some node admitted it (200 or already known).
    admitted: bool,
    /// Height of the block that carries it.
    height: Option<u64>,
    /// The node it was first posted to.
    via: usize,
    /// When the miner (node 0) announced it on its event stream (ms since the epoch).
    at_miner: Option<u64>,
}

/// A block of the best chain seen during the load.
#[derive(Clone)]
struct Seen {
    height: u64,
    hash: String,
    transfers: usize,
}

#[derive(Default)]
struct Load {
    wallets: Vec<Wallet>,
    /// By txid: (wallet, nonce).
    index: HashMap<String, (usize, u64)>,
    /// By (wallet, nonce).
    fates: HashMap<(usize, u64), Fate>,
    blocks: Vec<Seen>,
    /// Refusals by code.
    refused: HashMap<String, u64>,
    /// Answers received, per step.
    answered: Vec<u64>,
    /// POSTs started, per step.
    sent: Vec<u64>,
    /// Times the generator found every wallet at [`MAX_PENDING`], per step.
    held: Vec<u64>,
    /// Status latencies (ms), per step.
    status: Vec<Vec<f64>>,
}

type Shared = Arc<Mutex<Load>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Load> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Signs, for each wallet, transfers up to `per_wallet` nonces past the next one to post.
fn sign_ahead(
    load: &mut Load,
    keys: &[ed25519_zebra::SigningKey],
    addrs: &[Address],
    chain_id: &ChainId,
    per_wallet: u64,
) {
    let n = keys.len();
    for w in 0..n {
        let want = load.wallets[w].next + per_wallet;
        while (load.wallets[w].signed.len() as u64) < want {
            let nonce = load.wallets[w].signed.len() as u64;
            let t = Transfer::sign(&keys[w], chain_id, addrs[(w + 1) % n], 1, 0, nonce);
            let tx = Transaction::Transfer(t);
            let txid = tx.compute_txid().to_hex();
            load.index.insert(txid, (w, nonce));
            load.wallets[w].signed.push(Signed {
                hex: hex::encode(tx.encode()),
            });
        }
    }
}

/// Follows node 0's `block` events; reads each block's txids from `reader` and records which
/// transfers it carries.
async fn follow_blocks(
    client: reqwest::Client,
    events: String,
    reader: String,
    shared: Shared,
    stop: Arc<AtomicBool>,
) {
    use futures::StreamExt;
    // A client without a deadline: the stream lasts the whole load.
    let stream_client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let resp = stream_client
        .get(format!("{events}/events"))
        .send()
        .await
        .expect("event stream");
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while !stop.load(Ordering::Relaxed) {
        let chunk = match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(_) => break,
            Err(_) => continue,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: tx") {
                // When the miner admitted a transfer: how far its mempool is behind the POSTs.
                let txid = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|v| v["txid"].as_str().map(str::to_string));
                if let Some(txid) = txid {
                    let mut s = lock(&shared);
                    if let Some(&key) = s.index.get(&txid) {
                        let fate = s.fates.entry(key).or_default();
                        fate.at_miner.get_or_insert(now_ms());
                    }
                }
                continue;
            }
            if !event.lines().any(|l| l == "event: block") {
                continue;
            }
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let hash = v["hash"].as_str().unwrap_or_default().to_string();
            let height = v["height"].as_u64().unwrap_or(0);
            // Read from another node than the miner, so that the miner's CPU goes to mining
            // and relaying; it may not have the block yet.
            let until = Instant::now() + Duration::from_secs(30);
            let block = loop {
                match get_json(&client, &format!("{reader}/block/{hash}")).await {
                    Ok(b) => break Some(b),
                    Err(_) if Instant::now() < until => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(_) => break None,
                }
            };
            let Some(block) = block else { continue };
            record_block(&mut lock(&shared), height, hash, &block);
        }
    }
}

/// Notes which transfers a block of the best chain (`GET /block/{hash}`) carries.
fn record_block(s: &mut Load, height: u64, hash: String, block: &Value) {
    let mut transfers = 0;
    for t in block["txs"].as_array().map_or(&[][..], Vec::as_slice) {
        let Some(id) = t["txid"].as_str() else {
            continue;
        };
        if let Some(&(w, nonce)) = s.index.get(id) {
            transfers += 1;
            s.fates.entry((w, nonce)).or_default().height = Some(height);
            let wallet = &mut s.wallets[w];
            wallet.confirmed = wallet.confirmed.max(nonce + 1);
            wallet.next = wallet.next.max(wallet.confirmed);
        }
    }
    s.blocks.push(Seen {
        height,
        hash,
        transfers,
    });
}

/// Asks each node's `GET /node/status` in turn until `stop`, recording the latency in the
/// step `step` names.
async fn probe_status(
    urls: Vec<String>,
    shared: Shared,
    step: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let ok = client
            .get(&urls[i % urls.len()])
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let k = step.load(Ordering::Relaxed);
        if ok && k != u64::MAX {
            let mut s = lock(&shared);
            let k = k as usize;
            if s.status.len() <= k {
                s.status.resize(k + 1, Vec::new());
            }
            s.status[k].push(ms);
        }
        i += 1;
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// Posts transfers at `rate` a second for `secs`, round-robin over the wallets (skipping those
/// at [`MAX_PENDING`]) and over `nodes`.
async fn offer(
    client: &reqwest::Client,
    nodes: &[String],
    shared: &Shared,
    step: usize,
    rate: f64,
    secs: f64,
) {
    let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut rr = 0usize;
    let mut node = 0usize;
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            break;
        }
        let due = (elapsed * rate) as u64;
        while sent < due {
            let job = {
                let mut s = lock(shared);
                let n = s.wallets.len();
                let mut pick = None;
                for k in 0..n {
                    let w = (rr + k) % n;
                    let wal = &s.wallets[w];
                    if wal.next - wal.confirmed < MAX_PENDING
                        && (wal.next as usize) < wal.signed.len()
                    {
                        pick = Some(w);
                        break;
                    }
                }
                match pick {
                    None => {
                        s.held[step] += 1;
                        None
                    }
                    Some(w) => {
                        rr = w + 1;
                        let nonce = s.wallets[w].next;
                        s.wallets[w].next += 1;
                        let hex = s.wallets[w].signed[nonce as usize].hex.clone();
                        let fate = s.fates.entry((w, nonce)).or_default();
                        if fate.posted.is_none() {
                            fate.posted = Some((now_ms(), step));
                            fate.via = node % nodes.len();
                        }
                        Some((w, nonce, hex))
                    }
                }
            };
            sent += 1;
            let Some((w, nonce, hex)) = job else {
                break;
            };
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            lock(shared).sent[step] += 1;
            let url = format!("{}/tx", nodes[node % nodes.len()]);
            node += 1;
            let (client, shared) = (client.clone(), shared.clone());
            tokio::spawn(async move {
                let answer = client
                    .post(url)
                    .header("Content-Type", "text/plain")
                    .body(hex)
                    .send()
                    .await;
                let code = match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        if status == 200 {
                            None
                        } else {
                            Some(
                                serde_json::from_str::<Value>(&body)
                                    .ok()
                                    .and_then(|v| v["code"].as_str().map(str::to_string))
                                    .unwrap_or_else(|| format!("http {status}")),
                            )
                        }
                    }
                    Err(e) => Some(if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "no answer".into()
                    }),
                };
                let mut s = lock(&shared);
                s.answered[step] += 1;
                match code {
                    None => s.fates.entry((w, nonce)).or_default().admitted = true,
                    Some(c) if c == "already_known" => {
                        s.fates.entry((w, nonce)).or_default().admitted = true
                    }
                    // Posted again after a lost answer, and confirmed meanwhile.
                    Some(c) if c == "nonce_too_low" => {
                        let wallet = &mut s.wallets[w];
                        wallet.confirmed = wallet.confirmed.max(nonce + 1);
                        wallet.next = wallet.next.max(wallet.confirmed);
                    }
                    Some(c) => {
                        *s.refused.entry(c).or_default() += 1;
                        // Posted again: the wallet's later nonces wait on this one.
                        let wallet = &mut s.wallets[w];
                        if nonce >= wallet.confirmed {
                            wallet.next = wallet.next.min(nonce);
                        }
                    }
                }
                drop(permit);
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What the load generator can send: POSTs of transfer-sized bodies for `secs` against a
/// server in this process that answers at once, the way [`offer`] sends them. Returns the
/// answers a second and the share of a core this process used.
async fn calibrate(secs: f64) -> (f64, f64) {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/tx",
        post(|body: String| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/tx", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    let body = "01".repeat(153);
    let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let answered = Arc::new(AtomicU64::new(0));
    let (t, cpu) = (Instant::now(), process_cpu_secs());
    while t.elapsed().as_secs_f64() < secs {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (client, url, body, answered) =
            (client.clone(), url.clone(), body.clone(), answered.clone());
        tokio::spawn(async move {
            if let Ok(r) = client
                .post(url)
                .header("Content-Type", "text/plain")
                .body(body)
                .send()
                .await
                && r.text().await.is_ok()
            {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    let _ = sem.acquire_many(IN_FLIGHT as u32).await;
    let wall = t.elapsed().as_secs_f64();
    server.abort();
    (
        answered.load(Ordering::Relaxed) as f64 / wall,
        cpu_delta(cpu, process_cpu_secs()) / wall,
    )
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// Nearest-rank percentile of `v` (sorted here), NaN if empty.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The size class of a block of `transfers`.
fn class(transfers: usize) -> &'static str {
    match transfers {
        0 => "empty",
        1..=499 => "1-499",
        500..=1999 => "~1000",
        2000..=3999 => "2000-3999",
        _ => "full",
    }
}

const CLASSES: [&str; 5] = ["empty", "1-499", "~1000", "2000-3999", "full"];

/// The "mined a block" lines of the miner's log: height -> when found (ms since the epoch).
fn found_times(log: &Path) -> HashMap<u64, u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.contains("mined a block")) {
        let Some(ts) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(t) = humantime::parse_rfc3339(ts) else {
            continue;
        };
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Some(h) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("height="))
            .and_then(|h| h.parse().ok())
        {
            out.insert(h, ms);
        }
    }
    out
}

/// What a step saw, taken at its start and end.
struct Snapshot {
    at_ms: u64,
    cpu: Option<f64>,
    counters: Vec<Counters>,
    rss: Vec<f64>,
    lines: Vec<u64>,
    /// CPU seconds of node 0's miner thread.
    miner_cpu: Option<f64>,
}

async fn snapshot(client: &reqwest::Client, nodes: &[Proc]) -> Snapshot {
    let mut counters_ = Vec::new();
    for p in nodes {
        counters_.push(counters(client, p).await);
    }
    Snapshot {
        at_ms: now_ms(),
        cpu: process_cpu_secs(),
        counters: counters_,
        rss: nodes.iter().map(Proc::rss_mb).collect(),
        lines: nodes.iter().map(Proc::log_lines).collect(),
        miner_cpu: nodes[0].thread_cpu("miner"),
    }
}

fn rss_line(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|m| format!("{m:.0}")).collect();
    v.join(" ")
}

// ---------------------------------------------------------------------------------------------

/// What every topology runs.
struct Plan {
    params: ChainParams,
    /// (label, transfers offered a second).
    steps: Vec<(String, f64)>,
    step_secs: f64,
    after_secs: u64,
    wallets: usize,
}

/// One topology: `links` between `n` nodes, node 0 mining.
async fn run_topology(name: &str, n: usize, links: &[(usize, usize)], plan: &Plan) {
    let Plan {
        params,
        steps,
        step_secs,
        after_secs,
        wallets,
    } = plan;
    let (step_secs, after_secs, wallets) = (*step_secs, *after_secs, *wallets);
    let capacity = f64::from(params.max_block_txs - 1) * 1000.0 / BLOCK_TIME_MS as f64;
    println!();
    println!(
        "== {name}: {n} nodes, links {links:?}, node 0 mining on one thread; {wallets} wallets; \
         load average {}",
        load_average()
    );
    let keys: Vec<_> = (0..wallets as u64).map(|i| key(1000 + i)).collect();
    let addrs: Vec<Address> = keys.iter().map(Address::of).collect();
    let chain_id = params.chain_id();
    let t = Instant::now();
    let (blocks, t1) = funding_chain(params, &addrs);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    // The load generator's own pool: it keeps up to IN_FLIGHT connections to each node open
    // during the load (about 50-100 KB of each node's memory apiece) and closes them when the
    // load ends, as clients that leave do, before the RSS after the load is read.
    let load_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    let mut nodes = Vec::new();
    for _ in 0..n {
        let dir = TempDir::new().expect("temp dir");
        preload(dir.path(), params, &blocks);
        nodes.push(spawn(dir, &client).await);
    }
    println!(
        "  set-up: {} funding blocks built and stored in {:.1} s",
        blocks.len(),
        t.elapsed().as_secs_f64()
    );
    for &(a, b) in links {
        post_action(
            &client,
            &nodes[a],
            "/node/dial",
            serde_json::json!({"addr": nodes[b].addr}),
        )
        .await;
    }
    let until = Instant::now() + DEADLINE;
    for (i, p) in nodes.iter().enumerate() {
        let want = common::degree(links, i);
        loop {
            let s = get_json(&client, &format!("{}/node/status", p.base)).await;
            if s.is_ok_and(|s| s["peers"].as_u64().unwrap_or(0) as usize >= want) {
                break;
            }
            assert!(
                Instant::now() < until,
                "node {i} never had its {want} peers"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    post_action(&client, &nodes[0], "/mine", serde_json::json!({"on": true})).await;
    // Warm-up: until the chain is on its schedule (block h due at t1 + T (h - 1)) and every
    // node has the tip.
    // A miner that gets little CPU may never catch up: the load then starts after
    // [`WARMUP_MAX`], and says so.
    let t = Instant::now();
    let warm_until = t + WARMUP_MAX;
    let mut settled = true;
    loop {
        let s = get_json(&client, &format!("{}/node/status", nodes[0].base))
            .await
            .expect("status");
        let h = s["height"].as_u64().unwrap_or(0);
        if t1 + BLOCK_TIME_MS * h.saturating_sub(1) + 4 * BLOCK_TIME_MS >= now_ms() {
            break;
        }
        if Instant::now() > warm_until {
            settled = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then until the difficulty has followed the miner's hash rate: the expected interval
    // (hashes a block needs at the current target / the measured hash rate) near the target.
    let (expected, caught_up) = loop {
        let s = get_json(&client, &format!("{}/node/status", nodes[0].base))
            .await
            .expect("status");
        let hashes = s["pace"]["expected_hashes"].as_f64().unwrap_or(0.0);
        let rate = s["pace"]["hash_rate"].as_f64().unwrap_or(0.0);
        let expected = if rate > 0.0 { hashes / rate } else { 0.0 };
        if expected * 1000.0 >= 0.8 * BLOCK_TIME_MS as f64 || Instant::now() > warm_until {
            settled &= Instant::now() <= warm_until;
            break (expected, s["height"].as_u64().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "  warm-up: {:.1} s of mining to height {caught_up}, until the chain was on its \
         schedule and the difficulty asked {expected:.2} s of the miner's hash rate a block{}",
        t.elapsed().as_secs_f64(),
        if settled {
            ""
        } else {
            " (NOT settled: the miner is slower than the chain's schedule; the load starts anyway)"
        }
    );
    let start_height = get_json(&client, &format!("{}/node/status", nodes[0].base))
        .await
        .expect("status")["height"]
        .as_u64()
        .unwrap_or(0);

    let shared: Shared = Arc::new(Mutex::new(Load::default()));
    {
        let mut s = lock(&shared);
        for _ in 0..wallets {
            s.wallets.push(Wallet {
                signed: Vec::new(),
                next: 0,
                confirmed: 0,
            });
        }
        s.answered = vec![0; steps.len()];
        s.sent = vec![0; steps.len()];
        s.held = vec![0; steps.len()];
        s.status = vec![Vec::new(); steps.len()];
    }
    let stop = Arc::new(AtomicBool::new(false));
    let step_now = Arc::new(AtomicU64::new(u64::MAX));
    let follower = tokio::spawn(follow_blocks(
        client.clone(),
        nodes[0].base.clone(),
        nodes[n - 1].base.clone(),
        shared.clone(),
        stop.clone(),
    ));
    let prober = tokio::spawn(probe_status(
        nodes
            .iter()
            .map(|p| format!("{}/node/status", p.base))
            .collect(),
        shared.clone(),
        step_now.clone(),
        stop.clone(),
    ));
    let urls: Vec<String> = nodes.iter().map(|p| p.base.clone()).collect();
    let rss_start: Vec<f64> = nodes.iter().map(Proc::rss_mb).collect();
    let mut snaps = Vec::new();
    let mut mids = Vec::new();
    let mut sign_secs = Vec::new();
    for (k, (_, rate)) in steps.iter().enumerate() {
        let t = Instant::now();
        {
            let per_wallet = (rate * step_secs / wallets as f64).ceil() as u64 + MAX_PENDING + 10;
            let mut s = lock(&shared);
            sign_ahead(&mut s, &keys, &addrs, &chain_id, per_wallet);
        }
        sign_secs.push(t.elapsed().as_secs_f64());
        let before = snapshot(&client, &nodes).await;
        step_now.store(k as u64, Ordering::Relaxed);
        let half = {
            let nodes_rss = nodes.iter().map(Proc::pid).collect::<Vec<_>>();
            let half = step_secs / 2.0;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(half)).await;
                nodes_rss
                    .iter()
                    .map(|pid| rss_kb(pid).map_or(f64::NAN, |kb| kb as f64 / 1024.0))
                    .collect::<Vec<f64>>()
            })
        };
        offer(&load_client, &urls, &shared, k, *rate, step_secs).await;
        mids.push(half.await.expect("rss"));
        snaps.push(before);
    }
    step_now.store(u64::MAX, Ordering::Relaxed);
    let end = snapshot(&client, &nodes).await;
    snaps.push(end);
    let rss_end: Vec<f64> = nodes.iter().map(Proc::rss_mb).collect();
    let sockets_end: Vec<usize> = nodes.iter().map(Proc::sockets).collect();
    drop(load_client);
    // Let the mempools drain and the memory settle.
    tokio::time::sleep(Duration::from_secs(after_secs)).await;
    let rss_after: Vec<f64> = nodes.iter().map(Proc::rss_mb).collect();
    let sockets_after: Vec<usize> = nodes.iter().map(Proc::sockets).collect();
    stop.store(true, Ordering::Relaxed);
    follower.await.expect("follower");
    prober.await.expect("prober");

    // Arrival times of every block at every node, and who sent it.
    let mut arrivals: Vec<HashMap<String, (u64, Option<String>)>> = Vec::new();
    // The best chain as the miner has it: every block of the load, whether or not the
    // follower read it back.
    let mut chain: Vec<Seen> = Vec::new();
    for (i, p) in nodes.iter().enumerate() {
        let tree = get_json(
            &client,
            &format!("{}/tree?from_height={start_height}", p.base),
        )
        .await
        .unwrap_or(Value::Null);
        let mut m = HashMap::new();
        for b in tree["blocks"].as_array().cloned().unwrap_or_default() {
            if i == 0
                && b["in_best_chain"].as_bool() == Some(true)
                && let (Some(h), Some(height)) = (b["hash"].as_str(), b["height"].as_u64())
            {
                chain.push(Seen {
                    height,
                    hash: h.to_string(),
                    transfers: b["txs"].as_u64().unwrap_or(1).saturating_sub(1) as usize,
                });
            }
            if let (Some(h), Some(at)) = (b["hash"].as_str(), b["arrived_ms"].as_u64()) {
                m.insert(
                    h.to_string(),
                    (at, b["origin"].as_str().map(str::to_string)),
                );
            }
        }
        arrivals.push(m);
    }
    let by_peer: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.peer_id.clone(), i))
        .collect();
    // Blocks of the best chain the follower missed (its event stream lagged, or the reader
    // did not have them in time) are read from the miner now that the load is over: a
    // transfer they carry would otherwise count as never confirmed, and as missing from every
    // later block.
    let missed: Vec<(u64, String)> = {
        let s = lock(&shared);
        chain
            .iter()
            .filter(|c| !s.blocks.iter().any(|b| b.hash == c.hash))
            .map(|c| (c.height, c.hash.clone()))
            .collect()
    };
    let backfilled = missed.len();
    for (height, hash) in missed {
        if let Ok(block) = get_json(&client, &format!("{}/block/{hash}", nodes[0].base)).await {
            record_block(&mut lock(&shared), height, hash, &block);
        }
    }
    let found = found_times(&nodes[0].log);
    let detail = std::env::var_os("THROUGHPUT_DETAIL").is_some();
    if let Some(dir) = std::env::var_os("THROUGHPUT_LOGS") {
        for (i, p) in nodes.iter().enumerate() {
            let _ = std::fs::copy(&p.log, Path::new(&dir).join(format!("node{i}.log")));
        }
        let s = lock(&shared);
        let mut out = String::new();
        for (txid, key) in &s.index {
            if let Some(f) = s.fates.get(key)
                && let Some((posted, step)) = f.posted
            {
                out.push_str(&format!(
                    "{txid} {posted} {step} {} {} {:?}\n",
                    f.via, key.0, f.height
                ));
            }
        }
        let _ = std::fs::write(Path::new(&dir).join("fates.txt"), out);
    }
    let s = lock(&shared);
    let mut blocks = chain;
    blocks.sort_by_key(|b| b.height);
    blocks.dedup_by_key(|b| b.height);
    let read_back = s
        .blocks
        .iter()
        .filter(|f| blocks.iter().any(|b| b.hash == f.hash))
        .count();
    let found_of = |b: &Seen| {
        found
            .get(&b.height)
            .copied()
            .or_else(|| arrivals[0].get(&b.hash).map(|a| a.0))
    };

    println!(
        "  capacity {capacity:.0} transfers/s ({} per {} ms block); signing {:.1} s before the \
         steps (not timed)",
        params.max_block_txs - 1,
        BLOCK_TIME_MS,
        sign_secs.iter().sum::<f64>()
    );
    println!(
        "  blocks of the load: {}, read back {read_back} ({backfilled} of them after the load, \
         missed by the follower)",
        blocks.len()
    );
    println!(
        "  RSS MB per node at the start of the load: {}",
        rss_line(&rss_start)
    );
    let mut all_hops: HashMap<&str, Vec<f64>> = HashMap::new();
    for (k, (label, rate)) in steps.iter().enumerate() {
        let (a, b) = (&snaps[k], &snaps[k + 1]);
        let secs = (b.at_ms - a.at_ms) as f64 / 1e3;
        let in_step: Vec<&Seen> = blocks
            .iter()
            .filter(|bl| found_of(bl).is_some_and(|f| f >= a.at_ms && f < b.at_ms))
            .collect();
        let confirmed: usize = in_step.iter().map(|bl| bl.transfers).sum();
        println!();
        println!(
            "  step {label} ({rate:.0}/s offered, {secs:.1} s, {} blocks)",
            in_step.len()
        );
        let gen_cpu = cpu_delta(a.cpu, b.cpu);
        println!(
            "    load generator: sent {:.0} POST/s, answered {:.0}/s, of {rate:.0} offered (at \
             most {IN_FLIGHT} in flight); its process used {:.0} % of a core; every wallet at \
             its {MAX_PENDING} pending: {} times",
            s.sent[k] as f64 / secs,
            s.answered[k] as f64 / secs,
            gen_cpu / secs * 100.0,
            s.held[k]
        );
        println!(
            "    confirmed {:.0} transfers/s = {:.1} % of capacity",
            confirmed as f64 / secs,
            confirmed as f64 / secs / capacity * 100.0
        );
        // Inclusion latency of the transfers posted in this step.
        let mut lat = Vec::new();
        let mut unconfirmed = 0;
        let height_found: HashMap<u64, u64> = blocks
            .iter()
            .filter_map(|bl| found_of(bl).map(|f| (bl.height, f)))
            .collect();
        for f in s.fates.values() {
            let Some((posted, st)) = f.posted else {
                continue;
            };
            if st != k {
                continue;
            }
            match f.height.and_then(|h| height_found.get(&h)) {
                Some(&at) => lat.push(at.saturating_sub(posted) as f64 / 1e3),
                None => unconfirmed += 1,
            }
        }
        println!(
            "    POST to inclusion: p50 {:.2} s, p99 {:.2} s ({} confirmed, {} not by the end)",
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            lat.len(),
            unconfirmed
        );
        // Block intervals.
        let times: Vec<u64> = in_step.iter().filter_map(|bl| found_of(bl)).collect();
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]) as f64 / 1e3)
            .collect();
        let miner = cpu_delta(a.miner_cpu, b.miner_cpu) / secs * 100.0;
        if gaps.is_empty() {
            println!(
                "    block intervals: fewer than two blocks; the miner thread had {miner:.0} % \
                 of a core"
            );
        } else {
            println!(
                "    block intervals: mean {:.2} s, p50 {:.2} s, max {:.2} s (target {:.1} s); \
                 the miner thread had {miner:.0} % of a core",
                mean(&gaps),
                pct(&gaps, 50.0),
                gaps.iter().cloned().fold(0.0, f64::max),
                BLOCK_TIME_MS as f64 / 1e3
            );
        }
        // Propagation per hop by size class.
        let mut hops: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut sizes: HashMap<&str, Vec<f64>> = HashMap::new();
        for bl in &in_step {
            let c = class(bl.transfers);
            sizes
                .entry(c)
                .or_default()
                .push((96 + 4 + 49 + 153 * bl.transfers) as f64);
            for m in arrivals.iter().skip(1) {
                let Some((at, Some(origin))) = m.get(&bl.hash) else {
                    continue;
                };
                let Some(&j) = by_peer.get(origin) else {
                    continue;
                };
                let Some((from_at, _)) = arrivals[j].get(&bl.hash) else {
                    continue;
                };
                let hop = at.saturating_sub(*from_at) as f64;
                hops.entry(c).or_default().push(hop);
                all_hops.entry(c).or_default().push(hop);
            }
        }
        for c in CLASSES {
            if let Some(h) = hops.get(c) {
                println!(
                    "    propagation per hop, {c:>9} blocks: p50 {:6.1} ms, p99 {:6.1} ms ({} hops); \
                     relayed message {:.0} KB (the full block; compact block: -)",
                    pct(h, 50.0),
                    pct(h, 99.0),
                    h.len(),
                    mean(&sizes[c]) / 1e3
                );
            }
        }
        // Bytes received per confirmed transfer.
        let per: Vec<String> = (0..n)
            .map(|i| {
                let d = b.counters[i].inbound - a.counters[i].inbound;
                format!("{:.0}", d / confirmed.max(1) as f64)
            })
            .collect();
        let mut topics: Vec<String> = Vec::new();
        for (topic, v) in &b.counters[n - 1].topics {
            let before = a.counters[n - 1].topics.get(topic).copied().unwrap_or(0.0);
            let short = if topic.contains("block") {
                "blocks topic"
            } else if topic.contains("tx") || topic.contains("transfer") {
                "transfers topic"
            } else {
                topic.as_str()
            };
            topics.push(format!(
                "{short} {:.0}",
                (v - before) / confirmed.max(1) as f64
            ));
        }
        topics.sort();
        println!(
            "    bytes received per confirmed transfer, per node: {} (node {} by gossip topic, \
             duplicates included: {}; a transfer is 153 B)",
            per.join(" "),
            n - 1,
            topics.join(", ")
        );
        // The transfers topic alone, per transfer admitted by some node in the step: copies
        // of a transfer, whether or not a block confirmed it yet.
        let admitted = s
            .fates
            .values()
            .filter(|f| f.admitted && f.posted.is_some_and(|(_, st)| st == k))
            .count()
            .max(1) as f64;
        let by_gossip: Vec<String> = (0..n)
            .map(|i| {
                let topic = |c: &Counters| -> f64 {
                    c.topics
                        .iter()
                        .filter(|(t, _)| t.contains("tx") || t.contains("transfer"))
                        .map(|(_, v)| v)
                        .sum()
                };
                format!(
                    "{:.0}",
                    (topic(&b.counters[i]) - topic(&a.counters[i])) / admitted
                )
            })
            .collect();
        println!(
            "    transfers topic bytes received per transfer admitted in the step, per node \
             (duplicates included; a message is 193 B, 358 B on the former signed txs/1): {}",
            by_gossip.join(" ")
        );
        let st = &s.status[k];
        println!(
            "    GET /node/status: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} answers)",
            pct(st, 50.0),
            pct(st, 99.0),
            st.iter().cloned().fold(0.0, f64::max),
            st.len()
        );
        println!(
            "    RSS MB per node: start {}; mid-step {}",
            rss_line(&a.rss),
            rss_line(&mids[k])
        );
        // How long the step's transfers took from their POST to the miner's mempool, by the
        // node they were posted to (hops from the miner).
        let reach: Vec<String> = (0..n)
            .map(|i| {
                let mut v: Vec<f64> = s
                    .fates
                    .values()
                    .filter(|f| f.via == i)
                    .filter_map(|f| match (f.posted, f.at_miner) {
                        (Some((p, st)), Some(m)) if st == k => Some(m.saturating_sub(p) as f64),
                        _ => None,
                    })
                    .collect();
                v.sort_by(f64::total_cmp);
                format!(
                    "{:.0}/{:.0} ms ({} seen)",
                    pct(&v, 50.0),
                    pct(&v, 99.0),
                    v.len()
                )
            })
            .collect();
        println!(
            "    POST to the miner's tx event (its HTTP thread's delay included) p50/p99, by the node posted to: {}",
            reach.join(", ")
        );
        // Freshness: transfers posted >= 1 s before a block was found, still unconfirmed
        // then, against those that block carries (blocks with room only).
        let (mut eligible, mut carried) = (0u64, 0u64);
        for bl in &in_step {
            let full = bl.transfers >= (params.max_block_txs - 1) as usize;
            let Some(at) = found_of(bl) else { continue };
            let (mut e, mut c) = (0u64, 0u64);
            for f in s.fates.values() {
                let (Some((posted, _)), true) = (f.posted, f.admitted) else {
                    continue;
                };
                if posted + 1000 > at || f.height.is_some_and(|h| h < bl.height) {
                    continue;
                }
                e += 1;
                if f.height == Some(bl.height) {
                    c += 1;
                }
            }
            if detail {
                println!(
                    "      block {} found {} ms into the step: {} transfers{}, read back {}, \
                     {c} of {e} eligible",
                    bl.height,
                    at.saturating_sub(a.at_ms),
                    bl.transfers,
                    if full { " (full)" } else { "" },
                    s.blocks.iter().any(|r| r.hash == bl.hash)
                );
            }
            if !full {
                eligible += e;
                carried += c;
            }
        }
        println!(
            "    transfers posted >= 1 s before a block with room was found, in that block: \
             {:.1} % ({carried} of {eligible})",
            carried as f64 / eligible.max(1) as f64 * 100.0
        );
        let lines: Vec<String> = (0..n)
            .map(|i| format!("{:.0}", (b.lines[i] - a.lines[i]) as f64 / secs))
            .collect();
        println!(
            "    log lines/s per node (RUST_LOG=info): {}",
            lines.join(" ")
        );
    }
    println!();
    println!("  whole run, propagation per hop by size class:");
    for c in CLASSES {
        if let Some(h) = all_hops.get(c) {
            println!(
                "    {c:>9}: p50 {:6.1} ms, p99 {:6.1} ms ({} hops)",
                pct(h, 50.0),
                pct(h, 99.0),
                h.len()
            );
        }
    }
    let mut refused: Vec<_> = s.refused.iter().collect();
    refused.sort();
    println!("  refused POSTs by code (posted again): {refused:?}");
    println!(
        "  RSS MB per node at the end of the load: {} (open sockets {sockets_end:?})",
        rss_line(&rss_end)
    );
    println!(
        "  RSS MB per node {after_secs} s after the load: {} (open sockets {sockets_after:?})",
        rss_line(&rss_after)
    );
    drop(s);
    for p in &nodes {
        let _ = Command::new("kill").args(["-TERM", &p.pid()]).status();
    }
    drop(nodes);
}

fn main() {
    let params = ChainParams::with_block_time(BLOCK_TIME_MS);
    let capacity = f64::from(params.max_block_txs - 1) * 1000.0 / BLOCK_TIME_MS as f64;
    let steps: Vec<(String, f64)> = std::env::var("THROUGHPUT_STEPS")
        .unwrap_or_else(|_| "100,300,1000,2000,3000,cap".into())
        .split(',')
        .filter_map(|s| {
            let s = s.trim();
            if s == "cap" {
                Some(("1.2x capacity".to_string(), (capacity * 1.2).round()))
            } else {
                s.parse::<f64>().ok().map(|r| (format!("{r:.0}/s"), r))
            }
        })
        .collect();
    let step_secs = env_u64("THROUGHPUT_STEP_SECS", 20) as f64;
    let after_secs = env_u64("THROUGHPUT_AFTER_SECS", 10);
    let wallets = env_u64("THROUGHPUT_WALLETS", 200).max(2) as usize;
    let topology = std::env::var("THROUGHPUT_TOPOLOGY").unwrap_or_else(|_| "both".into());
    println!("gossipchain throughput benchmark");
    println!(
        "CPU: {}; {} cores; SHA-256 lanes backend: {}; signatures: ed25519-zebra (ZIP 215); \
         load average {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        gossipchain::miner::lanes::Backend::best().name(),
        load_average()
    );
    println!("node binary: {}", bin());
    println!(
        "steps {:?} of {step_secs} s each (THROUGHPUT_STEPS, THROUGHPUT_STEP_SECS), RSS again \
         {after_secs} s after the load (THROUGHPUT_AFTER_SECS), topology {topology} \
         (THROUGHPUT_TOPOLOGY=line|mesh|both)",
        steps.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let plan = Plan {
        params,
        steps,
        step_secs,
        after_secs,
        wallets,
    };
    common::block_on(async {
        let (rate, cores) = calibrate(3.0).await;
        println!(
            "load generator alone, against a server in this process that answers at once: \
             {rate:.0} POST /tx a second, the process (client and server) using {:.0} % of a \
             core",
            cores * 100.0
        );
        if topology == "line" || topology == "both" {
            run_topology("line A - B - C", 3, &[(0, 1), (1, 2)], &plan).await;
        }
        if topology == "mesh" || topology == "both" {
            run_topology(
                "mesh, 3 peers each",
                10,
                &common::ring_with_chords(10),
                &plan,
            )
            .await;
        }
    });
}
