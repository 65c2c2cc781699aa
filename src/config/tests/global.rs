//! Tests for the `global:` section: defaults, every value, every error, the bearer token.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::support::*;
use crate::config::{ConnectMode, IpNet};

#[test]
fn defaults_apply_to_a_minimal_file() {
    let c = ok(&with_global(""));
    let g = &c.global;
    assert_eq!(g.domain, "localhost");
    assert_eq!(g.email, None);
    assert_eq!(g.bearer_token, TOKEN);
    assert_eq!(g.idle_timeout, Duration::from_secs(300));
    assert_eq!(g.listen_address, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!((g.listen_http, g.listen_https), (80, 443));
    assert_eq!(g.docker_network.as_deref(), Some("wakeproxy-net"));
    assert_eq!(g.connect_mode, ConnectMode::DockerDns);
    assert!(g.http_redirect_to_https);
    assert_eq!(g.acme_webroot, PathBuf::from("/var/www/acme"));
    assert_eq!((&g.tls_certfile, &g.tls_keyfile), (&None, &None));
    assert!(!g.auto_certbot);
    assert_eq!(g.log_level, log::LevelFilter::Info);
    assert!(g.trusted_proxies.is_empty());
    assert_eq!(g.limits, crate::config::Limits::default());
    assert_eq!(g.limits.max_connections, 20_000);
}

#[test]
fn every_global_key_is_read() {
    let c = ok(&with_global(
        "  domain: example.com
  email: admin@example.com
  idle_timeout: 0
  listen_address: \"::1\"
  listen_http: 0
  listen_https: 8443
  docker_network: \"\"
  connect_mode: host_port
  http_redirect_to_https: false
  acme_webroot: /srv/acme
  tls_certfile: /c.pem
  tls_keyfile: /k.pem
  auto_certbot: true
  log_level: DEBUG
  trusted_proxies: [10.0.0.0/8, \"::1\"]
  max_connections: 100000
  max_connections_per_ip: 50
  max_unauthenticated_per_ip: 3
  max_workers: 64
  worker_queue_timeout: 2
  first_byte_timeout: 4
  head_timeout: 6
  keep_alive_timeout: 30
  keep_alive_timeout_busy: 3
  min_body_rate: 0
",
    ));
    let g = &c.global;
    assert_eq!(g.domain, "example.com");
    assert_eq!(g.email.as_deref(), Some("admin@example.com"));
    assert_eq!(g.idle_timeout, Duration::ZERO);
    assert_eq!(g.listen_address, "::1".parse::<IpAddr>().unwrap());
    assert_eq!((g.listen_http, g.listen_https), (0, 8443));
    assert_eq!(g.docker_network, None, "\"\" disables the network");
    assert_eq!(g.connect_mode, ConnectMode::HostPort);
    assert!(!g.http_redirect_to_https);
    assert_eq!(g.acme_webroot, PathBuf::from("/srv/acme"));
    assert_eq!(g.tls_certfile, Some(PathBuf::from("/c.pem")));
    assert_eq!(g.tls_keyfile, Some(PathBuf::from("/k.pem")));
    assert!(g.auto_certbot);
    assert_eq!(g.log_level, log::LevelFilter::Debug);
    assert_eq!(
        g.trusted_proxies,
        vec![
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("::1").unwrap()
        ]
    );
    let l = &g.limits;
    assert_eq!(l.max_connections, 100_000);
    assert_eq!(
        (
            l.max_connections_per_ip,
            l.max_unauthenticated_per_ip,
            l.max_workers
        ),
        (50, 3, 64)
    );
    let secs = Duration::from_secs;
    assert_eq!(
        (l.worker_queue_timeout, l.first_byte_timeout, l.head_timeout),
        (secs(2), secs(4), secs(6))
    );
    assert_eq!(
        (l.keep_alive_timeout, l.keep_alive_timeout_busy),
        (secs(30), secs(3))
    );
    assert_eq!(l.min_body_rate, 0, "0 turns the rate check off");
    // The service inherits the global idle timeout.
    assert_eq!(c.services[0].idle_timeout, Duration::ZERO);
}

#[test]
fn null_means_not_set() {
    let c = ok(&with_global(
        "  domain:\n  idle_timeout: ~\n  trusted_proxies: null\n",
    ));
    assert_eq!(c.global.domain, "localhost");
    assert_eq!(c.global.idle_timeout, Duration::from_secs(300));
}

#[test]
fn each_global_error_names_field_line_and_problem() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, usize, &str)] = &[
        ("  domain: https://x.com/\n", "global.domain", 3, "no scheme or path"),
        ("  domain: 5\n", "global.domain", 3, "expected a string, found an integer 5"),
        ("  email: nope\n", "global.email", 3, "\"nope\" is not an e-mail address"),
        ("  auto_certbot: true\n", "global.email", 3, "required when auto_certbot is true"),
        ("  idle_timeout: abc\n", "global.idle_timeout", 3, "expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m (units d, h, m, s, ms), found \"abc\""),
        ("  idle_timeout: -1\n", "global.idle_timeout", 3, "must not be negative (expected seconds (300) or a duration like 90s, 5m"),
        ("  idle_timeout: 1.5\n", "global.idle_timeout", 3, "expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m (units d, h, m, s, ms), found a float 1.5"),
        ("  idle_timeout: 5 min\n", "global.idle_timeout", 3, "found \"5 min\""),
        ("  idle_timeout: 3651d\n", "global.idle_timeout", 3, "must be between 0s and 3650d, found 3651d"),
        ("  idle_timeout: 2500ms\n", "global.idle_timeout", 3, "is counted in whole seconds, found 2s500ms"),
        ("  idle_timeout: [1]\n", "global.idle_timeout", 3, "expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m (units d, h, m, s, ms), found a list"),
        ("  session_lifetime: 30s\n", "global.session_lifetime", 3, "must be between 1m and 366d, found 30s"),
        ("  shutdown_timeout: 2h\n", "global.shutdown_timeout", 3, "must be between 0s and 1h, found 2h"),
        ("  tunnel_idle_timeout: 0\n", "global.tunnel_idle_timeout", 3, "must be between 1s and 3650d, found 0s"),
        ("  listen_address: localhost\n", "global.listen_address", 3, "expected an IP address"),
        ("  listen_http: 70000\n", "global.listen_http", 3, "between 0 and 65535, found 70000"),
        ("  listen_https: 0\n", "global.listen_https", 3, "between 1 and 65535, found 0"),
        ("  listen_http: 8080\n  listen_https: 8080\n", "global.listen_https", 4, "must differ"),
        ("  docker_network: -bad\n", "global.docker_network", 3, "not a valid Docker network name"),
        ("  docker_network: a b\n", "global.docker_network", 3, "not a valid Docker network name"),
        ("  connect_mode: bridge\n", "global.connect_mode", 3, "expected docker_dns or host_port, found \"bridge\""),
        ("  http_redirect_to_https: yes\n", "global.http_redirect_to_https", 3, "expected true or false, found a string \"yes\""),
        ("  acme_webroot: \"\"\n", "global.acme_webroot", 3, "must not be empty"),
        ("  tls_certfile: /c.pem\n", "global.tls_keyfile", 3, "must be given together"),
        ("  tls_keyfile: /k.pem\n", "global.tls_certfile", 3, "must be given together"),
        ("  auto_certbot: 1\n", "global.auto_certbot", 3, "expected true or false, found an integer 1"),
        ("  log_level: verbose\n", "global.log_level", 3, "expected error, warn, info, debug or trace"),
        ("  trusted_proxies: [10.0.0.0/8, 10.0.0.300]\n", "global.trusted_proxies[1]", 3, "\"10.0.0.300\" is not an IP address or network"),
        ("  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", "global.trusted_proxies[1]", 5, "\"10.0.0.0/33\""),
        ("  trusted_proxies:\n    - 80\n", "global.trusted_proxies[0]", 4, "expected a string, found an integer 80"),
        ("  trusted_proxies: 10.0.0.0/8\n", "global.trusted_proxies", 3, "expected a list of IP addresses or networks"),
        ("  max_connections: 0\n", "global.max_connections", 3, "between 1 and 1000000, found 0"),
        ("  max_connections: 1000001\n", "global.max_connections", 3, "between 1 and 1000000, found 1000001"),
        ("  max_workers: 0\n", "global.max_workers", 3, "between 1 and 100000, found 0"),
        ("  max_connections_per_ip: -1\n", "global.max_connections_per_ip", 3, "found -1"),
        ("  head_timeout: 0\n", "global.head_timeout", 3, "between 1s and 1h, found 0s"),
        ("  head_timeout: 500ms\n", "global.head_timeout", 3, "between 1s and 1h, found 500ms"),
        ("  keep_alive_timeout: 61m\n", "global.keep_alive_timeout", 3, "between 1s and 1h, found 1h1m"),
        ("  keep_alive_timeout: 5mins\n", "global.keep_alive_timeout", 3, "found \"5mins\""),
        ("  min_body_rate: fast\n", "global.min_body_rate", 3, "fast"),
    ];
    for (extra, field, line, fragment) in cases {
        expect_one(&with_global(extra), field, Some(*line), fragment);
    }
}

