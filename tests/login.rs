//! Browser access without a browser: the login form trades the token for a session cookie
//! that works like the header (WebSocket upgrades included), never reaches a backend, is
//! random, ends on the server at logout and when the token changes, and cannot be used from
//! another site's page.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::*;

fn post_login_with(addr: SocketAddr, token: &str, next: &str, extra: &str) -> RawResponse {
    let body = format!("token={token}&next={next}");
    raw_request(
        addr,
        &format!(
            "POST /proxy/login HTTP/1.1\r\nHost: h\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn post_login(addr: SocketAddr, token: &str, next: &str) -> RawResponse {
    post_login_with(addr, token, next, "")
}

/// Logs in and returns the `name=value` pair of the session cookie.
fn session(addr: SocketAddr) -> String {
    let ok = post_login(addr, TOKEN, "%2F");
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// `method path` with `headers` (each ending in CRLF) on a closing connection.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> RawResponse {
    raw_request(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn upstream(b: &Backend) -> String {
    format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr)
}

const WS: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn login_form_cookie_and_logout() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    let form = request(p.addr, "GET", "/proxy/login?next=%2Fapp%2Fx", "");
    assert_eq!(form.status, 200);
    assert!(
        form.text().contains("name=\"token\"") && form.text().contains("value=\"/app/x\""),
        "{}",
        form.text()
    );

    let wrong = post_login(p.addr, "not-the-token", "%2Fapp%2Fx");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains("Wrong token"), "{}", wrong.text());

    let ok = post_login(p.addr, TOKEN, "%2Fapp%2Fx");
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), Some("/app/x"));
    let cookie = ok.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Max-Age=604800"),
        "the default lifetime is 7 days: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    assert!(!cookie.contains(TOKEN), "the raw token is not the cookie");
    let pair = cookie.split(';').next().unwrap().to_string();
    let other = session(p.addr);
    assert_ne!(pair, other, "every login is a session of its own");

    let open_redirect = post_login(p.addr, TOKEN, "%2F%2Fevil.example%2F");
    assert_eq!(open_redirect.header("location"), Some("/"));

    let r = request(
        p.addr,
        "GET",
        "/app/x",
        &format!("Cookie: theme=dark; {pair}\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text();
    assert!(seen.contains("theme=dark"), "other cookies pass: {seen}");
    assert!(
        !seen.contains("wakeproxy_session"),
        "the login cookie never reaches the backend: {seen}"
    );

    let ws = request(p.addr, "GET", "/app/ws", &format!("Cookie: {pair}\r\n{WS}"));
    assert_eq!(ws.status, 101, "the cookie works for WebSocket upgrades");

    let forged = request(
        p.addr,
        "GET",
        "/app/x",
        "Cookie: wakeproxy_session=forged\r\n",
    );
    assert_eq!(forged.status, 401);

    // Following a link to the logout page logs nobody out: it is a button.
    let page = request(
        p.addr,
        "GET",
        "/proxy/logout",
        &format!("Cookie: {pair}\r\n"),
    );
    assert_eq!(page.status, 200);
    assert!(page.header("set-cookie").is_none());
    assert!(page.text().contains("method=\"post\""), "{}", page.text());
    assert_eq!(
        request(p.addr, "GET", "/app/x", &format!("Cookie: {pair}\r\n")).status,
        200
    );

    let out = request(
        p.addr,
        "POST",
        "/proxy/logout",
        &format!("Cookie: {pair}\r\n"),
    );
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = request(p.addr, "GET", "/app/x", &format!("Cookie: {pair}\r\n"));
    assert_eq!(
        after.status, 401,
        "a cookie kept after logout is refused: the session ended on the server"
    );
    assert!(after.text().contains("log in again"), "{}", after.text());
    assert_eq!(
        request(p.addr, "GET", "/app/x", &format!("Cookie: {other}\r\n")).status,
        200,
        "logout ends that session only"
    );
}

#[test]
fn a_cookie_computed_from_the_token_alone_is_refused() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    // What the cookie used to be: SHA-256 of a fixed prefix and the token, which anybody
    // who knows (or guesses) the token can compute offline.
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("wakeproxy-session-v1:{TOKEN}").as_bytes(),
    );
    let old: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    for value in [old.as_str(), TOKEN] {
        let r = request(
            p.addr,
            "GET",
            "/app/x",
            &format!("Cookie: wakeproxy_session={value}\r\n"),
        );
        assert_eq!(r.status, 401, "{value}");
    }
    // Two proxies with the same token issue different cookies.
    let q = TestProxy::start(&config(&upstream(&b)));
    let from_q = session(q.addr);
    let r = request(p.addr, "GET", "/app/x", &format!("Cookie: {from_q}\r\n"));
    assert_eq!(
        r.status, 401,
        "a session of one deployment opens no other with the same token"
    );
}

