//! Hardening: malformed and ambiguous requests (request smuggling classics among them) are
//! refused before anything reaches a backend; slow clients cannot starve others; backend
//! faults become clean 502/504s or visibly truncated streams.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// A backend that records how many bytes it ever received and answers 200 to anything.
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<AtomicUsize>,
}

impl Recorder {
    fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let bytes = Arc::new(AtomicUsize::new(0));
        let b = bytes.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                b.fetch_add(n, Ordering::SeqCst);
                                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                                    let _ = s.write_all(
                                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                    );
                                }
                            }
                        }
                    }
                });
            }
        });
        Recorder { addr, bytes }
    }
    fn seen(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

/// Sends raw bytes, returns the status of the answer (0 if none).
fn status_of(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = (&s).write_all(raw);
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match (&s).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                if all.windows(4).any(|w| w == b"\r\n\r\n") && all.len() > 12 {
                    // Read the rest briefly: the proxy closes after refusing.
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&all).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

fn auth() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

#[test]
fn malformed_and_ambiguous_requests_never_reach_the_backend() {
    let rec = Recorder::start();
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        rec.addr
    )));
    let a = auth();
    let long_target = format!("/{}", "a".repeat(70_000));
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "b".repeat(70_000));
    #[rustfmt::skip]
    let cases: Vec<(&str, String, u16)> = vec![
        ("CL.TE classic", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"), 400),
        ("TE.CL classic", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"), 400),
        ("TE.TE obfuscated second TE", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n\r\n0\r\n\r\n"), 400),
        ("TE.TE xchunked", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE chunked twice in one header", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE gzip", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: gzip\r\n\r\n"), 400),
        ("TE chunked then gzip", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked, gzip\r\n\r\n"), 400),
        ("TE gzip then chunked", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE with space before colon", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE folded (obs-fold)", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE in HTTP/1.0", format!("POST / HTTP/1.0\r\n{a}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE and CL reversed", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400),
        ("two different Content-Lengths", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 400),
        ("comma-joined different lengths", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 5, 6\r\n\r\nhello!"), 400),
        ("Content-Length with plus sign", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: +5\r\n\r\nhello"), 400),
        ("negative Content-Length", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: -1\r\n\r\n"), 400),
        ("hex Content-Length", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 0x5\r\n\r\nhello"), 400),
        ("exponent Content-Length", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 1e3\r\n\r\n"), 400),
        ("empty Content-Length", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: \r\n\r\n"), 400),
        ("overflowing Content-Length", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 99999999999999999999999\r\n\r\n"), 400),
        ("Content-Length with space inside", format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Content-Length: 1 0\r\n\r\n"), 400),
        ("missing Host on HTTP/1.1", format!("GET / HTTP/1.1\r\n{a}\r\n"), 400),
        ("repeated Host", format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n{a}\r\n"), 400),
        ("space before colon", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X-A : 1\r\n\r\n"), 400),
        ("obs-fold continuation", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X-A: 1\r\n  2\r\n\r\n"), 400),
        ("bare CR in a value", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X-A: 1\rX-B: 2\r\n\r\n"), 400),
        ("NUL in a value", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X-A: 1\u{0}2\r\n\r\n"), 400),
        ("NUL in a name", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X\u{0}A: 1\r\n\r\n"), 400),
        ("control byte in a name", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X\u{1}A: 1\r\n\r\n"), 400),
        ("space inside a name", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X A: 1\r\n\r\n"), 400),
        ("empty header name", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}: 1\r\n\r\n"), 400),
        ("header line without colon", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}X-A\r\n\r\n"), 400),
        ("invalid method character", format!("G(T / HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("tab between method and target", format!("GET\t/ HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("extra token after version", format!("GET / HTTP/1.1 x\r\nHost: h\r\n{a}\r\n"), 400),
        ("HTTP/2.0 version", format!("GET / HTTP/2.0\r\nHost: h\r\n{a}\r\n"), 400),
        ("HTTP/1.2 version", format!("GET / HTTP/1.2\r\nHost: h\r\n{a}\r\n"), 400),
        ("lowercase version", format!("GET / http/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("asterisk target on GET", format!("GET * HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("non-http absolute target", format!("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("userinfo in absolute target", format!("GET http://u:p@h/x HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("relative target", format!("GET x/y HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("fragment in target", format!("GET /a#b HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("dot-dot segment", format!("GET /app/../secret HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("encoded dot-dot", format!("GET /app/%2e%2e/secret HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("mixed-case encoded dot-dot", format!("GET /app/%2E./secret HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("dot-dot behind encoded slash", format!("GET /app%2f..%2fsecret HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("single dot segment", format!("GET /app/./x HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("encoded backslash", format!("GET /app/%5c..%5csecret HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("encoded NUL", format!("GET /app/a%00b HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 400),
        ("request line too long", format!("GET {long_target} HTTP/1.1\r\nHost: h\r\n{a}\r\n"), 414),
        ("too many header lines", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}{many_headers}\r\n"), 431),
        ("header section too large", format!("GET / HTTP/1.1\r\nHost: h\r\n{a}{big_header}\r\n"), 431),
        ("no token", "GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_string(), 401),
        ("wrong token scheme", format!("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic {TOKEN}\r\n\r\n"), 401),
        ("upgrade without token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_string(), 401),
    ];
    assert!(cases.len() >= 40);
    for (what, raw, want) in &cases {
        let (got, text) = status_of(p.addr, raw.as_bytes());
        assert_eq!(got, *want, "{what}: {}", text.lines().next().unwrap_or(""));
        assert_eq!(rec.seen(), 0, "{what}: bytes reached the backend");
        if *want == 400 {
            assert!(text.contains("\"error\":\"bad request\""), "{what}: {text}");
        }
    }
    // The same proxy still forwards a proper request.
    let (ok, _) = status_of(
        p.addr,
        format!("GET / HTTP/1.1\r\nHost: h\r\n{a}Connection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(ok, 200);
    assert!(rec.seen() > 0);
    eprintln!(
        "{} malformed requests refused before the backend",
        cases.len()
    );
}

#[test]
fn malformed_chunked_bodies_are_refused_and_never_completed_upstream() {
    let rec = Recorder::start();
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {}\n",
        rec.addr
    )));
    let a = auth();
    for (what, body) in [
        ("bad chunk size", "zz\r\nhello\r\n0\r\n\r\n"),
        ("chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n"),
        ("missing CRLF after data", "5\r\nhello0\r\n\r\n"),
        ("bare LF after size", "5\nhello\r\n0\r\n\r\n"),
        ("negative size", "-5\r\nhello\r\n0\r\n\r\n"),
        (
            "oversized chunk extension",
            &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000)),
        ),
    ] {
        let raw =
            format!("POST / HTTP/1.1\r\nHost: h\r\n{a}Transfer-Encoding: chunked\r\n\r\n{body}");
        let (got, text) = status_of(p.addr, raw.as_bytes());
        assert_eq!(got, 400, "{what}: {text}");
    }
}

#[test]
fn slow_clients_do_not_starve_others_and_are_cut_at_the_head_deadline() {
    let b = Backend::start("b");
    // All from 127.0.0.1: the per-address cap is raised out of the way (it has its own test).
    let p = TestProxy::start(&config_with(
        "  max_connections: 4000\n  max_connections_per_ip: 2000\n",
        &format!("  - name: app\n    path: /\n    upstream: {}\n", b.addr),
    ));
    let n = 1000;
    let mut slow: Vec<TcpStream> = (0..n)
        .map(|_| {
            let s = TcpStream::connect(p.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let dribble = b"GET / HTTP/1.1\r\nHost: h\r\n";
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(6) {
        // One header byte per second on every slow connection...
        for s in &mut slow {
            let _ = s.write_all(&dribble[sent % dribble.len()..sent % dribble.len() + 1]);
        }
        sent += 1;
        // ...while a normal client keeps getting answers.
        for _ in 0..10 {
            let t = Instant::now();
            let r = get(p.addr, "/x");
            assert_eq!(r.status, 200);
            latencies.push(t.elapsed());
        }
        let next_tick = Duration::from_secs(sent as u64);
        std::thread::sleep(next_tick.saturating_sub(started.elapsed()));
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("normal client p99 with {n} slow clients: {p99:?}");
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    // The head deadline (10 s) closes the dribblers.
    wait_for(
        "the slow connections to be closed",
        Duration::from_secs(15),
        || {
            let closed = slow
            .iter()
            .filter(|s| {
                s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                let mut buf = [0u8; 64];
                matches!((&**s).read(&mut buf), Ok(0)) || matches!((&**s).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            })
            .count();
            (closed == n).then_some(())
        },
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed before the head deadline"
    );
}

#[test]
fn backend_faults_become_502_504_or_a_visibly_truncated_stream() {
    // Resets before answering; answers a chunked head and two chunks, then resets; never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                if req.starts_with("GET /truncated") {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n");
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = s.set_linger_zero();
                } else if req.starts_with("GET /silent") {
                    std::thread::sleep(Duration::from_secs(5));
                }
                // /reset: drop without answering
            });
        }
    });
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /\n    upstream: {addr}\n    response_timeout: 1\n"
    )));
    assert_eq!(get(p.addr, "/reset").status, 502);
    assert_eq!(get(p.addr, "/silent").status, 504);
    let (_, text) = status_of(
        p.addr,
        format!(
            "GET /truncated HTTP/1.1\r\nHost: h\r\n{}Connection: close\r\n\r\n",
            auth()
        )
        .as_bytes(),
    );
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("hello") && text.contains("world"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a truncated stream must not look complete: {text:?}"
    );
}

/// `SO_LINGER` 0 makes a close send RST, like a crashed backend.
trait LingerZero {
    fn set_linger_zero(&self) -> std::io::Result<()>;
}

impl LingerZero for TcpStream {
    fn set_linger_zero(&self) -> std::io::Result<()> {
        // std has no stable set_linger; shutting down both ways mid-stream is close enough: the
        // proxy sees the body end early (no terminating chunk).
        self.shutdown(std::net::Shutdown::Both)
    }
}

#[test]
fn at_max_connections_new_clients_get_503_at_once_and_it_is_counted() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config_with(
        "  max_connections: 2\n",
        &format!("  - name: app\n    path: /\n    upstream: {}\n", b.addr),
    ));
    // Two keep-alive connections, each answered once, so both hold a place while idle.
    let hold: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(p.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            (&s).write_all(format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", auth()).as_bytes())
                .unwrap();
            let r = read_response(&mut std::io::BufReader::new(s.try_clone().unwrap()), false);
            assert_eq!(r.status, 200);
            s
        })
        .collect();
    for _ in 0..3 {
        let (code, text) = status_of(
            p.addr,
            format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", auth()).as_bytes(),
        );
        assert_eq!(code, 503, "{text}");
        assert!(text.contains("Retry-After: 1"), "{text}");
    }
    drop(hold);
    // The places come free when the held connections close (until the proxy has seen them
    // close, a try is refused too, and counted).
    let mut refused_while_closing = 0;
    let status = wait_for("a place to come free", Duration::from_secs(10), || {
        let (code, text) = status_of(
            p.addr,
            format!(
                "GET /proxy/status HTTP/1.1\r\nHost: h\r\n{}Connection: close\r\n\r\n",
                auth()
            )
            .as_bytes(),
        );
        refused_while_closing += u64::from(code == 503);
        (code == 200).then_some(text)
    });
    let body = &status[status.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        v["connections"]["refused"]["connection_cap"],
        3 + refused_while_closing,
        "{v}"
    );
    p.proc
        .wait_line("connection limit reached", Duration::from_secs(10));
    assert_eq!(
        p.proc.log().matches("connection limit reached").count(),
        1,
        "logged once per burst"
    );
}
