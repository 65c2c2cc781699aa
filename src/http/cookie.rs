//! Reading and removing one cookie in `Cookie` request headers (RFC 6265 `name=value` pairs
//! separated by `;`).

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn find_cookie<'a>(
    cookie_headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a [u8]> {
    for h in cookie_headers {
        for pair in h.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(v) = pair
                .strip_prefix(name.as_bytes())
                .and_then(|r| r.strip_prefix(b"="))
            {
                return Some(v);
            }
        }
    }
    None
}

/// Could this `name=value` pair be read as cookie `name` by anybody? Blanks around the name
/// and letter case are ignored, so that no spelling of the proxy's cookie gets past it.
fn is_named(pair: &[u8], name: &str) -> bool {
    let end = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
    pair[..end]
        .trim_ascii()
        .eq_ignore_ascii_case(name.as_bytes())
}

/// A `Cookie` header value without cookie `name`, however spelled (`None` when nothing else
/// is left).
pub fn strip_cookie(value: &[u8], name: &str) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = value
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty() && !is_named(p, name))
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_stripped() {
        let hs: Vec<&[u8]> = vec![b"a=1; wakeproxy_session=abc; b=2", b"c=3"];
        assert_eq!(
            find_cookie(hs.iter().copied(), "wakeproxy_session"),
            Some(&b"abc"[..])
        );
        assert_eq!(find_cookie(hs.iter().copied(), "b"), Some(&b"2"[..]));
        assert_eq!(
            find_cookie(
                [&b"xwakeproxy_session=1"[..]].into_iter(),
                "wakeproxy_session"
            ),
            None
        );
        assert_eq!(
            strip_cookie(b"a=1; wakeproxy_session=abc; b=2", "wakeproxy_session").unwrap(),
            b"a=1; b=2"
        );
        assert_eq!(
            strip_cookie(b"wakeproxy_session=abc", "wakeproxy_session"),
            None
        );
        assert_eq!(
            strip_cookie(b"wakeproxy_sessionx=1", "wakeproxy_session").unwrap(),
            b"wakeproxy_sessionx=1"
        );
        for spelled in [
            "wakeproxy_session =x",
            "wakeproxy_session\t= x",
            "WAKEPROXY_SESSION=x",
            "wakeproxy_session",
        ] {
            let v = format!("a=1; {spelled}; b=2");
            assert_eq!(
                strip_cookie(v.as_bytes(), "wakeproxy_session").unwrap(),
                b"a=1; b=2",
                "{spelled}"
            );
        }
    }
}
