//! Containers wakeproxy did not create, against the real Docker daemon and Debian's
//! `docker-compose` (1.29): a compose project's services started on demand with their
//! dependencies (in order, a shared one kept up while any dependent is, stopped after the
//! last), a failing dependency's exit code in the 503, a re-created container found again by
//! compose's labels, and a hand-made container (`container:`) started, stopped and kept.
//!
//! Needs `docker-compose` (apt-get install docker-compose; scripts/test.sh installs it).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::*;
use support::*;

/// A compose project in a temporary directory, taken down (containers, network) on drop.
struct Project {
    name: String,
    dir: TempDir,
}

impl Project {
    fn new(tag: &str, compose: &str) -> Project {
        ensure_images();
        let name = format!("wpc{tag}{}", std::process::id());
        let p = Project {
            name,
            dir: TempDir::new("compose"),
        };
        std::fs::write(p.dir.path().join("docker-compose.yml"), compose).unwrap();
        p
    }

    fn compose(&self, args: &[&str]) -> String {
        let out = Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("docker-compose is needed for these tests (apt-get install docker-compose)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed:\n{text}"
        );
        text
    }

    /// The container compose made for `service`.
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    /// `action service` for each container event of this project since `since` (Unix
    /// seconds), in order.
    fn events(&self, since: u64, actions: &[&str]) -> Vec<String> {
        let until = unix_now() + 1;
        let out = docker(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{index .Actor.Attributes \"com.docker.compose.service\"}}",
        ]);
        out.lines()
            .filter(|l| actions.iter().any(|a| l.starts_with(&format!("{a} "))))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .args(["down", "-v", "-t", "1"])
            .current_dir(self.dir.path())
            .output();
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const COMPOSE: &str = "version: \"2.4\"
services:
  db:
    image: wakeproxy-testbackend:healthcheck
    environment: {NAME: db}
  web:
    image: wakeproxy-testbackend:latest
    environment: {NAME: web, STARTUP_DELAY_MS: \"1500\"}
    ports: [\"127.0.0.1::8000\"]
    depends_on: [db]
  admin:
    image: wakeproxy-testbackend:latest
    environment: {NAME: admin}
    ports: [\"127.0.0.1::8000\"]
    depends_on: [db]
  baddb:
    image: wakeproxy-testbackend:latest
    environment: {NAME: baddb, EXIT_AT_START: \"3\"}
  bad:
    image: wakeproxy-testbackend:latest
    environment: {NAME: bad, STARTUP_DELAY_MS: \"1000\"}
    ports: [\"127.0.0.1::8000\"]
    depends_on: [baddb]
";

fn global() -> String {
    "  connect_mode: host_port\n  docker_network: ''\n".to_string()
}

fn service(project: &str, name: &str, idle: u64, deps: &str) -> String {
    format!(
        "  - name: {name}\n    path: /{name}\n    compose_project: {project}\n    idle_timeout: {idle}\n    start_timeout: 30\n    depends_on: [{deps}]\n"
    )
}

fn wait_stopped(what: &str, container: &str) {
    wait_for(what, Duration::from_secs(60), || {
        (!is_running(container)).then_some(())
    });
}

#[test]
fn a_compose_project_wakes_with_its_dependencies_and_sleeps_after_its_last_user() {
    let p = Project::new("grp", COMPOSE);
    p.compose(&["up", "-d", "db", "web", "admin", "bad"]);
    p.compose(&["stop", "-t", "1"]);
    // Events are asked for by the second: start counting at the next one, after compose's.
    let since = unix_now() + 1;
    while unix_now() < since {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Idle times far apart, so that admin starts well before web goes idle and web stops well
    // before admin, however slow a busy machine makes each step.
    let services = service(&p.name, "web", 6, "db")
        + &service(&p.name, "admin", 14, "db")
        + &service(&p.name, "bad", 300, "baddb");
    let proxy = TestProxy::start(&config_with(&global(), &services));

    // The first request to /web starts db, waits for it to be healthy, then web.
    let r = get(proxy.addr, "/web/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.proc.log());
    assert_eq!(r.json()["name"], "web");
    let db_id = inspect(&p.container("db"), "{{.Id}}").unwrap();
    // /admin meanwhile shares the running db.
    let r = get(proxy.addr, "/admin/");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.proc.log());
    assert_eq!(r.json()["name"], "admin");
    assert_eq!(inspect(&p.container("db"), "{{.Id}}").unwrap(), db_id);
    let st = service_status(proxy.addr, "admin");
    assert_eq!(st["kind"], "existing", "{st}");
    let held = st["depends_on"][0]["held_by"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(held.len(), 2, "db held by web and admin: {st}");
    assert_eq!(st["depends_on"][0]["state"], "healthy", "{st}");

    // Idle: web goes first, db stays for admin, then admin, then db.
    wait_stopped("web to be stopped when idle", &p.container("web"));
    assert!(
        is_running(&p.container("db")),
        "db is still needed by admin"
    );
    wait_stopped("admin to be stopped when idle", &p.container("admin"));
    wait_stopped("db to be stopped after its last user", &p.container("db"));
    let order = p.events(since, &["start", "stop"]);
    let want = [
        "start db",
        "start web",
        "start admin",
        "stop web",
        "stop admin",
        "stop db",
    ];
    let got: Vec<&String> = order
        .iter()
        .filter(|e| e.ends_with(" db") || e.ends_with(" web") || e.ends_with(" admin"))
        .collect();
    assert_eq!(got, want, "events: {order:?}\n{}", proxy.proc.log());

    // A dependency that fails at start fails the request with its exit code.
    let r = get(proxy.addr, "/bad/");
    assert_eq!(r.status, 503, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("exited with code 3"), "{detail}");
    assert!(detail.contains("baddb"), "{detail}");
    // Nothing is left half started.
    wait_stopped(
        "bad to be stopped after its failed start",
        &p.container("bad"),
    );
    assert!(!is_running(&p.container("baddb")));
}

#[test]
fn a_recreated_compose_container_is_found_again() {
    let p = Project::new("rec", COMPOSE);
    p.compose(&["up", "-d", "--no-deps", "admin"]);
    let services = service(&p.name, "admin", 300, "");
    let proxy = TestProxy::start(&config_with(&global(), &services));
    let before = inspect(&p.container("admin"), "{{.Id}}").unwrap();
    assert_eq!(get(proxy.addr, "/admin/").status, 200);
    p.compose(&["up", "-d", "--no-deps", "--force-recreate", "admin"]);
    let after = inspect(&p.container("admin"), "{{.Id}}").unwrap();
    assert_ne!(before, after, "compose made a new container");
    // The old address is gone: the next requests find the new container by its labels.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(proxy.addr, "/admin/again");
        if r.status == 200 {
            assert_eq!(r.json()["name"], "admin");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {}\n{}",
            r.status,
            r.text(),
            proxy.proc.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_hand_made_container_starts_and_stops_on_demand_and_outlives_the_proxy() {
    let mut g = DockerGuard::new("byhand");
    let name = g.name("app");
    docker(&[
        "create",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8000",
        "-e",
        "NAME=byhand",
        IMAGE,
    ]);
    let id = inspect(&name, "{{.Id}}").unwrap();
    let services = format!(
        "  - name: app\n    path: /app\n    container: {name}\n    idle_timeout: 2\n    start_timeout: 30\n"
    );
    let proxy = TestProxy::start(&config_with(&global(), &services));
    let r = get(proxy.addr, "/app/x");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.proc.log());
    assert_eq!(r.json()["name"], "byhand");
    wait_stopped("the container to be stopped when idle", &name);
    assert_eq!(get(proxy.addr, "/app/y").status, 200, "started again");
    drop(proxy);
    assert_eq!(
        inspect(&name, "{{.Id}}").as_deref(),
        Some(id.as_str()),
        "never removed"
    );
    // A name that does not exist is a clear 503.
    let services = "  - name: app\n    path: /app\n    container: wpt-no-such-container\n";
    let proxy = TestProxy::start(&config_with(&global(), services));
    let r = get(proxy.addr, "/app/");
    assert_eq!(r.status, 503);
    assert!(
        r.text()
            .contains("no container named wpt-no-such-container exists"),
        "{}",
        r.text()
    );
}

#[test]
fn labelled_containers_become_services_and_go_away_with_them() {
    let mut g = DockerGuard::new("labels");
    let (disc, clash) = (g.name("disc"), g.name("clash"));
    let b = Backend::start("file");
    let services = format!(
        "  - name: taken\n    path: /taken\n    upstream: {}\n",
        b.addr
    );
    let global = global() + "  discover_labels: true\n";
    let mut proxy = TestProxy::start(&config_with(&global, &services));
    let started = Instant::now();
    docker(&[
        "run",
        "-d",
        "--name",
        &disc,
        "-p",
        "127.0.0.1::8000",
        "-e",
        "NAME=disc",
        "--label",
        "wakeproxy.path=/disc",
        "--label",
        "wakeproxy.idle_timeout=5m",
        IMAGE,
    ]);
    let r = wait_for(
        "the labelled container's route",
        Duration::from_secs(20),
        || {
            let r = get(proxy.addr, "/disc/hello");
            (r.status == 200).then_some(r)
        },
    );
    println!(
        "route added {} ms after docker run",
        started.elapsed().as_millis()
    );
    assert_eq!(r.json()["name"], "disc");
    assert_eq!(r.json()["target"], "/hello");
    assert_eq!(service_status(proxy.addr, &disc)["kind"], "existing");
    // A label that takes a route of proxy.yaml is refused, naming both.
    docker(&[
        "run",
        "-d",
        "--name",
        &clash,
        "-e",
        "NAME=clash",
        "--label",
        "wakeproxy.path=/taken",
        IMAGE,
    ]);
    proxy.proc.wait_line(
        &format!("container {clash} (label wakeproxy.path=/taken) is refused: it conflicts with service taken of proxy.yaml"),
        Duration::from_secs(20),
    );
    assert_eq!(get(proxy.addr, "/taken/x").json()["name"], "file");
    // Removing the container removes its route.
    docker(&["rm", "-f", &disc]);
    wait_for("the route to go", Duration::from_secs(20), || {
        (get(proxy.addr, "/disc/hello").status == 404).then_some(())
    });
}

#[test]
fn validate_with_docker_refuses_unknown_containers_at_their_line() {
    let mut g = DockerGuard::new("unknown");
    let name = g.name("here");
    docker(&["create", "--name", &name, "-p", "127.0.0.1::8000", IMAGE]);
    let dir = TempDir::new("unknown-deps");
    let file = dir.path().join("proxy.yaml");
    let services = format!(
        "  - name: app\n    path: /app\n    container: {name}\n    depends_on: [wpt-no-such-db]\n"
    );
    std::fs::write(&file, config_with(&global(), &services)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-validate-config", "--docker", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("unknown dependency: container wpt-no-such-db does not exist"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("unknown dependency"))
        .unwrap_or_default();
    assert!(
        line.contains("services[0].depends_on") && line.contains(":12"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok: app: container {name} present")),
        "{text}"
    );
}
