//! End-to-end tests of the foundation: the real binary in front of real backends on 127.0.0.1.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

fn services_for(b: &Backend) -> String {
    format!(
        "  - name: app\n    path: /app\n    upstream: {a}\n  - name: api\n    path: /api/v1\n    upstream: {a}\n    strip_prefix: false\n  - name: root\n    path: /\n    upstream: {a}\n",
        a = b.addr
    )
}

#[test]
fn routing_table() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&services_for(&b)));
    // (request path, expected service, expected upstream target, expected prefix header)
    let cases = [
        ("/app", "app", "/", Some("/app")),
        ("/app/", "app", "/", Some("/app")),
        ("/app/x/y?q=1", "app", "/x/y?q=1", Some("/app")),
        (
            "/app/a%2Fb%3F?x=%20&y",
            "app",
            "/a%2Fb%3F?x=%20&y",
            Some("/app"),
        ),
        ("/apps", "root", "/apps", None),
        ("/api/v1/users", "api", "/api/v1/users", None),
        ("/api/v2", "root", "/api/v2", None),
        ("/", "root", "/", None),
    ];
    for (path, service, target, prefix) in cases {
        let r = get(p.addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["target"], target, "{path} forwarded as {}", v["target"]);
        let prefix_seen = echoed_header(&v, "x-forwarded-prefix");
        assert_eq!(prefix_seen.first().map(String::as_str), prefix, "{path}");
        let svc = service_status(p.addr, service);
        assert!(
            svc["requests"].as_u64().unwrap() >= 1,
            "{path} should have gone to {service}"
        );
    }
}

#[test]
fn no_route_is_404_and_proxy_namespace_is_reserved() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n",
        b.addr
    )));
    let r = get(p.addr, "/apps");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not found");
    assert!(r.json()["detail"].as_str().unwrap().contains("/apps"));
    assert_eq!(get(p.addr, "/proxy/nothing").status, 404);
    let h = raw_request(
        p.addr,
        "GET /proxy/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((h.status, h.text().as_str()), (200, "ok\n"));
}

