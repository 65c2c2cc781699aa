//! Typed reading of YAML values: `${VAR}` expansion, type checks and unknown keys, with every
//! problem collected as a `ConfigIssue` (field path plus line) instead of stopping at the first.
//!
//! The rule for quoted numbers: a string is accepted where an integer, a number or a boolean
//! is expected only when it contains a `${...}` reference (so `replicas: ${N:-2}` works); a
//! literal `"2"` is a type error, because the quotes say "string". Durations and sizes are
//! strings as well as numbers (`5m`, `"300"`, `512m`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::expand::{ExpandError, expand, has_reference};
use super::locate::Locator;
use super::units::{DURATION_FORMS, Span, parse_duration, parse_size};
use super::{ConfigIssue, ReadFile};

/// A field path as printed in messages: `services[2].volumes./data.bind`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath {
    /// Printed pieces: `services`, `[2]`, `.volumes`, `./data`, `.bind`.
    segs: Vec<String>,
}

impl FieldPath {
    /// The document root (printed as the empty string).
    pub(super) fn root() -> FieldPath {
        FieldPath::default()
    }

    /// This path followed by a mapping key.
    pub(super) fn key(&self, key: &str) -> FieldPath {
        let mut segs = self.segs.clone();
        segs.push(if segs.is_empty() {
            key.to_string()
        } else {
            format!(".{key}")
        });
        FieldPath { segs }
    }

    /// This path followed by a list index.
    pub(super) fn index(&self, index: usize) -> FieldPath {
        let mut segs = self.segs.clone();
        segs.push(format!("[{index}]"));
        FieldPath { segs }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.segs.iter().try_for_each(|s| f.write_str(s))
    }
}

/// Whether a value may be echoed in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Value,
    /// Tokens: only the kind of value is named, never its text.
    Secret,
}

/// The reading context: where lines come from, how variables resolve, how named files are
/// read, the issues so far.
pub(super) struct Ctx<'a> {
    locator: Locator,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Reads the files the config names (`env_file`); None when only text is parsed.
    read_file: Option<ReadFile<'a>>,
    /// Where relative file names start: the config file's directory.
    dir: PathBuf,
    issues: Vec<ConfigIssue>,
}

impl<'a> Ctx<'a> {
    /// A context that reads no files (an `env_file` is then an issue).
    pub(super) fn new(text: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Ctx<'a> {
        Ctx {
            locator: Locator::new(text),
            env,
            read_file: None,
            dir: PathBuf::new(),
            issues: Vec::new(),
        }
    }

    /// This context, reading the files the config names with `read`, relative to `dir`.
    pub(super) fn with_files(mut self, read: ReadFile<'a>, dir: &Path) -> Ctx<'a> {
        self.read_file = Some(read);
        self.dir = dir.to_path_buf();
        self
    }

    /// Looks a variable up in this context's environment.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// The text of a file the config names (relative to the config's directory), with the path
    /// it was read from; the error names that path.
    pub(super) fn read_named_file(&self, name: &str) -> (PathBuf, Result<String, String>) {
        let path = self.dir.join(name);
        let text = match self.read_file {
            Some(read) => read(&path).map_err(|e| format!("cannot read {}: {e}", path.display())),
            None => Err(format!(
                "cannot read {}: files are only read when the config is loaded from a file",
                path.display()
            )),
        };
        (path, text)
    }

    /// The line of `path`, or of its nearest ancestor that could be located.
    pub(super) fn line(&self, path: &FieldPath) -> Option<usize> {
        (1..=path.segs.len())
            .rev()
            .find_map(|n| self.locator.line(&path.segs[..n].concat()))
    }

    /// Records a problem with `path`, at the line of `path`.
    pub(super) fn issue(&mut self, path: &FieldPath, message: impl Into<String>) {
        let line = self.line(path);
        self.push(line, path, message.into());
    }

    /// Records a problem with `field`, at the line of `at` (for missing keys and conflicts).
    pub(super) fn issue_at(
        &mut self,
        field: &FieldPath,
        at: &FieldPath,
        message: impl Into<String>,
    ) {
        let line = self.line(at);
        self.push(line, field, message.into());
    }

    fn push(&mut self, line: Option<usize>, field: &FieldPath, message: String) {
        self.issues.push(ConfigIssue {
            line,
            field: field.to_string(),
            message,
        });
    }

    /// The issues in file order (issues without a line last, in the order found).
    pub(super) fn finish(mut self) -> Vec<ConfigIssue> {
        self.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        self.issues
    }

    /// Rejects keys not in `allowed` (and non-string keys) in a mapping at `path`.
    pub(super) fn check_keys(&mut self, map: &Mapping, path: &FieldPath, allowed: &[&str]) {
        for key in map.keys() {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => {
                    let hint = match suggest(k, allowed) {
                        Some(s) => format!(" (did you mean \"{s}\"?)"),
                        None => String::new(),
                    };
                    let msg = format!(
                        "unknown key \"{k}\"{hint}; allowed here: {}",
                        allowed.join(", ")
                    );
                    self.issue(&path.key(k), msg);
                }
                None => {
                    let found = describe(key, Show::Value);
                    self.issue(path, format!("keys must be strings, found {found}"));
                }
            }
        }
    }

