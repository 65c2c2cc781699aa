//! Byte tunnels after `101 Switching Protocols` (WebSockets and other upgrades): two pumps, one
//! per direction, with half-close passed through, an idle timeout, an optional maximum
//! lifetime, and a registry so shutdown can close every open tunnel.
//!
//! Each side is given as independent read and write halves plus a `Closer`, so a TLS stream
//! (whose state cannot be split) can be one side by sharing its state behind the halves.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::base::socket::{Closer, HalfWrite, Halves};

/// Bytes read per step in each direction.
const PUMP_BUF: usize = 16 * 1024;

/// Limits of one tunnel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Closed after this long with no byte in either direction.
    pub idle: Duration,
    /// Closed after this long whatever happens (`max_tunnel_lifetime`).
    pub max_lifetime: Option<Duration>,
}

impl Limits {
    /// How often a blocked pump wakes to check the limits.
    fn tick(&self) -> Duration {
        let shortest = self.max_lifetime.map_or(self.idle, |m| m.min(self.idle));
        (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// Open tunnels, by id, with their service and closers.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (String, Closer, Closer)>>,
}

impl Registry {
    fn add(&self, service: String, a: Closer, b: Closer) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, (service, a, b));
        id
    }
    fn remove(&self, id: u64) {
        self.open.lock().remove(&id);
    }
    /// Open tunnels of `service`.
    pub(crate) fn count(&self, service: &str) -> usize {
        self.open
            .lock()
            .values()
            .filter(|(s, _, _)| s == service)
            .count()
    }
    #[cfg(test)]
    fn total(&self) -> usize {
        self.open.lock().len()
    }
    /// Closes every open tunnel (of one service, or all): both sides get a TCP close.
    pub(crate) fn close_all(&self, service: Option<&str>) {
        for (s, a, b) in self.open.lock().values() {
            if service.is_none_or(|want| want == s) {
                a.close();
                b.close();
            }
        }
    }
}

/// What a tunnel carried.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// State shared by the two pumps.
struct PumpState {
    start: Instant,
    /// Milliseconds since `start` of the last byte in either direction.
    last: AtomicU64,
    closed: AtomicBool,
    limits: Limits,
    closers: [Closer; 2],
}

impl PumpState {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn close_both(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for c in &self.closers {
            c.close();
        }
    }
    /// After a read timed out: is it time to close?
    fn expired(&self) -> Option<&'static str> {
        let age = self.start.elapsed();
        if self.limits.max_lifetime.is_some_and(|m| age >= m) {
            return Some("reached max_tunnel_lifetime");
        }
        let idle = age.saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
        (idle >= self.limits.idle).then_some("idle")
    }
}

