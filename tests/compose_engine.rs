//! The docker-compose demo on a real Docker engine, as a new user runs it: `up -d --build`,
//! commands typed at node2's prompt (attached as `docker attach` does), `restart`, `down`; and
//! the swarm stack (docker-stack.yml) deployed and scaled on a single-node swarm (`swarm.rs`).
//!
//! It builds the image (minutes, and a gigabyte of disk on a cold cache), so it runs only when
//! asked: `GOSSIPCHAIN_DOCKER=1 cargo test --release --test compose_engine`, or with
//! `GOSSIPCHAIN_REQUIRE_DOCKER=1` (set by `.ci/run`), which also makes a missing prerequisite a
//! failure. It needs a running dockerd, compose (v2 `docker compose`, else v1
//! `docker-compose`) and the Dockerfile's base images (pulled, or the local stand-ins
//! `.ci/docker-standins.sh` builds); without them it prints a loud SKIPPED block. The two
//! tests share one image, built by compose (the second build is all cache hits), and take
//! turns on the engine ([`ENGINE`]).
//!
//! Each run is its own compose project (`gcengine<pid>`), so its containers, network and
//! volumes never meet a user's demo; a guard runs `down -v` whether the test passes or fails,
//! and a later run removes the projects of runs that were killed.
//!
//! Commands go to a container through the Engine API's attach endpoint on the Docker socket
//! (an HTTP upgrade to a raw stream): node2 has a TTY, so its stream is the terminal's bytes
//! (prompt, echo, escapes), which are cleaned into lines; the others have none, so their stream
//! is multiplexed into stdout and stderr frames.

#[path = "binary/mod.rs"]
mod binary;

#[path = "compose_engine/swarm.rs"]
mod swarm;

use binary::{is_address, wait_until};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const REQUIRE: &str = "GOSSIPCHAIN_REQUIRE_DOCKER";
const ASK: &str = "GOSSIPCHAIN_DOCKER";
const BIN: &str = env!("CARGO_BIN_EXE_gossipchain");
const PREFIX: &str = "gcengine";
/// One command's answer.
const WAIT: Duration = Duration::from_secs(30);
/// `up --build` of a cold cache compiles every dependency inside the build container.
const BUILD_WAIT: Duration = Duration::from_secs(60 * 60);
const POLL: Duration = Duration::from_millis(100);

/// Held by each test while it uses the engine: the two run one after the other, so that one
/// builds the image and the other finds it cached, and neither's nodes slow the other's.
static ENGINE: Mutex<()> = Mutex::new(());

/// The engine, once the other test is done with it (whether that one passed or failed).
fn engine_turn() -> MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok(v) if !v.is_empty() && v != "0")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to its end within `timeout` (killed past it), with stdin closed.
fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} {args:?}: timed out after {timeout:?}"));
        }
        std::thread::sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

fn ok(program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let out = run(program, args, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The compose command of this machine: v2 (`docker compose`) where it is, else v1.
fn compose_command() -> Option<Vec<String>> {
    if run("docker", &["compose", "version"], WAIT).is_ok_and(|o| o.status.success()) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    if run("docker-compose", &["version"], WAIT).is_ok_and(|o| o.status.success()) {
        return Some(vec!["docker-compose".into()]);
    }
    None
}

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite() -> Option<String> {
    match run("docker", &["info", "--format", "{{.ServerVersion}}"], WAIT) {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "no Docker engine answers: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return Some(format!("no docker client: {e}")),
    }
    if compose_command().is_none() {
        return Some("neither `docker compose` nor `docker-compose` is installed".into());
    }
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).ok()?;
    for image in dockerfile.lines().filter_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&"FROM")).then(|| w.get(1).map(|s| s.to_string()))?
    }) {
        if !run("docker", &["image", "inspect", &image], WAIT).is_ok_and(|o| o.status.success()) {
            return Some(format!(
                "base image {image} is not present (no registry is reachable here; \
                 `bash .ci/docker-standins.sh` builds local stand-ins)"
            ));
        }
    }
    None
}

/// Runs the test (`what` it runs, for the messages), or says loudly why it cannot here.
fn engine_or_skip(what: &str) -> bool {
    if !env_flag(ASK) && !env_flag(REQUIRE) {
        eprintln!("SKIPPED: the {what} on a Docker engine runs with {ASK}=1 (it builds the image)");
        return false;
    }
    let Some(why) = missing_prerequisite() else {
        return true;
    };
    if env_flag(REQUIRE) {
        panic!("{REQUIRE}=1 but the {what} cannot run here: {why}");
    }
    eprintln!(
        "\n==================== SKIPPED: {what} on a Docker engine ====================\n\
         {why}\nSet {REQUIRE}=1 to make this a failure (CI does).\n\
         ==================================================================================\n"
    );
    false
}

