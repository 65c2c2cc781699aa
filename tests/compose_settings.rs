//! The Compose-style service settings against the real Docker daemon: a container created
//! with every one of them shows each in `docker inspect` and still answers through the proxy;
//! a changed setting (or a changed env_file) recreates the container on its next start after
//! a reload; env_file values stay out of the log and the validation table.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::docker::*;
use support::*;

/// A value kept in the env file: it must reach the container and nothing else.
const SECRET: &str = "s3cret-4b1d value";

fn global(g: &DockerGuard) -> String {
    format!(
        "  connect_mode: host_port\n  docker_network: ''\n  instance: {}\n",
        g.instance
    )
}

/// One service using every Compose-style setting the daemon can apply without a GPU; `team`
/// goes into a label.
fn service(name: &str, team: &str) -> String {
    format!(
        "  - name: {name}
    path: /svc
    image: {IMAGE}
    health_path: /health
    start_timeout: 30s
    idle_timeout: 5m
    entrypoint: /wakeproxy-testbackend
    command: --listen 0.0.0.0:8000
    user: \"1000:1000\"
    working_dir: /srv/work
    labels:
      com.example.team: {team}
      com.example.note: two words
    env_file: app.env
    environment:
      FLAVOUR: from-environment
    extra_hosts:
      - db.internal:10.11.12.13
    read_only: true
    tmpfs:
      - /scratch:size=1m,mode=1777
    shm_size: 16m
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
"
    )
}

fn env_file(name: &str) -> String {
    format!("# read by wakeproxy\nNAME={name}\nFLAVOUR=from-file\nexport SECRET_TOKEN='{SECRET}'\n")
}

/// `docker inspect` of `name` as JSON (`.Config`, `.HostConfig`, ...).
fn inspect_json(name: &str) -> Value {
    let text = inspect(name, "{{json .}}").unwrap_or_else(|| panic!("no container {name}"));
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    let list = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    list.iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_container_is_created_with_every_compose_setting_and_still_answers() {
    let mut g = DockerGuard::new("wpcs-all");
    let name = g.name("svc");
    let yaml = config_with(&global(&g), &service(&name, "web"));
    let p = TestProxy::start_with_files(&yaml, &[("app.env", &env_file("from-env-file"))], &[]);

    let r = get(p.addr, "/svc/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.proc.log());
    assert_eq!(r.json()["target"], "/hello");
    assert_eq!(
        r.json()["name"],
        "from-env-file",
        "the env_file's NAME reached the process"
    );

    let c = inspect_json(&name);
    let config = &c["Config"];
    assert_eq!(config["Entrypoint"], json!(["/wakeproxy-testbackend"]));
    assert_eq!(config["Cmd"], json!(["--listen", "0.0.0.0:8000"]));
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["WorkingDir"], "/srv/work");
    let labels = &config["Labels"];
    assert_eq!(labels["com.example.team"], "web");
    assert_eq!(labels["com.example.note"], "two words");
    assert_eq!(labels["wakeproxy.instance"], g.instance.as_str());
    assert_eq!(labels["wakeproxy.managed"], "true");
    let env = strings(&config["Env"]);
    for want in [
        "NAME=from-env-file",
        "FLAVOUR=from-environment",
        &format!("SECRET_TOKEN={SECRET}"),
    ] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e == "FLAVOUR=from-file"),
        "environment overrides env_file: {env:?}"
    );

    let host = &c["HostConfig"];
    assert_eq!(host["ExtraHosts"], json!(["db.internal:10.11.12.13"]));
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["Tmpfs"], json!({"/scratch": "size=1m,mode=1777"}));
    assert_eq!(host["ShmSize"], 16 << 20);
    assert!(
        strings(&host["CapAdd"]).contains(&"CAP_NET_ADMIN".to_string()),
        "{host}"
    );
    assert!(
        strings(&host["CapDrop"]).contains(&"CAP_MKNOD".to_string()),
        "{host}"
    );
    assert!(
        host["DeviceRequests"].as_array().is_none_or(Vec::is_empty),
        "no gpus asked for: {}",
        host["DeviceRequests"]
    );

    // The secret of the env file is in neither the log nor the validation table.
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-validate-config", "--config"])
        .arg(&p.config_path)
        .output()
        .unwrap();
    let table =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}");
    assert!(table.contains(&name), "{table}");
    assert!(!table.contains("s3cret"), "{table}");
    assert!(!p.proc.log().contains("s3cret"), "{}", p.proc.log());
}

#[test]
fn a_changed_setting_or_env_file_recreates_the_container_after_a_reload() {
    let mut g = DockerGuard::new("wpcs-reload");
    let name = g.name("svc");
    let yaml = |team: &str| config_with(&global(&g), &service(&name, team));
    let mut p = TestProxy::start_with_files(&yaml("web"), &[("app.env", &env_file("first"))], &[]);
    assert_eq!(get(p.addr, "/svc/x").json()["name"], "first");
    let first_id = inspect(&name, "{{.Id}}").unwrap();

    let reload = |p: &mut TestProxy, count: usize| {
        let st = Command::new("kill")
            .args(["-HUP", &p.proc.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        support::wait_for("the reload", Duration::from_secs(10), || {
            (p.proc.log().matches("configuration reloaded").count() >= count).then_some(())
        });
    };

    // One label changes in the config.
    std::fs::write(&p.config_path, yaml("api")).unwrap();
    reload(&mut p, 1);
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.proc.log());
    let second_id = inspect(&name, "{{.Id}}").unwrap();
    assert_ne!(
        second_id, first_id,
        "the changed label recreated the container"
    );
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"com.example.team\"}}").unwrap(),
        "api"
    );

    // Only the env file changes: the config names it, so it is read again on reload.
    std::fs::write(p.dir.path().join("app.env"), env_file("second")).unwrap();
    reload(&mut p, 2);
    let r = get(p.addr, "/svc/x");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.proc.log());
    assert_eq!(r.json()["name"], "second", "the new env file's value");
    assert_ne!(
        inspect(&name, "{{.Id}}").unwrap(),
        second_id,
        "the changed env file recreated the container"
    );
    assert_eq!(g.containers().len(), 1, "the old containers are gone");
    assert!(!p.proc.log().contains("s3cret"), "{}", p.proc.log());
}
