//! TLS test support shared by `tests/tls.rs` and `tests/acme.rs`: certificates made with the
//! `openssl` command at test time, a proxy started with TLS on, and the served certificate's
//! serial as `openssl s_client` sees it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use crate::support::{Proc, TOKEN, TempDir, addr_after, ws_client};

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is needed for the TLS tests (apt-get install openssl)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openssl {} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// Key types for test leaves.
#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
}

/// A root CA and an intermediate CA; leaves are signed by the intermediate, so a client that
/// trusts only the root needs the chain the server sends.
pub struct Pki {
    pub dir: PathBuf,
    pub root: PathBuf,
}

/// A leaf: `fullchain` (leaf then intermediate) and `key`, in the PKI directory.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub fullchain: PathBuf,
    pub key: PathBuf,
    /// As `openssl x509 -serial` prints it.
    pub serial: String,
}

fn ext_file(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

/// A self-signed CA in `dir`: a new P-256 key `<name>.key` and its certificate `<name>.pem`,
/// valid for `days`, with subject `subj` and extension `keyUsage=<key_usage>`.
pub fn self_signed_ca(dir: &Path, name: &str, days: u32, subj: &str, key_usage: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            &days.to_string(),
            "-subj",
            subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            &format!("keyUsage={key_usage}"),
        ],
    );
}

/// A new P-256 key, written to `dir/out`.
pub fn ec_key(dir: &Path, out: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            out,
        ],
    );
}

/// A certificate signing request for `key` with subject `subj`, written to `dir/out`.
pub fn csr(dir: &Path, key: &str, subj: &str, out: &str) {
    openssl(
        dir,
        &["req", "-new", "-key", key, "-subj", subj, "-out", out],
    );
}

/// The certificate for `csr` signed by the CA `<ca>.pem` (key `<ca>.key`), with `serial` (as
/// openssl takes it: decimal, or hex after 0x), valid for `days`, with the extensions in the
/// file `ext`; written to `dir/out`. All names are relative to `dir`.
pub fn sign(dir: &Path, csr: &str, ca: &str, serial: &str, days: u32, ext: &str, out: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            serial,
            "-days",
            &days.to_string(),
            "-extfile",
            ext,
            "-out",
            out,
        ],
    );
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        self_signed_ca(
            &dir,
            "root",
            400,
            "/CN=wakeproxy test root",
            "critical,keyCertSign,cRLSign",
        );
        ec_key(&dir, "inter.key");
        csr(
            &dir,
            "inter.key",
            "/CN=wakeproxy test intermediate",
            "inter.csr",
        );
        let ext = ext_file(
            &dir,
            "inter.ext",
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
        );
        sign(&dir, "inter.csr", "root", "0x100", 400, &ext, "inter.pem");
        Pki {
            root: dir.join("root.pem"),
            dir,
        }
    }

    /// A leaf for `name` (plus `localhost` and 127.0.0.1) with `serial` (hex digits), valid
    /// for a week, in files named after `tag`.
    pub fn leaf(&self, tag: &str, kind: KeyKind, name: &str, serial: &str) -> Leaf {
        self.leaf_for(tag, kind, name, serial, 7)
    }

    /// Like `leaf`, valid for `days`.
    pub fn leaf_for(&self, tag: &str, kind: KeyKind, name: &str, serial: &str, days: u32) -> Leaf {
        let san = format!("DNS:{name},DNS:localhost,IP:127.0.0.1");
        self.make_leaf(tag, kind, name, &san, serial, days)
    }

    /// An ECDSA leaf for exactly `names` (DNS names, `*.` wildcards too; the first is also the
    /// common name) with `serial` (hex digits), valid for a week.
    pub fn leaf_names(&self, tag: &str, names: &[&str], serial: &str) -> Leaf {
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        self.make_leaf(tag, KeyKind::Ecdsa, names[0], &san.join(","), serial, 7)
    }

    /// A leaf with common name `cn` and subject alternative names `san` (openssl's syntax).
    fn make_leaf(
        &self,
        tag: &str,
        kind: KeyKind,
        cn: &str,
        san: &str,
        serial: &str,
        days: u32,
    ) -> Leaf {
        let d = &self.dir;
        let key = format!("{tag}.key");
        match kind {
            KeyKind::Ecdsa => ec_key(d, &key),
            KeyKind::Rsa => {
                openssl(
                    d,
                    &[
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                        "-out",
                        &key,
                    ],
                );
            }
        };
        let csr_file = format!("{tag}.csr");
        csr(d, &key, &format!("/CN={cn}"), &csr_file);
        let ext = ext_file(
            d,
            &format!("{tag}.ext"),
            &format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
                 crlDistributionPoints=URI:http://crl.test.invalid/intermediate.crl\n"
            ),
        );
        let cert = format!("{tag}.pem");
        sign(
            d,
            &csr_file,
            "inter",
            &format!("0x{serial}"),
            days,
            &ext,
            &cert,
        );
        let fullchain = d.join(format!("{tag}-fullchain.pem"));
        let mut chain = std::fs::read(d.join(&cert)).unwrap();
        chain.extend(std::fs::read(d.join("inter.pem")).unwrap());
        std::fs::write(&fullchain, chain).unwrap();
        Leaf {
            fullchain,
            key: d.join(key),
            serial: serial.to_ascii_uppercase(),
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; tests use it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy started with TLS configured.
pub struct TlsProxy {
    pub proc: Proc,
    pub http: SocketAddr,
    /// `None` with `--no-tls`.
    pub https: Option<SocketAddr>,
    pub config_path: PathBuf,
}

/// The global section for a TLS proxy on 127.0.0.1 (ephemeral HTTP port, `https_port`),
/// domain `domain`, with `extra` global lines, followed by `services`.
pub fn tls_config(
    domain: &str,
    https_port: u16,
    cert: &Path,
    key: &Path,
    webroot: &Path,
    extra: &str,
    services: &str,
) -> String {
    format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: 0\n  listen_https: {https_port}\n  \
         domain: {domain}\n  tls_certfile: {}\n  tls_keyfile: {}\n  acme_webroot: {}\n  idle_timeout: 300\n{extra}services:\n{services}",
        cert.display(),
        key.display(),
        webroot.display()
    )
}

