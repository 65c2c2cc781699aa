//! Forwarding one request to an upstream and relaying its response: head rewrite, streamed
//! bodies both ways, interim responses, one retry on a stale pooled connection, and the
//! mapping of upstream failures to 502/504.

use std::io::{self, Write};
use std::time::Duration;

use crate::base::Socket;
use crate::http::body::CopyError;
use crate::http::head::{
    BodyKind, RequestHead, ResponseHead, is_idempotent, parse_response, response_body,
};
use crate::http::pace::{Pace, Paced};
use crate::http::rewrite::{self, ClientFraming, ForwardInfo};
use crate::http::splice::{Direction, relay_body};
use crate::http::{BufStream, Problem};

use super::pool::{ConnectError, MAX_RESPONSE_HEAD, Pool, UpstreamConn};
use super::tunnel;

/// Upstream timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    /// Longest wait for the response head, and between two body reads.
    pub read: Duration,
}

/// One request to forward.
pub(crate) struct Request<'a> {
    pub head: &'a RequestHead,
    pub body: BodyKind,
    /// The rewritten target (prefix stripped, query kept).
    pub target: &'a str,
    pub info: ForwardInfo<'a>,
    /// Whether the client connection may stay open afterwards.
    pub client_keep_alive: bool,
    /// The client sent `Expect: 100-continue`: tell it to go on before reading the body.
    pub expect_continue: bool,
    pub max_body: Option<u64>,
    /// The pace the request body must keep.
    pub pace: Pace,
    /// Where an upgraded connection's tunnel is registered, and its limits.
    pub tunnel: TunnelCtx<'a>,
    /// Called when the upstream tried to set the proxy's own cookie (the header was dropped).
    pub on_own_cookie: &'a dyn Fn(),
}

/// What a tunnel needs after `101 Switching Protocols`.
pub(crate) struct TunnelCtx<'a> {
    pub registry: &'a tunnel::Registry,
    pub service: &'a str,
    pub limits: tunnel::Limits,
    /// Called once the tunnel is set up: the thread now serves a long-lived connection.
    pub on_start: &'a dyn Fn(),
}

/// What happened, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Request body bytes sent upstream.
    pub bytes_in: u64,
    pub client_keep_alive: bool,
}

/// Why forwarding failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing was sent to the client yet: answer with this. `close` when the request body
    /// was not (fully) read, so the connection cannot carry another request. `sent` when the
    /// request may have reached the upstream (it was written, in part or whole), so that
    /// sending it again could repeat its effect.
    Problem {
        problem: Problem,
        close: bool,
        sent: bool,
    },
    /// The response was under way, or the client went away: the connection is closed.
    Abort { status: u16, reason: String },
}

impl Failure {
    /// A failure once the request was (perhaps) delivered.
    fn delivered(problem: Problem, close: bool) -> Failure {
        Failure::Problem {
            problem,
            close,
            sent: true,
        }
    }

    /// A failure before a byte of the request reached the upstream.
    fn unsent(problem: Problem, close: bool) -> Failure {
        Failure::Problem {
            problem,
            close,
            sent: false,
        }
    }
}

