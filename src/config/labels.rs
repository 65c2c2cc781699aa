//! Services discovered from container labels (`discover_labels: true`): a container labelled
//! `wakeproxy.path=/app` becomes a service on that existing container, named after it. Every
//! label value goes through the same reading and checks as a `services:` entry in the YAML.
//! Pure: labels in, a service or the reasons out.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::read::{Ctx, FieldPath};
use super::service::service;
use super::{Global, Service};

/// The label that makes a container a service.
pub const PATH_LABEL: &str = "wakeproxy.path";
/// The labels read, and the service key each one stands for.
const KEYS: &[(&str, &str)] = &[
    ("wakeproxy.path", "path"),
    ("wakeproxy.host", "host"),
    ("wakeproxy.port", "internal_port"),
    ("wakeproxy.idle_timeout", "idle_timeout"),
    ("wakeproxy.start_timeout", "start_timeout"),
    ("wakeproxy.health_path", "health_path"),
    ("wakeproxy.depends_on", "depends_on"),
    ("wakeproxy.auth", "auth"),
];
/// Labels wakeproxy puts on the containers it creates (never read as settings).
const OWN: &[&str] = &[
    "wakeproxy.managed",
    "wakeproxy.instance",
    "wakeproxy.service",
    "wakeproxy.settings-hash",
];

