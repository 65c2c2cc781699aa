//! One `services:` entry: its keys, defaults, the image/upstream choice, environment and volumes.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::compose::{COMPOSE_KEYS, env_files, merge_environment, refuse_for_swarm, run_settings};
use super::expand::is_var_name;
use super::formats::{check_bind, check_mode, check_volume_host, parse_bind_spec, parse_upstream};
use super::global::{IDLE_SPAN, TIMEOUT_SPAN, run_mode, swarm_needs};
use super::names::{NameUse, check_service_name};
use super::read::{Ctx, FieldPath, Show, get};
use super::units::check_mem_bytes;
use super::{
    Backend, ContainerSpec, EndpointMode, Global, HostPattern, Pull, PullPolicy, RunMode, Service,
    ServiceAuth, SwarmSettings, Volume,
};
use super::{existing, loading, pull, route, secret};

/// Most replicas a swarm service may ask for.
const MAX_REPLICAS: u64 = 1000;

/// The keys a service may hold (and the Compose-style ones, `compose::COMPOSE_KEYS`).
const SERVICE_KEYS: &[&str] = &[
    "name",
    "host",
    "path",
    "image",
    "upstream",
    "internal_port",
    "host_port",
    "environment",
    "volumes",
    "mem_limit",
    "cpus",
    "init",
    "mode",
    "replicas",
    "endpoint_mode",
    "strip_prefix",
    "rewrite_redirects",
    "rewrite_cookie_paths",
    "allow_underscores_in_headers",
    "auth_token",
    "auth",
    "idle_timeout",
    "health_path",
    "start_timeout",
    "loading_page_after",
    "response_timeout",
    "max_tunnel_lifetime",
    "max_body_size",
    "pull",
    "pull_timeout",
];

/// Keys that only make sense for a managed container (rejected next to `upstream`, as are the
/// Compose-style ones).
const CONTAINER_KEYS: &[&str] = &[
    "pull",
    "pull_timeout",
    "internal_port",
    "host_port",
    "environment",
    "volumes",
    "mem_limit",
    "cpus",
    "init",
    "mode",
    "replicas",
    "endpoint_mode",
];

/// A service as read, plus the values the cross-service checks compare (None when invalid).
pub(super) struct ReadService {
    pub(super) service: Service,
    pub(super) name: Option<String>,
    /// `None` without a host (or with an invalid one).
    pub(super) host: Option<HostPattern>,
    pub(super) path: Option<String>,
    pub(super) host_port: Option<u16>,
}

/// Reads one entry at `path` (`services[i]`). None when it is not a mapping. `global` gives
/// the defaults (idle timeout, mode) and what `mode: swarm` depends on. Keys are read in the
/// order the entry lists them, so issues on one line keep that order.
pub(super) fn service(
    ctx: &mut Ctx,
    value: &Value,
    path: &FieldPath,
    global: &Global,
) -> Option<ReadService> {
    let Some(map) = value.as_mapping() else {
        ctx.type_error(
            value,
            path,
            "a mapping with name, path and image or upstream",
            Show::Value,
        );
        return None;
    };
    let allowed: Vec<&str> = SERVICE_KEYS
        .iter()
        .chain(COMPOSE_KEYS)
        .chain(existing::EXISTING_KEYS)
        .copied()
        .collect();
    ctx.check_keys(map, path, &allowed);

    let name = name(ctx, map, path);
    let host = route::host(ctx, map, path);
    let route = route::path(ctx, map, path, host.is_some());
    let (backend, name) = backend_and_name(ctx, map, path, global, name);
    let host_port = match &backend {
        Backend::Container(c) => c.host_port,
        Backend::Upstream(_) => None,
    };
    let strip_prefix = ctx.key_bool(map, path, "strip_prefix").unwrap_or(true);
    let rule =
        |ctx: &mut Ctx, key| prefix_rule(ctx, map, path, key, strip_prefix, route.as_deref());
    let rewrite_redirects = rule(ctx, "rewrite_redirects");
    let rewrite_cookie_paths = rule(ctx, "rewrite_cookie_paths");
    let allow_underscores = ctx.key_bool(map, path, "allow_underscores_in_headers");
    let auth_token = auth_token(ctx, map, path);
    let auth = auth(ctx, map, path, auth_token.is_some());
    let idle_timeout = ctx.key_duration(map, path, "idle_timeout", IDLE_SPAN);
    let health_path = health_path(ctx, map, path);
    let start_timeout = ctx.key_duration(map, path, "start_timeout", TIMEOUT_SPAN);
    let loading_page_after = loading::after(ctx, map, path);
    let response_timeout = ctx.key_duration(map, path, "response_timeout", TIMEOUT_SPAN);
    let max_tunnel_lifetime = ctx.key_duration(map, path, "max_tunnel_lifetime", TIMEOUT_SPAN);
    let max_body_size = max_body_size(ctx, map, path);

    Some(ReadService {
        service: Service {
            name: name.clone().unwrap_or_default(),
            host: host.clone(),
            path: route.clone().unwrap_or_else(|| "/".to_string()),
            backend,
            strip_prefix,
            rewrite_redirects,
            rewrite_cookie_paths,
            allow_underscores_in_headers: allow_underscores.unwrap_or(false),
            auth_token,
            auth,
            idle_timeout: idle_timeout.unwrap_or(global.idle_timeout),
            health_path,
            start_timeout: start_timeout.unwrap_or(Duration::from_secs(60)),
            loading_page_after: loading_page_after.unwrap_or(global.loading_page_after),
            response_timeout: response_timeout.unwrap_or(Duration::from_secs(300)),
            max_tunnel_lifetime,
            max_body_size,
        },
        name,
        host,
        path: route,
        host_port,
    })
}

