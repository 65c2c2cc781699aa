//! Admission under attack, on 127.0.0.0/8 only, bounded in count and time: while clients
//! without the token hold idle connections, dribble heads and login bodies, stall TLS
//! handshakes and open connections as fast as they can, a client with the token is served
//! without an error. And what an idle connection costs, plain and TLS. The figures are
//! printed; behaviour (no error, what was cut and refused, memory) is asserted, speed is not.

mod support;
mod tls_support;

use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use support::*;
use tls_support::*;

/// How long the attack lasts once every attacker is in place.
const ATTACK: Duration = Duration::from_secs(30);

/// Each test holds over 10,000 sockets in this process; two at once would pass the open
/// files limit (20,000 here), so they take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A proxy with one upstream service at `/app` and `extra` global lines, with an HTTPS port
/// whose certificate files do not exist yet: handshakes there cannot complete, and the plain
/// port serves the whole proxy meanwhile.
fn proxy(dir: &TempDir, b: &Backend, extra: &str) -> TlsProxy {
    let missing = dir.path().join("not-yet");
    let yaml = tls_config(
        "proxy.test",
        free_port(),
        &missing.join("cert.pem"),
        &missing.join("key.pem"),
        dir.path(),
        extra,
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    );
    start_proxy(dir.path(), &yaml, &[], &[])
}

/// A TLS client configuration (it never gets as far as checking a certificate).
fn client_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(cfg)
}

/// The `n`th client address of a group: 127.`group`.x.y.
fn addr(group: u8, n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, group, (n / 250) as u8, (n % 250 + 1) as u8)
}

/// Whether the proxy has closed `s` (non-blocking look).
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1024];
    let gone = loop {
        match (&*s).read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    gone
}

/// Attackers of one kind: `n` connections kept open (reopened when the proxy closes them),
/// each given `start` once and `tick` every `every`.
struct Crowd {
    name: &'static str,
    group: u8,
    per_address: usize,
    n: usize,
    to: SocketAddr,
    start: Vec<u8>,
    tick: Option<(Vec<u8>, Duration)>,
}

/// What a crowd did.
#[derive(Debug, Default)]
struct Tally {
    opened: u64,
    reopened: u64,
    refused: u64,
}

impl Crowd {
    fn open(&self, i: usize) -> Option<TcpStream> {
        let s = connect_from(addr(self.group, i / self.per_address), self.to).ok()?;
        (&s).write_all(&self.start).ok()?;
        Some(s)
    }

