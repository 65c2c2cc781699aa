//! Login sessions: what a browser's cookie stands for once its user has shown the token.
//! A session is 256 bits from the system's random generator, nothing derived from the token,
//! so it cannot be computed offline and two deployments never share one. The cookie holds the
//! identifier; this store holds only its SHA-256 digest and its expiry, which the server
//! enforces whatever the browser does. Logout ends one session; a new token ends them all.
//! Sessions live in this process: a restart ends them (documented in the README).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// Sessions kept at most; past this, the one closest to its expiry goes first.
const MAX_SESSIONS: usize = 10_000;

/// What a cookie value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A live session.
    Live,
    /// Well formed, but no live session has it (ended, expired, from before a restart, or
    /// made up): its digest, to count it once.
    Unknown([u8; 32]),
}

/// The live sessions: digest of the identifier → expiry.
pub(crate) struct Sessions {
    live: Mutex<HashMap<[u8; 32], SystemTime>>,
    random: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions {
            live: Mutex::default(),
            random: SystemRandom::new(),
        }
    }
}

impl Sessions {
    /// Opens a session at `now` lasting `lifetime`; returns the cookie value.
    pub(crate) fn open(&self, now: SystemTime, lifetime: Duration) -> String {
        let mut id = [0u8; 32];
        self.random
            .fill(&mut id)
            .expect("the system's random generator failed");
        let value: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut live = self.live.lock();
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, expires| *expires > now);
        }
        if live.len() >= MAX_SESSIONS
            && let Some(first) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&first);
        }
        live.insert(key(value.as_bytes()), now + lifetime);
        value
    }

    /// What `cookie` stands for at `now`. An expired session is ended on the way.
    pub(crate) fn lookup(&self, cookie: &[u8], now: SystemTime) -> Lookup {
        let k = key(cookie);
        let mut live = self.live.lock();
        match live.get(&k) {
            Some(expires) if *expires > now => Lookup::Live,
            Some(_) => {
                live.remove(&k);
                Lookup::Unknown(k)
            }
            None => Lookup::Unknown(k),
        }
    }

    /// Ends the session of `cookie` (logout).
    pub(crate) fn end(&self, cookie: &[u8]) {
        self.live.lock().remove(&key(cookie));
    }

    /// Ends every session (the token changed).
    pub(crate) fn end_all(&self) {
        self.live.lock().clear();
    }

    /// Live sessions (expired ones not yet noticed included).
    pub(crate) fn count(&self) -> usize {
        self.live.lock().len()
    }
}

/// The store's key for a cookie value: its digest, so neither the map's hashing nor its
/// comparisons ever work on the secret itself.
fn key(cookie: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(digest(&SHA256, cookie).as_ref());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_session_is_random_and_lives_until_its_expiry() {
        let s = Sessions::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = s.open(t0, 7 * DAY);
        let b = s.open(t0, 7 * DAY);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(s.lookup(a.as_bytes(), t0), Lookup::Live);
        assert_eq!(s.lookup(a.as_bytes(), t0 + 7 * DAY - DAY), Lookup::Live);
        assert!(matches!(
            s.lookup(a.as_bytes(), t0 + 7 * DAY),
            Lookup::Unknown(_)
        ));
        assert!(
            matches!(s.lookup(a.as_bytes(), t0), Lookup::Unknown(_)),
            "an expired session is gone, even for a clock set back"
        );
        assert_eq!(s.lookup(b.as_bytes(), t0), Lookup::Live);
    }

    #[test]
    fn logout_ends_one_session_and_a_new_token_ends_all() {
        let s = Sessions::default();
        let t0 = SystemTime::now();
        let a = s.open(t0, DAY);
        let b = s.open(t0, DAY);
        let c = s.open(t0, DAY);
        s.end(a.as_bytes());
        assert!(matches!(s.lookup(a.as_bytes(), t0), Lookup::Unknown(_)));
        assert_eq!(s.lookup(b.as_bytes(), t0), Lookup::Live);
        s.end_all();
        assert!(matches!(s.lookup(b.as_bytes(), t0), Lookup::Unknown(_)));
        assert!(matches!(s.lookup(c.as_bytes(), t0), Lookup::Unknown(_)));
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn a_made_up_value_is_unknown() {
        let s = Sessions::default();
        let made_up = "0".repeat(64);
        assert_eq!(
            s.lookup(made_up.as_bytes(), SystemTime::now()),
            Lookup::Unknown(key(made_up.as_bytes()))
        );
    }

    #[test]
    fn the_store_stays_bounded() {
        let s = Sessions::default();
        let t0 = SystemTime::now();
        let first = s.open(t0, DAY);
        for i in 0..MAX_SESSIONS {
            s.open(t0, DAY + Duration::from_secs(i as u64 + 1));
        }
        assert_eq!(s.count(), MAX_SESSIONS);
        assert!(
            matches!(s.lookup(first.as_bytes(), t0), Lookup::Unknown(_)),
            "the one closest to its expiry went"
        );
    }
}
