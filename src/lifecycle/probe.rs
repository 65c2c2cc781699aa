//! The HTTP readiness probe: one GET with short timeouts. A TCP connect alone proves nothing
//! (docker-proxy accepts before the app listens), so a status line must come back.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Which answers count as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Any status below 500 (a configured `health_path`).
    Below500,
    /// Any HTTP answer at all (probing `/`).
    Any,
}

/// Sends `GET path` to `addr` and reports whether the answer counts as ready.
pub(crate) fn http_ready(
    addr: &str,
    host: &str,
    path: &str,
    accept: Accept,
    timeout: Duration,
) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&sock, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wakeproxy-probe\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => n += k,
        }
    }
    status_ok(&buf[..n], accept)
}

/// Parses the status code from the start of a status line and applies `accept`.
pub(crate) fn status_ok(line: &[u8], accept: Accept) -> bool {
    if line.len() < 12 || !line.starts_with(b"HTTP/1.") {
        return false;
    }
    let Some(code) = std::str::from_utf8(&line[9..12])
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
    else {
        return false;
    };
    match accept {
        Accept::Any => (100..600).contains(&code),
        Accept::Below500 => (100..500).contains(&code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_rules() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n", Accept::Below500));
        assert!(status_ok(b"HTTP/1.1 404 Not Found", Accept::Below500));
        assert!(!status_ok(b"HTTP/1.1 503 Unavailable", Accept::Below500));
        assert!(status_ok(b"HTTP/1.1 503 Unavailable", Accept::Any));
        assert!(!status_ok(b"SSH-2.0-OpenSSH", Accept::Any));
        assert!(!status_ok(b"HTTP/1.1 2", Accept::Any));
    }

    #[test]
    fn accepted_then_reset_is_not_ready() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            drop(s); // like docker-proxy with no app behind it
        });
        assert!(!http_ready(
            &addr,
            "x",
            "/",
            Accept::Any,
            Duration::from_secs(1)
        ));
        t.join().unwrap();
    }

    #[test]
    fn real_answer_is_ready() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        assert!(http_ready(
            &addr,
            "x",
            "/health",
            Accept::Below500,
            Duration::from_secs(1)
        ));
        t.join().unwrap();
    }
}
