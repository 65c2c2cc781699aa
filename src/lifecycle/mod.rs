//! On-demand containers: single-flight cold starts with readiness, the idle reaper, adoption of
//! running containers, and crash detection from Docker events. The per-service state machine
//! lives in `state`; Docker sits behind `engine::Engine`, one engine per service: plain
//! containers (`engine::DockerEngine`) or swarm services scaled between 0 and N
//! (`swarm::SwarmEngine`).

pub mod engine;
pub mod probe;
pub mod spec;
pub mod state;
pub mod swarm;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Map, Value};

use crate::activity::Activity;
use crate::answer::Answer;
use crate::config::{Config, ConnectMode};
use crate::metrics::{Histogram, StartMetrics, START_BUCKETS};
use crate::proxy::Containers;
use engine::{Engine, EngineError, Found, Progress};
use probe::Accept;
use spec::ManagedSpec;
use state::{Phase, State, Step};

/// Requests allowed to wait for one service's start; more get 503 at once.
pub const MAX_WAITERS: usize = 1024;
/// How often the reaper looks for idle services.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// One managed service.
struct Slot {
    spec: ManagedSpec,
    /// What runs it: a container or a swarm service.
    engine: Arc<dyn Engine>,
    health_path: Option<String>,
    start_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<State>,
    cond: Condvar,
    cold_starts: Histogram,
    failures: AtomicU64,
}

struct Inner {
    /// Indexed like `config.services`; `None` for upstream services.
    slots: Vec<Option<Slot>>,
    /// Runs the services without `mode: swarm`.
    containers: Arc<dyn Engine>,
    /// Runs the services with `mode: swarm`.
    swarm: Arc<dyn Engine>,
    activity: Arc<Vec<Arc<Activity>>>,
    instance: String,
    /// Set while the daemon cannot be reached (from the events thread).
    daemon_down: AtomicBool,
    /// After a config reload: the lifecycle of the new configuration, which events and
    /// reconciles are passed on to.
    successor: Mutex<Option<Lifecycle>>,
    /// After a config reload: services the successor owns now, which this one no longer reaps.
    handed_over: Mutex<Option<HashSet<String>>>,
}

/// The container lifecycle of every managed service.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

impl Lifecycle {
    /// Every managed service on `engine`, whatever its mode.
    pub fn new(
        config: &Config,
        engine: Arc<dyn Engine>,
        activity: Arc<Vec<Arc<Activity>>>,
    ) -> Lifecycle {
        Lifecycle::with_engines(config, engine.clone(), engine, activity)
    }

    /// Services with `mode: swarm` on `swarm`, the others on `containers`.
    pub fn with_engines(
        config: &Config,
        containers: Arc<dyn Engine>,
        swarm: Arc<dyn Engine>,
        activity: Arc<Vec<Arc<Activity>>>,
    ) -> Lifecycle {
        let g = &config.global;
        let slots = config
            .services
            .iter()
            .map(|s| {
                s.container().map(|c| Slot {
                    engine: if c.swarm.is_some() {
                        swarm.clone()
                    } else {
                        containers.clone()
                    },
                    spec: ManagedSpec {
                        name: s.name.clone(),
                        container: c.clone(),
                        network: g.docker_network.clone(),
                        mode: g.connect_mode,
                        instance: g.instance.clone(),
                    },
                    health_path: s.health_path.clone(),
                    start_timeout: s.start_timeout,
                    idle_timeout: s.idle_timeout,
                    state: Mutex::new(State::new()),
                    cond: Condvar::new(),
                    cold_starts: Histogram::new(START_BUCKETS),
                    failures: AtomicU64::new(0),
                })
            })
            .collect();
        Lifecycle {
            inner: Arc::new(Inner {
                slots,
                containers,
                swarm,
                activity,
                instance: g.instance.clone(),
                daemon_down: AtomicBool::new(false),
                successor: Mutex::new(None),
                handed_over: Mutex::new(None),
            }),
        }
    }

    fn slot(&self, i: usize) -> Option<&Slot> {
        self.inner.slots.get(i).and_then(Option::as_ref)
    }

