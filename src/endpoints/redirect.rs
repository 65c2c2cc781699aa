//! What the plain HTTP port answers while HTTPS is on: the ACME challenges and
//! `/proxy/healthz` as usual, and for everything else, whatever the method, a 308 to the same
//! path and query on `https://<name>` (or 426 when `http_redirect_to_https` is off). The
//! name is one the configuration holds (a service's `host`, or `domain`), never one only the
//! request says, so a forged Host header cannot turn the proxy into an open redirect: the
//! pipeline picks it.

use std::net::Ipv6Addr;

use crate::endpoints::{Access, Endpoint};
use crate::http::Reply;

/// Paths the HTTP port keeps serving itself while HTTPS is on: the open endpoints.
fn exempt(path: &str) -> bool {
    Endpoint::find(path).is_some_and(|e| e.access() == Access::Open)
}

/// `https://<domain>[:<port> unless 443]<path>[?<query>]`. `path` and `query` are passed on
/// raw, as received (already checked to hold no spaces or control characters).
pub(crate) fn https_url(domain: &str, port: u16, path: &str, query: Option<&str>) -> String {
    let host = if domain.parse::<Ipv6Addr>().is_ok() {
        format!("[{domain}]")
    } else {
        domain.to_string()
    };
    let mut url = format!("https://{host}");
    if port != 443 {
        url.push_str(&format!(":{port}"));
    }
    url.push_str(if path.is_empty() { "/" } else { path });
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// How the HTTP port is set up while HTTPS is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortRules<'a> {
    pub redirect: bool,
    /// The configured name to redirect to.
    pub domain: &'a str,
    pub https_port: u16,
}

impl PortRules<'_> {
    /// `None` for the exempt paths (served as usual); otherwise the 308 or 426 to send.
    pub(crate) fn answer(&self, path: &str, query: Option<&str>) -> Option<Reply> {
        if exempt(path) {
            return None;
        }
        let url = https_url(self.domain, self.https_port, path, query);
        if self.redirect {
            let body = format!("Redirecting to {url}\n").into_bytes();
            return Some(
                Reply::new(308, "text/plain; charset=utf-8", body).header("Location", &url),
            );
        }
        let body = serde_json::json!({
            "error": "https required",
            "detail": format!("this proxy answers over HTTPS only: {url}"),
        })
        .to_string()
            + "\n";
        Some(
            Reply::new(426, "application/json", body.into_bytes())
                .header("Upgrade", "TLS/1.3, TLS/1.2, HTTP/1.1"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: PortRules<'static> = PortRules {
        redirect: true,
        domain: "example.com",
        https_port: 443,
    };

    fn text(a: &Reply) -> String {
        String::from_utf8(a.render(true, false)).unwrap()
    }

    #[test]
    fn urls_keep_path_and_query_and_drop_the_default_port() {
        assert_eq!(
            https_url("example.com", 443, "/", None),
            "https://example.com/"
        );
        assert_eq!(
            https_url("example.com", 443, "/a%20b/c", Some("x=1&y")),
            "https://example.com/a%20b/c?x=1&y"
        );
        assert_eq!(
            https_url("example.com", 8443, "/p", Some("")),
            "https://example.com:8443/p?"
        );
        assert_eq!(https_url("::1", 8443, "/p", None), "https://[::1]:8443/p");
        assert_eq!(https_url("127.0.0.1", 443, "", None), "https://127.0.0.1/");
    }

    #[test]
    fn everything_but_challenges_and_healthz_is_redirected() {
        assert_eq!(RULES.answer("/proxy/healthz", None), None);
        assert_eq!(RULES.answer("/.well-known/acme-challenge/tok", None), None);
        for path in [
            "/",
            "/proxy/status",
            "/.well-known/other",
            "/proxy/healthz/x",
            "/app/x",
        ] {
            let a = RULES.answer(path, Some("q=1")).unwrap();
            assert_eq!(a.status(), 308);
            assert!(
                text(&a).contains(&format!("\r\nLocation: https://example.com{path}?q=1\r\n")),
                "{}",
                text(&a)
            );
        }
    }

    #[test]
    fn redirect_response_is_well_formed() {
        let a = RULES.answer("/x", None).unwrap();
        let t = text(&a);
        assert!(t.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"));
        assert!(!t.contains("Connection: close"));
        let (head, body) = t.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, "Redirecting to https://example.com/x\n");
        let t = String::from_utf8(a.render(false, true)).unwrap();
        assert!(t.contains("\r\nConnection: close\r\n"));
        assert!(t.ends_with("\r\n\r\n"), "HEAD gets no body");
    }

    #[test]
    fn without_redirects_it_is_426_naming_the_https_url() {
        let rules = PortRules {
            redirect: false,
            domain: "proxy.test",
            https_port: 8443,
        };
        let a = rules.answer("/app", Some("a=b")).unwrap();
        assert_eq!(a.status(), 426);
        let t = text(&a);
        assert!(t.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(t.contains("\r\nUpgrade: TLS/1.3, TLS/1.2, HTTP/1.1\r\n"));
        assert!(!t.contains("Location:"));
        let body: serde_json::Value =
            serde_json::from_str(t.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"], "https required");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("https://proxy.test:8443/app?a=b")
        );
    }
}
