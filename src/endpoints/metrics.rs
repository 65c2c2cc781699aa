//! `/proxy/metrics`: the request counters the pipeline records per service (lock-free,
//! atomics), and the Prometheus text exposition (format 0.0.4) rendered from a snapshot.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::base::Histogram;
use crate::base::load::LoadSnapshot;
use crate::http::Reply;
use crate::lifecycle::pulls::PullCounts;
use crate::lifecycle::{SharedFigures, StartFigures};

/// Bucket upper bounds in seconds for request durations.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Per-service request metrics.
#[derive(Debug)]
pub(crate) struct ServiceMetrics {
    /// Indexed by status class: 1xx..5xx as 0..4 (anything else counts as 5xx).
    by_class: [AtomicU64; 5],
    duration: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl ServiceMetrics {
    /// Records one answered request.
    pub(crate) fn request(&self, status: u16, took: Duration, bytes_in: u64, bytes_out: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.duration.observe(took);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    fn new() -> ServiceMetrics {
        ServiceMetrics {
            by_class: Default::default(),
            duration: Histogram::new(REQUEST_BUCKETS),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

/// Every request metric, per service name (so counters survive a config reload) plus one
/// row for requests that matched no service.
#[derive(Debug)]
pub(crate) struct Metrics {
    services: Mutex<HashMap<String, Arc<ServiceMetrics>>>,
    unrouted: ServiceMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            services: Mutex::new(HashMap::new()),
            unrouted: ServiceMetrics::new(),
        }
    }

    /// The metrics of service `name` (created on first use).
    pub(crate) fn service(&self, name: &str) -> Arc<ServiceMetrics> {
        self.services
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(ServiceMetrics::new()))
            .clone()
    }

    /// Where requests that matched no service are counted.
    pub(crate) fn unrouted(&self) -> &ServiceMetrics {
        &self.unrouted
    }
}

/// The proxy at the moment of a scrape.
pub(crate) struct Scrape<'a> {
    pub services: Vec<ServiceFigures<'a>>,
    /// Requests that matched no service.
    pub unrouted: &'a ServiceMetrics,
    /// The server's connections and workers.
    pub load: LoadSnapshot,
    /// Credentials: wrong ones, refusals without a check, sessions.
    pub auth: AuthFigures,
    /// Image pulls that ended.
    pub pulls: PullCounts,
    /// Body bytes moved by `splice(2)`: request bodies, response bodies.
    pub spliced: Spliced,
}

/// Body bytes moved by `splice(2)` since start, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Spliced {
    pub request: u64,
    pub response: u64,
}

impl Spliced {
    /// The counts now.
    pub(crate) fn now() -> Spliced {
        use crate::http::splice::{Direction, spliced_bytes};
        Spliced {
            request: spliced_bytes(Direction::Request),
            response: spliced_bytes(Direction::Response),
        }
    }
}

/// Credential figures at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AuthFigures {
    /// Wrong credentials, by where they came: the Authorization header, the session cookie,
    /// the login form.
    pub failed_header: u64,
    pub failed_cookie: u64,
    pub failed_form: u64,
    /// Credentials answered 429 without a check (the address, or every address, must wait).
    pub throttled: u64,
    /// Addresses that must wait now.
    pub addresses_waiting: usize,
    /// Live login sessions.
    pub sessions: usize,
}

/// One service at the moment of a scrape.
pub(crate) struct ServiceFigures<'a> {
    pub name: &'a str,
    pub requests: &'a ServiceMetrics,
    pub in_flight: usize,
    pub open_tunnels: usize,
    /// On-demand services only.
    pub starts: Option<StartFigures<'a>>,
}

