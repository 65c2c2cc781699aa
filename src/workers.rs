//! Connection threads that are kept and reused: a new connection goes to a parked idle thread
//! when there is one, else a new thread is spawned (so long-lived connections never starve
//! others, unlike a fixed pool); threads idle for longer than `keep_idle` exit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Shared {
    rx: Receiver<Job>,
    /// Parked threads not yet claimed by a job.
    idle: AtomicUsize,
    /// Threads alive (busy or parked).
    alive: AtomicUsize,
    keep_idle: Duration,
    stack: usize,
    name: String,
}

/// A growable set of reusable threads.
#[derive(Clone)]
pub struct Workers {
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

/// Claims one unit of `n` if there is one.
fn claim(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
        .is_ok()
}

impl Workers {
    pub fn new(name: &str, stack: usize, keep_idle: Duration) -> Workers {
        let (tx, rx) = crossbeam_channel::unbounded();
        Workers {
            tx,
            shared: Arc::new(Shared {
                rx,
                idle: AtomicUsize::new(0),
                alive: AtomicUsize::new(0),
                keep_idle,
                stack,
                name: name.to_string(),
            }),
        }
    }

    /// Runs `job` on a parked thread, or on a new one. Fails only when a thread cannot be
    /// spawned (the job is dropped).
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        if claim(&self.shared.idle) {
            // A parked thread is reserved for us: it will take this job.
            return self
                .tx
                .send(Box::new(job))
                .map_err(|_| std::io::Error::other("workers gone"));
        }
        let shared = self.shared.clone();
        shared.alive.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name(shared.name.clone())
            .stack_size(shared.stack)
            .spawn(move || {
                run(job);
                park_loop(&shared);
                shared.alive.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            self.shared.alive.fetch_sub(1, Ordering::AcqRel);
        }
        spawned.map(|_| ())
    }

    /// Threads alive and threads parked.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.shared.alive.load(Ordering::Acquire),
            self.shared.idle.load(Ordering::Acquire),
        )
    }
}

/// Runs a job; a panic (already logged by the panic hook) ends the job, not the thread.
fn run(job: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
}

/// After a job: park, take the next job, or exit after `keep_idle` without one.
fn park_loop(shared: &Shared) {
    loop {
        shared.idle.fetch_add(1, Ordering::AcqRel);
        loop {
            match shared.rx.recv_timeout(shared.keep_idle) {
                Ok(job) => {
                    // Whoever sent it already took us off the idle count.
                    run(job);
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if claim(&shared.idle) {
                        return; // nobody had reserved a thread: this one may go
                    }
                    // A job is on its way for a parked thread: keep waiting for it.
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::time::Instant;

    #[test]
    fn threads_are_reused_and_grow_when_busy() {
        let w = Workers::new("t", 128 * 1024, Duration::from_secs(30));
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..5 {
            let tx = tx.clone();
            w.execute(move || tx.send(std::thread::current().id()).unwrap())
                .unwrap();
            rx.recv().unwrap();
            let t0 = Instant::now();
            while w.counts().1 == 0 && t0.elapsed() < Duration::from_secs(2) {
                std::thread::yield_now();
            }
        }
        assert_eq!(w.counts().0, 1, "one thread served five sequential jobs");
        // Jobs that block concurrently each get their own thread.
        let barrier = Arc::new(Barrier::new(11));
        for _ in 0..10 {
            let b = barrier.clone();
            w.execute(move || {
                b.wait();
            })
            .unwrap();
        }
        barrier.wait();
        assert!(w.counts().0 >= 10);
    }

    #[test]
    fn a_panicking_job_does_not_take_the_thread() {
        let w = Workers::new("t", 128 * 1024, Duration::from_secs(30));
        w.execute(|| panic!("boom (expected in this test)"))
            .unwrap();
        let t0 = Instant::now();
        while w.counts().1 == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the thread did not survive the panic"
            );
            std::thread::yield_now();
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        w.execute(move || tx.send(7).unwrap()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
        assert_eq!(w.counts().0, 1);
    }

    #[test]
    fn idle_threads_exit() {
        let w = Workers::new("t", 128 * 1024, Duration::from_millis(50));
        w.execute(|| {}).unwrap();
        let t0 = Instant::now();
        while w.counts().0 > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "idle thread did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        w.execute(|| {}).unwrap();
    }
}
