//! The narrow seam between the lifecycle manager and Docker: make a service's container exist
//! with the right settings and run, look at it, stop it, list what is ours. `container`
//! implements it over the Engine API for plain containers, `swarm` for swarm services (scaled
//! between 0 and N); tests can put a fake behind the same trait. The manager (readiness,
//! idle) never knows which one it drives.

pub(crate) mod container;
pub(crate) mod existing;
pub(crate) mod swarm;
mod swarm_activity;
mod swarm_nodes;
mod swarm_tasks;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::docker::{DockerError, PullFigures};

use super::spec::{LABEL_INSTANCE, LABEL_MANAGED, ManagedSpec};

pub(crate) use container::DockerEngine;
pub(crate) use existing::ExistingEngine;
pub(crate) use swarm::SwarmEngine;

/// Log lines quoted in the answer when a service fails while starting.
pub(crate) const START_LOG_LINES: usize = 20;

/// The label Docker puts on the containers of swarm tasks.
pub(crate) const LABEL_SWARM_TASK: &str = "com.docker.swarm.task.id";

/// A container as the lifecycle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub id: String,
    pub running: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Docker health status while running, when the container has a healthcheck.
    pub health: Option<String>,
    /// Host port published for the service's internal port, if any.
    pub host_port: Option<u16>,
}

/// One of our containers (or swarm services) found by `list_ours`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub id: String,
    pub service: String,
    /// Serving: the container runs (a swarm service has a running task).
    pub running: bool,
    /// Asked to run: the container runs (a swarm service has replicas > 0), so stopping it
    /// means something even when nothing serves yet.
    pub up: bool,
    pub settings_hash: String,
}

/// How a start is coming along, as the readiness loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Not running yet, and nothing has failed (a swarm task being scheduled and started).
    Pending,
    /// Running; `health` is Docker's health status when there is a healthcheck.
    Running { health: Option<String> },
    /// Failed for good: the reason for the 503 (exit code, task error, last log lines).
    Failed(String),
}

/// Which kind of thing an engine runs for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineKind {
    /// One container, started and stopped.
    Container,
    /// A replicated swarm service, scaled between 0 and N.
    Swarm,
    /// A container wakeproxy did not create, started and stopped.
    Existing,
}

impl EngineKind {
    /// `container` or `swarm`, as `/proxy/status` shows it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EngineKind::Container => "container",
            EngineKind::Swarm => "swarm",
            EngineKind::Existing => "existing",
        }
    }

    /// How messages name one service's thing: `container blog`, `swarm service blog`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            EngineKind::Container | EngineKind::Existing => "container",
            EngineKind::Swarm => "swarm service",
        }
    }
}

/// The replica counts of a swarm service, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replicas {
    pub desired: Option<u64>,
    pub running: Option<u64>,
    /// The tasks that run or are on their way, and their nodes (`None`: could not be read).
    pub tasks: Option<Vec<TaskPlace>>,
}

/// One task of a swarm service, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskPlace {
    /// The task id, shortened.
    pub task: String,
    /// The node's hostname (its id when the node is not known).
    pub node: String,
    /// The node's state (`ready`, `down`, ...).
    pub node_state: String,
    /// The task's state.
    pub state: String,
}

/// What an idle stop came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleStop {
    Stopped,
    /// Not stopped: another proxy sharing the service recorded activity at this time.
    ActiveElsewhere(SystemTime),
}

