//! Redirects and cookies stay inside a stripped prefix: the real binary in front of an upstream
//! on 127.0.0.1 that answers with `Location` and `Set-Cookie` as an app unaware of the prefix.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use support::*;

/// The canned answer for a request whose last path segment is `what`, `host` the `Host` it
/// came with (an app builds its absolute URLs from it).
fn answer(what: &str, host: &str) -> String {
    let (status, headers) = match what {
        "redirect" => (
            "302 Found",
            "Location: /login\r\nSet-Cookie: a=b; Path=/\r\n\
             Set-Cookie: c=d; path=/x/; HttpOnly\r\nSet-Cookie: e=f\r\n\
             Set-Cookie: wakeproxy_session=forged; Path=/\r\n"
                .to_string(),
        ),
        "own-host" => ("302 Found", format!("Location: http://{host}/login\r\n")),
        "fixed-host" => (
            "302 Found",
            "Location: https://EXAMPLE.com:8080/login?next=/\r\n".to_string(),
        ),
        "other-host" => (
            "302 Found",
            "Location: http://elsewhere.example/login\r\n".to_string(),
        ),
        "protocol-relative" => ("302 Found", "Location: //evil.example/x\r\n".to_string()),
        "created" => (
            "201 Created",
            "Location: /items/7\r\nContent-Location: /items/7\r\n".to_string(),
        ),
        "ws" => {
            return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\
                    Set-Cookie: ws=1; Path=/\r\n\r\n"
                .to_string();
        }
        _ => ("404 Not Found", String::new()),
    };
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

/// An upstream that answers one request per connection with `answer`.
fn redirecting_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || serve_one(s));
        }
    });
    addr
}

fn serve_one(s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut host = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("host")
        {
            host = value.trim().to_string();
        }
    }
    let path = line.split(' ').nth(1).unwrap_or("/");
    let what = path.rsplit('/').next().unwrap_or("");
    let _ = (&s).write_all(answer(what, &host).as_bytes());
}

fn services(up: SocketAddr) -> String {
    format!(
        "  - name: app\n    path: /app\n    upstream: {up}\n\
         \x20 - name: plain\n    path: /plain\n    upstream: {up}\n    rewrite_redirects: false\n\
         \x20 - name: kept\n    path: /kept\n    upstream: {up}\n    strip_prefix: false\n\
         \x20 - name: root\n    path: /\n    upstream: {up}\n"
    )
}

/// A GET for `path` with the token, sent as addressed to `host`.
fn get_at(p: &TestProxy, host: &str, path: &str) -> RawResponse {
    raw_request(
        p.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
}

#[test]
fn redirects_and_cookie_paths_get_the_stripped_prefix_back() {
    let p = TestProxy::start(&config(&services(redirecting_upstream())));
    let host = "example.com:8080";

    let r = get_at(&p, host, "/app/redirect");
    assert_eq!(r.status, 302, "{}", r.head);
    assert_eq!(r.header("location"), Some("/app/login"));
    assert_eq!(
        r.headers_named("set-cookie"),
        ["a=b; Path=/app", "c=d; path=/app/x/; HttpOnly", "e=f"],
        "the backend's session cookie is still dropped: {}",
        r.head
    );

    let r = get_at(&p, host, "/app/own-host");
    assert_eq!(
        r.header("location"),
        Some("http://example.com:8080/app/login")
    );
    // Hosts compare without case, either scheme will do, the port must be the client's.
    let r = get_at(&p, host, "/app/fixed-host");
    let rewritten = "https://EXAMPLE.com:8080/app/login?next=/";
    assert_eq!(r.header("location"), Some(rewritten));
    let r = get_at(&p, "example.com:9090", "/app/fixed-host");
    let untouched = "https://EXAMPLE.com:8080/login?next=/";
    assert_eq!(r.header("location"), Some(untouched));
    for (path, untouched) in [
        ("/app/other-host", "http://elsewhere.example/login"),
        ("/app/protocol-relative", "//evil.example/x"),
    ] {
        assert_eq!(get_at(&p, host, path).header("location"), Some(untouched));
    }

    let r = get_at(&p, host, "/app/created");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("location"), Some("/app/items/7"));
    assert_eq!(r.header("content-location"), Some("/app/items/7"));

    let ws = raw_request(
        p.addr,
        &format!(
            "GET /app/ws HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        ),
    );
    assert_eq!(ws.status, 101, "{}", ws.head);
    assert_eq!(ws.headers_named("set-cookie"), ["ws=1; Path=/app"]);
}

#[test]
fn services_that_strip_nothing_or_turn_it_off_are_untouched() {
    let p = TestProxy::start(&config(&services(redirecting_upstream())));
    let host = "example.com:8080";
    // rewrite_redirects: false leaves Location alone; cookie paths still get the prefix.
    let r = get_at(&p, host, "/plain/redirect");
    assert_eq!(r.header("location"), Some("/login"));
    assert_eq!(r.headers_named("set-cookie")[0], "a=b; Path=/plain");
    let r = get_at(&p, host, "/plain/own-host");
    assert_eq!(r.header("location"), Some("http://example.com:8080/login"));
    // Nothing stripped: nothing put back.
    for prefix in ["/kept", ""] {
        let r = get_at(&p, host, &format!("{prefix}/redirect"));
        assert_eq!(r.header("location"), Some("/login"), "{prefix}");
        assert_eq!(
            r.headers_named("set-cookie"),
            ["a=b; Path=/", "c=d; path=/x/; HttpOnly", "e=f"],
            "{prefix}"
        );
        let r = get_at(&p, host, &format!("{prefix}/own-host"));
        assert_eq!(r.header("location"), Some("http://example.com:8080/login"));
    }
}
