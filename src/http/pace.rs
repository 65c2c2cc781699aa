//! A minimum transfer rate for request bodies: a client that dribbles a body is cut off once
//! it falls below the rate averaged from the body's start (after a grace period), however it
//! spaces its bytes, as Apache's `mod_reqtimeout` `MinRate` does. The stall limit (no byte for
//! a while) applies besides.

use std::io::{self, BufRead, Read};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::base::Socket;

use super::BufStream;
use super::splice::SpliceSource;

/// The schedule a body must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub start: Instant,
    /// Time allowed before the rate counts (a client may pause before its body).
    pub grace: Duration,
    /// Bytes per second; 0 is no minimum.
    pub rate: u64,
    /// Longest pause between two reads, whatever the rate.
    pub stall: Duration,
}

impl Pace {
    /// When the body must have delivered more than `received` bytes at the latest.
    pub fn due(&self, received: u64) -> Instant {
        let stall_free = |d: Duration| self.start + d;
        if self.rate == 0 {
            return stall_free(Duration::MAX / 4);
        }
        let for_bytes = Duration::from_secs_f64((received + 1) as f64 / self.rate as f64);
        stall_free(self.grace + for_bytes)
    }

    /// How long the next read may wait at `now`, having received `received` bytes; `None`
    /// when the body is already behind.
    pub fn wait(&self, received: u64, now: Instant) -> Option<Duration> {
        let left = self.due(received).checked_duration_since(now)?;
        (!left.is_zero()).then(|| left.min(self.stall))
    }
}

/// A body reader that keeps a client to its `Pace`.
pub struct Paced<'a, S> {
    pub inner: &'a mut BufStream<S>,
    pub pace: Pace,
    received: u64,
}

impl<'a, S: Socket> Paced<'a, S> {
    pub fn new(inner: &'a mut BufStream<S>, pace: Pace) -> Paced<'a, S> {
        Paced {
            inner,
            pace,
            received: 0,
        }
    }

    /// Sets the read timeout for the next read from the socket, or fails when the client is
    /// already too slow.
    fn arm(&mut self) -> io::Result<()> {
        match self.pace.wait(self.received, Instant::now()) {
            Some(wait) => self.inner.set_read_timeout(Some(wait)),
            None => Err(too_slow(&self.pace)),
        }
    }
}

fn too_slow(p: &Pace) -> io::Error {
    let msg = format!("request body slower than {} bytes/s", p.rate);
    io::Error::new(io::ErrorKind::TimedOut, msg)
}

impl<S: Socket> Read for Paced<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.inner.buffered().is_empty() {
            self.arm()?;
        }
        let n = self.inner.read(out).map_err(|e| self.explain(e))?;
        self.received += n as u64;
        Ok(n)
    }
}

impl<S: Socket> BufRead for Paced<'_, S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.inner.buffered().is_empty() {
            self.arm()?;
            if let Err(e) = self.inner.fill_buf() {
                return Err(self.explain(e));
            }
        }
        Ok(self.inner.buffered())
    }
    fn consume(&mut self, n: usize) {
        self.received += n as u64;
        self.inner.consume_buffered(n);
    }
}

/// A spliced body keeps the pace too: each splice from the socket is a read, armed with the
/// time the body has left and counted.
impl<S: Socket> SpliceSource for Paced<'_, S> {
    fn unread(&self) -> &[u8] {
        self.inner.buffered()
    }
    fn tcp_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.inner.raw_tcp()
    }
    fn arm(&mut self) -> io::Result<()> {
        Paced::arm(self)
    }
    fn spliced(&mut self, n: usize) {
        self.received += n as u64;
    }
    fn explain(&self, e: io::Error) -> io::Error {
        Paced::explain(self, e)
    }
}

impl<S> Paced<'_, S> {
    /// A read that timed out because of the pace says so.
    fn explain(&self, e: io::Error) -> io::Error {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if timed_out && Instant::now() >= self.pace.due(self.received) {
            return too_slow(&self.pace);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;
    use crate::http::splice::{Direction, relay_body};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_spliced_body_that_falls_behind_is_cut_off() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (from, _) = l.accept().unwrap();
        let mut to = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_upstream, _) = l.accept().unwrap();
        // 200 KB at once, then nothing: at 1 MB/s that is behind 0.2 s after the grace.
        client.write_all(&vec![7u8; 200_000]).unwrap();
        let start = Instant::now();
        let pace = Pace {
            start,
            grace: Duration::from_millis(100),
            rate: 1_000_000,
            stall: Duration::from_secs(10),
        };
        let mut src = BufStream::new(from, 1024, 1024);
        let mut body = Paced::new(&mut src, pace);
        let kind = BodyKind::Length(10 << 20);
        let dir = Direction::Request;
        let r = relay_body(kind, &mut body, &mut to, &[], false, None, dir, &mut |_| {});
        let e = r.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.to_string().contains("slower than 1000000 bytes/s"), "{e}");
        assert_eq!(body.received, 200_000);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_body_must_keep_the_rate_after_the_grace_period() {
        let t0 = Instant::now();
        let p = Pace {
            start: t0,
            grace: Duration::from_secs(5),
            rate: 1000,
            stall: Duration::from_secs(60),
        };
        // The first byte by 5.001 s, the 10,000th by 15 s.
        assert_eq!(p.due(0), t0 + Duration::from_millis(5001));
        assert_eq!(p.due(9_999), t0 + Duration::from_secs(15));
        // A client sending one byte every 8 s: behind at its second byte.
        assert!(p.wait(1, t0 + Duration::from_secs(8)).is_none());
        assert_eq!(p.wait(0, t0), Some(Duration::from_millis(5001)));
        // The stall limit caps every wait.
        let slow_ok = Pace { rate: 1, ..p };
        assert_eq!(slow_ok.wait(1_000_000, t0), Some(Duration::from_secs(60)));
        let off = Pace { rate: 0, ..p };
        assert_eq!(
            off.wait(u64::MAX / 2, t0 + Duration::from_secs(3600)),
            Some(off.stall)
        );
    }
}
