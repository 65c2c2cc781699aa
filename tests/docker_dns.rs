//! `connect_mode: docker_dns` end to end: wakeproxy itself runs in a container (its image is
//! built FROM scratch around the static binary) on a user network with the Docker socket
//! mounted, and serves a service it starts on that network by container name.

mod support;

use std::time::Instant;

use support::docker::*;
use support::proxy_container::*;
use support::*;

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
    let proxy = ProxyContainer::run(&proxy_name, &net, &config_path);
    let addr = proxy.wait_ready();
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
    let st = service_status(addr, &svc);
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
