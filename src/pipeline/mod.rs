//! The request pipeline: what happens to one request once the server has read its head. It
//! reads top to bottom as named phases in [`Proxy::phases`], each a small function that either
//! hands the next phase what it needs (`Continue`) or ends the request with an answer
//! (`Break`):
//!
//! 1. **framing**: how the body is framed, the target split and checked;
//! 2. **own endpoint**: whether the path is one of the proxy's own and what it takes to reach;
//! 3. **HTTPS redirect**: while HTTPS is on, the plain port redirects (open endpoints aside);
//! 4. **auth**: the bearer token or the login cookie (open and sign-in endpoints, and public
//!    services, aside); the proxy's own endpoints answer here;
//! 5. **route**: the service by longest prefix;
//! 6. **limits**: the service's body size limit, before anything is woken;
//! 7. **wake**: an on-demand service is made ready (a cold start holds the request; a
//!    browser opening a page gets the waiting page after `loading_page_after`);
//! 8. **forward**: the request goes upstream and the answer comes back, streamed.
//!
//! Whatever happened, [`respond`] writes the proxy's own answer (HEAD, keep-alive and framing
//! decided there, for every answer alike), counts the request and writes the access line.

mod auth;
mod backend;
mod generation;
mod guard;
mod logins;
mod origin;
mod own;
mod respond;
mod route;
mod sessions;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::RwLock;

use crate::base::Socket;
use crate::base::client::ClientKey;
use crate::base::load::Load;
use crate::config::{Config, Service, ServiceAuth};
use crate::endpoints::login;
use crate::endpoints::metrics::Metrics;
use crate::endpoints::redirect::PortRules;
use crate::endpoints::{Access, Endpoint};
use crate::http::head::request_body;
use crate::http::host::request_name;
use crate::http::pace::Pace;
use crate::http::target::{Target, split_target};
use crate::http::{BodyKind, BufStream, Problem, Reply, RequestHead};
use crate::lifecycle::{Activity, Lifecycle};
use crate::tls::HttpsState;
use crate::upstream::Pool;
use crate::upstream::tunnel::Registry;

pub(crate) use generation::{Generation, Route};
pub(crate) use respond::Next;

use auth::{At, Denied, Failures, Gate, Passed};
use generation::Activities;
use guard::Guard;
use logins::Logins;
use respond::{Ended, Exchange};
use sessions::Sessions;

/// A phase's result: go on with `T`, or answer with the `Reply`.
type Flow<T> = ControlFlow<Reply, T>;

/// What the pipeline knows of the connection a request came on.
pub(crate) struct Conn<'a> {
    pub peer: SocketAddr,
    /// The request came over TLS.
    pub tls: bool,
    /// The proxy is shutting down: this request is the connection's last.
    pub draining: bool,
    /// The server's connection and worker figures (for status and metrics).
    pub load: &'a Load,
    /// Where the server hears what became of the connection's requests.
    pub signals: &'a dyn Signals,
}

/// What the server wants to know about a connection's requests.
pub(crate) trait Signals {
    /// A request carried the token or the login cookie: the connection is a client's with
    /// the token (limits aimed at clients without it no longer apply). True the first time on
    /// this connection.
    fn authenticated(&self) -> bool {
        false
    }
    /// The request became a tunnel (a WebSocket): its thread now serves it for long.
    fn tunnel(&self) {}
}

/// A request whose framing is known and whose target is split (phase 1).
struct Framed<'a> {
    head: &'a RequestHead,
    target: Target<'a>,
    body: BodyKind,
}

/// Everything requests share.
pub(crate) struct Proxy {
    current: RwLock<Arc<Generation>>,
    activities: Activities,
    pool: Pool,
    connect_timeout: Duration,
    started: SystemTime,
    /// Open tunnels (WebSockets and other upgrades).
    pub tunnels: Registry,
    metrics: Metrics,
    /// Login sessions (what the cookie stands for).
    sessions: Sessions,
    /// Wrong credentials, per address and shared.
    guard: Guard,
    failures: Failures,
    logins: Logins,
    /// Whether HTTPS is on, which decides what the plain HTTP port answers.
    pub https: Arc<HttpsState>,
    /// What `/proxy/healthz` says this start is (`proxy-daemon start` sets one).
    start_nonce: Option<String>,
}

