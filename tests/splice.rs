//! Bodies spliced between plain TCP sockets, through the real binary: byte-exact both ways
//! below and well above the threshold, chunked bodies untouched, a client that stops or stalls
//! mid-upload, an upstream that stops or stalls mid-response, and TLS connections that never
//! take the path (`wakeproxy_spliced_bytes_total` stays 0). Every wait has a deadline; no
//! test looks at speed.
//!
//! The TLS test needs `openssl` and `curl`; the metrics are read with Python's
//! `prometheus_client` (scripts/test.sh installs them).

mod support;
mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::digest::{Context, SHA256};
use support::*;

/// Longest any single read in these tests may wait.
const WAIT: Duration = Duration::from_secs(60);
/// A body well above the splicing threshold (16 KiB).
const BIG: usize = 10 << 20;

/// Deterministic pseudo-random bytes (xorshift), the same on both ends.
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

/// The `n` bytes every party agrees a body of `n` bytes holds.
fn body_of(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    Gen(0x9E37_79B9_7F4A_7C15 ^ n as u64).fill(&mut v);
    v
}

fn sha256_hex(data: &[u8]) -> String {
    let mut h = Context::new(&SHA256);
    h.update(data);
    h.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plain HTTP/1.1 upstream on 127.0.0.1 with keep-alive, answering GETs by path:
/// `/bytes/N` N bytes of `body_of(N)` with Content-Length; `/cut/N` the head of that and half
/// the body, then it closes; `/stall/N` the same half, then nothing until the proxy closes the
/// connection; `/chunked/N` the N bytes chunked, in chunks of 10,000. Counts its connections
/// and records which connection carried each request.
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    served: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), served.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve_upstream(s, id, &log));
            }
        });
        Upstream {
            addr,
            connections,
            served,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The connection that carried the last request for `path`.
    fn connection_of(&self, path: &str) -> usize {
        let served = self.served.lock().unwrap();
        let found = served.iter().rev().find(|(_, p)| p == path);
        found
            .unwrap_or_else(|| panic!("{path} never arrived: {served:?}"))
            .0
    }
}

fn serve_upstream(s: TcpStream, id: usize, served: &Mutex<Vec<(usize, String)>>) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
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
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        served.lock().unwrap().push((id, path.clone()));
        let (what, n) = path.trim_start_matches('/').split_once('/').unwrap();
        let n: usize = n.parse().unwrap();
        let body = body_of(n);
        let ok = match what {
            "chunked" => send_chunked(&mut w, &body),
            _ => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                let part = if what == "bytes" { n } else { n / 2 };
                w.write_all(head.as_bytes()).and_then(|_| {
                    body[..part]
                        .chunks(64 << 10)
                        .try_for_each(|c| w.write_all(c))
                })
            }
        };
        match (ok, what) {
            (Ok(()), "bytes" | "chunked") => {}
            (Ok(()), "stall") => {
                // Held until the proxy gives up and closes (a read returns then).
                let _ = r.read(&mut [0u8; 1]);
                return;
            }
            _ => return,
        }
    }
}

fn send_chunked(w: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
    for c in body.chunks(10_000) {
        w.write_all(format!("{:x}\r\n", c.len()).as_bytes())?;
        w.write_all(c)?;
        w.write_all(b"\r\n")?;
    }
    w.write_all(b"0\r\n\r\n")
}

/// A proxy with `/u` to the in-test upstream and `/b` to the test backend (its `/sink`
/// answers a request body's length and SHA-256, its echo the upstream connection's address).
fn proxy(up: &Upstream, b: &Backend, global: &str, u_extra: &str) -> TestProxy {
    TestProxy::start(&config_with(
        global,
        &format!(
            "  - name: u\n    path: /u\n    upstream: {}\n{u_extra}  - name: b\n    path: /b\n    upstream: {}\n",
            up.addr, b.addr
        ),
    ))
}

/// A keep-alive client connection with a deadline on every read.
struct Client(BufReader<TcpStream>);

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        Client(BufReader::new(s))
    }

    fn send(&mut self, method: &str, path: &str, extra: &str) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n"
        );
        self.0.get_mut().write_all(head.as_bytes()).unwrap();
    }

    fn get(&mut self, path: &str) -> RawResponse {
        self.send("GET", path, "");
        read_response(&mut self.0, false)
    }

    /// POSTs `body` with Content-Length, the head and the body in separate writes.
    fn upload(&mut self, path: &str, body: &[u8]) -> RawResponse {
        self.send("POST", path, &format!("Content-Length: {}\r\n", body.len()));
        for c in body.chunks(256 << 10) {
            self.0.get_mut().write_all(c).unwrap();
        }
        read_response(&mut self.0, false)
    }

    /// `wakeproxy_spliced_bytes_total` for (request, response), scraped on this connection
    /// (after everything it sent before).
    fn spliced(&mut self) -> (f64, f64) {
        let r = self.get("/proxy/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        let s = prom_parse(&r.text());
        let name = "wakeproxy_spliced_bytes_total";
        let dir = |d: &str| sample(&s, name, &[("direction", d)]);
        (dir("request"), dir("response"))
    }
}

