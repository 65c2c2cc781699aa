//! The deployment kit: `deploy/wakeproxy.service` passes `systemd-analyze verify` (Debian's
//! `systemd` package) and keeps its hardening; `scripts/install.sh` into a DESTDIR installs the
//! binary, the config from the skeleton, a fresh 64-hex token (mode 600) and the unit, and a
//! second run changes nothing; the installed config validates with the installed token; the
//! proxy image (`docker/proxy/Dockerfile`) runs as nobody, binds port 80 and turns healthy
//! through its own HEALTHCHECK.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::docker::*;
use support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_wakeproxy");
/// The unit's ExecStart as shipped: where install.sh puts the binary.
const EXEC_START: &str =
    "ExecStart=/usr/local/bin/wakeproxy proxy --config /etc/wakeproxy/proxy.yaml";

/// The path of `tool`, or a failure naming the Debian package that provides it.
fn need(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "this test needs `{tool}`, which is not on PATH; install it with: \
                 apt-get install -y {package}"
            )
        })
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn unit_source() -> String {
    read(&Path::new(ROOT).join("deploy/wakeproxy.service"))
}

/// `key=value` settings of one section of a unit file (a key given twice keeps both values,
/// space-separated, which is how systemd reads list settings).
fn unit_section(unit: &str, section: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).to_string();
            continue;
        }
        if current != section {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line in [{section}]: {line}"));
        out.entry(k.trim().to_string())
            .and_modify(|old| {
                old.push(' ');
                old.push_str(v.trim());
            })
            .or_insert_with(|| v.trim().to_string());
    }
    out
}

/// A copy of the shipped unit whose ExecStart runs the binary cargo just built (systemd-analyze
/// checks that the command exists, and /usr/local/bin/wakeproxy is not installed here). Only
/// that one line differs from deploy/wakeproxy.service.
fn unit_copy_for_this_build(dir: &Path) -> PathBuf {
    assert!(
        !BIN.contains(char::is_whitespace),
        "the test binary's path {BIN:?} has whitespace, which an ExecStart= line cannot hold"
    );
    let src = unit_source();
    assert_eq!(
        src.lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        [EXEC_START],
        "deploy/wakeproxy.service has one ExecStart, running the installed binary"
    );
    let copy = src.replace(
        "ExecStart=/usr/local/bin/wakeproxy ",
        &format!("ExecStart={BIN} "),
    );
    let changed: Vec<_> = src
        .lines()
        .zip(copy.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    // The unit name is the file name: keep it.
    let path = dir.join("wakeproxy.service");
    std::fs::write(&path, copy).unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> Output {
    Command::new(need("systemd-analyze", "systemd"))
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
        .expect("running systemd-analyze")
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = TempDir::new("deploy-verify");
    let unit = unit_copy_for_this_build(dir.path());
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let said = text(&out);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {} ({}) complained:\n{said}",
        unit.display(),
        out.status
    );

    // The file as shipped: the only possible complaint is the binary not being installed on
    // this machine (/usr/local/bin/wakeproxy), nothing else.
    let shipped = Path::new(ROOT).join("deploy/wakeproxy.service");
    let out = systemd_analyze(&["verify", shipped.to_str().unwrap()]);
    let said = text(&out);
    let other: Vec<&str> = said
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains(
                    "Command /usr/local/bin/wakeproxy is not executable: No such file or directory",
                )
        })
        .collect();
    assert!(
        other.is_empty(),
        "systemd-analyze verify deploy/wakeproxy.service:\n{said}"
    );
    if Path::new("/usr/local/bin/wakeproxy").exists() {
        assert!(out.status.success(), "{said}");
    }
}

