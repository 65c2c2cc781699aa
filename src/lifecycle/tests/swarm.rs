//! Manager tests for swarm services against fake engines (no Docker): one engine per slot,
//! readiness through `progress`, a failed task failing every waiter and scaling back to 0,
//! reconcile over both kinds, status extras.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::config;
use crate::lifecycle::Activity;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::engine::{
    Engine, EngineError, EngineKind, Found, IdleStop, Observed, Progress, Replicas,
};
use crate::lifecycle::spec::ManagedSpec;

use super::app;

/// Records calls; answers `progress` from a script.
struct FakeEngine {
    kind: &'static str,
    starts: AtomicUsize,
    stops: Mutex<Vec<String>>,
    progress_calls: AtomicUsize,
    /// `Pending` this many times, then `outcome`.
    pending_polls: usize,
    outcome: Progress,
    found: Vec<Found>,
    /// Idle stops answered "active elsewhere at …" (then stopped once this is empty).
    elsewhere: Mutex<Vec<SystemTime>>,
    /// Activity records made.
    records: Mutex<Vec<SystemTime>>,
}

impl FakeEngine {
    fn new(
        kind: &'static str,
        pending_polls: usize,
        outcome: Progress,
        found: Vec<Found>,
    ) -> Arc<FakeEngine> {
        Arc::new(FakeEngine {
            kind,
            starts: AtomicUsize::new(0),
            stops: Mutex::new(Vec::new()),
            progress_calls: AtomicUsize::new(0),
            pending_polls,
            outcome,
            found,
            elsewhere: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
        })
    }
}

impl Engine for FakeEngine {
    fn kind(&self) -> EngineKind {
        match self.kind {
            "swarm" => EngineKind::Swarm,
            _ => EngineKind::Container,
        }
    }
    fn ensure_started(&self, spec: &ManagedSpec) -> Result<String, EngineError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        Ok(format!("id-{}", spec.name))
    }
    fn observe(&self, id: &str, _port: u16) -> Result<Option<Observed>, EngineError> {
        Ok(Some(Observed {
            id: id.into(),
            running: true,
            exit_code: 0,
            oom_killed: false,
            health: None,
            host_port: None,
        }))
    }
    fn logs_tail(&self, _id: &str, _n: usize) -> String {
        String::new()
    }
    fn stop(&self, id: &str) -> Result<(), EngineError> {
        std::thread::sleep(Duration::from_millis(100));
        self.stops.lock().push(id.to_string());
        Ok(())
    }
    fn stop_when_idle(
        &self,
        id: &str,
        _: Duration,
        _: SystemTime,
    ) -> Result<IdleStop, EngineError> {
        if let Some(at) = self.elsewhere.lock().pop() {
            return Ok(IdleStop::ActiveElsewhere(at));
        }
        self.stop(id).map(|()| IdleStop::Stopped)
    }
    fn shares_activity(&self) -> bool {
        self.kind == "swarm"
    }
    fn record_activity(
        &self,
        _: &ManagedSpec,
        _: &str,
        last: SystemTime,
    ) -> Result<bool, EngineError> {
        self.records.lock().push(last);
        Ok(true)
    }
    fn list_ours(&self, _instance: &str) -> Result<Vec<Found>, EngineError> {
        Ok(self.found.clone())
    }
    fn foreign_holds_name(&self, _name: &str, _instance: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
    fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }
    fn progress(&self, _id: &str, _name: &str, _port: u16) -> Result<Progress, EngineError> {
        let n = self.progress_calls.fetch_add(1, Ordering::SeqCst);
        Ok(if n < self.pending_polls {
            Progress::Pending
        } else {
            self.outcome.clone()
        })
    }
    fn replicas(&self, _name: &str) -> Option<Replicas> {
        (self.kind == "swarm").then_some(Replicas {
            desired: Some(2),
            running: Some(1),
            tasks: None,
        })
    }
}