    /// The engines to take stock with: containers, and swarm services when that is another
    /// engine (its `list_ours` finds nothing unless the daemon is a swarm manager).
    fn engines(&self) -> Vec<Arc<dyn Engine>> {
        let mut v = vec![self.inner.containers.clone()];
        if self.inner.swarm.kind() != self.inner.containers.kind() {
            v.push(self.inner.swarm.clone());
        }
        v
    }

    /// Takes stock of this instance's containers (and swarm services, on a swarm manager):
    /// running ones with current settings are adopted as ready; stale or orphaned ones are
    /// stopped (scaled to 0); a foreign container (or service) holding a service's name marks
    /// that service as in conflict.
    pub fn reconcile(&self) -> Result<(), EngineError> {
        if let Some(next) = self.successor() {
            return next.reconcile();
        }
        self.reconcile_with(true)
    }

    /// After a config reload: adopts running containers whose settings did not change, and
    /// leaves everything else alone (the previous lifecycle stops what it still serves once
    /// idle; changed services are recreated on their next start).
    pub fn adopt_running(&self) -> Result<(), EngineError> {
        self.reconcile_with(false)
    }

    /// Service name and settings hash of every managed service.
    pub fn settings(&self) -> HashMap<String, String> {
        self.inner
            .slots
            .iter()
            .flatten()
            .map(|s| (s.spec.name.clone(), s.spec.settings_hash()))
            .collect()
    }

    /// Hands over to `next` (the lifecycle of a reloaded config): services named in
    /// `handed_over` are no longer reaped here; the others (removed or changed) are still
    /// stopped once idle. Events and reconciles go to `next` from now on.
    pub fn retire(&self, handed_over: HashSet<String>, next: Option<Lifecycle>) {
        *self.inner.handed_over.lock() = Some(handed_over);
        *self.inner.successor.lock() = next;
    }

