//! Responses the proxy makes itself, as one type rendered in one place: errors, the login page,
//! redirects, health, status, metrics and ACME files are all a [`Reply`], so the framing, HEAD
//! and keep-alive rules hold for every one of them. [`Problem`] is every error the proxy
//! answers with and the one map from error to status; it becomes a `Reply` with the short JSON
//! body `{"error": "...", "detail": "..."}`.

use std::io::Write;

/// An error the proxy answers with, not a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// 400: the request could not be understood.
    BadRequest(String),
    /// 401: missing or wrong bearer token.
    Unauthorized(&'static str),
    /// 403: the request may come from another site's page (cross-site).
    Forbidden(&'static str),
    /// 404: no route or no such proxy endpoint.
    NotFound(String),
    /// 405: method not allowed on a proxy endpoint.
    MethodNotAllowed(&'static str),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 414: the request line is too long.
    UriTooLong,
    /// 431: the head is too large or has too many lines.
    HeadersTooLarge,
    /// 429: this client has too much under way already.
    TooManyRequests { detail: String, retry_after: u64 },
    /// 502: the upstream failed (refused, reset, malformed answer).
    BadGateway(String),
    /// 503: the service could not be made ready (or the proxy is at capacity).
    Unavailable { detail: String, retry_after: u64 },
    /// 504: the upstream did not answer in time.
    GatewayTimeout(String),
    /// 500: a bug in the proxy.
    Internal(String),
}

impl Problem {
    /// The status each error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Problem::BadRequest(_) => 400,
            Problem::Unauthorized(_) => 401,
            Problem::Forbidden(_) => 403,
            Problem::NotFound(_) => 404,
            Problem::MethodNotAllowed(_) => 405,
            Problem::PayloadTooLarge => 413,
            Problem::UriTooLong => 414,
            Problem::HeadersTooLarge => 431,
            Problem::TooManyRequests { .. } => 429,
            Problem::BadGateway(_) => 502,
            Problem::Unavailable { .. } => 503,
            Problem::GatewayTimeout(_) => 504,
            Problem::Internal(_) => 500,
        }
    }

    fn error(&self) -> &'static str {
        match self {
            Problem::BadRequest(_) => "bad request",
            Problem::Unauthorized(_) => "unauthorized",
            Problem::Forbidden(_) => "forbidden",
            Problem::NotFound(_) => "not found",
            Problem::MethodNotAllowed(_) => "method not allowed",
            Problem::PayloadTooLarge => "request body too large",
            Problem::UriTooLong => "request line too long",
            Problem::HeadersTooLarge => "request headers too large",
            Problem::TooManyRequests { .. } => "too many requests",
            Problem::BadGateway(_) => "bad gateway",
            Problem::Unavailable { .. } => "service unavailable",
            Problem::GatewayTimeout(_) => "gateway timeout",
            Problem::Internal(_) => "internal error",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Problem::BadRequest(d)
            | Problem::NotFound(d)
            | Problem::BadGateway(d)
            | Problem::GatewayTimeout(d)
            | Problem::Internal(d)
            | Problem::Unavailable { detail: d, .. }
            | Problem::TooManyRequests { detail: d, .. } => d.clone(),
            Problem::Unauthorized(d) | Problem::Forbidden(d) | Problem::MethodNotAllowed(d) => {
                d.to_string()
            }
            Problem::PayloadTooLarge => {
                "the request body is larger than this service accepts".into()
            }
            Problem::UriTooLong => "the request line is longer than the proxy accepts".into(),
            Problem::HeadersTooLarge => "the request head is larger than the proxy accepts".into(),
        }
    }
}

impl From<Problem> for Reply {
    fn from(p: Problem) -> Reply {
        let body = serde_json::json!({"error": p.error(), "detail": p.detail()}).to_string() + "\n";
        let mut r = Reply::new(p.status(), "application/json", body.into_bytes());
        match &p {
            Problem::Unauthorized(_) => {
                r = r.header("WWW-Authenticate", "Bearer realm=\"wakeproxy\"")
            }
            Problem::Unavailable { retry_after, .. }
            | Problem::TooManyRequests { retry_after, .. } => {
                r = r.header("Retry-After", &retry_after.to_string())
            }
            Problem::MethodNotAllowed(allow) => r = r.header("Allow", allow),
            _ => {}
        }
        if p.status() >= 500 {
            r.note = Some(p.detail());
        }
        r
    }
}

