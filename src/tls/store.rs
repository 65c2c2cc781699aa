//! The certificates new handshakes get: one slot per configured pair, the index of their
//! names (`sni`), and the rustls resolver that picks by SNI. The reload watcher swaps one slot
//! at a time; open connections keep the certificate they started with. A handshake only reads:
//! a read lock, a hash lookup, an `Arc` clone.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::sni::SniIndex;

/// The resolver: every slot's current certificate and the index of their names.
#[derive(Debug)]
pub(crate) struct CertStore {
    table: RwLock<Table>,
    /// The default pair's slot (`tls_certfile`, or certbot's for `domain`).
    default: Option<usize>,
}

#[derive(Debug, Default)]
struct Table {
    keys: Vec<Option<Arc<CertifiedKey>>>,
    /// The names each loaded certificate serves (its DNS names).
    names: Vec<Option<Vec<String>>>,
    index: SniIndex,
}

impl CertStore {
    /// `slots` empty slots; `default` is the default pair's.
    pub(crate) fn new(slots: usize, default: Option<usize>) -> CertStore {
        CertStore {
            table: RwLock::new(Table {
                keys: vec![None; slots],
                names: vec![None; slots],
                index: SniIndex::default(),
            }),
            default,
        }
    }

    /// Serves `key` from `slot` for `names` (replacing what the slot served), from the next
    /// handshake on.
    pub(crate) fn set(&self, slot: usize, key: Arc<CertifiedKey>, names: Vec<String>) {
        let mut t = self.table.write();
        if slot >= t.keys.len() {
            return;
        }
        t.keys[slot] = Some(key);
        t.names[slot] = Some(names);
        let slots = t
            .names
            .iter()
            .map(|n| n.as_ref().map(|n| n.iter().map(String::as_str)));
        let index = SniIndex::build(slots, self.default);
        t.index = index;
    }

    /// Whether `slot` has a certificate.
    pub(crate) fn is_loaded(&self, slot: usize) -> bool {
        self.table
            .read()
            .keys
            .get(slot)
            .is_some_and(Option::is_some)
    }

    /// Whether any slot has a certificate.
    pub(crate) fn has_cert(&self) -> bool {
        self.table.read().keys.iter().any(Option::is_some)
    }

    /// The certificate for a handshake with `sni` (see `sni` for the order).
    pub(crate) fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let t = self.table.read();
        let slot = t.index.choose(sni)?;
        t.keys.get(slot)?.clone()
    }
}

impl ResolvesServerCert for CertStore {
    /// `None` before any certificate is loaded, which makes rustls refuse the handshake.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::{CertFiles, load};
    use crate::tls::tests::certs::*;

    fn key(cert: &str, key: &str, tag: &str) -> Arc<CertifiedKey> {
        let d = std::env::temp_dir().join(format!("wakeproxy-store-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = CertFiles {
            cert: d.join("c.pem"),
            key: d.join("k.pem"),
        };
        std::fs::write(&f.cert, cert).unwrap();
        std::fs::write(&f.key, key).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let loaded = load(&f, &provider).unwrap().key;
        let _ = std::fs::remove_dir_all(&d);
        loaded
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_store_serves_nothing_until_loaded_then_by_name() {
        let store = CertStore::new(2, Some(1));
        assert!(!store.has_cert() && !store.is_loaded(0));
        assert!(store.pick(None).is_none());
        let ec = key(EC_CERT, EC_KEY, "ec");
        let rsa = key(RSA_CERT, RSA_KEY, "rsa");
        store.set(0, ec.clone(), names(&["test.example"]));
        assert!(store.has_cert() && store.is_loaded(0) && !store.is_loaded(1));
        assert!(
            Arc::ptr_eq(&store.pick(Some("other")).unwrap(), &ec),
            "the only one"
        );
        store.set(1, rsa.clone(), names(&["rsa.example"]));
        assert!(Arc::ptr_eq(&store.pick(Some("test.example")).unwrap(), &ec));
        assert!(
            Arc::ptr_eq(&store.pick(Some("other")).unwrap(), &rsa),
            "the default"
        );
        assert!(Arc::ptr_eq(&store.pick(None).unwrap(), &rsa));
        // A reload whose certificate names something else: the index follows.
        store.set(0, ec.clone(), names(&["*.renamed.example"]));
        assert!(Arc::ptr_eq(
            &store.pick(Some("test.example")).unwrap(),
            &rsa
        ));
        assert!(Arc::ptr_eq(
            &store.pick(Some("a.renamed.example")).unwrap(),
            &ec
        ));
        store.set(7, ec, names(&["ignored"]));
        assert!(
            Arc::ptr_eq(&store.pick(Some("ignored")).unwrap(), &rsa),
            "no such slot"
        );
    }
}
