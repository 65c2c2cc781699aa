//! The `global:` section: reads every key, applies defaults, records every problem.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::formats::is_docker_name;
use super::read::{Ctx, FieldPath, Show, get};
use super::tls::file_path;
use super::units::Span;
use super::{ConnectMode, Global, IpNet, Limits, Probe, RunMode};
use super::{loading, pull, secret, tls};

/// The keys `global:` may hold.
const GLOBAL_KEYS: &[&str] = &[
    "domain",
    "email",
    "bearer_token",
    "idle_timeout",
    "listen_address",
    "listen_http",
    "listen_https",
    "docker_network",
    "connect_mode",
    "mode",
    "http_redirect_to_https",
    "acme_webroot",
    "tls_certfile",
    "tls_keyfile",
    "tls_certificates",
    "auto_certbot",
    "log_level",
    "trusted_proxies",
    "max_connections",
    "max_connections_per_ip",
    "max_unauthenticated_per_ip",
    "max_workers",
    "worker_queue_timeout",
    "first_byte_timeout",
    "head_timeout",
    "keep_alive_timeout",
    "keep_alive_timeout_busy",
    "min_body_rate",
    "instance",
    "tunnel_idle_timeout",
    "session_lifetime",
    "pull",
    "pull_timeout",
    "registry_auth_file",
    "shutdown_timeout",
    "stop_services_on_exit",
    "certbot_path",
    "certbot_args",
    "loading_page_after",
    "loading_page",
    "discover_labels",
];

/// Longest accepted timeout: ten years, so later `Instant` arithmetic cannot overflow.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;
/// `idle_timeout`: 0 (never) up to `MAX_SECS`.
pub(super) const IDLE_SPAN: Span = Span::secs(0, MAX_SECS);
/// Timeouts that must be at least a second.
pub(super) const TIMEOUT_SPAN: Span = Span::secs(1, MAX_SECS);
/// The limits' deadlines of waiting connections: a second to an hour, to the millisecond.
const LIMIT_SPAN: Span = Span::secs(1, 3600).with_millis();

/// Reads `global:`. Always returns a value (defaults where something failed); the caller
/// discards it when any issue was recorded.
pub(super) fn global(ctx: &mut Ctx, value: Option<&Value>) -> Global {
    let path = FieldPath::root().key("global");
    let empty = Mapping::new();
    match value {
        Some(Value::Mapping(map)) => {
            ctx.check_keys(map, &path, GLOBAL_KEYS);
            read_global(ctx, map, &path, true)
        }
        None | Some(Value::Null) => {
            let msg = "missing required section (it must at least set bearer_token)";
            ctx.issue(&path, msg);
            read_global(ctx, &empty, &path, false)
        }
        Some(other) => {
            ctx.type_error(other, &path, "a mapping", Show::Value);
            read_global(ctx, &empty, &path, false)
        }
    }
}

