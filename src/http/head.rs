//! Parsing request and response heads with httparse into owned values, and deciding body
//! framing (RFC 9112 section 6). Pure functions over bytes; no I/O.

use std::fmt;

/// Most header lines accepted in one head.
pub const MAX_HEADERS: usize = 100;
/// Header slots parsed on the stack; a head with more is parsed again with `MAX_HEADERS` slots
/// on the heap (32 slots are 1 KiB of stack, 100 would be 3.2 KiB on every connection's stack).
const STACK_HEADERS: usize = 32;

/// One header line as received (name case kept, value bytes untouched). Name and value share
/// one allocation: a response head's eight or so headers are then eight allocations, not
/// sixteen, on every request.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The name's bytes, then the value's.
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Header {
    pub fn new(name: &str, value: impl AsRef<[u8]>) -> Header {
        Header::from_parts(name, value.as_ref())
    }
    fn from_parts(name: &str, value: &[u8]) -> Header {
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(value);
        Header {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        }
    }
    /// The name as received (a token: ASCII).
    pub fn name(&self) -> &str {
        std::str::from_utf8(self.name_bytes()).unwrap_or("")
    }
    /// The name's bytes, for writing it out without a UTF-8 check.
    pub fn name_bytes(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }
    pub fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }
    pub fn is(&self, name: &str) -> bool {
        self.name_bytes().eq_ignore_ascii_case(name.as_bytes())
    }
    pub fn value_str(&self) -> &str {
        std::str::from_utf8(self.value()).unwrap_or("")
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?}",
            self.name(),
            String::from_utf8_lossy(self.value())
        )
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target exactly as received.
    pub target: String,
    /// HTTP/1.x minor version: 0 or 1.
    pub minor: u8,
    pub headers: Vec<Header>,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub minor: u8,
    pub headers: Vec<Header>,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    /// Only for responses: the body ends when the upstream closes.
    UntilClose,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// More than `MAX_HEADERS` header lines (431).
    TooManyHeaders,
    /// Anything malformed (400), with what was wrong.
    Malformed(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            HeadError::Malformed(m) => write!(f, "{m}"),
        }
    }
}

