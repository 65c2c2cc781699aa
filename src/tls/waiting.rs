//! A TLS connection while it waits in the poller: the handshake and the bytes of a request
//! head arrive as the socket becomes readable, and rustls (sans-I/O) is fed what is there,
//! without ever blocking. Once a head is complete the connection becomes a blocking
//! `TlsStream` on a worker (`TlsStream::from_parts`), and comes back between requests.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// Plaintext read from rustls at once.
const PLAIN_CHUNK: usize = 4 * 1024;

/// What a readiness event brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pumped {
    /// Plaintext bytes appended.
    pub(crate) plain: usize,
    /// The handshake is over.
    pub(crate) established: bool,
    /// The client closed the connection (or sent close_notify).
    pub(crate) closed: bool,
    /// Records are waiting to be written: wait for the socket to be writable.
    pub(crate) wants_write: bool,
}

/// A server-side TLS connection driven from readiness events.
pub(crate) struct TlsWaiting {
    conn: ServerConnection,
    /// Ciphertext read from the socket that rustls did not take yet.
    pending: Vec<u8>,
}

impl TlsWaiting {
    pub(crate) fn new(config: Arc<ServerConfig>) -> io::Result<TlsWaiting> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsWaiting {
            conn,
            pending: Vec::new(),
        })
    }

    /// A connection that comes back from a worker between two requests.
    pub(crate) fn resume(conn: ServerConnection, pending: Vec<u8>) -> TlsWaiting {
        TlsWaiting { conn, pending }
    }

    /// The state for a worker (the socket then becomes blocking), with the ciphertext rustls
    /// has not taken yet.
    pub(crate) fn into_connection(self) -> (ServerConnection, Vec<u8>) {
        (self.conn, self.pending)
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Reads what the non-blocking socket has, lets rustls process it, appends plaintext to
    /// `plain` (up to `max` bytes in all) and writes what rustls wants to send, as far as the
    /// socket takes it. An error is a protocol failure (its alert has been sent).
    pub(crate) fn pump(
        &mut self,
        tcp: &TcpStream,
        plain: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<Pumped> {
        let before = plain.len();
        let mut closed = false;
        loop {
            let fed = self.feed(tcp, &mut closed)?;
            self.drain_plaintext(plain, max, &mut closed)?;
            if !fed || closed || plain.len() >= max {
                break;
            }
        }
        let wants_write = self.flush(tcp)?;
        Ok(Pumped {
            plain: plain.len() - before,
            established: !self.conn.is_handshaking(),
            closed,
            wants_write,
        })
    }

    /// Gives rustls one read's worth of ciphertext (the pending bytes first) and processes it.
    /// Returns whether anything was fed.
    fn feed(&mut self, tcp: &TcpStream, closed: &mut bool) -> io::Result<bool> {
        let fed = if self.pending.is_empty() {
            match self.conn.read_tls(&mut &*tcp) {
                Ok(0) => {
                    *closed = true;
                    return Ok(false);
                }
                Ok(_) => true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(e) => return Err(e),
            }
        } else {
            let mut rest = &self.pending[..];
            let n = self.conn.read_tls(&mut rest)?;
            self.pending.drain(..n);
            n > 0
        };
        if let Err(e) = self.conn.process_new_packets() {
            let _ = self.flush(tcp);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(fed)
    }

    fn drain_plaintext(
        &mut self,
        plain: &mut Vec<u8>,
        max: usize,
        closed: &mut bool,
    ) -> io::Result<()> {
        let mut chunk = [0u8; PLAIN_CHUNK];
        while plain.len() < max {
            let room = (max - plain.len()).min(PLAIN_CHUNK);
            match self.conn.reader().read(&mut chunk[..room]) {
                Ok(0) => {
                    *closed = true;
                    return Ok(());
                }
                Ok(n) => plain.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    *closed = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes queued records until the socket would block; returns whether some are left.
    pub(crate) fn flush(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut &*tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Encrypts `answer`, then close_notify, and writes as much as the socket takes now.
    pub(crate) fn answer_and_close(&mut self, tcp: &TcpStream, answer: &[u8]) {
        let _ = self.conn.writer().write_all(answer);
        self.conn.send_close_notify();
        let _ = self.flush(tcp);
    }
}