#[test]
fn unknown_global_keys_list_the_allowed_ones_and_suggest() {
    let text = with_global("  idle_timout: 5\n  colour: red\n");
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    expect_issue(
        &found[0],
        "global.idle_timout",
        Some(3),
        "unknown key \"idle_timout\" (did you mean \"idle_timeout\"?)",
        &text,
    );
    assert!(
        found[0]
            .message
            .contains("allowed here: domain, email, bearer_token, idle_timeout")
    );
    expect_issue(
        &found[1],
        "global.colour",
        Some(4),
        "unknown key \"colour\"; allowed here: domain,",
        &text,
    );
    assert!(!found[1].message.contains("did you mean"));
}

#[test]
fn bearer_token_is_required() {
    let text = "global:\n  domain: x\nservices:\n  - name: aa\n    path: /\n    image: i\n";
    expect_one(text, "global.bearer_token", Some(1), "missing required key");
    let text = "global: {}\nservices:\n  - name: aa\n    path: /\n    image: i\n";
    expect_one(text, "global.bearer_token", Some(1), "openssl rand -hex 32");
}

#[test]
fn bearer_token_errors_never_print_the_token() {
    #[rustfmt::skip]
    let cases = [
        ("short-secret", "must be at least 32 characters, found 12"),
        ("\"  short-secret  \"", "found 12"),
        ("aaaaaaaaaaaaaaaa", "must be at least 32 characters, found 16"),
        ("secretsecretsecretsecretsecretsecret", "repeats the same 6-character sequence"),
        ("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3tsecret", "uses only 7 different characters"),
        ("\"12345678901234567890123456789012\"", "a run of 10 equal or consecutive characters"),
        ("\"90218374650192837465019283746501\"", "about 106 bits"),
        ("\"secret with spaces in it, secret with spaces\"", "whitespace"),
        ("1234567890123456789", "expected a string, found an integer"),
        ("[secretsecretsecret]", "expected a string, found a list"),
    ];
    for (value, fragment) in cases {
        let text = format!(
            "global:\n  bearer_token: {value}\nservices:\n  - name: aa\n    path: /\n    image: i\n"
        );
        expect_one(&text, "global.bearer_token", Some(2), fragment);
        let msg = &issues(&text)[0].message;
        for secret in [
            "short-secret",
            "secret with",
            "1234567890",
            "secretsecret",
            "9021837",
            "s3cr3t",
        ] {
            assert!(!msg.contains(secret), "{msg:?} leaks the token");
        }
    }
}

