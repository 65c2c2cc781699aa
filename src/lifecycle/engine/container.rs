//! Plain containers behind `Engine`: pull the image as the service's `pull` says, create (or
//! recreate when the settings or, with `pull: always`, the image changed), start, inspect,
//! stop, and list this instance's containers over the Engine API.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::PullPolicy;
use crate::docker::{Docker, DockerError, PullFailure, PullFigures, credential_for_image};
use crate::lifecycle::pulls::Pulls;

use super::{
    Engine, EngineError, Found, LABEL_SWARM_TASK, Observed, container_logs, observe_container,
    ours, stop_container,
};
use crate::lifecycle::spec::{LABEL_HASH, LABEL_MANAGED, LABEL_SERVICE, ManagedSpec};

/// The Docker Engine API behind `Engine`.
pub(crate) struct DockerEngine {
    pub docker: Docker,
    /// Pulls under way and done, shared by every service (and kept across reloads).
    pub pulls: Arc<Pulls>,
    /// Where registry credentials are read from, when not Docker's own client config.
    pub registry_auth_file: Option<PathBuf>,
}

impl DockerEngine {
    /// Makes the service's image present as its `pull` says; returns its id when it is there.
    /// With `always`, a registry that cannot be asked leaves the local image in use (warned).
    fn ensure_image(&self, spec: &ManagedSpec) -> Result<Option<String>, EngineError> {
        let image = &spec.container.image;
        let local = self.docker.image_inspect(image)?.map(|i| i.id);
        let policy = spec.container.pull.policy;
        let wanted = match policy {
            PullPolicy::Never => false,
            PullPolicy::Missing => local.is_none(),
            PullPolicy::Always => true,
        };
        if !wanted {
            return Ok(local);
        }
        match self.pull(spec) {
            Ok(()) => Ok(self.docker.image_inspect(image)?.map(|i| i.id)),
            Err(why) if local.is_some() => {
                log::warn!("{}: {why}; starting with the image on this host", spec.name);
                Ok(local)
            }
            Err(why) => Err(EngineError(why)),
        }
    }

    /// Pulls the service's image (one pull per image at a time, shared).
    fn pull(&self, spec: &ManagedSpec) -> Result<(), String> {
        let image = &spec.container.image;
        self.pulls.pull(image, |report| {
            log::info!("pulling {image} for {}", spec.name);
            let started = std::time::Instant::now();
            self.fetch(image, spec.container.pull.timeout, &mut |f| report(f))?;
            log::info!("pulled {image} in {} ms", started.elapsed().as_millis());
            Ok(())
        })
    }

    /// Pulls `image` within `timeout` with the registry's credentials, if any, reporting
    /// progress; the error says what the registry said, never a credential.
    pub(crate) fn fetch(
        &self,
        image: &str,
        timeout: std::time::Duration,
        on_progress: &mut dyn FnMut(PullFigures),
    ) -> Result<(), String> {
        let auth = self.registry_auth(image)?;
        let mut each = |p: &crate::docker::PullProgress| on_progress(p.figures());
        self.docker
            .pull(image, auth.as_deref(), timeout, &mut each)
            .map_err(|e| pull_failed(image, &e))
    }

    /// The `X-Registry-Auth` value for `image`'s registry, if there are credentials for it
    /// (Docker's client config or `registry_auth_file`, and its credential helpers).
    fn registry_auth(&self, image: &str) -> Result<Option<String>, String> {
        let found = credential_for_image(image, self.registry_auth_file.as_deref());
        let credential =
            found.map_err(|e| format!("cannot read the credentials for {image}: {e}"))?;
        if let Some(c) = &credential {
            log::info!("pulling {image} as {c}");
        }
        Ok(credential.map(|c| c.x_registry_auth()))
    }

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
                "image {} is not available on this Docker host ({m}); with pull: never, build \
                 or pull it first (docker pull, or wakeproxy proxy-pull)",
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

/// Why a pull failed, for the 503: what the registry said, sorted; never a credential (the
/// daemon's messages carry none).
fn pull_failed(image: &str, e: &DockerError) -> String {
    let message = e.message();
    let kind = match e {
        DockerError::Unreachable { .. } => "the Docker daemon did not answer",
        _ => PullFailure::of(&message).word(),
    };
    format!("pulling image {image} failed ({kind}): {message}")
}

impl Engine for DockerEngine {
    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        let hash = spec.settings_hash();
        let image_id = self.ensure_image(spec)?;
        let id = match self.docker.inspect(&spec.name)? {
            None => self.create(spec)?,
            Some(c) if !ours(&c.labels, &spec.instance) => {
                return Err(EngineError(foreign_message(&spec.name)));
            }
            Some(c)
                if spec.container.pull.policy == PullPolicy::Always
                    && image_id.as_ref().is_some_and(|i| *i != c.image) =>
            {
                log::info!(
                    "{} has a new image ({}): recreating its container",
                    spec.name,
                    spec.container.image
                );
                self.docker.remove(&c.id, true)?;
                self.create(spec)?
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
        observe_container(&self.docker, id, internal_port)
    }

    fn logs_tail(&self, id: &str, n: usize) -> String {
        container_logs(&self.docker, id, n)
    }

    fn stop(&self, id: &str) -> Result<(), EngineError> {
        stop_container(&self.docker, id)
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

    fn pull_progress(&self, image: &str) -> Option<PullFigures> {
        self.pulls.progress(image)
    }
}

/// The explanation given when someone else's container holds a service's name.
pub(crate) fn foreign_message(name: &str) -> String {
    format!(
        "a container named {name} exists that wakeproxy did not create (or that belongs to another wakeproxy instance); \
         wakeproxy will not touch it: rename or remove it (docker rm -f {name}) or rename the service"
    )
}
