//! wakeproxy itself in a container (its image from scripts/build-proxy-image.sh), the Docker
//! socket mounted, reached on a port published on 127.0.0.1: shared by the `docker_dns` and
//! `swarm` tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::docker::{PROXY_IMAGE, docker, docker_try, inspect, is_running, published_addr};
use super::{try_get, wait_for};

/// Port the proxy listens on inside its container.
pub const LISTEN: u16 = 8080;

/// The daemon socket on this host (from `DOCKER_HOST` when it names a Unix socket).
pub fn host_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

/// The proxy's container: its `docker logs` are printed when the test fails; removed on drop.
pub struct ProxyContainer {
    pub name: String,
}

impl ProxyContainer {
    /// Runs the proxy's image as container `name` on `network` with `config` as its
    /// configuration (`--no-tls`, listening on `LISTEN`, published on a free 127.0.0.1 port).
    /// Unprivileged, as docker/proxy/Dockerfile documents: nobody plus the socket's group.
    pub fn run(name: &str, network: &str, config: &Path) -> ProxyContainer {
        let socket_gid = std::os::unix::fs::MetadataExt::gid(
            &std::fs::metadata(host_socket()).expect("the Docker socket on this host"),
        )
        .to_string();
        let socket_mount = format!("{}:/var/run/docker.sock", host_socket());
        let config_mount = format!("{}:/etc/wakeproxy/proxy.yaml:ro", config.display());
        let published = format!("127.0.0.1::{LISTEN}");
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
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
        ProxyContainer {
            name: name.to_string(),
        }
    }

    pub fn logs(&self) -> String {
        match Command::new("docker").args(["logs", &self.name]).output() {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }

    /// How many times `needle` occurs in its logs.
    pub fn count(&self, needle: &str) -> usize {
        self.logs().matches(needle).count()
    }

    /// The published port, once `/proxy/healthz` answers 200 there; fails the test at once
    /// when the container stops meanwhile.
    pub fn wait_ready(&self) -> SocketAddr {
        let addr = wait_for(
            "the proxy's published port",
            Duration::from_secs(10),
            || published_addr(&self.name, LISTEN),
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
                    is_running(&self.name),
                    "the proxy container stopped (state {:?}, exit code {:?}):\n{}",
                    inspect(&self.name, "{{.State.Status}}"),
                    inspect(&self.name, "{{.State.ExitCode}}"),
                    self.logs()
                );
                try_get(addr, "/proxy/healthz")
                    .filter(|(st, body)| *st == 200 && body.trim() == "ok")
            },
        );
        addr
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
