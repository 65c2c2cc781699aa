//! The server: one poller thread that accepts connections and holds every connection that is
//! waiting (new, between keep-alive requests, a head or a TLS handshake still arriving) at the
//! cost of a socket and a small buffer, worker threads that take a connection once its request
//! head is complete and run it through the pipeline with blocking I/O (`dispatch`,
//! `connection`), the admission decisions (`admission`), and graceful shutdown (`drain`).
//! Apache's event MPM has this shape: waiting is not request work.

mod admission;
mod connection;
mod dispatch;
pub(crate) mod drain;
mod fairness;
mod poller;
mod waiting;
mod waitroom;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustix::event::{EventfdFlags, eventfd};

use crate::base::load::{Cut, Load};
use crate::config::Limits;
use crate::pipeline::Proxy;

use crate::base::client::ClientKey;
use admission::PerClient;
use dispatch::Dispatch;
use drain::Drain;
use waiting::Waiting;

/// What the poller, the workers and the signal handler share.
pub(crate) struct Hub {
    pub(crate) proxy: Arc<Proxy>,
    pub(crate) load: Arc<Load>,
    limits: Limits,
    clients: Mutex<PerClient>,
    dispatch: Dispatch,
    drain: Drain,
    /// Connections workers give back to the poller, and the eventfd that wakes it.
    returns: Mutex<Vec<Waiting>>,
    waker: OwnedFd,
}

impl Hub {
    pub(crate) fn new(proxy: Arc<Proxy>, limits: Limits) -> io::Result<Arc<Hub>> {
        Ok(Arc::new(Hub {
            proxy,
            load: Arc::new(Load::default()),
            limits,
            clients: Mutex::new(PerClient::default()),
            dispatch: Dispatch::new(limits.max_workers),
            drain: Drain::default(),
            returns: Mutex::new(Vec::new()),
            waker: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        }))
    }

    /// Wakes the poller.
    fn wake(&self) {
        let _ = rustix::io::write(&self.waker, &1u64.to_ne_bytes());
    }

    /// Starts a graceful shutdown; false when it had already begun.
    pub(crate) fn begin_drain(&self) -> bool {
        let first = self.drain.begin();
        self.wake();
        first
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.drain.is_draining()
    }

    /// Client connections open now.
    pub(crate) fn open(&self) -> usize {
        self.load.open.load(Ordering::Relaxed)
    }

    /// A connection from `peer`: its seat, or the cap that refuses it.
    fn admit(self: &Arc<Hub>, peer: SocketAddr) -> Result<Seat, Cut> {
        let key = ClientKey::of(peer.ip());
        let open = self.open();
        self.clients.lock().admit(key, open, &self.limits)?;
        self.load.open.fetch_add(1, Ordering::Relaxed);
        Ok(Seat {
            hub: self.clone(),
            key,
            vouched: AtomicBool::new(false),
        })
    }

    /// A worker is done with a connection that stays open: back to the poller (unless the
    /// proxy is draining: then it is closed).
    fn give_back(&self, w: Waiting) {
        if self.is_draining() {
            return;
        }
        self.returns.lock().push(w);
        self.wake();
    }
}

/// A connection's place, given back when the connection closes, even by panic.
pub(crate) struct Seat {
    hub: Arc<Hub>,
    key: ClientKey,
    /// A request on it carried the token: it no longer counts against its client address.
    vouched: AtomicBool,
}

impl Seat {
    /// The connection has shown the token: the per-address cap is for clients without it.
    /// True the first time.
    fn vouch(&self) -> bool {
        let first = !self.vouched.swap(true, Ordering::Relaxed);
        if first {
            self.hub.clients.lock().release(self.key);
        }
        first
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if !*self.vouched.get_mut() {
            self.hub.clients.lock().release(self.key);
        }
        self.hub.load.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections the kernel may hold for `accept` (capped by `net.core.somaxconn`): a burst
/// of new connections, a flood among them, must not overflow the queue, or the SYNs of
/// clients with the token are dropped and retried a second later.
const BACKLOG: i32 = 4096;

/// A listening socket with a deep accept queue (std's has room for 128).
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketType, bind, listen, socket, sockopt};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    bind(&fd, &addr)?;
    listen(&fd, BACKLOG)?;
    Ok(TcpListener::from(fd))
}

/// The listeners, ready to be served by the poller.
pub(crate) struct Server {
    hub: Arc<Hub>,
    pub(super) listeners: Vec<poller::Listener>,
}

impl Server {
    pub(crate) fn new(hub: Arc<Hub>) -> Server {
        Server {
            hub,
            listeners: Vec::new(),
        }
    }

    /// Binds a plain HTTP listener; returns its address.
    pub(crate) fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.add(addr, None)
    }

    /// Binds a TLS listener: every connection is a TLS handshake first, then the same pipeline.
    pub(crate) fn listen_tls(
        &mut self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        self.add(addr, Some(tls))
    }

    fn add(
        &mut self,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        let socket = bind(addr)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        self.listeners.push(poller::Listener { socket, tls });
        Ok(local)
    }

    /// Serves until the proxy drains; the poller runs on the calling thread.
    pub(crate) fn run(self) -> io::Result<()> {
        poller::Poller::new(self.hub, self.listeners)?.run();
        Ok(())
    }
}