/// Copies `src` to `dst` until EOF (then half-closes `dst`) or an error (then closes both
/// sides so the other pump ends too). Returns the bytes copied.
fn pump(
    mut src: Box<dyn Read + Send>,
    mut dst: Box<dyn HalfWrite>,
    shared: &PumpState,
    tag: &str,
) -> u64 {
    let mut buf = vec![0u8; PUMP_BUF];
    let mut total = 0u64;
    loop {
        match src.read(&mut buf) {
            Ok(0) => {
                let _ = dst.flush();
                let _ = dst.close_write();
                return total;
            }
            Ok(n) => {
                shared.touch();
                if dst.write_all(&buf[..n]).and_then(|_| dst.flush()).is_err() {
                    shared.close_both();
                    return total;
                }
                total += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.closed.load(Ordering::Relaxed) {
                    return total;
                }
                if let Some(why) = shared.expired() {
                    log::debug!("closing tunnel ({tag}): {why}");
                    shared.close_both();
                    return total;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                shared.close_both();
                return total;
            }
        }
    }
}

/// Runs a tunnel between `client` and `upstream` until both directions end. Bytes already read
/// past the heads (`client_pending`, `upstream_pending`) are delivered first.
pub(crate) fn run(
    client: Halves,
    upstream: Halves,
    client_pending: &[u8],
    upstream_pending: &[u8],
    limits: Limits,
    registry: &Registry,
    service: &str,
) -> Stats {
    let Halves {
        read: c_read,
        write: mut c_write,
        closer: c_close,
    } = client;
    let Halves {
        read: u_read,
        write: mut u_write,
        closer: u_close,
    } = upstream;
    if (!upstream_pending.is_empty() && c_write.write_all(upstream_pending).is_err())
        || (!client_pending.is_empty() && u_write.write_all(client_pending).is_err())
    {
        c_close.close();
        u_close.close();
        return Stats::default();
    }
    let tick = limits.tick();
    c_close.set_read_timeout(tick);
    u_close.set_read_timeout(tick);
    let id = registry.add(service.to_string(), c_close.clone(), u_close.clone());
    let shared = Arc::new(PumpState {
        start: Instant::now(),
        last: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        limits,
        closers: [c_close, u_close],
    });
    let up_shared = shared.clone();
    let upward = std::thread::Builder::new()
        .name("tunnel".into())
        .stack_size(128 * 1024)
        .spawn(move || pump(c_read, u_write, &up_shared, "client to upstream"));
    let mut stats = Stats::default();
    match upward {
        Ok(handle) => {
            stats.upstream_to_client = pump(u_read, c_write, &shared, "upstream to client");
            stats.client_to_upstream = handle.join().unwrap_or(0);
        }
        Err(e) => {
            log::error!("cannot start a tunnel thread: {e}");
            shared.close_both();
        }
    }
    shared.close_both();
    registry.remove(id);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::socket::tcp_halves;
    use std::net::{Shutdown, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        crate::base::socket::loopback_pair()
    }

    struct Setup {
        client: TcpStream,
        backend: TcpStream,
        handle: std::thread::JoinHandle<Stats>,
        registry: Arc<Registry>,
    }

    fn setup(limits: Limits) -> Setup {
        let (client, proxy_client_side) = pair();
        let (proxy_upstream_side, backend) = pair();
        let registry = Arc::new(Registry::default());
        let r = registry.clone();
        let handle = std::thread::spawn(move || {
            run(
                tcp_halves(&proxy_client_side).unwrap(),
                tcp_halves(&proxy_upstream_side).unwrap(),
                b"early",
                b"",
                limits,
                &r,
                "svc7",
            )
        });
        Setup {
            client,
            backend,
            handle,
            registry,
        }
    }

    const LONG: Limits = Limits {
        idle: Duration::from_secs(60),
        max_lifetime: None,
    };

    #[test]
    fn relays_both_ways_with_half_close() {
        let mut s = setup(LONG);
        let mut early = [0u8; 5];
        s.backend.read_exact(&mut early).unwrap();
        assert_eq!(&early, b"early", "pending client bytes go first");
        s.client.write_all(b"ping").unwrap();
        s.client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.backend.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping", "the client's FIN reaches the backend");
        // The other direction still flows after the half-close.
        s.backend.write_all(b"answer after EOF").unwrap();
        s.backend.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.client.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"answer after EOF");
        let stats = s.handle.join().unwrap();
        assert_eq!(stats.client_to_upstream, 4);
        assert_eq!(stats.upstream_to_client, 16);
        assert_eq!(s.registry.total(), 0);
    }

    #[test]
    fn idle_tunnels_are_closed() {
        let s = setup(Limits {
            idle: Duration::from_millis(300),
            max_lifetime: None,
        });
        let t0 = Instant::now();
        s.handle.join().unwrap();
        assert!(
            // Closed by the idle rule: not before it, and not never (a deadline, not a speed).
            t0.elapsed() >= Duration::from_millis(250) && t0.elapsed() < Duration::from_secs(30)
        );
        let mut buf = [0u8; 16];
        assert_eq!(
            (&s.client).read(&mut buf).unwrap_or(0),
            0,
            "client sees a close"
        );
    }

    #[test]
    fn max_lifetime_closes_even_busy_tunnels() {
        let mut s = setup(Limits {
            idle: Duration::from_secs(60),
            max_lifetime: Some(Duration::from_millis(400)),
        });
        let t0 = Instant::now();
        // Traffic flows all along, and the idle limit is 60 s: only the lifetime can close it.
        while !s.handle.is_finished() && t0.elapsed() < Duration::from_secs(30) {
            let _ = s.client.write_all(b"x");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(s.handle.is_finished(), "still open after 30 s");
    }

    #[test]
    fn registry_closes_everything() {
        let s = setup(LONG);
        let t0 = Instant::now();
        while s.registry.count("svc7") == 0 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(s.registry.count("svc8"), 0);
        s.registry.close_all(Some("svc7"));
        s.handle.join().unwrap();
        let mut buf = [0u8; 16];
        let mut backend = s.backend;
        let mut seen = Vec::new();
        let _ = backend.read_to_end(&mut seen);
        assert_eq!(&seen, b"early");
        assert_eq!((&s.client).read(&mut buf).unwrap_or(0), 0);
    }
}
