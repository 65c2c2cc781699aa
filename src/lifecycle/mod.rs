//! On-demand services: the per-service state machine that makes concurrent first requests
//! share one start (`state`), starting and waiting for readiness (`start`), stopping idle
//! services (`reaper`), taking stock of running containers (`reconcile`), and noticing crashes
//! from Docker events (`events`). Docker sits behind `engine::Engine`: plain containers or
//! swarm services scaled between 0 and N.
//!
//! The request pipeline sees one [`Managed`] per on-demand service through the [`Wake`]
//! trait: make it ready (or say why not), report a refused forward, describe itself. It never
//! learns which engine runs the service.

pub(crate) mod activity;
pub(crate) mod engine;
pub(crate) mod groups;
pub(crate) mod probe;
pub(crate) mod pulls;
pub(crate) mod spec;
pub(crate) mod state;

mod events;
mod managed;
mod reaper;
mod reconcile;
mod runspec;
mod shared_activity;
mod start;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;

use crate::base::Histogram;
use crate::config::Config;
use crate::docker::PullFigures;

pub(crate) use activity::Activity;
#[cfg(test)]
pub(crate) use engine::TaskPlace;
pub(crate) use engine::{Engine, EngineKind, ExistingEngine, Replicas};
pub(crate) use events::follow_events;
pub(crate) use managed::{Managed, Shared};

use groups::Groups;

/// Requests allowed to wait for one service's start; more get 503 at once.
pub(crate) const MAX_WAITERS: usize = 1024;

/// Why a service cannot take a request now (the pipeline answers 503 with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotReady {
    pub detail: String,
    /// Seconds a client should wait before trying again.
    pub retry_after: u64,
}

/// What `/proxy/status` shows of an on-demand service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub engine: EngineKind,
    /// `stopped`, `starting`, `running`, `stopping` or `conflict`.
    pub status: &'static str,
    /// The port it is reached on: the published host port, or the internal port by name.
    pub port: Option<u16>,
    pub container: String,
    pub cold_starts: u64,
    pub last_start: Option<Duration>,
    pub last_error: Option<String>,
    /// Requests waiting for a start.
    pub waiting: usize,
    /// Swarm services only.
    pub replicas: Option<Replicas>,
    /// The Docker daemon cannot be reached.
    pub docker_unreachable: bool,
    /// The pull of its image under way, if any.
    pub pull: Option<PullFigures>,
    /// Its `pull` policy.
    pub pull_policy: &'static str,
    /// While starting: how far the start has come (`state::Stage::name`) and for how long.
    pub stage: Option<(&'static str, Duration)>,
    /// Why the latest start failed, while nothing has started since.
    pub failure: Option<String>,
    /// Its dependencies in start order: each one's name, state, and the services holding it
    /// up now.
    pub dependencies: Vec<(String, String, Vec<String>)>,
}

/// Cold-start figures of an on-demand service, for `/proxy/metrics`.
#[derive(Debug)]
pub(crate) struct StartFigures<'a> {
    pub cold_starts: &'a Histogram,
    pub failures: u64,
    pub running: bool,
    /// For a service several proxies share (swarm): activity records written, and idle stops
    /// not made because another proxy was active.
    pub shared: Option<SharedFigures>,
}

/// What this proxy did to share a swarm service with other proxies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SharedFigures {
    pub writes: u64,
    pub kept: u64,
}

/// An on-demand service as the request pipeline sees it.
pub(crate) trait Wake: Send + Sync {
    /// Makes the service ready (starting it if needed, waiting for a start under way) and
    /// returns the `host:port` to forward to.
    fn ensure_ready(&self) -> Result<String, NotReady> {
        self.ensure_ready_within(Duration::MAX)
            .map(|ready| ready.expect("an unbounded wait ends ready or failed"))
    }
    /// The same, waiting at most `patience` (the start goes on without the caller): `None`
    /// when it is not ready by then.
    fn ensure_ready_within(&self, patience: Duration) -> Result<Option<String>, NotReady>;
    /// A forward to `addr` was refused or could not connect in time: the container may have
    /// just died, or a swarm task's node vanished. Returns true when the service goes through
    /// readiness again (so a retry waits for it), false when it still runs as far as known.
    fn forward_failed(&self, addr: &str) -> bool;
    fn report(&self) -> Report;
    fn start_figures(&self) -> StartFigures<'_>;
}

