//! A server-side TLS connection over a blocking `TcpStream`, usable as a client `Socket` by
//! the request loop and, split into halves, by a tunnel (WebSockets).
//!
//! rustls's connection state cannot be split, so both directions share it behind a mutex, and
//! the mutex is never held during a blocking socket operation:
//! - reading: the socket is read *outside* the lock into a stack buffer; the bytes are then
//!   decrypted under the lock;
//! - writing: plaintext is encrypted under the lock into the socket-write buffer; the
//!   socket-write lock is taken before the state lock is released, so records leave in the
//!   order they were made, and the socket write itself happens after the state lock is gone.
//!
//! So a client that stops reading stalls only the direction that writes to it, never the one
//! that reads from it. Lock order is always state, then socket-write.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use rustls::ServerConnection;

use crate::base::socket::{Closer, HalfWrite, Halves, Socket};

/// Ciphertext read from the socket at once while data streams in (a TLS record is at most about
/// 16.7 KiB; rustls keeps partial records itself).
const READ_CHUNK: usize = 16 * 1024;
/// Ciphertext read at once onto the stack otherwise: requests are small, and a connection
/// blocked waiting for its next one keeps no more stack than this. A read that fills it
/// switches to a `READ_CHUNK` heap buffer, kept only while reads keep filling it.
const READ_SMALL: usize = 4 * 1024;
/// rustls refuses more ciphertext while this much plaintext waits to be read.
const PLAINTEXT_LIMIT: usize = 16 * 1024;
/// The socket-write buffer is trimmed back to this after a large write.
const WRITE_BUF_KEEP: usize = 32 * 1024;

/// State shared by the connection and its tunnel halves.
struct Link {
    tcp: Arc<TcpStream>,
    conn: Mutex<ServerConnection>,
    /// One reader at a time, and its buffers.
    rx: Mutex<Rx>,
    /// The socket-write lock and its reusable buffer of encrypted records.
    tx: Mutex<Vec<u8>>,
}

/// The reading side's buffers.
#[derive(Default)]
struct Rx {
    /// Ciphertext read from the socket but not yet accepted by rustls (only when its plaintext
    /// buffer was full).
    pending: Vec<u8>,
    /// The `READ_CHUNK` buffer while data streams in; empty otherwise.
    large: Vec<u8>,
}

/// A TLS connection after its handshake.
pub(crate) struct TlsStream {
    shared: Arc<Link>,
}

