//! Tests for the waiting page's settings: `loading_page_after` (global and per service) and
//! the `loading_page` template.

use std::path::Path;
use std::time::Duration;

use super::support::*;
use crate::config::{ConfigIssue, parse_with};

fn two(global: &str, own: &str) -> String {
    format!(
        "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n{global}services:\n  \
         - name: aa\n    path: /a\n    image: i\n{own}  - name: bb\n    path: /b\n    image: i\n"
    )
}

fn with_template(
    text: &str,
    template: Option<&str>,
) -> Result<crate::config::Config, Vec<ConfigIssue>> {
    let read = |p: &Path| match (p == Path::new("/etc/wp/wait.html"), template) {
        (true, Some(t)) => Ok(t.to_string()),
        _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    parse_with(text, "t.yaml", &no_env, &read, Path::new("/etc/wp")).map_err(|e| e.issues)
}

#[test]
fn one_second_by_default_off_by_zero_or_off_per_service_or_globally() {
    let c = ok(&two("", ""));
    assert_eq!(c.global.loading_page_after, Duration::from_secs(1));
    assert_eq!(c.services[1].loading_page_after, Duration::from_secs(1));
    assert_eq!(c.global.loading_page, None);
    let c = ok(&two(
        "  loading_page_after: 2500ms\n",
        "    loading_page_after: off\n",
    ));
    assert_eq!(c.services[0].loading_page_after, Duration::ZERO);
    assert_eq!(
        c.services[1].loading_page_after,
        Duration::from_millis(2500)
    );
    let c = ok(&two(
        "  loading_page_after: 0\n",
        "    loading_page_after: 3s\n",
    ));
    assert_eq!(c.services[0].loading_page_after, Duration::from_secs(3));
    assert_eq!(c.services[1].loading_page_after, Duration::ZERO);
    expect_one(
        &two("", "    loading_page_after: soon\n"),
        "services[0].loading_page_after",
        Some(7),
        "soon",
    );
}

#[test]
fn a_template_is_read_with_the_config_and_must_move_on() {
    let text = two("  loading_page: wait.html\n", "");
    let good = "<html>{{service}} {{stage}}{{script}}</html>";
    let c = with_template(&text, Some(good)).unwrap();
    assert_eq!(c.global.loading_page.as_deref(), Some(good));
    let missing = with_template(&text, None).unwrap_err();
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert_eq!(missing[0].field, "global.loading_page");
    assert!(
        missing[0].message.contains("/etc/wp/wait.html"),
        "{missing:#?}"
    );
    let stuck = with_template(&text, Some("<html>{{service}}</html>")).unwrap_err();
    assert!(
        stuck[0]
            .message
            .contains("neither {{script}} nor {{refresh}}"),
        "{stuck:#?}"
    );
    let big = format!("{{{{script}}}}{}", "x".repeat(70_000));
    let big = with_template(&text, Some(&big)).unwrap_err();
    assert!(big[0].message.contains("65536"), "{big:#?}");
}
