//! TLS configuration checks; `certs` holds throwaway certificates for the unit tests.

pub(crate) mod certs;

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use crate::tls::stream::TlsStream;

/// Why a handshake failed.
#[derive(Debug)]
pub(crate) struct HandshakeError(pub io::Error);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS handshake failed: {}", self.0)
    }
}

/// Runs the server handshake on the calling thread, all of it within `timeout` (the proxy
/// drives handshakes from the poller, see `tls::waiting`).
pub(crate) fn handshake(
    tcp: Arc<TcpStream>,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<TlsStream, HandshakeError> {
    let mut conn =
        ServerConnection::new(config).map_err(|e| HandshakeError(io::Error::other(e)))?;
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("not finished within {} s", timeout.as_secs()),
        )
    };
    let result = (|| -> io::Result<()> {
        tcp.set_write_timeout(Some(timeout))?;
        while conn.is_handshaking() {
            while conn.wants_write() {
                conn.write_tls(&mut &*tcp)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            tcp.set_read_timeout(Some(left))?;
            match conn.read_tls(&mut &*tcp) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection",
                    ));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the client why (rustls queued an alert), then give up.
                let _ = conn.write_tls(&mut &*tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // TLS 1.3 session tickets follow the handshake: send them now.
        while conn.wants_write() {
            conn.write_tls(&mut &*tcp)?;
        }
        Ok(())
    })();
    result.map_err(HandshakeError)?;
    Ok(TlsStream::from_parts(tcp, (conn, Vec::new())))
}

use crate::tls::*;

fn global(extra: &str) -> crate::config::Config {
    config(
        extra,
        "  - name: app\n    path: /\n    upstream: 127.0.0.1:9\n",
    )
}

fn config(extra: &str, services: &str) -> crate::config::Config {
    let text = format!(
        "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n{extra}services:\n{services}"
    );
    crate::config::parse(&text, "test.yaml", &|_| None).unwrap()
}

#[test]
fn missing_files_without_certbot_are_worth_a_warning() {
    let d = std::env::temp_dir().join(format!("wakeproxy-tlswarn-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("cert.pem"), "x").unwrap();
    let files = format!(
        "  tls_certfile: {}\n  tls_keyfile: {}\n",
        d.join("cert.pem").display(),
        d.join("key.pem").display()
    );
    let w = config_warnings(&global(&files));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("key.pem does not exist and auto_certbot is off"),
        "{w:?}"
    );
    let with_certbot = format!("{files}  auto_certbot: true\n  email: ops@example.com\n");
    assert!(config_warnings(&global(&with_certbot)).is_empty());
    assert!(config_warnings(&global("")).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn listed_certificates_and_wildcard_hosts_are_worth_a_warning() {
    let d = std::env::temp_dir().join(format!("wakeproxy-tlswarn2-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("a.pem"), "x").unwrap();
    let listed = format!(
        "  tls_certificates:\n    - certfile: {a}\n      keyfile: {a}\n    - certfile: {b}\n      keyfile: {k}\n",
        a = d.join("a.pem").display(),
        b = d.join("b.pem").display(),
        k = d.join("b.key").display()
    );
    let w = config_warnings(&global(&listed));
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].ends_with("b.pem does not exist: tls_certificates[1] is served once it appears"));
    assert!(w[1].contains("b.key does not exist"), "{w:?}");
    let services = "  - name: wild\n    host: \"*.apps.example.com\"\n    upstream: 127.0.0.1:9\n  - name: app\n    host: app.example.com\n    upstream: 127.0.0.1:9\n";
    let certbot = "  auto_certbot: true\n  email: ops@example.com\n";
    let w = config_warnings(&config(certbot, services));
    assert_eq!(
        w,
        [certbot::wildcard_warning("wild", "*.apps.example.com")],
        "exact hosts are fine"
    );
    assert!(w[0].contains("list one in tls_certificates"));
    assert!(config_warnings(&config("", services)).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}
