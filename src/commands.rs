//! What each subcommand does: `proxy`, `proxy-validate-config`, `proxy-status`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::activity::Activity;
use crate::certbot::Certbot;
use crate::cli::{CliError, ProxyArgs, StatusArgs, ValidateArgs};
use crate::config::Global;
use crate::config::{self, Config};
use crate::docker::{Docker, DockerError, Swarm};
use crate::lifecycle::engine::DockerEngine;
use crate::lifecycle::swarm::SwarmEngine;
use crate::lifecycle::{follow_events, Lifecycle};
use crate::proxy::{Containers, Proxy};
use crate::server::Server;
use crate::tls::{self, watch::Watcher, CertFiles};

/// Connects the Docker lifecycle when the config has container services: adopts running
/// containers, starts the reaper and (once per process) the events follower. A daemon that is
/// down is not fatal: container services answer 503 until it comes back. `first` is false for
/// a reload: then stale containers are left to the previous lifecycle.
fn start_lifecycle(
    config: &Config,
    activity: Arc<Vec<Arc<Activity>>>,
    first: bool,
    events_running: &AtomicBool,
) -> Result<Option<Lifecycle>, CliError> {
    if config.services.iter().all(|s| s.container().is_none()) {
        return Ok(None);
    }
    let docker = Docker::from_env().map_err(|e| CliError::Startup(e.to_string()))?;
    let containers = Arc::new(DockerEngine {
        docker: docker.clone(),
    });
    let swarm = Arc::new(SwarmEngine::new(docker.clone()));
    let lifecycle = Lifecycle::with_engines(config, containers, swarm, activity);
    if first {
        match docker.negotiate() {
            Ok(v) => log::info!("Docker daemon at {} (API {v})", docker.socket().display()),
            Err(e @ DockerError::TooOld { .. }) => return Err(CliError::Startup(e.to_string())),
            Err(e) => log::warn!("{e}; container services answer 503 until it is reachable"),
        }
    }
    let swarm_services: Vec<&str> = config
        .services
        .iter()
        .filter(|s| s.container().is_some_and(|c| c.swarm.is_some()))
        .map(|s| s.name.as_str())
        .collect();
    if !swarm_services.is_empty() {
        match Swarm::from_docker(docker.clone()).info() {
            Ok(i) if i.manager => log::info!("swarm manager (node {}): swarm services {}", i.node_id, swarm_services.join(", ")),
            Ok(i) => log::warn!(
                "services {} have mode: swarm, but this Docker daemon is not a swarm manager (swarm state: {}): \
                 they answer 503 until it is one",
                swarm_services.join(", "),
                i.state
            ),
            Err(e) => log::debug!("swarm state: {e}"),
        }
    }
    let stock = if first {
        lifecycle.reconcile()
    } else {
        lifecycle.adopt_running()
    };
    if let Err(e) = stock {
        log::warn!("cannot take stock of existing containers yet: {e}");
    }
    lifecycle.spawn_threads();
    if !events_running.swap(true, Ordering::SeqCst) {
        let (l, instance) = (lifecycle.clone(), config.global.instance.clone());
        std::thread::Builder::new()
            .name("docker-events".into())
            .spawn(move || follow_events(l, docker, instance))
            .map_err(|e| {
                CliError::Startup(format!("cannot start the Docker events thread: {e}"))
            })?;
    }
    Ok(Some(lifecycle))
}

/// What a reload needs besides the proxy.
struct Runtime {
    proxy: Arc<Proxy>,
    config_path: PathBuf,
    lifecycle: Mutex<Option<Lifecycle>>,
    events_running: AtomicBool,
}

fn as_containers(l: &Option<Lifecycle>) -> Option<Arc<dyn Containers>> {
    l.clone().map(|l| Arc::new(l) as Arc<dyn Containers>)
}

