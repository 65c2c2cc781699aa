//! The server: listeners that accept connections up to `max_connections`, a reusable thread
//! per connection (`workers`), the connection loop that reads request heads with deadlines and
//! hands each request to the pipeline (`connection`), and graceful shutdown (`drain`).

mod connection;
pub(crate) mod drain;
pub(crate) mod workers;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::http::{Problem, Reply};
use crate::pipeline::Proxy;

use drain::Drain;
use workers::Workers;

/// Stack of a connection thread: room for a TLS handshake in a debug build, with the large
/// buffers kept on the heap.
const STACK_SIZE: usize = 256 * 1024;
/// Connection threads idle this long exit.
const THREAD_KEEP_IDLE: Duration = Duration::from_secs(60);
/// How long a new connection may wait for a free slot at `max_connections` before its 503.
const FULL_WAIT: Duration = Duration::from_millis(250);

/// What both listeners and every connection share: the pipeline, the open connections and
/// their cap, the reusable threads, and the drain state.
pub(crate) struct Hub {
    pub proxy: Arc<Proxy>,
    /// Client connections open now.
    open: AtomicUsize,
    max: usize,
    pub drain: Drain,
    workers: Workers,
}

impl Hub {
    pub(crate) fn new(proxy: Arc<Proxy>, max_connections: usize) -> Arc<Hub> {
        Arc::new(Hub {
            proxy,
            open: AtomicUsize::new(0),
            max: max_connections,
            drain: Drain::default(),
            workers: Workers::new("conn", STACK_SIZE, THREAD_KEEP_IDLE),
        })
    }

    /// Takes a connection slot; at the cap, waits up to `FULL_WAIT` for one to free up (new
    /// connections queue in the accept backlog meanwhile) before giving up.
    fn wait_for_slot(&self) -> bool {
        let deadline = Instant::now() + FULL_WAIT;
        loop {
            if self.open.fetch_add(1, Ordering::AcqRel) < self.max {
                return true;
            }
            self.open.fetch_sub(1, Ordering::AcqRel);
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A connection's slot, given back when the connection's job ends, even by panic.
struct Seat(Arc<Hub>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bound listener ready to serve.
pub(crate) struct Server {
    listener: TcpListener,
    hub: Arc<Hub>,
    /// TLS listeners hand each connection to rustls first (on the connection's thread).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    pub(crate) fn bind(addr: SocketAddr, hub: Arc<Hub>) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            hub,
            tls: None,
        })
    }

    /// A TLS listener: every connection is a TLS handshake first, then the same pipeline.
    pub(crate) fn bind_tls(
        addr: SocketAddr,
        hub: Arc<Hub>,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            hub,
            tls: Some(tls),
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until the proxy starts draining.
    pub(crate) fn run(self) {
        let mut last_full_log: Option<Instant> = None;
        if let Ok(a) = self.listener.local_addr() {
            self.hub.drain.add_listener(a);
        }
        loop {
            let accepted = self.listener.accept();
            if self.hub.drain.is_draining() {
                break; // dropping the listener stops accepting
            }
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if !self.hub.wait_for_slot() {
                if last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    let max = self.hub.max;
                    log::warn!(
                        "connection limit reached ({max} open): refusing new connections with 503"
                    );
                    last_full_log = Some(Instant::now());
                }
                if self.tls.is_none() {
                    refuse(stream);
                }
                continue;
            }
            self.start(stream, peer);
        }
    }

    /// Runs a connection that has its slot on a connection thread.
    fn start(&self, stream: TcpStream, peer: SocketAddr) {
        let seat = Seat(self.hub.clone());
        let tls = self.tls.clone();
        let spawned = self.hub.workers.execute(move || {
            let hub = &seat.0;
            connection::serve(hub, stream, peer, tls);
        });
        if let Err(e) = spawned {
            // The closure (and its seat, which gave the slot back) was dropped unrun.
            log::error!("cannot start a connection thread: {e}");
        }
    }
}

/// The answer to a connection over the cap, on a plain HTTP listener.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let p = Problem::Unavailable {
        detail: "the proxy is at its connection limit".into(),
        retry_after: 1,
    };
    let _ = stream.write_all(&Reply::from(p).render(false, false));
}
