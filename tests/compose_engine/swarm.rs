//! The swarm stack (docker-stack.yml) on a real engine, as the operations guide runs it:
//! `docker stack deploy`, `docker service scale` of the node service to 10 replicas, and every
//! task on one chain, having found the others through the bootnode's DNS name and the DHT.
//!
//! The engine is made a single-node swarm for the test (`docker swarm init`, which needs no
//! network beyond this machine) and left again afterwards; an engine that is a swarm manager
//! already is used as it is, and left one. Each run deploys a stack of its own
//! (`gcswarm<pid>`); a guard removes it, its volumes and its network whether the test passes
//! or fails, and a later run removes the stacks of runs that were killed.

use super::*;
use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};

const STACK_PREFIX: &str = "gcswarm";
/// Replicas of the node service the test scales to.
const NODES: usize = 10;
/// The stack's other tasks: the bootnode and two miners.
const OTHERS: usize = 3;
/// A chain this high has blocks of several miners, each relayed to every task.
const MIN_HEIGHT: u64 = 5;
/// Every task running after `docker service scale`.
const START_WAIT: Duration = Duration::from_secs(180);
/// Every task on one tip, with peers of its own beyond the bootnode.
const CONVERGE_WAIT: Duration = Duration::from_secs(300);
/// Peers each task has at least: the bootnode and two found through the DHT.
const MIN_PEERS: u64 = 3;

/// The engine as a swarm manager for the test; leaves the swarm when dropped if it made it.
/// (`docker swarm leave` keeps the `docker_gwbridge` network that `init` made, and the engine
/// then refuses to remove it, for an endpoint no container holds; the next `init` reuses it.)
struct Swarm {
    created: bool,
}

