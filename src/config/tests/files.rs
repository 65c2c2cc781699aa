//! Tests for whole files: the fixtures, the top-level shape, YAML errors, odd input, messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::support::*;
use crate::config::{Backend, ConfigErrors, ConfigIssue, load, parse};

const REFERENCE: &str = include_str!("../../../tests/data/config/reference.yaml");
const BAD_MANY: &str = include_str!("../../../tests/data/config/bad-many.yaml");
const GOOD_UPSTREAM: &str = include_str!("../../../tests/data/config/good-upstream.yaml");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

#[test]
fn reference_example_validates_with_the_token_set() {
    let env = |n: &str| (n == "PROXY_BEARER_TOKEN").then(|| TOKEN.to_string());
    let c = ok_env(REFERENCE, &env);
    assert_eq!(c.global.domain, "example.com");
    assert_eq!(c.global.bearer_token, TOKEN);
    assert_eq!(c.global.docker_network.as_deref(), Some("nodetool-net"));
    assert_eq!(
        c.global.tls_keyfile,
        Some(PathBuf::from(
            "/etc/letsencrypt/live/example.com/privkey.pem"
        ))
    );
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!((s.name.as_str(), s.path.as_str()), ("nodetool-server", "/"));
    let spec = s.container().unwrap();
    assert_eq!(spec.image, "nodetool:latest");
    assert_eq!((spec.internal_port, spec.host_port), (7777, None));
    assert_eq!(spec.mem_limit, Some(8 << 30));
    assert_eq!(spec.cpus, Some(4.0));
    assert_eq!(
        spec.environment,
        [(
            "NODETOOL_API_URL".to_string(),
            "http://localhost:7777".to_string()
        )]
    );
    assert_eq!(
        (
            spec.volumes[0].host.as_str(),
            spec.volumes[0].bind.as_str(),
            spec.volumes[0].mode.as_str()
        ),
        ("/data/workspace", "/workspace", "rw")
    );
}

#[test]
fn reference_example_names_the_missing_variable() {
    let found = issues(REFERENCE);
    assert_eq!(found.len(), 1, "{found:#?}");
    expect_issue(
        &found[0],
        "global.bearer_token",
        Some(4),
        "environment variable PROXY_BEARER_TOKEN is not set",
        REFERENCE,
    );
}

#[test]
fn bad_many_reports_everything_in_file_order() {
    let found = issues(BAD_MANY);
    let got: Vec<(Option<usize>, &str)> =
        found.iter().map(|i| (i.line, i.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(3), "global.bearer_token"),
            (Some(4), "global.idle_timout"),
            (Some(5), "global.listen_http"),
            (Some(6), "global.connect_mode"),
            (Some(9), "services[0].path"),
            (Some(11), "services[0].mem_limit"),
            (Some(13), "services[0].environment.1BAD"),
            (Some(14), "services[1].name"),
            (Some(16), "services[1].upstream"),
            (Some(17), "services[1].internal_port"),
            (Some(18), "services[2].image"),
        ]
    );
    assert!(found[1].message.contains("did you mean \"idle_timeout\"?"));
    assert!(found[7].message.contains("duplicate service name \"web\""));
    assert!(
        !found[0].message.contains("short"),
        "the token is not echoed"
    );
}

