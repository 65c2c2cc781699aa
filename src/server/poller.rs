//! The poller: one thread, one epoll set. It accepts connections (never sleeping or blocking on
//! a full pool), holds every waiting connection until its request head is complete, hands
//! complete heads to the workers, takes connections back between requests, answers bad heads
//! and lingers, refuses heads that waited too long for a worker, and closes connections that
//! miss their deadline.
//!
//! Connections are registered with `EPOLLONESHOT`: an event disarms the connection, so exactly
//! one party owns it at a time; the poller re-arms it (`EPOLL_CTL_MOD`) when it wants the next
//! event, also when a worker gives it back.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::net::SocketFlags;

use crate::base::load::Cut;
use crate::http::{Problem, Reply};
use crate::tls::waiting::TlsWaiting;

use super::Hub;
use crate::base::client::ClientKey;

use super::admission::{self, Stage};
use super::connection::CLIENT_WRITE_TIMEOUT;
use super::dispatch::Dispatch;
use super::waiting::{Arrival, Ready, Waiting};
use super::waitroom::{Token, Waitroom};

/// The token of the eventfd that wakes the poller.
const WAKER: u64 = u64::MAX;
/// Listener `i` has token `LISTENER - i`.
const LISTENER: u64 = u64::MAX - 1;
/// Events taken per wait.
const EVENTS: usize = 1024;
/// Longest sleep, so that the worker queue and busy sweeps are looked at now and then.
const TICK: Duration = Duration::from_millis(100);
/// A listener that failed to accept (out of file descriptors) rests this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// The same refusal is logged at most once per this long (per client address for a client).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A bound listener.
pub(crate) struct Listener {
    pub(super) socket: TcpListener,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
}

pub(super) struct Poller {
    hub: Arc<Hub>,
    epoll: OwnedFd,
    listeners: Vec<Listener>,
    /// Listeners resting after a failed accept, until when.
    paused: Vec<Option<Instant>>,
    room: Waitroom,
    last_sweep: Instant,
    logged: HashMap<LogKey, Instant>,
}

/// What a rate-limited log line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LogKey {
    Accept,
    ConnectionCap,
    WorkerQueue,
    Client(ClientKey),
}

fn interest(write: bool) -> EventFlags {
    let base = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
    if write { base | EventFlags::OUT } else { base }
}

