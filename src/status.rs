//! The `/proxy/status` document: one JSON object per service, in config order.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::Backend;
use crate::proxy::{Generation, Proxy};

/// Renders the status JSON: `{"services": [one object per service], "tls": {...}, ...}`.
pub fn render(proxy: &Proxy, g: &Generation, _now: SystemTime) -> Vec<u8> {
    let services: Vec<Value> = g
        .config
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let act = &g.activity[i];
            let mut obj = serde_json::Map::new();
            obj.insert("name".into(), json!(s.name));
            obj.insert("path".into(), json!(s.path));
            let (kind, target) = match &s.backend {
                Backend::Container(c) => ("container", c.image.clone()),
                Backend::Upstream(a) => ("upstream", a.clone()),
            };
            obj.insert("kind".into(), json!(kind));
            obj.insert("target".into(), json!(target));
            obj.insert(
                "status".into(),
                json!(if kind == "upstream" {
                    "external"
                } else {
                    "unknown"
                }),
            );
            obj.insert("host_port".into(), Value::Null);
            obj.insert(
                "last_access".into(),
                act.last_access().map_or(Value::Null, |t| json!(rfc3339(t))),
            );
            obj.insert("in_flight".into(), json!(act.in_flight()));
            obj.insert("open_tunnels".into(), json!(proxy.tunnels.count(&s.name)));
            obj.insert("requests".into(), json!(act.requests()));
            obj.insert("idle_timeout".into(), json!(s.idle_timeout.as_secs()));
            if let (Backend::Container(_), Some(c)) = (&s.backend, &g.containers) {
                obj.extend(c.status(i));
            }
            Value::Object(obj)
        })
        .collect();
    let doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": rfc3339(proxy.started),
        "open_connections": proxy.connections.load(std::sync::atomic::Ordering::Relaxed),
        "services": services,
        "tls": proxy.https.status_json(),
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `2026-11-26T16:51:32Z` (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_711_892)),
            "2026-11-26T16:51:32Z"
        );
    }
}
