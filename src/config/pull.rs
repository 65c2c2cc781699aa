//! `pull` and `pull_timeout` (global defaults, and per service): when a managed service's
//! image is fetched from its registry, and how long that may take.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::model::{Pull, PullPolicy};
use super::read::{Ctx, FieldPath, Show, get};
use super::units::Span;

/// Longest `pull_timeout` accepted: a day.
const MAX_PULL_SECS: u64 = 24 * 3600;
/// Default time a pull may take.
pub(super) const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// The global default: pull a missing image, within ten minutes.
pub(super) const DEFAULT: Pull = Pull {
    policy: PullPolicy::Missing,
    timeout: DEFAULT_PULL_TIMEOUT,
};

/// `pull` and `pull_timeout` at `path`, each defaulting to `default`'s.
pub(super) fn read(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, default: Pull) -> Pull {
    let policy = get(map, "pull")
        .and_then(|v| policy(ctx, v, &path.key("pull")))
        .unwrap_or(default.policy);
    let timeout = ctx
        .key_duration(map, path, "pull_timeout", Span::secs(1, MAX_PULL_SECS))
        .unwrap_or(default.timeout);
    Pull { policy, timeout }
}

fn policy(ctx: &mut Ctx, v: &Value, path: &FieldPath) -> Option<PullPolicy> {
    let s = ctx.string(v, path, Show::Value)?;
    match s.trim() {
        "missing" => Some(PullPolicy::Missing),
        "always" => Some(PullPolicy::Always),
        "never" => Some(PullPolicy::Never),
        _ => {
            let msg = format!("expected missing, always or never, found {s:?}");
            ctx.issue(path, msg);
            None
        }
    }
}
