//! Phases 7 and 8: waking an on-demand service, and forwarding the request to the service's
//! address, once more when a just-started (or just-died) container refused it and repeating
//! the request is harmless.

use std::borrow::Cow;
use std::ops::ControlFlow::{Break, Continue};

use crate::base::Socket;
use crate::base::load::Cut;
use crate::config::{Backend, ServiceAuth};
use crate::endpoints::login::{COOKIE, is_page_load};
use crate::endpoints::waiting::{self, Waiting};
use crate::http::head::{has_token, header, wants_keep_alive};
use crate::http::reprefix::Reprefix;
use crate::http::rewrite::{ForwardInfo, requested_upgrade};
use crate::http::target::upstream_target;
use crate::http::{BufStream, Problem, Reply};
use crate::lifecycle::NotReady;
use crate::upstream::forward::{self, may_resend};
use crate::upstream::{Failure, Timeouts, TunnelCtx, tunnel};

use super::auth::own_authorization;
use super::respond::{Ended, Exchange};
use super::{Conn, Flow, Framed, Generation, Proxy, Routed};

/// Phase 7: the address to forward to; an on-demand service is made ready first. A browser
/// opening a page of a service that is not ready within `loading_page_after` gets the
/// waiting page instead (and, if the start fails, the page with the reason); every other
/// request waits for the start as long as it takes.
pub(super) fn wake<'a>(g: &Generation, routed: Routed<'a>, req: &Framed<'_>) -> Flow<Cow<'a, str>> {
    let route = routed.route;
    match (&route.service.backend, &route.wake) {
        (Backend::Upstream(a), _) => Continue(Cow::Borrowed(a)),
        (Backend::Container(_), Some(w)) => {
            let patience = route.service.loading_page_after;
            if patience.is_zero() || !is_page_load(req.head) {
                return match w.ensure_ready() {
                    Ok(addr) => Continue(Cow::Owned(addr)),
                    Err(not_ready) => Break(unavailable(not_ready).into()),
                };
            }
            let template = g.global.loading_page.as_deref();
            let name = &route.service.name;
            match w.ensure_ready_within(patience) {
                Ok(Some(addr)) => Continue(Cow::Owned(addr)),
                Ok(None) => Break(waiting::page(
                    template,
                    &Waiting::of(name, &w.report(), None),
                )),
                Err(n) => {
                    let report = w.report();
                    Break(waiting::page(
                        template,
                        &Waiting::of(name, &report, Some(&n.detail)),
                    ))
                }
            }
        }
        (Backend::Container(_), None) => Break(
            unavailable(NotReady {
                detail: "container services need the Docker daemon, which is not connected".into(),
                retry_after: 5,
            })
            .into(),
        ),
    }
}

fn unavailable(n: NotReady) -> Problem {
    Problem::Unavailable {
        detail: n.detail,
        retry_after: n.retry_after,
    }
}

impl Proxy {
    /// Phase 8: forwards the request to `addr` and relays the answer.
    pub(super) fn forward<C: Socket>(
        &self,
        g: &Generation,
        client: &mut BufStream<C>,
        x: &mut Exchange<'_>,
        req: &Framed<'_>,
        routed: Routed<'_>,
        addr: Cow<'_, str>,
    ) -> Ended {
        let svc = &routed.service;
        let target = upstream_target(
            req.target.path,
            req.target.query,
            routed.prefix,
            svc.strip_prefix,
        );
        let conn = x.conn();
        let request = forward::Request {
            head: req.head,
            body: req.body,
            target: &target,
            info: forward_info(g, conn, req, routed, &addr),
            client_keep_alive: wants_keep_alive(req.head.minor, &req.head.headers)
                && !conn.draining,
            expect_continue: has_token(&req.head.headers, "expect", "100-continue"),
            max_body: svc.max_body_size,
            pace: super::body_pace(g, x.start(), true),
            tunnel: TunnelCtx {
                registry: &self.tunnels,
                service: &svc.name,
                limits: tunnel::Limits {
                    idle: g.global.tunnel_idle_timeout,
                    max_lifetime: svc.max_tunnel_lifetime,
                },
                on_start: &|| conn.signals.tunnel(),
            },
            on_own_cookie: &|| routed.own_cookie_dropped(),
        };
        let timeouts = Timeouts {
            connect: self.connect_timeout,
            read: svc.response_timeout,
        };
        let mut result = forward::forward(client, &request, &self.pool, &addr, timeouts);
        if let (Err(Failure::Problem { problem, sent, .. }), Some(w)) = (&result, &routed.wake) {
            // A container that just became ready (or just died) may refuse once, and a swarm
            // task whose node vanished lets the connect time out: check and retry (waiting
            // for readiness), unless the request may have reached it and is not safe to repeat.
            // A connect that timed out is retried only when the service went back to readiness.
            let retry = match problem {
                Problem::BadGateway(_) => may_resend(req.head, req.body, *sent),
                Problem::GatewayTimeout(_) => !*sent && may_resend(req.head, req.body, false),
                _ => false,
            };
            if retry && (w.forward_failed(&addr) || matches!(problem, Problem::BadGateway(_))) {
                result = match w.ensure_ready() {
                    Ok(addr) => forward::forward(client, &request, &self.pool, &addr, timeouts),
                    Err(n) => Err(Failure::Problem {
                        problem: unavailable(n),
                        close: false,
                        sent: false,
                    }),
                };
            }
        }
        ended(x, result)
    }
}

