//! `wakeproxy proxy`: connects Docker, builds the pipeline, binds the listeners, serves until
//! a stop signal has drained the connections; SIGHUP reloads (`reload`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::{Config, Limits};
use crate::pipeline::Proxy;
use crate::server::{Hub, Server};

use super::cli::{CliError, ProxyArgs};
use super::probe::{START_NONCE_ENV, is_nonce};
use super::runtime::{Runtime, start_lifecycle};
use super::{reload, tls};

/// `proxy`: connects Docker, binds, serves until the drain after SIGTERM ends.
pub fn run_proxy(args: &ProxyArgs, config: Config) -> Result<(), CliError> {
    let proxy = Arc::new(Proxy::new(&config).with_start_nonce(start_nonce()));
    let g = config.global.clone();
    let limits = fit_open_files(g.limits);
    let hub = Hub::new(proxy.clone(), limits)
        .map_err(|e| CliError::Startup(format!("cannot set up the poller: {e}")))?;
    let rt = Arc::new(Runtime {
        hub: hub.clone(),
        config_path: args.config.clone(),
        lifecycle: Mutex::new(None),
        events_running: AtomicBool::new(false),
        file: Mutex::new(config.clone()),
        discovered: Mutex::new(Vec::new()),
        applying: Mutex::new(()),
    });
    let lifecycle = start_lifecycle(&config, &proxy, true, &rt.events_running)?;
    // Certificate files are checked before anything is bound: bad ones are a start-up error.
    let tls = if args.no_tls {
        None
    } else {
        tls::prepare(&config)?
    };
    for s in &config.services {
        match &s.host {
            Some(h) => log::info!("route {h}{} -> {}", s.path, s.name),
            None => log::info!("route {} -> {}", s.path, s.name),
        }
    }
    for w in crate::config::warnings(&config) {
        log::warn!("{w}");
    }
    proxy.install(config, lifecycle.as_ref());
    *rt.lifecycle.lock() = lifecycle;
    let addr = SocketAddr::new(g.listen_address, g.listen_http);
    let mut server = Server::new(hub.clone());
    let local = server
        .listen(addr)
        .map_err(|e| CliError::Startup(format!("cannot listen on {addr}: {e}")))?;
    log::info!("listening on http://{local}");
    if let Some(plan) = tls {
        tls::start(&mut server, &hub, &g, plan)?;
    }
    watch_signals(rt.clone())?;
    if g.discover_labels {
        super::discovery::spawn(rt.clone())?;
    }
    server
        .run()
        .map_err(|e| CliError::Startup(format!("cannot start the poller: {e}")))?;
    finish_drain(&rt);
    Ok(())
}

/// The nonce `proxy-daemon start` passed in the environment, if it is one (it goes into a
/// header, so anything else is ignored).
fn start_nonce() -> Option<String> {
    let value = std::env::var(START_NONCE_ENV).ok()?;
    if is_nonce(&value) {
        Some(value)
    } else {
        log::warn!("ignoring {START_NONCE_ENV}: expected up to 64 letters, digits and '-'");
        None
    }
}

/// File descriptors kept apart from client connections: listeners, the poller, Docker and
/// certbot, log files.
const FD_RESERVE: u64 = 256;

/// Raises the open-file soft limit to the hard limit, and lowers `max_connections` to what it
/// allows: each client connection is a descriptor, each request on a worker may hold two more
/// (its upstream connection and, for a tunnel, a second handle).
fn fit_open_files(mut limits: Limits) -> Limits {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut nofile = getrlimit(Resource::Nofile);
    if let Some(hard) = nofile.maximum
        && nofile.current != Some(hard)
    {
        nofile.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, nofile) {
            log::warn!("cannot raise the open-file limit to {hard}: {e}");
        }
    }
    let Some(files) = getrlimit(Resource::Nofile).current else {
        return limits;
    };
    let room = files.saturating_sub(FD_RESERVE + 2 * limits.max_workers as u64);
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if room < limits.max_connections {
        log::warn!(
            "max_connections lowered from {} to {room}: the open-file limit is {files}",
            limits.max_connections
        );
        limits.max_connections = room;
    }
    log::info!(
        "up to {} connections ({} per client address), {} workers; open-file limit {files}",
        limits.max_connections,
        limits.max_connections_per_ip,
        limits.max_workers
    );
    limits
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
                if sig == SIGHUP {
                    log::info!("SIGHUP: reloading {}", rt.config_path.display());
                    reload::reload(&rt);
                } else if rt.hub.begin_drain() {
                    let grace = rt.proxy().generation().global.shutdown_timeout.as_secs();
                    log::info!(
                        "shutting down: no new connections; in-flight requests get up to {grace} s"
                    );
                    rt.proxy().tunnels.close_all(None);
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
fn finish_drain(rt: &Runtime) {
    let current = rt.proxy().generation();
    let g = &current.global;
    let deadline = Instant::now() + g.shutdown_timeout;
    while rt.hub.open() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = rt.hub.open();
    if left > 0 {
        log::warn!(
            "{left} connections still open after shutdown_timeout ({} s): closing them",
            g.shutdown_timeout.as_secs()
        );
    }
    if g.stop_services_on_exit
        && let Some(l) = rt.lifecycle.lock().as_ref()
    {
        l.stop_all();
    }
    log::info!("stopped");
}
