//! Connections and endpoints: the request loop of one connection, routing on the path,
//! reading the body as the endpoint needs it, and every endpoint's answer.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::body::{Body, Framing, for_each_piece, request_framing};
use crate::echo::echo_json;
use crate::head::{HeadError, Request, Version, query_u64, read_head, split_target};
use crate::response::{Conn, Ctx, Streamer, reject, respond, respond_json, respond_text};
use crate::websocket::serve_websocket;

/// Read and write timeout of every connection, including idle keep-alive.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The echo includes the body as a string only below this size.
const ECHO_BODY_LIMIT: usize = 64 * 1024;
/// Upper bound for every `*ms` query parameter: one hour.
const MAX_MS: u64 = 3_600_000;

/// Settings shared by all connections.
pub struct Config {
    /// `NAME`, if set.
    pub name: Option<String>,
    pub fail_health: bool,
}

/// Serves requests on one connection until it closes, fails or must not be kept alive.
pub fn handle_connection(stream: TcpStream, peer: SocketAddr, config: &Config) {
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

/// What was kept of a request body.
enum Consumed {
    Drained,
    /// The length and the first `ECHO_BODY_LIMIT` bytes.
    Captured(u64, Vec<u8>),
    /// The length and the SHA-256.
    Hashed(u64, [u8; 32]),
}

/// Reads the whole request body, keeping what the route answers with.
fn consume_body(body: &mut impl Read, route: &Route) -> io::Result<Consumed> {
    match route {
        Route::Echo => {
            let mut kept = Vec::new();
            let total = for_each_piece(body, |piece| {
                let room = ECHO_BODY_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&piece[..piece.len().min(room)]);
            })?;
            Ok(Consumed::Captured(total, kept))
        }
        Route::Sink => {
            let (total, digest) = sha256_of(body)?;
            Ok(Consumed::Hashed(total, digest))
        }
        _ => io::copy(body, &mut io::sink()).map(|_| Consumed::Drained),
    }
}

/// The length and SHA-256 of everything `r` yields.
fn sha256_of(r: &mut impl Read) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let total = for_each_piece(r, |piece| hasher.update(piece))?;
    Ok((total, hasher.finalize().into()))
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
    let consumed = match consume_body(&mut Body::new(&mut conn.reader, framing), &route) {
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
    match (route, consumed) {
        (Route::WebSocket, _) => return serve_websocket(conn, req, &ctx),
        (Route::Health, _) if config.fail_health => respond_text(w, &ctx, 500, "unhealthy")?,
        (Route::Health, _) => respond_text(w, &ctx, 200, "ok")?,
        (Route::Status(code), _) => status(w, &ctx, code)?,
        (Route::Cookies, _) => cookies(w, &ctx)?,
        (Route::WsPage, _) => ws_page(w, &ctx)?,
        (Route::Gzip, _) => gzip(w, &ctx)?,
        (Route::Sleep, _) => sleep(w, &ctx, query)?,
        (Route::Alloc, _) => alloc(w, &ctx, query)?,
        (Route::Stream, _) => stream(w, &mut ctx, query)?,
        (Route::Sse, _) => sse(w, &mut ctx, query)?,
        (_, Consumed::Hashed(total, digest)) => {
            let json = format!("{{\"bytes\":{total},\"sha256\":\"{}\"}}\n", hex(&digest));
            respond_json(w, &ctx, &json)?;
        }
        (_, Consumed::Captured(total, kept)) => {
            let text = if total < ECHO_BODY_LIMIT as u64 {
                std::str::from_utf8(&kept).ok()
            } else {
                None
            };
            let json = echo_json(name, req, path, query, total, text, conn.peer);
            respond_json(w, &ctx, &json)?;
        }
        (Route::Sink | Route::Echo, Consumed::Drained) => unreachable!("body not kept"),
    }
    Ok(ctx.keep_alive)
}

/// `/status/NNN`: that status with a short body (none for 204, 205 and 304).
fn status(w: &mut impl Write, ctx: &Ctx, code: &str) -> io::Result<()> {
    match code.parse::<u16>() {
        Ok(status @ 200..=599) if code.len() == 3 => {
            let body = if status == 205 {
                String::new()
            } else {
                format!("status {status}\n")
            };
            respond_text(w, ctx, status, &body)
        }
        _ => respond_text(w, ctx, 400, "status must be three digits in 200..=599\n"),
    }
}

/// `/cookies`: three `Set-Cookie` header lines, and a fourth that tries to set the proxy's
/// own session cookie (which the proxy must drop).
fn cookies(w: &mut impl Write, ctx: &Ctx) -> io::Result<()> {
    let headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2; Path=/"),
        ("Set-Cookie", "c=3; HttpOnly"),
        ("Set-Cookie", "wakeproxy_session=set-by-the-app; Path=/"),
    ];
    respond(w, ctx, 200, &headers, b"three cookies\n")
}

/// `/wspage`: the browser's WebSocket test page.
fn ws_page(w: &mut impl Write, ctx: &Ctx) -> io::Result<()> {
    let headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Cache-Control", "no-store"),
    ];
    respond(w, ctx, 200, &headers, WS_PAGE.as_bytes())
}

/// `/gzip`: a gzip-encoded text body.
fn gzip(w: &mut impl Write, ctx: &Ctx) -> io::Result<()> {
    let headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Encoding", "gzip"),
    ];
    respond(w, ctx, 200, &headers, GZIP_BODY)
}

/// `/sleep?ms=N`: waits, then 200 `slept`.
fn sleep(w: &mut impl Write, ctx: &Ctx, query: Option<&str>) -> io::Result<()> {
    match query_u64(query, "ms", 1000, 0, MAX_MS) {
        Ok(ms) => {
            thread::sleep(Duration::from_millis(ms));
            respond_text(w, ctx, 200, "slept")
        }
        Err(msg) => respond_text(w, ctx, 400, &format!("{msg}\n")),
    }
}

