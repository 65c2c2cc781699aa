//! More hot keep-alive connections than workers: each gets its turn. A worker keeps a
//! connection whose next request follows at once; with every worker taken, the connections
//! waiting for one must still be served, not left until their requests time out.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// Requests each client must have had answered.
const EACH: usize = 50;
/// Hot clients, against `WORKERS` workers.
const CLIENTS: usize = 4;
const WORKERS: usize = 2;

#[test]
fn hot_connections_beyond_the_workers_each_get_their_turn() {
    let b = Backend::start("b");
    let yaml = config_with(
        &format!("  max_workers: {WORKERS}\n  worker_queue_timeout: 30\n"),
        &format!("  - name: b\n    path: /b\n    upstream: {}\n", b.addr),
    );
    let p = TestProxy::start(&yaml);
    let done: Arc<Vec<AtomicUsize>> = Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (done, addr) = (done.clone(), p.addr);
            std::thread::spawn(move || -> Result<(), String> {
                let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut r = BufReader::new(s);
                // Each client goes on, its next request sent as soon as it has an answer,
                // until every client has had its share: a client that never gets a worker
                // keeps the others hot.
                while done.iter().any(|d| d.load(Ordering::SeqCst) < EACH) {
                    if Instant::now() > deadline {
                        return Err("deadline".into());
                    }
                    let req = format!(
                        "GET /b/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                    );
                    r.get_mut()
                        .write_all(req.as_bytes())
                        .map_err(|e| e.to_string())?;
                    let resp = read_response(&mut r, false);
                    if resp.status != 200 {
                        return Err(format!("status {}: {}", resp.status, resp.text()));
                    }
                    done[i].fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let counts: Vec<_> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        let ended = c.join().unwrap();
        assert!(
            ended.is_ok(),
            "client {i}: {ended:?}; answers per client: {counts:?}\n{}",
            p.proc.log()
        );
    }
    let metrics = get(p.addr, "/proxy/metrics");
    let samples = prom_parse(&metrics.text());
    let yielded = sample(
        &samples,
        "wakeproxy_keep_alive_waits_total",
        &[("outcome", "yielded")],
    );
    assert!(
        yielded > 0.0,
        "workers let go of hot connections: {yielded}"
    );
}
