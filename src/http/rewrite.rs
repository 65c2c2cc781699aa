//! The header rules applied when forwarding: hop-by-hop removal (including headers named in
//! `Connection`), `X-Forwarded-*`, the bearer token swap, re-framing, and on the way back the
//! stripped prefix put back (`reprefix`). Pure: heads in, bytes out.

use std::io::Write;
use std::net::IpAddr;

use super::cookie::strip_cookie;
use super::head::{BodyKind, Header, RequestHead, ResponseHead, has_token, header, header_tokens};
use super::reprefix::Reprefix;

/// Headers that describe one hop and never cross the proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the proxy always sets itself (or withholds) instead of copying.
const REQUEST_OWNED: &[&str] = &[
    "content-length",
    "expect",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "forwarded",
    "x-real-ip",
];

/// What the proxy knows about the client side of one request.
#[derive(Debug, Clone)]
pub struct ForwardInfo<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is in `trusted_proxies` (its X-Forwarded-* are believed).
    pub trusted: bool,
    /// `http` or `https`.
    pub proto: &'a str,
    /// The route prefix removed from the target, if any (never `/`).
    pub stripped_prefix: Option<&'a str>,
    /// Sent as `Authorization: Bearer <token>` to the upstream.
    pub auth_token: Option<&'a str>,
    /// Otherwise, the client's own `Authorization` value passed on (a public service's).
    pub pass_authorization: Option<&'a [u8]>,
    /// The name of the proxy's own cookie (the login session), removed from `Cookie`.
    pub own_cookie: &'a str,
    /// Forward headers whose names contain `_` (see `underscore_rule`).
    pub allow_underscores: bool,
    /// Host to send when the client gave none (HTTP/1.0).
    pub upstream_authority: &'a str,
    /// The client asked to switch protocols (`Connection: upgrade` + `Upgrade: <value>`):
    /// the upgrade is passed on instead of being dropped as hop-by-hop.
    pub upgrade: Option<&'a [u8]>,
    /// What the response's `Location` and `Set-Cookie` headers get of the stripped prefix.
    pub reprefix: Reprefix<'a>,
}

fn is_listed(h: &Header, list: &[&str]) -> bool {
    list.iter().any(|name| h.is(name))
}

