//! The credential check: the bearer token, or the session cookie that stands in for it once
//! a browser has logged in. Every wrong credential goes through the guard (guessing is slow
//! on every path); a locked-out address is answered 429 without a check. Constant-time
//! comparison; the token is never logged. Which paths need no token is `endpoints::Access`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use crate::base::client::ClientKey;
use crate::endpoints::login::COOKIE;
use crate::http::Header;
use crate::http::cookie::find_cookie;

use super::guard::{Guard, Judgement};
use super::sessions::{Lookup, Sessions};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    Missing,
    Malformed,
    Wrong,
    /// The session cookie names no live session (logged out, expired, from before a restart).
    Ended,
    /// Too many wrong credentials from this address (or everywhere): come back later.
    Wait(Duration),
}

impl Denied {
    pub(super) fn detail(self) -> &'static str {
        match self {
            Denied::Missing => "missing Authorization: Bearer header",
            Denied::Malformed => "Authorization header is not a single Bearer token",
            Denied::Wrong => "wrong bearer token",
            Denied::Ended => "the login session has ended: log in again at /proxy/login",
            Denied::Wait(_) => "too many wrong credentials from this address: try again later",
        }
    }
}

/// How a request showed its right to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Passed {
    Bearer,
    Cookie,
}

/// A credential as the request carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential<'a> {
    Bearer(&'a [u8]),
    Cookie(&'a [u8]),
}

/// Finds the request's credential: the `Authorization` header (exactly one, scheme `Bearer`
/// in any case, then the token), or, without that header, the session cookie.
fn credential(headers: &[Header]) -> Result<Credential<'_>, Denied> {
    let mut found = headers.iter().filter(|h| h.is("authorization"));
    let Some(h) = found.next() else {
        let cookies = headers.iter().filter(|h| h.is("cookie")).map(|h| h.value());
        return match find_cookie(cookies, COOKIE) {
            Some(v) => Ok(Credential::Cookie(v)),
            None => Err(Denied::Missing),
        };
    };
    if found.next().is_some() {
        return Err(Denied::Malformed);
    }
    let v = h.value();
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return Err(Denied::Malformed);
    }
    Ok(Credential::Bearer(&v[7..]))
}

/// The client's own `Authorization` value, passed on to a public service: the one such
/// header, unless it carries the proxy's token anywhere (then none: the token never leaves
/// the proxy).
pub(super) fn own_authorization<'a>(headers: &'a [Header], token: &str) -> Option<&'a [u8]> {
    let mut found = headers.iter().filter(|h| h.is("authorization"));
    let v = found.next()?.value();
    let carries = |v: &[u8]| v.windows(token.len()).any(|w| w == token.as_bytes());
    match found.next() {
        None if !token.is_empty() && !carries(v) => Some(v),
        _ => None,
    }
}

/// Wrong credentials and refusals, by path, for metrics.
#[derive(Debug, Default)]
pub(super) struct Failures {
    pub header: AtomicU64,
    pub cookie: AtomicU64,
    pub form: AtomicU64,
    /// Answered 429 without a check.
    pub throttled: AtomicU64,
}

/// What the check needs besides the request.
pub(super) struct Gate<'a> {
    pub token: &'a str,
    pub sessions: &'a Sessions,
    pub guard: &'a Guard,
    pub failures: &'a Failures,
}

/// When a credential is checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub client: ClientKey,
    pub now: Instant,
    pub wall: SystemTime,
}

impl Gate<'_> {
    /// Checks the request's credential (see the module documentation). A live session passes
    /// even from an address that must wait: its identifier cannot be guessed, so letting it
    /// through tells a guesser nothing, and a user behind the guesser's address is not locked
    /// out. It does not clear the address's record either: only the token does.
    pub(super) fn check(&self, headers: &[Header], at: At) -> Result<Passed, Denied> {
        match credential(headers)? {
            Credential::Cookie(v) => match self.sessions.lookup(v, at.wall) {
                Lookup::Live => Ok(Passed::Cookie),
                // Known to be wrong already: answering so tells nobody anything new.
                Lookup::Unknown(digest) if self.guard.cookie_counted(&digest) => Err(Denied::Ended),
                Lookup::Unknown(digest) => match self.judged(false, at, &self.failures.cookie) {
                    Err(Denied::Wait(d)) => Err(Denied::Wait(d)),
                    _ => {
                        self.guard.count_cookie(digest);
                        Err(Denied::Ended)
                    }
                },
            },
            Credential::Bearer(v) => {
                self.token(v, at, &self.failures.header)?;
                Ok(Passed::Bearer)
            }
        }
    }

    /// Checks a token from the header or the login form; `count` counts it when wrong.
    pub(super) fn token(&self, given: &[u8], at: At, count: &AtomicU64) -> Result<(), Denied> {
        self.judged(token_matches(given, self.token), at, count)
    }

    /// The guard's judgement of a credential that is `right` or not.
    fn judged(&self, right: bool, at: At, count: &AtomicU64) -> Result<(), Denied> {
        match self.guard.judge(at.client, at.now, right) {
            Judgement::Pass => Ok(()),
            Judgement::Fail => {
                count.fetch_add(1, Relaxed);
                Err(Denied::Wrong)
            }
            Judgement::Wait(d) => {
                self.failures.throttled.fetch_add(1, Relaxed);
                Err(Denied::Wait(d))
            }
        }
    }
}