/// What the lifecycle needs from a container engine.
pub(crate) trait Engine: Send + Sync {
    /// Which kind of thing this engine runs (reconcile matches what it finds to the services
    /// of the same kind).
    fn kind(&self) -> EngineKind {
        EngineKind::Container
    }
    /// How messages name one service's thing: `container blog`, `swarm service blog`.
    fn noun(&self) -> &'static str {
        self.kind().noun()
    }
    /// Makes the service's container exist with the current settings (creating, or removing
    /// and recreating a stale one) and starts it. Returns its id.
    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError>;
    /// The container's current state; `None` when it no longer exists.
    fn observe(&self, id: &str, internal_port: u16) -> Result<Option<Observed>, EngineError>;
    /// The last `n` log lines.
    fn logs_tail(&self, id: &str, n: usize) -> String;
    /// Stops the container (its own stop timeout applies).
    fn stop(&self, id: &str) -> Result<(), EngineError>;
    /// Containers labelled as this instance's.
    fn list_ours(&self, instance: &str) -> Result<Vec<Found>, EngineError>;
    /// Whether a container that is NOT ours holds `name`.
    fn foreign_holds_name(&self, name: &str, instance: &str) -> Result<bool, EngineError>;
    /// Checks the daemon is there (and negotiates the API version).
    fn ping(&self) -> Result<(), EngineError>;

    /// Where start `id` of service `name` stands. By default from `observe`: a container
    /// that is not running any more has exited, and the answer quotes its exit code and logs.
    fn progress(&self, id: &str, name: &str, internal_port: u16) -> Result<Progress, EngineError> {
        let Some(obs) = self.observe(id, internal_port)? else {
            return Ok(Progress::Failed(format!(
                "{} {name} was removed while starting",
                self.noun()
            )));
        };
        if !obs.running {
            let logs = self.logs_tail(id, START_LOG_LINES);
            let oom = if obs.oom_killed {
                " (killed: out of memory)"
            } else {
                ""
            };
            return Ok(Progress::Failed(format!(
                "container {name} exited with code {}{oom} while starting; last log lines:\n{}",
                obs.exit_code,
                logs.trim_end()
            )));
        }
        Ok(Progress::Running { health: obs.health })
    }

    /// The name started container `id` of `spec` answers to on `docker_network`: the service's
    /// name, which wakeproxy gives its containers as their alias.
    fn dns_name(&self, spec: &ManagedSpec, _id: &str) -> Result<String, EngineError> {
        Ok(spec.name.clone())
    }

    /// The replica counts of service `name` (swarm services only).
    fn replicas(&self, _name: &str) -> Option<Replicas> {
        None
    }

    /// Stops `id`, found idle for `idle` at `now` by this proxy, unless another proxy sharing
    /// it recorded activity within `idle` (swarm services; a container is just stopped).
    fn stop_when_idle(
        &self,
        id: &str,
        _idle: Duration,
        _now: SystemTime,
    ) -> Result<IdleStop, EngineError> {
        self.stop(id).map(|()| IdleStop::Stopped)
    }

    /// Whether this engine's services are shared by several proxies, which record their
    /// activity with `record_activity`.
    fn shares_activity(&self) -> bool {
        false
    }

    /// Records `last` as this proxy's latest activity of service `id` (its id or name) where
    /// the other proxies see it. Returns whether a write was made.
    fn record_activity(
        &self,
        _spec: &ManagedSpec,
        _id: &str,
        _last: SystemTime,
    ) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// Whether a forward that could not connect sends the service back through readiness even
    /// while the engine still reports it running (a swarm task on a node that just vanished
    /// is reported running until swarm notices).
    fn recheck_after_failed_forward(&self) -> bool {
        false
    }

    /// The pull of `image` under way, if any.
    fn pull_progress(&self, _image: &str) -> Option<PullFigures> {
        None
    }
}

/// Why an engine call failed, in words fit for a 503 detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DockerError> for EngineError {
    fn from(e: DockerError) -> Self {
        EngineError(e.to_string())
    }
}

/// A container as `Engine::observe` reports it, from the Engine API (`None`: gone).
pub(super) fn observe_container(
    docker: &crate::docker::Docker,
    id: &str,
    internal_port: u16,
) -> Result<Option<Observed>, EngineError> {
    Ok(docker.inspect(id)?.map(|c| Observed {
        host_port: c.host_port(internal_port),
        id: c.id,
        running: c.running,
        exit_code: c.exit_code,
        oom_killed: c.oom_killed,
        health: c.health,
    }))
}

/// The last `n` log lines of container `id`, or why they cannot be read.
pub(super) fn container_logs(docker: &crate::docker::Docker, id: &str, n: usize) -> String {
    docker
        .logs_tail(id, n)
        .unwrap_or_else(|e| format!("(logs unavailable: {e})"))
}

/// Stops container `id` (its own stop timeout applies); one already gone is stopped.
pub(super) fn stop_container(docker: &crate::docker::Docker, id: &str) -> Result<(), EngineError> {
    match docker.stop(id, None) {
        Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Does a container or service with these labels belong to this instance?
pub(super) fn ours(labels: &BTreeMap<String, String>, instance: &str) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels.get(LABEL_INSTANCE).map(String::as_str) == Some(instance)
}
