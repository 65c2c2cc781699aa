//! The `/proxy/status` document: the proxy's version, start time, open connections and TLS
//! state, and one JSON object per service, in config order, rendered from a snapshot.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::base::load::LoadSnapshot;
use crate::base::rfc3339;
use crate::config::{Backend, Service};
use crate::http::Reply;
use crate::lifecycle::Report;

/// The proxy at the moment of the request.
pub(crate) struct Snapshot<'a> {
    pub started: SystemTime,
    /// The server's connections and workers.
    pub load: LoadSnapshot,
    /// The `tls` object (see `tls::HttpsState::status_json`).
    pub tls: Value,
    pub services: Vec<ServiceView<'a>>,
}

/// One service at the moment of the request.
pub(crate) struct ServiceView<'a> {
    pub service: &'a Service,
    pub last_access: Option<SystemTime>,
    pub in_flight: usize,
    pub open_tunnels: usize,
    pub requests: u64,
    /// What the lifecycle says of an on-demand service.
    pub on_demand: Option<Report>,
}

/// `/proxy/status`.
pub(crate) fn answer(s: &Snapshot<'_>) -> Reply {
    let doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": rfc3339(s.started),
        "open_connections": s.load.open,
        "connections": connections(&s.load),
        "services": s.services.iter().map(service).collect::<Vec<_>>(),
        "tls": s.tls,
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    Reply::ok("application/json", out)
}

/// Connections open, waiting in the poller and active; workers; what the limits refused and
/// closed.
fn connections(l: &LoadSnapshot) -> Value {
    let by = |refusal: bool| -> Map<String, Value> {
        let cuts = l.cuts.iter().filter(|(c, _)| c.is_refusal() == refusal);
        cuts.map(|(c, n)| (c.name().to_string(), json!(n)))
            .collect()
    };
    json!({
        "open": l.open,
        "waiting": l.parked,
        "active": l.active,
        "queued": l.queued,
        "workers": l.workers,
        "busy_workers": l.busy_workers,
        "refused": by(true),
        "closed": by(false),
    })
}

fn service(v: &ServiceView<'_>) -> Value {
    let s = v.service;
    let (kind, target, status) = match &s.backend {
        Backend::Container(c) => match &c.existing {
            Some(e) => ("existing", e.to_string(), "unknown"),
            None => ("container", c.image.clone(), "unknown"),
        },
        Backend::Upstream(a) => ("upstream", a.clone(), "external"),
    };
    let mut obj = Map::new();
    obj.insert("name".into(), json!(s.name));
    obj.insert("host".into(), json!(s.host.as_ref().map(|h| h.to_string())));
    obj.insert("path".into(), json!(s.path));
    let auth = match s.auth {
        crate::config::ServiceAuth::Token => "token",
        crate::config::ServiceAuth::Public => "none",
    };
    obj.insert("auth".into(), json!(auth));
    obj.insert("kind".into(), json!(kind));
    obj.insert("target".into(), json!(target));
    obj.insert("status".into(), json!(status));
    obj.insert("host_port".into(), Value::Null);
    obj.insert("last_access".into(), json!(v.last_access.map(rfc3339)));
    obj.insert("in_flight".into(), json!(v.in_flight));
    obj.insert("open_tunnels".into(), json!(v.open_tunnels));
    obj.insert("requests".into(), json!(v.requests));
    obj.insert("idle_timeout".into(), json!(s.idle_timeout.as_secs()));
    if let Some(r) = &v.on_demand {
        on_demand(&mut obj, r);
    }
    Value::Object(obj)
}

