//! The socket seam: what a client connection needs from its socket (plain TCP or TLS), the TCP
//! socket shared between a connection and the drain registry, and the independent halves a
//! tunnel pumps through.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

/// What a connection needs from its socket beyond `Read + Write`: timeouts, shutdown, and
/// halves for a tunnel. Implemented for TCP here and for the TLS stream in `tls`.
pub trait Socket: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Independent read and write halves for a tunnel.
    fn tunnel_halves(&self) -> io::Result<Halves>;
    /// Frees buffers the socket keeps between uses (called before waiting idle).
    fn release_buffers(&self) {}
    /// The descriptor of a plain TCP socket, whose bytes the kernel may move by `splice(2)`
    /// without passing them through user space; `None` (the default) for anything else, so a
    /// TLS stream, whose bytes must be decrypted or encrypted here, never takes that path.
    fn raw_tcp(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn tunnel_halves(&self) -> io::Result<Halves> {
        tcp_halves(self)
    }
    fn raw_tcp(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

/// A TCP socket shared by whoever holds a clone: a client connection and the drain registry,
/// or the read half, write half and closer of a tunnel side.
pub(crate) struct SharedTcp(pub Arc<TcpStream>);

impl Read for SharedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    /// One `writev` for all slices (the default would send only the first one per call, so a
    /// response head and its body would leave in two packets).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for SharedTcp {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(t)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
    fn tunnel_halves(&self) -> io::Result<Halves> {
        Ok(shared_halves(self.0.clone()))
    }
    fn raw_tcp(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }
}

/// The write half of one side: besides writing, it can end its direction (half-close).
pub trait HalfWrite: Write + Send {
    /// Signals end of stream to the peer (TCP FIN; a TLS close_notify first for TLS).
    fn close_write(&mut self) -> io::Result<()>;
}

impl HalfWrite for SharedTcp {
    fn close_write(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
}

/// Read half, write half and closer of one side of a tunnel.
pub struct Halves {
    pub read: Box<dyn Read + Send>,
    pub write: Box<dyn HalfWrite>,
    pub closer: Closer,
}

/// Closes a side's socket in both directions from any thread (blocked reads return at once).
#[derive(Clone)]
pub struct Closer(Arc<TcpStream>);

impl Closer {
    pub fn new(s: Arc<TcpStream>) -> Closer {
        Closer(s)
    }
    pub fn close(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
    /// Sets the read timeout of the underlying socket (shared by every clone of it).
    pub fn set_read_timeout(&self, t: Duration) {
        let _ = self.0.set_read_timeout(Some(t));
    }
}

/// Independent halves of a plain TCP connection (one extra fd).
pub(crate) fn tcp_halves(s: &TcpStream) -> io::Result<Halves> {
    Ok(shared_halves(Arc::new(s.try_clone()?)))
}

/// Halves of a TCP connection that is already shared (no extra fd).
pub(crate) fn shared_halves(shared: Arc<TcpStream>) -> Halves {
    Halves {
        read: Box::new(SharedTcp(shared.clone())),
        write: Box::new(SharedTcp(shared.clone())),
        closer: Closer(shared),
    }
}

/// A connected pair of TCP sockets on 127.0.0.1 with 10 s read timeouts (for tests).
#[cfg(test)]
pub(crate) fn loopback_pair() -> (TcpStream, TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_shared_socket_writes_all_slices_in_one_call() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        let mut w = SharedTcp(Arc::new(a));
        let bufs = [io::IoSlice::new(b"head\r\n\r\n"), io::IoSlice::new(b"body")];
        assert_eq!(w.write_vectored(&bufs).unwrap(), 12);
        drop(w);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"head\r\n\r\nbody");
    }
}
