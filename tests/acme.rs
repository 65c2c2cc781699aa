//! ACME end to end, offline: Pebble (an ACME test server) and certbot from Debian's packages,
//! with wakeproxy in place of the web server (shared/reference/acme-testing.md).
//!
//! wakeproxy starts with no certificate and `auto_certbot: true`; its certbot obtains one
//! through wakeproxy's own HTTP port (Pebble's log shows the challenge fetched there), HTTPS
//! comes up without a restart, curl verifies it against Pebble's root; then wakeproxy's renew
//! timer runs a forced renewal, new handshakes get the new serial, and a WebSocket opened
//! before the renewal keeps running.
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

    /// Lines of Pebble's log validating a challenge over HTTP on `port`.
    fn validations(&self, port: u16) -> usize {
        let needle = format!(
            "Attempting to validate w/ HTTP: http://{DOMAIN}:{port}/.well-known/acme-challenge/"
        );
        self.pebble.log().matches(&needle).count()
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

    // A certbot wrapper that forces the renewal once the test says so (Pebble's certificates
    // are valid for years, so a plain `renew` would skip), and runs certbot as is otherwise.
    let certbot = need("certbot", "certbot");
    let wrapper = d.join("certbot-wrapper.sh");
    let go = d.join("renew-now");
    let forced = d.join("renew-forced");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = renew ] && [ -e '{go}' ] && [ ! -e '{forced}' ]; then\n  touch '{forced}'\n  exec '{certbot}' \"$@\" --force-renewal\nfi\nexec '{certbot}' \"$@\"\n",
            go = go.display(),
            forced = forced.display(),
            certbot = certbot.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let le = d.join("letsencrypt");
    let certbot_args = format!(
        "--server {} --config-dir {} --work-dir {} --logs-dir {}",
        pebble.directory,
        le.join("config").display(),
        le.join("work").display(),
        le.join("logs").display()
    );

    // No tls_certfile: with auto_certbot the proxy serves certbot's live/<domain>/ files.
    let https_port = free_port();
    let yaml = format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: {http_port}\n  listen_https: {https_port}\n  \
         domain: {DOMAIN}\n  email: e2e@example.com\n  auto_certbot: true\n  acme_webroot: {}\n  idle_timeout: 300\n\
         services:\n  - name: app\n    path: /app\n    upstream: {}\n",
        d.join("webroot").display(),
        backend.addr
    );
    let xdg = d.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    let started = Instant::now();
    let mut p = start_proxy(
        d,
        &yaml,
        &[],
        &[
            ("WAKEPROXY_CERTBOT", wrapper.to_str().unwrap()),
            ("WAKEPROXY_CERTBOT_ARGS", &certbot_args),
            ("WAKEPROXY_CERTBOT_RENEW_INTERVAL", "3"),
            ("REQUESTS_CA_BUNDLE", pebble.https_ca.to_str().unwrap()),
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
        ],
    );
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
    std::fs::write(&go, "").unwrap();
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
    let live = le.join("config/live").join(DOMAIN);
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