/// `proxy`: connects Docker, binds, serves until the drain after SIGTERM ends.
pub fn run_proxy(args: &ProxyArgs, config: Config) -> Result<(), CliError> {
    let proxy = Arc::new(Proxy::new(config.clone()));
    let rt = Arc::new(Runtime {
        proxy: proxy.clone(),
        config_path: args.config.clone(),
        lifecycle: Mutex::new(None),
        events_running: AtomicBool::new(false),
    });
    let activity = proxy.activity_for(&config);
    let lifecycle = start_lifecycle(&config, activity.clone(), true, &rt.events_running)?;
    let g = &config.global;
    // Certificate files are checked before anything is bound: bad ones are a start-up error.
    let tls = if args.no_tls { None } else { prepare_tls(g)? };
    let addr = SocketAddr::new(g.listen_address, g.listen_http);
    proxy.install(config.clone(), activity, as_containers(&lifecycle));
    *rt.lifecycle.lock() = lifecycle;
    let server = Server::bind(addr, proxy.clone())
        .map_err(|e| CliError::Startup(format!("cannot listen on {addr}: {e}")))?;
    let local = server
        .local_addr()
        .map_err(|e| CliError::Startup(e.to_string()))?;
    log::info!("listening on http://{local}");
    if let Some(plan) = tls {
        start_tls(&proxy, plan)?;
    }
    for s in &config.services {
        log::info!("route {} -> {}", s.path, s.name);
    }
    watch_signals(rt.clone())?;
    server.run();
    finish_drain(&proxy);
    Ok(())
}

/// Global settings a reload cannot change (listeners, TLS, identity): they need a restart.
fn needs_restart(old: &Global, new: &Global) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            v.push(name);
        }
    };
    check(old.listen_address != new.listen_address, "listen_address");
    check(old.listen_http != new.listen_http, "listen_http");
    check(old.listen_https != new.listen_https, "listen_https");
    check(
        old.tls_certfile != new.tls_certfile || old.tls_keyfile != new.tls_keyfile,
        "tls_certfile/tls_keyfile",
    );
    check(old.auto_certbot != new.auto_certbot, "auto_certbot");
    check(old.domain != new.domain, "domain");
    check(old.acme_webroot != new.acme_webroot, "acme_webroot");
    check(old.instance != new.instance, "instance");
    check(
        old.max_connections != new.max_connections,
        "max_connections",
    );
    v
}

/// SIGHUP: reads and validates the config again. An invalid one changes nothing. A valid one
/// applies to new requests; requests, streams and tunnels already open carry on with the
/// previous configuration. Removed (and changed) services are stopped once idle; changed
/// services are recreated on their next start.
fn reload(rt: &Runtime) {
    let new = match config::load(&rt.config_path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload refused, the running configuration stays:\n{e}");
            return;
        }
    };
    let old = rt.proxy.gen();
    let fixed = needs_restart(&old.config.global, &new.global);
    if !fixed.is_empty() {
        log::warn!(
            "reload: changes to {} take effect only after a restart",
            fixed.join(", ")
        );
    }
    let activity = rt.proxy.activity_for(&new);
    let next = match start_lifecycle(&new, activity.clone(), false, &rt.events_running) {
        Ok(l) => l,
        Err(e) => {
            log::error!("reload refused, the running configuration stays: {e}");
            return;
        }
    };
    rt.proxy
        .install(new.clone(), activity, as_containers(&next));
    let mut current = rt.lifecycle.lock();
    if let Some(prev) = current.as_ref() {
        let now = next.as_ref().map(Lifecycle::settings).unwrap_or_default();
        let unchanged = prev
            .settings()
            .into_iter()
            .filter(|(name, hash)| now.get(name) == Some(hash))
            .map(|(name, _)| name)
            .collect();
        prev.retire(unchanged, next.clone());
    }
    *current = next;
    let names = |c: &Config| {
        c.services
            .iter()
            .map(|s| s.name.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (before, after) = (names(&old.config), names(&new));
    log::info!(
        "configuration reloaded: {} services (added: {:?}, removed: {:?})",
        new.services.len(),
        after.difference(&before).collect::<Vec<_>>(),
        before.difference(&after).collect::<Vec<_>>()
    );
}

/// TLS as configured: the files to serve, what was found in them at start-up, and certbot.
struct TlsPlan {
    files: CertFiles,
    prepared: tls::Prepared,
    certbot: Option<Certbot>,
}

/// `None` when TLS is not configured. With `auto_certbot` and no `tls_certfile`, the files
/// are where certbot puts them.
fn prepare_tls(g: &Global) -> Result<Option<TlsPlan>, CliError> {
    let certbot = match g.auto_certbot {
        true => Some(Certbot::from_env(g).map_err(CliError::Startup)?),
        false => None,
    };
    let files = match (&g.tls_certfile, &g.tls_keyfile, &certbot) {
        (Some(cert), Some(key), _) => CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, Some(c)) => c.default_files(),
        _ => return Ok(None),
    };
    let prepared = tls::prepare(&files).map_err(CliError::Startup)?;
    Ok(Some(TlsPlan {
        files,
        prepared,
        certbot,
    }))
}

