//! Login forms under way, per client: a form comes from a client that has not shown the
//! token yet, so each address may have only a few at once.

use std::net::IpAddr;

use parking_lot::Mutex;

use crate::base::client::{ClientKey, Tally};

/// Login forms being read, per client, each client with a cap: a form comes from a client that
/// has not shown the token yet.
#[derive(Default)]
pub(super) struct Logins(Mutex<Tally>);

/// One login form under way; dropping it ends it.
pub(super) struct Login<'a> {
    logins: &'a Logins,
    key: ClientKey,
}

impl Logins {
    /// Starts a login form from `ip`, unless it has `max` under way.
    pub(super) fn enter(&self, ip: IpAddr, max: usize) -> Option<Login<'_>> {
        let key = ClientKey::of(ip);
        self.0
            .lock()
            .take(key, max)
            .then_some(Login { logins: self, key })
    }
}

impl Drop for Login<'_> {
    fn drop(&mut self) {
        self.logins.0.lock().give(self.key);
    }
}