    fn successor(&self) -> Option<Lifecycle> {
        self.inner.successor.lock().clone()
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
            let noun = engine.noun();
            let slot_idx = self.inner.slots.iter().position(|s| {
                s.as_ref()
                    .is_some_and(|s| s.spec.name == f.service && s.engine.kind() == engine.kind())
            });
            let Some(i) = slot_idx else {
                if f.up && stop_stale {
                    log::info!(
                        "{noun} {} is no longer in the config: stopping it",
                        f.service
                    );
                    self.stop_in_background(engine.clone(), f.id.clone());
                }
                continue;
            };
            let slot = self.slot(i).expect("index from position");
            let current = f.settings_hash == slot.spec.settings_hash();
            if !f.up {
                continue;
            }
            if !current && !stop_stale {
                continue;
            }
            if !current {
                log::info!(
                    "{noun} {} runs with outdated settings: stopping it (recreated on the next request)",
                    f.service
                );
                self.stop_in_background(engine.clone(), f.id.clone());
                continue;
            }
            if !f.running {
                // Scaled up but nothing of it runs (its tasks failed, or are still starting):
                // scale it down through the state machine, so a request waits, then starts
                // it afresh.
                let mut st = slot.state.lock();
                if stop_stale && matches!(st.phase, Phase::Stopped) {
                    log::info!(
                        "{noun} {} is scaled up but nothing of it runs: stopping it",
                        f.service
                    );
                    st.phase = Phase::Stopping;
                    drop(st);
                    self.spawn_stop(i, f.id.clone());
                }
                continue;
            }
            match self.address_of(slot, &f.id) {
                Ok(addr) => {
                    let mut st = slot.state.lock();
                    if matches!(st.phase, Phase::Stopped) {
                        log::info!("adopted running {noun} {} at {addr}", f.service);
                        st.adopt(addr, f.id.clone());
                        self.inner.activity[i].touch(Instant::now());
                    }
                }
                Err(e) => log::warn!("cannot adopt {noun} {}: {e}", f.service),
            }
        }
        // Services whose container is gone (or stopped) while we thought them ready.
        for slot in self.inner.slots.iter().flatten() {
            let engine = &slot.engine;
            let mine = |f: &&(Arc<dyn Engine>, Found)| {
                f.1.service == slot.spec.name && f.0.kind() == engine.kind()
            };
            let running_id = found
                .iter()
                .filter(mine)
                .find(|f| f.1.running)
                .map(|f| f.1.id.clone());
            let mut st = slot.state.lock();
            if let Phase::Ready { id, .. } = &st.phase {
                if running_id.as_deref() != Some(id.as_str()) {
                    log::info!("{} {} is no longer running", engine.noun(), slot.spec.name);
                    st.container_gone(None);
                }
            }
            let foreign = !found.iter().any(|f| mine(&f))
                && engine
                    .foreign_holds_name(&slot.spec.name, &self.inner.instance)
                    .unwrap_or(false);
            let why = || match engine.kind() {
                "swarm" => swarm::foreign_service_message(&slot.spec.name),
                _ => engine::foreign_message(&slot.spec.name),
            };
            st.conflict = foreign.then(why);
            if foreign {
                log::warn!("service {}: {}", slot.spec.name, why());
            }
        }
        Ok(())
    }

    /// Where to reach a started container.
    fn address_of(&self, slot: &Slot, id: &str) -> Result<String, String> {
        match slot.spec.mode {
            ConnectMode::DockerDns => Ok(format!(
                "{}:{}",
                slot.spec.name, slot.spec.container.internal_port
            )),
            ConnectMode::HostPort => {
                let obs = slot
                    .engine
                    .observe(id, slot.spec.container.internal_port)
                    .map_err(|e| e.0)?
                    .ok_or("the container disappeared")?;
                obs.host_port
                    .map(|p| format!("127.0.0.1:{p}"))
                    .ok_or_else(|| {
                        format!(
                            "port {} is not published",
                            slot.spec.container.internal_port
                        )
                    })
            }
        }
    }

    fn stop_in_background(&self, engine: Arc<dyn Engine>, id: String) {
        let _ = std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                if let Err(e) = engine.stop(&id) {
                    log::warn!(
                        "stopping {} {}: {e}",
                        engine.noun(),
                        &id[..id.len().min(12)]
                    );
                }
            });
    }

    /// Stops `id` of service `i`, whose phase the caller has set to Stopping, and marks it
    /// Stopped when done (successfully or not: the next start looks again).
    fn spawn_stop(&self, i: usize, id: String) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                let slot = me.slot(i).expect("managed slot");
                if let Err(e) = slot.engine.stop(&id) {
                    log::warn!("stopping {}: {e}", slot.spec.name);
                }
                slot.state.lock().stopped();
                slot.cond.notify_all();
            });
        if spawned.is_err() {
            if let Some(slot) = self.slot(i) {
                slot.state.lock().stopped();
                slot.cond.notify_all();
            }
        }
    }

    /// Starts the reaper and, when given a way to watch, the events follower.
    pub fn spawn_threads(&self) {
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
    pub fn reap(&self, now: Instant) -> bool {
        let handed_over = self.inner.handed_over.lock().clone();
        let mut busy = false;
        for (i, slot) in self.inner.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            if handed_over
                .as_ref()
                .is_some_and(|h| h.contains(&slot.spec.name))
            {
                continue;
            }
            let mut st = slot.state.lock();
            busy |= !matches!(st.phase, Phase::Stopped);
            let idle = self.inner.activity[i].idle_for(now);
            if !st.should_stop(idle, slot.idle_timeout) {
                continue;
            }
            let Some(id) = st.begin_stop() else { continue };
            drop(st);
            log::info!(
                "stopping {}: idle for {} s",
                slot.spec.name,
                idle.unwrap_or_default().as_secs()
            );
            self.spawn_stop(i, id);
        }
        handed_over.is_none() || busy
    }

    /// A container event: `service` died (with `exit_code`) or was removed.
    /// `oom_killed` comes from an `oom` event or the container's state.
    pub fn container_gone(&self, service: &str, exit_code: Option<i64>, oom_killed: bool) {
        if let Some(next) = self.successor() {
            next.container_gone(service, exit_code, oom_killed);
        }
        for slot in self.inner.slots.iter().flatten() {
            if slot.spec.name == service && slot.engine.kind() == "container" {
                let mut st = slot.state.lock();
                let was_ready = matches!(st.phase, Phase::Ready { .. });
                if st.container_gone(exit_code) {
                    if was_ready {
                        let code = exit_code.map_or("unknown".into(), |c| c.to_string());
                        let why = if oom_killed {
                            format!("container {service} was killed for running out of memory (mem_limit) with exit code {code}")
                        } else {
                            format!(
                                "container {service} stopped outside wakeproxy (exit code {code})"
                            )
                        };
                        log::warn!("{why}; it starts again on the next request");
                        st.last_error = Some(why);
                    }
                    slot.cond.notify_all();
                }
            }
        }
    }

    /// The container of a task of swarm service `service` exited (a Docker event, so only
    /// for tasks on this node). During a start, the start looks at the tasks at once; while
    /// ready, swarm replaces the task (restart policy on-failure).
    pub fn task_exited(&self, service: &str, exit_code: Option<i64>) {
        if let Some(next) = self.successor() {
            next.task_exited(service, exit_code);
        }
        for slot in self.inner.slots.iter().flatten() {
            if slot.spec.name != service || slot.engine.kind() != "swarm" {
                continue;
            }
            let mut st = slot.state.lock();
            match st.phase {
                Phase::Starting { .. } => {
                    st.container_gone(exit_code);
                    slot.cond.notify_all();
                }
                Phase::Ready { .. } if exit_code != Some(0) => log::warn!(
                    "a task of swarm service {service} exited with code {}; swarm replaces it",
                    exit_code.map_or("unknown".into(), |c| c.to_string())
                ),
                _ => {}
            }
        }
    }

    /// Was this instance's container for `service` killed by the OOM killer?
    fn oom_killed(&self, service: &str) -> bool {
        let Some(slot) = self
            .inner
            .slots
            .iter()
            .flatten()
            .find(|s| s.spec.name == service && s.engine.kind() == "container")
        else {
            return false;
        };
        matches!(slot.engine.observe(service, slot.spec.container.internal_port), Ok(Some(o)) if o.oom_killed)
    }

    pub fn set_daemon_down(&self, down: bool) {
        self.inner.daemon_down.store(down, Ordering::Relaxed);
    }

    /// The start worker: runs start `gen` of service `i` to readiness or failure.
    fn run_start(&self, i: usize, gen: u64) {
        let slot = self.slot(i).expect("managed slot");
        let deadline = Instant::now() + slot.start_timeout;
        let result = self.start_and_wait(slot, gen, deadline);
        let mut st = slot.state.lock();
        match result {
            Ok((addr, id)) => {
                if st.started(gen, addr.clone(), id, Instant::now()) {
                    self.inner.activity[i].touch(Instant::now());
                    slot.cold_starts.observe(st.last_start.unwrap_or_default());
                    log::info!(
                        "{} ready at {addr} after {} ms",
                        slot.spec.name,
                        st.last_start.unwrap_or_default().as_millis()
                    );
                }
            }
            Err((why, started)) => {
                log::warn!("starting {} failed: {why}", slot.spec.name);
                slot.failures.fetch_add(1, Ordering::Relaxed);
                st.start_failed(gen, why);
                // Leave nothing half started (a swarm service scaled up, a container that
                // never became ready); requests arriving meanwhile wait, then start afresh.
                if let (Some(id), Phase::Stopped) = (started, &st.phase) {
                    st.phase = Phase::Stopping;
                    drop(st);
                    slot.cond.notify_all();
                    self.spawn_stop(i, id);
                    return;
                }
            }
        }
        drop(st);
        slot.cond.notify_all();
    }

    /// Starts the service and waits until it is ready: (address, id). On failure: why, and
    /// the id when something was started (to be stopped again).
    fn start_and_wait(
        &self,
        slot: &Slot,
        gen: u64,
        deadline: Instant,
    ) -> Result<(String, String), (String, Option<String>)> {
        let engine = &slot.engine;
        let name = &slot.spec.name;
        let id = engine.ensure_started(&slot.spec).map_err(|e| (e.0, None))?;
        let fail = |why: String| (why, Some(id.clone()));
        let port = slot.spec.container.internal_port;
        let (path, accept) = match &slot.health_path {
            Some(p) => (p.as_str(), Accept::Below500),
            None => ("/", Accept::Any),
        };
        // The container may exit between the look that saw it running and the one that reads
        // its address (its ports are then gone): report the exit, not the missing port.
        let locate = || {
            self.address_of(slot, &id)
                .map_err(|why| match engine.progress(&id, name, port) {
                    Ok(Progress::Failed(exit)) => fail(exit),
                    _ => fail(why),
                })
        };
        let mut round = 0u32;
        let mut addr: Option<String> = None;
        let mut docker_health = false;
        loop {
            let died = slot.state.lock().died.filter(|(g, _)| *g == gen);
            // Look at it on the first round, every 10th, and when an event says it died.
            if round.is_multiple_of(10) || died.is_some() {
                match engine.progress(&id, name, port).map_err(|e| fail(e.0))? {
                    Progress::Failed(why) => return Err(fail(why)),
                    Progress::Pending => {}
                    Progress::Running { health } => {
                        docker_health = health.is_some();
                        if health.as_deref() == Some("healthy") {
                            return Ok((locate()?, id));
                        }
                        if addr.is_none() {
                            addr = Some(locate()?);
                        }
                    }
                }
                if died.is_some() {
                    // Looked at: a swarm task that died is replaced, so go on waiting.
                    slot.state.lock().died = None;
                }
            }
            if !docker_health {
                if let Some(a) = &addr {
                    if probe::http_ready(a, name, path, accept, Duration::from_secs(1)) {
                        return Ok((a.clone(), id));
                    }
                }
            }
            if Instant::now() >= deadline {
                let readiness = if docker_health {
                    "Docker HEALTHCHECK".to_string()
                } else if addr.is_none() {
                    "waiting for it to run".to_string()
                } else {
                    format!("HTTP GET {path}")
                };
                return Err(fail(format!(
                    "{} {name} did not become ready within {} s (readiness: {readiness})",
                    engine.noun(),
                    slot.start_timeout.as_secs(),
                )));
            }
            round += 1;
            // Poll fast at first (cold-start latency), then ease off.
            let pause = if round < 100 { 5 } else { 50 };
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
}

impl Containers for Lifecycle {
    fn ensure_ready(&self, i: usize) -> Result<String, Answer> {
        let slot = self
            .slot(i)
            .ok_or_else(|| Answer::Internal("service is not a container".into()))?;
        let deadline = Instant::now() + slot.start_timeout;
        let retry_after = slot.start_timeout.as_secs().clamp(1, 30);
        let mut st = slot.state.lock();
        if st.waiters >= MAX_WAITERS {
            return Err(Answer::Unavailable {
                detail: format!(
                    "{} requests are already waiting for {} to start",
                    st.waiters, slot.spec.name
                ),
                retry_after,
            });
        }
        st.waiters += 1;
        let result = loop {
            match st.request(Instant::now()) {
                Step::Ready(addr) => break Ok(addr),
                Step::Fail(why) => {
                    break Err(Answer::Unavailable {
                        detail: why,
                        retry_after,
                    })
                }
                Step::Start(gen) => {
                    let me = self.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("start-{}", slot.spec.name))
                        .spawn(move || me.run_start(i, gen));
                    if let Err(e) = spawned {
                        st.start_failed(gen, format!("cannot spawn a start thread: {e}"));
                    }
                }
                Step::Wait(gen) => {
                    let timed_out = slot.cond.wait_until(&mut st, deadline).timed_out();
                    if let Some(why) = gen.and_then(|g| st.failure_of(g)) {
                        break Err(Answer::Unavailable {
                            detail: why.to_string(),
                            retry_after,
                        });
                    }
                    if timed_out && !matches!(st.phase, Phase::Ready { .. }) {
                        break Err(Answer::Unavailable {
                            detail: format!(
                                "{} did not become ready within {} s",
                                slot.spec.name,
                                slot.start_timeout.as_secs()
                            ),
                            retry_after,
                        });
                    }
                }
            }
        };
        st.waiters -= 1;
        result
    }

    fn forward_failed(&self, i: usize, addr: &str) {
        let Some(slot) = self.slot(i) else { return };
        let id = match &slot.state.lock().phase {
            Phase::Ready { id, addr: a } if a == addr => id.clone(),
            _ => return,
        };
        let running = slot
            .engine
            .observe(&id, slot.spec.container.internal_port)
            .ok()
            .flatten()
            .is_some_and(|o| o.running);
        if !running {
            log::info!(
                "{} {} is not running any more: it will be started again",
                slot.engine.noun(),
                slot.spec.name
            );
            let mut st = slot.state.lock();
            if matches!(&st.phase, Phase::Ready { id: cur, .. } if *cur == id) {
                st.container_gone(None);
            }
        }
    }

    fn stop_all(&self) {
        let stops: Vec<_> = self
            .inner
            .slots
            .iter()
            .flatten()
            .filter_map(|slot| {
                let id = slot.state.lock().begin_stop()?;
                log::info!("stopping {} (stop_services_on_exit)", slot.spec.name);
                let engine = slot.engine.clone();
                Some(std::thread::spawn(move || engine.stop(&id)))
            })
            .collect();
        for s in stops {
            if let Ok(Err(e)) = s.join() {
                log::warn!("stopping a container on exit: {e}");
            }
        }
    }

    fn start_metrics(&self, i: usize) -> Option<StartMetrics<'_>> {
        let slot = self.slot(i)?;
        Some(StartMetrics {
            cold_starts: &slot.cold_starts,
            failures: slot.failures.load(Ordering::Relaxed),
            running: matches!(slot.state.lock().phase, Phase::Ready { .. }),
        })
    }

    fn status(&self, i: usize) -> Map<String, Value> {
        let mut m = Map::new();
        let Some(slot) = self.slot(i) else { return m };
        // Asked before taking the lock: it may call Docker (swarm replica counts).
        let extra = slot.engine.status_extra(&slot.spec.name);
        m.insert("mode".into(), json!(slot.engine.kind()));
        let st = slot.state.lock();
        let status = match &st.conflict {
            Some(_) => "conflict",
            None => st.phase_name(),
        };
        m.insert("status".into(), json!(status));
        let host_port = match (&st.phase, slot.spec.mode) {
            (Phase::Ready { addr, .. }, ConnectMode::HostPort) => addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .map_or(Value::Null, |p| json!(p)),
            (_, ConnectMode::DockerDns) => json!(slot.spec.container.internal_port),
            _ => Value::Null,
        };
        m.insert("host_port".into(), host_port);
        m.insert("container".into(), json!(slot.spec.name));
        m.insert("cold_starts".into(), json!(st.cold_starts));
        m.insert(
            "last_start_ms".into(),
            st.last_start
                .map_or(Value::Null, |d| json!(d.as_millis() as u64)),
        );
        m.insert(
            "last_error".into(),
            st.last_error
                .clone()
                .or_else(|| st.conflict.clone())
                .map_or(Value::Null, Value::String),
        );
        m.insert("waiting".into(), json!(st.waiters));
        m.extend(extra);
        if self.inner.daemon_down.load(Ordering::Relaxed) {
            m.insert("docker".into(), json!("unreachable"));
        }
        m
    }
}

