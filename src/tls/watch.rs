//! The reload watcher: polls the certificate files' stamps (through certbot's `live/`
//! symlinks) and loads the pair again when they change. A pair that fails to load (certbot
//! swaps the links one by one, so a new chain can briefly meet the old key) is never served:
//! the old certificate stays, the reason is logged once, and the pair is tried again at the
//! next change of either file.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use rustls::crypto::CryptoProvider;

use super::certs::{self, CertFiles, CertStore, FileStamp, LoadError, Loaded};
use super::state::HttpsState;

/// How often the files are checked.
pub(crate) const POLL: Duration = Duration::from_secs(2);

enum Attempt {
    Installed,
    /// The files changed while being read.
    Changed,
    Failed(LoadError),
}

/// What the watcher works on.
pub(crate) struct Watcher {
    pub files: CertFiles,
    pub store: Arc<CertStore>,
    pub state: Arc<HttpsState>,
    pub provider: Arc<CryptoProvider>,
    /// Configured domain, to warn when a certificate does not name it.
    pub domain: String,
}

/// Wakes the watcher at once (certbot just finished).
#[derive(Clone)]
pub(crate) struct Trigger(Sender<()>);

impl Trigger {
    pub(crate) fn check_now(&self) {
        let _ = self.0.send(());
    }
}

impl Watcher {
    /// Logs and installs a freshly loaded pair.
    pub(crate) fn install(&self, loaded: Loaded) {
        let what = match &loaded.summary {
            Some(s) => {
                if !s.covers(&self.domain) {
                    log::warn!(
                        "the certificate in {} names {:?}, not the configured domain {:?}",
                        self.files.cert.display(),
                        s.dns_names,
                        self.domain
                    );
                }
                if s.not_after < std::time::SystemTime::now() {
                    log::warn!(
                        "the certificate in {} has expired ({})",
                        self.files.cert.display(),
                        crate::base::rfc3339(s.not_after)
                    );
                }
                format!(
                    "serial {} for {}, valid until {}",
                    s.serial,
                    s.subject(),
                    crate::base::rfc3339(s.not_after)
                )
            }
            None => "a certificate this proxy cannot describe".into(),
        };
        self.store.set(loaded.key);
        if self.state.set_cert(loaded.summary) {
            log::info!(
                "certificate loaded ({what}): HTTPS is on at port {}; the HTTP port now {}",
                self.state.port(),
                "serves only ACME challenges and /proxy/healthz and redirects the rest"
            );
        } else {
            log::info!(
                "certificate (re)loaded from {}: {what}",
                self.files.cert.display()
            );
        }
    }

    /// Tries the files once; `stamp` is their stamp taken just before.
    fn attempt(&self, stamp: [FileStamp; 2]) -> Attempt {
        let loaded = match certs::load(&self.files, &self.provider) {
            Ok(l) => l,
            Err(e) => return Attempt::Failed(e),
        };
        if certs::stamp(&self.files).ok() != Some(stamp) {
            // Changed while being read: the next poll sees the new stamp and tries again.
            return Attempt::Changed;
        }
        self.install(loaded);
        Attempt::Installed
    }

    /// Runs forever on its own thread. `tried` is the stamp of the pair loaded at start-up.
    pub(crate) fn spawn(self, tried: Option<[FileStamp; 2]>) -> std::io::Result<Trigger> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || self.run(tried, rx))?;
        Ok(Trigger(tx))
    }

    fn run(self, mut tried: Option<[FileStamp; 2]>, wake: Receiver<()>) {
        let mut stamp_error: Option<String> = None;
        loop {
            match wake.recv_timeout(POLL) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Nobody can wake us any more: keep polling on the timer alone.
                    std::thread::sleep(POLL);
                }
            }
            // Missing (not there yet, or certbot is between unlink and symlink): keep what is
            // served and look again at the next poll.
            let now = match certs::stamp(&self.files) {
                Ok(now) => now,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let why = e.to_string();
                    if stamp_error.as_ref() != Some(&why) {
                        log::warn!("cannot check the certificate files: {why}");
                        stamp_error = Some(why);
                    }
                    continue;
                }
            };
            stamp_error = None;
            if tried == Some(now) {
                continue;
            }
            match self.attempt(now) {
                Attempt::Installed => tried = Some(now),
                Attempt::Changed => {}
                Attempt::Failed(e) => {
                    tried = Some(now);
                    let keeping = if self.store.has_cert() {
                        "keeping the certificate already served"
                    } else {
                        "HTTPS stays off"
                    };
                    log::warn!(
                        "cannot load the new certificate files: {e}; {keeping}; trying again when the files change"
                    );
                    self.state.set_reload_error(Some(e.to_string()));
                }
            }
        }
    }
}