/// Binds the HTTPS port, serves the certificate found at start-up (or waits for one), and
/// starts the reload watcher, certbot's thread and the HTTPS accept loop.
fn start_tls(proxy: &Arc<Proxy>, plan: TlsPlan) -> Result<(), CliError> {
    let current = proxy.gen();
    let g = &current.config.global;
    let addr = SocketAddr::new(g.listen_address, g.listen_https);
    let TlsPlan {
        files,
        prepared,
        certbot,
    } = plan;
    let server = Server::bind_tls(addr, proxy.clone(), prepared.config.clone())
        .map_err(|e| CliError::Startup(format!("cannot listen on {addr}: {e}")))?;
    let local = server
        .local_addr()
        .map_err(|e| CliError::Startup(e.to_string()))?;
    proxy.https.set_port(local.port());
    log::info!("listening on https://{local}");
    let watcher = Watcher {
        files: files.clone(),
        store: prepared.store.clone(),
        state: proxy.https.clone(),
        provider: prepared.provider.clone(),
        domain: g.domain.clone(),
    };
    let stamp = match prepared.initial {
        Some((loaded, stamp)) => {
            watcher.install(loaded);
            Some(stamp)
        }
        None => {
            log::info!(
                "waiting for certificates: {} or {} does not exist yet; until they do, the full proxy is served over plain HTTP, and HTTPS starts as soon as they appear{}",
                files.cert.display(),
                files.key.display(),
                if certbot.is_some() { " (auto_certbot: running certbot)" } else { "" }
            );
            None
        }
    };
    let startup = |e: std::io::Error| CliError::Startup(format!("cannot start a TLS thread: {e}"));
    let reload = watcher.spawn(stamp).map_err(startup)?;
    if let Some(c) = certbot {
        c.spawn(
            stamp.is_none(),
            files,
            prepared.store,
            proxy.https.clone(),
            reload,
        )
        .map_err(startup)?;
    }
    std::thread::Builder::new()
        .name("https".into())
        .spawn(move || server.run())
        .map_err(startup)?;
    Ok(())
}

