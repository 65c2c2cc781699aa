//! One connection while it waits in the poller: its non-blocking socket, TLS state while it
//! has one, the bytes of a request head as they arrive, and what each readiness event brings
//! (more to wait for, a complete head, a bad head, or the end).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::http::head::{HeadError, parse_request};
use crate::http::{Problem, RequestHead};
use crate::tls::waiting::TlsWaiting;

use super::Seat;
use super::admission::{LINGER_BYTES, Stage};

/// Largest request head accepted (431 above).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Bytes read from a plain socket at once.
const READ_CHUNK: usize = 4 * 1024;

/// A connection waiting in the poller.
pub(crate) struct Waiting {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// On the HTTPS listener: the TLS state (dropped once lingering).
    pub(super) tls: Option<Box<TlsWaiting>>,
    /// Plaintext received that is not yet a complete request head.
    pub(super) buf: Vec<u8>,
    pub(super) stage: Stage,
    /// When the stage began (for a head: its first byte).
    pub(super) since: Instant,
    /// The connection's slot, given back when it closes.
    pub(super) seat: Seat,
    /// Bytes read and dropped while lingering.
    lingered: usize,
}

/// A connection whose request head is complete: the first `len` bytes of its buffer.
pub(crate) struct Ready {
    pub(super) waiting: Waiting,
    pub(super) head: Box<RequestHead>,
    pub(super) len: usize,
    pub(super) queued: Instant,
}

/// What a readiness event brought.
#[derive(Debug)]
pub(super) enum Arrival {
    /// Nothing complete yet; `write` when TLS records wait for the socket to be writable.
    Wait { write: bool },
    /// A complete request head: the first `len` bytes of `buf`.
    Head(Box<RequestHead>, usize),
    /// A malformed or oversized head: answer with this, then linger.
    Bad(Problem),
    /// Over: the client closed, the socket failed, or lingering is done.
    Gone,
}

impl Waiting {
    pub(super) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<Box<TlsWaiting>>,
        stage: Stage,
        since: Instant,
        seat: Seat,
    ) -> Waiting {
        Waiting {
            stream,
            peer,
            tls,
            buf: Vec::new(),
            stage,
            since,
            seat,
            lingered: 0,
        }
    }

    /// The socket is readable (or writable, for TLS records held back): take what is there.
    pub(super) fn on_ready(&mut self, now: Instant) -> Arrival {
        if self.stage == Stage::Linger {
            return self.drop_input();
        }
        let before = self.buf.len();
        let (closed, write) = match self.receive(now) {
            Ok(got) => got,
            Err(_) => return Arrival::Gone,
        };
        if self.buf.len() > before && matches!(self.stage, Stage::New | Stage::Idle) {
            self.stage = Stage::Head;
            self.since = now;
        }
        if !self.buf.is_empty()
            && self.stage == Stage::Head
            && let Some(done) = self.parse()
        {
            return done;
        }
        match closed {
            true => Arrival::Gone,
            false => Arrival::Wait { write },
        }
    }

    /// Reads into `buf`: (the client closed, TLS records wait to be written).
    fn receive(&mut self, now: Instant) -> io::Result<(bool, bool)> {
        let Some(tls) = &mut self.tls else {
            return Ok((read_plain(&self.stream, &mut self.buf, MAX_HEAD)?, false));
        };
        let was_handshaking = tls.is_handshaking();
        let p = tls.pump(&self.stream, &mut self.buf, MAX_HEAD)?;
        if was_handshaking && p.established {
            // The head's first byte is still to come: wait for it as for a new connection.
            self.stage = Stage::New;
            self.since = now;
        }
        Ok((p.closed, p.wants_write))
    }

    /// A complete head, a bad one, or `None` to wait for more.
    fn parse(&mut self) -> Option<Arrival> {
        match parse_request(&self.buf) {
            Ok(Some((n, head))) => Some(Arrival::Head(Box::new(head), n)),
            Ok(None) if self.buf.len() >= MAX_HEAD => {
                Some(Arrival::Bad(match self.buf.contains(&b'\n') {
                    true => Problem::HeadersTooLarge,
                    false => Problem::UriTooLong,
                }))
            }
            Ok(None) => None,
            Err(HeadError::TooManyHeaders) => Some(Arrival::Bad(Problem::HeadersTooLarge)),
            Err(e) => Some(Arrival::Bad(Problem::BadRequest(e.to_string()))),
        }
    }

    /// Lingering: reads and drops what the client still sends.
    fn drop_input(&mut self) -> Arrival {
        let mut sink = [0u8; READ_CHUNK];
        loop {
            match (&self.stream).read(&mut sink) {
                Ok(0) => return Arrival::Gone,
                Ok(n) => {
                    self.lingered += n;
                    if self.lingered >= LINGER_BYTES {
                        return Arrival::Gone;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Arrival::Wait { write: false };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Arrival::Gone,
            }
        }
    }
}

/// Reads a non-blocking socket into `buf` (up to `max` bytes in all) until it has nothing more:
/// a read that fills less than it asked for took all there was, so it stops there instead of
/// asking again to be told so (one system call less per request; what comes later wakes the
/// poller again). Returns whether the client closed.
fn read_plain(stream: &TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    let mut chunk = [0u8; READ_CHUNK];
    while buf.len() < max {
        let room = (max - buf.len()).min(READ_CHUNK);
        match (&*stream).read(&mut chunk[..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if n < room {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}