#[test]
fn bearer_token_is_trimmed_and_expanded() {
    let text = format!(
        "global:\n  bearer_token: \"  {TOKEN}  \"\nservices:\n  - name: aa\n    path: /\n    image: i\n"
    );
    assert_eq!(ok(&text).global.bearer_token, TOKEN);
    let text =
        "global:\n  bearer_token: ${TOK}\nservices:\n  - name: aa\n    path: /\n    image: i\n";
    let env = |n: &str| (n == "TOK").then(|| format!(" {TOKEN}\n"));
    assert_eq!(ok_env(text, &env).global.bearer_token, TOKEN);
    // An unset variable: how to generate a value, and no advice to add a fallback.
    expect_one(
        text,
        "global.bearer_token",
        Some(2),
        "environment variable TOK is not set; it must hold a random token, \
         e.g. export TOK=$(openssl rand -hex 32)",
    );
    assert!(!issues(text)[0].message.contains("default"));
    // A variable whose value is weak is refused like a literal.
    let env = |n: &str| (n == "TOK").then(|| "changeme".to_string());
    let found = issues_env(text, &env);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains("at least 32 characters"),
        "{found:?}"
    );
    assert!(!found[0].message.contains("changeme"));
}

/// A document whose bearer token is written `value`, with its issues under `env`.
fn token_issues(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<crate::config::ConfigIssue> {
    let text = format!(
        "global:\n  bearer_token: {value}\nservices:\n  - name: aa\n    path: /\n    image: i\n"
    );
    let found = issues_env(&text, env);
    assert_eq!(found.len(), 1, "{found:#?}\n--- text ---\n{text}");
    assert_eq!(found[0].field, "global.bearer_token");
    found
}

#[test]
fn a_bare_dollar_name_is_never_a_literal_token() {
    // Compose's form is not expanded by wakeproxy: set or not, the text is refused (it would
    // otherwise be the token, as written in the file).
    let token_set = |n: &str| (n == "PROXY_BEARER_TOKEN").then(|| TOKEN.to_string());
    for env in [&no_env as &dyn Fn(&str) -> Option<String>, &token_set] {
        let found = token_issues("$PROXY_BEARER_TOKEN", env);
        let msg = &found[0].message;
        assert!(
            msg.contains("\"$PROXY_BEARER_TOKEN\" is not expanded"),
            "{msg}"
        );
        assert!(msg.contains("write ${PROXY_BEARER_TOKEN}"), "{msg}");
    }
    let found = token_issues(&format!("{TOKEN}$SUFFIX_VAR"), &no_env);
    assert!(found[0].message.contains("not expanded"), "{found:?}");
    // Beside a braced reference, the bare one is still the file's, not the environment's.
    let env = |n: &str| (n == "TOK").then(|| TOKEN.to_string());
    let found = token_issues("${TOK}$SUFFIX_VAR", &env);
    assert!(found[0].message.contains("not expanded"), "{found:?}");
    assert!(
        !found[0].message.contains("from the environment"),
        "{found:?}"
    );
    assert!(!found[0].message.contains(TOKEN));
    // `$$` escapes still make a literal "$"; followed by a name it is refused all the same.
    let found = token_issues(&format!("{TOKEN}$$X"), &no_env);
    assert!(found[0].message.contains("not expanded"), "{found:?}");
}

#[test]
fn a_default_for_the_token_is_refused() {
    for value in [
        "${UNSET:-changeme-changeme}",
        &format!("${{UNSET:-{TOKEN}}}"),
        "${UNSET:-}",
    ] {
        let found = token_issues(value, &no_env);
        let msg = &found[0].message;
        assert!(msg.contains("publicly known token"), "{msg}");
        assert!(msg.contains("Write ${UNSET}"), "{msg}");
        assert!(!msg.contains("changeme") && !msg.contains(TOKEN), "{msg}");
    }
    // Refused even when the variable is set: the fallback is in the file.
    let env = |n: &str| (n == "UNSET").then(|| TOKEN.to_string());
    token_issues("${UNSET:-changeme-changeme}", &env);
}

#[test]
fn percent_names_and_literal_braces_are_refused() {
    let found = token_issues("\"%PROXY_BEARER_TOKEN%\"", &no_env);
    assert!(
        found[0]
            .message
            .contains("\"%PROXY_BEARER_TOKEN%\" is not expanded"),
        "{found:?}"
    );
    let found = token_issues(&format!("$${{PROXY_BEARER_TOKEN}}{TOKEN}"), &no_env);
    assert!(found[0].message.contains("not expanded"), "{found:?}");
    // A variable holding an unexpanded reference (an env file that does not expand).
    let env = |n: &str| (n == "TOK").then(|| "$OTHER".to_string());
    let found = token_issues("${TOK}", &env);
    assert!(
        found[0].message.contains("value from the environment"),
        "{found:?}"
    );
}

#[test]
fn expansion_feeds_typed_fields() {
    let text = with_global(
        "  idle_timeout: ${IDLE:-300}\n  auto_certbot: ${CERTBOT:-false}\n  log_level: ${LOG:-warn}\n  listen_http: \"${PORT}\"\n",
    );
    let env = |n: &str| match n {
        "IDLE" => Some("60".to_string()),
        "PORT" => Some(" 8080 ".to_string()),
        _ => None,
    };
    let g = ok_env(&text, &env).global;
    assert_eq!(g.idle_timeout, Duration::from_secs(60));
    assert!(!g.auto_certbot);
    assert_eq!(g.log_level, log::LevelFilter::Warn);
    assert_eq!(g.listen_http, 8080);

    let env = |n: &str| match n {
        "IDLE" => Some("soon".to_string()),
        "CERTBOT" => Some("maybe".to_string()),
        "PORT" => Some("99999".to_string()),
        _ => None,
    };
    let found = issues_env(&text, &env);
    assert_eq!(found.len(), 3, "{found:#?}");
    expect_issue(
        &found[0],
        "global.idle_timeout",
        Some(3),
        "expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m (units d, h, m, s, ms), \
         found \"soon\" (from \"${IDLE:-300}\")",
        &text,
    );
    expect_issue(
        &found[1],
        "global.auto_certbot",
        Some(4),
        "expected true or false, found a string \"maybe\"",
        &text,
    );
    expect_issue(
        &found[2],
        "global.listen_http",
        Some(6),
        "between 0 and 65535, found 99999",
        &text,
    );
}

#[test]
fn expansion_errors_name_variable_field_and_line() {
    let text = with_global("  domain: ${DOMAIN}\n  email: ${MAIL\n  acme_webroot: ${1X}/acme\n");
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    expect_issue(
        &found[0],
        "global.domain",
        Some(3),
        "environment variable DOMAIN is not set",
        &text,
    );
    expect_issue(
        &found[1],
        "global.email",
        Some(4),
        "unterminated \"${\"",
        &text,
    );
    expect_issue(
        &found[2],
        "global.acme_webroot",
        Some(5),
        "invalid reference \"${1X}\"",
        &text,
    );
    // `$$` and lone `$` are literal; expansion applies to values, never to keys.
    let text = with_global("  domain: a$$b\n  acme_webroot: /srv/$dir\n");
    let g = ok(&text).global;
    assert_eq!(g.domain, "a$b");
    assert_eq!(g.acme_webroot, PathBuf::from("/srv/$dir"));
}
