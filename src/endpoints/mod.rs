//! The proxy's own endpoints under `/proxy/` and `/.well-known/acme-challenge/`: which path is
//! which endpoint and what it takes to reach it, and the answers they make (`acme`, `login`,
//! `status`, `metrics`, and `redirect` for the plain HTTP port while HTTPS is on). Everything
//! here builds a `Reply` from values; reading bodies and checking tokens is the pipeline's.

pub(crate) mod acme;
pub(crate) mod login;
pub(crate) mod metrics;
pub(crate) mod redirect;
pub(crate) mod status;
pub(crate) mod waiting;

use crate::http::Reply;

/// The ACME http-01 challenge prefix (RFC 8555 section 8.3).
pub(crate) const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// One of the proxy's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    /// `/proxy/healthz`: `200 ok` while the proxy runs.
    Healthz,
    /// `/.well-known/acme-challenge/<token>`.
    Acme(&'a str),
    /// `/proxy/login`: the form (GET, HEAD) and the token for a cookie (POST).
    Login,
    /// `/proxy/logout`: clears the cookie.
    Logout,
    /// `/proxy/status`: the state of every service as JSON.
    Status,
    /// `/proxy/metrics`: Prometheus text.
    Metrics,
    /// `/proxy/waking/<service>`: whether a starting service is ready yet (the waiting page
    /// polls it). Needs what the service needs.
    Waking(&'a str),
    /// Any other path under `/proxy/` (404 once authenticated).
    Unknown,
}

/// What a request needs to reach an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Nothing: answered on the plain HTTP port even while it redirects to HTTPS (health
    /// checks and ACME challenges must work before and without HTTPS).
    Open,
    /// No token (this is where a browser gets its session), but HTTPS when it is on.
    SignIn,
    /// The bearer token or the login cookie.
    Token,
}

impl<'a> Endpoint<'a> {
    /// The endpoint `path` names, if it is one of the proxy's own.
    pub(crate) fn find(path: &'a str) -> Option<Endpoint<'a>> {
        if let Some(token) = path.strip_prefix(ACME_PREFIX) {
            return Some(Endpoint::Acme(token));
        }
        let rest = path.strip_prefix("/proxy/")?;
        Some(match rest {
            "healthz" => Endpoint::Healthz,
            "login" => Endpoint::Login,
            "logout" => Endpoint::Logout,
            "status" => Endpoint::Status,
            "metrics" => Endpoint::Metrics,
            _ => match rest.strip_prefix("waking/") {
                Some(name) if !name.is_empty() && !name.contains('/') => Endpoint::Waking(name),
                _ => Endpoint::Unknown,
            },
        })
    }

    pub(crate) fn access(self) -> Access {
        match self {
            Endpoint::Healthz | Endpoint::Acme(_) => Access::Open,
            Endpoint::Login | Endpoint::Logout => Access::SignIn,
            Endpoint::Status | Endpoint::Metrics | Endpoint::Unknown | Endpoint::Waking(_) => {
                Access::Token
            }
        }
    }
}

/// The `/proxy/healthz` header that carries the nonce of this start.
pub(crate) const START_HEADER: &str = "X-Wakeproxy-Start";

/// `/proxy/healthz`: `200 ok`, with the nonce `proxy-daemon start` gave this process (if it
/// did), so that it can tell its proxy from another one answering on the same port.
pub(crate) fn healthz(start_nonce: Option<&str>) -> Reply {
    let reply = Reply::ok("text/plain", b"ok\n".to_vec());
    match start_nonce {
        Some(nonce) => reply.header(START_HEADER, nonce),
        None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_carries_the_start_nonce_when_there_is_one() {
        let text = |r: Reply| String::from_utf8(r.render(true, false)).unwrap();
        let with = text(healthz(Some("1a-2b")));
        assert!(with.starts_with("HTTP/1.1 200"), "{with}");
        assert!(with.contains("\r\nX-Wakeproxy-Start: 1a-2b\r\n"), "{with}");
        assert!(with.ends_with("\r\n\r\nok\n"), "{with}");
        assert!(!text(healthz(None)).contains("X-Wakeproxy-Start"));
    }

    #[test]
    fn paths_name_endpoints_and_their_access() {
        let find = |p| Endpoint::find(p).map(|e| (e, e.access()));
        assert_eq!(
            find("/proxy/healthz"),
            Some((Endpoint::Healthz, Access::Open))
        );
        assert_eq!(
            find("/.well-known/acme-challenge/abc"),
            Some((Endpoint::Acme("abc"), Access::Open))
        );
        assert_eq!(
            find("/proxy/login"),
            Some((Endpoint::Login, Access::SignIn))
        );
        assert_eq!(
            find("/proxy/logout"),
            Some((Endpoint::Logout, Access::SignIn))
        );
        assert_eq!(
            find("/proxy/status"),
            Some((Endpoint::Status, Access::Token))
        );
        assert_eq!(
            find("/proxy/metrics"),
            Some((Endpoint::Metrics, Access::Token))
        );
        assert_eq!(
            find("/proxy/healthz/x"),
            Some((Endpoint::Unknown, Access::Token))
        );
        assert_eq!(find("/proxy/"), Some((Endpoint::Unknown, Access::Token)));
        assert_eq!(
            find("/proxy/waking/wiki"),
            Some((Endpoint::Waking("wiki"), Access::Token))
        );
        assert_eq!(
            find("/proxy/waking/"),
            Some((Endpoint::Unknown, Access::Token))
        );
        assert_eq!(
            find("/proxy/waking/a/b"),
            Some((Endpoint::Unknown, Access::Token))
        );
        for routed in [
            "/proxy",
            "/proxyx/status",
            "/.well-known/other",
            "/",
            "/app/proxy/status",
        ] {
            assert_eq!(Endpoint::find(routed), None, "{routed}");
        }
    }
}
