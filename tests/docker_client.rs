//! The Docker client against the real daemon (`DOCKER_HOST` or /var/run/docker.sock).
//!
//! These tests fail, never skip, when the daemon cannot be reached. They build the test
//! images once per run with `scripts/build-test-image.sh`, name everything `wp-test-<pid>-<n>`
//! and remove what they created even when an assertion fails. Traffic goes to 127.0.0.1 only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use wakeproxy::docker::{ContainerInfo, Docker, DockerError, Event};

const IMAGE: &str = "wakeproxy-testbackend:latest";
const IMAGE_HEALTHCHECK: &str = "wakeproxy-testbackend:healthcheck";
/// Present on everything these tests create, so leftovers can be found by hand:
/// `docker ps -a --filter label=wakeproxy.test.owner=docker_client`.
const OWNER_LABEL: &str = "wakeproxy.test.owner";

/// A client for the daemon, negotiated; panics (fails the test) if the daemon is unreachable.
fn docker() -> Docker {
    let d = Docker::from_env().unwrap_or_else(|e| panic!("DOCKER_HOST is not usable: {e}"));
    match d.negotiate() {
        Ok(_) => {}
        // The error names the socket.
        Err(e) if e.is_unreachable() => panic!("these tests need a running Docker daemon: {e}"),
        Err(e) => panic!(
            "the Docker daemon at {} is not usable: {e}",
            d.socket().display()
        ),
    }
    d
}

/// Builds the test images once per test binary (the first caller waits, the others share the result).
fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-image.sh");
        if !script.exists() {
            return Err(format!("{} is missing", script.display()));
        }
        let out = Command::new("bash")
            .arg(&script)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{}\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let d = docker();
        for image in [IMAGE, IMAGE_HEALTHCHECK] {
            match d.image_inspect(image) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("{} did not build {image}", script.display())),
                Err(e) => return Err(format!("inspecting {image}: {e}")),
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("cannot get the test images: {e}");
    }
}

/// `wp-test-<pid>-<n>`, unique within this run.
fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "wp-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes every container and network registered with it when dropped, even on panic.
struct Cleanup {
    docker: Docker,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
}

impl Cleanup {
    fn new(docker: &Docker) -> Cleanup {
        Cleanup {
            docker: docker.clone(),
            containers: Mutex::new(Vec::new()),
            networks: Mutex::new(Vec::new()),
        }
    }

    /// A fresh name, registered for removal.
    fn container_name(&self) -> String {
        let name = unique_name();
        self.containers.lock().unwrap().push(name.clone());
        name
    }

    fn network_name(&self) -> String {
        let name = unique_name();
        self.networks.lock().unwrap().push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers =
            std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        for c in containers {
            if let Err(e) = self.docker.remove(&c, true) {
                eprintln!("cleanup: removing container {c}: {e}");
            }
        }
        let networks =
            std::mem::take(&mut *self.networks.lock().unwrap_or_else(|e| e.into_inner()));
        for n in networks {
            if let Err(e) = self.docker.remove_network(&n) {
                eprintln!("cleanup: removing network {n}: {e}");
            }
        }
    }
}

/// A create body for the test backend: labels, port 8000 published on 127.0.0.1 on a
/// free host port, an init process, and `env`.
fn backend_body(labels: &BTreeMap<String, String>, env: &[&str]) -> serde_json::Value {
    json!({
        "Image": IMAGE,
        "Env": env,
        "Labels": labels,
        "ExposedPorts": {"8000/tcp": {}},
        "HostConfig": {
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
            "Init": true
        }
    })
}

fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert(OWNER_LABEL.into(), "docker_client".into());
    l
}

/// Status code of `GET path` on 127.0.0.1:port, or why there was none.
fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&head)
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))
}

