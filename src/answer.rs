//! Responses the proxy makes itself: every error status with its short JSON body
//! `{"error": "...", "detail": "..."}`, rendered in this one place.

use std::io::Write;

/// A response made by the proxy, not by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 400: the request could not be understood.
    BadRequest(String),
    /// 401: missing or wrong bearer token.
    Unauthorized(&'static str),
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
    /// 502: the upstream failed (refused, reset, malformed answer).
    BadGateway(String),
    /// 503: the service could not be made ready (or the proxy is at capacity).
    Unavailable { detail: String, retry_after: u64 },
    /// 504: the upstream did not answer in time.
    GatewayTimeout(String),
    /// 500: a bug in the proxy.
    Internal(String),
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::BadRequest(_) => 400,
            Answer::Unauthorized(_) => 401,
            Answer::NotFound(_) => 404,
            Answer::MethodNotAllowed(_) => 405,
            Answer::PayloadTooLarge => 413,
            Answer::UriTooLong => 414,
            Answer::HeadersTooLarge => 431,
            Answer::BadGateway(_) => 502,
            Answer::Unavailable { .. } => 503,
            Answer::GatewayTimeout(_) => 504,
            Answer::Internal(_) => 500,
        }
    }

    fn reason(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        }
    }

    fn error(&self) -> &'static str {
        match self {
            Answer::BadRequest(_) => "bad request",
            Answer::Unauthorized(_) => "unauthorized",
            Answer::NotFound(_) => "not found",
            Answer::MethodNotAllowed(_) => "method not allowed",
            Answer::PayloadTooLarge => "request body too large",
            Answer::UriTooLong => "request line too long",
            Answer::HeadersTooLarge => "request headers too large",
            Answer::BadGateway(_) => "bad gateway",
            Answer::Unavailable { .. } => "service unavailable",
            Answer::GatewayTimeout(_) => "gateway timeout",
            Answer::Internal(_) => "internal error",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Answer::BadRequest(d)
            | Answer::NotFound(d)
            | Answer::BadGateway(d)
            | Answer::GatewayTimeout(d)
            | Answer::Internal(d)
            | Answer::Unavailable { detail: d, .. } => d.clone(),
            Answer::Unauthorized(d) | Answer::MethodNotAllowed(d) => d.to_string(),
            Answer::PayloadTooLarge => {
                "the request body is larger than this service accepts".into()
            }
            Answer::UriTooLong => "the request line is longer than the proxy accepts".into(),
            Answer::HeadersTooLarge => "the request head is larger than the proxy accepts".into(),
        }
    }

    /// The full response bytes. `head_only` omits the body (HEAD requests).
    pub fn render(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let body =
            serde_json::json!({"error": self.error(), "detail": self.detail()}).to_string() + "\n";
        let mut out = Vec::with_capacity(256 + body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.status(),
            self.reason(),
            body.len()
        );
        match self {
            Answer::Unauthorized(_) => {
                out.extend_from_slice(b"WWW-Authenticate: Bearer realm=\"wakeproxy\"\r\n")
            }
            Answer::Unavailable { retry_after, .. } => {
                let _ = write!(out, "Retry-After: {retry_after}\r\n");
            }
            Answer::MethodNotAllowed(allow) => {
                let _ = write!(out, "Allow: {allow}\r\n");
            }
            _ => {}
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(body.as_bytes());
        }
        out
    }
}

/// A small successful response made by the proxy (health, status, ACME files).
pub fn ok(content_type: &str, body: &[u8], keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    );
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Answer) -> String {
        String::from_utf8(a.render(true, false)).unwrap()
    }

    #[test]
    fn unauthorized_carries_challenge() {
        let s = text(&Answer::Unauthorized("missing"));
        assert!(s.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(s.contains("WWW-Authenticate: Bearer"));
        assert!(s.ends_with("{\"detail\":\"missing\",\"error\":\"unauthorized\"}\n"));
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let s = text(&Answer::Unavailable {
            detail: "exit code 3".into(),
            retry_after: 5,
        });
        assert!(s.starts_with("HTTP/1.1 503 "));
        assert!(s.contains("Retry-After: 5\r\n"));
        assert!(s.contains("exit code 3"));
    }

    #[test]
    fn body_is_json_and_length_matches() {
        let a = Answer::BadGateway("connection refused \"quoted\"".into());
        let raw = a.render(false, false);
        let s = String::from_utf8(raw).unwrap();
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Connection: close"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "bad gateway");
        assert_eq!(v["detail"], "connection refused \"quoted\"");
        let head_only = String::from_utf8(a.render(true, true)).unwrap();
        assert!(head_only.ends_with("\r\n\r\n"));
    }

    #[test]
    fn statuses() {
        assert_eq!(Answer::HeadersTooLarge.status(), 431);
        assert_eq!(Answer::PayloadTooLarge.status(), 413);
        assert_eq!(Answer::GatewayTimeout(String::new()).status(), 504);
        assert_eq!(Answer::NotFound(String::new()).status(), 404);
    }
}
