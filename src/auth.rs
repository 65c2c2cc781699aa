//! The bearer-token check: which paths are exempt and whether a request carries the token.
//! Constant-time comparison; the token is never logged.

use crate::http::Header;

/// Paths that need no token: the health check and ACME http-01 challenges.
pub fn is_exempt(path: &str) -> bool {
    path == "/proxy/healthz" || path.starts_with("/.well-known/acme-challenge/")
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Malformed,
    Wrong,
}

impl Denied {
    pub fn detail(self) -> &'static str {
        match self {
            Denied::Missing => "missing Authorization: Bearer header",
            Denied::Malformed => "Authorization header is not a single Bearer token",
            Denied::Wrong => "wrong bearer token",
        }
    }
}

/// Checks the request's `Authorization` header against `token`. Exactly one header, scheme
/// `Bearer` in any case, then the token.
pub fn check(headers: &[Header], token: &str) -> Result<(), Denied> {
    let mut found = headers.iter().filter(|h| h.is("authorization"));
    let h = found.next().ok_or(Denied::Missing)?;
    if found.next().is_some() {
        return Err(Denied::Malformed);
    }
    let v = h.value.as_slice();
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return Err(Denied::Malformed);
    }
    let given = v[7..].trim_ascii();
    if constant_time_eq(given, token.as_bytes()) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
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

    fn auth(v: &str) -> Result<(), Denied> {
        check(&[Header::new("Authorization", v)], T)
    }

    #[test]
    fn accepts_scheme_in_any_case() {
        assert_eq!(auth(&format!("Bearer {T}")), Ok(()));
        assert_eq!(auth(&format!("bearer {T}")), Ok(()));
        assert_eq!(auth(&format!("BEARER {T} ")), Ok(()));
        let lower = vec![Header::new("authorization", format!("Bearer {T}"))];
        assert_eq!(check(&lower, T), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(check(&[], T), Err(Denied::Missing));
        assert_eq!(auth(T), Err(Denied::Malformed));
        assert_eq!(auth(&format!("Basic {T}")), Err(Denied::Malformed));
        assert_eq!(auth("Bearer"), Err(Denied::Malformed));
        assert_eq!(auth("Bearer wrong"), Err(Denied::Wrong));
        assert_eq!(auth(&format!("Bearer {T}x")), Err(Denied::Wrong));
        assert_eq!(auth(&format!("Bearer {}", &T[..T.len() - 1])), Err(Denied::Wrong));
        assert_eq!(auth("Bearer "), Err(Denied::Wrong));
        let two = vec![
            Header::new("Authorization", format!("Bearer {T}")),
            Header::new("Authorization", format!("Bearer {T}")),
        ];
        assert_eq!(check(&two, T), Err(Denied::Malformed));
    }

    #[test]
    fn exempt_paths() {
        assert!(is_exempt("/proxy/healthz"));
        assert!(is_exempt("/.well-known/acme-challenge/abc"));
        assert!(!is_exempt("/proxy/status"));
        assert!(!is_exempt("/.well-known/other"));
        assert!(!is_exempt("/proxy/healthz/x"));
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
