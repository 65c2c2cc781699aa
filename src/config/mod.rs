//! Configuration: reading `proxy.yaml`, `${VAR}` expansion, validation, and the typed model.
//!
//! [`parse`] reports every problem at once, each with its field path and line:
//! 1. the text is parsed into a generic YAML tree (a syntax error is the one issue reported);
//! 2. the tree is walked by hand (`validate`, `global`, `service`), expanding `${VAR}` in
//!    string values as they are read (`expand`; tokens by the stricter rules of `secret`)
//!    and collecting issues (`read`);
//! 3. line numbers come from a scan of the raw text (`locate`).
//!
//! [`parse`] reads the text alone; [`parse_with`] also reads the files the config names
//! (`env_file`, relative to the config's directory), as [`load`] does.
//!
//! [`parse_probe`] reads only what commands talking to a running proxy need (`Probe`), so
//! that they work without the token's variable.
//!
//! YAML parsing stays behind [`document`] so the YAML crate can change in one place.

mod model;
pub use model::*;

mod compose;
mod compose_values;
mod envfile;
mod existing;
mod expand;
mod formats;
mod global;
mod hosts;
mod labels;
mod loading;
mod locate;
mod names;
mod pull;
mod read;
mod route;
mod secret;
mod service;
mod shellwords;
mod table;
mod tls;
mod units;
mod validate;

#[cfg(test)]
mod tests;

pub use expand::{ExpandError, expand};
pub use hosts::HostPattern;
pub use labels::{PATH_LABEL, admit_discovered, discovered_service};
pub use table::services_table;

use std::fmt;
use std::path::Path;

/// What a valid config still deserves a loud word about: the public services (`auth: none`),
/// which anyone who reaches the proxy reaches without the token.
pub fn warnings(config: &Config) -> Vec<String> {
    config
        .services
        .iter()
        .filter(|s| s.auth == ServiceAuth::Public)
        .map(|s| {
            let at = match &s.host {
                Some(h) => format!("{h}{}", s.path),
                None => s.path.clone(),
            };
            format!(
                "service {} ({at}) is PUBLIC (auth: none): anyone who can reach the proxy can \
                 reach it and wake it without the token; only its own login protects it",
                s.name
            )
        })
        .collect()
}

/// Reads a file the config names (an `env_file`), given its path.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Every problem found, in file order.
#[derive(Debug)]
pub struct ConfigErrors {
    /// The file (or other source) named in messages.
    pub source: String,
    pub issues: Vec<ConfigIssue>,
}

/// One problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Field path such as `services[2].mem_limit`; empty for the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    /// `<field>: <message>` (or just the message when the field is empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per issue: `<source>:<line>: <field>: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.source)?;
            if let Some(line) = issue.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates config text. `source` names the file in messages. `env` looks up
/// variables for `${VAR}` expansion. No file is read: a service with an `env_file` is refused
/// (see [`parse_with`]).
pub fn parse(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    parse_in(read::Ctx::new(text, env), text, source)
}

/// Like [`parse`], reading the files the config names (`env_file`) with `read_file`, relative
/// paths from `dir` (the config file's directory).
pub fn parse_with(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: ReadFile,
    dir: &Path,
) -> Result<Config, ConfigErrors> {
    parse_in(
        read::Ctx::new(text, env).with_files(read_file, dir),
        text,
        source,
    )
}

fn parse_in(mut ctx: read::Ctx, text: &str, source: &str) -> Result<Config, ConfigErrors> {
    let doc = document(text, source)?;
    let config = validate::config(&mut ctx, &doc);
    let issues = ctx.finish();
    match config {
        Some(config) if issues.is_empty() => Ok(config),
        _ => Err(ConfigErrors {
            source: source.to_string(),
            issues,
        }),
    }
}

/// Reads only the `Probe` settings of config text (`listen_address`, `listen_http`,
/// `shutdown_timeout`), checking those and nothing else: an unset token variable, say, is
/// not an error here.
pub fn parse_probe(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Probe, ConfigErrors> {
    let doc = document(text, source)?;
    let mut ctx = read::Ctx::new(text, env);
    if !doc.is_mapping() {
        let expected = "a mapping with global and services at the top level";
        ctx.issue(&read::FieldPath::root(), format!("expected {expected}"));
    }
    let probe = global::probe(&mut ctx, doc.get("global"));
    let issues = ctx.finish();
    if issues.is_empty() {
        Ok(probe)
    } else {
        Err(ConfigErrors {
            source: source.to_string(),
            issues,
        })
    }
}

/// The YAML tree of `text`, merge keys applied; a syntax error is the one issue.
fn document(text: &str, source: &str) -> Result<serde_yaml_ng::Value, ConfigErrors> {
    let errors = |issues| ConfigErrors {
        source: source.to_string(),
        issues,
    };
    let mut doc = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(errors(vec![ConfigIssue {
                line: e.location().map(|l| l.line()),
                field: String::new(),
                message: format!("invalid YAML: {e}"),
            }]));
        }
    };
    // `<<: *anchor` merge keys are applied before the walk, as YAML 1.1 users expect.
    if let Err(e) = doc.apply_merge() {
        return Err(errors(vec![ConfigIssue {
            line: None,
            field: String::new(),
            message: format!("invalid YAML merge key (<<): {e}"),
        }]));
    }
    Ok(doc)
}

/// Reads the file and calls [`parse_with`] with the process environment, reading `env_file`s
/// from the file system relative to the config's directory. A missing or unreadable config
/// file is one issue naming the path and the OS error.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let read: ReadFile = &|p| std::fs::read_to_string(p);
    read_file(path, |text, source, env| {
        parse_with(text, source, env, read, &dir)
    })
}

/// The 1-based line of `field` (`services[1].depends_on`) in config `text`, when it can be
/// found (for problems found after the config was read, such as a missing container).
pub fn line_of(text: &str, field: &str) -> Option<usize> {
    locate::Locator::new(text).line(field)
}

/// Reads the file and calls [`parse_probe`] with the process environment.
pub fn load_probe(path: &Path) -> Result<Probe, ConfigErrors> {
    read_file(path, parse_probe)
}

fn read_file<T>(
    path: &Path,
    parse: impl Fn(&str, &str, &dyn Fn(&str) -> Option<String>) -> Result<T, ConfigErrors>,
) -> Result<T, ConfigErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &source, &|name| std::env::var(name).ok()),
        Err(e) => Err(ConfigErrors {
            source: source.clone(),
            issues: vec![ConfigIssue {
                line: None,
                field: String::new(),
                message: format!("cannot read config file {source}: {e}"),
            }],
        }),
    }
}