/// The backend (an existing container, an image or an upstream, with its dependencies), and
/// the name if it suits what the backend makes of it.
fn backend_and_name(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    global: &Global,
    name: Option<String>,
) -> (Backend, Option<String>) {
    let mut backend = match existing::backend(
        ctx,
        map,
        path,
        name.as_deref(),
        (CONTAINER_KEYS, COMPOSE_KEYS),
    ) {
        Some(b) => b,
        None => backend(ctx, map, path, global),
    };
    let depends_on = existing::depends_on(ctx, map, path, &backend);
    if let Backend::Container(c) = &mut backend {
        c.depends_on = depends_on;
        let compose = matches!(c.existing, Some(crate::config::Existing::Compose { .. }));
        c.compose_depends_on = compose && get(map, "depends_on").is_none();
    }
    let name = name.filter(|n| {
        let usage = match &backend {
            Backend::Upstream(_) => NameUse::Upstream,
            Backend::Container(c) if c.existing.is_some() => NameUse::Upstream,
            Backend::Container(c) if c.swarm.is_some() => NameUse::Swarm,
            Backend::Container(_) => NameUse::Container,
        };
        let checked = check_service_name(n, usage);
        checked.map_err(|e| ctx.issue(&path.key("name"), e)).is_ok()
    });
    (backend, name)
}

/// `name`: required; a string (whether Docker accepts it depends on the backend, checked by
/// the caller with `names`).
fn name(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    let p = path.key("name");
    let Some(v) = get(map, "name") else {
        ctx.issue(&p, "missing required key");
        return None;
    };
    ctx.string(v, &p, Show::Value)
}

/// `rewrite_redirects` or `rewrite_cookie_paths` (`key`): on by default when a prefix is
/// stripped (`strip_prefix` and a `route` other than `/`). True when none is would do nothing,
/// so it is refused rather than ignored.
fn prefix_rule(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    key: &str,
    strip_prefix: bool,
    route: Option<&str>,
) -> bool {
    let set = ctx.key_bool(map, path, key);
    // An invalid `path` has its own issue.
    let Some(route) = route else {
        return set.unwrap_or(false);
    };
    let stripped = strip_prefix && route != "/";
    match set {
        Some(true) if !stripped => {
            let why = match strip_prefix {
                false => "strip_prefix is false",
                true => "the path is \"/\"",
            };
            let msg = format!(
                "true has no effect: nothing is stripped from this service's requests ({why}), \
                 so there is no prefix to put back; leave it out or set it to false"
            );
            ctx.issue(&path.key(key), msg);
            false
        }
        Some(on) => on,
        None => stripped,
    }
}

/// `auth_token`: read as a secret (`secret`), like the bearer token it stands in for.
fn auth_token(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    let v = get(map, "auth_token")?;
    secret::read(ctx, v, &path.key("auth_token"))
}

/// `auth`: `token` (the default) or `none` (a public service). A public service may not send
/// an `auth_token` upstream: anyone would then act with it.
fn auth(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, has_auth_token: bool) -> ServiceAuth {
    let p = path.key("auth");
    let Some(v) = ctx.key_string(map, path, "auth", Show::Value) else {
        return ServiceAuth::Token;
    };
    match v.as_str() {
        "token" => ServiceAuth::Token,
        "none" if has_auth_token => {
            let msg = "auth: none cannot go with auth_token: anyone could then reach the \
                       service with that token; let the app check its own users";
            ctx.issue(&p, msg);
            ServiceAuth::Public
        }
        "none" => ServiceAuth::Public,
        other => {
            ctx.issue(&p, format!("expected token or none, found {other:?}"));
            ServiceAuth::Token
        }
    }
}

