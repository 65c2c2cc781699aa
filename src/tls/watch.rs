//! The reload watcher: polls every certificate's files' stamps (through certbot's `live/`
//! symlinks) and loads a pair again when they change. A pair that fails to load (certbot
//! swaps the links one by one, so a new chain can briefly meet the old key) is never served:
//! that certificate's old version stays, the reason is logged once and shown in the status,
//! and the pair is tried again at the next change of either file. Files missing at start-up
//! are waited for the same way.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use rustls::crypto::CryptoProvider;

use super::Slot;
use super::certs::{self, FileStamp, LoadError, Loaded};
use super::state::HttpsState;
use super::store::CertStore;

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
    /// The certificates, in the store's slot order.
    pub slots: Vec<Slot>,
    pub store: Arc<CertStore>,
    pub state: Arc<HttpsState>,
    pub provider: Arc<CryptoProvider>,
    /// Configured domain, to warn when the default certificate does not name it.
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

/// One slot's watch: the stamp last tried, and the last error taking a stamp.
#[derive(Default)]
struct Seen {
    tried: Option<[FileStamp; 2]>,
    stamp_error: Option<String>,
}

impl Watcher {
    /// Logs and installs a freshly loaded pair into `slot`.
    pub(crate) fn install(&self, slot: usize, loaded: Loaded) {
        let files = &self.slots[slot].files;
        let what = match &loaded.summary {
            Some(s) => {
                self.check_names(slot, s);
                if s.not_after < std::time::SystemTime::now() {
                    let until = crate::base::rfc3339(s.not_after);
                    log::warn!(
                        "the certificate in {} has expired ({until})",
                        files.cert.display()
                    );
                }
                format!(
                    "serial {} for {}, valid until {}",
                    s.serial,
                    s.names().join(", "),
                    crate::base::rfc3339(s.not_after)
                )
            }
            None => "a certificate this proxy cannot describe".into(),
        };
        let names = loaded
            .summary
            .as_ref()
            .map_or_else(Vec::new, |s| s.names().to_vec());
        self.store.set(slot, loaded.key, names);
        if self.state.set_cert(slot, loaded.summary) {
            log::info!(
                "certificate loaded from {} ({what}): HTTPS is on at port {}; the HTTP port now {}",
                files.cert.display(),
                self.state.port(),
                "serves only ACME challenges and /proxy/healthz and redirects the rest"
            );
        } else {
            log::info!(
                "certificate (re)loaded from {}: {what}",
                files.cert.display()
            );
        }
    }

    /// Warns when the default pair does not name `domain`, certbot's certificate its name, or
    /// another certificate any name (it then only answers names no certificate names).
    fn check_names(&self, slot: usize, s: &super::x509::Summary) {
        let slot = &self.slots[slot];
        if s.names().is_empty() && !slot.default {
            log::warn!(
                "the certificate in {} has no DNS name: it is only served when no certificate names the name asked for",
                slot.files.cert.display()
            );
        }
        let expected = match (&slot.lineage, slot.default) {
            (Some(name), _) => name,
            (None, true) => &self.domain,
            (None, false) => return,
        };
        if !s.covers(expected) {
            log::warn!(
                "the certificate in {} names {:?}, not {expected:?}",
                slot.files.cert.display(),
                s.names(),
            );
        }
    }

    /// Tries `slot`'s files once; `stamp` is their stamp taken just before.
    fn attempt(&self, slot: usize, stamp: [FileStamp; 2]) -> Attempt {
        let files = &self.slots[slot].files;
        let loaded = match certs::load(files, &self.provider) {
            Ok(l) => l,
            Err(e) => return Attempt::Failed(e),
        };
        if certs::stamp(files).ok() != Some(stamp) {
            // Changed while being read: the next poll sees the new stamp and tries again.
            return Attempt::Changed;
        }
        self.install(slot, loaded);
        Attempt::Installed
    }

    /// Runs forever on its own thread. `tried` has, per slot, the stamp of the pair loaded at
    /// start-up.
    pub(crate) fn spawn(self, tried: Vec<Option<[FileStamp; 2]>>) -> std::io::Result<Trigger> {
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = tried
            .into_iter()
            .map(|tried| Seen {
                tried,
                stamp_error: None,
            })
            .collect();
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || self.run(seen, rx))?;
        Ok(Trigger(tx))
    }

    fn run(self, mut seen: Vec<Seen>, wake: Receiver<()>) {
        seen.resize_with(self.slots.len(), Seen::default);
        loop {
            match wake.recv_timeout(POLL) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Nobody can wake us any more: keep polling on the timer alone.
                    std::thread::sleep(POLL);
                }
            }
            for (slot, seen) in seen.iter_mut().enumerate() {
                self.check(slot, seen);
            }
        }
    }

    /// Loads `slot`'s files when their stamp differs from the one last tried.
    fn check(&self, slot: usize, seen: &mut Seen) {
        let files = &self.slots[slot].files;
        // Missing (not there yet, or certbot is between unlink and symlink): keep what is
        // served and look again at the next poll.
        let now = match certs::stamp(files) {
            Ok(now) => now,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                let why = e.to_string();
                if seen.stamp_error.as_ref() != Some(&why) {
                    log::warn!("cannot check the certificate files: {why}");
                    seen.stamp_error = Some(why);
                }
                return;
            }
        };
        seen.stamp_error = None;
        if seen.tried == Some(now) {
            return;
        }
        match self.attempt(slot, now) {
            Attempt::Installed => seen.tried = Some(now),
            Attempt::Changed => {}
            Attempt::Failed(e) => {
                seen.tried = Some(now);
                let keeping = if self.store.is_loaded(slot) {
                    "keeping the certificate already served"
                } else if self.store.has_cert() {
                    "this certificate is not served"
                } else {
                    "HTTPS stays off"
                };
                log::warn!(
                    "cannot load the new certificate files {} and {}: {e}; {keeping}; trying again when the files change",
                    files.cert.display(),
                    files.key.display()
                );
                self.state.set_reload_error(slot, Some(e.to_string()));
            }
        }
    }
}
