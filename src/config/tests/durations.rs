//! Tests for durations and sizes as the config reads them: every timeout takes `300`, `300s`,
//! `5m`, `1h30m` (the limits' deadlines also `ms`), every size `512m`, `1.5g`, `64KB`.

use std::time::Duration;

use super::support::*;

const SEC: u64 = 1;
const MIN: u64 = 60;
const HOUR: u64 = 3600;

#[test]
fn every_global_timeout_takes_units() {
    let c = ok(&with_global(
        "  idle_timeout: 5m
  tunnel_idle_timeout: 1h30m
  session_lifetime: 7d
  shutdown_timeout: \"45\"
  worker_queue_timeout: 1500ms
  first_byte_timeout: 2s
  head_timeout: 1s250ms
  keep_alive_timeout: 2m
  keep_alive_timeout_busy: ${BUSY:-4s}
",
    ));
    let g = &c.global;
    let secs = Duration::from_secs;
    assert_eq!(g.idle_timeout, secs(5 * MIN));
    assert_eq!(g.tunnel_idle_timeout, secs(HOUR + 30 * MIN));
    assert_eq!(g.session_lifetime, secs(7 * 24 * HOUR));
    assert_eq!(
        g.shutdown_timeout,
        secs(45 * SEC),
        "a quoted number is seconds"
    );
    let l = &g.limits;
    assert_eq!(l.worker_queue_timeout, Duration::from_millis(1500));
    assert_eq!(l.first_byte_timeout, secs(2));
    assert_eq!(l.head_timeout, Duration::from_millis(1250));
    assert_eq!(l.keep_alive_timeout, secs(2 * MIN));
    assert_eq!(l.keep_alive_timeout_busy, secs(4));
    assert_eq!(
        c.services[0].idle_timeout,
        secs(5 * MIN),
        "the service inherits it"
    );
}

#[test]
fn every_service_timeout_takes_units() {
    let c = ok(&with_services(
        "  - name: app
    path: /
    image: app:latest
    idle_timeout: 1h
    start_timeout: 90s
    response_timeout: 10m
    max_tunnel_lifetime: 12h
  - name: plain
    path: /plain
    image: app:latest
    idle_timeout: 300
    start_timeout: ${START:-2m}
",
    ));
    let secs = Duration::from_secs;
    let s = &c.services[0];
    assert_eq!(s.idle_timeout, secs(HOUR));
    assert_eq!(s.start_timeout, secs(90));
    assert_eq!(s.response_timeout, secs(10 * MIN));
    assert_eq!(s.max_tunnel_lifetime, Some(secs(12 * HOUR)));
    let s = &c.services[1];
    assert_eq!(s.idle_timeout, secs(300), "a bare number is seconds");
    assert_eq!(s.start_timeout, secs(2 * MIN));
}

#[test]
fn the_users_case_idle_timeout_5m_says_the_unit_when_wrong() {
    // The report of issue 16: `idle_timeout: 5m` was refused with "expected an integer".
    let c = ok(&with_global("  idle_timeout: 5m\n"));
    assert_eq!(c.global.idle_timeout, Duration::from_secs(300));
    expect_one(
        &with_global("  idle_timeout: 5 minutes\n"),
        "global.idle_timeout",
        Some(3),
        "expected seconds (300) or a duration like 90s, 5m, 1h or 1h30m",
    );
}

#[test]
fn service_duration_errors_keep_the_ranges() {
    let svc = |extra: &str| {
        with_services(&format!(
            "  - name: app\n    path: /\n    image: app:latest\n{extra}"
        ))
    };
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("    start_timeout: 0\n", "services[0].start_timeout", "must be between 1s and 3650d, found 0s"),
        ("    start_timeout: 1500ms\n", "services[0].start_timeout", "is counted in whole seconds, found 1s500ms"),
        ("    response_timeout: soon\n", "services[0].response_timeout", "found \"soon\""),
        ("    max_tunnel_lifetime: 0s\n", "services[0].max_tunnel_lifetime", "between 1s and 3650d"),
        ("    idle_timeout: 1h1h\n", "services[0].idle_timeout", "a duration like 90s, 5m"),
        ("    idle_timeout: true\n", "services[0].idle_timeout", "found a boolean true"),
    ];
    for (extra, field, fragment) in cases {
        expect_one(&svc(extra), field, Some(7), fragment);
    }
}

#[test]
fn sizes_take_composes_forms_everywhere() {
    let c = ok(&with_services(
        "  - name: app
    path: /
    image: app:latest
    mem_limit: 1.5G
    shm_size: 64MB
    max_body_size: 10kb
  - name: up
    path: /up
    upstream: 127.0.0.1:9000
    max_body_size: 1048576
",
    ));
    let spec = c.services[0].container().unwrap();
    assert_eq!(spec.mem_limit, Some(3 << 29));
    assert_eq!(spec.run.shm_size, Some(64 << 20));
    assert_eq!(c.services[0].max_body_size, Some(10 << 10));
    assert_eq!(c.services[1].max_body_size, Some(1 << 20));
}

#[test]
fn size_errors_name_the_forms() {
    let svc = |extra: &str| {
        with_services(&format!(
            "  - name: app\n    path: /\n    image: app:latest\n{extra}"
        ))
    };
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("    shm_size: 0\n", "services[0].shm_size", "must be more than 0"),
        ("    shm_size: 1gib\n", "services[0].shm_size", "expected a size like 512m, 1.5g or 64kb"),
        ("    shm_size: [1]\n", "services[0].shm_size", "expected a size like 512m or a number of bytes, found a list"),
        ("    max_body_size: -1\n", "services[0].max_body_size", "expected a whole number of bytes"),
        ("    max_body_size: 10 MB\n", "services[0].max_body_size", "found \"10 MB\""),
        ("    mem_limit: 5.9m\n", "services[0].mem_limit", "at least 6m"),
    ];
    for (extra, field, fragment) in cases {
        expect_one(&svc(extra), field, Some(7), fragment);
    }
}
