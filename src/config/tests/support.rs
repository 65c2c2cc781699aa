//! Shared helpers for the config tests: documents to vary, and assertions on issues.

use crate::config::{Config, ConfigIssue, parse};

/// A valid 32-character token.
pub(super) const TOKEN: &str = "7b160a90a2bba89b2100d1f018f8eaa4";

/// An environment with nothing set.
pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

/// A valid document whose `global:` gets `extra` (indented lines) from line 3 on.
pub(super) fn with_global(extra: &str) -> String {
    format!(
        "global:\n  bearer_token: {TOKEN}\n{extra}services:\n  - name: app\n    path: /\n    image: app:latest\n"
    )
}

/// A valid `global:` (lines 1-2), then `services:` on line 3 and `body` from line 4 on.
pub(super) fn with_services(body: &str) -> String {
    format!("global:\n  bearer_token: {TOKEN}\nservices:\n{body}")
}

/// Parses text that must be valid.
pub(super) fn ok(text: &str) -> Config {
    ok_env(text, &no_env)
}

pub(super) fn ok_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
    match parse(text, "test.yaml", env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- text ---\n{text}"),
    }
}

/// Parses text that must be invalid; returns its issues.
pub(super) fn issues(text: &str) -> Vec<ConfigIssue> {
    issues_env(text, &no_env)
}

pub(super) fn issues_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigIssue> {
    match parse(text, "test.yaml", env) {
        Ok(c) => panic!("expected errors, got a valid config {c:?}\n--- text ---\n{text}"),
        Err(e) => {
            assert_eq!(e.source, "test.yaml");
            assert!(!e.issues.is_empty());
            e.issues
        }
    }
}

/// Asserts `text` has exactly one issue, on `field` at `line`, whose message holds `fragment`.
pub(super) fn expect_one(text: &str, field: &str, line: Option<usize>, fragment: &str) {
    let found = issues(text);
    assert_eq!(
        found.len(),
        1,
        "expected one issue, got {found:#?}\n--- text ---\n{text}"
    );
    expect_issue(&found[0], field, line, fragment, text);
}

pub(super) fn expect_issue(
    issue: &ConfigIssue,
    field: &str,
    line: Option<usize>,
    fragment: &str,
    text: &str,
) {
    assert_eq!(
        issue.field, field,
        "field of {issue:?}\n--- text ---\n{text}"
    );
    assert_eq!(issue.line, line, "line of {issue:?}\n--- text ---\n{text}");
    assert!(
        issue.message.contains(fragment),
        "message {:?} lacks {fragment:?}\n--- text ---\n{text}",
        issue.message
    );
}