/// SIGTERM or SIGINT starts a graceful shutdown (a second one exits at once); SIGHUP reloads.
fn watch_signals(rt: Arc<Runtime>) -> Result<(), CliError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| CliError::Startup(format!("cannot install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let proxy = &rt.proxy;
                if sig == SIGHUP {
                    log::info!("SIGHUP: reloading {}", rt.config_path.display());
                    reload(&rt);
                    continue;
                }
                if proxy.drain.begin() {
                    log::info!(
                        "shutting down: no new connections; in-flight requests get up to {} s",
                        proxy.gen().config.global.shutdown_timeout.as_secs()
                    );
                    proxy.tunnels.close_all(None);
                } else {
                    log::warn!("second stop signal: exiting now");
                    std::process::exit(1);
                }
            }
        })
        .map_err(|e| CliError::Startup(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// After the listeners stopped: waits for open connections to finish (up to
/// `shutdown_timeout`), then stops the managed containers if so configured.
fn finish_drain(proxy: &Proxy) {
    let current = proxy.gen();
    let g = &current.config.global;
    let deadline = Instant::now() + g.shutdown_timeout;
    while proxy.drain.open() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = proxy.drain.open();
    if left > 0 {
        log::warn!(
            "{left} connections still open after shutdown_timeout ({} s): closing them",
            g.shutdown_timeout.as_secs()
        );
    }
    if g.stop_services_on_exit {
        if let Some(c) = &current.containers {
            c.stop_all();
        }
    }
    log::info!("stopped");
}

/// `proxy-validate-config`: prints the services table, or every error.
pub fn run_validate(args: &ValidateArgs) -> Result<(), CliError> {
    let cfg = config::load(&args.config).map_err(CliError::Config)?;
    print!("{}", config::services_table(&cfg));
    for w in crate::tls::config_warnings(&cfg.global) {
        println!("warning: {w}");
    }
    println!(
        "{}: valid ({} services)",
        args.config.display(),
        cfg.services.len()
    );
    Ok(())
}

/// The status URL for a server URL: `/proxy/status` is appended unless a path is given.
pub fn status_url(server_url: &str) -> String {
    let trimmed = server_url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    if after_scheme.contains('/') {
        trimmed.to_string()
    } else {
        format!("{trimmed}/proxy/status")
    }
}

/// A ureq agent for `proxy-status`, trusting `cacert` (PEM) instead of the public roots.
fn status_agent(cacert: Option<&std::path::Path>) -> Result<ureq::Agent, CliError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let mut tls = TlsConfig::builder().provider(TlsProvider::Rustls);
    if let Some(path) = cacert {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::Status(format!("cannot read {}: {e}", path.display())))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(CliError::Status(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .into())
}

fn fetch_status(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
) -> Result<serde_json::Value, CliError> {
    let mut res = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| CliError::Status(format!("cannot reach {url}: {e}")))?;
    let status = res.status().as_u16();
    let body = res
        .body_mut()
        .read_to_string()
        .map_err(|e| CliError::Status(format!("reading the answer from {url}: {e}")))?;
    if status == 401 {
        return Err(CliError::Status(format!(
            "{url} refused the bearer token (401)"
        )));
    }
    if status != 200 {
        return Err(CliError::Status(format!(
            "{url} answered {status}: {}",
            body.trim()
        )));
    }
    serde_json::from_str(&body)
        .map_err(|e| CliError::Status(format!("{url} did not answer with status JSON: {e}")))
}

/// Renders the status JSON as a table.
pub fn status_table(v: &serde_json::Value) -> String {
    let cols = [
        "NAME",
        "PATH",
        "KIND",
        "STATUS",
        "HOST_PORT",
        "IN_FLIGHT",
        "LAST_ACCESS",
    ];
    let mut rows: Vec<Vec<String>> = vec![cols.iter().map(|c| c.to_string()).collect()];
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for s in v["services"].as_array().into_iter().flatten() {
        rows.push(
            [
                "name",
                "path",
                "kind",
                "status",
                "host_port",
                "in_flight",
                "last_access",
            ]
            .iter()
            .map(|k| text(&s[*k]))
            .collect(),
        );
    }
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `proxy-status`: prints the table (or JSON), once or every `--follow` seconds.
pub fn run_status(args: &StatusArgs) -> Result<(), CliError> {
    let token = args
        .bearer_token
        .clone()
        .or_else(|| std::env::var("PROXY_BEARER_TOKEN").ok())
        .ok_or_else(|| {
            CliError::Status(
                "no bearer token: pass --bearer-token or set PROXY_BEARER_TOKEN".into(),
            )
        })?;
    let url = status_url(&args.server_url);
    let agent = status_agent(args.cacert.as_deref())?;
    loop {
        let v = fetch_status(&agent, &url, &token)?;
        let text = if args.json {
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        } else {
            status_table(&v)
        };
        match args.follow {
            None => {
                print!("{text}");
                return Ok(());
            }
            Some(secs) => {
                // Clear the screen and redraw, like `watch`.
                print!("\x1b[2J\x1b[H{url}  (every {secs}s)\n\n{text}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::thread::sleep(Duration::from_secs(secs.max(1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_url_appends_path() {
        assert_eq!(
            status_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/proxy/status"
        );
        assert_eq!(status_url("http://h:1/"), "http://h:1/proxy/status");
        assert_eq!(
            status_url("https://h/proxy/status"),
            "https://h/proxy/status"
        );
    }

    #[test]
    fn table_lists_services() {
        let v = serde_json::json!({"services": [
            {"name": "blog", "path": "/blog", "kind": "container", "status": "running", "host_port": 32768, "in_flight": 0, "last_access": null},
            {"name": "api", "path": "/", "kind": "upstream", "status": "external", "host_port": null, "in_flight": 2, "last_access": "2026-11-26T16:51:32Z"}
        ]});
        let t = status_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME  PATH   KIND"));
        assert!(
            lines[1].contains("blog") && lines[1].contains("32768") && lines[1].contains("running")
        );
        assert!(lines[2].contains("2026-11-26T16:51:32Z"));
    }
}
