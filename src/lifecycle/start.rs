//! Starting an on-demand service and waiting until it is ready: Docker's HEALTHCHECK when the
//! image has one, else an HTTP probe (`health_path`, or any answer at all); a container that
//! exits while starting fails the start at once with its exit code and last log lines.

use std::time::{Duration, Instant};

use crate::config::{ConnectMode, EndpointMode};

use super::engine::Progress;
use super::managed::Managed;
use super::probe::{self, Accept};
use super::state::{Phase, Stage};

/// Why a start failed, and the id of what it started (to be stopped again), if anything.
type StartError = (String, Option<String>);

impl Managed {
    /// The start thread: runs start `attempt` to readiness or failure.
    pub(super) fn run_start(&self, attempt: u64) {
        let result = self.start_and_wait(attempt);
        let mut st = self.state();
        match result {
            Ok((addr, id)) => {
                if st.started(attempt, addr.clone(), id, Instant::now()) {
                    self.activity.touch(Instant::now());
                    // Record this proxy's use soon (a scale-up recorded its time already, but a
                    // proxy that found the service up has recorded nothing yet).
                    self.marks.reset(None);
                    self.record_start(st.last_start, true);
                    log::info!(
                        "{} ready at {addr} after {} ms",
                        self.name(),
                        st.last_start.unwrap_or_default().as_millis()
                    );
                }
            }
            Err((why, started)) => {
                log::warn!("starting {} failed: {why}", self.name());
                self.record_start(None, false);
                st.start_failed(attempt, why);
                // Leave nothing half started (a swarm service scaled up, a container that
                // never became ready); requests arriving meanwhile wait, then start afresh.
                if let (Some(id), Phase::Stopped) = (started, &st.phase) {
                    st.phase = Phase::Stopping;
                    drop(st);
                    self.notify();
                    self.spawn_stop(id);
                    return;
                }
            }
        }
        drop(st);
        self.notify();
    }

    /// Where to reach a started container.
    pub(super) fn address_of(&self, id: &str) -> Result<String, String> {
        let port = self.spec.container.internal_port;
        match self.spec.mode {
            ConnectMode::DockerDns => {
                let name = self.engine().dns_name(&self.spec, id).map_err(|e| e.0)?;
                Ok(format!("{name}:{port}"))
            }
            ConnectMode::HostPort => {
                let obs = self
                    .engine()
                    .observe(id, port)
                    .map_err(|e| e.0)?
                    .ok_or("the container disappeared")?;
                obs.host_port
                    .map(|p| format!("127.0.0.1:{p}"))
                    .ok_or_else(|| format!("port {port} is not published"))
            }
        }
    }

    /// Starts the service and waits until it is ready: (address, id). `start_timeout` counts
    /// from when the container is started: a pull before it has its own `pull_timeout`.
    fn start_and_wait(&self, attempt: u64) -> Result<(String, String), StartError> {
        let deps = &self.dependencies();
        *self.held.lock() = deps.clone();
        if !deps.is_empty() {
            self.state().reached(attempt, Stage::Dependencies);
            let deadline = Instant::now() + self.start_timeout;
            self.groups
                .wake(self.name(), deps, deadline)
                .map_err(|e| (e, None))?;
            self.state().reached(attempt, Stage::Preparing);
        }
        let id = self
            .engine()
            .ensure_started(&self.spec)
            .map_err(|e| (e.0, None))?;
        self.state().reached(attempt, Stage::Running);
        let deadline = Instant::now() + self.start_timeout;
        let mut wait = Readiness::new(self, id, attempt);
        loop {
            if let Some(ready) = wait.look()? {
                let id = Some(ready.1.clone());
                self.groups.still_up(deps).map_err(|e| (e, id))?;
                return Ok(ready);
            }
            if Instant::now() >= deadline {
                return Err(wait.timed_out());
            }
            wait.pause();
        }
    }
}

