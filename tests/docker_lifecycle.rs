//! The container lifecycle against the real Docker daemon: cold starts, readiness, idle stop,
//! adoption, recreation on config change, crash handling, conflicts.

mod support;

use std::time::{Duration, Instant};

use support::docker::*;
use support::*;

fn global(g: &DockerGuard, extra: &str) -> String {
    format!(
        "  connect_mode: host_port\n  docker_network: ''\n  instance: {}\n{extra}",
        g.instance
    )
}

fn service(name: &str, path: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    path: {path}\n    image: {IMAGE}\n    health_path: /health\n    start_timeout: 30\n{extra}"
    )
}

#[test]
fn fifty_concurrent_first_requests_share_one_start() {
    let mut g = DockerGuard::new("fifty");
    let name = g.name("svc");
    let mut p = TestProxy::start(&config_with(&global(&g, ""), &service(&name, "/svc", "")));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let addr = p.addr;
            std::thread::spawn(move || get(addr, &format!("/svc/req/{i}")))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.json()["target"], format!("/req/{i}"));
    }
    assert_eq!(g.containers().len(), 1, "exactly one container");
    p.proc
        .wait_line("created container", Duration::from_secs(10));
    assert_eq!(
        p.proc.log().matches("created container").count(),
        1,
        "{}",
        p.proc.log()
    );
    let st = service_status(p.addr, &name);
    assert_eq!(st["cold_starts"], 1);
    assert_eq!(st["status"], "running");
    let port = st["host_port"].as_u64().unwrap();
    // Published on loopback only.
    let bind = inspect(&name, "{{json .HostConfig.PortBindings}}").unwrap();
    assert!(
        bind.contains("\"HostIp\":\"127.0.0.1\"") && bind.contains("8000/tcp"),
        "{bind}"
    );
    assert!(port > 0);
    let m = prom_parse(&get(p.addr, "/proxy/metrics").text());
    assert_eq!(
        sample(
            &m,
            "wakeproxy_cold_start_duration_seconds_count",
            &[("service", name.as_str())]
        ),
        1.0
    );
    assert_eq!(sample(&m, "wakeproxy_containers_running", &[]), 1.0);
    assert_eq!(
        sample(
            &m,
            "wakeproxy_start_failures_total",
            &[("service", name.as_str())]
        ),
        0.0
    );
}

#[test]
fn slow_starting_backend_holds_requests_until_ready() {
    let mut g = DockerGuard::new("slow");
    let name = g.name("svc");
    let p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(
            &name,
            "/svc",
            "    environment:\n      STARTUP_DELAY_MS: 2000\n",
        ),
    ));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let addr = p.addr;
            std::thread::spawn(move || (get(addr, "/svc/x"), t0.elapsed()))
        })
        .collect();
    for h in handles {
        let (r, took) = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            took >= Duration::from_millis(2000),
            "answered after {took:?}, before the backend was ready"
        );
    }
    assert_eq!(g.containers().len(), 1);
}

#[test]
fn idle_services_stop_and_restart_but_never_while_streaming() {
    let mut g = DockerGuard::new("idle");
    let name = g.name("svc");
    let p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(&name, "/svc", "    idle_timeout: 2\n"),
    ));
    assert_eq!(get(p.addr, "/svc/x").status, 200);
    assert!(is_running(&name));
    // A response streaming for ~5 s (longer than idle_timeout) keeps the container up.
    let r = get(p.addr, "/svc/stream?chunks=10&interval_ms=500");
    assert_eq!(r.status, 200);
    assert_eq!(r.text().matches("chunk ").count(), 10);
    assert!(
        is_running(&name),
        "stopped while a response was still streaming"
    );
    wait_for("the idle stop", Duration::from_secs(20), || {
        (!is_running(&name)).then_some(())
    });
    assert_eq!(service_status(p.addr, &name)["status"], "stopped");
    let r = get(p.addr, "/svc/again");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_running(&name));
    assert_eq!(service_status(p.addr, &name)["cold_starts"], 2);
}

