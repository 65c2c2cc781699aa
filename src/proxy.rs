//! The request pipeline, top to bottom: framing, target check, proxy endpoints, auth, route,
//! backend readiness, forward, access log. Also the state shared by all connections.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::activity::Activity;
use crate::answer::{self, Answer};
use crate::config::{Backend, Config};
use crate::drain::Drain;
use crate::forward::{self, Failure, Timeouts, TunnelCtx};
use crate::http::head::{has_token, request_body, wants_keep_alive};
use crate::http::rewrite::{self, ForwardInfo};
use crate::http::Header;
use crate::http::{BodyKind, BufStream, RequestHead, Socket};
use crate::metrics::{self, Metrics};
use crate::pool::Pool;
use crate::route::{split_target, upstream_target, Router};
use crate::tunnel;
use crate::{acme, auth, login, status};

/// What makes managed containers ready; implemented by the Docker lifecycle.
pub trait Containers: Send + Sync {
    /// Makes service `index` ready (starting it if needed, waiting for a start under way)
    /// and returns the `host:port` to forward to.
    fn ensure_ready(&self, index: usize) -> Result<String, Answer>;
    /// The first forward to `addr` was refused: the container may have just died.
    fn forward_failed(&self, index: usize, addr: &str);
    /// Extra status fields for service `index` (Docker state, host port, cold starts...).
    fn status(&self, index: usize) -> serde_json::Map<String, serde_json::Value>;
    /// Stops every running managed container and waits for the stops (proxy exit with
    /// `stop_services_on_exit`).
    fn stop_all(&self);
    /// Cold-start metrics of service `index` (`None` when it is not managed).
    fn start_metrics(&self, index: usize) -> Option<metrics::StartMetrics<'_>>;
}

/// One configuration and everything built from it. A reload installs a new generation;
/// requests already running keep the one they started with.
pub struct Generation {
    pub config: Config,
    router: Router,
    /// One per service, in config order; shared by name across generations.
    pub activity: Arc<Vec<Arc<Activity>>>,
    pub containers: Option<Arc<dyn Containers>>,
    /// Request metrics, one per service, shared by name across generations.
    requests: Vec<Arc<metrics::ServiceMetrics>>,
    /// The login cookie's expected value (a digest of the token).
    session_cookie: String,
}

/// Everything connections share.
pub struct Proxy {
    current: RwLock<Arc<Generation>>,
    /// Activity by service name, so a reload does not lose track of open requests and streams.
    activities: Mutex<HashMap<String, Arc<Activity>>>,
    pub pool: Pool,
    pub connect_timeout: Duration,
    /// Open client connections.
    pub connections: AtomicUsize,
    pub started: SystemTime,
    /// Open tunnels (WebSockets and other upgrades).
    pub tunnels: tunnel::Registry,
    pub metrics: Metrics,
    throttle: login::Throttle,
    /// Graceful shutdown state.
    pub drain: Drain,
    /// Reusable connection threads.
    pub workers: crate::workers::Workers,
    /// TLS (issue 5): whether HTTPS is on, which decides what the HTTP port answers.
    pub https: Arc<crate::tls::HttpsState>,
}

impl Proxy {
    /// A proxy with no generation yet: call `activity_for`, build the containers, then `install`.
    pub fn new(config: Config) -> Proxy {
        let https = Arc::new(crate::tls::HttpsState::new(&config.global));
        let empty = Generation {
            router: Router::new(std::iter::empty()),
            activity: Arc::new(Vec::new()),
            containers: None,
            requests: Vec::new(),
            session_cookie: login::cookie_value(&config.global.bearer_token),
            config,
        };
        Proxy {
            current: RwLock::new(Arc::new(empty)),
            activities: Mutex::new(HashMap::new()),
            pool: Pool::new(),
            connect_timeout: Duration::from_secs(10),
            connections: AtomicUsize::new(0),
            started: SystemTime::now(),
            tunnels: tunnel::Registry::default(),
            metrics: Metrics::new(),
            throttle: login::Throttle::default(),
            drain: Drain::default(),
            workers: crate::workers::Workers::new(
                "conn",
                crate::server::STACK_SIZE,
                Duration::from_secs(60),
            ),
            https,
        }
    }

    /// The generation new requests use.
    pub fn gen(&self) -> Arc<Generation> {
        self.current.read().clone()
    }

    /// One `Activity` per service of `config`: the existing one for a name already known.
    pub fn activity_for(&self, config: &Config) -> Arc<Vec<Arc<Activity>>> {
        let mut map = self.activities.lock();
        let now = Instant::now();
        Arc::new(
            config
                .services
                .iter()
                .map(|s| {
                    map.entry(s.name.clone())
                        .or_insert_with(|| Arc::new(Activity::new(now)))
                        .clone()
                })
                .collect(),
        )
    }

