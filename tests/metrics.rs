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
    // Every request on one keep-alive connection: each is counted before the next is read,
    // so the scrape sees them all (separate connections would race their own bookkeeping).
    let s = std::net::TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut conn = std::io::BufReader::new(s);
    let mut send = |path: &str, token: bool| {
        let auth = match token {
            true => format!("Authorization: Bearer {TOKEN}\r\n"),
            false => String::new(),
        };
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n");
        std::io::Write::write_all(conn.get_mut(), raw.as_bytes()).unwrap();
        read_response(&mut conn, false)
    };
    assert_eq!(
        send("/proxy/metrics", false).status,
        401,
        "metrics need the token"
    );
    for _ in 0..3 {
        assert_eq!(send("/web/x", true).status, 200);
    }
    assert_eq!(send("/web/status/503", true).status, 503);
    assert_eq!(send("/nowhere", true).status, 404);
    let r = send("/proxy/metrics", true);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
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
