//! Tests for `services:` entries: values, defaults, every error, and cross-service checks.

use std::time::Duration;

use super::support::*;
use crate::config::{Backend, Volume};

/// A container service on lines 4-6, then `extra` from line 7 on.
fn svc(extra: &str) -> String {
    with_services(&format!(
        "  - name: app\n    path: /\n    image: app:latest\n{extra}"
    ))
}

/// An upstream service on lines 4-6, then `extra` from line 7 on.
fn up(extra: &str) -> String {
    with_services(&format!(
        "  - name: up\n    path: /\n    upstream: 127.0.0.1:9000\n{extra}"
    ))
}

#[test]
fn container_defaults() {
    let c = ok(&svc(""));
    let s = &c.services[0];
    assert_eq!((s.name.as_str(), s.path.as_str()), ("app", "/"));
    assert!(s.strip_prefix);
    assert_eq!(s.auth_token, None);
    assert_eq!(s.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.health_path, None);
    assert_eq!(s.start_timeout, Duration::from_secs(60));
    let spec = s.container().expect("a container service");
    assert_eq!(spec.image, "app:latest");
    assert_eq!(spec.internal_port, 8000);
    assert_eq!(spec.host_port, None);
    assert!(spec.environment.is_empty() && spec.volumes.is_empty());
    assert_eq!((spec.mem_limit, spec.cpus), (None, None));
    assert!(spec.init);
}

#[test]
fn every_service_key_is_read() {
    let text = svc("    internal_port: 7777
    host_port: 18080
    environment:
      PORT: 8000
      RATIO: 0.5
      DEBUG: true
      URL: http://${HOST:-localhost}:7777
      EMPTY: \"\"
    volumes:
      /data/workspace:
        bind: /workspace
        mode: ro
      /srv/cache: /cache
      named_vol: /named:ro
      /srv/x: {bind: /x}
    mem_limit: 512M
    cpus: 2
    init: false
    strip_prefix: false
    auth_token: upstream-ac769909b160031e2e7d2df983c5555e
    idle_timeout: 0
    health_path: /health?full=1
    start_timeout: 5
");
    let s = &ok(&text).services[0];
    assert!(!s.strip_prefix);
    assert_eq!(
        s.auth_token.as_deref(),
        Some("upstream-ac769909b160031e2e7d2df983c5555e")
    );
    assert_eq!(s.idle_timeout, Duration::ZERO);
    assert_eq!(s.health_path.as_deref(), Some("/health?full=1"));
    assert_eq!(s.start_timeout, Duration::from_secs(5));
    let spec = s.container().unwrap();
    assert_eq!((spec.internal_port, spec.host_port), (7777, Some(18080)));
    let env: Vec<(&str, &str)> = spec
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("PORT", "8000"),
            ("RATIO", "0.5"),
            ("DEBUG", "true"),
            ("URL", "http://localhost:7777"),
            ("EMPTY", "")
        ]
    );
    let vol = |h: &str, b: &str, m: &str| Volume {
        host: h.into(),
        bind: b.into(),
        mode: m.into(),
    };
    assert_eq!(
        spec.volumes,
        [
            vol("/data/workspace", "/workspace", "ro"),
            vol("/srv/cache", "/cache", "rw"),
            vol("named_vol", "/named", "ro"),
            vol("/srv/x", "/x", "rw"),
        ]
    );
    assert_eq!(spec.mem_limit, Some(512 * 1024 * 1024));
    assert_eq!(spec.cpus, Some(2.0));
    assert!(!spec.init);
}

#[test]
fn mem_limit_as_bytes_and_expanded_from_the_environment() {
    let c = ok(&svc("    mem_limit: 6291456\n"));
    assert_eq!(c.services[0].container().unwrap().mem_limit, Some(6 << 20));
    let env = |n: &str| (n == "MEM").then(|| "1g".to_string());
    let c = ok_env(
        &svc("    mem_limit: ${MEM}\n    cpus: ${CPUS:-0.5}\n"),
        &env,
    );
    let spec = c.services[0].container().unwrap();
    assert_eq!((spec.mem_limit, spec.cpus), (Some(1 << 30), Some(0.5)));
}