    /// Makes `config` current (with its activity from `activity_for` and its containers);
    /// returns the generation it replaces.
    pub fn install(
        &self,
        config: Config,
        activity: Arc<Vec<Arc<Activity>>>,
        containers: Option<Arc<dyn Containers>>,
    ) -> Arc<Generation> {
        let generation = Generation {
            router: Router::new(config.services.iter().map(|s| s.path.as_str())),
            requests: config
                .services
                .iter()
                .map(|s| self.metrics.service(&s.name))
                .collect(),
            session_cookie: login::cookie_value(&config.global.bearer_token),
            activity,
            containers,
            config,
        };
        std::mem::replace(&mut *self.current.write(), Arc::new(generation))
    }

    /// Handles one request whose head has been read. Returns whether the connection may
    /// carry another request.
    pub fn handle<C: Socket>(
        &self,
        client: &mut BufStream<C>,
        head: &RequestHead,
        peer: SocketAddr,
        proto: &str,
    ) -> bool {
        let g = self.gen();
        self.handle_in(&g, client, head, peer, proto)
    }

    fn handle_in<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        head: &RequestHead,
        peer: SocketAddr,
        proto: &str,
    ) -> bool {
        let start = Instant::now();
        let keep_alive = wants_keep_alive(head.minor, &head.headers) && !self.drain.is_draining();
        let head_only = head.method == "HEAD";
        let mut log = AccessLog {
            peer,
            head,
            service: "-",
            start,
            requests: self.metrics.unrouted(),
        };
        let body = match request_body(head) {
            Ok(b) => b,
            Err(e) => {
                return self.answer(
                    client,
                    &mut log,
                    Answer::BadRequest(e.to_string()),
                    false,
                    head_only,
                )
            }
        };
        // A refused request whose body was not read leaves the connection unusable.
        let reusable = keep_alive && body == BodyKind::Empty;
        let target = match split_target(&head.target) {
            Ok(t) => t,
            Err(e) => {
                return self.answer(
                    client,
                    &mut log,
                    Answer::BadRequest(e.0.into()),
                    false,
                    head_only,
                )
            }
        };
        if target.path == "/proxy/healthz" {
            return self.reply(
                client,
                &mut log,
                answer::ok("text/plain", b"ok\n", reusable, head_only),
                reusable,
            );
        }
        if let Some(token) = target.path.strip_prefix("/.well-known/acme-challenge/") {
            return match acme::challenge(&g.config.global.acme_webroot, token) {
                Ok(bytes) => self.reply(
                    client,
                    &mut log,
                    answer::ok("text/plain", &bytes, reusable, head_only),
                    reusable,
                ),
                Err(a) => self.answer(client, &mut log, a, reusable, head_only),
            };
        }
        // --- TLS (issue 5): while HTTPS is on, the HTTP port serves only the two routes above
        // and answers everything else with a redirect to HTTPS (or 426), before any auth.
        if proto == "http" {
            if let Some(r) =
                self.https
                    .http_port_answer(target.path, target.query, reusable, head_only)
            {
                let ok = client.write_all(&r.bytes).is_ok();
                log.write(r.status, r.bytes.len() as u64);
                return ok && r.keep_alive;
            }
        }
        // --- end TLS
        if target.path == "/proxy/login" || target.path == "/proxy/logout" {
            return self.login(
                g,
                client,
                &mut log,
                head,
                body,
                &target,
                proto == "https",
                keep_alive,
            );
        }
        if let Err(denied) = auth::check(
            &head.headers,
            &g.config.global.bearer_token,
            &g.session_cookie,
        ) {
            return self.answer(
                client,
                &mut log,
                Answer::Unauthorized(denied.detail()),
                reusable,
                head_only,
            );
        }
        if let Some(rest) = target.path.strip_prefix("/proxy/") {
            return match (rest, head.method.as_str()) {
                ("status", "GET" | "HEAD") => {
                    let json = status::render(self, g, SystemTime::now());
                    self.reply(
                        client,
                        &mut log,
                        answer::ok("application/json", &json, reusable, head_only),
                        reusable,
                    )
                }
                ("metrics", "GET" | "HEAD") => {
                    let text = self.render_metrics(g);
                    let ct = "text/plain; version=0.0.4; charset=utf-8";
                    self.reply(
                        client,
                        &mut log,
                        answer::ok(ct, text.as_bytes(), reusable, head_only),
                        reusable,
                    )
                }
                ("status" | "metrics", _) => self.answer(
                    client,
                    &mut log,
                    Answer::MethodNotAllowed("GET, HEAD"),
                    reusable,
                    head_only,
                ),
                _ => self.answer(
                    client,
                    &mut log,
                    Answer::NotFound(format!("no proxy endpoint {}", target.path)),
                    reusable,
                    head_only,
                ),
            };
        }
        let Some(m) = g.router.lookup(target.path) else {
            return self.answer(
                client,
                &mut log,
                Answer::NotFound(format!("no service for path {}", target.path)),
                reusable,
                head_only,
            );
        };
        let svc = &g.config.services[m.service];
        log.service = &svc.name;
        log.requests = &g.requests[m.service];
        if let (Some(max), BodyKind::Length(n)) = (svc.max_body_size, body) {
            if n > max {
                // Refused before any container is woken or any byte is sent upstream.
                return self.answer(client, &mut log, Answer::PayloadTooLarge, false, head_only);
            }
        }
        let _in_flight = g.activity[m.service].begin(SystemTime::now(), start);
        let addr: Cow<'_, str> = match &svc.backend {
            Backend::Upstream(a) => Cow::Borrowed(a),
            Backend::Container(_) => match &g.containers {
                Some(c) => match c.ensure_ready(m.service) {
                    Ok(a) => Cow::Owned(a),
                    Err(a) => return self.answer(client, &mut log, a, reusable, head_only),
                },
                None => {
                    let a = Answer::Unavailable {
                        detail: "container services need the Docker daemon, which is not connected"
                            .into(),
                        retry_after: 5,
                    };
                    return self.answer(client, &mut log, a, reusable, head_only);
                }
            },
        };
        let upstream_target =
            upstream_target(target.path, target.query, m.prefix, svc.strip_prefix);
        let stripped = (svc.strip_prefix && m.prefix != "/").then_some(m.prefix);
        let authority = target.authority.unwrap_or(&addr);
        let req = forward::Request {
            head,
            body,
            target: &upstream_target,
            info: ForwardInfo {
                peer: peer.ip(),
                trusted: g
                    .config
                    .global
                    .trusted_proxies
                    .iter()
                    .any(|n| n.contains(peer.ip())),
                proto,
                stripped_prefix: stripped,
                auth_token: svc.auth_token.as_deref(),
                upstream_authority: authority,
                upgrade: rewrite::requested_upgrade(head),
            },
            client_keep_alive: keep_alive,
            expect_continue: has_token(&head.headers, "expect", "100-continue"),
            max_body: svc.max_body_size,
            tunnel: TunnelCtx {
                registry: &self.tunnels,
                service: &svc.name,
                limits: tunnel::Limits {
                    idle: g.config.global.tunnel_idle_timeout,
                    max_lifetime: svc.max_tunnel_lifetime,
                },
            },
        };
        let timeouts = Timeouts {
            connect: self.connect_timeout,
            read: svc.response_timeout,
        };
        let mut result = forward::forward(client, &req, &self.pool, &addr, timeouts);
        if let (
            Err(Failure::Answer {
                answer: Answer::BadGateway(_),
                sent,
                ..
            }),
            Backend::Container(_),
            Some(c),
        ) = (&result, &svc.backend, &g.containers)
        {
            // A container that just became ready (or just died) may refuse once: check and
            // retry, unless the request may have reached it and is not safe to repeat.
            if forward::may_resend(head, body, *sent) {
                c.forward_failed(m.service, &addr);
                result = match c.ensure_ready(m.service) {
                    Ok(addr) => forward::forward(client, &req, &self.pool, &addr, timeouts),
                    Err(answer) => Err(Failure::Answer {
                        answer,
                        close: false,
                        sent: false,
                    }),
                };
            }
        }
        match result {
            Ok(o) => {
                log.write_in(o.status, o.bytes_out, o.bytes_in);
                o.client_keep_alive
            }
            Err(Failure::Answer { answer, close, .. }) => {
                self.answer(client, &mut log, answer, keep_alive && !close, head_only)
            }
            Err(Failure::Abort { status, reason }) => {
                log::warn!("{} {} {}: {reason}", peer, head.method, svc.name);
                log.write(status, 0);
                false
            }
        }
    }

    /// `/proxy/login` (GET: the form; POST: token for cookie) and `/proxy/logout`.
    #[allow(clippy::too_many_arguments)]
    fn login<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        log: &mut AccessLog<'_>,
        head: &RequestHead,
        body: BodyKind,
        target: &crate::route::Target<'_>,
        secure: bool,
        keep_alive: bool,
    ) -> bool {
        let query_next = target
            .query
            .and_then(|q| login::form_field(q.as_bytes(), "next"));
        let (status, bytes) = match (target.path, head.method.as_str()) {
            ("/proxy/logout", "GET" | "POST") => {
                let page = login::form_page("/", false);
                (
                    "200 OK",
                    login::response(
                        "200 OK",
                        &login::clear_cookie(),
                        &page,
                        keep_alive && body == BodyKind::Empty,
                    ),
                )
            }
            ("/proxy/login", "GET" | "HEAD") => {
                let page = login::form_page(login::safe_next(query_next.as_deref()), false);
                (
                    "200 OK",
                    login::response("200 OK", "", &page, keep_alive && body == BodyKind::Empty),
                )
            }
            ("/proxy/login", "POST") => {
                let mut form = Vec::new();
                let read = crate::http::copy_body(
                    body,
                    client,
                    &mut form,
                    false,
                    Some(login::MAX_FORM),
                    &mut |_| {},
                );
                if read.is_err() {
                    return self.answer(
                        client,
                        log,
                        Answer::BadRequest("unreadable login form".into()),
                        false,
                        false,
                    );
                }
                let next = login::form_field(&form, "next");
                let next = login::safe_next(next.as_deref());
                let token = login::form_field(&form, "token").unwrap_or_default();
                let header = [Header::new(
                    "Authorization",
                    format!("Bearer {}", token.trim()),
                )];
                if auth::check(&header, &g.config.global.bearer_token, &g.session_cookie).is_ok() {
                    self.throttle.succeed(log.peer.ip());
                    let extra = format!(
                        "Location: {next}\r\n{}",
                        login::set_cookie(&g.session_cookie, secure)
                    );
                    (
                        "303 See Other",
                        login::response("303 See Other", &extra, b"", keep_alive),
                    )
                } else {
                    std::thread::sleep(self.throttle.fail(log.peer.ip(), Instant::now()));
                    let page = login::form_page(next, true);
                    let extra = "WWW-Authenticate: Bearer realm=\"wakeproxy\"\r\n";
                    (
                        "401 Unauthorized",
                        login::response("401 Unauthorized", extra, &page, keep_alive),
                    )
                }
            }
            _ => {
                return self.answer(
                    client,
                    log,
                    Answer::MethodNotAllowed("GET, POST"),
                    false,
                    false,
                )
            }
        };
        let ok = client.write_all(&bytes).is_ok();
        log.write(status[..3].parse().unwrap_or(200), bytes.len() as u64);
        ok && keep_alive && (body == BodyKind::Empty || head.method == "POST")
    }

    /// The `/proxy/metrics` text at this moment.
    fn render_metrics(&self, g: &Generation) -> String {
        let n = g.config.services.len();
        let snapshot = metrics::Snapshot {
            names: g.config.services.iter().map(|s| s.name.as_str()).collect(),
            requests: g.requests.iter().map(|r| &**r).collect(),
            open_connections: self.connections.load(std::sync::atomic::Ordering::Relaxed),
            open_tunnels: g
                .config
                .services
                .iter()
                .map(|s| self.tunnels.count(&s.name))
                .collect(),
            in_flight: g.activity.iter().map(|a| a.in_flight()).collect(),
            starts: (0..n)
                .map(|i| g.containers.as_ref().and_then(|c| c.start_metrics(i)))
                .collect(),
        };
        metrics::render(&self.metrics, &snapshot)
    }

    fn answer<C: Socket>(
        &self,
        client: &mut BufStream<C>,
        log: &mut AccessLog<'_>,
        a: Answer,
        keep: bool,
        head_only: bool,
    ) -> bool {
        if a.status() >= 500 {
            log::warn!(
                "{} {} {} -> {}: {}",
                log.peer,
                log.head.method,
                log.service,
                a.status(),
                a.detail()
            );
        }
        let bytes = a.render(keep, head_only);
        let ok = client.write_all(&bytes).is_ok();
        log.write(a.status(), bytes.len() as u64);
        ok && keep
    }

    fn reply<C: Socket>(
        &self,
        client: &mut BufStream<C>,
        log: &mut AccessLog<'_>,
        bytes: Vec<u8>,
        keep: bool,
    ) -> bool {
        let ok = client.write_all(&bytes).is_ok();
        log.write(200, bytes.len() as u64);
        ok && keep
    }
}

/// One access-log line per request: client, method, path (no query: it may hold secrets),
/// status, service, bytes sent, duration.
struct AccessLog<'a> {
    peer: SocketAddr,
    head: &'a RequestHead,
    service: &'a str,
    start: Instant,
    requests: &'a metrics::ServiceMetrics,
}

impl AccessLog<'_> {
    fn write(&self, status: u16, bytes: u64) {
        self.write_in(status, bytes, 0);
    }

    fn write_in(&self, status: u16, bytes: u64, bytes_in: u64) {
        self.requests
            .request(status, self.start.elapsed(), bytes_in, bytes);
        if log::log_enabled!(target: "access", log::Level::Info) {
            let path = self.head.target.split('?').next().unwrap_or("");
            log::info!(
                target: "access",
                "{} \"{} {}\" {} {} {}B {:.1}ms",
                self.peer.ip(),
                self.head.method,
                path,
                status,
                self.service,
                bytes,
                self.start.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}
