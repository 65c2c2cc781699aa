//! A connection on a worker: its socket made blocking, each request run through the pipeline,
//! and after each answer a short grace period for the next request head. A hot keep-alive
//! connection (the next request follows at once) stays on its worker; one that goes quiet is
//! given back to the poller, with whatever part of a head has come.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use crate::base::{SharedTcp, Socket};
use crate::http::head::{HeadError, parse_request};
use crate::http::{BufStream, Problem, Reply, RequestHead};
use crate::pipeline::{Conn, Next, Signals};
use crate::tls::stream::TlsStream;
use crate::tls::waiting::TlsWaiting;

use super::admission::Stage;
use super::fairness::{self, Turn};
use super::waiting::{MAX_HEAD, Ready, Waiting};
use super::{Hub, Seat};

/// Initial read buffer of a connection on a worker; grows up to `MAX_HEAD` for large heads.
const CLIENT_BUF: usize = 8 * 1024;
/// Time a write to a client may block (a client that stops reading is dropped). Set on the
/// socket once, when it is accepted.
pub(super) const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a worker waits for the next request on a keep-alive connection before giving
/// the connection back to the poller. A client that sends its next request as soon as it has
/// the answer (a browser loading a page's assets, an API client in a loop, a benchmark) needs
/// one round trip plus its own turnaround; staying costs the worker this long per request (a
/// parked thread, no CPU), handing back costs two epoll calls, two socket mode changes and a
/// thread wake-up when the request comes. Measured with the benchmark's keep-alive load (wrk,
/// 64 connections, about 25,000 requests/s through one core): with 2 ms, 124,719 next requests
/// came within the grace and 259 connections went back (0.2%, mostly as wrk stopped); a client
/// with a pause between requests goes back after 2 ms and costs no thread while it thinks.
/// With more hot connections than workers, `fairness` decides when a worker lets go anyway.
const GRACE: Duration = Duration::from_millis(2);

/// Serves a connection whose request head is complete, until it closes or goes quiet.
/// `on_tunnel` is called when it becomes a tunnel.
pub(super) fn serve(hub: &Arc<Hub>, r: Ready, on_tunnel: &dyn Fn()) {
    let Ready {
        waiting: mut w,
        head,
        len,
        ..
    } = r;
    let mut rest = std::mem::take(&mut w.buf);
    rest.drain(..len);
    if w.stream.set_nonblocking(false).is_err() {
        return;
    }
    let tcp = Arc::new(w.stream);
    let on = On {
        hub,
        peer: w.peer,
        seat: w.seat,
        on_tunnel,
    };
    match w.tls {
        None => {
            let client = BufStream::with_buffered(SharedTcp(tcp), rest, CLIENT_BUF, MAX_HEAD);
            on.run(client, head, false);
        }
        Some(tls) => {
            let stream = TlsStream::from_parts(tcp, tls.into_connection());
            let client = BufStream::with_buffered(stream, rest, CLIENT_BUF, MAX_HEAD);
            on.run(client, head, true);
        }
    }
}

/// A connection's worker-side context.
struct On<'a> {
    hub: &'a Arc<Hub>,
    peer: SocketAddr,
    seat: Seat,
    on_tunnel: &'a dyn Fn(),
}

/// What came after an answer on a keep-alive connection.
enum After {
    Head(Box<RequestHead>),
    /// Nothing complete within the grace period; a head's first byte came at `.0`, if any.
    Quiet(Option<Instant>),
    Bad(Problem),
    Closed,
}

impl On<'_> {
    fn run<C: Resume>(self, mut client: BufStream<C>, mut head: Box<RequestHead>, tls: bool) {
        let taken = Instant::now();
        loop {
            let conn = Conn {
                peer: self.peer,
                tls,
                draining: self.hub.is_draining(),
                load: &self.hub.load,
                signals: &self,
            };
            match self.hub.proxy.handle(&mut client, &head, &conn) {
                Next::KeepAlive => {}
                Next::Close => return client.inner.finish(),
                Next::Linger => return self.linger(client),
            }
            if client.buffered().is_empty() && self.others_wait(taken) && client.inner.may_yield() {
                self.hub.load.yielded.fetch_add(1, Ordering::Relaxed);
                return self.give_back(client, None);
            }
            head = match next_head(&mut client) {
                After::Head(h) => {
                    self.hub.load.kept.fetch_add(1, Ordering::Relaxed);
                    h
                }
                After::Quiet(first_byte) => {
                    self.hub.load.handed_back.fetch_add(1, Ordering::Relaxed);
                    return self.give_back(client, first_byte);
                }
                After::Bad(p) => return self.refuse(client, p),
                After::Closed => return client.inner.finish(),
            };
        }
    }

    /// Other connections wait for a worker (`fairness` decides): then this worker does not keep
    /// its connection through the grace period but lets it queue behind the others, so that
    /// with more hot connections than workers each request waits its turn instead of the
    /// connections that hold a worker being served again and again.
    fn others_wait(&self, taken: Instant) -> bool {
        let load = &self.hub.load;
        let turn = Turn {
            queued: load.queued.load(Ordering::Relaxed),
            open: load.open.load(Ordering::Relaxed),
            busy: load.busy_workers.load(Ordering::Relaxed),
        };
        fairness::yields(turn, || taken.elapsed())
    }

    /// Back to the poller to wait for the next request.
    fn give_back<C: Resume>(self, mut client: BufStream<C>, first_byte: Option<Instant>) {
        let now = Instant::now();
        // An idle connection keeps no read buffer in the poller.
        client.release();
        let (socket, buf) = client.into_parts();
        let Some((stream, tls)) = socket.resume() else {
            return;
        };
        let (stage, since) = match first_byte {
            Some(t) => (Stage::Head, t),
            None => (Stage::Idle, now),
        };
        let mut w = Waiting::new(stream, self.peer, tls, stage, since, self.seat);
        w.buf = buf;
        self.hub.give_back(w);
    }

    /// Closes after an answer while the client may still be sending: the poller reads and
    /// drops what comes for a moment, so the answer is not lost to a reset.
    fn linger<C: Resume>(self, client: BufStream<C>) {
        let (socket, _) = client.into_parts();
        let _ = socket.shutdown_write();
        let Some((stream, _)) = socket.resume() else {
            return;
        };
        let w = Waiting::new(
            stream,
            self.peer,
            None,
            Stage::Linger,
            Instant::now(),
            self.seat,
        );
        self.hub.give_back(w);
    }

    /// A bad head after a keep-alive request.
    fn refuse<C: Resume>(self, mut client: BufStream<C>, p: Problem) {
        let ip = self.peer.ip();
        log::info!(target: "access", "{ip} bad request head: {} {}", p.status(), p.detail());
        let _ = client.write_all(&Reply::from(p).render(false, false));
        self.linger(client);
    }
}

