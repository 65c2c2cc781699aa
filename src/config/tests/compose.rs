//! Tests for the Compose-style service keys: `command`, `entrypoint`, `user`, `working_dir`,
//! `labels`, `env_file`, `extra_hosts`, `read_only`, `tmpfs`, `shm_size`, `cap_add`,
//! `cap_drop`, `gpus`; their errors, and what `mode: swarm` refuses.

use std::path::{Path, PathBuf};

use super::support::*;
use crate::config::{Config, ConfigIssue, Gpus, RunSettings, parse, parse_with, services_table};

/// A container service on lines 4-6, then `extra` from line 7 on.
fn svc(extra: &str) -> String {
    with_services(&format!(
        "  - name: app\n    path: /\n    image: app:latest\n{extra}"
    ))
}

/// The files `parse_with` may read: (path, text).
type Files = Vec<(PathBuf, String)>;

fn parse_files(
    text: &str,
    files: &Files,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigIssue>> {
    let read = |p: &Path| match files.iter().find(|(f, _)| f == p) {
        Some((_, text)) => Ok(text.clone()),
        None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    parse_with(text, "conf/test.yaml", env, &read, Path::new("/etc/wp")).map_err(|e| e.issues)
}

fn run_of(c: &Config) -> &RunSettings {
    &c.services[0].container().unwrap().run
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn nothing_set_is_the_default() {
    assert_eq!(*run_of(&ok(&svc(""))), RunSettings::default());
}

#[test]
fn every_compose_key_is_read() {
    let c = ok(&svc("    command: python -m 'http.server' \"80 00\"
    entrypoint: [/bin/sh, -c, 5]
    user: 1000
    working_dir: /srv/app
    labels:
      com.example.team: web
      com.example.port: 8080
    extra_hosts:
      - db.internal:10.0.0.5
      - v6=[::1]
    read_only: true
    tmpfs: /run
    shm_size: 256m
    cap_add: [NET_ADMIN, cap_sys_ptrace]
    cap_drop: [ALL]
    gpus: all
"));
    let run = run_of(&c);
    assert_eq!(
        run.command,
        Some(strings(&["python", "-m", "http.server", "80 00"]))
    );
    assert_eq!(run.entrypoint, Some(strings(&["/bin/sh", "-c", "5"])));
    assert_eq!(run.user.as_deref(), Some("1000"));
    assert_eq!(run.working_dir.as_deref(), Some("/srv/app"));
    assert_eq!(
        run.labels,
        pairs(&[("com.example.team", "web"), ("com.example.port", "8080")])
    );
    assert_eq!(
        run.extra_hosts,
        pairs(&[("db.internal", "10.0.0.5"), ("v6", "::1")])
    );
    assert!(run.read_only);
    assert_eq!(run.tmpfs.len(), 1);
    assert_eq!(
        (run.tmpfs[0].path.as_str(), run.tmpfs[0].options.as_str()),
        ("/run", "")
    );
    assert_eq!(run.shm_size, Some(256 << 20));
    assert_eq!(run.cap_add, strings(&["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]));
    assert_eq!(run.cap_drop, strings(&["ALL"]));
    assert_eq!(run.gpus, Some(Gpus::All));
}

#[test]
fn the_other_forms_labels_list_hosts_map_tmpfs_list_gpu_count() {
    let c = ok(&svc(
        "    command: [\"--listen\", \"0.0.0.0:${PORT:-8000}\"]
    labels: [\"com.example.a=1\", com.example.flag]
    extra_hosts:
      db: 10.0.0.5
      gw: host-gateway
    tmpfs:
      - /tmp:size=64m,mode=1777
      - /cache
    gpus: 2
",
    ));
    let run = run_of(&c);
    assert_eq!(
        run.command,
        Some(strings(&["--listen", "0.0.0.0:8000"])),
        "list items are taken as they are (expanded, never split)"
    );
    assert_eq!(
        run.labels,
        pairs(&[("com.example.a", "1"), ("com.example.flag", "")])
    );
    assert_eq!(
        run.extra_hosts,
        pairs(&[("db", "10.0.0.5"), ("gw", "host-gateway")])
    );
    let t: Vec<_> = run
        .tmpfs
        .iter()
        .map(|t| (t.path.as_str(), t.size, t.mode))
        .collect();
    assert_eq!(
        t,
        [
            ("/tmp", Some(64 << 20), Some(0o1777)),
            ("/cache", None, None)
        ]
    );
    assert_eq!(run.gpus, Some(Gpus::Count(2)));
}

#[test]
fn labels_may_not_take_wakeproxys_own_keys() {
    expect_one(
        &svc("    labels:\n      wakeproxy.instance: other\n"),
        "services[0].labels.wakeproxy.instance",
        Some(8),
        "label \"wakeproxy.instance\" is reserved: keys starting with \"wakeproxy.\" are wakeproxy's own",
    );
    expect_one(
        &svc("    labels:\n      - com.example.ok=1\n      - wakeproxy.managed=false\n"),
        "services[0].labels[1]",
        Some(9),
        "is reserved",
    );
    expect_one(
        &svc("    labels: [a=1, a=2]\n"),
        "services[0].labels[1]",
        Some(7),
        "label \"a\" is given twice",
    );
}

#[test]
fn each_compose_error_names_field_line_and_problem() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, usize, &str)] = &[
        ("    command: \"\"\n", "services[0].command", 7, "must not be empty (leave command out to keep the image's own)"),
        ("    command: []\n", "services[0].command", 7, "must not be empty"),
        ("    command: echo 'hi\n", "services[0].command", 7, "a single quote is never closed"),
        ("    entrypoint: {a: 1}\n", "services[0].entrypoint", 7, "expected a string (split like a shell does) or a list of strings, found a mapping"),
        ("    user: a b\n", "services[0].user", 7, "expected a user like 1000, 1000:1000, app or app:staff"),
        ("    working_dir: app\n", "services[0].working_dir", 7, "expected an absolute path like /app"),
        ("    labels: team=web\n", "services[0].labels", 7, "expected a mapping of key: value or a list of \"KEY=VALUE\""),
        ("    extra_hosts: [db]\n", "services[0].extra_hosts[0]", 7, "expected host:ip or host=ip"),
        ("    extra_hosts:\n      db: example.com\n", "services[0].extra_hosts.db", 8, "must be an IP address or host-gateway"),
        ("    read_only: yes\n", "services[0].read_only", 7, "expected true or false"),
        ("    tmpfs: tmp\n", "services[0].tmpfs", 7, "a tmpfs path must be an absolute path"),
        ("    tmpfs: [/t, /t]\n", "services[0].tmpfs[1]", 7, "\"/t\" is already a tmpfs mount"),
        ("    volumes:\n      /srv: /data\n    tmpfs: /data\n", "services[0].tmpfs", 9, "\"/data\" is already the bind of volume \"/srv\""),
        ("    cap_add: NET_ADMIN\n", "services[0].cap_add", 7, "expected a list of capabilities like [NET_ADMIN, SYS_PTRACE]"),
        ("    cap_drop: [NET_ADMN]\n", "services[0].cap_drop[0]", 7, "\"NET_ADMN\" is not a Linux capability"),
        ("    gpus: 0\n", "services[0].gpus", 7, "expected all or a number of GPUs (at least 1), found \"0\""),
        ("    gpus: [{count: 1}]\n", "services[0].gpus", 7, "expected all or a number of GPUs, found a list"),
        ("    env_file: [\"\"]\n", "services[0].env_file[0]", 7, "must not be empty"),
    ];
    for (extra, field, line, fragment) in cases {
        expect_one(&svc(extra), field, Some(*line), fragment);
    }
}

#[test]
fn upstream_services_refuse_compose_keys() {
    let text = with_services(
        "  - name: up\n    path: /\n    upstream: 127.0.0.1:9000\n    command: x\n    labels: {a: b}\n",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    expect_issue(
        &found[0],
        "services[0].command",
        Some(7),
        "command is only allowed for image services, not with upstream",
        &text,
    );
    expect_issue(
        &found[1],
        "services[0].labels",
        Some(8),
        "labels is only allowed",
        &text,
    );
}

#[test]
fn swarm_services_refuse_what_swarm_has_no_place_for() {
    let text = svc(
        "    mode: swarm\n    shm_size: 64m\n    gpus: 1\n    tmpfs: [\"/t:size=1m,mode=700\", \"/u:noexec\"]\n",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    expect_issue(
        &found[0],
        "services[0].shm_size",
        Some(8),
        "swarm services have no shm_size",
        &text,
    );
    expect_issue(
        &found[1],
        "services[0].gpus",
        Some(9),
        "swarm services cannot take gpus",
        &text,
    );
    expect_issue(
        &found[2],
        "services[0].tmpfs",
        Some(10),
        "tmpfs \"/u\": swarm services take only the size= and mode= options, found \"noexec\"",
        &text,
    );
    let c = ok(&svc(
        "    mode: swarm\n    tmpfs: /t:size=1m,mode=700\n    command: serve\n    read_only: true\n",
    ));
    assert_eq!(run_of(&c).tmpfs[0].size, Some(1 << 20));
}

#[test]
fn env_files_are_read_relative_to_the_config_and_environment_wins() {
    let files: Files = vec![
        (
            "/etc/wp/app.env".into(),
            "# app\nDB_PASSWORD='s3cret-value'\nSHARED=from-first\nexport MODE=prod\nAPI_KEY\n"
                .into(),
        ),
        (
            "/srv/override.env".into(),
            "SHARED=from-second\nURL=\"http://${HOST}/x\"\n".into(),
        ),
    ];
    let env = |n: &str| match n {
        "API_KEY" => Some("from-proxy-env".to_string()),
        "HOST" => Some("db".to_string()),
        _ => None,
    };
    let text = svc(
        "    env_file: [app.env, /srv/override.env]\n    environment:\n      MODE: dev\n      EXTRA: 1\n",
    );
    let c = parse_files(&text, &files, &env).unwrap_or_else(|e| panic!("{e:#?}"));
    let spec = c.services[0].container().unwrap();
    assert_eq!(
        spec.environment,
        pairs(&[
            ("DB_PASSWORD", "s3cret-value"),
            ("SHARED", "from-second"),
            ("MODE", "dev"),
            ("API_KEY", "from-proxy-env"),
            ("URL", "http://db/x"),
            ("EXTRA", "1"),
        ])
    );
    let table = services_table(&c);
    assert!(!table.contains("s3cret"), "{table}");
    let c = parse_files(&svc("    env_file: app.env\n"), &files, &env).unwrap();
    assert_eq!(c.services[0].container().unwrap().environment.len(), 4);
}

#[test]
fn env_file_problems_name_the_path_and_line_never_the_value() {
    let files: Files = vec![(
        "/etc/wp/bad.env".into(),
        "OK=1\nthe password is hunter2\nP=\"s3cret\" trailing\n".into(),
    )];
    let text = svc("    env_file:\n      - bad.env\n      - missing.env\n");
    let found = parse_files(&text, &files, &no_env).unwrap_err();
    assert_eq!(found.len(), 3, "{found:#?}");
    expect_issue(
        &found[0],
        "services[0].env_file[0]",
        Some(8),
        "/etc/wp/bad.env line 2: expected KEY=VALUE or KEY",
        &text,
    );
    expect_issue(
        &found[1],
        "services[0].env_file[0]",
        Some(8),
        "/etc/wp/bad.env line 3: unexpected text after the closing quote of the value of P",
        &text,
    );
    expect_issue(
        &found[2],
        "services[0].env_file[1]",
        Some(9),
        "cannot read /etc/wp/missing.env: entity not found",
        &text,
    );
    for issue in &found {
        assert!(!issue.message.contains("hunter2") && !issue.message.contains("s3cret"));
    }
}

#[test]
fn parsing_text_alone_reads_no_env_file() {
    let found = parse(&svc("    env_file: app.env\n"), "t.yaml", &no_env)
        .unwrap_err()
        .issues;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "services[0].env_file");
    assert!(
        found[0]
            .message
            .contains("app.env: files are only read when the config is loaded from a file"),
        "{:?}",
        found[0]
    );
}