/// Follows Docker events for this instance's containers forever, reconnecting (and
/// reconciling) when the daemon goes away and comes back.
pub fn follow_events(lifecycle: Lifecycle, docker: crate::docker::Docker, instance: String) {
    let label = ManagedSpec::instance_label(&instance);
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    loop {
        let stream = docker.negotiate().and_then(|_| docker.events(&label));
        match stream {
            Ok(events) => {
                if !first {
                    log::info!(
                        "Docker daemon at {} is back: reconciling",
                        docker.socket().display()
                    );
                }
                lifecycle.set_daemon_down(false);
                if let Err(e) = lifecycle.reconcile() {
                    log::warn!("reconciling with Docker: {e}");
                }
                backoff = Duration::from_millis(500);
                for ev in events {
                    let Ok(ev) = ev else { break };
                    let service = ev
                        .attributes
                        .get(spec::LABEL_SERVICE)
                        .cloned()
                        .unwrap_or_default();
                    if ev.attributes.contains_key(engine::LABEL_SWARM_TASK) {
                        // The container of a task of one of our swarm services.
                        if ev.action == "die" {
                            lifecycle.task_exited(&service, ev.exit_code);
                        }
                        continue;
                    }
                    match ev.action.as_str() {
                        "die" => {
                            let oom = ev.exit_code == Some(137) && lifecycle.oom_killed(&service);
                            lifecycle.container_gone(&service, ev.exit_code, oom);
                        }
                        "destroy" => lifecycle.container_gone(&service, None, false),
                        "oom" => log::warn!("container {service} ran out of memory"),
                        _ => log::debug!("docker event {} for {service}", ev.action),
                    }
                }
                log::warn!(
                    "lost the Docker event stream at {}",
                    docker.socket().display()
                );
            }
            Err(e) => {
                if first || !lifecycle.inner.daemon_down.load(Ordering::Relaxed) {
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

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_swarm;
