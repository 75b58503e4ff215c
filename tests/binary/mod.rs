//! The real `gossipchain` binary driven through its pipes, shared by the CLI tests
//! (`tests/cli.rs`, on loopback) and the LAN tests (`tests/lan.rs`, in network namespaces):
//! commands on stdin, their answers on stdout, the log on stderr, each stream read on a thread
//! of its own. The end of a command's output is found by a marker (an unknown command typed
//! right after it), so nothing waits on a fixed sleep: every wait is for a line, or polls with a
//! deadline. Dropping a [`Node`] kills and reaps its process, so a failing test leaves nothing
//! behind.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gossipchain");
/// Deadline of a single answer or exit.
pub const WAIT: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Removes every `GOSSIPCHAIN_*` variable of this process from `cmd`'s environment, so that only
/// the arguments a test gives configure the node.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GOSSIPCHAIN_") {
            cmd.env_remove(k);
        }
    }
}

/// Lines of one output stream of a node, read on their own thread (and copied to a log file
/// if one is given).
pub struct Stream {
    rx: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

/// What [`Stream::next`] got.
pub enum Next {
    /// A line.
    Line(String),
    /// Nothing before the deadline.
    Timeout,
    /// The stream ended.
    Closed,
}

impl Stream {
    /// Reads `r` on a thread named `thread`, appending each line to `log` if given.
    pub fn new(r: impl Read + Send + 'static, thread: &str, log: Option<PathBuf>) -> Self {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                let mut file =
                    log.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { return };
                    if let Some(f) = file.as_mut() {
                        let _ = writeln!(f, "{line}");
                    }
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn a reader thread");
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, waiting until `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Next {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Next::Line(line)
            }
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Reads lines until one satisfies `pred` (earlier lines are skipped) and returns it; or,
    /// if the timeout passes or the stream ends first, why not.
    pub fn find(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, &'static str> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline) {
                Next::Line(l) if pred(&l) => return Ok(l),
                Next::Line(_) => {}
                Next::Timeout => return Err("timed out"),
                Next::Closed => return Err("closed"),
            }
        }
    }

    /// Takes in whatever has arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
    }

    /// The last `n` lines seen.
    pub fn tail(&self, n: usize) -> String {
        self.seen[self.seen.len().saturating_sub(n)..].join("\n")
    }
}

/// `status` as field → value.
pub type Status = HashMap<String, String>;

/// One line of `peers`.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Peer id.
    pub id: String,
    /// Remote addresses of its connections.
    pub addrs: String,
    /// How it was found: mdns, --peer, dial, inbound.
    pub found_by: String,
    /// Last ping round trip, as printed.
    pub rtt: Option<String>,
}

/// One line of `chain` or `mine`: height, hash, transaction count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLine {
    /// Height.
    pub height: u64,
    /// Hash, 64 hex digits.
    pub hash: String,
    /// Transactions in it.
    pub txs: usize,
}

/// Parses `#12  <hash>  2 txs  <time>` (with or without a leading `mined `).
pub fn block_line(line: &str) -> Option<BlockLine> {
    let line = line.strip_prefix("mined ").unwrap_or(line);
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() < 4 || w[3] != "txs" || !is_hex64(w[1]) {
        return None;
    }
    Some(BlockLine {
        height: w[0].strip_prefix('#')?.parse().ok()?,
        hash: w[1].to_string(),
        txs: w[2].parse().ok()?,
    })
}

/// 64 hex digits (a hash, or an address in its older form).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The shape of an address as the node writes it: `gc1` or `gct1` and 58 bech32 characters
/// (the checksum is the node's to check).
pub fn is_address(s: &str) -> bool {
    let data = |hrp: &str| {
        s.strip_prefix(hrp).is_some_and(|d| {
            d.len() == 58
                && d.bytes()
                    .all(|b| b"qpzry9x8gf2tvdw0s3jn54khce6mua7l".contains(&b))
        })
    };
    data("gc1") || data("gct1")
}

/// The value of `key=` in a log line.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    line[start..].split_whitespace().next()
}

/// Seconds since midnight UTC of a log line's timestamp (`2026-11-21T06:13:51.081907Z ...`).
pub fn log_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Polls `check` until it returns Ok, or panics after `timeout` with `what` and the last
/// error. Returns the time it took.
#[track_caller]
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(last) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// A running `gossipchain` process.
pub struct Node {
    /// Name in messages (`A`, `h1`, `node2`).
    pub name: String,
    /// Said after the name in failure messages (a LAN host's address), or empty.
    pub context: String,
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: Stream,
    err: Stream,
    marks: u64,
    /// When the process was spawned.
    pub spawned: Instant,
    /// Its full log (stderr) on disk, if it is kept.
    pub log_path: Option<PathBuf>,
}

impl Node {
    /// Spawns `cmd` (the binary, or a wrapper that execs it) with piped streams and
    /// `RUST_LOG=info` unless `cmd` sets it; copies stderr to `log_path` if given.
    #[track_caller]
    pub fn spawn(name: &str, mut cmd: Command, log_path: Option<PathBuf>, context: &str) -> Self {
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        let spawned = Instant::now();
        let stdin = child.stdin.take();
        let out = Stream::new(child.stdout.take().unwrap(), &format!("{name}-out"), None);
        let err = Stream::new(
            child.stderr.take().unwrap(),
            &format!("{name}-err"),
            log_path.clone(),
        );
        Self {
            name: name.to_string(),
            context: context.to_string(),
            child,
            stdin,
            out,
            err,
            marks: 0,
            spawned,
            log_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended (and was reaped).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn label(&self) -> String {
        if self.context.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.context)
        }
    }