/// One compose project; `down -v` when dropped.
struct Project {
    compose: Vec<String>,
    name: String,
}

impl Project {
    fn new() -> Self {
        let compose = compose_command().expect("checked");
        sweep_stale(&compose);
        Self {
            compose,
            name: format!("{PREFIX}{}", std::process::id()),
        }
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self.compose[1..].iter().map(String::as_str).collect();
        v.extend(["-p", &self.name, "-f", "docker-compose.yml"]);
        v.extend_from_slice(rest);
        v
    }

    fn run(&self, rest: &[&str], timeout: Duration) -> Result<String, String> {
        ok(&self.compose[0], &self.args(rest), timeout)
    }

    /// The container of a service.
    fn container(&self, service: &str) -> String {
        let id = self
            .run(&["ps", "-q", service], WAIT)
            .unwrap_or_else(|e| panic!("{e}"));
        let id = id.trim().to_string();
        assert!(!id.is_empty(), "service {service} has no container");
        id
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Err(e) = self.run(&["down", "-v", "--timeout", "10"], Duration::from_secs(120)) {
            eprintln!("compose down of {}: {e}", self.name);
        }
    }
}

/// Removes the projects of earlier runs whose process is gone.
fn sweep_stale(compose: &[String]) {
    let Ok(names) = ok(
        "docker",
        &[
            "ps",
            "-a",
            "--filter",
            "label=com.docker.compose.project",
            "--format",
            "{{.Label \"com.docker.compose.project\"}}",
        ],
        WAIT,
    ) else {
        return;
    };
    let mut seen = Vec::new();
    for p in names.lines().map(str::trim) {
        let Some(pid) = p.strip_prefix(PREFIX).and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() || seen.contains(&p.to_string()) {
            continue;
        }
        seen.push(p.to_string());
        eprintln!("compose test: removing project {p} left by a dead run");
        let mut args: Vec<&str> = compose[1..].iter().map(String::as_str).collect();
        args.extend([
            "-p",
            p,
            "-f",
            "docker-compose.yml",
            "down",
            "-v",
            "--timeout",
            "1",
        ]);
        let _ = run(&compose[0], &args, Duration::from_secs(120));
    }
}

fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Terminal bytes as text: escape sequences removed, and of each line only what stays on
/// screen after its last carriage return.
fn clean(line: &str) -> String {
    // A terminal ends a line with CR LF: that CR ends the line, it does not rewrite it.
    let line = line.trim_end_matches(['\n', '\r']);
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    // CSI: parameters, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ST.
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => out.clear(),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// A tracing line (`2026-12-01T08:00:00.000000Z  INFO ...`).
fn is_log(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// A container's stdin and output, attached through the Engine API.
struct Attached {
    name: String,
    sock: UnixStream,
    tty: bool,
    lines: Receiver<String>,
    marks: u64,
}

impl Attached {
    fn new(name: &str, container: &str) -> Self {
        let tty = ok(
            "docker",
            &["inspect", "-f", "{{.Config.Tty}}", container],
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
            == "true";
        let mut sock = UnixStream::connect(docker_socket())
            .unwrap_or_else(|e| panic!("{}: {e}", docker_socket().display()));
        write!(
            sock,
            "POST /containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n\
             Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(sock.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(
            status.contains(" 101 ") || status.contains(" 200 "),
            "attach: {status}"
        );
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                break;
            }
        }
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let push = |bytes: &[u8], pending: &mut Vec<u8>| {
                pending.extend_from_slice(bytes);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                }
            };
            if tty {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    push(&buf[..n], &mut pending);
                }
            } else {
                // Frames: stream type (1 stdout, 2 stderr), three zero bytes, u32 BE length.
                let mut header = [0u8; 8];
                while reader.read_exact(&mut header).is_ok() {
                    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                    let mut body = vec![0u8; len as usize];
                    if reader.read_exact(&mut body).is_err() {
                        break;
                    }
                    if header[0] == 1 {
                        push(&body, &mut pending);
                    }
                }
            }
        });
        Self {
            name: name.to_string(),
            sock,
            tty,
            lines,
            marks: 0,
        }
    }

    fn send(&mut self, line: &str) {
        // A terminal in raw mode ends a line with Enter (CR); a pipe with LF.
        let end = if self.tty { "\r" } else { "\n" };
        self.sock
            .write_all(format!("{line}{end}").as_bytes())
            .unwrap_or_else(|e| panic!("{}: cannot type '{line}': {e}", self.name));
    }

    /// Runs one command at the prompt and returns the lines it printed (the prompt's echo and
    /// log lines left out). The end is found by a marker: an unknown command typed right after,
    /// whose error comes once the command before it was handled.
    fn cmd(&mut self, cmd: &str, timeout: Duration) -> Vec<String> {
        self.marks += 1;
        let mark = format!("end-of-output-{}", self.marks);
        self.send(cmd);
        self.send(&mark);
        let end = format!("error: unknown command '{mark}'");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(raw) => {
                    let l = clean(&raw);
                    if l.contains(&end) {
                        return out;
                    }
                    // The marker's error ends with a usage line, read as part of the next
                    // command's output: not output of any command here.
                    if l.is_empty()
                        || is_log(&l)
                        || l.contains("gossipchain> ")
                        || l.contains(&mark)
                        || l == "usage: help"
                    {
                        continue;
                    }
                    out.push(l);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no answer to '{cmd}' within {timeout:?}: {out:?}",
                        self.name
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: stream closed during '{cmd}': {out:?}", self.name)
                }
            }
        }
    }

    fn status(&mut self) -> Vec<(String, String)> {
        let lines = self.cmd("status", WAIT);
        let s: Vec<(String, String)> = lines
            .iter()
            .filter_map(|l| l.split_once("  "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        assert!(
            s.iter().any(|(k, _)| k == "height"),
            "{}: status without height: {lines:?}",
            self.name
        );
        s
    }

    fn field(&mut self, key: &str) -> String {
        let s = self.status();
        s.into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{}: status has no {key}", self.name))
    }

    /// Leading number of a status field (`peers  2 (...)`).
    fn number(&mut self, key: &str) -> u64 {
        let v = self.field(key);
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: {key} is {v:?}", self.name))
    }

    fn balance(&mut self, address: &str) -> u64 {
        let lines = self.cmd(&format!("balance {address}"), WAIT);
        lines
            .iter()
            .find_map(|l| l.strip_prefix("balance"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: balance output {lines:?}", self.name))
    }

    /// Whether block `hash` is on this node's best chain.
    fn on_best_chain(&mut self, hash: &str) -> bool {
        let lines = self.cmd(&format!("block {hash}"), WAIT);
        lines
            .iter()
            .find_map(|l| l.strip_prefix("height"))
            .is_some_and(|h| !h.contains("side branch"))
    }
}

fn fresh_address() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        BIN,
        // The compose file's chain (2 s blocks): its addresses are gct1….
        &[
            "wallet",
            "new",
            "--block-time",
            "2s",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        WAIT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = out.trim().to_string();
    assert!(is_address(&a), "{a}");
    a
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[test]
fn compose_demo_on_a_docker_engine() {
    if !engine_or_skip("compose demo") {
        return;
    }
    let _turn = engine_turn();
    let project = Project::new();
    let t_build = Instant::now();
    project
        .run(&["up", "-d", "--build"], BUILD_WAIT)
        .unwrap_or_else(|e| panic!("{e}"));
    let build = t_build.elapsed();
    let services = ["node1", "node2", "node3"];
    let ids: Vec<String> = services.iter().map(|s| project.container(s)).collect();
    for (s, id) in services.iter().zip(&ids) {
        let running = ok("docker", &["inspect", "-f", "{{.State.Running}}", id], WAIT).unwrap();
        assert_eq!(running.trim(), "true", "{s} is not running");
    }
    let mut nodes: Vec<Attached> = services
        .iter()
        .zip(&ids)
        .map(|(s, id)| Attached::new(s, id))
        .collect();

    // Connected within seconds: every node has the other two.
    let t_mesh = Instant::now();
    wait_until("three connected nodes", Duration::from_secs(60), || {
        let peers: Vec<u64> = nodes.iter_mut().map(|n| n.number("peers")).collect();
        if peers.iter().all(|&p| p >= 2) {
            Ok(())
        } else {
            Err(format!("peers {peers:?}"))
        }
    });
    let mesh = t_mesh.elapsed();

    // Blocks of both miners (node1 and node3) on every best chain.
    let t_blocks = Instant::now();
    for m in [0, 2] {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let tip = nodes[m].field("tip");
            let tip = tip.split_whitespace().next().unwrap().to_string();
            let everywhere = wait_until_opt(Duration::from_secs(20), || {
                nodes.iter_mut().all(|n| n.on_best_chain(&tip))
            });
            if everywhere {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no tip of {} reached every best chain",
                services[m]
            );
        }
    }
    let blocks = t_blocks.elapsed();

    // A transfer from node2 (which mines a few blocks first: it starts with no coins) is
    // credited on every node.
    let to = fresh_address();
    let mined = nodes[1].cmd("mine 3", Duration::from_secs(300));
    assert_eq!(
        mined.iter().filter(|l| l.starts_with("mined #")).count(),
        3,
        "{mined:?}"
    );
    let sent = nodes[1].cmd(&format!("send {to} 7 1"), WAIT);
    assert!(
        sent.iter().any(|l| l.starts_with("sent ")),
        "send: {sent:?}"
    );
    let t_credit = Instant::now();
    wait_until(
        "the transfer credited everywhere",
        Duration::from_secs(120),
        || {
            let b: Vec<u64> = nodes.iter_mut().map(|n| n.balance(&to)).collect();
            if b.iter().all(|&b| b == 7) {
                Ok(())
            } else {
                Err(format!("balances {b:?}"))
            }
        },
    );
    let credit = t_credit.elapsed();

    // The command-line client in a container reaches its node (found through /data) with the
    // prompt's commands and output: `docker compose exec node1 gossipchain <command>`.
    let exec = |args: &[&str]| {
        let mut v = vec!["exec", "-T", "node1", "gossipchain"];
        v.extend_from_slice(args);
        project.run(&v, WAIT).unwrap_or_else(|e| panic!("{e}"))
    };
    let status = exec(&["status"]);
    assert!(status.starts_with("peer id    12D3KooW"), "{status}");
    assert!(
        status.contains("\nhttp       http://0.0.0.0:5000"),
        "{status}"
    );
    let balance = exec(&["balance", &to]);
    assert!(balance.contains("\nbalance    7\n"), "{balance}");

    // `restart node2` keeps its chain and its peer id.
    let peer_id = nodes[1].field("peer id");
    let height = nodes[1].number("height");
    let t_restart = Instant::now();
    project
        .run(&["restart", "node2"], Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let restart = t_restart.elapsed();
    let code = ok(
        "docker",
        &["inspect", "-f", "{{.State.ExitCode}}", &ids[1]],
        WAIT,
    )
    .unwrap();
    nodes[1] = Attached::new("node2", &ids[1]);
    assert_eq!(
        nodes[1].field("peer id"),
        peer_id,
        "node2 has a new identity"
    );
    let after = nodes[1].number("height");
    assert!(
        after >= height,
        "node2 lost blocks: #{height} before, #{after} after"
    );
    wait_until("node2 back in the mesh", Duration::from_secs(60), || {
        let p = nodes[1].number("peers");
        if p >= 2 {
            Ok(())
        } else {
            Err(format!("{p} peers"))
        }
    });
    assert_eq!(code.trim(), "0", "node2 did not exit cleanly on restart");

    // `stop` (what `down` does first) ends every node cleanly within seconds: exit 0, no
    // SIGKILL (137) after the stop timeout.
    drop(nodes);
    let t_stop = Instant::now();
    project
        .run(&["stop", "--timeout", "20"], Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let stop = t_stop.elapsed();
    for (s, id) in services.iter().zip(&ids) {
        let code = ok(
            "docker",
            &["inspect", "-f", "{{.State.ExitCode}}", id],
            WAIT,
        )
        .unwrap();
        assert_eq!(code.trim(), "0", "{s} exited with {code} on stop");
    }
    assert!(stop < Duration::from_secs(15), "stop took {stop:?}");
    let t_down = Instant::now();
    project
        .run(&["down", "-v"], Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let down = t_down.elapsed();
    let figure = format!(
        "compose demo on a Docker engine: up --build {}; full mesh {}; blocks of both miners \
         on every best chain after {}; node2's transfer credited on all three in {}; restart \
         node2 {} (same peer id, #{height} -> #{after}); stop {} (all exit 0); down {}",
        secs(build),
        secs(mesh),
        secs(blocks),
        secs(credit),
        secs(restart),
        secs(stop),
        secs(down),
    );
    eprintln!("[compose figure] {figure}");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf);
    if let Some(t) = target
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(t.join("compose-figures.txt"))
    {
        let _ = writeln!(f, "{figure}");
    }
}

fn wait_until_opt(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
