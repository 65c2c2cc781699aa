//! Lifecycle tests against a fake engine (no Docker): single-flight starts, failures reaching
//! every waiter, idle reaping, a request during a stop, crash handling.

mod swarm;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::config;
use crate::lifecycle::Activity;
use crate::lifecycle::engine::{Engine, EngineError, Found, Observed};
use crate::lifecycle::spec::ManagedSpec;
use crate::lifecycle::{Lifecycle, NotReady, Report, Wake};

/// A tiny HTTP server on 127.0.0.1 answering 200 to anything, standing in for the app in the
/// container (or the tasks of a swarm service).
fn app() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

struct Fake {
    starts: AtomicUsize,
    stops: AtomicUsize,
    start_delay: Duration,
    exit_at_start: Option<i64>,
    running: AtomicBool,
    port: u16,
    /// Set: after this many looks the container has exited (code 9) and its ports are gone,
    /// as when it dies between two inspects.
    exits_after_looks: Option<usize>,
    looks: AtomicUsize,
}

impl Fake {
    fn new(start_delay: Duration, exit_at_start: Option<i64>) -> Arc<Fake> {
        Arc::new(Fake {
            starts: AtomicUsize::new(0),
            stops: AtomicUsize::new(0),
            start_delay,
            exit_at_start,
            running: AtomicBool::new(false),
            port: app(),
            exits_after_looks: None,
            looks: AtomicUsize::new(0),
        })
    }
}

impl Engine for Fake {
    fn ensure_started(&self, _spec: &ManagedSpec) -> Result<String, EngineError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.start_delay);
        self.running
            .store(self.exit_at_start.is_none(), Ordering::SeqCst);
        Ok("cid".into())
    }
    fn observe(&self, id: &str, _port: u16) -> Result<Option<Observed>, EngineError> {
        let looks = self.looks.fetch_add(1, Ordering::SeqCst) + 1;
        if self.exits_after_looks.is_some_and(|n| looks > n) {
            return Ok(Some(Observed {
                id: id.into(),
                running: false,
                exit_code: 9,
                oom_killed: false,
                health: None,
                host_port: None,
            }));
        }
        Ok(Some(Observed {
            id: id.into(),
            running: self.running.load(Ordering::SeqCst),
            exit_code: self.exit_at_start.unwrap_or(0),
            oom_killed: false,
            health: None,
            host_port: Some(self.port),
        }))
    }
    fn logs_tail(&self, _id: &str, _n: usize) -> String {
        "boom: missing DATABASE_URL".into()
    }
    fn stop(&self, _id: &str) -> Result<(), EngineError> {
        std::thread::sleep(Duration::from_millis(200));
        self.stops.fetch_add(1, Ordering::SeqCst);
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }
    fn list_ours(&self, _instance: &str) -> Result<Vec<Found>, EngineError> {
        Ok(Vec::new())
    }
    fn foreign_holds_name(&self, _name: &str, _instance: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
    fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The tests' calls, by service index in config order.
impl Lifecycle {
    fn ensure_ready(&self, i: usize) -> Result<String, NotReady> {
        self.inner.services[i].ensure_ready()
    }

    fn status(&self, i: usize) -> Report {
        self.inner.services[i].report()
    }
}

fn setup(engine: Arc<Fake>, idle: u64) -> (Lifecycle, Vec<Arc<Activity>>) {
    let yaml = format!(
        "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n  connect_mode: host_port\n  docker_network: ''\n  idle_timeout: {idle}\nservices:\n  - name: svc\n    path: /\n    image: img\n    start_timeout: 5\n"
    );
    let cfg = config::parse(&yaml, "test", &|_| None).unwrap();
    let activity = Arc::new(Activity::new(Instant::now()));
    let lc = Lifecycle::new(&cfg, engine, &|_| activity.clone());
    (lc, vec![activity])
}

#[test]
fn fifty_concurrent_requests_cause_one_start() {
    let fake = Fake::new(Duration::from_millis(300), None);
    let (lc, _) = setup(fake.clone(), 300);
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (lc, b) = (lc.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                lc.ensure_ready(0)
            })
        })
        .collect();
    let want = format!("127.0.0.1:{}", fake.port);
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(want.clone()));
    }
    assert_eq!(fake.starts.load(Ordering::SeqCst), 1);
    assert_eq!(lc.status(0).cold_starts, 1);
}

#[test]
fn exit_at_start_fails_every_waiter_fast_with_exit_code_and_logs() {
    let fake = Fake::new(Duration::from_millis(100), Some(3));
    let (lc, _) = setup(fake.clone(), 300);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let lc = lc.clone();
            std::thread::spawn(move || lc.ensure_ready(0))
        })
        .collect();
    for h in handles {
        let err = h.join().unwrap().unwrap_err();
        assert_eq!(err.retry_after, 5);
        let d = &err.detail;
        assert!(
            d.contains("exited with code 3") && d.contains("missing DATABASE_URL"),
            "{d}"
        );
    }
    // Before the 5 s start timeout: the failure, not the timeout, ended the wait.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        lc.status(0)
            .last_error
            .as_deref()
            .unwrap()
            .contains("code 3")
    );
}

#[test]
fn a_container_that_exits_between_two_looks_reports_its_exit_not_a_missing_port() {
    let mut fake = Fake::new(Duration::from_millis(10), None);
    Arc::get_mut(&mut fake).unwrap().exits_after_looks = Some(1);
    let (lc, _) = setup(fake.clone(), 300);
    let err = lc.ensure_ready(0).unwrap_err();
    assert_eq!(err.retry_after, 5);
    let d = &err.detail;
    assert!(
        d.contains("exited with code 9") && !d.contains("not published"),
        "{d}"
    );
}

#[test]
fn idle_services_are_stopped_and_a_request_during_the_stop_starts_again() {
    let fake = Fake::new(Duration::from_millis(10), None);
    let (lc, activity) = setup(fake.clone(), 1);
    {
        let _g = activity[0].begin(std::time::SystemTime::now(), Instant::now());
        lc.ensure_ready(0).unwrap();
    }
    lc.reap(Instant::now());
    assert_eq!(
        fake.stops.load(Ordering::SeqCst),
        0,
        "not idle long enough yet"
    );
    lc.reap(Instant::now() + Duration::from_secs(2));
    assert_eq!(lc.status(0).status, "stopping");
    // Arrives during the 200 ms stop: waits, then triggers a fresh start.
    lc.ensure_ready(0).unwrap();
    assert_eq!(fake.stops.load(Ordering::SeqCst), 1);
    assert_eq!(fake.starts.load(Ordering::SeqCst), 2);
}

#[test]
fn in_flight_requests_block_the_reaper() {
    let fake = Fake::new(Duration::from_millis(10), None);
    let (lc, activity) = setup(fake.clone(), 1);
    let guard = activity[0].begin(std::time::SystemTime::now(), Instant::now());
    lc.ensure_ready(0).unwrap();
    lc.reap(Instant::now() + Duration::from_secs(60));
    assert_eq!(lc.status(0).status, "running");
    drop(guard);
}

#[test]
fn a_crash_marks_the_service_stopped() {
    let fake = Fake::new(Duration::from_millis(10), None);
    let (lc, _) = setup(fake.clone(), 300);
    lc.ensure_ready(0).unwrap();
    lc.container_gone("svc", Some(137), true);
    assert!(
        lc.status(0)
            .last_error
            .as_deref()
            .unwrap()
            .contains("out of memory")
    );
    assert_eq!(lc.status(0).status, "stopped");
    lc.ensure_ready(0).unwrap();
    assert_eq!(fake.starts.load(Ordering::SeqCst), 2);
}