/// May a request whose forwarding failed be sent again (to a fresh connection, or to its
/// container started again)? Only without a body (it was streamed and is gone), and, once the
/// upstream may have received it, only when repeating it is harmless: a POST that crashed its
/// container is answered 502, not run twice.
pub(crate) fn may_resend(head: &RequestHead, body: BodyKind, sent: bool) -> bool {
    body == BodyKind::Empty && (!sent || is_idempotent(head))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn connect_failure(addr: &str, e: ConnectError, close: bool) -> Failure {
    let problem = match e {
        ConnectError::Resolve(m) => Problem::BadGateway(format!("cannot resolve upstream {m}")),
        ConnectError::Io(e) if is_timeout(&e) => {
            Problem::GatewayTimeout(format!("connecting to upstream {addr} timed out"))
        }
        ConnectError::Io(e) => {
            Problem::BadGateway(format!("cannot connect to upstream {addr}: {e}"))
        }
    };
    Failure::unsent(problem, close)
}

/// How reading the response head ended badly.
enum HeadFailure {
    /// The upstream closed (or reset) before sending a single byte: safe to retry a bodyless request.
    ClosedEarly(String),
    Timeout,
    Io(io::Error),
    Malformed(String),
}

/// Reads a final response head, relaying 1xx interim responses (except 100, which the proxy
/// answers itself) to HTTP/1.1 clients.
fn read_response_head<C: Socket>(
    up: &mut BufStream<std::net::TcpStream>,
    client: &mut BufStream<C>,
    req: &Request<'_>,
) -> Result<ResponseHead, HeadFailure> {
    let client_minor = req.head.minor;
    let mut got_any = false;
    loop {
        match parse_response(up.buffered()) {
            Ok(Some((n, head))) => {
                up.consume_buffered(n);
                if head.status >= 200 || head.status == 101 {
                    return Ok(head);
                }
                if head.status != 100 && client_minor >= 1 {
                    let mut out = Vec::new();
                    let (own, rp) = (req.info.own_cookie, &req.info.reprefix);
                    let framing = ClientFraming::NoBody;
                    if rewrite::client_response(&head, framing, true, own, rp, &mut out) {
                        (req.on_own_cookie)();
                    }
                    client.write_all(&out).map_err(HeadFailure::Io)?;
                }
                continue;
            }
            Ok(None) if up.buffered().len() >= MAX_RESPONSE_HEAD => {
                return Err(HeadFailure::Malformed("response head too large".into()));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(HeadFailure::Malformed(format!(
                    "invalid response head: {e}"
                )));
            }
        }
        match up.fill_more() {
            Ok(0) if !got_any => {
                return Err(HeadFailure::ClosedEarly(
                    "upstream closed the connection without answering".into(),
                ));
            }
            Ok(0) => return Err(HeadFailure::Malformed("upstream closed mid-head".into())),
            Ok(_) => got_any = true,
            Err(e) if is_timeout(&e) => return Err(HeadFailure::Timeout),
            Err(e)
                if !got_any
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
            {
                return Err(HeadFailure::ClosedEarly(format!(
                    "upstream reset the connection: {e}"
                )));
            }
            Err(e) => return Err(HeadFailure::Io(e)),
        }
    }
}

/// Forwards `req` to `addr` and relays the answer to `client`.
pub(crate) fn forward<C: Socket>(
    client: &mut BufStream<C>,
    req: &Request<'_>,
    pool: &Pool,
    addr: &str,
    t: Timeouts,
) -> Result<Outcome, Failure> {
    let mut head = Vec::with_capacity(1024);
    rewrite::upstream_request(req.head, req.target, req.body, &req.info, &mut head);
    let (conn, res, bytes_in) = exchange(client, req, pool, addr, t, &head)?;
    if res.status == 101 {
        return switch_protocols(client, req, conn, &res, bytes_in, addr);
    }
    head.clear();
    let mut out = relay_response(client, req, conn, &res, addr, head, pool)?;
    out.bytes_in = bytes_in;
    Ok(out)
}

/// Sends the request (head, then body) and reads the final response head: once more on a
/// fresh connection when a pooled one turns out to be stale and sending again is harmless.
fn exchange<C: Socket>(
    client: &mut BufStream<C>,
    req: &Request<'_>,
    pool: &Pool,
    addr: &str,
    t: Timeouts,
    head: &[u8],
) -> Result<(UpstreamConn, ResponseHead, u64), Failure> {
    let has_body = req.body != BodyKind::Empty;
    let mut retried = false;
    loop {
        let mut conn: UpstreamConn = pool
            .get(addr, t.connect)
            .map_err(|e| connect_failure(addr, e, has_body))?;
        let _ = conn.stream.set_read_timeout(Some(t.read));
        let _ = conn.stream.set_write_timeout(Some(t.read));
        if let Err(e) = conn.stream.inner.write_all(head) {
            if conn.reused && !retried {
                retried = true;
                continue;
            }
            let problem = Problem::BadGateway(format!("sending to upstream {addr}: {e}"));
            return Err(Failure::unsent(problem, has_body));
        }
        let bytes_in = match has_body {
            true => send_body(client, req, &mut conn, addr)?,
            false => 0,
        };
        match read_response_head(&mut conn.stream, client, req) {
            Ok(res) => return Ok((conn, res, bytes_in)),
            Err(HeadFailure::ClosedEarly(_))
                if conn.reused && !retried && may_resend(req.head, req.body, true) =>
            {
                retried = true;
            }
            Err(f) => return Err(Failure::delivered(head_problem(f, addr, t), false)),
        }
    }
}

/// Streams the request body upstream (after `100 Continue` when the client waits for it).
fn send_body<C: Socket>(
    client: &mut BufStream<C>,
    req: &Request<'_>,
    conn: &mut UpstreamConn,
    addr: &str,
) -> Result<u64, Failure> {
    if req.expect_continue {
        client
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| Failure::Abort {
                status: 499,
                reason: format!("client: {e}"),
            })?;
    }
    let chunked = req.body == BodyKind::Chunked;
    let upstream = &mut conn.stream.inner;
    let mut body = Paced::new(client, req.pace);
    let copied = relay_body(
        req.body,
        &mut body,
        upstream,
        &[],
        chunked,
        req.max_body,
        Direction::Request,
        &mut |_| {},
    );
    copied.map_err(|e| match e {
        // Too slow: 408, and the connection is closed.
        e if e.is_timeout() => Failure::Abort {
            status: 408,
            reason: format!("reading request body from client: {e}"),
        },
        CopyError::TooLarge => Failure::delivered(Problem::PayloadTooLarge, true),
        CopyError::Malformed(m) => Failure::delivered(
            Problem::BadRequest(format!("malformed chunked body: {m}")),
            true,
        ),
        CopyError::Read(e) => Failure::Abort {
            status: 400,
            reason: format!("reading request body from client: {e}"),
        },
        CopyError::Write(e) => Failure::delivered(
            Problem::BadGateway(format!("sending request body to upstream {addr}: {e}")),
            true,
        ),
    })
}

