//! The config loader: `config::parse` (YAML, merge keys, `${VAR}` expansion, validation, line
//! lookup) and `config::expand` on its own.
//!
//! Non-UTF-8 input is skipped (the loader reads files with `read_to_string`, which refuses it).
//! Beyond "no panic", an accepted config must satisfy the model's documented invariants, and
//! every issue of a refused one must carry a message and a line inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wakeproxy::config::{self, ExpandError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_expand(text);
    // Once with no environment (every `${X}` without a default is an issue), once with every
    // variable set to its own name (so expanded values flow into validation).
    parse(text, &|_| None);
    parse(text, &|k| Some(k.to_string()));
});

fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) {
    match config::parse(text, "fuzz", env) {
        Ok(cfg) => {
            let _ = config::services_table(&cfg);
            assert!(cfg.global.bearer_token.chars().count() >= 32);
            let mut names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
            for s in &cfg.services {
                let first = s.name.chars().next();
                assert!(first.is_some_and(|c| c.is_ascii_alphanumeric()), "service name {:?}", s.name);
                assert!(
                    s.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                    "service name {:?}",
                    s.name
                );
                assert!(s.name.len() <= 63, "service name of {} characters", s.name.len());
                assert!(s.path.starts_with('/'), "service path {:?}", s.path);
                assert!(s.path == "/" || !s.path.ends_with('/'), "service path {:?}", s.path);
            }
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate service names accepted");
        }
        Err(errs) => {
            assert!(!errs.issues.is_empty(), "refused with no issue");
            // libyaml also breaks lines at a lone CR, NEL, LS and PS, which `str::lines` does
            // not: count every break it knows (plus one for the last line and one for EOF).
            let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
            let lines = text.chars().filter(|c| breaks.contains(c)).count() + 2;
            for issue in &errs.issues {
                assert!(!issue.message.is_empty());
                if let Some(line) = issue.line {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {issue}");
                }
            }
            let _ = errs.to_string();
        }
    }
}

fn check_expand(text: &str) {
    // With every variable set, `${NAME}` can only fail on syntax.
    match config::expand(text, &|k| Some(k.to_string())) {
        Ok(out) => {
            if !text.contains('$') {
                assert_eq!(out, text);
            }
        }
        Err(ExpandError::Unset { name }) => panic!("{name} reported unset with every variable set"),
        Err(e) => {
            let _ = e.to_string();
            assert!(text.contains("${"), "{e:?} without any \"${{\"");
        }
    }
    // With none set, the verdict on syntax is the same; only Unset may be added.
    match (config::expand(text, &|k| Some(k.to_string())), config::expand(text, &|_| None)) {
        (Ok(_), Ok(_) | Err(ExpandError::Unset { .. })) => {}
        (Err(a), Err(b)) if a == b => {}
        (Err(_), Err(ExpandError::Unset { .. })) => {}
        (a, b) => panic!("environment changed the syntax verdict: all set {a:?}, none set {b:?}"),
    }
}