#[test]
fn auth_is_required_and_the_token_never_leaks() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: plain\n    path: /plain\n    upstream: {a}\n  - name: tok\n    path: /tok\n    upstream: {a}\n    auth_token: backend-secret-b5429e5a10cd107b563c2d5b\n",
        a = b.addr
    )));
    let none = raw_request(
        p.addr,
        "GET /plain/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(none.json()["error"], "unauthorized");
    let wrong = raw_request(
        p.addr,
        "GET /plain/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(wrong.status, 401);
    // 401 also guards unknown paths and the status endpoint: nothing is revealed without a token.
    let status = raw_request(
        p.addr,
        "GET /proxy/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status.status, 401);
    let lower = raw_request(
        p.addr,
        &format!(
            "GET /plain/x HTTP/1.1\r\nHost: x\r\nauthorization: bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(lower.status, 200);
    let seen = lower.text();
    assert!(
        !seen.contains(TOKEN),
        "the proxy token reached the backend: {seen}"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "{seen}"
    );
    let swapped = get(p.addr, "/tok/x").text();
    assert!(!swapped.contains(TOKEN), "{swapped}");
    assert!(
        swapped.contains("Bearer backend-secret-b5429e5a10cd107b563c2d5b"),
        "{swapped}"
    );
    assert!(
        !p.proc.log().contains(TOKEN),
        "the token appeared in the log"
    );
}

#[test]
fn forwarded_headers_and_repeated_headers() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let r = raw_request(
        p.addr,
        &format!(
            "GET /x HTTP/1.1\r\nHost: public.example\r\nAuthorization: Bearer {TOKEN}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Multi: 1\r\nX-Multi: 2\r\nConnection: close, X-Hop\r\nX-Hop: gone\r\n\r\n"
        ),
    );
    let v = r.json();
    let get_all = |n: &str| echoed_header(&v, n);
    assert_eq!(
        get_all("x-forwarded-for"),
        ["127.0.0.1"],
        "an untrusted client's XFF is replaced"
    );
    assert_eq!(get_all("x-forwarded-proto"), ["http"]);
    assert_eq!(get_all("x-forwarded-host"), ["public.example"]);
    assert_eq!(get_all("host"), ["public.example"]);
    assert_eq!(get_all("x-multi"), ["1", "2"]);
    assert!(get_all("x-hop").is_empty() && get_all("connection").is_empty());

    let c = get(p.addr, "/cookies");
    assert_eq!(
        c.headers_named("set-cookie"),
        ["a=1", "b=2; Path=/", "c=3; HttpOnly"],
        "the backend's Set-Cookie for the proxy's session cookie is dropped"
    );
    p.proc.wait_line(
        "dropped its Set-Cookie for wakeproxy_session",
        Duration::from_secs(5),
    );
    assert_eq!(get(p.addr, "/cookies").headers_named("set-cookie").len(), 3);
    assert_eq!(
        p.proc.log().matches("dropped its Set-Cookie").count(),
        1,
        "logged once per service (the line is written before the answer)"
    );
    let g = get(p.addr, "/gzip");
    assert_eq!(g.header("content-encoding"), Some("gzip"));
    assert_eq!(
        &g.body[..2],
        &[0x1f, 0x8b],
        "the gzip body passes untouched"
    );
}

#[test]
fn trusted_proxies_extend_forwarded_for() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config_with(
        "  trusted_proxies: [127.0.0.1]\n",
        &format!("  - name: app\n    path: /\n    upstream: {}\n", b.addr),
    ));
    let r = raw_request(
        p.addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(r.text().contains("6.6.6.6, 127.0.0.1"), "{}", r.text());
}

#[test]
fn head_204_304_and_expect_continue() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    // Several requests on one keep-alive connection: bodyless answers must not desynchronise it.
    (&s).write_all(format!("HEAD /status/200 HTTP/1.1\r\nHost: h\r\n{auth}\r\n").as_bytes())
        .unwrap();
    let h = read_response(&mut r, true);
    assert_eq!(h.status, 200);
    assert!(
        h.header("content-length").is_some(),
        "HEAD keeps the length: {}",
        h.head
    );
    (&s).write_all(format!("GET /status/204 HTTP/1.1\r\nHost: h\r\n{auth}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut r, false).status, 204);
    (&s).write_all(format!("GET /status/304 HTTP/1.1\r\nHost: h\r\n{auth}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut r, false).status, 304);
    // Expect: 100-continue: the proxy says 100 only after auth, then the body flows.
    (&s).write_all(
        format!("POST /echo HTTP/1.1\r\nHost: h\r\n{auth}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut interim = [0u8; 25];
    r.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    (&s).write_all(b"hello").unwrap();
    let e = read_response(&mut r, false);
    assert_eq!(e.json()["body"], "hello");
    // Without the token the body is never asked for.
    let denied = raw_request(
        p.addr,
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(denied.status, 401);
}

#[test]
fn keep_alive_reuses_upstream_connections() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut peers = Vec::new();
    for _ in 0..5 {
        (&s).write_all(
            format!("GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let res = read_response(&mut r, false);
        assert_eq!(res.status, 200);
        peers.push(res.json()["peer"].as_str().unwrap().to_string());
    }
    assert!(
        peers.windows(2).all(|w| w[0] == w[1]),
        "upstream connection not reused: {peers:?}"
    );
}

/// An upstream that answers the first request on each connection and closes the connection
/// on reading the second, as a server whose keep-alive timeout fires just as a request comes.
fn one_answer_per_connection_upstream() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                for answered in [true, false] {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let line = line.trim_end().to_string();
                    log.lock().unwrap().push(line.clone());
                    if answered {
                        let res = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{line}",
                            line.len()
                        );
                        (&s).write_all(res.as_bytes()).unwrap();
                    }
                }
                // Dropped without answering the second request.
            });
        }
    });
    (addr, seen)
}

#[test]
fn a_stale_pooled_connection_is_retried_only_for_requests_safe_to_repeat() {
    let (up, seen) = one_answer_per_connection_upstream();
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {up}\n"
    )));
    // One client connection for all: the proxy parks the upstream connection before it reads
    // the client's next request (on separate client connections the next request could race
    // the parking and find the pool empty).
    let client = TcpStream::connect(p.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut client = BufReader::new(client);
    let mut send = |method: &str, path: &str, extra: &str| {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n"
        );
        client.get_mut().write_all(raw.as_bytes()).unwrap();
        read_response(&mut client, false)
    };
    assert_eq!(send("GET", "/a", "").status, 200);
    // The pooled connection closes on the POST: it may have been acted on, so no second try.
    let r = send("POST", "/b", "");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("without answering"), "{}", r.text());
    assert_eq!(send("GET", "/c", "").status, 200);
    // A GET is safe to repeat: it goes again on a fresh connection and the client never knows.
    let r = send("GET", "/d", "");
    assert_eq!((r.status, r.text()), (200, "GET /d HTTP/1.1".to_string()));
    // So is a POST that carries an Idempotency-Key.
    let r = send("POST", "/e", "Idempotency-Key: k1\r\n");
    assert_eq!((r.status, r.text()), (200, "POST /e HTTP/1.1".to_string()));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "GET /a HTTP/1.1",
            "POST /b HTTP/1.1",
            "GET /c HTTP/1.1",
            "GET /d HTTP/1.1",
            "GET /d HTTP/1.1",
            "POST /e HTTP/1.1",
            "POST /e HTTP/1.1",
        ]
    );
}

