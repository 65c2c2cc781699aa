//! The proxy's own endpoints, answered once their gates (redirect, auth) are passed: health,
//! ACME challenges, login and logout, status and metrics, each from the current state.

use std::time::Instant;

use crate::base::Socket;
use crate::base::load::Cut;
use crate::endpoints::login::{self, MAX_FORM};
use crate::endpoints::{self, Endpoint, acme, metrics, status};
use crate::http::pace::Paced;
use crate::http::{BufStream, Problem, Reply, copy_body};

use super::respond::Exchange;
use super::{Framed, Generation, Proxy, auth};

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
            Endpoint::Logout if reading || method == "POST" => login::logged_out(),
            Endpoint::Login | Endpoint::Logout => {
                Problem::MethodNotAllowed("GET, HEAD, POST").into()
            }
            Endpoint::Status if reading => self.status(g, x),
            Endpoint::Metrics if reading => self.metrics(g, x),
            Endpoint::Status | Endpoint::Metrics => Problem::MethodNotAllowed("GET, HEAD").into(),
            Endpoint::Unknown => {
                Problem::NotFound(format!("no proxy endpoint {}", req.target.path)).into()
            }
        }
    }

    /// `POST /proxy/login`: the token from the form for the session cookie. Wrong tokens are
    /// answered late, later each time from the same client.
    fn log_in<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        x: &mut Exchange<'_>,
        req: &Framed<'_>,
    ) -> Reply {
        let ip = x.conn().peer.ip();
        let limits = &g.global.limits;
        let Some(_login) = self.logins.enter(ip, limits.max_unauthenticated_per_ip) else {
            x.conn().load.count(Cut::UnauthenticatedCap);
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
                x.conn().load.count(Cut::BodyRate);
            }
            return Problem::BadRequest(format!("unreadable login form: {e}")).into();
        }
        x.body_was_read();
        let submitted = login::submitted(&form);
        if auth::token_matches(submitted.token.as_bytes(), &g.global.bearer_token) {
            self.throttle.succeed(ip);
            login::logged_in(&submitted.next, &g.session_cookie, x.conn().tls)
        } else {
            std::thread::sleep(self.throttle.fail(ip, Instant::now()));
            login::refused(&submitted.next)
        }
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
        })
    }
}
