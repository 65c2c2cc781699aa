//! [`Swarm`]: the swarm part of the Engine API (membership, services, tasks, overlay
//! networks), over the same socket, with the same negotiated API version and the same status
//! mapping as [`Docker`].
//!
//! Verified on Engine 20.10 (API 1.41): `GET /services` is 503 on a node that is not a swarm
//! manager; an update with a stale `version` is **500** `rpc error: code = Unknown desc =
//! update out of sequence` (not 409), so [`Swarm::update_service_with`] re-reads the service
//! and tries again; a scale is one update (the service's `Version.Index` moves by one).

use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

use super::client::{DEFAULT_TIMEOUT, Docker};
use super::encode::{filters, image_ref, object_name, query};
use super::error::{DockerError, from_status};
use super::logs::demux_to_string;
use super::request::{ApiResponse, Method};
use super::swarm_types::{
    NetworkInfo, NodeInfo, RawImageDigests, RawInfo, RawNetworkInfo, RawNode, RawService, RawTask,
    RawUpdated, ServiceInfo, SwarmInfo, TaskInfo,
};
use super::transport::agent;
use super::types::RawCreated;

/// How often [`Swarm::update_service_with`] tries when the daemon says "update out of sequence".
const UPDATE_ATTEMPTS: usize = 5;

/// Whether an update failed only because the service changed since it was read.
fn is_out_of_sequence(e: &DockerError) -> bool {
    match e {
        DockerError::Api { message, .. } | DockerError::Conflict(message) => {
            message.contains("update out of sequence")
        }
        _ => false,
    }
}

/// Whether the daemon refused because it is not a swarm manager (503).
pub fn is_not_manager(e: &DockerError) -> bool {
    matches!(e, DockerError::Api { status: 503, .. })
}

/// The swarm calls. Cheap to clone; every call blocks.
#[derive(Clone)]
pub struct Swarm {
    docker: Docker,
    agent: Agent,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm")
            .field("docker", &self.docker)
            .finish_non_exhaustive()
    }
}

impl Swarm {
    /// The swarm calls of `docker`'s daemon, each with a budget of `timeout`. Does no I/O.
    pub fn new(docker: Docker, timeout: Duration) -> Swarm {
        Swarm {
            agent: agent(docker.socket(), Some(timeout), timeout),
            docker,
        }
    }

    /// With the default 30 s budget.
    pub fn from_docker(docker: Docker) -> Swarm {
        Swarm::new(docker, DEFAULT_TIMEOUT)
    }

    /// The container client this was made from.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// One request through this client's agent, read whole.
    fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, DockerError> {
        self.docker
            .call_with(&self.agent, method, path_and_query, body, None)
    }

    /// `GET /info`: this node's swarm state.
    pub fn info(&self) -> Result<SwarmInfo, DockerError> {
        let a = self.call(Method::Get, "/info", None)?;
        if a.status != 200 {
            return Err(from_status(a.status, &a.body));
        }
        Ok(a.json::<RawInfo>("GET /info")?.into())
    }

