//! `/proxy/metrics` scraped by a real Prometheus text parser (the `prometheus_client` package).

mod support;

use support::*;

#[test]
fn metrics_parse_and_count_requests() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: web\n    path: /web\n    upstream: {}\n",
        b.addr
    )));
    let unauth = raw_request(
        p.addr,
        "GET /proxy/metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(unauth.status, 401, "metrics need the token");
    for _ in 0..3 {
        assert_eq!(get(p.addr, "/web/x").status, 200);
    }
    assert_eq!(get(p.addr, "/web/status/503").status, 503);
    assert_eq!(get(p.addr, "/nowhere").status, 404);
    let r = get(p.addr, "/proxy/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let s = prom_parse(&r.text());
    assert_eq!(
        sample(
            &s,
            "wakeproxy_requests_total",
            &[("service", "web"), ("class", "2xx")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &s,
            "wakeproxy_requests_total",
            &[("service", "web"), ("class", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "wakeproxy_requests_total",
            &[("service", "-"), ("class", "4xx")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            "wakeproxy_request_duration_seconds_count",
            &[("service", "web")]
        ),
        4.0
    );
    assert_eq!(
        sample(
            &s,
            "wakeproxy_request_duration_seconds_bucket",
            &[("service", "web"), ("le", "+Inf")]
        ),
        4.0
    );
    assert!(sample(&s, "wakeproxy_sent_bytes_total", &[("service", "web")]) > 0.0);
    assert_eq!(
        sample(&s, "wakeproxy_open_connections", &[]),
        1.0,
        "the scrape's own connection"
    );
    assert_eq!(sample(&s, "wakeproxy_containers_running", &[]), 0.0);
    assert_eq!(
        sample(&s, "wakeproxy_open_tunnels", &[("service", "web")]),
        0.0
    );
}
