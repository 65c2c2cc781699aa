//! More hot keep-alive connections than workers, plain and TLS: each gets its turn. A worker
//! keeps a connection whose next request follows at once; with every worker taken, the
//! connections waiting for one must still be served, not left until their requests time out.

mod support;
mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use support::*;
use tls_support::*;

/// Requests each client must have had answered.
const EACH: usize = 50;
/// Hot clients: twice the workers `LIMITS` allows.
const CLIENTS: usize = 4;
/// Global lines: two workers, and heads that wait for one long enough that only starvation,
/// not a busy machine, makes them time out.
const LIMITS: &str = "  max_workers: 2\n  worker_queue_timeout: 30\n";

trait Stream: Read + Write + Send {}
impl<S: Read + Write + Send> Stream for S {}

#[test]
fn plain_hot_connections_beyond_the_workers_each_get_their_turn() {
    let b = Backend::start("b");
    let yaml = config_with(
        LIMITS,
        &format!("  - name: b\n    path: /b\n    upstream: {}\n", b.addr),
    );
    let p = TestProxy::start(&yaml);
    let addr = p.addr;
    let connect = move || -> Box<dyn Stream> { Box::new(TcpStream::connect(addr).unwrap()) };
    hot_clients(Arc::new(connect), &p.proc);
    assert!(
        yielded(connect()) > 0.0,
        "workers let go of hot connections"
    );
}

#[test]
fn tls_hot_connections_beyond_the_workers_each_get_their_turn() {
    let dir = TempDir::new("fair-tls");
    let b = Backend::start("b");
    let services = format!("  - name: b\n    path: /b\n    upstream: {}\n", b.addr);
    let (p, pki) = proxy_test_tls(dir.path(), LIMITS, &services);
    let (https, cfg) = (p.https.unwrap(), trusting(&pki.root));
    let connect = move || -> Box<dyn Stream> {
        let s = TcpStream::connect(https).unwrap();
        let name = ServerName::try_from("proxy.test").unwrap();
        let c = ClientConnection::new(cfg.clone(), name).unwrap();
        Box::new(rustls::StreamOwned::new(c, s))
    };
    hot_clients(Arc::new(connect.clone()), &p.proc);
    assert!(
        yielded(connect()) > 0.0,
        "workers let go of hot connections"
    );
}

/// `CLIENTS` clients, each on its own keep-alive connection, each sending its next request as
/// soon as it has an answer, until every client has had `EACH` answers: a client that never
/// gets a worker keeps the others hot. Every answer must be a 200.
fn hot_clients(connect: Arc<dyn Fn() -> Box<dyn Stream> + Send + Sync>, proxy: &Proc) {
    let done: Arc<Vec<AtomicUsize>> = Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (done, connect) = (done.clone(), connect.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut r = BufReader::new(connect());
                let req = format!(
                    "GET /b/echo HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                );
                while done.iter().any(|d| d.load(Ordering::SeqCst) < EACH) {
                    if Instant::now() > deadline {
                        return Err("deadline".into());
                    }
                    r.get_mut()
                        .write_all(req.as_bytes())
                        .map_err(|e| e.to_string())?;
                    let (status, body) = answer(&mut r).map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!("status {status}: {body}"));
                    }
                    done[i].fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let ended = c.join().unwrap();
        let counts: Vec<_> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        assert!(
            ended.is_ok(),
            "client {i}: {ended:?}; answers per client: {counts:?}\n{}",
            proxy.log()
        );
    }
}

/// One answer with a Content-Length body: (status, body).
fn answer(r: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<(u16, String)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The proxy's count of hot connections its workers let go, from `/proxy/metrics` asked on
/// `s` (plain or TLS).
fn yielded(s: Box<dyn Stream>) -> f64 {
    let mut r = BufReader::new(s);
    let req = format!(
        "GET /proxy/metrics HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    r.get_mut().write_all(req.as_bytes()).unwrap();
    let (status, text) = answer(&mut r).unwrap();
    assert_eq!(status, 200, "{text}");
    let samples = prom_parse(&text);
    sample(
        &samples,
        "wakeproxy_keep_alive_waits_total",
        &[("outcome", "yielded")],
    )
}