/// A response made by the proxy. Built with [`Reply::new`] and the header methods; whether
/// the connection stays open and whether the body is sent (not for HEAD) are decided when it
/// is rendered, by the one writer of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: u16,
    content_type: &'static str,
    /// Extra header lines, each ending in CRLF.
    headers: String,
    body: Vec<u8>,
    /// The connection closes after this answer, whatever the client asked for.
    close: bool,
    /// Why, for the log (server errors only).
    note: Option<String>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            headers: String::new(),
            body,
            close: false,
            note: None,
        }
    }

    /// 200 with `body`.
    pub fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply::new(200, content_type, body)
    }

    /// Adds a header line. `value` must hold no CR or LF (it is the proxy's own text).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        debug_assert!(
            !value.contains(['\r', '\n']),
            "header value with a line break"
        );
        self.headers.push_str(name);
        self.headers.push_str(": ");
        self.headers.push_str(value);
        self.headers.push_str("\r\n");
        self
    }

    /// The connection is closed after this answer.
    pub fn closing(mut self) -> Reply {
        self.close = true;
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether this answer ends the connection whatever the client asked for.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Why a server error happened, for the log.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The bytes on the wire. `keep_alive`: the connection stays open (else `Connection:
    /// close`). `head_only`: the answer to HEAD, whose head still gives the body's length.
    pub fn render(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.headers.len() + self.body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            self.headers
        );
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of every status the proxy answers with itself.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: Problem) -> String {
        String::from_utf8(Reply::from(p).render(true, false)).unwrap()
    }

    #[test]
    fn unauthorized_carries_challenge() {
        let s = text(Problem::Unauthorized("missing"));
        assert!(s.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(s.contains("WWW-Authenticate: Bearer"));
        assert!(s.ends_with("{\"detail\":\"missing\",\"error\":\"unauthorized\"}\n"));
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let s = text(Problem::Unavailable {
            detail: "exit code 3".into(),
            retry_after: 5,
        });
        assert!(s.starts_with("HTTP/1.1 503 "));
        assert!(s.contains("Retry-After: 5\r\n"));
        assert!(s.contains("exit code 3"));
    }

    #[test]
    fn body_is_json_and_length_matches() {
        let r = Reply::from(Problem::BadGateway("connection refused \"quoted\"".into()));
        assert_eq!(r.note(), Some("connection refused \"quoted\""));
        let s = String::from_utf8(r.render(false, false)).unwrap();
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Connection: close"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "bad gateway");
        assert_eq!(v["detail"], "connection refused \"quoted\"");
    }

    #[test]
    fn head_keeps_the_length_and_drops_the_body() {
        let r = Reply::ok("text/html; charset=utf-8", b"<p>page</p>".to_vec());
        let full = r.render(true, false);
        let head = r.render(true, true);
        assert!(full.starts_with(&head), "the head is the same");
        let s = String::from_utf8(head).unwrap();
        assert!(s.ends_with("\r\n\r\n"), "no body: {s}");
        assert!(s.contains("Content-Length: 11\r\n"));
        assert!(!s.contains("Connection: close"));
    }

    #[test]
    fn a_closing_reply_says_so_even_when_the_client_wants_more() {
        let r = Reply::ok("text/plain", b"x".to_vec()).closing();
        assert!(r.closes());
        let s = String::from_utf8(r.render(true, false)).unwrap();
        assert!(s.contains("\r\nConnection: close\r\n"));
        let redirect = Reply::new(303, "text/plain", Vec::new()).header("Location", "/app");
        let s = String::from_utf8(redirect.render(true, false)).unwrap();
        assert!(s.starts_with("HTTP/1.1 303 See Other\r\n"));
        assert!(s.contains("\r\nLocation: /app\r\n"));
    }

    #[test]
    fn statuses() {
        assert_eq!(Problem::HeadersTooLarge.status(), 431);
        assert_eq!(Problem::PayloadTooLarge.status(), 413);
        assert_eq!(Problem::GatewayTimeout(String::new()).status(), 504);
        assert_eq!(Problem::NotFound(String::new()).status(), 404);
        assert_eq!(reason(999), "Internal Server Error");
    }
}