#[test]
fn upstream_services() {
    let c = ok(&up(
        "    strip_prefix: false\n    health_path: /ready\n    idle_timeout: 10\n",
    ));
    let s = &c.services[0];
    assert_eq!(s.backend, Backend::Upstream("127.0.0.1:9000".into()));
    assert!(s.container().is_none());
    assert_eq!(s.health_path.as_deref(), Some("/ready"));
    assert_eq!(s.idle_timeout, Duration::from_secs(10));
}

#[test]
fn paths_are_normalised() {
    for (raw, want) in [
        ("\"\"", "/"),
        ("api", "/api"),
        ("/api/", "/api"),
        ("a/b/", "/a/b"),
    ] {
        let text = with_services(&format!("  - name: aa\n    path: {raw}\n    image: i\n"));
        assert_eq!(ok(&text).services[0].path, want, "{raw}");
    }
}

#[test]
fn each_service_error_names_field_line_and_problem() {
    #[rustfmt::skip]
    let cases: Vec<(String, &str, usize, &str)> = vec![
        (with_services("  - path: /\n    image: i\n"), "services[0].name", 4, "missing required key"),
        (with_services("  - name: -x\n    path: /\n    image: i\n"), "services[0].name", 4, "\"-x\" is not a valid name"),
        (with_services("  - name: 5\n    path: /\n    image: i\n"), "services[0].name", 4, "expected a string, found an integer 5"),
        (with_services("  - name: aa\n    image: i\n"), "services[0].path", 4, "missing required key"),
        (with_services("  - name: aa\n    path:\n    image: i\n"), "services[0].path", 5, "missing required key"),
        (with_services("  - name: aa\n    path: /a//b\n    image: i\n"), "services[0].path", 5, "must not contain \"//\""),
        (with_services("  - name: aa\n    path: /a/../b\n    image: i\n"), "services[0].path", 5, "\".\" or \"..\" segments"),
        (with_services("  - name: aa\n    path: /a/.\n    image: i\n"), "services[0].path", 5, "\".\" or \"..\" segments"),
        (with_services("  - name: aa\n    path: /a%20b\n    image: i\n"), "services[0].path", 5, "must not contain \"%\""),
        (with_services("  - name: aa\n    path: /a?b\n    image: i\n"), "services[0].path", 5, "must not contain \"?\""),
        (with_services("  - name: aa\n    path: \"/a#b\"\n    image: i\n"), "services[0].path", 5, "must not contain \"#\""),
        (with_services("  - name: aa\n    path: \"/a b\"\n    image: i\n"), "services[0].path", 5, "whitespace or control"),
        (with_services("  - name: aa\n    path: \"/a\\u0001\"\n    image: i\n"), "services[0].path", 5, "whitespace or control"),
        (with_services("  - name: aa\n    path: /proxy/x\n    image: i\n"), "services[0].path", 5, "reserved"),
        (with_services("  - name: aa\n    path: /\n"), "services[0].image", 4, "needs an image"),
        (svc("    upstream: a:80\n"), "services[0].upstream", 7, "either image or upstream, not both"),
        (with_services("  - name: aa\n    path: /\n    image: \"\"\n"), "services[0].image", 6, "expected an image name"),
        (up("").replace("127.0.0.1:9000", "localhost"), "services[0].upstream", 6, "missing :port"),
        (up("").replace("127.0.0.1:9000", "a:0"), "services[0].upstream", 6, "between 1 and 65535"),
        (up("    internal_port: 80\n"), "services[0].internal_port", 7, "only allowed for image services"),
        (up("    environment: {A: b}\n"), "services[0].environment", 7, "only allowed for image services"),
        (svc("    internal_port: 0\n"), "services[0].internal_port", 7, "between 1 and 65535, found 0"),
        (svc("    host_port: 70000\n"), "services[0].host_port", 7, "between 1 and 65535, found 70000"),
        (svc("    environment: [A]\n"), "services[0].environment", 7, "expected a mapping of NAME: value"),
        (svc("    environment:\n      1X: a\n"), "services[0].environment.1X", 8, "not a valid variable name"),
        (svc("    environment:\n      A-B: a\n"), "services[0].environment.A-B", 8, "not a valid variable name"),
        (svc("    environment:\n      A: [1]\n"), "services[0].environment.A", 8, "expected a string, number or boolean, found a list"),
        (svc("    environment:\n      A:\n"), "services[0].environment.A", 8, "found null"),
        (svc("    environment:\n      A: ${SECRET}\n"), "services[0].environment.A", 8, "environment variable SECRET is not set"),
        (svc("    volumes: /data\n"), "services[0].volumes", 7, "expected a mapping of host path"),
        (svc("    volumes:\n      ./data: /x\n"), "services[0].volumes../data", 8, "absolute path"),
        (svc("    volumes:\n      /data: x\n"), "services[0].volumes./data", 8, "bind must be an absolute path"),
        (svc("    volumes:\n      /data: /x:rx\n"), "services[0].volumes./data", 8, "mode must be rw or ro"),
        (svc("    volumes:\n      /data: /x:ro:z\n"), "services[0].volumes./data", 8, "expected \"/container/path\""),
        (svc("    volumes:\n      /data: 5\n"), "services[0].volumes./data", 8, "found an integer 5"),
        (svc("    volumes:\n      /data: {mode: ro}\n"), "services[0].volumes./data.bind", 8, "missing required key"),
        (svc("    volumes:\n      /data:\n        bind: rel\n"), "services[0].volumes./data.bind", 9, "absolute"),
        (svc("    volumes:\n      /data:\n        bind: /x\n        mode: RW\n"), "services[0].volumes./data.mode", 10, "mode must be rw or ro"),
        (svc("    volumes:\n      /data:\n        bind: /x\n        readonly: true\n"), "services[0].volumes./data.readonly", 10, "unknown key \"readonly\"; allowed here: bind, mode"),
        (svc("    volumes:\n      /a: /x\n      /b: /x\n"), "services[0].volumes./b", 9, "already the bind of volume \"/a\""),
        (svc("    mem_limit: 5m\n"), "services[0].mem_limit", 7, "at least 6m"),
        (svc("    mem_limit: 1000\n"), "services[0].mem_limit", 7, "at least 6m (6291456 bytes, Docker's minimum), found 1000 bytes"),
        (svc("    mem_limit: lots\n"), "services[0].mem_limit", 7, "expected a size like 512m"),
        (svc("    mem_limit: -5\n"), "services[0].mem_limit", 7, "expected a whole number of bytes"),
        (svc("    mem_limit: [1]\n"), "services[0].mem_limit", 7, "found a list"),
        (svc("    cpus: 0\n"), "services[0].cpus", 7, "greater than 0"),
        (svc("    cpus: -1.5\n"), "services[0].cpus", 7, "greater than 0, found -1.5"),
        (svc("    cpus: two\n"), "services[0].cpus", 7, "expected a number, found a string \"two\""),
        (svc("    cpus: .nan\n"), "services[0].cpus", 7, "finite"),
        (svc("    init: no\n"), "services[0].init", 7, "expected true or false"),
        (svc("    strip_prefix: 1\n"), "services[0].strip_prefix", 7, "expected true or false, found an integer 1"),
        (svc("    auth_token: \"\"\n"), "services[0].auth_token", 7, "at least 32 characters, found 0"),
        (svc("    auth_token: a b\n"), "services[0].auth_token", 7, "whitespace"),
        (svc("    idle_timeout: -1\n"), "services[0].idle_timeout", 7, "must not be negative"),
        (svc("    health_path: health\n"), "services[0].health_path", 7, "starting with \"/\""),
        (svc("    start_timeout: 0\n"), "services[0].start_timeout", 7, "between 1s and 3650d, found 0s"),
        (svc("    imgae: x\n"), "services[0].imgae", 7, "did you mean \"image\"?"),
        (with_services("  - just-a-string\n"), "services[0]", 4, "expected a mapping with name, path and image or upstream"),
    ];
    for (text, field, line, fragment) in cases {
        expect_one(&text, field, Some(line), fragment);
    }
}