/// The service container `name` stands for by its `labels`: `Ok(None)` without
/// `wakeproxy.path`; `Err` with every problem (naming the label) when a label is wrong.
pub fn discovered_service(
    name: &str,
    labels: &BTreeMap<String, String>,
    global: &Global,
) -> Result<Option<Service>, Vec<String>> {
    if !labels.contains_key(PATH_LABEL) {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut map = Mapping::new();
    map.insert("name".into(), name.into());
    map.insert("container".into(), name.into());
    for (label, value) in labels.iter().filter(|(k, _)| k.starts_with("wakeproxy.")) {
        match KEYS.iter().find(|(l, _)| l == label) {
            Some((_, key)) => {
                map.insert((*key).into(), yaml_value(key, value));
            }
            None if OWN.contains(&label.as_str()) => {}
            None => problems.push(format!(
                "unknown label {label} (known: {})",
                KEYS.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    // No variables are expanded in labels: whoever labels a container cannot read the
    // proxy's environment.
    let mut ctx = Ctx::new("", &|_| None);
    let read = service(&mut ctx, &Value::Mapping(map), &FieldPath::root(), global);
    for issue in ctx.finish() {
        let label = KEYS
            .iter()
            .find(|(_, k)| issue.field == *k || issue.field.starts_with(&format!("{k}[")))
            .map_or(issue.field.clone(), |(l, _)| l.to_string());
        problems.push(format!("{label}: {}", issue.message));
    }
    match read {
        Some(r) if problems.is_empty() => Ok(Some(r.service)),
        _ => Err(problems),
    }
}

/// The discovered services that fit next to the file's (and each other, first come first
/// served by container name): a service whose name, or host and path, is taken is refused,
/// with a line naming both.
pub fn admit_discovered(file: &[Service], mut found: Vec<Service>) -> (Vec<Service>, Vec<String>) {
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut kept: Vec<Service> = Vec::new();
    let mut refused = Vec::new();
    for s in found {
        let clash = file
            .iter()
            .map(|o| (o, "proxy.yaml"))
            .chain(kept.iter().map(|o| (o, "a label")))
            .find(|(o, _)| o.name == s.name || (o.host == s.host && o.path == s.path));
        match clash {
            Some((o, from)) => refused.push(format!(
                "discovery: container {} (label {PATH_LABEL}={}) is refused: it conflicts with \
                 service {} of {from} ({})",
                s.name,
                s.path,
                o.name,
                if o.name == s.name {
                    "same name"
                } else {
                    "same host and path"
                }
            )),
            None => kept.push(s),
        }
    }
    (kept, refused)
}

/// A label's text as the YAML value its key expects: numbers as numbers, `depends_on` as a
/// list split at commas, anything else as a string.
fn yaml_value(key: &str, text: &str) -> Value {
    if key == "depends_on" {
        let names = text.split(',').map(str::trim).filter(|s| !s.is_empty());
        return Value::Sequence(names.map(Value::from).collect());
    }
    match text.trim().parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Existing, HostPattern, ServiceAuth};
    use std::time::Duration;

    fn global() -> Global {
        let text = "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n  - name: x\n    path: /\n    upstream: 127.0.0.1:9\n";
        crate::config::parse(text, "t.yaml", &|_| None)
            .unwrap()
            .global
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_labelled_container_becomes_a_service_on_itself() {
        let l = labels(&[
            ("wakeproxy.path", "/wiki/"),
            ("wakeproxy.host", "Wiki.Example.com"),
            ("wakeproxy.port", "3000"),
            ("wakeproxy.idle_timeout", "5m"),
            ("wakeproxy.health_path", "/health"),
            ("wakeproxy.depends_on", "wiki-db, wiki-cache"),
            ("wakeproxy.auth", "none"),
            ("com.example.other", "x"),
        ]);
        let s = discovered_service("wiki-app", &l, &global())
            .unwrap()
            .unwrap();
        assert_eq!((s.name.as_str(), s.path.as_str()), ("wiki-app", "/wiki"));
        assert_eq!(s.host, Some(HostPattern::Exact("wiki.example.com".into())));
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
        assert_eq!(s.health_path.as_deref(), Some("/health"));
        assert_eq!(s.auth, ServiceAuth::Public);
        let c = s.container().unwrap();
        assert_eq!(c.existing, Some(Existing::Named("wiki-app".into())));
        assert_eq!(c.internal_port, 3000);
        assert_eq!(
            c.depends_on,
            [
                Existing::Named("wiki-db".into()),
                Existing::Named("wiki-cache".into())
            ]
        );
        let plain = labels(&[("wakeproxy.path", "/a"), ("wakeproxy.instance", "wp")]);
        assert_eq!(
            discovered_service("a-1", &plain, &global())
                .unwrap()
                .unwrap()
                .idle_timeout,
            Duration::from_secs(300)
        );
        assert_eq!(
            discovered_service("b-1", &labels(&[("wakeproxy.instance", "wp")]), &global()),
            Ok(None)
        );
    }

    #[test]
    fn wrong_labels_are_refused_naming_the_label() {
        let bad = labels(&[
            ("wakeproxy.path", "/proxy/status"),
            ("wakeproxy.idle_timout", "5m"),
            ("wakeproxy.port", "99999"),
            ("wakeproxy.host", "${SECRET}"),
        ]);
        let problems = discovered_service("app-1", &bad, &global()).unwrap_err();
        let text = problems.join("\n");
        assert!(
            text.contains("unknown label wakeproxy.idle_timout"),
            "{text}"
        );
        assert!(
            text.contains("wakeproxy.path: \"/proxy/status\" is reserved"),
            "{text}"
        );
        assert!(text.contains("wakeproxy.port:"), "{text}");
        assert!(text.contains("wakeproxy.host:"), "{text}");
        assert_eq!(problems.len(), 4, "{text}");
    }

    fn file_services(text: &str) -> Vec<Service> {
        let text =
            format!("global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n{text}");
        crate::config::parse(&text, "t.yaml", &|_| None)
            .unwrap()
            .services
    }

    #[test]
    fn discovered_services_may_not_take_a_name_or_a_route_already_taken() {
        let file = file_services("  - name: wiki\n    path: /wiki\n    upstream: 127.0.0.1:9\n");
        let found: Vec<Service> = [
            "  - name: zz\n    path: /wiki\n    container: zz\n",
            "  - name: wiki\n    path: /other\n    container: wiki\n",
            "  - name: bb\n    path: /a\n    container: bb\n",
            "  - name: aa\n    path: /a\n    container: aa\n",
            "  - name: cc\n    host: c.test\n    path: /wiki\n    container: cc\n",
        ]
        .iter()
        .flat_map(|t| file_services(t))
        .collect();
        let (kept, refused) = admit_discovered(&file, found);
        let names: Vec<&str> = kept.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["aa", "cc"]);
        assert_eq!(refused.len(), 3, "{refused:#?}");
        assert!(
            refused
                .iter()
                .any(|r| r.contains("container bb") && r.contains("service aa of a label"))
        );
        assert!(
            refused
                .iter()
                .any(|r| r.contains("container wiki") && r.contains("same name"))
        );
        assert!(
            refused
                .iter()
                .any(|r| r.contains("container zz (label wakeproxy.path=/wiki)")
                    && r.contains("service wiki of proxy.yaml (same host and path)"))
        );
    }
}
