//! TLS termination through the real binary: curl and openssl against the HTTPS port with
//! certificates made by openssl at test time (ECDSA and RSA, signed by an intermediate), the
//! HTTP port's redirect rules, starting without certificates, hot reload, and mismatched keys.
//!
//! Needs `openssl`, `curl` and `python3` with the `websockets` package (scripts/test.sh
//! installs them); a missing tool fails the test with a message naming it.

mod support;
mod tls_support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ring::digest::{SHA256, digest};
use support::*;
use tls_support::*;

const DOMAIN: &str = "test.example";

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
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn services(&self) -> String {
        format!(
            "  - name: app\n    path: /app\n    upstream: {}\n",
            self.backend.addr
        )
    }
    /// Config serving `cert`/`key` on a free HTTPS port, with `extra` global lines.
    fn config(&self, https_port: u16, cert: &Path, key: &Path, extra: &str) -> String {
        tls_config(
            DOMAIN,
            https_port,
            cert,
            key,
            &self.path("webroot"),
            extra,
            &self.services(),
        )
    }
    fn start(&self, cert: &Path, key: &Path, extra: &str) -> TlsProxy {
        start_proxy(
            self.dir.path(),
            &self.config(free_port(), cert, key, extra),
            &[],
            &[],
        )
    }
}

fn https_port(p: &TlsProxy) -> u16 {
    p.https.expect("no HTTPS listener").port()
}

