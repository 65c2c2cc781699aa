//! Connection threads that are kept and reused: a new connection goes to a parked idle thread
//! when there is one, else a new thread is spawned (so long-lived connections never starve
//! others, unlike a fixed pool); threads idle for longer than `keep_idle` exit.
//!
//! The hand-off is a mutex-guarded queue and a condition variable: a parked thread sleeps in
//! the kernel until a job is queued for it, with no spinning or yielding on the way (on a
//! busy single core, a spinning hand-off only passes the CPU around).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs handed to parked threads, and how many parked threads are not yet spoken for.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Parked threads minus the jobs queued for them.
    idle: usize,
}

/// What the threads of one set share: the hand-off queue and its condvar, and their settings.
struct Crew {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Threads alive (busy or parked).
    alive: AtomicUsize,
    keep_idle: Duration,
    stack: usize,
    name: String,
}

impl Crew {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock, so a panic can never poison it; recover anyway.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A growable set of reusable threads.
#[derive(Clone)]
pub(crate) struct Workers {
    shared: Arc<Crew>,
}

impl Workers {
    pub(crate) fn new(name: &str, stack: usize, keep_idle: Duration) -> Workers {
        Workers {
            shared: Arc::new(Crew {
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
                alive: AtomicUsize::new(0),
                keep_idle,
                stack,
                name: name.to_string(),
            }),
        }
    }

    /// Runs `job` on a parked thread, or on a new one. Fails only when a thread cannot be
    /// spawned (the job is dropped).
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        {
            let mut q = self.shared.lock();
            if q.idle > 0 {
                q.idle -= 1;
                q.jobs.push_back(Box::new(job));
                drop(q);
                self.shared.wake.notify_one();
                return Ok(());
            }
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
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.shared.alive.load(Ordering::Acquire),
            self.shared.lock().idle,
        )
    }
}

/// Runs a job; a panic (already logged by the panic hook) ends the job, not the thread.
fn run(job: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
}

/// After a job: park, take the next job, or exit after `keep_idle` without one.
fn park_loop(shared: &Crew) {
    let mut q = shared.lock();
    q.idle += 1;
    loop {
        if let Some(job) = q.jobs.pop_front() {
            // Whoever queued it already took one parked thread off the idle count.
            drop(q);
            run(job);
            q = shared.lock();
            q.idle += 1;
            continue;
        }
        let (guard, waited) = shared
            .wake
            .wait_timeout(q, shared.keep_idle)
            .unwrap_or_else(|p| p.into_inner());
        q = guard;
        if waited.timed_out() && q.jobs.is_empty() && q.idle > 0 {
            // No job is queued, so every parked thread (this one too) counts as idle.
            q.idle -= 1;
            return;
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
        let (tx, rx) = std::sync::mpsc::channel();
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
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
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
