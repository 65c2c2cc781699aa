//! The validated, typed configuration: what the rest of wakeproxy reads.
//! Nothing here parses YAML; `config::parse` builds these values after every check passed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: Global,
    /// Services in the order the file lists them.
    pub services: Vec<Service>,
}

/// How the proxy reaches a managed container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    /// By container name on `docker_network` (the proxy runs in a container on that network).
    DockerDns,
    /// Through `internal_port` published on 127.0.0.1 only.
    HostPort,
}

/// When a managed service's image is pulled from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// On a cold start that finds no image on the host (the default).
    Missing,
    /// On every cold start: a new digest under the same tag recreates the container.
    Always,
    /// Never: the image must be on the host.
    Never,
}

impl PullPolicy {
    pub fn name(self) -> &'static str {
        match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}

/// How a managed service's image is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pull {
    pub policy: PullPolicy,
    /// How long one pull may take (apart from `start_timeout`). Default 600 s.
    pub timeout: Duration,
}

/// Which Docker engine runs a managed service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// One container, started and stopped (the default).
    Container,
    /// A replicated swarm service, scaled between 0 and `replicas`.
    Swarm,
}

/// How a swarm service's name resolves on its overlay network (its `EndpointSpec.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    /// One virtual IP, load-balanced by the kernel's IPVS across the running tasks (default).
    Vip,
    /// DNS round robin: the name resolves to the running tasks' own addresses.
    Dnsrr,
}

/// Settings of a service run as a swarm service (`mode: swarm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmSettings {
    /// Replicas while the service is in use (scaled to 0 when idle). Default 1.
    pub replicas: u32,
    /// Default `vip`.
    pub endpoint_mode: EndpointMode,
}

/// The `global:` section, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// Used for the HTTPS redirect and ACME. Default `localhost`.
    pub domain: String,
    /// ACME account e-mail; required when `auto_certbot` is true.
    pub email: Option<String>,
    /// The token every non-exempt request must carry (at least 32 characters and hard to
    /// guess: the README lists the rules).
    pub bearer_token: String,
    /// Default idle time before a service is stopped; zero means never. Default 300 s.
    pub idle_timeout: Duration,
    /// Address both listeners bind to. Default `0.0.0.0`.
    pub listen_address: IpAddr,
    /// Plain HTTP port. Default 80; 0 picks an ephemeral port (tests).
    pub listen_http: u16,
    /// HTTPS port. Default 443.
    pub listen_https: u16,
    /// Docker network shared by the proxy and its services; `None` when set to "".
    /// Default `wakeproxy-net`.
    pub docker_network: Option<String>,
    /// Default `docker_dns`.
    pub connect_mode: ConnectMode,
    /// The `mode` of services that do not set their own. Default `container`.
    pub mode: RunMode,
    /// Default true.
    pub http_redirect_to_https: bool,
    /// Where ACME http-01 challenge files live. Default `/var/www/acme`.
    pub acme_webroot: PathBuf,
    /// The default certificate pair: served to clients without SNI and to names no
    /// `tls_certificates` entry covers.
    pub tls_certfile: Option<PathBuf>,
    pub tls_keyfile: Option<PathBuf>,
    /// More certificates, each served to the names in its subject alternative names (SNI).
    pub tls_certificates: Vec<CertPair>,
    /// Default false.
    pub auto_certbot: bool,
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    pub log_level: log::LevelFilter,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Connection and worker limits and the deadlines of waiting connections.
    pub limits: Limits,
    /// Name of this proxy instance: its containers carry `wakeproxy.instance=<instance>`, so
    /// two proxies on one daemon never touch each other's containers. Default `wakeproxy`.
    pub instance: String,
    /// Tunnels (WebSockets) with no byte either way for this long are closed. Default 1 h.
    /// How long a login session lasts, enforced by the server (default 7 days).
    pub session_lifetime: Duration,
    /// Default `pull` and `pull_timeout` of managed services.
    pub pull: Pull,
    /// Docker client config to read registry credentials from, instead of
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub registry_auth_file: Option<PathBuf>,
    pub tunnel_idle_timeout: Duration,
    /// On SIGTERM, how long in-flight requests may take to finish. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Stop managed containers when the proxy exits (default false: they are adopted on the
    /// next start).
    pub stop_services_on_exit: bool,
    /// Containers labelled `wakeproxy.path=...` become services (default false).
    pub discover_labels: bool,
    /// The certbot program for `auto_certbot` (default `certbot` on the PATH).
    pub certbot_path: Option<String>,
    /// Extra certbot arguments, e.g. `[--server, https://acme.example/dir, --config-dir, /x]`.
    pub certbot_args: Vec<String>,
    /// The default `loading_page_after` of services (1 s; zero = no waiting page).
    pub loading_page_after: Duration,
    /// The text of the `loading_page` template, replacing the built-in waiting page.
    pub loading_page: Option<String>,
}

