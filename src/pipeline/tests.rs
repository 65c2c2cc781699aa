//! The pipeline without sockets: requests as bytes in, answers as bytes out, through an
//! in-memory socket. Each phase's gate, and the one writer's keep-alive and HEAD rules.

use std::io::{self, Cursor, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::base::Socket;
use crate::base::load::Load;
use crate::base::socket::Halves;
use crate::http::BufStream;
use crate::http::head::parse_request;

use super::{Conn, Next, Proxy};

const TOKEN: &str = "7b160a90a2bba89b2100d1f018f8eaa4";

/// A server that wants to hear nothing.
struct Quiet;

impl super::Signals for Quiet {}

/// A client connection held in memory: what it sent, what the proxy wrote back.
struct Memory {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for Memory {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
    fn tunnel_halves(&self) -> io::Result<Halves> {
        Err(io::Error::other("no tunnels in memory"))
    }
}

/// A proxy with an upstream service at `/app` (nothing listens there), a container service
/// at `/box` (no Docker connected) and a body limit on `/small`.
fn proxy() -> Proxy {
    let yaml = format!(
        "global:\n  bearer_token: {TOKEN}\n  domain: proxy.test\nservices:\n\
         \x20 - name: app\n    path: /app\n    upstream: 127.0.0.1:9\n\
         \x20 - name: box\n    path: /box\n    image: img\n\
         \x20 - name: small\n    path: /small\n    upstream: 127.0.0.1:9\n    max_body_size: 4\n"
    );
    let config = crate::config::parse(&yaml, "test.yaml", &|_| None).unwrap();
    let p = Proxy::new(&config);
    p.install(config, None);
    p
}

/// Sends `raw` (one request head and whatever follows) and returns the answer and what
/// becomes of the connection.
fn send(p: &Proxy, raw: &str, tls: bool) -> (String, Next) {
    let (n, head) = parse_request(raw.as_bytes()).unwrap().unwrap();
    let memory = Memory {
        input: Cursor::new(raw.as_bytes()[n..].to_vec()),
        output: Vec::new(),
    };
    let mut client = BufStream::new(memory, 1024, 1024);
    let load = Load::default();
    let conn = Conn {
        peer: SocketAddr::from(([127, 0, 0, 1], 5000)),
        tls,
        draining: false,
        load: &load,
        signals: &Quiet,
    };
    let next = p.handle(&mut client, &head, &conn);
    (String::from_utf8(client.inner.output).unwrap(), next)
}

fn get(p: &Proxy, method: &str, path: &str, token: bool) -> (String, Next) {
    let auth = match token {
        true => format!("Authorization: Bearer {TOKEN}\r\n"),
        false => String::new(),
    };
    send(
        p,
        &format!("{method} {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n"),
        false,
    )
}

fn status(answer: &str) -> u16 {
    answer[9..12].parse().unwrap()
}

#[test]
fn head_gets_the_head_of_every_answer_and_the_connection_goes_on() {
    let p = proxy();
    let cases = [
        ("/proxy/healthz", false, 200),
        ("/proxy/login", false, 200),
        ("/proxy/logout", false, 200),
        ("/proxy/status", true, 200),
        ("/proxy/metrics", true, 200),
        ("/proxy/status", false, 401),
        ("/proxy/else", true, 404),
        ("/nowhere", true, 404),
        ("/box/x", true, 503),
    ];
    for (path, token, code) in cases {
        let (full, _) = get(&p, "GET", path, token);
        let (head, next) = get(&p, "HEAD", path, token);
        assert_eq!(status(&head), code, "HEAD {path}: {head}");
        assert_eq!(next, Next::KeepAlive, "HEAD {path}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD {path} sent a body: {head:?}"
        );
        let full_head = &full[..full.find("\r\n\r\n").unwrap() + 4];
        if !path.starts_with("/proxy/status") && !path.starts_with("/proxy/metrics") {
            assert_eq!(head, full_head, "HEAD {path} is GET's head");
        }
    }
}

#[test]
fn a_body_left_unread_ends_the_connection() {
    let p = proxy();
    let smuggled = "GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    let with_body = |method: &str, path: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        )
    };
    for (method, path, code) in [
        ("POST", "/proxy/logout", 200),
        ("GET", "/proxy/healthz", 200),
        ("POST", "/proxy/status", 401),
        ("POST", "/nowhere", 401),
    ] {
        let (answer, next) = send(&p, &with_body(method, path), false);
        assert_eq!(status(&answer), code, "{method} {path}: {answer}");
        assert_eq!(next, Next::Linger, "{method} {path}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    }
    // The login form is read, so the connection goes on after it.
    let form = "token=nope";
    let raw = format!(
        "POST /proxy/login HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let (answer, next) = send(&p, &raw, false);
    assert_eq!((status(&answer), next), (401, Next::KeepAlive), "{answer}");
}

#[test]
fn gates_in_order_redirect_then_auth_then_route_limits_and_wake() {
    let p = proxy();
    // Before HTTPS is live nothing is redirected.
    assert_eq!(status(&get(&p, "GET", "/proxy/login", false).0), 200);
    p.https.set_port(8443);
    p.https.set_cert(0, None);
    assert!(p.https.is_live());
    for open in ["/proxy/healthz", "/.well-known/acme-challenge/x"] {
        let (answer, _) = get(&p, "GET", open, false);
        assert_ne!(
            status(&answer),
            308,
            "{open} is answered on the plain port: {answer}"
        );
    }
    for redirected in ["/proxy/login", "/proxy/status", "/app/x", "/nowhere"] {
        let (answer, next) = get(&p, "GET", redirected, false);
        assert_eq!(status(&answer), 308, "{redirected}: {answer}");
        assert!(answer.contains(&format!(
            "\r\nLocation: https://proxy.test:8443{redirected}\r\n"
        )));
        assert_eq!(next, Next::KeepAlive);
    }
    // Over TLS: the sign-in endpoints need no token, the rest does.
    let tls = |raw: &str| send(&p, raw, true).0;
    assert_eq!(
        status(&tls("GET /proxy/login HTTP/1.1\r\nHost: h\r\n\r\n")),
        200
    );
    assert_eq!(
        status(&tls("GET /proxy/status HTTP/1.1\r\nHost: h\r\n\r\n")),
        401
    );
    assert_eq!(status(&tls("GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n")), 401);
    let auth = format!("Host: h\r\nAuthorization: Bearer {TOKEN}\r\n");
    let over_limit = format!("POST /small HTTP/1.1\r\n{auth}Content-Length: 5\r\n\r\n12345");
    let (answer, next) = send(&p, &over_limit, true);
    assert_eq!((status(&answer), next), (413, Next::Linger), "{answer}");
    let woken = tls(&format!("GET /box/x HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!(status(&woken), 503, "{woken}");
    assert!(woken.contains("\r\nRetry-After: 5\r\n") && woken.contains("not connected"));
    let refused = tls(&format!("GET /app/x HTTP/1.1\r\n{auth}\r\n"));
    assert_eq!(
        status(&refused),
        502,
        "nothing listens on the upstream: {refused}"
    );
}

#[test]
fn a_malformed_target_or_framing_closes() {
    let p = proxy();
    let (answer, next) = get(&p, "GET", "/app/../secret", true);
    assert_eq!((status(&answer), next), (400, Next::Close), "{answer}");
    let both =
        "POST /app HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (answer, next) = send(&p, both, false);
    assert_eq!(status(&answer), 400, "{answer}");
    assert_ne!(next, Next::KeepAlive);
}