/// Reads the keys of `map`; `present` is false when the section itself was missing or
/// malformed (already reported), so its required keys are not reported again. Keys are read
/// in the order the section lists them, so issues on one line keep that order.
fn read_global(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, present: bool) -> Global {
    let domain = domain(ctx, map, path);
    let email = email(ctx, map, path);
    let bearer_token = bearer_token(ctx, map, path, present);
    let idle_timeout = ctx.key_duration(map, path, "idle_timeout", IDLE_SPAN);
    let listen_address = listen_address(ctx, map, path);
    let (listen_http, listen_https) = listen_ports(ctx, map, path);
    let docker_network = docker_network(ctx, map, path);
    let connect_mode = connect_mode(ctx, map, path);
    let mode = get(map, "mode")
        .and_then(|v| run_mode(ctx, v, &path.key("mode")))
        .unwrap_or(RunMode::Container);
    if mode == RunMode::Swarm {
        swarm_needs(
            ctx,
            &path.key("mode"),
            connect_mode,
            docker_network.as_deref(),
        );
    }
    let http_redirect_to_https = ctx.key_bool(map, path, "http_redirect_to_https");
    let acme_webroot =
        file_path(ctx, map, path, "acme_webroot").unwrap_or_else(|| PathBuf::from("/var/www/acme"));
    let tls_files = tls::read(ctx, map, path);
    let auto_certbot = auto_certbot(ctx, map, path);
    let log_level = log_level(ctx, map, path);
    let trusted_proxies = trusted_proxies(ctx, map, path);
    let certbot_path = ctx.key_string(map, path, "certbot_path", Show::Value);
    let certbot_args = string_list(ctx, map, path, "certbot_args");
    let limits = limits(ctx, map, path);
    let instance = instance(ctx, map, path);
    let tunnel_idle_timeout = ctx.key_duration(map, path, "tunnel_idle_timeout", TIMEOUT_SPAN);
    let shutdown_timeout = shutdown_timeout(ctx, map, path);
    let session_span = Span::secs(60, 366 * 24 * 3600);
    let session_lifetime = ctx.key_duration(map, path, "session_lifetime", session_span);
    let pull = pull::read(ctx, map, path, pull::DEFAULT);
    let registry_auth_file = get(map, "registry_auth_file")
        .and_then(|_| file_path(ctx, map, path, "registry_auth_file"));
    let stop_services_on_exit = ctx.key_bool(map, path, "stop_services_on_exit");
    let discover_labels = ctx.key_bool(map, path, "discover_labels");
    let loading_page_after = loading::after(ctx, map, path);
    let loading_page = loading::template(ctx, map, path);

    Global {
        domain,
        email,
        bearer_token,
        idle_timeout: idle_timeout.unwrap_or(Duration::from_secs(300)),
        listen_address,
        listen_http,
        listen_https,
        docker_network,
        connect_mode,
        mode,
        http_redirect_to_https: http_redirect_to_https.unwrap_or(true),
        acme_webroot,
        tls_certfile: tls_files.certfile,
        tls_keyfile: tls_files.keyfile,
        tls_certificates: tls_files.certificates,
        auto_certbot,
        log_level,
        trusted_proxies,
        limits,
        instance,
        tunnel_idle_timeout: tunnel_idle_timeout.unwrap_or(Duration::from_secs(3600)),
        shutdown_timeout,
        session_lifetime: session_lifetime.unwrap_or(Duration::from_secs(7 * 24 * 3600)),
        pull,
        registry_auth_file,
        stop_services_on_exit: stop_services_on_exit.unwrap_or(false),
        discover_labels: discover_labels.unwrap_or(false),
        certbot_path,
        certbot_args,
        loading_page_after: loading_page_after.unwrap_or(loading::DEFAULT_AFTER),
        loading_page,
    }
}

