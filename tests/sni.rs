//! A certificate per name, through the real binary: `tls_certificates` beside the default pair,
//! the certificate of each handshake chosen by SNI (exact name, then a `*.` wildcard one label
//! deep, then the default pair), each pair reloaded on its own (renewed, renamed, broken), and
//! `/proxy/status` listing every certificate. Serials are read with `openssl s_client
//! -servername`, as in `tests/tls.rs`.
//!
//! Needs `openssl` and `curl`; a missing tool fails the test with a message naming it.

mod support;
mod tls_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;
use tls_support::*;

const DOMAIN: &str = "default.test";

struct Fixture {
    dir: TempDir,
    pki: Pki,
    backend: Backend,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = TempDir::new(tag);
        let pki = Pki::new(dir.path());
        Fixture {
            dir,
            pki,
            backend: Backend::start("b"),
        }
    }

    /// A certbot-like `live/<name>/` directory linking to `leaf` (or empty when `None`).
    fn live(&self, name: &str, leaf: Option<&Leaf>) -> (PathBuf, PathBuf) {
        let live = self.dir.path().join("live").join(name);
        std::fs::create_dir_all(&live).unwrap();
        match leaf {
            Some(leaf) => link_live(&live, leaf),
            None => (live.join("fullchain.pem"), live.join("privkey.pem")),
        }
    }

    /// Starts the proxy with the default pair `default` (if any) and `listed` certificates.
    fn start(
        &self,
        default: Option<&(PathBuf, PathBuf)>,
        listed: &[&(PathBuf, PathBuf)],
    ) -> TlsProxy {
        let mut global = format!(
            "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: 0\n  \
             listen_https: {}\n  domain: {DOMAIN}\n  acme_webroot: {}\n",
            free_port(),
            self.dir.path().join("webroot").display()
        );
        if let Some((cert, key)) = default {
            global += &format!(
                "  tls_certfile: {}\n  tls_keyfile: {}\n",
                cert.display(),
                key.display()
            );
        }
        global += "  tls_certificates:\n";
        for (cert, key) in listed {
            global += &format!(
                "    - certfile: {}\n      keyfile: {}\n",
                cert.display(),
                key.display()
            );
        }
        let yaml = format!(
            "{global}services:\n  - name: app\n    path: /app\n    upstream: {}\n",
            self.backend.addr
        );
        start_proxy(self.dir.path(), &yaml, &[], &[])
    }
}

fn https(p: &TlsProxy) -> SocketAddr {
    p.https.expect("no HTTPS listener")
}

/// Asserts the serial served for each `(SNI, serial)`.
fn assert_serials(p: &TlsProxy, want: &[(Option<&str>, &str)]) {
    for (sni, serial) in want {
        assert_eq!(
            served_serial_sni(https(p), *sni).as_deref(),
            Some(*serial),
            "SNI {sni:?}\nproxy log:\n{}",
            p.proc.log()
        );
    }
}

/// Waits until `sni` is served `serial`.
fn wait_serial(p: &TlsProxy, sni: &str, serial: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        last = served_serial(https(p), sni);
        if last.as_deref() == Some(serial) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{sni} is still served {last:?}, not {serial}\nproxy log:\n{}",
        p.proc.log()
    );
}

/// `/proxy/status` over HTTPS (asking for `name`), verified against the test root.
fn status(p: &TlsProxy, pki: &Pki, name: &str) -> serde_json::Value {
    let port = https(p).port();
    let (code, out) = curl(&[
        "-f",
        "--cacert",
        pki.root.to_str().unwrap(),
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("https://{name}:{port}/proxy/status"),
    ]);
    assert_eq!(code, 0, "{out}\nproxy log:\n{}", p.proc.log());
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["tls"].clone()
}

/// The status entry of the certificate whose chain file is `cert`.
fn entry<'a>(tls: &'a serde_json::Value, cert: &Path) -> &'a serde_json::Value {
    let all = tls["certificates"]
        .as_array()
        .expect("no certificates list");
    all.iter()
        .find(|c| c["certfile"] == cert.display().to_string())
        .unwrap_or_else(|| panic!("{} is not listed: {tls:#}", cert.display()))
}

/// curl to `https://<name>:<port>/app/x` with the token, checking the chain and the name.
fn curl_name(p: &TlsProxy, pki: &Pki, name: &str) -> (i32, String) {
    let port = https(p).port();
    curl(&[
        "-f",
        "--cacert",
        pki.root.to_str().unwrap(),
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("https://{name}:{port}/app/x"),
    ])
}

