//! Admission decisions, as pure functions of counts, limits and time: whether a new
//! connection is taken, and how long a waiting connection may wait in each stage (shorter
//! while the proxy is busy).

use std::time::{Duration, Instant};

use crate::base::client::{ClientKey, Tally};
use crate::base::load::Cut;
use crate::config::Limits;

/// Open connections per client (those that have not shown the token).
#[derive(Debug, Default)]
pub(crate) struct PerClient(Tally);

impl PerClient {
    /// Takes a connection for `key` unless the caps forbid it. `open` is the number of open
    /// connections before this one.
    pub(crate) fn admit(&mut self, key: ClientKey, open: usize, l: &Limits) -> Result<(), Cut> {
        if open >= l.max_connections {
            return Err(Cut::ConnectionCap);
        }
        match self.0.take(key, l.max_connections_per_ip) {
            true => Ok(()),
            false => Err(Cut::ClientCap),
        }
    }

    /// A connection of `key` closed (or showed the token).
    pub(crate) fn release(&mut self, key: ClientKey) {
        self.0.give(key);
    }
}

/// Where a waiting connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Accepted, nothing received yet.
    New,
    /// TLS handshake under way.
    Handshake,
    /// A request head is arriving; its first byte came at the stage's start.
    Head,
    /// Between two requests on a keep-alive connection.
    Idle,
    /// Answered and closing: reading and dropping what the client still sends.
    Linger,
}

/// How long a closing connection is read from before it is closed.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and dropped while lingering.
pub(crate) const LINGER_BYTES: usize = 1 << 20;

/// Is the proxy busy, so that waiting connections get the short timeouts? Above half the
/// connection cap: a flood of idle connections then turns over fast enough that the cap is
/// not reached, while a calm proxy keeps its keep-alive connections as long as clients like.
pub(crate) fn busy(open: usize, l: &Limits) -> bool {
    open.saturating_mul(2) > l.max_connections
}

/// When a connection that entered `stage` at `since` must have moved on.
pub(crate) fn deadline(stage: Stage, since: Instant, open: usize, l: &Limits) -> Instant {
    let busy = busy(open, l);
    let wait = match stage {
        Stage::New | Stage::Handshake if busy => {
            l.first_byte_timeout.min(l.keep_alive_timeout_busy)
        }
        Stage::New | Stage::Handshake => l.first_byte_timeout,
        Stage::Head => l.head_timeout,
        Stage::Idle if busy => l.keep_alive_timeout_busy,
        Stage::Idle => l.keep_alive_timeout,
        Stage::Linger => LINGER,
    };
    since + wait
}

/// What a connection cut at its deadline in `stage` counts as.
pub(crate) fn cut_of(stage: Stage) -> Option<Cut> {
    match stage {
        Stage::New => Some(Cut::FirstByte),
        Stage::Handshake => Some(Cut::Handshake),
        Stage::Head => Some(Cut::Head),
        Stage::Idle => Some(Cut::KeepAlive),
        Stage::Linger => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 100,
            max_connections_per_ip: 3,
            ..Limits::default()
        }
    }

    #[test]
    fn caps_refuse_per_client_and_in_total_and_free_on_release() {
        let l = limits();
        let mut pc = PerClient::default();
        let me = ClientKey::of("10.0.0.1".parse().unwrap());
        let other = ClientKey::of("10.0.0.2".parse().unwrap());
        for open in 0..3 {
            assert_eq!(pc.admit(me, open, &l), Ok(()));
        }
        assert_eq!(pc.admit(me, 3, &l), Err(Cut::ClientCap));
        assert_eq!(pc.admit(other, 3, &l), Ok(()));
        assert_eq!(pc.admit(other, 100, &l), Err(Cut::ConnectionCap));
        pc.release(me);
        assert_eq!(pc.0.count(me), 2);
        assert_eq!(pc.admit(me, 4, &l), Ok(()));
        for _ in 0..3 {
            pc.release(me);
        }
        pc.release(other);
        assert!(
            pc.0.is_empty(),
            "nothing is kept for clients without connections"
        );
    }

    #[test]
    fn deadlines_shrink_when_busy() {
        let l = limits();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(deadline(Stage::Idle, t0, 10, &l), t0 + s(60));
        assert_eq!(deadline(Stage::Idle, t0, 51, &l), t0 + s(5));
        assert_eq!(deadline(Stage::New, t0, 10, &l), t0 + s(5));
        let slow_first = Limits {
            first_byte_timeout: s(20),
            ..l
        };
        assert_eq!(
            deadline(Stage::New, t0, 51, &slow_first),
            t0 + s(5),
            "shorter when busy"
        );
        assert_eq!(deadline(Stage::Handshake, t0, 10, &slow_first), t0 + s(20));
        // A head's deadline runs from its first byte, busy or not: it cannot be stretched.
        assert_eq!(deadline(Stage::Head, t0, 10, &l), t0 + s(10));
        assert_eq!(deadline(Stage::Head, t0, 99, &l), t0 + s(10));
        assert_eq!(deadline(Stage::Linger, t0, 99, &l), t0 + LINGER);
        assert!(!busy(50, &l) && busy(51, &l));
        assert_eq!(cut_of(Stage::Idle), Some(Cut::KeepAlive));
        assert_eq!(cut_of(Stage::Linger), None);
    }
}
