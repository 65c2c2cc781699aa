//! How loaded the server is: connection and worker gauges and the counts of connections
//! refused or closed by each limit. The server records them (atomics, no lock); status and
//! metrics read a snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Why the server refused or closed a connection before or between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Refused at accept: `max_connections` open.
    ConnectionCap,
    /// Refused at accept: the client address has `max_connections_per_ip` open.
    ClientCap,
    /// A complete request head waited longer than `worker_queue_timeout` for a worker (503).
    WorkerQueue,
    /// A login form refused: the client address has `max_unauthenticated_per_ip` under way.
    UnauthenticatedCap,
    /// No first byte within the first-byte timeout.
    FirstByte,
    /// The request head did not complete within `head_timeout` of its first byte.
    Head,
    /// The TLS handshake did not complete in time.
    Handshake,
    /// An idle keep-alive connection reached its timeout.
    KeepAlive,
    /// A request body came slower than `min_body_rate`.
    BodyRate,
}

impl Cut {
    pub(crate) const ALL: [Cut; 9] = [
        Cut::ConnectionCap,
        Cut::ClientCap,
        Cut::WorkerQueue,
        Cut::UnauthenticatedCap,
        Cut::FirstByte,
        Cut::Head,
        Cut::Handshake,
        Cut::KeepAlive,
        Cut::BodyRate,
    ];

    /// The label in `/proxy/metrics` and `/proxy/status`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cut::ConnectionCap => "connection_cap",
            Cut::ClientCap => "client_cap",
            Cut::WorkerQueue => "worker_queue",
            Cut::UnauthenticatedCap => "unauthenticated_cap",
            Cut::FirstByte => "first_byte_timeout",
            Cut::Head => "head_timeout",
            Cut::Handshake => "handshake_timeout",
            Cut::KeepAlive => "keep_alive_timeout",
            Cut::BodyRate => "body_rate",
        }
    }

    /// Refused by a cap (as opposed to closed by a deadline).
    pub(crate) fn is_refusal(self) -> bool {
        matches!(
            self,
            Cut::ConnectionCap | Cut::ClientCap | Cut::WorkerQueue | Cut::UnauthenticatedCap
        )
    }
}

/// The server's gauges and counters.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Client connections open.
    pub(crate) open: AtomicUsize,
    /// Connections waiting in the poller (new, idle between requests, head arriving).
    pub(crate) parked: AtomicUsize,
    /// Worker threads alive.
    pub(crate) workers: AtomicUsize,
    /// Worker threads serving a connection now.
    pub(crate) busy_workers: AtomicUsize,
    /// Complete request heads waiting for a worker.
    pub(crate) queued: AtomicUsize,
    /// After an answer on a keep-alive connection: the next request came within the grace
    /// period (the worker went on), or it did not (the connection went back to the poller).
    pub(crate) kept: AtomicU64,
    pub(crate) handed_back: AtomicU64,
    /// After an answer while complete heads waited for a worker: the connection went back to
    /// the poller at once, so the worker took the oldest waiting head instead.
    pub(crate) yielded: AtomicU64,
    cuts: [AtomicU64; 9],
}

/// The figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadSnapshot {
    pub(crate) open: usize,
    pub(crate) parked: usize,
    /// Connections with a request on a worker or queued for one.
    pub(crate) active: usize,
    pub(crate) workers: usize,
    pub(crate) busy_workers: usize,
    pub(crate) queued: usize,
    pub(crate) kept: u64,
    pub(crate) handed_back: u64,
    pub(crate) yielded: u64,
    pub(crate) cuts: Vec<(Cut, u64)>,
}

impl Load {
    pub(crate) fn count(&self, cut: Cut) {
        self.cuts[cut as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LoadSnapshot {
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let (open, parked) = (get(&self.open), get(&self.parked));
        LoadSnapshot {
            open,
            parked,
            active: open.saturating_sub(parked),
            workers: get(&self.workers),
            busy_workers: get(&self.busy_workers),
            queued: get(&self.queued),
            kept: self.kept.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
            yielded: self.yielded.load(Ordering::Relaxed),
            cuts: Cut::ALL
                .iter()
                .map(|&c| (c, self.cuts[c as usize].load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_counted_apart_and_active_is_open_minus_parked() {
        let l = Load::default();
        l.open.store(10, Ordering::Relaxed);
        l.parked.store(7, Ordering::Relaxed);
        l.count(Cut::ClientCap);
        l.count(Cut::ClientCap);
        l.count(Cut::BodyRate);
        let s = l.snapshot();
        assert_eq!((s.open, s.parked, s.active), (10, 7, 3));
        let of = |c| s.cuts.iter().find(|(k, _)| *k == c).unwrap().1;
        assert_eq!(
            (of(Cut::ClientCap), of(Cut::BodyRate), of(Cut::Head)),
            (2, 1, 0)
        );
        assert!(Cut::ClientCap.is_refusal() && !Cut::Head.is_refusal());
        let names: std::collections::HashSet<_> = Cut::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Cut::ALL.len());
    }
}