    /// Runs until `stop`; returns what it did.
    fn run(self, stop: Arc<AtomicBool>, ready: Arc<AtomicU64>) -> Tally {
        let mut t = Tally::default();
        let mut conns: Vec<Option<TcpStream>> = (0..self.n).map(|i| self.open(i)).collect();
        t.opened = conns.iter().flatten().count() as u64;
        ready.fetch_add(1, Ordering::SeqCst);
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let tick = self
                .tick
                .as_ref()
                .filter(|(_, every)| last_tick.elapsed() >= *every);
            for (i, c) in conns.iter_mut().enumerate() {
                if let (Some(s), Some((bytes, _))) = (c.as_ref(), tick) {
                    let _ = (&*s).write_all(bytes);
                }
                if c.as_ref().is_none_or(closed) {
                    *c = self.open(i);
                    match c {
                        Some(_) => t.reopened += 1,
                        None => t.refused += 1,
                    }
                }
            }
            if tick.is_some() {
                last_tick = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("{}: {t:?}", self.name);
        t
    }
}

fn spawn(c: Crowd, stop: &Arc<AtomicBool>, ready: &Arc<AtomicU64>) -> JoinHandle<Tally> {
    let (stop, ready) = (stop.clone(), ready.clone());
    std::thread::spawn(move || c.run(stop, ready))
}

/// The first bytes of a TLS ClientHello, as a client that stops mid-handshake sends them.
fn partial_client_hello(cfg: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("proxy.test").unwrap();
    let mut c = ClientConnection::new(cfg.clone(), name).unwrap();
    let mut hello = Vec::new();
    c.write_tls(&mut hello).unwrap();
    hello.truncate(60);
    hello
}

/// One address opening connections as fast as it can, keeping them; the proxy closes what is
/// over its cap. Returns (attempts, closed at once).
fn flood(to: SocketAddr, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut attempts, mut refused) = (0u64, 0u64);
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::SeqCst) && attempts < 50_000 {
        attempts += 1;
        match connect_from(Ipv4Addr::new(127, 9, 0, 1), to) {
            Ok(s) => held.push(s),
            Err(_) => refused += 1,
        }
        if held.len() >= 400 {
            let before = held.len();
            held.retain(|s| !closed(s));
            refused += (before - held.len()) as u64;
            if held.len() >= 400 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    (attempts, refused)
}

/// A client with the token: `rate` requests per second for `ATTACK`, on one keep-alive
/// connection or a new connection each. Returns (latencies, errors).
fn legit(to: SocketAddr, rate: u32, keep_alive: bool) -> (Vec<Duration>, Vec<String>) {
    let req = format!("GET /app/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let (mut lat, mut errors) = (Vec::new(), Vec::new());
    let mut conn: Option<BufReader<TcpStream>> = None;
    let start = Instant::now();
    for i in 0..(rate as u64 * ATTACK.as_secs()) {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let t = Instant::now();
        let result = (|| -> io::Result<u16> {
            if conn.is_none() || !keep_alive {
                let s = TcpStream::connect(to)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                conn = Some(BufReader::new(s));
            }
            let r = conn.as_mut().unwrap();
            r.get_mut().write_all(req.as_bytes())?;
            let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_response(r, false).status
            }));
            status.map_err(|_| io::Error::other("no valid answer"))
        })();
        match result {
            Ok(200) => lat.push(t.elapsed()),
            Ok(s) => errors.push(format!("request {i}: status {s}")),
            Err(e) => {
                errors.push(format!("request {i}: {e}"));
                conn = None;
            }
        }
    }
    (lat, errors)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Samples the proxy's resident memory until `stop`; returns the largest, in KiB.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(Ordering::SeqCst) {
            max = max.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(250));
        }
        max
    })
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_client_with_the_token_is_served_while_clients_without_it_attack() {
    let _turn = one_at_a_time();
    let dir = TempDir::new("attack");
    let b = Backend::start("b");
    let p = proxy(&dir, &b, "");
    let https = p.https.unwrap();
    let (stop, ready) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let healthz = b"GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let login = b"POST /proxy/login HTTP/1.1\r\nHost: h\r\nContent-Length: 200\r\n\r\n".to_vec();
    let crowd = |name, group, per_address, n, to, start, tick| Crowd {
        name,
        group,
        per_address,
        n,
        to,
        start,
        tick,
    };
    let crowds = vec![
        crowd("idle", 1, 200, 5_000, p.http, Vec::new(), None),
        crowd("idle after a request", 2, 200, 5_000, p.http, healthz, None),
        crowd(
            "slowloris",
            3,
            200,
            1_000,
            p.http,
            b"G".to_vec(),
            Some((b"E".to_vec(), Duration::from_secs(5))),
        ),
        crowd(
            "slow login bodies",
            4,
            8,
            200,
            p.http,
            login,
            Some((b"t".to_vec(), Duration::from_secs(1))),
        ),
        crowd(
            "stalled TLS handshakes",
            5,
            150,
            300,
            https,
            partial_client_hello(&client_config()),
            None,
        ),
    ];
    let n = crowds.len() as u64;
    let handles: Vec<_> = crowds
        .into_iter()
        .map(|c| spawn(c, &stop, &ready))
        .collect();
    wait_for(
        "the attackers to be in place",
        Duration::from_secs(120),
        || (ready.load(Ordering::SeqCst) == n).then_some(()),
    );
    let rss = sample_rss(p.proc.pid(), stop.clone());
    let flooder = {
        let (to, stop) = (p.http, stop.clone());
        std::thread::spawn(move || flood(to, stop))
    };
    let to = p.http;
    let fresh = std::thread::spawn(move || legit(to, 20, false));
    let (mut lat, mut errors) = legit(p.http, 200, true);
    let (lat2, errors2) = fresh.join().unwrap();
    let metrics = get(p.http, "/proxy/metrics").text();
    stop.store(true, Ordering::SeqCst);
    let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (attempts, flood_refused) = flooder.join().unwrap();
    let max_rss = rss.join().unwrap();
    lat.extend(lat2);
    errors.extend(errors2);
    lat.sort();
    report(&lat, &errors, max_rss, attempts, flood_refused, &metrics);
    assert!(
        errors.is_empty(),
        "{} errors: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(20)],
        p.proc.log()
    );
    assert_eq!(lat.len(), 220 * ATTACK.as_secs() as usize);
    assert!(max_rss < 256 * 1024, "the proxy used {max_rss} KiB");
    assert!(tallies.iter().all(|t| t.opened > 0));
    let counted = |reason: &str| metric(&metrics, reason);
    for reason in [
        "client_cap",
        "head_timeout",
        "handshake_timeout",
        "body_rate",
    ] {
        assert!(
            counted(reason) > 0.0,
            "nothing counted as {reason}:\n{metrics}"
        );
    }
    assert!(flood_refused > 0, "the flood was never refused");
}

/// The value of a `wakeproxy_connections_*_total{reason="…"}` line.
fn metric(text: &str, reason: &str) -> f64 {
    let needle = format!("{{reason=\"{reason}\"}} ");
    text.lines()
        .filter(|l| l.starts_with("wakeproxy_connections_"))
        .find_map(|l| l.split_once(&needle).map(|(_, v)| v.parse().unwrap()))
        .unwrap_or(0.0)
}

