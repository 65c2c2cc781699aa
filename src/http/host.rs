//! The name a request asks for: its absolute-form authority, else its `Host` header, without
//! the port or a trailing dot, in lower case. Pure.

use std::borrow::Cow;

use super::head::{Header, header};

/// The request's name as routes compare it, `None` when it has none or an odd one (then only
/// services without a `host` can answer it). `authority` is the absolute-form target's, which
/// takes the place of `Host` (RFC 9112 section 3.2.2).
pub fn request_name<'a>(headers: &'a [Header], authority: Option<&'a str>) -> Option<Cow<'a, str>> {
    let raw = match authority {
        Some(a) => a,
        None => header(headers, "host")?.value_str(),
    };
    name_of(raw)
}

/// `Example.COM.:8080` → `example.com`; `[::1]:80` → `::1`. Only what a name or an address
/// may hold passes (letters, digits, `-`, `.`, and `:` inside brackets).
pub fn name_of(authority: &str) -> Option<Cow<'_, str>> {
    let host = match authority.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            port_ok(after)?;
            if inside.is_empty()
                || !inside
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            inside
        }
        None => {
            let (host, after) = match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            port_ok(after)?;
            host
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let fine = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':');
    if host.is_empty() || host.len() > 253 || !host.bytes().all(fine) {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// `""` or `:<digits>`.
fn port_ok(after: &str) -> Option<()> {
    match after.strip_prefix(':') {
        None if after.is_empty() => Some(()),
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    #[test]
    fn names_lose_port_dot_and_case() {
        let n = |a: &str| name_of(a).map(|c| c.into_owned());
        assert_eq!(n("example.com").as_deref(), Some("example.com"));
        assert!(matches!(name_of("example.com"), Some(Cow::Borrowed(_))));
        assert_eq!(
            n("App.Example.COM.:8080").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(n("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(n("[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(n("[::1]").as_deref(), Some("::1"));
        assert_eq!(n("a.com:").as_deref(), Some("a.com"));
        for odd in [
            "",
            ":80",
            "a.com:x",
            "a.com:80:80",
            "[::1",
            "[]:1",
            "a b",
            "a/b",
            "a@b",
            "[::1]x",
            "a.com:123456",
            "é.com",
        ] {
            assert_eq!(name_of(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn the_absolute_form_authority_wins_over_host() {
        let raw = b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let (_, head) = parse_request(raw).unwrap().unwrap();
        assert_eq!(
            request_name(&head.headers, None).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            request_name(&head.headers, Some("B.example")).as_deref(),
            Some("b.example")
        );
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        let (_, head) = parse_request(raw).unwrap().unwrap();
        assert_eq!(request_name(&head.headers, None), None);
    }
}
