//! The waiting page's settings: `loading_page_after` (global, and per service) and the
//! `loading_page` template file (global), read and checked with the rest of the config.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::read::{Ctx, FieldPath, Show, get};
use super::units::Span;

/// How long a browser's page load waits for a starting service before it gets the waiting
/// page, by default.
pub(super) const DEFAULT_AFTER: Duration = Duration::from_secs(1);
/// `0` (or `off`) turns the page off; at most an hour, to the millisecond.
const AFTER_SPAN: Span = Span::secs(0, 3600).with_millis();
/// The largest template accepted.
const MAX_TEMPLATE: usize = 64 * 1024;

/// `loading_page_after` under `map`, when given: a duration, `0` or `off`.
pub(super) fn after(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<Duration> {
    let v = get(map, "loading_page_after")?;
    let p = path.key("loading_page_after");
    match v {
        Value::String(s) if s.trim().eq_ignore_ascii_case("off") => Some(Duration::ZERO),
        Value::Bool(false) => Some(Duration::ZERO),
        _ => ctx.duration(v, &p, AFTER_SPAN),
    }
}

/// `loading_page`: the template file (relative to the config's directory), read now, so a
/// missing or odd file is a config error rather than a broken page later.
pub(super) fn template(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    let p = path.key("loading_page");
    let name = ctx.key_string(map, path, "loading_page", Show::Value)?;
    let (file, text) = ctx.read_named_file(&name);
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            ctx.issue(&p, e);
            return None;
        }
    };
    if text.len() > MAX_TEMPLATE {
        let msg = format!(
            "{} holds {} bytes, more than the {MAX_TEMPLATE} a waiting page may have",
            file.display(),
            text.len()
        );
        ctx.issue(&p, msg);
        return None;
    }
    if !text.contains("{{script}}") && !text.contains("{{refresh}}") {
        let msg = format!(
            "{} has neither {{{{script}}}} nor {{{{refresh}}}}: the page would never move on \
             to the app once it is ready (README: the waiting page)",
            file.display()
        );
        ctx.issue(&p, msg);
        return None;
    }
    Some(text)
}