#[test]
fn a_killed_proxy_adopts_its_running_container_and_still_reaps_it() {
    let mut g = DockerGuard::new("adopt");
    let name = g.name("svc");
    let cfg = config_with(
        &global(&g, ""),
        &service(&name, "/svc", "    idle_timeout: 3\n"),
    );
    let mut first = TestProxy::start(&cfg);
    assert_eq!(get(first.addr, "/svc/x").status, 200);
    let id = inspect(&name, "{{.Id}}").unwrap();
    first.proc.child.kill().unwrap(); // SIGKILL: no chance to clean up
    let _ = first.proc.child.wait();
    let mut second = TestProxy::start(&cfg);
    assert_eq!(
        service_status(second.addr, &name)["status"],
        "running",
        "{}",
        second.proc.log()
    );
    second.proc.wait_line("adopted", Duration::from_secs(10));
    let r = get(second.addr, "/svc/y");
    assert_eq!(r.status, 200);
    assert_eq!(
        inspect(&name, "{{.Id}}").unwrap(),
        id,
        "the container was replaced, not adopted"
    );
    assert_eq!(g.containers().len(), 1);
    wait_for(
        "the adopted container to be reaped",
        Duration::from_secs(20),
        || (!is_running(&name)).then_some(()),
    );
}

#[test]
fn a_changed_environment_recreates_the_container() {
    let mut g = DockerGuard::new("recreate");
    let name = g.name("svc");
    let cfg = |v: &str| {
        config_with(
            &global(&g, ""),
            &service(
                &name,
                "/svc",
                &format!("    environment:\n      FLAVOUR: {v}\n"),
            ),
        )
    };
    let first = TestProxy::start(&cfg("one"));
    assert_eq!(get(first.addr, "/svc/x").status, 200);
    let old_id = inspect(&name, "{{.Id}}").unwrap();
    drop(first);
    let second = TestProxy::start(&cfg("two"));
    assert_eq!(
        get(second.addr, "/svc/x").status,
        200,
        "{}",
        second.proc.log()
    );
    let new_id = inspect(&name, "{{.Id}}").unwrap();
    assert_ne!(old_id, new_id);
    let env = inspect(&name, "{{json .Config.Env}}").unwrap();
    assert!(
        env.contains("FLAVOUR=two") && !env.contains("FLAVOUR=one"),
        "{env}"
    );
    assert_eq!(g.containers().len(), 1);
}

#[test]
fn a_container_that_exits_at_start_gives_503_with_its_exit_code_at_once() {
    let mut g = DockerGuard::new("exit");
    let name = g.name("svc");
    let p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(&name, "/svc", "    environment:\n      EXIT_AT_START: 7\n"),
    ));
    let t0 = Instant::now();
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}: the start timeout (30 s), not the exit, ended the wait",
        t0.elapsed()
    );
    assert!(r.header("retry-after").is_some());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("exited with code 7"), "{detail}");
    assert!(
        detail.contains("exiting at start"),
        "the last log lines are quoted: {detail}"
    );
    assert!(
        service_status(p.addr, &name)["last_error"]
            .as_str()
            .unwrap()
            .contains("code 7")
    );
}

#[test]
fn a_killed_container_is_started_again_on_the_next_request() {
    let mut g = DockerGuard::new("kill");
    let name = g.name("svc");
    let p = TestProxy::start(&config_with(&global(&g, ""), &service(&name, "/svc", "")));
    assert_eq!(get(p.addr, "/svc/x").status, 200);
    docker(&["kill", &name]);
    wait_for(
        "the proxy to notice the kill",
        Duration::from_secs(10),
        || (service_status(p.addr, &name)["status"] == "stopped").then_some(()),
    );
    let r = get(p.addr, "/svc/y");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_running(&name));
}