#[test]
fn good_upstream_loads_from_disk() {
    let c = load(&fixture("good-upstream.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.global.listen_address.to_string(), "127.0.0.1");
    assert_eq!(c.global.listen_http, 0);
    assert_eq!(
        c.services[0].backend,
        Backend::Upstream("127.0.0.1:9000".into())
    );
    assert_eq!(c.services[1].container().unwrap().internal_port, 8000);
    assert_eq!(c.services[1].idle_timeout, Duration::from_secs(60));
    assert_eq!(c, ok(GOOD_UPSTREAM));
}

#[test]
fn load_reports_the_path_of_a_bad_or_missing_file() {
    let path = fixture("bad-many.yaml");
    let err = load(&path).unwrap_err();
    assert_eq!(err.source, path.display().to_string());
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3: global.bearer_token: ", path.display()))
    );

    let missing = fixture("no-such-file.yaml");
    let err = load(&missing).unwrap_err();
    assert_eq!(err.issues.len(), 1);
    let issue = &err.issues[0];
    assert_eq!((issue.line, issue.field.as_str()), (None, ""));
    assert!(
        issue.message.contains("no-such-file.yaml"),
        "{}",
        issue.message
    );
    assert!(issue.message.contains("os error"), "{}", issue.message);
}

#[test]
fn display_is_one_line_per_issue() {
    let issue = |line, field: &str, message: &str| ConfigIssue {
        line,
        field: field.into(),
        message: message.into(),
    };
    let err = ConfigErrors {
        source: "proxy.yaml".into(),
        issues: vec![
            issue(Some(3), "global.idle_timeout", "bad"),
            issue(None, "services", "missing"),
            issue(Some(1), "", "invalid YAML"),
            issue(None, "", "cannot read"),
        ],
    };
    assert_eq!(
        err.to_string(),
        "proxy.yaml:3: global.idle_timeout: bad\nproxy.yaml: services: missing\nproxy.yaml:1: invalid YAML\nproxy.yaml: cannot read"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().contains("proxy.yaml:3"));
}

#[test]
fn top_level_shape_errors() {
    let svc = "services:\n  - name: aa\n    path: /\n    image: i\n";
    #[rustfmt::skip]
    let cases: Vec<(String, &str, Option<usize>, &str)> = vec![
        (String::new(), "", None, "the file is empty"),
        ("# just a comment\n".into(), "", None, "the file is empty"),
        ("- a\n- b\n".into(), "", None, "expected a mapping with global and services at the top level, found a list"),
        ("hello\n".into(), "", None, "found a string \"hello\""),
        (svc.into(), "global", None, "missing required section"),
        (format!("global: 5\n{svc}"), "global", Some(1), "expected a mapping, found an integer 5"),
        (format!("global:\n{svc}"), "global", Some(1), "missing required section"),
        (format!("global:\n  bearer_token: {TOKEN}\n"), "services", None, "missing required list of services"),
        (format!("global:\n  bearer_token: {TOKEN}\nservices:\n"), "services", Some(3), "missing required list"),
        (format!("global:\n  bearer_token: {TOKEN}\nservices: []\n"), "services", Some(3), "must list at least one service"),
        (format!("global:\n  bearer_token: {TOKEN}\nservices: {{a: 1}}\n"), "services", Some(3), "expected a list of services, found a mapping"),
        (format!("global:\n  bearer_token: {TOKEN}\n{svc}globals: 1\n"), "globals", Some(7), "unknown key \"globals\" (did you mean \"global\"?); allowed here: global, services"),
    ];
    for (text, field, line, fragment) in cases {
        expect_one(&text, field, line, fragment);
    }
}

#[test]
fn yaml_syntax_errors_are_one_issue_with_a_line() {
    for (text, line, fragment) in [
        ("global:\n  domain: [a\nservices: x\n", 3, "invalid YAML"),
        ("global:\n  a: 1\n   b: 2\n", 3, "invalid YAML"),
        // serde_yaml_ng points at the start of the mapping holding the duplicate.
        (
            "global:\n  domain: a\n  domain: b\n",
            2,
            "duplicate entry with key \"domain\"",
        ),
        ("global:\n\tdomain: a\n", 2, "invalid YAML"),
        ("global: *nope\n", 1, "unknown anchor"),
    ] {
        expect_one(text, "", Some(line), fragment);
    }
    let found = issues("a: 1\n---\nb: 2\n");
    assert_eq!((found.len(), found[0].field.as_str()), (1, ""));
    assert!(
        found[0].message.contains("more than one document"),
        "{found:?}"
    );
}

#[test]
fn flow_style_anchors_merge_keys_and_crlf_work() {
    let flow = format!(
        "{{global: {{bearer_token: {TOKEN}}}, services: [{{name: aa, path: /a, image: i}}]}}"
    );
    assert_eq!(ok(&flow).services[0].path, "/a");

    let anchors = format!(
        "global:\n  bearer_token: &tok {TOKEN}\nservices:\n  - &base\n    name: aa\n    path: /a\n    image: i\n    mem_limit: 1g\n    environment:\n      TOKEN: *tok\n  - <<: *base\n    name: bb\n    path: /b\n"
    );
    let c = ok(&anchors);
    assert_eq!(c.services[1].name, "bb");
    assert_eq!(c.services[1].container().unwrap().mem_limit, Some(1 << 30));
    assert_eq!(c.services[1].container().unwrap().environment[0].1, TOKEN);

    let crlf = with_global("  listen_http: 70000\n").replace('\n', "\r\n");
    expect_one(&crlf, "global.listen_http", Some(3), "between 0 and 65535");
    let bad_flow = format!(
        "global: {{bearer_token: {TOKEN}, idle_timeout: x}}\nservices: [{{name: aa, path: /, image: i, cpus: 0}}]\n"
    );
    let found = issues(&bad_flow);
    assert_eq!(found.len(), 2, "{found:#?}");
    expect_issue(
        &found[0],
        "global.idle_timeout",
        Some(1),
        "expected seconds (300) or a duration like 90s, 5m",
        &bad_flow,
    );
    expect_issue(
        &found[1],
        "services[0].cpus",
        Some(2),
        "greater than 0",
        &bad_flow,
    );
}

#[test]
fn odd_yaml_never_panics() {
    let deep_list = format!(
        "global:\n  domain: {}{}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    let deep_map = format!(
        "global:\n  domain: {}1{}\n",
        "{a: ".repeat(200),
        "}".repeat(200)
    );
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    let inputs: Vec<String> = vec![
        deep_list,
        deep_map,
        laughs.into(),
        "global:\n  domain: !custom x\n".into(),
        "global:\n  1: x\n  [a]: y\n".into(),
        "? [a, b]\n: c\n".into(),
        "!!binary aGVsbG8=\n".into(),
        "global: !!str\n".into(),
        "services:\n  - - - a\n".into(),
        "services:\n  - name: [a]\n    path: {x: 1}\n    image: [i]\n    upstream: {}\n".into(),
        "global:\n  bearer_token: ${\n  domain: ${A:-${B}}\n".into(),
        "\u{feff}global:\n  domain: é\n".into(),
        "global:\n  <<: 5\n".into(),
        "global:\n  <<: [1, 2]\n".into(),
        "services:\n  - name: aa\n    path: /\n    image: i\n    volumes:\n      ? [x]\n      : /y\n    environment:\n      ? [x]\n      : y\n".into(),
        "\0".into(),
        ":".into(),
        "- - -\n".into(),
        "'\n".into(),
    ];
    for text in &inputs {
        if let Err(e) = parse(text, "odd.yaml", &no_env) {
            assert!(!e.issues.is_empty());
            assert!(
                e.to_string().lines().all(|l| l.starts_with("odd.yaml")),
                "{e}"
            );
        }
    }
    let found = issues("global:\n  domain: !custom x\n");
    assert!(
        found
            .iter()
            .any(|i| i.field == "global.domain" && i.message.contains("tagged !custom")),
        "{found:#?}"
    );
    let found = issues("global:\n  1: x\n");
    assert!(
        found.iter().any(|i| i.field == "global"
            && i.message
                .contains("keys must be strings, found an integer 1")),
        "{found:#?}"
    );
}