/// `health_path`: an absolute path without spaces (it goes into a request line).
fn health_path(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    ctx.key_string(map, path, "health_path", Show::Value)
        .filter(|h| {
            let ok = h.starts_with('/') && !h.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                let msg =
                    format!("expected a path starting with \"/\" without spaces, found {h:?}");
                ctx.issue(&path.key("health_path"), msg);
            }
            ok
        })
}

/// `max_body_size`: a number of bytes or a size like `10m`.
fn max_body_size(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<u64> {
    let v = get(map, "max_body_size")?;
    ctx.size(v, &path.key("max_body_size"))
}

/// Exactly one of `image` and `upstream`; container keys only with `image`.
fn backend(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, global: &Global) -> Backend {
    let key = |k: &str| path.key(k);
    match (get(map, "image"), get(map, "upstream")) {
        (Some(_), Some(_)) => {
            ctx.issue(&key("upstream"), "give either image or upstream, not both");
            Backend::Upstream(String::new())
        }
        (None, None) => {
            ctx.issue_at(
                &key("image"),
                path,
                "missing: a service needs an image (a container to manage), an upstream \
                 (host:port), a container (an existing one to start and stop) or a \
                 compose_project",
            );
            Backend::Upstream(String::new())
        }
        (None, Some(v)) => {
            for k in CONTAINER_KEYS.iter().chain(COMPOSE_KEYS) {
                if get(map, k).is_some() {
                    let msg = format!("{k} is only allowed for image services, not with upstream");
                    ctx.issue(&key(k), msg);
                }
            }
            let p = key("upstream");
            let target = ctx
                .string(v, &p, Show::Value)
                .and_then(|s| parse_upstream(&s).map_err(|e| ctx.issue(&p, e)).ok());
            Backend::Upstream(target.unwrap_or_default())
        }
        (Some(v), None) => {
            let mut spec = container(ctx, map, path, v);
            spec.swarm = swarm_settings(ctx, map, path, global);
            spec.pull = pull::read(ctx, map, path, global.pull);
            if spec.swarm.is_some() {
                refuse_for_swarm(ctx, path, &spec.run);
            }
            Backend::Container(spec)
        }
    }
}

/// `mode` (default: the global one), and `replicas` and `endpoint_mode`, which only a swarm
/// service may set. `None` for a container.
fn swarm_settings(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    global: &Global,
) -> Option<SwarmSettings> {
    let key = |k: &str| path.key(k);
    let mode = match get(map, "mode") {
        Some(v) => {
            let mode = run_mode(ctx, v, &key("mode"));
            if mode == Some(RunMode::Swarm) {
                // A global `mode: swarm` is checked once, at its own line.
                swarm_needs(
                    ctx,
                    &key("mode"),
                    global.connect_mode,
                    global.docker_network.as_deref(),
                );
            }
            mode.unwrap_or(global.mode)
        }
        None => global.mode,
    };
    let replicas = get(map, "replicas")
        .and_then(|v| ctx.uint(v, &key("replicas"), 1, MAX_REPLICAS))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let endpoint_mode = get(map, "endpoint_mode")
        .and_then(|v| ctx.string(v, &key("endpoint_mode"), Show::Value))
        .and_then(|s| match s.trim() {
            "vip" => Some(EndpointMode::Vip),
            "dnsrr" => Some(EndpointMode::Dnsrr),
            _ => {
                ctx.issue(
                    &key("endpoint_mode"),
                    format!("expected vip or dnsrr, found {s:?}"),
                );
                None
            }
        })
        .unwrap_or(EndpointMode::Vip);
    if mode == RunMode::Container {
        for k in ["replicas", "endpoint_mode"] {
            if get(map, k).is_some() {
                let msg = format!("{k} is only used by swarm services (mode: swarm)");
                ctx.issue(&key(k), msg);
            }
        }
        return None;
    }
    Some(SwarmSettings {
        replicas,
        endpoint_mode,
    })
}

/// The settings of an `image` service.
fn container(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, image: &Value) -> ContainerSpec {
    let image = image_name(ctx, image, &path.key("image"));
    let internal_port = ctx
        .key_uint(map, path, "internal_port", 1, 65535)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(8000);
    let host_port = ctx
        .key_uint(map, path, "host_port", 1, 65535)
        .and_then(|n| u16::try_from(n).ok());
    let mem_limit = mem_limit(ctx, map, path);
    let cpus = cpus(ctx, map, path);
    let init = ctx.key_bool(map, path, "init").unwrap_or(true);
    // `environment` overrides the variables of `env_file`.
    let from_files = env_files(ctx, map, path);
    let environment = merge_environment(from_files, environment(ctx, map, path));
    let volumes = volumes(ctx, map, path);
    let run = run_settings(ctx, map, path, &volumes);
    ContainerSpec {
        image,
        internal_port,
        host_port,
        environment,
        volumes,
        mem_limit,
        cpus,
        init,
        swarm: None,
        pull: Pull {
            policy: PullPolicy::Missing,
            timeout: pull::DEFAULT_PULL_TIMEOUT,
        },
        run: Box::new(run),
        existing: None,
        depends_on: Vec::new(),
        compose_depends_on: false,
    }
}

/// `image`: a non-empty reference without whitespace; Docker judges the rest.
fn image_name(ctx: &mut Ctx, image: &Value, p: &FieldPath) -> String {
    ctx.string(image, p, Show::Value)
        .filter(|i| {
            let ok =
                !i.trim().is_empty() && !i.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                ctx.issue(
                    p,
                    format!("expected an image name like app:latest, found {i:?}"),
                );
            }
            ok
        })
        .unwrap_or_default()
}

