//! Worker threads: a connection with a complete request head goes to an idle worker, to a new
//! one while fewer than `max_workers` are alive, or else into a queue that the next worker to
//! finish takes from; heads that wait too long are taken out by the poller and refused. The
//! poller never blocks on a full pool. Idle workers exit after a while.
//!
//! The hand-off is a mutex-guarded queue and a condition variable: a parked worker sleeps in
//! the kernel until a connection is queued for it, with no spinning on the way.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Hub;
use super::waiting::Ready;

/// Stack of a worker thread: room for a TLS handshake in a debug build, with the large
/// buffers on the heap.
const STACK_SIZE: usize = 256 * 1024;
/// Workers idle this long exit.
const KEEP_IDLE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Queue {
    ready: VecDeque<Ready>,
    /// Workers waiting for a connection.
    parked: usize,
    alive: usize,
}

/// The workers of one server.
pub(crate) struct Dispatch {
    queue: Mutex<Queue>,
    wake: Condvar,
    max: usize,
}

impl Dispatch {
    pub(super) fn new(max_workers: usize) -> Dispatch {
        Dispatch {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            max: max_workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Work runs outside the lock, so a panic cannot poison it; recover anyway.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `r` to a worker, or queues it. Never blocks.
    pub(super) fn submit(hub: &Arc<Hub>, r: Ready) {
        let d = &hub.dispatch;
        let mut q = d.lock();
        // A parked worker not yet spoken for takes it; so does the queue at the worker cap.
        if q.parked > q.ready.len() || q.alive >= d.max {
            q.ready.push_back(r);
            hub.load.queued.store(q.ready.len(), Ordering::Relaxed);
            drop(q);
            d.wake.notify_one();
            return;
        }
        q.alive += 1;
        hub.load.workers.store(q.alive, Ordering::Relaxed);
        drop(q);
        Dispatch::spawn(hub, Some(r));
    }

    /// The calling worker leaves the pool (its connection became a tunnel). Its place goes to
    /// a new worker when connections are waiting for one.
    fn leave(hub: &Arc<Hub>) {
        let d = &hub.dispatch;
        let mut q = d.lock();
        q.alive -= 1;
        hub.load.workers.store(q.alive, Ordering::Relaxed);
        hub.load.busy_workers.fetch_sub(1, Ordering::Relaxed);
        if q.ready.len() > q.parked && q.alive < d.max {
            q.alive += 1;
            hub.load.workers.store(q.alive, Ordering::Relaxed);
            drop(q);
            Dispatch::spawn(hub, None);
        }
    }

    /// Starts a worker (its place is already counted in `alive`).
    fn spawn(hub: &Arc<Hub>, first: Option<Ready>) {
        let worker = hub.clone();
        let spawned = std::thread::Builder::new()
            .name("worker".into())
            .stack_size(STACK_SIZE)
            .spawn(move || work(&worker, first));
        if let Err(e) = spawned {
            // A connection given to it went with the closure: it is closed.
            log::error!("cannot start a worker thread: {e}");
            let mut q = hub.dispatch.lock();
            q.alive -= 1;
            hub.load.workers.store(q.alive, Ordering::Relaxed);
        }
    }

    /// Queued connections that have waited since before `cutoff`, oldest first.
    pub(super) fn expired(hub: &Hub, cutoff: Instant) -> Vec<Ready> {
        let mut q = hub.dispatch.lock();
        let mut out = Vec::new();
        while q.ready.front().is_some_and(|r| r.queued < cutoff) {
            out.extend(q.ready.pop_front());
        }
        hub.load.queued.store(q.ready.len(), Ordering::Relaxed);
        out
    }

    /// The next connection for a parked worker, or `None` when it should exit.
    fn next(hub: &Hub) -> Option<Ready> {
        let d = &hub.dispatch;
        let mut q = d.lock();
        loop {
            if let Some(r) = q.ready.pop_front() {
                hub.load.queued.store(q.ready.len(), Ordering::Relaxed);
                return Some(r);
            }
            q.parked += 1;
            let (guard, waited) = d
                .wake
                .wait_timeout(q, KEEP_IDLE)
                .unwrap_or_else(|p| p.into_inner());
            q = guard;
            q.parked -= 1;
            if waited.timed_out() && q.ready.is_empty() {
                q.alive -= 1;
                hub.load.workers.store(q.alive, Ordering::Relaxed);
                return None;
            }
        }
    }
}

/// A worker: serves `first`, then whatever is queued, until idle for `KEEP_IDLE`, or until a
/// connection it serves becomes a tunnel: the thread then belongs to the tunnel and ends with
/// it, and no longer counts as a worker.
fn work(hub: &Arc<Hub>, first: Option<Ready>) {
    let mut job = first.or_else(|| Dispatch::next(hub));
    while let Some(r) = job {
        hub.load.busy_workers.fetch_add(1, Ordering::Relaxed);
        let tunnel = Cell::new(false);
        let on_tunnel = || {
            if !tunnel.replace(true) {
                Dispatch::leave(hub);
            }
        };
        // A panic (logged by the hook) ends the connection, not the worker.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::connection::serve(hub, r, &on_tunnel)
        }));
        if tunnel.get() {
            return;
        }
        hub.load.busy_workers.fetch_sub(1, Ordering::Relaxed);
        job = Dispatch::next(hub);
    }
}
