//! Putting a stripped route prefix back into what a backend says about its own URLs, as
//! nginx's `proxy_redirect default` and `proxy_cookie_path` do: `Location` and
//! `Content-Location` values that are absolute paths, or absolute URLs to the host the client
//! addressed, and the `Path` attributes of `Set-Cookie`. Pure: values in, bytes out.

use super::head::Header;

/// How a response's headers get the stripped prefix back. The default leaves them alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reprefix<'a> {
    /// Prefix put before `Location` and `Content-Location` paths (`None`: left alone).
    pub redirects: Option<&'a str>,
    /// Prefix put before `Set-Cookie` `Path` values (`None`: left alone).
    pub cookie_paths: Option<&'a str>,
    /// The authority the client addressed (`host[:port]` as sent): absolute URLs to it are
    /// rewritten, those to any other are not (`None`: only paths are).
    pub client_host: Option<&'a [u8]>,
}

impl Reprefix<'_> {
    /// Appends `h`'s value to `out`, with the prefix put back where a rule applies. Copies the
    /// value as it is (and checks no name) when no rule is on.
    pub fn write_value(&self, h: &Header, out: &mut Vec<u8>) {
        let v = h.value();
        match (self.redirects, self.cookie_paths) {
            (Some(p), _) if h.is("location") || h.is("content-location") => {
                write_location(v, p, self.client_host, out)
            }
            (_, Some(p)) if h.is("set-cookie") => write_set_cookie(v, p, out),
            _ => out.extend_from_slice(v),
        }
    }
}

/// Appends `Location` value `v` to `out`, `prefix` put before its path when it names a place
/// behind this proxy (see `location_path`); anything else is copied as it is.
pub fn write_location(v: &[u8], prefix: &str, client_host: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(at) = location_path(v, client_host) else {
        out.extend_from_slice(v);
        return;
    };
    let (before, path) = v.split_at(at);
    out.extend_from_slice(before);
    out.extend_from_slice(prefix.as_bytes());
    if path.first() != Some(&b'/') {
        // `http://host` and `http://host?q` have the empty path, which is `/`.
        out.push(b'/');
    }
    out.extend_from_slice(path);
}

/// Where the path starts in a `Location` value that names a place behind this proxy: 0 for
/// an absolute path (`/login`), the end of the authority for an `http` or `https` URL whose
/// authority is `client_host`'s. `None` for anything else: relative references (`login`,
/// `../x`, `?q`), protocol-relative ones (`//host/x`), other hosts, ports and schemes.
pub fn location_path(v: &[u8], client_host: Option<&[u8]>) -> Option<usize> {
    if v.first() == Some(&b'/') {
        return is_absolute_path(v).then_some(0);
    }
    let (start, default_port) = if starts_with_ci(v, b"http://") {
        (7, 80)
    } else if starts_with_ci(v, b"https://") {
        (8, 443)
    } else {
        return None;
    };
    let rest = &v[start..];
    let end = start
        + rest
            .iter()
            .position(|b| b"/?#".contains(b))
            .unwrap_or(rest.len());
    let same = same_authority(&v[start..end], default_port, client_host?);
    same.then_some(end)
}

/// `/x`, not `//x` nor `/\x`: browsers read those (tabs and newlines removed first) as a
/// URL to host `x` with the page's scheme.
fn is_absolute_path(v: &[u8]) -> bool {
    let mut after = v[1..].iter().filter(|b| !b"\t\r\n".contains(b));
    !matches!(after.next(), Some(b'/' | b'\\'))
}

fn starts_with_ci(v: &[u8], p: &[u8]) -> bool {
    v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p)
}

/// Does a URL's authority (its scheme's port `default_port` when it names none) name the
/// place the client addressed as `client`? Hosts compare without case. A `client` without a
/// port used its scheme's default: the URL then names none, or its own scheme's default
/// (a backend behind the proxy often cannot tell `http` from `https`).
fn same_authority(url: &[u8], default_port: u16, client: &[u8]) -> bool {
    let (Some((host, port)), Some((client_host, client_port))) =
        (split_authority(url), split_authority(client.trim_ascii()))
    else {
        return false;
    };
    host.eq_ignore_ascii_case(client_host)
        && match client_port {
            Some(p) => port.unwrap_or(default_port) == p,
            None => port.is_none_or(|p| p == default_port),
        }
}

