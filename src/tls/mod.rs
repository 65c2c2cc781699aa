//! TLS termination with rustls (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`).
//!
//! - `certs`: loading a PEM chain and key as a checked pair, and the resolver that gives new
//!   handshakes the current pair;
//! - `watch`: the reload watcher (polls the files, swaps the pair, never serves a mismatch);
//! - `stream`: the TLS `Socket` a connection thread runs the proxy over, with tunnel halves;
//! - `state`: what the rest of the proxy sees (HTTPS on or off, certificate facts for status);
//! - `x509`: just enough DER reading to describe a certificate;
//! - `certbot`: running certbot for `auto_certbot` (first certificate, renewals on a timer).

pub(crate) mod certbot;
pub(crate) mod certs;
pub(crate) mod state;
pub(crate) mod stream;
pub(crate) mod waiting;
pub(crate) mod watch;
pub(crate) mod x509;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub(crate) use certs::{CertFiles, CertStore, FileStamp, LoadError, Loaded};
pub(crate) use state::HttpsState;

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

/// TLS ready to be served: the configuration for the listener and the pair found at start-up.
pub(crate) struct Prepared {
    pub provider: Arc<CryptoProvider>,
    pub store: Arc<CertStore>,
    pub config: Arc<ServerConfig>,
    /// The pair loaded at start-up and its files' stamp; `None` when the files do not exist yet.
    pub initial: Option<(Loaded, [FileStamp; 2])>,
}

/// Loads the configured files if they exist. Missing files are not an error (HTTPS waits for
/// them); unreadable, invalid or mismatched ones are.
pub(crate) fn prepare(files: &CertFiles) -> Result<Prepared, String> {
    let provider = provider();
    let store = Arc::new(CertStore::default());
    let config = server_config(provider.clone(), store.clone())
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let initial = match certs::load(files, &provider) {
        Err(LoadError::Missing(_)) => None,
        Err(e) => {
            return Err(format!(
                "TLS certificate files {} and {}: {e}",
                files.cert.display(),
                files.key.display()
            ));
        }
        // A file removed in between counts as missing: the watcher picks it up later.
        Ok(loaded) => certs::stamp(files).ok().map(|stamp| (loaded, stamp)),
    };
    Ok(Prepared {
        provider,
        store,
        config,
        initial,
    })
}

/// What `proxy-validate-config` should warn about: certificate files that do not exist while
/// nothing (no `auto_certbot`) will create them, so the proxy would serve plain HTTP only.
pub(crate) fn config_warnings(g: &crate::config::Global) -> Vec<String> {
    let (Some(cert), Some(key)) = (&g.tls_certfile, &g.tls_keyfile) else {
        return Vec::new();
    };
    if g.auto_certbot {
        return Vec::new();
    }
    [cert, key]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| {
            format!(
                "{} does not exist and auto_certbot is off: the proxy serves plain HTTP only (no redirect) until it appears",
                p.display()
            )
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
