//! One client connection: the TLS handshake (on TLS listeners), then the request loop, which
//! reads each request head with deadlines (a first head must arrive within `HEAD_TIMEOUT`, an
//! idle keep-alive connection is closed after `KEEP_ALIVE_TIMEOUT`) and hands the request to
//! the pipeline.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::{SharedTcp, Socket};
use crate::http::head::{HeadError, parse_request};
use crate::http::{BufStream, Problem, Reply, RequestHead};
use crate::pipeline::{Conn, Next};
use crate::tls::{HANDSHAKE_TIMEOUT, TlsStream};

use super::Hub;
use super::drain::Registered;

/// Initial read buffer per client connection; grows up to `MAX_HEAD` for large heads.
const CLIENT_BUF: usize = 8 * 1024;
/// Largest request head accepted (431 above).
const MAX_HEAD: usize = 64 * 1024;
/// Time allowed to receive a whole request head once it has started.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two reads of a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Time an idle keep-alive connection is kept open (equal to the body stall limit, so a
/// keep-alive connection's read timeout stays the same from request to request).
const KEEP_ALIVE_TIMEOUT: Duration = BODY_READ_TIMEOUT;
/// Time a write to a client may block (a client that stops reading is dropped).
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Serves one connection until it closes.
pub(super) fn serve(
    hub: &Hub,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let stream = Arc::new(stream);
    let registered = hub.drain.register(&stream);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    let Some(tls) = tls else {
        let mut client = BufStream::new(SharedTcp(stream), CLIENT_BUF, MAX_HEAD);
        serve_client(hub, &mut client, peer, false, &registered);
        return;
    };
    // The handshake runs here, on the connection's own thread, within HANDSHAKE_TIMEOUT.
    let stream = match TlsStream::accept(stream, tls, HANDSHAKE_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            // A client that hangs up mid-handshake (a port check, a scanner) is routine; a
            // protocol failure or a stalled handshake is worth the operator's eye.
            if e.0.kind() == io::ErrorKind::UnexpectedEof {
                log::debug!("{peer}: {e}");
            } else {
                log::info!("{peer}: {e}");
            }
            return;
        }
    };
    let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    let mut client = BufStream::new(stream, CLIENT_BUF, MAX_HEAD);
    serve_client(hub, &mut client, peer, true, &registered);
    client.inner.close_notify();
}

/// The request loop of one client connection, plain or TLS.
fn serve_client<C: Socket>(
    hub: &Hub,
    client: &mut BufStream<C>,
    peer: SocketAddr,
    tls: bool,
    registered: &Registered<'_>,
) {
    let mut first = true;
    loop {
        let idle = if first {
            HEAD_TIMEOUT
        } else {
            KEEP_ALIVE_TIMEOUT
        };
        first = false;
        if !registered.set_idle(true) {
            return;
        }
        // Waiting for the next request holds no buffers (see `BufStream::release`).
        client.release();
        client.inner.release_buffers();
        let head = match read_head(client, idle, peer) {
            Ok(Some(h)) => {
                registered.set_idle(false);
                // While a body streams in, each read may wait this long (a stalled upload
                // is cut off instead of holding the connection forever).
                let _ = client.set_read_timeout(Some(BODY_READ_TIMEOUT));
                h
            }
            Ok(None) => return,
            Err(p) => {
                let (ip, status) = (peer.ip(), p.status());
                log::info!(target: "access", "{ip} bad request head: {status} {}", p.detail());
                let _ = client.write_all(&Reply::from(p).render(false, false));
                linger(client);
                return;
            }
        };
        let conn = Conn {
            peer,
            tls,
            draining: hub.drain.is_draining(),
            open_connections: &hub.open,
        };
        match hub.proxy.handle(client, &head, &conn) {
            Next::KeepAlive => {}
            Next::Close => return,
            Next::Linger => return linger(client),
        }
    }
}

/// Closes gracefully after an answer that ends the connection while the client may still be
/// sending: stop writing, then read and discard what the client sends (briefly), so the
/// kernel does not reset the connection and destroy the answer before the client reads it. Out of line: its sink buffer would otherwise enlarge
/// `serve_client`'s frame, and so the stack every connection touches.
#[inline(never)]
fn linger<C: Socket>(client: &mut BufStream<C>) {
    let _ = client.inner.shutdown_write();
    let end = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 1 << 20 {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || client.inner.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match client.inner.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Reads one request head. `Ok(None)` when the client closed or went quiet between requests
/// (or stalled mid-head past the deadline); `Err` carries the answer for a bad head.
fn read_head<C: Socket>(
    client: &mut BufStream<C>,
    idle: Duration,
    peer: SocketAddr,
) -> Result<Option<RequestHead>, Problem> {
    let mut deadline: Option<Instant> = None;
    loop {
        if !client.buffered().is_empty() {
            match parse_request(client.buffered()) {
                Ok(Some((n, head))) => {
                    client.consume_buffered(n);
                    return Ok(Some(head));
                }
                Ok(None) if client.is_full() => {
                    let line_done = client.buffered().contains(&b'\n');
                    return Err(if line_done {
                        Problem::HeadersTooLarge
                    } else {
                        Problem::UriTooLong
                    });
                }
                Ok(None) => {}
                Err(HeadError::TooManyHeaders) => return Err(Problem::HeadersTooLarge),
                Err(e) => return Err(Problem::BadRequest(e.to_string())),
            }
            deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => idle,
        };
        if wait.is_zero() {
            return Ok(None);
        }
        let _ = client.set_read_timeout(Some(wait));
        match client.fill_more() {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !is_routine_close(&e) {
                    log::info!("{peer}: connection closed while reading a request: {e}");
                }
                return Ok(None);
            }
        }
    }
}

/// How a client connection ends in the normal course: it went quiet, hung up or reset.
/// Anything else (a TLS record that does not decrypt, a local failure) is logged.
fn is_routine_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
