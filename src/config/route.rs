//! Where a service answers: its `host` (an exact name or `*.example.com`) and its `path`.

use serde_yaml_ng::Mapping;

use super::HostPattern;
use super::formats::{is_reserved_path, normalise_path};
use super::read::{Ctx, FieldPath, Show, get};

/// `host`: an exact name or `*.example.com` (`hosts`).
pub(super) fn host(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<HostPattern> {
    let p = path.key("host");
    let raw = ctx.key_string(map, path, "host", Show::Value)?;
    HostPattern::parse(&raw).map_err(|e| ctx.issue(&p, e)).ok()
}

/// `path`: normalised, and not one of the proxy's own endpoints. Required unless the service
/// has a `host` (then it defaults to `/`).
pub(super) fn path(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    has_host: bool,
) -> Option<String> {
    let p = path.key("path");
    let Some(v) = get(map, "path") else {
        if has_host {
            return Some("/".to_string());
        }
        ctx.issue(
            &p,
            "missing required key (use \"/\" to catch everything, or give a host)",
        );
        return None;
    };
    ctx.string(v, &p, Show::Value)
        .and_then(|raw| match normalise_path(&raw) {
            Ok(route) if is_reserved_path(&route) => {
                let msg = format!("{route:?} is reserved for the proxy's own endpoints");
                ctx.issue(&p, msg);
                None
            }
            Ok(route) => Some(route),
            Err(e) => {
                ctx.issue(&p, e);
                None
            }
        })
}
