//! `mode: swarm` on a real two-node swarm, and two wakeproxy instances sharing it.
//!
//! scripts/swarm-nodes.sh turns the local daemon into the manager of a two-node swarm: a
//! second Docker engine in its own network namespace joins it as a worker over a veth pair,
//! and a registry on the veth address serves images to both (tests/support/swarm_guard.rs
//! takes turns with other swarm tests and removes it all in every case). Proxy A runs in a
//! container on node 1, proxy B in a container on node 2, both on the overlay network, both
//! with the manager's socket (workers cannot manage services) and the same config.
//!
//! Shown, in order:
//! - a service whose task lands on node 2 (node 1 drained of tasks) is started by the first
//!   request through proxy A and answered; its image is pinned to the registry digest, which
//!   node 2 pulled; `/proxy/status` shows the task on node 2; a local-only image answers 503
//!   naming node 2;
//! - steady traffic through A for three idle timeouts while B, which served the service once,
//!   sees none: B finds it idle, reads A's recorded activity and never scales it down; the
//!   activity labels are written a few times per idle period and the task is never replaced;
//! - traffic stops on both: the service is scaled to zero once, an idle timeout later;
//! - 20 concurrent first requests split across A and B: one scale-up, all answered;
//! - node 2 killed (engine, containerd, shims, containers) while it holds the only task: a
//!   POST in flight gets a 502/504 with a detail, a GET in flight is sent again, and the next
//!   request is answered once swarm moved the task to node 1; proxy B died with node 2, and
//!   proxy A alone scales the service down when idle (a dead proxy holds nothing).
//!
//! Then the set-up script's `leftovers` must find nothing.
//!
//! Traffic: 127.0.0.1, the namespace's 10.213.213.0/24 and the test's own overlay network.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::docker::*;
use support::proxy_container::*;
use support::swarm_guard::*;
use support::*;

/// The services' idle timeout, in seconds.
const IDLE: u64 = 4;

/// What the two-node set-up gives the test.
struct Nodes {
    node2_host: String,
    node2_addr: IpAddr,
    node2_name: String,
    manager_name: String,
    registry: String,
}

impl Nodes {
    fn of(guard: &SwarmGuard) -> Nodes {
        let get = |k: &str| {
            guard
                .env
                .get(k)
                .unwrap_or_else(|| panic!("swarm-nodes.sh up printed no {k}: {:?}", guard.env))
                .clone()
        };
        Nodes {
            node2_host: get("NODE2_DOCKER_HOST"),
            node2_addr: get("NODE2_ADDR").parse().expect("NODE2_ADDR"),
            node2_name: get("NODE2_HOSTNAME"),
            manager_name: docker(&["info", "--format", "{{.Name}}"]),
            registry: get("REGISTRY"),
        }
    }

    /// Drains node 1 of swarm tasks (plain containers, such as proxy A, stay), or undoes it.
    fn drain_manager(&self, drain: bool) {
        let to = if drain { "drain" } else { "active" };
        docker(&["node", "update", "--availability", to, &self.manager_name]);
    }
}

/// The test backend pushed to the registry (so the manager knows its registry digest).
fn push_backend(registry: &str) -> String {
    let name = format!("{registry}/wakeproxy-testbackend:nodes");
    docker(&["tag", IMAGE, &name]);
    docker(&["push", &name]);
    name
}