#[test]
fn the_unit_runs_unprivileged_and_hardened() {
    let unit = unit_source();
    let service = unit_section(&unit, "Service");
    let expect = [
        ("Type", "exec"),
        ("ExecStart", EXEC_START.trim_start_matches("ExecStart=")),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("EnvironmentFile", "/etc/wakeproxy/env"),
        ("User", "wakeproxy"),
        ("SupplementaryGroups", "docker"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "45"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("LimitNOFILE", "65536"),
    ];
    for (key, value) in expect {
        assert_eq!(
            service.get(key).map(String::as_str),
            Some(value),
            "[Service] {key}= in deploy/wakeproxy.service"
        );
    }
    // auto_certbot: certbot writes the webroot and its own directories.
    let rw: Vec<&str> = service["ReadWritePaths"].split_whitespace().collect();
    for p in [
        "-/var/www/acme",
        "-/etc/letsencrypt",
        "-/var/lib/letsencrypt",
        "-/var/log/letsencrypt",
    ] {
        assert!(rw.contains(&p), "ReadWritePaths lacks {p}: {rw:?}");
    }
    assert_eq!(
        unit_section(&unit, "Install")
            .get("WantedBy")
            .map(String::as_str),
        Some("multi-user.target")
    );

    // The drain must finish before systemd's SIGKILL: the skeleton's shutdown_timeout is below
    // TimeoutStopSec.
    let skeleton = read(&Path::new(ROOT).join("deploy/proxy.yaml.skeleton"));
    let drain: u64 = skeleton
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout:"))
        .and_then(|v| v.split('#').next()?.trim().parse().ok())
        .expect("the skeleton sets shutdown_timeout");
    assert!(
        drain + 10 <= 45,
        "shutdown_timeout {drain} s leaves no margin before TimeoutStopSec=45"
    );

    // systemd's own rating of the sandbox (0 = locked down, 10 = exposed).
    let dir = TempDir::new("deploy-security");
    let copy = unit_copy_for_this_build(dir.path());
    let out = systemd_analyze(&["security", "--offline=true", copy.to_str().unwrap()]);
    let said = text(&out);
    let exposure: f64 = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for wakeproxy.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in systemd-analyze security output:\n{said}"));
    assert!(
        exposure <= 2.5,
        "exposure level {exposure} (was 1.7):\n{said}"
    );
    eprintln!("systemd-analyze security: exposure level {exposure}");
}

/// One entry of a snapshot: mode, size, inode, mtime (s, ns) and, for small files, content.
type Entry = (u32, u64, u64, i64, i64, Option<Vec<u8>>);

/// What a file system tree looks like, path by path. Equal snapshots mean nothing was
/// written, replaced or re-moded.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let content = (m.is_file() && m.len() < 1 << 20).then(|| std::fs::read(&path).unwrap());
            if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                (
                    m.mode(),
                    m.len(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    content,
                ),
            );
        }
    }
    out
}

/// Runs scripts/install.sh with `args` into `destdir`; returns its output, failing with it.
fn install(destdir: &Path, args: &[&str]) -> String {
    let out = Command::new(need("bash", "bash"))
        .arg(Path::new(ROOT).join("scripts/install.sh"))
        .arg("--destdir")
        .arg(destdir)
        .args(args)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env_remove("PROXY_BEARER_TOKEN")
        .output()
        .expect("running scripts/install.sh");
    let said = text(&out);
    assert!(
        out.status.success(),
        "scripts/install.sh {args:?} failed ({}):\n{said}",
        out.status
    );
    said
}

/// The token of an env file: exactly one `PROXY_BEARER_TOKEN=` line, 64 hex digits; the rest
/// comments.
fn token_of(env_file: &Path) -> String {
    let env = read(env_file);
    let settings: Vec<&str> = env
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(
        settings.len(),
        1,
        "one setting in {}:\n{env}",
        env_file.display()
    );
    let token = settings[0]
        .strip_prefix("PROXY_BEARER_TOKEN=")
        .unwrap_or_else(|| panic!("not PROXY_BEARER_TOKEN=...: {}", settings[0]));
    assert!(
        token.len() == 64
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "the token is not 64 lowercase hex digits: {token:?}"
    );
    token.to_string()
}