/// `host[:port]` (`[v6]` hosts too) → host and port; an empty port is none. `None` for an
/// empty host, user information, blanks or a port that is not a number.
fn split_authority(a: &[u8]) -> Option<(&[u8], Option<u16>)> {
    if a.is_empty() || a.iter().any(|&b| b == b'@' || b.is_ascii_whitespace()) {
        return None;
    }
    let colon = a
        .iter()
        .rposition(|&b| b == b':')
        .filter(|&i| !a[i..].contains(&b']'));
    let Some(i) = colon else {
        return Some((a, None));
    };
    let (host, digits) = (&a[..i], &a[i + 1..]);
    if host.is_empty() {
        return None;
    }
    if digits.is_empty() {
        return Some((host, None));
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((host, Some(port)))
}

/// Appends `Set-Cookie` value `v` to `out` with `prefix` put before every `Path` attribute
/// value that starts with `/` (`Path=/` becomes `Path=/app`, `Path=/x` becomes `Path=/app/x`).
/// Every other byte is kept; a cookie without `Path` (the browser takes the request's
/// directory, already under the prefix), and a `Path` without `=` or with a value not
/// starting with `/` (which the browser ignores), stay as they are.
pub fn write_set_cookie(v: &[u8], prefix: &str, out: &mut Vec<u8>) {
    let mut copied = 0;
    // The first piece is the cookie's own `name=value`, never an attribute.
    let mut start = match v.iter().position(|&b| b == b';') {
        Some(i) => i + 1,
        None => v.len() + 1,
    };
    while start <= v.len() {
        let len = v[start..].iter().position(|&b| b == b';');
        let end = len.map_or(v.len(), |n| start + n);
        if let Some((from, to)) = path_value(&v[start..end]) {
            let (from, to) = (start + from, start + to);
            out.extend_from_slice(&v[copied..from]);
            out.extend_from_slice(prefix.as_bytes());
            if &v[from..to] != b"/" {
                out.extend_from_slice(&v[from..to]);
            }
            copied = to;
        }
        start = end + 1;
    }
    out.extend_from_slice(&v[copied..]);
}

/// In one attribute (the text between two `;`), the range of a `Path` value starting with
/// `/`: the name in any case, blanks allowed around the name, the `=` and the value.
fn path_value(attr: &[u8]) -> Option<(usize, usize)> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let eq = attr.iter().position(|&b| b == b'=')?;
    let name = &attr[..eq];
    let name = &name[name.iter().position(|b| !blank(b))?..];
    let name = &name[..=name.iter().rposition(|b| !blank(b))?];
    if !name.eq_ignore_ascii_case(b"path") {
        return None;
    }
    let from = eq + 1 + attr[eq + 1..].iter().position(|b| !blank(b))?;
    let to = 1 + attr.iter().rposition(|b| !blank(b))?;
    (attr[from] == b'/').then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(v: &str, host: Option<&str>) -> String {
        let mut out = Vec::new();
        write_location(v.as_bytes(), "/app", host.map(str::as_bytes), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn cookie(v: &str) -> String {
        let mut out = Vec::new();
        write_set_cookie(v.as_bytes(), "/app", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn absolute_paths_get_the_prefix_always() {
        let host = Some("example.com:8080");
        for (v, want) in [
            ("/login", "/app/login"),
            ("/", "/app/"),
            ("/login?next=/x#top", "/app/login?next=/x#top"),
            ("/a//b", "/app/a//b"),
            // The backend sees paths without the prefix: its own `/app/x` is `/app/app/x`.
            ("/app/x", "/app/app/x"),
            ("/app", "/app/app"),
        ] {
            assert_eq!(location(v, host), want, "{v}");
            assert_eq!(location(v, None), want, "{v} without a Host");
        }
    }

    #[test]
    fn other_hosts_relative_and_protocol_relative_references_are_left_alone() {
        let host = Some("example.com:8080");
        for v in [
            "//evil.com/x",
            "//example.com:8080/x",
            "/\\evil.com/x",
            "/\t/evil.com",
            "login",
            "../x",
            "./x",
            "?q=1",
            "#frag",
            "",
            "http://evil.com/login",
            "http://example.com.evil/login",
            "http://example.com:8080@evil.com/x",
            "http://user@example.com:8080/x",
            "ftp://example.com:8080/x",
            "javascript:alert(1)",
            "http:/x",
            "http://example.com:80x/login",
        ] {
            assert_eq!(location(v, host), v, "{v:?}");
        }
    }

    #[test]
    fn urls_to_the_clients_host_and_port_get_the_prefix() {
        let at = |host: &str, v: &str| location(v, Some(host));
        let h = "example.com:8080";
        assert_eq!(
            at(h, "http://example.com:8080/login"),
            "http://example.com:8080/app/login"
        );
        assert_eq!(
            at(h, "HTTPS://Example.COM:8080/a?b#c"),
            "HTTPS://Example.COM:8080/app/a?b#c"
        );
        assert_eq!(
            at("EXAMPLE.com:8080", "http://example.com:8080/x"),
            "http://example.com:8080/app/x"
        );
        assert_eq!(
            at(h, "http://example.com:8080"),
            "http://example.com:8080/app/"
        );
        assert_eq!(
            at(h, "http://example.com:8080?q"),
            "http://example.com:8080/app/?q"
        );
        // The port must be the one the client used.
        for other in [
            "http://example.com/login",
            "https://example.com/login",
            "http://example.com:8081/login",
            "http://example.com:80/login",
        ] {
            assert_eq!(at(h, other), other);
        }
        // A Host without a port: the client used its scheme's default.
        let h = "example.com";
        for (v, want) in [
            ("http://example.com/x", "http://example.com/app/x"),
            ("https://example.com/x", "https://example.com/app/x"),
            ("http://example.com:80/x", "http://example.com:80/app/x"),
            ("https://example.com:443/x", "https://example.com:443/app/x"),
            ("http://example.com:/x", "http://example.com:/app/x"),
        ] {
            assert_eq!(at(h, v), want, "{v}");
        }
        for other in ["http://example.com:8080/x", "http://example.com:443/x"] {
            assert_eq!(at(h, other), other);
        }
        // A Host with the default port written out matches a URL without one.
        assert_eq!(
            at("example.com:443", "https://example.com/x"),
            "https://example.com/app/x"
        );
        assert_eq!(
            at("example.com:443", "http://example.com/x"),
            "http://example.com/x"
        );
        // IPv6 literals.
        let h = "[::1]:8080";
        assert_eq!(at(h, "http://[::1]:8080/x"), "http://[::1]:8080/app/x");
        assert_eq!(at(h, "http://[::1]/x"), "http://[::1]/x");
        assert_eq!(at("[::1]", "http://[::1]/x"), "http://[::1]/app/x");
        // Without a Host, only paths are rewritten; a Host that is not one matches nothing.
        assert_eq!(
            location("http://example.com/x", None),
            "http://example.com/x"
        );
        assert_eq!(at("", "http://example.com/x"), "http://example.com/x");
        assert_eq!(at("a b", "http://a b/x"), "http://a b/x");
    }

    #[test]
    fn cookie_paths_get_the_prefix() {
        for (v, want) in [
            ("a=b; Path=/", "a=b; Path=/app"),
            ("a=b; Path=/x", "a=b; Path=/app/x"),
            ("a=b; Path=/x/", "a=b; Path=/app/x/"),
            ("a=b;Path=/", "a=b;Path=/app"),
            ("a=b; path=/; HttpOnly", "a=b; path=/app; HttpOnly"),
            ("a=b; PATH = /x ;Secure", "a=b; PATH = /app/x ;Secure"),
            ("a=b;\tPath\t=\t/\t", "a=b;\tPath\t=\t/app\t"),
            (
                "id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; Path=/; SameSite=Lax",
                "id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; Path=/app; SameSite=Lax",
            ),
            (
                "a=b; Path=/one; Path=/two",
                "a=b; Path=/app/one; Path=/app/two",
            ),
            // The backend's own `/app` is `/app/app` behind the prefix.
            ("a=b; Path=/app", "a=b; Path=/app/app"),
        ] {
            assert_eq!(cookie(v), want, "{v}");
        }
    }

    #[test]
    fn cookies_without_a_rewritable_path_are_kept_byte_for_byte() {
        for v in [
            "a=b",
            "a=b;",
            "a=b; HttpOnly",
            "Path=/; HttpOnly",
            "a=Path=/",
            "a=b; Path",
            "a=b; Path=",
            "a=b; Path= ",
            "a=b; Path=x/y",
            "a=b; Path=\"/\"",
            "a=b; Paths=/",
            "a=b; XPath=/",
            "a=b; Domain=example.com; Max-Age=0",
            "",
            ";",
            "a=b;;; ; =/",
        ] {
            assert_eq!(cookie(v), v, "{v:?}");
        }
    }

    fn written(r: &Reprefix<'_>, name: &str, value: &str) -> String {
        let mut out = Vec::new();
        r.write_value(&Header::new(name, value), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_rule_touches_its_own_headers_and_only_when_on() {
        let host = Some(&b"h:8080"[..]);
        let both = Reprefix {
            redirects: Some("/app"),
            cookie_paths: Some("/app"),
            client_host: host,
        };
        assert_eq!(written(&both, "Location", "/x"), "/app/x");
        assert_eq!(written(&both, "content-location", "/x"), "/app/x");
        assert_eq!(
            written(&both, "LOCATION", "http://h:8080/"),
            "http://h:8080/app/"
        );
        assert_eq!(
            written(&both, "Set-Cookie", "a=b; Path=/"),
            "a=b; Path=/app"
        );
        assert_eq!(
            written(&both, "Link", "</x>; rel=preload"),
            "</x>; rel=preload"
        );
        assert_eq!(written(&both, "Refresh", "0; url=/x"), "0; url=/x");
        assert_eq!(written(&both, "X-Location", "/x"), "/x");
        let redirects = Reprefix {
            cookie_paths: None,
            ..both
        };
        assert_eq!(written(&redirects, "Location", "/x"), "/app/x");
        assert_eq!(
            written(&redirects, "Set-Cookie", "a=b; Path=/"),
            "a=b; Path=/"
        );
        let cookies = Reprefix {
            redirects: None,
            ..both
        };
        assert_eq!(written(&cookies, "Location", "/x"), "/x");
        assert_eq!(
            written(&cookies, "Set-Cookie", "a=b; Path=/"),
            "a=b; Path=/app"
        );
        let off = Reprefix::default();
        assert_eq!(written(&off, "Location", "/x"), "/x");
        assert_eq!(written(&off, "Set-Cookie", "a=b; Path=/"), "a=b; Path=/");
    }

    fn response(raw: &str) -> crate::http::ResponseHead {
        let parsed = crate::http::head::parse_response(raw.as_bytes());
        parsed.unwrap().unwrap().1
    }

    const APP: Reprefix<'static> = Reprefix {
        redirects: Some("/app"),
        cookie_paths: Some("/app"),
        client_host: Some(b"example.com:8080"),
    };

    #[test]
    fn the_client_gets_every_status_rewritten_and_the_rest_byte_for_byte() {
        use crate::http::rewrite::{ClientFraming, client_response};
        let own = "wakeproxy_session";
        let r = response(
            "HTTP/1.1 201 Created\r\nLocation: http://example.com:8080/items/7\r\n\
             Set-Cookie: a=1; Path=/; HttpOnly\r\nSet-Cookie: b=2\r\n\
             set-cookie: c=3; SameSite=Lax; path=/x/\r\n\
             Set-Cookie: wakeproxy_session=forged; Path=/\r\n\
             Content-Location: /items/7\r\nLink: </style.css>; rel=preload\r\n\
             Content-Length: 0\r\n\r\n",
        );
        let mut out = Vec::new();
        let dropped = client_response(&r, ClientFraming::Length(0), true, own, &APP, &mut out);
        assert!(dropped, "the session cookie is still the proxy's alone");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 201 Created\r\nLocation: http://example.com:8080/app/items/7\r\n\
             Set-Cookie: a=1; Path=/app; HttpOnly\r\nSet-Cookie: b=2\r\n\
             set-cookie: c=3; SameSite=Lax; path=/app/x/\r\n\
             Content-Location: /app/items/7\r\nLink: </style.css>; rel=preload\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let r = response("HTTP/1.1 303 See Other\r\nLocation: //evil.com/\r\n\r\n");
        let mut out = Vec::new();
        client_response(&r, ClientFraming::NoBody, true, own, &APP, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Location: //evil.com/\r\n")
        );
    }

    #[test]
    fn a_switching_response_is_rewritten_too() {
        use crate::http::rewrite::client_switching;
        let r = response(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Set-Cookie: ws=1; Path=/\r\nLocation: /ws\r\n\r\n",
        );
        let mut out = Vec::new();
        assert!(!client_switching(&r, "wakeproxy_session", &APP, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Set-Cookie: ws=1; Path=/app\r\nLocation: /app/ws\r\nConnection: upgrade\r\n\r\n"
        );
    }
}
