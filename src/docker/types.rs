//! Public views of containers and images, and the tolerant raw JSON shapes they are read from.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The full container id.
    pub id: String,
    /// The first name, without the leading `/`.
    pub name: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    /// Human-readable status, e.g. `Up 3 seconds (healthy)`.
    pub status: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
}

/// One host binding of a published container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The host address (`127.0.0.1`, `0.0.0.0`, `::`, or empty for all).
    pub host_ip: String,
    /// The host port as the daemon reports it.
    pub host_port: String,
}

/// What `GET /containers/{id}/json` says, reduced to what wakeproxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The full container id.
    pub id: String,
    /// The name, without the leading `/`.
    pub name: String,
    /// The image the container was created from, as given at create time.
    pub image: String,
    /// `State.Running`.
    pub running: bool,
    /// `State.Status`: `created`, `running`, `exited`, ...
    pub status: String,
    /// `State.ExitCode` (meaningful once the container has exited).
    pub exit_code: i64,
    /// `State.OOMKilled`.
    pub oom_killed: bool,
    /// `State.Error`: why the last start failed, if it did (empty otherwise).
    pub error: String,
    /// `State.Health.Status` (`starting`, `healthy`, `unhealthy`), only while running and only
    /// when the container has a healthcheck.
    pub health: Option<String>,
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `NetworkSettings.Ports`: `"8000/tcp"` to its host bindings (empty when not published).
    pub ports: BTreeMap<String, Vec<PortBinding>>,
    /// `NetworkSettings.Networks`: network name to the container's IP address on it.
    pub networks: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// The host port published for `container_port/tcp`, preferring a binding on 127.0.0.1,
    /// then one on any address.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        let bindings = self.ports.get(&format!("{container_port}/tcp"))?;
        let port = |b: &PortBinding| b.host_port.parse::<u16>().ok().filter(|p| *p != 0);
        let loopback = bindings
            .iter()
            .filter(|b| b.host_ip == "127.0.0.1")
            .find_map(port);
        loopback.or_else(|| {
            bindings
                .iter()
                .filter(|b| matches!(b.host_ip.as_str(), "" | "0.0.0.0" | "::"))
                .find_map(port)
        })
    }

    /// The container's IP address on `network`, if it is attached and has one.
    pub fn ip_on(&self, network: &str) -> Option<String> {
        self.networks
            .get(network)
            .filter(|ip| !ip.is_empty())
            .cloned()
    }
}

/// What `GET /images/{name}/json` says, reduced to what wakeproxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (`sha256:...`).
    pub id: String,
    /// Whether the image defines a HEALTHCHECK (one that is not `NONE`).
    pub has_healthcheck: bool,
}

// ---- raw JSON shapes: every field optional, unknown fields ignored ----

