//! What every Engine API call shares, container and swarm calls alike: its method, and its
//! response read whole.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{DockerError, from_status, from_ureq};

/// Largest response body read (a long container list, task history or log tail).
const BODY_LIMIT: u64 = 32 * 1024 * 1024;

#[derive(Clone, Copy)]
pub(super) enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A response read whole, whatever its status.
pub(super) struct ApiResponse {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) body: Vec<u8>,
}

impl ApiResponse {
    /// Reads the status, the content type and the body (up to [`BODY_LIMIT`]). `what` names
    /// the call in errors, `socket` the daemon.
    pub(super) fn read(
        mut resp: ureq::http::Response<ureq::Body>,
        socket: &Path,
        what: &str,
    ) -> Result<ApiResponse, DockerError> {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| from_ureq(socket, what, e))?;
        Ok(ApiResponse {
            status,
            content_type,
            body,
        })
    }

    /// The body decoded as JSON; `what` names the call in the error.
    pub(super) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, DockerError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| DockerError::Protocol(format!("{what}: cannot decode the answer: {e}")))
    }
}

/// A streamed answer (events, a pull) must be `200` before its body is read as a stream;
/// any other status is an error with the daemon's message, read from a short body.
pub(super) fn expect_200(resp: &mut ureq::http::Response<ureq::Body>) -> Result<(), DockerError> {
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(());
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    Err(from_status(status, &body))
}
