//! `POST /images/create`: pulling an image from its registry. The daemon answers 200 at once
//! and then streams JSON lines (`status`, `id`, `progressDetail {current,total}`); a failure
//! can arrive inside that stream as `{"errorDetail":{"message"},"error"}`. The lines are read
//! one by one into [`PullProgress`] (pure), which says how many layers and bytes are done.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::Deserialize;

use super::client::Docker;
use super::encode::{image_ref, query};
use super::error::{DockerError, from_ureq};
use super::request::expect_200;
use super::transport::agent;

/// Why a pull failed, as the registry (through the daemon) put it, sorted for the 503 detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// No such repository, tag or digest.
    NotFound,
    /// Credentials missing or refused.
    Unauthorized,
    /// The registry could not be reached (refused, unknown host, timed out, TLS).
    Unreachable,
    /// Anything else.
    Other,
}

impl PullFailure {
    /// Sorts a daemon or registry message.
    pub fn of(message: &str) -> PullFailure {
        let m = message.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if any(&[
            "unauthorized",
            "no basic auth credentials",
            "authentication required",
            "access denied",
            "denied:",
            "may require 'docker login'",
        ]) {
            PullFailure::Unauthorized
        } else if any(&[
            "manifest unknown",
            "not found",
            "does not exist",
            "name unknown",
        ]) {
            PullFailure::NotFound
        } else if any(&[
            "connection refused",
            "no such host",
            "i/o timeout",
            "timeout",
            "dial tcp",
            "network is unreachable",
            "tls:",
            "x509",
            "server gave http response to https client",
        ]) {
            PullFailure::Unreachable
        } else {
            PullFailure::Other
        }
    }

    /// `not found`, `unauthorized`, `unreachable` or `failed`.
    pub fn word(self) -> &'static str {
        match self {
            PullFailure::NotFound => "not found",
            PullFailure::Unauthorized => "unauthorized",
            PullFailure::Unreachable => "registry unreachable",
            PullFailure::Other => "failed",
        }
    }
}

/// One layer as the stream reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Layer {
    current: u64,
    total: u64,
    done: bool,
}

/// What a pull has done so far: per layer, bytes fetched of how many, and whether it is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    layers: BTreeMap<String, Layer>,
}

/// A summary of [`PullProgress`] for status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullFigures {
    pub layers_done: usize,
    pub layers_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    status: String,
    #[serde(default)]
    id: String,
    #[serde(default, rename = "progressDetail")]
    detail: Option<Detail>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(default)]
    current: u64,
    #[serde(default)]
    total: u64,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
}

