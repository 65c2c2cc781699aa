//! ACME end to end, offline: Pebble (an ACME test server) and certbot from Debian's packages,
//! with wakeproxy in place of the web server (shared/reference/acme-testing.md).
//!
//! wakeproxy starts with no certificate and `auto_certbot: true`; its certbot obtains one
//! through wakeproxy's own HTTP port (Pebble's log shows the challenge fetched there), HTTPS
//! comes up without a restart, curl verifies it against Pebble's root; then wakeproxy's renew
//! timer runs a forced renewal, new handshakes get the new serial, and a WebSocket opened
//! before the renewal keeps running.
//!
//! With services that have a `host`, certbot obtains one certificate per name (the domain's and
//! each exact host's), each name is then served its own over SNI, and one renewal run renews
//! them all.
//!
//! Needs `pebble`, `pebble-challtestsrv` (package pebble), `certbot`, `openssl`, `curl` and
//! python3 with `websockets`: scripts/test.sh installs them. A missing one fails the test.

mod support;
mod tls_support;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use tls_support::*;

const DOMAIN: &str = "proxy.e2e.test";

/// The path of `cmd` on PATH, or a failure naming the package to install.
fn need(cmd: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{cmd}` is needed for the ACME test: apt-get install {package} (scripts/test.sh does)"))
}

/// Pebble and its fake DNS, on free 127.0.0.1 ports, answering every name with 127.0.0.1.
struct Pebble {
    // Fields drop in order: pebble first, then the DNS server.
    pebble: Proc,
    _dns: Proc,
    directory: String,
    /// Trusts Pebble's own HTTPS listener (for certbot: `REQUESTS_CA_BUNDLE`).
    https_ca: PathBuf,
    /// Pebble's issuing root: what verifies the certificates it issues.
    root: PathBuf,
}

fn wait_port(what: &str, port: u16) {
    wait_for(what, Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

impl Pebble {
    /// `http_port` is where Pebble's validator fetches http-01 challenges: the proxy's HTTP port.
    fn start(dir: &Path, http_port: u16) -> Pebble {
        let pebble_bin = need("pebble", "pebble");
        let cts_bin = need("pebble-challtestsrv", "pebble");
        // Pebble's own HTTPS listener needs a certificate: a throwaway CA and a leaf.
        self_signed_ca(
            dir,
            "https-ca",
            7,
            "/CN=pebble https ca",
            "keyCertSign,cRLSign",
        );
        ec_key(dir, "pebble.key");
        csr(dir, "pebble.key", "/CN=localhost", "pebble.csr");
        std::fs::write(
            dir.join("pebble.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        sign(
            dir,
            "pebble.csr",
            "https-ca",
            "7",
            7,
            "pebble.ext",
            "pebble.pem",
        );
        let (dns, cts_mgmt, dir_port, mgmt, tls_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{dir_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble-config.json"), config.to_string()).unwrap();
        let mut cmd = Command::new(cts_bin);
        cmd.args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ])
        .args([
            "-management",
            &format!("127.0.0.1:{cts_mgmt}"),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]);
        let dns_proc = Proc::spawn("pebble-challtestsrv", cmd);
        wait_port("pebble-challtestsrv", cts_mgmt);
        let mut cmd = Command::new(pebble_bin);
        cmd.arg("-config")
            .arg(dir.join("pebble-config.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let pebble = Proc::spawn("pebble", cmd);
        let https_ca = dir.join("https-ca.pem");
        let directory = format!("https://127.0.0.1:{dir_port}/dir");
        let ca = https_ca.to_str().unwrap().to_string();
        wait_for("pebble's directory", Duration::from_secs(20), || {
            (curl(&["-f", "--cacert", &ca, &directory]).0 == 0).then_some(())
        });
        let root = dir.join("pebble-root.pem");
        let (code, out) = curl(&[
            "-f",
            "--cacert",
            &ca,
            "-o",
            root.to_str().unwrap(),
            &format!("https://127.0.0.1:{mgmt}/roots/0"),
        ]);
        assert_eq!(code, 0, "cannot fetch pebble's root: {out}");
        Pebble {
            pebble,
            _dns: dns_proc,
            directory,
            https_ca,
            root,
        }
    }

    /// Lines of Pebble's log validating a challenge for `name` over HTTP on `port`.
    fn validations_of(&self, name: &str, port: u16) -> usize {
        let needle = format!(
            "Attempting to validate w/ HTTP: http://{name}:{port}/.well-known/acme-challenge/"
        );
        self.pebble.log().matches(&needle).count()
    }

    fn validations(&self, port: u16) -> usize {
        self.validations_of(DOMAIN, port)
    }
}

/// certbot as the proxy runs it: a wrapper script that forces the renewal once the test creates
/// `renew_now` (Pebble's certificates are valid for years, so a plain `renew` would skip), and
/// runs certbot as is otherwise, with its directories under `d/letsencrypt`.
struct CertbotSetup {
    wrapper: PathBuf,
    renew_now: PathBuf,
    /// Created by the wrapper when it forced the renewal.
    forced: PathBuf,
    /// certbot's `--config-dir`.
    config_dir: PathBuf,
    /// `WAKEPROXY_CERTBOT_ARGS`.
    args: String,
    xdg: PathBuf,
}

impl CertbotSetup {
    fn new(d: &Path, pebble: &Pebble) -> CertbotSetup {
        let certbot = need("certbot", "certbot");
        let wrapper = d.join("certbot-wrapper.sh");
        let renew_now = d.join("renew-now");
        let forced = d.join("renew-forced");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ \"$1\" = renew ] && [ -e '{go}' ] && [ ! -e '{forced}' ]; then\n  touch '{forced}'\n  exec '{certbot}' \"$@\" --force-renewal\nfi\nexec '{certbot}' \"$@\"\n",
                go = renew_now.display(),
                forced = forced.display(),
                certbot = certbot.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let le = d.join("letsencrypt");
        let args = format!(
            "--server {} --config-dir {} --work-dir {} --logs-dir {}",
            pebble.directory,
            le.join("config").display(),
            le.join("work").display(),
            le.join("logs").display()
        );
        let xdg = d.join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        CertbotSetup {
            wrapper,
            renew_now,
            forced,
            config_dir: le.join("config"),
            args,
            xdg,
        }
    }

    /// The proxy's environment: this certbot, renewing every 3 s, trusting Pebble.
    fn env<'a>(&'a self, pebble: &'a Pebble) -> [(&'a str, &'a str); 5] {
        [
            ("WAKEPROXY_CERTBOT", self.wrapper.to_str().unwrap()),
            ("WAKEPROXY_CERTBOT_ARGS", &self.args),
            ("WAKEPROXY_CERTBOT_RENEW_INTERVAL", "3"),
            ("REQUESTS_CA_BUNDLE", pebble.https_ca.to_str().unwrap()),
            ("XDG_CONFIG_HOME", self.xdg.to_str().unwrap()),
        ]
    }
}

fn served(https: SocketAddr) -> Option<String> {
    served_serial(https, DOMAIN)
}

#[test]
fn certbot_obtains_and_renews_through_the_proxy_and_tls_follows() {
    need("certbot", "certbot");
    let dir = TempDir::new("acme");
    let d = dir.path();
    let http_port = free_port();
    let pebble = Pebble::start(d, http_port);
    let backend = Backend::start("b");

    let certbot = CertbotSetup::new(d, &pebble);
    let (go, forced, le_config) = (&certbot.renew_now, &certbot.forced, &certbot.config_dir);

    // No tls_certfile: with auto_certbot the proxy serves certbot's live/<domain>/ files.
    let https_port = free_port();
    let yaml = format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: {http_port}\n  listen_https: {https_port}\n  \
         domain: {DOMAIN}\n  email: e2e@example.com\n  auto_certbot: true\n  acme_webroot: {}\n  idle_timeout: 300\n\
         services:\n  - name: app\n    path: /app\n    upstream: {}\n",
        d.join("webroot").display(),
        backend.addr
    );
    let started = Instant::now();
    let mut p = start_proxy(d, &yaml, &[], &certbot.env(&pebble));
    let https = p.https.unwrap();
    p.proc
        .wait_line("waiting for certificates", Duration::from_secs(5));

    // certbot certonly, through the proxy's HTTP port, then HTTPS without a restart.
    p.proc.wait_line("HTTPS is on", Duration::from_secs(120));
    eprintln!(
        "certificate obtained and served after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        pebble.validations(http_port) >= 1,
        "pebble log:\n{}",
        pebble.pebble.log()
    );
    assert!(
        pebble
            .pebble
            .log()
            .contains("set VALID by completed challenge"),
        "{}",
        pebble.pebble.log()
    );
    assert!(
        p.proc
            .log()
            .lines()
            .any(|l| l.contains("\"GET /.well-known/acme-challenge/") && l.contains(" 200 ")),
        "{}",
        p.proc.log()
    );
    let root = pebble.root.to_str().unwrap().to_string();
    let resolve = format!("{DOMAIN}:{https_port}:127.0.0.1");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let url = format!("https://{DOMAIN}:{https_port}/app/echo");
    let (code, out) = curl(&[
        "-f",
        "--cacert",
        &root,
        "--resolve",
        &resolve,
        "-H",
        &auth,
        &url,
    ]);
    assert_eq!(
        code,
        0,
        "curl against Pebble's root failed: {out}\nproxy log:\n{}",
        p.proc.log()
    );
    assert!(out.contains("\"path\":\"/echo\""), "{out}");
    let first = served(https).expect("no certificate served");

    // The HTTP port now redirects (to the configured domain, not the request's host).
    let r = raw_request(
        p.http,
        "GET /app/x?k=v HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{DOMAIN}:{https_port}/app/x?k=v").as_str())
    );

    // A WebSocket opened before the renewal.
    let ws = HeldWebSocket::open(
        &format!("wss://{DOMAIN}:{https_port}/app/ws"),
        &pebble.root,
        https,
        d.join("release-ws"),
    );

    // The proxy's renew timer runs the forced renewal; new handshakes get the new serial.
    let validations_before = pebble.validations(http_port);
    std::fs::write(go, "").unwrap();
    let renewed = wait_for("the renewed certificate", Duration::from_secs(120), || {
        served(https).filter(|s| *s != first)
    });
    eprintln!("serial {first} -> {renewed}");
    assert!(
        forced.exists(),
        "the renewal did not come from the proxy's timer"
    );
    // (The watcher may see the new files before certbot has even exited.)
    p.proc
        .wait_line("certbot renew succeeded", Duration::from_secs(60));
    assert!(
        pebble.validations(http_port) > validations_before,
        "the renewal skipped http-01"
    );
    let live = le_config.join("live").join(DOMAIN);
    let target = std::fs::read_link(live.join("fullchain.pem")).unwrap();
    assert!(
        target.to_string_lossy().ends_with("fullchain2.pem"),
        "{}",
        target.display()
    );
    let (code, out) = curl(&[
        "-f",
        "--cacert",
        &root,
        "--resolve",
        &resolve,
        "-H",
        &auth,
        &url,
    ]);
    assert_eq!(code, 0, "{out}");

    // The WebSocket from before the renewal is still alive.
    let (ws_ok, stdout, stderr) = ws.release();
    assert!(
        ws_ok,
        "the WebSocket opened before the renewal broke: {stdout}{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["ticks"].as_u64().unwrap() >= 2, "{v}");
}

/// The names of the second test: `DOMAIN` has the default pair, these two hosts their own.
const HOSTS: [&str; 2] = ["app.e2e.test", "api.e2e.test"];

/// curl to `https://<name>:<port>/app/echo` trusting only Pebble's root: the name is checked.
fn curl_verified(name: &str, port: u16, root: &Path) -> (i32, String) {
    curl(&[
        "-f",
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("https://{name}:{port}/echo"),
    ])
}

/// The serial served for each of `names`, once every one is served a certificate that
/// verifies for it; `differ_from` (if any) must have changed for each.
fn wait_all(p: &TlsProxy, names: &[&str], root: &Path, differ_from: &[String]) -> Vec<String> {
    let https = p.https.unwrap();
    wait_for(
        "a verified certificate for every name",
        Duration::from_secs(150),
        || {
            // Verified first: from then on each name has its own certificate (until renewed).
            let verified = names
                .iter()
                .all(|n| curl_verified(n, https.port(), root).0 == 0);
            let serials: Vec<String> = names
                .iter()
                .map(|n| served_serial(https, n))
                .collect::<Option<_>>()?;
            let changed = differ_from
                .iter()
                .zip(&serials)
                .all(|(old, new)| old != new);
            (changed && verified).then_some(serials)
        },
    )
}

#[test]
fn certbot_obtains_one_certificate_per_host_and_sni_serves_each() {
    need("certbot", "certbot");
    let dir = TempDir::new("acme-hosts");
    let d = dir.path();
    let http_port = free_port();
    let pebble = Pebble::start(d, http_port);
    let backend = Backend::start("b");
    let certbot = CertbotSetup::new(d, &pebble);
    let https_port = free_port();
    let mut services = String::new();
    for (i, host) in HOSTS.iter().chain(&["*.wild.e2e.test"]).enumerate() {
        services += &format!(
            "  - name: s{i}\n    host: \"{host}\"\n    upstream: {}\n",
            backend.addr
        );
    }
    let yaml = format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: {http_port}\n  listen_https: {https_port}\n  \
         domain: {DOMAIN}\n  email: e2e@example.com\n  auto_certbot: true\n  acme_webroot: {}\n\
         services:\n{services}  - name: any\n    path: /\n    upstream: {}\n",
        d.join("webroot").display(),
        backend.addr
    );
    let mut p = start_proxy(d, &yaml, &[], &certbot.env(&pebble));
    p.proc.wait_line(
        "auto_certbot cannot obtain a certificate for the wildcard host *.wild.e2e.test",
        Duration::from_secs(5),
    );

    // One certonly per name, each validated through the proxy's HTTP port; then each name is
    // served a certificate of its own, which verifies against Pebble's root.
    let names = [DOMAIN, HOSTS[0], HOSTS[1]];
    let first = wait_all(&p, &names, &pebble.root, &[]);
    eprintln!("serials {first:?}");
    assert!(
        first[0] != first[1] && first[1] != first[2] && first[0] != first[2],
        "{first:?}"
    );
    for name in names {
        assert!(
            pebble.validations_of(name, http_port) >= 1,
            "no validation of {name}"
        );
        let live = certbot.config_dir.join("live").join(name);
        assert!(live.join("fullchain.pem").exists(), "no lineage for {name}");
    }
    assert!(
        !certbot.config_dir.join("live/wild.e2e.test").exists()
            && !pebble.pebble.log().contains("wild.e2e.test"),
        "a wildcard was asked for"
    );
    let (code, out) = curl_verified(HOSTS[1], https_port, &pebble.root);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"path\":\"/echo\""), "{out}");

    // Status: each certificate with the name certbot obtains it for.
    let r = curl(&[
        "-f",
        "--cacert",
        pebble.root.to_str().unwrap(),
        "--resolve",
        &format!("{DOMAIN}:{https_port}:127.0.0.1"),
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("https://{DOMAIN}:{https_port}/proxy/status"),
    ]);
    assert_eq!(r.0, 0, "{}", r.1);
    let tls = serde_json::from_str::<serde_json::Value>(&r.1).unwrap()["tls"].clone();
    let certs = tls["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3, "{tls:#}");
    for (name, serial) in names.iter().zip(&first) {
        let c = certs
            .iter()
            .find(|c| c["certbot_name"] == *name)
            .unwrap_or_else(|| panic!("{name} is not listed: {tls:#}"));
        assert_eq!(c["names"], serde_json::json!([name]));
        assert_eq!(c["serial"], serial.as_str());
        assert_eq!(c["default"], *name == DOMAIN);
        assert_eq!(c["last_certbot_run"]["command"], "certonly");
        assert_eq!(c["last_certbot_run"]["ok"], true);
    }

    // One forced renewal run renews every lineage; each name gets its new certificate.
    std::fs::write(&certbot.renew_now, "").unwrap();
    let renewed = wait_all(&p, &names, &pebble.root, &first);
    eprintln!("renewed {first:?} -> {renewed:?}");
    assert!(
        certbot.forced.exists(),
        "the renewal did not come from the proxy's timer"
    );
    for name in names {
        assert!(
            pebble.validations_of(name, http_port) >= 2,
            "the renewal of {name} skipped http-01"
        );
    }
}