fn report(lat: &[Duration], errors: &[String], rss: u64, attempts: u64, refused: u64, m: &str) {
    eprintln!(
        "legit requests: {} ok, {} errors; latency p50 {:?} p99 {:?} max {:?}",
        lat.len(),
        errors.len(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.last().unwrap()
    );
    eprintln!(
        "proxy max RSS during the attack: {:.1} MiB",
        rss as f64 / 1024.0
    );
    eprintln!("flood from 127.9.0.1: {attempts} connections, {refused} closed by the proxy");
    for l in m
        .lines()
        .filter(|l| l.starts_with("wakeproxy_connections_") || l.starts_with("wakeproxy_workers"))
    {
        eprintln!("  {l}");
    }
}

/// Kernel memory for sockets, in bytes: the TCP buffers (`/proc/net/sockstat`) plus the slab
/// caches (socket structures), machine-wide, so both ends of every connection on it.
fn tcp_kernel_bytes() -> u64 {
    let field = |file: &str, line: &str, key: &str| -> u64 {
        let s = std::fs::read_to_string(file).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.split_whitespace().skip_while(|w| *w != key).nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let buffers = field("/proc/net/sockstat", "TCP:", "mem") * 4096;
    let slab = field("/proc/meminfo", "Slab:", "Slab:") * 1024;
    buffers + slab
}

/// Opens `n` connections with `open` (from addresses of `group`), then measures what they
/// added to the proxy's resident memory and the kernel's socket memory, per connection.
fn cost_of_idle(
    pid: u32,
    n: usize,
    open: impl Fn(usize) -> TcpStream,
) -> (f64, f64, Vec<TcpStream>) {
    std::thread::sleep(Duration::from_millis(500));
    let (rss0, kernel0) = (rss_kib(pid), tcp_kernel_bytes());
    let conns: Vec<TcpStream> = (0..n).map(open).collect();
    std::thread::sleep(Duration::from_secs(1));
    let (rss1, kernel1) = (rss_kib(pid), tcp_kernel_bytes());
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64;
    (
        per(rss0 * 1024, rss1 * 1024) / 1024.0,
        per(kernel0, kernel1) / 1024.0,
        conns,
    )
}

#[test]
fn an_idle_keep_alive_connection_costs_a_few_kib_plain_or_tls() {
    const N: usize = 10_000;
    let _turn = one_at_a_time();
    let dir = TempDir::new("idle-cost");
    let b = Backend::start("b");
    let (p, pki) = proxy_test_tls(
        dir.path(),
        "  keep_alive_timeout_busy: 600\n  max_connections_per_ip: 30000\n",
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    );
    let pid = p.proc.pid();
    let request = b"GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    let plain = |i: usize| {
        let s = connect_from(addr(6, i / 200), p.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        (&s).write_all(request).unwrap();
        let r = read_response(&mut BufReader::new(s.try_clone().unwrap()), false);
        assert_eq!(r.status, 200);
        s
    };
    let (plain_rss, plain_kernel, held) = cost_of_idle(pid, N, plain);
    let tls_cfg = trusting(&pki.root);
    let https = p.https.unwrap();
    let status = || status_over_tls(https, &tls_cfg);
    let waiting = |_: &TlsProxy| status()["connections"]["waiting"].clone();
    // (the status request's own connection is not waiting: it is on a worker)
    assert_eq!(
        waiting(&p).as_u64(),
        Some(N as u64),
        "all idle in the poller"
    );
    drop(held);
    wait_for(
        "the plain connections to close",
        Duration::from_secs(30),
        || (waiting(&p).as_u64() == Some(0)).then_some(()),
    );
    let tls = |i: usize| {
        let s = connect_from(addr(7, i / 200), https).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let name = ServerName::try_from("proxy.test").unwrap();
        let mut stream =
            rustls::StreamOwned::new(ClientConnection::new(tls_cfg.clone(), name).unwrap(), s);
        stream.write_all(request).unwrap();
        let mut got = [0u8; 512];
        let n = stream.read(&mut got).unwrap();
        assert!(got[..n].starts_with(b"HTTP/1.1 200 OK"));
        stream.sock
    };
    let (tls_rss, tls_kernel, held_tls) = cost_of_idle(pid, N, tls);
    let status = status();
    eprintln!(
        "{N} idle keep-alive connections: plain {plain_rss:.1} KiB of proxy RSS each \
         (kernel socket buffers and slab, both ends: {plain_kernel:.1} KiB), TLS {tls_rss:.1} KiB \
         (kernel: {tls_kernel:.1} KiB); waiting in the poller: {}, workers: {}",
        status["connections"]["waiting"], status["connections"]["workers"]
    );
    assert_eq!(status["connections"]["waiting"].as_u64(), Some(N as u64));
    assert!(
        plain_rss <= 8.0,
        "plain: {plain_rss:.1} KiB per idle connection"
    );
    assert!(tls_rss <= 24.0, "TLS: {tls_rss:.1} KiB per idle connection");
    drop(held_tls);
}

/// `/proxy/status` over TLS.
fn status_over_tls(https: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> serde_json::Value {
    let name = ServerName::try_from("proxy.test").unwrap();
    let s = TcpStream::connect(https).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(ClientConnection::new(cfg.clone(), name).unwrap(), s);
    let req = format!(
        "GET /proxy/status HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    let body = &text[text.find("\r\n\r\n").expect("an answer") + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}
