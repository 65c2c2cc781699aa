//! The per-service state machine (stopped, starting, ready, stopping) that makes concurrent
//! first requests share one start. Pure: the manager holds it under a mutex and feeds it
//! events and times; nothing here does I/O.

use std::time::{Duration, Instant};

/// Where a managed service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No running container we know of.
    Stopped,
    /// Start number `attempt` is under way.
    Starting { attempt: u64, since: Instant },
    /// Serving at `addr`.
    Ready { addr: String, id: String },
    /// An idle stop (or a stop before recreate) is under way.
    Stopping,
}

/// How far a start under way has come, for the waiting page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The containers it depends on being started, one after the other.
    Dependencies,
    /// Its image pulled if needed, its container created and started.
    Preparing,
    /// Started: waiting for it to run.
    Running,
    /// Running: waiting for its HEALTHCHECK or its HTTP probe.
    Health,
}

impl Stage {
    /// What the waiting page says; `pulling` while a pull of its image is under way.
    pub(crate) fn name(self, pulling: bool) -> &'static str {
        match self {
            Stage::Dependencies => "starting dependencies",
            Stage::Preparing if pulling => "pulling the image",
            Stage::Preparing => "creating the container",
            Stage::Running => "starting",
            Stage::Health => "waiting for health",
        }
    }
}

/// What a request should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Forward to this address.
    Ready(String),
    /// Start the service (this caller launched start `attempt`), then wait.
    Start(u64),
    /// Wait for start `attempt` (or, with `None`, for a stop) to finish.
    Wait(Option<u64>),
    /// Give up now with this reason (503).
    Fail(String),
}

