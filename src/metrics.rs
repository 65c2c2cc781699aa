//! Counters and histograms for `/proxy/metrics`, and their Prometheus text rendering.
//! Recording is lock-free (atomics); rendering reads a consistent-enough snapshot.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

/// Bucket upper bounds in seconds for request durations.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket upper bounds in seconds for cold starts.
pub const START_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

/// A fixed-bucket histogram.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines with `labels` (`k="v"` list).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Per-service request metrics.
#[derive(Debug)]
pub struct ServiceMetrics {
    /// Indexed by status class: 1xx..5xx as 0..4 (anything else counts as 5xx).
    by_class: [AtomicU64; 5],
    duration: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl ServiceMetrics {
    /// Records one answered request.
    pub fn request(&self, status: u16, took: Duration, bytes_in: u64, bytes_out: u64) {
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

/// Cold-start figures of one managed service, supplied by the lifecycle.
#[derive(Debug)]
pub struct StartMetrics<'a> {
    pub cold_starts: &'a Histogram,
    pub failures: u64,
    pub running: bool,
}

/// Every request metric, per service name (so counters survive a config reload) plus one
/// row for requests that matched no service.
#[derive(Debug)]
pub struct Metrics {
    services: Mutex<HashMap<String, Arc<ServiceMetrics>>>,
    unrouted: ServiceMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            services: Mutex::new(HashMap::new()),
            unrouted: ServiceMetrics::new(),
        }
    }

    /// The metrics of service `name` (created on first use).
    pub fn service(&self, name: &str) -> Arc<ServiceMetrics> {
        self.services
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(ServiceMetrics::new()))
            .clone()
    }

    /// Where requests that matched no service are counted.
    pub fn unrouted(&self) -> &ServiceMetrics {
        &self.unrouted
    }
}

/// What the renderer needs to know about the proxy at the moment of a scrape.
pub struct Snapshot<'a> {
    pub names: Vec<&'a str>,
    /// Request metrics, one per name.
    pub requests: Vec<&'a ServiceMetrics>,
    pub open_connections: usize,
    pub open_tunnels: Vec<usize>,
    pub in_flight: Vec<usize>,
    /// One entry per service; `None` for upstream services.
    pub starts: Vec<Option<StartMetrics<'a>>>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition (format 0.0.4).
pub fn render(m: &Metrics, s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let rows: Vec<(String, &ServiceMetrics)> = s
        .names
        .iter()
        .map(|n| escape(n))
        .zip(s.requests.iter().copied())
        .chain(std::iter::once(("-".to_string(), &m.unrouted)))
        .collect();
    header(
        &mut out,
        "wakeproxy_requests_total",
        "counter",
        "Requests answered, by service and status class.",
    );
    for (name, sm) in &rows {
        for (i, c) in sm.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "wakeproxy_requests_total{{service=\"{name}\",class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
    }
    header(
        &mut out,
        "wakeproxy_request_duration_seconds",
        "histogram",
        "Time from request head to the end of the answer.",
    );
    for (name, sm) in &rows {
        sm.duration.render(
            &mut out,
            "wakeproxy_request_duration_seconds",
            &format!("service=\"{name}\""),
        );
    }
    header(
        &mut out,
        "wakeproxy_received_bytes_total",
        "counter",
        "Request body bytes sent upstream (tunnels included).",
    );
    for (name, sm) in &rows {
        let _ = writeln!(
            out,
            "wakeproxy_received_bytes_total{{service=\"{name}\"}} {}",
            sm.bytes_in.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "wakeproxy_sent_bytes_total",
        "counter",
        "Response bytes sent to clients (tunnels included).",
    );
    for (name, sm) in &rows {
        let _ = writeln!(
            out,
            "wakeproxy_sent_bytes_total{{service=\"{name}\"}} {}",
            sm.bytes_out.load(Ordering::Relaxed)
        );
    }
    header(
        &mut out,
        "wakeproxy_open_connections",
        "gauge",
        "Client connections open now.",
    );
    let _ = writeln!(out, "wakeproxy_open_connections {}", s.open_connections);
    header(
        &mut out,
        "wakeproxy_in_flight_requests",
        "gauge",
        "Requests in flight (tunnels and streams included), by service.",
    );
    for (name, n) in s.names.iter().zip(&s.in_flight) {
        let _ = writeln!(
            out,
            "wakeproxy_in_flight_requests{{service=\"{}\"}} {n}",
            escape(name)
        );
    }
    header(
        &mut out,
        "wakeproxy_open_tunnels",
        "gauge",
        "Upgraded connections (WebSockets) open now, by service.",
    );
    for (name, n) in s.names.iter().zip(&s.open_tunnels) {
        let _ = writeln!(
            out,
            "wakeproxy_open_tunnels{{service=\"{}\"}} {n}",
            escape(name)
        );
    }
    let managed: Vec<(String, &StartMetrics<'_>)> = s
        .names
        .iter()
        .zip(&s.starts)
        .filter_map(|(n, st)| st.as_ref().map(|st| (escape(n), st)))
        .collect();
    header(
        &mut out,
        "wakeproxy_cold_start_duration_seconds",
        "histogram",
        "Cold starts: from the first request to ready.",
    );
    for (name, st) in &managed {
        st.cold_starts.render(
            &mut out,
            "wakeproxy_cold_start_duration_seconds",
            &format!("service=\"{name}\""),
        );
    }
    header(
        &mut out,
        "wakeproxy_start_failures_total",
        "counter",
        "Starts that failed (exit, timeout, Docker error).",
    );
    for (name, st) in &managed {
        let _ = writeln!(
            out,
            "wakeproxy_start_failures_total{{service=\"{name}\"}} {}",
            st.failures
        );
    }
    header(
        &mut out,
        "wakeproxy_container_running",
        "gauge",
        "1 when the service's container is up, by service.",
    );
    for (name, st) in &managed {
        let _ = writeln!(
            out,
            "wakeproxy_container_running{{service=\"{name}\"}} {}",
            u8::from(st.running)
        );
    }
    header(
        &mut out,
        "wakeproxy_containers_running",
        "gauge",
        "Managed containers up now.",
    );
    let _ = writeln!(
        out,
        "wakeproxy_containers_running {}",
        managed.iter().filter(|(_, st)| st.running).count()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut s = String::new();
        h.render(&mut s, "x", "a=\"b\"");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{a=\"b\"} 3\n"));
        assert!(s.contains("x_sum{a=\"b\"} 5.55\n"), "{s}");
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
        let h = Histogram::new(START_BUCKETS);
        h.observe(Duration::from_millis(300));
        let text = render(
            &m,
            &Snapshot {
                names: vec!["we\"b"],
                requests: vec![&web],
                open_connections: 2,
                open_tunnels: vec![1],
                in_flight: vec![3],
                starts: vec![Some(StartMetrics {
                    cold_starts: &h,
                    failures: 1,
                    running: true,
                })],
            },
        );
        assert!(
            text.contains("wakeproxy_requests_total{service=\"we\\\"b\",class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("wakeproxy_requests_total{service=\"we\\\"b\",class=\"5xx\"} 1\n"));
        assert!(text.contains("wakeproxy_requests_total{service=\"-\",class=\"4xx\"} 1\n"));
        assert!(text.contains("wakeproxy_received_bytes_total{service=\"we\\\"b\"} 10\n"));
        assert!(text.contains("wakeproxy_open_connections 2\n"));
        assert!(text.contains("wakeproxy_containers_running 1\n"));
        assert!(
            text.contains("wakeproxy_cold_start_duration_seconds_count{service=\"we\\\"b\"} 1\n")
        );
    }
}
