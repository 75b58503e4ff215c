//! The LAN harness: a switch namespace holding a Linux bridge, one network namespace per host
//! with a veth pair into the bridge, and the real `gossipchain` binary run in each host
//! namespace (`ip netns exec`) with mDNS on, driven through stdin/stdout pipes.
//!
//! Nothing is created in the host's own network namespace: the bridge lives in a namespace of
//! its own, each veth pair is created between a host namespace and the switch namespace, so
//! mDNS multicast and every test packet stay on links this harness made. Namespace names start
//! with `gclan<pid>-`, unique per run.
//!
//! Cleanup is by Drop guards, which run on success and on a failed assertion (unwinding):
//! [`Node`] kills (SIGKILL) and reaps its process; [`Lan`] then kills by pid whatever still runs
//! in its namespaces and deletes them (which deletes the veths and the bridge). When `setpriv`
//! is installed, every node also gets `PR_SET_PDEATHSIG=SIGKILL`, so that it dies with the test
//! thread that spawned it even if the test process itself is killed. Namespaces left by a test
//! process that no longer exists (`gclan<pid>-` with no such pid) are deleted on the next run.

#![allow(dead_code)]

// Re-exported for the scenarios (`use harness::*`), whether or not this file uses them.
#[allow(unused_imports)]
pub use crate::binary::{
    BIN, BlockLine, POLL, Peer, Status, WAIT, block_line, is_hex64, log_field, log_time, wait_until,
};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
/// Set to 1 to make a missing prerequisite (not root, no `ip netns`, no nft, no tc) a failure.
pub const REQUIRE_LAN: &str = "GOSSIPCHAIN_REQUIRE_LAN";
/// Set to 1 to behave as if not root (checks the skip and the REQUIRE paths).
pub const PRETEND_NOT_ROOT: &str = "GOSSIPCHAIN_LAN_PRETEND_NOT_ROOT";
/// A RUST_LOG for every node instead of `info` (compose services keep their own).
pub const RUST_LOG_OVERRIDE: &str = "GOSSIPCHAIN_LAN_RUST_LOG";
/// Where every node listens (all interfaces of its own namespace).
pub const LISTEN: &str = "/ip4/0.0.0.0/tcp/4001";
/// Deadline of a helper tool (ip, nft, tc, kill).
const TOOL_WAIT: Duration = Duration::from_secs(30);
/// Prefix of every namespace this harness creates.
const PREFIX: &str = "gclan";
/// Where `ip netns exec` finds per-namespace files to bind over `/etc` (`/etc/netns/<ns>/`).
const NETNS_ETC: &str = "/etc/netns";

fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok(v) if !v.is_empty() && v != "0")
}

/// `target/` (the parent of cargo's per-target temporary directory).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// This run's prefix of names: `gclan<pid>`.
pub fn run_tag() -> String {
    format!("{PREFIX}{}", std::process::id())
}

/// The LAN scenarios share two cores: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Prints a figure of a scenario and appends it to `target/lan-figures.txt`.
pub fn figure(scenario: &str, text: &str) {
    eprintln!("[lan figure] {scenario}: {text}");
    append_figure_line(&format!("{scenario}: {text}"));
}

