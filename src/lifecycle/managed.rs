//! One on-demand service: its settings, its engine, its state under a mutex with a condvar that
//! wakes the requests waiting for a start, its cold-start figures, and what the pipeline asks
//! of it (`Wake`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::base::Histogram;
use crate::config::{ConnectMode, Existing, Global, PullPolicy, Service};

use super::activity::Activity;
use super::engine::{Engine, EngineKind};
use super::groups::Groups;
use super::shared_activity::Marks;
use super::spec::ManagedSpec;
use super::state::{Phase, State, Step};
use super::{MAX_WAITERS, NotReady, Report, SharedFigures, StartFigures, Wake};

/// Bucket upper bounds in seconds for cold starts.
const START_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

/// One on-demand service.
pub(crate) struct Managed {
    /// This service's own handle, for the threads it starts.
    me: Weak<Managed>,
    pub(super) spec: ManagedSpec,
    /// What runs it: a container or a swarm service.
    engine: Arc<dyn Engine>,
    pub(super) health_path: Option<String>,
    pub(super) start_timeout: Duration,
    pub(super) idle_timeout: Duration,
    state: Mutex<State>,
    cond: Condvar,
    pub(super) activity: Arc<Activity>,
    cold_starts: Histogram,
    failures: AtomicU64,
    /// Shared with the lifecycle: set while the Docker daemon cannot be reached.
    daemon_down: Arc<AtomicBool>,
    /// Shared with the lifecycle's other services: who holds which dependency up.
    pub(super) groups: Arc<Groups>,
    /// The dependencies the latest start holds up (`depends_on`, or compose's record).
    pub(super) held: Mutex<Vec<Existing>>,
    /// What this proxy recorded of the service's activity for other proxies (swarm services).
    pub(super) marks: Marks,
}

/// What the services of one lifecycle share.
pub(crate) struct Shared {
    /// Set while the Docker daemon cannot be reached.
    pub daemon_down: Arc<AtomicBool>,
    pub groups: Arc<Groups>,
}

