//! wakeproxy itself in a container (its image from scripts/build-proxy-image.sh), the Docker
//! socket mounted, reached on a port published on 127.0.0.1: shared by the `docker_dns` and
//! `swarm` tests.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::docker::{PROXY_IMAGE, docker_at, docker_try_at};
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
    /// The daemon it runs on (`-H`), when not the default one.
    host: Option<String>,
    /// The address its published port is reached at, when not 127.0.0.1.
    reach: Option<IpAddr>,
}

impl ProxyContainer {
    /// Runs the proxy's image as container `name` on `network` with `config` as its
    /// configuration (`--no-tls`, listening on `LISTEN`, published on a free 127.0.0.1 port).
    /// Unprivileged, as docker/proxy/Dockerfile documents: nobody plus the socket's group.
    pub fn run(name: &str, network: &str, config: &Path) -> ProxyContainer {
        ProxyContainer::run_on(None, name, network, config)
    }

    /// Like `run`, on the daemon at `on` (`-H`) and reached at the address given with it, its
    /// port published on every address of that daemon's host. It still mounts this host's
    /// Docker socket (a second engine on this machine shares its file system).
    pub fn run_on(
        on: Option<(&str, IpAddr)>,
        name: &str,
        network: &str,
        config: &Path,
    ) -> ProxyContainer {
        let socket_gid = std::os::unix::fs::MetadataExt::gid(
            &std::fs::metadata(host_socket()).expect("the Docker socket on this host"),
        )
        .to_string();
        let socket_mount = format!("{}:/var/run/docker.sock", host_socket());
        let config_mount = format!("{}:/etc/wakeproxy/proxy.yaml:ro", config.display());
        let published = match on {
            None => format!("127.0.0.1::{LISTEN}"),
            Some(_) => LISTEN.to_string(),
        };
        let host = on.map(|(h, _)| h.to_string());
        docker_at(
            host.as_deref(),
            &[
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
            ],
        );
        ProxyContainer {
            name: name.to_string(),
            host,
            reach: on.map(|(_, ip)| ip),
        }
    }

    fn inspect(&self, format: &str) -> Option<String> {
        docker_try_at(self.host.as_deref(), &["inspect", "-f", format, &self.name])
    }

    fn published(&self) -> Option<SocketAddr> {
        let port = format!("{LISTEN}/tcp");
        let out = docker_try_at(self.host.as_deref(), &["port", &self.name, &port])?;
        let addr: SocketAddr = out.lines().find_map(|l| l.trim().parse().ok())?;
        Some(SocketAddr::new(
            self.reach.unwrap_or(addr.ip()),
            addr.port(),
        ))
    }

    pub fn logs(&self) -> String {
        let mut cmd = Command::new("docker");
        if let Some(h) = &self.host {
            cmd.args(["-H", h]);
        }
        match cmd.args(["logs", &self.name]).output() {
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
            || self.published(),
        );
        assert!(
            addr.ip().is_loopback() || self.reach == Some(addr.ip()),
            "published on {addr}, not on loopback"
        );
        wait_for(
            "/proxy/healthz to answer 200 ok",
            Duration::from_secs(30),
            || {
                assert!(
                    self.inspect("{{.State.Running}}").as_deref() == Some("true"),
                    "the proxy container stopped (state {:?}, exit code {:?}):\n{}",
                    self.inspect("{{.State.Status}}"),
                    self.inspect("{{.State.ExitCode}}"),
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
        let _ = docker_try_at(self.host.as_deref(), &["rm", "-f", "-v", &self.name]);
    }
}
