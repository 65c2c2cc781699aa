//! Request heads: read off the connection within the size limits and parsed by `httparse`;
//! the request target split into path and query, and query parameters.

use std::io::{self, BufRead};

/// Largest request head (request line plus headers), and largest chunked trailer section.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines in one request head.
pub const MAX_HEADERS: usize = 256;
/// Empty lines tolerated before the request line (RFC 9112 section 2.2).
const MAX_EMPTY_LINES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head. Names and values are kept as received (values without the
/// whitespace around them).
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated token of the named headers equals `token`, ignoring case.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.has_token("connection", "close"),
            Version::Http10 => self.has_token("connection", "keep-alive"),
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed (or went idle) before sending a request: close quietly.
    Closed,
    /// Reading failed (timeout, reset): close quietly.
    Io,
    /// 400 with this reason.
    Bad(&'static str),
    /// 431: head too large or too many headers.
    TooLarge,
    /// 505: an HTTP major version other than 1.
    Version,
}

/// Reads one request head, leaving whatever follows it (a body, a pipelined request) in `r`.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Request, HeadError> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let available = match r.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Io),
        };
        if available.is_empty() {
            return Err(if head.iter().all(|&b| b == b'\r' || b == b'\n') {
                HeadError::Closed
            } else {
                HeadError::Bad("request head ended early")
            });
        }
        let before = head.len();
        let take = available.len().min(MAX_HEAD_BYTES - before);
        head.extend_from_slice(&available[..take]);
        // A head is complete only at a line end: no need to parse again before one.
        if available[..take].contains(&b'\n')
            && let Some((request, len)) = parse_head(&head)?
        {
            r.consume(len - before);
            return Ok(request);
        }
        r.consume(take);
        if head.len() == MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The request and the length of its head, or None while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    if empty_lines(buf).0 > MAX_EMPTY_LINES {
        return Err(HeadError::Bad("empty lines instead of a request line"));
    }
    match parse_with_httparse(buf) {
        Err(httparse::Error::Version) => parse_other_version(buf),
        result => result.map_err(head_error),
    }
}

fn parse_with_httparse(buf: &[u8]) -> Result<Option<(Request, usize)>, httparse::Error> {
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(buf)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let request = Request {
        method: parsed.method.unwrap_or_default().to_string(),
        target: parsed.path.unwrap_or_default().to_string(),
        version: match parsed.version {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        },
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), text(h.value)))
            .collect(),
    };
    Ok(Some((request, len)))
}

fn head_error(e: httparse::Error) -> HeadError {
    use httparse::Error as E;
    HeadError::Bad(match e {
        E::TooManyHeaders => return HeadError::TooLarge,
        E::Token => "invalid method or request target",
        E::HeaderName => "invalid header line",
        E::HeaderValue => "control character in a header value",
        E::NewLine => "invalid line ending",
        _ => "invalid request head",
    })
}

/// `httparse` knows HTTP/1.0 and HTTP/1.1 only. A higher 1.x minor version is answered as
/// 1.1 (RFC 9110 section 6.2), another major version with 505, anything else with 400.
fn parse_other_version(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let start = empty_lines(buf).1;
    let Some(end) = buf[start..].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = &buf[start..start + end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return Err(HeadError::Bad("request line is not METHOD TARGET VERSION"));
    };
    match line[space + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if major != b'1' {
                return Err(HeadError::Version);
            }
            let at = start + space + 1;
            let mut copy = buf.to_vec();
            copy[at..at + 8].copy_from_slice(b"HTTP/1.1");
            parse_with_httparse(&copy).map_err(head_error)
        }
        _ => Err(HeadError::Bad("invalid HTTP version")),
    }
}

/// How many empty lines `buf` starts with, and where the first other line starts.
fn empty_lines(buf: &[u8]) -> (usize, usize) {
    let (mut count, mut at) = (0, 0);
    loop {
        match buf[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            _ => return (count, at),
        }
        count += 1;
    }
}