#[test]
fn each_name_gets_its_certificate_and_each_pair_reloads_on_its_own() {
    let f = Fixture::new("sni");
    let default = f.live(DOMAIN, Some(&f.pki.leaf_names("d1", &[DOMAIN], "D001")));
    let two = f.live(
        "ab",
        Some(&f.pki.leaf_names("ab1", &["a.test", "b.test"], "AB01")),
    );
    let wild = f.live(
        "wild",
        Some(&f.pki.leaf_names("w1", &["*.wild.test"], "3C01")),
    );
    // Its files do not exist yet: it is waited for.
    let late = f.live("late", None);
    let mut p = f.start(Some(&default), &[&two, &wild, &late]);
    p.proc
        .wait_line("waiting for certificates", Duration::from_secs(5));
    assert_serials(
        &p,
        &[
            (Some("a.test"), "AB01"),
            (Some("b.test"), "AB01"),
            (Some("x.wild.test"), "3C01"),
            (Some("Y.Wild.Test"), "3C01"),
            (Some("x.y.wild.test"), "D001"),
            (Some("wild.test"), "D001"),
            (Some("unknown.test"), "D001"),
            (Some(DOMAIN), "D001"),
            (Some("late.test"), "D001"),
            (None, "D001"),
        ],
    );
    for name in ["a.test", "b.test", "x.wild.test", DOMAIN] {
        let (code, out) = curl_name(&p, &f.pki, name);
        assert_eq!(code, 0, "{name}: {out}");
    }
    let (code, out) = curl_name(&p, &f.pki, "late.test");
    assert_ne!(
        code, 0,
        "late.test was served a certificate naming it: {out}"
    );

    // Status: every certificate with its names, serial and expiry; the default pair's fields
    // as before.
    let tls = status(&p, &f.pki, DOMAIN);
    assert_eq!(tls["https"], true);
    assert_eq!(tls["certificate"]["serial"], "D001");
    assert_eq!(tls["certificates"].as_array().unwrap().len(), 4, "{tls:#}");
    let ab = entry(&tls, &two.0);
    assert_eq!(ab["names"], serde_json::json!(["a.test", "b.test"]));
    assert_eq!(ab["serial"], "AB01");
    assert_eq!(ab["default"], false);
    assert_eq!(ab["keyfile"], two.1.display().to_string());
    assert!(
        ab["not_after"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{ab}"
    );
    assert!(ab["reload_error"].is_null());
    assert_eq!(
        entry(&tls, &wild.0)["names"],
        serde_json::json!(["*.wild.test"])
    );
    assert!(entry(&tls, &late.0)["names"].is_null(), "not loaded yet");
    let d = entry(&tls, &default.0);
    assert_eq!(
        (&d["default"], &d["serial"]),
        (&serde_json::json!(true), &serde_json::json!("D001"))
    );

    // The missing pair appears: served at once, without a restart.
    link_live(
        late.0.parent().unwrap(),
        &f.pki.leaf_names("l1", &["late.test"], "1A7E"),
    );
    wait_serial(&p, "late.test", "1A7E");

    // One pair renewed: its names get the new certificate, the others keep theirs.
    link_live(
        two.0.parent().unwrap(),
        &f.pki.leaf_names("ab2", &["a.test", "b.test"], "AB02"),
    );
    wait_serial(&p, "a.test", "AB02");
    assert_serials(
        &p,
        &[
            (Some("b.test"), "AB02"),
            (Some("x.wild.test"), "3C01"),
            (None, "D001"),
        ],
    );

    // A reload whose certificate names other hosts: the index follows.
    link_live(
        wild.0.parent().unwrap(),
        &f.pki.leaf_names("w2", &["c.test", "*.new.test"], "3C02"),
    );
    wait_serial(&p, "c.test", "3C02");
    assert_serials(
        &p,
        &[(Some("z.new.test"), "3C02"), (Some("x.wild.test"), "D001")],
    );

    // A broken replacement (a new chain beside the old key) keeps the pair served before, and
    // the status says why.
    let ab3 = f.pki.leaf_names("ab3", &["a.test", "b.test"], "AB03");
    std::fs::remove_file(&two.0).unwrap();
    std::os::unix::fs::symlink(&ab3.fullchain, &two.0).unwrap();
    p.proc.wait_line(
        "does not belong to the certificate",
        Duration::from_secs(15),
    );
    assert_serials(&p, &[(Some("a.test"), "AB02"), (Some("b.test"), "AB02")]);
    let tls = status(&p, &f.pki, DOMAIN);
    let ab = entry(&tls, &two.0);
    assert!(
        ab["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not belong to the certificate")),
        "{tls:#}"
    );
    assert_eq!(ab["serial"], "AB02", "the status shows what is served");
    assert!(
        tls["reload_error"].is_null(),
        "the default pair is fine: {tls:#}"
    );
    // ... until its key arrives.
    std::fs::remove_file(&two.1).unwrap();
    std::os::unix::fs::symlink(&ab3.key, &two.1).unwrap();
    wait_serial(&p, "b.test", "AB03");
    assert!(entry(&status(&p, &f.pki, DOMAIN), &two.0)["reload_error"].is_null());
}

#[test]
fn without_a_default_pair_the_first_listed_certificate_answers_the_rest() {
    let f = Fixture::new("sni-nodefault");
    let first = f.live(
        "first",
        Some(&f.pki.leaf_names("f1", &["first.test"], "F1")),
    );
    let wild = f.live(
        "wild",
        Some(&f.pki.leaf_names("w1", &["*.wild.test"], "3C")),
    );
    let p = f.start(None, &[&first, &wild]);
    assert_serials(
        &p,
        &[
            (Some("first.test"), "F1"),
            (Some("a.wild.test"), "3C"),
            (Some("unknown.test"), "F1"),
            (None, "F1"),
        ],
    );
    let tls = status(&p, &f.pki, "first.test");
    assert!(tls["certificate"].is_null(), "no default pair: {tls:#}");
    assert_eq!(entry(&tls, &wild.0)["serial"], "3C");
}

#[test]
fn a_broken_listed_pair_stops_the_start() {
    let f = Fixture::new("sni-bad");
    let a = f.pki.leaf_names("a", &["a.test"], "0A");
    let b = f.pki.leaf_names("b", &["b.test"], "0B");
    let yaml = format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: 0\n  \
         listen_https: {}\n  tls_certificates:\n    - certfile: {}\n      keyfile: {}\n\
         services:\n  - name: app\n    path: /\n    upstream: {}\n",
        free_port(),
        a.fullchain.display(),
        b.key.display(),
        f.backend.addr
    );
    let (code, out) = start_failure(f.dir.path(), &yaml);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&a.fullchain.display().to_string())
            && out.contains("does not belong to the certificate"),
        "{out}"
    );
}
