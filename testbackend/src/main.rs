//! `wakeproxy-testbackend`: the backend that wakeproxy's tests and demo images run.
//!
//! A small blocking HTTP/1.1 server, one thread per connection, with keep-alive and
//! request bodies in both `Content-Length` and chunked framing. It uses only `std`, so it
//! builds into a static binary that runs in a `FROM scratch` image.
//!
//! # Configuration
//!
//! | setting | meaning |
//! |---|---|
//! | `PORT`, `BIND` | listen on `BIND:PORT` (default `0.0.0.0:8000`); port 0 picks a free port |
//! | `--listen ADDR:PORT` | overrides `PORT` and `BIND` |
//! | `STARTUP_DELAY_MS` | sleep this long before binding (a slow app) |
//! | `EXIT_AT_START=<code>` | print `exiting at start with code <code>` to stderr and exit |
//! | `FAIL_HEALTH=1` | `/health` answers 500 |
//! | `NAME` | put in every echo and in an `X-Backend-Name` header on every response |
//! | `--check [PATH]` | GET `127.0.0.1:$PORT/health` (or `PATH`); exit 0 on 2xx/3xx, else 1 |
//!
//! Once bound it prints `listening on <addr>` to stdout. `--check` is meant as a Docker
//! `HEALTHCHECK` in an image without a shell.
//!
//! # Endpoints
//!
//! Paths are matched on the raw request target's path, whatever the method.
//!
//! | path | answer |
//! |---|---|
//! | `/health` | 200 `ok` (500 `unhealthy` with `FAIL_HEALTH`) |
//! | `/stream?chunks=5&interval_ms=200&size=16` | chunked body, one flushed chunk per interval |
//! | `/sse?events=5&interval_ms=200` | `text/event-stream`, `data: event N t=<unix ms when sent>`; `events=0` is forever |
//! | `/status/NNN` | that status (200..=599), small body; none for 204/304 |
//! | `/cookies` | three separate `Set-Cookie` headers |
//! | `/gzip` | `Content-Encoding: gzip` of `hello gzip\n` |
//! | `/sleep?ms=1000` | waits, then 200 `slept` |
//! | `/alloc?mb=64` | allocates and touches that much memory, then 200 (to hit a `mem_limit`) |
//! | `/sink` | streams the body through SHA-256: `{"bytes":N,"sha256":"hex"}` |
//! | `/ws` | WebSocket echo (text, binary, fragments), ping → pong, close → close |
//! | `/wspage` | HTML page whose script opens a WebSocket to the sibling `ws` path, sends `hello from browser` and sets the title to `WS:<reply>` (`WS error` / `WS closed <code>` on failure) |
//! | anything else | JSON echo of the request: name, method, target, path, query, headers, body, peer |
//!
//! Over HTTP/1.0, `/stream` and `/sse` are close-delimited instead of chunked. A malformed
//! request gets 400 and the connection is closed. Reads and writes time out after 60 s.

#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Read and write timeout of every connection, including idle keep-alive.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (request line plus headers), and largest chunked trailer section.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines in one request head.
const MAX_HEADERS: usize = 256;
/// Longest chunk-size line (size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// The echo includes the body as a string only below this size.
const ECHO_BODY_LIMIT: usize = 64 * 1024;
/// Largest WebSocket frame payload accepted; larger frames are closed with 1009.
const WS_MAX_PAYLOAD: u64 = 32 << 20;
/// The GUID appended to `Sec-WebSocket-Key` (RFC 6455 section 1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Stack of each connection thread; all large buffers live on the heap.
const CONN_STACK: usize = 512 * 1024;
/// Upper bound for every `*ms` query parameter: one hour.
const MAX_MS: u64 = 3_600_000;

/// `/wspage`: a page that opens a WebSocket to the `ws` path next to its own (so it works
/// behind a path prefix), sends one message and shows the outcome in `document.title`.
const WS_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>WS pending</title></head>
<body><p>WebSocket test page</p>
<script>
(function () {
  var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
    location.pathname.replace(/wspage$/, 'ws');
  var done = false;
  var ws = new WebSocket(url);
  ws.onopen = function () { ws.send('hello from browser'); };
  ws.onmessage = function (e) {
    if (done) return;
    done = true;
    document.title = 'WS:' + e.data;
    ws.close(1000);
  };
  ws.onerror = function () { if (!done) { done = true; document.title = 'WS error'; } };
  ws.onclose = function (e) { if (!done) { done = true; document.title = 'WS closed ' + e.code; } };
})();
</script>
</body></html>
"#;

/// `hello gzip\n` compressed with `gzip -9n`.
const GZIP_BODY: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
    0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00, 0x00,
];

const USAGE: &str = "\
usage: wakeproxy-testbackend [--listen ADDR:PORT]
       wakeproxy-testbackend [--listen ADDR:PORT] --check [PATH]

environment: PORT (8000), BIND (0.0.0.0), STARTUP_DELAY_MS, EXIT_AT_START, FAIL_HEALTH, NAME
endpoints: /health /stream /sse /status/NNN /cookies /gzip /sleep /sink /ws /wspage, else a JSON echo
";

