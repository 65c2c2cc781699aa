//! The request target: splitting it into path, query and authority, the path safety check done
//! before any route is matched, and the target sent upstream. Pure.

/// A request target split into its parts (absolute-form reduced to origin-form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Raw path, starting with `/`.
    pub path: &'a str,
    /// Raw query without `?`, if any.
    pub query: Option<&'a str>,
    /// The authority of an absolute-form target (`http://host/...`), which replaces Host.
    pub authority: Option<&'a str>,
}

/// Why a target was refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget(pub &'static str);

/// Splits a raw request target. Accepts origin-form and absolute-form (http/https).
pub fn split_target(raw: &str) -> Result<Target<'_>, BadTarget> {
    let (authority, rest) = if raw.starts_with('/') {
        (None, raw)
    } else {
        let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
        let after = if lower.starts_with("http://") {
            &raw[7..]
        } else if lower.starts_with("https://") {
            &raw[8..]
        } else {
            return Err(BadTarget(
                "request target must be a path or an absolute http URL",
            ));
        };
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let (auth, rest) = after.split_at(end);
        if auth.is_empty() || auth.contains('@') {
            return Err(BadTarget("invalid authority in request target"));
        }
        (Some(auth), if rest.is_empty() { "/" } else { rest })
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') {
        return Err(BadTarget("path must start with /"));
    }
    if path.contains('#') || rest.contains('#') {
        return Err(BadTarget("fragment in request target"));
    }
    check_path(path)?;
    Ok(Target {
        path,
        query,
        authority,
    })
}

/// Refuses paths that could escape a route prefix once a backend decodes them: dot segments
/// (plain or percent-encoded), encoded NUL, backslashes (plain or encoded) and encoded slashes
/// adjacent to dots.
fn check_path(path: &str) -> Result<(), BadTarget> {
    let b = path.as_bytes();
    if b.contains(&b'\\') || contains_ci(b, b"%5c") {
        return Err(BadTarget("backslash in path"));
    }
    if contains_ci(b, b"%00") {
        return Err(BadTarget("encoded NUL in path"));
    }
    // Segments end at `/` and at an encoded slash (`%2f`, any case).
    let mut start = 0;
    let mut i = 0;
    loop {
        let sep = if i == b.len() {
            0
        } else if b[i] == b'/' {
            1
        } else if b[i..].len() >= 3 && b[i..i + 3].eq_ignore_ascii_case(b"%2f") {
            3
        } else {
            i += 1;
            continue;
        };
        if is_dot_segment(&b[start..i]) {
            return Err(BadTarget("dot segment in path"));
        }
        if sep == 0 {
            return Ok(());
        }
        i += sep;
        start = i;
    }
}

/// Does `hay` contain `needle` (ASCII case-insensitive)?
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Is `seg` `.` or `..`, each dot plain or encoded as `%2e` (any case)?
fn is_dot_segment(mut seg: &[u8]) -> bool {
    let mut dots = 0;
    while !seg.is_empty() {
        if seg[0] == b'.' {
            seg = &seg[1..];
        } else if seg.len() >= 3 && seg[..3].eq_ignore_ascii_case(b"%2e") {
            seg = &seg[3..];
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// The target sent upstream: the raw path minus `prefix` when `strip`, plus the raw query.
pub fn upstream_target(path: &str, query: Option<&str>, prefix: &str, strip: bool) -> String {
    let rest = if strip && prefix != "/" {
        &path[prefix.len().min(path.len())..]
    } else {
        path
    };
    let mut t = String::with_capacity(rest.len() + 1 + query.map_or(0, |q| q.len() + 1));
    if !rest.starts_with('/') {
        t.push('/');
    }
    t.push_str(rest);
    if let Some(q) = query {
        t.push('?');
        t.push_str(q);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_stripped_byte_for_byte() {
        assert_eq!(upstream_target("/app", None, "/app", true), "/");
        assert_eq!(upstream_target("/app/", None, "/app", true), "/");
        assert_eq!(
            upstream_target("/app/a%2Fb", Some("q=%20&x"), "/app", true),
            "/a%2Fb?q=%20&x"
        );
        assert_eq!(
            upstream_target("/app/a", Some(""), "/app", false),
            "/app/a?"
        );
        assert_eq!(upstream_target("/x", None, "/", true), "/x");
    }

    #[test]
    fn split_forms() {
        let t = split_target("/a/b?x=1?y").unwrap();
        assert_eq!(
            (t.path, t.query, t.authority),
            ("/a/b", Some("x=1?y"), None)
        );
        let t = split_target("http://example.com:8080/p?q").unwrap();
        assert_eq!(
            (t.path, t.query, t.authority),
            ("/p", Some("q"), Some("example.com:8080"))
        );
        let t = split_target("HTTP://h").unwrap();
        assert_eq!(t.path, "/");
        assert!(split_target("*").is_err());
        assert!(split_target("ftp://h/").is_err());
        assert!(split_target("http://u@h/").is_err());
    }

    #[test]
    fn path_checks_agree_with_the_decode_and_compare_reference_on_every_short_path() {
        // The reference: lower-case, split at / and %2f, decode %2e, compare.
        fn reference(path: &str) -> Result<(), BadTarget> {
            let lower = path.to_ascii_lowercase();
            if lower.contains('\\') || lower.contains("%5c") {
                return Err(BadTarget("backslash in path"));
            }
            if lower.contains("%00") {
                return Err(BadTarget("encoded NUL in path"));
            }
            for seg in lower.split('/').flat_map(|s| s.split("%2f")) {
                let decoded = seg.replace("%2e", ".");
                if decoded == "." || decoded == ".." {
                    return Err(BadTarget("dot segment in path"));
                }
            }
            Ok(())
        }
        let alphabet = [
            '/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', '0', '\\', 'a',
        ];
        let mut paths = vec![String::from("/")];
        let mut checked = 0;
        for _ in 0..5 {
            let mut next = Vec::new();
            for p in &paths {
                for c in alphabet {
                    let q = format!("{p}{c}");
                    assert_eq!(check_path(&q), reference(&q), "{q}");
                    checked += 1;
                    next.push(q);
                }
            }
            paths = next;
        }
        assert_eq!(checked, 13 + 169 + 2197 + 28561 + 371293);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "/app/../secret",
            "/app/..",
            "/app/%2e%2e/x",
            "/app/.%2E/x",
            "/app/./x",
            "/app%2f..%2fx",
            "/app/a\\..\\b",
            "/app/%5c",
            "/app/%00",
        ] {
            assert!(split_target(bad).is_err(), "{bad} should be refused");
        }
        for ok in ["/app/..a", "/app/a..", "/app/.well-known", "/%2e%2eb"] {
            assert!(split_target(ok).is_ok(), "{ok} should pass");
        }
    }
}