    /// Panics with what was awaited and the end of both streams.
    #[track_caller]
    pub fn fail(&mut self, what: &str) -> ! {
        self.err.drain();
        self.out.drain();
        let whole = self
            .log_path
            .as_ref()
            .map_or(String::new(), |p| format!("; all in {}", p.display()));
        panic!(
            "node {}: {what}\n--- stdout (last lines) ---\n{}\n--- stderr (last lines{whole}) ---\n{}",
            self.label(),
            self.out.tail(40),
            self.err.tail(40)
        );
    }

    /// Types one line at the prompt.
    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            self.fail("stdin is already closed")
        };
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write '{line}' to stdin: {e}"));
        }
    }

    /// Closes stdin (end of input, as Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Reads stdout until a line satisfies `pred` (earlier lines are skipped); returns it.
    #[track_caller]
    pub fn expect_line(
        &mut self,
        what: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        match self.out.find(timeout, pred) {
            Ok(line) => line,
            Err(why) => self.fail(&format!("stdout {why} while waiting for {what}")),
        }
    }

    /// Runs one command and returns the lines it printed, within `timeout`. The end of its
    /// output is found by a marker: an unknown command typed right after it, whose error comes
    /// only once the command before it was handled (the node handles one line at a time).
    #[track_caller]
    pub fn run_for(&mut self, cmd: &str, timeout: Duration) -> Vec<String> {
        self.marks += 1;
        let mark = format!("end-of-output-{}", self.marks);
        self.send_line(cmd);
        self.send_line(&mark);
        let end = format!("error: unknown command '{mark}'");
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            match self.out.next(deadline) {
                Next::Line(l) if l == end => break,
                Next::Line(l) => lines.push(l),
                Next::Timeout => self.fail(&format!("timed out waiting for the output of '{cmd}'")),
                Next::Closed => self.fail(&format!("stdout closed while running '{cmd}'")),
            }
        }
        self.expect_line("the usage line of the marker", |l| l == "usage: help", WAIT);
        lines
    }

    /// [`Node::run_for`] with the standard deadline.
    #[track_caller]
    pub fn run(&mut self, cmd: &str) -> Vec<String> {
        self.run_for(cmd, WAIT)
    }

    /// A command that prints exactly one line.
    #[track_caller]
    pub fn run1(&mut self, cmd: &str) -> String {
        let lines = self.run(cmd);
        if lines.len() != 1 {
            self.fail(&format!("'{cmd}' printed {lines:?}, not one line"));
        }
        lines.into_iter().next().unwrap()
    }

    /// `status`, as field name → value; fails if a field is missing.
    #[track_caller]
    pub fn status(&mut self) -> Status {
        let lines = self.run("status");
        let mut s = Status::new();
        for l in &lines {
            let (k, v) = l.split_once("  ").unwrap_or((l.as_str(), ""));
            s.insert(k.trim().to_string(), v.trim().to_string());
        }
        for key in [
            "peer id",
            "chain id",
            "height",
            "tip",
            "work",
            "peers",
            "mempool",
            "mining",
            "syncing",
            "address",
            "listening",
        ] {
            if !s.contains_key(key) {
                self.fail(&format!("status has no '{key}' line: {lines:?}"));
            }
        }
        s
    }

    /// The height in `status`.
    #[track_caller]
    pub fn height(&mut self) -> u64 {
        self.head().0
    }

    /// The tip in `status`.
    #[track_caller]
    pub fn tip(&mut self) -> String {
        self.status()["tip"].clone()
    }

    /// (height, tip) in one `status`.
    #[track_caller]
    pub fn head(&mut self) -> (u64, String) {
        let s = self.status();
        let h = s["height"]
            .parse()
            .unwrap_or_else(|_| self.fail("bad height"));
        (h, s["tip"].clone())
    }

    /// The peer id in `status`.
    #[track_caller]
    pub fn peer_id(&mut self) -> String {
        self.status()["peer id"].clone()
    }

    /// `address`.
    #[track_caller]
    pub fn address(&mut self) -> String {
        let a = self.run1("address");
        if !is_address(&a) {
            self.fail(&format!("bad address {a:?}"));
        }
        a
    }

    /// `peers`, parsed.
    #[track_caller]
    pub fn peers(&mut self) -> Vec<Peer> {
        let lines = self.run("peers");
        if lines == ["no peers"] {
            return Vec::new();
        }
        let mut peers = Vec::new();
        for l in &lines {
            let parts: Vec<&str> = l.split("  ").collect();
            let found_by = parts
                .iter()
                .find_map(|p| p.strip_prefix("found by "))
                .map(str::to_string);
            let Some(found_by) = found_by else {
                self.fail(&format!("bad peers line {l:?}"))
            };
            peers.push(Peer {
                id: parts[0].to_string(),
                addrs: parts.get(1).map_or(String::new(), |s| s.to_string()),
                found_by,
                rtt: parts
                    .iter()
                    .find_map(|p| p.strip_prefix("rtt "))
                    .map(str::to_string),
            });
        }
        peers
    }

    /// Txids in `mempool`.
    #[track_caller]
    pub fn mempool(&mut self) -> Vec<String> {
        let lines = self.run("mempool");
        if lines == ["mempool is empty"] {
            return Vec::new();
        }
        lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    }

    /// (balance, nonce) of an address.
    #[track_caller]
    pub fn balance(&mut self, address: &str) -> (u64, u64) {
        let lines = self.run(&format!("balance {address}"));
        let field = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (field("balance"), field("nonce")) {
            (Some(b), Some(n)) => (b, n),
            _ => self.fail(&format!("bad balance output {lines:?}")),
        }
    }

    /// `mine n` (in commands of at most 1000 blocks, the most one `mine` does): the blocks
    /// mined.
    #[track_caller]
    pub fn mine(&mut self, n: u64, timeout: Duration) -> Vec<BlockLine> {
        let deadline = Instant::now() + timeout;
        let mut blocks = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(1000);
            let wait = deadline.saturating_duration_since(Instant::now());
            let lines = self.run_for(&format!("mine {k}"), wait);
            let mined: Vec<BlockLine> = lines.iter().filter_map(|l| block_line(l)).collect();
            if mined.len() as u64 != k || mined.len() != lines.len() {
                let first = lines.first().cloned().unwrap_or_default();
                let last = lines.last().cloned().unwrap_or_default();
                self.fail(&format!(
                    "mine {k} printed {} lines ({} blocks), first {first:?}, last {last:?}",
                    lines.len(),
                    mined.len()
                ));
            }
            blocks.extend(mined);
            left -= k;
        }
        blocks
    }

    /// `send`: the txid.
    #[track_caller]
    pub fn send(&mut self, to: &str, amount: u64, fee: u64) -> String {
        let line = self.run1(&format!("send {to} {amount} {fee}"));
        match line.strip_prefix("sent ") {
            Some(txid) if is_hex64(txid) => txid.to_string(),
            _ => self.fail(&format!("send printed {line:?}")),
        }
    }

    /// `block <hash>`: None if unknown, else (height, on the best chain, its lines).
    #[track_caller]
    pub fn block(&mut self, hash: &str) -> Option<(u64, bool, Vec<String>)> {
        let lines = self.run(&format!("block {hash}"));
        let height_line = lines.iter().find_map(|l| l.strip_prefix("height"))?;
        let height = height_line.split_whitespace().next()?.parse().ok()?;
        let best = !height_line.contains("side branch");
        Some((height, best, lines))
    }

    /// Runs `cmd` every [`POLL`] until `pred` holds for what it returns, which is returned.
    /// Past `timeout`, fails naming `what` and describing the last answer with `show`.
    #[track_caller]
    pub fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cmd: impl FnMut(&mut Self) -> T,
        pred: impl Fn(&T) -> bool,
        show: impl Fn(&T) -> String,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = cmd(self);
            if pred(&answer) {
                return answer;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out waiting for {what}; {}", show(&answer)));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls `status` until `pred` holds.
    #[track_caller]
    pub fn wait_status(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> Status {
        let show = |s: &Status| format!("last status {s:?}");
        self.poll(what, timeout, Self::status, pred, show)
    }

    /// Polls a command until its output satisfies `pred`.
    #[track_caller]
    pub fn wait_output(
        &mut self,
        what: &str,
        cmd: &str,
        pred: impl Fn(&[String]) -> bool,
        timeout: Duration,
    ) -> Vec<String> {
        let show = |lines: &Vec<String>| format!("last '{cmd}': {lines:?}");
        self.poll(what, timeout, |n| n.run(cmd), |l| pred(l), show)
    }

    /// The first log line (already seen or still to come) satisfying `pred`.
    #[track_caller]
    pub fn wait_log(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.err.drain();
        if let Some(l) = self.err.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        self.next_log(what, timeout, pred)
    }

    /// The first log line (already seen or still to come) containing `fragment`.
    #[track_caller]
    pub fn expect_log(&mut self, what: &str, fragment: &str) -> String {
        self.wait_log(what, WAIT, |l| l.contains(fragment))
    }

    /// The next log line, from now on, satisfying `pred`.
    #[track_caller]
    pub fn next_log(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.err.next(deadline) {
                Next::Line(l) if pred(&l) => return l,
                Next::Line(_) => {}
                Next::Timeout => self.fail(&format!("timed out waiting for the log of {what}")),
                Next::Closed => self.fail(&format!("stderr closed while waiting for {what}")),
            }
        }
    }

    /// Every log line so far satisfying `pred`.
    pub fn logs(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.err.drain();
        self.err.seen.iter().filter(|l| pred(l)).cloned().collect()
    }

    /// SIGKILL, and reap.
    #[track_caller]
    pub fn kill9(&mut self) -> ExitStatus {
        if let Err(e) = self.child.kill() {
            self.fail(&format!("cannot kill: {e}"));
        }
        let status = self.child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        self.stdin.take();
        // The streams end with the process.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Next::Line(_) = self.err.next(deadline) {}
        self.out.drain();
        status
    }

    /// Sends SIGTERM.
    #[track_caller]
    pub fn sigterm(&mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            self.fail(&format!("kill -TERM {pid} failed: {ok:?}"));
        }
    }

    /// Sends SIGTERM and expects a clean exit that logs the signal.
    #[track_caller]
    pub fn stop_by_sigterm(&mut self) {
        self.sigterm();
        self.expect_clean_exit();
        self.expect_log("the signal", "signal received: shutting down");
    }

    /// Waits for the process to exit (polling with a deadline) and returns its status.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.err.drain();
                    self.out.drain();
                    return status;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) => self.fail("the process did not exit in time"),
                Err(e) => self.fail(&format!("cannot wait for the process: {e}")),
            }
        }
    }

    /// Waits for a clean exit: code 0 and the node's own "node stopped" log line.
    #[track_caller]
    pub fn expect_clean_exit(&mut self) {
        let status = self.wait_exit(WAIT);
        if status.code() != Some(0) {
            self.fail(&format!("exited with {status}, not 0"));
        }
        self.expect_log("the node stopping", "node stopped");
    }

    /// Every log line (stderr) received so far, including those not yet read.
    pub fn log_lines(&mut self) -> Vec<String> {
        self.err.drain();
        self.err.seen.clone()
    }

    /// `quit`, then a clean exit.
    #[track_caller]
    pub fn quit(&mut self) {
        self.send_line("quit");
        self.expect_line("bye", |l| l == "bye", WAIT);
        self.stdin.take();
        self.expect_clean_exit();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stdin.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(path) = &self.log_path
        {
            self.err.drain();
            eprintln!(
                "--- node {} log tail; whole log in {} ---\n{}",
                self.label(),
                path.display(),
                self.err.tail(15)
            );
        }
    }
}
