//! Asking a proxy whether it is up, for `proxy-daemon` and `healthcheck`: where it answers
//! (`listen_http`, or for port 0 the address its log printed), and `GET /proxy/healthz`,
//! whose answer tells which start of the proxy it comes from when `proxy-daemon start` gave
//! that start a nonce (so another process answering on the port is never taken for it).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Probe;
use crate::endpoints::START_HEADER;
use crate::http::head::parse_response;

/// The variable `proxy-daemon start` passes the nonce of one start in.
pub(super) const START_NONCE_ENV: &str = "WAKEPROXY_START_NONCE";

/// Longest accepted nonce (it goes into a header).
const MAX_NONCE: usize = 64;

/// A 200 answer of `/proxy/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Healthy {
    /// The nonce the answering proxy was started with, if any.
    pub nonce: Option<String>,
}

/// Where the proxy of `probe` answers: the configured port, or (for port 0) the last
/// `listening on http://` line of `log` after byte `from`. An unspecified address is asked
/// on loopback.
pub(super) fn health_addr(probe: &Probe, log: &Path, from: u64) -> Option<SocketAddr> {
    let addr = if probe.listen_http != 0 {
        SocketAddr::new(probe.listen_address, probe.listen_http)
    } else {
        let mut f = fs::File::open(log).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        logged_addr(&text)?
    };
    Some(if addr.ip().is_unspecified() {
        let loopback: IpAddr = if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    })
}

/// The address of the last `listening on http://<addr>` line of a log.
fn logged_addr(text: &str) -> Option<SocketAddr> {
    const MARK: &str = "listening on http://";
    let line = text.lines().rev().find(|l| l.contains(MARK))?;
    let rest = &line[line.find(MARK)? + MARK.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// `GET /proxy/healthz` at `addr`: `Some` for a 200 answer.
pub(super) fn healthz(addr: SocketAddr) -> Option<Healthy> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /proxy/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    parse_healthz(&buf[..n])
}

/// Reads a `/proxy/healthz` answer: `Some` for a complete 200 head.
pub(super) fn parse_healthz(bytes: &[u8]) -> Option<Healthy> {
    let (_, head) = parse_response(bytes).ok()??;
    if head.status != 200 {
        return None;
    }
    let nonce = head
        .headers
        .iter()
        .find(|h| h.is(START_HEADER))
        .map(|h| h.value_str().to_string());
    Some(Healthy { nonce })
}

/// A nonce for one start: this process's id and the time, unique enough to tell two starts
/// (and two processes) apart. Not a secret: anyone may read it from `/proxy/healthz`.
pub(super) fn new_nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{nanos:x}", std::process::id())
}

/// True for what may be sent as a nonce: 1 to 64 letters, digits and `-`.
pub(super) fn is_nonce(s: &str) -> bool {
    (1..=MAX_NONCE).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_answers_with_and_without_a_nonce() {
        let ours = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Wakeproxy-Start: 1f-abc\r\n\r\nok\n";
        assert_eq!(
            parse_healthz(ours),
            Some(Healthy {
                nonce: Some("1f-abc".into())
            })
        );
        let lower = b"HTTP/1.1 200 OK\r\nx-wakeproxy-start: 2\r\n\r\n";
        assert_eq!(parse_healthz(lower).unwrap().nonce.as_deref(), Some("2"));
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(parse_healthz(plain), Some(Healthy { nonce: None }));
    }

    #[test]
    fn anything_but_a_complete_200_is_no_answer() {
        assert_eq!(parse_healthz(b"HTTP/1.1 503 Busy\r\n\r\n"), None);
        assert_eq!(parse_healthz(b"HTTP/1.1 200 OK\r\nX-Wak"), None);
        assert_eq!(parse_healthz(b""), None);
        assert_eq!(parse_healthz(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), None);
    }

    #[test]
    fn nonces_are_fresh_and_fit_a_header() {
        let a = new_nonce();
        assert!(is_nonce(&a), "{a}");
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, new_nonce());
        assert!(!is_nonce(""));
        assert!(!is_nonce("a\r\nSet-Cookie: x"));
        assert!(!is_nonce(&"a".repeat(65)));
        assert!(is_nonce(&"a".repeat(64)));
    }

    #[test]
    fn the_port_comes_from_the_config_or_the_log() {
        let probe = |addr: &str, port| Probe {
            listen_address: addr.parse().unwrap(),
            listen_http: port,
            shutdown_timeout: Duration::from_secs(30),
        };
        let none = Path::new("/nonexistent");
        assert_eq!(
            health_addr(&probe("0.0.0.0", 8080), none, 0),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            health_addr(&probe("::", 8080), none, 0),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            health_addr(&probe("10.0.0.5", 81), none, 0),
            Some("10.0.0.5:81".parse().unwrap())
        );
        assert_eq!(health_addr(&probe("127.0.0.1", 0), none, 0), None);
        let log = "x INFO listening on http://127.0.0.1:4000\ny\nz INFO listening on http://127.0.0.1:4001 (plain)\n";
        assert_eq!(logged_addr(log), Some("127.0.0.1:4001".parse().unwrap()));
        assert_eq!(logged_addr("nothing here"), None);
    }
}
