//! Per-service activity: requests in flight, open streams, last access and the moment the
//! service last became idle. The idle reaper reads this; the request path writes it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;

/// Activity counters of one service.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    times: Mutex<Times>,
}

#[derive(Debug, Clone, Copy)]
struct Times {
    /// Wall-clock time of the last request's start (for status).
    last_access: Option<SystemTime>,
    /// When the service last had any activity (request start or end).
    last_activity: Instant,
}

/// Held while a request is in flight (including a response still streaming).
pub(crate) struct InFlight<'a> {
    activity: &'a Activity,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.activity.times.lock().last_activity = Instant::now();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    pub(crate) fn new(now: Instant) -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            times: Mutex::new(Times {
                last_access: None,
                last_activity: now,
            }),
        }
    }

    /// Records the start of a request; the returned guard ends it.
    pub(crate) fn begin(&self, wall: SystemTime, now: Instant) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut t = self.times.lock();
        t.last_access = Some(wall);
        t.last_activity = now;
        InFlight { activity: self }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn last_access(&self) -> Option<SystemTime> {
        self.times.lock().last_access
    }

    /// Marks activity now without a request (e.g. a service just became ready).
    pub(crate) fn touch(&self, now: Instant) {
        self.times.lock().last_activity = now;
    }

    /// How long the service has been idle at `now`: `None` while anything is in flight.
    pub(crate) fn idle_for(&self, now: Instant) -> Option<std::time::Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        Some(now.saturating_duration_since(self.times.lock().last_activity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_only_when_nothing_in_flight() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        assert_eq!(
            a.idle_for(t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        let g = a.begin(SystemTime::now(), t0 + Duration::from_secs(6));
        assert_eq!(a.in_flight(), 1);
        assert_eq!(a.idle_for(t0 + Duration::from_secs(600)), None);
        drop(g);
        assert_eq!(a.in_flight(), 0);
        let idle = a.idle_for(Instant::now() + Duration::from_secs(1)).unwrap();
        assert!(idle >= Duration::from_secs(1) && idle < Duration::from_secs(2));
        assert_eq!(a.requests(), 1);
        assert!(a.last_access().is_some());
    }
}