/// One `tls_certificates` entry: a PEM chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

/// What commands that talk to a running proxy need from its config: where it answers and how
/// long its drain may take. Read by `config::parse_probe` without the rest of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub listen_address: IpAddr,
    /// 0 when the port is picked at start (then only the proxy's log says which).
    pub listen_http: u16,
    pub shutdown_timeout: Duration,
}

impl From<&Global> for Probe {
    fn from(g: &Global) -> Probe {
        Probe {
            listen_address: g.listen_address,
            listen_http: g.listen_http,
            shutdown_timeout: g.shutdown_timeout,
        }
    }
}

/// What clients may hold: connections, workers, and how long they may wait or dribble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections (idle ones cost a socket, not a thread). Default 20,000, lowered
    /// at start to what the open-file limit allows.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64). Default 256.
    pub max_connections_per_ip: usize,
    /// Login forms read at once per client address. Default 8.
    pub max_unauthenticated_per_ip: usize,
    /// Threads doing request work at once. Default 512.
    pub max_workers: usize,
    /// How long a complete request head may wait for a free worker before its 503. Default 5 s.
    pub worker_queue_timeout: std::time::Duration,
    /// A new connection's wait for its first byte (a TLS handshake's for its end). Default 5 s.
    pub first_byte_timeout: std::time::Duration,
    /// A request head must be complete this long after its first byte. Default 10 s.
    pub head_timeout: std::time::Duration,
    /// An idle keep-alive connection is closed after this long. Default 60 s.
    pub keep_alive_timeout: std::time::Duration,
    /// The same (and the first-byte wait) while more than half of `max_connections` are open.
    /// Default 5 s.
    pub keep_alive_timeout_busy: std::time::Duration,
    /// Request bodies slower than this (bytes per second, averaged from the start of the body
    /// after a grace period) are cut off; 0 turns the check off. Default 1024.
    pub min_body_rate: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        use std::time::Duration;
        Limits {
            max_connections: 20_000,
            max_connections_per_ip: 256,
            max_unauthenticated_per_ip: 8,
            max_workers: 512,
            worker_queue_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            keep_alive_timeout_busy: Duration::from_secs(5),
            min_body_rate: 1024,
        }
    }
}

/// One `services:` entry, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Unique; also the container's name and DNS alias. `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at
    /// most 63 characters (stricter for containers and swarm services: `config::names`).
    pub name: String,
    /// The name (or `*.` names) this service answers for; `None` answers any name (after the
    /// services with a `host` for the request's name).
    pub host: Option<super::HostPattern>,
    /// Normalised prefix: starts with `/`, no trailing `/` except the root `/` itself.
    pub path: String,
    pub backend: Backend,
    /// Remove `path` from the forwarded request target. Default true.
    pub strip_prefix: bool,
    /// Put the stripped prefix back before a response's `Location` and `Content-Location`
    /// paths (and URLs to the client's own host). Default: whether a prefix is stripped
    /// (`strip_prefix` and a `path` other than `/`); true only then.
    pub rewrite_redirects: bool,
    /// Put the stripped prefix back before a response's `Set-Cookie` `Path` values. Default
    /// and rule as for `rewrite_redirects`.
    pub rewrite_cookie_paths: bool,
    /// Forward request headers whose names contain `_` (dropped by default, as nginx does:
    /// CGI, WSGI and PHP read `X_Forwarded_For` as `X-Forwarded-For`).
    pub allow_underscores_in_headers: bool,
    /// Sent upstream as `Authorization: Bearer <auth_token>` in place of the client's header.
    pub auth_token: Option<String>,
    /// Whether requests need the proxy's token. Default `Token`.
    pub auth: ServiceAuth,
    /// This service's idle timeout (its own or the global one); zero means never.
    pub idle_timeout: Duration,
    /// Path probed for readiness, e.g. `/health`.
    pub health_path: Option<String>,
    /// How long a cold start may take before waiters get 503. Default 60 s.
    pub start_timeout: Duration,
    /// A browser's page load that waits this long for a start gets the waiting page; zero
    /// never. Default: the global one.
    pub loading_page_after: Duration,
    /// Longest wait for the upstream's response head, and between two reads of a response
    /// body (a streaming response stays open as long as bytes keep coming). Default 300 s.
    pub response_timeout: Duration,
    /// Tunnels older than this are closed, so a forgotten tab cannot keep a container up
    /// forever. Default: none.
    pub max_tunnel_lifetime: Option<Duration>,
    /// Largest request body accepted (413 above); `None` = unlimited (bodies stream).
    pub max_body_size: Option<u64>,
}

/// Who may reach a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAuth {
    /// The bearer token or a login session (the default).
    Token,
    /// Anyone (`auth: none`): an app with its own login. It receives the client's own
    /// `Authorization` header, never one that carries the proxy's token.
    Public,
}

