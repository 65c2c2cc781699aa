//! A real image registry on 127.0.0.1 for the tests: Debian's `docker-registry` (distribution
//! 2.8), started on a free port with its storage in a temporary folder, stopped on drop. The
//! Docker daemon talks plain HTTP to registries on 127.0.0.0/8 without any configuration.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::docker::docker;
use super::{Proc, wait_for};

pub struct Registry {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// With auth: the daemon's trust for the registry's certificate, removed on drop, and the
    /// docker CLI config holding the login.
    trust: Option<std::path::PathBuf>,
    cli_config: Option<std::path::PathBuf>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(t) = &self.trust {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Registry {
    /// Starts a registry keeping its data under `dir`.
    pub fn start(dir: &Path) -> Registry {
        Registry::launch(dir, free_port(), "")
    }

    /// Starts a registry that wants `user` and `password` (htpasswd, bcrypt), over TLS with a
    /// certificate made here and trusted by the daemon (`/etc/docker/certs.d`) for as long as
    /// the registry lives; the docker CLI used by `push` logs in with its own config folder.
    pub fn start_with_auth(dir: &Path, user: &str, password: &str) -> Registry {
        for tool in ["/usr/bin/htpasswd", "/usr/bin/openssl"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is needed (apt-get install apache2-utils openssl; scripts/test.sh does)"
            );
        }
        let port = free_port();
        let htpasswd = dir.join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(&htpasswd, &out.stdout).unwrap();
        let (cert, key) = (dir.join("registry.crt"), dir.join("registry.key"));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let trust = Path::new("/etc/docker/certs.d").join(format!("127.0.0.1:{port}"));
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(&cert, trust.join("ca.crt")).unwrap();
        let extra = format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: wakeproxy-test\n    path: {}\n",
            cert.display(),
            key.display(),
            htpasswd.display()
        );
        let mut r = Registry::launch(dir, port, &extra);
        r.trust = Some(trust);
        let cli = dir.join("docker-cli");
        std::fs::create_dir_all(&cli).unwrap();
        let mut login = Command::new("docker");
        login.arg("--config").arg(&cli).args([
            "login",
            "-u",
            user,
            "--password-stdin",
            &r.addr.to_string(),
        ]);
        login.stdin(std::process::Stdio::piped());
        let mut child = login
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker login: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        r.cli_config = Some(cli);
        r
    }

    fn launch(dir: &Path, port: u16, extra_http: &str) -> Registry {
        let bin = "/usr/bin/docker-registry";
        assert!(
            Path::new(bin).exists(),
            "these tests need Debian's docker-registry package (apt-get install docker-registry); scripts/test.sh installs it"
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = dir.join("registry.yml");
        let storage = dir.join("registry-data");
        std::fs::create_dir_all(&storage).unwrap();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra_http}",
                storage.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let proc = Proc::spawn("docker-registry", cmd);
        wait_for("the registry to answer", Duration::from_secs(20), || {
            let s = std::net::TcpStream::connect(addr).ok()?;
            drop(s);
            Some(())
        });
        Registry {
            proc,
            addr,
            trust: None,
            cli_config: None,
        }
    }

    /// `127.0.0.1:PORT/name:tag`.
    pub fn image(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.addr)
    }

    /// Tags local image `local` as `remote`, pushes it, and removes the local tag, so that
    /// the daemon must pull `remote` to have it. Returns the pushed image's id.
    pub fn push(&self, local: &str, remote: &str) -> String {
        docker(&["tag", local, remote]);
        match &self.cli_config {
            Some(cli) => run(Command::new("docker")
                .arg("--config")
                .arg(cli)
                .args(["push", "-q", remote])),
            None => {
                docker(&["push", "-q", remote]);
            }
        }
        let id = docker(&["image", "inspect", "-f", "{{.Id}}", remote]);
        docker(&["rmi", remote]);
        id
    }
}