impl TlsStream {
    /// A connection whose handshake was driven elsewhere (by the poller), for blocking use;
    /// `pending` is ciphertext read from the socket that rustls has not taken yet.
    pub(crate) fn from_parts(
        tcp: Arc<TcpStream>,
        (conn, pending): (ServerConnection, Vec<u8>),
    ) -> TlsStream {
        TlsStream {
            shared: Arc::new(Link {
                tcp,
                conn: Mutex::new(conn),
                rx: Mutex::new(Rx {
                    pending,
                    large: Vec::new(),
                }),
                tx: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Back into the socket, the connection state and ciphertext read but not yet given to
    /// rustls, to wait in the poller. Fails (giving the stream back) while tunnel halves share it.
    pub(crate) fn into_parts(self) -> Result<(Arc<TcpStream>, ServerConnection, Vec<u8>), Self> {
        match Arc::try_unwrap(self.shared) {
            Ok(link) => Ok((
                link.tcp,
                link.conn.into_inner(),
                link.rx.into_inner().pending,
            )),
            Err(shared) => Err(TlsStream { shared }),
        }
    }

    /// Input is held here that the socket would not show: ciphertext rustls has not taken, or
    /// plaintext not read yet (rustls then does not ask for more: `wants_read` is false, as it
    /// is after the client's close_notify, when holding on is right too).
    pub(crate) fn holds_input(&self) -> bool {
        !self.shared.rx.lock().pending.is_empty() || !self.shared.conn.lock().wants_read()
    }

    /// The negotiated protocol version, e.g. `TLSv1_3`.
    #[cfg(test)]
    pub(crate) fn protocol(&self) -> Option<rustls::ProtocolVersion> {
        self.shared.conn.lock().protocol_version()
    }

    /// Sends close_notify (best effort): the client learns the connection ended on purpose.
    pub(crate) fn close_notify(&self) {
        let _ = self.shared.close_notify();
    }
}

impl Link {
    /// Writes what rustls has queued (records, alerts) to the socket. Takes the socket-write
    /// lock before releasing the state lock, then writes with only the socket-write lock held.
    fn flush_queued(&self, mut conn: MutexGuard<'_, ServerConnection>) -> io::Result<()> {
        if !conn.wants_write() {
            return Ok(());
        }
        let mut out = self.tx.lock();
        while conn.wants_write() {
            conn.write_tls(&mut *out)?;
        }
        drop(conn);
        let res = (&*self.tcp).write_all(&out);
        out.clear();
        if out.capacity() > WRITE_BUF_KEEP {
            out.shrink_to(WRITE_BUF_KEEP);
        }
        res
    }

    /// Hands ciphertext to rustls and decrypts it. What rustls cannot take yet (its plaintext
    /// buffer is full) goes back to `pending`. Alerts and other records it produced are sent.
    fn feed(
        &self,
        mut conn: MutexGuard<'_, ServerConnection>,
        data: &[u8],
        pending: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut rest = data;
        let mut failure = None;
        while !rest.is_empty() {
            match conn.read_tls(&mut rest) {
                // close_notify already received: nothing more is read.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            match conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() > PLAINTEXT_LIMIT => {
                    pending.extend_from_slice(rest);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(io::Error::new(io::ErrorKind::InvalidData, e));
                    break;
                }
            }
        }
        let flushed = self.flush_queued(conn);
        match failure {
            Some(e) => Err(e),
            None => flushed,
        }
    }

    fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut rx = self.rx.lock();
        loop {
            {
                let mut conn = self.conn.lock();
                match conn.reader().read(out) {
                    // Ok(0): the client sent close_notify.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // UnexpectedEof: the TCP connection ended without close_notify.
                    Err(e) => return Err(e),
                }
                if !rx.pending.is_empty() {
                    let data = std::mem::take(&mut rx.pending);
                    self.feed(conn, &data, &mut rx.pending)?;
                    continue;
                }
            }
            if !self.read_socket(&mut rx)? {
                // EOF: rustls records it, and the reader then says how the stream ended.
                let mut conn = self.conn.lock();
                conn.read_tls(&mut io::empty())?;
                conn.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
    }

    /// One blocking socket read with no lock held (timeouts come back as WouldBlock/TimedOut),
    /// fed to rustls; false at end of stream. Out of line so its buffer is not part of the
    /// callers' frames: the stack of a connection waiting here is all it keeps while idle.
    #[inline(never)]
    fn read_socket(&self, rx: &mut Rx) -> io::Result<bool> {
        let mut small = [0u8; READ_SMALL];
        let mut large = std::mem::take(&mut rx.large);
        let buf: &mut [u8] = if large.is_empty() {
            &mut small
        } else {
            &mut large
        };
        let n = (&*self.tcp).read(buf)?;
        if n == 0 {
            return Ok(false);
        }
        let filled = n == buf.len();
        self.feed(self.conn.lock(), &buf[..n], &mut rx.pending)?;
        if filled {
            // More is likely waiting: read it in large chunks.
            rx.large = if large.is_empty() {
                vec![0; READ_CHUNK]
            } else {
                large
            };
        }
        Ok(true)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = self.conn.lock();
        let n = conn.writer().write(buf)?;
        self.flush_queued(conn)?;
        Ok(n)
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.conn.lock();
        let n = conn.writer().write_vectored(bufs)?;
        self.flush_queued(conn)?;
        Ok(n)
    }

    fn close_notify(&self) -> io::Result<()> {
        let mut conn = self.conn.lock();
        conn.send_close_notify();
        self.flush_queued(conn)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.shared.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Every write is sent before it returns.
        Ok(())
    }
}

impl Socket for TlsStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.shared.tcp.set_read_timeout(t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.shared.tcp.set_write_timeout(t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        let _ = self.shared.close_notify();
        self.shared.tcp.shutdown(Shutdown::Write)
    }
    /// Drops the socket-write buffer: it holds the capacity of the largest write so far (the
    /// handshake flight, or up to `WRITE_BUF_KEEP` after a large response), which an idle
    /// connection does not need.
    fn release_buffers(&self) {
        if let Some(mut tx) = self.shared.tx.try_lock()
            && tx.is_empty()
        {
            *tx = Vec::new();
        }
    }
    fn tunnel_halves(&self) -> io::Result<Halves> {
        Ok(Halves {
            read: Box::new(Half(self.shared.clone())),
            write: Box::new(Half(self.shared.clone())),
            closer: Closer::new(self.shared.tcp.clone()),
        })
    }
}

/// One tunnel half (the read or the write side) of a TLS connection.
struct Half(Arc<Link>);

impl Read for Half {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Half {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfWrite for Half {
    /// close_notify, then TCP FIN: the client sees a clean end of this direction.
    fn close_write(&mut self) -> io::Result<()> {
        let _ = self.0.close_notify();
        self.0.tcp.shutdown(Shutdown::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tls::tests::certs::*;
    use crate::tls::tests::handshake;
    use std::time::Instant;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, StreamOwned};
    use std::net::TcpListener;

    fn client(
        addr: std::net::SocketAddr,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> StreamOwned<ClientConnection, TcpStream> {
        let conn = ClientConnection::new(
            client_config(versions),
            ServerName::try_from("test.example").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        StreamOwned::new(conn, tcp)
    }

    /// A listener whose first connection is handed to `serve` after the handshake.
    fn serve(
        serve: impl FnOnce(TlsStream) + Send + 'static,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cfg = server_config();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let tls = handshake(Arc::new(s), cfg, Duration::from_secs(10)).unwrap();
            let mut alpn = None;
            if let Some(p) = tls.shared.conn.lock().alpn_protocol() {
                alpn = Some(p.to_vec());
            }
            assert_eq!(
                alpn.as_deref(),
                Some(&b"http/1.1"[..]),
                "ALPN picks http/1.1"
            );
            serve(tls)
        });
        (addr, h)
    }

    #[test]
    fn request_and_answer_over_tls_1_3_and_1_2() {
        for (versions, want) in [
            (
                &[&rustls::version::TLS13][..],
                rustls::ProtocolVersion::TLSv1_3,
            ),
            (
                &[&rustls::version::TLS12][..],
                rustls::ProtocolVersion::TLSv1_2,
            ),
        ] {
            let (addr, h) = serve(move |mut s| {
                assert_eq!(s.protocol(), Some(want));
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"hello");
                s.write_all(b"world").unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                assert!(
                    rest.is_empty(),
                    "close_notify reads as a clean end of stream"
                );
            });
            let mut c = client(addr, versions);
            c.write_all(b"hello").unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"world");
            c.conn.send_close_notify();
            c.flush().unwrap();
            h.join().unwrap();
        }
    }

    #[test]
    fn large_transfers_both_ways_then_idle_buffers_are_released() {
        // In: far more than one small read, so reads switch to the large buffer and back.
        // Out: a large answer leaves capacity in the socket-write buffer until released.
        const UP: usize = 200 * 1024;
        const DOWN: usize = 64 * 1024;
        let pattern = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 % 251) as u8).collect() };
        let (addr, h) = serve(move |mut s| {
            let mut got = vec![0u8; UP];
            s.read_exact(&mut got).unwrap();
            assert!(got == pattern(UP), "upload arrives intact");
            s.write_all(&pattern(DOWN)).unwrap();
            assert!(s.shared.tx.lock().capacity() > 0);
            s.release_buffers();
            assert_eq!(s.shared.tx.lock().capacity(), 0);
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        });
        let mut c = client(addr, &[&rustls::version::TLS13]);
        c.write_all(&pattern(UP)).unwrap();
        let mut back = vec![0u8; DOWN];
        c.read_exact(&mut back).unwrap();
        assert!(back == pattern(DOWN), "answer arrives intact");
        c.conn.send_close_notify();
        c.flush().unwrap();
        h.join().unwrap();
    }

    #[test]
    fn a_tcp_close_without_close_notify_is_an_error_not_an_end() {
        let (addr, h) = serve(|mut s| {
            let mut buf = [0u8; 16];
            let e = s.read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        });
        let c = client(addr, &[&rustls::version::TLS13]);
        let mut c = c;
        c.write_all(b"").unwrap();
        // Finish the handshake, then drop the TCP connection without close_notify.
        while c.conn.is_handshaking() {
            c.conn.complete_io(&mut c.sock).unwrap();
        }
        c.sock.shutdown(Shutdown::Both).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn tunnel_halves_read_while_the_write_side_is_blocked() {
        // The server echoes through independent halves: one thread reads, another writes. The
        // client writes everything before reading a byte, so the server's writes block on a
        // full socket; its reads must go on regardless (no lock held across socket I/O).
        const TOTAL: usize = 32 << 20;
        let (addr, h) = serve(|s| {
            let halves = s.tunnel_halves().unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let mut read = halves.read;
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match read.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => tx.send(buf[..n].to_vec()).unwrap(),
                        Err(e) => panic!("server read: {e}"),
                    }
                }
            });
            let mut write = halves.write;
            for chunk in rx {
                write.write_all(&chunk).unwrap();
            }
            write.close_write().unwrap();
            reader.join().unwrap();
        });
        let mut c = client(addr, &[&rustls::version::TLS13]);
        let data: Vec<u8> = (0..TOTAL).map(|i| (i * 7 % 251) as u8).collect();
        c.write_all(&data).unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), TOTAL);
        assert!(back == data, "echo differs");
        h.join().unwrap();
    }

    #[test]
    fn a_handshake_that_never_comes_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _idle = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let t0 = Instant::now();
        let e = handshake(Arc::new(s), server_config(), Duration::from_millis(300))
            .err()
            .unwrap();
        assert_eq!(e.0.kind(), io::ErrorKind::TimedOut, "{e}");
        // A deadline, not a speed: without the timeout it would wait for ever.
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
}