/// `/proxy/metrics`.
pub(crate) fn answer(s: &Scrape<'_>) -> Reply {
    Reply::ok(CONTENT_TYPE, render(s).into_bytes())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition.
fn render(s: &Scrape<'_>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let rows: Vec<(String, &ServiceMetrics)> = s
        .services
        .iter()
        .map(|f| (escape(f.name), f.requests))
        .chain(std::iter::once(("-".to_string(), s.unrouted)))
        .collect();
    requests(&mut out, &rows);
    spliced(&mut out, &s.spliced);
    gauges(&mut out, s);
    let on_demand: Vec<(String, &StartFigures<'_>)> = s
        .services
        .iter()
        .filter_map(|f| f.starts.as_ref().map(|st| (escape(f.name), st)))
        .collect();
    starts(&mut out, &on_demand);
    shared(&mut out, &on_demand);
    out
}

/// Requests by status class, their durations and bytes, per service.
fn requests(out: &mut String, rows: &[(String, &ServiceMetrics)]) {
    let name = "wakeproxy_requests_total";
    header(
        out,
        name,
        "counter",
        "Requests answered, by service and status class.",
    );
    for (service, sm) in rows {
        for (i, c) in sm.by_class.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}{{service=\"{service}\",class=\"{}xx\"}} {n}",
                i + 1
            );
        }
    }
    let name = "wakeproxy_request_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from request head to the end of the answer.",
    );
    for (service, sm) in rows {
        sm.duration
            .render(out, name, &format!("service=\"{service}\""));
    }
    let help = "Request body bytes sent upstream (tunnels included).";
    counter(out, "wakeproxy_received_bytes_total", help, rows, |sm| {
        &sm.bytes_in
    });
    let help = "Response bytes sent to clients (tunnels included).";
    counter(out, "wakeproxy_sent_bytes_total", help, rows, |sm| {
        &sm.bytes_out
    });
}

/// Body bytes that went between plain TCP sockets by `splice(2)`, by direction.
fn spliced(out: &mut String, s: &Spliced) {
    let name = "wakeproxy_spliced_bytes_total";
    let help = "Body bytes moved socket to socket by splice(2) without passing through the \
                proxy's memory (plain HTTP, bodies of known length), by direction.";
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name}{{direction=\"request\"}} {}", s.request);
    let _ = writeln!(out, "{name}{{direction=\"response\"}} {}", s.response);
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    rows: &[(String, &ServiceMetrics)],
    field: impl Fn(&ServiceMetrics) -> &AtomicU64,
) {
    header(out, name, "counter", help);
    for (service, sm) in rows {
        let n = field(sm).load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{service=\"{service}\"}} {n}");
    }
}

/// Open connections, and requests in flight and open tunnels per service.
fn gauges(out: &mut String, s: &Scrape<'_>) {
    server(out, &s.load);
    auth(out, &s.auth);
    pulls(out, &s.pulls);
    let per_service = [
        (
            "wakeproxy_in_flight_requests",
            "Requests in flight (tunnels and streams included), by service.",
            (|f: &ServiceFigures<'_>| f.in_flight) as fn(&ServiceFigures<'_>) -> usize,
        ),
        (
            "wakeproxy_open_tunnels",
            "Upgraded connections (WebSockets) open now, by service.",
            |f: &ServiceFigures<'_>| f.open_tunnels,
        ),
    ];
    for (name, help, value) in per_service {
        header(out, name, "gauge", help);
        for f in &s.services {
            let _ = writeln!(out, "{name}{{service=\"{}\"}} {}", escape(f.name), value(f));
        }
    }
}

/// Image pulls by result, and the time they took.
fn pulls(out: &mut String, p: &PullCounts) {
    let name = "wakeproxy_image_pulls_total";
    header(out, name, "counter", "Image pulls that ended, by result.");
    let _ = writeln!(out, "{name}{{result=\"ok\"}} {}", p.ok);
    let _ = writeln!(out, "{name}{{result=\"failed\"}} {}", p.failed);
    let name = "wakeproxy_image_pull_seconds_total";
    header(out, name, "counter", "Time spent pulling images.");
    let _ = writeln!(out, "{name} {:.3}", p.seconds);
}

/// Wrong credentials, throttling and sessions.
fn auth(out: &mut String, a: &AuthFigures) {
    let name = "wakeproxy_auth_failures_total";
    header(
        out,
        name,
        "counter",
        "Wrong credentials, by where they came.",
    );
    for (via, n) in [
        ("header", a.failed_header),
        ("cookie", a.failed_cookie),
        ("form", a.failed_form),
    ] {
        let _ = writeln!(out, "{name}{{via=\"{via}\"}} {n}");
    }
    let name = "wakeproxy_auth_throttled_total";
    let help = "Credentials answered 429 without a check while their address had to wait.";
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", a.throttled);
    let name = "wakeproxy_auth_waiting_addresses";
    header(
        out,
        name,
        "gauge",
        "Client addresses that must wait before their next check.",
    );
    let _ = writeln!(out, "{name} {}", a.addresses_waiting);
    let name = "wakeproxy_login_sessions";
    header(out, name, "gauge", "Live login sessions.");
    let _ = writeln!(out, "{name} {}", a.sessions);
}

