//! The poller's hand-offs, one turn at a time with the clock given: heads that arrive in pieces,
//! a head that completes exactly at its deadline, a keep-alive connection going idle and coming
//! back, a TLS handshake arriving byte by byte. The workers are real: a complete head is
//! answered through the pipeline (`/proxy/healthz`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use crate::base::load::Cut;
use crate::pipeline::Proxy;
use crate::tls::tests::certs::{client_config, server_config};

use super::poller::{Listener, Poller};
use super::{Hub, Server};

const HEALTHZ: &[u8] = b"GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n";

/// A poller with one listener (TLS when `tls`), driven by the test.
fn poller(tls: bool, extra: &str) -> (Poller, SocketAddr, Arc<Hub>) {
    let yaml = format!(
        "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n  head_timeout: 1\n{extra}\
         services:\n  - name: app\n    path: /\n    upstream: 127.0.0.1:9\n"
    );
    let config = crate::config::parse(&yaml, "test.yaml", &|_| None).unwrap();
    let proxy = Arc::new(Proxy::new(&config));
    let limits = config.global.limits;
    proxy.install(config, None);
    let hub = Hub::new(proxy, limits).unwrap();
    let mut server = Server::new(hub.clone());
    let addr = "127.0.0.1:0".parse().unwrap();
    let local = match tls {
        true => server.listen_tls(addr, server_config()),
        false => server.listen(addr),
    }
    .unwrap();
    let listeners: Vec<Listener> = server.listeners;
    (Poller::new(hub.clone(), listeners).unwrap(), local, hub)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Turns the poller (clock: now) until `done` says so, or fails after a while.
fn turn_until(p: &mut Poller, what: &str, mut done: impl FnMut(&mut Poller) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done(p) {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        p.turn_at(Instant::now());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reads what has come on `s` so far.
fn received(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return all;
            }
            Err(_) => return all,
        }
    }
}

/// Turns until `s` has a whole `/proxy/healthz` answer, and returns it.
fn answer(p: &mut Poller, s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    turn_until(p, "the answer", |_| {
        got.extend(received(s));
        got.ends_with(b"ok\n")
    });
    String::from_utf8(got).unwrap()
}

#[test]
fn a_head_split_across_many_reads_is_put_together() {
    let (mut p, addr, _hub) = poller(false, "");
    let mut s = connect(addr);
    for (i, b) in HEALTHZ.iter().enumerate() {
        s.write_all(&[*b]).unwrap();
        p.turn_at(Instant::now());
        if i + 1 < HEALTHZ.len() {
            assert_eq!(p.waiting(), 1, "still waiting after byte {i}");
        }
    }
    assert!(answer(&mut p, &mut s).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn a_head_completing_at_its_deadline_is_served_and_one_past_it_is_cut() {
    let (mut p, addr, hub) = poller(false, "");
    let mut on_time = connect(addr);
    let mut late = connect(addr);
    let t0 = Instant::now();
    p.turn_at(t0);
    on_time.write_all(&HEALTHZ[..1]).unwrap();
    late.write_all(&HEALTHZ[..1]).unwrap();
    turn_until(&mut p, "both first bytes", |p| {
        p.turn_at(t0);
        p.waiting() == 2
    });
    // head_timeout is 1 s from the first byte: the rest of one head arrives in the very turn
    // in which the deadline falls; the other head never completes.
    on_time.write_all(&HEALTHZ[1..]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.turn_at(t0 + Duration::from_secs(1));
    assert_eq!(
        p.waiting(),
        0,
        "the late head is cut, the other one handed on"
    );
    assert!(answer(&mut p, &mut on_time).starts_with("HTTP/1.1 200 OK\r\n"));
    let cut = hub.load.snapshot().cuts;
    assert!(cut.contains(&(Cut::Head, 1)), "{cut:?}");
    assert!(
        received(&mut late).is_empty(),
        "the cut one is closed without an answer"
    );
}

#[test]
fn a_keep_alive_connection_goes_idle_in_the_poller_and_comes_back() {
    let (mut p, addr, hub) = poller(false, "");
    let mut s = connect(addr);
    s.write_all(HEALTHZ).unwrap();
    assert!(answer(&mut p, &mut s).starts_with("HTTP/1.1 200 OK\r\n"));
    // After the grace period the worker gives the quiet connection back.
    turn_until(&mut p, "the connection to come back", |p| p.waiting() == 1);
    assert_eq!(hub.load.snapshot().parked, 1);
    s.write_all(HEALTHZ).unwrap();
    assert!(answer(&mut p, &mut s).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn a_tls_handshake_arriving_byte_by_byte_completes_and_serves() {
    let (mut p, addr, _hub) = poller(true, "");
    let mut s = connect(addr);
    let name = ServerName::try_from("test.example").unwrap();
    let mut tls = ClientConnection::new(client_config(rustls::DEFAULT_VERSIONS), name).unwrap();
    let mut sent_request = false;
    let mut plain = Vec::new();
    turn_until(&mut p, "the answer over TLS", |p| {
        if !tls.is_handshaking() && !sent_request {
            tls.writer().write_all(HEALTHZ).unwrap();
            sent_request = true;
        }
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out).unwrap();
        }
        for b in out {
            s.write_all(&[b]).unwrap();
            p.turn_at(Instant::now());
        }
        let got = received(&mut s);
        if !got.is_empty() {
            tls.read_tls(&mut &got[..]).unwrap();
            tls.process_new_packets().unwrap();
        }
        let _ = tls.reader().read_to_end(&mut plain);
        plain.ends_with(b"ok\n")
    });
    assert!(plain.starts_with(b"HTTP/1.1 200 OK\r\n"), "{plain:?}");
}

#[test]
fn over_the_cap_per_address_a_connection_is_closed_at_once() {
    let (mut p, addr, hub) = poller(false, "  max_connections_per_ip: 2\n");
    let held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    turn_until(&mut p, "two waiting", |p| p.waiting() == 2);
    let mut third = connect(addr);
    turn_until(&mut p, "the refusal", |_| {
        hub.load.snapshot().cuts.contains(&(Cut::ClientCap, 1))
    });
    assert!(received(&mut third).is_empty(), "closed without an answer");
    assert_eq!(p.waiting(), 2);
    drop(held);
}