    /// Records "expected X, found Y".
    pub(super) fn type_error(&mut self, v: &Value, path: &FieldPath, expected: &str, show: Show) {
        let msg = format!("expected {expected}, found {}", describe(v, show));
        self.issue(path, msg);
    }

    /// Expands `raw` with this context's environment, leaving the error to the caller.
    pub(super) fn expand(&self, raw: &str) -> Result<String, ExpandError> {
        expand(raw, self.env)
    }

    /// Expands a string scalar; returns the text and whether it held a `${...}` reference.
    fn expand_str(&mut self, raw: &str, path: &FieldPath) -> Option<(String, bool)> {
        match expand(raw, self.env) {
            Ok(s) => Some((s, has_reference(raw))),
            Err(e) => {
                self.issue(path, e.to_string());
                None
            }
        }
    }

    /// A string value, expanded.
    pub(super) fn string(&mut self, v: &Value, path: &FieldPath, show: Show) -> Option<String> {
        match v {
            Value::String(raw) => self.expand_str(raw, path).map(|(s, _)| s),
            _ => {
                self.type_error(v, path, "a string", show);
                None
            }
        }
    }

    /// A string, integer, float or boolean, in its string form (environment values).
    pub(super) fn scalar_string(&mut self, v: &Value, path: &FieldPath) -> Option<String> {
        match v {
            Value::String(raw) => self.expand_str(raw, path).map(|(s, _)| s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => {
                let msg = "expected a string, number or boolean, found null \
                           (write \"\" for an empty value)";
                self.issue(path, msg);
                None
            }
            _ => {
                self.type_error(v, path, "a string, number or boolean", Show::Value);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub(super) fn uint(&mut self, v: &Value, path: &FieldPath, min: u64, max: u64) -> Option<u64> {
        let n = match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Some(i128::from(u)),
                (None, Some(i)) => Some(i128::from(i)),
                (None, None) => None,
            },
            Value::String(raw) => self.env_scalar(raw, v, path, "an integer", |s| s.parse().ok()),
            _ => None,
        };
        let Some(n) = n else {
            if !matches!(v, Value::String(_)) {
                self.type_error(v, path, "an integer", Show::Value);
            }
            return None;
        };
        if n < i128::from(min) || n > i128::from(max) {
            let msg = if max == u64::MAX {
                format!("must be at least {min}, found {n}")
            } else {
                format!("must be between {min} and {max}, found {n}")
            };
            self.issue(path, msg);
            return None;
        }
        u64::try_from(n).ok()
    }

    /// A boolean (`true`/`false`).
    pub(super) fn boolean(&mut self, v: &Value, path: &FieldPath) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(raw) => {
                self.env_scalar(raw, v, path, "true or false", |s| s.parse().ok())
            }
            _ => {
                self.type_error(v, path, "true or false", Show::Value);
                None
            }
        }
    }

