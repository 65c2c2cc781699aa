//! The swarm a swarm test borrows the local daemon for, and the turn-taking between runs: a
//! guard that waits for its turn, makes the swarm (a single node on 127.0.0.1, or the two
//! nodes of scripts/swarm-nodes.sh), and leaves it again in every case on drop; and the
//! `docker service` readings the swarm tests share.
//!
//! Everything that coordinates runs lives in the daemon, not in files, because the daemon is
//! shared by sessions that share neither `/tmp` nor process ids: the swarm a test creates
//! carries node labels (`wakeproxy.swarm-test`, whether `docker_gwbridge` existed before, and
//! a heartbeat the running test renews every few seconds). Another run that finds such a swarm
//! with a fresh heartbeat waits for it to be left; with a stale one (its run was killed before
//! its guard ran) it leaves it and goes on. A swarm without the label is not ours: the test
//! fails at once with a message and touches nothing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::docker::{docker, docker_try};

/// Node label: this swarm was created by this test.
pub const LABEL_OWNER: &str = "wakeproxy.swarm-test";
/// Node label: Unix time of the owner's last sign of life.
pub const LABEL_HEARTBEAT: &str = "wakeproxy.swarm-test.heartbeat";
/// Node label: whether `docker_gwbridge` existed before the swarm.
pub const LABEL_GWBRIDGE: &str = "wakeproxy.swarm-test.gwbridge-before";
/// Node label: this swarm was made by scripts/swarm-nodes.sh.
pub const LABEL_NODES: &str = "wakeproxy.swarm-nodes";
/// Longest time scripts/swarm-nodes.sh takes to make its swarm, after which a swarm it made
/// without an owner's label is a killed run's.
pub const NODES_UP_MAX: Duration = Duration::from_secs(300);
/// How often the owner renews its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// A heartbeat older than this means the owner died.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);
/// Longest wait for another run of this test to finish with its swarm.
pub const TURN_WAIT: Duration = Duration::from_secs(600);
/// Longest wait for a moment when leaving the swarm cannot hurt other containers.
pub const QUIET_WAIT: Duration = Duration::from_secs(180);
/// Names of every run's containers and networks start with this (then the process id).
pub const FAMILY: &str = "wpt-swarm-";

pub fn network_exists(name: &str) -> bool {
    docker_try(&["network", "inspect", "-f", "{{.Name}}", name]).is_some_and(|n| n == name)
}

pub fn swarm_state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What the daemon's swarm state means for this test.
#[derive(Debug)]
pub enum Seen {
    /// In no swarm.
    Inactive,
    /// A swarm another run of this test is using right now.
    OursBusy,
    /// A swarm a run of a swarm test created and then died without leaving (`two_nodes`:
    /// made by scripts/swarm-nodes.sh).
    OursLeftover {
        gwbridge_before: bool,
        two_nodes: bool,
    },
    /// Someone else's swarm.
    Foreign { state: String, node: String },
}

/// How long ago node `node` joined the swarm (its `CreatedAt`); long ago when unknown.
fn node_age(node: &str) -> Duration {
    let created = docker_try(&["node", "inspect", node, "--format", "{{.CreatedAt.Unix}}"])
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(0.0);
    Duration::from_secs_f64((unix_now() - created).max(0.0))
}

pub fn look() -> Seen {
    let state = swarm_state();
    if state == "inactive" {
        return Seen::Inactive;
    }
    let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let labels: BTreeMap<String, String> = docker_try(&[
        "node",
        "inspect",
        &node,
        "--format",
        "{{json .Spec.Labels}}",
    ])
    .and_then(|j| serde_json::from_str(&j).ok())
    .unwrap_or_default();
    let two_nodes = labels.get(LABEL_NODES).map(String::as_str) == Some("1");
    if labels.get(LABEL_OWNER).map(String::as_str) != Some("1") {
        // Made by scripts/swarm-nodes.sh for a run that labels it once the script is done.
        return match two_nodes {
            true if node_age(&node) < NODES_UP_MAX => Seen::OursBusy,
            true => Seen::OursLeftover {
                gwbridge_before: true,
                two_nodes,
            },
            false => Seen::Foreign { state, node },
        };
    }
    let beat = labels
        .get(LABEL_HEARTBEAT)
        .and_then(|b| b.parse::<f64>().ok())
        .unwrap_or(0.0);
    if unix_now() - beat > HEARTBEAT_STALE.as_secs_f64() {
        Seen::OursLeftover {
            gwbridge_before: labels.get(LABEL_GWBRIDGE).map(String::as_str) == Some("true"),
            two_nodes,
        }
    } else {
        Seen::OursBusy
    }
}

