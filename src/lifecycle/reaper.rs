//! Stopping services: the reaper thread that stops services idle for their `idle_timeout`
//! (and, for services several proxies share, records this proxy's activity where the others
//! see it), and the stop threads (a stop takes up to the container's stop timeout; nobody
//! waits on it).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::Lifecycle;
use super::engine::{Engine, IdleStop};
use super::managed::Managed;
use super::shared_activity::write_interval;
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
            if let Phase::Ready { addr, id } = &st.phase
                && st.should_stop(idle, m.idle_timeout)
            {
                let (addr, id) = (addr.clone(), id.clone());
                st.begin_stop();
                drop(st);
                log::info!(
                    "stopping {}: idle for {} s",
                    m.name(),
                    idle.unwrap_or_default().as_secs()
                );
                m.spawn_idle_stop(id, addr);
                continue;
            }
            // Requests waiting for a start count as activity too: another proxy must not
            // scale the service away under them.
            let in_use = matches!(st.phase, Phase::Ready { .. } | Phase::Starting { .. });
            drop(st);
            if in_use && m.engine().shares_activity() {
                m.share_activity(idle.unwrap_or_default(), now);
            }
        }
        handed_over.is_none() || busy
    }
}

impl Managed {
    /// Stops `id`, whose phase the caller has set to Stopping, and marks it Stopped when done
    /// (successfully or not: the next start looks again).
    pub(super) fn spawn_stop(&self, id: String) {
        self.spawn_stop_thread(id, None);
    }

    /// Stops `id`, serving at `addr` and found idle, whose phase the caller has set to
    /// Stopping; when another proxy sharing it was active lately, it serves on instead.
    fn spawn_idle_stop(&self, id: String, addr: String) {
        self.spawn_stop_thread(id, Some(addr));
    }

    fn spawn_stop_thread(&self, id: String, idle_at: Option<String>) {
        let me = self.handle();
        let spawned = std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                let outcome = match &idle_at {
                    Some(_) => me
                        .engine()
                        .stop_when_idle(&id, me.idle_timeout, SystemTime::now()),
                    None => me.engine().stop(&id).map(|()| IdleStop::Stopped),
                };
                match (outcome, idle_at) {
                    (Ok(IdleStop::ActiveElsewhere(at)), Some(addr)) => {
                        return me.serve_on(id, addr, at);
                    }
                    (Err(e), _) => log::warn!("stopping {}: {e}", me.name()),
                    _ => {}
                }
                me.marks.reset(None);
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

    /// An idle stop did not happen: another proxy was active at `at`. Serves on at `addr`,
    /// with the idle clock restarted from `at`.
    fn serve_on(&self, id: String, addr: String, at: SystemTime) {
        let ago = SystemTime::now().duration_since(at).unwrap_or_default();
        let now = Instant::now();
        self.activity.touch(now.checked_sub(ago).unwrap_or(now));
        self.marks.reset(Some(at));
        self.marks.kept();
        self.state().resume(addr, id);
        self.notify();
    }

    /// Records this proxy's latest activity (idle for `idle` at `now`) where the other proxies
    /// see it, when a write is due; the write runs on its own thread.
    fn share_activity(&self, idle: Duration, now: Instant) {
        let last = SystemTime::now()
            .checked_sub(idle)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if !self
            .marks
            .claim(last, now, write_interval(self.idle_timeout))
        {
            return;
        }
        let me = self.handle();
        let spawned = std::thread::Builder::new()
            .name("activity".into())
            .spawn(move || {
                match me.engine().record_activity(me.spec(), me.name(), last) {
                    Ok(true) => me.marks.written(last, Instant::now()),
                    // Nothing to write to yet, or a later time recorded: look again later.
                    Ok(false) => me.marks.failed(Instant::now()),
                    Err(e) => {
                        log::debug!("recording the activity of {}: {e}", me.name());
                        me.marks.failed(Instant::now());
                    }
                }
            });
        if spawned.is_err() {
            self.marks.failed(now);
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
