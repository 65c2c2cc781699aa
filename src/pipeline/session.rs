//! What stands in for the token once a browser has logged in: the session cookie's value, and
//! the per-client delay after wrong tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::base::client::{ClientKey, Tally};

/// Login forms being read, per client, each client with a cap: a form comes from a client that
/// has not shown the token yet.
#[derive(Default)]
pub(super) struct Logins(Mutex<Tally>);

/// One login form under way; dropping it ends it.
pub(super) struct Login<'a> {
    logins: &'a Logins,
    key: ClientKey,
}

impl Logins {
    /// Starts a login form from `ip`, unless it has `max` under way.
    pub(super) fn enter(&self, ip: IpAddr, max: usize) -> Option<Login<'_>> {
        let key = ClientKey::of(ip);
        self.0
            .lock()
            .take(key, max)
            .then_some(Login { logins: self, key })
    }
}

impl Drop for Login<'_> {
    fn drop(&mut self) {
        self.logins.0.lock().give(self.key);
    }
}

/// Wrong-token delays are forgotten after this long without a failure.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The cookie value for `token`: a digest, so the raw token is never stored in a browser.
pub(super) fn cookie_value(token: &str) -> String {
    let d = Sha256::digest(format!("wakeproxy-session-v1:{token}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Per-client delays after wrong tokens: 250 ms, doubling per failure, at most 5 s.
#[derive(Default)]
pub(super) struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// Records a failure from `ip` at `now` and returns how long to hold the answer.
    pub(super) fn fail(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut map = self.failures.lock();
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| now.saturating_duration_since(*t) < FORGET_AFTER);
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(e.1) > FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        Duration::from_millis(250u64.saturating_mul(1 << (e.0 - 1).min(5)))
            .min(Duration::from_secs(5))
    }

    /// A successful login clears the client's record.
    pub(super) fn succeed(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_value_hides_the_token() {
        let v = cookie_value("secret-token-0123456789");
        assert_eq!(v.len(), 64);
        assert!(!v.contains("secret"));
        assert_eq!(v, cookie_value("secret-token-0123456789"));
        assert_ne!(v, cookie_value("secret-token-0123456780"));
    }

    #[test]
    fn throttle_grows_and_resets() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.fail(ip, now), Duration::from_millis(250));
        assert_eq!(t.fail(ip, now), Duration::from_millis(500));
        for _ in 0..10 {
            t.fail(ip, now);
        }
        assert_eq!(t.fail(ip, now), Duration::from_secs(5));
        assert_eq!(
            t.fail(ip, now + Duration::from_secs(3600)),
            Duration::from_millis(250),
            "forgotten after a while"
        );
        t.succeed(ip);
        assert_eq!(
            t.fail("10.0.0.2".parse().unwrap(), now),
            Duration::from_millis(250)
        );
    }
}
