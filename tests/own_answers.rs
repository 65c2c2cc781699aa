//! The proxy's own answers are framed alike, whichever endpoint or error makes them: HEAD gets
//! the head only and the connection stays usable, and a request body the proxy did not read is
//! never taken for the next request (the connection closes instead).

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::*;

/// A proxy with one upstream service at `/app` and an ACME challenge file in its webroot.
fn proxy(b: &Backend) -> (TestProxy, TempDir) {
    let webroot = TempDir::new("webroot");
    let dir = webroot.path().join(".well-known/acme-challenge");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tok_1"), "tok_1.key").unwrap();
    let p = TestProxy::start(&config_with(
        &format!("  acme_webroot: {}\n", webroot.path().display()),
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    ));
    (p, webroot)
}

/// One keep-alive connection to the proxy.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, raw: &str) {
        self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    fn request(&mut self, method: &str, path: &str, auth: bool) -> RawResponse {
        let auth = match auth {
            true => format!("Authorization: Bearer {TOKEN}\r\n"),
            false => String::new(),
        };
        self.send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\n{auth}\r\n"
        ));
        read_response(&mut self.reader, method == "HEAD")
    }

    /// Everything the proxy sends until it closes the connection.
    fn rest(&mut self) -> String {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => String::from_utf8_lossy(&rest).into_owned(),
            Err(e) => panic!("the connection stayed open ({e}); read so far: {rest:?}"),
        }
    }
}

/// Every proxy endpoint and every kind of answer the proxy makes itself, as (path, with the
/// token, expected status).
const ANSWERS: &[(&str, bool, u16)] = &[
    ("/proxy/healthz", false, 200),
    ("/.well-known/acme-challenge/tok_1", false, 200),
    ("/.well-known/acme-challenge/missing", false, 404),
    ("/proxy/login?next=%2Fapp", false, 200),
    ("/proxy/logout", false, 200),
    ("/proxy/status", true, 200),
    ("/proxy/metrics", true, 200),
    ("/proxy/status", false, 401),
    ("/proxy/nothing-here", true, 404),
    ("/not-routed", true, 404),
];

#[test]
fn head_on_every_proxy_endpoint_has_headers_only_and_the_connection_stays_usable() {
    let b = Backend::start("b");
    let (p, _webroot) = proxy(&b);
    let mut c = Conn::open(p.addr);
    for &(path, auth, status) in ANSWERS {
        let head = c.request("HEAD", path, auth);
        assert_eq!(head.status, status, "HEAD {path}: {}", head.head);
        assert!(
            head.header("connection").is_none(),
            "HEAD {path} closes the connection: {}",
            head.head
        );
        // The same request with GET on its own connection: the head announces its body.
        let get = {
            let mut other = Conn::open(p.addr);
            other.request("GET", path, auth)
        };
        assert_eq!(get.status, status, "GET {path}");
        let announced: usize = head
            .header("content-length")
            .unwrap_or_else(|| panic!("HEAD {path} has no Content-Length: {}", head.head))
            .parse()
            .unwrap();
        if !path.starts_with("/proxy/status") && !path.starts_with("/proxy/metrics") {
            // (status and metrics change between two requests; the others do not)
            assert_eq!(
                announced,
                get.body.len(),
                "HEAD {path} announces the GET body"
            );
        }
    }
    // Had any HEAD answer carried a body, this would read it as the response.
    let ok = c.request("GET", "/proxy/healthz", false);
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"));
    let routed = c.request("HEAD", "/app/x", true);
    assert_eq!(
        routed.status, 200,
        "and the connection still reaches the backend"
    );
    let ok = c.request("GET", "/proxy/healthz", false);
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (200, "ok\n"),
        "{}",
        p.proc.log()
    );
}

/// A request whose body is a request of its own, `GET /proxy/healthz`.
fn smuggling(method: &str, path: &str, auth: bool, chunked: bool) -> String {
    let inner = "GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    let auth = match auth {
        true => format!("Authorization: Bearer {TOKEN}\r\n"),
        false => String::new(),
    };
    let (framing, body) = match chunked {
        true => (
            "Transfer-Encoding: chunked\r\n".to_string(),
            format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len()),
        ),
        false => (format!("Content-Length: {}\r\n", inner.len()), inner.into()),
    };
    format!("{method} {path} HTTP/1.1\r\nHost: h\r\n{auth}{framing}\r\n{body}")
}

#[test]
fn a_body_the_proxy_does_not_read_is_never_parsed_as_a_request() {
    let b = Backend::start("b");
    let (p, _webroot) = proxy(&b);
    let cases = [
        ("POST", "/proxy/logout", false, 200),
        ("POST", "/proxy/healthz", false, 200),
        ("GET", "/proxy/login", false, 200),
        ("POST", "/proxy/status", true, 405),
        ("PUT", "/proxy/login", false, 405),
        ("POST", "/proxy/nothing-here", true, 404),
        ("POST", "/app/x", false, 401),
        ("POST", "/not-routed", true, 404),
    ];
    for (method, path, auth, status) in cases {
        for chunked in [false, true] {
            let mut c = Conn::open(p.addr);
            c.send(&smuggling(method, path, auth, chunked));
            let first = read_response(&mut c.reader, false);
            assert_eq!(first.status, status, "{method} {path}: {}", first.head);
            assert_eq!(
                first.header("connection"),
                Some("close"),
                "{method} {path} (chunked: {chunked}) keeps a connection with an unread body"
            );
            let rest = c.rest();
            assert!(
                !rest.contains("HTTP/1.1"),
                "{method} {path} (chunked: {chunked}): the body was run as a request: {rest:?}"
            );
        }
    }
}

#[test]
fn a_body_the_proxy_reads_leaves_the_connection_at_the_next_request() {
    let b = Backend::start("b");
    let (p, _webroot) = proxy(&b);
    let form = "token=wrong-token&next=%2Fapp";
    let mut c = Conn::open(p.addr);
    c.send(&format!(
        "POST /proxy/login HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{form}GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n",
        form.len()
    ));
    let refused = read_response(&mut c.reader, false);
    assert_eq!(refused.status, 401);
    assert!(refused.header("connection").is_none(), "{}", refused.head);
    let next = read_response(&mut c.reader, false);
    assert_eq!((next.status, next.text().as_str()), (200, "ok\n"));
}