/// One start's wait for readiness: looks at the container now and then, probes it over HTTP
/// in between unless Docker's HEALTHCHECK decides.
struct Readiness<'a> {
    service: &'a Managed,
    id: String,
    attempt: u64,
    round: u32,
    /// Where it answers, once it runs.
    addr: Option<String>,
    /// The image has a HEALTHCHECK: Docker decides readiness.
    docker_health: bool,
    path: &'a str,
    accept: Accept,
}

impl<'a> Readiness<'a> {
    fn new(service: &'a Managed, id: String, attempt: u64) -> Readiness<'a> {
        let (path, accept) = match &service.health_path {
            Some(p) => (p.as_str(), Accept::Below500),
            None => ("/", Accept::Any),
        };
        Readiness {
            service,
            id,
            attempt,
            round: 0,
            addr: None,
            docker_health: false,
            path,
            accept,
        }
    }

    fn fail(&self, why: String) -> StartError {
        (why, Some(self.id.clone()))
    }

    /// The container may exit between the look that saw it running and the one that reads
    /// its address (its ports are then gone): report the exit, not the missing port.
    fn locate(&self) -> Result<String, StartError> {
        let s = self.service;
        let port = s.spec.container.internal_port;
        s.address_of(&self.id)
            .map_err(|why| match s.engine().progress(&self.id, s.name(), port) {
                Ok(Progress::Failed(exit)) => self.fail(exit),
                _ => self.fail(why),
            })
    }

    /// One round: `Some((addr, id))` once ready.
    fn look(&mut self) -> Result<Option<(String, String)>, StartError> {
        let s = self.service;
        let died = s.state().died.filter(|(a, _)| *a == self.attempt);
        // Look at it on the first round, every 10th, and when an event says it died.
        if self.round.is_multiple_of(10) || died.is_some() {
            let port = s.spec.container.internal_port;
            let progress = s.engine().progress(&self.id, s.name(), port);
            match progress.map_err(|e| self.fail(e.0))? {
                Progress::Failed(why) => return Err(self.fail(why)),
                Progress::Pending => {}
                Progress::Running { health } => {
                    self.docker_health = health.is_some();
                    if health.as_deref() == Some("healthy") {
                        return Ok(Some((self.locate()?, self.id.clone())));
                    }
                    if self.addr.is_none() {
                        self.addr = Some(self.locate()?);
                        s.state().reached(self.attempt, Stage::Health);
                    }
                }
            }
            if died.is_some() {
                // Looked at: a swarm task that died is replaced, so go on waiting.
                s.state().died = None;
            }
        }
        if let (false, Some(a)) = (self.docker_health, &self.addr) {
            let timeout = Duration::from_secs(1);
            if probe::http_ready(a, s.name(), self.path, self.accept, timeout) {
                return Ok(Some((a.clone(), self.id.clone())));
            }
        }
        Ok(None)
    }

    fn timed_out(&self) -> StartError {
        let readiness = if self.docker_health {
            "Docker HEALTHCHECK".to_string()
        } else if self.addr.is_none() {
            "waiting for it to run".to_string()
        } else {
            format!("HTTP GET {}", self.path)
        };
        let s = self.service;
        self.fail(format!(
            "{} {} did not become ready within {} s (readiness: {readiness}){}",
            s.engine().noun(),
            s.name(),
            s.start_timeout.as_secs(),
            self.vip_hint(),
        ))
    }

    /// A swarm service reached through its virtual IP on a kernel without IPVS: the task may
    /// run and answer on its own address while the VIP never does. Says so.
    fn vip_hint(&self) -> &'static str {
        let swarm = self.service.spec.container.swarm.as_ref();
        let vip = swarm.is_some_and(|sw| sw.endpoint_mode == EndpointMode::Vip);
        if vip && self.addr.is_some() && !std::path::Path::new("/proc/net/ip_vs").exists() {
            "; its task runs, but the service's virtual IP needs IPVS, which this kernel lacks \
             (no /proc/net/ip_vs): set endpoint_mode: dnsrr"
        } else {
            ""
        }
    }

    /// Polls fast at first (cold-start latency), then eases off.
    fn pause(&mut self) {
        self.round += 1;
        let pause = if self.round < 100 { 5 } else { 50 };
        std::thread::sleep(Duration::from_millis(pause));
    }
}