impl Signals for On<'_> {
    fn authenticated(&self) -> bool {
        self.seat.vouch()
    }
    fn tunnel(&self) {
        (self.on_tunnel)();
    }
}

/// Waits up to `GRACE` for a complete request head after an answer. The socket's read timeout
/// stays at `GRACE` between requests (body reads set their own), so a hot connection costs no
/// system call beyond the read itself. The read buffer stays while the worker has the
/// connection (freeing and allocating it again cost a malloc and a copy per request); it is
/// freed when the connection goes back to the poller. The clock is read only when a head
/// comes in pieces (a clock read costs about 0.1 µs on a VM; a whole head in one read, the
/// common case, needs none): the first read waits `GRACE` by the socket's timeout, and a head
/// seen in part must be complete within `GRACE` of then.
fn next_head<C: Socket>(client: &mut BufStream<C>) -> After {
    let (mut first_byte, mut deadline) = (None, None);
    loop {
        if !client.buffered().is_empty() {
            match parse_request(client.buffered()) {
                Ok(Some((n, head))) => {
                    client.consume_buffered(n);
                    return After::Head(Box::new(head));
                }
                Ok(None) if client.is_full() => return After::Bad(too_large(client.buffered())),
                Ok(None) => {}
                Err(HeadError::TooManyHeaders) => return After::Bad(Problem::HeadersTooLarge),
                Err(e) => return After::Bad(Problem::BadRequest(e.to_string())),
            }
            let now = Instant::now();
            first_byte.get_or_insert(now);
            if now >= *deadline.get_or_insert(now + GRACE) {
                return After::Quiet(first_byte);
            }
        }
        if client.set_read_timeout(Some(GRACE)).is_err() {
            return After::Quiet(first_byte);
        }
        match client.fill_more() {
            Ok(0) => return After::Closed,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return After::Quiet(first_byte);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return After::Closed,
        }
    }
}

fn too_large(buffered: &[u8]) -> Problem {
    match buffered.contains(&b'\n') {
        true => Problem::HeadersTooLarge,
        false => Problem::UriTooLong,
    }
}

/// A client socket that can go back to waiting in the poller.
trait Resume: Socket + Sized {
    /// It may go back to the poller between requests to let waiting ones go first: nothing
    /// of the next request is held above the socket, where the poller would not see it.
    fn may_yield(&self) -> bool;
    /// The socket, non-blocking again, and its TLS state; `None` when it cannot go back
    /// (a tunnel still shares it).
    fn resume(self) -> Option<(TcpStream, Option<Box<TlsWaiting>>)>;
    /// The connection ends here.
    fn finish(&self) {}
}

fn unshare(tcp: Arc<TcpStream>) -> Option<TcpStream> {
    let tcp = Arc::try_unwrap(tcp).ok()?;
    tcp.set_nonblocking(true).ok()?;
    Some(tcp)
}

impl Resume for SharedTcp {
    fn may_yield(&self) -> bool {
        true
    }
    fn resume(self) -> Option<(TcpStream, Option<Box<TlsWaiting>>)> {
        Some((unshare(self.0)?, None))
    }
}

impl Resume for TlsStream {
    fn may_yield(&self) -> bool {
        !self.holds_input()
    }
    fn resume(self) -> Option<(TcpStream, Option<Box<TlsWaiting>>)> {
        let (tcp, conn, pending): (_, ServerConnection, _) = self.into_parts().ok()?;
        let tls = TlsWaiting::resume(conn, pending);
        Some((unshare(tcp)?, Some(Box::new(tls))))
    }
    fn finish(&self) {
        self.close_notify();
    }
}
