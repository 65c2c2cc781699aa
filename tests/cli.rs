//! The command line: `proxy-validate-config` on good and bad files (the reference example
//! among them), `proxy-status` against a running proxy, `--version`, bad start-ups.

mod support;

use std::process::Command;

use support::*;

fn wakeproxy(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakeproxy"));
    cmd.args(args).env_remove("PROXY_BEARER_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data(name: &str) -> String {
    format!("{}/tests/data/config/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_the_reference_example_with_its_variable_set() {
    let token = ("PROXY_BEARER_TOKEN", TOKEN);
    let (code, out, err) = wakeproxy(
        &["proxy-validate-config", "--config", &data("reference.yaml")],
        &[token],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("nodetool-server") && out.contains("nodetool:latest") && out.contains("7777"),
        "{out}"
    );
    assert!(out.contains("valid (1 services)"), "{out}");
    assert!(!out.contains(token.1), "the token is not printed");
}

#[test]
fn validate_names_the_missing_variable() {
    let (code, _, err) = wakeproxy(
        &["proxy-validate-config", "--config", &data("reference.yaml")],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("PROXY_BEARER_TOKEN") && err.contains("global.bearer_token"),
        "{err}"
    );
    assert!(err.contains("reference.yaml:4:"), "file and line: {err}");
}

/// What users saw: with `$PROXY_BEARER_TOKEN` (Compose's form) unset, the literal text was
/// accepted and then worked as the token. Now the config is refused, by validation and at
/// start-up alike, and so are a default for the token and a weak one.
#[test]
fn a_token_that_could_be_public_is_refused_and_the_proxy_does_not_start() {
    let dir = TempDir::new("public-token");
    #[rustfmt::skip]
    let cases = [
        ("$PROXY_BEARER_TOKEN", "write ${PROXY_BEARER_TOKEN}"),
        ("${UNSET_TOKEN_X:-changeme-changeme}", "publicly known token"),
        ("aaaaaaaaaaaaaaaa", "at least 32 characters"),
        ("${UNSET_TOKEN_X}", "openssl rand -hex 32"),
    ];
    for (i, (value, fragment)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("p{i}.yaml"));
        std::fs::write(
            &path,
            format!("global:\n  bearer_token: {value}\n  listen_address: 127.0.0.1\n  listen_http: 0\nservices:\n  - name: a\n    path: /\n    upstream: 127.0.0.1:1\n"),
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let (code, out, err) = wakeproxy(&["proxy-validate-config", "--config", config], &[]);
        assert_eq!(code, 1, "{value}: {out}{err}");
        assert!(
            err.contains(&format!("p{i}.yaml:2: global.bearer_token: ")),
            "{err}"
        );
        assert!(err.contains(fragment), "{value}: {err}");
        assert!(!out.contains("valid"), "{out}");
        // The proxy itself refuses to start: nothing ever listens with that token.
        let (code, out, err) = wakeproxy(&["proxy", "--config", config, "--no-tls"], &[]);
        assert_eq!(code, 1, "{value}: {out}{err}");
        assert!(
            err.contains("invalid configuration") && err.contains(fragment),
            "{err}"
        );
        assert!(!err.contains("listening on"), "{err}");
    }
}

/// Names of 256 or 300 characters passed validation, then every request got a 503.
#[test]
fn validate_refuses_a_service_name_docker_cannot_use() {
    let dir = TempDir::new("long-name");
    let path = dir.path().join("p.yaml");
    let name = "n".repeat(256);
    std::fs::write(
        &path,
        format!("global:\n  bearer_token: {TOKEN}\nservices:\n  - name: {name}\n    path: /\n    image: app:latest\n"),
    )
    .unwrap();
    let (code, out, err) = wakeproxy(
        &["proxy-validate-config", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "p.yaml:4: services[0].name: is 256 characters long, more than the limit of 63"
        ),
        "{err}"
    );
}

#[test]
fn validate_reports_every_error_with_file_line_and_field() {
    let (code, _, err) = wakeproxy(
        &["proxy-validate-config", "--config", &data("bad-many.yaml")],
        &[],
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bad-many.yaml:"))
        .collect();
    assert!(lines.len() >= 5, "every problem at once:\n{err}");
    assert!(lines.iter().all(|l| l.contains("bad-many.yaml:")));
    assert!(
        err.contains("unknown key") && err.contains("allowed here"),
        "{err}"
    );
}

#[test]
fn validate_good_file_prints_a_table() {
    let (code, out, err) = wakeproxy(
        &[
            "proxy-validate-config",
            "--config",
            &data("good-upstream.yaml"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("KIND"),
        "{out}"
    );
    assert!(
        out.contains("upstream") && out.contains("container"),
        "{out}"
    );
}

#[test]
fn missing_config_file_exits_1_naming_it() {
    let (code, _, err) = wakeproxy(&["proxy", "--config", "/nonexistent/proxy.yaml"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/proxy.yaml"), "{err}");
}

#[test]
fn version_and_usage() {
    let (code, out, _) = wakeproxy(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("wakeproxy "), "{out}");
    let (code, _, err) = wakeproxy(&["proxy", "--bogus"], &[]);
    assert_eq!(code, 2, "{err}");
}

/// No command is a usage error (exit 2, usage on stderr); asking for help is not (exit 0,
/// usage on stdout), with `-h` as well as `--help`, at the top and for a command.
#[test]
fn no_command_is_a_usage_error_and_help_is_not() {
    let (code, out, err) = wakeproxy(&[], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("wakeproxy: no command given"), "{err}");
    assert!(
        err.contains("Usage: wakeproxy") && err.contains("proxy-daemon"),
        "{err}"
    );
    for flag in ["--help", "-h"] {
        let (code, out, err) = wakeproxy(&[flag], &[]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert!(out.starts_with("Usage: wakeproxy"), "{flag}: {out}");
        assert!(out.contains("healthcheck"), "{flag}: {out}");
        let (code, out, err) = wakeproxy(&["proxy-daemon", flag], &[]);
        assert_eq!(code, 0, "proxy-daemon {flag}: {err}");
        assert!(
            out.starts_with("Usage: wakeproxy proxy-daemon") && out.contains("restart"),
            "proxy-daemon {flag}: {out}"
        );
    }
    // `-h` as the value of an option stays that value.
    let (code, _, err) = wakeproxy(&["proxy-validate-config", "--config", "-h"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read config file -h"), "{err}");
}

/// `/proxy/healthz` needs no token, and neither does the healthcheck that probes it: it
/// reads only the listener from the config, so an unset token variable does not matter.
#[test]
fn healthcheck_needs_no_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "global:\n  bearer_token: ${{PROXY_BEARER_TOKEN}}\n  listen_address: 127.0.0.1\n  listen_http: {port}\nservices:\n  - name: a\n    path: /\n    upstream: 127.0.0.1:1\n"
    );
    let mut p = TestProxy::start_env(&yaml, &[("PROXY_BEARER_TOKEN", TOKEN)]);
    assert_eq!(p.addr.port(), port);
    let config = p.config_path.to_str().unwrap().to_string();
    let config = config.as_str();
    let (code, out, err) = wakeproxy(&["healthcheck", "--config", config], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // The full config does need the token: validation without it still fails.
    let (code, _, err) = wakeproxy(&["proxy-validate-config", "--config", config], &[]);
    assert_eq!(code, 1, "{err}");
    p.proc.child.kill().unwrap();
    p.proc.child.wait().unwrap();
    let (code, _, err) = wakeproxy(&["healthcheck", "--config", config], &[]);
    assert_eq!(code, 1, "nothing answers once the proxy is gone: {err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}/proxy/healthz")),
        "{err}"
    );
}

#[test]
fn port_in_use_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("busy");
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        format!("global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: {port}\nservices:\n  - name: a\n    path: /\n    upstream: 127.0.0.1:1\n"),
    )
    .unwrap();
    let (code, _, err) = wakeproxy(
        &["proxy", "--config", path.to_str().unwrap(), "--no-tls"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn proxy_status_against_a_running_proxy() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: web\n    path: /web\n    upstream: {}\n  - name: other\n    path: /other\n    upstream: {}\n",
        b.addr, b.addr
    )));
    assert_eq!(get(p.addr, "/web/x").status, 200);
    let url = format!("http://{}", p.addr);
    let (code, out, err) = wakeproxy(
        &[
            "proxy-status",
            "--server-url",
            &url,
            "--bearer-token",
            TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    let web = lines
        .iter()
        .find(|l| l.starts_with("web "))
        .expect("a row for web");
    assert!(web.contains("/web") && web.contains("upstream"), "{web}");
    assert!(
        web.contains('T') && web.contains('Z'),
        "last access shown as RFC 3339: {web}"
    );
    assert!(lines.iter().any(|l| l.starts_with("other ")));
    // --json, with the token from the environment.
    let (code, out, _) = wakeproxy(
        &["proxy-status", "--server-url", &url, "--json"],
        &[("PROXY_BEARER_TOKEN", TOKEN)],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["services"].clone();
    assert_eq!(v[0]["name"], "web");
    assert_eq!(v[0]["in_flight"], 0);
    assert!(v[0]["last_access"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v[1]["last_access"], serde_json::Value::Null);
    // A wrong token is exit code 3 with the reason.
    let (code, _, err) = wakeproxy(
        &[
            "proxy-status",
            "--server-url",
            &url,
            "--bearer-token",
            "wrong",
        ],
        &[],
    );
    assert_eq!(code, 3);
    assert!(err.contains("401"), "{err}");
}
