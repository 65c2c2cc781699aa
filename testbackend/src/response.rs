//! Writing responses: the status line and common headers, complete responses with
//! `Content-Length`, streamed bodies (chunked, or close-delimited over HTTP/1.0), and
//! refusing a request with an error and a clean close.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One client connection: its buffered read half and its write half.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub peer: SocketAddr,
}

/// How the response to the current request is written.
pub struct Ctx<'a> {
    pub head: bool,
    pub keep_alive: bool,
    pub http10: bool,
    pub name: Option<&'a str>,
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
pub fn header_safe(v: &str) -> bool {
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
pub fn respond(
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

pub fn respond_text(w: &mut impl Write, ctx: &Ctx, status: u16, body: &str) -> io::Result<()> {
    respond(
        w,
        ctx,
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    )
}

pub fn respond_json(w: &mut impl Write, ctx: &Ctx, body: &str) -> io::Result<()> {
    respond(
        w,
        ctx,
        200,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// Streams a body in pieces: chunked over HTTP/1.1, close-delimited over HTTP/1.0.
pub struct Streamer<'a, W: Write> {
    w: &'a mut W,
    chunked: bool,
    head: bool,
}

impl<'a, W: Write> Streamer<'a, W> {
    pub fn start(w: &'a mut W, ctx: &mut Ctx, headers: &[(&str, &str)]) -> io::Result<Self> {
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

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
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

    pub fn finish(self) -> io::Result<()> {
        if self.chunked && !self.head {
            self.w.write_all(b"0\r\n\r\n")?;
        }
        self.w.flush()
    }
}

/// Refuses a request with a short text body and closes the connection.
pub fn reject(conn: &mut Conn, name: Option<&str>, head: bool, status: u16, msg: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(head: bool, keep_alive: bool, http10: bool) -> Ctx<'static> {
        Ctx {
            head,
            keep_alive,
            http10,
            name: Some("n1"),
        }
    }

    #[test]
    fn complete_responses() {
        let mut out = Vec::new();
        respond_text(&mut out, &ctx(false, true, false), 200, "ok").unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: wakeproxy-testbackend\r\nX-Backend-Name: n1\r\n\
              Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nok"
        );
        let mut out = Vec::new();
        respond(&mut out, &ctx(true, false, false), 204, &[], b"x").unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nServer: wakeproxy-testbackend\r\nX-Backend-Name: n1\r\n\
              Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn streamed_responses() {
        let mut out = Vec::new();
        let mut c = ctx(false, true, false);
        let mut s = Streamer::start(&mut out, &mut c, &[]).unwrap();
        s.send(b"hello").unwrap();
        s.finish().unwrap();
        assert!(out.ends_with(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        // HTTP/1.0: close-delimited, and the connection is closed after it.
        let mut out = Vec::new();
        let mut c = ctx(false, true, true);
        let mut s = Streamer::start(&mut out, &mut c, &[]).unwrap();
        s.send(b"hello").unwrap();
        s.finish().unwrap();
        assert!(!c.keep_alive);
        assert!(out.ends_with(b"Connection: close\r\n\r\nhello"));
    }
}