/// Reads until the proxy closes the connection (or resets it); returns what came.
fn read_until_closed(s: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn content_length_bodies_arrive_byte_exact_both_ways_and_only_large_ones_are_spliced() {
    let (up, b) = (Upstream::start(), Backend::start("b"));
    let p = proxy(&up, &b, "", "");
    let mut c = Client::connect(p.addr);
    for n in [0, 1000, 16 * 1024 - 1, 100_000, BIG] {
        let before = c.spliced();
        let r = c.get(&format!("/u/bytes/{n}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), n);
        assert!(r.body == body_of(n), "response body of {n} bytes differs");
        let r = c.upload("/b/sink", &body_of(n));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["bytes"].as_u64(), Some(n as u64));
        assert_eq!(v["sha256"].as_str(), Some(sha256_hex(&body_of(n)).as_str()));
        let after = c.spliced();
        let grew = (after.0 - before.0, after.1 - before.1);
        match n {
            // Below the threshold, or all there with the head: copied.
            0..16384 => assert_eq!(grew, (0.0, 0.0), "{n} bytes"),
            // The head's read takes at most 64 KiB with it: the rest is spliced.
            _ => assert!(
                grew.0 >= (n - (64 << 10)) as f64 && grew.1 >= (n - (64 << 10)) as f64,
                "{n} bytes: {grew:?}"
            ),
        }
    }
    assert_eq!(
        up.connections(),
        1,
        "one pooled upstream connection carried them all"
    );
}

#[test]
fn chunked_bodies_are_copied_byte_exact() {
    let (up, b) = (Upstream::start(), Backend::start("b"));
    let p = proxy(&up, &b, "", "");
    let mut c = Client::connect(p.addr);
    let before = c.spliced();
    let n = 3 << 20;
    let r = c.get(&format!("/u/chunked/{n}"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body == body_of(n), "chunked response differs");
    c.send("POST", "/b/sink", "Transfer-Encoding: chunked\r\n");
    let body = body_of(n);
    // Chunks of uneven sizes, one larger than the threshold.
    for part in body.chunks(200_000) {
        let (a, rest) = part.split_at(part.len().min(7));
        for piece in [a, rest] {
            let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            c.0.get_mut().write_all(&framed).unwrap();
        }
    }
    c.0.get_mut().write_all(b"0\r\n\r\n").unwrap();
    let r = read_response(&mut c.0, false);
    assert_eq!(
        r.json()["sha256"].as_str(),
        Some(sha256_hex(&body).as_str())
    );
    assert_eq!(c.spliced(), before, "chunked bodies are not spliced");
}

#[test]
fn an_upstream_that_stops_or_stalls_mid_response_ends_the_client_connection() {
    let (up, b) = (Upstream::start(), Backend::start("b"));
    let mut p = proxy(&up, &b, "", "    response_timeout: 1\n");
    for what in ["cut", "stall"] {
        let n = 4 << 20;
        let mut c = Client::connect(p.addr);
        let t0 = Instant::now();
        c.send("GET", &format!("/u/{what}/{n}"), "");
        let got = read_until_closed(&mut c.0);
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]);
        assert!(head.contains(&format!("Content-Length: {n}")), "{head}");
        let body = &got[head_end..];
        assert_eq!(
            body.len(),
            n / 2,
            "{what}: the half that came, then the close"
        );
        assert!(body == &body_of(n)[..n / 2]);
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        // The next request, on a new connection, gets its answer over another upstream
        // connection (a pooled healthy one or a new one, never the broken one).
        let r = Client::connect(p.addr).get("/u/bytes/200000");
        assert!(r.status == 200 && r.body == body_of(200_000));
        assert_ne!(
            up.connection_of("/bytes/200000"),
            up.connection_of(&format!("/{what}/{n}")),
            "{what}: the broken one was not reused"
        );
    }
    let relayed = p
        .proc
        .wait_lines("relaying response body", 2, Duration::from_secs(10));
    assert_eq!(relayed.len(), 2, "{}", p.proc.log());
    p.proc
        .wait_line("connection closed mid-body", Duration::from_secs(10));
}

#[test]
fn a_client_that_stops_mid_upload_is_cut_off_and_its_upstream_connection_dropped() {
    let (up, b) = (Upstream::start(), Backend::start("b"));
    let mut p = proxy(&up, &b, "  min_body_rate: 1000000\n", "");
    // Each upload follows an echo on the same client connection, so it goes over the upstream
    // connection the echo used (parked before the proxy reads the client's next request).
    let peer = |c: &mut Client| c.get("/b/echo").json()["peer"].clone();
    // Stops: 3 MiB of 10 MiB, then the client closes its side.
    let mut c = Client::connect(p.addr);
    let first = peer(&mut c);
    c.send("POST", "/b/sink", &format!("Content-Length: {BIG}\r\n"));
    c.0.get_mut().write_all(&body_of(BIG)[..3 << 20]).unwrap();
    c.0.get_mut().shutdown(Shutdown::Write).unwrap();
    assert!(
        read_until_closed(&mut c.0).is_empty(),
        "no answer, just the close"
    );
    // Stalls: 1 MiB at once, then nothing. At 1 MB/s after a 10 s grace, that is too slow
    // 11 s after the request began: 408 in the log, the connection closed.
    let mut c = Client::connect(p.addr);
    let second = peer(&mut c);
    assert_ne!(
        first, second,
        "the upstream connection that got part of a body is dropped"
    );
    let t0 = Instant::now();
    c.send("POST", "/b/sink", &format!("Content-Length: {BIG}\r\n"));
    c.0.get_mut().write_all(&body_of(BIG)[..1 << 20]).unwrap();
    assert!(read_until_closed(&mut c.0).is_empty());
    let took = t0.elapsed();
    assert!(
        took > Duration::from_secs(9) && took < Duration::from_secs(40),
        "{took:?}"
    );
    let third = peer(&mut Client::connect(p.addr));
    assert_ne!(third, second, "nor is the one whose body stalled");
    let stopped = "POST b: reading request body from client: connection closed mid-body";
    let wait = Duration::from_secs(10);
    for line in [
        stopped,
        "\"POST /b/sink\" 400 ",
        "request body slower than 1000000 bytes/s",
        "\"POST /b/sink\" 408 ",
    ] {
        p.proc.wait_line(line, wait);
    }
}

#[test]
fn tls_connections_never_take_the_spliced_path() {
    use tls_support::*;
    let (up, b) = (Upstream::start(), Backend::start("b"));
    let dir = TempDir::new("splice-tls");
    let pki = Pki::new(dir.path());
    let leaf = pki.leaf("ec", KeyKind::Ecdsa, "test.example", "5A1");
    let services = format!(
        "  - name: u\n    path: /u\n    upstream: {}\n  - name: b\n    path: /b\n    upstream: {}\n",
        up.addr, b.addr
    );
    let webroot = dir.path().join("webroot");
    let yaml = tls_config(
        "test.example",
        free_port(),
        &leaf.fullchain,
        &leaf.key,
        &webroot,
        "",
        &services,
    );
    let p = start_proxy(dir.path(), &yaml, &[], &[]);
    let port = p.https.unwrap().port();
    let curl_tls = |path: &str, extra: &[&str]| {
        let resolve = format!("test.example:{port}:127.0.0.1");
        let url = format!("https://test.example:{port}{path}");
        let auth = format!("Authorization: Bearer {TOKEN}");
        let root = pki.root.to_str().unwrap().to_string();
        let mut args = vec!["-f", "--cacert", &root, "--resolve", &resolve, "-H", &auth];
        args.extend_from_slice(extra);
        args.push(&url);
        let (code, out) = curl(&args);
        assert_eq!(code, 0, "{path}: {out}\n{}", p.proc.log());
        out
    };
    let download = dir.path().join("download.bin");
    curl_tls(
        &format!("/u/bytes/{BIG}"),
        &["-o", download.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&download).unwrap() == body_of(BIG),
        "download differs"
    );
    let upload = dir.path().join("upload.bin");
    std::fs::write(&upload, body_of(BIG)).unwrap();
    let at = format!("@{}", upload.display());
    let out = curl_tls("/b/sink", &["--data-binary", &at]);
    assert!(out.contains(&sha256_hex(&body_of(BIG))), "{out}");
    let s = prom_parse(&curl_tls("/proxy/metrics", &[]));
    for d in ["request", "response"] {
        let spliced = sample(&s, "wakeproxy_spliced_bytes_total", &[("direction", d)]);
        assert_eq!(spliced, 0.0, "{d} bytes were spliced over TLS");
    }
    // The bytes did go through, copied.
    let moved = |name: &str, svc: &str| sample(&s, name, &[("service", svc)]);
    assert!(moved("wakeproxy_sent_bytes_total", "u") >= BIG as f64);
    assert!(moved("wakeproxy_received_bytes_total", "b") >= BIG as f64);
}
