//! Graceful shutdown: the draining flag, the registry of open client connections (so idle
//! keep-alive connections can be closed at once while busy ones finish), and waking the
//! accept loops so they stop.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Shared by the listeners, every connection and the signal handler.
#[derive(Default)]
pub(crate) struct Drain {
    draining: AtomicBool,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Tracked>>,
    listeners: Mutex<Vec<SocketAddr>>,
}

struct Tracked {
    socket: Arc<TcpStream>,
    idle: Arc<AtomicBool>,
}

/// A connection's registration; dropping it unregisters.
pub(crate) struct Registered<'a> {
    drain: &'a Drain,
    id: u64,
    idle: Arc<AtomicBool>,
}

impl Registered<'_> {
    /// Marks the connection as waiting for a request head (`true`) or busy with a request.
    /// Returns false when the proxy is draining and an idle connection should close now.
    pub(crate) fn set_idle(&self, idle: bool) -> bool {
        self.idle.store(idle, Ordering::SeqCst);
        !(idle && self.drain.is_draining())
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.drain.conns.lock().remove(&self.id);
    }
}

impl Drain {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Registers a client connection (its socket is shared with the registry, which closes it
    /// on drain).
    pub(crate) fn register(&self, s: &Arc<TcpStream>) -> Registered<'_> {
        let socket = s.clone();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let idle = Arc::new(AtomicBool::new(true));
        self.conns.lock().insert(
            id,
            Tracked {
                socket,
                idle: idle.clone(),
            },
        );
        Registered {
            drain: self,
            id,
            idle,
        }
    }

    /// A listener whose accept loop must be woken when draining begins.
    pub(crate) fn add_listener(&self, addr: SocketAddr) {
        self.listeners.lock().push(addr);
    }

    /// Starts draining: accept loops stop, idle connections are closed, busy ones finish their
    /// request and then close. Returns false if draining had already begun.
    pub(crate) fn begin(&self) -> bool {
        if self.draining.swap(true, Ordering::SeqCst) {
            return false;
        }
        for c in self.conns.lock().values() {
            if c.idle.load(Ordering::SeqCst) {
                let _ = c.socket.shutdown(Shutdown::Read);
            }
        }
        for addr in self.listeners.lock().iter() {
            // A connection to ourselves wakes a blocked accept(), which then sees the flag.
            let target = match addr.ip().is_unspecified() {
                true if addr.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
                true => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
                false => *addr,
            };
            let _ = TcpStream::connect_timeout(&target, Duration::from_millis(200));
        }
        true
    }

    /// Client connections still open.
    pub(crate) fn open(&self) -> usize {
        self.conns.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn idle_connections_are_closed_busy_ones_are_left_alone() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _c1 = TcpStream::connect(addr).unwrap();
        let s1 = Arc::new(l.accept().unwrap().0);
        let _c2 = TcpStream::connect(addr).unwrap();
        let s2 = Arc::new(l.accept().unwrap().0);
        let d = Drain::default();
        let r1 = d.register(&s1);
        let r2 = d.register(&s2);
        assert!(r2.set_idle(false));
        assert_eq!(d.open(), 2);
        assert!(d.begin());
        assert!(!d.begin(), "only once");
        let mut buf = [0u8; 8];
        assert_eq!(
            (&*s1).read(&mut buf).unwrap(),
            0,
            "the idle one sees end of stream"
        );
        s2.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!((&*s2).read(&mut buf).is_err(), "the busy one is untouched");
        assert!(!r2.set_idle(true), "and closes when it goes idle");
        drop(r1);
        assert_eq!(d.open(), 1);
    }
}
