//! Cross-site requests: whether a request a browser may have sent on another page's behalf
//! comes from a page of the proxy's own origin. Browsers send `Origin` on every POST and on
//! WebSocket handshakes, and `Sec-Fetch-Site` on everything; a page cannot forge either. The
//! own origin is the one the request is addressed to (its `Host`), so every name the proxy
//! answers to is its own and a sibling subdomain is not (SameSite cookies do not tell those
//! apart). A request with neither header is not from a modern browser's page and passes.

use crate::http::Header;
use crate::http::head::header;

/// Why a request was taken for a cross-site one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// `Sec-Fetch-Site` says the page was another site's (or a sibling's).
    FetchSite,
    /// `Origin` names another origin, or `null` (a sandboxed or opaque page).
    Origin,
}

impl Foreign {
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Foreign::FetchSite => "cross-site request refused (Sec-Fetch-Site)",
            Foreign::Origin => "cross-site request refused (Origin is not this proxy's)",
        }
    }
}

/// Checks that the request comes from the proxy's own origin (see the module documentation).
/// `tls`: the request came over TLS (the default port of the `Host`).
pub(crate) fn check(headers: &[Header], tls: bool) -> Result<(), Foreign> {
    if let Some(site) = header(headers, "sec-fetch-site") {
        let v = site.value().trim_ascii();
        if !(v.eq_ignore_ascii_case(b"same-origin") || v.eq_ignore_ascii_case(b"none")) {
            return Err(Foreign::FetchSite);
        }
    }
    let mut origins = headers.iter().filter(|h| h.is("origin"));
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if origins.next().is_some() {
        return Err(Foreign::Origin);
    }
    let host = header(headers, "host").map(|h| h.value().trim_ascii());
    match (parse_origin(origin.value().trim_ascii()), host) {
        (Some(o), Some(h)) if same_place(o, h, tls) => Ok(()),
        _ => Err(Foreign::Origin),
    }
}

/// An origin's host and port (the scheme's default when not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place<'a> {
    host: &'a [u8],
    port: Option<u16>,
}

/// `scheme://host[:port]` → host and port; anything else (`null`, a path) is `None`.
fn parse_origin(v: &[u8]) -> Option<(Place<'_>, u16)> {
    let (default, rest) = if let Some(r) = strip_prefix_ci(v, b"https://") {
        (443, r)
    } else if let Some(r) = strip_prefix_ci(v, b"http://") {
        (80, r)
    } else {
        return None;
    };
    let place = split_port(rest)?;
    Some((place, default))
}

fn strip_prefix_ci<'a>(v: &'a [u8], p: &[u8]) -> Option<&'a [u8]> {
    (v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p)).then(|| &v[p.len()..])
}

/// `host[:port]` (with `[v6]` hosts) → its parts; `None` for anything with a path, user or
/// a bad port.
fn split_port(v: &[u8]) -> Option<Place<'_>> {
    if v.is_empty()
        || v.iter()
            .any(|&b| matches!(b, b'/' | b'@' | b'?' | b'#' | b' '))
    {
        return None;
    }
    let colon = match v.iter().rposition(|&b| b == b':') {
        Some(i) if !v[i..].contains(&b']') => Some(i),
        _ => None,
    };
    match colon {
        Some(i) => {
            let port = std::str::from_utf8(&v[i + 1..]).ok()?.parse().ok()?;
            Some(Place {
                host: &v[..i],
                port: Some(port),
            })
        }
        None => Some(Place {
            host: v,
            port: None,
        }),
    }
}

/// Does the origin name the place the request was addressed to?
fn same_place((origin, origin_default): (Place<'_>, u16), host: &[u8], tls: bool) -> bool {
    let Some(host) = split_port(host) else {
        return false;
    };
    if !origin.host.eq_ignore_ascii_case(host.host) {
        return false;
    }
    let origin_port = origin.port.unwrap_or(origin_default);
    match host.port {
        Some(p) => p == origin_port,
        // No port in Host: the connection's default, or the origin's own when neither
        // writes one (a TLS front end before a plain port).
        None => origin.port.is_none() || origin_port == if tls { 443 } else { 80 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_with(pairs: &[(&str, &str)], tls: bool) -> Result<(), Foreign> {
        let hs: Vec<Header> = pairs.iter().map(|(n, v)| Header::new(n, *v)).collect();
        check(&hs, tls)
    }

    #[test]
    fn the_proxys_own_origin_passes() {
        let ok = |pairs: &[(&str, &str)], tls| assert_eq!(check_with(pairs, tls), Ok(()));
        ok(&[("Host", "proxy.example")], true);
        ok(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://proxy.example"),
            ],
            true,
        );
        ok(
            &[
                ("Host", "Proxy.Example"),
                ("Origin", "https://proxy.example:443"),
            ],
            true,
        );
        ok(
            &[
                ("Host", "127.0.0.1:8080"),
                ("Origin", "http://127.0.0.1:8080"),
            ],
            false,
        );
        ok(
            &[("Host", "[::1]:8443"), ("Origin", "https://[::1]:8443")],
            true,
        );
        ok(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://proxy.example"),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            false,
        );
        ok(
            &[("Host", "proxy.example"), ("Sec-Fetch-Site", "none")],
            true,
        );
    }

    #[test]
    fn anything_else_is_foreign() {
        let no = |pairs: &[(&str, &str)], why| assert_eq!(check_with(pairs, true), Err(why));
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://evil.example"),
            ],
            Foreign::Origin,
        );
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://app.proxy.example"),
            ],
            Foreign::Origin,
        );
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://proxy.example.evil"),
            ],
            Foreign::Origin,
        );
        no(
            &[
                ("Host", "proxy.example:8443"),
                ("Origin", "https://proxy.example:9443"),
            ],
            Foreign::Origin,
        );
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "http://proxy.example:8080"),
            ],
            Foreign::Origin,
        );
        no(
            &[("Host", "proxy.example"), ("Origin", "null")],
            Foreign::Origin,
        );
        no(&[("Origin", "https://proxy.example")], Foreign::Origin);
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://proxy.example"),
                ("Origin", "https://evil.example"),
            ],
            Foreign::Origin,
        );
        no(
            &[
                ("Host", "proxy.example"),
                ("Origin", "https://u@proxy.example"),
            ],
            Foreign::Origin,
        );
        for site in ["cross-site", "same-site", "nonsense"] {
            no(
                &[
                    ("Host", "proxy.example"),
                    ("Origin", "https://proxy.example"),
                    ("Sec-Fetch-Site", site),
                ],
                Foreign::FetchSite,
            );
        }
    }
}