/// The fields of an on-demand service.
fn on_demand(obj: &mut Map<String, Value>, r: &Report) {
    obj.insert("mode".into(), json!(r.engine.name()));
    obj.insert("status".into(), json!(r.status));
    obj.insert("host_port".into(), json!(r.port));
    obj.insert("container".into(), json!(r.container));
    obj.insert("cold_starts".into(), json!(r.cold_starts));
    let last_start = r.last_start.map(|d| d.as_millis() as u64);
    obj.insert("last_start_ms".into(), json!(last_start));
    obj.insert("last_error".into(), json!(r.last_error));
    obj.insert("waiting".into(), json!(r.waiting));
    if !r.dependencies.is_empty() {
        let deps: Vec<Value> = r
            .dependencies
            .iter()
            .map(|(d, state, by)| json!({"container": d, "state": state, "held_by": by}))
            .collect();
        obj.insert("depends_on".into(), Value::Array(deps));
    }
    if let Some((stage, for_)) = r.stage {
        obj.insert("stage".into(), json!(stage));
        obj.insert("starting_ms".into(), json!(for_.as_millis() as u64));
    }
    if let Some(n) = &r.replicas {
        obj.insert("replicas_desired".into(), json!(n.desired));
        obj.insert("replicas_running".into(), json!(n.running));
        let tasks = n.tasks.as_ref().map(|ts| {
            ts.iter()
                .map(|t| {
                    json!({"task": t.task, "node": t.node, "node_state": t.node_state, "state": t.state})
                })
                .collect::<Vec<_>>()
        });
        obj.insert("tasks".into(), json!(tasks));
    }
    if r.docker_unreachable {
        obj.insert("docker".into(), json!("unreachable"));
    }
    let pull = r.pull.map(|p| {
        json!({
            "layers_done": p.layers_done,
            "layers_total": p.layers_total,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
        })
    });
    obj.insert("pull".into(), json!(pull));
    obj.insert("pull_policy".into(), json!(r.pull_policy));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::load::Cut;
    use crate::lifecycle::{EngineKind, Replicas, TaskPlace};
    use std::time::{Duration, UNIX_EPOCH};

    fn config() -> crate::config::Config {
        let text = "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n  - name: app\n    path: /app\n    image: app:1\n  - name: api\n    path: /\n    upstream: 127.0.0.1:9\n";
        crate::config::parse(text, "test.yaml", &|_| None).unwrap()
    }

    /// An on-demand service's report: a swarm service, its image being pulled.
    fn report() -> Report {
        Report {
            engine: EngineKind::Swarm,
            status: "running",
            port: Some(8000),
            container: "app".into(),
            cold_starts: 2,
            last_start: Some(Duration::from_millis(1500)),
            last_error: None,
            waiting: 0,
            replicas: Some(Replicas {
                desired: Some(1),
                running: None,
                tasks: Some(vec![TaskPlace {
                    task: "t1".into(),
                    node: "worker-2".into(),
                    node_state: "down".into(),
                    state: "running".into(),
                }]),
            }),
            docker_unreachable: true,
            pull: Some(crate::docker::PullFigures {
                layers_done: 1,
                layers_total: 3,
                bytes_done: 10,
                bytes_total: 30,
            }),
            pull_policy: "missing",
            stage: None,
            failure: None,
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn every_service_is_described() {
        let c = config();
        let report = report();
        let views = c
            .services
            .iter()
            .zip([Some(report), None])
            .map(|(s, r)| ServiceView {
                service: s,
                last_access: r.as_ref().map(|_| UNIX_EPOCH + Duration::from_secs(60)),
                in_flight: 1,
                open_tunnels: 0,
                requests: 5,
                on_demand: r,
            });
        let snap = Snapshot {
            started: UNIX_EPOCH,
            load: LoadSnapshot {
                open: 3,
                parked: 2,
                active: 1,
                workers: 4,
                busy_workers: 1,
                queued: 0,
                kept: 0,
                handed_back: 0,
                yielded: 0,
                cuts: vec![(Cut::ClientCap, 7), (Cut::Head, 2)],
            },
            tls: json!({"https": false}),
            services: views.collect(),
        };
        let reply = answer(&snap).render(true, false);
        let text = String::from_utf8(reply).unwrap();
        let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["open_connections"], 3);
        let c = &body["connections"];
        assert_eq!(
            (&c["open"], &c["waiting"], &c["active"]),
            (&json!(3), &json!(2), &json!(1))
        );
        assert_eq!(c["refused"]["client_cap"], 7);
        assert_eq!(c["closed"]["head_timeout"], 2);
        assert!(c["closed"].get("client_cap").is_none());
        assert_eq!(body["started"], "1970-01-01T00:00:00Z");
        let app = &body["services"][0];
        assert_eq!(app["kind"], "container");
        assert_eq!(app["mode"], "swarm");
        assert_eq!(app["status"], "running");
        assert_eq!(app["host_port"], 8000);
        assert_eq!(app["last_start_ms"], 1500);
        assert_eq!(app["replicas_desired"], 1);
        assert_eq!(app["replicas_running"], Value::Null);
        assert_eq!(
            app["tasks"],
            json!([{"task": "t1", "node": "worker-2", "node_state": "down", "state": "running"}])
        );
        assert_eq!(app["pull"]["layers_total"], 3);
        assert_eq!(app["pull_policy"], "missing");
        assert_eq!(app["docker"], "unreachable");
        assert_eq!(app["last_access"], "1970-01-01T00:01:00Z");
        let api = &body["services"][1];
        assert_eq!(api["status"], "external");
        assert_eq!(api["target"], "127.0.0.1:9");
        assert_eq!(api["last_access"], Value::Null);
        assert!(api.get("mode").is_none());
    }
}