#[test]
fn a_foreign_container_holding_the_name_is_never_touched() {
    let mut g = DockerGuard::new("foreign");
    let name = g.name("svc");
    docker(&["create", "--name", &name, IMAGE]);
    let mut p = TestProxy::start(&config_with(&global(&g, ""), &service(&name, "/svc", "")));
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 503);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("did not create"),
        "{}",
        r.text()
    );
    // The start-up log says so.
    p.proc.wait_line("did not create", Duration::from_secs(10));
    assert_eq!(
        inspect(&name, "{{.State.Status}}").as_deref(),
        Some("created"),
        "left as it was"
    );
}

#[test]
fn docker_healthcheck_is_used_for_readiness_and_network_is_created() {
    let mut g = DockerGuard::new("health");
    let name = g.name("svc");
    let net = format!("{}-net", g.instance);
    g.networks.push(net.clone());
    let p = TestProxy::start(&config_with(
        &format!(
            "  connect_mode: host_port\n  docker_network: {net}\n  instance: {}\n",
            g.instance
        ),
        &format!(
            "  - name: {name}\n    path: /svc\n    image: {IMAGE_HEALTHCHECK}\n    start_timeout: 30\n"
        ),
    ));
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        inspect(&name, "{{.State.Health.Status}}").as_deref(),
        Some("healthy")
    );
    assert!(
        docker_try(&["network", "inspect", &net]).is_some(),
        "network {net} was created"
    );
}

#[test]
fn an_open_websocket_keeps_its_container_up_and_the_stop_follows_its_close() {
    let mut g = DockerGuard::new("wsidle");
    let name = g.name("svc");
    let mut p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(&name, "/svc", "    idle_timeout: 2\n"),
    ));
    let url = format!("ws://{}/svc/ws", p.addr);
    let script = format!("{}/tests/ws/ws_client.py", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .args([script.as_str(), "hold", &url, TOKEN, "10"])
        .output()
        .expect("python3 with the websockets package");
    let closed_at = Instant::now();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The socket was open (idle) for 10 s with idle_timeout 2 s, and it still echoed at the end:
    // the container was not stopped under it.
    p.proc
        .wait_line("created container", Duration::from_secs(10));
    assert!(
        p.proc.log().matches("created container").count() == 1,
        "{}",
        p.proc.log()
    );
    assert_eq!(service_status(p.addr, &name)["cold_starts"], 1);
    wait_for("the stop after the close", Duration::from_secs(15), || {
        (!is_running(&name)).then_some(())
    });
    let after = closed_at.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "stopped {after:?} after the close"
    );
    assert!(
        after < Duration::from_secs(8),
        "stopped {after:?} after the close (idle_timeout 2 s)"
    );
}

/// A Unix-socket relay to the real daemon that the test can cut and restore, standing in for
/// a Docker daemon that goes away and comes back.
struct FlakyDaemon {
    path: std::path::PathBuf,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    _dir: TempDir,
}

