//! The bearer-token check: whether a request carries the token (or the login cookie that
//! stands in for it). Constant-time comparison; the token is never logged. Which paths need
//! no token is `endpoints::Access`.

use crate::endpoints::login::COOKIE;
use crate::http::Header;
use crate::http::cookie::find_cookie;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    Missing,
    Malformed,
    Wrong,
}

impl Denied {
    pub(super) fn detail(self) -> &'static str {
        match self {
            Denied::Missing => "missing Authorization: Bearer header",
            Denied::Malformed => "Authorization header is not a single Bearer token",
            Denied::Wrong => "wrong bearer token",
        }
    }
}

/// Checks the request's credentials: the `Authorization` header against `token` (exactly one
/// header, scheme `Bearer` in any case, then the token), or, without that header, the login
/// cookie against `cookie` (see `login`).
pub(super) fn check(headers: &[Header], token: &str, cookie: &str) -> Result<(), Denied> {
    let mut found = headers.iter().filter(|h| h.is("authorization"));
    let Some(h) = found.next() else {
        let cookies = headers.iter().filter(|h| h.is("cookie")).map(|h| h.value());
        return match find_cookie(cookies, COOKIE) {
            Some(v) if constant_time_eq(v, cookie.as_bytes()) => Ok(()),
            Some(_) => Err(Denied::Wrong),
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
    match token_matches(&v[7..], token) {
        true => Ok(()),
        false => Err(Denied::Wrong),
    }
}

/// Is `given` (surrounding blanks ignored) the token?
pub(super) fn token_matches(given: &[u8], token: &str) -> bool {
    constant_time_eq(given.trim_ascii(), token.as_bytes())
}

/// Compares without an early exit on the first differing byte. The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef-token";

    const C: &str = "cookie-value";

    fn auth(v: &str) -> Result<(), Denied> {
        check(&[Header::new("Authorization", v)], T, C)
    }

    #[test]
    fn accepts_scheme_in_any_case() {
        assert_eq!(auth(&format!("Bearer {T}")), Ok(()));
        assert_eq!(auth(&format!("bearer {T}")), Ok(()));
        assert_eq!(auth(&format!("BEARER {T} ")), Ok(()));
        let lower = vec![Header::new("authorization", format!("Bearer {T}"))];
        assert_eq!(check(&lower, T, C), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(check(&[], T, C), Err(Denied::Missing));
        assert_eq!(auth(T), Err(Denied::Malformed));
        assert_eq!(auth(&format!("Basic {T}")), Err(Denied::Malformed));
        assert_eq!(auth("Bearer"), Err(Denied::Malformed));
        assert_eq!(auth("Bearer wrong"), Err(Denied::Wrong));
        assert_eq!(auth(&format!("Bearer {T}x")), Err(Denied::Wrong));
        assert_eq!(
            auth(&format!("Bearer {}", &T[..T.len() - 1])),
            Err(Denied::Wrong)
        );
        assert_eq!(auth("Bearer "), Err(Denied::Wrong));
        let two = vec![
            Header::new("Authorization", format!("Bearer {T}")),
            Header::new("Authorization", format!("Bearer {T}")),
        ];
        assert_eq!(check(&two, T, C), Err(Denied::Malformed));
    }

    #[test]
    fn the_login_cookie_stands_in_for_the_header() {
        let ok = vec![Header::new("Cookie", format!("a=b; wakeproxy_session={C}"))];
        assert_eq!(check(&ok, T, C), Ok(()));
        let wrong = vec![Header::new("Cookie", "wakeproxy_session=nope")];
        assert_eq!(check(&wrong, T, C), Err(Denied::Wrong));
        let raw_token = vec![Header::new("Cookie", format!("wakeproxy_session={T}"))];
        assert_eq!(
            check(&raw_token, T, C),
            Err(Denied::Wrong),
            "the raw token is not a cookie value"
        );
        let other = vec![Header::new("Cookie", "a=b")];
        assert_eq!(check(&other, T, C), Err(Denied::Missing));
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
}
