//! Docker test support: the test images (built once per test binary), unique instance names,
//! and a guard that removes every container and network a test created, even on failure.
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

pub const IMAGE: &str = "wakeproxy-testbackend:latest";
pub const IMAGE_HEALTHCHECK: &str = "wakeproxy-testbackend:healthcheck";

/// Runs `docker` with arguments; returns trimmed stdout, panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    docker_at(None, args)
}

/// Like `docker` but returns None on failure.
pub fn docker_try(args: &[&str]) -> Option<String> {
    docker_try_at(None, args)
}

/// The docker CLI for the daemon at `host` (`-H`; `None`: the default one).
fn cli(host: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    if let Some(h) = host {
        c.args(["-H", h]);
    }
    c.args(args);
    c
}

/// `docker` against the daemon at `host` (`None`: the default one).
pub fn docker_at(host: Option<&str>, args: &[&str]) -> String {
    let out = cli(host, args)
        .output()
        .expect("the docker CLI is needed for these tests");
    assert!(
        out.status.success(),
        "docker {}{} failed: {}",
        host.map(|h| format!("-H {h} ")).unwrap_or_default(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker_try` against the daemon at `host`.
pub fn docker_try_at(host: Option<&str>, args: &[&str]) -> Option<String> {
    let out = cli(host, args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fails loudly when the daemon is missing, then builds the test images once.
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let info = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
        match info {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "these tests need a running Docker daemon on /var/run/docker.sock (or $DOCKER_HOST): {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("these tests need the docker CLI and a running daemon: {e}"),
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let st = Command::new(format!("{root}/scripts/build-test-image.sh"))
            .status()
            .expect("running scripts/build-test-image.sh");
        assert!(st.success(), "scripts/build-test-image.sh failed");
    });
}

/// Removes this test's containers (by instance label) and networks on drop.
pub struct DockerGuard {
    pub instance: String,
    pub networks: Vec<String>,
    pub names: Vec<String>,
}

impl DockerGuard {
    pub fn new(tag: &str) -> DockerGuard {
        ensure_images();
        let instance = format!("wpt-{tag}-{}", std::process::id());
        let g = DockerGuard {
            instance,
            networks: Vec::new(),
            names: Vec::new(),
        };
        g.cleanup();
        g
    }

    /// A service (and container) name unique to this test run.
    pub fn name(&mut self, svc: &str) -> String {
        let n = format!("{}-{svc}", self.instance);
        self.names.push(n.clone());
        n
    }

    /// IDs of this instance's containers (all states).
    pub fn containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=wakeproxy.instance={}", self.instance),
        ]);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    pub fn cleanup(&self) {
        let ids = docker_try(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=wakeproxy.instance={}", self.instance),
        ])
        .unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = docker_try(&["rm", "-f", "-v", id]);
        }
        for n in &self.names {
            let _ = docker_try(&["rm", "-f", "-v", n]);
        }
        for n in &self.networks {
            let _ = docker_try(&["network", "rm", n]);
        }
    }
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// `docker inspect -f FORMAT name`, or None when the container does not exist.
pub fn inspect(name: &str, format: &str) -> Option<String> {
    docker_try(&["inspect", "-f", format, name])
}

pub fn is_running(name: &str) -> bool {
    inspect(name, "{{.State.Running}}").as_deref() == Some("true")
}

/// The proxy's own image, built by scripts/build-proxy-image.sh.
pub const PROXY_IMAGE: &str = "wakeproxy:latest";

/// Like `ensure_images` (daemon check and test images), then builds the proxy's own image
/// once per test binary.
pub fn ensure_proxy_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    ensure_images();
    DONE.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let st = Command::new(format!("{root}/scripts/build-proxy-image.sh"))
            .status()
            .expect("running scripts/build-proxy-image.sh");
        assert!(st.success(), "scripts/build-proxy-image.sh failed");
    });
}

/// The host address Docker published a container's `port`/tcp on (`docker port`), if any.
pub fn published_addr(container: &str, port: u16) -> Option<std::net::SocketAddr> {
    let out = docker_try(&["port", container, &format!("{port}/tcp")])?;
    out.lines().find_map(|l| l.trim().parse().ok())
}