/// Whether a request header with `_` in its name is dropped. CGI, WSGI and PHP turn `-` into
/// `_`, so `X_Forwarded_For` reads there as the `X-Forwarded-For` the proxy sets: such names
/// are dropped unless the service allows them (as nginx does), and even then never when they
/// would read as a header the proxy owns or a hop-by-hop one.
fn drops_underscored(h: &Header, allow: bool) -> bool {
    let name = h.name_bytes();
    if !name.contains(&b'_') {
        return false;
    }
    if !allow {
        return true;
    }
    let dashed: Vec<u8> = name
        .iter()
        .map(|&b| {
            if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect();
    REQUEST_OWNED
        .iter()
        .chain(HOP_BY_HOP)
        .chain(&["cookie", "host"])
        .any(|owned| owned.as_bytes() == dashed.as_slice())
}

/// True for headers that must not be forwarded in either direction.
fn is_hop_by_hop(h: &Header, connection_tokens: &[&str]) -> bool {
    is_listed(h, HOP_BY_HOP) || is_listed(h, connection_tokens)
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head to send upstream for `req`, with `target` as the (already rewritten)
/// request target and `body` as the framing the body will be sent with.
pub fn upstream_request(
    req: &RequestHead,
    target: &str,
    body: BodyKind,
    info: &ForwardInfo<'_>,
    out: &mut Vec<u8>,
) {
    let conn_tokens = header_tokens(&req.headers, "connection");
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    for h in &req.headers {
        if is_hop_by_hop(h, &conn_tokens)
            || is_listed(h, REQUEST_OWNED)
            || drops_underscored(h, info.allow_underscores)
        {
            continue;
        }
        has_host |= h.is("host");
        if h.is("cookie") {
            // The login cookie is the proxy's credential: it never reaches a backend.
            if let Some(v) = strip_cookie(h.value(), info.own_cookie) {
                push_header(out, h.name_bytes(), &v);
            }
            continue;
        }
        push_header(out, h.name_bytes(), h.value());
    }
    if !has_host {
        push_header(out, b"Host", info.upstream_authority.as_bytes());
    }
    match body {
        BodyKind::Empty => {
            if !matches!(
                req.method.as_str(),
                "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE"
            ) {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
        }
        BodyKind::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        BodyKind::Chunked | BodyKind::UntilClose => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
        }
    }
    if let Some(u) = info.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        push_header(out, b"Upgrade", u);
    }
    if let Some(t) = info.auth_token {
        out.extend_from_slice(b"Authorization: Bearer ");
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else if let Some(v) = info.pass_authorization {
        push_header(out, b"Authorization", v);
    }
    forwarded(req, info, out);
    out.extend_from_slice(b"\r\n");
}

/// `X-Forwarded-For`, `-Proto`, `-Host` and `-Prefix`: the client's own values only from a
/// trusted peer, else the proxy's view.
fn forwarded(req: &RequestHead, info: &ForwardInfo<'_>, out: &mut Vec<u8>) {
    let believed = |name: &str| {
        if info.trusted {
            header(&req.headers, name)
        } else {
            None
        }
    };
    out.extend_from_slice(b"X-Forwarded-For: ");
    if let Some(prev) = believed("x-forwarded-for") {
        out.extend_from_slice(prev.value());
        out.extend_from_slice(b", ");
    }
    let _ = write!(out, "{}\r\n", info.peer);
    match believed("x-forwarded-proto") {
        Some(p) => push_header(out, b"X-Forwarded-Proto", p.value()),
        None => push_header(out, b"X-Forwarded-Proto", info.proto.as_bytes()),
    }
    if let Some(h) = believed("x-forwarded-host").or_else(|| header(&req.headers, "host")) {
        push_header(out, b"X-Forwarded-Host", h.value());
    }
    if let Some(p) = info.stripped_prefix {
        push_header(out, b"X-Forwarded-Prefix", p.as_bytes());
    }
}

/// How the response body is framed towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body follows; the upstream's Content-Length (for HEAD and 304) is kept as it is.
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client, unknown length: the body ends when the proxy closes.
    Close,
}

/// Chooses the client-side framing for an upstream body of `kind`.
pub fn client_framing(kind: BodyKind, client_minor: u8) -> ClientFraming {
    match kind {
        BodyKind::Empty => ClientFraming::NoBody,
        BodyKind::Length(n) => ClientFraming::Length(n),
        BodyKind::Chunked | BodyKind::UntilClose if client_minor >= 1 => ClientFraming::Chunked,
        BodyKind::Chunked | BodyKind::UntilClose => ClientFraming::Close,
    }
}

/// Whether a response header sets cookie `own` (the proxy's session): no backend may set or
/// clear the session every service behind the proxy shares.
fn sets_own_cookie(h: &Header, own: &str) -> bool {
    h.is("set-cookie") && {
        let v = h.value();
        let name = &v[..v.iter().position(|&b| b == b'=').unwrap_or(v.len())];
        name.trim_ascii().eq_ignore_ascii_case(own.as_bytes())
    }
}

/// Copies a response header, its value rewritten by `reprefix` where that applies.
fn push_response_header(out: &mut Vec<u8>, h: &Header, reprefix: &Reprefix<'_>) {
    out.extend_from_slice(h.name_bytes());
    out.extend_from_slice(b": ");
    reprefix.write_value(h, out);
    out.extend_from_slice(b"\r\n");
}

/// Writes the response head for the client. Returns whether a `Set-Cookie` for `own_cookie`
/// was dropped.
pub fn client_response(
    res: &ResponseHead,
    framing: ClientFraming,
    keep_alive: bool,
    own_cookie: &str,
    reprefix: &Reprefix<'_>,
    out: &mut Vec<u8>,
) -> bool {
    let conn_tokens = header_tokens(&res.headers, "connection");
    let _ = write!(out, "HTTP/1.1 {} ", res.status);
    out.extend_from_slice(res.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let keep_length = framing == ClientFraming::NoBody && res.status != 204 && res.status >= 200;
    let mut dropped = false;
    for h in &res.headers {
        if is_hop_by_hop(h, &conn_tokens) || (h.is("content-length") && !keep_length) {
            continue;
        }
        if sets_own_cookie(h, own_cookie) {
            dropped = true;
            continue;
        }
        push_response_header(out, h, reprefix);
    }
    match framing {
        ClientFraming::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        ClientFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ClientFraming::NoBody | ClientFraming::Close => {}
    }
    if !keep_alive || framing == ClientFraming::Close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    dropped
}

/// Writes the `101 Switching Protocols` head for the client: the upstream's end-to-end
/// headers (e.g. `Sec-WebSocket-Accept`) plus its `Upgrade` and `Connection: upgrade`.
/// Returns whether a `Set-Cookie` for `own_cookie` was dropped.
pub fn client_switching(
    res: &ResponseHead,
    own_cookie: &str,
    reprefix: &Reprefix<'_>,
    out: &mut Vec<u8>,
) -> bool {
    let conn_tokens = header_tokens(&res.headers, "connection");
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    let mut dropped = false;
    for h in &res.headers {
        if (is_hop_by_hop(h, &conn_tokens) && !h.is("upgrade")) || h.is("content-length") {
            continue;
        }
        if sets_own_cookie(h, own_cookie) {
            dropped = true;
            continue;
        }
        push_response_header(out, h, reprefix);
    }
    out.extend_from_slice(b"Connection: upgrade\r\n\r\n");
    dropped
}

/// The `Upgrade` value a request asks for, when it asks properly (`Connection: upgrade` too).
pub fn requested_upgrade(req: &RequestHead) -> Option<&[u8]> {
    let asks = has_token(&req.headers, "connection", "upgrade");
    header(&req.headers, "upgrade")
        .filter(|_| asks && req.minor >= 1)
        .map(|h| h.value())
}

/// Can the upstream connection carry another request after this response?
pub fn upstream_reusable(res: &ResponseHead, kind: BodyKind) -> bool {
    res.minor >= 1
        && kind != BodyKind::UntilClose
        && !has_token(&res.headers, "connection", "close")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    const OWN: &str = "wakeproxy_session";
    const NONE: &Reprefix<'static> = &Reprefix {
        redirects: None,
        cookie_paths: None,
        client_host: None,
    };

    fn info<'a>(trusted: bool, prefix: Option<&'a str>, token: Option<&'a str>) -> ForwardInfo<'a> {
        ForwardInfo {
            peer: "10.0.0.7".parse().unwrap(),
            trusted,
            proto: "http",
            stripped_prefix: prefix,
            auth_token: token,
            pass_authorization: None,
            own_cookie: "wakeproxy_session",
            allow_underscores: false,
            upstream_authority: "127.0.0.1:9000",
            upgrade: None,
            reprefix: Reprefix::default(),
        }
    }

    fn rewrite(raw: &str, i: &ForwardInfo<'_>) -> String {
        let (_, h) = parse_request(raw.as_bytes()).unwrap().unwrap();
        let kind = crate::http::head::request_body(&h).unwrap();
        let mut out = Vec::new();
        upstream_request(&h, "/x?y=%2F", kind, i, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_hop_by_hop_and_connection_listed() {
        let s = rewrite(
            "GET /app/x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: foo\r\nProxy-Authorization: p\r\nAccept: */*\r\n\r\n",
            &info(false, Some("/app"), None),
        );
        assert!(s.starts_with("GET /x?y=%2F HTTP/1.1\r\n"), "{s}");
        for gone in [
            "Connection",
            "X-Secret",
            "Keep-Alive",
            "TE:",
            "Upgrade",
            "Proxy-Authorization",
        ] {
            assert!(!s.contains(gone), "{gone} leaked: {s}");
        }
        assert!(s.contains("Accept: */*\r\n"));
        assert!(s.contains("X-Forwarded-Prefix: /app\r\n"));
        assert!(s.contains("X-Forwarded-Host: h\r\n"));
        assert!(
            !s.contains("Content-Length"),
            "a GET with no body stays unframed: {s}"
        );
    }

    #[test]
    fn token_is_replaced_never_forwarded() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer proxy-secret-token\r\n\r\n";
        let s = rewrite(raw, &info(false, None, None));
        assert!(!s.contains("proxy-secret-token"));
        assert!(!s.to_ascii_lowercase().contains("authorization"));
        let s = rewrite(raw, &info(false, None, Some("svc-token")));
        assert!(!s.contains("proxy-secret-token"));
        assert!(s.contains("Authorization: Bearer svc-token\r\n"));
        let public = ForwardInfo {
            pass_authorization: Some(b"Basic dTpw"),
            ..info(false, None, None)
        };
        let s = rewrite(raw, &public);
        assert!(!s.contains("proxy-secret-token"));
        assert!(s.contains("Authorization: Basic dTpw\r\n"), "{s}");
    }

    #[test]
    fn login_cookie_is_removed_other_cookies_kept() {
        let s = rewrite(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; wakeproxy_session=secret; b=2\r\nCookie: wakeproxy_session=x\r\n\r\n",
            &info(false, None, None),
        );
        assert!(s.contains("Cookie: a=1; b=2\r\n"), "{s}");
        assert!(
            !s.contains("secret") && !s.contains("wakeproxy_session"),
            "{s}"
        );
    }

    #[test]
    fn headers_with_underscores_are_dropped_unless_allowed_and_never_the_owned_ones() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n\
                   X_Forwarded_Proto: https\r\nx_forwarded_host: evil\r\nMy_Header: 1\r\n\
                   Transfer_Encoding: chunked\r\nCookie_: a\r\nX-Fine: 2\r\n\r\n";
        let s = rewrite(raw, &info(false, None, None));
        assert!(!s.contains('_'), "{s}");
        assert!(!s.contains("6.6.6.6") && !s.contains("evil"), "{s}");
        assert!(s.contains("X-Fine: 2\r\n"), "{s}");
        let mut allowed = info(false, None, None);
        allowed.allow_underscores = true;
        let s = rewrite(raw, &allowed);
        assert!(s.contains("My_Header: 1\r\n"), "{s}");
        assert!(s.contains("Cookie_: a\r\n"), "{s}");
        assert!(!s.contains("6.6.6.6") && !s.contains("evil"), "{s}");
        assert!(
            !s.contains("Transfer_Encoding") && !s.contains("X_Forwarded_Proto"),
            "{s}"
        );
    }

    #[test]
    fn any_spelling_of_the_login_cookie_is_removed() {
        let s = rewrite(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; wakeproxy_session =secret; WakeProxy_Session=s2\r\n\r\n",
            &info(false, None, None),
        );
        assert!(s.contains("Cookie: a=1\r\n"), "{s}");
        assert!(!s.contains("secret") && !s.contains("s2"), "{s}");
    }

    #[test]
    fn a_backend_cannot_set_the_proxys_cookie() {
        let (_, r) = crate::http::head::parse_response(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: app=1\r\nSet-Cookie: wakeproxy_session=forged; Path=/\r\n\
              set-cookie:  WAKEPROXY_SESSION =x\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        let mut out = Vec::new();
        assert!(client_response(
            &r,
            ClientFraming::Length(0),
            true,
            OWN,
            NONE,
            &mut out
        ));
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Set-Cookie: app=1\r\n"), "{s}");
        assert!(!s.to_ascii_lowercase().contains("wakeproxy_session"), "{s}");
        let mut out = Vec::new();
        assert!(client_switching(&r, OWN, NONE, &mut out));
        let (_, plain) =
            crate::http::head::parse_response(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!client_response(
            &plain,
            ClientFraming::NoBody,
            true,
            OWN,
            NONE,
            &mut Vec::new()
        ));
    }

    #[test]
    fn forwarded_for_believed_only_from_trusted_peers() {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\r\n";
        let s = rewrite(raw, &info(false, None, None));
        assert!(s.contains("X-Forwarded-For: 10.0.0.7\r\n"));
        assert!(s.contains("X-Forwarded-Proto: http\r\n"));
        assert!(!s.contains("1.2.3.4"));
        let s = rewrite(raw, &info(true, None, None));
        assert!(s.contains("X-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n"));
        assert!(s.contains("X-Forwarded-Proto: https\r\n"));
    }

    #[test]
    fn body_framing_is_kept() {
        let s = rewrite(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
            &info(false, None, None),
        );
        assert!(s.contains("Content-Length: 5\r\n"));
        let s = rewrite(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            &info(false, None, None),
        );
        assert!(s.contains("Transfer-Encoding: chunked\r\n"));
        assert!(!s.contains("Expect"));
        let s = rewrite("GET / HTTP/1.0\r\n\r\n", &info(false, None, None));
        assert!(s.contains("Host: 127.0.0.1:9000\r\n"));
    }

    fn res(raw: &str) -> ResponseHead {
        crate::http::head::parse_response(raw.as_bytes())
            .unwrap()
            .unwrap()
            .1
    }

    #[test]
    fn response_keeps_repeated_headers_and_encoding() {
        let r = res(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
        );
        let mut out = Vec::new();
        client_response(&r, ClientFraming::Length(10), true, OWN, NONE, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"
        );
        assert!(!upstream_reusable(&r, BodyKind::Length(10)));
    }

    #[test]
    fn head_and_304_keep_their_length() {
        let r = res("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: x\r\n\r\n");
        let mut out = Vec::new();
        client_response(&r, ClientFraming::NoBody, true, OWN, NONE, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Content-Length: 99\r\n")
        );
        let r = res("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        let mut out = Vec::new();
        client_response(&r, ClientFraming::NoBody, true, OWN, NONE, &mut out);
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }

    #[test]
    fn upgrades_are_passed_on_only_when_asked_for() {
        let raw = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
        let (_, h) = parse_request(raw.as_bytes()).unwrap().unwrap();
        assert_eq!(requested_upgrade(&h), Some(&b"websocket"[..]));
        let mut i = info(false, None, None);
        i.upgrade = requested_upgrade(&h);
        let mut out = Vec::new();
        upstream_request(&h, "/ws", BodyKind::Empty, &i, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("Connection: upgrade\r\nUpgrade: websocket\r\n"),
            "{s}"
        );
        assert!(s.contains("Sec-WebSocket-Key: k\r\n"));
        // Upgrade without Connection: upgrade is not a request to switch.
        let (_, h) = parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(requested_upgrade(&h), None);
        let r = res(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
        );
        let mut out = Vec::new();
        client_switching(&r, OWN, NONE, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn unknown_length_to_http10_client_closes() {
        assert_eq!(client_framing(BodyKind::Chunked, 0), ClientFraming::Close);
        assert_eq!(
            client_framing(BodyKind::UntilClose, 1),
            ClientFraming::Chunked
        );
        let r = res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut out = Vec::new();
        client_response(&r, ClientFraming::Close, true, OWN, NONE, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Connection: close") && !s.contains("Transfer-Encoding"));
    }
}