/// Running containers attached to a user-defined network, other than this test family's: on
/// Engine 20.10 their DNS names would not survive `docker swarm leave` (moby/moby#45144).
pub fn dns_at_risk() -> Vec<String> {
    let out = docker_try(&["ps", "--format", "{{.Names}}\t{{.Networks}}"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(name, nets)| {
            !name.starts_with(FAMILY)
                && nets
                    .split(',')
                    .any(|n| !matches!(n.trim(), "" | "bridge" | "host" | "none" | "ingress"))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Waits (up to `QUIET_WAIT`) until leaving the swarm cannot break another container's DNS.
pub fn wait_for_quiet() {
    let deadline = Instant::now() + QUIET_WAIT;
    let mut said = false;
    loop {
        let busy = dns_at_risk();
        if busy.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "swarm test: WARNING: leaving the swarm while {} still run on user-defined networks; \
                 Docker 20.10 drops their DNS names on leave (moby/moby#45144): reconnect or restart them",
                busy.join(", ")
            );
            return;
        }
        if !said {
            eprintln!(
                "swarm test: waiting for {} to finish before leaving the swarm (Docker 20.10 drops the DNS \
                 names of containers on user-defined networks on leave, moby/moby#45144)",
                busy.join(", ")
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Leaves the swarm (at a quiet moment) and removes what joining it created.
pub fn leave_swarm(gwbridge_before: bool) {
    wait_for_quiet();
    for _ in 0..3 {
        if docker_try(&["swarm", "leave", "--force"]).is_some() || swarm_state() == "inactive" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !gwbridge_before {
        // Left behind by `swarm leave`; busy for a moment while endpoints go away.
        for _ in 0..40 {
            if !network_exists("docker_gwbridge")
                || docker_try(&["network", "rm", "docker_gwbridge"]).is_some()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Removes containers (and their `-br` networks) of this test family that runs killed long
/// ago left behind: a run lasts minutes, so anything older than half an hour is an orphan.
pub fn remove_orphans() {
    let out = docker_try(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{FAMILY}"),
        "--format",
        "{{.Names}}\t{{.RunningFor}}",
    ])
    .unwrap_or_default();
    for (name, age) in out.lines().filter_map(|l| l.split_once('\t')) {
        let minutes = age
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let old = ["hour", "day", "week", "month", "year"]
            .iter()
            .any(|u| age.contains(u))
            || (age.contains("minute") && minutes.is_some_and(|m| m >= 30));
        if old {
            eprintln!("swarm test: removing {name}, left behind {age} by a killed run");
            let _ = docker_try(&["rm", "-f", "-v", name]);
            if let Some(base) = name.strip_suffix("-brc") {
                let _ = docker_try(&["network", "rm", &format!("{base}-br")]);
            }
        }
    }
}

/// Removes every container and network of this test family: called when a run died in its
/// swarm (stale heartbeat). No live run has any then: runs make them only once the swarm is
/// theirs, and the swarm is still the dead run's.
pub fn remove_family() {
    let ids = docker_try(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{FAMILY}"),
        "--format",
        "{{.Names}}",
    ])
    .unwrap_or_default();
    for name in ids.lines().filter(|n| n.starts_with(FAMILY)) {
        eprintln!("swarm test: removing {name}, left behind by a killed run");
        let _ = docker_try(&["rm", "-f", "-v", name]);
    }
    let nets = docker_try(&["network", "ls", "--format", "{{.Name}}"]).unwrap_or_default();
    for net in nets.lines().filter(|n| n.starts_with(FAMILY)) {
        let _ = docker_try(&["network", "rm", net]);
    }
}

/// Which swarm a test borrows the daemon for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The daemon alone, on 127.0.0.1.
    Single,
    /// The daemon as manager and a second engine as worker (scripts/swarm-nodes.sh).
    TwoNodes,
}

/// The set-up script of the two-node swarm.
pub fn nodes_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/swarm-nodes.sh")
}

/// Runs scripts/swarm-nodes.sh with `args`: (success, stdout, stderr).
pub fn run_nodes_script(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(nodes_script())
        .args(args)
        .output()
        .expect("running scripts/swarm-nodes.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The swarm of this test: entered on creation, left on drop.
pub struct SwarmGuard {
    pub gwbridge_before: bool,
    pub shape: Shape,
    /// What `swarm-nodes.sh up` printed (`KEY=value`), for `Shape::TwoNodes`.
    pub env: BTreeMap<String, String>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

/// Makes the swarm of `shape`; `Err` when another run got in first.
fn create(shape: Shape) -> Result<BTreeMap<String, String>, String> {
    match shape {
        Shape::Single => {
            let init = Command::new("docker")
                .args(["swarm", "init", "--listen-addr", "127.0.0.1:2377"])
                .args(["--advertise-addr", "127.0.0.1"])
                .output()
                .expect("docker swarm init");
            match init.status.success() {
                true => Ok(BTreeMap::new()),
                false => Err(String::from_utf8_lossy(&init.stderr).trim().to_string()),
            }
        }
        Shape::TwoNodes => {
            let (ok, out, err) = run_nodes_script(&["up"]);
            if !ok && err.contains("that swarm-nodes did not create") {
                // Another run's swarm appeared in between: the script touched nothing.
                return Err(err);
            }
            if !ok {
                let (_, _, down) = run_nodes_script(&["down"]);
                panic!("scripts/swarm-nodes.sh up failed:\n{err}\n(down after it:\n{down})");
            }
            Ok(out
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        }
    }
}

/// Labels the manager node as this run's and renews its heartbeat until `stop` is set.
fn claim(gwbridge_before: bool, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let beat = |node: &str| {
        docker_try(&[
            "node",
            "update",
            "--label-add",
            &format!("{LABEL_HEARTBEAT}={:.0}", unix_now()),
            node,
        ])
    };
    docker(&[
        "node",
        "update",
        "--label-add",
        &format!("{LABEL_OWNER}=1"),
        "--label-add",
        &format!("{LABEL_GWBRIDGE}={gwbridge_before}"),
        "--label-add",
        &format!("{LABEL_HEARTBEAT}={:.0}", unix_now()),
        &node,
    ]);
    std::thread::spawn(move || {
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if last.elapsed() >= HEARTBEAT_EVERY {
                beat(&node);
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Leaves a swarm a killed run left behind (the two-node one through its script).
fn remove_leftover(gwbridge_before: bool, two_nodes: bool) {
    eprintln!("swarm test: leaving the swarm a killed run of a swarm test left behind");
    remove_family();
    if two_nodes {
        let (ok, _, err) = run_nodes_script(&["down"]);
        assert!(ok, "scripts/swarm-nodes.sh down failed:\n{err}");
    } else {
        leave_swarm(gwbridge_before);
    }
}

impl SwarmGuard {
    /// Waits for its turn, then creates the single-node swarm. `prepare` runs just before
    /// `swarm init` (so what it makes exists before swarm mode); it may run again if another
    /// run got in first.
    pub fn enter<T>(prepare: impl FnMut() -> T) -> (SwarmGuard, T) {
        SwarmGuard::enter_shaped(Shape::Single, prepare)
    }

    /// Waits for its turn, then creates the swarm of `shape` (see `enter`).
    pub fn enter_shaped<T>(shape: Shape, mut prepare: impl FnMut() -> T) -> (SwarmGuard, T) {
        let deadline = Instant::now() + TURN_WAIT;
        let mut waiting = false;
        let mut second_look = false;
        loop {
            match look() {
                // Another run labels its swarm right after it made it: look once more.
                Seen::Foreign { .. } if !second_look => {
                    second_look = true;
                    std::thread::sleep(Duration::from_secs(2));
                }
                Seen::Foreign { state, node } => panic!(
                    "REFUSING to run: the Docker daemon is already part of a swarm (state {state:?}, node \
                     {node:?}) that this test did not create (its node has no {LABEL_OWNER} label). The test \
                     will not touch it. Run it on a daemon that is in no swarm (`docker info` says Swarm: inactive)."
                ),
                Seen::OursBusy => {
                    assert!(
                        Instant::now() < deadline,
                        "another run of a swarm test has been using the swarm for more than {TURN_WAIT:?}"
                    );
                    if !waiting {
                        eprintln!(
                            "swarm test: another run of a swarm test is using the swarm: waiting for its turn"
                        );
                        waiting = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Seen::OursLeftover {
                    gwbridge_before,
                    two_nodes,
                } => remove_leftover(gwbridge_before, two_nodes),
                Seen::Inactive => {
                    let gwbridge_before = network_exists("docker_gwbridge");
                    let prepared = prepare();
                    let env = match create(shape) {
                        Ok(env) => env,
                        Err(why) => {
                            // Another run got in first: let it label its swarm, then look again.
                            eprintln!("swarm test: making the swarm: {why}");
                            drop(prepared);
                            std::thread::sleep(Duration::from_secs(3));
                            continue;
                        }
                    };
                    let stop = Arc::new(AtomicBool::new(false));
                    let heartbeat = claim(gwbridge_before, stop.clone());
                    remove_orphans();
                    let guard = SwarmGuard {
                        gwbridge_before,
                        shape,
                        env,
                        stop,
                        heartbeat: Some(heartbeat),
                    };
                    return (guard, prepared);
                }
            }
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        // The heartbeat goes on while waiting for a quiet moment: still ours, still in use.
        wait_for_quiet();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        match self.shape {
            Shape::Single => leave_swarm(self.gwbridge_before),
            Shape::TwoNodes => {
                let (ok, _, err) = run_nodes_script(&["down"]);
                if !ok {
                    eprintln!("swarm test: scripts/swarm-nodes.sh down failed:\n{err}");
                }
            }
        }
    }
}

/// Swarm services and overlay networks of the test, removed on drop (before the swarm is left).
pub struct SwarmObjects {
    pub services: Vec<String>,
    pub network: String,
}

impl Drop for SwarmObjects {
    fn drop(&mut self) {
        for s in &self.services {
            let _ = docker_try(&["service", "rm", s]);
        }
        // The network is busy until the tasks are gone.
        for _ in 0..40 {
            if !network_exists(&self.network)
                || docker_try(&["network", "rm", &self.network]).is_some()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// IPVS (the kernel's load balancer behind a swarm VIP) is missing on some kernels (this
/// test machine's among them); then the services use DNS round robin, which needs nothing.
pub fn endpoint_mode() -> &'static str {
    let ipvs = Path::new("/proc/net/ip_vs").exists()
        || Path::new("/sys/module/ip_vs").exists()
        || Command::new("modinfo")
            .arg("ip_vs")
            .output()
            .is_ok_and(|o| o.status.success());
    if ipvs { "vip" } else { "dnsrr" }
}

pub fn service_field(name: &str, format: &str) -> String {
    docker(&["service", "inspect", "-f", format, name])
}

pub fn replicas(name: &str) -> u64 {
    service_field(name, "{{.Spec.Mode.Replicated.Replicas}}")
        .parse()
        .unwrap()
}

/// The daemon's `update` events for service `name` between two times (from its own event
/// log): one per update of the service, whoever made it.
pub fn service_updates(name: &str, since: f64, until: f64) -> Vec<String> {
    let out = docker(&[
        "events",
        "--since",
        &format!("{since:.3}"),
        "--until",
        &format!("{until:.3}"),
        "--filter",
        "type=service",
        "--filter",
        "event=update",
        "--filter",
        &format!("service={name}"),
        "--format",
        "{{.Action}} {{json .Actor.Attributes}}",
    ]);
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Task ids of `svc` meant to run, with their nodes.
pub fn current_tasks(svc: &str) -> Vec<(String, String)> {
    docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}} {{.Node}} {{.CurrentState}}",
        svc,
    ])
    .lines()
    .filter(|l| l.contains("Running"))
    .filter_map(|l| {
        let mut w = l.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    })
    .collect()
}

/// Tasks of the service that run (and are meant to).
pub fn running_tasks(name: &str) -> usize {
    current_tasks(name).len()
}

/// The `update` events of `svc` since `since` that changed its replica count (old, new), and
/// how many kept it (activity label writes).
pub fn scale_events(svc: &str, since: f64) -> (Vec<(u64, u64)>, usize) {
    let mut scales = Vec::new();
    let mut kept = 0;
    for line in service_updates(svc, since, unix_now() + 1.0) {
        let attrs = line.split_once(' ').map_or("", |(_, j)| j);
        let v: serde_json::Value = serde_json::from_str(attrs).unwrap_or_default();
        let num = |k: &str| v[k].as_str().and_then(|s| s.parse::<u64>().ok());
        match (num("replicas.old"), num("replicas.new")) {
            (Some(o), Some(n)) if o != n => scales.push((o, n)),
            _ => kept += 1,
        }
    }
    (scales, kept)
}