impl Managed {
    pub(super) fn new(
        s: &Service,
        g: &Global,
        engine: Arc<dyn Engine>,
        activity: Arc<Activity>,
        shared: Shared,
    ) -> Arc<Managed> {
        let container = s.container().expect("an on-demand service").clone();
        Arc::new_cyclic(|me| Managed {
            me: me.clone(),
            spec: ManagedSpec {
                name: s.name.clone(),
                container,
                network: g.docker_network.clone(),
                mode: g.connect_mode,
                instance: g.instance.clone(),
            },
            engine,
            health_path: s.health_path.clone(),
            start_timeout: s.start_timeout,
            idle_timeout: s.idle_timeout,
            state: Mutex::new(State::new()),
            cond: Condvar::new(),
            activity,
            cold_starts: Histogram::new(START_BUCKETS),
            failures: AtomicU64::new(0),
            daemon_down: shared.daemon_down,
            groups: shared.groups,
            held: Mutex::new(Vec::new()),
            marks: Marks::default(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    pub(super) fn spec(&self) -> &ManagedSpec {
        &self.spec
    }

    pub(super) fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub(super) fn kind(&self) -> EngineKind {
        self.engine.kind()
    }

    pub(super) fn handle(&self) -> Arc<Managed> {
        self.me
            .upgrade()
            .expect("a service is alive while its methods run")
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Wakes every request waiting on this service's state.
    pub(super) fn notify(&self) {
        self.cond.notify_all();
    }

    /// A start finished: count it in the figures.
    pub(super) fn record_start(&self, took: Option<Duration>, ok: bool) {
        match ok {
            true => self.cold_starts.observe(took.unwrap_or_default()),
            false => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves a ready service to stopping; returns the id to stop.
    pub(super) fn begin_stop(&self) -> Option<String> {
        self.state.lock().begin_stop()
    }

    fn retry_after(&self) -> u64 {
        self.start_timeout.as_secs().clamp(1, 30)
    }

    /// Waits (within the start timeout) until the service is ready or its start failed;
    /// `Ok(None)` when `patience` (shorter than the start timeout) ran out first.
    fn wait_ready(
        &self,
        st: &mut MutexGuard<'_, State>,
        patience: Duration,
    ) -> Result<Option<String>, String> {
        let impatient = patience < self.longest_start();
        let deadline = Instant::now() + patience.min(self.longest_start());
        loop {
            match st.request(Instant::now()) {
                Step::Ready(addr) => return Ok(Some(addr)),
                Step::Fail(why) => return Err(why),
                Step::Start(attempt) => {
                    let me = self.handle();
                    let spawned = std::thread::Builder::new()
                        .name(format!("start-{}", self.name()))
                        .spawn(move || me.run_start(attempt));
                    if let Err(e) = spawned {
                        st.start_failed(attempt, format!("cannot spawn a start thread: {e}"));
                    }
                }
                Step::Wait(attempt) => {
                    let timed_out = self.cond.wait_until(st, deadline).timed_out();
                    if let Some(why) = attempt.and_then(|a| st.failure_of(a)) {
                        return Err(why.to_string());
                    }
                    if timed_out && impatient && !matches!(st.phase, Phase::Ready { .. }) {
                        return Ok(None);
                    }
                    if timed_out && !matches!(st.phase, Phase::Ready { .. }) {
                        return Err(format!(
                            "{} did not become ready within {} s",
                            self.name(),
                            self.longest_start().as_secs()
                        ));
                    }
                }
            }
        }
    }
}

impl Managed {
    /// The dependencies a start holds: `depends_on`, or what compose recorded.
    pub(super) fn dependencies(&self) -> Vec<Existing> {
        let c = &self.spec.container;
        match (&c.existing, c.compose_depends_on) {
            (Some(target), true) => self.groups.recorded(target),
            _ => c.depends_on.clone(),
        }
    }

    /// The dependencies status shows: those held, else those configured.
    fn dependencies_shown(&self) -> Vec<Existing> {
        let held = self.held.lock().clone();
        if held.is_empty() {
            self.spec.container.depends_on.clone()
        } else {
            held
        }
    }

    /// The longest a start may take: its `start_timeout`, after a pull's `pull_timeout` when
    /// the image may be pulled first.
    fn longest_start(&self) -> Duration {
        let pull = &self.spec.container.pull;
        match pull.policy {
            PullPolicy::Never => self.start_timeout,
            PullPolicy::Missing | PullPolicy::Always => self.start_timeout + pull.timeout,
        }
    }
}

impl Wake for Managed {
    fn ensure_ready_within(&self, patience: Duration) -> Result<Option<String>, NotReady> {
        let retry_after = self.retry_after();
        let mut st = self.state.lock();
        if st.waiters >= MAX_WAITERS {
            return Err(NotReady {
                detail: format!(
                    "{} requests are already waiting for {} to start",
                    st.waiters,
                    self.name()
                ),
                retry_after,
            });
        }
        st.waiters += 1;
        let result = self.wait_ready(&mut st, patience);
        st.waiters -= 1;
        result.map_err(|detail| NotReady {
            detail,
            retry_after,
        })
    }

    fn forward_failed(&self, addr: &str) -> bool {
        let id = match &self.state.lock().phase {
            Phase::Ready { id, addr: a } if a == addr => id.clone(),
            // Already on its way back (another request saw it fail first).
            _ => return true,
        };
        // A swarm task on a node that just vanished is reported running until swarm notices:
        // go through readiness again (which waits for a task that answers) rather than ask.
        let recheck = self.engine.recheck_after_failed_forward();
        if !recheck
            && self
                .engine
                .observe(&id, self.spec.container.internal_port)
                .ok()
                .flatten()
                .is_some_and(|o| o.running)
        {
            return false;
        }
        match recheck {
            true => log::info!(
                "{} {} did not answer at {addr}: waiting until one of its tasks answers",
                self.engine.noun(),
                self.name()
            ),
            false => log::info!(
                "{} {} is not running any more: it will be started again",
                self.engine.noun(),
                self.name()
            ),
        }
        let mut st = self.state.lock();
        if matches!(&st.phase, Phase::Ready { id: cur, .. } if *cur == id) {
            st.container_gone(None);
        }
        true
    }

    fn report(&self) -> Report {
        // Asked before taking the lock: it may call Docker (swarm replica counts).
        let replicas = self.engine.replicas(self.name());
        let pull = self.engine.pull_progress(&self.spec.container.image);
        let pulling = pull.is_some();
        // Docker is asked before the lock is taken.
        let dependencies = self
            .dependencies_shown()
            .iter()
            .map(|d| (d.to_string(), self.groups.state(d), self.groups.holders(d)))
            .collect();
        let st = self.state.lock();
        let port = match (&st.phase, self.spec.mode) {
            (Phase::Ready { addr, .. }, ConnectMode::HostPort) => {
                addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
            }
            (_, ConnectMode::DockerDns) => Some(self.spec.container.internal_port),
            _ => None,
        };
        Report {
            engine: self.engine.kind(),
            status: match &st.conflict {
                Some(_) => "conflict",
                None => st.phase_name(),
            },
            port,
            container: self.name().to_string(),
            cold_starts: st.cold_starts,
            last_start: st.last_start,
            last_error: st.last_error.clone().or_else(|| st.conflict.clone()),
            waiting: st.waiters,
            replicas,
            docker_unreachable: self.daemon_down.load(Ordering::Relaxed),
            pull,
            pull_policy: self.spec.container.pull.policy.name(),
            stage: match st.phase {
                Phase::Starting { since, .. } => Some((st.stage.name(pulling), since.elapsed())),
                _ => None,
            },
            failure: st.latest_failure().map(str::to_string),
            dependencies,
        }
    }

    fn start_figures(&self) -> StartFigures<'_> {
        StartFigures {
            cold_starts: &self.cold_starts,
            failures: self.failures.load(Ordering::Relaxed),
            running: matches!(self.state.lock().phase, Phase::Ready { .. }),
            shared: self.engine.shares_activity().then(|| {
                let (writes, kept) = self.marks.counts();
                SharedFigures { writes, kept }
            }),
        }
    }
}
