//! Certificate files: loading a PEM chain and key as a checked pair, and the files' change
//! signature for the reload watcher.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::x509::{self, Summary};

/// A certificate chain file and its key file (`tls_certfile` and `tls_keyfile`, a
/// `tls_certificates` entry, or certbot's `live/<name>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a pair could not be loaded.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// A file does not exist (yet): wait for it.
    Missing(PathBuf),
    /// A file exists but cannot be read (permissions, a directory...).
    Unreadable(PathBuf, io::Error),
    /// A file has no usable PEM content.
    Invalid(PathBuf, String),
    /// The key is not the key of the chain's first certificate.
    Mismatch(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing(p) => write!(f, "{} does not exist", p.display()),
            LoadError::Unreadable(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            LoadError::Invalid(p, why) => write!(f, "{}: {why}", p.display()),
            LoadError::Mismatch(why) => write!(
                f,
                "the private key does not belong to the certificate ({why})"
            ),
        }
    }
}

/// A loaded pair, ready for handshakes, with its description.
pub(crate) struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// `None` when the leaf could not be described (it is served all the same).
    pub summary: Option<Summary>,
}

/// Reads the chain and the key and checks that they belong together.
pub(crate) fn load(files: &CertFiles, provider: &CryptoProvider) -> Result<Loaded, LoadError> {
    let cert_bytes = read(&files.cert)?;
    let key_bytes = read(&files.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::Invalid(files.cert.clone(), pem_error(e)))?;
    if chain.is_empty() {
        return Err(LoadError::Invalid(
            files.cert.clone(),
            "no CERTIFICATE block in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound => {
                "no PRIVATE KEY block (PKCS#8, RSA or EC) in the file".into()
            }
            other => pem_error(other),
        };
        LoadError::Invalid(files.key.clone(), why)
    })?;
    let summary = x509::summarize(&chain[0]);
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => LoadError::Mismatch(e.to_string()),
        other => LoadError::Invalid(
            files.key.clone(),
            format!("unusable key or certificate: {other}"),
        ),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        summary,
    })
}

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "no PEM block in the file".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Largest certificate or key file read (real ones are a few KiB).
const MAX_FILE: u64 = 1 << 20;

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LoadError::Missing(path.to_path_buf()),
        _ => LoadError::Unreadable(path.to_path_buf(), e),
    })?;
    let mut out = Vec::new();
    f.take(MAX_FILE)
        .read_to_end(&mut out)
        .map_err(|e| LoadError::Unreadable(path.to_path_buf(), e))?;
    Ok(out)
}

/// What identifies one version of a file behind its path (symlinks followed, as certbot's
/// `live/` links to `archive/`): device, inode, size, modification and change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Stamps of both files (`NotFound` when either is missing).
pub(crate) fn stamp(files: &CertFiles) -> io::Result<[FileStamp; 2]> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        Ok::<_, io::Error>(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    };
    Ok([one(&files.cert)?, one(&files.key)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::certs::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wakeproxy-certs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(d: &Path, cert: &str, key: &str) -> CertFiles {
        let f = CertFiles {
            cert: d.join("fullchain.pem"),
            key: d.join("privkey.pem"),
        };
        std::fs::write(&f.cert, cert).unwrap();
        std::fs::write(&f.key, key).unwrap();
        f
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn loads_a_matching_pair_and_describes_it() {
        let d = dir("ok");
        let f = files(&d, &format!("{EC_CERT}{CA_CERT}"), EC_KEY);
        let loaded = load(&f, &provider()).unwrap();
        assert_eq!(loaded.key.cert.len(), 2, "the chain is kept");
        let s = loaded.summary.unwrap();
        assert_eq!(s.serial, EC_SERIAL);
        assert_eq!(s.common_name.as_deref(), Some("test.example"));
        assert!(s.dns_names.iter().any(|n| n == "test.example"));
        assert!(s.covers("test.example"));
        assert!(s.not_after > s.not_before);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rsa_pkcs1_keys_load() {
        let d = dir("rsa");
        let f = files(&d, RSA_CERT, RSA_KEY);
        let loaded = load(&f, &provider()).unwrap();
        assert_eq!(
            loaded.summary.unwrap().common_name.as_deref(),
            Some("rsa.example")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let d = dir("mismatch");
        let f = files(&d, EC_CERT, OTHER_EC_KEY);
        match load(&f, &provider()) {
            Err(LoadError::Mismatch(_)) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a mismatched pair loaded"),
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_garbage_and_empty_files_are_told_apart() {
        let d = dir("bad");
        let f = CertFiles {
            cert: d.join("nope.pem"),
            key: d.join("nope.key"),
        };
        assert!(matches!(load(&f, &provider()), Err(LoadError::Missing(_))));
        assert_eq!(stamp(&f).unwrap_err().kind(), io::ErrorKind::NotFound);
        let f = files(&d, "hello\n", EC_KEY);
        let e = load(&f, &provider()).err().unwrap();
        assert!(matches!(e, LoadError::Invalid(..)), "{e}");
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        let f = files(&d, EC_CERT, "");
        let e = load(&f, &provider()).err().unwrap();
        assert!(e.to_string().contains("no PRIVATE KEY block"), "{e}");
        let f = CertFiles {
            cert: d.clone(),
            key: d.join("privkey.pem"),
        };
        assert!(matches!(
            load(&f, &provider()),
            Err(LoadError::Unreadable(..))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn stamps_change_when_a_symlink_is_swapped() {
        let d = dir("stamp");
        std::fs::write(d.join("cert1.pem"), EC_CERT).unwrap();
        std::fs::write(d.join("cert2.pem"), EC_CERT).unwrap();
        std::fs::write(d.join("key1.pem"), EC_KEY).unwrap();
        std::os::unix::fs::symlink("cert1.pem", d.join("fullchain.pem")).unwrap();
        std::os::unix::fs::symlink("key1.pem", d.join("privkey.pem")).unwrap();
        let f = CertFiles {
            cert: d.join("fullchain.pem"),
            key: d.join("privkey.pem"),
        };
        let before = stamp(&f).unwrap();
        assert_eq!(stamp(&f).unwrap(), before);
        std::fs::remove_file(&f.cert).unwrap();
        assert!(stamp(&f).is_err());
        std::os::unix::fs::symlink("cert2.pem", &f.cert).unwrap();
        assert_ne!(stamp(&f).unwrap(), before);
        let _ = std::fs::remove_dir_all(&d);
    }
}
