//! Pure helpers for building request URLs: percent-encoding, path-segment checks, filters, API versions.

use std::fmt;
use std::fmt::Write as _;

use super::error::DockerError;

/// Percent-encodes `s` for a query value (or a path segment): everything but the RFC 3986
/// unreserved characters `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Builds `?k=v&k2=v2` (empty when there are no pairs), encoding every value.
pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// The `filters` JSON the Engine API takes: `{"key": ["value", ...], ...}`.
pub(super) fn filters(pairs: &[(&str, &[&str])]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, vs)| {
            let values = vs.iter().map(|v| serde_json::Value::from(*v)).collect();
            (k.to_string(), serde_json::Value::Array(values))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Checks a container id or name, or a network name, before it goes into a URL path.
///
/// Docker names match `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (a leading `/` as in `/name` is accepted
/// and dropped); ids are hex, so they match too. Anything else could change the path
/// (`/`, `..`, `?`, `#`, `%`) and is refused before a request is sent.
pub(super) fn object_name<'a>(what: &str, s: &'a str) -> Result<&'a str, DockerError> {
    let name = s.strip_prefix('/').unwrap_or(s);
    let mut bytes = name.bytes();
    let ok = match bytes.next() {
        Some(first) => {
            first.is_ascii_alphanumeric()
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    };
    if ok && name.len() <= 255 {
        Ok(name)
    } else {
        Err(DockerError::invalid_argument(format!(
            "invalid {what} {s:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed"
        )))
    }
}

/// Checks an image reference (`name`, `name:tag`, `registry:5000/ns/name:tag@sha256:...`, or an
/// image id) before it goes into a URL path. The Engine routes `/images/{name:.*}/json`, so `/`
/// stays as it is; `.` and `..` segments, empty segments and anything outside
/// `[A-Za-z0-9._/:@-]` are refused.
pub(super) fn image_ref(s: &str) -> Result<&str, DockerError> {
    let chars_ok = !s.is_empty()
        && s.len() <= 512
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        });
    let segments_ok = s
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if chars_ok && segments_ok {
        Ok(s)
    } else {
        Err(DockerError::invalid_argument(format!(
            "invalid image reference {s:?}"
        )))
    }
}

/// An Engine API version such as `1.41`, compared numerically (`1.9` < `1.41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// The number before the dot.
    pub major: u32,
    /// The number after the dot.
    pub minor: u32,
}

impl ApiVersion {
    /// Parses `MAJOR.MINOR`; `None` for anything else.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.trim().split_once('.')?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("abcXYZ019-._~"), "abcXYZ019-._~");
        assert_eq!(
            percent_encode("a b/c?d&e=f#g%"),
            "a%20b%2Fc%3Fd%26e%3Df%23g%25"
        );
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(
            percent_encode(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn query_building() {
        assert_eq!(query(&[]), "");
        assert_eq!(query(&[("all", "true"), ("f", "a b")]), "?all=true&f=a%20b");
    }

    #[test]
    fn filters_json() {
        let f = filters(&[
            ("label", &["wakeproxy.managed=true"]),
            ("type", &["container"]),
        ]);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["label"][0], "wakeproxy.managed=true");
        assert_eq!(v["type"][0], "container");
        // A quote in a label cannot break out of the JSON string.
        let f = filters(&[("label", &["a\"b"])]);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["label"][0], "a\"b");
    }

    #[test]
    fn object_names() {
        assert_eq!(object_name("container", "web-1").unwrap(), "web-1");
        assert_eq!(object_name("container", "/web_1.x").unwrap(), "web_1.x");
        assert!(object_name("container", "0123abcdef").is_ok());
        for bad in [
            "", "/", "-x", ".x", "a/b", "..", "a?b", "a#b", "a%2F", "a b", "a\nb", "é",
        ] {
            assert!(object_name("container", bad).is_err(), "{bad:?} accepted");
        }
        let e = object_name("network", "a/b").unwrap_err();
        assert!(matches!(e, DockerError::Api { status: 400, .. }));
    }

    #[test]
    fn image_refs() {
        for ok in [
            "alpine",
            "wakeproxy-testbackend:latest",
            "localhost:5000/ns/app:1.2",
            "app@sha256:0123abcd",
            "sha256:0123abcd",
        ] {
            assert!(image_ref(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "", "/x", "x/", "a//b", "../x", "a/../b", "a/./b", "a b", "a?b", "a%2e",
        ] {
            assert!(image_ref(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn version_ordering() {
        let v = |s| ApiVersion::parse(s).unwrap();
        assert!(v("1.9") < v("1.41"));
        assert!(v("1.41") < v("1.45"));
        assert!(v("1.45") < v("2.0"));
        assert_eq!(v(" 1.41 "), v("1.41"));
        assert_eq!(v("1.41").to_string(), "1.41");
        for bad in ["", "1", "1.", ".1", "a.b", "1.4.1", "-1.4", "1.+4"] {
            assert!(ApiVersion::parse(bad).is_none(), "{bad:?} parsed");
        }
    }
}
