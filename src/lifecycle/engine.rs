//! The narrow seam between the lifecycle manager and Docker: make a service's container exist
//! with the right settings and run, look at it, stop it, list what is ours. `DockerEngine`
//! implements it over the Engine API for plain containers, `swarm::SwarmEngine` for swarm
//! services (scaled between 0 and N); tests can put a fake behind the same trait. The manager
//! (routing, readiness, idle) never knows which one it drives.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::docker::{Docker, DockerError};

use super::spec::{ManagedSpec, LABEL_HASH, LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVICE};

/// Log lines quoted in the answer when a service fails while starting.
pub const START_LOG_LINES: usize = 20;

/// The label Docker puts on the containers of swarm tasks.
pub const LABEL_SWARM_TASK: &str = "com.docker.swarm.task.id";

/// A container as the lifecycle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
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
pub struct Found {
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
pub enum Progress {
    /// Not running yet, and nothing has failed (a swarm task being scheduled and started).
    Pending,
    /// Running; `health` is Docker's health status when there is a healthcheck.
    Running { health: Option<String> },
    /// Failed for good: the reason for the 503 (exit code, task error, last log lines).
    Failed(String),
}

/// What the lifecycle needs from a container engine.
pub trait Engine: Send + Sync {
    /// `container` or `swarm`: which kind of thing this engine runs (reconcile matches what
    /// it finds to the services of the same kind).
    fn kind(&self) -> &'static str {
        "container"
    }
    /// How messages name one service's thing: `container blog`, `swarm service blog`.
    fn noun(&self) -> &'static str {
        "container"
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

    /// Extra `/proxy/status` fields for service `name` (swarm: `replicas_desired` and
    /// `replicas_running`). None by default.
    fn status_extra(&self, _name: &str) -> Map<String, Value> {
        Map::new()
    }
}

/// Why an engine call failed, in words fit for a 503 detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(pub String);

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

/// The Docker Engine API behind `Engine`.
pub struct DockerEngine {
    pub docker: Docker,
}

pub(super) fn ours(labels: &BTreeMap<String, String>, instance: &str) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels.get(LABEL_INSTANCE).map(String::as_str) == Some(instance)
}

impl DockerEngine {
    fn ensure_network(&self, net: &str) -> Result<(), EngineError> {
        if !self.docker.network_exists(net)? {
            log::info!("creating Docker network {net}");
            self.docker
                .create_network(net, &[(LABEL_MANAGED, "true")])?;
        }
        Ok(())
    }

    fn create(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        if let Some(net) = &spec.network {
            self.ensure_network(net)?;
        }
        match self.docker.create(&spec.name, &spec.create_body()) {
            Ok(id) => {
                log::info!("created container {} ({}) from {}", spec.name, short(&id), spec.container.image);
                Ok(id)
            }
            Err(DockerError::NotFound(m)) => Err(EngineError(format!(
                "image {} is not available on this Docker host ({m}); build or pull it first: wakeproxy does not pull images",
                spec.container.image
            ))),
            Err(DockerError::Conflict(m)) => Err(EngineError(format!(
                "cannot create container {}: {m}",
                spec.name
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Engine for DockerEngine {
    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        let hash = spec.settings_hash();
        let id = match self.docker.inspect(&spec.name)? {
            None => self.create(spec)?,
            Some(c) if !ours(&c.labels, &spec.instance) => {
                return Err(EngineError(foreign_message(&spec.name)));
            }
            Some(c) if c.labels.get(LABEL_HASH) != Some(&hash) => {
                log::info!(
                    "settings of {} changed: recreating its container",
                    spec.name
                );
                self.docker.remove(&c.id, true)?;
                self.create(spec)?
            }
            Some(c) => c.id,
        };
        self.docker.start(&id).map_err(|e| {
            EngineError(format!(
                "cannot start container {}: {}",
                spec.name,
                e.message()
            ))
        })?;
        Ok(id)
    }

    fn observe(&self, id: &str, internal_port: u16) -> Result<Option<Observed>, EngineError> {
        Ok(self.docker.inspect(id)?.map(|c| Observed {
            host_port: c.host_port(internal_port),
            id: c.id,
            running: c.running,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            health: c.health,
        }))
    }

    fn logs_tail(&self, id: &str, n: usize) -> String {
        self.docker
            .logs_tail(id, n)
            .unwrap_or_else(|e| format!("(logs unavailable: {e})"))
    }

    fn stop(&self, id: &str) -> Result<(), EngineError> {
        match self.docker.stop(id, None) {
            Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn list_ours(&self, instance: &str) -> Result<Vec<Found>, EngineError> {
        let label = ManagedSpec::instance_label(instance);
        Ok(self
            .docker
            .list_containers(&label, true)?
            .into_iter()
            // The containers of our swarm services' tasks carry our labels too; swarm owns them.
            .filter(|c| ours(&c.labels, instance) && !c.labels.contains_key(LABEL_SWARM_TASK))
            .map(|c| Found {
                service: c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                settings_hash: c.labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                running: c.state == "running",
                up: c.state == "running",
                id: c.id,
            })
            .collect())
    }

    fn foreign_holds_name(&self, name: &str, instance: &str) -> Result<bool, EngineError> {
        Ok(self
            .docker
            .inspect(name)?
            .is_some_and(|c| !ours(&c.labels, instance)))
    }

    fn ping(&self) -> Result<(), EngineError> {
        self.docker.negotiate()?;
        Ok(())
    }
}

/// The explanation given when someone else's container holds a service's name.
pub fn foreign_message(name: &str) -> String {
    format!(
        "a container named {name} exists that wakeproxy did not create (or that belongs to another wakeproxy instance); \
         wakeproxy will not touch it: rename or remove it (docker rm -f {name}) or rename the service"
    )
}
