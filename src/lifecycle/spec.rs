//! What a managed container looks like to Docker: its labels, the hash of its settings (so a
//! changed config leads to a recreate), and the JSON body of `POST /containers/create`. Pure.

use serde_json::{json, Map, Value};

use crate::config::{ConnectMode, ContainerSpec};

/// Present (value `true`) on every container wakeproxy creates.
pub const LABEL_MANAGED: &str = "wakeproxy.managed";
/// The proxy instance that owns the container (global `instance`).
pub const LABEL_INSTANCE: &str = "wakeproxy.instance";
/// The service name.
pub const LABEL_SERVICE: &str = "wakeproxy.service";
/// Hash of the settings the container was created with.
pub const LABEL_HASH: &str = "wakeproxy.settings-hash";

/// Seconds Docker waits after SIGTERM before SIGKILL on stop.
pub const STOP_TIMEOUT_SECS: u64 = 10;

/// Everything needed to create one service's container.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedSpec {
    /// Container name = service name.
    pub name: String,
    pub container: ContainerSpec,
    pub network: Option<String>,
    pub mode: ConnectMode,
    pub instance: String,
}

impl ManagedSpec {
    /// The label selecting this instance's containers: `wakeproxy.instance=<instance>`.
    pub fn instance_label(instance: &str) -> String {
        format!("{LABEL_INSTANCE}={instance}")
    }

    /// A stable hex digest of every setting that shapes the container (FNV-1a 64 over a
    /// canonical rendering), so the same config gives the same hash across runs and versions.
    pub fn settings_hash(&self) -> String {
        let c = &self.container;
        let mut canon = format!(
            "v1|image={}|port={}|host_port={:?}|mem={:?}|cpus={:?}|init={}|net={:?}|mode={:?}",
            c.image, c.internal_port, c.host_port, c.mem_limit, c.cpus, c.init, self.network, self.mode
        );
        for (k, v) in &c.environment {
            canon.push_str(&format!("|env={}={}", k.len(), k));
            canon.push_str(&format!("={}={}", v.len(), v));
        }
        for v in &c.volumes {
            canon.push_str(&format!("|vol={}:{}:{}", v.host, v.bind, v.mode));
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canon.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The body of `POST /containers/create?name=<name>`.
    pub fn create_body(&self) -> Value {
        let c = &self.container;
        let port_key = format!("{}/tcp", c.internal_port);
        let mut labels = Map::new();
        labels.insert(LABEL_MANAGED.into(), json!("true"));
        labels.insert(LABEL_INSTANCE.into(), json!(self.instance));
        labels.insert(LABEL_SERVICE.into(), json!(self.name));
        labels.insert(LABEL_HASH.into(), json!(self.settings_hash()));
        let env: Vec<String> = c.environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let binds: Vec<String> = c.volumes.iter().map(|v| format!("{}:{}:{}", v.host, v.bind, v.mode)).collect();
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
            body["NetworkingConfig"] = json!({"EndpointsConfig": {net.clone(): {"Aliases": [self.name]}}});
        }
        body["HostConfig"] = Value::Object(host);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Volume;

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
        assert_ne!(a.settings_hash(), c.settings_hash(), "no ambiguity between key and value");
        let mut d = spec();
        d.instance = "other".into();
        assert_eq!(a.settings_hash(), d.settings_hash(), "the instance label is not a setting");
    }
}
