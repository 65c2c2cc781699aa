//! Taking stock of what runs: at start-up (and whenever the Docker daemon comes back), running
//! containers with current settings are adopted as ready, stale or orphaned ones are stopped,
//! services thought ready whose container is gone are marked stopped, and a container that
//! wakeproxy did not create holding a service's name puts that service in conflict.

use std::sync::Arc;
use std::time::Instant;

use super::Lifecycle;
use super::engine::{self, Engine, EngineError, EngineKind, Found};
use super::managed::Managed;
use super::reaper::stop_in_background;
use super::state::Phase;

impl Lifecycle {
    /// Takes stock of this instance's containers (and swarm services, on a swarm manager):
    /// running ones with current settings are adopted as ready; stale or orphaned ones are
    /// stopped (scaled to 0); a foreign container (or service) holding a service's name marks
    /// that service as in conflict.
    pub(crate) fn reconcile(&self) -> Result<(), EngineError> {
        if let Some(next) = self.successor() {
            return next.reconcile();
        }
        self.reconcile_with(true)
    }

    /// After a config reload: adopts running containers whose settings did not change, and
    /// leaves everything else alone (the previous lifecycle stops what it still serves once
    /// idle; changed services are recreated on their next start).
    pub(crate) fn adopt_running(&self) -> Result<(), EngineError> {
        self.reconcile_with(false)
    }

    fn reconcile_with(&self, stop_stale: bool) -> Result<(), EngineError> {
        let mut found: Vec<(Arc<dyn Engine>, Found)> = Vec::new();
        for engine in self.engines() {
            engine.ping()?;
            for f in engine.list_ours(&self.inner.instance)? {
                found.push((engine.clone(), f));
            }
        }
        for (engine, f) in &found {
            self.take_stock(engine, f, stop_stale);
        }
        for m in &self.inner.services {
            self.check_still_there(m, &found);
        }
        Ok(())
    }

    /// What to do with one of our containers (or swarm services) found running.
    fn take_stock(&self, engine: &Arc<dyn Engine>, f: &Found, stop_stale: bool) {
        let noun = engine.noun();
        let Some(m) = self.find(&f.service, engine.kind()) else {
            if f.up && stop_stale {
                log::info!(
                    "{noun} {} is no longer in the config: stopping it",
                    f.service
                );
                stop_in_background(engine.clone(), f.id.clone());
            }
            return;
        };
        let current = f.settings_hash == m.spec().settings_hash();
        if !f.up || (!current && !stop_stale) {
            return;
        }
        if !current {
            log::info!(
                "{noun} {} runs with outdated settings: stopping it (recreated on the next request)",
                f.service
            );
            stop_in_background(engine.clone(), f.id.clone());
            return;
        }
        if !f.running {
            // Scaled up but nothing of it runs (its tasks failed, or are still starting):
            // scale it down through the state machine, so a request waits, then starts it
            // afresh.
            let mut st = m.state();
            if stop_stale && matches!(st.phase, Phase::Stopped) {
                log::info!(
                    "{noun} {} is scaled up but nothing of it runs: stopping it",
                    f.service
                );
                st.phase = Phase::Stopping;
                drop(st);
                m.spawn_stop(f.id.clone());
            }
            return;
        }
        match m.address_of(&f.id) {
            Ok(addr) => {
                let mut st = m.state();
                if matches!(st.phase, Phase::Stopped) {
                    log::info!("adopted running {noun} {} at {addr}", f.service);
                    st.adopt(addr, f.id.clone());
                    m.activity.touch(Instant::now());
                }
            }
            Err(e) => log::warn!("cannot adopt {noun} {}: {e}", f.service),
        }
    }

    /// A service thought ready whose container is gone is marked stopped; a foreign container
    /// holding its name puts it in conflict.
    fn check_still_there(&self, m: &Managed, found: &[(Arc<dyn Engine>, Found)]) {
        if m.kind() == EngineKind::Existing {
            // Not ours, so never listed: a dead one is noticed by the next forward.
            return;
        }
        let engine = m.engine();
        let mine =
            |f: &&(Arc<dyn Engine>, Found)| f.1.service == m.name() && f.0.kind() == m.kind();
        let running_id = found
            .iter()
            .filter(mine)
            .find(|f| f.1.running)
            .map(|f| f.1.id.clone());
        let foreign = !found.iter().any(|f| mine(&f))
            && engine
                .foreign_holds_name(m.name(), &self.inner.instance)
                .unwrap_or(false);
        let mut st = m.state();
        if let Phase::Ready { id, .. } = &st.phase
            && running_id.as_deref() != Some(id.as_str())
        {
            log::info!("{} {} is no longer running", engine.noun(), m.name());
            st.container_gone(None);
        }
        let why = || match m.kind() {
            EngineKind::Swarm => engine::swarm::foreign_service_message(m.name()),
            EngineKind::Container | EngineKind::Existing => {
                engine::container::foreign_message(m.name())
            }
        };
        st.conflict = foreign.then(why);
        if foreign {
            log::warn!("service {}: {}", m.name(), why());
        }
    }
}