#[test]
fn install_sh_into_a_destdir_installs_everything_once() {
    let dest = TempDir::new("deploy-install");
    let d = dest.path();
    let first = install(
        d,
        &[
            "--binary",
            BIN,
            "--domain",
            "proxy.test",
            "--email",
            "ops@proxy.test",
        ],
    );

    // The binary, byte for byte, executable.
    let bin = d.join("usr/local/bin/wakeproxy");
    assert!(
        std::fs::read(&bin).unwrap() == std::fs::read(BIN).unwrap(),
        "{} is not the built binary",
        bin.display()
    );
    assert_eq!(mode(&bin), 0o755);

    // The config: the skeleton with the domain and e-mail filled in, readable by its group only.
    let config = d.join("etc/wakeproxy/proxy.yaml");
    let skeleton = read(&Path::new(ROOT).join("deploy/proxy.yaml.skeleton"));
    let expected = skeleton
        .replace("  domain: example.com ", "  domain: proxy.test ")
        .replace("  email: admin@example.com ", "  email: ops@proxy.test ")
        .replace(
            "/etc/letsencrypt/live/example.com/",
            "/etc/letsencrypt/live/proxy.test/",
        );
    assert_ne!(expected, skeleton);
    assert_eq!(read(&config), expected);
    assert_eq!(mode(&config), 0o640);
    assert_eq!(mode(&d.join("etc/wakeproxy")), 0o750);

    // The token: generated, 64 hex digits, mode 600.
    let env_file = d.join("etc/wakeproxy/env");
    let token = token_of(&env_file);
    assert_eq!(mode(&env_file), 0o600);
    assert!(
        !first.contains(&token),
        "install.sh printed the token:\n{first}"
    );
    assert!(
        first.contains("from openssl rand -hex 32, mode 600")
            || first.contains("from /dev/urandom, mode 600"),
        "{first}"
    );

    // The unit as shipped (the default prefix keeps its ExecStart), and the ACME webroot.
    let unit = d.join("etc/systemd/system/wakeproxy.service");
    assert_eq!(read(&unit), unit_source());
    assert_eq!(mode(&unit), 0o644);
    assert!(d.join("var/www/acme").is_dir());
    // certbot on the host (no --auto-certbot): its deploy hook.
    let hook = d.join("etc/letsencrypt/renewal-hooks/deploy/wakeproxy");
    assert_eq!(
        read(&hook),
        read(&Path::new(ROOT).join("deploy/certbot-deploy-hook.sh"))
    );
    assert_eq!(mode(&hook), 0o755);

    // Its own check ran, and it says what to do next.
    assert!(
        first.contains("proxy-validate-config:") && first.contains("valid (1 services)"),
        "{first}"
    );
    assert!(
        first.contains("systemctl enable --now wakeproxy"),
        "{first}"
    );
    assert!(first.contains("proxy-status"), "{first}");
    assert!(
        first.contains("skipped (--destdir"),
        "no user in DESTDIR mode:\n{first}"
    );

    // Again: nothing is written, the token is kept.
    let before = snapshot(d);
    let second = install(d, &["--binary", BIN]);
    let after = snapshot(d);
    assert!(
        before == after,
        "the second run changed the tree:\n{second}"
    );
    assert_eq!(token_of(&env_file), token);
    for word in [
        "installed:",
        "updated:",
        "written:",
        "generated:",
        "created:",
        "fixed",
    ] {
        assert!(
            !second.contains(word),
            "the second run says {word:?}:\n{second}"
        );
    }
    assert!(
        second.contains("kept: ") && second.contains("the existing token stays valid"),
        "{second}"
    );

    // An upgrade: a new binary replaces the old one; config, token and unit stay.
    let scratch = TempDir::new("deploy-newer");
    let newer = scratch.path().join("wakeproxy");
    std::fs::write(
        &newer,
        format!("#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'wakeproxy 99.0.0'; exit 0; }}\nexec {BIN} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&newer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let third = install(d, &["--binary", newer.to_str().unwrap()]);
    assert!(
        third.contains(&format!("updated: {}", bin.display())),
        "{third}"
    );
    assert!(read(&bin).contains("wakeproxy 99.0.0"));
    let upgraded = snapshot(d);
    for (path, entry) in &before {
        // The binary was replaced by a rename, which also touches its directory.
        if !path.starts_with("usr/local/bin") {
            assert_eq!(
                upgraded.get(path),
                Some(entry),
                "{} changed in the upgrade",
                path.display()
            );
        }
    }
    assert_eq!(token_of(&env_file), token);
}

#[test]
fn the_installed_config_validates_with_the_installed_token() {
    let dest = TempDir::new("deploy-validate");
    let d = dest.path();
    install(d, &["--binary", BIN]);
    let token = token_of(&d.join("etc/wakeproxy/env"));
    let config = d.join("etc/wakeproxy/proxy.yaml");
    let validate = |token: Option<&str>| {
        let mut cmd = Command::new(d.join("usr/local/bin/wakeproxy"));
        cmd.arg("proxy-validate-config")
            .arg("--config")
            .arg(&config)
            .env_remove("PROXY_BEARER_TOKEN");
        if let Some(t) = token {
            cmd.env("PROXY_BEARER_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), text(&out))
    };
    let (code, said) = validate(Some(&token));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("valid (1 services)") && said.contains("myapp:latest"),
        "{said}"
    );
    assert!(!said.contains(&token), "the token was printed:\n{said}");
    // The token really comes from the environment the unit sets up.
    let (code, said) = validate(None);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("PROXY_BEARER_TOKEN"), "{said}");
}

/// The proxy image: nobody (65534:65534), EXPOSE 80 443, a HEALTHCHECK that is the binary
/// itself, and as nobody it listens on port 80 (Docker >= 20.10 lets any user bind low ports
/// in a container) and Docker reports it healthy.
#[test]
fn the_proxy_image_runs_as_nobody_on_port_80_and_turns_healthy() {
    ensure_proxy_image(); // fails with a message when there is no Docker daemon
    let mut g = DockerGuard::new("deploy");
    let name = g.name("proxy");
    g.cleanup();

    let config = docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}} {{json .Config.ExposedPorts}} {{json .Config.Healthcheck.Test}}",
        PROXY_IMAGE,
    ]);
    assert_eq!(
        config,
        r#"65534:65534 {"443/tcp":{},"80/tcp":{}} ["CMD","/wakeproxy","healthcheck","--config","/etc/wakeproxy/proxy.yaml"]"#
    );

    let dir = TempDir::new("deploy-image");
    let yaml = dir.path().join("proxy.yaml");
    // An upstream-only config: the proxy needs no Docker socket for it.
    std::fs::write(
        &yaml,
        "global:\n  bearer_token: ${PROXY_BEARER_TOKEN}\n  listen_http: 80\n  listen_https: 443\n\
         services:\n  - name: up\n    path: /up\n    upstream: 127.0.0.1:9\n",
    )
    .unwrap();
    std::fs::set_permissions(&yaml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mount = format!("{}:/etc/wakeproxy/proxy.yaml:ro", yaml.display());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        &format!("PROXY_BEARER_TOKEN={TOKEN}"),
        "--health-interval",
        "1s",
        "-v",
        &mount,
        "-p",
        "127.0.0.1::80",
        PROXY_IMAGE,
    ]);
    let logs = || {
        text(
            &Command::new("docker")
                .args(["logs", &name])
                .output()
                .unwrap(),
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            is_running(&name),
            "the proxy container stopped:\n{}",
            logs()
        );
        match inspect(&name, "{{.State.Health.Status}}").as_deref() {
            Some("healthy") => break,
            Some("unhealthy") => panic!(
                "Docker says unhealthy: {}\n{}",
                inspect(&name, "{{json .State.Health.Log}}").unwrap_or_default(),
                logs()
            ),
            _ if std::time::Instant::now() > deadline => {
                panic!(
                    "not healthy within 30 s: {:?}\n{}",
                    inspect(&name, "{{json .State.Health}}"),
                    logs()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    assert_eq!(
        inspect(&name, "{{.Config.User}}").as_deref(),
        Some("65534:65534")
    );
    let addr = published_addr(&name, 80).expect("port 80 published");
    let r = get(addr, "/proxy/healthz");
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    let said = logs();
    assert!(said.contains("listening on http://0.0.0.0:80"), "{said}");
}
