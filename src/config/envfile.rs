//! The text of a Compose `env_file`, read into variables. Pure: the text and the variable
//! lookup are passed in.
//!
//! The rules, as Compose reads these files:
//! - one `KEY=VALUE` per line; blank lines and lines starting with `#` are skipped; `export `
//!   before the key is ignored; blanks around the key and before the value are dropped;
//! - `KEY` alone takes the variable of that name from the proxy's environment, and is left
//!   out when the proxy has none;
//! - an unquoted value ends at the end of the line or at a ` #` comment, trailing blanks
//!   dropped;
//! - `'...'` is literal, and may span lines;
//! - `"..."` may span lines and takes `\n`, `\r`, `\t`, `\"`, `\\` and `\$` (any other
//!   backslash stays as written);
//! - unquoted and double-quoted values expand `${NAME}` and `${NAME:-default}` (`$$` is a
//!   `$`) from the variables above them in the file, then from the proxy's environment; a
//!   bare `$NAME` stays as written, as in the config itself;
//! - after a closing quote only blanks and a `#` comment may follow;
//! - a later line for the same key replaces the earlier value.
//!
//! Values are secrets as far as messages go: an error names the line and the key, never the
//! value nor the text of a line that could not be read as `KEY=...`.

use super::expand::{ExpandError, expand, is_var_name};

/// One problem in an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EnvFileError {
    /// 1-based line (of the key, for a value that spans lines).
    pub(super) line: usize,
    pub(super) message: String,
}

/// A value as written, before variables are looked up.
enum Raw {
    /// Single-quoted: taken as it is.
    Literal(String),
    /// Unquoted or double-quoted, escapes done: `${...}` still to expand (`\$` became `$$`).
    Expand(String),
    /// `KEY` alone: from the proxy's environment.
    FromEnv,
}

/// Reads env file `text` into variables in file order. `lookup` gives the proxy's environment.
/// Every bad line is reported.
pub(super) fn parse_env_file(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, Vec<EnvFileError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = i + 1;
        let entry = entry(&lines, &mut i);
        let resolved = entry.and_then(|e| match e {
            None => Ok(None),
            Some((key, raw)) => resolve(&key, raw, &vars, lookup).map(|v| v.map(|v| (key, v))),
        });
        match resolved {
            Ok(Some((key, value))) => match vars.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => vars.push((key, value)),
            },
            Ok(None) => {}
            Err(message) => errors.push(EnvFileError { line, message }),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

/// The value of `key`; None for a `KEY` line whose variable the proxy does not have.
fn resolve(
    key: &str,
    raw: Raw,
    vars: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match raw {
        Raw::Literal(v) => Ok(Some(v)),
        Raw::FromEnv => Ok(lookup(key)),
        Raw::Expand(text) => {
            let from = |name: &str| {
                let earlier = vars.iter().find(|(k, _)| k == name);
                earlier.map(|(_, v)| v.clone()).or_else(|| lookup(name))
            };
            expand(&text, &from).map(Some).map_err(|e| match e {
                ExpandError::Unset { name } => format!(
                    "the value of {key} uses ${{{name}}}, which is not set (above in the file \
                     or in the proxy's environment; ${{{name}:-default}} gives a default)"
                ),
                _ => format!(
                    "the value of {key} has a \"${{\" that is not ${{NAME}} or \
                     ${{NAME:-default}} (write $$ for a literal $)"
                ),
            })
        }
    }
}

/// Reads the entry starting at `lines[*i]` and moves `*i` past it (past every line of a quoted
/// value spanning lines). None for a blank or comment line.
fn entry(lines: &[&str], i: &mut usize) -> Result<Option<(String, Raw)>, String> {
    let text = lines[*i].trim_start();
    *i += 1;
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let text = match text.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => text,
    };
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key.trim_end(), Some(value)),
        None => (strip_comment(text), None),
    };
    if !is_var_name(key) {
        return Err(
            "expected KEY=VALUE or KEY, with KEY of letters, digits and \"_\", not starting \
             with a digit"
                .to_string(),
        );
    }
    let raw = match value.map(|v| (v, v.trim_start())) {
        None => Raw::FromEnv,
        Some((_, v)) if v.starts_with('\'') => {
            let (body, rest) = quoted(v, '\'', lines, i, key)?;
            after_quote(rest, key)?;
            Raw::Literal(body)
        }
        Some((_, v)) if v.starts_with('"') => {
            let (body, rest) = quoted(v, '"', lines, i, key)?;
            after_quote(rest, key)?;
            Raw::Expand(unescape(&body))
        }
        // The comment is cut before the value is trimmed: in `A= # c` it starts at the ` #`.
        Some((v, _)) => Raw::Expand(strip_comment(v).trim_start().to_string()),
    };
    Ok(Some((key.to_string(), raw)))
}

/// `text` without a ` #` comment and trailing blanks.
fn strip_comment(text: &str) -> &str {
    let bytes = text.as_bytes();
    let cut = (1..bytes.len())
        .find(|&k| bytes[k] == b'#' && matches!(bytes[k - 1], b' ' | b'\t'))
        .unwrap_or(bytes.len());
    text[..cut].trim_end()
}

