//! `mode: swarm` end to end on a throwaway single-node swarm.
//!
//! The test turns the local daemon into a single-node swarm (`docker swarm init` on
//! 127.0.0.1), runs the scenario, and leaves the swarm again in every case (a guard's `Drop`,
//! also when the scenario panics), removing `docker_gwbridge` when the swarm created it, so
//! the daemon is left as it was.
//!
//! Everything that coordinates runs lives in the daemon, not in files, because the daemon is
//! shared by sessions that share neither `/tmp` nor process ids: the swarm this test creates
//! carries node labels (`wakeproxy.swarm-test`, whether `docker_gwbridge` existed before, and
//! a heartbeat the running test renews every few seconds). Another run that finds such a swarm
//! with a fresh heartbeat waits for it to be left; with a stale one (its run was killed before
//! its guard ran) it leaves it and goes on. A swarm without the label is not ours: the test
//! fails at once with a message and touches nothing.
//!
//! Other tests keep using the daemon meanwhile: the test checks that plain containers on user
//! bridge networks keep working while the node is a swarm manager, and after it left. One
//! daemon bug shapes the guard: on Engine 20.10, `docker swarm leave` drops the embedded-DNS
//! records of every container then attached to a user-defined network (moby/moby#45144; their
//! names stop resolving until they are reconnected; published ports survive). So the guard
//! leaves at a quiet moment: when no other container is attached to a user-defined network
//! (waiting up to `QUIET_WAIT`, then leaving anyway with a warning naming them).
//!
//! Scenario, with wakeproxy itself in a container attached to the (attachable) overlay network,
//! the Docker socket mounted, reaching the service by name:
//! - a proxy on the host first: a service whose task fails answers 503 at once with the task's
//!   error and exit code, and wakeproxy created the overlay network it was missing;
//! - cold request: the service is created with 1 replica and answers; the proxy restarted
//!   adopts it; idle: it is scaled to 0; a cold request scales it 0 → 1; idle again → 0;
//! - 20 concurrent first requests: exactly one scale-up (one `update` event of the service in
//!   the daemon's event log that changes its replicas, one log line of the proxy; the other
//!   updates are activity label writes), all 20 answered.
//!
//! Traffic: 127.0.0.1 and the test's own networks only. Swarm would pull a task's image on
//! every start; wakeproxy pins the image to its local id, so nothing is pulled.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::docker::*;
use support::proxy_container::*;
use support::swarm_guard::*;
use support::*;

/// A plain container on a user bridge network: proves that the daemon's ordinary networking
/// keeps working before, during and after swarm mode.
struct BridgeCheck {
    network: String,
    container: String,
}

impl BridgeCheck {
    fn start(prefix: &str) -> BridgeCheck {
        let b = BridgeCheck {
            network: format!("{prefix}-br"),
            container: format!("{prefix}-brc"),
        };
        b.cleanup();
        docker(&["network", "create", &b.network]);
        docker(&[
            "run",
            "-d",
            "--name",
            &b.container,
            "--network",
            &b.network,
            IMAGE,
        ]);
        b
    }

