//! What the rest of the proxy sees of TLS: whether HTTPS is on (which decides what the plain
//! HTTP port answers: see `endpoints::redirect`), and what `/proxy/status` can tell about the certificate and certbot.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::x509::Summary;
use crate::base::rfc3339;
use crate::config::Global;

/// One certbot run, for the status endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertbotRun {
    /// `certonly` or `renew`.
    pub command: String,
    pub at: SystemTime,
    pub ok: bool,
    /// The last lines of certbot's output when it failed; empty on success.
    pub detail: String,
}

#[derive(Debug, Default)]
struct Info {
    cert: Option<Summary>,
    loaded_at: Option<SystemTime>,
    /// Why the files on disk are not the ones served (a failed reload), if so.
    reload_error: Option<String>,
    certbot: Option<CertbotRun>,
}

/// Shared between the connections, the reload watcher and the certbot timer.
#[derive(Debug)]
pub(crate) struct HttpsState {
    /// HTTPS has a certificate and is serving: the HTTP port redirects.
    live: AtomicBool,
    /// The bound HTTPS port (0 before it is bound).
    port: AtomicU16,
    redirect: bool,
    domain: String,
    info: Mutex<Info>,
}

impl HttpsState {
    /// Off until `set_port` and `set_cert` are called (never with `--no-tls`).
    pub(crate) fn new(g: &Global) -> HttpsState {
        HttpsState {
            live: AtomicBool::new(false),
            port: AtomicU16::new(0),
            redirect: g.http_redirect_to_https,
            domain: g.domain.clone(),
            info: Mutex::new(Info::default()),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Acquire)
    }

    /// Records the bound HTTPS port (before any certificate is set).
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Release);
    }

    /// A certificate is being served (the first, or a reloaded one). Returns whether HTTPS
    /// has just become live.
    pub(crate) fn set_cert(&self, summary: Option<Summary>) -> bool {
        {
            let mut info = self.info.lock();
            info.cert = summary;
            info.loaded_at = Some(SystemTime::now());
            info.reload_error = None;
        }
        self.port() != 0 && !self.live.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn set_reload_error(&self, why: Option<String>) {
        self.info.lock().reload_error = why;
    }

    pub(crate) fn set_certbot(&self, run: CertbotRun) {
        self.info.lock().certbot = Some(run);
    }

    /// Whether the plain HTTP port redirects to HTTPS while HTTPS is live (else it answers
    /// 426).
    pub(crate) fn redirects(&self) -> bool {
        self.redirect
    }

    /// The configured domain, the only host redirects point at.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// The `tls` object for `/proxy/status`.
    pub(crate) fn status_json(&self) -> Value {
        let info = self.info.lock();
        let cert = info.cert.as_ref().map(|c| {
            json!({
                "subject": c.subject(),
                "dns_names": c.dns_names,
                "serial": c.serial,
                "not_before": rfc3339(c.not_before),
                "not_after": rfc3339(c.not_after),
            })
        });
        let certbot = info.certbot.as_ref().map(|r| {
            json!({
                "command": r.command,
                "at": rfc3339(r.at),
                "ok": r.ok,
                "detail": r.detail,
            })
        });
        json!({
            "https": self.is_live(),
            "port": self.port(),
            "certificate": cert,
            "loaded_at": info.loaded_at.map(rfc3339),
            "reload_error": info.reload_error,
            "last_certbot_run": certbot,
        })
    }
}
