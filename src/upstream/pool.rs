//! Keep-alive connections to upstreams: connecting with a timeout, parking idle connections per
//! address and handing them out again, discarding ones the upstream closed meanwhile.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::net::RecvFlags;

use crate::http::BufStream;

/// Read buffer of an upstream connection: large, so a 64 KiB response body needs few reads.
const UPSTREAM_BUF: usize = 64 * 1024;
/// Largest response head accepted from an upstream.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Idle connections kept per upstream address.
const MAX_IDLE_PER_ADDR: usize = 64;
/// An idle connection older than this is dropped rather than reused.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);
/// Reused without a liveness probe when idle for less than this.
const PROBE_AFTER: Duration = Duration::from_millis(500);

/// An upstream connection with its read buffer.
pub(crate) struct UpstreamConn {
    pub stream: BufStream<TcpStream>,
    /// True when it came from the pool (a failure before any response byte may be retried).
    pub reused: bool,
}

/// Idle upstream connections by `host:port`.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<(UpstreamConn, Instant)>>>,
}

/// Why connecting failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The name did not resolve.
    Resolve(String),
    /// Connect failed (refused, unreachable) or timed out (`io::ErrorKind::TimedOut`).
    Io(io::Error),
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool::default()
    }

    /// An idle connection to `addr`, or a new one.
    pub(crate) fn get(
        &self,
        addr: &str,
        connect_timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        if let Some(c) = self.take_idle(addr) {
            return Ok(c);
        }
        connect(addr, connect_timeout)
    }

    fn take_idle(&self, addr: &str) -> Option<UpstreamConn> {
        loop {
            let (mut conn, since) = {
                let mut idle = self.idle.lock();
                idle.get_mut(addr)?.pop()?
            };
            let age = since.elapsed();
            if age > MAX_IDLE_AGE {
                continue;
            }
            if age > PROBE_AFTER && !still_open(&conn.stream.inner) {
                continue;
            }
            conn.reused = true;
            return Some(conn);
        }
    }

    /// Parks a connection whose last response was fully read.
    pub(crate) fn put(&self, addr: &str, conn: UpstreamConn) {
        if !conn.stream.buffered().is_empty() {
            return; // the upstream sent more than the response: not trustworthy
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        match idle.get_mut(addr) {
            Some(list) if list.len() < MAX_IDLE_PER_ADDR => list.push((conn, now)),
            Some(_) => {}
            None => {
                idle.insert(addr.to_string(), vec![(conn, now)]);
            }
        }
    }
}

/// Opens a new connection to `host:port`, trying each resolved address.
pub(crate) fn connect(addr: &str, timeout: Duration) -> Result<UpstreamConn, ConnectError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| ConnectError::Resolve(format!("{addr}: {e}")))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(UpstreamConn {
                    stream: BufStream::new(s, UPSTREAM_BUF, UPSTREAM_BUF.max(MAX_RESPONSE_HEAD)),
                    reused: false,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => ConnectError::Io(e),
        None => ConnectError::Resolve(format!("{addr}: no addresses")),
    })
}

/// A parked connection is usable when a non-blocking peek finds nothing to read (no EOF, no
/// stray bytes). One system call: the peek itself does not block, the socket stays blocking.
fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    let peeked = rustix::net::recv(s, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT);
    matches!(peeked, Err(rustix::io::Errno::AGAIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reuses_and_detects_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let pool = Pool::new();
        let c = pool.get(&addr, Duration::from_secs(1)).unwrap();
        assert!(!c.reused);
        let (server_side, _) = l.accept().unwrap();
        pool.put(&addr, c);
        let c = pool.get(&addr, Duration::from_secs(1)).unwrap();
        assert!(c.reused);
        assert!(still_open(&c.stream.inner));
        drop(server_side);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!still_open(&c.stream.inner));
    }

    #[test]
    fn refused_and_unresolvable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        assert!(matches!(
            connect(&addr, Duration::from_secs(1)),
            Err(ConnectError::Io(_))
        ));
        assert!(matches!(
            connect("missing-port", Duration::from_secs(1)),
            Err(ConnectError::Resolve(_))
        ));
    }
}
