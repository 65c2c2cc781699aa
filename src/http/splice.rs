//! Bodies of known length between two plain TCP sockets, moved by `splice(2)`: the bytes that
//! came along with the head (already in the read buffer) go first by an ordinary write, then
//! the rest goes socket → pipe → socket without entering user space. Anything else (a TLS
//! side, a chunked body, a remainder too small to pay, a kernel that refuses) is copied.

use std::io::{self, BufRead, IoSlice};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::base::Socket;
use crate::base::pipe::{Lease, unsupported};

use super::BufStream;
use super::body::{CopyError, copy_body, eof, write_all_vectored};
use super::head::BodyKind;

/// A remainder of fewer bytes than this is copied, not spliced: below it the pipe's two
/// system calls per piece cost more than the copies they save. Measured: docs/benchmarks.md,
/// "Splicing bodies".
pub const SPLICE_MIN: u64 = 16 * 1024;

/// Which way a body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Request body, client to upstream.
    Request,
    /// Response body, upstream to client.
    Response,
}

/// Bytes moved by `splice(2)` since start, by direction.
static SPLICED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Body bytes moved by `splice(2)` since start (those that passed through user space are not
/// counted).
pub fn spliced_bytes(d: Direction) -> u64 {
    SPLICED[d as usize].load(Ordering::Relaxed)
}

/// A body source the kernel may splice from: a read buffer over a socket.
pub trait SpliceSource: BufRead {
    /// Bytes read from the socket already and not yet consumed.
    fn unread(&self) -> &[u8];
    /// The socket's descriptor, when it is plain TCP.
    fn tcp_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Prepares the next read from the socket (its deadline), or refuses it.
    fn arm(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Counts `n` bytes that left the socket by splice.
    fn spliced(&mut self, _n: usize) {}
    /// Says why a read from the socket failed.
    fn explain(&self, e: io::Error) -> io::Error {
        e
    }
}

impl<S: Socket> SpliceSource for BufStream<S> {
    fn unread(&self) -> &[u8] {
        self.buffered()
    }
    fn tcp_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.raw_tcp()
    }
}

/// Streams a body framed as `kind` from `src` to `dst`, after `prefix` (a head, or nothing),
/// as `copy_body` does, splicing a Content-Length body between plain TCP sockets. With
/// `chunked_out` the body is written with chunked framing (never spliced). Returns the
/// body's size.
#[allow(clippy::too_many_arguments)]
pub fn relay_body<R: SpliceSource + ?Sized, W: Socket + ?Sized>(
    kind: BodyKind,
    src: &mut R,
    dst: &mut W,
    prefix: &[u8],
    chunked_out: bool,
    limit: Option<u64>,
    dir: Direction,
    progress: &mut dyn FnMut(usize),
) -> Result<u64, CopyError> {
    match kind {
        BodyKind::Length(len) if !chunked_out => {
            relay_length(src, dst, prefix, len, limit, dir, progress)
        }
        _ => {
            dst.write_all(prefix).map_err(CopyError::Write)?;
            copy_body(kind, src, dst, chunked_out, limit, progress)
        }
    }
}

/// Relays exactly `len` bytes: `prefix` and the buffered bytes in one write, then the rest by
/// splice when both sides are plain TCP and at least `SPLICE_MIN` bytes are left, by copying
/// otherwise.
fn relay_length<R: SpliceSource + ?Sized, W: Socket + ?Sized>(
    src: &mut R,
    dst: &mut W,
    prefix: &[u8],
    len: u64,
    limit: Option<u64>,
    dir: Direction,
    progress: &mut dyn FnMut(usize),
) -> Result<u64, CopyError> {
    if limit.is_some_and(|l| len > l) {
        return Err(CopyError::TooLarge);
    }
    let first = src
        .unread()
        .len()
        .min(usize::try_from(len).unwrap_or(usize::MAX));
    let mut out = [IoSlice::new(prefix), IoSlice::new(&src.unread()[..first])];
    write_all_vectored(dst, &mut out).map_err(CopyError::Write)?;
    src.consume(first);
    if first > 0 {
        progress(first);
    }
    let mut left = len - first as u64;
    if splices(left, src.tcp_fd().is_some())
        && let Some(to) = dst.raw_tcp()
    {
        left -= splice_exact(src, to, left, dir, progress)?;
    }
    if left > 0 {
        copy_body(BodyKind::Length(left), src, dst, false, None, progress)?;
    }
    Ok(len)
}

/// Is a remainder of `left` bytes from a source that is (or is not) plain TCP spliced?
fn splices(left: u64, plain_source: bool) -> bool {
    plain_source && left >= SPLICE_MIN
}

/// Moves `left` bytes from `src`'s socket to socket `to` through this thread's pipe. Returns
/// how many moved: fewer only when the kernel cannot splice these sockets (or no pipe could
/// be made), and the rest is to be copied.
fn splice_exact<R: SpliceSource + ?Sized>(
    src: &mut R,
    to: BorrowedFd<'_>,
    left: u64,
    dir: Direction,
    progress: &mut dyn FnMut(usize),
) -> Result<u64, CopyError> {
    let Some(mut pipe) = Lease::take() else {
        return Ok(0);
    };
    let mut moved = 0;
    while moved < left {
        src.arm().map_err(CopyError::Read)?;
        let want = usize::try_from(left - moved).unwrap_or(usize::MAX);
        let filled = match src.tcp_fd() {
            Some(from) => pipe.fill(from, want),
            None => break,
        };
        let n = match filled {
            Ok(0) => return Err(eof()),
            Ok(n) => n,
            Err(e) if unsupported(&e) => break,
            Err(e) => return Err(CopyError::Read(src.explain(e))),
        };
        src.spliced(n);
        match pipe.drain(to) {
            Ok(()) => SPLICED[dir as usize].fetch_add(n as u64, Ordering::Relaxed),
            Err(e) if unsupported(&e) => {
                write_held(&mut pipe, to).map_err(CopyError::Write)?;
                moved += n as u64;
                progress(n);
                break;
            }
            Err(e) => return Err(CopyError::Write(e)),
        };
        moved += n as u64;
        progress(n);
    }
    Ok(moved)
}

/// Writes what the pipe holds to `to` by ordinary writes.
fn write_held(pipe: &mut Lease, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut held = Vec::with_capacity(pipe.held());
    pipe.take_held(&mut held)?;
    let mut rest = &held[..];
    while !rest.is_empty() {
        match rustix::io::write(to, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod bench;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        crate::base::socket::loopback_pair()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Relays a `len`-byte body arriving on a socket, `early` bytes of it buffered already,
    /// to another socket; returns what arrived and the relay's result.
    fn relay_over_tcp(
        len: usize,
        sent: usize,
        early: usize,
        limit: Option<u64>,
    ) -> (Vec<u8>, Result<u64, CopyError>) {
        let body = data(len);
        let (mut sender, from) = pair();
        let (mut to, receiver) = pair();
        let feed = body[early..sent].to_vec();
        let writer = std::thread::spawn(move || {
            let _ = sender.write_all(&feed);
        });
        let mut src = BufStream::with_buffered(from, body[..early].to_vec(), 1024, 1024);
        let kind = BodyKind::Length(len as u64);
        let dir = Direction::Response;
        let r = relay_body(
            kind,
            &mut src,
            &mut to,
            b"HEAD",
            false,
            limit,
            dir,
            &mut |_| {},
        );
        writer.join().unwrap();
        drop(to);
        let mut got = Vec::new();
        let _ = (&receiver).read_to_end(&mut got);
        (got, r)
    }

    #[test]
    fn a_large_body_is_spliced_byte_exact_after_the_prefix_and_the_buffered_bytes() {
        let before = spliced_bytes(Direction::Response);
        let len = 3 << 20;
        let (got, r) = relay_over_tcp(len, len, 1000, None);
        assert_eq!(r.unwrap(), len as u64);
        assert_eq!(&got[..4], b"HEAD");
        assert!(got[4..] == data(len)[..], "the body arrives byte for byte");
        let spliced = spliced_bytes(Direction::Response) - before;
        assert!(spliced >= (len - 1000) as u64, "{spliced}");
    }

    #[test]
    fn small_bodies_and_those_already_buffered_arrive_whole() {
        for (len, early) in [
            (10, 10),
            (1000, 0),
            (SPLICE_MIN as usize - 1, 3),
            (40_000, 0),
        ] {
            let (got, r) = relay_over_tcp(len, len, early, None);
            assert_eq!(r.unwrap(), len as u64);
            assert!(got[4..] == data(len)[..], "{len}");
        }
    }

    #[test]
    fn a_source_that_stops_early_is_a_read_error_and_a_limit_is_kept() {
        let (got, r) = relay_over_tcp(1 << 20, 300_000, 0, None);
        assert!(matches!(&r, Err(CopyError::Read(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        assert_eq!(got.len(), 4 + 300_000, "what came was passed on");
        let (got, r) = relay_over_tcp(1 << 20, 0, 0, Some(1000));
        assert!(matches!(r, Err(CopyError::TooLarge)));
        assert!(got.is_empty());
    }

    #[test]
    fn a_stalled_source_times_out() {
        let (_sender, from) = pair();
        from.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (mut to, _receiver) = pair();
        let mut src = BufStream::new(from, 1024, 1024);
        let kind = BodyKind::Length(1 << 20);
        let r = relay_body(
            kind,
            &mut src,
            &mut to,
            b"",
            false,
            None,
            Direction::Request,
            &mut |_| {},
        );
        assert!(r.as_ref().is_err_and(CopyError::is_timeout), "{r:?}");
    }

    /// Not a socket: always copied.
    struct Memory(Cursor<Vec<u8>>);

    impl Read for Memory {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }

    impl Write for Memory {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.get_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Memory {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
        fn tunnel_halves(&self) -> io::Result<crate::base::socket::Halves> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    #[test]
    fn sockets_that_are_not_plain_tcp_are_copied_and_framing_is_kept() {
        let body = data(100_000);
        let (mut to, receiver) = pair();
        let mut src = BufStream::new(Memory(Cursor::new(body.clone())), 1024, 4096);
        assert!(src.tcp_fd().is_none());
        let kind = BodyKind::Length(body.len() as u64);
        let r = relay_body(
            kind,
            &mut src,
            &mut to,
            b"",
            false,
            None,
            Direction::Request,
            &mut |_| {},
        );
        assert_eq!(r.unwrap(), body.len() as u64);
        drop(to);
        let mut got = Vec::new();
        (&receiver).read_to_end(&mut got).unwrap();
        assert!(got == body);
        // Chunked out: the copying path frames it.
        let mut src = BufStream::new(Memory(Cursor::new(b"abc".to_vec())), 16, 16);
        let mut out = Memory(Cursor::new(Vec::new()));
        let kind = BodyKind::Length(3);
        relay_body(
            kind,
            &mut src,
            &mut out,
            b"H ",
            true,
            None,
            Direction::Response,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(out.0.get_ref(), b"H 3\r\nabc\r\n0\r\n\r\n");
    }

    /// A file opened for appending, posing as a plain socket: the kernel refuses to splice
    /// into it (EINVAL), ordinary writes work.
    struct AppendFile(std::fs::File);

    impl Read for AppendFile {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl Write for AppendFile {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for AppendFile {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
        fn tunnel_halves(&self) -> io::Result<crate::base::socket::Halves> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn raw_tcp(&self) -> Option<BorrowedFd<'_>> {
            use std::os::fd::AsFd;
            Some(self.0.as_fd())
        }
    }

    #[test]
    fn a_destination_the_kernel_cannot_splice_to_gets_the_bytes_by_writes() {
        let path = std::env::temp_dir().join(format!("wakeproxy-splice-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let mut dst = AppendFile(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap(),
        );
        let len = 200_000;
        let body = data(len);
        let (mut sender, from) = pair();
        let feed = body.clone();
        let writer = std::thread::spawn(move || sender.write_all(&feed).unwrap());
        let mut src = BufStream::new(from, 1024, 1024);
        let kind = BodyKind::Length(len as u64);
        let r = relay_body(
            kind,
            &mut src,
            &mut dst,
            b"H",
            false,
            None,
            Direction::Request,
            &mut |_| {},
        );
        writer.join().unwrap();
        assert_eq!(r.unwrap(), len as u64);
        let got = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.len(), len + 1);
        assert!(
            got[1..] == body[..],
            "the bytes the pipe held came out first, in order"
        );
    }

    #[test]
    fn only_large_remainders_of_plain_sockets_are_spliced() {
        assert!(splices(SPLICE_MIN, true));
        assert!(splices(u64::MAX, true));
        assert!(!splices(SPLICE_MIN - 1, true));
        assert!(!splices(1 << 30, false));
    }
}