struct Inner {
    /// The on-demand services, in config order.
    services: Vec<Arc<Managed>>,
    /// Runs the services without `mode: swarm`.
    containers: Arc<dyn Engine>,
    /// Runs the services with `mode: swarm`.
    swarm: Arc<dyn Engine>,
    instance: String,
    /// Set while the daemon cannot be reached (from the events thread).
    daemon_down: Arc<AtomicBool>,
    /// After a config reload: the lifecycle of the new configuration, which events and
    /// reconciles are passed on to.
    successor: Mutex<Option<Lifecycle>>,
    /// After a config reload: services the successor owns now, which this one no longer reaps.
    handed_over: Mutex<Option<HashSet<String>>>,
}

/// The lifecycle of every on-demand service of one configuration.
#[derive(Clone)]
pub(crate) struct Lifecycle {
    inner: Arc<Inner>,
}

impl Lifecycle {
    /// Every on-demand service on `engine`, whatever its mode. `activity` gives the activity
    /// record of a service by name.
    #[cfg(test)]
    pub(crate) fn new(
        config: &Config,
        engine: Arc<dyn Engine>,
        activity: &dyn Fn(&str) -> Arc<Activity>,
    ) -> Lifecycle {
        Lifecycle::with_engines(config, engine.clone(), engine, None, activity)
    }

    /// Services with `mode: swarm` on `swarm`, those on containers wakeproxy did not create
    /// (and every dependency) on `existing`, the others on `containers`.
    pub(crate) fn with_engines(
        config: &Config,
        containers: Arc<dyn Engine>,
        swarm: Arc<dyn Engine>,
        existing: Option<Arc<ExistingEngine>>,
        activity: &dyn Fn(&str) -> Arc<Activity>,
    ) -> Lifecycle {
        let daemon_down = Arc::new(AtomicBool::new(false));
        let groups = Arc::new(Groups::new(existing.clone()));
        let services = config
            .services
            .iter()
            .filter_map(|s| {
                let c = s.container()?;
                let engine: Arc<dyn Engine> = match (&c.swarm, &c.existing, &existing) {
                    (Some(_), _, _) => swarm.clone(),
                    (None, Some(_), Some(e)) => e.clone(),
                    (None, _, _) => containers.clone(),
                };
                let activity = activity(&s.name);
                let shared = Shared {
                    daemon_down: daemon_down.clone(),
                    groups: groups.clone(),
                };
                Some(Managed::new(s, &config.global, engine, activity, shared))
            })
            .collect();
        Lifecycle {
            inner: Arc::new(Inner {
                services,
                containers,
                swarm,
                instance: config.global.instance.clone(),
                daemon_down,
                successor: Mutex::new(None),
                handed_over: Mutex::new(None),
            }),
        }
    }

    /// The on-demand service `name`.
    pub(crate) fn service(&self, name: &str) -> Option<Arc<Managed>> {
        self.inner
            .services
            .iter()
            .find(|m| m.name() == name)
            .cloned()
    }

    fn find(&self, name: &str, kind: EngineKind) -> Option<&Arc<Managed>> {
        self.inner
            .services
            .iter()
            .find(|m| m.name() == name && m.kind() == kind)
    }

    /// The engines to take stock with: containers, and swarm services when that is another
    /// engine (its `list_ours` finds nothing unless the daemon is a swarm manager).
    fn engines(&self) -> Vec<Arc<dyn Engine>> {
        let mut v = vec![self.inner.containers.clone()];
        if self.inner.swarm.kind() != self.inner.containers.kind() {
            v.push(self.inner.swarm.clone());
        }
        v
    }

    /// Service name and settings hash of every on-demand service.
    pub(crate) fn settings(&self) -> HashMap<String, String> {
        self.inner
            .services
            .iter()
            .map(|m| (m.name().to_string(), m.spec().settings_hash()))
            .collect()
    }

    /// Hands over to `next` (the lifecycle of a reloaded config): services named in
    /// `handed_over` are no longer reaped here; the others (removed or changed) are still
    /// stopped once idle. Events and reconciles go to `next` from now on.
    pub(crate) fn retire(&self, handed_over: HashSet<String>, next: Option<Lifecycle>) {
        *self.inner.handed_over.lock() = Some(handed_over);
        *self.inner.successor.lock() = next;
    }

    fn successor(&self) -> Option<Lifecycle> {
        self.inner.successor.lock().clone()
    }

    /// Stops every running on-demand service and waits for the stops (proxy exit with
    /// `stop_services_on_exit`).
    pub(crate) fn stop_all(&self) {
        let stops: Vec<_> = self
            .inner
            .services
            .iter()
            .filter_map(|m| {
                let id = m.begin_stop()?;
                log::info!("stopping {} (stop_services_on_exit)", m.name());
                let m = m.clone();
                Some(std::thread::spawn(move || m.engine().stop(&id)))
            })
            .collect();
        for s in stops {
            if let Ok(Err(e)) = s.join() {
                log::warn!("stopping a container on exit: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