/// curl to `https://test.example:<port><path>` (resolved to 127.0.0.1), trusting only the
/// test root, with the bearer token.
fn curl_https(p: &TlsProxy, pki: &Pki, path: &str, extra: &[&str]) -> (i32, String) {
    let port = https_port(p);
    let resolve = format!("{DOMAIN}:{port}:127.0.0.1");
    let url = format!("https://{DOMAIN}:{port}{path}");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let root = pki.root.to_str().unwrap().to_string();
    let mut args = vec!["--cacert", &root, "--resolve", &resolve, "-H", &auth];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

fn wait_serial(p: &TlsProxy, want: &str) {
    let https = p.https.unwrap();
    let mut last = None;
    let ok = (0..150).any(|_| {
        last = served_serial(https, DOMAIN);
        if last.as_deref() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(
        ok,
        "the proxy still serves {last:?}, not {want}\nproxy log:\n{}",
        p.proc.log()
    );
}

#[test]
fn the_whole_proxy_runs_behind_tls() {
    let f = Fixture::new("tls-proxy");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E1");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    // Routing, auth and forwarded headers.
    let (code, out) = curl_https(&p, &f.pki, "/app/echo?x=1", &["-f"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["target"], "/echo?x=1");
    let get = |n: &str| echoed_header(&v, n);
    assert_eq!(get("x-forwarded-proto"), ["https"]);
    assert!(
        get("authorization").is_empty(),
        "the proxy's token is never forwarded"
    );
    // No token: 401 over TLS too.
    let port = https_port(&p);
    let (code, out) = curl(&[
        "--cacert",
        f.pki.root.to_str().unwrap(),
        "--resolve",
        &format!("{DOMAIN}:{port}:127.0.0.1"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{DOMAIN}:{port}/app/x"),
    ]);
    assert_eq!((code, out.as_str()), (0, "401"));
    // A streamed 8 MiB upload and a chunked download, with keep-alive between them.
    let body = f.path("upload.bin");
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&body, &data).unwrap();
    let want: String = digest(&SHA256, &data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let upload = format!("@{}", body.display());
    let (code, out) = curl_https(
        &p,
        &f.pki,
        "/app/sink",
        &[
            "-f",
            "--data-binary",
            &upload,
            "-H",
            "Content-Type: application/octet-stream",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["bytes"], 8 << 20);
    assert_eq!(v["sha256"].as_str(), Some(want.as_str()));
    let (code, out) = curl_https(
        &p,
        &f.pki,
        "/app/stream?chunks=20&interval_ms=10&size=1000",
        &["-f"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.len(), 20_000);
    // The proxy's own status endpoint.
    let (code, out) = curl_https(&p, &f.pki, "/proxy/status", &["-f"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"app\""), "{out}");
    // ...and proxy-status speaks HTTPS too, trusting the given CA.
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args([
            "proxy-status",
            "--server-url",
            &format!("https://127.0.0.1:{}", https_port(&p)),
            "--bearer-token",
            TOKEN,
        ])
        .arg("--cacert")
        .arg(&f.pki.root)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("app ")), "{text}");
    let untrusted = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args([
            "proxy-status",
            "--server-url",
            &format!("https://127.0.0.1:{}", https_port(&p)),
            "--bearer-token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(3), "an unknown CA is refused");
}

#[test]
fn tls_1_2_and_1_3_handshake_and_nothing_older() {
    let f = Fixture::new("tls-versions");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E2");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    for (flags, want) in [
        (
            &["--tlsv1.2", "--tls-max", "1.2"][..],
            "SSL connection using TLSv1.2",
        ),
        (&["--tlsv1.3"][..], "SSL connection using TLSv1.3"),
    ] {
        let mut args = vec!["-v", "-f", "-o", "/dev/null"];
        args.extend_from_slice(flags);
        let (code, out) = curl_https(&p, &f.pki, "/app/x", &args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(want), "{want} missing:\n{out}");
        assert!(out.contains("ALPN: server accepted http/1.1"), "{out}");
    }
    let https = p.https.unwrap().to_string();
    let dir = f.dir.path();
    for old in ["-tls1_1", "-tls1"] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &https,
                old,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("the openssl command is needed (apt-get install openssl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{old} was accepted:\n{text}");
        assert!(
            !text.contains("BEGIN CERTIFICATE"),
            "{old} got a certificate:\n{text}"
        );
    }
}

/// A client that sends an IP address as SNI (wrk does) is served, and rustls's warning about
/// it does not reach the log once per handshake.
#[test]
fn an_ip_address_as_sni_is_served_without_a_log_line() {
    let f = Fixture::new("tls-ip-sni");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E4");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    let https = p.https.unwrap().to_string();
    for _ in 0..3 {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &https, "-servername", "127.0.0.1"])
            .current_dir(f.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("the openssl command is needed (apt-get install openssl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("BEGIN CERTIFICATE"),
            "no handshake with an IP address as SNI:\n{text}\nproxy log:\n{}",
            p.proc.log()
        );
    }
    let log = p.proc.log();
    assert!(!log.contains("SNI"), "{log}");
}

#[test]
fn rsa_certificates_with_their_chain() {
    let f = Fixture::new("tls-rsa");
    let leaf = f.pki.leaf("rsa", KeyKind::Rsa, DOMAIN, "A5A5");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    for flags in [&["--tlsv1.2", "--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
        let mut args = vec!["-v", "-f", "-o", "/dev/null"];
        args.extend_from_slice(flags);
        let (code, out) = curl_https(&p, &f.pki, "/app/x", &args);
        assert_eq!(code, 0, "{out}");
        if flags[0] == "--tlsv1.2" {
            assert!(
                out.contains("ECDHE-RSA-"),
                "an RSA suite was negotiated:\n{out}"
            );
        }
    }
    assert_eq!(
        served_serial(p.https.unwrap(), DOMAIN).as_deref(),
        Some("A5A5")
    );
    // The chain is needed: a client trusting only the root still verifies (the intermediate
    // is sent), and one that trusts nothing refuses.
    let (code, out) = curl(&[
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{}/proxy/healthz", https_port(&p)),
    ]);
    assert_ne!(code, 0, "an unknown CA was accepted: {out}");
}

#[test]
fn websockets_over_tls() {
    let f = Fixture::new("tls-ws");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E3");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    let url = format!("wss://{DOMAIN}:{}/app/ws", https_port(&p));
    let connect = p.https.unwrap().to_string();
    let env = [
        ("WS_CA_FILE", f.pki.root.to_str().unwrap()),
        ("WS_CONNECT", connect.as_str()),
    ];
    let (ok, v, err) = ws_run(&["echo", &url, TOKEN], &env);
    assert!(ok, "{v}\n{err}\nproxy log:\n{}", p.proc.log());
    let (ok, v, err) = ws_run(&["unauthorised", &url], &env);
    assert!(ok, "{v}\n{err}");
}

/// Sends `raw` to the HTTP port and reads one response.
fn http_raw(p: &TlsProxy, raw: &str) -> RawResponse {
    raw_request(p.http, raw)
}

#[test]
fn the_http_port_redirects_with_path_and_query_and_ignores_the_host() {
    let f = Fixture::new("tls-redirect");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E4");
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    let port = https_port(&p);
    let r = http_raw(
        &p,
        "GET /app/a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil2.example\r\n\r\n",
    );
    assert_eq!(r.status, 308, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{DOMAIN}:{port}/app/a%20b/c?x=1&y=%2F").as_str())
    );
    // Any method, no token needed, the absolute-form authority ignored too; a body closes.
    let r = http_raw(
        &p,
        "POST http://evil.example/proxy/status HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{DOMAIN}:{port}/proxy/status").as_str())
    );
    assert_eq!(r.header("connection"), Some("close"));
    let r = http_raw(&p, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{DOMAIN}:{port}/").as_str())
    );
    // curl follows it to the HTTPS port (sending the token on: another port is another
    // origin) and gets the backend.
    let (code, out) = curl(&[
        "--location-trusted",
        "-f",
        "--cacert",
        f.pki.root.to_str().unwrap(),
        "--resolve",
        &format!("{DOMAIN}:{port}:127.0.0.1"),
        "--resolve",
        &format!("{DOMAIN}:{}:127.0.0.1", p.http.port()),
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        &format!("http://{DOMAIN}:{}/app/echo?q=1", p.http.port()),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"target\":\"/echo?q=1\""), "{out}");
    // Health checks and ACME challenges stay on HTTP, without a token.
    let r = http_raw(&p, "GET /proxy/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let challenges = f.path("webroot/.well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join("tok_EN-1"), "tok_EN-1.thumbprint").unwrap();
    let r = http_raw(
        &p,
        "GET /.well-known/acme-challenge/tok_EN-1 HTTP/1.1\r\nHost: test.example:80\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "tok_EN-1.thumbprint"));
    // ... but not out of the webroot, by `..` or by symlink.
    std::fs::write(f.path("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(f.path("secret.txt"), challenges.join("link")).unwrap();
    for target in [
        "/.well-known/acme-challenge/link",
        "/.well-known/acme-challenge/../../secret.txt",
        "/.well-known/acme-challenge/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/.well-known/acme-challenge/..%2F..%2Fsecret.txt",
    ] {
        let r = http_raw(&p, &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(r.status == 404 || r.status == 400, "{target}: {}", r.head);
        assert!(!r.text().contains("secret\""), "{target} leaked the file");
        assert_ne!(r.text(), "secret");
    }
}

#[test]
fn without_redirects_the_http_port_answers_426() {
    let f = Fixture::new("tls-426");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E5");
    let p = f.start(
        &leaf.fullchain,
        &leaf.key,
        "  http_redirect_to_https: false\n",
    );
    let r = http_raw(
        &p,
        &format!("GET /app/x?y=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"),
    );
    assert_eq!(r.status, 426, "{}", r.head);
    assert!(r.header("location").is_none());
    assert!(r.header("upgrade").is_some_and(|u| u.contains("TLS/1.2")));
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("https://{DOMAIN}:{}/app/x?y=1", https_port(&p)))
    );
    let r = http_raw(&p, "GET /proxy/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn no_tls_keeps_everything_plain() {
    let f = Fixture::new("tls-off");
    let leaf = f.pki.leaf("ec", KeyKind::Ecdsa, DOMAIN, "E6");
    let https = free_port();
    let p = start_proxy(
        f.dir.path(),
        &f.config(https, &leaf.fullchain, &leaf.key, ""),
        &["--no-tls"],
        &[],
    );
    assert!(!p.proc.log().contains("https://"), "{}", p.proc.log());
    let r = get(p.http, "/app/x");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        TcpStream::connect(("127.0.0.1", https)).is_err(),
        "the HTTPS port was bound"
    );
}

#[test]
fn bad_certificate_files_stop_the_start() {
    let f = Fixture::new("tls-bad");
    let a = f.pki.leaf("a", KeyKind::Ecdsa, DOMAIN, "BA");
    let b = f.pki.leaf("b", KeyKind::Ecdsa, DOMAIN, "BB");
    let (code, out) = start_failure(
        f.dir.path(),
        &f.config(free_port(), &a.fullchain, &b.key, ""),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not belong to the certificate"), "{out}");
    std::fs::write(f.path("garbage.pem"), "not a certificate\n").unwrap();
    let (code, out) = start_failure(
        f.dir.path(),
        &f.config(free_port(), &f.path("garbage.pem"), &a.key, ""),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("garbage.pem") && out.contains("no CERTIFICATE block"),
        "{out}"
    );
    let (code, out) = start_failure(
        f.dir.path(),
        &f.config(free_port(), f.dir.path(), &a.key, ""),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read"), "{out}");
}

#[test]
fn starting_without_certificates_then_tls_comes_up_without_a_restart() {
    let f = Fixture::new("tls-later");
    let live = f.path("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("fullchain.pem"), live.join("privkey.pem"));
    let mut p = f.start(&cert, &key, "");
    p.proc
        .wait_line("waiting for certificates", Duration::from_secs(5));
    // Meanwhile: the full proxy on the HTTP port, and no TLS handshake succeeds.
    let r = get(p.http, "/app/x");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(served_serial(p.https.unwrap(), DOMAIN).is_none());
    let leaf = f.pki.leaf("late", KeyKind::Ecdsa, DOMAIN, "1A7E");
    link_live(&live, &leaf);
    p.proc.wait_line("HTTPS is on", Duration::from_secs(15));
    let (code, out) = curl_https(&p, &f.pki, "/app/x", &["-f"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        served_serial(p.https.unwrap(), DOMAIN).as_deref(),
        Some("1A7E")
    );
    let r = get(p.http, "/app/x");
    assert_eq!(r.status, 308, "the HTTP port now redirects: {}", r.head);
}

#[test]
fn hot_reload_serves_the_new_serial_and_open_connections_keep_going() {
    let f = Fixture::new("tls-reload");
    let live = f.path("live");
    std::fs::create_dir_all(&live).unwrap();
    let old = f.pki.leaf("v1", KeyKind::Ecdsa, DOMAIN, "01D1");
    let (cert, key) = link_live(&live, &old);
    let mut p = f.start(&cert, &key, "");
    assert_eq!(
        served_serial(p.https.unwrap(), DOMAIN).as_deref(),
        Some("01D1")
    );
    // Open before the renewal: a WebSocket and a server-sent event stream.
    let url = format!("wss://{DOMAIN}:{}/app/ws", https_port(&p));
    let ws = HeldWebSocket::open(&url, &f.pki.root, p.https.unwrap(), f.path("release"));
    let port = https_port(&p);
    let mut sse = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--cacert",
            f.pki.root.to_str().unwrap(),
            "--resolve",
            &format!("{DOMAIN}:{port}:127.0.0.1"),
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("https://{DOMAIN}:{port}/app/sse?events=40&interval_ms=150"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is needed");
    let mut sse_out = BufReader::new(sse.stdout.take().unwrap());
    let mut first = String::new();
    sse_out.read_line(&mut first).unwrap();
    assert!(first.starts_with("data: event"), "{first}");
    // Renew the way certbot does: new archive files, then the live links swapped.
    let new = f.pki.leaf("v2", KeyKind::Ecdsa, DOMAIN, "02D2");
    link_live(&live, &new);
    wait_serial(&p, "02D2");
    p.proc.wait_line("serial 02D2", Duration::from_secs(5));
    // Both older connections still work.
    let (ws_ok, stdout, stderr) = ws.release();
    let mut rest = String::new();
    sse_out.read_to_string(&mut rest).unwrap();
    assert!(sse.wait().unwrap().success(), "the event stream broke");
    assert_eq!(rest.matches("data: event").count(), 39, "{rest}");
    assert!(ws_ok, "the WebSocket broke: {stdout}{stderr}");
}

#[test]
fn a_key_that_does_not_match_is_never_served() {
    let f = Fixture::new("tls-mismatch");
    let live = f.path("live");
    std::fs::create_dir_all(&live).unwrap();
    let old = f.pki.leaf("v1", KeyKind::Ecdsa, DOMAIN, "0AA1");
    let (cert, key) = link_live(&live, &old);
    let mut p = f.start(&cert, &key, "");
    // A new chain next to the old key (certbot between two link swaps, or a botched copy).
    let new = f.pki.leaf("v2", KeyKind::Ecdsa, DOMAIN, "0BB2");
    std::fs::remove_file(&cert).unwrap();
    std::os::unix::fs::symlink(&new.fullchain, &cert).unwrap();
    p.proc.wait_line(
        "does not belong to the certificate",
        Duration::from_secs(10),
    );
    // Still the old pair, and the warning is not repeated on every check.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        served_serial(p.https.unwrap(), DOMAIN).as_deref(),
        Some("0AA1")
    );
    let warnings = p
        .proc
        .log()
        .matches("does not belong to the certificate")
        .count();
    assert_eq!(warnings, 1, "{}", p.proc.log());
    let (code, out) = curl_https(&p, &f.pki, "/app/x", &["-f"]);
    assert_eq!(code, 0, "{out}");
    // The key arrives: the new pair is served.
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&new.key, &key).unwrap();
    wait_serial(&p, "0BB2");
}

#[test]
fn a_testssl_scan_finds_no_old_protocol_no_weak_cipher_and_no_chain_problem() {
    let testssl = ["testssl", "testssl.sh"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .expect(
            "testssl is needed for the TLS scan: apt-get install testssl.sh (scripts/test.sh does)",
        );
    let f = Fixture::new("tls-scan");
    // A certificate that is itself above reproach (a year, 128-bit serial, a CRL URI), so
    // that every finding left is about the server.
    let leaf = f.pki.leaf_for(
        "scan",
        KeyKind::Ecdsa,
        DOMAIN,
        "5C4A1B2C3D4E5F60718293A4B5C6D7E8",
        365,
    );
    let p = f.start(&leaf.fullchain, &leaf.key, "");
    let json = f.path("testssl.json");
    let out = Command::new(testssl)
        .args([
            "--quiet",
            "--color",
            "0",
            "--ip",
            "one",
            "--warnings",
            "off",
            "--add-ca",
        ])
        .arg(&f.pki.root)
        .args(["-p", "-s", "-f", "-S", "-U", "--jsonfile"])
        .arg(&json)
        .arg(p.https.unwrap().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("testssl wrote no JSON ({e}):\n{text}"));
    let finding = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["finding"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("testssl reported no {id}:\n{text}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(old), "not offered", "{old}:\n{text}");
    }
    assert!(finding("TLS1_2").starts_with("offered"), "{text}");
    assert!(finding("TLS1_3").starts_with("offered"), "{text}");
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(weak), "not offered", "{weak}:\n{text}");
    }
    assert_eq!(finding("cert_chain_of_trust"), "passed.", "{text}");
    assert_eq!(finding("certs_list_ordering_problem"), "no", "{text}");
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("MEDIUM" | "HIGH" | "CRITICAL")))
        .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["finding"]))
        .collect();
    assert!(
        bad.is_empty(),
        "testssl findings:\n{}\n\n{text}",
        bad.join("\n")
    );
    eprintln!("testssl summary:\n{text}");
}