fn strip_slash(s: &str) -> String {
    s.strip_prefix('/').unwrap_or(s).to_string()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawSummary {
    id: String,
    names: Option<Vec<String>>,
    state: String,
    status: String,
    labels: Option<BTreeMap<String, String>>,
}

impl From<RawSummary> for ContainerSummary {
    fn from(r: RawSummary) -> Self {
        ContainerSummary {
            name: r
                .names
                .unwrap_or_default()
                .first()
                .map(|n| strip_slash(n))
                .unwrap_or_default(),
            id: r.id,
            state: r.state,
            status: r.status,
            labels: r.labels.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawInspect {
    id: String,
    name: String,
    image: String,
    state: Option<RawState>,
    config: Option<RawConfig>,
    network_settings: Option<RawNetworkSettings>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawState {
    status: String,
    running: bool,
    exit_code: i64,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    error: String,
    health: Option<RawHealth>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawHealth {
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawConfig {
    image: String,
    labels: Option<BTreeMap<String, String>>,
    healthcheck: Option<RawHealthcheck>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawHealthcheck {
    test: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawNetworkSettings {
    ports: Option<BTreeMap<String, Option<Vec<RawPortBinding>>>>,
    networks: Option<BTreeMap<String, Option<RawEndpoint>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawPortBinding {
    host_ip: String,
    host_port: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEndpoint {
    #[serde(rename = "IPAddress")]
    ip_address: String,
}

impl From<RawInspect> for ContainerInfo {
    fn from(r: RawInspect) -> Self {
        let state = r.state.unwrap_or_default();
        let config = r.config.unwrap_or_default();
        let net = r.network_settings.unwrap_or_default();
        let health = state
            .health
            .filter(|_| state.running)
            .map(|h| h.status)
            .filter(|s| !s.is_empty());
        let ports = net
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|(port, bindings)| {
                let bindings = bindings
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| PortBinding {
                        host_ip: b.host_ip,
                        host_port: b.host_port,
                    })
                    .collect();
                (port, bindings)
            })
            .collect();
        let networks = net
            .networks
            .unwrap_or_default()
            .into_iter()
            .map(|(name, ep)| (name, ep.unwrap_or_default().ip_address))
            .collect();
        ContainerInfo {
            id: r.id,
            name: strip_slash(&r.name),
            image: if config.image.is_empty() {
                r.image
            } else {
                config.image
            },
            running: state.running,
            status: state.status,
            exit_code: state.exit_code,
            oom_killed: state.oom_killed,
            error: state.error,
            health,
            labels: config.labels.unwrap_or_default(),
            ports,
            networks,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawImage {
    id: String,
    config: Option<RawConfig>,
}

impl From<RawImage> for ImageInfo {
    fn from(r: RawImage) -> Self {
        let test = r
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test)
            .unwrap_or_default();
        ImageInfo {
            id: r.id,
            has_healthcheck: test.first().is_some_and(|t| t != "NONE"),
        }
    }
}

/// What create calls answer: `{"Id": ...}` for a container, `{"ID": ...}` for a service.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawCreated {
    #[serde(alias = "ID")]
    pub(super) id: String,
    pub(super) warnings: Option<Vec<String>>,
}

/// The part of `GET /networks/{name}` we look at.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RawNetwork {
    pub(super) name: String,
    pub(super) id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"{
        "Id": "abc123", "Name": "/wp-web", "Image": "sha256:feed",
        "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0,
                  "OOMKilled": false, "Error": "", "Health": {"Status": "healthy", "FailingStreak": 0}},
        "Config": {"Image": "wakeproxy-testbackend:latest", "Labels": {"wakeproxy.service": "web"}},
        "NetworkSettings": {
            "Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40001"},
                                   {"HostIp": "127.0.0.1", "HostPort": "40000"}],
                      "9000/tcp": null},
            "Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "wp-net": {"IPAddress": ""}}
        }
    }"#;

    #[test]
    fn inspect_conversion() {
        let raw: RawInspect = serde_json::from_str(INSPECT).unwrap();
        let info = ContainerInfo::from(raw);
        assert_eq!(info.name, "wp-web");
        assert_eq!(info.image, "wakeproxy-testbackend:latest");
        assert!(info.running);
        assert_eq!(info.health.as_deref(), Some("healthy"));
        assert_eq!(info.labels["wakeproxy.service"], "web");
        assert_eq!(info.host_port(8000), Some(40000));
        assert_eq!(info.host_port(9000), None);
        assert_eq!(info.host_port(1), None);
        assert_eq!(info.ip_on("bridge").as_deref(), Some("172.17.0.2"));
        assert_eq!(info.ip_on("wp-net"), None);
        assert_eq!(info.ip_on("nope"), None);
    }

    #[test]
    fn inspect_of_exited_container_drops_health() {
        let json = r#"{"Id":"x","Name":"/n","State":{"Status":"exited","Running":false,
            "ExitCode":3,"OOMKilled":true,"Health":{"Status":"unhealthy"}},"Config":{"Labels":null},
            "NetworkSettings":{"Ports":{},"Networks":{}}}"#;
        let info = ContainerInfo::from(serde_json::from_str::<RawInspect>(json).unwrap());
        assert!(!info.running);
        assert_eq!(info.exit_code, 3);
        assert!(info.oom_killed);
        assert_eq!(info.health, None);
        assert!(info.labels.is_empty());
    }

    #[test]
    fn missing_fields_are_tolerated() {
        let info = ContainerInfo::from(serde_json::from_str::<RawInspect>("{}").unwrap());
        assert_eq!(info.id, "");
        assert!(!info.running);
        let s = ContainerSummary::from(
            serde_json::from_str::<RawSummary>(
                r#"{"Id":"i","Names":["/a","/b"],"State":"exited"}"#,
            )
            .unwrap(),
        );
        assert_eq!(s.name, "a");
        assert_eq!(s.state, "exited");
    }

    #[test]
    fn any_address_binding_is_used_when_no_loopback() {
        let json =
            r#"{"NetworkSettings":{"Ports":{"8000/tcp":[{"HostIp":"","HostPort":"1234"}]}}}"#;
        let info = ContainerInfo::from(serde_json::from_str::<RawInspect>(json).unwrap());
        assert_eq!(info.host_port(8000), Some(1234));
    }

    #[test]
    fn created_ids_of_containers_and_services() {
        let container: RawCreated =
            serde_json::from_str(r#"{"Id":"c1","Warnings":["low memory"]}"#).unwrap();
        assert_eq!(container.id, "c1");
        assert_eq!(container.warnings, Some(vec!["low memory".to_string()]));
        let service: RawCreated = serde_json::from_str(r#"{"ID":"s1"}"#).unwrap();
        assert_eq!((service.id.as_str(), service.warnings), ("s1", None));
    }

    #[test]
    fn image_healthcheck() {
        let img = |json: &str| ImageInfo::from(serde_json::from_str::<RawImage>(json).unwrap());
        assert!(
            img(r#"{"Id":"sha256:1","Config":{"Healthcheck":{"Test":["CMD","/app","--health"]}}}"#)
                .has_healthcheck
        );
        assert!(
            !img(r#"{"Id":"sha256:1","Config":{"Healthcheck":{"Test":["NONE"]}}}"#).has_healthcheck
        );
        assert!(!img(r#"{"Id":"sha256:1","Config":{"Env":[]}}"#).has_healthcheck);
        assert!(!img(r#"{"Id":"sha256:1","Config":null}"#).has_healthcheck);
    }
}
