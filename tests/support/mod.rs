//! Test support: run the real `wakeproxy` binary and the test backend on ephemeral 127.0.0.1
//! ports, wait with deadlines, clean up on drop, and print the proxy's log when a test fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-3c2d5b43900e89b5429e5a10cd107b56";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wakeproxy-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process whose output lines are collected; killed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines() {
                    let Ok(l) = l else { break };
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Proc {
            child,
            lines,
            name: name.to_string(),
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for an output line containing `needle` and returns it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_lines(needle, 1, timeout).swap_remove(0)
    }

    /// Waits until `count` output lines contain `needle` and returns them.
    /// Output is read by other threads, so a line the process wrote before it
    /// answered a request may not be here yet when the answer arrives.
    pub fn wait_lines(&mut self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} exited ({st}) before printing {needle:?}; output:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > end {
                panic!(
                    "{} did not print {needle:?} {count} time(s) within {timeout:?}; output:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- {} output -----\n{}\n----- end of {} output -----",
                self.name,
                self.log(),
                self.name
            );
        }
    }
}

/// The address printed after `marker` in a log line.
pub fn addr_after(line: &str, marker: &str) -> SocketAddr {
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    let a = rest.split_whitespace().next().unwrap();
    a.parse()
        .unwrap_or_else(|e| panic!("bad address {a:?} in {line:?}: {e}"))
}

/// The `wakeproxy-testbackend` binary of this build. It belongs to another package of the
/// workspace (`testbackend/`), so Cargo neither builds it for these tests nor names it in
/// `CARGO_BIN_EXE_*`: it is looked up in the target directory this test runs from
/// (`target/<profile>/deps/<test>` -> `target/<profile>/wakeproxy-testbackend`, whatever
/// `CARGO_TARGET_DIR` or `--target` put above). Missing or older than its sources: panics.
pub fn testbackend_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(find_testbackend).clone()
}

fn find_testbackend() -> PathBuf {
    let name = format!("wakeproxy-testbackend{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("the path of the running test");
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            assert_newer_than_sources(&candidate);
            return candidate;
        }
        looked.push(candidate);
        // The root of the target directory: nothing above it belongs to this build.
        if dir.join("CACHEDIR.TAG").is_file() {
            break;
        }
    }
    panic!(
        "the test backend binary is missing: looked for {}.\n\
         It is the workspace member wakeproxy-testbackend, which `cargo test` of this package \
         does not build. Build it first with `cargo build -p wakeproxy-testbackend` (same \
         profile and target options as the tests), or run scripts/test.sh, which builds the \
         whole workspace.",
        looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    );
}

/// Refuses a backend binary built before the last change to its Rust sources, which would
/// quietly test old code. (Any such change makes `cargo build` compile it again.)
fn assert_newer_than_sources(bin: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(bin) else { return };
    let mut sources = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("testbackend/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(path);
            }
        }
    }
    for source in sources {
        if modified(&source).is_some_and(|changed| changed > built) {
            panic!(
                "the test backend binary {} is older than {}: rebuild it with \
                 `cargo build -p wakeproxy-testbackend` (scripts/test.sh does)",
                bin.display(),
                source.display()
            );
        }
    }
}

/// The test backend binary on 127.0.0.1:0.
pub struct Backend {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::start_with(name, &[])
    }
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> Backend {
        let mut cmd = Command::new(testbackend_bin());
        cmd.args(["--listen", "127.0.0.1:0"]).env("NAME", name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(&format!("backend {name}"), cmd);
        let line = proc.wait_line("listening on ", Duration::from_secs(10));
        let addr = addr_after(&line, "listening on ");
        Backend { proc, addr }
    }
}

/// The wakeproxy binary running a config.
pub struct TestProxy {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl TestProxy {
    /// Writes `yaml` and runs `wakeproxy proxy --config F --no-tls`.
    pub fn start(yaml: &str) -> TestProxy {
        TestProxy::start_env(yaml, &[])
    }

    pub fn start_env(yaml: &str, env: &[(&str, &str)]) -> TestProxy {
        TestProxy::start_with_files(yaml, &[], env)
    }