impl Proxy {
    /// A proxy with no services yet: build the lifecycle (with `activity`), then `install`.
    pub(crate) fn new(config: &Config) -> Proxy {
        Proxy {
            current: RwLock::new(Arc::new(Generation::empty(config.global.clone()))),
            activities: Activities::default(),
            pool: Pool::new(),
            connect_timeout: Duration::from_secs(10),
            started: SystemTime::now(),
            tunnels: Registry::default(),
            metrics: Metrics::new(),
            sessions: Sessions::default(),
            guard: Guard::new(Instant::now()),
            failures: Failures::default(),
            logins: Logins::default(),
            https: Arc::new(HttpsState::new(&config.global)),
            start_nonce: None,
        }
    }

    /// The same proxy, its `/proxy/healthz` answers carrying `nonce`.
    pub(crate) fn with_start_nonce(mut self, nonce: Option<String>) -> Proxy {
        self.start_nonce = nonce;
        self
    }

    /// The generation new requests use.
    pub(crate) fn generation(&self) -> Arc<Generation> {
        self.current.read().clone()
    }

    /// The activity record of service `name`, shared by every generation that has it.
    pub(crate) fn activity(&self, name: &str) -> Arc<Activity> {
        self.activities.of(name)
    }

    /// Makes `config` current, its on-demand services woken by `lifecycle`; returns the
    /// generation it replaces.
    pub(crate) fn install(&self, config: Config, lifecycle: Option<&Lifecycle>) -> Arc<Generation> {
        let g = generation::build(config, lifecycle, &self.activities, &self.metrics);
        let token = g.global.bearer_token.clone();
        let old = std::mem::replace(&mut *self.current.write(), Arc::new(g));
        if old.global.bearer_token != token {
            let ended = self.sessions.count();
            self.sessions.end_all();
            if ended > 0 {
                log::info!("the bearer token changed: {ended} login sessions ended");
            }
        }
        old
    }

    /// Handles one request whose head has been read, and says what becomes of the connection.
    pub(crate) fn handle<C: Socket>(
        &self,
        client: &mut BufStream<C>,
        head: &RequestHead,
        conn: &Conn<'_>,
    ) -> Next {
        let g = self.generation();
        let mut x = Exchange::new(head, conn, self.metrics.unrouted());
        let ended = match self.phases(&g, client, &mut x) {
            Continue(ended) => ended,
            Break(reply) => Ended::Reply(reply),
        };
        x.finish(client, ended)
    }

