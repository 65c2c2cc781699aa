//! When a worker lets go of a hot keep-alive connection between two requests, so that the
//! connections waiting for a worker get their turn.
//!
//! A worker keeps a connection whose next request follows at once (see `connection::GRACE`):
//! that saves a hand-off per request. With more hot connections than workers it is unfair:
//! the connections on workers are served again and again while the others wait, in the
//! worker queue or, when the poller thread itself waits for the CPU among hundreds of busy
//! workers, still in the kernel, unseen. Measured with wrk, 1,024 keep-alive connections and
//! 512 workers on one core: p50 22 ms but p99 0.45–1 s and up to 295 wrk timeouts (nginx:
//! p99 95–100 ms, none). Letting go only when heads are queued did not help (p99 1.1–1.4 s):
//! the queue looked empty while the poller could not keep up. So a worker lets go when heads
//! are queued, or when it has held the connection for a quantum while some open connection
//! has no worker: the connection goes back to the poller and comes again behind the others.
//! Workers that let go and find the queue empty sleep, which gives the poller the CPU to find
//! the waiting heads.

use std::time::Duration;

/// How long a worker serves one connection before it lets others go first. Measured at 1,024
/// connections (two 5 s runs each, nginx p99 78–125 ms, 18–21k requests/s): a quantum of 0
/// gave p99 79–90 ms but 15–19k requests/s (a hand-off on every request); 3 ms p99 117–145
/// ms at 22–22.5k requests/s; 10 ms p99 167–246 ms. At 64 connections (fewer than workers)
/// 3 ms let go 673 times in 377,364 requests and changed nothing measurable.
pub(super) const QUANTUM: Duration = Duration::from_millis(3);

/// What a worker knows when an answer has gone out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Turn {
    /// Complete heads waiting for a worker.
    pub(super) queued: usize,
    /// Client connections open.
    pub(super) open: usize,
    /// Workers serving a connection (this one included).
    pub(super) busy: usize,
}

/// True when the worker should give the connection back to the poller now; `held` says how
/// long this worker has had the connection (asked only when it matters: it reads the clock).
pub(super) fn yields(t: Turn, held: impl FnOnce() -> Duration) -> bool {
    t.queued > 0 || (t.open > t.busy && held() >= QUANTUM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yields_after(queued: usize, open: usize, busy: usize, held_ms: u64) -> bool {
        let t = Turn { queued, open, busy };
        yields(t, || Duration::from_millis(held_ms))
    }

    #[test]
    fn queued_heads_go_first() {
        assert!(yields_after(1, 10, 10, 0));
    }

    #[test]
    fn a_connection_keeps_its_worker_within_the_quantum() {
        assert!(!yields_after(0, 2000, 512, 2));
    }

    #[test]
    fn after_the_quantum_it_lets_go_while_connections_have_no_worker() {
        assert!(yields_after(0, 1024, 512, 3));
        assert!(yields_after(0, 513, 512, 50));
    }

    #[test]
    fn with_a_worker_for_every_connection_it_stays() {
        assert!(!yields_after(0, 64, 64, 1000));
        assert!(!yields_after(0, 1, 1, 1000));
    }
}