/// Is `given` (surrounding blanks ignored) the token?
pub(super) fn token_matches(given: &[u8], token: &str) -> bool {
    constant_time_eq(given.trim_ascii(), token.as_bytes())
}

/// Compares without an early exit on the first differing byte (ring's own compare is
/// deprecated for outside use). The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(!x);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef-token";
    const DAY: Duration = Duration::from_secs(86_400);

    struct World {
        sessions: Sessions,
        guard: Guard,
        failures: Failures,
        t0: Instant,
    }

    impl World {
        fn new() -> World {
            let t0 = Instant::now();
            World {
                sessions: Sessions::default(),
                guard: Guard::new(t0),
                failures: Failures::default(),
                t0,
            }
        }

        fn gate(&self) -> Gate<'_> {
            Gate {
                token: T,
                sessions: &self.sessions,
                guard: &self.guard,
                failures: &self.failures,
            }
        }

        /// A check from `ip`, `later` after the start, with the wall clock at `wall`.
        fn check_at(
            &self,
            hs: &[Header],
            ip: &str,
            later: Duration,
            wall: SystemTime,
        ) -> Result<Passed, Denied> {
            let at = At {
                client: ClientKey::of(ip.parse().unwrap()),
                now: self.t0 + later,
                wall,
            };
            self.gate().check(hs, at)
        }

        fn check(&self, hs: &[Header]) -> Result<Passed, Denied> {
            // Each check from its own address, so that the guard stays out of the way.
            let n = self.failures.header.load(Relaxed) + self.failures.cookie.load(Relaxed);
            self.check_at(
                hs,
                &format!("10.1.{}.{}", n / 250, n % 250 + 1),
                Duration::ZERO,
                SystemTime::now(),
            )
        }

        fn auth(&self, v: &str) -> Result<Passed, Denied> {
            self.check(&[Header::new("Authorization", v)])
        }
    }

    fn cookie(v: &str) -> Vec<Header> {
        vec![Header::new("Cookie", format!("a=b; wakeproxy_session={v}"))]
    }

    #[test]
    fn accepts_scheme_in_any_case() {
        let w = World::new();
        assert_eq!(w.auth(&format!("Bearer {T}")), Ok(Passed::Bearer));
        assert_eq!(w.auth(&format!("bearer {T}")), Ok(Passed::Bearer));
        assert_eq!(w.auth(&format!("BEARER {T} ")), Ok(Passed::Bearer));
        let lower = vec![Header::new("authorization", format!("Bearer {T}"))];
        assert_eq!(w.check(&lower), Ok(Passed::Bearer));
    }

    #[test]
    fn refuses_everything_else() {
        let w = World::new();
        assert_eq!(w.check(&[]), Err(Denied::Missing));
        assert_eq!(w.auth(T), Err(Denied::Malformed));
        assert_eq!(w.auth(&format!("Basic {T}")), Err(Denied::Malformed));
        assert_eq!(w.auth("Bearer"), Err(Denied::Malformed));
        assert_eq!(w.auth("Bearer wrong"), Err(Denied::Wrong));
        assert_eq!(w.auth(&format!("Bearer {T}x")), Err(Denied::Wrong));
        assert_eq!(
            w.auth(&format!("Bearer {}", &T[..T.len() - 1])),
            Err(Denied::Wrong)
        );
        assert_eq!(w.auth("Bearer "), Err(Denied::Wrong));
        let two = vec![
            Header::new("Authorization", format!("Bearer {T}")),
            Header::new("Authorization", format!("Bearer {T}")),
        ];
        assert_eq!(w.check(&two), Err(Denied::Malformed));
        assert_eq!(w.failures.header.load(Relaxed), 4);
    }

    #[test]
    fn a_live_session_stands_in_for_the_header_and_nothing_else_does() {
        let w = World::new();
        let now = SystemTime::now();
        let live = w.sessions.open(now, 7 * DAY);
        assert_eq!(w.check(&cookie(&live)), Ok(Passed::Cookie));
        assert_eq!(w.check(&cookie("nope")), Err(Denied::Ended));
        assert_eq!(
            w.check(&cookie(T)),
            Err(Denied::Ended),
            "the raw token is no cookie"
        );
        // The old scheme's value, computable from the token alone.
        let old = ring::digest::digest(
            &ring::digest::SHA256,
            format!("wakeproxy-session-v1:{T}").as_bytes(),
        );
        let old: String = old.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(w.check(&cookie(&old)), Err(Denied::Ended));
        assert_eq!(
            w.check(&[Header::new("Cookie", "a=b")]),
            Err(Denied::Missing)
        );
    }

    #[test]
    fn a_session_past_its_server_side_expiry_or_logged_out_is_refused() {
        let w = World::new();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let s = w.sessions.open(t, 7 * DAY);
        let at = |wall| w.check_at(&cookie(&s), "10.2.0.1", Duration::ZERO, wall);
        assert_eq!(at(t + 6 * DAY), Ok(Passed::Cookie));
        assert_eq!(at(t + 7 * DAY), Err(Denied::Ended));
        let s2 = w.sessions.open(t, 7 * DAY);
        w.sessions.end(s2.as_bytes());
        assert_eq!(
            w.check_at(&cookie(&s2), "10.2.0.2", Duration::ZERO, t),
            Err(Denied::Ended)
        );
    }

    #[test]
    fn wrong_credentials_lock_the_address_out_but_not_a_live_session() {
        let w = World::new();
        let ip = "10.3.0.1";
        let zero = Duration::ZERO;
        let now = SystemTime::now();
        let bearer = |v: &str| vec![Header::new("Authorization", format!("Bearer {v}"))];
        for _ in 0..=super::super::guard::FREE {
            let wrong = w.check_at(&bearer("guess"), ip, zero, now);
            assert_eq!(wrong, Err(Denied::Wrong));
        }
        let locked = w.check_at(&bearer(T), ip, zero, now);
        assert!(
            matches!(locked, Err(Denied::Wait(_))),
            "not even checked: {locked:?}"
        );
        assert_eq!(w.failures.throttled.load(Relaxed), 1);
        let live = w.sessions.open(now, DAY);
        assert_eq!(
            w.check_at(&cookie(&live), ip, zero, now),
            Ok(Passed::Cookie)
        );
        assert!(
            matches!(w.check_at(&bearer(T), ip, zero, now), Err(Denied::Wait(_))),
            "a session does not unlock the address for guesses"
        );
        let later = Duration::from_secs(1);
        assert_eq!(w.check_at(&bearer(T), ip, later, now), Ok(Passed::Bearer));
        assert_eq!(w.failures.header.load(Relaxed), 4);
        assert_eq!(
            w.check_at(&bearer(T), "10.3.0.2", zero, now),
            Ok(Passed::Bearer),
            "another address is not touched"
        );
    }

    #[test]
    fn a_form_token_is_checked_like_the_header() {
        assert!(token_matches(T.as_bytes(), T));
        assert!(token_matches(format!(" {T}\n").as_bytes(), T));
        assert!(!token_matches(b"", T));
        assert!(!token_matches(&T.as_bytes()[1..], T));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(b"a", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_public_service_gets_the_clients_own_authorization_never_the_token() {
        let one = |v: &str| vec![Header::new("X-A", "1"), Header::new("authorization", v)];
        let basic = one("Basic dXNlcjpwdw==");
        assert_eq!(
            own_authorization(&basic, T),
            Some(&b"Basic dXNlcjpwdw=="[..])
        );
        assert_eq!(own_authorization(&one(&format!("Bearer {T}")), T), None);
        assert_eq!(own_authorization(&one(&format!("Token x{T}y")), T), None);
        assert_eq!(own_authorization(&[Header::new("X-A", "1")], T), None);
        let two = [
            Header::new("Authorization", "Basic a"),
            Header::new("Authorization", "Basic b"),
        ];
        assert_eq!(own_authorization(&two, T), None, "two headers: which? none");
    }
}
