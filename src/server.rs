//! Accepting connections: the listener, one thread per connection with an explicit stack size,
//! the connection cap, and the per-connection loop that reads request heads with a deadline.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::answer::Answer;
use crate::http::head::{parse_request, HeadError};
use crate::http::{BufStream, RequestHead, Socket};
use crate::proxy::Proxy;
use crate::tls::{TlsStream, HANDSHAKE_TIMEOUT};
use crate::tunnel::SharedTcp;

/// Stack of a connection thread: room for TLS handshakes in debug builds (see the crate notes).
pub const STACK_SIZE: usize = 256 * 1024;
/// Initial read buffer per client connection; grows up to `MAX_HEAD` for large heads.
const CLIENT_BUF: usize = 8 * 1024;
/// Largest request head accepted (431 above).
pub const MAX_HEAD: usize = 64 * 1024;
/// Time allowed to receive a whole request head once it has started.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may wait for a free slot at `max_connections` before its 503.
const FULL_WAIT: Duration = Duration::from_millis(250);
/// Longest pause between two reads of a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Time an idle keep-alive connection is kept open (equal to the body stall limit, so a
/// keep-alive connection's read timeout stays the same from request to request).
const KEEP_ALIVE_TIMEOUT: Duration = BODY_READ_TIMEOUT;
/// Time a write to a client may block (a client that stops reading is dropped).
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// A bound listener ready to serve.
pub struct Server {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    proto: &'static str,
    /// TLS listeners hand each connection to rustls first (on the connection's thread).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    pub fn bind(addr: SocketAddr, proxy: Arc<Proxy>) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            proxy,
            proto: "http",
            tls: None,
        })
    }

    /// A TLS listener: every connection is a TLS handshake first, then the same proxy.
    pub fn bind_tls(
        addr: SocketAddr,
        proxy: Arc<Proxy>,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            proxy,
            proto: "https",
            tls: Some(tls),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Takes a connection slot; at the cap, waits up to `FULL_WAIT` for one to free up (new
    /// connections queue in the accept backlog meanwhile) before giving up.
    fn wait_for_slot(&self, max: usize) -> bool {
        let deadline = Instant::now() + FULL_WAIT;
        loop {
            let open = self.proxy.connections.fetch_add(1, Ordering::AcqRel);
            if open < max {
                return true;
            }
            self.proxy.connections.fetch_sub(1, Ordering::AcqRel);
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Accepts until the proxy starts draining.
    pub fn run(self) {
        let max = self.proxy.gen().config.global.max_connections;
        let mut last_full_log: Option<Instant> = None;
        if let Ok(a) = self.listener.local_addr() {
            self.proxy.drain.add_listener(a);
        }
        loop {
            let accepted = self.listener.accept();
            if self.proxy.drain.is_draining() {
                break; // dropping the listener stops accepting
            }
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if !self.wait_for_slot(max) {
                if last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    log::warn!(
                        "connection limit reached ({max} open): refusing new connections with 503"
                    );
                    last_full_log = Some(Instant::now());
                }
                if self.tls.is_none() {
                    refuse(stream);
                }
                continue;
            }
            let proxy = self.proxy.clone();
            let proto = self.proto;
            let tls = self.tls.clone();
            let workers = self.proxy.workers.clone();
            let spawned = workers.execute(move || {
                let _slot = Slot(&proxy);
                serve_connection(&proxy, stream, peer, proto, tls);
            });
            if let Err(e) = spawned {
                // The closure (and its Slot) was never run: give the slot back by hand.
                self.proxy.connections.fetch_sub(1, Ordering::AcqRel);
                log::error!("cannot start a connection thread: {e}");
            }
        }
    }
}

/// Releases a connection slot when the connection thread ends, even by panic.
struct Slot<'a>(&'a Proxy);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let a = Answer::Unavailable {
        detail: "the proxy is at its connection limit".into(),
        retry_after: 1,
    };
    let _ = stream.write_all(&a.render(false, false));
}

fn serve_connection(
    proxy: &Proxy,
    stream: TcpStream,
    peer: SocketAddr,
    proto: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let stream = Arc::new(stream);
    let registered = proxy.drain.register(&stream);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    let Some(tls) = tls else {
        serve_client(
            proxy,
            &mut BufStream::new(SharedTcp(stream), CLIENT_BUF, MAX_HEAD),
            peer,
            proto,
            &registered,
        );
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
    serve_client(proxy, &mut client, peer, proto, &registered);
    client.inner.close_notify();
}

/// The request loop of one client connection, plain or TLS.
fn serve_client<C: Socket>(
    proxy: &Proxy,
    client: &mut BufStream<C>,
    peer: SocketAddr,
    proto: &str,
    registered: &crate::drain::Registered<'_>,
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
            Err(a) => {
                log::info!(target: "access", "{} bad request head: {} {}", peer.ip(), a.status(), a.detail());
                let _ = client.write_all(&a.render(false, false));
                linger(client);
                return;
            }
        };
        if !proxy.handle(client, &head, peer, proto) {
            return;
        }
    }
}

/// Closes gracefully after an error answer: stop writing, then read and discard what the
/// client is still sending (briefly), so the kernel does not reset the connection and destroy
/// the answer before the client reads it. Out of line: its sink buffer would otherwise enlarge
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
pub fn read_head<C: Socket>(
    client: &mut BufStream<C>,
    idle: Duration,
    peer: SocketAddr,
) -> Result<Option<RequestHead>, Answer> {
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
                        Answer::HeadersTooLarge
                    } else {
                        Answer::UriTooLong
                    });
                }
                Ok(None) => {}
                Err(HeadError::TooManyHeaders) => return Err(Answer::HeadersTooLarge),
                Err(e) => return Err(Answer::BadRequest(e.to_string())),
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
