//! A service's `host`: an exact DNS name or `*.<name>` for any one label in front of it,
//! checked and lower-cased when the config is read, and matched against a request's name. Pure.

use std::fmt;

/// The longest DNS name (RFC 1035 section 2.3.4, without the root's dot).
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// The names a service answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// One name, lower-case, without a trailing dot: `app.example.com`.
    Exact(String),
    /// `*.example.com`: any single label in front of `suffix` (kept with its leading dot,
    /// `.example.com`); neither `example.com` itself nor `a.b.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Reads a `host` value: case is ignored and one trailing dot dropped. The message says
    /// what is wrong (a port, a scheme, a path, a bad label, a misplaced `*`).
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let lower = raw.trim_end_matches('.').to_ascii_lowercase();
        if lower.is_empty() {
            return Err("expected a host name such as app.example.com, found an empty name".into());
        }
        if lower.contains("://") || lower.contains('/') {
            return Err(format!(
                "{raw:?} is not a host name: give the name alone (app.example.com), without a \
                 scheme or path"
            ));
        }
        if lower.contains(':') || lower.starts_with('[') {
            return Err(format!(
                "{raw:?} is not a host name: give a name without a port (the proxy answers \
                 every name on its own ports), and no IPv6 address"
            ));
        }
        if lower.len() > MAX_NAME {
            return Err(format!(
                "{raw:?} is {} characters long, more than a DNS name's {MAX_NAME}",
                lower.len()
            ));
        }
        match lower.strip_prefix("*.") {
            Some(rest) => {
                check_labels(raw, rest)?;
                if !rest.contains('.') && rest != "localhost" {
                    return Err(format!(
                        "{raw:?} is too wide: a wildcard needs at least two labels after \"*.\" \
                         (*.example.com)"
                    ));
                }
                Ok(HostPattern::Wildcard(format!(".{rest}")))
            }
            None => {
                check_labels(raw, &lower)?;
                Ok(HostPattern::Exact(lower))
            }
        }
    }

    /// Whether `name` (lower-case, no port, no trailing dot: `http::host::request_name`) is
    /// one of this pattern's.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(n) => n == name,
            HostPattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }

    /// An exact name, for the things only a real name can have (an ACME certificate by
    /// http-01).
    pub fn exact(&self) -> Option<&str> {
        match self {
            HostPattern::Exact(n) => Some(n),
            HostPattern::Wildcard(_) => None,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Every label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
fn check_labels(raw: &str, name: &str) -> Result<(), String> {
    for label in name.split('.') {
        let valid = (1..=MAX_LABEL).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            let why = if label.contains('*') {
                "\"*\" may only stand alone as the first label (*.example.com)".to_string()
            } else if label.is_empty() {
                "it has an empty label (\"..\" or a leading dot)".to_string()
            } else {
                format!(
                    "label {label:?} must be 1 to {MAX_LABEL} letters, digits or \"-\", \
                     not starting or ending with \"-\""
                )
            };
            return Err(format!("{raw:?} is not a valid host name: {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> HostPattern {
        HostPattern::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn exact_names_are_lower_cased_and_lose_the_trailing_dot() {
        assert_eq!(
            ok("App.Example.COM."),
            HostPattern::Exact("app.example.com".into())
        );
        assert_eq!(ok("localhost"), HostPattern::Exact("localhost".into()));
        assert_eq!(ok("127.0.0.1"), HostPattern::Exact("127.0.0.1".into()));
        assert_eq!(ok("a-1.b").to_string(), "a-1.b");
        assert_eq!(ok("a.b").exact(), Some("a.b"));
    }

    #[test]
    fn wildcards_match_one_label() {
        let w = ok("*.Example.com");
        assert_eq!(w.to_string(), "*.example.com");
        assert_eq!(w.exact(), None);
        assert!(w.matches("app.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("a.b.example.com"));
        assert!(!w.matches(".example.com"));
        assert!(!w.matches("appexample.com"));
        assert!(ok("*.localhost").matches("x.localhost"));
        let e = ok("app.example.com");
        assert!(e.matches("app.example.com"));
        assert!(!e.matches("x.app.example.com"));
    }

    #[test]
    fn bad_names_say_why() {
        let err = |raw: &str| HostPattern::parse(raw).unwrap_err();
        assert!(err("").contains("empty"));
        assert!(err("https://a.com").contains("without a scheme"));
        assert!(err("a.com/x").contains("without a scheme or path"));
        assert!(err("a.com:8443").contains("without a port"));
        assert!(err("[::1]").contains("IPv6"));
        assert!(err("a..com").contains("empty label"));
        assert!(err("-a.com").contains("\"-a\""));
        assert!(err("a_b.com").contains("letters, digits"));
        assert!(err("a.*.com").contains("first label"));
        assert!(err("**.a.com").contains("first label"));
        assert!(err("*.com").contains("too wide"));
        assert!(err("*").contains("first label"));
        assert!(err(&format!("{}.com", "a".repeat(64))).contains("letters, digits"));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(err(&long).contains("253"));
    }
}