#[test]
fn service_names_follow_what_docker_accepts() {
    // 256 and 300 characters passed validation and then failed every request.
    for len in [64, 256, 300] {
        let long = "s".repeat(len);
        for backend in ["image: i", "upstream: 127.0.0.1:9"] {
            let text = with_services(&format!("  - name: {long}\n    path: /\n    {backend}\n"));
            expect_one(
                &text,
                "services[0].name",
                Some(4),
                &format!("is {len} characters long, more than the limit of 63"),
            );
            assert!(
                !issues(&text)[0].message.contains(&long),
                "the name is cut short"
            );
        }
    }
    let max = "s".repeat(63);
    let c = ok(&with_services(&format!(
        "  - name: {max}\n    path: /\n    image: i\n"
    )));
    assert_eq!(c.services[0].name, max);
    // Docker's container names have at least two characters; an upstream's name is the proxy's.
    let text = with_services("  - name: a\n    path: /\n    image: i\n");
    expect_one(
        &text,
        "services[0].name",
        Some(4),
        "Docker needs at least 2 characters",
    );
    ok(&with_services(
        "  - name: a\n    path: /\n    upstream: 127.0.0.1:9\n",
    ));
}

#[test]
fn auth_token_follows_the_bearer_token_rules() {
    #[rustfmt::skip]
    let cases = [
        ("backend-secret", "must be at least 32 characters, found 14"),
        ("\"99999999999999999999999999999999999999\"", "a run of 38"),
        ("\"90218374650192837465019283746501\"", "about 106 bits"),
        ("${BACKEND_TOKEN:-backend-secret}", "publicly known token"),
        ("$BACKEND_TOKEN", "write ${BACKEND_TOKEN}"),
        ("\"%BACKEND_TOKEN%\"", "write ${BACKEND_TOKEN}"),
        ("${BACKEND_TOKEN}", "export BACKEND_TOKEN=$(openssl rand -hex 32)"),
    ];
    for (value, fragment) in cases {
        let text = svc(&format!("    auth_token: {value}\n"));
        expect_one(&text, "services[0].auth_token", Some(7), fragment);
        let msg = &issues(&text)[0].message;
        assert!(
            !msg.contains("backend-secret") && !msg.contains("9021837"),
            "{msg}"
        );
    }
    let env = |n: &str| (n == "BACKEND_TOKEN").then(|| TOKEN.to_string());
    let c = ok_env(&svc("    auth_token: ${BACKEND_TOKEN}\n"), &env);
    assert_eq!(c.services[0].auth_token.as_deref(), Some(TOKEN));
}