/// What a service forwards to.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// A container wakeproxy starts and stops.
    Container(ContainerSpec),
    /// A fixed always-on `host:port` wakeproxy does not manage.
    Upstream(String),
}

/// Settings for a managed container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub image: String,
    /// Port the app listens on inside the container. Default 8000.
    pub internal_port: u16,
    /// Fixed host port in `host_port` mode; `None` means ephemeral.
    pub host_port: Option<u16>,
    /// Environment, in file order.
    pub environment: Vec<(String, String)>,
    pub volumes: Vec<Volume>,
    /// Memory limit in bytes (`mem_limit: 512m`).
    pub mem_limit: Option<u64>,
    /// CPU limit (`cpus: 0.5`).
    pub cpus: Option<f64>,
    /// Run an init process as PID 1 (Docker's `Init`). Default true.
    pub init: bool,
    /// `Some` when the service runs as a swarm service (`mode: swarm`), `None` for a container.
    pub swarm: Option<SwarmSettings>,
    /// When and how long its image is pulled (not a container setting: it changes no hash).
    pub pull: Pull,
    /// The Compose-style settings (`command`, `user`, `labels`, ...); all unset by default.
    /// Boxed: they are large and most services set none.
    pub run: Box<RunSettings>,
    /// `Some` when the service is a container wakeproxy did not create (`container:` or
    /// `compose_project:`): started and stopped, never created, removed or recreated. Then
    /// `image` is empty and only `internal_port` of the settings above means anything.
    pub existing: Option<Existing>,
    /// Containers started before this one (each waited on until ready) and stopped after the
    /// last service that needs them, in dependency order (transitively, through services
    /// that are dependencies themselves).
    pub depends_on: Vec<Existing>,
    /// A compose service without `depends_on`: its dependencies are read from compose v2's
    /// `com.docker.compose.depends_on` label on its container at each start.
    pub compose_depends_on: bool,
}

/// A container wakeproxy did not create, found by name or by compose's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Existing {
    /// `container: NAME`.
    Named(String),
    /// The container of compose service `service` in project `project`
    /// (`com.docker.compose.project` and `com.docker.compose.service`).
    Compose { project: String, service: String },
}

impl std::fmt::Display for Existing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Existing::Named(n) => write!(f, "container {n}"),
            Existing::Compose { project, service } => {
                write!(f, "compose service {service} of project {project}")
            }
        }
    }
}

/// Compose-style settings of a managed container. Each is unset (`None`, empty, false) unless
/// the config sets it, so the image's own applies. `env_file` is not here: its variables are
/// merged into `ContainerSpec::environment`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSettings {
    /// Replaces the image's `CMD`: the words, split like a shell when written as one string.
    pub command: Option<Vec<String>>,
    /// Replaces the image's `ENTRYPOINT` (and with it the image's `CMD`).
    pub entrypoint: Option<Vec<String>>,
    /// `name`, `uid`, `name:group` or `uid:gid`.
    pub user: Option<String>,
    /// An absolute path.
    pub working_dir: Option<String>,
    /// The user's labels, in file order; none starts with `wakeproxy.` (those are the proxy's).
    pub labels: Vec<(String, String)>,
    /// `/etc/hosts` entries (host name, IP address or `host-gateway`), in file order.
    pub extra_hosts: Vec<(String, String)>,
    /// Mount the container's root file system read-only.
    pub read_only: bool,
    pub tmpfs: Vec<Tmpfs>,
    /// Size of `/dev/shm` in bytes.
    pub shm_size: Option<u64>,
    /// Capabilities as Docker names them: `CAP_NET_ADMIN`, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub gpus: Option<Gpus>,
}

/// A tmpfs mount: `path[:options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    /// Absolute path inside the container.
    pub path: String,
    /// Mount options as written (`size=64m,mode=1777`), `""` for none.
    pub options: String,
    /// The `size=` option, in bytes.
    pub size: Option<u64>,
    /// The `mode=` option (octal in the config).
    pub mode: Option<u32>,
}

/// The GPUs a container asks for (Docker's `DeviceRequests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gpus {
    /// `gpus: all`.
    All,
    /// `gpus: N`, N at least 1.
    Count(u32),
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path (the YAML key).
    pub host: String,
    /// Path inside the container.
    pub bind: String,
    /// `rw` or `ro`.
    pub mode: String,
}

/// An IP network (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, `::1`, `fe80::/10`. Host bits may be set (non-strict).
    pub(super) fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// True when `ip` lies inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Service {
    /// The container spec when this service is managed.
    pub fn container(&self) -> Option<&ContainerSpec> {
        match &self.backend {
            Backend::Container(c) => Some(c),
            Backend::Upstream(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipnet_contains() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nonsense").is_none());
    }
}