impl Swarm {
    fn manager() -> Self {
        let state = ok(
            "docker",
            &[
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
            ],
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        match state.split_whitespace().collect::<Vec<_>>()[..] {
            ["active", "true"] => return Self { created: false },
            ["active", _] => {
                panic!("this engine is a swarm worker: a stack is deployed from a manager")
            }
            ["inactive", ..] => {}
            _ => panic!(
                "the engine's swarm is {}: cannot deploy a stack",
                state.trim()
            ),
        }
        // A machine with several addresses needs to be told which one the swarm uses; a
        // single-node swarm needs none beyond this machine.
        if let Err(first) = ok("docker", &["swarm", "init"], Duration::from_secs(60)) {
            ok(
                "docker",
                &["swarm", "init", "--advertise-addr", "127.0.0.1"],
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("docker swarm init: {first}; then {e}"));
        }
        Self { created: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.created
            && let Err(e) = ok(
                "docker",
                &["swarm", "leave", "--force"],
                Duration::from_secs(60),
            )
        {
            eprintln!("docker swarm leave: {e}");
        }
    }
}

/// One deployed stack; removed with its volumes when dropped.
struct Stack {
    name: String,
}

impl Stack {
    /// Deploys docker-stack.yml as `gcswarm<pid>`, its dashboard published on `port`.
    fn deploy(port: u16) -> Self {
        sweep_stale_stacks();
        let stack = Self {
            name: format!("{STACK_PREFIX}{}", std::process::id()),
        };
        // The guard exists before the deploy: a deploy that fails half-way is removed too.
        ok(
            "env",
            &[
                &format!("GOSSIPCHAIN_HTTP_PORT={port}"),
                "GOSSIPCHAIN_IMAGE=gossipchain:latest",
                "docker",
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "-c",
                "docker-stack.yml",
                &stack.name,
            ],
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        stack
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.name)
    }

    /// The running containers of a service (on this machine: the swarm has no other).
    fn containers(&self, service: &str) -> Vec<String> {
        ok(
            "docker",
            &[
                "ps",
                "-q",
                "--filter",
                &format!(
                    "label=com.docker.swarm.service.name={}",
                    self.service(service)
                ),
                "--filter",
                "status=running",
            ],
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
    }

    /// Tasks of a service that ended (failed, or replaced by the scheduler).
    fn ended_tasks(&self, service: &str) -> Vec<String> {
        ok(
            "docker",
            &[
                "service",
                "ps",
                "--filter",
                "desired-state=shutdown",
                "--format",
                "{{.Name}} {{.CurrentState}} {{.Error}}",
                &self.service(service),
            ],
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        remove_stack(&self.name);
    }
}

/// `docker stack rm`, then, once its containers are gone, its volumes; waits for the network.
fn remove_stack(name: &str) {
    if let Err(e) = ok("docker", &["stack", "rm", name], Duration::from_secs(120)) {
        eprintln!("docker stack rm {name}: {e}");
    }
    let label = format!("label=com.docker.stack.namespace={name}");
    let gone = wait_until_opt(Duration::from_secs(90), || {
        ok("docker", &["ps", "-aq", "--filter", &label], WAIT).is_ok_and(|o| o.trim().is_empty())
    });
    if !gone {
        eprintln!("stack {name}: containers still there after 90 s");
    }
    let prefix = format!("{name}_");
    if let Ok(volumes) = ok(
        "docker",
        &["volume", "ls", "-q", "--filter", &format!("name={prefix}")],
        WAIT,
    ) {
        let ours: Vec<&str> = volumes
            .lines()
            .map(str::trim)
            .filter(|v| v.starts_with(&prefix))
            .collect();
        if !ours.is_empty() {
            let mut args = vec!["volume", "rm"];
            args.extend(&ours);
            if let Err(e) = ok("docker", &args, Duration::from_secs(60)) {
                eprintln!("stack {name}: {e}");
            }
        }
    }
    let network = format!("{name}_chain");
    let gone = wait_until_opt(Duration::from_secs(60), || {
        ok(
            "docker",
            &[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name={network}"),
            ],
            WAIT,
        )
        .is_ok_and(|o| o.trim().is_empty())
    });
    if !gone {
        eprintln!("stack {name}: network {network} still there after 60 s");
    }
}

/// Removes the stacks (and their volumes) of earlier runs whose process is gone.
fn sweep_stale_stacks() {
    let mut names: Vec<String> = Vec::new();
    if let Ok(stacks) = ok("docker", &["stack", "ls", "--format", "{{.Name}}"], WAIT) {
        names.extend(stacks.lines().map(|l| l.trim().to_string()));
    }
    // A run killed between `stack rm` and removing its volumes leaves only those.
    if let Ok(volumes) = ok("docker", &["volume", "ls", "-q"], WAIT) {
        names.extend(
            volumes
                .lines()
                .filter_map(|v| v.trim().split_once('_').map(|(s, _)| s.to_string())),
        );
    }
    names.sort();
    names.dedup();
    for name in names {
        let Some(pid) = name
            .strip_prefix(STACK_PREFIX)
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("swarm test: removing stack {name} left by a dead run");
        remove_stack(&name);
    }
}

/// A TCP port free on this machine now, for the dashboard's published port.
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The body of `GET path` on 127.0.0.1:`port`, if it answers 200.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {answer:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.to_string())
}

/// One task's status line values.
struct TaskStatus {
    height: u64,
    tip: String,
    peers: u64,
    reachable: bool,
}

fn task_status(node: &mut Attached) -> TaskStatus {
    let s = node.status();
    let get = |k: &str| {
        s.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{}: status has no {k}", node.name))
    };
    let first_number = |k: &str| {
        let v = get(k);
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: {k} is {v:?}", node.name))
    };
    TaskStatus {
        height: first_number("height"),
        tip: get("tip")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        peers: first_number("peers"),
        reachable: !get("reachable").starts_with("not confirmed"),
    }
}

#[test]
fn swarm_stack_scaled_to_ten_nodes_converges() {
    if !engine_or_skip("swarm stack") {
        return;
    }
    let _turn = engine_turn();
    // The image the compose demo builds (all cache hits after it) is the stack's image.
    let compose = compose_command().expect("checked");
    let mut build: Vec<&str> = compose[1..].iter().map(String::as_str).collect();
    build.extend(["-f", "docker-compose.yml", "build"]);
    let t_build = Instant::now();
    ok(&compose[0], &build, BUILD_WAIT).unwrap_or_else(|e| panic!("{e}"));
    let build = t_build.elapsed();

    let _swarm = Swarm::manager();
    let port = free_port();
    let stack = Stack::deploy(port);
    let t_scale = Instant::now();
    ok(
        "docker",
        &[
            "service",
            "scale",
            "--detach",
            &format!("{}={NODES}", stack.service("node")),
        ],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let services = ["bootnode", "miner", "node"];
    let want = [1, 2, NODES];
    wait_until("every task running", START_WAIT, || {
        let n: Vec<usize> = services.iter().map(|s| stack.containers(s).len()).collect();
        if n == want {
            Ok(())
        } else {
            Err(format!(
                "running {n:?} of {want:?} (bootnode, miners, nodes)"
            ))
        }
    });
    let running = t_scale.elapsed();
    let mut tasks: Vec<Attached> = services
        .iter()
        .flat_map(|s| {
            stack
                .containers(s)
                .into_iter()
                .enumerate()
                .map(move |(i, id)| Attached::new(&format!("{s}#{i}"), &id))
        })
        .collect();
    assert_eq!(tasks.len(), NODES + OTHERS);

    // One tip everywhere, high enough to hold blocks of several miners, every task with
    // peers beyond the bootnode (found in the DHT) and an overlay address others confirmed.
    let mut last = (0, String::new());
    wait_until("every task on one tip", CONVERGE_WAIT, || {
        let all: Vec<TaskStatus> = tasks.iter_mut().map(task_status).collect();
        let tips: BTreeSet<&str> = all.iter().map(|s| s.tip.as_str()).collect();
        let heights: Vec<u64> = all.iter().map(|s| s.height).collect();
        let peers: Vec<u64> = all.iter().map(|s| s.peers).collect();
        let unconfirmed = all.iter().filter(|s| !s.reachable).count();
        if tips.len() == 1
            && heights[0] >= MIN_HEIGHT
            && peers.iter().all(|&p| p >= MIN_PEERS)
            && unconfirmed == 0
        {
            last = (heights[0], all[0].tip.clone());
            Ok(())
        } else {
            Err(format!(
                "{} tips, heights {heights:?}, peers {peers:?}, {unconfirmed} without a \
                 confirmed address",
                tips.len()
            ))
        }
    });
    let converged = t_scale.elapsed();
    let (height, tip) = last;

    // The bootnode's dashboard port, published on the manager, answers from this machine.
    let published: u64 = http_get(port, "/blocks/tip/height")
        .unwrap_or_else(|e| panic!("dashboard port {port}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("tip height on port {port}: {e}"));
    assert!(published >= height, "#{published} on the published port");

    // No task crashed or was replaced on the way.
    for s in services {
        let ended = stack.ended_tasks(s);
        assert!(ended.is_empty(), "{s}: tasks ended: {ended:?}");
    }
    drop(tasks);
    let t_rm = Instant::now();
    drop(stack);
    let rm = t_rm.elapsed();
    let figure = format!(
        "swarm stack on a single-node swarm: build (cached) {}; {} tasks running {} after \
         `service scale node={NODES}`; all on one tip (#{height} {}...) with >= {MIN_PEERS} \
         peers and a confirmed overlay address {} after it; stack rm and volumes {}",
        secs(build),
        NODES + OTHERS,
        secs(running),
        &tip[..12.min(tip.len())],
        secs(converged),
        secs(rm),
    );
    eprintln!("[swarm figure] {figure}");
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