    /// A container on the bridge network reaches the other one by name.
    fn assert_works(&self, when: &str) {
        let target = format!("{}:8000", self.container);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("docker")
                .args([
                    "run",
                    "--rm",
                    "--network",
                    &self.network,
                    IMAGE,
                    "--listen",
                    &target,
                    "--check",
                    "/health",
                ])
                .output()
                .expect("docker run");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{when}: a container on user bridge network {} cannot reach {target}: {}",
                self.network,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cleanup(&self) {
        let _ = docker_try(&["rm", "-f", "-v", &self.container]);
        let _ = docker_try(&["network", "rm", &self.network]);
    }
}

impl Drop for BridgeCheck {
    fn drop(&mut self) {
        self.cleanup();
    }
}

struct Names {
    instance: String,
    net: String,
    svc: String,
    bad: String,
}

fn proxy_config(n: &Names, listen: &str, port: u16, endpoint: &str) -> String {
    format!(
        "global:
  bearer_token: {TOKEN}
  listen_address: {listen}
  listen_http: {port}
  idle_timeout: 3
  shutdown_timeout: 1
  connect_mode: docker_dns
  docker_network: {net}
  instance: {instance}
  mode: swarm
services:
  - name: {svc}
    path: /svc
    image: {IMAGE}
    health_path: /health
    start_timeout: 60
    endpoint_mode: {endpoint}
    mem_limit: 64m
    cpus: 0.5
    environment:
      NAME: swarm-backend
  - name: {bad}
    path: /bad
    image: {IMAGE}
    start_timeout: 30
    endpoint_mode: {endpoint}
    environment:
      EXIT_AT_START: \"3\"
",
        net = n.net,
        instance = n.instance,
        svc = n.svc,
        bad = n.bad,
    )
}

/// Waits until the proxy scaled `svc` to 0 for idleness and every task ended.
fn wait_scaled_to_zero(proxy: &ProxyContainer, addr: SocketAddr, svc: &str, downs_before: usize) {
    let line = format!("scaling swarm service {svc} from 1 to 0 replicas");
    wait_for(
        "the idle service to be scaled to 0",
        Duration::from_secs(30),
        || {
            (proxy.count(&line) > downs_before && service_status(addr, svc)["status"] == "stopped")
                .then_some(())
        },
    );
    assert_eq!(replicas(svc), 0);
    assert_eq!(running_tasks(svc), 0);
    let st = service_status(addr, svc);
    assert_eq!(
        (
            st["replicas_desired"].clone(),
            st["replicas_running"].clone()
        ),
        (0.into(), 0.into()),
        "{st}"
    );
}

#[test]
fn swarm_services_scale_from_zero_on_demand_and_back_when_idle() {
    // Everything slow (image builds) happens before the daemon becomes a swarm manager.
    ensure_proxy_image();
    let endpoint = endpoint_mode();
    let prefix = format!("{FAMILY}{}", std::process::id());
    // A plain container on a user bridge network, made before swarm mode.
    let (swarm, bridge) = SwarmGuard::enter(|| {
        let b = BridgeCheck::start(&prefix);
        b.assert_works("before swarm init");
        b
    });
    let t_swarm = Instant::now();
    let gwbridge_before = swarm.gwbridge_before;
    let mut g = DockerGuard::new("swarm");
    let n = Names {
        net: format!("{}-ovl", g.instance),
        svc: g.name("svc"),
        bad: g.name("bad"),
        instance: g.instance.clone(),
    };
    let objects = SwarmObjects {
        services: vec![n.svc.clone(), n.bad.clone()],
        network: n.net.clone(),
    };

    // Plain containers and user bridge networks keep working in swarm mode: the one made
    // before, and one made now.
    bridge.assert_works("in swarm mode");
    let during = BridgeCheck::start(&format!("{prefix}-during"));
    during.assert_works("in swarm mode, a bridge network created then");
    drop(during);

    // 1. A proxy on the host: the overlay network does not exist yet, wakeproxy creates it
    //    (attachable); a service whose task fails answers 503 at once with the task's error.
    assert!(!network_exists(&n.net));
    let dir = TempDir::new("swarm");
    let host_proxy = TestProxy::start(&proxy_config(&n, "127.0.0.1", 0, endpoint));
    let t = Instant::now();
    let r = get(host_proxy.addr, "/bad/x");
    let failed_after = t.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("non-zero exit (3)")
            && detail.contains("exit code 3")
            && detail.contains("exiting at start with code 3"),
        "the 503 quotes the task's error, exit code and log: {detail}"
    );
    assert!(
        failed_after < Duration::from_secs(20),
        "failed after {failed_after:?}"
    );
    eprintln!("swarm: the failed start answered 503 with: {detail}");
    assert_eq!(
        docker(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{.Attachable}} {{.Scope}}",
            &n.net
        ]),
        "overlay true swarm"
    );
    // The failed start is undone: back to 0 replicas.
    let down = format!("scaling swarm service {} from 1 to 0 replicas", n.bad);
    wait_for(
        "the failed service to be scaled back to 0",
        Duration::from_secs(20),
        || host_proxy.proc.log().contains(&down).then_some(()),
    );
    assert_eq!(replicas(&n.bad), 0);
    drop(host_proxy);

    // 2. wakeproxy in a container on the overlay network, the socket mounted.
    let config_path = dir.path().join("proxy.yaml");
    std::fs::write(&config_path, proxy_config(&n, "0.0.0.0", LISTEN, endpoint)).unwrap();
    let proxy = ProxyContainer::run(&g.name("proxy"), &n.net, &config_path);
    let addr = proxy.wait_ready();
    assert!(
        proxy.logs().contains("swarm manager (node"),
        "{}",
        proxy.logs()
    );

    // Cold request: the service is created with one replica, reached by name.
    assert!(
        docker_try(&["service", "inspect", &n.svc]).is_none(),
        "the service exists before any request"
    );
    let t = Instant::now();
    let r = get(addr, "/svc/hello?x=1");
    let cold = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "swarm-backend");
    assert_eq!(r.json()["target"], "/hello?x=1");
    assert!(
        !r.text().contains(TOKEN),
        "the proxy's token reached the backend"
    );
    assert_eq!(proxy.count(&format!("created swarm service {}", n.svc)), 1);
    assert!(
        proxy.logs().contains(&format!("ready at {}:8000", n.svc)),
        "reached by name"
    );
    assert_eq!(replicas(&n.svc), 1);
    assert_eq!(running_tasks(&n.svc), 1);
    // The service as wakeproxy made it.
    let labels = service_field(&n.svc, "{{json .Spec.Labels}}");
    for l in [
        format!("\"wakeproxy.instance\":\"{}\"", n.instance),
        "\"wakeproxy.managed\":\"true\"".to_string(),
        format!("\"wakeproxy.service\":\"{}\"", n.svc),
        "\"wakeproxy.settings-hash\":".to_string(),
    ] {
        assert!(labels.contains(&l), "{l} missing from {labels}");
    }
    let image = service_field(&n.svc, "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
    assert!(
        image.starts_with("sha256:"),
        "the image is pinned to its local id (no pull): {image}"
    );
    assert_eq!(
        service_field(&n.svc, "{{json .Spec.TaskTemplate.Resources.Limits}}"),
        r#"{"NanoCPUs":500000000,"MemoryBytes":67108864}"#
    );
    assert_eq!(
        service_field(&n.svc, "{{.Spec.EndpointSpec.Mode}}"),
        endpoint
    );
    assert_eq!(
        service_field(&n.svc, "{{.Spec.TaskTemplate.RestartPolicy.Condition}}"),
        "on-failure"
    );
    let st = service_status(addr, &n.svc);
    assert_eq!(st["mode"], "swarm", "{st}");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["cold_starts"], 1, "{st}");
    assert_eq!(
        (
            st["replicas_desired"].clone(),
            st["replicas_running"].clone()
        ),
        (1.into(), 1.into()),
        "{st}"
    );

    // A restarted proxy adopts the running service instead of starting it again.
    docker(&["restart", "-t", "5", &proxy.name]);
    let addr = proxy.wait_ready();
    assert_eq!(
        proxy.count(&format!("adopted running swarm service {}", n.svc)),
        1,
        "{}",
        proxy.logs()
    );
    let st = service_status(addr, &n.svc);
    assert_eq!(
        (st["status"].clone(), st["cold_starts"].clone()),
        ("running".into(), 0.into()),
        "{st}"
    );
    let r = get(addr, "/svc/adopted");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        proxy.count(&format!("scaling swarm service {} from 0 to", n.svc)),
        0,
        "no scale-up for an adopted service"
    );

    // Idle: scaled to 0. Then a cold request scales 0 → 1 and is answered.
    wait_scaled_to_zero(&proxy, addr, &n.svc, 0);
    let up_line = format!("scaling swarm service {} from 0 to 1 replicas", n.svc);
    let t = Instant::now();
    let r = get(addr, "/svc/again");
    let rewake = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/again");
    assert_eq!(proxy.count(&up_line), 1);
    assert_eq!(replicas(&n.svc), 1);
    wait_scaled_to_zero(&proxy, addr, &n.svc, 1);

    // 20 concurrent first requests: one scale-up, one update of the service.
    let since = unix_now();
    let barrier = Arc::new(Barrier::new(20));
    let t = Instant::now();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                get(addr, &format!("/svc/burst/{i}"))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.json()["target"], format!("/burst/{i}"));
    }
    let burst = t.elapsed();
    let until = unix_now() + 0.5;
    assert_eq!(proxy.count(&up_line), 2, "exactly one more scale-up");
    let updates = service_updates(&n.svc, since, until);
    eprintln!("service updates during the burst: {updates:?}");
    let (scales, label_writes) = scale_events(&n.svc, since);
    assert_eq!(
        scales,
        [(0, 1)],
        "exactly one scale of the service (and {label_writes} activity label writes): {updates:?}"
    );
    assert_eq!(replicas(&n.svc), 1);
    assert_eq!(service_status(addr, &n.svc)["cold_starts"], 2);

    // The failing service through the proxy in the container too: 503 with the task's error.
    let r = get(addr, "/bad/y");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("exit code 3"), "{}", r.text());
    let swarm_secs = t_swarm.elapsed();

    // Leave the swarm (guards in order), then check the daemon is as it was. Our bridge
    // container goes first: it would lose its DNS name on leave (moby/moby#45144).
    drop(proxy);
    drop(objects);
    drop(g);
    drop(bridge);
    drop(swarm);
    match look() {
        Seen::Inactive => {
            assert!(!network_exists("ingress"), "ingress left behind");
            assert_eq!(
                network_exists("docker_gwbridge"),
                gwbridge_before,
                "docker_gwbridge left behind"
            );
            assert!(!network_exists(&n.net), "overlay network left behind");
        }
        // A waiting run may take its turn at once; then the daemon is in its hands.
        Seen::OursBusy => {
            eprintln!("swarm test: another run took the swarm at once; the daemon state is its now")
        }
        other => panic!("after leaving the swarm: {other:?}"),
    }
    let after = BridgeCheck::start(&format!("{prefix}-after"));
    after.assert_works("after leaving the swarm, a bridge network created then");
    drop(after);
    eprintln!(
        "swarm ({endpoint}): failed task answered in {} ms; cold request (create) {} ms; cold request (0 -> 1) {} ms; \
         20 concurrent first requests {} ms; swarm mode lasted {} s",
        failed_after.as_millis(),
        cold.as_millis(),
        rewake.as_millis(),
        burst.as_millis(),
        swarm_secs.as_secs()
    );
}