    /// A finite number (integer or float).
    pub(super) fn number(&mut self, v: &Value, path: &FieldPath) -> Option<f64> {
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(raw) => self.env_scalar(raw, v, path, "a number", |s| s.parse().ok()),
            _ => {
                self.type_error(v, path, "a number", Show::Value);
                return None;
            }
        }?;
        if !n.is_finite() {
            self.issue(path, format!("must be a finite number, found {n}"));
            return None;
        }
        Some(n)
    }

    /// A duration in `span`: an integer (seconds) or a string like `5m` or `1h30m`, which may
    /// come from `${...}`.
    pub(super) fn duration(&mut self, v: &Value, path: &FieldPath, span: Span) -> Option<Duration> {
        let parsed = match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(secs), _) => Ok(Duration::from_secs(secs)),
                (None, Some(neg)) => Err(format!(
                    "must not be negative (expected {DURATION_FORMS}), found {neg}"
                )),
                (None, None) => Err(format!("expected {DURATION_FORMS}, found a float {n}")),
            },
            Value::String(raw) => {
                let (text, _) = self.expand_str(raw, path)?;
                parse_duration(&text).map_err(|e| {
                    if text == *raw {
                        e
                    } else {
                        format!("{e} (from \"{}\")", clip(raw))
                    }
                })
            }
            _ => Err(format!(
                "expected {DURATION_FORMS}, found {}",
                describe(v, Show::Value)
            )),
        };
        parsed
            .and_then(|d| span.check(d))
            .map_err(|e| self.issue(path, e))
            .ok()
    }

    /// A size in bytes: an integer, or a string like `512m` or `1.5g` (which may come from
    /// `${...}`). Checks no range.
    pub(super) fn size(&mut self, v: &Value, path: &FieldPath) -> Option<u64> {
        let parsed = match v {
            Value::Number(n) => n.as_u64().ok_or_else(|| {
                format!("expected a whole number of bytes or a size like 512m, found {n}")
            }),
            Value::String(_) => parse_size(&self.string(v, path, Show::Value)?),
            _ => Err(format!(
                "expected a size like 512m or a number of bytes, found {}",
                describe(v, Show::Value)
            )),
        };
        parsed.map_err(|e| self.issue(path, e)).ok()
    }

    /// The duration under `name` in `map` (a child of `path`), in `span`; None when absent.
    pub(super) fn key_duration(
        &mut self,
        map: &Mapping,
        path: &FieldPath,
        name: &str,
        span: Span,
    ) -> Option<Duration> {
        let v = get(map, name)?;
        self.duration(v, &path.key(name), span)
    }

    /// The string under `name` in `map` (a child of `path`), expanded; None when absent.
    pub(super) fn key_string(
        &mut self,
        map: &Mapping,
        path: &FieldPath,
        name: &str,
        show: Show,
    ) -> Option<String> {
        let v = get(map, name)?;
        self.string(v, &path.key(name), show)
    }

    /// The integer under `name` in `map` (a child of `path`), in `min..=max`; None when absent.
    pub(super) fn key_uint(
        &mut self,
        map: &Mapping,
        path: &FieldPath,
        name: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let v = get(map, name)?;
        self.uint(v, &path.key(name), min, max)
    }

    /// The boolean under `name` in `map` (a child of `path`); None when absent.
    pub(super) fn key_bool(&mut self, map: &Mapping, path: &FieldPath, name: &str) -> Option<bool> {
        let v = get(map, name)?;
        self.boolean(v, &path.key(name))
    }

    /// Converts a string scalar for a non-string field: only text produced by expansion counts.
    /// Records the issue itself on every failure.
    fn env_scalar<T>(
        &mut self,
        raw: &str,
        v: &Value,
        path: &FieldPath,
        expected: &str,
        convert: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        if !has_reference(raw) {
            let mut msg = format!("expected {expected}, found {}", describe(v, Show::Value));
            if convert(raw.trim()).is_some() {
                msg.push_str(" (write it without quotes)");
            }
            self.issue(path, msg);
            return None;
        }
        let (text, _) = self.expand_str(raw, path)?;
        let out = convert(text.trim());
        if out.is_none() {
            let msg = format!(
                "expected {expected}, found a string \"{}\" (from \"{}\")",
                clip(&text),
                clip(raw)
            );
            self.issue(path, msg);
        }
        out
    }
}

/// Looks a key up; a YAML `null` counts as absent.
pub(super) fn get<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// Names a value's kind (and its text, unless secret) for messages.
fn describe(v: &Value, show: Show) -> String {
    let secret = show == Show::Secret;
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) if secret => "a boolean".into(),
        Value::Bool(b) => format!("a boolean {b}"),
        Value::Number(n) if n.is_f64() && secret => "a float".into(),
        Value::Number(n) if n.is_f64() => format!("a float {n}"),
        Value::Number(_) if secret => "an integer".into(),
        Value::Number(n) => format!("an integer {n}"),
        Value::String(s) if secret => format!("a string of {} characters", s.chars().count()),
        Value::String(s) => format!("a string \"{}\"", clip(s)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// Shortens long text for messages.
fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// The allowed key closest to `key`, if it is within edit distance 2.
fn suggest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_print_like_the_messages() {
        let p = FieldPath::root()
            .key("services")
            .index(2)
            .key("volumes")
            .key("/data");
        assert_eq!(p.to_string(), "services[2].volumes./data");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn line_falls_back_to_the_nearest_located_ancestor() {
        let env = |_: &str| None;
        let ctx = Ctx::new("services:\n  - name: a\n    path: /\n", &env);
        let s0 = FieldPath::root().key("services").index(0);
        assert_eq!(ctx.line(&s0.key("path")), Some(3));
        assert_eq!(ctx.line(&s0.key("image")), Some(2));
        assert_eq!(ctx.line(&FieldPath::root().key("global")), None);
    }

    #[test]
    fn describe_hides_secrets() {
        let s = Value::String("hunter2hunter2".into());
        assert_eq!(describe(&s, Show::Value), "a string \"hunter2hunter2\"");
        assert_eq!(describe(&s, Show::Secret), "a string of 14 characters");
        let n: Value = serde_yaml_ng::from_str("123456").unwrap();
        assert_eq!(describe(&n, Show::Secret), "an integer");
        assert_eq!(describe(&n, Show::Value), "an integer 123456");
        let long = Value::String("x".repeat(100));
        assert!(describe(&long, Show::Value).ends_with("...\""));
    }

    #[test]
    fn suggestions_within_two_edits() {
        let allowed = ["domain", "idle_timeout", "email"];
        assert_eq!(suggest("idle_timout", &allowed), Some("idle_timeout"));
        assert_eq!(suggest("Domian", &allowed), Some("domain"));
        assert_eq!(suggest("mail", &allowed), Some("email"));
        assert_eq!(suggest("something", &allowed), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
