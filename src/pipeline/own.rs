//! The proxy's own endpoints, answered once their gates (redirect, auth) are passed: health,
//! ACME challenges, login and logout, status and metrics, a starting service's progress, each
//! from the current state.

use crate::base::Socket;
use crate::base::load::Cut;
use crate::config::Backend;
use crate::endpoints::login::{self, MAX_FORM};
use crate::endpoints::{self, Endpoint, acme, metrics, status, waiting};
use crate::http::cookie::find_cookie;
use crate::http::pace::Paced;
use crate::http::{BufStream, Problem, Reply, copy_body};
use crate::lifecycle::pulls::Pulls;

use super::auth::Denied;
use super::guard::Judgement;
use super::respond::Exchange;
use super::{Framed, Generation, Proxy, origin};

/// `/proxy/waking/<name>`: where service `name`'s start has come.
fn waking(g: &Generation, name: &str) -> Reply {
    let Some(route) = g.routes.iter().find(|r| r.service.name == name) else {
        return Problem::NotFound(format!("no service named {name}")).into();
    };
    match (&route.service.backend, &route.wake) {
        (Backend::Upstream(_), _) => waiting::readiness(name, None),
        (Backend::Container(_), Some(w)) => waiting::readiness(name, Some(&w.report())),
        (Backend::Container(_), None) => Problem::Unavailable {
            detail: "container services need the Docker daemon, which is not connected".into(),
            retry_after: 5,
        }
        .into(),
    }
}

impl Proxy {
    /// The answer of one of the proxy's own endpoints.
    pub(super) fn own_endpoint<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        x: &mut Exchange<'_>,
        req: &Framed<'_>,
        endpoint: Endpoint<'_>,
    ) -> Reply {
        let method = req.head.method.as_str();
        let reading = matches!(method, "GET" | "HEAD");
        match endpoint {
            Endpoint::Healthz => endpoints::healthz(self.start_nonce.as_deref()),
            Endpoint::Acme(token) => acme::answer(&g.global.acme_webroot, token),
            Endpoint::Login if reading => login::page(req.target.query),
            Endpoint::Login if method == "POST" => self.log_in(g, client, x, req),
            Endpoint::Logout if reading => login::logout_page(),
            Endpoint::Logout if method == "POST" => self.log_out(x, req),
            Endpoint::Login | Endpoint::Logout => {
                Problem::MethodNotAllowed("GET, HEAD, POST").into()
            }
            Endpoint::Status if reading => self.status(g, x),
            Endpoint::Metrics if reading => self.metrics(g, x),
            Endpoint::Status | Endpoint::Metrics => Problem::MethodNotAllowed("GET, HEAD").into(),
            Endpoint::Waking(name) if reading => waking(g, name),
            Endpoint::Waking(_) => Problem::MethodNotAllowed("GET, HEAD").into(),
            Endpoint::Unknown => {
                Problem::NotFound(format!("no proxy endpoint {}", req.target.path)).into()
            }
        }
    }

    /// `POST /proxy/login`: the token from the form for a new session. The form must come
    /// from the proxy's own page; wrong tokens count against the address like every other
    /// wrong credential, and while it must wait the form says so (429) without a check.
    fn log_in<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        x: &mut Exchange<'_>,
        req: &Framed<'_>,
    ) -> Reply {
        let conn = x.conn();
        if let Err(foreign) = origin::check(&req.head.headers, conn.tls) {
            return Problem::Forbidden(foreign.detail()).into();
        }
        let limits = &g.global.limits;
        let ip = conn.peer.ip();
        let Some(_login) = self.logins.enter(ip, limits.max_unauthenticated_per_ip) else {
            conn.load.count(Cut::UnauthenticatedCap);
            let detail = "too many logins under way from this address".into();
            return Problem::TooManyRequests {
                detail,
                retry_after: 1,
            }
            .into();
        };
        let mut form = Vec::new();
        let mut body = Paced::new(client, super::body_pace(g, x.start(), false));
        let read = copy_body(
            req.body,
            &mut body,
            &mut form,
            false,
            Some(MAX_FORM),
            &mut |_| {},
        );
        if let Err(e) = read {
            if e.is_timeout() {
                conn.load.count(Cut::BodyRate);
            }
            return Problem::BadRequest(format!("unreadable login form: {e}")).into();
        }
        x.body_was_read();
        let submitted = login::submitted(&form);
        let at = self.at(conn);
        let given = submitted.token.as_bytes();
        match self.gate(g).token(given, at, &self.failures.form) {
            Ok(()) => {
                self.vouched(conn);
                let lifetime = g.global.session_lifetime;
                let session = self.sessions.open(at.wall, lifetime);
                login::logged_in(&submitted.next, &session, conn.tls, lifetime)
            }
            Err(Denied::Wait(d)) => login::wait(&submitted.next, Judgement::retry_after(d)),
            Err(_) => login::refused(&submitted.next),
        }
    }

    /// `POST /proxy/logout`: ends the session on the server and clears the cookie. Only the
    /// proxy's own page can ask (a page elsewhere could otherwise log its visitors out).
    fn log_out(&self, x: &Exchange<'_>, req: &Framed<'_>) -> Reply {
        if let Err(foreign) = origin::check(&req.head.headers, x.conn().tls) {
            return Problem::Forbidden(foreign.detail()).into();
        }
        let cookies = req.head.headers.iter().filter(|h| h.is("cookie"));
        if let Some(v) = find_cookie(cookies.map(|h| h.value()), login::COOKIE) {
            self.sessions.end(v);
        }
        login::logged_out()
    }

    /// `/proxy/status`.
    fn status(&self, g: &Generation, x: &Exchange<'_>) -> Reply {
        let services = g.routes.iter().map(|r| status::ServiceView {
            service: &r.service,
            last_access: r.activity.last_access(),
            in_flight: r.activity.in_flight(),
            open_tunnels: self.tunnels.count(&r.service.name),
            requests: r.activity.requests(),
            on_demand: r.wake.as_ref().map(|w| w.report()),
        });
        status::answer(&status::Snapshot {
            started: self.started,
            load: x.conn().load.snapshot(),
            tls: self.https.status_json(),
            services: services.collect(),
        })
    }

    /// `/proxy/metrics`.
    fn metrics(&self, g: &Generation, x: &Exchange<'_>) -> Reply {
        let services = g.routes.iter().map(|r| metrics::ServiceFigures {
            name: &r.service.name,
            requests: &r.metrics,
            in_flight: r.activity.in_flight(),
            open_tunnels: self.tunnels.count(&r.service.name),
            starts: r.wake.as_ref().map(|w| w.start_figures()),
        });
        metrics::answer(&metrics::Scrape {
            services: services.collect(),
            unrouted: self.metrics.unrouted(),
            load: x.conn().load.snapshot(),
            auth: self.auth_figures(),
            pulls: Pulls::shared().counts(),
            spliced: metrics::Spliced::now(),
        })
    }

    /// Credential figures for metrics.
    fn auth_figures(&self) -> metrics::AuthFigures {
        let f = &self.failures;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        metrics::AuthFigures {
            failed_header: load(&f.header),
            failed_cookie: load(&f.cookie),
            failed_form: load(&f.form),
            throttled: load(&f.throttled),
            addresses_waiting: self.guard.waiting(std::time::Instant::now()),
            sessions: self.sessions.count(),
        }
    }
}