/// The body of a quoted value starting at `first` (its opening quote), read on across lines
/// (joined with `\n`) until the closing quote, and the rest of the line after it. Inside
/// `"..."`, a quote after a backslash does not close it. The body is returned as written.
fn quoted<'l>(
    first: &'l str,
    quote: char,
    lines: &[&'l str],
    i: &mut usize,
    key: &str,
) -> Result<(String, &'l str), String> {
    let mut body = String::new();
    let mut text = &first[1..];
    loop {
        let mut escaped = false;
        for (k, c) in text.char_indices() {
            if c == quote && !escaped {
                body.push_str(&text[..k]);
                return Ok((body, &text[k + 1..]));
            }
            escaped = quote == '"' && c == '\\' && !escaped;
        }
        body.push_str(text);
        let Some(next) = lines.get(*i) else {
            let kind = if quote == '"' { "double" } else { "single" };
            return Err(format!(
                "the value of {key} opens a {kind} quote that is never closed"
            ));
        };
        body.push('\n');
        text = next;
        *i += 1;
    }
}

/// Only blanks and a `#` comment may follow a closing quote.
fn after_quote(rest: &str, key: &str) -> Result<(), String> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!(
            "unexpected text after the closing quote of the value of {key} \
             (quote the whole value)"
        ))
    }
}

/// A double-quoted body with its escapes done; `\$` becomes `$$`, so expansion keeps a `$`.
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/proxy".into()),
            "EMPTY" => Some(String::new()),
            "API_KEY" => Some("from-proxy".into()),
            _ => None,
        }
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        parse_env_file(text, &env).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_lines_comments_blanks_and_export() {
        let text = "# settings\n\nA=1\n  B = two words  \nexport C=3\nexport\tD=4\n   # indented comment\nexported=5\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "3"),
                ("D", "4"),
                ("exported", "5")
            ])
        );
        assert_eq!(
            vars("\u{feff}A=1\r\nB=2\r\n"),
            pairs(&[("A", "1"), ("B", "2")])
        );
        assert!(vars("").is_empty());
    }

    #[test]
    fn empty_values_and_inline_comments() {
        let text = "A=\nB=  \nC=x # note\nD=x#not-a-comment\nE=#\nF= # only a comment\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", ""),
                ("B", ""),
                ("C", "x"),
                ("D", "x#not-a-comment"),
                ("E", "#"),
                ("F", ""),
            ])
        );
    }

    #[test]
    fn key_alone_comes_from_the_proxy_environment() {
        let text = "API_KEY\nNOT_SET\nEMPTY\nHOME # comment\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("API_KEY", "from-proxy"),
                ("EMPTY", ""),
                ("HOME", "/home/proxy")
            ]),
            "an unset variable is left out"
        );
    }

    #[test]
    fn single_quotes_are_literal() {
        let text = "A='a # b'\nB='${HOME} $$ \\n'\nC=''\nE='two\nlines' # c\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", "a # b"),
                ("B", "${HOME} $$ \\n"),
                ("C", ""),
                ("E", "two\nlines"),
            ])
        );
        let e = parse_env_file("D='it''s'\n", &env).unwrap_err();
        assert_eq!(e[0].line, 1);
        assert!(
            e[0].message
                .contains("after the closing quote of the value of D")
        );
    }

    #[test]
    fn double_quotes_take_escapes_and_expand() {
        let text = r#"A="a # b"
B="line1\nline2\ttab \"q\" back\\slash"
C="\${HOME} is ${HOME}"
D="keep \x"
E="two
lines"
"#;
        assert_eq!(
            vars(text),
            pairs(&[
                ("A", "a # b"),
                ("B", "line1\nline2\ttab \"q\" back\\slash"),
                ("C", "${HOME} is /home/proxy"),
                ("D", "keep \\x"),
                ("E", "two\nlines"),
            ])
        );
    }

    #[test]
    fn unquoted_values_expand_from_the_file_then_the_proxy() {
        let text = "BASE=/srv\nDATA=${BASE}/data\nH=${HOME}\nD=${MISSING:-fallback}\nL=$$5 and $BARE\nBASE=/new\n";
        assert_eq!(
            vars(text),
            pairs(&[
                ("BASE", "/new"),
                ("DATA", "/srv/data"),
                ("H", "/home/proxy"),
                ("D", "fallback"),
                ("L", "$5 and $BARE"),
            ]),
            "a repeated key keeps its place and takes the later value"
        );
    }

    #[test]
    fn invalid_lines_are_all_reported_with_their_numbers_and_no_values() {
        let text = "OK=1\nhunter2 secret words\n1ABC=x\nX=\"unterminated\nY=2\n";
        let errors = parse_env_file(text, &env).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4], "{errors:?}");
        assert!(errors[0].message.starts_with("expected KEY=VALUE or KEY"));
        assert!(errors[1].message.starts_with("expected KEY=VALUE or KEY"));
        assert_eq!(
            errors[2].message,
            "the value of X opens a double quote that is never closed"
        );
        for e in &errors {
            assert!(!e.message.contains("hunter2") && !e.message.contains("1ABC"));
            assert!(!e.message.contains("unterminated"), "{e:?}");
        }
        let e = parse_env_file("A=1\nP='open\n", &env).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("single quote that is never closed"));
        let e = parse_env_file("T=\"x\" y\n", &env).unwrap_err();
        assert!(
            e[0].message
                .contains("after the closing quote of the value of T")
        );
        let e = parse_env_file("=value\n", &env).unwrap_err();
        assert_eq!(e[0].line, 1);
    }

    #[test]
    fn expansion_errors_name_the_key_and_variable_not_the_value() {
        let e = parse_env_file("\n\nPASS=s3cret${NOPE}\n", &env).unwrap_err();
        assert_eq!(e[0].line, 3);
        assert!(e[0].message.contains("PASS uses ${NOPE}, which is not set"));
        assert!(!e[0].message.contains("s3cret"));
        let e = parse_env_file("PASS=s3cret${bad name}\n", &env).unwrap_err();
        assert!(e[0].message.contains("value of PASS has a \"${\""));
        assert!(!e[0].message.contains("s3cret") && !e[0].message.contains("bad name"));
    }
}
