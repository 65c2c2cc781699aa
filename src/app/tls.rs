//! TLS at start-up: the certificate files found (or awaited) and checked before anything is
//! bound, then the HTTPS listener, the reload watcher and certbot's thread.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Global;
use crate::server::{Hub, Server};
use crate::tls::certbot::Certbot;
use crate::tls::{self, CertFiles, watch::Watcher};

use super::cli::CliError;

/// TLS as configured: the files to serve, what was found in them at start-up, and certbot.
pub(super) struct TlsPlan {
    files: CertFiles,
    prepared: tls::Prepared,
    certbot: Option<Certbot>,
}

/// `None` when TLS is not configured. With `auto_certbot` and no `tls_certfile`, the files
/// are where certbot puts them.
pub(super) fn prepare(g: &Global) -> Result<Option<TlsPlan>, CliError> {
    let certbot = match g.auto_certbot {
        true => Some(Certbot::from_env(g).map_err(CliError::Startup)?),
        false => None,
    };
    let files = match (&g.tls_certfile, &g.tls_keyfile, &certbot) {
        (Some(cert), Some(key), _) => CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, Some(c)) => c.default_files(),
        _ => return Ok(None),
    };
    let prepared = crate::tls::prepare(&files).map_err(CliError::Startup)?;
    Ok(Some(TlsPlan {
        files,
        prepared,
        certbot,
    }))
}

/// Binds the HTTPS port, serves the certificate found at start-up (or waits for one), and
/// starts the reload watcher and certbot's thread; the poller serves the port.
pub(super) fn start(
    server: &mut Server,
    hub: &Arc<Hub>,
    g: &Global,
    plan: TlsPlan,
) -> Result<(), CliError> {
    let https = &hub.proxy.https;
    let addr = SocketAddr::new(g.listen_address, g.listen_https);
    let TlsPlan {
        files,
        prepared,
        certbot,
    } = plan;
    let local = server
        .listen_tls(addr, prepared.config.clone())
        .map_err(|e| CliError::Startup(format!("cannot listen on {addr}: {e}")))?;
    https.set_port(local.port());
    log::info!("listening on https://{local}");
    let watcher = Watcher {
        files: files.clone(),
        store: prepared.store.clone(),
        state: https.clone(),
        provider: prepared.provider.clone(),
        domain: g.domain.clone(),
    };
    let stamp = match prepared.initial {
        Some((loaded, stamp)) => {
            watcher.install(loaded);
            Some(stamp)
        }
        None => {
            log::info!(
                "waiting for certificates: {} or {} does not exist yet; until they do, the full proxy is served over plain HTTP, and HTTPS starts as soon as they appear{}",
                files.cert.display(),
                files.key.display(),
                if certbot.is_some() {
                    " (auto_certbot: running certbot)"
                } else {
                    ""
                }
            );
            None
        }
    };
    let startup = |e: std::io::Error| CliError::Startup(format!("cannot start a TLS thread: {e}"));
    let reload = watcher.spawn(stamp).map_err(startup)?;
    if let Some(c) = certbot {
        c.spawn(
            stamp.is_none(),
            files,
            prepared.store,
            https.clone(),
            reload,
        )
        .map_err(startup)?;
    }
    Ok(())
}
