//! The one error type of the Docker client, and how daemon answers and transport failures map onto it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while talking to the Docker daemon.
#[derive(Debug)]
pub enum DockerError {
    /// The socket could not be used: no daemon, no permission, a dropped connection or a
    /// timeout. Also returned by [`crate::docker::Docker::from_env`] when `DOCKER_HOST` names
    /// something other than a Unix socket.
    Unreachable {
        /// The socket (or the `DOCKER_HOST` value) that was tried.
        socket: PathBuf,
        /// What happened, in lower case, with a hint where one helps.
        detail: String,
    },
    /// The daemon's API is older than the oldest version wakeproxy supports.
    TooOld {
        /// The API version the daemon reported.
        daemon: String,
        /// The oldest API version wakeproxy supports.
        minimum: String,
    },
    /// 404 from the daemon: no such container, image or network. Holds the daemon's message.
    NotFound(String),
    /// 409 from the daemon (name already in use, container not running, ...), or 403 "network
    /// has active endpoints". Holds the daemon's message.
    Conflict(String),
    /// Any other unexpected status. `message` is the daemon's `{"message"}` text. A name or id
    /// that is not safe to put in a URL path is refused here too, with status 400, before any
    /// request is sent (the daemon would answer 400 for it as well).
    Api {
        /// The HTTP status code.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The daemon answered something we could not understand (bad JSON, bad HTTP, missing header).
    Protocol(String),
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::Unreachable { socket, detail } => write!(
                f,
                "cannot reach the Docker daemon at {}: {}",
                socket.display(),
                detail
            ),
            DockerError::TooOld { daemon, minimum } => write!(
                f,
                "the Docker daemon speaks API {daemon}, but wakeproxy needs at least API {minimum} \
                 (Docker 20.10 or newer)"
            ),
            DockerError::NotFound(m) => write!(f, "docker: not found: {m}"),
            DockerError::Conflict(m) => write!(f, "docker: conflict: {m}"),
            DockerError::Api { status, message } => {
                write!(f, "docker answered {status}: {message}")
            }
            DockerError::Protocol(m) => write!(f, "unexpected answer from the Docker daemon: {m}"),
        }
    }
}

impl std::error::Error for DockerError {}

impl DockerError {
    /// The daemon's message for `NotFound`, `Conflict` and `Api`; the whole text otherwise.
    pub fn message(&self) -> String {
        match self {
            DockerError::NotFound(m) | DockerError::Conflict(m) => m.clone(),
            DockerError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the daemon could not be reached (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DockerError::Unreachable { .. })
    }

    pub(super) fn invalid_argument(message: String) -> DockerError {
        DockerError::Api {
            status: 400,
            message,
        }
    }
}

/// Describes an I/O error on the socket in lower case, with a hint for the usual causes.
pub(super) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused (is dockerd running?)".into(),
        io::ErrorKind::NotFound => "no such socket (is dockerd running?)".into(),
        io::ErrorKind::PermissionDenied => {
            "permission denied (is this user in the docker group?)".into()
        }
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            "the connection was closed by the daemon (did dockerd stop?)".into()
        }
        io::ErrorKind::UnexpectedEof => {
            "the daemon closed the connection mid-answer (did dockerd stop?)".into()
        }
        io::ErrorKind::NotConnected => "the connection was shut down".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        _ => lower_first(&e.to_string()),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Maps a ureq failure (never a status: statuses are not errors in our agents).
pub(super) fn from_ureq(socket: &std::path::Path, what: &str, e: ureq::Error) -> DockerError {
    match e {
        ureq::Error::Io(io) => DockerError::Unreachable {
            socket: socket.to_path_buf(),
            detail: describe_io(&io),
        },
        ureq::Error::Timeout(t) => DockerError::Unreachable {
            socket: socket.to_path_buf(),
            detail: format!("no answer to {what} in time ({t} timeout)"),
        },
        ureq::Error::ConnectionFailed => DockerError::Unreachable {
            socket: socket.to_path_buf(),
            detail: "connection failed".into(),
        },
        other => DockerError::Protocol(format!("{what}: {other}")),
    }
}

/// Pulls the daemon's `{"message": "..."}` out of an error body; falls back to the raw text,
/// then to the status line.
pub(super) fn daemon_message(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: Option<String>,
    }
    if let Ok(Msg { message: Some(m) }) = serde_json::from_slice::<Msg>(body)
        && !m.trim().is_empty()
    {
        return m.trim().to_string();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("HTTP status {status}");
    }
    let mut cut: String = text.chars().take(500).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The usual mapping of an unexpected status: 404 and 409 get their own variants.
pub(super) fn from_status(status: u16, body: &[u8]) -> DockerError {
    let message = daemon_message(status, body);
    match status {
        404 => DockerError::NotFound(message),
        409 => DockerError::Conflict(message),
        _ => DockerError::Api { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_from_json_body() {
        let e = from_status(404, br#"{"message":"No such image: nope:latest"}"#);
        assert!(matches!(&e, DockerError::NotFound(m) if m == "No such image: nope:latest"));
        assert_eq!(
            e.to_string(),
            "docker: not found: No such image: nope:latest"
        );
    }

    #[test]
    fn message_from_plain_or_empty_body() {
        assert_eq!(daemon_message(500, b"page not found\n"), "page not found");
        assert_eq!(daemon_message(502, b""), "HTTP status 502");
        let e = from_status(
            409,
            br#"{"message":"Conflict. The container name is in use"}"#,
        );
        assert!(matches!(e, DockerError::Conflict(_)));
        let e = from_status(500, br#"{"message":"boom"}"#);
        assert!(matches!(e, DockerError::Api { status: 500, ref message } if message == "boom"));
    }

    #[test]
    fn unreachable_display() {
        let e = DockerError::Unreachable {
            socket: "/var/run/docker.sock".into(),
            detail: describe_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach the Docker daemon at /var/run/docker.sock: connection refused (is dockerd running?)"
        );
    }

    #[test]
    fn too_old_display_names_both_versions() {
        let e = DockerError::TooOld {
            daemon: "1.40".into(),
            minimum: "1.41".into(),
        };
        let s = e.to_string();
        assert!(s.contains("1.40") && s.contains("1.41"), "{s}");
    }
}