/// Runs `wakeproxy proxy --config <dir>/proxy.yaml [args]` and waits for its listeners.
pub fn start_proxy(dir: &Path, yaml: &str, args: &[&str], env: &[(&str, &str)]) -> TlsProxy {
    let config_path = dir.join("proxy.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakeproxy"));
    cmd.arg("proxy")
        .arg("--config")
        .arg(&config_path)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn("wakeproxy", cmd);
    let http = addr_after(
        &proc.wait_line("listening on http://", Duration::from_secs(20)),
        "listening on http://",
    );
    let https = if args.contains(&"--no-tls") {
        None
    } else {
        Some(addr_after(
            &proc.wait_line("listening on https://", Duration::from_secs(20)),
            "listening on https://",
        ))
    };
    TlsProxy {
        proc,
        http,
        https,
        config_path,
    }
}

/// Runs the proxy expecting it to fail at start-up; returns its exit code and output.
pub fn start_failure(dir: &Path, yaml: &str) -> (i32, String) {
    let config_path = dir.join("proxy.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .arg("proxy")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The serial of the certificate served on `addr` for `server_name`, or `None` when the
/// handshake fails.
pub fn served_serial(addr: SocketAddr, server_name: &str) -> Option<String> {
    served_serial_sni(addr, Some(server_name))
}

/// The same, sending `server_name` as SNI, or no SNI at all.
pub fn served_serial_sni(addr: SocketAddr, server_name: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()]);
    match server_name {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("the openssl command is needed for the TLS tests (apt-get install openssl)");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text[begin..end].as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim().strip_prefix("serial=").map(str::to_string)
}

/// Makes certbot-like `live/` links in `dir` pointing at `leaf`'s files (replacing the links
/// one at a time, as certbot does: the chain first, then the key).
pub fn link_live(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join("fullchain.pem");
    let key = dir.join("privkey.pem");
    for (link, target) in [(&cert, &leaf.fullchain), (&key, &leaf.key)] {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(target, link).unwrap();
    }
    (cert, key)
}

/// A WebSocket over TLS that ws_client.py `hold-until` keeps echoing on (every 0.2 s) until
/// it is released.
pub struct HeldWebSocket {
    child: Child,
    /// Its stderr, past the line that said the socket is open.
    stderr: BufReader<ChildStderr>,
    release: PathBuf,
}

impl HeldWebSocket {
    /// Opens `url` (wss://) with the test token, trusting only `ca_file` and connecting to
    /// `connect` (the URL's host stays the TLS server name); returns once the socket is open.
    /// `release` is the file whose creation tells the client to stop.
    pub fn open(url: &str, ca_file: &Path, connect: SocketAddr, release: PathBuf) -> HeldWebSocket {
        let connect = connect.to_string();
        let mut child = ws_client(
            &["hold-until", url, TOKEN, release.to_str().unwrap()],
            &[
                ("WS_CA_FILE", ca_file.to_str().unwrap()),
                ("WS_CONNECT", &connect),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed (with the websockets package)");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "open", "the WebSocket did not open: {line}");
        HeldWebSocket {
            child,
            stderr,
            release,
        }
    }

    /// Releases it (the client echoes once more, then closes) and waits for the client:
    /// (it exited 0, the result it printed on stdout, the rest of its stderr).
    pub fn release(mut self) -> (bool, String, String) {
        std::fs::write(&self.release, "").unwrap();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let mut stderr = String::new();
        let _ = self.stderr.read_to_string(&mut stderr);
        let ok = self.child.wait().unwrap().success();
        (ok, stdout, stderr)
    }
}

/// A TempDir for a TLS test.
pub fn temp(tag: &str) -> TempDir {
    TempDir::new(tag)
}

/// A client configuration that trusts the test PKI's root.
pub fn trusting(root: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(cfg)
}

/// A proxy for `proxy.test` with TLS on: a new test PKI in `dir`, an ECDSA leaf for the name,
/// `extra` global lines and `services`. The PKI goes with it, for clients to trust its root.
pub fn proxy_test_tls(dir: &Path, extra: &str, services: &str) -> (TlsProxy, Pki) {
    let pki = Pki::new(dir);
    let leaf = pki.leaf("proxy", KeyKind::Ecdsa, "proxy.test", "2b");
    let yaml = tls_config(
        "proxy.test",
        free_port(),
        &leaf.fullchain,
        &leaf.key,
        dir,
        extra,
        services,
    );
    (start_proxy(dir, &yaml, &[], &[]), pki)
}