#[test]
fn pages_and_sockets_of_other_sites_cannot_use_the_cookie() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    let evil = "Origin: https://evil.example\r\n";
    let sibling = "Origin: http://app2.h\r\n";

    let login = post_login_with(p.addr, TOKEN, "%2F", evil);
    assert_eq!(login.status, 403, "{}", login.text());
    assert!(login.header("set-cookie").is_none());
    let login = post_login_with(p.addr, TOKEN, "%2F", "Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(login.status, 403);
    let own = post_login_with(p.addr, TOKEN, "%2F", "Origin: http://h\r\n");
    assert_eq!(own.status, 303, "the proxy's own page logs in");

    let pair = session(p.addr);
    let cookie = format!("Cookie: {pair}\r\n");
    for origin in [evil, sibling, "Origin: null\r\n"] {
        let ws = request(p.addr, "GET", "/app/ws", &format!("{cookie}{origin}{WS}"));
        assert_eq!(ws.status, 403, "WebSocket with the cookie and {origin}");
        let post = request(p.addr, "POST", "/app/x", &format!("{cookie}{origin}"));
        assert_eq!(post.status, 403, "POST with the cookie and {origin}");
    }
    let ws = request(
        p.addr,
        "GET",
        "/app/ws",
        &format!("{cookie}Origin: http://h\r\n{WS}"),
    );
    assert_eq!(ws.status, 101, "a WebSocket from the proxy's own page");
    let read = request(p.addr, "GET", "/app/x", &format!("{cookie}{evil}"));
    assert_eq!(read.status, 200, "a cross-site GET changes nothing");
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n{evil}");
    let with_token = request(p.addr, "POST", "/app/x", &bearer);
    assert_eq!(
        with_token.status, 200,
        "the header is not ambient: no page can make a browser send it"
    );

    let logout = request(p.addr, "POST", "/proxy/logout", &format!("{cookie}{evil}"));
    assert_eq!(logout.status, 403);
    let logout = request(
        p.addr,
        "POST",
        "/proxy/logout",
        &format!("{cookie}Sec-Fetch-Site: same-site\r\n"),
    );
    assert_eq!(logout.status, 403);
    assert_eq!(
        request(p.addr, "GET", "/app/x", &cookie).status,
        200,
        "still logged in"
    );
}

#[test]
fn the_server_sets_the_lifetime_and_a_new_token_ends_every_session() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config_with("  session_lifetime: 3600\n", &upstream(&b)));
    let ok = post_login(p.addr, TOKEN, "%2F");
    assert!(
        ok.header("set-cookie").unwrap().contains("Max-Age=3600"),
        "{:?}",
        ok.headers
    );
    let pair = session(p.addr);
    let cookie = format!("Cookie: {pair}\r\n");
    assert_eq!(request(p.addr, "GET", "/app/x", &cookie).status, 200);

    // A reload with the same token keeps the sessions...
    let pid = p.proc.pid().to_string();
    let hup = || {
        let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(st.success());
    };
    hup();
    p.proc
        .wait_line("configuration reloaded", Duration::from_secs(10));
    assert_eq!(request(p.addr, "GET", "/app/x", &cookie).status, 200);
    // ...a new token ends them.
    let yaml = std::fs::read_to_string(&p.config_path).unwrap();
    let new_token = "rotated-token-5f1c0e9b7a3d48f2b6c1e0d9a8b7c6d5";
    std::fs::write(&p.config_path, yaml.replace(TOKEN, new_token)).unwrap();
    let before = p.proc.log().matches("configuration reloaded").count();
    hup();
    wait_for("the second reload", Duration::from_secs(10), || {
        (p.proc.log().matches("configuration reloaded").count() > before).then_some(())
    });
    assert_eq!(
        request(p.addr, "GET", "/app/x", &cookie).status,
        401,
        "a session from before the token changed"
    );
    p.proc
        .wait_line("login sessions ended", Duration::from_secs(10));
}

#[test]
fn a_browser_opening_a_page_without_a_session_is_sent_to_the_form_and_back() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&upstream(&b)));
    let browser = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n";
    let r = request(p.addr, "GET", "/app/x?a=1&b=2", browser);
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert_eq!(location, "/proxy/login?next=/app/x%3Fa%3D1%26b%3D2");
    let navigate = request(p.addr, "GET", "/app/y", "Sec-Fetch-Mode: navigate\r\n");
    assert_eq!(navigate.status, 303);
    // The form carries the page, and the login goes back to it.
    let form = request(p.addr, "GET", &location, browser);
    assert_eq!(form.status, 200);
    assert!(
        form.text().contains("value=\"/app/x?a=1&amp;b=2\""),
        "{}",
        form.text()
    );
    let ok = post_login(p.addr, TOKEN, "%2Fapp%2Fx%3Fa%3D1%26b%3D2");
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/app/x?a=1&b=2"));
    // Scripts and API clients keep the JSON 401.
    for headers in ["", "Accept: */*\r\n", "Accept: application/json\r\n"] {
        let r = request(p.addr, "GET", "/app/x", headers);
        assert_eq!(r.status, 401, "{headers:?}");
        assert!(r.text().contains("\"error\""), "{}", r.text());
    }
    let post = request(p.addr, "POST", "/app/x", browser);
    assert_eq!(post.status, 401, "only page loads are redirected");
}