/// Splits a request target into its path and query string, without any decoding.
/// An absolute-form target (`http://host/p?q`) yields `/p` and `q`.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let mut rest = target;
    if !target.starts_with('/')
        && let Some(i) = target.find("://")
    {
        let after = &target[i + 3..];
        rest = match after.find(['/', '?']) {
            Some(j) if after.as_bytes()[j] == b'/' => &after[j..],
            Some(j) => return ("/", Some(&after[j + 1..])),
            None => "/",
        };
    }
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// The raw value of the first `key=value` pair named `key` ("" for a bare `key`).
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// A numeric query parameter within `min..=max`, or `default` when absent.
pub fn query_u64(
    query: Option<&str>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    match query_param(query, key) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "query parameter {key} must be a number in {min}..={max}, got {v:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn query_parsing() {
        assert_eq!(split_target("/p?a=1&b=2"), ("/p", Some("a=1&b=2")));
        assert_eq!(split_target("/p"), ("/p", None));
        assert_eq!(split_target("/p?"), ("/p", Some("")));
        assert_eq!(split_target("/p?a=1?b"), ("/p", Some("a=1?b")));
        assert_eq!(split_target("http://h:1/x/y?q"), ("/x/y", Some("q")));
        assert_eq!(split_target("http://h?q"), ("/", Some("q")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(split_target("*"), ("*", None));

        let q = Some("chunks=3&&size&interval_ms=10&chunks=9&e=");
        assert_eq!(query_param(q, "chunks"), Some("3"), "first one wins");
        assert_eq!(query_param(q, "size"), Some(""));
        assert_eq!(query_param(q, "e"), Some(""));
        assert_eq!(query_param(q, "interval_ms"), Some("10"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "chunks"), None);

        assert_eq!(query_u64(q, "chunks", 5, 0, 10), Ok(3));
        assert_eq!(query_u64(q, "missing", 5, 0, 10), Ok(5));
        assert!(query_u64(q, "size", 5, 0, 10).is_err());
        assert!(query_u64(Some("n=11"), "n", 5, 0, 10).is_err());
        assert!(query_u64(Some("n=-1"), "n", 5, 0, 10).is_err());
    }

    #[test]
    fn request_heads() {
        let raw = b"\r\nPOST /x?y HTTP/1.1\r\nHost: h\r\nX-A:  1 \r\nx-a: 2\r\n\r\nbody";
        let mut cursor = Cursor::new(&raw[..]);
        let req = read_head(&mut cursor).unwrap();
        assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/x?y"));
        assert_eq!(req.version, Version::Http11);
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(headers, [("Host", "h"), ("X-A", "1"), ("x-a", "2")]);
        assert_eq!(&raw[cursor.position() as usize..], b"body");

        let bad: [&[u8]; 7] = [
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n",
        ];
        for raw in bad {
            let result = read_head(&mut Cursor::new(raw));
            assert!(
                matches!(result, Err(HeadError::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            read_head(&mut Cursor::new(b"GET / HTTP/2.0\r\n\r\n")),
            Err(HeadError::Version)
        ));
        assert!(matches!(
            read_head(&mut Cursor::new(b"")),
            Err(HeadError::Closed)
        ));
        let huge = format!(
            "GET / HTTP/1.1\r\nA: {}\r\n\r\n",
            "x".repeat(MAX_HEAD_BYTES)
        );
        assert!(matches!(
            read_head(&mut Cursor::new(huge.as_bytes())),
            Err(HeadError::TooLarge)
        ));
    }

    #[test]
    fn request_heads_beyond_httparse_defaults() {
        // Bare LF line ends, raw UTF-8 in the target, a later 1.x minor version.
        let raw = "\n\nGET /é?x HTTP/1.2\nA: \u{e9}\n\nNEXT";
        let mut cursor = Cursor::new(raw.as_bytes());
        let req = read_head(&mut cursor).unwrap();
        assert_eq!(
            (req.target.as_str(), req.version),
            ("/é?x", Version::Http11)
        );
        assert_eq!(req.headers, [("A".to_string(), "é".to_string())]);
        assert_eq!(&raw.as_bytes()[cursor.position() as usize..], b"NEXT");

        let v10 = read_head(&mut Cursor::new(b"HEAD * HTTP/1.0\r\n\r\n")).unwrap();
        assert_eq!(
            (v10.method.as_str(), v10.version),
            ("HEAD", Version::Http10)
        );
        assert!(matches!(
            read_head(&mut Cursor::new(
                b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"
            )),
            Err(HeadError::Bad(_))
        ));
        assert!(matches!(
            read_head(&mut Cursor::new(b"\r\n\r\n")),
            Err(HeadError::Closed)
        ));
        assert!(matches!(
            read_head(&mut Cursor::new(b"GET / HTTPS/1.1\r\n\r\n")),
            Err(HeadError::Bad(_))
        ));
    }

    #[test]
    fn header_count_and_size_limits() {
        let head = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("H{i}: v\r\n"));
            }
            s + "\r\n"
        };
        let req = read_head(&mut Cursor::new(head(MAX_HEADERS))).unwrap();
        assert_eq!(req.headers.len(), MAX_HEADERS);
        assert!(matches!(
            read_head(&mut Cursor::new(head(MAX_HEADERS + 1))),
            Err(HeadError::TooLarge)
        ));
        // Exactly MAX_HEAD_BYTES is accepted, read through a small buffer in pieces.
        let line = "GET / HTTP/1.1\r\nA: \r\n\r\n";
        let exact = line.replace(
            "A: ",
            &format!("A: {}", "x".repeat(MAX_HEAD_BYTES - line.len())),
        );
        assert_eq!(exact.len(), MAX_HEAD_BYTES);
        let mut reader = BufReader::with_capacity(1000, Cursor::new(exact.as_bytes()));
        let req = read_head(&mut reader).unwrap();
        assert_eq!(req.headers[0].1.len(), MAX_HEAD_BYTES - line.len());
        let over = exact.replacen("A: ", "A: x", 1);
        let mut reader = BufReader::with_capacity(1000, Cursor::new(over.as_bytes()));
        assert!(matches!(read_head(&mut reader), Err(HeadError::TooLarge)));
    }
}
