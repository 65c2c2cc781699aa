//! Following Docker events: a container of ours that died or was removed is marked stopped at
//! once (and started again on the next request); a swarm task that exited makes a start look
//! at its tasks; losing the daemon marks it unreachable until the stream is back, and then
//! everything is taken stock of again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::docker::{Docker, Event};

use super::Lifecycle;
use super::engine::{EngineKind, LABEL_SWARM_TASK};
use super::spec::{self, ManagedSpec};
use super::state::Phase;

impl Lifecycle {
    /// A container event: `service` died (with `exit_code`) or was removed.
    /// `oom_killed` comes from an `oom` event or the container's state.
    pub(crate) fn container_gone(&self, service: &str, exit_code: Option<i64>, oom_killed: bool) {
        if let Some(next) = self.successor() {
            next.container_gone(service, exit_code, oom_killed);
        }
        let Some(m) = self.find(service, EngineKind::Container) else {
            return;
        };
        let mut st = m.state();
        let was_ready = matches!(st.phase, Phase::Ready { .. });
        if !st.container_gone(exit_code) {
            return;
        }
        if was_ready {
            let code = exit_code.map_or("unknown".into(), |c| c.to_string());
            let why = if oom_killed {
                format!(
                    "container {service} was killed for running out of memory (mem_limit) with exit code {code}"
                )
            } else {
                format!("container {service} stopped outside wakeproxy (exit code {code})")
            };
            log::warn!("{why}; it starts again on the next request");
            st.last_error = Some(why);
        }
        m.notify();
    }

    /// The container of a task of swarm service `service` exited (a Docker event, so only
    /// for tasks on this node). During a start, the start looks at the tasks at once; while
    /// ready, swarm replaces the task (restart policy on-failure).
    pub(crate) fn task_exited(&self, service: &str, exit_code: Option<i64>) {
        if let Some(next) = self.successor() {
            next.task_exited(service, exit_code);
        }
        let Some(m) = self.find(service, EngineKind::Swarm) else {
            return;
        };
        let mut st = m.state();
        match st.phase {
            Phase::Starting { .. } => {
                st.container_gone(exit_code);
                m.notify();
            }
            // 143: SIGTERM, as swarm stops a task when the service is scaled down (by another
            // proxy sharing it) or updated; a request that cannot reach it then waits for a task.
            Phase::Ready { .. } if exit_code == Some(143) => {
                log::info!("a task of swarm service {service} was stopped (exit code 143, SIGTERM)")
            }
            Phase::Ready { .. } if exit_code != Some(0) => log::warn!(
                "a task of swarm service {service} exited with code {}; swarm replaces it",
                exit_code.map_or("unknown".into(), |c| c.to_string())
            ),
            _ => {}
        }
    }

    /// Was this instance's container for `service` killed by the OOM killer?
    fn oom_killed(&self, service: &str) -> bool {
        let Some(m) = self.find(service, EngineKind::Container) else {
            return false;
        };
        let port = m.spec().container.internal_port;
        matches!(m.engine().observe(service, port), Ok(Some(o)) if o.oom_killed)
    }

    pub(crate) fn set_daemon_down(&self, down: bool) {
        self.inner.daemon_down.store(down, Ordering::Relaxed);
    }

    fn daemon_down(&self) -> bool {
        self.inner.daemon_down.load(Ordering::Relaxed)
    }

    /// One event of ours.
    fn on_event(&self, ev: &Event) {
        let service = ev
            .attributes
            .get(spec::LABEL_SERVICE)
            .cloned()
            .unwrap_or_default();
        if ev.attributes.contains_key(LABEL_SWARM_TASK) {
            // The container of a task of one of our swarm services.
            if ev.action == "die" {
                self.task_exited(&service, ev.exit_code);
            }
            return;
        }
        match ev.action.as_str() {
            "die" => {
                let oom = ev.exit_code == Some(137) && self.oom_killed(&service);
                self.container_gone(&service, ev.exit_code, oom);
            }
            "destroy" => self.container_gone(&service, None, false),
            "oom" => log::warn!("container {service} ran out of memory"),
            _ => log::debug!("docker event {} for {service}", ev.action),
        }
    }
}

/// Follows Docker events for this instance's containers forever, reconnecting (and
/// reconciling) when the daemon goes away and comes back.
pub(crate) fn follow_events(lifecycle: Lifecycle, docker: Docker, instance: String) {
    let label = ManagedSpec::instance_label(&instance);
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    loop {
        match docker.negotiate().and_then(|_| docker.events(&label)) {
            Ok(events) => {
                if !first {
                    let socket = docker.socket().display();
                    log::info!("Docker daemon at {socket} is back: reconciling");
                }
                lifecycle.set_daemon_down(false);
                if let Err(e) = lifecycle.reconcile() {
                    log::warn!("reconciling with Docker: {e}");
                }
                backoff = Duration::from_millis(500);
                for ev in events {
                    let Ok(ev) = ev else { break };
                    lifecycle.on_event(&ev);
                }
                log::warn!(
                    "lost the Docker event stream at {}",
                    docker.socket().display()
                );
            }
            Err(e) => {
                if first || !lifecycle.daemon_down() {
                    log::warn!("{e}");
                }
            }
        }
        first = false;
        lifecycle.set_daemon_down(true);
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
