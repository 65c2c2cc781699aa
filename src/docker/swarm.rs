//! [`Swarm`]: the swarm part of the Engine API (membership, services, tasks, overlay
//! networks), over the same socket, with the same negotiated API version and the same status
//! mapping as [`Docker`].
//!
//! Verified on Engine 20.10 (API 1.41): `GET /services` is 503 on a node that is not a swarm
//! manager; an update with a stale `version` is **500** `rpc error: code = Unknown desc =
//! update out of sequence` (not 409), so [`Swarm::update_service_with`] re-reads the service
//! and tries again; a scale is one update (the service's `Version.Index` moves by one).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use ureq::Agent;

use super::client::{Docker, DEFAULT_TIMEOUT};
use super::encode::{filters, image_ref, object_name, query};
use super::error::{from_status, from_ureq, DockerError};
use super::logs::demux_to_string;
use super::transport::agent;

/// Largest response body read (a long task history).
const BODY_LIMIT: u64 = 32 * 1024 * 1024;

/// How often [`Swarm::update_service_with`] tries when the daemon says "update out of sequence".
pub const UPDATE_ATTEMPTS: usize = 5;

/// Where this daemon stands in a swarm (`GET /info`, `Swarm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmInfo {
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub state: String,
    /// Whether this node is a manager (`ControlAvailable`): only managers take service calls.
    pub manager: bool,
    /// This node's id in the swarm (empty when not in one).
    pub node_id: String,
}

/// A swarm service (`GET /services/{id}`), reduced to what wakeproxy uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    /// `Version.Index`: an update must name the version it read.
    pub version: u64,
    /// `Spec.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `Spec.Mode.Replicated.Replicas`; `None` for a global service.
    pub replicas: Option<u64>,
    /// `Spec.TaskTemplate.ContainerSpec.Image`.
    pub image: String,
    /// The whole `Spec`, to send back changed on update.
    pub spec: Value,
}

/// A task of a service (`GET /tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub service_id: String,
    /// Replica slot (replicated services).
    pub slot: Option<u64>,
    pub node_id: String,
    /// `DesiredState`: `running` while the orchestrator wants it, then `shutdown` or `remove`.
    pub desired_state: String,
    /// `Status.State`: `new` … `starting`, `running`, then `complete`, `shutdown`, `failed`,
    /// `rejected`, `remove` or `orphaned`.
    pub state: String,
    /// `Status.Message`.
    pub message: String,
    /// `Status.Err`: why the task failed or was rejected (empty otherwise).
    pub err: String,
    /// `Status.ContainerStatus.ExitCode`, once there was a container.
    pub exit_code: Option<i64>,
    /// `Status.ContainerStatus.ContainerID` (on the task's node).
    pub container_id: String,
    /// `CreatedAt`, as the daemon wrote it (RFC 3339).
    pub created_at: String,
}

impl TaskInfo {
    /// Running, and meant to be.
    pub fn is_running(&self) -> bool {
        self.state == "running" && self.desired_state == "running"
    }

    /// In a state it never leaves without having served: failed, rejected, or exited 0
    /// (`complete`: a restart policy `on-failure` does not restart it).
    pub fn has_failed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "failed" | "rejected" | "complete" | "orphaned"
        )
    }
}

/// A network as `GET /networks/{name}` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    /// `bridge`, `overlay`, ...
    pub driver: String,
    /// `local` or `swarm`.
    pub scope: String,
    /// Whether standalone containers may join it (overlay networks only).
    pub attachable: bool,
}

