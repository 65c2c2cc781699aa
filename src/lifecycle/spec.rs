//! What a managed container looks like to Docker: its labels, the hash of its settings (so a
//! changed config leads to a recreate), the JSON body of `POST /containers/create`, and for
//! `mode: swarm` the service `Spec` of `POST /services/create`. Pure.

use serde_json::{Map, Value, json};

use super::runspec::{apply_to_create, apply_to_swarm, hash_part, merge_labels};
use crate::config::{ConnectMode, ContainerSpec, EndpointMode};

/// Present (value `true`) on every container wakeproxy creates.
pub(crate) const LABEL_MANAGED: &str = "wakeproxy.managed";
/// The proxy instance that owns the container (global `instance`).
pub(crate) const LABEL_INSTANCE: &str = "wakeproxy.instance";
/// The service name.
pub(crate) const LABEL_SERVICE: &str = "wakeproxy.service";
/// Hash of the settings the container was created with.
pub(crate) const LABEL_HASH: &str = "wakeproxy.settings-hash";

/// Seconds Docker waits after SIGTERM before SIGKILL on stop.
pub(crate) const STOP_TIMEOUT_SECS: u64 = 10;
/// How often swarm restarts a failed task of a swarm service (restart policy `on-failure`).
/// A start already fails at the first failed task; the retries cover crashes while serving.
pub(crate) const SWARM_MAX_ATTEMPTS: u64 = 3;
/// Pause before swarm restarts a failed task.
pub(crate) const SWARM_RESTART_DELAY_SECS: u64 = 1;

/// Everything needed to create one service's container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManagedSpec {
    /// Container name = service name.
    pub name: String,
    pub container: ContainerSpec,
    pub network: Option<String>,
    pub mode: ConnectMode,
    pub instance: String,
}

impl ManagedSpec {
    /// The label selecting this instance's containers: `wakeproxy.instance=<instance>`.
    pub(crate) fn instance_label(instance: &str) -> String {
        format!("{LABEL_INSTANCE}={instance}")
    }

