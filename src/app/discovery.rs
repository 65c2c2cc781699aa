//! Discovery by labels (`discover_labels: true`): containers labelled `wakeproxy.path=...`
//! become services without editing proxy.yaml. A thread follows Docker's events for such
//! containers; on each one it lists them again and, when the set of services changed,
//! applies it like a reload. A label that conflicts with proxy.yaml (same host and path, or
//! the name of a service there) is refused with a log line naming both; every label value is
//! checked like the YAML (`config::discovered_service`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{PATH_LABEL, admit_discovered, discovered_service};
use crate::docker::Docker;

use super::cli::CliError;
use super::reload::apply;
use super::runtime::Runtime;

/// Starts the discovery thread.
pub(super) fn spawn(rt: Arc<Runtime>) -> Result<(), CliError> {
    let docker = Docker::from_env().map_err(|e| CliError::Startup(e.to_string()))?;
    std::thread::Builder::new()
        .name("discovery".into())
        .spawn(move || follow(&rt, &docker))
        .map(|_| ())
        .map_err(|e| CliError::Startup(format!("cannot start the discovery thread: {e}")))
}

/// Scans, then scans again on every event for a labelled container, forever (reconnecting
/// when the daemon goes away).
fn follow(rt: &Runtime, docker: &Docker) {
    let mut said = BTreeSet::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        match docker.negotiate().and_then(|_| docker.events(PATH_LABEL)) {
            Ok(events) => {
                backoff = Duration::from_millis(500);
                rescan(rt, docker, &mut said);
                for ev in events {
                    if ev.is_err() {
                        break;
                    }
                    rescan(rt, docker, &mut said);
                }
            }
            Err(e) => log::debug!("discovery: {e}"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Lists the labelled containers and applies their services if they changed. Refusals are
/// logged once each (`said` remembers them).
fn rescan(rt: &Runtime, docker: &Docker, said: &mut BTreeSet<String>) {
    // A reload meanwhile would otherwise be undone by the file config read here.
    let _one_at_a_time = rt.applying.lock();
    let global = rt.file.lock().global.clone();
    let containers = match docker.list_containers(PATH_LABEL, true) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("discovery: cannot list labelled containers: {e}");
            return;
        }
    };
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for c in containers {
        match discovered_service(&c.name, &c.labels, &global) {
            Ok(Some(s)) => found.push(s),
            Ok(None) => {}
            Err(problems) => refused.push(format!(
                "discovery: the labels of container {} are refused: {}",
                c.name,
                problems.join("; ")
            )),
        }
    }
    let file = rt.file.lock().clone();
    let (kept, conflicts) = admit_discovered(&file.services, found);
    refused.extend(conflicts);
    for why in refused.iter().filter(|w| !said.contains(*w)) {
        log::warn!("{why}");
    }
    *said = refused.into_iter().collect();
    if *rt.discovered.lock() == kept {
        return;
    }
    *rt.discovered.lock() = kept.clone();
    let mut new = file;
    new.services.extend(kept);
    apply(rt, new, "services discovered by labels");
}