/// What the client is told when the response head did not come.
fn head_problem(f: HeadFailure, addr: &str, t: Timeouts) -> Problem {
    match f {
        HeadFailure::Timeout => Problem::GatewayTimeout(format!(
            "upstream {addr} sent no response within {} s",
            t.read.as_secs()
        )),
        HeadFailure::ClosedEarly(m) | HeadFailure::Malformed(m) => {
            Problem::BadGateway(format!("{m} ({addr})"))
        }
        HeadFailure::Io(e) => Problem::BadGateway(format!("reading from upstream {addr}: {e}")),
    }
}

/// Relays the response head (rewritten in `head`) and body to the client, then parks the
/// upstream connection when it can carry another request.
fn relay_response<C: Socket>(
    client: &mut BufStream<C>,
    req: &Request<'_>,
    mut conn: UpstreamConn,
    res: &ResponseHead,
    addr: &str,
    mut head: Vec<u8>,
    pool: &Pool,
) -> Result<Outcome, Failure> {
    let kind = response_body(&req.head.method, res).map_err(|e| {
        let why = format!("upstream {addr} sent an invalid response: {e}");
        Failure::delivered(Problem::BadGateway(why), false)
    })?;
    let framing = rewrite::client_framing(kind, req.head.minor);
    let keep = req.client_keep_alive && framing != ClientFraming::Close;
    let (own, rp) = (req.info.own_cookie, &req.info.reprefix);
    if rewrite::client_response(res, framing, keep, own, rp, &mut head) {
        (req.on_own_cookie)();
    }
    // The head goes out with the body bytes that came along with it, in one write; a body of
    // known length is then spliced between plain TCP sockets, others are copied.
    let chunked = framing == ClientFraming::Chunked;
    let relayed = relay_body(
        kind,
        &mut conn.stream,
        &mut client.inner,
        &head,
        chunked,
        None,
        Direction::Response,
        &mut |_| {},
    );
    let bytes_out = relayed.map_err(|e| Failure::Abort {
        status: res.status,
        reason: format!("relaying response body: {e}"),
    })?;
    if rewrite::upstream_reusable(res, kind) {
        pool.put(addr, conn);
    }
    Ok(Outcome {
        status: res.status,
        bytes_out,
        bytes_in: 0,
        client_keep_alive: keep,
    })
}

/// The upstream agreed to switch protocols: pass the 101 on and become a byte tunnel until
/// either side closes. A 101 nobody asked for closes the connection (502) instead.
fn switch_protocols<C: Socket>(
    client: &mut BufStream<C>,
    req: &Request<'_>,
    conn: UpstreamConn,
    res: &ResponseHead,
    bytes_in: u64,
    addr: &str,
) -> Result<Outcome, Failure> {
    if req.info.upgrade.is_none() {
        return Err(Failure::delivered(
            Problem::BadGateway(format!(
                "upstream {addr} switched protocols although no upgrade was asked for"
            )),
            true,
        ));
    }
    let mut head = Vec::with_capacity(512);
    if rewrite::client_switching(res, req.info.own_cookie, &req.info.reprefix, &mut head) {
        (req.on_own_cookie)();
    }
    client.write_all(&head).map_err(|e| Failure::Abort {
        status: 101,
        reason: format!("writing to client: {e}"),
    })?;
    let client_pending = client.buffered().to_vec();
    client.consume_buffered(client_pending.len());
    let upstream_pending = conn.stream.buffered().to_vec();
    let halves = client
        .inner
        .tunnel_halves()
        .and_then(|c| Ok((c, crate::base::socket::tcp_halves(&conn.stream.inner)?)));
    let (c, u) = halves.map_err(|e| Failure::Abort {
        status: 101,
        reason: format!("cannot set up the tunnel: {e}"),
    })?;
    let t = &req.tunnel;
    (t.on_start)();
    let stats = tunnel::run(
        c,
        u,
        &client_pending,
        &upstream_pending,
        t.limits,
        t.registry,
        t.service,
    );
    Ok(Outcome {
        status: 101,
        bytes_out: stats.upstream_to_client,
        bytes_in: bytes_in + stats.client_to_upstream,
        client_keep_alive: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    fn head(s: &str) -> RequestHead {
        parse_request(s.as_bytes()).unwrap().unwrap().1
    }

    #[test]
    fn a_request_is_resent_only_when_that_cannot_repeat_its_effect() {
        let get = head("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let post = head("POST /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let keyed = head("POST /x HTTP/1.1\r\nHost: a\r\nIdempotency-Key: 7\r\n\r\n");
        // Never reached the upstream: any bodyless request goes again.
        assert!(may_resend(&post, BodyKind::Empty, false));
        assert!(may_resend(&get, BodyKind::Empty, false));
        // May have reached it: only what is safe to repeat.
        assert!(may_resend(&get, BodyKind::Empty, true));
        assert!(!may_resend(&post, BodyKind::Empty, true));
        assert!(may_resend(&keyed, BodyKind::Empty, true));
        // A body was streamed from the client and cannot be replayed.
        for sent in [false, true] {
            assert!(!may_resend(&get, BodyKind::Length(3), sent));
            assert!(!may_resend(&keyed, BodyKind::Chunked, sent));
        }
    }
}