    /// A stable hex digest of every setting that shapes the container (FNV-1a 64 over a
    /// canonical rendering), so the same config gives the same hash across runs and versions.
    pub(crate) fn settings_hash(&self) -> String {
        let c = &self.container;
        let mut canon = format!(
            "v1|image={}|port={}|host_port={:?}|mem={:?}|cpus={:?}|init={}|net={:?}|mode={:?}",
            c.image,
            c.internal_port,
            c.host_port,
            c.mem_limit,
            c.cpus,
            c.init,
            self.network,
            self.mode
        );
        for (k, v) in &c.environment {
            canon.push_str(&format!("|env={}={}", k.len(), k));
            canon.push_str(&format!("={}={}", v.len(), v));
        }
        for v in &c.volumes {
            canon.push_str(&format!("|vol={}:{}:{}", v.host, v.bind, v.mode));
        }
        // Only swarm services add to the rendering, so container hashes stay as they were.
        // `replicas` is left out: scaling is not a change of settings.
        if let Some(sw) = &c.swarm {
            canon.push_str(&format!("|swarm|endpoint={:?}", sw.endpoint_mode));
        }
        // Empty unless a Compose-style setting is set: the same hashes as before those existed.
        canon.push_str(&hash_part(&c.run));
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canon.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// `wakeproxy.managed`, `wakeproxy.instance` and `wakeproxy.service`.
    fn owner_labels(&self) -> Map<String, Value> {
        let mut labels = Map::new();
        labels.insert(LABEL_MANAGED.into(), json!("true"));
        labels.insert(LABEL_INSTANCE.into(), json!(self.instance));
        labels.insert(LABEL_SERVICE.into(), json!(self.name));
        labels
    }

    /// The `Spec` of `POST /services/create` (and of `POST /services/{id}/update`) for a
    /// `mode: swarm` service running `image` (the configured image, or the reference it was
    /// pinned to) with `replicas` replicas.
    ///
    /// The service carries the same labels as a container, settings hash included; its task
    /// containers carry the owner labels too (so Docker events about them reach the events
    /// follower), and the user's `labels`. Volumes become bind (or named volume) mounts,
    /// `mem_limit` and `cpus` resource limits; the Compose-style settings go where swarm has a
    /// place for them (`runspec::apply_to_swarm`). The task joins the overlay network with the service name as alias; the proxy
    /// reaches it by that name (through the virtual IP, or by DNS round robin with
    /// `endpoint_mode: dnsrr`). Nothing is published.
    pub(crate) fn service_spec(&self, image: &str, replicas: u64) -> Value {
        let c = &self.container;
        let mut labels = self.owner_labels();
        labels.insert(LABEL_HASH.into(), json!(self.settings_hash()));
        let env: Vec<String> = c
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mounts: Vec<Value> = c
            .volumes
            .iter()
            .map(|v| {
                let kind = if v.host.starts_with('/') { "bind" } else { "volume" };
                json!({"Type": kind, "Source": v.host, "Target": v.bind, "ReadOnly": v.mode == "ro"})
            })
            .collect();
        let mut limits = Map::new();
        if let Some(m) = c.mem_limit {
            limits.insert("MemoryBytes".into(), json!(m));
        }
        if let Some(cpus) = c.cpus {
            limits.insert("NanoCPUs".into(), json!((cpus * 1e9).round() as u64));
        }
        let endpoint = match c.swarm.map(|s| s.endpoint_mode) {
            Some(EndpointMode::Dnsrr) => "dnsrr",
            _ => "vip",
        };
        let mut task = json!({
            "ContainerSpec": {
                "Image": image,
                "Labels": merge_labels(self.owner_labels(), &c.run.labels),
                "Env": env,
                "Init": c.init,
                "Mounts": mounts,
                "StopGracePeriod": STOP_TIMEOUT_SECS * 1_000_000_000,
            },
            "Resources": {"Limits": limits},
            "RestartPolicy": {
                "Condition": "on-failure",
                "MaxAttempts": SWARM_MAX_ATTEMPTS,
                "Delay": SWARM_RESTART_DELAY_SECS * 1_000_000_000,
            },
        });
        if let Some(Value::Object(spec)) = task.get_mut("ContainerSpec") {
            apply_to_swarm(&c.run, spec);
        }
        if let Some(net) = &self.network {
            task["Networks"] = json!([{"Target": net, "Aliases": [self.name]}]);
        }
        json!({
            "Name": self.name,
            "Labels": labels,
            "TaskTemplate": task,
            "Mode": {"Replicated": {"Replicas": replicas}},
            "EndpointSpec": {"Mode": endpoint},
        })
    }

    /// The body of `POST /containers/create?name=<name>`: wakeproxy's labels (settings hash
    /// included) with the user's, and the Compose-style settings (`runspec::apply_to_create`).
    pub(crate) fn create_body(&self) -> Value {
        let c = &self.container;
        let port_key = format!("{}/tcp", c.internal_port);
        let mut owner = self.owner_labels();
        owner.insert(LABEL_HASH.into(), json!(self.settings_hash()));
        let labels = merge_labels(owner, &c.run.labels);
        let env: Vec<String> = c
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let binds: Vec<String> = c
            .volumes
            .iter()
            .map(|v| format!("{}:{}:{}", v.host, v.bind, v.mode))
            .collect();
        let mut host = Map::new();
        host.insert("Binds".into(), json!(binds));
        host.insert("Init".into(), json!(c.init));
        host.insert("RestartPolicy".into(), json!({"Name": "no"}));
        if let Some(m) = c.mem_limit {
            host.insert("Memory".into(), json!(m));
        }
        if let Some(cpus) = c.cpus {
            host.insert("NanoCpus".into(), json!((cpus * 1e9).round() as u64));
        }
        if self.mode == ConnectMode::HostPort {
            // Published on loopback only: nobody reaches the app around the token.
            let host_port = c.host_port.map(|p| p.to_string()).unwrap_or_default();
            host.insert(
                "PortBindings".into(),
                json!({ port_key.clone(): [{"HostIp": "127.0.0.1", "HostPort": host_port}] }),
            );
        }
        let mut body = json!({
            "Image": c.image,
            "Labels": labels,
            "Env": env,
            "ExposedPorts": { port_key: {} },
            "StopTimeout": STOP_TIMEOUT_SECS,
        });
        if let Some(net) = &self.network {
            host.insert("NetworkMode".into(), json!(net));
            body["NetworkingConfig"] =
                json!({"EndpointsConfig": {net.clone(): {"Aliases": [self.name]}}});
        }
        if let Value::Object(top) = &mut body {
            apply_to_create(&c.run, top, &mut host);
        }
        body["HostConfig"] = Value::Object(host);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Pull, PullPolicy, SwarmSettings, Volume};

    fn spec() -> ManagedSpec {
        ManagedSpec {
            name: "blog".into(),
            container: ContainerSpec {
                image: "img:1".into(),
                internal_port: 8080,
                host_port: None,
                environment: vec![("A".into(), "1".into())],
                volumes: vec![Volume {
                    host: "/srv".into(),
                    bind: "/data".into(),
                    mode: "ro".into(),
                }],
                mem_limit: Some(64 << 20),
                cpus: Some(0.5),
                init: true,
                swarm: None,
                pull: Pull {
                    policy: PullPolicy::Always,
                    timeout: std::time::Duration::from_secs(600),
                },
                run: Box::default(),
                existing: None,
                depends_on: Vec::new(),
                compose_depends_on: false,
            },
            network: Some("net".into()),
            mode: ConnectMode::HostPort,
            instance: "t".into(),
        }
    }

    #[test]
    fn create_body_has_everything_docker_needs() {
        let b = spec().create_body();
        assert_eq!(b["Image"], "img:1");
        assert_eq!(b["Env"][0], "A=1");
        assert!(b["ExposedPorts"]["8080/tcp"].is_object());
        let h = &b["HostConfig"];
        assert_eq!(h["PortBindings"]["8080/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(h["PortBindings"]["8080/tcp"][0]["HostPort"], "");
        assert_eq!(h["Memory"], 64 << 20);
        assert_eq!(h["NanoCpus"], 500_000_000u64);
        assert_eq!(h["Init"], true);
        assert_eq!(h["RestartPolicy"]["Name"], "no");
        assert_eq!(h["Binds"][0], "/srv:/data:ro");
        assert_eq!(h["NetworkMode"], "net");
        assert_eq!(b["Labels"][LABEL_SERVICE], "blog");
        assert_eq!(b["Labels"][LABEL_INSTANCE], "t");
        assert_eq!(b["Labels"][LABEL_HASH], spec().settings_hash());
    }

    #[test]
    fn dns_mode_publishes_nothing() {
        let mut s = spec();
        s.mode = ConnectMode::DockerDns;
        assert!(s.create_body()["HostConfig"].get("PortBindings").is_none());
    }

    #[test]
    fn hash_changes_with_settings_only() {
        let a = spec();
        assert_eq!(a.settings_hash(), spec().settings_hash());
        assert_eq!(a.settings_hash().len(), 16);
        let mut b = spec();
        b.container.environment[0].1 = "2".into();
        assert_ne!(a.settings_hash(), b.settings_hash());
        let mut c = spec();
        c.container.environment = vec![("A=1".into(), String::new())];
        assert_ne!(
            a.settings_hash(),
            c.settings_hash(),
            "no ambiguity between key and value"
        );
        let mut d = spec();
        d.instance = "other".into();
        assert_eq!(
            a.settings_hash(),
            d.settings_hash(),
            "the instance label is not a setting"
        );
    }

    #[test]
    fn compose_settings_reach_the_bodies_and_the_hash() {
        let plain = spec();
        let mut s = spec();
        s.container.run.labels = vec![("com.example.team".into(), "web".into())];
        s.container.run.user = Some("1000".into());
        s.container.run.cap_drop = vec!["ALL".into()];
        assert_ne!(
            s.settings_hash(),
            plain.settings_hash(),
            "a Compose-style setting is a change of settings"
        );
        let b = s.create_body();
        assert_eq!(b["Labels"]["com.example.team"], "web");
        assert_eq!(b["Labels"][LABEL_SERVICE], "blog");
        assert_eq!(b["Labels"][LABEL_HASH], s.settings_hash());
        assert_eq!(b["User"], "1000");
        assert_eq!(b["HostConfig"]["CapDrop"], json!(["ALL"]));
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20, "the rest stays");
        s.container.swarm = Some(SwarmSettings {
            replicas: 1,
            endpoint_mode: EndpointMode::Vip,
        });
        let t = &s.service_spec("img:1", 1)["TaskTemplate"]["ContainerSpec"];
        assert_eq!(t["Labels"]["com.example.team"], "web");
        assert_eq!(t["Labels"][LABEL_SERVICE], "blog");
        assert_eq!(t["User"], "1000");
        assert_eq!(t["CapabilityDrop"], json!(["ALL"]));
    }

    fn swarm_spec() -> ManagedSpec {
        let mut s = spec();
        s.mode = ConnectMode::DockerDns;
        s.container.volumes.push(Volume {
            host: "cache".into(),
            bind: "/cache".into(),
            mode: "rw".into(),
        });
        s.container.swarm = Some(SwarmSettings {
            replicas: 2,
            endpoint_mode: EndpointMode::Vip,
        });
        s
    }

    #[test]
    fn container_hashes_do_not_move_and_swarm_settings_count() {
        // The hash of a container service from before swarm support existed.
        assert_eq!(spec().settings_hash(), "744805cb665059fb");
        let a = swarm_spec();
        let mut b = swarm_spec();
        b.container.swarm = Some(SwarmSettings {
            replicas: 5,
            endpoint_mode: EndpointMode::Vip,
        });
        assert_eq!(
            a.settings_hash(),
            b.settings_hash(),
            "scaling is not a change of settings"
        );
        b.container.swarm = Some(SwarmSettings {
            replicas: 2,
            endpoint_mode: EndpointMode::Dnsrr,
        });
        assert_ne!(a.settings_hash(), b.settings_hash());
        let mut c = swarm_spec();
        c.container.swarm = None;
        assert_ne!(
            a.settings_hash(),
            c.settings_hash(),
            "a mode switch is a change"
        );
    }

    #[test]
    fn service_spec_has_everything_swarm_needs() {
        let s = swarm_spec();
        let b = s.service_spec("sha256:abc", 2);
        assert_eq!(b["Name"], "blog");
        assert_eq!(b["Labels"][LABEL_MANAGED], "true");
        assert_eq!(b["Labels"][LABEL_INSTANCE], "t");
        assert_eq!(b["Labels"][LABEL_SERVICE], "blog");
        assert_eq!(b["Labels"][LABEL_HASH], s.settings_hash());
        assert_eq!(b["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(b["EndpointSpec"]["Mode"], "vip");
        let t = &b["TaskTemplate"];
        let c = &t["ContainerSpec"];
        assert_eq!(c["Image"], "sha256:abc");
        assert_eq!(c["Env"][0], "A=1");
        assert_eq!(c["Init"], true);
        assert_eq!(c["StopGracePeriod"], 10_000_000_000u64);
        assert_eq!(c["Labels"][LABEL_SERVICE], "blog");
        assert!(
            c["Labels"].get(LABEL_HASH).is_none(),
            "tasks do not need the hash"
        );
        assert_eq!(
            c["Mounts"][0],
            json!({"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": true})
        );
        assert_eq!(
            c["Mounts"][1],
            json!({"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": false})
        );
        assert_eq!(t["Resources"]["Limits"]["MemoryBytes"], 64 << 20);
        assert_eq!(t["Resources"]["Limits"]["NanoCPUs"], 500_000_000u64);
        assert_eq!(t["RestartPolicy"]["Condition"], "on-failure");
        assert_eq!(t["RestartPolicy"]["MaxAttempts"], SWARM_MAX_ATTEMPTS);
        assert_eq!(
            t["Networks"][0],
            json!({"Target": "net", "Aliases": ["blog"]})
        );
        assert!(
            b.get("EndpointSpec").unwrap().get("Ports").is_none(),
            "nothing is published"
        );
        let mut d = swarm_spec();
        d.container.swarm = Some(SwarmSettings {
            replicas: 1,
            endpoint_mode: EndpointMode::Dnsrr,
        });
        d.container.mem_limit = None;
        d.container.cpus = None;
        let b = d.service_spec("img:1", 0);
        assert_eq!(b["EndpointSpec"]["Mode"], "dnsrr");
        assert_eq!(b["Mode"]["Replicated"]["Replicas"], 0);
        assert_eq!(b["TaskTemplate"]["Resources"]["Limits"], json!({}));
    }
}