// ---------------------------------------------------------------------------------------
// Command line and process setup
// ---------------------------------------------------------------------------------------

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    listen: Option<String>,
    /// `Some(path)` in `--check` mode.
    check: Option<String>,
    help: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            out.help = true;
        } else if arg == "--listen" {
            out.listen = Some(args.next().ok_or("--listen needs ADDR:PORT")?);
        } else if let Some(v) = arg.strip_prefix("--listen=") {
            out.listen = Some(v.to_string());
        } else if arg == "--check" {
            let path = args.next_if(|a| a.starts_with('/'));
            out.check = Some(path.unwrap_or_else(|| "/health".to_string()));
        } else if let Some(v) = arg.strip_prefix("--check=") {
            if !v.starts_with('/') {
                return Err(format!("--check path must start with '/': {v:?}"));
            }
            out.check = Some(v.to_string());
        } else {
            return Err(format!("unknown argument {arg:?}"));
        }
    }
    Ok(out)
}

/// An environment variable, with an empty value treated as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_flag(name: &str) -> bool {
    env_var(name).is_some_and(|v| {
        let v = v.trim();
        !(v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no"))
    })
}

/// The address to listen on: `--listen`, else `BIND` and `PORT`.
fn listen_addr(listen: Option<&str>) -> Result<SocketAddr, String> {
    if let Some(listen) = listen {
        return listen
            .to_socket_addrs()
            .map_err(|e| format!("--listen {listen:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--listen {listen:?}: no address"));
    }
    let port = match env_var("PORT") {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("PORT is not a port number: {p:?}"))?,
        None => 8000,
    };
    let ip = match env_var("BIND") {
        Some(b) => {
            let t = b.trim();
            let t = t
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(t);
            t.parse::<IpAddr>()
                .map_err(|_| format!("BIND is not an IP address: {b:?}"))?
        }
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Ok(SocketAddr::new(ip, port))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("wakeproxy-testbackend: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.check.is_none() {
        if let Some(code) = env_var("EXIT_AT_START") {
            let Ok(code) = code.trim().parse::<i32>() else {
                eprintln!("wakeproxy-testbackend: EXIT_AT_START is not an integer: {code:?}");
                return ExitCode::from(2);
            };
            eprintln!("exiting at start with code {code}");
            std::process::exit(code);
        }
    }
    let addr = match listen_addr(args.listen.as_deref()) {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("wakeproxy-testbackend: {msg}");
            return ExitCode::from(2);
        }
    };
    match args.check {
        Some(path) => run_check(addr, &path),
        None => match serve(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("wakeproxy-testbackend: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Settings shared by all connections.
struct Config {
    /// `NAME`, if set.
    name: Option<String>,
    fail_health: bool,
}

fn serve(addr: SocketAddr) -> Result<(), String> {
    if let Some(ms) = env_var("STARTUP_DELAY_MS") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("STARTUP_DELAY_MS is not a number: {ms:?}"))?;
        thread::sleep(Duration::from_millis(ms));
    }
    let config = Arc::new(Config {
        // A name that could break a header line is kept out of headers (see `head_common`).
        name: env_var("NAME"),
        fail_health: env_flag("FAIL_HEALTH"),
    });
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    println!("listening on {local}");
    let _ = io::stdout().flush();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let config = Arc::clone(&config);
                let spawned = thread::Builder::new()
                    .name(format!("conn {peer}"))
                    .stack_size(CONN_STACK)
                    .spawn(move || handle_connection(stream, peer, &config));
                if let Err(e) = spawned {
                    eprintln!("cannot spawn a thread for {peer}: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `--check`: exit 0 if `GET path` on the local server answers 2xx or 3xx.
fn run_check(addr: SocketAddr, path: &str) -> ExitCode {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    let target = SocketAddr::new(ip, addr.port());
    match check_status(target, path) {
        Ok(status) if (200..400).contains(&status) => {
            println!("check {target}{path}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("check {target}{path}: {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("check {target}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_status(target: SocketAddr, path: &str) -> io::Result<u16> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: wakeproxy-testbackend-check\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(stream).take(1024).read_line(&mut line)?;
    parse_status_line(&line).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )
    })
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

/// A parsed request head. Names and values are kept as received.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    version: Version,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated token of the named headers equals `token`, ignoring case.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.has_token("connection", "close"),
            Version::Http10 => self.has_token("connection", "keep-alive"),
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
enum HeadError {
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

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads one line ending in LF (a CR before it is dropped) within `budget` bytes.
/// Returns false at a clean end of input.
fn read_line<R: BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    budget: &mut usize,
) -> Result<bool, HeadError> {
    line.clear();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', line)
        .map_err(|_| HeadError::Io)?;
    if n == 0 {
        return Ok(false);
    }
    if n > *budget {
        return Err(HeadError::TooLarge);
    }
    if line.last() != Some(&b'\n') {
        return Err(HeadError::Bad("request head ended early"));
    }
    *budget -= n;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(true)
}

fn read_head<R: BufRead>(r: &mut R) -> Result<Request, HeadError> {
    let mut budget = MAX_HEAD_BYTES;
    let mut line = Vec::with_capacity(256);
    // A few empty lines before the request line are tolerated (RFC 9112 section 2.2).
    let mut empty = 0;
    loop {
        if !read_line(r, &mut line, &mut budget)? {
            return Err(HeadError::Closed);
        }
        if !line.is_empty() {
            break;
        }
        empty += 1;
        if empty > 4 {
            return Err(HeadError::Bad("empty lines instead of a request line"));
        }
    }
    let (method, target, version) = parse_request_line(&line)?;
    let mut headers = Vec::new();
    loop {
        if !read_line(r, &mut line, &mut budget)? {
            return Err(HeadError::Bad("request head ended early"));
        }
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        headers.push(parse_header_line(&line)?);
    }
    Ok(Request {
        method,
        target,
        version,
        headers,
    })
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad("request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Bad("invalid method"));
    }
    // Bytes above 0x7f are let through so that raw UTF-8 paths can be echoed.
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HeadError::Bad("invalid request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            // A higher 1.x minor version is answered as 1.1 (RFC 9110 section 6.2).
            if *major != b'1' {
                return Err(HeadError::Version);
            }
            Version::Http11
        }
        _ => return Err(HeadError::Bad("invalid HTTP version")),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((text(method), text(target), version))
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), HeadError> {
    if line[0] == b' ' || line[0] == b'\t' {
        return Err(HeadError::Bad("obsolete header line folding"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::Bad("header line without a colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Bad("invalid header name"));
    }
    let value = trim_ows(&line[colon + 1..]);
    if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(HeadError::Bad("control character in a header value"));
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Splits a request target into its path and query string, without any decoding.
/// An absolute-form target (`http://host/p?q`) yields `/p` and `q`.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let mut rest = target;
    if !target.starts_with('/') {
        if let Some(i) = target.find("://") {
            let after = &target[i + 3..];
            rest = match after.find(['/', '?']) {
                Some(j) if after.as_bytes()[j] == b'/' => &after[j..],
                Some(j) => return ("/", Some(&after[j + 1..])),
                None => "/",
            };
        }
    }
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// The raw value of the first `key=value` pair named `key` ("" for a bare `key`).
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// A numeric query parameter within `min..=max`, or `default` when absent.
fn query_u64(
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

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// How the request body is delimited, or the status and reason to refuse it with.
fn request_framing(req: &Request) -> Result<Framing, (u16, &'static str)> {
    if req.header("transfer-encoding").is_some() {
        if req.header("content-length").is_some() {
            return Err((400, "both Transfer-Encoding and Content-Length"));
        }
        if req.version == Version::Http10 {
            return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&str> = req
            .header_values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            [.., last] if last.eq_ignore_ascii_case("chunked") => {
                Err((501, "only the chunked transfer coding is supported"))
            }
            _ => Err((400, "Transfer-Encoding does not end in chunked")),
        };
    }
    let mut length = None;
    for part in req
        .header_values("content-length")
        .flat_map(|v| v.split(','))
    {
        let part = part.trim();
        if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err((400, "invalid Content-Length"));
        }
        let n: u64 = part.parse().map_err(|_| (400, "invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err((400, "conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

#[derive(Clone, Copy, Debug)]
enum BodyState {
    /// This many bytes of a Content-Length body, or of the current chunk, are left.
    Fixed {
        left: u64,
        chunked: bool,
    },
    ChunkSize,
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Done,
}

/// Reads a request body off the connection, decoding chunked framing. Ends at the body's
/// end and leaves whatever follows (a pipelined request) in `inner`.
struct Body<R> {
    inner: R,
    state: BodyState,
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: BufRead> Body<R> {
    fn new(inner: R, framing: Framing) -> Self {
        let state = match framing {
            Framing::None => BodyState::Done,
            Framing::Length(left) => BodyState::Fixed {
                left,
                chunked: false,
            },
            Framing::Chunked => BodyState::ChunkSize,
        };
        Body { inner, state }
    }

    /// One line of chunked framing, without its line ending.
    fn framing_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self
            .inner
            .by_ref()
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n > max {
            return Err(invalid("chunked framing line too long"));
        }
        if line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended early",
            ));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn skip_trailers(&mut self) -> io::Result<()> {
        let mut total = 0;
        loop {
            let line = self.framing_line(MAX_HEAD_BYTES)?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_HEAD_BYTES {
                return Err(invalid("chunked trailers too large"));
            }
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = trim_ows(&line[..end]);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("invalid chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| invalid("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| invalid("invalid chunk size"))
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Fixed { left, chunked } => {
                    let max = (buf.len() as u64).min(left) as usize;
                    let n = self.inner.read(&mut buf[..max])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "request body ended early",
                        ));
                    }
                    let left = left - n as u64;
                    self.state = match (left, chunked) {
                        (0, true) => BodyState::ChunkEnd,
                        (0, false) => BodyState::Done,
                        _ => BodyState::Fixed { left, chunked },
                    };
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let line = self.framing_line(MAX_CHUNK_LINE)?;
                    let size = parse_chunk_size(&line)?;
                    if size == 0 {
                        self.skip_trailers()?;
                        self.state = BodyState::Done;
                    } else {
                        self.state = BodyState::Fixed {
                            left: size,
                            chunked: true,
                        };
                    }
                }
                BodyState::ChunkEnd => {
                    if !self.framing_line(2)?.is_empty() {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }
}

/// Reads `r` to its end in fixed-size pieces, handing each to `f`. Returns the length.
fn for_each_piece(r: &mut impl Read, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                total += n as u64;
                f(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What was kept of a request body.
enum Consumed {
    Drained,
    /// The length and the first `ECHO_BODY_LIMIT` bytes.
    Captured(u64, Vec<u8>),
    /// The length and the SHA-256.
    Hashed(u64, [u8; 32]),
}

// ---------------------------------------------------------------------------------------
// Connections and responses
// ---------------------------------------------------------------------------------------

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: SocketAddr,
}

/// How the response to the current request is written.
struct Ctx<'a> {
    head: bool,
    keep_alive: bool,
    http10: bool,
    name: Option<&'a str>,
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A header value is written only if it cannot break the header block.
fn header_safe(v: &str) -> bool {
    !v.bytes().any(|b| b < b' ' && b != b'\t')
}

/// The status line and the headers every response carries; no final blank line.
fn head_common(out: &mut Vec<u8>, ctx: &Ctx, status: u16, headers: &[(&str, &str)]) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: wakeproxy-testbackend\r\n",
        reason(status)
    );
    if let Some(name) = ctx.name.filter(|n| header_safe(n)) {
        let _ = write!(out, "X-Backend-Name: {name}\r\n");
    }
    if !ctx.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if ctx.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
}

/// Writes a complete response with `Content-Length`; HEAD gets the headers only.
fn respond(
    w: &mut impl Write,
    ctx: &Ctx,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256 + body.len());
    head_common(&mut out, ctx, status, headers);
    let bodyless = matches!(status, 204 | 304);
    if !bodyless {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    if !ctx.head && !bodyless {
        out.extend_from_slice(body);
    }
    w.write_all(&out)?;
    w.flush()
}

fn respond_text(w: &mut impl Write, ctx: &Ctx, status: u16, body: &str) -> io::Result<()> {
    respond(
        w,
        ctx,
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    )
}

fn respond_json(w: &mut impl Write, ctx: &Ctx, body: &str) -> io::Result<()> {
    respond(
        w,
        ctx,
        200,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// Streams a body in pieces: chunked over HTTP/1.1, close-delimited over HTTP/1.0.
struct Streamer<'a, W: Write> {
    w: &'a mut W,
    chunked: bool,
    head: bool,
}

impl<'a, W: Write> Streamer<'a, W> {
    fn start(w: &'a mut W, ctx: &mut Ctx, headers: &[(&str, &str)]) -> io::Result<Self> {
        let chunked = !ctx.http10;
        if !chunked {
            ctx.keep_alive = false;
        }
        let mut out = Vec::with_capacity(256);
        head_common(&mut out, ctx, 200, headers);
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
        w.write_all(&out)?;
        w.flush()?;
        Ok(Streamer {
            w,
            chunked,
            head: ctx.head,
        })
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.head || data.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(data.len() + 16);
        if self.chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        out.extend_from_slice(data);
        if self.chunked {
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out)?;
        self.w.flush()
    }

    fn finish(self) -> io::Result<()> {
        if self.chunked && !self.head {
            self.w.write_all(b"0\r\n\r\n")?;
        }
        self.w.flush()
    }
}

/// Refuses a request with a short text body and closes the connection.
fn reject(conn: &mut Conn, name: Option<&str>, head: bool, status: u16, msg: &str) {
    let ctx = Ctx {
        head,
        keep_alive: false,
        http10: false,
        name,
    };
    let _ = respond_text(&mut conn.writer, &ctx, status, &format!("{msg}\n"));
    linger_close(conn);
}

/// Closes after an error without resetting the connection: a close with unread input
/// makes the kernel send RST, which can destroy the error response before it is read.
fn linger_close(conn: &mut Conn) {
    let _ = conn.writer.shutdown(Shutdown::Write);
    let _ = conn
        .writer
        .set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    let mut budget: usize = 1 << 20;
    while budget > 0 && Instant::now() < deadline {
        match conn.reader.get_mut().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

fn handle_connection(stream: TcpStream, peer: SocketAddr, config: &Config) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut conn = Conn {
        reader: BufReader::with_capacity(16 * 1024, stream),
        writer,
        peer,
    };
    let name = config.name.as_deref();
    loop {
        let req = match read_head(&mut conn.reader) {
            Ok(req) => req,
            Err(HeadError::Closed | HeadError::Io) => return,
            Err(HeadError::Bad(msg)) => return reject(&mut conn, name, false, 400, msg),
            Err(HeadError::TooLarge) => {
                return reject(&mut conn, name, false, 431, "request head too large");
            }
            Err(HeadError::Version) => {
                return reject(&mut conn, name, false, 505, "only HTTP/1.x is supported");
            }
        };
        match serve_request(&mut conn, &req, config) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
}

/// The endpoints.
enum Route<'a> {
    Health,
    Stream,
    Sse,
    Status(&'a str),
    Cookies,
    Gzip,
    Sleep,
    Alloc,
    Sink,
    WebSocket,
    WsPage,
    Echo,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        match path {
            "/health" => Route::Health,
            "/stream" => Route::Stream,
            "/sse" => Route::Sse,
            "/cookies" => Route::Cookies,
            "/gzip" => Route::Gzip,
            "/sleep" => Route::Sleep,
            "/alloc" => Route::Alloc,
            "/sink" => Route::Sink,
            "/ws" => Route::WebSocket,
            "/wspage" => Route::WsPage,
            _ => match path.strip_prefix("/status/") {
                Some(code) => Route::Status(code),
                None => Route::Echo,
            },
        }
    }
}

/// Answers one request. Returns whether the connection stays open for another.
fn serve_request(conn: &mut Conn, req: &Request, config: &Config) -> io::Result<bool> {
    let name = config.name.as_deref();
    let head = req.method == "HEAD";
    let framing = match request_framing(req) {
        Ok(framing) => framing,
        Err((status, msg)) => {
            reject(conn, name, head, status, msg);
            return Ok(false);
        }
    };
    if framing != Framing::None
        && req.version == Version::Http11
        && req.has_token("expect", "100-continue")
    {
        conn.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let (path, query) = split_target(&req.target);
    let route = Route::of(path);

    let consumed = {
        let mut body = Body::new(&mut conn.reader, framing);
        match route {
            Route::Echo => {
                let mut kept = Vec::new();
                for_each_piece(&mut body, |piece| {
                    let room = ECHO_BODY_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&piece[..piece.len().min(room)]);
                })
                .map(|total| Consumed::Captured(total, kept))
            }
            Route::Sink => {
                let mut hasher = Sha256::new();
                for_each_piece(&mut body, |piece| hasher.update(piece))
                    .map(|total| Consumed::Hashed(total, hasher.finish()))
            }
            _ => io::copy(&mut body, &mut io::sink()).map(|_| Consumed::Drained),
        }
    };
    let consumed = match consumed {
        Ok(consumed) => consumed,
        Err(e) => {
            let status = match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => 408,
                _ => 400,
            };
            reject(conn, name, head, status, &format!("bad request body: {e}"));
            return Ok(false);
        }
    };

    let mut ctx = Ctx {
        head,
        keep_alive: req.keep_alive(),
        http10: req.version == Version::Http10,
        name,
    };
    let w = &mut conn.writer;
    match route {
        Route::Health if config.fail_health => respond_text(w, &ctx, 500, "unhealthy")?,
        Route::Health => respond_text(w, &ctx, 200, "ok")?,
        Route::Status(code) => match code.parse::<u16>() {
            Ok(status @ 200..=599) if code.len() == 3 => {
                let body = if status == 205 {
                    String::new()
                } else {
                    format!("status {status}\n")
                };
                respond_text(w, &ctx, status, &body)?;
            }
            _ => respond_text(w, &ctx, 400, "status must be three digits in 200..=599\n")?,
        },
        Route::Cookies => {
            let headers = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2; Path=/"),
                ("Set-Cookie", "c=3; HttpOnly"),
            ];
            respond(w, &ctx, 200, &headers, b"three cookies\n")?;
        }
        Route::WsPage => {
            let headers = [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
            ];
            respond(w, &ctx, 200, &headers, WS_PAGE.as_bytes())?;
        }
        Route::Gzip => {
            let headers = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Encoding", "gzip"),
            ];
            respond(w, &ctx, 200, &headers, GZIP_BODY)?;
        }
        Route::Sleep => match query_u64(query, "ms", 1000, 0, MAX_MS) {
            Ok(ms) => {
                thread::sleep(Duration::from_millis(ms));
                respond_text(w, &ctx, 200, "slept")?;
            }
            Err(msg) => respond_text(w, &ctx, 400, &format!("{msg}\n"))?,
        },
        Route::Alloc => match query_u64(query, "mb", 64, 1, 4096) {
            Ok(mb) => {
                // Touch every page so the memory is really used (and a mem_limit bites).
                let mut held: Vec<Vec<u8>> = Vec::new();
                for _ in 0..mb {
                    held.push(vec![1u8; 1 << 20]);
                }
                let total: usize = held.iter().map(|v| v.len()).sum();
                respond_text(w, &ctx, 200, &format!("allocated {} MiB", total >> 20))?;
            }
            Err(msg) => respond_text(w, &ctx, 400, &format!("{msg}\n"))?,
        },
        Route::Stream => {
            let params = (|| {
                Ok::<_, String>((
                    query_u64(query, "chunks", 5, 0, 10_000_000)?,
                    query_u64(query, "interval_ms", 200, 0, MAX_MS)?,
                    query_u64(query, "size", 16, 1, 16 << 20)?,
                ))
            })();
            match params {
                Ok((chunks, interval, size)) => {
                    let headers = [("Content-Type", "text/plain; charset=utf-8")];
                    let mut s = Streamer::start(w, &mut ctx, &headers)?;
                    for i in 0..chunks {
                        if i > 0 {
                            thread::sleep(Duration::from_millis(interval));
                        }
                        s.send(&stream_chunk(i, size as usize))?;
                    }
                    s.finish()?;
                }
                Err(msg) => respond_text(w, &ctx, 400, &format!("{msg}\n"))?,
            }
        }
        Route::Sse => {
            let params = (|| {
                Ok::<_, String>((
                    query_u64(query, "events", 5, 0, u64::MAX)?,
                    query_u64(query, "interval_ms", 200, 0, MAX_MS)?,
                ))
            })();
            match params {
                Ok((events, interval)) => {
                    let headers = [
                        ("Content-Type", "text/event-stream"),
                        ("Cache-Control", "no-cache"),
                    ];
                    let mut s = Streamer::start(w, &mut ctx, &headers)?;
                    let mut i = 0u64;
                    while !ctx.head && (events == 0 || i < events) {
                        if i > 0 {
                            thread::sleep(Duration::from_millis(interval));
                        }
                        // A write error means the client went away.
                        let sent_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis());
                        s.send(format!("data: event {i} t={sent_ms}\n\n").as_bytes())?;
                        i += 1;
                    }
                    s.finish()?;
                }
                Err(msg) => respond_text(w, &ctx, 400, &format!("{msg}\n"))?,
            }
        }
        Route::Sink => {
            let Consumed::Hashed(total, digest) = consumed else {
                unreachable!()
            };
            respond_json(
                w,
                &ctx,
                &format!("{{\"bytes\":{total},\"sha256\":\"{}\"}}\n", hex(&digest)),
            )?;
        }
        Route::Echo => {
            let Consumed::Captured(total, kept) = consumed else {
                unreachable!()
            };
            let text = if total < ECHO_BODY_LIMIT as u64 {
                std::str::from_utf8(&kept).ok()
            } else {
                None
            };
            let json = echo_json(name, req, path, query, total, text, conn.peer);
            respond_json(w, &ctx, &json)?;
        }
        Route::WebSocket => return serve_websocket(conn, req, &ctx),
    }
    Ok(ctx.keep_alive)
}

/// Chunk `i` of `/stream`: `chunk 0000.....\n` padded with dots (or cut) to `size` bytes.
fn stream_chunk(i: u64, size: usize) -> Vec<u8> {
    let mut chunk = format!("chunk {i:04}").into_bytes();
    chunk.resize(size, b'.');
    if let Some(last) = chunk.last_mut() {
        *last = b'\n';
    }
    chunk
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// Appends `s` as a JSON string: quotes and backslashes escaped, control characters as
/// `\u00XX`.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_json_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

fn echo_json(
    name: Option<&str>,
    req: &Request,
    path: &str,
    query: Option<&str>,
    body_bytes: u64,
    body: Option<&str>,
    peer: SocketAddr,
) -> String {
    let mut out = String::with_capacity(512 + body.map_or(0, str::len));
    out.push_str("{\"name\":");
    push_json_opt(&mut out, name);
    out.push_str(",\"method\":");
    push_json_str(&mut out, &req.method);
    out.push_str(",\"target\":");
    push_json_str(&mut out, &req.target);
    out.push_str(",\"path\":");
    push_json_str(&mut out, path);
    out.push_str(",\"query\":");
    push_json_opt(&mut out, query);
    out.push_str(",\"headers\":[");
    for (i, (n, v)) in req.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_str(&mut out, n);
        out.push(',');
        push_json_str(&mut out, v);
        out.push(']');
    }
    out.push_str(&format!("],\"body_bytes\":{body_bytes},\"body\":"));
    push_json_opt(&mut out, body);
    out.push_str(",\"peer\":");
    push_json_str(&mut out, &peer.to_string());
    out.push_str("}\n");
    out
}

// ---------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------

fn websocket_accept(key: &str) -> String {
    base64(&sha1(format!("{}{WS_GUID}", key.trim()).as_bytes()))
}

fn serve_websocket(conn: &mut Conn, req: &Request, ctx: &Ctx) -> io::Result<bool> {
    let key = req
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let upgrade = req.method == "GET"
        && req.version == Version::Http11
        && req.has_token("upgrade", "websocket")
        && req.has_token("connection", "upgrade");
    let (Some(key), true) = (key, upgrade) else {
        let msg = "expected a WebSocket upgrade: GET over HTTP/1.1 with Connection: Upgrade, \
                   Upgrade: websocket and Sec-WebSocket-Key\n";
        let headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Upgrade", "websocket"),
        ];
        respond(&mut conn.writer, ctx, 426, &headers, msg.as_bytes())?;
        return Ok(ctx.keep_alive);
    };
    if req
        .header("sec-websocket-version")
        .is_some_and(|v| v.trim() != "13")
    {
        let headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Sec-WebSocket-Version", "13"),
        ];
        respond(
            &mut conn.writer,
            ctx,
            426,
            &headers,
            b"only WebSocket version 13 is supported\n",
        )?;
        return Ok(ctx.keep_alive);
    }
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        websocket_accept(key)
    );
    // Agree to the first subprotocol offered, so clients that insist on one still connect.
    let protocol = req
        .header_values("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .next();
    if let Some(p) = protocol
        .map(str::trim)
        .filter(|p| !p.is_empty() && header_safe(p))
    {
        let _ = write!(out, "Sec-WebSocket-Protocol: {p}\r\n");
    }
    if let Some(name) = ctx.name.filter(|n| header_safe(n)) {
        let _ = write!(out, "X-Backend-Name: {name}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    conn.writer.write_all(&out)?;
    conn.writer.flush()?;
    let result = websocket_echo(&mut conn.reader, &mut conn.writer);
    let _ = conn.writer.shutdown(Shutdown::Write);
    result.map(|()| false)
}

#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

#[derive(Debug)]
enum FrameError {
    Io(io::Error),
    /// Close the connection with this status code.
    Close(u16),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Reads one client frame (which must be masked) and unmasks its payload.
fn read_frame(r: &mut impl Read) -> Result<Frame, FrameError> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let fin = h[0] & 0x80 != 0;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    if h[0] & 0x70 != 0 || !masked || !matches!(opcode, 0..=2 | 8..=10) {
        return Err(FrameError::Close(1002));
    }
    if opcode >= 8 && (!fin || len > 125) {
        return Err(FrameError::Close(1002));
    }
    if len > WS_MAX_PAYLOAD {
        return Err(FrameError::Close(1009));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask)?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

/// Writes one unmasked server frame.
fn write_frame(w: &mut impl Write, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    w.write_all(&out)?;
    w.flush()
}

/// Echoes data frames (fragments included) as they come, answers ping with pong, and
/// returns once a close frame has been answered.
fn websocket_echo(r: &mut impl Read, w: &mut impl Write) -> io::Result<()> {
    loop {
        match read_frame(r) {
            Ok(Frame {
                fin,
                opcode: opcode @ 0..=2,
                payload,
            }) => write_frame(w, fin, opcode, &payload)?,
            Ok(Frame {
                opcode: 9, payload, ..
            }) => write_frame(w, true, 10, &payload)?,
            Ok(Frame { opcode: 10, .. }) => {}
            Ok(Frame { payload, .. }) => {
                // Close: echo the status code; a lone byte or a reserved code is an error.
                let reply = match payload.get(..2) {
                    None if payload.is_empty() => Vec::new(),
                    None => 1002u16.to_be_bytes().to_vec(),
                    Some(code) => {
                        let code = u16::from_be_bytes([code[0], code[1]]);
                        let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
                        if valid { code } else { 1002 }.to_be_bytes().to_vec()
                    }
                };
                return write_frame(w, true, 8, &reply);
            }
            Err(FrameError::Close(code)) => return write_frame(w, true, 8, &code.to_be_bytes()),
            Err(FrameError::Io(e)) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// SHA-256, SHA-1, base64, hex
// ---------------------------------------------------------------------------------------

const SHA256_K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Streaming SHA-256 (FIPS 180-4).
struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    block_len: usize,
    total: u64,
}

impl Sha256 {
    fn new() -> Self {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            block_len: 0,
            total: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            if self.block_len == 0 && data.len() >= 64 {
                sha256_compress(&mut self.state, &data[..64]);
                data = &data[64..];
                continue;
            }
            let take = (64 - self.block_len).min(data.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == 64 {
                let block = self.block;
                sha256_compress(&mut self.state, &block);
                self.block_len = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        while self.block_len != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

fn be_words<const N: usize>(block: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (w, b) in w.iter_mut().zip(block.chunks_exact(4)) {
        *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    w
}

fn sha256_compress(state: &mut [u32; 8], block: &[u8]) {
    let mut w: [u32; 64] = be_words(block);
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (k, w) in SHA256_K.iter().zip(w) {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(*k)
            .wrapping_add(w);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// One-shot SHA-1 (FIPS 180-4), for the WebSocket handshake only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64).wrapping_mul(8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w: [u32; 80] = be_words(block);
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, w) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a827999),
                20..=39 => (b ^ c ^ d, 0x6ed9eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1bbcdc),
                _ => (b ^ c ^ d, 0xca62c1d6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*w);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (s, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, s) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sha256_hex(data: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(data);
        hex(&h.finish())
    }

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn sha256_streaming_matches_one_shot() {
        // A million 'a' (FIPS 180-2 appendix B.3), fed in uneven pieces that straddle blocks.
        let data = vec![b'a'; 1_000_000];
        let mut h = Sha256::new();
        let mut rest = &data[..];
        for size in [1usize, 63, 64, 65, 7, 128, 1000, 55, 56, 57]
            .iter()
            .cycle()
        {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            h.update(&rest[..n]);
            rest = &rest[n..];
        }
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        assert_eq!(hex(&h.finish()), expected);
        assert_eq!(sha256_hex(&data), expected);
        // Lengths around the padding boundary.
        for len in 50..=130 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut h = Sha256::new();
            for b in &data {
                h.update(std::slice::from_ref(b));
            }
            assert_eq!(hex(&h.finish()), sha256_hex(&data), "len {len}");
        }
    }

    #[test]
    fn sha1_known_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn websocket_accept_rfc6455_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            websocket_accept(" dGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// Decodes `input` as a chunked body; returns the body and what is left after it.
    fn dechunk(input: &[u8], read_size: usize) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut cursor = Cursor::new(input);
        let mut body = Vec::new();
        {
            let mut reader = Body::new(&mut cursor, Framing::Chunked);
            let mut buf = vec![0u8; read_size];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
        }
        let pos = cursor.position() as usize;
        Ok((body, input[pos..].to_vec()))
    }

    #[test]
    fn chunked_decoding() {
        let input =
            b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        for read_size in [1, 3, 1024] {
            let (body, rest) = dechunk(input, read_size).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(rest, b"GET / HTTP/1.1\r\n", "pipelined bytes stay unread");
        }
        // Extensions, upper-case hex, leading zeros, bare LF, trailers.
        let input =
            b"0A;name=value\r\n0123456789\r\n001 ; x\n!\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
        let (body, rest) = dechunk(input, 64).unwrap();
        assert_eq!(body, b"0123456789!");
        assert!(rest.is_empty());
        // An empty body.
        assert_eq!(dechunk(b"0\r\n\r\n", 8).unwrap().0, b"");
    }

    #[test]
    fn chunked_decoding_rejects_malformed_input() {
        let bad: [&[u8]; 8] = [
            b"x\r\nabc\r\n0\r\n\r\n",         // not hex
            b"\r\nabc\r\n0\r\n\r\n",          // empty size
            b"3\r\nabcd\r\n0\r\n\r\n",        // data longer than the size
            b"3\r\nab",                       // truncated data
            b"3\r\nabc\r\n0\r\n",             // no end of trailers
            b"ffffffffffffffffff\r\nabc\r\n", // size overflows
            b"-1\r\nabc\r\n0\r\n\r\n",        // negative
            b"3 4\r\nabc\r\n0\r\n\r\n",       // junk inside the size
        ];
        for input in bad {
            assert!(
                dechunk(input, 16).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn content_length_body_stops_at_its_end() {
        let mut cursor = Cursor::new(&b"helloNEXT"[..]);
        let mut body = Vec::new();
        Body::new(&mut cursor, Framing::Length(5))
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(cursor.position(), 5);
        let mut short = Cursor::new(&b"hel"[..]);
        let err = Body::new(&mut short, Framing::Length(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn json_escaping() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\te\u{1}\u{1f}/é€😀\u{7f}");
        assert_eq!(
            out,
            r#""a\"b\\c\u000ad\u0009e\u0001\u001f/é€😀"#.to_string() + "\u{7f}\""
        );
        let mut out = String::new();
        push_json_opt(&mut out, None);
        assert_eq!(out, "null");
    }

    #[test]
    fn echo_json_shape() {
        let req = Request {
            method: "POST".into(),
            target: "/a%20b?x=1&y".into(),
            version: Version::Http11,
            headers: vec![
                ("Host".into(), "h".into()),
                ("set-cookie".into(), "a=1".into()),
                ("Set-Cookie".into(), "b=\"2\"".into()),
            ],
        };
        let (path, query) = split_target(&req.target);
        let peer: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let json = echo_json(Some("n1"), &req, path, query, 3, Some("hi\n"), peer);
        assert_eq!(
            json,
            "{\"name\":\"n1\",\"method\":\"POST\",\"target\":\"/a%20b?x=1&y\",\"path\":\"/a%20b\",\
             \"query\":\"x=1&y\",\"headers\":[[\"Host\",\"h\"],[\"set-cookie\",\"a=1\"],\
             [\"Set-Cookie\",\"b=\\\"2\\\"\"]],\"body_bytes\":3,\"body\":\"hi\\u000a\",\
             \"peer\":\"127.0.0.1:4242\"}\n"
        );
    }

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
    fn body_framing() {
        let req = |version, headers: &[(&str, &str)]| Request {
            method: "POST".into(),
            target: "/".into(),
            version,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        let v11 = Version::Http11;
        assert_eq!(request_framing(&req(v11, &[])), Ok(Framing::None));
        assert_eq!(
            request_framing(&req(v11, &[("Content-Length", "0")])),
            Ok(Framing::None)
        );
        assert_eq!(
            request_framing(&req(v11, &[("content-length", "12")])),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            request_framing(&req(
                v11,
                &[("Content-Length", "5, 5"), ("Content-Length", "5")]
            )),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing(&req(v11, &[("Transfer-Encoding", "Chunked")])),
            Ok(Framing::Chunked)
        );
        let refused: [&[(&str, &str)]; 6] = [
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "+5")],
            &[("Content-Length", "")],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            &[("Transfer-Encoding", "chunked, gzip")],
            &[("Transfer-Encoding", "gzip, chunked")],
        ];
        for headers in refused {
            assert!(request_framing(&req(v11, headers)).is_err(), "{headers:?}");
        }
        assert!(
            request_framing(&req(Version::Http10, &[("Transfer-Encoding", "chunked")])).is_err()
        );
    }

    #[test]
    fn websocket_frames() {
        // RFC 6455 section 5.7: a masked "Hello".
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let frame = read_frame(&mut &masked[..]).unwrap();
        assert_eq!(
            frame,
            Frame {
                fin: true,
                opcode: 1,
                payload: b"Hello".to_vec()
            }
        );
        let mut out = Vec::new();
        write_frame(&mut out, true, 1, b"Hello").unwrap();
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut out = Vec::new();
        write_frame(&mut out, true, 2, &[0; 256]).unwrap();
        assert_eq!(out[..4], [0x82, 126, 1, 0]);
        // Unmasked client frames are a protocol error.
        assert!(matches!(
            read_frame(&mut &[0x81, 0x00][..]),
            Err(FrameError::Close(1002))
        ));

        // Ping then close, through the echo loop.
        let input = [0x89, 0x80, 1, 2, 3, 4, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
        let mut out = Vec::new();
        websocket_echo(&mut &input[..], &mut out).unwrap();
        assert_eq!(out, [0x8a, 0x00, 0x88, 0x02, 0x03, 0xe8]);
    }

    #[test]
    fn misc() {
        assert_eq!(stream_chunk(0, 16), b"chunk 0000.....\n");
        assert_eq!(stream_chunk(12345, 4), b"chu\n");
        assert_eq!(stream_chunk(7, 1), b"\n");
        assert_eq!(parse_status_line("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line("HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(parse_status_line("SSH-2.0\r\n"), None);
        // The gzip member's trailer holds the uncompressed size, 11 bytes.
        assert_eq!(GZIP_BODY[..2], [0x1f, 0x8b]);
        assert_eq!(GZIP_BODY[GZIP_BODY.len() - 4..], 11u32.to_le_bytes());
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert_eq!(
            args(&["--check"]).unwrap().check.as_deref(),
            Some("/health")
        );
        assert_eq!(
            args(&["--check", "/x"]).unwrap().check.as_deref(),
            Some("/x")
        );
        assert_eq!(
            args(&["--listen", "127.0.0.1:0"])
                .unwrap()
                .listen
                .as_deref(),
            Some("127.0.0.1:0")
        );
        assert!(args(&["--check", "x"]).is_err());
        assert!(args(&["--listen"]).is_err());
    }
}