#[test]
fn upstream_failures_map_to_502_and_504() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let resetter = TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_addr = resetter.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in resetter.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            drop(s); // close without answering
        }
    });
    let p = TestProxy::start(&config(&format!(
        "  - name: closed\n    path: /closed\n    upstream: {closed_addr}\n  - name: silent\n    path: /silent\n    upstream: {silent_addr}\n    response_timeout: 1\n  - name: reset\n    path: /reset\n    upstream: {reset_addr}\n"
    )));
    let r = get(p.addr, "/closed/x");
    assert_eq!(r.status, 502);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains(&closed_addr.to_string()),
        "{}",
        r.text()
    );
    let t0 = Instant::now();
    let r = get(p.addr, "/silent/x");
    assert_eq!(r.status, 504, "{}", r.text());
    // The service's 1 s response_timeout, not the default 300 s.
    assert!(t0.elapsed() < Duration::from_secs(25));
    let r = get(p.addr, "/reset/x");
    assert_eq!(r.status, 502, "{}", r.text());
    drop(silent);
}

#[test]
fn malformed_requests_get_400_and_close() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    for bad in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        "GARBAGE\r\n\r\n",
    ] {
        let s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&s).write_all(bad.as_bytes()).unwrap();
        let mut all = Vec::new();
        (&s).read_to_end(&mut all).unwrap(); // returns only if the proxy closes
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 400 "), "{bad:?} -> {text}");
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(70_000)
    );
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = (&s).write_all(huge.as_bytes());
    let mut head = [0u8; 12];
    (&s).read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 431");
    assert_eq!(
        get(p.addr, "/still-alive").status,
        200,
        "the proxy survives bad input"
    );
}

#[test]
fn slow_chunked_response_arrives_piece_by_piece() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("GET /stream?chunks=4&interval_ms=400 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut arrivals = Vec::new();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = (&s).read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all);
        let seen = text.matches("chunk ").count();
        if arrivals.len() < seen {
            arrivals.push(t0.elapsed());
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("Transfer-Encoding: chunked"), "{text}");
    assert_eq!(arrivals.len(), 4, "{text}");
    assert!(
        arrivals[0] < Duration::from_millis(350),
        "first chunk held back: {arrivals:?}"
    );
    assert!(arrivals[3] >= Duration::from_millis(1100), "{arrivals:?}");
    assert!(text.ends_with("0\r\n\r\n"));
}

/// Deterministic pseudo-random bytes (xorshift), so the test knows the digest independently.
struct Gen(u64);
impl Gen {
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            c.copy_from_slice(&self.0.to_le_bytes()[..c.len()]);
        }
    }
}

#[test]
fn one_gib_upload_streams_with_flat_memory() {
    use ring::digest::{Context, SHA256};
    const SIZE: u64 = 1 << 30;
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let pid = p.proc.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut max = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kb) = s
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                {
                    max = max.max(kb);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        })
    };
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    (&s).write_all(
        format!("POST /sink HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut noise = Gen(0x9E37_79B9_7F4A_7C15);
    let mut hasher = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < SIZE {
        noise.fill(&mut buf);
        (&s).write_all(&buf).unwrap();
        hasher.update(&buf);
        sent += buf.len() as u64;
    }
    let mut r = BufReader::new(s);
    let res = read_response(&mut r, false);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_rss_kib = sampler.join().unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let want: String = hasher
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["bytes"].as_u64(), Some(SIZE));
    assert_eq!(v["sha256"].as_str(), Some(want.as_str()));
    eprintln!("proxy max RSS during 1 GiB upload: {max_rss_kib} KiB");
    assert!(
        max_rss_kib > 0 && max_rss_kib < 64 * 1024,
        "proxy RSS reached {max_rss_kib} KiB"
    );
}

#[test]
fn chunked_upload_and_http10_client() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        b.addr
    )));
    let r = raw_request(
        p.addr,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ),
    );
    assert_eq!(r.json()["body"], "hello world");
    let r = raw_request(
        p.addr,
        &format!(
            "GET /stream?chunks=2&interval_ms=10 HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding").is_none(),
        "HTTP/1.0 clients get a close-delimited body"
    );
    assert_eq!(r.text().matches("chunk ").count(), 2);
}

#[test]
fn bodies_over_max_body_size_get_413() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n    max_body_size: 1k\n",
        b.addr
    )));
    let big = "x".repeat(2000);
    let r = raw_request(
        p.addr,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 2000\r\n\r\n{big}"
        ),
    );
    assert_eq!(r.status, 413);
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{big}\r\n0\r\n\r\n"
    );
    assert_eq!(raw_request(p.addr, &chunked).status, 413);
    let ok = raw_request(
        p.addr,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsmall"
        ),
    );
    assert_eq!(ok.json()["body"], "small");
}
