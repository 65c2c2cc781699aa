//! `${VAR}` expansion of one scalar value (pure: the environment is passed in).
//!
//! The forms, applied left to right in a single pass (results are never re-expanded):
//! - `${NAME}`: the variable's value (an empty value is used as is); unset is an error.
//! - `${NAME:-default}`: the variable if it is set and non-empty, else `default`, which is
//!   the literal text up to the first `}` (it may be empty; it is not expanded itself).
//! - `$$`: a literal `$`.
//! - `$` followed by anything other than `{` or `$` (or at the end) stays as it is.
//!
//! `NAME` is `[A-Za-z_][A-Za-z0-9_]*`. Anything else between `${` and `}` (including the
//! shell's `${NAME-x}` and `${NAME:?x}`) is an error rather than a silent surprise.

use std::fmt;

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` where NAME is not set and no default is given.
    Unset { name: String },
    /// A `${` with no closing `}`.
    Unterminated,
    /// The text between `${` and `}` is not `NAME` or `NAME:-default`.
    InvalidName { expr: String },
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unset { name } => write!(
                f,
                "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            ),
            ExpandError::Unterminated => {
                f.write_str("unterminated \"${\": missing \"}\" (write \"$$\" for a literal \"$\")")
            }
            ExpandError::InvalidName { expr } => write!(
                f,
                "invalid reference \"${{{expr}}}\": expected ${{NAME}} or ${{NAME:-default}} where \
                 NAME is letters, digits and \"_\", not starting with a digit"
            ),
        }
    }
}

impl std::error::Error for ExpandError {}

/// True when `name` is a valid variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True when `raw` contains at least one `${...}` reference (ignoring `$$` escapes).
/// A value is "from the environment" in this sense when this is true.
pub(super) fn has_reference(raw: &str) -> bool {
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if after.starts_with('{') {
            return true;
        }
        // Skip the second `$` of a `$$` escape so `$${X}` is not a reference.
        rest = after.strip_prefix('$').unwrap_or(after);
    }
    false
}

/// One `${...}` reference as written in a raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference<'a> {
    /// The text before any `:-` (a valid name or not: `expand` judges that).
    pub name: &'a str,
    /// Written as `${NAME:-default}`.
    pub has_default: bool,
}

/// The `${...}` references of `raw`, left to right, `$$` escapes skipped; the scan stops at a
/// `${` without its `}`. For checks that care how a value is written, not what it becomes.
pub(super) fn references(raw: &str) -> Vec<Reference<'_>> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else { break };
            let expr = &body[..end];
            out.push(match expr.split_once(":-") {
                Some((name, _)) => Reference {
                    name,
                    has_default: true,
                },
                None => Reference {
                    name: expr,
                    has_default: false,
                },
            });
            rest = &body[end + 1..];
        } else {
            rest = after.strip_prefix('$').unwrap_or(after);
        }
    }
    out
}

/// The name of the first bare `$NAME` in `raw` (the shell's and Compose's form, which
/// wakeproxy leaves as it is), `$$` escapes skipped.
pub(super) fn bare_reference(raw: &str) -> Option<&str> {
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            rest = escaped;
            continue;
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if is_var_name(&after[..len]) {
            return Some(&after[..len]);
        }
        rest = after;
    }
    None
}

/// Expands `${NAME}`, `${NAME:-default}` and `$$` in `raw` (see the module docs).
pub fn expand(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ExpandError::Unterminated)?;
            out.push_str(&reference(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves the inside of one `${...}`.
fn reference(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expr, None),
    };
    if !is_var_name(name) {
        return Err(ExpandError::InvalidName {
            expr: expr.to_string(),
        });
    }
    match (env(name), default) {
        (Some(value), None) => Ok(value),
        (Some(value), Some(_)) if !value.is_empty() => Ok(value),
        (_, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(ExpandError::Unset {
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".into()),
            "DOLLAR" => Some("a$b${X}".into()),
            _ => None,
        }
    }

    fn ok(raw: &str) -> String {
        match expand(raw, &env) {
            Ok(s) => s,
            Err(e) => panic!("{raw:?} failed: {e}"),
        }
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(ok(""), "");
        assert_eq!(ok("hello world"), "hello world");
        assert_eq!(ok("ünïcødé"), "ünïcødé");
    }

    #[test]
    fn simple_reference() {
        assert_eq!(ok("${HOME}"), "/home/me");
        assert_eq!(ok("${HOME}/data"), "/home/me/data");
        assert_eq!(ok("x${PORT}y${PORT}z"), "x8080y8080z");
        assert_eq!(ok("${EMPTY}"), "", "a set but empty variable is used as is");
    }

    #[test]
    fn default_forms() {
        assert_eq!(ok("${NOPE:-300}"), "300");
        assert_eq!(ok("${PORT:-300}"), "8080");
        assert_eq!(
            ok("${EMPTY:-fallback}"),
            "fallback",
            "empty counts as unset"
        );
        assert_eq!(ok("${NOPE:-}"), "", "the default may be empty");
        assert_eq!(
            ok("${NOPE:-a:-b c}"),
            "a:-b c",
            "default runs to the first brace"
        );
        assert_eq!(ok("${NOPE:-$X}"), "$X", "the default is not expanded");
        assert_eq!(
            ok("http://${NOPE:-localhost}:${PORT}/"),
            "http://localhost:8080/"
        );
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$${HOME}"), "${HOME}", "escaped reference stays literal");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("cost: 5$"), "cost: 5$");
        assert_eq!(ok("$HOME"), "$HOME", "bare $NAME is not expanded");
        assert_eq!(ok("a $ b"), "a $ b");
        assert_eq!(ok("$"), "$");
        assert_eq!(ok("$$${PORT}"), "$8080");
    }

    #[test]
    fn values_are_not_re_expanded() {
        assert_eq!(ok("${DOLLAR}"), "a$b${X}");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let err = expand("${PROXY_BEARER_TOKEN}", &env).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Unset {
                name: "PROXY_BEARER_TOKEN".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "environment variable PROXY_BEARER_TOKEN is not set \
             (use ${PROXY_BEARER_TOKEN:-default} for a default)"
        );
        // The first unset reference is reported even after a good one.
        assert_eq!(
            expand("${HOME}${NOPE}", &env),
            Err(ExpandError::Unset {
                name: "NOPE".into()
            })
        );
    }

    #[test]
    fn unterminated_is_an_error() {
        for raw in ["${", "${HOME", "abc ${NOPE:-x", "${HOME}${"] {
            assert_eq!(expand(raw, &env), Err(ExpandError::Unterminated), "{raw:?}");
        }
        assert!(ExpandError::Unterminated.to_string().contains("$$"));
    }

    #[test]
    fn invalid_names_are_errors() {
        for (raw, expr) in [
            ("${}", ""),
            ("${1ABC}", "1ABC"),
            ("${A B}", "A B"),
            ("${A-B}", "A-B"),
            ("${A:?msg}", "A:?msg"),
            ("${:-x}", ":-x"),
            ("${Ä}", "Ä"),
            ("${${X}}", "${X"),
        ] {
            assert_eq!(
                expand(raw, &env),
                Err(ExpandError::InvalidName { expr: expr.into() }),
                "{raw:?}"
            );
        }
        let msg = ExpandError::InvalidName { expr: "A-B".into() }.to_string();
        assert!(
            msg.contains("${A-B}") && msg.contains("${NAME:-default}"),
            "{msg}"
        );
    }

    #[test]
    fn names() {
        assert!(is_var_name("_"));
        assert!(is_var_name("A_1"));
        assert!(is_var_name("lower"));
        assert!(!is_var_name(""));
        assert!(!is_var_name("9A"));
        assert!(!is_var_name("A.B"));
    }

    #[test]
    fn references_as_written() {
        let r = |name, has_default| Reference { name, has_default };
        assert_eq!(
            references("${A}x${B:-1}$${C}$$${D:-}"),
            [r("A", false), r("B", true), r("D", true)]
        );
        assert_eq!(references("${A:-x:-y}"), [r("A", true)]);
        assert_eq!(references("plain $A"), []);
        assert_eq!(
            references("${A}${B"),
            [r("A", false)],
            "stops when unterminated"
        );
    }

    #[test]
    fn bare_references_are_found_but_not_escapes_or_braces() {
        assert_eq!(
            bare_reference("$PROXY_BEARER_TOKEN"),
            Some("PROXY_BEARER_TOKEN")
        );
        assert_eq!(bare_reference("abc$_x1-y"), Some("_x1"));
        assert_eq!(bare_reference("${A} $B"), Some("B"));
        assert_eq!(bare_reference("$$A"), None, "an escaped dollar");
        assert_eq!(bare_reference("$${A}"), None);
        assert_eq!(bare_reference("${A}"), None);
        assert_eq!(bare_reference("cost: 5$ or $9"), None, "not a name");
        assert_eq!(bare_reference("$"), None);
    }

    #[test]
    fn has_reference_detects_only_real_references() {
        assert!(has_reference("${X}"));
        assert!(has_reference("a${X:-1}"));
        assert!(has_reference("$$${X}"));
        assert!(!has_reference("$${X}"));
        assert!(!has_reference("300"));
        assert!(!has_reference("$X $"));
    }
}
