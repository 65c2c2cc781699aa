//! A scripted stand-in for dockerd on a Unix socket in a temp dir, for tests that need exact answers (or misbehaviour).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the fake daemon does with one request.
pub(super) enum FakeReply {
    /// Write these bytes and keep the connection for the next request.
    Send(Vec<u8>),
    /// Write these bytes and close the connection.
    SendAndClose(Vec<u8>),
    /// Say nothing until the client gives up.
    Hang,
}

type Handler = dyn Fn(&str, &[u8]) -> FakeReply + Send + Sync;

pub(super) struct FakeDaemon {
    pub socket: PathBuf,
    /// Request lines (`GET /v1.41/... HTTP/1.1`) in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// How many connections were accepted.
    pub connections: Arc<AtomicUsize>,
    dir: PathBuf,
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FakeDaemon {
    /// Serves every request with `handler(request_line, body)`.
    pub(super) fn start(
        handler: impl Fn(&str, &[u8]) -> FakeReply + Send + Sync + 'static,
    ) -> FakeDaemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wp-fake-dockerd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            let connections = connections.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (handler, requests) = (handler.clone(), requests.clone());
                    thread::spawn(move || serve(stream, &*handler, &requests));
                }
            });
        }
        FakeDaemon {
            socket,
            requests,
            connections,
            dir,
        }
    }

    pub(super) fn request_lines(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(mut s: UnixStream, handler: &Handler, requests: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    loop {
        // Read one request head, then a Content-Length body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let line = head.lines().next().unwrap_or("").to_string();
        requests.lock().unwrap().push(line.clone());
        match handler(&line, &body) {
            FakeReply::Send(bytes) => {
                if s.write_all(&bytes).is_err() {
                    return;
                }
            }
            FakeReply::SendAndClose(bytes) => {
                let _ = s.write_all(&bytes);
                return;
            }
            FakeReply::Hang => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = s.read(&mut [0u8; 1]);
                return;
            }
        }
    }
}

/// A complete response with a Content-Length body.
pub(super) fn response(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r.into_bytes()
}

/// A chunked response head followed by one chunk per part (no terminating chunk).
pub(super) fn chunked(status: &str, parts: &[&str]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for p in parts {
        r.push_str(&format!("{:x}\r\n{p}\r\n", p.len()));
    }
    r.into_bytes()
}

/// `/_ping` as dockerd answers it.
pub(super) fn ping(version: &str) -> Vec<u8> {
    response(
        "200 OK",
        &[
            &format!("Api-Version: {version}"),
            "Content-Type: text/plain; charset=utf-8",
        ],
        "OK",
    )
}
