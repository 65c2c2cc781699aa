//! SIGHUP: the configuration read and checked again. An invalid one changes nothing; a valid
//! one applies to new requests while open requests, streams and tunnels carry on with the one
//! they started with. Removed and changed services are stopped once idle, changed ones
//! recreated on their next start; listeners, TLS files and identity need a restart.

use std::collections::BTreeSet;

use crate::config::{self, Global, Service};
use crate::lifecycle::Lifecycle;

use super::runtime::{Runtime, start_lifecycle};

/// Global settings a reload cannot change (listeners, TLS, identity): they need a restart.
fn needs_restart(old: &Global, new: &Global) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            v.push(name);
        }
    };
    check(old.listen_address != new.listen_address, "listen_address");
    check(old.listen_http != new.listen_http, "listen_http");
    check(old.listen_https != new.listen_https, "listen_https");
    check(
        old.tls_certfile != new.tls_certfile || old.tls_keyfile != new.tls_keyfile,
        "tls_certfile/tls_keyfile",
    );
    check(
        old.tls_certificates != new.tls_certificates,
        "tls_certificates",
    );
    check(old.auto_certbot != new.auto_certbot, "auto_certbot");
    check(old.domain != new.domain, "domain");
    check(old.acme_webroot != new.acme_webroot, "acme_webroot");
    check(old.instance != new.instance, "instance");
    check(
        old.limits != new.limits,
        "the connection limits (max_connections, max_workers, timeouts, min_body_rate)",
    );
    v
}

/// Whether `new` has an exact `host` no service of `old` had (certbot has no certificate for it).
fn new_exact_host<'a>(old: impl Iterator<Item = &'a Service>, new: &'a [Service]) -> bool {
    let exact = |s: &'a Service| s.host.as_ref().and_then(|h| h.exact());
    let before: BTreeSet<&str> = old.filter_map(exact).collect();
    new.iter().filter_map(exact).any(|h| !before.contains(h))
}

/// SIGHUP: reads and validates the config again. An invalid one changes nothing. A valid one
/// applies to new requests; requests, streams and tunnels already open carry on with the
/// previous configuration. Removed (and changed) services are stopped once idle; changed
/// services are recreated on their next start.
pub(super) fn reload(rt: &Runtime) {
    let file = match config::load(&rt.config_path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload refused, the running configuration stays:\n{e}");
            return;
        }
    };
    let _one_at_a_time = rt.applying.lock();
    let discovered = rt.discovered.lock().clone();
    let (kept, refused) = config::admit_discovered(&file.services, discovered);
    for why in refused {
        log::warn!("{why}");
    }
    *rt.discovered.lock() = kept.clone();
    *rt.file.lock() = file.clone();
    let mut new = file;
    new.services.extend(kept);
    apply(rt, new, "configuration reloaded");
}

/// Makes `new` (the file's services and those discovered by labels) the running
/// configuration, as a reload does; `what` starts the log line that says what changed.
/// The caller holds `rt.applying` from before it read `rt.file` and `rt.discovered`.
pub(super) fn apply(rt: &Runtime, new: config::Config, what: &str) {
    let old = rt.proxy().generation();
    let mut fixed = needs_restart(&old.global, &new.global);
    let old_services = old.routes.iter().map(|r| &r.service);
    if new.global.auto_certbot && new_exact_host(old_services, &new.services) {
        fixed.push("the services' hosts (auto_certbot obtains their certificates at start)");
    }
    if !fixed.is_empty() {
        log::warn!(
            "reload: changes to {} take effect only after a restart",
            fixed.join(", ")
        );
    }
    let next = match start_lifecycle(&new, rt.proxy(), false, &rt.events_running) {
        Ok(l) => l,
        Err(e) => {
            log::error!("reload refused, the running configuration stays: {e}");
            return;
        }
    };
    let after: BTreeSet<String> = new.services.iter().map(|s| s.name.clone()).collect();
    let count = new.services.len();
    for w in crate::config::warnings(&new) {
        log::warn!("{w}");
    }
    rt.proxy().install(new, next.as_ref());
    let mut current = rt.lifecycle.lock();
    if let Some(prev) = current.as_ref() {
        let now = next.as_ref().map(Lifecycle::settings).unwrap_or_default();
        let unchanged = prev
            .settings()
            .into_iter()
            .filter(|(name, hash)| now.get(name) == Some(hash))
            .map(|(name, _)| name)
            .collect();
        prev.retire(unchanged, next.clone());
    }
    *current = next;
    let before: BTreeSet<String> = old.routes.iter().map(|r| r.service.name.clone()).collect();
    log::info!(
        "{what}: {count} services (added: {:?}, removed: {:?})",
        after.difference(&before).collect::<Vec<_>>(),
        before.difference(&after).collect::<Vec<_>>()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(hosts: &[Option<&str>]) -> Vec<Service> {
        let mut text =
            String::from("global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n");
        for (i, h) in hosts.iter().enumerate() {
            text += &format!("  - name: s{i}\n    path: /\n    upstream: 127.0.0.1:9\n");
            if let Some(h) = h {
                text += &format!("    host: \"{h}\"\n");
            }
        }
        config::parse(&text, "t.yaml", &|_| None).unwrap().services
    }

    #[test]
    fn a_new_exact_host_needs_a_restart_for_its_certificate() {
        let old = services(&[Some("a.test"), None]);
        let same = services(&[None, Some("A.test"), Some("*.w.test")]);
        assert!(
            !new_exact_host(old.iter(), &same),
            "same name, and a wildcard"
        );
        assert!(
            !new_exact_host(old.iter(), &services(&[None])),
            "one removed"
        );
        assert!(new_exact_host(
            old.iter(),
            &services(&[Some("a.test"), Some("b.test")])
        ));
    }
}
