//! TLS termination with rustls (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`).
//!
//! - `certs`: loading a PEM chain and key as a checked pair;
//! - `store` and `sni`: the resolver giving each new handshake its certificate by SNI (the
//!   default pair, `tls_certificates`, certbot's per-host certificates);
//! - `watch`: the reload watcher (polls the files, swaps a pair, never serves a mismatch);
//! - `stream`: the TLS `Socket` a connection thread runs the proxy over, with tunnel halves;
//! - `state`: what the rest of the proxy sees (HTTPS on or off, certificate facts for status);
//! - `x509`: just enough DER reading to describe a certificate;
//! - `certbot`: running certbot for `auto_certbot` (first certificates, renewals on a timer),
//!   with `command` to run a program and collect its output.

pub(crate) mod certbot;
pub(crate) mod certs;
pub(crate) mod command;
pub(crate) mod sni;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod waiting;
pub(crate) mod watch;
pub(crate) mod x509;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub(crate) use certs::{CertFiles, FileStamp, LoadError, Loaded};
pub(crate) use state::HttpsState;
pub(crate) use store::CertStore;

/// The crypto provider, chosen explicitly (never the process default).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration: TLS 1.3 and 1.2 with the provider's (strong, forward-secret,
/// AEAD-only) cipher suites in the server's order, ALPN `http/1.1`, certificates from `store`.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// One certificate the proxy serves: its files, and what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub files: CertFiles,
    /// The default pair: for clients without SNI and names no other certificate covers.
    pub default: bool,
    /// The name certbot obtains this certificate for (`auto_certbot`), if it does.
    pub lineage: Option<String>,
}

/// A pair loaded at start-up, with its files' stamp.
pub(crate) type Initial = (Loaded, [FileStamp; 2]);

/// TLS ready to be served: the configuration for the listener, the certificates to serve and
/// what was found of them at start-up.
pub(crate) struct Prepared {
    pub provider: Arc<CryptoProvider>,
    pub store: Arc<CertStore>,
    pub config: Arc<ServerConfig>,
    /// In the order the index prefers them when two name the same host; the default last.
    pub slots: Vec<Slot>,
    /// Per slot: the pair loaded at start-up, `None` when its files do not exist yet.
    pub initial: Vec<Option<Initial>>,
}

/// Loads `files` at start-up if they exist. Missing files are not an error (the certificate
/// is waited for); unreadable, invalid or mismatched ones are.
pub(crate) fn load_initial(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<Option<Initial>, String> {
    match certs::load(files, provider) {
        Err(LoadError::Missing(_)) => Ok(None),
        Err(e) => Err(format!(
            "TLS certificate files {} and {}: {e}",
            files.cert.display(),
            files.key.display()
        )),
        // A file removed in between counts as missing: the watcher picks it up later.
        Ok(loaded) => Ok(certs::stamp(files).ok().map(|stamp| (loaded, stamp))),
    }
}

/// The listener's configuration over a resolver for `slots`, with what `load_initial` found
/// of each (`initial`, in the same order).
pub(crate) fn prepare(
    provider: Arc<CryptoProvider>,
    slots: Vec<Slot>,
    initial: Vec<Option<Initial>>,
) -> Result<Prepared, String> {
    let default = slots.iter().position(|s| s.default);
    let store = Arc::new(CertStore::new(slots.len(), default));
    let config = server_config(provider.clone(), store.clone())
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    Ok(Prepared {
        provider,
        store,
        config,
        slots,
        initial,
    })
}

/// What `proxy-validate-config` should warn about: certificate files that do not exist while
/// nothing (no `auto_certbot`) will create them, so the proxy would serve plain HTTP only, and
/// `tls_certificates` files that do not exist; with `auto_certbot`, wildcard hosts (no
/// certificate by http-01).
pub(crate) fn config_warnings(c: &crate::config::Config) -> Vec<String> {
    let g = &c.global;
    let mut out = Vec::new();
    if let (Some(cert), Some(key), false) = (&g.tls_certfile, &g.tls_keyfile, g.auto_certbot) {
        out.extend([cert, key].into_iter().filter(|p| !p.exists()).map(|p| {
            format!(
                "{} does not exist and auto_certbot is off: the proxy serves plain HTTP only (no redirect) until it appears",
                p.display()
            )
        }));
    }
    for (i, pair) in g.tls_certificates.iter().enumerate() {
        let mut files = vec![&pair.certfile, &pair.keyfile];
        files.dedup();
        out.extend(files.into_iter().filter(|p| !p.exists()).map(|p| {
            format!(
                "{} does not exist: tls_certificates[{i}] is served once it appears",
                p.display()
            )
        }));
    }
    if g.auto_certbot {
        let plan = certbot::host_plan(&g.domain, &c.services, |_| false);
        let warn = |(service, host): (String, String)| certbot::wildcard_warning(&service, &host);
        out.extend(plan.wildcards.into_iter().map(warn));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
