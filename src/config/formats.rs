//! Pure parsers and checks for single values: route paths, `host:port`, names, mounts
//! (durations and sizes are in `units`).
//! Each returns `Err(message)`; the caller adds the field path and line.

use std::net::{Ipv4Addr, Ipv6Addr};

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: service, container, network and volume names.
pub(super) fn is_docker_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Normalises a route prefix: "" → "/", a leading "/" added, a trailing "/" removed (except
/// for the root). Rejects what a raw request path could never match or would make ambiguous.
pub(super) fn normalise_path(raw: &str) -> Result<String, String> {
    if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{raw:?} must not contain whitespace or control characters (found {c:?})"
        ));
    }
    if let Some(c) = raw.chars().find(|c| matches!(c, '%' | '?' | '#')) {
        return Err(format!(
            "{raw:?} must not contain \"{c}\": a route is a plain path prefix \
             (no percent-encoding, query or fragment)"
        ));
    }
    if !raw.is_ascii() {
        return Err(format!(
            "{raw:?} must be ASCII (requests carry non-ASCII paths percent-encoded)"
        ));
    }
    let mut path = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/{raw}")
    };
    if path.contains("//") {
        return Err(format!("{raw:?} must not contain \"//\""));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{raw:?} must not contain \".\" or \"..\" segments"));
    }
    if path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    Ok(path)
}

/// True when a normalised route would be shadowed by the proxy's own endpoints.
pub(super) fn is_reserved_path(path: &str) -> bool {
    ["/proxy", "/.well-known/acme-challenge"].iter().any(|r| {
        path == *r
            || path
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Checks `host:port` (host a name, an IPv4 address or `[IPv6]`; port 1..=65535).
pub(super) fn parse_upstream(raw: &str) -> Result<String, String> {
    let usage = "expected host:port, like 127.0.0.1:8080, app:80 or [::1]:8080";
    if raw.contains("://") {
        return Err(format!("{usage} (without a scheme), found {raw:?}"));
    }
    let port = if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{usage}; missing \"]\" in {raw:?}"))?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{v6:?} is not an IPv6 address"))?;
        after
            .strip_prefix(':')
            .ok_or_else(|| format!("{usage}; missing :port in {raw:?}"))?
    } else {
        let (host, port) = raw
            .rsplit_once(':')
            .ok_or_else(|| format!("{usage}; missing :port in {raw:?}"))?;
        if host.contains(':') {
            return Err(format!(
                "{usage}; write an IPv6 address in brackets, like [::1]:8080, found {raw:?}"
            ));
        }
        check_host(host)?;
        port
    };
    match port.parse::<u16>() {
        Ok(p) if p >= 1 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(raw.to_string()),
        _ => Err(format!("port must be between 1 and 65535, found {port:?}")),
    }
}

/// A host name (labels of letters, digits, `-` and `_`) or a dotted IPv4 address.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host before \":port\" is empty".into());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host:?} is not an IPv4 address")),
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok(())
}

/// A volume's host side: an absolute path or a named volume.
pub(super) fn check_volume_host(host: &str) -> Result<(), String> {
    if host.starts_with('/') && !host.contains(':') && !host.chars().any(char::is_control) {
        return Ok(());
    }
    if is_docker_name(host) {
        return Ok(());
    }
    Err(format!(
        "host side {host:?} must be an absolute path (without \":\") or a volume name"
    ))
}

/// The container side of a mount: an absolute path without `:`.
pub(super) fn check_bind(bind: &str) -> Result<(), String> {
    if !bind.starts_with('/') {
        return Err(format!("bind must be an absolute path, found {bind:?}"));
    }
    if bind.contains(':') || bind.chars().any(char::is_control) {
        return Err(format!(
            "bind must not contain \":\" or control characters, found {bind:?}"
        ));
    }
    Ok(())
}

/// `rw` or `ro`.
pub(super) fn check_mode(mode: &str) -> Result<(), String> {
    match mode {
        "rw" | "ro" => Ok(()),
        _ => Err(format!("mode must be rw or ro, found {mode:?}")),
    }
}