/// Whether an update failed only because the service changed since it was read.
pub fn is_out_of_sequence(e: &DockerError) -> bool {
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

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
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

    /// One request, read whole: (status, body).
    fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), DockerError> {
        let version = match self.docker.api_version() {
            Some(v) => v,
            None => self.docker.negotiate()?,
        };
        let url = format!("http://docker/v{version}{path_and_query}");
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        let what = match method {
            Method::Get => format!("GET {path}"),
            Method::Post => format!("POST {path}"),
        };
        let sent = match (method, body) {
            (Method::Get, _) => self.agent.get(&url).call(),
            (Method::Post, Some(json)) => self.agent.post(&url).send_json(json),
            (Method::Post, None) => self.agent.post(&url).send_empty(),
        };
        let socket = self.docker.socket();
        let mut resp = sent.map_err(|e| from_ureq(socket, &what, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| from_ureq(socket, &what, e))?;
        log::trace!("docker: {what} -> {status}");
        Ok((status, body))
    }

    fn json<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, DockerError> {
        serde_json::from_slice(body)
            .map_err(|e| DockerError::Protocol(format!("{what}: cannot decode the answer: {e}")))
    }

    /// `GET /info`: this node's swarm state.
    pub fn info(&self) -> Result<SwarmInfo, DockerError> {
        let (status, body) = self.call(Method::Get, "/info", None)?;
        if status != 200 {
            return Err(from_status(status, &body));
        }
        let info: RawInfo = Swarm::json("GET /info", &body)?;
        let s = info.swarm.unwrap_or_default();
        Ok(SwarmInfo {
            state: s.local_node_state,
            manager: s.control_available,
            node_id: s.node_id,
        })
    }

    /// Services carrying `label` (`key=value`). Not a manager: `Api { status: 503 }`.
    pub fn services(&self, label: &str) -> Result<Vec<ServiceInfo>, DockerError> {
        let f = filters(&[("label", &[label])]);
        let (status, body) = self.call(
            Method::Get,
            &format!("/services{}", query(&[("filters", &f)])),
            None,
        )?;
        match status {
            200 => Ok(Swarm::json::<Vec<RawService>>("GET /services", &body)?
                .into_iter()
                .map(ServiceInfo::from)
                .collect()),
            s => Err(from_status(s, &body)),
        }
    }

    /// The service with exactly this name or id; `None` when there is none. (The daemon also
    /// resolves id prefixes; a service found that way under another name is not this one.)
    pub fn service(&self, name_or_id: &str) -> Result<Option<ServiceInfo>, DockerError> {
        let name = object_name("service name or id", name_or_id)?;
        let path = format!("/services/{name}");
        let (status, body) = self.call(Method::Get, &path, None)?;
        match status {
            200 => {
                let s =
                    ServiceInfo::from(Swarm::json::<RawService>(&format!("GET {path}"), &body)?);
                Ok((s.name == name || s.id == name).then_some(s))
            }
            404 => Ok(None),
            s => Err(from_status(s, &body)),
        }
    }

    /// `POST /services/create` with a service `Spec`; returns the new service's id.
    /// `Conflict` when the name is taken.
    pub fn create_service(&self, spec: &Value) -> Result<String, DockerError> {
        let (status, body) = self.call(Method::Post, "/services/create", Some(spec))?;
        match status {
            200 | 201 => {
                let created: RawCreated = Swarm::json("POST /services/create", &body)?;
                log_warnings("creating a service", created.warnings);
                if created.id.is_empty() {
                    return Err(DockerError::Protocol(
                        "POST /services/create answered without an ID".into(),
                    ));
                }
                Ok(created.id)
            }
            s => Err(from_status(s, &body)),
        }
    }

    /// `POST /services/{id}/update?version=N` with the whole new `Spec`. A stale `version`
    /// fails with an error for which [`is_out_of_sequence`] is true.
    pub fn update_service(&self, id: &str, version: u64, spec: &Value) -> Result<(), DockerError> {
        let id = object_name("service id", id)?;
        let v = version.to_string();
        let path = format!("/services/{id}/update{}", query(&[("version", &v)]));
        let (status, body) = self.call(Method::Post, &path, Some(spec))?;
        match status {
            200 => {
                if let Ok(a) = serde_json::from_slice::<RawUpdated>(&body) {
                    log_warnings("updating a service", a.warnings);
                }
                Ok(())
            }
            s => Err(from_status(s, &body)),
        }
    }

    /// Reads the service, lets `change` compute its new `Spec` from what it read (`None`: no
    /// change needed), and updates it with the version it read. When the daemon says "update
    /// out of sequence" (someone else updated it in between), reads again and retries, up to
    /// [`UPDATE_ATTEMPTS`] times. Returns the service as read before the update that was made
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
        let (status, body) = self.call(
            Method::Get,
            &format!("/tasks{}", query(&[("filters", &f)])),
            None,
        )?;
        match status {
            200 => Ok(Swarm::json::<Vec<RawTask>>("GET /tasks", &body)?
                .into_iter()
                .map(TaskInfo::from)
                .collect()),
            s => Err(from_status(s, &body)),
        }
    }

    /// The last `n` lines a task wrote (stdout and stderr), from whichever node ran it.
    pub fn task_logs(&self, task_id: &str, n: usize) -> Result<String, DockerError> {
        let id = object_name("task id", task_id)?;
        let tail = n.to_string();
        let q = query(&[("stdout", "true"), ("stderr", "true"), ("tail", &tail)]);
        let (status, body) = self.call(Method::Get, &format!("/tasks/{id}/logs{q}"), None)?;
        match status {
            // Task logs always come multiplexed (swarm has no TTY here).
            200 => Ok(demux_to_string(&body, true)),
            s => Err(from_status(s, &body)),
        }
    }

    /// The network called exactly `name`, if there is one.
    pub fn network(&self, name: &str) -> Result<Option<NetworkInfo>, DockerError> {
        let name = object_name("network name", name)?;
        let path = format!("/networks/{name}");
        let (status, body) = self.call(Method::Get, &path, None)?;
        match status {
            200 => {
                let n: RawNetwork = Swarm::json(&format!("GET {path}"), &body)?;
                let exact = n.name == name || n.id == name;
                Ok(exact.then_some(NetworkInfo {
                    id: n.id,
                    name: n.name,
                    driver: n.driver,
                    scope: n.scope,
                    attachable: n.attachable,
                }))
            }
            404 => Ok(None),
            s => Err(from_status(s, &body)),
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
        let (status, body) = self.call(Method::Post, "/networks/create", Some(&body))?;
        match status {
            200 | 201 | 409 => Ok(()),
            s => Err(from_status(s, &body)),
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
        let (status, body) = self.call(Method::Get, &path, None)?;
        let raw: RawImage = match status {
            200 => Swarm::json(&format!("GET {path}"), &body)?,
            404 => return Ok(None),
            s => return Err(from_status(s, &body)),
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

// ---- raw JSON shapes: every field optional, unknown fields ignored ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawInfo {
    swarm: Option<RawSwarmInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawSwarmInfo {
    #[serde(rename = "NodeID")]
    node_id: String,
    local_node_state: String,
    control_available: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawVersion {
    index: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawService {
    #[serde(rename = "ID")]
    id: String,
    version: RawVersion,
    spec: Value,
}

impl From<RawService> for ServiceInfo {
    fn from(r: RawService) -> Self {
        let spec = r.spec;
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let labels = spec["Labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
            .unwrap_or_default();
        ServiceInfo {
            id: r.id,
            name: str_of(&spec["Name"]),
            version: r.version.index,
            labels,
            replicas: spec["Mode"]["Replicated"]
                .is_object()
                .then(|| spec["Mode"]["Replicated"]["Replicas"].as_u64().unwrap_or(0)),
            image: str_of(&spec["TaskTemplate"]["ContainerSpec"]["Image"]),
            spec,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCreated {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Warnings")]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawUpdated {
    #[serde(rename = "Warnings")]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawTask {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    slot: Option<u64>,
    #[serde(rename = "NodeID")]
    node_id: String,
    desired_state: String,
    status: RawTaskStatus,
    created_at: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawTaskStatus {
    state: String,
    message: String,
    err: String,
    container_status: Option<RawContainerStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawContainerStatus {
    #[serde(rename = "ContainerID")]
    container_id: String,
    exit_code: Option<i64>,
}

impl From<RawTask> for TaskInfo {
    fn from(r: RawTask) -> Self {
        let cs = r.status.container_status.unwrap_or_default();
        TaskInfo {
            id: r.id,
            service_id: r.service_id,
            slot: r.slot,
            node_id: r.node_id,
            desired_state: r.desired_state,
            state: r.status.state,
            message: r.status.message,
            err: r.status.err,
            exit_code: cs.exit_code,
            container_id: cs.container_id,
            created_at: r.created_at,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawNetwork {
    name: String,
    id: String,
    driver: String,
    scope: String,
    attachable: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawImage {
    id: String,
    repo_digests: Option<Vec<String>>,
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
    fn service_and_task_shapes() {
        let raw: RawService = serde_json::from_str(
            r#"{"ID":"abc","Version":{"Index":14},"Spec":{"Name":"blog","Labels":{"wakeproxy.managed":"true"},
               "TaskTemplate":{"ContainerSpec":{"Image":"sha256:1"}},"Mode":{"Replicated":{"Replicas":2}}}}"#,
        )
        .unwrap();
        let s = ServiceInfo::from(raw);
        assert_eq!(
            (s.id.as_str(), s.name.as_str(), s.version),
            ("abc", "blog", 14)
        );
        assert_eq!((s.replicas, s.image.as_str()), (Some(2), "sha256:1"));
        assert_eq!(s.labels["wakeproxy.managed"], "true");
        let global: RawService =
            serde_json::from_str(r#"{"ID":"g","Spec":{"Name":"g","Mode":{"Global":{}}}}"#).unwrap();
        assert_eq!(ServiceInfo::from(global).replicas, None);

        let raw: RawTask = serde_json::from_str(
            r#"{"ID":"t1","ServiceID":"abc","Slot":1,"NodeID":"n","DesiredState":"shutdown",
               "Status":{"State":"failed","Message":"started","Err":"task: non-zero exit (3)",
                         "ContainerStatus":{"ContainerID":"c1","ExitCode":3}},"CreatedAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let t = TaskInfo::from(raw);
        assert!(t.has_failed() && !t.is_running());
        assert_eq!(
            (t.err.as_str(), t.exit_code, t.slot),
            ("task: non-zero exit (3)", Some(3), Some(1))
        );
        let pending: RawTask = serde_json::from_str(
            r#"{"ID":"t2","DesiredState":"running","Status":{"State":"preparing"}}"#,
        )
        .unwrap();
        let t = TaskInfo::from(pending);
        assert!(!t.has_failed() && !t.is_running() && t.exit_code.is_none());
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