#[test]
fn auth_token_is_never_echoed() {
    let found = issues(&svc("    auth_token: [hunter2]\n"));
    assert!(!found[0].message.contains("hunter2"), "{found:?}");
    assert!(found[0].message.contains("found a list"));
}

#[test]
fn duplicates_across_services_name_both() {
    let text = with_services(
        "  - name: aa
    path: /api/
    image: i
    host_port: 9000
  - name: bb
    path: api
    image: i
    host_port: 9000
  - name: aa
    path: /other
    image: i
",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    expect_issue(
        &found[0],
        "services[1].path",
        Some(9),
        "path \"/api\" of service \"bb\" is already used by service \"aa\" (services[0])",
        &text,
    );
    expect_issue(
        &found[1],
        "services[1].host_port",
        Some(11),
        "host_port 9000 is already used by service \"aa\"",
        &text,
    );
    expect_issue(
        &found[2],
        "services[2].name",
        Some(12),
        "duplicate service name \"aa\" (also used by services[0])",
        &text,
    );
}

#[test]
fn services_are_kept_in_file_order_with_their_own_idle_timeouts() {
    let text = with_services(
        "- name: one
  path: /one
  image: i
  idle_timeout: 5
- name: two
  path: /two
  upstream: \"[::1]:8080\"
",
    );
    let c = ok(&text);
    let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(c.services[0].idle_timeout, Duration::from_secs(5));
    assert_eq!(c.services[1].idle_timeout, Duration::from_secs(300));
}