impl PullProgress {
    /// Takes one line of the stream in. `Err` with the registry's message when the line is a
    /// failure; lines that are not JSON are ignored.
    pub fn line(&mut self, raw: &[u8]) -> Result<(), String> {
        let Ok(line) = serde_json::from_slice::<Line>(raw) else {
            return Ok(());
        };
        if let Some(e) = line.error_detail.map(|d| d.message).or(line.error) {
            return Err(e);
        }
        // Layer ids are short hex digests; other lines (`Pulling from`, `Digest:`, `Status:`)
        // carry a tag or nothing there.
        if line.id.is_empty() || !line.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        let layer = self.layers.entry(line.id).or_default();
        match line.status.as_str() {
            "Pull complete" | "Already exists" => layer.done = true,
            "Download complete" => layer.current = layer.total.max(layer.current),
            "Downloading" => {
                if let Some(d) = line.detail {
                    layer.current = d.current;
                    layer.total = d.total.max(layer.total);
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn figures(&self) -> PullFigures {
        let mut f = PullFigures {
            layers_total: self.layers.len(),
            ..PullFigures::default()
        };
        for l in self.layers.values() {
            f.layers_done += usize::from(l.done);
            f.bytes_total += l.total;
            f.bytes_done += if l.done { l.total } else { l.current };
        }
        f
    }
}

/// `repo` and `tag` (or `sha256:...` digest) of an image reference, as `fromImage` and `tag`
/// want them; no tag means `latest`.
pub fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

impl Docker {
    /// Pulls `image` within `timeout`, sending `registry_auth` (an `X-Registry-Auth` value)
    /// when given, and reporting progress to `on_progress` after each line. A failure names
    /// what the registry said; the credential is never part of any error.
    pub fn pull(
        &self,
        image: &str,
        registry_auth: Option<&str>,
        timeout: Duration,
        on_progress: &mut dyn FnMut(&PullProgress),
    ) -> Result<(), DockerError> {
        let image = image_ref(image)?;
        let (repo, tag) = split_reference(image);
        let url = self.versioned_url(&format!(
            "/images/create{}",
            query(&[("fromImage", repo), ("tag", tag)])
        ))?;
        // A fresh agent: the pull's budget is its own, not the API calls' one.
        let pull_agent = agent(self.socket(), Some(timeout), self.call_timeout());
        let mut req = pull_agent.post(&url);
        if let Some(auth) = registry_auth {
            req = req.header("X-Registry-Auth", auth);
        }
        let what = "POST /images/create";
        let mut resp = req
            .send_empty()
            .map_err(|e| from_ureq(self.socket(), what, e))?;
        expect_200(&mut resp)?;
        let mut progress = PullProgress::default();
        let mut lines = BufReader::new(resp.into_body().into_reader());
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = lines
                .read_until(b'\n', &mut line)
                .map_err(|e| from_ureq(self.socket(), what, ureq::Error::Io(e)))?;
            if n == 0 {
                return Ok(());
            }
            progress.line(&line).map_err(|message| DockerError::Api {
                status: 500,
                message,
            })?;
            on_progress(&progress);
        }
    }
}

impl Docker {
    /// Asks `image`'s registry, through the daemon, whether it has the image
    /// (`GET /distribution/{name}/json`), without pulling it.
    pub fn distribution_inspect(
        &self,
        image: &str,
        registry_auth: Option<&str>,
    ) -> Result<(), DockerError> {
        let image = image_ref(image)?;
        let url = self.versioned_url(&format!("/distribution/{image}/json"))?;
        let mut req = self.agent().get(&url);
        if let Some(auth) = registry_auth {
            req = req.header("X-Registry-Auth", auth);
        }
        let what = "GET /distribution";
        let mut resp = req.call().map_err(|e| from_ureq(self.socket(), what, e))?;
        expect_200(&mut resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("nginx"), ("nginx", "latest"));
        assert_eq!(split_reference("nginx:1.25"), ("nginx", "1.25"));
        assert_eq!(
            split_reference("127.0.0.1:5000/ns/app"),
            ("127.0.0.1:5000/ns/app", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/ns/app:v2"),
            ("127.0.0.1:5000/ns/app", "v2")
        );
        assert_eq!(
            split_reference("ghcr.io/o/a@sha256:abcd"),
            ("ghcr.io/o/a", "sha256:abcd")
        );
    }

    #[test]
    fn progress_counts_layers_and_bytes() {
        let mut p = PullProgress::default();
        let lines: &[&str] = &[
            r#"{"status":"Pulling from ns/app","id":"v2"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"aaa111"}"#,
            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"bbb222"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":100,"total":1000},"id":"aaa111"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":50,"total":500},"id":"bbb222"}"#,
            "not json",
        ];
        for l in lines {
            p.line(l.as_bytes()).unwrap();
        }
        let f = p.figures();
        assert_eq!((f.layers_done, f.layers_total), (0, 2));
        assert_eq!((f.bytes_done, f.bytes_total), (150, 1500));
        p.line(br#"{"status":"Pull complete","progressDetail":{},"id":"aaa111"}"#)
            .unwrap();
        p.line(br#"{"status":"Digest: sha256:ffff"}"#).unwrap();
        let f = p.figures();
        assert_eq!((f.layers_done, f.bytes_done), (1, 1050));
    }

    #[test]
    fn a_failure_in_the_stream_is_an_error_with_the_registrys_words() {
        let mut p = PullProgress::default();
        let e = p
            .line(br#"{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}"#)
            .unwrap_err();
        assert_eq!(e, "unauthorized: authentication required");
        assert_eq!(PullFailure::of(&e), PullFailure::Unauthorized);
    }

    #[test]
    fn failures_are_sorted() {
        let cases = [
            (
                "manifest for 127.0.0.1:5000/x:latest not found: manifest unknown",
                PullFailure::NotFound,
            ),
            (
                "pull access denied for nope, repository does not exist or may require 'docker login'",
                PullFailure::Unauthorized,
            ),
            (
                "Head \"https://127.0.0.1:5000/v2/x/manifests/latest\": no basic auth credentials",
                PullFailure::Unauthorized,
            ),
            (
                "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
                PullFailure::Unreachable,
            ),
            ("something else", PullFailure::Other),
        ];
        for (m, want) in cases {
            assert_eq!(PullFailure::of(m), want, "{m}");
        }
    }
}