/// Polls `inspect` until `done` says so, or panics after `within`.
fn wait_for(
    d: &Docker,
    id: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&ContainerInfo) -> bool,
) -> ContainerInfo {
    let deadline = Instant::now() + within;
    loop {
        let info = d
            .inspect(id)
            .unwrap()
            .unwrap_or_else(|| panic!("container {id} vanished while waiting until {what}"));
        if done(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still not {what} after {within:?}: {info:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn negotiates_a_supported_version() {
    let d = docker();
    let v = d.negotiate().unwrap();
    let parsed = wakeproxy::docker::ApiVersion::parse(&v).unwrap();
    assert!(
        parsed >= wakeproxy::docker::ApiVersion::parse("1.41").unwrap(),
        "{v}"
    );
    assert!(
        parsed <= wakeproxy::docker::ApiVersion::parse("1.45").unwrap(),
        "{v}"
    );
    assert_eq!(d.api_version().as_deref(), Some(v.as_str()));
    // Negotiating again (as after a daemon restart) is fine.
    assert_eq!(d.negotiate().unwrap(), v);
}

#[test]
fn container_lifecycle() {
    let d = docker();
    ensure_images();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();

    let body = backend_body(
        &labels(&[("wakeproxy.test.case", "lifecycle")]),
        &["WP_TEST_VAR=hello"],
    );
    let id = d.create(&name, &body).unwrap();
    assert!(!id.is_empty());

    let info = d
        .inspect(&name)
        .unwrap()
        .expect("created container is inspectable");
    assert_eq!(info.id, id);
    assert_eq!(info.name, name);
    assert!(!info.running);
    assert_eq!(info.status, "created");
    assert_eq!(
        info.labels.get("wakeproxy.test.case").map(String::as_str),
        Some("lifecycle")
    );

    d.start(&id).unwrap();
    let info = d.inspect(&id).unwrap().unwrap();
    assert!(info.running, "{info:?}");
    assert_eq!(info.status, "running");
    let port = info
        .host_port(8000)
        .unwrap_or_else(|| panic!("no host port for 8000/tcp: {:?}", info.ports));
    assert!(
        info.ports["8000/tcp"]
            .iter()
            .all(|b| b.host_ip == "127.0.0.1"),
        "published beyond loopback: {:?}",
        info.ports
    );
    assert!(info.ip_on("bridge").is_some(), "{:?}", info.networks);
    assert_eq!(info.health, None, "the :latest image has no healthcheck");

    // The app needs a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_status(port, "/health") {
            Ok(200) => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "GET 127.0.0.1:{port}/health never answered 200, last: {other:?}; logs:\n{}",
                    d.logs_tail(&id, 20).unwrap_or_default()
                );
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    // Starting a running container is a 304, which is fine.
    d.start(&id).unwrap();

    d.stop(&id, Some(5)).unwrap();
    let info = d.inspect(&id).unwrap().unwrap();
    assert!(!info.running, "{info:?}");
    assert_eq!(info.status, "exited");
    // Stopping a stopped container is a 304, which is fine.
    d.stop(&id, Some(5)).unwrap();

    d.remove(&id, false).unwrap();
    assert!(d.inspect(&id).unwrap().is_none());
    // Removing what is gone is fine; stopping or killing it is NotFound.
    d.remove(&id, false).unwrap();
    assert!(matches!(
        d.stop(&id, Some(1)),
        Err(DockerError::NotFound(_))
    ));
    assert!(matches!(d.kill(&id), Err(DockerError::NotFound(_))));
    assert!(matches!(d.start(&id), Err(DockerError::NotFound(_))));
}

#[test]
fn create_with_a_missing_image_is_not_found() {
    let d = docker();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();
    let body = json!({"Image": "wakeproxy-no-such-image:nope", "Labels": labels(&[])});
    match d.create(&name, &body) {
        Err(DockerError::NotFound(m)) => {
            assert!(m.contains("No such image"), "{m}");
            assert!(m.contains("wakeproxy-no-such-image"), "{m}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn create_twice_with_one_name_is_a_conflict() {
    let d = docker();
    ensure_images();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();
    let body = backend_body(&labels(&[]), &[]);
    d.create(&name, &body).unwrap();
    match d.create(&name, &body) {
        Err(DockerError::Conflict(m)) => assert!(m.contains(&name), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[test]
fn list_by_label_finds_the_container() {
    let d = docker();
    ensure_images();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();
    let case = format!("list-{name}");
    let id = d
        .create(
            &name,
            &backend_body(&labels(&[("wakeproxy.test.case", &case)]), &[]),
        )
        .unwrap();
    let filter = format!("wakeproxy.test.case={case}");

    let all = d.list_containers(&filter, true).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, id);
    assert_eq!(all[0].name, name);
    assert_eq!(all[0].state, "created");
    assert_eq!(all[0].labels.get("wakeproxy.test.case"), Some(&case));

    // Not running, so not listed without `all`.
    assert!(d.list_containers(&filter, false).unwrap().is_empty());
    // Presence-only label filters work too.
    assert!(
        d.list_containers("wakeproxy.test.case", true)
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
}

#[test]
fn exit_code_and_logs_of_a_container_that_exits_at_start() {
    let d = docker();
    ensure_images();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();
    let id = d
        .create(&name, &backend_body(&labels(&[]), &["EXIT_AT_START=3"]))
        .unwrap();
    d.start(&id).unwrap();
    let info = wait_for(&d, &id, Duration::from_secs(15), "exited", |i| {
        !i.running && i.status == "exited"
    });
    assert_eq!(info.exit_code, 3, "{info:?}");
    assert!(!info.oom_killed);

    let logs = d.logs_tail(&id, 50).unwrap();
    assert!(
        logs.contains("exiting at start with code 3"),
        "logs: {logs:?}"
    );
    assert!(
        !logs.contains('\0'),
        "frame headers leaked into the text: {logs:?}"
    );
    // tail=0 is empty.
    assert_eq!(d.logs_tail(&id, 0).unwrap(), "");
}

#[test]
fn image_inspect_tells_healthchecks_apart() {
    let d = docker();
    ensure_images();
    let plain = d.image_inspect(IMAGE).unwrap().expect("image exists");
    assert!(plain.id.starts_with("sha256:"), "{plain:?}");
    assert!(!plain.has_healthcheck);
    let hc = d
        .image_inspect(IMAGE_HEALTHCHECK)
        .unwrap()
        .expect("image exists");
    assert!(hc.has_healthcheck);
    assert!(
        d.image_inspect("wakeproxy-no-such-image:nope")
            .unwrap()
            .is_none()
    );
}

#[test]
fn events_report_start_and_die_with_exit_code() {
    let d = docker();
    ensure_images();
    let cleanup = Cleanup::new(&d);
    let name = cleanup.container_name();
    let case = format!("events-{name}");
    let filter = format!("wakeproxy.test.case={case}");

    let stream = d.events(&filter).unwrap();
    let closer = stream.closer();
    let (tx, rx) = mpsc::channel::<Result<Event, String>>();
    let reader = thread::spawn(move || {
        for item in stream {
            if tx.send(item.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });

    // An unlabelled container must not show up on this stream.
    let other = cleanup.container_name();
    let other_id = d.create(&other, &backend_body(&labels(&[]), &[])).unwrap();
    d.start(&other_id).unwrap();

    let id = d
        .create(
            &name,
            &backend_body(&labels(&[("wakeproxy.test.case", &case)]), &[]),
        )
        .unwrap();
    d.start(&id).unwrap();

    let next = |want: &str| -> Event {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(e)) => {
                    assert_ne!(
                        e.id, other_id,
                        "an unlabelled container's event came through: {e:?}"
                    );
                    if e.action == want {
                        return e;
                    }
                }
                Ok(Err(e)) => panic!("the event stream broke while waiting for {want:?}: {e}"),
                Err(_) => panic!("no {want:?} event within 15 s"),
            }
        }
    };

    let started = next("start");
    assert_eq!(started.id, id);
    assert_eq!(started.name.as_deref(), Some(name.as_str()));
    assert_eq!(started.attributes.get("wakeproxy.test.case"), Some(&case));
    assert!(started.time_nano > 0);

    d.kill(&id).unwrap();
    let died = next("die");
    assert_eq!(died.id, id);
    assert_eq!(died.exit_code, Some(137), "{died:?}");

    // Killing a container that is not running is a conflict.
    wait_for(&d, &id, Duration::from_secs(10), "stopped", |i| !i.running);
    assert!(matches!(d.kill(&id), Err(DockerError::Conflict(_))));

    // The closer ends the stream from here; the reader thread finishes.
    closer.close();
    reader.join().unwrap();
}

#[test]
fn networks_create_exist_remove() {
    let d = docker();
    let cleanup = Cleanup::new(&d);
    let net = cleanup.network_name();

    assert!(!d.network_exists(&net).unwrap());
    d.create_network(&net, &[(OWNER_LABEL, "docker_client")])
        .unwrap();
    assert!(d.network_exists(&net).unwrap());
    // Creating it again is fine and does not make a duplicate.
    d.create_network(&net, &[(OWNER_LABEL, "docker_client")])
        .unwrap();
    d.remove_network(&net).unwrap();
    assert!(!d.network_exists(&net).unwrap());
    d.remove_network(&net).unwrap();
}