    /// Services carrying `label` (`key=value`). Not a manager: `Api { status: 503 }`.
    pub fn services(&self, label: &str) -> Result<Vec<ServiceInfo>, DockerError> {
        let f = filters(&[("label", &[label])]);
        let a = self.call(
            Method::Get,
            &format!("/services{}", query(&[("filters", &f)])),
            None,
        )?;
        match a.status {
            200 => Ok(a
                .json::<Vec<RawService>>("GET /services")?
                .into_iter()
                .map(ServiceInfo::from)
                .collect()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// The service with exactly this name or id; `None` when there is none. (The daemon also
    /// resolves id prefixes; a service found that way under another name is not this one.)
    pub fn service(&self, name_or_id: &str) -> Result<Option<ServiceInfo>, DockerError> {
        let name = object_name("service name or id", name_or_id)?;
        let path = format!("/services/{name}");
        let a = self.call(Method::Get, &path, None)?;
        match a.status {
            200 => {
                let s = ServiceInfo::from(a.json::<RawService>(&format!("GET {path}"))?);
                Ok((s.name == name || s.id == name).then_some(s))
            }
            404 => Ok(None),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// `POST /services/create` with a service `Spec`; returns the new service's id.
    /// `Conflict` when the name is taken.
    pub fn create_service(&self, spec: &Value) -> Result<String, DockerError> {
        let a = self.call(Method::Post, "/services/create", Some(spec))?;
        match a.status {
            200 | 201 => {
                let created: RawCreated = a.json("POST /services/create")?;
                log_warnings("creating a service", created.warnings);
                if created.id.is_empty() {
                    return Err(DockerError::Protocol(
                        "POST /services/create answered without an ID".into(),
                    ));
                }
                Ok(created.id)
            }
            s => Err(from_status(s, &a.body)),
        }
    }

    /// `POST /services/{id}/update?version=N` with the whole new `Spec`. A stale `version`
    /// fails with an error for which [`is_out_of_sequence`] is true.
    fn update_service(&self, id: &str, version: u64, spec: &Value) -> Result<(), DockerError> {
        let id = object_name("service id", id)?;
        let v = version.to_string();
        let path = format!("/services/{id}/update{}", query(&[("version", &v)]));
        let a = self.call(Method::Post, &path, Some(spec))?;
        match a.status {
            200 => {
                if let Ok(updated) = serde_json::from_slice::<RawUpdated>(&a.body) {
                    log_warnings("updating a service", updated.warnings);
                }
                Ok(())
            }
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Reads the service, lets `change` compute its new `Spec` from what it read (`None`: no
    /// change needed), and updates it with the version it read. When the daemon says "update
    /// out of sequence" (someone else updated it in between), reads again and retries, up to
    /// `UPDATE_ATTEMPTS` times. Returns the service as read before the update that was made
    /// (or `None` when there is no such service), and whether an update was made.
    pub fn update_service_with(
        &self,
        name_or_id: &str,
        change: &mut dyn FnMut(&ServiceInfo) -> Option<Value>,
    ) -> Result<Option<(ServiceInfo, bool)>, DockerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(current) = self.service(name_or_id)? else {
                return Ok(None);
            };
            let Some(spec) = change(&current) else {
                return Ok(Some((current, false)));
            };
            match self.update_service(&current.id, current.version, &spec) {
                Ok(()) => return Ok(Some((current, true))),
                Err(e) if is_out_of_sequence(&e) && attempt < UPDATE_ATTEMPTS => {
                    log::debug!("service {}: {e}; reading it again", current.name);
                    std::thread::sleep(Duration::from_millis(20 * attempt as u64));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every task the swarm still keeps for a service (given by id), in any state: the
    /// current ones and up to the task history limit of older ones.
    pub fn tasks(&self, service_id: &str) -> Result<Vec<TaskInfo>, DockerError> {
        let f = filters(&[("service", &[service_id])]);
        let a = self.call(
            Method::Get,
            &format!("/tasks{}", query(&[("filters", &f)])),
            None,
        )?;
        match a.status {
            200 => Ok(a
                .json::<Vec<RawTask>>("GET /tasks")?
                .into_iter()
                .map(TaskInfo::from)
                .collect()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Every node of the swarm (a manager only).
    pub fn nodes(&self) -> Result<Vec<NodeInfo>, DockerError> {
        let a = self.call(Method::Get, "/nodes", None)?;
        match a.status {
            200 => Ok(a
                .json::<Vec<RawNode>>("GET /nodes")?
                .into_iter()
                .map(NodeInfo::from)
                .collect()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// The last `n` lines a task wrote (stdout and stderr), from whichever node ran it.
    pub fn task_logs(&self, task_id: &str, n: usize) -> Result<String, DockerError> {
        let id = object_name("task id", task_id)?;
        let tail = n.to_string();
        let q = query(&[("stdout", "true"), ("stderr", "true"), ("tail", &tail)]);
        let a = self.call(Method::Get, &format!("/tasks/{id}/logs{q}"), None)?;
        match a.status {
            // Task logs always come multiplexed (swarm has no TTY here).
            200 => Ok(demux_to_string(&a.body, true)),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// The network called exactly `name`, if there is one.
    pub fn network(&self, name: &str) -> Result<Option<NetworkInfo>, DockerError> {
        let name = object_name("network name", name)?;
        let path = format!("/networks/{name}");
        let a = self.call(Method::Get, &path, None)?;
        match a.status {
            200 => {
                let n = NetworkInfo::from(a.json::<RawNetworkInfo>(&format!("GET {path}"))?);
                Ok((n.name == name || n.id == name).then_some(n))
            }
            404 => Ok(None),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Creates an attachable overlay network with these labels (a manager only); one that
    /// already exists (409) is fine.
    pub fn create_overlay_network(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<(), DockerError> {
        let name = object_name("network name", name)?;
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let body = serde_json::json!({
            "Name": name,
            "Driver": "overlay",
            "Attachable": true,
            "Labels": labels,
            "CheckDuplicate": true,
        });
        let a = self.call(Method::Post, "/networks/create", Some(&body))?;
        match a.status {
            200 | 201 | 409 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// What a swarm service should run for `image` so that no node pulls it when it has it:
    /// `Some(name@sha256:digest)` when this daemon has the image with a registry digest for
    /// its repository, `Some(sha256:id)` when it has it without one (built locally), `None`
    /// when this daemon does not have it (nodes then pull the name as given).
    ///
    /// Swarm pulls a task's image on every start unless it is given by id, or by digest and
    /// present (moby `daemon/cluster/executor/container/adapter.go`, `pullImage`).
    pub fn pinned_image(&self, image: &str) -> Result<Option<String>, DockerError> {
        let image = image_ref(image)?;
        let path = format!("/images/{image}/json");
        let a = self.call(Method::Get, &path, None)?;
        let raw: RawImageDigests = match a.status {
            200 => a.json(&format!("GET {path}"))?,
            404 => return Ok(None),
            s => return Err(from_status(s, &a.body)),
        };
        let repo = image_repository(image);
        let digest = raw.repo_digests.unwrap_or_default().into_iter().find(|d| {
            d.split_once('@')
                .is_some_and(|(r, _)| r == repo || r == format!("docker.io/library/{repo}"))
        });
        if let Some(d) = digest {
            let at = d.split_once('@').map(|(_, h)| h).unwrap_or_default();
            return Ok(Some(format!("{repo}@{at}")));
        }
        Ok((!raw.id.is_empty()).then_some(raw.id))
    }
}

/// `registry:5000/ns/app:tag@sha256:…` → `registry:5000/ns/app`.
fn image_repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    // A `:` after the last `/` starts the tag (one before it is a registry port).
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

fn log_warnings(what: &str, warnings: Option<Vec<String>>) {
    for w in warnings.unwrap_or_default() {
        if !w.trim().is_empty() {
            log::warn!("docker: {what}: {w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_sequence_is_recognised_whatever_the_status() {
        // What Engine 20.10 answers to a stale version.
        let e = from_status(
            500,
            br#"{"message":"rpc error: code = Unknown desc = update out of sequence"}"#,
        );
        assert!(is_out_of_sequence(&e));
        let e = from_status(409, br#"{"message":"update out of sequence"}"#);
        assert!(is_out_of_sequence(&e));
        assert!(!is_out_of_sequence(&from_status(
            500,
            br#"{"message":"boom"}"#
        )));
        let e = from_status(503, br#"{"message":"This node is not a swarm manager."}"#);
        assert!(is_not_manager(&e) && !is_out_of_sequence(&e));
    }

    #[test]
    fn repositories_of_image_references() {
        assert_eq!(image_repository("app"), "app");
        assert_eq!(image_repository("app:1.2"), "app");
        assert_eq!(
            image_repository("localhost:5000/ns/app:1"),
            "localhost:5000/ns/app"
        );
        assert_eq!(image_repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(image_repository("app@sha256:ab"), "app");
    }

    #[test]
    fn bad_names_never_reach_the_socket() {
        let s = Swarm::from_docker(Docker::new("/nonexistent/wakeproxy-test.sock".into()));
        assert!(matches!(
            s.service("a/b"),
            Err(DockerError::Api { status: 400, .. })
        ));
        assert!(matches!(
            s.task_logs("../x", 5),
            Err(DockerError::Api { status: 400, .. })
        ));
        assert!(s.info().unwrap_err().is_unreachable());
    }
}
