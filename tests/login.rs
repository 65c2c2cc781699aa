//! Browser access without a browser: the login form trades the token for a cookie that works
//! like the header (WebSocket upgrades included) and never reaches a backend.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn post_login(addr: std::net::SocketAddr, token: &str, next: &str) -> RawResponse {
    let body = format!("token={token}&next={next}");
    raw_request(
        addr,
        &format!(
            "POST /proxy/login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn login_form_cookie_and_logout() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n",
        b.addr
    )));
    let form = raw_request(
        p.addr,
        "GET /proxy/login?next=%2Fapp%2Fx HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(form.status, 200);
    assert!(
        form.text().contains("name=\"token\"") && form.text().contains("value=\"/app/x\""),
        "{}",
        form.text()
    );

    let t0 = Instant::now();
    let wrong = post_login(p.addr, "not-the-token", "%2Fapp%2Fx");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "wrong tokens are delayed"
    );
    let t1 = Instant::now();
    assert_eq!(post_login(p.addr, "again-wrong", "%2F").status, 401);
    assert!(
        t1.elapsed() >= Duration::from_millis(450),
        "the delay grows per client: {:?}",
        t1.elapsed()
    );

    let ok = post_login(p.addr, TOKEN, "%2Fapp%2Fx");
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), Some("/app/x"));
    let cookie = ok.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    assert!(!cookie.contains(TOKEN), "the raw token is not the cookie");
    let pair = cookie.split(';').next().unwrap().to_string();

    let open_redirect = post_login(p.addr, TOKEN, "%2F%2Fevil.example%2F");
    assert_eq!(open_redirect.header("location"), Some("/"));

    let r = raw_request(
        p.addr,
        &format!(
            "GET /app/x HTTP/1.1\r\nHost: h\r\nCookie: theme=dark; {pair}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text();
    assert!(seen.contains("theme=dark"), "other cookies pass: {seen}");
    assert!(
        !seen.contains("wakeproxy_session"),
        "the login cookie never reaches the backend: {seen}"
    );

    let ws = raw_request(
        p.addr,
        &format!(
            "GET /app/ws HTTP/1.1\r\nHost: h\r\nCookie: {pair}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    );
    assert_eq!(
        ws.status, 101,
        "the cookie works for WebSocket upgrades too"
    );

    let bad = raw_request(
        p.addr,
        "GET /app/x HTTP/1.1\r\nHost: h\r\nCookie: wakeproxy_session=forged\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(bad.status, 401);
    let out = raw_request(
        p.addr,
        "GET /proxy/logout HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}
