//! Public views of the swarm (this node's membership, services, tasks, networks), and the
//! tolerant raw JSON shapes they are read from: every field optional, unknown fields ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

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
    /// `UpdatedAt`, as the daemon wrote it (RFC 3339; empty when absent).
    pub updated_at: String,
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

/// A node of the swarm (`GET /nodes`), reduced to what wakeproxy shows and decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// `Description.Hostname`: how people name the node.
    pub hostname: String,
    /// `Status.State`: `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// `Spec.Availability`: `active`, `pause` or `drain`.
    pub availability: String,
    /// `Status.Addr`: the address the node talks to the swarm from.
    pub addr: String,
}

impl NodeInfo {
    /// Ready, and taking tasks.
    pub fn takes_tasks(&self) -> bool {
        self.state == "ready" && self.availability == "active"
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
    /// Its subnets (`IPAM.Config[].Subnet`), e.g. `10.0.1.0/24`.
    pub subnets: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawInfo {
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

impl From<RawInfo> for SwarmInfo {
    fn from(r: RawInfo) -> Self {
        let s = r.swarm.unwrap_or_default();
        SwarmInfo {
            state: s.local_node_state,
            manager: s.control_available,
            node_id: s.node_id,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawVersion {
    index: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawService {
    #[serde(rename = "ID")]
    id: String,
    version: RawVersion,
    spec: Value,
    updated_at: String,
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
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawNode {
    #[serde(rename = "ID")]
    id: String,
    spec: Value,
    description: Value,
    status: Value,
}

impl From<RawNode> for NodeInfo {
    fn from(r: RawNode) -> Self {
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        NodeInfo {
            id: r.id,
            hostname: str_of(&r.description["Hostname"]),
            state: str_of(&r.status["State"]),
            availability: str_of(&r.spec["Availability"]),
            addr: str_of(&r.status["Addr"]),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawUpdated {
    #[serde(rename = "Warnings")]
    pub(super) warnings: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawTask {
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

/// `GET /networks/{name}`, as far as [`NetworkInfo`] goes.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawNetworkInfo {
    name: String,
    id: String,
    driver: String,
    scope: String,
    attachable: bool,
    #[serde(rename = "IPAM")]
    ipam: Value,
}

impl From<RawNetworkInfo> for NetworkInfo {
    fn from(n: RawNetworkInfo) -> Self {
        NetworkInfo {
            id: n.id,
            name: n.name,
            driver: n.driver,
            scope: n.scope,
            attachable: n.attachable,
            subnets: n.ipam["Config"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c["Subnet"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The part of `GET /images/{name}/json` that pins an image: its id and registry digests.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawImageDigests {
    pub(super) id: String,
    pub(super) repo_digests: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_task_shapes() {
        let raw: RawService = serde_json::from_str(
            r#"{"ID":"abc","Version":{"Index":14},"UpdatedAt":"2026-12-04T10:00:00.5Z","Spec":{"Name":"blog","Labels":{"wakeproxy.managed":"true"},
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
        assert_eq!(s.updated_at, "2026-12-04T10:00:00.5Z");
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
    fn node_shape() {
        let raw: RawNode = serde_json::from_str(
            r#"{"ID":"n2","Spec":{"Role":"worker","Availability":"active"},
               "Description":{"Hostname":"wpswarm-n2"},"Status":{"State":"down","Addr":"10.213.213.2"}}"#,
        )
        .unwrap();
        let n = NodeInfo::from(raw);
        assert_eq!(
            (n.id.as_str(), n.hostname.as_str(), n.state.as_str()),
            ("n2", "wpswarm-n2", "down")
        );
        assert_eq!(n.addr, "10.213.213.2");
        assert!(!n.takes_tasks());
        let ready = NodeInfo {
            state: "ready".into(),
            ..n.clone()
        };
        assert!(ready.takes_tasks());
        let drained = NodeInfo {
            availability: "drain".into(),
            ..ready
        };
        assert!(!drained.takes_tasks());
    }
}