/// `/alloc?mb=N`: allocates and holds N MiB while answering.
fn alloc(w: &mut impl Write, ctx: &Ctx, query: Option<&str>) -> io::Result<()> {
    match query_u64(query, "mb", 64, 1, 4096) {
        Ok(mb) => {
            // Touch every page so the memory is really used (and a mem_limit bites).
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mb {
                held.push(vec![1u8; 1 << 20]);
            }
            let total: usize = held.iter().map(|v| v.len()).sum();
            respond_text(w, ctx, 200, &format!("allocated {} MiB", total >> 20))
        }
        Err(msg) => respond_text(w, ctx, 400, &format!("{msg}\n")),
    }
}

/// `/stream?chunks=N&interval_ms=M&size=S`: N pieces of S bytes, M ms apart.
fn stream(w: &mut impl Write, ctx: &mut Ctx, query: Option<&str>) -> io::Result<()> {
    let params = (|| {
        Ok::<_, String>((
            query_u64(query, "chunks", 5, 0, 10_000_000)?,
            query_u64(query, "interval_ms", 200, 0, MAX_MS)?,
            query_u64(query, "size", 16, 1, 16 << 20)?,
        ))
    })();
    let (chunks, interval, size) = match params {
        Ok(params) => params,
        Err(msg) => return respond_text(w, ctx, 400, &format!("{msg}\n")),
    };
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    let mut s = Streamer::start(w, ctx, &headers)?;
    for i in 0..chunks {
        if i > 0 {
            thread::sleep(Duration::from_millis(interval));
        }
        s.send(&stream_chunk(i, size as usize))?;
    }
    s.finish()
}

/// `/sse?events=N&interval_ms=M`: N server-sent events M ms apart (forever for N = 0).
fn sse(w: &mut impl Write, ctx: &mut Ctx, query: Option<&str>) -> io::Result<()> {
    let params = (|| {
        Ok::<_, String>((
            query_u64(query, "events", 5, 0, u64::MAX)?,
            query_u64(query, "interval_ms", 200, 0, MAX_MS)?,
        ))
    })();
    let (events, interval) = match params {
        Ok(params) => params,
        Err(msg) => return respond_text(w, ctx, 400, &format!("{msg}\n")),
    };
    let headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
    ];
    let mut s = Streamer::start(w, ctx, &headers)?;
    let mut i = 0u64;
    while !ctx.head && (events == 0 || i < events) {
        if i > 0 {
            thread::sleep(Duration::from_millis(interval));
        }
        // A write error means the client went away.
        let sent_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        s.send(format!("data: event {i} t={sent_ms}\n\n").as_bytes())?;
        i += 1;
    }
    s.finish()
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(data: &[u8]) -> String {
        let (total, digest) = sha256_of(&mut &data[..]).unwrap();
        assert_eq!(total, data.len() as u64);
        hex(&digest)
    }

    /// Yields its data in pieces of uneven sizes that straddle SHA-256 blocks.
    struct Uneven<'a> {
        rest: &'a [u8],
        sizes: std::iter::Cycle<std::slice::Iter<'static, usize>>,
    }

    impl Read for Uneven<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (*self.sizes.next().unwrap())
                .min(self.rest.len())
                .min(buf.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest = &self.rest[n..];
            Ok(n)
        }
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
        // A million 'a' (FIPS 180-2 appendix B.3), read in uneven pieces.
        let data = vec![b'a'; 1_000_000];
        const SIZES: [usize; 10] = [1, 63, 64, 65, 7, 128, 1000, 55, 56, 57];
        let mut uneven = Uneven {
            rest: &data,
            sizes: SIZES.iter().cycle(),
        };
        let (total, digest) = sha256_of(&mut uneven).unwrap();
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        assert_eq!((total, hex(&digest).as_str()), (1_000_000, expected));
        assert_eq!(sha256_hex(&data), expected);
        // Lengths around the padding boundary, one byte at a time.
        for len in 50..=130 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut bytewise = Uneven {
                rest: &data,
                sizes: [1].iter().cycle(),
            };
            let (_, digest) = sha256_of(&mut bytewise).unwrap();
            assert_eq!(hex(&digest), sha256_hex(&data), "len {len}");
        }
    }

    #[test]
    fn bodies_kept_per_route() {
        let body = vec![b'x'; ECHO_BODY_LIMIT + 10];
        match consume_body(&mut &body[..], &Route::Echo).unwrap() {
            Consumed::Captured(total, kept) => {
                assert_eq!((total, kept.len()), (body.len() as u64, ECHO_BODY_LIMIT));
            }
            _ => panic!("the echo keeps the body"),
        }
        assert!(matches!(
            consume_body(&mut &body[..], &Route::Sink).unwrap(),
            Consumed::Hashed(n, _) if n == body.len() as u64
        ));
        assert!(matches!(
            consume_body(&mut &body[..], &Route::Health).unwrap(),
            Consumed::Drained
        ));
    }

    #[test]
    fn misc() {
        assert_eq!(stream_chunk(0, 16), b"chunk 0000.....\n");
        assert_eq!(stream_chunk(12345, 4), b"chu\n");
        assert_eq!(stream_chunk(7, 1), b"\n");
        // The gzip member's trailer holds the uncompressed size, 11 bytes.
        assert_eq!(GZIP_BODY[..2], [0x1f, 0x8b]);
        assert_eq!(GZIP_BODY[GZIP_BODY.len() - 4..], 11u32.to_le_bytes());
        assert!(matches!(Route::of("/status/204"), Route::Status("204")));
        assert!(matches!(Route::of("/health/"), Route::Echo));
    }
}
