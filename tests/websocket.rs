//! WebSockets and other long-lived connections through the real binary: a real client library
//! (Python `websockets`), many concurrent sockets, server-sent events, half-close, idle rules.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

fn proxy_for(b: &Backend, extra: &str) -> TestProxy {
    TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n{extra}",
        b.addr
    )))
}

#[test]
fn websocket_echo_from_1_byte_to_16_mib_with_ping_and_close() {
    let b = Backend::start("b");
    let p = proxy_for(&b, "");
    let url = format!("ws://{}/app/ws", p.addr);
    let (ok, v, err) = ws_run(&["echo", &url, TOKEN], &[]);
    assert!(ok, "{v}\n{err}\nproxy log:\n{}", p.proc.log());
    assert_eq!(v["sizes"].as_array().unwrap().last().unwrap(), 16 << 20);
}

#[test]
fn an_upgrade_without_token_is_refused_and_never_reaches_the_backend() {
    let b = Backend::start("b");
    let p = proxy_for(&b, "");
    let url = format!("ws://{}/app/ws", p.addr);
    let (ok, v, err) = ws_run(&["unauthorised", &url], &[]);
    assert!(ok, "{v}\n{err}");
    let status = get(p.addr, "/proxy/status").json()["services"].clone();
    assert_eq!(
        status[0]["requests"], 0,
        "the backend was reached: {status}"
    );
}

#[test]
fn a_101_nobody_asked_for_closes_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\nsmuggled");
        }
    });
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {addr}\n"
    )));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut all = Vec::new();
    (&s).read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(!text.contains("smuggled"));
}

#[test]
fn server_sent_events_arrive_within_50_ms() {
    let b = Backend::start("b");
    let p = proxy_for(&b, "");
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("GET /app/sse?events=10&interval_ms=150 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut delays = Vec::new();
    let mut line = String::new();
    while r.read_line(&mut line).unwrap() > 0 {
        if let Some(t) = line
            .trim()
            .strip_prefix("data: event ")
            .and_then(|rest| rest.split(" t=").nth(1))
        {
            let sent: u128 = t.parse().unwrap();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis();
            delays.push(now.saturating_sub(sent));
        }
        line.clear();
    }
    assert_eq!(delays.len(), 10, "all events arrived");
    assert!(
        delays.iter().all(|d| *d <= 50),
        "event delays in ms: {delays:?}"
    );
}

#[test]
fn a_client_half_close_still_gets_the_full_answer() {
    let b = Backend::start("b");
    let p = proxy_for(&b, "");
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("POST /app/echo HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 4\r\n\r\nbody").as_bytes(),
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = BufReader::new(s);
    let res = read_response(&mut r, false);
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["body"], "body");
    let s2 = TcpStream::connect(p.addr).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s2).write_all(
        format!("GET /app/stream?chunks=3&interval_ms=200 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s2.shutdown(Shutdown::Write).unwrap();
    let res = read_response(&mut BufReader::new(s2), false);
    assert_eq!(
        res.text().matches("chunk ").count(),
        3,
        "the whole stream arrived after the client's FIN"
    );
}

#[test]
fn idle_tunnels_are_closed_after_tunnel_idle_timeout() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config_with(
        "  tunnel_idle_timeout: 1\n",
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    ));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("GET /app/ws HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut all = Vec::new();
    (&s).read_to_end(&mut all).unwrap(); // ends when the proxy closes the idle tunnel
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{text}"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(30),
        "closed after {took:?}"
    );
}

#[test]
fn status_counts_open_tunnels() {
    let b = Backend::start("b");
    let p = proxy_for(&b, "");
    let s = TcpStream::connect(p.addr).unwrap();
    (&s).write_all(
        format!("GET /app/ws HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    wait_for(
        "the tunnel to show in status",
        Duration::from_secs(10),
        || {
            let st = get(p.addr, "/proxy/status").json()["services"].clone();
            (st[0]["open_tunnels"] == 1 && st[0]["in_flight"] == 1).then_some(())
        },
    );
    drop(s);
    wait_for("the tunnel to close", Duration::from_secs(10), || {
        (get(p.addr, "/proxy/status").json()["services"][0]["open_tunnels"] == 0).then_some(())
    });
}

#[test]
fn a_thousand_concurrent_websockets_for_a_minute() {
    let b = Backend::start("b");
    // A thousand connections opened at once from one address (127.0.0.1): more than the
    // per-address cap lets in before their requests have shown the token.
    let p = TestProxy::start(&config_with(
        "  max_connections_per_ip: 1000\n",
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    ));
    let url = format!("ws://{}/app/ws", p.addr);
    let seconds = std::env::var("WS_SOAK_SECONDS").unwrap_or_else(|_| "60".into());
    let pid = p.proc.pid();
    let sampler = std::thread::spawn(move || {
        let mut max = 0u64;
        let end = Instant::now() + Duration::from_secs(600);
        while Instant::now() < end {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            else {
                break;
            };
            max = max.max(kb);
            std::thread::sleep(Duration::from_millis(500));
        }
        max
    });
    let (ok, v, err) = ws_run(&["many", &url, TOKEN, "1000", &seconds, "5"], &[]);
    let rss_now = p.proc.rss_kib();
    assert!(
        ok,
        "{v}\n{err}\nproxy log tail:\n{}",
        p.proc
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(v["messages"].as_u64().unwrap() >= 1000, "{v}");
    drop(p);
    let max_rss = sampler.join().unwrap();
    eprintln!(
        "1000 WebSockets for {seconds} s: {} messages echoed, proxy max RSS {max_rss} KiB (after: {rss_now} KiB)",
        v["messages"]
    );
}