/// Loads the proxy's image into node 2's engine.
fn load_proxy_image(node2_host: &str) {
    let st = Command::new("sh")
        .args([
            "-c",
            &format!("docker save {PROXY_IMAGE} | docker -H {node2_host} load -q"),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("sh");
    assert!(st.success(), "loading {PROXY_IMAGE} into node 2 failed");
}

fn config(net: &str, instance: &str, app: &str, local: &str, image: &str) -> String {
    format!(
        "global:
  bearer_token: {TOKEN}
  listen_address: 0.0.0.0
  listen_http: {LISTEN}
  idle_timeout: {IDLE}
  shutdown_timeout: 1
  connect_mode: docker_dns
  docker_network: {net}
  instance: {instance}
  mode: swarm
services:
  - name: {app}
    path: /app
    image: {image}
    health_path: /health
    start_timeout: 90
    response_timeout: 5
    endpoint_mode: dnsrr
    environment:
      NAME: nodes-backend
  - name: {local}
    path: /local
    image: {IMAGE}
    start_timeout: 30
    endpoint_mode: dnsrr
"
    )
}

fn first_request_lands_on_node_2(n: &Nodes, a: SocketAddr, app: &str, local: &str) {
    n.drain_manager(true);
    let r = get(a, "/app/hello");
    assert_eq!(r.status, 200, "first request through proxy A: {}", r.text());
    assert!(r.text().contains("nodes-backend"), "{}", r.text());
    let tasks = current_tasks(app);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].1, n.node2_name, "the task runs on node 2");
    let image = service_field(app, "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
    assert!(
        image.starts_with(&format!("{}/wakeproxy-testbackend@sha256:", n.registry)),
        "pinned to the registry digest: {image}"
    );
    let st = service_status(a, app);
    let on: Vec<&str> = st["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("status has tasks: {st}"))
        .iter()
        .map(|t| t["node"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(on, [n.node2_name.as_str()], "{st}");
    // An image only node 1 has cannot run on node 2: refused at once, naming it.
    let r = get(a, "/local/");
    let body = r.text();
    assert_eq!(r.status, 503, "{body}");
    assert!(
        body.contains("no registry digest") && body.contains(&n.node2_name),
        "the 503 names node 2: {body}"
    );
    assert_eq!(docker_try(&["service", "inspect", local]), None);
    n.drain_manager(false);
}

/// A GET with the token and a read timeout of `patience`: (status, whole answer), or the I/O
/// error.
fn get_patient(addr: SocketAddr, path: &str, patience: Duration) -> Result<(u16, String), String> {
    request_patient(addr, "GET", path, patience)
}

/// A request of `method` (a POST carries a small body) with the token and a read timeout of
/// `patience`: (status, whole answer), or the I/O error.
fn request_patient(
    addr: SocketAddr,
    method: &str,
    path: &str,
    patience: Duration,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(patience))
        .map_err(|e| e.to_string())?;
    let body = if method == "POST" { "x=1" } else { "" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {out:?}"))?;
    Ok((status, out))
}

/// B serves the service once; then only A has traffic, for three idle timeouts. B finds it
/// idle and must leave it up, reading A's activity from the labels.
fn steady_traffic_through_one_proxy_keeps_it_up(
    a: SocketAddr,
    b: SocketAddr,
    proxy_b: &ProxyContainer,
    app: &str,
) -> Instant {
    let r = get(b, "/app/hello");
    assert_eq!(r.status, 200, "proxy B: {}", r.text());
    let tasks = current_tasks(app);
    let since = unix_now();
    let end = Instant::now() + Duration::from_secs(3 * IDLE);
    let mut requests = 0;
    let mut last = Instant::now();
    while Instant::now() < end {
        let r = get(a, "/app/hello");
        last = Instant::now();
        assert_eq!(r.status, 200, "steady traffic through A: {}", r.text());
        assert_eq!(
            replicas(app),
            1,
            "scaled down under steady traffic through A"
        );
        requests += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        current_tasks(app),
        tasks,
        "label writes must not replace the task"
    );
    let (scales, writes) = scale_events(app, since);
    assert_eq!(scales, [], "no scale at all while A serves");
    // A writes at most every IDLE/4 s: about 12 writes in 3 idle periods, never one per request.
    assert!(
        (1..=14).contains(&writes),
        "{writes} activity writes for {requests} requests"
    );
    let kept = format!("not scaling swarm service {app} down");
    assert!(
        proxy_b.count(&kept) >= 1,
        "proxy B found the service idle and kept it up for A:\n{}",
        proxy_b.logs()
    );
    let metrics = get(b, "/proxy/metrics").text();
    let kept = format!("wakeproxy_swarm_scale_downs_kept_total{{service=\"{app}\"}} ");
    let n: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&kept)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {kept} in proxy B's metrics:\n{metrics}"));
    assert!(n >= 1, "{kept}{n}");
    last
}

/// Traffic stopped on both (the last request answered at `stopped`): one scale to zero, no
/// sooner than an idle timeout later.
fn idle_on_both_scales_to_zero_once(proxies: [&ProxyContainer; 2], app: &str, stopped: Instant) {
    let since = unix_now() - stopped.elapsed().as_secs_f64();
    wait_for(
        "the service to be scaled to zero",
        Duration::from_secs(IDLE * 2 + 30),
        || (replicas(app) == 0).then_some(()),
    );
    // The proxies' clock starts a moment before the client has read the whole answer.
    let after = stopped.elapsed() + Duration::from_millis(250);
    assert!(
        after >= Duration::from_secs(IDLE),
        "scaled to zero {after:?} after the last request, before the idle timeout"
    );
    eprintln!(
        "swarm_nodes: scaled to zero {:.1} s after the last request",
        after.as_secs_f64()
    );
    // Both proxies find it idle; the second finds it scaled down already.
    std::thread::sleep(Duration::from_secs(2));
    let (scales, _) = scale_events(app, since);
    assert_eq!(scales, [(1, 0)], "one scale to zero");
    let line = format!("scaling swarm service {app} from 1 to 0 replicas");
    let said: usize = proxies.iter().map(|p| p.count(&line)).sum();
    assert_eq!(said, 1, "one proxy scaled it down");
}

/// 20 concurrent first requests, 10 through each proxy: one scale-up, all answered.
fn concurrent_first_requests_scale_up_once(a: SocketAddr, b: SocketAddr, app: &str) {
    assert_eq!(replicas(app), 0);
    let since = unix_now();
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let barrier = barrier.clone();
            let to = if i % 2 == 0 { a } else { b };
            std::thread::spawn(move || {
                barrier.wait();
                get_patient(to, "/app/hello", Duration::from_secs(60))
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(
            matches!(&r, Ok((200, body)) if body.contains("nodes-backend")),
            "{r:?}"
        );
    }
    let (scales, _) = scale_events(app, since);
    assert_eq!(scales, [(0, 1)], "one scale-up for 20 first requests");
}

/// Starts `app` with its only task on node 2: node 1 drained of tasks until the service is
/// idle at 0 and a request started it there; then active again, so that swarm can move the
/// task back.
fn start_on_node_2(n: &Nodes, a: SocketAddr, b: SocketAddr, app: &str) {
    n.drain_manager(true);
    let stopped = |p| service_status(p, app)["status"] == "stopped";
    wait_for(
        "the idle service to be scaled to zero and stopped for both proxies",
        Duration::from_secs(IDLE * 3 + 30),
        || (replicas(app) == 0 && stopped(a) && stopped(b)).then_some(()),
    );
    let r = get(a, "/app/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    let tasks = current_tasks(app);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].1, n.node2_name, "the task runs on node 2");
    n.drain_manager(false);
}

/// Node 2 lost while it holds the only task: the request in flight fails with a detail, the
/// next one waits for swarm to move the task and is answered.
fn node_loss_moves_the_task(n: &Nodes, a: SocketAddr, b: SocketAddr, app: &str) {
    start_on_node_2(n, a, b, app);
    // Two requests in flight on the task when its node goes: a POST, which may have reached
    // it, fails with a detail; a GET that got no byte of answer is sent again once a task
    // answers.
    let in_flight = |method: &'static str| {
        std::thread::spawn(move || {
            request_patient(a, method, "/app/sleep?ms=4000", Duration::from_secs(150))
        })
    };
    let (post, get_again) = (in_flight("POST"), in_flight("GET"));
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, err) = run_nodes_script(&["kill-node2"]);
    assert!(ok, "swarm-nodes.sh kill-node2 failed:\n{err}");
    let lost = Instant::now();
    let (status, body) = post
        .join()
        .unwrap()
        .expect("the POST in flight is answered");
    assert!(
        [502, 504].contains(&status) && body.contains("upstream"),
        "the POST in flight: {status} {body}"
    );
    let again = get_again.join().unwrap();
    assert!(
        matches!(&again, Ok((200, _))),
        "the GET in flight, sent again: {again:?}"
    );
    let next = get_patient(a, "/app/hello", Duration::from_secs(150));
    assert!(
        matches!(&next, Ok((200, body)) if body.contains("nodes-backend")),
        "the next request after node 2 was lost ({:?} later): {next:?}",
        lost.elapsed()
    );
    eprintln!(
        "swarm_nodes: node 2 lost; the next request was answered {:.1} s later",
        lost.elapsed().as_secs_f64()
    );
    let tasks = current_tasks(app);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].1, n.manager_name, "swarm moved the task to node 1");
    let st = service_status(a, app);
    let on: Vec<&str> = st["tasks"].as_array().map_or(Vec::new(), |ts| {
        ts.iter().filter_map(|t| t["node"].as_str()).collect()
    });
    assert!(on.contains(&n.manager_name.as_str()), "{st}");
    // Proxy B died with node 2 and holds nothing: A alone scales the service down when idle.
    wait_for(
        "proxy A alone to scale the idle service to zero",
        Duration::from_secs(IDLE * 3 + 30),
        || (replicas(app) == 0).then_some(()),
    );
}

#[test]
fn two_nodes_and_two_proxies_share_one_swarm() {
    ensure_proxy_image();
    let (guard, ()) = SwarmGuard::enter_shaped(Shape::TwoNodes, || ());
    let n = Nodes::of(&guard);
    let mut g = DockerGuard::new("swarm");
    let (net, app, local) = (
        format!("{}-ovl", g.instance),
        g.name("app"),
        g.name("local"),
    );
    let objects = SwarmObjects {
        services: vec![app.clone(), local.clone()],
        network: net.clone(),
    };
    docker(&["network", "create", "-d", "overlay", "--attachable", &net]);
    let image = push_backend(&n.registry);
    load_proxy_image(&n.node2_host);
    let dir = TempDir::new("swarm-nodes");
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(&cfg, config(&net, &g.instance, &app, &local, &image)).unwrap();
    let proxy_a = ProxyContainer::run(&g.name("proxy-a"), &net, &cfg);
    let on2 = Some((n.node2_host.as_str(), n.node2_addr));
    let proxy_b = ProxyContainer::run_on(on2, &g.name("proxy-b"), &net, &cfg);
    let (a, b) = (proxy_a.wait_ready(), proxy_b.wait_ready());
    // Proxy B's container is not one the manager's daemon knows, but it is on the overlay.
    let wrong = "does not run in a container on it";
    assert_eq!(proxy_b.count(wrong), 0, "{}", proxy_b.logs());

    first_request_lands_on_node_2(&n, a, &app, &local);
    let stopped = steady_traffic_through_one_proxy_keeps_it_up(a, b, &proxy_b, &app);
    idle_on_both_scales_to_zero_once([&proxy_a, &proxy_b], &app, stopped);
    concurrent_first_requests_scale_up_once(a, b, &app);
    node_loss_moves_the_task(&n, a, b, &app);

    drop((proxy_b, proxy_a, objects));
    let _ = docker_try(&["rmi", &image]);
    drop(guard);
    let (clean, out, err) = run_nodes_script(&["leftovers"]);
    assert!(clean, "swarm-nodes.sh left something behind:\n{out}{err}");
    assert_nothing_left();
}

/// Looks for what the two-node set-up makes, independently of the script's own `leftovers`.
fn assert_nothing_left() {
    assert_eq!(swarm_state(), "inactive");
    let run = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).output().expect(cmd);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let netns = run("ip", &["netns", "list"]);
    assert!(!netns.contains("wpswarm-n2"), "namespace left: {netns}");
    let links = run("ip", &["-o", "link", "show"]);
    assert!(!links.contains("wpsw-"), "link left: {links}");
    let procs = run("ps", &["-eo", "args"]);
    let ours: Vec<&str> = procs
        .lines()
        .filter(|l| l.contains("wakeproxy-swarm-nodes"))
        .collect();
    assert!(ours.is_empty(), "processes left: {ours:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("wakeproxy-swarm-nodes"),
        "mounts left under /var/lib/wakeproxy-swarm-nodes"
    );
    for path in [
        "/var/lib/wakeproxy-swarm-nodes",
        "/etc/docker/certs.d/10.213.213.1:5000",
        "/run/netns/wpswarm-n2",
    ] {
        assert!(!Path::new(path).exists(), "{path} left");
    }
    let nets = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !nets.lines().any(|n| n.starts_with("wpt-swarm-")),
        "networks left: {nets}"
    );
}
