//! What the rest of the proxy sees of TLS: whether HTTPS is on (which decides what the plain
//! HTTP port answers: see `endpoints::redirect`), and what `/proxy/status` can tell about each
//! certificate and certbot.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::Slot;
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

/// One certificate served (or waited for).
#[derive(Debug)]
struct CertInfo {
    slot: Slot,
    cert: Option<Summary>,
    loaded_at: Option<SystemTime>,
    /// Why the files on disk are not the ones served (a failed reload), if so.
    reload_error: Option<String>,
    /// The last `certonly` run for this certificate (`auto_certbot`).
    certbot: Option<CertbotRun>,
}

#[derive(Debug, Default)]
struct Info {
    /// In slot order.
    certs: Vec<CertInfo>,
    /// The last certbot run of any kind.
    certbot: Option<CertbotRun>,
}

impl Info {
    fn default_cert(&self) -> Option<&CertInfo> {
        self.certs.iter().find(|c| c.slot.default)
    }
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

    /// The certificates to serve, in slot order (at start-up, before any is loaded).
    pub(crate) fn set_slots(&self, slots: &[Slot]) {
        self.info.lock().certs = slots
            .iter()
            .map(|slot| CertInfo {
                slot: slot.clone(),
                cert: None,
                loaded_at: None,
                reload_error: None,
                certbot: None,
            })
            .collect();
    }

    /// `slot` serves a certificate (its first, or a reloaded one). Returns whether HTTPS has
    /// just become live (with the first certificate of any slot).
    pub(crate) fn set_cert(&self, slot: usize, summary: Option<Summary>) -> bool {
        if let Some(c) = self.info.lock().certs.get_mut(slot) {
            c.cert = summary;
            c.loaded_at = Some(SystemTime::now());
            c.reload_error = None;
        }
        self.port() != 0 && !self.live.swap(true, Ordering::AcqRel)
    }

    /// Why `slot`'s files on disk are not served, or `None` once they are.
    pub(crate) fn set_reload_error(&self, slot: usize, why: Option<String>) {
        if let Some(c) = self.info.lock().certs.get_mut(slot) {
            c.reload_error = why;
        }
    }

    /// A certbot run: `certonly` for `slot`'s certificate, or `renew` (`None`).
    pub(crate) fn set_certbot(&self, run: CertbotRun, slot: Option<usize>) {
        let mut info = self.info.lock();
        if let Some(c) = slot.and_then(|i| info.certs.get_mut(i)) {
            c.certbot = Some(run.clone());
        }
        info.certbot = Some(run);
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

    /// The `tls` object for `/proxy/status`: `certificate`, `loaded_at` and `reload_error`
    /// describe the default pair; `certificates` lists every certificate.
    pub(crate) fn status_json(&self) -> Value {
        let info = self.info.lock();
        let default = info.default_cert();
        json!({
            "https": self.is_live(),
            "port": self.port(),
            "certificate": default.and_then(|c| c.cert.as_ref()).map(summary_json),
            "loaded_at": default.and_then(|c| c.loaded_at).map(rfc3339),
            "reload_error": default.and_then(|c| c.reload_error.as_ref()),
            "certificates": info.certs.iter().map(cert_json).collect::<Vec<_>>(),
            "last_certbot_run": info.certbot.as_ref().map(certbot_json),
        })
    }
}

fn summary_json(c: &Summary) -> Value {
    json!({
        "subject": c.subject(),
        "dns_names": c.dns_names,
        "serial": c.serial,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
    })
}

fn certbot_json(r: &CertbotRun) -> Value {
    json!({
        "command": r.command,
        "at": rfc3339(r.at),
        "ok": r.ok,
        "detail": r.detail,
    })
}

/// One certificate: its files and role, then what it holds once loaded (`null` before).
fn cert_json(c: &CertInfo) -> Value {
    let s = c.cert.as_ref();
    json!({
        "certfile": c.slot.files.cert.display().to_string(),
        "keyfile": c.slot.files.key.display().to_string(),
        "default": c.slot.default,
        "certbot_name": c.slot.lineage,
        "names": s.map(Summary::names),
        "subject": s.map(Summary::subject),
        "serial": s.map(|s| &s.serial),
        "not_before": s.map(|s| rfc3339(s.not_before)),
        "not_after": s.map(|s| rfc3339(s.not_after)),
        "loaded_at": c.loaded_at.map(rfc3339),
        "reload_error": c.reload_error,
        "last_certbot_run": c.certbot.as_ref().map(certbot_json),
    })
}
