//! Containers wakeproxy did not create behind `Engine`: found by name or by compose's labels
//! (so a container compose re-created is found again), started and stopped, never created,
//! removed or recreated. Also starts and stops the containers services depend on.

use crate::config::Existing;
use crate::docker::{ContainerInfo, Docker};

use super::{
    Engine, EngineError, EngineKind, Found, Observed, container_logs, observe_container,
    stop_container,
};
use crate::lifecycle::spec::ManagedSpec;

/// Compose's labels on the containers it makes.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";
const COMPOSE_ONEOFF: &str = "com.docker.compose.oneoff";
const COMPOSE_NUMBER: &str = "com.docker.compose.container-number";
/// Compose v2's record of a service's `depends_on`: `service:condition:restart`, by commas.
const COMPOSE_DEPENDS_ON: &str = "com.docker.compose.depends_on";

/// The Engine API for existing containers.
pub(crate) struct ExistingEngine {
    pub docker: Docker,
}

impl ExistingEngine {
    /// The container `target` names now, if there is one. For a compose service: its
    /// container (not a one-off `run`), the lowest container number when scaled.
    pub(crate) fn locate(&self, target: &Existing) -> Result<Option<ContainerInfo>, EngineError> {
        let (project, service) = match target {
            Existing::Named(name) => return Ok(self.docker.inspect(name)?),
            Existing::Compose { project, service } => (project, service),
        };
        let label = format!("{COMPOSE_PROJECT}={project}");
        let mut found: Vec<_> = self
            .docker
            .list_containers(&label, true)?
            .into_iter()
            .filter(|c| {
                c.labels.get(COMPOSE_SERVICE) == Some(service)
                    && c.labels.get(COMPOSE_ONEOFF).map(String::as_str) != Some("True")
            })
            .collect();
        found.sort_by_key(|c| {
            let n = c
                .labels
                .get(COMPOSE_NUMBER)
                .and_then(|n| n.parse::<u32>().ok());
            (c.state != "running", n.unwrap_or(u32::MAX))
        });
        match found.first() {
            Some(c) => Ok(self.docker.inspect(&c.id)?),
            None => Ok(None),
        }
    }

    /// Finds `target` and starts it (already running is fine): its id.
    pub(crate) fn start(&self, target: &Existing) -> Result<String, EngineError> {
        let Some(c) = self.locate(target)? else {
            return Err(EngineError(missing(target)));
        };
        if !c.running {
            log::info!("starting {target} ({})", short(&c.id));
        }
        self.docker
            .start(&c.id)
            .map_err(|e| EngineError(format!("cannot start {target}: {}", e.message())))?;
        Ok(c.id)
    }

    /// The name a started container answers to on a Docker network.
    pub(crate) fn name_of(&self, id: &str) -> Result<String, EngineError> {
        match self.docker.inspect(id)? {
            Some(c) => Ok(c.name),
            None => Err(EngineError("the container disappeared".into())),
        }
    }
}

/// The dependencies compose v2 recorded on a container of project `project`, in the order
/// listed (compose v1 records none: empty).
pub(crate) fn compose_depends_on(
    labels: &std::collections::BTreeMap<String, String>,
    project: &str,
) -> Vec<Existing> {
    let Some(v) = labels.get(COMPOSE_DEPENDS_ON) else {
        return Vec::new();
    };
    v.split(',')
        .filter_map(|entry| entry.split(':').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|service| Existing::Compose {
            project: project.to_string(),
            service: service.to_string(),
        })
        .collect()
}

/// What a request is told when the container is not there.
pub(crate) fn missing(target: &Existing) -> String {
    match target {
        Existing::Named(n) => format!(
            "no container named {n} exists: wakeproxy starts and stops it but never creates it \
             (create it with docker create or docker run, then stop it)"
        ),
        Existing::Compose { project, service } => format!(
            "project {project} has no container for compose service {service}: wakeproxy \
             starts and stops it but never creates it (docker compose -p {project} up \
             --no-start {service})"
        ),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Engine for ExistingEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Existing
    }

    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        match &spec.container.existing {
            Some(target) => self.start(target),
            None => Err(EngineError(format!(
                "{} is not an existing container (an internal mix-up)",
                spec.name
            ))),
        }
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

    /// Nothing is ours: existing containers carry no wakeproxy label, and reconcile must never
    /// stop one as an orphan.
    fn list_ours(&self, _instance: &str) -> Result<Vec<Found>, EngineError> {
        Ok(Vec::new())
    }

    fn foreign_holds_name(&self, _name: &str, _instance: &str) -> Result<bool, EngineError> {
        Ok(false)
    }

    fn ping(&self) -> Result<(), EngineError> {
        self.docker.negotiate()?;
        Ok(())
    }

    fn dns_name(&self, _spec: &ManagedSpec, id: &str) -> Result<String, EngineError> {
        self.name_of(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Config.Labels` of a container made by compose v2 (2.29) for service `web`, as
    /// `docker inspect` printed it.
    const INSPECT: &str = r#"{"Config": {"Labels": {
        "com.docker.compose.config-hash": "5e0a6f2c1b",
        "com.docker.compose.container-number": "1",
        "com.docker.compose.depends_on": "db:service_healthy:false,cache:service_started:true",
        "com.docker.compose.image": "sha256:9f1c",
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": "shop",
        "com.docker.compose.project.working_dir": "/srv/shop",
        "com.docker.compose.service": "web",
        "com.docker.compose.version": "2.29.7"}}}"#;

    #[test]
    fn compose_v2_records_the_dependencies_in_a_label() {
        let v: serde_json::Value = serde_json::from_str(INSPECT).unwrap();
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(v["Config"]["Labels"].clone()).unwrap();
        let deps = compose_depends_on(&labels, "shop");
        let names: Vec<String> = deps.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "compose service db of project shop",
                "compose service cache of project shop"
            ]
        );
        assert!(
            compose_depends_on(&Default::default(), "shop").is_empty(),
            "compose v1"
        );
        let odd = [(COMPOSE_DEPENDS_ON.to_string(), ",db,,:x".to_string())].into();
        assert_eq!(compose_depends_on(&odd, "p").len(), 1);
    }
}