/// The short volume form `"/bind"` or `"/bind:mode"`; returns (bind, mode).
pub(super) fn parse_bind_spec(spec: &str) -> Result<(String, String), String> {
    let mut parts = spec.split(':');
    let bind = parts.next().unwrap_or_default();
    let mode = parts.next().unwrap_or("rw");
    if parts.next().is_some() {
        return Err(format!(
            "expected \"/container/path\" or \"/container/path:ro\", found {spec:?}"
        ));
    }
    check_bind(bind)?;
    check_mode(mode)?;
    Ok((bind.to_string(), mode.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("api", "/api"),
            ("/api/", "/api"),
            ("api/v1/", "/api/v1"),
            ("/a-b_c.d~e", "/a-b_c.d~e"),
            ("/.well-known", "/.well-known"),
            ("/...", "/..."),
        ] {
            assert_eq!(normalise_path(raw).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn path_rejections() {
        for (raw, fragment) in [
            ("//", "\"//\""),
            ("/a//b", "\"//\""),
            ("/a/", "OK"),
            ("/../etc", "\"..\""),
            ("/a/./b", "\"..\""),
            ("/a/..", "\"..\""),
            ("/%41", "\"%\""),
            ("/a?b=1", "\"?\""),
            ("/a#top", "\"#\""),
            ("/a b", "whitespace"),
            ("/a\tb", "whitespace"),
            ("/a\u{7}", "control"),
            ("/café", "ASCII"),
        ] {
            match normalise_path(raw) {
                Ok(p) => assert_eq!(fragment, "OK", "{raw:?} was accepted as {p}"),
                Err(e) => assert!(e.contains(fragment), "{raw:?}: {e}"),
            }
        }
    }

    #[test]
    fn reserved_paths() {
        assert!(is_reserved_path("/proxy"));
        assert!(is_reserved_path("/proxy/status"));
        assert!(is_reserved_path("/.well-known/acme-challenge"));
        assert!(!is_reserved_path("/proxyish"));
        assert!(!is_reserved_path("/.well-known"));
        assert!(!is_reserved_path("/"));
    }

    #[test]
    fn upstream_parsing() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:80",
            "app:1",
            "my_app.internal:65535",
            "[::1]:8080",
            "[fd00::1]:443",
        ] {
            assert_eq!(parse_upstream(ok).as_deref(), Ok(ok));
        }
        for (raw, fragment) in [
            ("localhost", "missing :port"),
            ("http://a:80", "without a scheme"),
            ("a:0", "between 1 and 65535"),
            ("a:65536", "between 1 and 65535"),
            ("a:", "between 1 and 65535"),
            ("a:+80", "between 1 and 65535"),
            (":80", "empty"),
            ("::1:80", "in brackets"),
            ("[::1]", "missing :port"),
            ("[::1:80", "missing \"]\""),
            ("[nope]:80", "not an IPv6"),
            ("1.2.3.999:80", "not an IPv4"),
            ("-bad:80", "not a valid host"),
            ("a..b:80", "not a valid host"),
            ("a b:80", "not a valid host"),
            ("a/b:80", "not a valid host"),
        ] {
            match parse_upstream(raw) {
                Ok(_) => panic!("{raw:?} was accepted"),
                Err(e) => assert!(e.contains(fragment), "{raw:?}: {e}"),
            }
        }
    }

    #[test]
    fn docker_names() {
        for ok in ["a", "A9", "nodetool-net", "my_app.v2"] {
            assert!(is_docker_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "ä"] {
            assert!(!is_docker_name(bad), "{bad}");
        }
    }

    #[test]
    fn volume_parts() {
        assert_eq!(
            parse_bind_spec("/data"),
            Ok(("/data".to_string(), "rw".to_string()))
        );
        assert_eq!(
            parse_bind_spec("/data:ro"),
            Ok(("/data".to_string(), "ro".to_string()))
        );
        assert!(
            parse_bind_spec("/data:ro:z")
                .unwrap_err()
                .contains("expected")
        );
        assert!(parse_bind_spec("data").unwrap_err().contains("absolute"));
        assert!(
            parse_bind_spec("/data:rx")
                .unwrap_err()
                .contains("rw or ro")
        );
        assert!(check_volume_host("/srv/data").is_ok());
        assert!(check_volume_host("named_volume").is_ok());
        assert!(check_volume_host("./data").is_err());
        assert!(check_volume_host("/a:b").is_err());
        assert!(check_volume_host("").is_err());
    }
}