fn own_headers(hs: &[httparse::Header<'_>]) -> Vec<Header> {
    hs.iter()
        .map(|h| Header::from_parts(h.name, h.value))
        .collect()
}

fn map_err(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        other => HeadError::Malformed(format!("malformed head: {other}")),
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((head_len, head)))` when complete.
pub fn parse_request(buf: &[u8]) -> Result<Option<(usize, RequestHead)>, HeadError> {
    with_header_slots(|hs| parse_request_with(buf, hs))
}

/// Runs `parse` with `STACK_HEADERS` header slots on the stack, and again with `MAX_HEADERS`
/// on the heap if the head has more lines than that.
fn with_header_slots<'b, T>(
    parse: impl Fn(&mut [httparse::Header<'b>]) -> Result<T, HeadError>,
) -> Result<T, HeadError> {
    match parse(&mut [httparse::EMPTY_HEADER; STACK_HEADERS]) {
        Err(HeadError::TooManyHeaders) => parse(&mut vec![httparse::EMPTY_HEADER; MAX_HEADERS]),
        other => other,
    }
}

fn parse_request_with<'b>(
    buf: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(usize, RequestHead)>, HeadError> {
    let mut req = httparse::Request::new(hs);
    match req.parse(buf).map_err(map_err)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) => {
            let head = RequestHead {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                minor: req.version.unwrap_or(1),
                headers: own_headers(req.headers),
            };
            check_request(&head)?;
            Ok(Some((n, head)))
        }
    }
}

/// Parses a response head (see `parse_request`).
pub fn parse_response(buf: &[u8]) -> Result<Option<(usize, ResponseHead)>, HeadError> {
    with_header_slots(|hs| parse_response_with(buf, hs))
}

fn parse_response_with<'b>(
    buf: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(usize, ResponseHead)>, HeadError> {
    let mut res = httparse::Response::new(hs);
    match res.parse(buf).map_err(map_err)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(n) => {
            let head = ResponseHead {
                status: res.code.unwrap_or(0),
                reason: res.reason.unwrap_or("").to_string(),
                minor: res.version.unwrap_or(1),
                headers: own_headers(res.headers),
            };
            if !(100..=999).contains(&head.status) {
                return Err(HeadError::Malformed("invalid status code".into()));
            }
            Ok(Some((n, head)))
        }
    }
}

fn bad(m: &str) -> HeadError {
    HeadError::Malformed(m.to_string())
}

/// Checks beyond httparse's grammar that every request must pass.
fn check_request(head: &RequestHead) -> Result<(), HeadError> {
    if head.target.is_empty() {
        return Err(bad("empty request target"));
    }
    for h in &head.headers {
        if h.value()
            .iter()
            .any(|&b| b == 0 || b == b'\r' || b == b'\n')
        {
            return Err(bad("control character in a header value"));
        }
    }
    let hosts = head.headers.iter().filter(|h| h.is("host")).count();
    if hosts > 1 {
        return Err(bad("more than one Host header"));
    }
    if head.minor == 1 && hosts == 0 {
        return Err(bad("HTTP/1.1 request without a Host header"));
    }
    Ok(())
}

/// The comma-separated tokens of every header named `name`, trimmed, empty ones skipped, case
/// kept (compare with `eq_ignore_ascii_case`). Borrows from the headers: nothing is allocated.
pub fn tokens<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.is(name))
        .flat_map(|h| h.value_str().split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Does a header named `name` list `token` (case-insensitive)?
pub fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// `tokens` collected (allocates only when there is at least one).
pub fn header_tokens<'a>(headers: &'a [Header], name: &'a str) -> Vec<&'a str> {
    tokens(headers, name).collect()
}

/// The first header named `name`, if any.
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.is(name))
}

/// Content-Length and Transfer-Encoding rules shared by requests and responses:
/// both present is refused; several lengths must agree; the only coding accepted is a
/// final `chunked`.
fn framing(headers: &[Header]) -> Result<Option<BodyKind>, HeadError> {
    let mut te = tokens(headers, "transfer-encoding");
    let cls = || headers.iter().filter(|h| h.is("content-length"));
    if let Some(first) = te.next() {
        if cls().next().is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if first.eq_ignore_ascii_case("chunked") && te.next().is_none() {
            return Ok(Some(BodyKind::Chunked));
        }
        return Err(bad(
            "unsupported Transfer-Encoding (only chunked is accepted)",
        ));
    }
    let mut len: Option<u64> = None;
    for h in cls() {
        for part in h.value_str().split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 19 {
                return Err(bad("invalid Content-Length"));
            }
            let n: u64 = part.parse().map_err(|_| bad("invalid Content-Length"))?;
            if len.is_some_and(|l| l != n) {
                return Err(bad("conflicting Content-Length values"));
            }
            len = Some(n);
        }
    }
    Ok(len.map(|n| {
        if n == 0 {
            BodyKind::Empty
        } else {
            BodyKind::Length(n)
        }
    }))
}

/// The body framing of a request: no framing headers means no body.
pub fn request_body(head: &RequestHead) -> Result<BodyKind, HeadError> {
    if head.minor == 0 && tokens(&head.headers, "transfer-encoding").next().is_some() {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    Ok(framing(&head.headers)?.unwrap_or(BodyKind::Empty))
}

/// The body framing of a response to a request with method `method`.
pub fn response_body(method: &str, head: &ResponseHead) -> Result<BodyKind, HeadError> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(BodyKind::Empty);
    }
    Ok(framing(&head.headers)?.unwrap_or(BodyKind::UntilClose))
}

/// May the request be sent again after a failure that came once it was (perhaps) delivered?
/// RFC 9110 §9.2.2: the idempotent methods may; any other request only when it carries an
/// `Idempotency-Key`, the client's promise that a repeat is harmless.
pub fn is_idempotent(head: &RequestHead) -> bool {
    const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];
    IDEMPOTENT.contains(&head.method.as_str())
        || head.headers.iter().any(|h| h.is("idempotency-key"))
}

/// Does the client want the connection kept open after this request?
pub fn wants_keep_alive(minor: u8, headers: &[Header]) -> bool {
    if minor == 0 {
        has_token(headers, "connection", "keep-alive")
    } else {
        !has_token(headers, "connection", "close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<(usize, RequestHead)>, HeadError> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn parses_complete_and_partial() {
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        let (n, h) = req("GET /a%2Fb?x=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(n, 52);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a%2Fb?x=1");
        assert_eq!(h.headers.len(), 3);
        assert_eq!(h.headers[2].name(), "x-a");
    }

    #[test]
    fn host_rules() {
        assert!(req("GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
        assert!(req("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn malformed_heads_are_errors() {
        assert!(req("GET / HTTP/1.1\r\nHost : a\r\n\r\n").is_err());
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n").is_err());
        assert!(req("GET / HTTP/2.0\r\nHost: a\r\n\r\n").is_err());
        assert!(req("G(T / HTTP/1.1\r\nHost: a\r\n\r\n").is_err());
        assert!(req("GET / HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n").is_err());
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooManyHeaders
        );
    }

    #[test]
    fn heads_with_more_header_lines_than_stack_slots_parse_up_to_the_maximum() {
        let lines = |n: usize| -> String { (0..n).map(|i| format!("X-{i}: v{i}\r\n")).collect() };
        // Host plus MAX_HEADERS - 1 others: exactly the maximum, well past the stack slots.
        let (_, h) = req(&format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            lines(MAX_HEADERS - 1)
        ))
        .unwrap()
        .unwrap();
        assert_eq!(h.headers.len(), MAX_HEADERS);
        assert_eq!(h.headers[MAX_HEADERS - 1].value(), b"v98");
        assert_eq!(
            req(&format!(
                "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
                lines(MAX_HEADERS)
            )),
            Err(HeadError::TooManyHeaders)
        );
        let res = format!("HTTP/1.1 200 OK\r\n{}\r\n", lines(STACK_HEADERS + 1));
        let (_, r) = parse_response(res.as_bytes()).unwrap().unwrap();
        assert_eq!(r.headers.len(), STACK_HEADERS + 1);
        let res = format!("HTTP/1.1 200 OK\r\n{}\r\n", lines(MAX_HEADERS + 1));
        assert_eq!(
            parse_response(res.as_bytes()),
            Err(HeadError::TooManyHeaders)
        );
    }

    fn body_of(s: &str) -> Result<BodyKind, HeadError> {
        request_body(&req(s).unwrap().unwrap().1)
    }

    #[test]
    fn request_framing() {
        assert_eq!(
            body_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            body_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        for bad in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(body_of(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn response_framing() {
        let r = |s: &str| parse_response(s.as_bytes()).unwrap().unwrap().1;
        let ok = r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(response_body("GET", &ok), Ok(BodyKind::Length(3)));
        assert_eq!(response_body("HEAD", &ok), Ok(BodyKind::Empty));
        let nc = r("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(response_body("GET", &nc), Ok(BodyKind::Empty));
        let close = r("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(response_body("GET", &close), Ok(BodyKind::UntilClose));
        let ch = r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(response_body("GET", &ch), Ok(BodyKind::Chunked));
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .map(|o| response_body("GET", &o.unwrap().1))
            .unwrap()
            .is_err()
        );
    }

    #[test]
    fn keep_alive_rules() {
        let h = |v: &str| vec![Header::new("Connection", v)];
        assert!(wants_keep_alive(1, &[]));
        assert!(!wants_keep_alive(1, &h("close")));
        assert!(!wants_keep_alive(1, &h("Keep-Alive, Close")));
        assert!(!wants_keep_alive(0, &[]));
        assert!(wants_keep_alive(0, &h("keep-alive")));
    }

    #[test]
    fn idempotent_requests() {
        let m = |s: &str| is_idempotent(&req(s).unwrap().unwrap().1);
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(
                m(&format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n")),
                "{method}"
            );
        }
        for method in ["POST", "PATCH", "CONNECT", "PROPFIND", "get"] {
            assert!(
                !m(&format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n")),
                "{method}"
            );
        }
        assert!(m(
            "POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \"k1\"\r\n\r\n"
        ));
    }
}
