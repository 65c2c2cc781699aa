//! The end of every request, in one place: the proxy's own answer is written here (whether the
//! connection stays open, and whether a body follows, decided here for every answer alike),
//! the request is counted under its service, and the access line is written.

use std::io::Write;
use std::time::Instant;

use crate::base::Socket;
use crate::endpoints::metrics::ServiceMetrics;
use crate::http::head::wants_keep_alive;
use crate::http::{BodyKind, BufStream, Reply, RequestHead};
use crate::upstream::Outcome;

use super::{Conn, Route};

/// What becomes of the connection after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// It may carry another request.
    KeepAlive,
    /// It is closed.
    Close,
    /// It is closed, but the client may still be sending a body the proxy did not read:
    /// read and drop that briefly first, so the answer is not lost to a reset.
    Linger,
}

/// How a request ended.
pub(super) enum Ended {
    /// The proxy answers itself.
    Reply(Reply),
    /// A backend's answer was relayed.
    Relayed(Outcome),
    /// The answer broke off midway (or the client went away): the connection is closed.
    Aborted { status: u16, reason: String },
}

/// One request on its way through the phases: what the end needs to know, learnt as they go.
pub(super) struct Exchange<'a> {
    head: &'a RequestHead,
    conn: &'a Conn<'a>,
    start: Instant,
    /// The body's framing, once known (the connection cannot go on without it).
    body: Option<BodyKind>,
    /// The body was read to its end.
    body_read: bool,
    /// The service the request is counted and logged under.
    service: &'a str,
    metrics: &'a ServiceMetrics,
}

impl<'a> Exchange<'a> {
    pub(super) fn new(
        head: &'a RequestHead,
        conn: &'a Conn<'a>,
        unrouted: &'a ServiceMetrics,
    ) -> Exchange<'a> {
        Exchange {
            head,
            conn,
            start: Instant::now(),
            body: None,
            body_read: false,
            service: "-",
            metrics: unrouted,
        }
    }

    pub(super) fn head(&self) -> &'a RequestHead {
        self.head
    }

    pub(super) fn conn(&self) -> &'a Conn<'a> {
        self.conn
    }

    pub(super) fn start(&self) -> Instant {
        self.start
    }

    pub(super) fn set_body(&mut self, body: BodyKind) {
        self.body = Some(body);
    }

    /// The proxy read the whole body (so the next request starts right after it).
    pub(super) fn body_was_read(&mut self) {
        self.body_read = true;
    }

    pub(super) fn set_route(&mut self, route: &'a Route) {
        self.service = &route.service.name;
        self.metrics = &route.metrics;
    }

    /// Where the next request would start is known: no body, or the body was read.
    fn at_next_request(&self) -> bool {
        self.body == Some(BodyKind::Empty) || (self.body.is_some() && self.body_read)
    }

    /// Ends the request: writes the proxy's answer, if it has one, counts and logs.
    pub(super) fn finish<C: Socket>(self, client: &mut BufStream<C>, ended: Ended) -> Next {
        match ended {
            Ended::Reply(reply) => self.reply(client, &reply),
            Ended::Relayed(o) => {
                self.log(o.status, o.bytes_out, o.bytes_in);
                match o.client_keep_alive {
                    true => Next::KeepAlive,
                    false => Next::Close,
                }
            }
            Ended::Aborted { status, reason } => {
                let (peer, method) = (self.conn.peer, &self.head.method);
                log::warn!("{peer} {method} {}: {reason}", self.service);
                self.log(status, 0, 0);
                Next::Close
            }
        }
    }

    fn reply<C: Socket>(&self, client: &mut BufStream<C>, reply: &Reply) -> Next {
        if let Some(why) = reply.note() {
            let (peer, method) = (self.conn.peer, &self.head.method);
            let (service, status) = (self.service, reply.status());
            log::warn!("{peer} {method} {service} -> {status}: {why}");
        }
        let settled = self.at_next_request();
        let keep = settled
            && !reply.closes()
            && !self.conn.draining
            && wants_keep_alive(self.head.minor, &self.head.headers);
        let bytes = reply.render(keep, self.head.method == "HEAD");
        let written = client.write_all(&bytes).is_ok();
        self.log(reply.status(), bytes.len() as u64, 0);
        match (written, keep, settled) {
            (true, true, _) => Next::KeepAlive,
            (true, false, false) => Next::Linger,
            _ => Next::Close,
        }
    }

    /// Counts the request and writes the access line: client, method, path (no query: it
    /// may hold secrets), status, service, bytes sent, duration.
    fn log(&self, status: u16, bytes_out: u64, bytes_in: u64) {
        let took = self.start.elapsed();
        self.metrics.request(status, took, bytes_in, bytes_out);
        if log::log_enabled!(target: "access", log::Level::Info) {
            let path = self.head.target.split('?').next().unwrap_or("");
            log::info!(
                target: "access",
                "{} \"{} {}\" {status} {} {bytes_out}B {:.1}ms",
                self.conn.peer.ip(),
                self.head.method,
                path,
                self.service,
                took.as_secs_f64() * 1000.0
            );
        }
    }
}
