//! What the running proxy keeps for its signal thread, and connecting the Docker lifecycle of
//! a configuration (at start-up and on every reload).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::config::{Config, Service};
use crate::docker::{Docker, DockerError, Swarm};
use crate::lifecycle::engine::{DockerEngine, ExistingEngine, SwarmEngine};
use crate::lifecycle::pulls::Pulls;
use crate::lifecycle::{Lifecycle, follow_events};
use crate::pipeline::Proxy;
use crate::server::Hub;

use super::cli::CliError;

/// What the signal thread needs: the server (to drain), the configuration's path and the
/// current lifecycle (to reload).
pub(super) struct Runtime {
    pub(super) hub: Arc<Hub>,
    pub(super) config_path: PathBuf,
    pub(super) lifecycle: Mutex<Option<Lifecycle>>,
    pub(super) events_running: AtomicBool,
    /// The configuration as the file says it (the services discovered by labels apart).
    pub(super) file: Mutex<Config>,
    /// The services discovered by labels now (with `discover_labels`).
    pub(super) discovered: Mutex<Vec<Service>>,
    /// Held while a configuration is applied, so that a reload and a discovery never
    /// interleave (each installs a generation and swaps the lifecycle).
    pub(super) applying: Mutex<()>,
}

impl Runtime {
    pub(super) fn proxy(&self) -> &Proxy {
        &self.hub.proxy
    }
}

/// Connects the Docker lifecycle when the config has container services: adopts running
/// containers, starts the reaper and (once per process) the events follower. A daemon that is
/// down is not fatal: container services answer 503 until it comes back. `first` is false for
/// a reload: then stale containers are left to the previous lifecycle.
pub(super) fn start_lifecycle(
    config: &Config,
    proxy: &Proxy,
    first: bool,
    events_running: &AtomicBool,
) -> Result<Option<Lifecycle>, CliError> {
    if config.services.iter().all(|s| s.container().is_none()) {
        return Ok(None);
    }
    let docker = Docker::from_env().map_err(|e| CliError::Startup(e.to_string()))?;
    let containers = Arc::new(DockerEngine {
        docker: docker.clone(),
        pulls: Pulls::shared(),
        registry_auth_file: config.global.registry_auth_file.clone(),
    });
    let swarm = Arc::new(SwarmEngine::new(docker.clone()));
    let existing = Arc::new(ExistingEngine {
        docker: docker.clone(),
    });
    let lifecycle = Lifecycle::with_engines(config, containers, swarm, Some(existing), &|n| {
        proxy.activity(n)
    });
    if first {
        match docker.negotiate() {
            Ok(v) => log::info!("Docker daemon at {} (API {v})", docker.socket().display()),
            Err(e @ DockerError::TooOld { .. }) => return Err(CliError::Startup(e.to_string())),
            Err(e) => log::warn!("{e}; container services answer 503 until it is reachable"),
        }
    }
    check_swarm(config, &docker);
    if first {
        match super::checks::gather(config, &docker, false) {
            Ok(facts) => {
                for f in super::checks::findings(config, &facts)
                    .iter()
                    .filter(|f| !f.ok)
                {
                    log::warn!("{}: {}", f.service, f.text);
                }
            }
            Err(e) => log::debug!("start-up checks skipped: {e}"),
        }
    }
    let stock = match first {
        true => lifecycle.reconcile(),
        false => lifecycle.adopt_running(),
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

/// Says whether swarm services can run: the daemon must be a swarm manager.
fn check_swarm(config: &Config, docker: &Docker) {
    let swarm_services: Vec<&str> = config
        .services
        .iter()
        .filter(|s| s.container().is_some_and(|c| c.swarm.is_some()))
        .map(|s| s.name.as_str())
        .collect();
    if swarm_services.is_empty() {
        return;
    }
    let names = swarm_services.join(", ");
    match Swarm::from_docker(docker.clone()).info() {
        Ok(i) if i.manager => {
            log::info!("swarm manager (node {}): swarm services {names}", i.node_id)
        }
        Ok(i) => log::warn!(
            "services {names} have mode: swarm, but this Docker daemon is not a swarm manager (swarm state: {}): \
             they answer 503 until it is one",
            i.state
        ),
        Err(e) => log::debug!("swarm state: {e}"),
    }
}