/// One swarm service named `127.0.0.1` (so that "reaching it by name" reaches the fake app)
/// and one container service `box`. The config refuses that name for a swarm service (Docker
/// would), so it is set after parsing.
fn setup(containers: Arc<FakeEngine>, swarm: Arc<FakeEngine>, port: u16) -> Lifecycle {
    let yaml = format!(
        "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n  docker_network: net\n  idle_timeout: 300\nservices:\n\
         \x20 - name: fake-app\n    path: /s\n    image: img\n    mode: swarm\n    replicas: 2\n    internal_port: {port}\n    start_timeout: 5\n\
         \x20 - name: box\n    path: /b\n    image: img\n"
    );
    let mut cfg = config::parse(&yaml, "test", &|_| None).unwrap();
    cfg.services[0].name = "127.0.0.1".to_string();
    let activity = |_: &str| Arc::new(Activity::new(Instant::now()));
    Lifecycle::with_engines(&cfg, containers, swarm, None, &activity)
}

#[test]
fn twenty_concurrent_requests_scale_up_once_and_wait_for_a_running_task() {
    let port = app();
    let containers = FakeEngine::new("container", 0, Progress::Running { health: None }, vec![]);
    let swarm = FakeEngine::new("swarm", 3, Progress::Running { health: None }, vec![]);
    let lc = setup(containers.clone(), swarm.clone(), port);
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (lc, b) = (lc.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                lc.ensure_ready(0)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(format!("127.0.0.1:{port}")));
    }
    assert_eq!(swarm.starts.load(Ordering::SeqCst), 1, "one scale-up");
    assert_eq!(
        containers.starts.load(Ordering::SeqCst),
        0,
        "the swarm slot never touches the container engine"
    );
    assert!(
        swarm.progress_calls.load(Ordering::SeqCst) >= 4,
        "pending polls, then running"
    );
    let st = lc.status(0);
    assert_eq!(st.engine, EngineKind::Swarm);
    assert_eq!(st.status, "running");
    assert_eq!(
        st.replicas,
        Some(Replicas {
            desired: Some(2),
            running: Some(1),
            tasks: None,
        })
    );
    assert_eq!(lc.status(1).engine, EngineKind::Container);
    assert!(lc.status(1).replicas.is_none());
}

#[test]
fn a_failed_task_fails_every_waiter_at_once_and_scales_back_to_zero() {
    let port = app();
    let why = "swarm service 127.0.0.1: task abc failed while starting: task: non-zero exit (3) (exit code 3)";
    let containers = FakeEngine::new("container", 0, Progress::Running { health: None }, vec![]);
    let swarm = FakeEngine::new("swarm", 2, Progress::Failed(why.into()), vec![]);
    let lc = setup(containers, swarm.clone(), port);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let lc = lc.clone();
            std::thread::spawn(move || lc.ensure_ready(0))
        })
        .collect();
    for h in handles {
        let err = h.join().unwrap().unwrap_err();
        assert_eq!(err.retry_after, 5);
        assert!(
            err.detail.contains("non-zero exit (3) (exit code 3)"),
            "{}",
            err.detail
        );
    }
    // Before the 5 s start timeout: the failure, not the timeout, ended the wait.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // The start's scale-up is undone before the next start can begin.
    let deadline = Instant::now() + Duration::from_secs(20);
    while swarm.stops.lock().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        swarm.stops.lock().first().map(String::as_str),
        Some("id-127.0.0.1")
    );
    assert!(
        lc.status(0)
            .last_error
            .as_deref()
            .unwrap()
            .contains("exit code 3")
    );
}