    /// The phases, in order (see the module documentation).
    fn phases<'a, C: Socket>(
        &'a self,
        g: &'a Generation,
        client: &mut BufStream<C>,
        x: &mut Exchange<'a>,
    ) -> Flow<Ended> {
        let req = framing(x)?; // 1
        let own = Endpoint::find(req.target.path); // 2
        self.redirect_to_https(g, x.conn(), &req)?; // 3
        let found = find_route(g, &req, own.is_some());
        if !found.is_public(g, own) {
            self.authenticate(g, &req, own, x.conn())?; // 4
        }
        if let Some(endpoint) = own {
            return Break(self.own_endpoint(g, client, x, &req, endpoint));
        }
        let route = route(g, &req, found, x)?; // 5
        limits(route, &req)?; // 6
        let _in_flight = route.activity.begin(SystemTime::now(), x.start());
        let addr = backend::wake(g, route, &req)?; // 7
        Continue(self.forward(g, client, x, &req, route, addr)) // 8
    }

    /// Phase 4: everything but the open and sign-in endpoints needs the token or a live
    /// session cookie; a request the cookie let in that changes state or upgrades must come
    /// from the proxy's own origin (a page elsewhere cannot use the browser's cookie).
    fn authenticate(
        &self,
        g: &Generation,
        req: &Framed<'_>,
        own: Option<Endpoint<'_>>,
        conn: &Conn<'_>,
    ) -> Flow<()> {
        if own.is_some_and(|e| e.access() != Access::Token) {
            return Continue(());
        }
        match self.gate(g).check(&req.head.headers, self.at(conn)) {
            Ok(passed) => {
                self.vouched(conn);
                if passed == Passed::Cookie
                    && changes_state(req.head)
                    && let Err(foreign) = origin::check(&req.head.headers, conn.tls)
                {
                    return Break(Problem::Forbidden(foreign.detail()).into());
                }
                Continue(())
            }
            Err(denied) => Break(refusal(denied, req)),
        }
    }

    /// A connection showed a right credential: the first time, its address becomes a known
    /// client (see `guard`).
    fn vouched(&self, conn: &Conn<'_>) {
        if conn.signals.authenticated() {
            self.guard.trust(ClientKey::of(conn.peer.ip()));
        }
    }

    /// The credential check's inputs.
    fn gate<'a>(&'a self, g: &'a Generation) -> Gate<'a> {
        Gate {
            token: &g.global.bearer_token,
            sessions: &self.sessions,
            guard: &self.guard,
            failures: &self.failures,
        }
    }

    /// Who asks, and when.
    fn at(&self, conn: &Conn<'_>) -> At {
        At {
            client: ClientKey::of(conn.peer.ip()),
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Phase 3: while HTTPS is on, the plain HTTP port answers everything but the open
    /// endpoints with a redirect to HTTPS (or 426), before any auth. The redirect keeps the
    /// name asked for when a service has it as its host (or it is `domain`); any other name
    /// (a forged Host) redirects to `domain`.
    fn redirect_to_https(&self, g: &Generation, conn: &Conn<'_>, req: &Framed<'_>) -> Flow<()> {
        if conn.tls || !self.https.is_live() {
            return Continue(());
        }
        let name = request_name(&req.head.headers, req.target.authority);
        let domain = self.https.domain();
        let host = match name.as_deref() {
            Some(n) if n == domain || g.router.knows(n) => n,
            _ => domain,
        };
        let rules = PortRules {
            redirect: self.https.redirects(),
            domain: host,
            https_port: self.https.port(),
        };
        match rules.answer(req.target.path, req.target.query) {
            Some(reply) => Break(reply),
            None => Continue(()),
        }
    }
}

/// A request body's first byte may come this long after its head; from then on the body must
/// keep `min_body_rate` on average. A login form comes from a client that has not shown the
/// token yet, and is at most 4 KiB: it gets much less.
const BODY_GRACE: Duration = Duration::from_secs(10);
const LOGIN_GRACE: Duration = Duration::from_secs(2);
/// Longest pause between two reads of a request body, whatever the rate.
const BODY_STALL: Duration = Duration::from_secs(60);

/// The pace a request body that started with its head at `start` must keep.
fn body_pace(g: &Generation, start: Instant, authenticated: bool) -> Pace {
    Pace {
        start,
        grace: if authenticated {
            BODY_GRACE
        } else {
            LOGIN_GRACE
        },
        rate: g.global.limits.min_body_rate,
        stall: BODY_STALL,
    }
}

/// Phase 1: the body's framing and the target. A request whose framing is unclear is refused
/// and its connection closed (the next request's start is unknown).
fn framing<'a>(x: &mut Exchange<'a>) -> Flow<Framed<'a>> {
    let head = x.head();
    let body = match request_body(head) {
        Ok(b) => b,
        Err(e) => return Break(Problem::BadRequest(e.to_string()).into()),
    };
    x.set_body(body);
    match split_target(&head.target) {
        Ok(target) => Continue(Framed { head, target, body }),
        Err(e) => Break(Reply::from(Problem::BadRequest(e.0.into())).closing()),
    }
}