/// Connections, workers, and what the limits refused and closed.
fn server(out: &mut String, l: &LoadSnapshot) {
    let gauges = [
        (
            "wakeproxy_open_connections",
            "Client connections open now.",
            l.open,
        ),
        (
            "wakeproxy_waiting_connections",
            "Connections waiting for a request head (no worker).",
            l.parked,
        ),
        (
            "wakeproxy_active_connections",
            "Connections with a request on a worker or queued for one.",
            l.active,
        ),
        (
            "wakeproxy_queued_requests",
            "Complete request heads waiting for a free worker.",
            l.queued,
        ),
        ("wakeproxy_workers", "Worker threads alive.", l.workers),
        (
            "wakeproxy_busy_workers",
            "Worker threads serving a connection now.",
            l.busy_workers,
        ),
    ];
    for (name, help, n) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {n}");
    }
    let name = "wakeproxy_keep_alive_waits_total";
    let help = "After an answer on a keep-alive connection: the next request came within the worker's grace period, or the connection went back to the poller, or it went back at once to let connections waiting for a worker go first.";
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name}{{outcome=\"next_request\"}} {}", l.kept);
    let _ = writeln!(out, "{name}{{outcome=\"handed_back\"}} {}", l.handed_back);
    let _ = writeln!(out, "{name}{{outcome=\"yielded\"}} {}", l.yielded);
    for (name, refusal, help) in [
        (
            "wakeproxy_connections_refused_total",
            true,
            "Connections or requests refused by a limit, by limit.",
        ),
        (
            "wakeproxy_connections_closed_total",
            false,
            "Connections closed by a deadline, by deadline.",
        ),
    ] {
        header(out, name, "counter", help);
        for (cut, n) in l.cuts.iter().filter(|(c, _)| c.is_refusal() == refusal) {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {n}", cut.name());
        }
    }
}