#[test]
fn hosts_are_read_and_default_the_path_to_root() {
    let text = with_services(
        "  - name: wiki
    host: Wiki.Example.COM
    upstream: 127.0.0.1:9001
  - name: any
    host: \"*.apps.example.com\"
    path: /x/
    upstream: 127.0.0.1:9002
  - name: rest
    path: /
    upstream: 127.0.0.1:9003
",
    );
    let c = ok(&text);
    let hosts: Vec<_> = c
        .services
        .iter()
        .map(|s| (s.host.as_ref().map(|h| h.to_string()), s.path.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [
            (Some("wiki.example.com".to_string()), "/"),
            (Some("*.apps.example.com".to_string()), "/x"),
            (None, "/"),
        ]
    );
}

#[test]
fn a_host_and_path_pair_is_unique_and_bad_hosts_say_why() {
    let text = with_services(
        "  - name: aa
    host: a.example.com
    upstream: 127.0.0.1:9001
  - name: bb
    host: A.example.com.
    path: /
    upstream: 127.0.0.1:9002
  - name: cc
    path: /
    upstream: 127.0.0.1:9003
",
    );
    expect_one(
        &text,
        "services[1].path",
        Some(9),
        "path \"/\" on host a.example.com of service \"bb\" is already used by service \"aa\"",
    );
    expect_one(
        &up("    host: example.com:8443\n"),
        "services[0].host",
        Some(7),
        "without a port",
    );
    expect_one(
        &with_services("  - name: aa\n    upstream: 127.0.0.1:9\n"),
        "services[0].path",
        Some(4),
        "or give a host",
    );
}

/// A container service under `/app` on lines 4-6, then `extra` from line 7 on.
fn under_app(extra: &str) -> String {
    with_services(&format!(
        "  - name: app\n    path: /app\n    image: app:latest\n{extra}"
    ))
}

#[test]
fn prefix_rewrites_are_on_exactly_when_a_prefix_is_stripped() {
    let rules = |text: &str| {
        let s = &ok(text).services[0];
        (s.rewrite_redirects, s.rewrite_cookie_paths)
    };
    assert_eq!(rules(&under_app("")), (true, true));
    assert_eq!(
        rules(&up("").replace("path: /", "path: /api/v1")),
        (true, true)
    );
    // Nothing stripped: nothing to put back.
    assert_eq!(rules(&svc("")), (false, false));
    assert_eq!(
        rules(&under_app("    strip_prefix: false\n")),
        (false, false)
    );
    // Turned off one by one, or said outright.
    assert_eq!(
        rules(&under_app("    rewrite_redirects: false\n")),
        (false, true)
    );
    assert_eq!(
        rules(&under_app("    rewrite_cookie_paths: false\n")),
        (true, false)
    );
    let both = "    rewrite_redirects: true\n    rewrite_cookie_paths: true\n";
    assert_eq!(rules(&under_app(both)), (true, true));
    // False where nothing is stripped says what happens anyway.
    let off = "    rewrite_redirects: false\n    rewrite_cookie_paths: false\n";
    assert_eq!(rules(&svc(off)), (false, false));
    let kept = format!("    strip_prefix: false\n{off}");
    assert_eq!(rules(&under_app(&kept)), (false, false));
    let env = |n: &str| (n == "REWRITE").then(|| "false".to_string());
    let s = &ok_env(&under_app("    rewrite_redirects: ${REWRITE}\n"), &env).services[0];
    assert!(!s.rewrite_redirects && s.rewrite_cookie_paths);
}

#[test]
fn prefix_rewrites_refuse_what_they_cannot_do() {
    #[rustfmt::skip]
    let cases: Vec<(String, &str, usize, &str)> = vec![
        (under_app("    rewrite_redirects: 1\n"), "services[0].rewrite_redirects", 7, "expected true or false, found an integer 1"),
        (under_app("    rewrite_cookie_paths: \"on\"\n"), "services[0].rewrite_cookie_paths", 7, "expected true or false"),
        (under_app("    rewrite_redirects: [true]\n"), "services[0].rewrite_redirects", 7, "found a list"),
        (svc("    rewrite_redirects: true\n"), "services[0].rewrite_redirects", 7, "true has no effect: nothing is stripped from this service's requests (the path is \"/\")"),
        (svc("    rewrite_cookie_paths: true\n"), "services[0].rewrite_cookie_paths", 7, "(the path is \"/\"), so there is no prefix to put back"),
        (under_app("    strip_prefix: false\n    rewrite_redirects: true\n"), "services[0].rewrite_redirects", 8, "(strip_prefix is false)"),
        (under_app("    rewrite_cookie_paths: true\n    strip_prefix: false\n"), "services[0].rewrite_cookie_paths", 7, "leave it out or set it to false"),
        (up("    rewrite_redirects: true\n"), "services[0].rewrite_redirects", 7, "true has no effect"),
    ];
    for (text, field, line, fragment) in cases {
        expect_one(&text, field, Some(line), fragment);
    }
}
