//! What a swarm service's nodes decide: whether a local-only image can run on every node that
//! takes tasks, which running tasks are on a node the manager still hears from, and where the
//! tasks are (for `/proxy/status`).

use std::collections::HashMap;

use crate::docker::{NodeInfo, TaskInfo};

use super::swarm::SwarmEngine;
use super::{EngineError, TaskPlace};

/// How a node is named in messages: its hostname and address.
fn describe(n: &NodeInfo) -> String {
    match (n.hostname.as_str(), n.addr.as_str()) {
        ("", addr) => format!("{} ({addr})", &n.id[..n.id.len().min(12)]),
        (host, "") => host.to_string(),
        (host, addr) => format!("{host} ({addr})"),
    }
}

/// The nodes other than `me` that take tasks: those that lack an image only `me` has.
fn others_taking_tasks(nodes: &[NodeInfo], me: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.id != me && n.takes_tasks())
        .map(describe)
        .collect()
}

/// The 503 detail for a local-only image on a swarm with other nodes.
fn local_image_message(service: &str, image: &str, lacking: &[String]) -> String {
    format!(
        "swarm service {service}: image {image} has no registry digest on this node (it was built \
         or loaded here), so swarm can only run it by its local id, which {} cannot pull: push \
         it to a registry and pull it on this node (wakeproxy then pins its digest, which every \
         node pulls)",
        match lacking {
            [one] => format!("node {one}"),
            many => format!("nodes {}", many.join(", ")),
        }
    )
}

/// Whether some task runs on a node that is ready, by the nodes known (none known: any).
fn runs_on_live_node(tasks: &[TaskInfo], nodes: Option<&[NodeInfo]>) -> bool {
    tasks.iter().filter(|t| t.is_running()).any(|t| {
        nodes.is_none_or(|ns| {
            ns.iter()
                .find(|n| n.id == t.node_id)
                .is_none_or(|n| n.state == "ready")
        })
    })
}

/// The tasks that run or are on their way, with their nodes' names and states.
fn places(tasks: &[TaskInfo], nodes: &[NodeInfo]) -> Vec<TaskPlace> {
    let by_id: HashMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out: Vec<TaskPlace> = tasks
        .iter()
        .filter(|t| t.desired_state == "running")
        .map(|t| {
            let node = by_id.get(t.node_id.as_str());
            TaskPlace {
                task: t.id[..t.id.len().min(12)].to_string(),
                node: node.map_or_else(|| t.node_id.clone(), |n| n.hostname.clone()),
                node_state: node.map_or_else(String::new, |n| n.state.clone()),
                state: t.state.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.node, &a.task).cmp(&(&b.node, &b.task)));
    out
}

impl SwarmEngine {
    /// Refuses a local-only image (`pinned` to its id) when other nodes take tasks.
    pub(super) fn check_image_reaches_nodes(
        &self,
        service: &str,
        image: &str,
        pinned: &str,
    ) -> Result<(), EngineError> {
        if !pinned.starts_with("sha256:") {
            return Ok(());
        }
        let me = self.swarm().info()?.node_id;
        let lacking = others_taking_tasks(&self.swarm().nodes()?, &me);
        if lacking.is_empty() {
            return Ok(());
        }
        Err(EngineError(local_image_message(service, image, &lacking)))
    }

    /// Whether one of `tasks` runs on a node the manager still takes for ready (all running
    /// tasks count when the nodes cannot be read).
    pub(super) fn serving(&self, tasks: &[TaskInfo]) -> bool {
        let nodes = self.swarm().nodes().ok();
        runs_on_live_node(tasks, nodes.as_deref())
    }

    /// Where the tasks of service `id` are, read with the status budget.
    pub(super) fn task_places(&self, tasks: &[TaskInfo]) -> Option<Vec<TaskPlace>> {
        let nodes = self.quick().nodes().ok()?;
        Some(places(tasks, &nodes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, host: &str, state: &str, availability: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            hostname: host.into(),
            state: state.into(),
            availability: availability.into(),
            addr: format!("10.0.0.{}", id.len()),
        }
    }

    fn task(id: &str, node: &str, state: &str, desired: &str) -> TaskInfo {
        TaskInfo {
            id: id.into(),
            service_id: "s".into(),
            slot: Some(1),
            node_id: node.into(),
            desired_state: desired.into(),
            state: state.into(),
            message: String::new(),
            err: String::new(),
            exit_code: None,
            container_id: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn a_local_image_names_the_other_nodes_that_take_tasks() {
        let nodes = [
            node("m", "manager", "ready", "active"),
            node("w1", "worker-1", "ready", "active"),
            node("w22", "worker-2", "ready", "drain"),
            node("w333", "worker-3", "down", "active"),
        ];
        let lacking = others_taking_tasks(&nodes, "m");
        assert_eq!(lacking, ["worker-1 (10.0.0.2)"]);
        let m = local_image_message("api", "api:dev", &lacking);
        assert!(m.contains("image api:dev has no registry digest"), "{m}");
        assert!(
            m.contains("which node worker-1 (10.0.0.2) cannot pull"),
            "{m}"
        );
        assert!(others_taking_tasks(&nodes[..1], "m").is_empty());
        let two = local_image_message("api", "api:dev", &["a".into(), "b".into()]);
        assert!(two.contains("which nodes a, b cannot pull"), "{two}");
    }

    #[test]
    fn a_task_on_a_node_gone_down_does_not_serve() {
        let nodes = [
            node("m", "manager", "ready", "active"),
            node("w", "worker", "down", "active"),
        ];
        let on_w = [task("t1", "w", "running", "running")];
        assert!(!runs_on_live_node(&on_w, Some(&nodes)));
        assert!(runs_on_live_node(&on_w, None));
        let on_m = [task("t2", "m", "running", "running")];
        assert!(runs_on_live_node(&on_m, Some(&nodes)));
        let stopping = [task("t3", "m", "running", "shutdown")];
        assert!(!runs_on_live_node(&stopping, Some(&nodes)));
    }

    #[test]
    fn places_name_each_current_task_s_node() {
        let nodes = [
            node("m", "manager", "ready", "active"),
            node("w", "worker", "down", "active"),
        ];
        let tasks = [
            task("t1aaaaaaaaaaaaaa", "w", "running", "running"),
            task("t2", "m", "starting", "running"),
            task("t0", "m", "shutdown", "shutdown"),
        ];
        let p = places(&tasks, &nodes);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].node.as_str(), p[0].state.as_str()),
            ("manager", "starting")
        );
        assert_eq!(
            (
                p[1].task.as_str(),
                p[1].node.as_str(),
                p[1].node_state.as_str()
            ),
            ("t1aaaaaaaaaa", "worker", "down")
        );
    }
}