/// `mem_limit`: a number of bytes or a size like `512m`, at least Docker's minimum.
fn mem_limit(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<u64> {
    let v = get(map, "mem_limit")?;
    let p = path.key("mem_limit");
    let bytes = ctx.size(v, &p)?;
    check_mem_bytes(bytes).map_err(|e| ctx.issue(&p, e)).ok()
}

/// `cpus`: a positive number.
fn cpus(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<f64> {
    let v = get(map, "cpus")?;
    let p = path.key("cpus");
    let n = ctx.number(v, &p)?;
    if n <= 0.0 {
        ctx.issue(&p, format!("must be greater than 0, found {n}"));
        return None;
    }
    Some(n)
}

/// `environment:` name → scalar, in file order.
fn environment(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<(String, String)> {
    let p = path.key("environment");
    let Some(v) = get(map, "environment") else {
        return Vec::new();
    };
    let Some(env) = v.as_mapping() else {
        ctx.type_error(v, &p, "a mapping of NAME: value", Show::Value);
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, val) in env {
        let Some(name) = k.as_str() else {
            ctx.type_error(k, &p, "variable names (strings) as keys", Show::Value);
            continue;
        };
        let vp = p.key(name);
        if !is_var_name(name) {
            let msg = format!(
                "{name:?} is not a valid variable name \
                 (letters, digits and \"_\", not starting with a digit)"
            );
            ctx.issue(&vp, msg);
            continue;
        }
        if let Some(s) = ctx.scalar_string(val, &vp) {
            out.push((name.to_string(), s));
        }
    }
    out
}

/// `volumes:` host → "/bind[:mode]" or {bind, mode}.
fn volumes(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<Volume> {
    let p = path.key("volumes");
    let Some(v) = get(map, "volumes") else {
        return Vec::new();
    };
    let Some(vols) = v.as_mapping() else {
        ctx.type_error(v, &p, "a mapping of host path: container path", Show::Value);
        return Vec::new();
    };
    let mut out: Vec<Volume> = Vec::new();
    for (k, val) in vols {
        let Some(host) = k.as_str() else {
            ctx.type_error(k, &p, "host paths (strings) as keys", Show::Value);
            continue;
        };
        let vp = p.key(host);
        if let Err(e) = check_volume_host(host) {
            ctx.issue(&vp, e);
            continue;
        }
        let Some((bind, mode)) = volume_target(ctx, val, &vp) else {
            continue;
        };
        if let Some(other) = out.iter().find(|o| o.bind == bind) {
            let msg = format!("{bind:?} is already the bind of volume {:?}", other.host);
            ctx.issue(&vp, msg);
            continue;
        }
        out.push(Volume {
            host: host.to_string(),
            bind,
            mode,
        });
    }
    out
}

/// The container side of one volume: (bind, mode).
fn volume_target(ctx: &mut Ctx, val: &Value, vp: &FieldPath) -> Option<(String, String)> {
    match val {
        Value::String(_) => {
            let spec = ctx.string(val, vp, Show::Value)?;
            parse_bind_spec(&spec).map_err(|e| ctx.issue(vp, e)).ok()
        }
        Value::Mapping(m) => {
            ctx.check_keys(m, vp, &["bind", "mode"]);
            let bp = vp.key("bind");
            let bind = match get(m, "bind") {
                Some(b) => ctx.string(b, &bp, Show::Value),
                None => {
                    ctx.issue(&bp, "missing required key (the path inside the container)");
                    None
                }
            };
            let bind = bind.filter(|b| check_bind(b).map_err(|e| ctx.issue(&bp, e)).is_ok());
            let mp = vp.key("mode");
            let mode = match get(m, "mode") {
                Some(v) => ctx
                    .string(v, &mp, Show::Value)
                    .filter(|m| check_mode(m).map_err(|e| ctx.issue(&mp, e)).is_ok()),
                None => Some("rw".to_string()),
            };
            Some((bind?, mode?))
        }
        _ => {
            let expected = "\"/container/path[:mode]\" or {bind: /container/path, mode: rw}";
            ctx.type_error(val, vp, expected, Show::Value);
            None
        }
    }
}
