//! The semantic pass over the parsed YAML tree: top-level shape, the sections, and the checks
//! across services (unique names, host and path pairs, and fixed host ports). Builds the `Config`.

use serde_yaml_ng::Value;

use super::Config;
use super::global::global;
use super::read::{Ctx, FieldPath, Show, get};
use super::service::{ReadService, service};

/// The keys allowed at the top level.
const TOP_KEYS: &[&str] = &["global", "services"];

/// Walks the whole document. None when it is not a mapping. The returned config is only
/// meaningful when `ctx` holds no issues afterwards (failed fields are filled with defaults
/// so the walk can go on and report everything).
pub(super) fn config(ctx: &mut Ctx, doc: &Value) -> Option<Config> {
    let root = FieldPath::root();
    let map = match doc {
        Value::Mapping(m) => m,
        Value::Null => {
            let msg = "the file is empty; it needs a global section and a services list";
            ctx.issue(&root, msg);
            return None;
        }
        other => {
            let expected = "a mapping with global and services at the top level";
            ctx.type_error(other, &root, expected, Show::Value);
            return None;
        }
    };
    ctx.check_keys(map, &root, TOP_KEYS);
    let global = global(ctx, map.get("global"));
    let services = services(ctx, get(map, "services"), &global);
    Some(Config { global, services })
}

fn services(ctx: &mut Ctx, value: Option<&Value>, global: &super::Global) -> Vec<super::Service> {
    let path = FieldPath::root().key("services");
    let Some(value) = value else {
        ctx.issue(&path, "missing required list of services");
        return Vec::new();
    };
    let Some(list) = value.as_sequence() else {
        ctx.type_error(value, &path, "a list of services", Show::Value);
        return Vec::new();
    };
    if list.is_empty() {
        ctx.issue(&path, "must list at least one service");
        return Vec::new();
    }
    let read: Vec<(FieldPath, ReadService)> = list
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let p = path.index(i);
            service(ctx, v, &p, global).map(|s| (p, s))
        })
        .collect();
    check_unique(ctx, &read);
    let (paths, mut services): (Vec<FieldPath>, Vec<super::Service>) =
        read.into_iter().map(|(p, r)| (p, r.service)).unzip();
    super::existing::resolve(ctx, &mut services, &paths);
    services
}

/// Names, host and path pairs, and fixed host ports must differ between services; the later one is flagged.
fn check_unique(ctx: &mut Ctx, read: &[(FieldPath, ReadService)]) {
    for (i, (p, s)) in read.iter().enumerate() {
        let earlier = &read[..i];
        if let Some(name) = &s.name
            && let Some((q, _)) = earlier.iter().find(|(_, o)| o.name.as_ref() == Some(name))
        {
            let msg = format!("duplicate service name {name:?} (also used by {q})");
            ctx.issue(&p.key("name"), msg);
        }
        if let Some(route) = &s.path
            && let Some((q, o)) = earlier
                .iter()
                .find(|(_, o)| o.path.as_ref() == Some(route) && o.host == s.host)
        {
            let on = match &s.host {
                Some(h) => format!(" on host {h}"),
                None => String::new(),
            };
            let msg = format!(
                "path {route:?}{on} of service {:?} is already used by service {:?} ({q})",
                s.service.name, o.service.name
            );
            ctx.issue(&p.key("path"), msg);
        }
        if let Some(port) = s.host_port
            && let Some((q, o)) = earlier.iter().find(|(_, o)| o.host_port == Some(port))
        {
            let msg = format!(
                "host_port {port} is already used by service {:?} ({q})",
                o.service.name
            );
            ctx.issue(&p.key("host_port"), msg);
        }
    }
}