/// Connection, worker and deadline limits; see `Limits` for the defaults.
fn limits(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Limits {
    let d = Limits::default();
    let count = |ctx: &mut Ctx, key: &str, max: u64, default: usize| {
        ctx.key_uint(map, path, key, 1, max)
            .map_or(default, |n| n as usize)
    };
    let max_connections = count(ctx, "max_connections", 1_000_000, d.max_connections);
    let max_connections_per_ip = count(
        ctx,
        "max_connections_per_ip",
        1_000_000,
        d.max_connections_per_ip,
    );
    let max_unauthenticated_per_ip = count(
        ctx,
        "max_unauthenticated_per_ip",
        100_000,
        d.max_unauthenticated_per_ip,
    );
    let max_workers = count(ctx, "max_workers", 100_000, d.max_workers);
    let secs = |ctx: &mut Ctx, key: &str, default: Duration| {
        ctx.key_duration(map, path, key, LIMIT_SPAN)
            .unwrap_or(default)
    };
    Limits {
        max_connections,
        max_connections_per_ip,
        max_unauthenticated_per_ip,
        max_workers,
        worker_queue_timeout: secs(ctx, "worker_queue_timeout", d.worker_queue_timeout),
        first_byte_timeout: secs(ctx, "first_byte_timeout", d.first_byte_timeout),
        head_timeout: secs(ctx, "head_timeout", d.head_timeout),
        keep_alive_timeout: secs(ctx, "keep_alive_timeout", d.keep_alive_timeout),
        keep_alive_timeout_busy: secs(ctx, "keep_alive_timeout_busy", d.keep_alive_timeout_busy),
        min_body_rate: ctx
            .key_uint(map, path, "min_body_rate", 0, 1 << 40)
            .unwrap_or(d.min_body_rate),
    }
}

/// `domain`: default `localhost`.
fn domain(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> String {
    match ctx.key_string(map, path, "domain", Show::Value) {
        Some(d) => check_domain(ctx, &path.key("domain"), d),
        None => "localhost".to_string(),
    }
}

/// `email`: something with an `@` and no whitespace.
fn email(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    let email = ctx.key_string(map, path, "email", Show::Value);
    if let Some(e) = &email
        && (!e.contains('@') || e.chars().any(char::is_whitespace))
    {
        ctx.issue(
            &path.key("email"),
            format!("{e:?} is not an e-mail address"),
        );
    }
    email
}

/// Where a running proxy of this config answers and how long it drains, read from `global:`
/// alone and from nothing else in it: no token, no other key (see `probe`).
pub(super) fn probe(ctx: &mut Ctx, value: Option<&Value>) -> Probe {
    let path = FieldPath::root().key("global");
    let empty = Mapping::new();
    let map = match value {
        Some(Value::Mapping(map)) => map,
        None | Some(Value::Null) => &empty,
        Some(other) => {
            ctx.type_error(other, &path, "a mapping", Show::Value);
            &empty
        }
    };
    let listen_address = listen_address(ctx, map, &path);
    let (listen_http, _) = listen_ports(ctx, map, &path);
    Probe {
        listen_address,
        listen_http,
        shutdown_timeout: shutdown_timeout(ctx, map, &path),
    }
}

/// `shutdown_timeout`: default 30 s.
fn shutdown_timeout(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Duration {
    ctx.key_duration(map, path, "shutdown_timeout", Span::secs(0, 3600))
        .unwrap_or(Duration::from_secs(30))
}

/// `listen_address`: default `0.0.0.0`.
fn listen_address(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> IpAddr {
    ctx.key_string(map, path, "listen_address", Show::Value)
        .and_then(|s| match s.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let msg = format!("expected an IP address like 0.0.0.0 or ::1, found {s:?}");
                ctx.issue(&path.key("listen_address"), msg);
                None
            }
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// `listen_http` (default 80, 0 for an ephemeral port) and `listen_https` (default 443),
/// which must differ.
fn listen_ports(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> (u16, u16) {
    let listen_http = port(ctx, map, path, "listen_http", 0).unwrap_or(80);
    let listen_https = port(ctx, map, path, "listen_https", 1).unwrap_or(443);
    if listen_http != 0 && listen_http == listen_https {
        let msg = format!("listen_http and listen_https are both {listen_http}; they must differ");
        ctx.issue(&path.key("listen_https"), msg);
    }
    (listen_http, listen_https)
}

/// `docker_network`: default `wakeproxy-net`; `""` means none.
fn docker_network(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<String> {
    match ctx.key_string(map, path, "docker_network", Show::Value) {
        None => Some("wakeproxy-net".to_string()),
        Some(s) if s.is_empty() => None,
        Some(s) => {
            if !is_docker_name(&s) {
                let msg = format!(
                    "{s:?} is not a valid Docker network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
                );
                ctx.issue(&path.key("docker_network"), msg);
            }
            Some(s)
        }
    }
}

/// `connect_mode`: default `docker_dns`.
fn connect_mode(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> ConnectMode {
    ctx.key_string(map, path, "connect_mode", Show::Value)
        .and_then(|s| match s.as_str() {
            "docker_dns" => Some(ConnectMode::DockerDns),
            "host_port" => Some(ConnectMode::HostPort),
            _ => {
                let msg = format!("expected docker_dns or host_port, found {s:?}");
                ctx.issue(&path.key("connect_mode"), msg);
                None
            }
        })
        .unwrap_or(ConnectMode::DockerDns)
}

/// `auto_certbot`: default false; true needs an `email` for the ACME account.
fn auto_certbot(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> bool {
    let auto_certbot = ctx.key_bool(map, path, "auto_certbot").unwrap_or(false);
    if auto_certbot && get(map, "email").is_none() {
        ctx.issue_at(
            &path.key("email"),
            &path.key("auto_certbot"),
            "missing: an ACME account e-mail is required when auto_certbot is true",
        );
    }
    auto_certbot
}

/// `log_level`: default `info`, any case.
fn log_level(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> log::LevelFilter {
    ctx.key_string(map, path, "log_level", Show::Value)
        .and_then(|s| match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(log::LevelFilter::Error),
            "warn" => Some(log::LevelFilter::Warn),
            "info" => Some(log::LevelFilter::Info),
            "debug" => Some(log::LevelFilter::Debug),
            "trace" => Some(log::LevelFilter::Trace),
            _ => {
                let msg = format!("expected error, warn, info, debug or trace, found {s:?}");
                ctx.issue(&path.key("log_level"), msg);
                None
            }
        })
        .unwrap_or(log::LevelFilter::Info)
}

/// `instance`: default `wakeproxy`; a Docker-style name of at most 64 characters.
fn instance(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> String {
    ctx.key_string(map, path, "instance", Show::Value)
        .filter(|n| {
            let ok = is_docker_name(n) && n.len() <= 64;
            if !ok {
                let msg = format!(
                    "expected a name of letters, digits, '_', '.' or '-' (at most 64), found {n:?}"
                );
                ctx.issue(&path.key("instance"), msg);
            }
            ok
        })
        .unwrap_or_else(|| "wakeproxy".to_string())
}

/// A `mode` value: `container` or `swarm`.
pub(super) fn run_mode(ctx: &mut Ctx, v: &Value, path: &FieldPath) -> Option<RunMode> {
    let s = ctx.string(v, path, Show::Value)?;
    match s.trim() {
        "container" => Some(RunMode::Container),
        "swarm" => Some(RunMode::Swarm),
        _ => {
            ctx.issue(path, format!("expected container or swarm, found {s:?}"));
            None
        }
    }
}

/// `mode: swarm` (at `path`) needs the proxy to reach services by name on an overlay network.
pub(super) fn swarm_needs(
    ctx: &mut Ctx,
    path: &FieldPath,
    connect_mode: ConnectMode,
    network: Option<&str>,
) {
    if connect_mode != ConnectMode::DockerDns {
        let msg = "mode: swarm needs global connect_mode: docker_dns (wakeproxy reaches swarm \
                   services by name on their overlay network, never through host ports)";
        ctx.issue(path, msg);
    }
    if network.is_none() {
        let msg = "mode: swarm needs a global docker_network (the overlay network wakeproxy \
                   and its swarm services share); it is \"\" here";
        ctx.issue(path, msg);
    }
}

/// A host name for redirects and ACME: no scheme, path or whitespace.
fn check_domain(ctx: &mut Ctx, path: &FieldPath, domain: String) -> String {
    if domain.is_empty()
        || domain.contains("://")
        || domain.contains('/')
        || domain.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        let msg =
            format!("expected a host name like example.com (no scheme or path), found {domain:?}");
        ctx.issue(path, msg);
    }
    domain
}

/// The bearer token: required, and read as a secret (`secret`): strong, never a default,
/// never echoed.
fn bearer_token(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, present: bool) -> String {
    let p = path.key("bearer_token");
    let Some(v) = get(map, "bearer_token") else {
        if present {
            let msg = "missing required key (generate a token with: openssl rand -hex 32)";
            ctx.issue(&p, msg);
        }
        return String::new();
    };
    secret::read(ctx, v, &p).unwrap_or_default()
}

fn port(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, name: &str, min: u64) -> Option<u16> {
    get(map, name)
        .and_then(|v| ctx.uint(v, &path.key(name), min, 65535))
        .and_then(|n| u16::try_from(n).ok())
}

fn trusted_proxies(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<IpNet> {
    let p = path.key("trusted_proxies");
    let Some(v) = get(map, "trusted_proxies") else {
        return Vec::new();
    };
    let Some(list) = v.as_sequence() else {
        ctx.type_error(v, &p, "a list of IP addresses or networks", Show::Value);
        return Vec::new();
    };
    let mut nets = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let ip = p.index(i);
        let Some(s) = ctx.string(item, &ip, Show::Value) else {
            continue;
        };
        match IpNet::parse(&s) {
            Some(net) => nets.push(net),
            None => ctx.issue(
                &ip,
                format!("{s:?} is not an IP address or network (like 10.0.0.0/8 or ::1)"),
            ),
        }
    }
    nets
}

/// A list of strings (each may use `${VAR}`).
fn string_list(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, name: &str) -> Vec<String> {
    let p = path.key(name);
    let Some(v) = get(map, name) else {
        return Vec::new();
    };
    let Some(list) = v.as_sequence() else {
        ctx.type_error(v, &p, "a list of strings", Show::Value);
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(i, item)| ctx.string(item, &p.index(i), Show::Value))
        .collect()
}