#[test]
fn reconcile_takes_stock_of_both_kinds() {
    let port = app();
    let found = |id: &str, service: &str, running: bool, up: bool, hash: &str| Found {
        id: id.into(),
        service: service.into(),
        running,
        up,
        settings_hash: hash.into(),
    };
    // The swarm hash must be the current one to be adopted.
    let probe = setup(
        FakeEngine::new("container", 0, Progress::Pending, vec![]),
        FakeEngine::new("swarm", 0, Progress::Pending, vec![]),
        port,
    );
    let hash = probe.settings()["127.0.0.1"].clone();
    let containers = FakeEngine::new(
        "container",
        0,
        Progress::Pending,
        // A container of the same name as the swarm service (from before a mode switch).
        vec![found("c-old", "127.0.0.1", true, true, "x")],
    );
    let swarm = FakeEngine::new(
        "swarm",
        0,
        Progress::Pending,
        vec![
            found("svc-1", "127.0.0.1", true, true, &hash),
            found("svc-gone", "removed", false, true, "y"),
            found("svc-idle", "idle", false, false, "z"),
        ],
    );
    let lc = setup(containers.clone(), swarm.clone(), port);
    lc.reconcile().unwrap();
    assert_eq!(
        lc.status(0).status,
        "running",
        "the running swarm service is adopted"
    );
    assert_eq!(lc.ensure_ready(0), Ok(format!("127.0.0.1:{port}")));
    assert_eq!(swarm.starts.load(Ordering::SeqCst), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while (swarm.stops.lock().is_empty() || containers.stops.lock().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *swarm.stops.lock(),
        ["svc-gone"],
        "scaled up, not in the config: scaled to 0"
    );
    assert_eq!(
        *containers.stops.lock(),
        ["c-old"],
        "a container is stopped by the container engine"
    );
}

#[test]
fn a_service_scaled_up_with_nothing_running_is_scaled_down_at_start_up() {
    let port = app();
    let probe = setup(
        FakeEngine::new("container", 0, Progress::Pending, vec![]),
        FakeEngine::new("swarm", 0, Progress::Pending, vec![]),
        port,
    );
    let hash = probe.settings()["127.0.0.1"].clone();
    let swarm = FakeEngine::new(
        "swarm",
        0,
        Progress::Running { health: None },
        vec![Found {
            id: "svc-1".into(),
            service: "127.0.0.1".into(),
            running: false,
            up: true,
            settings_hash: hash,
        }],
    );
    let lc = setup(
        FakeEngine::new("container", 0, Progress::Pending, vec![]),
        swarm.clone(),
        port,
    );
    lc.reconcile().unwrap();
    assert_eq!(lc.status(0).status, "stopping");
    // A request meanwhile waits for the scale-down, then starts afresh.
    assert_eq!(lc.ensure_ready(0), Ok(format!("127.0.0.1:{port}")));
    assert_eq!(*swarm.stops.lock(), ["svc-1"]);
    assert_eq!(swarm.starts.load(Ordering::SeqCst), 1);
}

/// Polls `what` until it holds, for up to 5 s.
fn eventually(what: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn an_idle_stop_that_finds_another_proxy_active_keeps_serving_and_activity_is_recorded() {
    let port = app();
    let containers = FakeEngine::new("container", 0, Progress::Running { health: None }, vec![]);
    let swarm = FakeEngine::new("swarm", 0, Progress::Running { health: None }, vec![]);
    let lc = setup(containers, swarm.clone(), port);
    assert_eq!(lc.ensure_ready(0), Ok(format!("127.0.0.1:{port}")));
    // Active now (later than the scale-up's record): one record, then no second one so soon.
    std::thread::sleep(Duration::from_millis(5));
    let t = Instant::now();
    lc.reap(t);
    assert!(eventually(|| swarm.records.lock().len() == 1));
    std::thread::sleep(Duration::from_millis(5));
    lc.reap(Instant::now());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(swarm.records.lock().len(), 1, "writes are spaced");
    // Idle past the 300 s timeout, but another proxy was active 100 s ago: serve on.
    let elsewhere = SystemTime::now() - Duration::from_secs(100);
    swarm.elsewhere.lock().push(elsewhere);
    lc.reap(t + Duration::from_secs(400));
    assert!(eventually(|| swarm.elsewhere.lock().is_empty()));
    assert!(eventually(|| lc.status(0).status == "running"));
    assert!(swarm.stops.lock().is_empty());
    // The idle clock restarted from the other proxy's activity: 150 s later it is not idle
    // yet; 200 s later (300 s after that activity) it is scaled down.
    let now = Instant::now();
    lc.reap(now + Duration::from_secs(150));
    std::thread::sleep(Duration::from_millis(50));
    assert!(swarm.stops.lock().is_empty(), "idle since 250 s only");
    lc.reap(now + Duration::from_secs(201));
    assert!(eventually(|| swarm.stops.lock().len() == 1));
    assert!(eventually(|| lc.status(0).status == "stopped"));
}
