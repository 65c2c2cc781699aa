//! Plain containers behind `Engine`: create (or recreate when the settings changed), start,
//! inspect, stop, and list this instance's containers over the Engine API.

use crate::docker::{Docker, DockerError};

use super::{Engine, EngineError, Found, LABEL_SWARM_TASK, Observed, ours};
use crate::lifecycle::spec::{LABEL_HASH, LABEL_MANAGED, LABEL_SERVICE, ManagedSpec};

/// The Docker Engine API behind `Engine`.
pub(crate) struct DockerEngine {
    pub docker: Docker,
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
                log::info!(
                    "created container {} ({}) from {}",
                    spec.name,
                    short(&id),
                    spec.container.image
                );
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
pub(crate) fn foreign_message(name: &str) -> String {
    format!(
        "a container named {name} exists that wakeproxy did not create (or that belongs to another wakeproxy instance); \
         wakeproxy will not touch it: rename or remove it (docker rm -f {name}) or rename the service"
    )
}
