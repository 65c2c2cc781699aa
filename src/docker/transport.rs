//! ureq over the daemon's Unix socket: a `Connector`, its `Transport`, a resolver that never does DNS, and `DOCKER_HOST`.
//!
//! This uses `ureq::unversioned`, which is outside ureq's semver promise; Cargo.toml pins
//! `ureq = "~3.5"` for that reason. Everything ureq-specific about sockets lives in this file.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};

use super::error::DockerError;

/// Where dockerd listens unless `DOCKER_HOST` says otherwise.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The socket path named by a `DOCKER_HOST` value (`None` or empty: the default socket).
///
/// Only `unix:///absolute/path` is supported; `tcp://`, `ssh://`, `npipe://` or a bare path
/// give an error that says so.
pub(super) fn socket_from_docker_host(value: Option<&str>) -> Result<PathBuf, DockerError> {
    let value = match value.map(str::trim) {
        None | Some("") => return Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(v) => v,
    };
    let unsupported = |why: String| DockerError::Unreachable {
        socket: PathBuf::from(value),
        detail: format!(
            "{why}, but wakeproxy only supports unix sockets \
             (DOCKER_HOST=unix:///path/to/docker.sock)"
        ),
    };
    match value.split_once("://") {
        Some((scheme, path)) if scheme.eq_ignore_ascii_case("unix") => {
            if path.starts_with('/') && path.len() > 1 {
                Ok(PathBuf::from(path))
            } else {
                Err(unsupported(
                    "DOCKER_HOST gives no absolute socket path".to_string(),
                ))
            }
        }
        Some((scheme, _)) => Err(unsupported(format!("DOCKER_HOST uses {scheme}://"))),
        None => Err(unsupported("DOCKER_HOST has no scheme".to_string())),
    }
}

/// Builds an agent whose every connection goes to `socket`.
///
/// `timeout` is the global per-call budget (`None`: wait for ever, for the event stream,
/// whose connect and response-head phases are still bounded by `head_timeout`).
pub(super) fn agent(socket: &Path, timeout: Option<Duration>, head_timeout: Duration) -> Agent {
    let mut config = Config::builder()
        // Error statuses come back as answers, so the calls map them with the daemon's own
        // {"message"} instead of ureq's generic error.
        .http_status_as_error(false)
        .user_agent(concat!("wakeproxy/", env!("CARGO_PKG_VERSION")))
        .max_redirects(0)
        .timeout_global(timeout);
    if timeout.is_none() {
        config = config
            .timeout_connect(Some(head_timeout))
            .timeout_send_request(Some(head_timeout))
            .timeout_recv_response(Some(head_timeout));
    }
    let connector = UnixConnector {
        path: socket.to_path_buf(),
    };
    Agent::with_parts(config.build(), connector, NoDns)
}

/// Opens a `UnixStream` to the daemon for every new connection ureq asks for; the URL's host
/// is ignored.
#[derive(Debug)]
struct UnixConnector {
    path: PathBuf,
}

impl Connector for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<UnixTransport>, ureq::Error> {
        let stream = Arc::new(SharedStream(UnixStream::connect(&self.path)?));
        let weak: Weak<dyn ShutdownHandle> = Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(weak)?;
        let config = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            read_timeout: None,
            write_timeout: None,
        }))
    }
}

/// The socket, shared with the agent so `Agent::shutdown` can interrupt a blocked read.
struct SharedStream(UnixStream);

impl ShutdownHandle for SharedStream {
    fn shutdown(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

struct UnixTransport {
    stream: Arc<SharedStream>,
    buffers: LazyBuffers,
    // What the socket is set to now, so we only make the syscall when it changes.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixTransport").finish_non_exhaustive()
    }
}

/// The time left, or an error when it has run out (ureq's own check is crate-private).
fn time_left(t: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if !t.after.is_not_happening() && t.after.is_zero() {
        return Err(ureq::Error::Timeout(t.reason));
    }
    Ok(t.not_zero().map(|d| *d))
}

fn timed_out(e: &io::Error) -> bool {
    // On Linux a socket read timeout shows up as WouldBlock, not TimedOut.
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let left = time_left(timeout)?;
        if left != self.write_timeout {
            self.stream.0.set_write_timeout(left)?;
            self.write_timeout = left;
        }
        let output = &self.buffers.output()[..amount];
        match (&self.stream.0).write_all(output) {
            Ok(()) => Ok(()),
            Err(e) if timed_out(&e) => Err(ureq::Error::Timeout(timeout.reason)),
            Err(e) => Err(e.into()),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let left = time_left(timeout)?;
        if left != self.read_timeout {
            self.stream.0.set_read_timeout(left)?;
            self.read_timeout = left;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.stream.0).read(input) {
                Ok(n) => break n,
                // No timeout: a signal must not end the event stream. With a timeout the
                // budget is coarse enough that one retry with the same value is fine.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if timed_out(&e) => return Err(ureq::Error::Timeout(timeout.reason)),
                Err(e) => return Err(e.into()),
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // UnixStream::peek is unstable: probe with a non-blocking read instead. An idle
        // keep-alive connection has nothing to read; EOF or stray bytes mean it is unusable.
        let s = &self.stream.0;
        if s.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let open = matches!((&*s).read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        open && s.set_nonblocking(false).is_ok()
    }
}

/// Hands ureq a placeholder address so the URL host (`docker`) is never looked up.
#[derive(Debug)]
struct NoDns;

impl Resolver for NoDns {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_default() {
        assert_eq!(
            socket_from_docker_host(None).unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
        assert_eq!(
            socket_from_docker_host(Some("")).unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
    }

    #[test]
    fn docker_host_unix() {
        assert_eq!(
            socket_from_docker_host(Some("unix:///run/user/1000/docker.sock")).unwrap(),
            PathBuf::from("/run/user/1000/docker.sock")
        );
        assert_eq!(
            socket_from_docker_host(Some("UNIX:///x.sock")).unwrap(),
            PathBuf::from("/x.sock")
        );
    }

    #[test]
    fn docker_host_other_schemes_are_refused() {
        for v in [
            "tcp://127.0.0.1:2375",
            "ssh://me@host",
            "npipe:////./pipe/docker",
        ] {
            let e = socket_from_docker_host(Some(v)).unwrap_err();
            let s = e.to_string();
            assert!(s.contains("only supports unix sockets"), "{s}");
            assert!(s.contains(v), "{s}");
        }
        for v in ["/var/run/docker.sock", "unix://", "unix://relative.sock"] {
            assert!(socket_from_docker_host(Some(v)).is_err(), "{v} accepted");
        }
    }
}
