//! Tests for `parse_probe`: the listener and drain settings, read without the rest.

use std::time::Duration;

use super::support::*;
use crate::config::{Probe, parse_probe};

fn probe(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Probe, Vec<String>> {
    parse_probe(text, "test.yaml", env).map_err(|e| {
        assert_eq!(e.source, "test.yaml");
        e.issues.iter().map(|i| i.to_string()).collect()
    })
}

#[test]
fn reads_the_listener_without_the_token_or_the_services() {
    // The token's variable is unset and a service is broken: a full parse fails on both.
    let text = "global:\n  bearer_token: ${PROXY_BEARER_TOKEN}\n  listen_address: 127.0.0.1\n  \
                listen_http: 8080\n  shutdown_timeout: 5\n  colour: red\nservices:\n  - name: -x\n";
    assert!(crate::config::parse(text, "test.yaml", &no_env).is_err());
    let p = probe(text, &no_env).unwrap();
    assert_eq!(p.listen_address.to_string(), "127.0.0.1");
    assert_eq!(p.listen_http, 8080);
    assert_eq!(p.shutdown_timeout, Duration::from_secs(5));
}

#[test]
fn defaults_and_expansion_are_those_of_the_full_parse() {
    let full = ok(&with_global("  listen_http: ${PORT:-8081}\n"));
    let p = probe(&with_global("  listen_http: ${PORT:-8081}\n"), &no_env).unwrap();
    assert_eq!(p, Probe::from(&full.global));
    assert_eq!(p.listen_http, 8081);
    let p = probe("global: {}\n", &no_env).unwrap();
    assert_eq!(p.listen_address.to_string(), "0.0.0.0");
    assert_eq!(
        (p.listen_http, p.shutdown_timeout),
        (80, Duration::from_secs(30))
    );
}

#[test]
fn problems_with_what_it_reads_are_reported() {
    let errs = probe("global:\n  listen_http: 70000\n", &no_env).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("global.listen_http: must be between 0 and 65535"),
        "{errs:?}"
    );
    let errs = probe("global:\n  listen_address: ${ADDR}\n", &no_env).unwrap_err();
    assert!(
        errs[0].contains("environment variable ADDR is not set"),
        "{errs:?}"
    );
    let errs = probe("global: [1]\n", &no_env).unwrap_err();
    assert!(errs[0].contains("expected a mapping"), "{errs:?}");
    let errs = probe("- just a list\n", &no_env).unwrap_err();
    assert!(
        errs[0].contains("expected a mapping with global"),
        "{errs:?}"
    );
    assert!(probe("global: [\n", &no_env).unwrap_err()[0].contains("invalid YAML"));
}