impl Poller {
    pub(super) fn new(hub: Arc<Hub>, listeners: Vec<Listener>) -> io::Result<Poller> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &hub.waker,
            EventData::new_u64(WAKER),
            EventFlags::IN,
        )?;
        for (i, l) in listeners.iter().enumerate() {
            let token = EventData::new_u64(LISTENER - i as u64);
            epoll::add(&epoll, &l.socket, token, EventFlags::IN)?;
        }
        Ok(Poller {
            paused: vec![None; listeners.len()],
            hub,
            epoll,
            listeners,
            room: Waitroom::default(),
            last_sweep: Instant::now(),
            logged: HashMap::new(),
        })
    }

    /// Serves until the proxy drains.
    pub(super) fn run(mut self) {
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            let timeout = self.sleep_for(Instant::now());
            self.wait(&mut events, timeout);
            let now = Instant::now();
            for ev in events.drain(..) {
                self.on_event(ev.data.u64(), now);
            }
            if self.hub.is_draining() {
                return self.close_all();
            }
            self.housekeeping(Instant::now());
        }
    }

    fn wait(&self, events: &mut Vec<epoll::Event>, timeout: Duration) {
        let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
        events.clear();
        if let Err(e) = epoll::wait(&self.epoll, spare_capacity(events), Some(&ts))
            && e != rustix::io::Errno::INTR
        {
            log::error!("epoll_wait failed: {e}");
            std::thread::sleep(ACCEPT_PAUSE);
        }
    }

    /// One turn as of `now` (tests): the events there are, then the deadlines due at `now`.
    #[cfg(test)]
    pub(super) fn turn_at(&mut self, now: Instant) {
        let mut events = Vec::with_capacity(EVENTS);
        self.wait(&mut events, Duration::ZERO);
        for ev in events.drain(..) {
            self.on_event(ev.data.u64(), now);
        }
        self.housekeeping(now);
    }

    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.room.len()
    }

    /// How long the next wait may last.
    fn sleep_for(&self, now: Instant) -> Duration {
        let next = self
            .room
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        let resting = self
            .paused
            .iter()
            .flatten()
            .map(|t| t.saturating_duration_since(now));
        next.into_iter().chain(resting).fold(TICK, Duration::min)
    }

    fn on_event(&mut self, token: u64, now: Instant) {
        match token {
            WAKER => self.take_back(now),
            t if t >= LISTENER + 1 - self.listeners.len() as u64 => {
                self.accept((LISTENER - t) as usize, now)
            }
            t => self.on_ready(t, now),
        }
    }

    /// Accepts until the listener has nothing more, or a failure rests it.
    fn accept(&mut self, i: usize, now: Instant) {
        if self.paused[i].is_some() {
            return;
        }
        loop {
            match accept_nonblocking(&self.listeners[i].socket) {
                Ok((stream, peer)) => self.admit(stream, peer, i, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    self.log_once(LogKey::Accept, now, || format!("accept failed: {e}"));
                    self.rest(i, now);
                    return;
                }
            }
        }
    }

    /// A listener that cannot accept (out of file descriptors) would wake the poller at once
    /// again: it rests for a moment instead.
    fn rest(&mut self, i: usize, now: Instant) {
        let _ = epoll::modify(
            &self.epoll,
            &self.listeners[i].socket,
            EventData::new_u64(LISTENER - i as u64),
            EventFlags::empty(),
        );
        self.paused[i] = Some(now + ACCEPT_PAUSE);
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, i: usize, now: Instant) {
        let seat = match self.hub.admit(peer) {
            Ok(seat) => seat,
            Err(cut) => return self.refuse(stream, peer, i, cut, now),
        };
        let tls = match &self.listeners[i].tls {
            None => None,
            Some(config) => match TlsWaiting::new(config.clone()) {
                Ok(t) => Some(Box::new(t)),
                Err(e) => return log::error!("cannot start TLS: {e}"),
            },
        };
        let _ = stream.set_nodelay(true);
        // Set once: it applies whenever a worker has the socket (blocking); the poller's own
        // writes never block.
        let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
        let stage = if tls.is_some() {
            Stage::Handshake
        } else {
            Stage::New
        };
        let w = Waiting::new(stream, peer, tls, stage, now, seat);
        let deadline = admission::deadline(stage, now, self.hub.open(), &self.hub.limits);
        let token = self.room.insert(w, deadline);
        let Some(w) = self.room.get_mut(token) else {
            return;
        };
        let data = EventData::new_u64(token);
        if epoll::add(&self.epoll, &w.stream, data, interest(false)).is_err() {
            self.room.remove(token);
        }
    }

    /// At a cap: a plain connection over the whole cap is told 503 (one non-blocking write);
    /// anything else is just closed, cheaply.
    fn refuse(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        i: usize,
        cut: Cut,
        now: Instant,
    ) {
        self.hub.load.count(cut);
        let key = ClientKey::of(peer.ip());
        let limits = self.hub.limits;
        match cut {
            Cut::ConnectionCap => self.log_once(LogKey::ConnectionCap, now, || {
                let max = limits.max_connections;
                format!("connection limit reached ({max} open): refusing new connections")
            }),
            _ => self.log_once(LogKey::Client(key), now, || {
                let max = limits.max_connections_per_ip;
                format!(
                    "{}: {max} connections open from this client: refusing more",
                    peer.ip()
                )
            }),
        }
        if cut == Cut::ConnectionCap && self.listeners[i].tls.is_none() {
            let p = Problem::Unavailable {
                detail: "the proxy is at its connection limit".into(),
                retry_after: 1,
            };
            let _ = stream.write(&Reply::from(p).render(false, false));
        }
    }

    fn log_once(&mut self, key: LogKey, now: Instant, msg: impl FnOnce() -> String) {
        let last = self.logged.get(&key);
        if last.is_some_and(|t| now.saturating_duration_since(*t) < LOG_EVERY) {
            return;
        }
        if self.logged.len() > 10_000 {
            self.logged
                .retain(|_, t| now.saturating_duration_since(*t) < LOG_EVERY);
        }
        self.logged.insert(key, now);
        log::warn!("{}", msg());
    }

    /// A waiting connection is readable (or writable).
    fn on_ready(&mut self, token: Token, now: Instant) {
        let Some(w) = self.room.get_mut(token) else {
            return;
        };
        match w.on_ready(now) {
            Arrival::Wait { write } => {
                let (stage, since) = (w.stage, w.since);
                let d = admission::deadline(stage, since, self.hub.open(), &self.hub.limits);
                self.room.set_deadline(token, d);
                self.arm(token, write);
            }
            Arrival::Head(head, len) => {
                if let Some(waiting) = self.room.remove(token) {
                    // Counted as active before a worker can see it (in /proxy/status, say).
                    self.hub
                        .load
                        .parked
                        .store(self.room.len(), Ordering::Relaxed);
                    let ready = Ready {
                        waiting,
                        head,
                        len,
                        queued: now,
                    };
                    Dispatch::submit(&self.hub, ready);
                }
            }
            Arrival::Bad(p) => {
                if let Some(w) = self.room.remove(token) {
                    let ip = w.peer.ip();
                    log::info!(target: "access", "{ip} bad request head: {} {}", p.status(), p.detail());
                    self.answer(w, &Reply::from(p), now);
                }
            }
            Arrival::Gone => drop(self.room.remove(token)),
        }
    }

    /// (Re-)arms a connection for its next event.
    fn arm(&mut self, token: Token, write: bool) {
        let Some(w) = self.room.get_mut(token) else {
            return;
        };
        let armed = epoll::modify(
            &self.epoll,
            &w.stream,
            EventData::new_u64(token),
            interest(write),
        );
        if armed.is_err() {
            self.room.remove(token);
        }
    }

    /// Writes `reply` (as far as the socket takes it at once) and lingers.
    fn answer(&mut self, mut w: Waiting, reply: &Reply, now: Instant) {
        let bytes = reply.render(false, false);
        match w.tls.take() {
            None => {
                let _ = (&w.stream).write(&bytes);
            }
            Some(mut tls) => tls.answer_and_close(&w.stream, &bytes),
        }
        let _ = w.stream.shutdown(Shutdown::Write);
        w.buf = Vec::new();
        w.stage = Stage::Linger;
        w.since = now;
        self.park(w, now);
    }

    /// Takes `w` into the room and arms it (it is registered already, disarmed).
    fn park(&mut self, w: Waiting, now: Instant) {
        let d = admission::deadline(w.stage, w.since, self.hub.open(), &self.hub.limits);
        let write = w.stage != Stage::Linger && w.tls.is_some();
        let token = self.room.insert(w, d.max(now));
        self.arm(token, write);
    }

    /// Connections workers gave back.
    fn take_back(&mut self, now: Instant) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&self.hub.waker, &mut counter);
        let back = std::mem::take(&mut *self.hub.returns.lock());
        for w in back {
            self.park(w, now);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        for w in self.room.expired(now) {
            if let Some(cut) = admission::cut_of(w.stage) {
                self.hub.load.count(cut);
            }
        }
        self.refuse_queued(now);
        self.wake_listeners(now);
        if admission::busy(self.hub.open(), &self.hub.limits)
            && now.saturating_duration_since(self.last_sweep) >= Duration::from_secs(1)
        {
            self.shorten_waits(now);
        }
        self.hub
            .load
            .parked
            .store(self.room.len(), Ordering::Relaxed);
    }

    /// Complete heads that waited longer than `worker_queue_timeout` get 503.
    fn refuse_queued(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.hub.limits.worker_queue_timeout) else {
            return;
        };
        let late = Dispatch::expired(&self.hub, cutoff);
        if late.is_empty() {
            return;
        }
        let n = late.len();
        let workers = self.hub.limits.max_workers;
        self.log_once(LogKey::WorkerQueue, now, || {
            format!("{n} requests waited for a worker too long: 503 (all {workers} workers busy)")
        });
        for r in late {
            self.hub.load.count(Cut::WorkerQueue);
            let p = Problem::Unavailable {
                detail: "every worker is busy".into(),
                retry_after: 1,
            };
            self.answer(r.waiting, &Reply::from(p), now);
        }
    }

    fn wake_listeners(&mut self, now: Instant) {
        for i in 0..self.listeners.len() {
            if self.paused[i].is_some_and(|t| t <= now) {
                self.paused[i] = None;
                let token = EventData::new_u64(LISTENER - i as u64);
                let _ = epoll::modify(
                    &self.epoll,
                    &self.listeners[i].socket,
                    token,
                    EventFlags::IN,
                );
            }
        }
    }

    /// While busy, waiting connections get the short timeouts: those waiting longer are
    /// brought forward.
    fn shorten_waits(&mut self, now: Instant) {
        self.last_sweep = now;
        let (open, limits) = (self.hub.open(), self.hub.limits);
        for token in self.room.tokens() {
            if let Some(w) = self.room.get_mut(token) {
                let d = admission::deadline(w.stage, w.since, open, &limits).max(now);
                self.room.set_deadline(token, d);
            }
        }
    }

    /// Draining: stop accepting, close what waits.
    fn close_all(mut self) {
        self.listeners.clear();
        let waiting = self.room.drain();
        log::info!("draining: closed {} waiting connections", waiting.len());
        drop(waiting);
        self.hub.returns.lock().clear();
        self.hub.load.parked.store(0, Ordering::Relaxed);
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Accepts a connection already non-blocking (`accept4` with `SOCK_NONBLOCK`): no second
/// system call to make it so.
fn accept_nonblocking(l: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let (fd, peer) = rustix::net::acceptfrom_with(l, flags)?;
    let peer = peer
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("accepted a connection without an IP peer address"))?;
    Ok((TcpStream::from(fd), peer))
}