/// Mutable state of one managed service.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub phase: Phase,
    /// Number of the latest start.
    pub attempt: u64,
    /// The start that failed last, with why.
    pub failed: Option<(u64, String)>,
    /// Requests waiting for a start.
    pub waiters: usize,
    pub cold_starts: u64,
    pub last_start: Option<Duration>,
    pub last_error: Option<String>,
    /// Set when a container wakeproxy did not create holds the service's name.
    pub conflict: Option<String>,
    /// The container exited during start `attempt` with this exit code.
    pub died: Option<(u64, i64)>,
    /// How far the latest start has come (meaningful while starting).
    pub stage: Stage,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    pub(crate) fn new() -> State {
        State {
            phase: Phase::Stopped,
            attempt: 0,
            failed: None,
            waiters: 0,
            cold_starts: 0,
            last_start: None,
            last_error: None,
            conflict: None,
            died: None,
            stage: Stage::Preparing,
        }
    }

    /// A request wants the service. `now` starts the clock of a new start.
    pub(crate) fn request(&mut self, now: Instant) -> Step {
        if let Some(c) = &self.conflict {
            return Step::Fail(c.clone());
        }
        match &self.phase {
            Phase::Ready { addr, .. } => Step::Ready(addr.clone()),
            Phase::Starting { attempt, .. } => Step::Wait(Some(*attempt)),
            Phase::Stopping => Step::Wait(None),
            Phase::Stopped => {
                self.attempt += 1;
                self.phase = Phase::Starting {
                    attempt: self.attempt,
                    since: now,
                };
                self.died = None;
                self.stage = Stage::Preparing;
                Step::Start(self.attempt)
            }
        }
    }

    /// After waking up: did the start this caller waited for fail? Returns its reason.
    pub(crate) fn failure_of(&self, attempt: u64) -> Option<&str> {
        match &self.failed {
            Some((g, why)) if *g == attempt && !matches!(self.phase, Phase::Ready { .. }) => {
                Some(why)
            }
            _ => None,
        }
    }

    /// Start `attempt` succeeded at `now`; ignored (returns false) when it is stale.
    pub(crate) fn started(&mut self, attempt: u64, addr: String, id: String, now: Instant) -> bool {
        match self.phase {
            Phase::Starting { attempt: g, since } if g == attempt => {
                self.phase = Phase::Ready { addr, id };
                self.cold_starts += 1;
                self.last_start = Some(now.saturating_duration_since(since));
                self.last_error = None;
                true
            }
            _ => false,
        }
    }

    /// Start `attempt` failed.
    pub(crate) fn start_failed(&mut self, attempt: u64, why: String) {
        if matches!(self.phase, Phase::Starting { attempt: g, .. } if g == attempt) {
            self.phase = Phase::Stopped;
        }
        self.last_error = Some(why.clone());
        self.failed = Some((attempt, why));
    }

    /// A running container found at start-up (or on reconnect) is taken over.
    pub(crate) fn adopt(&mut self, addr: String, id: String) {
        if matches!(self.phase, Phase::Stopped) {
            self.phase = Phase::Ready { addr, id };
        }
    }

    /// Should the idle reaper stop this service now? `idle_for` is `None` while requests or
    /// streams are open; a zero `idle_timeout` means never.
    pub(crate) fn should_stop(&self, idle_for: Option<Duration>, idle_timeout: Duration) -> bool {
        matches!(self.phase, Phase::Ready { .. })
            && !idle_timeout.is_zero()
            && idle_for.is_some_and(|d| d >= idle_timeout)
    }

    /// Moves Ready to Stopping and returns the container to stop.
    pub(crate) fn begin_stop(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.phase, Phase::Stopping) {
            Phase::Ready { id, .. } => Some(id),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// An idle stop found the service in use after all (another proxy sharing it recorded
    /// activity): back to serving at `addr`. Returns false when something else happened since.
    pub(crate) fn resume(&mut self, addr: String, id: String) -> bool {
        if self.phase != Phase::Stopping {
            return false;
        }
        self.phase = Phase::Ready { addr, id };
        true
    }

    /// The stop finished (successfully or not: the next start re-checks the container).
    pub(crate) fn stopped(&mut self) {
        if self.phase == Phase::Stopping {
            self.phase = Phase::Stopped;
        }
    }

    /// The container died, was stopped or removed by someone else. Returns true when the state
    /// changed. During a start, the start is marked as failed by the start worker.
    pub(crate) fn container_gone(&mut self, exit_code: Option<i64>) -> bool {
        match self.phase {
            Phase::Ready { .. } => {
                self.phase = Phase::Stopped;
                true
            }
            Phase::Starting { attempt, .. } => {
                self.died = Some((attempt, exit_code.unwrap_or(-1)));
                true
            }
            Phase::Stopped | Phase::Stopping => false,
        }
    }

    /// Start `attempt` reached `stage` (a stale start changes nothing).
    pub(crate) fn reached(&mut self, attempt: u64, stage: Stage) {
        if matches!(self.phase, Phase::Starting { attempt: g, .. } if g == attempt) {
            self.stage = stage;
        }
    }

    /// Why the latest start failed, while nothing has started since (the waiting page shows
    /// it; the next request starts afresh).
    pub(crate) fn latest_failure(&self) -> Option<&str> {
        match (&self.failed, &self.phase) {
            (Some((a, why)), Phase::Stopped | Phase::Stopping) if *a == self.attempt => Some(why),
            _ => None,
        }
    }

    /// A short name for status output.
    pub(crate) fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Stopped => "stopped",
            Phase::Starting { .. } => "starting",
            Phase::Ready { .. } => "running",
            Phase::Stopping => "stopping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn concurrent_requests_share_one_start() {
        let now = t0();
        let mut s = State::new();
        assert_eq!(s.request(now), Step::Start(1));
        for _ in 0..49 {
            assert_eq!(s.request(now), Step::Wait(Some(1)));
        }
        assert!(s.started(
            1,
            "127.0.0.1:1".into(),
            "id".into(),
            now + Duration::from_millis(300)
        ));
        assert_eq!(s.request(now), Step::Ready("127.0.0.1:1".into()));
        assert_eq!(s.cold_starts, 1);
        assert_eq!(s.last_start, Some(Duration::from_millis(300)));
    }

    #[test]
    fn a_failed_start_fails_its_waiters_and_the_next_request_retries() {
        let now = t0();
        let mut s = State::new();
        assert_eq!(s.request(now), Step::Start(1));
        s.start_failed(1, "exit code 3".into());
        assert_eq!(s.failure_of(1), Some("exit code 3"));
        assert_eq!(s.request(now), Step::Start(2));
        assert_eq!(s.failure_of(2), None);
        assert_eq!(s.last_error.as_deref(), Some("exit code 3"));
        assert!(
            !s.started(1, "a".into(), "i".into(), now),
            "a stale start is ignored"
        );
        assert!(s.started(2, "a".into(), "i".into(), now));
        assert_eq!(s.last_error, None);
    }

    #[test]
    fn idle_stop_then_fresh_start() {
        let now = t0();
        let mut s = State::new();
        s.request(now);
        s.started(1, "a".into(), "cid".into(), now);
        let idle = Duration::from_secs(10);
        assert!(!s.should_stop(None, idle), "in flight: never");
        assert!(!s.should_stop(Some(Duration::from_secs(9)), idle));
        assert!(
            !s.should_stop(Some(Duration::from_secs(99)), Duration::ZERO),
            "0 = never"
        );
        assert!(s.should_stop(Some(Duration::from_secs(10)), idle));
        assert_eq!(s.begin_stop(), Some("cid".into()));
        assert_eq!(s.begin_stop(), None);
        assert!(s.resume("a:1".into(), "cid".into()));
        assert_eq!(s.request(Instant::now()), Step::Ready("a:1".into()));
        assert!(!s.resume("a:1".into(), "cid".into()));
        assert_eq!(s.begin_stop(), Some("cid".into()));
        assert_eq!(
            s.request(now),
            Step::Wait(None),
            "a request during a stop waits"
        );
        s.stopped();
        assert_eq!(s.request(now), Step::Start(2));
    }

    #[test]
    fn crash_while_ready_and_while_starting() {
        let now = t0();
        let mut s = State::new();
        s.request(now);
        s.started(1, "a".into(), "c".into(), now);
        assert!(s.container_gone(Some(137)));
        assert_eq!(s.phase, Phase::Stopped);
        assert_eq!(s.request(now), Step::Start(2));
        assert!(s.container_gone(Some(3)));
        assert_eq!(s.died, Some((2, 3)));
        assert!(!State::new().container_gone(None));
    }

    #[test]
    fn stages_and_the_latest_failure_follow_the_latest_start() {
        let now = t0();
        let mut s = State::new();
        assert_eq!(s.request(now), Step::Start(1));
        assert_eq!(s.stage, Stage::Preparing);
        assert_eq!(s.stage.name(true), "pulling the image");
        assert_eq!(s.stage.name(false), "creating the container");
        s.reached(1, Stage::Running);
        s.reached(7, Stage::Health);
        assert_eq!(s.stage, Stage::Running, "a stale start changes nothing");
        s.reached(1, Stage::Health);
        assert_eq!(s.stage.name(false), "waiting for health");
        assert_eq!(s.latest_failure(), None);
        s.start_failed(1, "exit code 3".into());
        assert_eq!(s.latest_failure(), Some("exit code 3"));
        assert_eq!(s.request(now), Step::Start(2));
        assert_eq!(s.stage, Stage::Preparing);
        assert_eq!(s.latest_failure(), None, "a new start is under way");
        s.started(2, "a".into(), "c".into(), now);
        assert_eq!(s.latest_failure(), None);
    }

    #[test]
    fn conflict_fails_every_request() {
        let mut s = State::new();
        s.conflict = Some("name taken".into());
        assert_eq!(s.request(t0()), Step::Fail("name taken".into()));
    }

    #[test]
    fn adoption_only_from_stopped() {
        let mut s = State::new();
        s.adopt("a".into(), "c".into());
        assert_eq!(s.request(t0()), Step::Ready("a".into()));
        let mut s = State::new();
        s.request(t0());
        s.adopt("b".into(), "c".into());
        assert!(matches!(s.phase, Phase::Starting { .. }));
    }
}