/// What the header rules need to know of the request's client and service.
fn forward_info<'a>(
    g: &'a Generation,
    conn: &Conn<'_>,
    req: &'a Framed<'_>,
    routed: Routed<'a>,
    addr: &'a str,
) -> ForwardInfo<'a> {
    let svc = &routed.route.service;
    let peer = conn.peer.ip();
    let trusted = g.global.trusted_proxies.iter().any(|n| n.contains(peer));
    let stripped_prefix = (svc.strip_prefix && routed.prefix != "/").then_some(routed.prefix);
    let redirects = stripped_prefix.filter(|_| svc.rewrite_redirects);
    ForwardInfo {
        peer,
        trusted,
        proto: if conn.tls { "https" } else { "http" },
        stripped_prefix,
        auth_token: svc.auth_token.as_deref(),
        pass_authorization: match svc.auth {
            ServiceAuth::Public => own_authorization(&req.head.headers, &g.global.bearer_token),
            ServiceAuth::Token => None,
        },
        own_cookie: COOKIE,
        allow_underscores: svc.allow_underscores_in_headers,
        upstream_authority: req.target.authority.unwrap_or(addr),
        upgrade: requested_upgrade(req.head),
        reprefix: Reprefix {
            redirects,
            cookie_paths: stripped_prefix.filter(|_| svc.rewrite_cookie_paths),
            // Only looked for when a redirect may need it.
            client_host: redirects.and_then(|_| client_host(req, trusted)),
        },
    }
}

/// The authority the client addressed, as the backend is told it (`X-Forwarded-Host`): a
/// trusted front proxy's `X-Forwarded-Host` (its first entry, the original client's), else
/// the request's `Host`, else the authority of an absolute-form target (HTTP/1.0 without Host).
fn client_host<'a>(req: &'a Framed<'_>, trusted: bool) -> Option<&'a [u8]> {
    let headers = &req.head.headers;
    let forwarded = header(headers, "x-forwarded-host").filter(|_| trusted);
    let first = forwarded.and_then(|h| h.value().split(|&b| b == b',').next());
    first
        .or_else(|| header(headers, "host").map(|h| h.value()))
        .or_else(|| req.target.authority.map(str::as_bytes))
        .map(<[u8]>::trim_ascii)
}

/// What a forward's result means for the end of the request.
fn ended(x: &mut Exchange<'_>, result: Result<forward::Outcome, Failure>) -> Ended {
    match result {
        Ok(o) => Ended::Relayed(o),
        Err(Failure::Problem { problem, close, .. }) => {
            let reply = Reply::from(problem);
            if close {
                return Ended::Reply(reply.closing());
            }
            // Not closing: the request's body (if any) went upstream whole.
            x.body_was_read();
            Ended::Reply(reply)
        }
        Err(Failure::Abort { status, reason }) => {
            if status == 408 {
                x.conn().load.count(Cut::BodyRate);
            }
            Ended::Aborted { status, reason }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;
    use crate::http::head::parse_request;
    use crate::http::target::split_target;

    /// The client host `client_host` finds in `raw`, from a trusted peer or not.
    fn host_of(raw: &str, trusted: bool) -> Option<String> {
        let head = parse_request(raw.as_bytes()).unwrap().unwrap().1;
        let target = split_target(&head.target).unwrap();
        let framed = Framed {
            head: &head,
            target,
            body: BodyKind::Empty,
        };
        client_host(&framed, trusted).map(|h| String::from_utf8(h.to_vec()).unwrap())
    }

    #[test]
    fn the_client_host_is_the_one_the_backend_is_told() {
        let plain = "GET /app/x HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n";
        assert_eq!(host_of(plain, false).as_deref(), Some("Example.com:8080"));
        let fronted = "GET /app/x HTTP/1.1\r\nHost: wakeproxy:80\r\n\
                       X-Forwarded-Host: public.example, inner.example\r\n\r\n";
        assert_eq!(host_of(fronted, true).as_deref(), Some("public.example"));
        assert_eq!(host_of(fronted, false).as_deref(), Some("wakeproxy:80"));
        let absolute = "GET http://abs.example:81/app/x HTTP/1.0\r\n\r\n";
        assert_eq!(host_of(absolute, false).as_deref(), Some("abs.example:81"));
        assert_eq!(host_of("GET /app/x HTTP/1.0\r\n\r\n", false), None);
    }
}