/// The answer to a refused credential: 401 (a browser opening a page goes to the login form
/// instead), or 429 without a check while the address waits.
fn refusal(denied: Denied, req: &Framed<'_>) -> Reply {
    match denied {
        Denied::Wait(d) => Problem::TooManyRequests {
            detail: denied.detail().into(),
            retry_after: guard::Judgement::retry_after(d),
        }
        .into(),
        _ if login::is_page_load(req.head) => {
            let t = &req.target;
            let target = match t.query {
                Some(q) => format!("{}?{q}", t.path),
                None => t.path.to_string(),
            };
            login::sign_in_first(&target)
        }
        _ => Problem::Unauthorized(denied.detail()).into(),
    }
}

/// Whether a request may change state or take over the connection: anything but a read, or
/// an upgrade (a WebSocket handshake is a GET).
fn changes_state(head: &RequestHead) -> bool {
    !matches!(head.method.as_str(), "GET" | "HEAD" | "OPTIONS")
        || crate::http::rewrite::requested_upgrade(head).is_some()
}

/// The route a request's host and path lead to, looked up before auth (a public service's
/// requests need no credential) and answered in phase 5.
struct Found<'a> {
    service: Option<route::Match<'a>>,
    /// The request's name, when any service has a host.
    name: Option<Cow<'a, str>>,
}

impl Found<'_> {
    /// Whether the request needs no credential: it goes to a public service, or asks how a
    /// public service's start is going.
    fn is_public(&self, g: &Generation, own: Option<Endpoint<'_>>) -> bool {
        let public = |s: &Service| s.auth == ServiceAuth::Public;
        match own {
            Some(Endpoint::Waking(name)) => g
                .routes
                .iter()
                .any(|r| r.service.name == name && public(&r.service)),
            Some(_) => false,
            None => self
                .service
                .as_ref()
                .is_some_and(|m| public(&g.routes[m.service].service)),
        }
    }
}

/// The service by host name (when any service has one), then by longest prefix; none for the
/// proxy's own endpoints.
fn find_route<'a>(g: &'a Generation, req: &Framed<'a>, own: bool) -> Found<'a> {
    if own {
        return Found {
            service: None,
            name: None,
        };
    }
    let name = match g.router.has_hosts() {
        true => request_name(&req.head.headers, req.target.authority),
        false => None,
    };
    Found {
        service: g.router.lookup(name.as_deref(), req.target.path),
        name,
    }
}

/// Phase 5: the service found, or 404. From here on the request is counted and logged under
/// its service.
fn route<'a>(
    g: &'a Generation,
    req: &Framed<'_>,
    found: Found<'a>,
    x: &mut Exchange<'a>,
) -> Flow<Routed<'a>> {
    let Some(m) = found.service else {
        let path = req.target.path;
        let detail = match found.name {
            Some(n) => format!("no service for host {n} and path {path}"),
            None => format!("no service for path {path}"),
        };
        return Break(Problem::NotFound(detail).into());
    };
    let route = &g.routes[m.service];
    x.set_route(route);
    Continue(Routed {
        route,
        prefix: m.prefix,
    })
}

/// A request's service and the prefix it matched.
#[derive(Clone, Copy)]
struct Routed<'a> {
    route: &'a Route,
    prefix: &'a str,
}

impl std::ops::Deref for Routed<'_> {
    type Target = Route;
    fn deref(&self) -> &Route {
        self.route
    }
}

/// Phase 6: a body over the service's limit is refused before any container is woken or any
/// byte is sent upstream.
fn limits(route: Routed<'_>, req: &Framed<'_>) -> Flow<()> {
    match (route.service.max_body_size, req.body) {
        (Some(max), BodyKind::Length(n)) if n > max => Break(Problem::PayloadTooLarge.into()),
        _ => Continue(()),
    }
}

#[cfg(test)]
mod tests;