/// Cold starts, start failures and what runs, per on-demand service.
fn starts(out: &mut String, on_demand: &[(String, &StartFigures<'_>)]) {
    let name = "wakeproxy_cold_start_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Cold starts: from the first request to ready.",
    );
    for (service, st) in on_demand {
        st.cold_starts
            .render(out, name, &format!("service=\"{service}\""));
    }
    let name = "wakeproxy_start_failures_total";
    header(
        out,
        name,
        "counter",
        "Starts that failed (exit, timeout, Docker error).",
    );
    for (service, st) in on_demand {
        let _ = writeln!(out, "{name}{{service=\"{service}\"}} {}", st.failures);
    }
    let name = "wakeproxy_container_running";
    header(
        out,
        name,
        "gauge",
        "1 when the service's container is up, by service.",
    );
    for (service, st) in on_demand {
        let _ = writeln!(
            out,
            "{name}{{service=\"{service}\"}} {}",
            u8::from(st.running)
        );
    }
    let name = "wakeproxy_containers_running";
    header(out, name, "gauge", "Managed containers up now.");
    let running = on_demand.iter().filter(|(_, st)| st.running).count();
    let _ = writeln!(out, "{name} {running}");
}

/// What this proxy did to share swarm services with other proxies, per swarm service.
fn shared(out: &mut String, on_demand: &[(String, &StartFigures<'_>)]) {
    let shared: Vec<(&String, SharedFigures)> = on_demand
        .iter()
        .filter_map(|(service, st)| st.shared.map(|f| (service, f)))
        .collect();
    if shared.is_empty() {
        return;
    }
    for (name, help, value) in [
        (
            "wakeproxy_swarm_activity_writes_total",
            "Activity records written to a swarm service's labels, by service.",
            (|f: SharedFigures| f.writes) as fn(SharedFigures) -> u64,
        ),
        (
            "wakeproxy_swarm_scale_downs_kept_total",
            "Idle scale-downs not made because another proxy was active, by service.",
            |f: SharedFigures| f.kept,
        ),
    ] {
        header(out, name, "counter", help);
        for (service, f) in &shared {
            let _ = writeln!(out, "{name}{{service=\"{service}\"}} {}", value(*f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::load::Cut;

    /// The load figures of the rendering test.
    fn load() -> LoadSnapshot {
        LoadSnapshot {
            open: 2,
            parked: 1,
            active: 1,
            workers: 3,
            busy_workers: 1,
            queued: 0,
            kept: 0,
            handed_back: 0,
            yielded: 6,
            cuts: vec![(Cut::ClientCap, 4), (Cut::KeepAlive, 9)],
        }
    }

    #[test]
    fn requests_are_counted_by_class_and_service() {
        let m = Metrics::new();
        let web = m.service("we\"b");
        web.request(200, Duration::from_millis(3), 10, 20);
        web.request(503, Duration::from_millis(3), 0, 5);
        m.unrouted().request(404, Duration::from_millis(1), 0, 1);
        assert!(
            Arc::ptr_eq(&web, &m.service("we\"b")),
            "one set of counters per name"
        );
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(300));
        let text = render(&Scrape {
            services: vec![ServiceFigures {
                name: "we\"b",
                requests: &web,
                in_flight: 3,
                open_tunnels: 1,
                starts: Some(StartFigures {
                    cold_starts: &h,
                    failures: 1,
                    running: true,
                    shared: None,
                }),
            }],
            unrouted: m.unrouted(),
            load: load(),
            pulls: PullCounts {
                ok: 2,
                failed: 1,
                seconds: 3.5,
            },
            auth: AuthFigures {
                failed_header: 5,
                failed_form: 2,
                throttled: 7,
                sessions: 3,
                ..AuthFigures::default()
            },
            spliced: Spliced::default(),
        });
        assert!(text.contains("wakeproxy_auth_failures_total{via=\"header\"} 5\n"));
        assert!(text.contains("wakeproxy_auth_failures_total{via=\"cookie\"} 0\n"));
        assert!(text.contains("wakeproxy_auth_failures_total{via=\"form\"} 2\n"));
        assert!(text.contains("wakeproxy_auth_throttled_total 7\n"));
        assert!(text.contains("wakeproxy_login_sessions 3\n"));
        assert!(text.contains("wakeproxy_image_pulls_total{result=\"failed\"} 1\n"));
        assert!(text.contains("wakeproxy_image_pull_seconds_total 3.500\n"));
        assert!(
            text.contains("wakeproxy_requests_total{service=\"we\\\"b\",class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("wakeproxy_requests_total{service=\"we\\\"b\",class=\"5xx\"} 1\n"));
        assert!(text.contains("wakeproxy_requests_total{service=\"-\",class=\"4xx\"} 1\n"));
        assert!(text.contains("wakeproxy_received_bytes_total{service=\"we\\\"b\"} 10\n"));
        assert!(text.contains("wakeproxy_sent_bytes_total{service=\"-\"} 1\n"));
        assert!(text.contains("wakeproxy_open_connections 2\n"));
        assert!(text.contains("wakeproxy_keep_alive_waits_total{outcome=\"yielded\"} 6\n"));
        assert!(text.contains("wakeproxy_waiting_connections 1\n"));
        assert!(text.contains("wakeproxy_connections_refused_total{reason=\"client_cap\"} 4\n"));
        assert!(
            text.contains("wakeproxy_connections_closed_total{reason=\"keep_alive_timeout\"} 9\n")
        );
        assert!(text.contains("wakeproxy_in_flight_requests{service=\"we\\\"b\"} 3\n"));
        assert!(text.contains("wakeproxy_open_tunnels{service=\"we\\\"b\"} 1\n"));
        assert!(text.contains("wakeproxy_start_failures_total{service=\"we\\\"b\"} 1\n"));
        assert!(text.contains("wakeproxy_containers_running 1\n"));
        assert!(
            text.contains("wakeproxy_cold_start_duration_seconds_count{service=\"we\\\"b\"} 1\n")
        );
    }

    #[test]
    fn swarm_services_count_their_shared_activity() {
        let h = Histogram::new(&[1.0]);
        let st = |shared| StartFigures {
            cold_starts: &h,
            failures: 0,
            running: true,
            shared,
        };
        let (api, web) = (
            st(Some(SharedFigures {
                writes: 12,
                kept: 3,
            })),
            st(None),
        );
        let mut out = String::new();
        shared(&mut out, &[("api".into(), &api), ("web".into(), &web)]);
        assert!(out.contains("wakeproxy_swarm_activity_writes_total{service=\"api\"} 12\n"));
        assert!(out.contains("wakeproxy_swarm_scale_downs_kept_total{service=\"api\"} 3\n"));
        assert!(!out.contains("service=\"web\""), "{out}");
        let mut none = String::new();
        shared(&mut none, &[("web".into(), &web)]);
        assert_eq!(none, "", "no swarm service, no such metric");
    }

    #[test]
    fn spliced_bytes_are_counted_by_direction() {
        let mut out = String::new();
        let s = Spliced {
            request: 0,
            response: 70_000,
        };
        spliced(&mut out, &s);
        assert!(out.contains("# TYPE wakeproxy_spliced_bytes_total counter\n"));
        assert!(out.contains("wakeproxy_spliced_bytes_total{direction=\"request\"} 0\n"));
        assert!(out.contains("wakeproxy_spliced_bytes_total{direction=\"response\"} 70000\n"));
    }
}
