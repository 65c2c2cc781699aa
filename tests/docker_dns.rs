//! `connect_mode: docker_dns` end to end: wakeproxy itself runs in a container (its image is
//! built FROM scratch around the static binary) on a user network with the Docker socket
//! mounted, and serves a service it starts on that network by container name.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::*;
use support::*;

/// Port the proxy listens on inside its container.
const LISTEN: u16 = 8080;

/// The proxy's container: its `docker logs` are printed when the test fails; removed on drop.
struct ProxyContainer {
    name: String,
}

impl ProxyContainer {
    fn logs(&self) -> String {
        match Command::new("docker").args(["logs", &self.name]).output() {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }
}

impl Drop for ProxyContainer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- docker logs {} -----\n{}----- end of docker logs {} -----",
                self.name,
                self.logs(),
                self.name
            );
        }
        let _ = docker_try(&["rm", "-f", "-v", &self.name]);
    }
}

/// The daemon socket on this host (from `DOCKER_HOST` when it names a Unix socket).
fn host_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

/// One GET without a token that never panics: (status, body), or None while nothing answers
/// properly (the published port accepts connections before the proxy listens).
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn proxy_config(instance: &str, net: &str, svc: &str) -> String {
    format!(
        "global:
  bearer_token: {TOKEN}
  listen_address: 0.0.0.0
  listen_http: {LISTEN}
  idle_timeout: 300
  connect_mode: docker_dns
  docker_network: {net}
  instance: {instance}
services:
  - name: {svc}
    path: /svc
    image: {IMAGE}
    health_path: /health
    start_timeout: 30
    environment:
      NAME: dns-backend
"
    )
}

#[test]
fn proxy_in_a_container_serves_a_service_by_name_on_a_user_network() {
    // Both fail with a message saying so when there is no Docker daemon.
    ensure_proxy_image();
    let mut g = DockerGuard::new("dns");
    let svc = g.name("svc");
    let proxy_name = g.name("proxy");
    let net = format!("{}-net", g.instance);
    g.networks.push(net.clone());
    g.cleanup(); // leftovers of an earlier run with the same pid
    docker(&["network", "create", &net]);

    let dir = TempDir::new("dns");
    let config_path = dir.path().join("proxy.yaml");
    std::fs::write(&config_path, proxy_config(&g.instance, &net, &svc)).unwrap();

    // The image as built: scratch, the binary, the documented entrypoint and command.
    let entry = docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        PROXY_IMAGE,
    ]);
    assert_eq!(
        entry,
        r#"["/wakeproxy"] ["proxy","--config","/etc/wakeproxy/proxy.yaml"]"#
    );

    let t0 = Instant::now();
    let socket_mount = format!("{}:/var/run/docker.sock", host_socket());
    // Unprivileged, as docker/proxy/Dockerfile documents: nobody plus the socket's group.
    let socket_gid = std::os::unix::fs::MetadataExt::gid(
        &std::fs::metadata(host_socket()).expect("the Docker socket on this host"),
    )
    .to_string();
    let config_mount = format!("{}:/etc/wakeproxy/proxy.yaml:ro", config_path.display());
    let published = format!("127.0.0.1::{LISTEN}");
    docker(&[
        "run",
        "-d",
        "--name",
        &proxy_name,
        "--network",
        &net,
        "--user",
        "65534:65534",
        "--group-add",
        &socket_gid,
        "-v",
        &socket_mount,
        "-v",
        &config_mount,
        "-p",
        &published,
        PROXY_IMAGE,
        "proxy",
        "--config",
        "/etc/wakeproxy/proxy.yaml",
        "--no-tls",
    ]);
    let proxy = ProxyContainer { name: proxy_name };

    let addr = wait_for(
        "the proxy's published port",
        Duration::from_secs(10),
        || published_addr(&proxy.name, LISTEN),
    );
    assert!(
        addr.ip().is_loopback(),
        "published on {addr}, not on loopback"
    );
    wait_for(
        "/proxy/healthz to answer 200 ok",
        Duration::from_secs(30),
        || {
            assert!(
                is_running(&proxy.name),
                "the proxy container stopped (state {:?}, exit code {:?})",
                inspect(&proxy.name, "{{.State.Status}}"),
                inspect(&proxy.name, "{{.State.ExitCode}}")
            );
            try_get(addr, "/proxy/healthz").filter(|(st, body)| *st == 200 && body.trim() == "ok")
        },
    );
    let up = t0.elapsed();
    assert!(
        proxy
            .logs()
            .contains("Docker daemon at /var/run/docker.sock"),
        "the proxy talks to the mounted socket"
    );

    // The first request starts the service on the network and is forwarded to it by name.
    assert!(
        inspect(&svc, "{{.Id}}").is_none(),
        "the service container exists before any request"
    );
    let t1 = Instant::now();
    let r = get(addr, "/svc/hello/x?y=1");
    let cold = t1.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = r.json();
    assert_eq!(echo["name"], "dns-backend", "{echo}");
    assert_eq!(echo["target"], "/hello/x?y=1", "{echo}");
    assert!(
        !r.text().contains(TOKEN),
        "the proxy's bearer token reached the backend: {echo}"
    );
    // The backend saw the proxy container's address on the user network: container to container.
    let ip_of = |c: &str| {
        inspect(
            c,
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        )
    };
    let proxy_ip = ip_of(&proxy.name).expect("the proxy container is on the network");
    let peer = echo["peer"].as_str().unwrap();
    assert!(
        peer.starts_with(&format!("{proxy_ip}:")),
        "backend peer {peer}, proxy on {net} at {proxy_ip}"
    );
    assert!(
        proxy.logs().contains(&format!("ready at {svc}:8000")),
        "the proxy reaches the service by name"
    );

    // The service container: running, ours, on the network, and not published on the host.
    assert!(is_running(&svc), "the service container is not running");
    assert_eq!(
        inspect(&svc, "{{index .Config.Labels \"wakeproxy.instance\"}}").as_deref(),
        Some(g.instance.as_str())
    );
    let svc_ip = ip_of(&svc).unwrap_or_default();
    assert!(
        !svc_ip.is_empty(),
        "the service container is not attached to {net}"
    );
    let bindings = inspect(&svc, "{{json .HostConfig.PortBindings}}").unwrap();
    assert!(
        !bindings.contains("HostPort"),
        "docker_dns mode published a host port: {bindings}"
    );
    assert_eq!(g.containers().len(), 1, "exactly one service container");

    // Warm: forwarded at once, same container.
    let t2 = Instant::now();
    let r = get(addr, "/svc/again");
    let warm = t2.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/again");

    // Status shows the service running, reached on its internal port.
    let all = get(addr, "/proxy/status").json()["services"].clone();
    let st = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == svc.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{svc} missing from /proxy/status: {all}"));
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["cold_starts"], 1, "{st}");
    assert_eq!(st["host_port"], 8000, "{st}");

    // Without the token nothing but healthz gets through.
    assert_eq!(try_get(addr, "/svc/x").map(|(s, _)| s), Some(401));

    eprintln!(
        "docker_dns: proxy container answering after {} ms; cold request {} ms; warm request {} ms; service at {svc_ip} on {net}",
        up.as_millis(),
        cold.as_millis(),
        warm.as_millis()
    );
}
