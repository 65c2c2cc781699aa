//! Dependencies that wake together: before a service starts, the containers it depends on are
//! started in order, each waited on until ready (healthy when it has a HEALTHCHECK, running
//! otherwise); a dependency shared by several services stays up while any of them holds it
//! (starting or up) and is stopped after the last of them, in reverse order. `Holds` is the
//! pure bookkeeping; `Groups` does the Docker calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Existing;

use super::engine::existing::compose_depends_on;
use super::engine::{Engine, ExistingEngine, START_LOG_LINES};

/// Which services hold which dependencies up. Pure.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    by: BTreeMap<Existing, BTreeSet<String>>,
}

impl Holds {
    /// `service` holds each of `deps` (again) from now on.
    pub(crate) fn hold(&mut self, service: &str, deps: &[Existing]) {
        for d in deps {
            self.by
                .entry(d.clone())
                .or_default()
                .insert(service.to_string());
        }
    }

    /// `service` lets go of `deps`: those nobody holds any more, in reverse order (the order
    /// to stop them in).
    pub(crate) fn release(&mut self, service: &str, deps: &[Existing]) -> Vec<Existing> {
        let mut free = Vec::new();
        for d in deps.iter().rev() {
            let Some(holders) = self.by.get_mut(d) else {
                continue;
            };
            holders.remove(service);
            if holders.is_empty() {
                self.by.remove(d);
                free.push(d.clone());
            }
        }
        free
    }

    /// Who holds `dep` up.
    pub(crate) fn holders(&self, dep: &Existing) -> Vec<String> {
        self.by
            .get(dep)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The dependencies of one configuration's services.
pub(crate) struct Groups {
    /// `None` without a Docker daemon (tests with fake engines): any dependency fails.
    engine: Option<Arc<ExistingEngine>>,
    holds: Mutex<Holds>,
}

/// How often a starting dependency is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);

impl Groups {
    pub(crate) fn new(engine: Option<Arc<ExistingEngine>>) -> Groups {
        Groups {
            engine,
            holds: Mutex::new(Holds::default()),
        }
    }

    /// Who holds `dep` up.
    pub(crate) fn holders(&self, dep: &Existing) -> Vec<String> {
        self.holds.lock().holders(dep)
    }

    /// What `dep`'s container is doing now: `running`, `healthy`, `exited (code N)`,
    /// `missing`, or why that cannot be told.
    pub(crate) fn state(&self, dep: &Existing) -> String {
        let Some(engine) = &self.engine else {
            return "unknown (no Docker daemon)".into();
        };
        match engine.locate(dep) {
            Ok(Some(c)) if c.running => c.health.unwrap_or_else(|| "running".into()),
            Ok(Some(c)) => format!("{} (code {})", c.status, c.exit_code),
            Ok(None) => "missing".into(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Starts `service`'s dependencies in order, each ready before the next, by `deadline`.
    /// On failure the reason (exit code and last log lines); what nobody else holds is
    /// stopped again.
    pub(crate) fn wake(
        &self,
        service: &str,
        deps: &[Existing],
        deadline: Instant,
    ) -> Result<(), String> {
        if deps.is_empty() {
            return Ok(());
        }
        self.holds.lock().hold(service, deps);
        let result = self.start_all(deps, deadline);
        if result.is_err() {
            self.release(service, deps);
        }
        result
    }

    fn start_all(&self, deps: &[Existing], deadline: Instant) -> Result<(), String> {
        let Some(engine) = &self.engine else {
            return Err("dependencies need the Docker daemon, which is not connected".into());
        };
        for dep in deps {
            let id = engine
                .start(dep)
                .map_err(|e| format!("dependency {dep}: {e}"))?;
            wait_ready(engine, dep, &id, deadline)?;
        }
        Ok(())
    }

    /// The dependencies compose v2 recorded on `target`'s container (none without the daemon
    /// or the label).
    pub(crate) fn recorded(&self, target: &Existing) -> Vec<Existing> {
        let (Some(engine), Existing::Compose { project, .. }) = (&self.engine, target) else {
            return Vec::new();
        };
        match engine.locate(target) {
            Ok(Some(c)) => compose_depends_on(&c.labels, project),
            _ => Vec::new(),
        }
    }

    /// After `service` became ready: are its dependencies still running? A dependency that
    /// looked ready once running (it has no HEALTHCHECK) may have exited right after; the
    /// start then fails with its exit code.
    pub(crate) fn still_up(&self, deps: &[Existing]) -> Result<(), String> {
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        for dep in deps {
            let gone = |why: String| format!("dependency {dep}: {why}");
            let c = engine.locate(dep).map_err(|e| gone(e.0))?;
            let Some(c) = c else {
                return Err(gone("its container is gone".into()));
            };
            if !c.running {
                let logs = engine.logs_tail(&c.id, START_LOG_LINES);
                return Err(format!(
                    "dependency {dep} exited with code {} while starting; last log lines:\n{}",
                    c.exit_code,
                    logs.trim_end()
                ));
            }
        }
        Ok(())
    }

    /// `service` stopped: its dependencies nobody else holds are stopped, in reverse order.
    pub(crate) fn release(&self, service: &str, deps: &[Existing]) {
        let free = self.holds.lock().release(service, deps);
        let Some(engine) = &self.engine else { return };
        for dep in free {
            match engine.locate(&dep) {
                Ok(Some(c)) if c.running => {
                    log::info!("stopping {dep}: no service needs it any more");
                    if let Err(e) = engine.stop(&c.id) {
                        log::warn!("stopping {dep}: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => log::warn!("stopping {dep}: {e}"),
            }
        }
    }
}

/// Waits until dependency `dep` (container `id`) is ready: healthy when it has a
/// HEALTHCHECK, running otherwise.
fn wait_ready(
    engine: &ExistingEngine,
    dep: &Existing,
    id: &str,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        let seen = engine
            .observe(id, 0)
            .map_err(|e| format!("dependency {dep}: {e}"))?;
        let Some(o) = seen else {
            return Err(format!("dependency {dep} was removed while starting"));
        };
        if !o.running {
            let logs = engine.logs_tail(id, START_LOG_LINES);
            return Err(format!(
                "dependency {dep} exited with code {} while starting; last log lines:\n{}",
                o.exit_code,
                logs.trim_end()
            ));
        }
        match o.health.as_deref() {
            None | Some("healthy") => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(format!("dependency {dep} did not become healthy in time"));
            }
            Some(_) => std::thread::sleep(LOOK_EVERY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: &str) -> Existing {
        Existing::Named(n.into())
    }

    #[test]
    fn a_shared_dependency_is_freed_by_the_last_holder_in_reverse_order() {
        let mut h = Holds::default();
        h.hold("web", &[c("db"), c("cache")]);
        h.hold("admin", &[c("db")]);
        assert_eq!(h.holders(&c("db")), ["admin", "web"]);
        assert_eq!(h.release("web", &[c("db"), c("cache")]), [c("cache")]);
        assert_eq!(h.holders(&c("db")), ["admin"]);
        h.hold("web", &[c("db"), c("cache")]);
        assert_eq!(h.release("admin", &[c("db")]), Vec::<Existing>::new());
        assert_eq!(
            h.release("web", &[c("db"), c("cache")]),
            [c("cache"), c("db")]
        );
        assert_eq!(
            h.release("web", &[c("db")]),
            Vec::<Existing>::new(),
            "twice: nothing"
        );
        assert!(h.holders(&c("db")).is_empty());
    }
}
