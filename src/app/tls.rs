//! TLS at start-up: the certificates to serve (the default pair, `tls_certificates`, and with
//! `auto_certbot` certbot's per-host certificates), found (or awaited) and checked before
//! anything is bound, then the HTTPS listener, the reload watcher and certbot's thread.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::{Config, Global};
use crate::server::{Hub, Server};
use crate::tls::certbot::{Certbot, Wanted, host_plan, wildcard_warning};
use crate::tls::{self, CertFiles, Initial, Slot, watch::Watcher};

use super::cli::CliError;

/// TLS as configured: the certificates found at start-up, and certbot.
pub(super) struct TlsPlan {
    prepared: tls::Prepared,
    certbot: Option<Certbot>,
}

/// `None` when TLS is not configured. With `auto_certbot` and no `tls_certfile`, the default
/// pair is where certbot puts the domain's certificate.
pub(super) fn prepare(config: &Config) -> Result<Option<TlsPlan>, CliError> {
    let g = &config.global;
    let certbot = match g.auto_certbot {
        true => Some(Certbot::from_env(g).map_err(CliError::Startup)?),
        false => None,
    };
    let default = match (&g.tls_certfile, &g.tls_keyfile, &certbot) {
        (Some(cert), Some(key), _) => Some(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, Some(c)) => Some(c.default_files()),
        _ => None,
    };
    if default.is_none() && g.tls_certificates.is_empty() {
        return Ok(None);
    }
    let provider = tls::provider();
    let mut slots: Vec<(Slot, Option<Initial>)> = Vec::new();
    for pair in &g.tls_certificates {
        let files = CertFiles {
            cert: pair.certfile.clone(),
            key: pair.keyfile.clone(),
        };
        slots.push(load(&provider, files, false, None)?);
    }
    let default = match default {
        Some(files) => Some(load(
            &provider,
            files,
            true,
            certbot.as_ref().map(|_| g.domain.clone()),
        )?),
        None => None,
    };
    if let Some(c) = &certbot {
        let configured: Vec<&(Slot, Option<Initial>)> = slots.iter().chain(&default).collect();
        for (files, name) in certbot_hosts(config, c, &configured) {
            // Listed already (certbot's files in tls_certificates): certbot fills that one.
            match slots.iter_mut().find(|(s, _)| s.files == files) {
                Some((slot, _)) => slot.lineage = Some(name),
                None => slots.push(load(&provider, files, false, Some(name))?),
            }
        }
    }
    slots.extend(default);
    let (slots, initial) = slots.into_iter().unzip();
    let prepared = tls::prepare(provider, slots, initial).map_err(CliError::Startup)?;
    Ok(Some(TlsPlan { prepared, certbot }))
}

/// A slot and what `load_initial` found of it.
fn load(
    provider: &CryptoProvider,
    files: CertFiles,
    default: bool,
    lineage: Option<String>,
) -> Result<(Slot, Option<Initial>), CliError> {
    let initial = tls::load_initial(&files, provider).map_err(CliError::Startup)?;
    let slot = Slot {
        files,
        default,
        lineage,
    };
    Ok((slot, initial))
}

/// The services' exact hosts certbot obtains a certificate for, with its files: the names no
/// certificate of `configured` (loaded at start-up) names. Wildcard hosts are left out with a
/// warning.
fn certbot_hosts(
    config: &Config,
    certbot: &Certbot,
    configured: &[&(Slot, Option<Initial>)],
) -> Vec<(CertFiles, String)> {
    let names_it = |host: &str| {
        configured.iter().any(|(_, initial)| {
            let summary = initial
                .as_ref()
                .and_then(|(loaded, _)| loaded.summary.as_ref());
            summary.is_some_and(|s| s.covers(host))
        })
    };
    let plan = host_plan(&config.global.domain, &config.services, names_it);
    for (service, host) in &plan.wildcards {
        log::warn!("{}", wildcard_warning(service, host));
    }
    for host in &plan.covered {
        log::info!(
            "auto_certbot: {host} is named by a configured certificate; certbot leaves it alone"
        );
    }
    plan.obtain
        .into_iter()
        .map(|name| (certbot.live_files(&name), name))
        .collect()
}

/// Binds the HTTPS port, serves the certificates found at start-up (or waits for them), and
/// starts the reload watcher and certbot's thread; the poller serves the port.
pub(super) fn start(
    server: &mut Server,
    hub: &Arc<Hub>,
    g: &Global,
    plan: TlsPlan,
) -> Result<(), CliError> {
    let https = &hub.proxy.https;
    let addr = SocketAddr::new(g.listen_address, g.listen_https);
    let TlsPlan { prepared, certbot } = plan;
    let local = server
        .listen_tls(addr, prepared.config.clone())
        .map_err(|e| CliError::Startup(format!("cannot listen on {addr}: {e}")))?;
    https.set_port(local.port());
    https.set_slots(&prepared.slots);
    log::info!("listening on https://{local}");
    let watcher = Watcher {
        slots: prepared.slots.clone(),
        store: prepared.store.clone(),
        state: https.clone(),
        provider: prepared.provider.clone(),
        domain: g.domain.clone(),
    };
    let mut stamps = Vec::new();
    for (slot, initial) in prepared.initial.into_iter().enumerate() {
        stamps.push(initial.as_ref().map(|(_, stamp)| *stamp));
        if let Some((loaded, _)) = initial {
            watcher.install(slot, loaded);
        }
    }
    let wanted = log_waiting(&prepared.slots, &prepared.store, certbot.is_some());
    let startup = |e: std::io::Error| CliError::Startup(format!("cannot start a TLS thread: {e}"));
    let reload = watcher.spawn(stamps).map_err(startup)?;
    if let Some(c) = certbot {
        c.spawn(wanted, prepared.store, https.clone(), reload)
            .map_err(startup)?;
    }
    Ok(())
}

/// Says which certificates are awaited; returns those certbot is to obtain.
fn log_waiting(slots: &[Slot], store: &tls::CertStore, certbot: bool) -> Vec<Wanted> {
    let serving = store.has_cert();
    let mut wanted: Vec<Wanted> = Vec::new();
    for (i, slot) in slots
        .iter()
        .enumerate()
        .filter(|(i, _)| !store.is_loaded(*i))
    {
        let by_certbot = match (&slot.lineage, certbot) {
            (Some(name), true) => {
                wanted.push(Wanted {
                    name: name.clone(),
                    slot: i,
                    files: slot.files.clone(),
                });
                " (auto_certbot: running certbot)"
            }
            _ => "",
        };
        let until = match serving {
            true => "it is served as soon as they appear",
            false => {
                "until they do, the full proxy is served over plain HTTP, and HTTPS starts as soon as they appear"
            }
        };
        log::info!(
            "waiting for certificates: {} or {} does not exist yet; {until}{by_certbot}",
            slot.files.cert.display(),
            slot.files.key.display(),
        );
    }
    // The default pair first: it answers every name until the others come.
    wanted.sort_by_key(|w| !slots[w.slot].default);
    wanted
}
