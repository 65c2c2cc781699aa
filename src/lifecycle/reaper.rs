//! Stopping services: the reaper thread that stops services idle for their `idle_timeout`, and
//! the stop threads (a stop takes up to the container's stop timeout; nobody waits on it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Lifecycle;
use super::engine::Engine;
use super::managed::Managed;
use super::state::Phase;

/// How often the reaper looks for idle services.
const REAP_EVERY: Duration = Duration::from_millis(250);

impl Lifecycle {
    /// Starts the reaper thread, which runs until this lifecycle is retired and has nothing
    /// left to stop.
    pub(crate) fn spawn_threads(&self) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                while me.reap(Instant::now()) {
                    std::thread::sleep(REAP_EVERY);
                }
            })
            .expect("spawning the reaper thread");
    }

    /// Stops every ready service idle for its `idle_timeout` at `now`. Returns false once
    /// this lifecycle was retired and has nothing left to reap.
    pub(crate) fn reap(&self, now: Instant) -> bool {
        let handed_over = self.inner.handed_over.lock().clone();
        let mut busy = false;
        for m in &self.inner.services {
            if handed_over.as_ref().is_some_and(|h| h.contains(m.name())) {
                continue;
            }
            let mut st = m.state();
            busy |= !matches!(st.phase, Phase::Stopped);
            let idle = m.activity.idle_for(now);
            if !st.should_stop(idle, m.idle_timeout) {
                continue;
            }
            let Some(id) = st.begin_stop() else { continue };
            drop(st);
            log::info!(
                "stopping {}: idle for {} s",
                m.name(),
                idle.unwrap_or_default().as_secs()
            );
            m.spawn_stop(id);
        }
        handed_over.is_none() || busy
    }
}

impl Managed {
    /// Stops `id`, whose phase the caller has set to Stopping, and marks it Stopped when done
    /// (successfully or not: the next start looks again).
    pub(super) fn spawn_stop(&self, id: String) {
        let me = self.handle();
        let spawned = std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                if let Err(e) = me.engine().stop(&id) {
                    log::warn!("stopping {}: {e}", me.name());
                }
                me.state().stopped();
                me.notify();
                let held = std::mem::take(&mut *me.held.lock());
                me.groups.release(me.name(), &held);
            });
        if spawned.is_err() {
            self.state().stopped();
            self.notify();
        }
    }
}

/// Stops something that belongs to no service of this configuration, without waiting.
pub(super) fn stop_in_background(engine: Arc<dyn Engine>, id: String) {
    let _ = std::thread::Builder::new()
        .name("stop".into())
        .spawn(move || {
            if let Err(e) = engine.stop(&id) {
                let short = &id[..id.len().min(12)];
                log::warn!("stopping {} {short}: {e}", engine.noun());
            }
        });
}