    /// Like `start_env`, with `files` (name, text) written next to the config first (the
    /// files a config names, such as an `env_file`).
    pub fn start_with_files(yaml: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> TestProxy {
        let dir = TempDir::new("proxy");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let config_path = dir.path().join("proxy.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakeproxy"));
        cmd.arg("proxy")
            .arg("--config")
            .arg(&config_path)
            .arg("--no-tls");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("wakeproxy", cmd);
        let line = proc.wait_line("listening on http://", Duration::from_secs(20));
        let addr = addr_after(&line, "listening on http://");
        TestProxy {
            proc,
            addr,
            dir,
            config_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A minimal config: global section with the test token on 127.0.0.1:0, plus `services`.
pub fn config(services: &str) -> String {
    config_with("", services)
}

/// Like `config`, with extra global lines (each indented two spaces by the caller).
pub fn config_with(global_extra: &str, services: &str) -> String {
    format!(
        "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: 0\n  idle_timeout: 300\n{global_extra}services:\n{services}"
    )
}

/// A parsed response from `raw_request`.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Reads one response from a stream (Content-Length, chunked, or until close), independent of
/// the proxy's own parser. `head_request` means no body follows.
pub fn read_response(r: &mut BufReader<TcpStream>, head_request: bool) -> RawResponse {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("reading response head");
        assert!(
            n > 0,
            "connection closed before a complete response head; got {head:?}"
        );
        if head.is_empty() && line.starts_with("HTTP/1.1 1") && !line.starts_with("HTTP/1.1 101") {
            // interim response: skip it and its headers
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l == "\r\n" {
                    break;
                }
            }
            continue;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if !(head_request || status == 204 || status == 304 || (100..200).contains(&status)) {
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                let size = usize::from_str_radix(l.trim().split(';').next().unwrap(), 16).unwrap();
                if size == 0 {
                    let mut end = String::new();
                    r.read_line(&mut end).unwrap();
                    break;
                }
                let mut chunk = vec![0; size];
                r.read_exact(&mut chunk).unwrap();
                body.extend_from_slice(&chunk);
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf).unwrap();
            }
        } else if let Some(len) = get("content-length") {
            body.resize(len.parse().unwrap(), 0);
            r.read_exact(&mut body).unwrap();
        } else {
            r.read_to_end(&mut body).unwrap();
        }
    }
    RawResponse {
        status,
        head,
        headers,
        body,
    }
}

/// Sends raw request bytes on a new connection and reads one response.
pub fn raw_request(addr: SocketAddr, raw: &str) -> RawResponse {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (&s).write_all(raw.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    read_response(&mut r, raw.starts_with("HEAD "))
}

/// A GET with the test token.
pub fn get(addr: SocketAddr, path: &str) -> RawResponse {
    raw_request(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: test.local\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
}

/// One GET without a token that never panics: (status, body), or None while nothing answers
/// properly (a published container port accepts connections before the proxy listens).
pub fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Service `name`'s entry in the proxy's `/proxy/status` (asked with the test token); fails the
/// test when it is not listed.
pub fn service_status(addr: SocketAddr, name: &str) -> serde_json::Value {
    let all = get(addr, "/proxy/status").json()["services"].clone();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing from /proxy/status: {all}"))
}

/// The request headers the test backend echoed (the `headers` list of `[name, value]` pairs
/// in its JSON answer), in the order it received them, names lower-cased.
pub fn echoed_headers(echo: &serde_json::Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("no headers in the backend's echo: {echo}"))
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_ascii_lowercase(),
                h[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every value of header `name` (any case) in the backend's echo, in order.
pub fn echoed_header(echo: &serde_json::Value, name: &str) -> Vec<String> {
    let name = name.to_ascii_lowercase();
    echoed_headers(echo)
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect()
}

/// `python3 tests/ws/ws_client.py ARGS` with `env` set: the WebSocket test client (its
/// docstring lists the modes, and the variables it reads for wss:// URLs).
pub fn ws_client(args: &[&str], env: &[(&str, &str)]) -> Command {
    let script = format!("{}/tests/ws/ws_client.py", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs ws_client.py to its end: (it exited 0, the JSON result it printed, its stderr); fails
/// the test when it printed no result.
pub fn ws_run(args: &[&str], env: &[(&str, &str)]) -> (bool, serde_json::Value, String) {
    let out = ws_client(args, env)
        .output()
        .expect("python3 is needed (with the websockets package: pip install websockets)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("ws_client.py printed no result (python3 with the websockets package is needed)\nstdout: {stdout}\nstderr: {stderr}")
    });
    (out.status.success(), v, stderr)
}

/// Runs `curl` with arguments, returning (exit status, stdout).
pub fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is needed for these tests (apt-get install curl)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
pub mod docker;
pub mod proxy_container;
pub mod registry;
pub mod swarm_guard;

/// Parses exposition text with prometheus_client; fails the test if the parser rejects it.
pub fn prom_parse(text: &str) -> Vec<serde_json::Value> {
    let script = format!("{}/tests/py/prom_parse.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client is needed (pip install prometheus_client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn sample(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))["value"]
        .as_f64()
        .unwrap()
}

/// Connects to `to` from the local address `from` (any 127.0.0.0/8 address works on Linux),
/// so that a test can play many clients with addresses of their own.
pub fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::from((from, 0)))?;
    connect(&fd, &to)?;
    Ok(TcpStream::from(fd))
}