fn append_figure_line(line: &str) {
    static HEADER: OnceLock<String> = OnceLock::new();
    let header = HEADER.get_or_init(|| {
        let date = tool(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"])
            .map(|d| d.trim().to_string())
            .unwrap_or_else(|_| {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!("unix time {secs}")
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_default();
        format!(
            "# LAN run {} at {date}, kernel {kernel}, {} cores",
            run_tag(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )
    });
    let path = target_dir().join("lan-figures.txt");
    static WRITE: Mutex<bool> = Mutex::new(false);
    let mut header_written = WRITE.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&path) {
        if !*header_written {
            let _ = writeln!(f, "{header}");
            *header_written = true;
        }
        let _ = writeln!(f, "{} {line}", run_tag());
    }
}

// ---------------------------------------------------------------------------------------------
// Prerequisites and the skip

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The executable `tool` on PATH, or in /usr/sbin, /sbin (not always on a user's PATH).
fn tool_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `tool` is installed.
pub fn tool_exists(tool: &str) -> bool {
    tool_path(tool).is_some()
}

/// `tool`'s full path when found (else the bare name, for the error message).
fn which(tool: &str) -> String {
    tool_path(tool).map_or_else(|| tool.to_string(), |p| p.to_string_lossy().into_owned())
}

fn probe_netns() -> Result<(), String> {
    if !tool_exists("ip") {
        return Err("`ip` (iproute2) is not installed".into());
    }
    let name = format!("{}-probe", run_tag());
    tool(&["ip", "netns", "add", &name]).map_err(|e| format!("`ip netns add` fails: {e}"))?;
    tool(&["ip", "netns", "del", &name]).map_err(|e| format!("`ip netns del` fails: {e}"))?;
    Ok(())
}

fn prerequisites(tools: &[&str]) -> Result<(), String> {
    if env_flag(PRETEND_NOT_ROOT) {
        return Err(format!(
            "not root ({PRETEND_NOT_ROOT}=1 simulates an unprivileged run)"
        ));
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Err(format!("not root (effective uid {uid})")),
        None => return Err("cannot read the effective uid from /proc/self/status".into()),
    }
    static NETNS: OnceLock<Result<(), String>> = OnceLock::new();
    NETNS.get_or_init(probe_netns).clone()?;
    for t in tools {
        if !tool_exists(t) {
            return Err(format!("`{t}` is not installed"));
        }
    }
    Ok(())
}

/// True when the LAN test `test` can run (root, `ip netns`, and `tools`). Otherwise prints a
/// loud notice straight to the process's stderr (past libtest's capture) and returns false, so
/// that the test passes without testing anything; with GOSSIPCHAIN_REQUIRE_LAN=1 it panics.
pub fn lan_or_skip(test: &str, tools: &[&str]) -> bool {
    let Err(reason) = prerequisites(tools) else {
        return true;
    };
    if env_flag(REQUIRE_LAN) {
        append_figure_line(&format!("{test}: FAILED, cannot run: {reason}"));
        panic!("LAN test {test} cannot run: {reason}; {REQUIRE_LAN}=1 requires it to run");
    }
    let bar = "!".repeat(96);
    let msg = format!(
        "\n{bar}\n!!! SKIPPED LAN TEST `{test}`: {reason}.\n!!! It needs root, `ip netns`, nft \
         and tc (Debian: iproute2, nftables). NOTHING WAS TESTED.\n!!! Set {REQUIRE_LAN}=1 to \
         make this a failure.\n{bar}\n"
    );
    // Written to the process's stderr directly: libtest captures only print!/eprint!.
    let _ = std::io::stderr().write_all(msg.as_bytes());
    append_figure_line(&format!("{test}: SKIPPED ({reason})"));
    false
}

// ---------------------------------------------------------------------------------------------
// Helper tools

/// Runs a command to completion (bounded by a deadline) with `input` on stdin; its stdout, or
/// an error naming the command, its status and its stderr.
pub fn tool_input(args: &[&str], input: &str) -> Result<String, String> {
    let what = args.join(" ");
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if args.len() > 4 && args[0] == "ip" && args[1] == "netns" && args[2] == "exec" {
        args[4] = which(&args[4]);
    }
    let mut child = Command::new(which(&args[0]))
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{what}` does not start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + TOOL_WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{what}` did not finish within {TOOL_WAIT:?}"));
            }
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        Err(format!("`{what}` failed ({status}): {}", err.trim()))
    }
}

/// [`tool_input`] with no input.
pub fn tool(args: &[&str]) -> Result<String, String> {
    tool_input(args, "")
}

/// [`tool`], panicking on failure.
#[track_caller]
pub fn must(args: &[&str]) -> String {
    tool(args).unwrap_or_else(|e| panic!("{e}"))
}

fn netns_list() -> Vec<String> {
    tool(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// SIGKILLs, by pid, every process in namespace `ns` (all started by this harness), until none
/// is left (bounded).
fn kill_namespace_processes(ns: &str) {
    for _ in 0..50 {
        let pids: Vec<String> = tool(&["ip", "netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            let _ = tool(&["kill", "-KILL", pid]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("lan harness: processes still running in {ns} after SIGKILL");
}

/// Whether `name` (`gclan<pid>` or `gclan<pid>-...`) belongs to a run whose process is gone.
fn dead_run(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let tail = &rest[digits.len()..];
    !digits.is_empty()
        && (tail.is_empty() || tail.starts_with('-'))
        && !Path::new(&format!("/proc/{digits}")).exists()
}

/// How many runs' node logs to keep in `target/lan-logs`.
const KEEP_LOGS: usize = 10;

/// Cleans up after earlier runs whose test process is gone (killed before its guards ran):
/// their namespaces, with whatever still runs in them, and their data directories; and keeps
/// only the node logs of the last runs. Runs once per process.
fn sweep_stale() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for ns in netns_list() {
            if dead_run(&ns) {
                eprintln!("lan harness: deleting namespace {ns} left by a dead run");
                kill_namespace_processes(&ns);
                let _ = tool(&["ip", "netns", "del", &ns]);
            }
        }
        let dirs = |d: PathBuf| -> Vec<(PathBuf, SystemTime)> {
            std::fs::read_dir(d)
                .map(|r| {
                    r.filter_map(Result::ok)
                        .filter(|e| dead_run(&e.file_name().to_string_lossy()))
                        .map(|e| {
                            let t = e.metadata().and_then(|m| m.modified());
                            (e.path(), t.unwrap_or(UNIX_EPOCH))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (d, _) in dirs(target_dir().join("lan-data"))
            .into_iter()
            .chain(dirs(PathBuf::from(NETNS_ETC)))
        {
            let _ = std::fs::remove_dir_all(d);
        }
        let mut logs = dirs(target_dir().join("lan-logs"));
        logs.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        for (d, _) in logs.into_iter().skip(KEEP_LOGS) {
            let _ = std::fs::remove_dir_all(d);
        }
    });
}

/// A fresh data directory for a node, under `target/lan-data/gclan<pid>/` (deleted on drop,
/// or by the next run's sweep if this run is killed).
pub fn data_dir() -> tempfile::TempDir {
    sweep_stale();
    let parent = target_dir().join("lan-data").join(run_tag());
    std::fs::create_dir_all(&parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    tempfile::Builder::new()
        .prefix("node-")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("a data dir in {}: {e}", parent.display()))
}

// ---------------------------------------------------------------------------------------------
// The LAN

/// A host of the LAN: a namespace with `eth0` on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// Short name (`h1`, `node2`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its IPv4 address.
    pub ip: String,
    /// Its interface on the bridge.
    pub iface: String,
    /// The bridge port its interface is paired with (in the switch namespace).
    pub port: String,
}

/// One bridge in a switch namespace, and the host namespaces attached to it. Dropping it kills
/// what still runs in them and deletes them all.
pub struct Lan {
    /// `gclan<pid>-<scenario>`: the prefix of every namespace of this LAN.
    pub tag: String,
    switch: String,
    prefix_len: u8,
    hosts: Vec<Host>,
    /// Every namespace created, in order, for cleanup.
    namespaces: Vec<String>,
    /// nftables tables installed: (namespace, table).
    tables: Vec<(String, String)>,
    /// Bridges besides `br0`.
    bridges: Vec<String>,
    /// Router namespaces.
    routers: Vec<String>,
    /// Bridge ports made so far (for unique port names).
    ports: usize,
    /// Every interface plugged into a bridge: (namespace, interface, bridge, address), for
    /// [`Lan::static_neighbours`].
    plugged: Vec<(String, String, String, String)>,
}

/// The MAC address of the interface at IPv4 `ip`: locally administered, derived from the
/// address (unique on a bridge, as addresses are), so that neighbours can be set up front.
fn mac_of(ip: &str) -> String {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert_eq!(octets.len(), 4, "an IPv4 address: {ip}");
    format!(
        "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    )
}

impl Lan {
    /// A switch namespace with a bridge (`br0`, multicast snooping off: mDNS is flooded like
    /// on a plain switch).
    #[track_caller]
    pub fn new(scenario: &str, prefix_len: u8) -> Self {
        sweep_stale();
        let tag = format!("{}-{scenario}", run_tag());
        let switch = format!("{tag}-sw");
        let mut lan = Self {
            tag,
            switch: switch.clone(),
            prefix_len,
            hosts: Vec::new(),
            namespaces: Vec::new(),
            tables: Vec::new(),
            bridges: Vec::new(),
            routers: Vec::new(),
            ports: 0,
            plugged: Vec::new(),
        };
        lan.add_namespace(&switch);
        must(&["ip", "-n", &switch, "link", "set", "lo", "up"]);
        must(&[
            "ip",
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        must(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        lan
    }

    #[track_caller]
    fn add_namespace(&mut self, ns: &str) {
        if netns_list().iter().any(|n| n == ns) {
            panic!("namespace {ns} already exists");
        }
        must(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_string());
    }

    /// Gives every host of this LAN the same `/etc/hosts`: `localhost` and `names` (name,
    /// address), so that `/dns4/<name>/...` resolves as docker's embedded DNS resolves service
    /// names. `ip netns exec` bind-mounts `/etc/netns/<ns>/hosts` over `/etc/hosts`; the files
    /// go with the LAN.
    pub fn write_hosts(&self, names: &[(String, String)]) {
        let mut text = String::from("127.0.0.1 localhost\n");
        for (name, ip) in names {
            text.push_str(&format!("{ip} {name}\n"));
        }
        for h in &self.hosts {
            let dir = Path::new(NETNS_ETC).join(&h.ns);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            std::fs::write(dir.join("hosts"), &text)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
    }

    /// A new host namespace `name` at `ip`, its `eth0` paired with a port of the bridge.
    #[track_caller]
    pub fn add_host(&mut self, name: &str, ip: &str) -> Host {
        self.add_host_on("br0", name, ip)
    }

    /// Another bridge (another subnet) in the switch namespace; hosts join it with
    /// [`Lan::add_host_on`], and a router ([`Lan::add_router`]) joins the subnets.
    #[track_caller]
    pub fn add_bridge(&mut self, bridge: &str) {
        let sw = self.switch.clone();
        must(&[
            "ip",
            "-n",
            &sw,
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        must(&["ip", "-n", &sw, "link", "set", bridge, "up"]);
        self.bridges.push(bridge.to_string());
    }

    /// Pairs a new interface `iface` of namespace `ns` with a new port of `bridge`, at `ip`.
    #[track_caller]
    fn plug(&mut self, ns: &str, iface: &str, bridge: &str, ip: &str) -> String {
        self.ports += 1;
        let port = format!("port{}", self.ports);
        let sw = self.switch.clone();
        let mac = mac_of(ip);
        must(&[
            "ip", "-n", ns, "link", "add", iface, "address", &mac, "type", "veth", "peer", "name",
            &port, "netns", &sw,
        ]);
        must(&["ip", "-n", &sw, "link", "set", &port, "master", bridge]);
        must(&["ip", "-n", &sw, "link", "set", &port, "up"]);
        let cidr = format!("{ip}/{}", self.prefix_len);
        must(&["ip", "-n", ns, "addr", "add", &cidr, "dev", iface]);
        must(&["ip", "-n", ns, "link", "set", iface, "up"]);
        self.plugged
            .push((ns.into(), iface.into(), bridge.into(), ip.into()));
        port
    }

    /// Gives every interface a permanent neighbour entry (IPv4 address to MAC) for every other
    /// interface on its bridge, so that no ARP entry is ever needed. The kernel's neighbour
    /// table is one for all namespaces, and its limit (`net.ipv4.neigh.default.gc_thresh3`,
    /// 1024 by default) is the host's: 200 hosts on subnets of 10 hold about 2200 entries
    /// (each host's neighbours and gateway, and the router's 200), and past the limit the
    /// kernel logs "neighbor table overflow" and drops the packets of every host whose entry
    /// it cannot make (such a host's connections stall both ways, open on both sides).
    /// Permanent entries do not count against the limit, so the LAN works whatever the host's
    /// setting. Call it once every host and router is plugged.
    #[track_caller]
    pub fn static_neighbours(&self) {
        let mut batches: Vec<(String, String)> = Vec::new();
        for (ns, iface, bridge, ip) in &self.plugged {
            let mut lines = String::new();
            for (_, _, other_bridge, other_ip) in &self.plugged {
                if other_bridge == bridge && other_ip != ip {
                    lines.push_str(&format!(
                        "neigh replace {other_ip} lladdr {} dev {iface} nud permanent\n",
                        mac_of(other_ip)
                    ));
                }
            }
            match batches.iter_mut().find(|(n, _)| n == ns) {
                Some((_, text)) => text.push_str(&lines),
                None => batches.push((ns.clone(), lines)),
            }
        }
        for (ns, text) in batches {
            tool_input(&["ip", "-n", &ns, "-batch", "-"], &text)
                .unwrap_or_else(|e| panic!("{e}\nneighbours of {ns}:\n{text}"));
        }
    }

    /// A new host namespace `name` at `ip` on `bridge`.
    #[track_caller]
    pub fn add_host_on(&mut self, bridge: &str, name: &str, ip: &str) -> Host {
        let ns = format!("{}-{name}", self.tag);
        self.add_namespace(&ns);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let port = self.plug(&ns, "eth0", bridge, ip);
        let host = Host {
            name: name.to_string(),
            ns,
            ip: ip.to_string(),
            iface: "eth0".into(),
            port,
        };
        self.hosts.push(host.clone());
        host
    }

    /// A router namespace with one interface on each `(bridge, ip)`, forwarding IPv4 between
    /// them (unicast only: like any router without a multicast daemon, it does not forward
    /// mDNS). Hosts reach it with [`Lan::route_via`].
    #[track_caller]
    pub fn add_router(&mut self, name: &str, links: &[(&str, &str)]) {
        let ns = format!("{}-{name}", self.tag);
        self.add_namespace(&ns);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for (i, (bridge, ip)) in links.iter().enumerate() {
            self.plug(&ns, &format!("eth{i}"), bridge, ip);
        }
        must(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        self.routers.push(ns);
    }

    /// Makes router `name` a NAT, as a home router is: what leaves by its interface `outside`
    /// (`eth<i>`, in the order of [`Lan::add_router`]'s links) takes the router's address there
    /// (masquerade, which keeps the source port when it is free), and a TCP connection to
    /// that address on a port of `forwards` goes to its `(port, host address)` inside (a
    /// forwarded port); nothing else gets in. The rules go with the router's namespace.
    #[track_caller]
    pub fn nat(&mut self, name: &str, outside: &str, forwards: &[(u16, &str)]) {
        let ns = self.router_ns(name);
        let dnat: String = forwards
            .iter()
            .map(|(port, ip)| {
                format!("    iifname \"{outside}\" tcp dport {port} dnat to {ip}:{port}\n")
            })
            .collect();
        let ruleset = format!(
            "table ip gcnat {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n  chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{outside}\" masquerade\n  }}\n}}\n"
        );
        tool_input(&["ip", "netns", "exec", &ns, "nft", "-f", "-"], &ruleset)
            .unwrap_or_else(|e| panic!("{e}\nruleset:\n{ruleset}"));
    }

    /// The namespace of router `name`, for tools such as `tc` on its links.
    pub fn router_ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// Sends `host`'s traffic for other subnets through `gateway`.
    #[track_caller]
    pub fn route_via(&self, host: &Host, gateway: &str) {
        must(&[
            "ip", "-n", &host.ns, "route", "add", "default", "via", gateway,
        ]);
    }

    /// Loads an nftables ruleset (one table) into a host's namespace.
    #[track_caller]
    fn nft_table(&mut self, host: &Host, table: &str, body: &str) {
        let ruleset = format!("table inet {table} {{\n{body}\n}}\n");
        tool_input(
            &["ip", "netns", "exec", &host.ns, "nft", "-f", "-"],
            &ruleset,
        )
        .unwrap_or_else(|e| panic!("{e}\nruleset:\n{ruleset}"));
        self.tables.push((host.ns.clone(), table.to_string()));
    }

    #[track_caller]
    fn drop_table(&mut self, ns: &str, table: &str) {
        must(&[
            "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table,
        ]);
        self.tables.retain(|(n, t)| !(n == ns && t == table));
    }

    /// Cuts `a` from `b`: in each host's namespace, nftables drops every packet from or to the
    /// other group's addresses (TCP, mDNS, everything).
    #[track_caller]
    pub fn partition(&mut self, a: &[&Host], b: &[&Host]) {
        for (side, other) in [(a, b), (b, a)] {
            let ips: Vec<&str> = other.iter().map(|h| h.ip.as_str()).collect();
            let set = ips.join(", ");
            for h in side {
                self.nft_table(
                    h,
                    "gcpart",
                    &format!(
                        "  chain in {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} counter drop; }}\n  chain out {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} counter drop; }}"
                    ),
                );
            }
        }
    }

    /// Removes every partition rule.
    #[track_caller]
    pub fn heal(&mut self) {
        let parts: Vec<(String, String)> = self
            .tables
            .iter()
            .filter(|(_, t)| t == "gcpart")
            .cloned()
            .collect();
        for (ns, t) in parts {
            self.drop_table(&ns, &t);
        }
    }

    /// Packets the partition rules dropped so far, summed over every host.
    pub fn partition_drops(&self) -> u64 {
        self.tables
            .iter()
            .filter(|(_, t)| t == "gcpart")
            .map(|(ns, t)| nft_counters(ns, "inet", t).iter().sum::<u64>())
            .sum()
    }

    /// A lossy, slow link for `host`, both ways. nftables on the bridge (this kernel has no
    /// netem) drops `loss_percent` of the packets at random that come from the host's port and
    /// that go to it: lost on the wire, as on a bad cable or radio link, so the sender sees no
    /// error (a drop in the host's own output hook would fail its `send` with EPERM instead).
    /// A token bucket (tbf) shapes the host's interface and its bridge port.
    #[track_caller]
    pub fn impair(
        &mut self,
        host: &Host,
        loss_percent: u32,
        rate: &str,
        burst: &str,
        latency: &str,
    ) {
        let ruleset = format!(
            "table bridge gcloss {{\n  chain loss {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{port}\" numgen random mod 100 < {loss_percent} counter drop\n    oifname \"{port}\" numgen random mod 100 < {loss_percent} counter drop\n  }}\n}}\n",
            port = host.port
        );
        let sw = self.switch.clone();
        tool_input(&["ip", "netns", "exec", &sw, "nft", "-f", "-"], &ruleset)
            .unwrap_or_else(|e| panic!("{e}\nruleset:\n{ruleset}"));
        for (ns, dev) in [(&host.ns, &host.iface), (&sw, &host.port)] {
            must(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                rate, "burst", burst, "latency", latency,
            ]);
        }
    }

    /// What the impairment of `host` did: packets dropped by the loss rules (from the host, to
    /// the host), and the shapers' statistics lines (out of the host, into it).
    pub fn impairment_stats(&self, host: &Host) -> ((u64, u64), (String, String)) {
        let counters = nft_counters(&self.switch, "bridge", "gcloss");
        let (out, inn) = (
            counters.first().copied().unwrap_or(0),
            counters.get(1).copied().unwrap_or(0),
        );
        let tc = |ns: &str, dev: &str| {
            let listing = tool(&[
                "ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev,
            ])
            .unwrap_or_default();
            listing
                .lines()
                .find(|l| l.trim_start().starts_with("Sent"))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        (
            (out, inn),
            (tc(&host.ns, &host.iface), tc(&self.switch, &host.port)),
        )
    }
}

/// The packet counters of an nftables table, in rule order.
fn nft_counters(ns: &str, family: &str, table: &str) -> Vec<u64> {
    let listing = tool(&[
        "ip", "netns", "exec", ns, "nft", "list", "table", family, table,
    ])
    .unwrap_or_default();
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "counter" && w[1] == "packets")
        .filter_map(|w| w[2].parse::<u64>().ok())
        .collect()
}

impl Drop for Lan {
    /// Kills by pid what still runs in the namespaces, deletes the links (each veth pair with
    /// its host end, then the bridge), then the namespaces.
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            kill_namespace_processes(ns);
        }
        for h in &self.hosts {
            let _ = tool(&["ip", "-n", &h.ns, "link", "del", &h.iface]);
        }
        for r in &self.routers {
            for i in 0..8 {
                let _ = tool(&["ip", "-n", r, "link", "del", &format!("eth{i}")]);
            }
        }
        for bridge in self.bridges.iter().map(String::as_str).chain(["br0"]) {
            let _ = tool(&["ip", "-n", &self.switch, "link", "del", bridge]);
        }
        for ns in &self.namespaces {
            let _ = std::fs::remove_dir_all(Path::new(NETNS_ETC).join(ns));
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = tool(&["ip", "netns", "del", ns]) {
                eprintln!("lan harness: cannot delete namespace {ns}: {e}");
            }
        }
        let left: Vec<String> = netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{}-", self.tag)))
            .collect();
        if !left.is_empty() {
            eprintln!("lan harness: namespaces left behind: {left:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// The standard arguments of a LAN node: its data dir, the fixed port on every interface of
/// its namespace, the chain's difficulty, one mining thread; mDNS on, no `--peer`.
pub fn lan_args(dir: &Path, difficulty: u32, extra: &[&str]) -> Vec<OsString> {
    lan_args_on(dir, &["--difficulty", &difficulty.to_string()], extra)
}

/// [`lan_args`] on the chain that `chain` selects (`--difficulty N` or `--block-time T`).
pub fn lan_args_on(dir: &Path, chain: &[&str], extra: &[&str]) -> Vec<OsString> {
    lan_args_at(dir, LISTEN, chain, extra)
}

/// [`lan_args_on`] listening on `listen` instead of the fixed port.
pub fn lan_args_at(dir: &Path, listen: &str, chain: &[&str], extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--data-dir".into(), dir.into()];
    for a in ["--listen", listen]
        .iter()
        .chain(chain)
        .chain(&["--threads", "1"])
    {
        args.push(a.into());
    }
    args.extend(extra.iter().map(OsString::from));
    args
}

/// A `gossipchain` process running in a host namespace: the shared driver of the binary
/// (`tests/binary`), which it dereferences to, and its host. Dropping it kills and reaps it.
pub struct Node {
    /// Its host.
    pub host: Host,
    bin: crate::binary::Node,
}

impl std::ops::Deref for Node {
    type Target = crate::binary::Node;
    fn deref(&self) -> &Self::Target {
        &self.bin
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.bin
    }
}

impl Node {
    /// Spawns the binary in `host`'s namespace with `args`, a clean GOSSIPCHAIN_* environment
    /// plus `env`, and RUST_LOG=info (unless `env` sets it); its log goes to
    /// `target/lan-logs/<run>/`.
    #[track_caller]
    pub fn spawn(name: &str, host: &Host, args: &[OsString], env: &[(String, String)]) -> Self {
        static COUNT: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut c = COUNT.lock().unwrap_or_else(|e| e.into_inner());
            *c += 1;
            *c
        };
        let log_dir = target_dir().join("lan-logs").join(run_tag());
        let _ = std::fs::create_dir_all(&log_dir);
        let log_path = log_dir.join(format!("{n:03}-{}-{name}.log", host.ns));
        let mut c = Command::new(which("ip"));
        c.args(["netns", "exec", &host.ns]);
        // `ip netns exec` and setpriv both exec: the child's pid is the node's.
        if let Some(setpriv) = tool_path("setpriv") {
            c.arg(setpriv).args(["--pdeathsig", "KILL", "--"]);
        }
        c.arg(BIN).args(args);
        // A process group of its own, whose parent (this process) is in another: such a group
        // is never orphaned while this process runs, so a node stopped on purpose (SIGSTOP) is
        // not sent SIGHUP when this process's own group is orphaned (its parent shell exits).
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        crate::binary::clean_env(&mut c);
        // GOSSIPCHAIN_LAN_RUST_LOG overrides the level, e.g. `info,libp2p_mdns=trace`.
        let level = std::env::var(RUST_LOG_OVERRIDE).unwrap_or_else(|_| "info".into());
        c.env("RUST_LOG", &level);
        for (k, v) in env {
            c.env(k, v);
        }
        Self {
            host: host.clone(),
            bin: crate::binary::Node::spawn(name, c, Some(log_path), &host.ip),
        }
    }

    /// `quit`, then a clean exit, and nothing went wrong unnoticed: no error, no panic and no
    /// ban in the whole log (every host here is honest).
    #[track_caller]
    pub fn quit(&mut self) {
        self.bin.quit();
        let bad = self.logs(|l| {
            l.contains(" ERROR ") || l.contains("panicked") || l.contains("banning peer")
        });
        if !bad.is_empty() {
            self.fail(&format!("errors in the log: {bad:?}"));
        }
    }
}

/// The `p` quantile (0..=1) of ascending `sorted`, nearest rank; NaN if empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Waits until every node's tip is `tip`; the time it took.
#[track_caller]
pub fn wait_tip(nodes: &mut [Node], tip: &str, what: &str, timeout: Duration) -> Duration {
    wait_until(what, timeout, || {
        let mut off = Vec::new();
        for n in nodes.iter_mut() {
            let (h, t) = n.head();
            if t != tip {
                off.push(format!("{} at #{h} {}", n.name, &t[..12]));
            }
        }
        if off.is_empty() {
            Ok(())
        } else {
            Err(format!("want tip {}; {}", &tip[..12], off.join(", ")))
        }
    })
}

/// Waits until every node's peers are exactly the others (by peer id); the time it took.
#[track_caller]
pub fn wait_full_mesh(nodes: &mut [Node], ids: &[String], timeout: Duration) -> Duration {
    wait_until("a full mesh", timeout, || {
        let mut missing = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            let mut got: Vec<String> = n.peers().into_iter().map(|p| p.id).collect();
            got.sort();
            let mut want: Vec<String> = ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| id.clone())
                .collect();
            want.sort();
            if got != want {
                missing.push(format!(
                    "{} has {} of {} peers",
                    n.name,
                    got.len(),
                    want.len()
                ));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    })
}