impl FlakyDaemon {
    fn start() -> FlakyDaemon {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let dir = TempDir::new("flaky");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for c in listener.incoming() {
                let Ok(c) = c else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(c); // the daemon is "down": refuse by closing at once
                    continue;
                }
                let Ok(d) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                conns2.lock().unwrap().push(c.try_clone().unwrap());
                conns2.lock().unwrap().push(d.try_clone().unwrap());
                let (mut c2, mut d2) = (c.try_clone().unwrap(), d.try_clone().unwrap());
                let (mut c1, mut d1) = (c, d);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut d1);
                    let _ = d1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut d2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FlakyDaemon {
            path,
            up,
            conns,
            _dir: dir,
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[test]
fn a_daemon_that_goes_away_gives_503_naming_the_socket_and_is_picked_up_again() {
    let mut g = DockerGuard::new("flaky");
    let name = g.name("svc");
    let daemon = FlakyDaemon::start();
    let host = format!("unix://{}", daemon.path.display());
    let p = TestProxy::start_env(
        &config_with(&global(&g, ""), &service(&name, "/svc", "")),
        &[("DOCKER_HOST", host.as_str())],
    );
    assert_eq!(get(p.addr, "/svc/x").status, 200);
    daemon.set_up(false);
    docker(&["stop", "-t", "1", &name]); // changes the proxy cannot see while the daemon is away
    let r = get(p.addr, "/svc/y");
    assert_eq!(r.status, 503, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(&daemon.path.display().to_string()),
        "names the socket: {detail}"
    );
    daemon.set_up(true);
    wait_for(
        "wakeproxy to reconcile with the returning daemon",
        Duration::from_secs(20),
        || {
            let r = get(p.addr, "/svc/z");
            (r.status == 200).then_some(())
        },
    );
    // The events follower reconnects and reconciles too.
    let mut p = p;
    p.proc
        .wait_line("is back: reconciling", Duration::from_secs(20));
}

#[test]
fn an_oom_killed_container_is_reported_and_restarted() {
    let mut g = DockerGuard::new("oom");
    let name = g.name("svc");
    let p = TestProxy::start(&config_with(
        &global(&g, ""),
        &service(&name, "/svc", "    mem_limit: 32m\n"),
    ));
    assert_eq!(get(p.addr, "/svc/x").status, 200);
    // A POST: the proxy must not send it again to a restarted container (a GET may go again,
    // and then whether it kills a second container depends on when Docker notices the first).
    let r = raw_request(
        p.addr,
        &format!(
            "POST /svc/alloc?mb=256 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        matches!(r.status, 502 | 503),
        "the allocation should kill the container: {} {}",
        r.status,
        r.text()
    );
    wait_for(
        "the OOM kill to show in status",
        Duration::from_secs(15),
        || {
            let st = service_status(p.addr, &name);
            (st["status"] == "stopped"
                && st["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("out of memory")))
            .then_some(())
        },
    );
    assert_eq!(
        inspect(&name, "{{.State.OOMKilled}}").as_deref(),
        Some("true")
    );
    let again = get(p.addr, "/svc/y");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(service_status(p.addr, &name)["cold_starts"], 2);
}

#[test]
fn a_reload_recreates_changed_services_and_stops_removed_ones_once_idle() {
    let mut g = DockerGuard::new("reload");
    let (a, b, c) = (g.name("a"), g.name("b"), g.name("c"));
    let glob = global(&g, "");
    let cfg = |a_env: &str, with_b: bool, with_c: bool| {
        let mut s = service(
            &a,
            "/a",
            &format!("    environment:\n      FLAVOUR: {a_env}\n"),
        );
        if with_b {
            s += &service(&b, "/b", "    idle_timeout: 2\n");
        }
        if with_c {
            s += &service(&c, "/c", "");
        }
        config_with(&glob, &s)
    };
    let mut p = TestProxy::start(&cfg("one", true, false));
    assert_eq!(get(p.addr, "/a/x").status, 200);
    let a_id = inspect(&a, "{{.Id}}").unwrap();
    // A request to b streams for 3 s while the reload removes b: it must complete.
    let addr = p.addr;
    let streaming = std::thread::spawn(move || get(addr, "/b/stream?chunks=6&interval_ms=500"));
    wait_for("b to be running", Duration::from_secs(20), || {
        is_running(&b).then_some(())
    });
    std::fs::write(&p.config_path, cfg("two", false, true)).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &p.proc.pid().to_string()])
        .status()
        .unwrap();
    p.proc
        .wait_line("configuration reloaded", Duration::from_secs(10));
    let r = streaming.join().unwrap();
    assert_eq!(
        r.text().matches("chunk ").count(),
        6,
        "the stream on the removed service completed"
    );
    assert_eq!(get(p.addr, "/c/x").status, 200, "the added service starts");
    assert_eq!(get(p.addr, "/b/x").status, 404, "the removed route is gone");
    assert_eq!(get(p.addr, "/a/x").status, 200);
    assert_ne!(
        inspect(&a, "{{.Id}}").unwrap(),
        a_id,
        "the changed service was recreated"
    );
    assert!(
        inspect(&a, "{{json .Config.Env}}")
            .unwrap()
            .contains("FLAVOUR=two")
    );
    wait_for(
        "the removed service to be stopped once idle",
        Duration::from_secs(20),
        || (!is_running(&b)).then_some(()),
    );
}
