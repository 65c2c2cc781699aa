//! [`Docker`]: the typed calls wakeproxy makes to the Engine API, with version negotiation and status mapping.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::Agent;

use super::encode::{ApiVersion, filters, image_ref, object_name, query};
use super::error::{DockerError, daemon_message, from_status, from_ureq};
use super::events::EventStream;
use super::logs::demux_to_string;
use super::request::{ApiResponse, Method, expect_200};
use super::transport::{agent, socket_from_docker_host};
use super::types::{
    ContainerInfo, ContainerSummary, ImageInfo, RawCreated, RawImage, RawInspect, RawNetwork,
    RawSummary,
};

/// The oldest Engine API we talk to (Docker 20.10).
const MIN_API: &str = "1.41";
/// The newest Engine API we have checked our calls against; newer daemons are spoken to in it.
const MAX_API: &str = "1.45";
/// The default budget of an ordinary call (not the event stream).
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The actions wakeproxy follows on the event stream.
const EVENT_ACTIONS: &[&str] = &[
    "create",
    "start",
    "die",
    "stop",
    "kill",
    "destroy",
    "oom",
    "health_status",
];

/// A client for the Docker Engine API over a Unix socket.
///
/// Cheap to clone; clones share the connection pool and the negotiated version. Every call
/// blocks. Calls made before [`Docker::negotiate`] negotiate first.
#[derive(Clone)]
pub struct Docker {
    socket: PathBuf,
    timeout: Duration,
    version: Arc<RwLock<Option<ApiVersion>>>,
    /// For ordinary calls, with a global timeout. The event stream gets its own agent.
    agent: Agent,
}

impl fmt::Debug for Docker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Docker")
            .field("socket", &self.socket)
            .field("timeout", &self.timeout)
            .field("version", &self.api_version())
            .finish_non_exhaustive()
    }
}

fn min_api() -> ApiVersion {
    ApiVersion::parse(MIN_API).expect("MIN_API is a valid version")
}

fn max_api() -> ApiVersion {
    ApiVersion::parse(MAX_API).expect("MAX_API is a valid version")
}

/// The version to speak to a daemon that reports `daemon`: `min(daemon, MAX_API)`, or `TooOld`.
fn choose_version(daemon: &str) -> Result<ApiVersion, DockerError> {
    let v = ApiVersion::parse(daemon).ok_or_else(|| {
        DockerError::Protocol(format!("/_ping gave an unreadable API-Version {daemon:?}"))
    })?;
    if v < min_api() {
        return Err(DockerError::TooOld {
            daemon: v.to_string(),
            minimum: MIN_API.to_string(),
        });
    }
    Ok(v.min(max_api()))
}

impl Docker {
    /// A client for the daemon at `socket`. Does no I/O.
    pub fn new(socket: PathBuf) -> Docker {
        Docker {
            agent: agent(&socket, Some(DEFAULT_TIMEOUT), DEFAULT_TIMEOUT),
            socket,
            timeout: DEFAULT_TIMEOUT,
            version: Arc::new(RwLock::new(None)),
        }
    }

    /// A client for the socket named by `DOCKER_HOST` (`unix:///path`), or
    /// `/var/run/docker.sock`. Fails if `DOCKER_HOST` uses another scheme. Does no I/O.
    pub fn from_env() -> Result<Docker, DockerError> {
        let host = std::env::var("DOCKER_HOST").ok();
        Ok(Docker::new(socket_from_docker_host(host.as_deref())?))
    }

    /// The same client with another budget for ordinary calls (default 30 s). `stop` adds its
    /// grace period on top; the event stream has no overall budget.
    pub fn with_timeout(mut self, timeout: Duration) -> Docker {
        self.agent = agent(&self.socket, Some(timeout), timeout);
        self.timeout = timeout;
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The negotiated API version, if [`Docker::negotiate`] has run.
    pub fn api_version(&self) -> Option<String> {
        self.read_version().map(|v| v.to_string())
    }

    fn read_version(&self) -> Option<ApiVersion> {
        *self.version.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /_ping`: reads the daemon's `API-Version` and settles on `min(that, MAX_API)`;
    /// below `MIN_API` it is [`DockerError::TooOld`]. The version is used as the `/v1.xx/`
    /// prefix of later calls. Call again after the daemon restarts.
    pub fn negotiate(&self) -> Result<String, DockerError> {
        let what = "GET /_ping";
        let mut resp = self
            .agent
            .get("http://docker/_ping")
            .call()
            .map_err(|e| from_ureq(&self.socket, what, e))?;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get("api-version")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .map_err(|e| from_ureq(&self.socket, what, e))?;
        if status != 200 {
            return Err(DockerError::Api {
                status,
                message: daemon_message(status, &body),
            });
        }
        let header = header.ok_or_else(|| {
            DockerError::Protocol(format!(
                "{what} answered without an API-Version header (is {} a Docker daemon?)",
                self.socket.display()
            ))
        })?;
        let v = choose_version(&header)?;
        *self.version.write().unwrap_or_else(PoisonError::into_inner) = Some(v);
        log::debug!("docker: daemon API {header}, speaking {v}");
        Ok(v.to_string())
    }

    /// The agent of ordinary calls.
    pub(super) fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The budget of ordinary calls (a long call's connect and response head keep it).
    pub(super) fn call_timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) fn versioned_url(&self, path_and_query: &str) -> Result<String, DockerError> {
        let v = match self.read_version() {
            Some(v) => v,
            None => {
                self.negotiate()?;
                self.read_version().unwrap_or_else(min_api)
            }
        };
        Ok(format!("http://docker/v{v}{path_and_query}"))
    }

    /// Sends one request and reads the whole answer, whatever its status.
    fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<ApiResponse, DockerError> {
        self.call_with(&self.agent, method, path_and_query, body, timeout)
    }

    /// As `call`, through `agent`: the swarm calls have their own, with their own budget.
    /// `timeout` replaces the agent's budget for this call (GET and POST).
    pub(super) fn call_with(
        &self,
        agent: &Agent,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<ApiResponse, DockerError> {
        let url = self.versioned_url(path_and_query)?;
        // The path without the query, for messages (filters make the query long).
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        let what = format!("{} {path}", method.as_str());
        let sent = match (method, body) {
            (Method::Get, _) => match timeout {
                Some(t) => agent
                    .get(&url)
                    .config()
                    .timeout_global(Some(t))
                    .build()
                    .call(),
                None => agent.get(&url).call(),
            },
            (Method::Delete, _) => agent.delete(&url).call(),
            (Method::Post, body) => {
                let req = match timeout {
                    Some(t) => agent.post(&url).config().timeout_global(Some(t)).build(),
                    None => agent.post(&url),
                };
                match body {
                    Some(json) => req.send_json(json),
                    None => req.send_empty(),
                }
            }
        };
        let resp = sent.map_err(|e| from_ureq(&self.socket, &what, e))?;
        let answer = ApiResponse::read(resp, &self.socket, &what)?;
        log::trace!("docker: {what} -> {}", answer.status);
        Ok(answer)
    }

    /// Containers carrying `label` (`key=value`, or just `key` for presence; empty for all).
    /// `all` includes stopped ones.
    pub fn list_containers(
        &self,
        label: &str,
        all: bool,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let labels: &[&str] = if label.is_empty() { &[] } else { &[label] };
        let f = filters(&[("label", labels)]);
        let q = query(&[("all", if all { "true" } else { "false" }), ("filters", &f)]);
        let a = self.call(Method::Get, &format!("/containers/json{q}"), None, None)?;
        match a.status {
            200 => Ok(a
                .json::<Vec<RawSummary>>("GET /containers/json")?
                .into_iter()
                .map(ContainerSummary::from)
                .collect()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Inspects a container; `None` if there is no such container.
    pub fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, DockerError> {
        let id = object_name("container id or name", id_or_name)?;
        let path = format!("/containers/{id}/json");
        let a = self.call(Method::Get, &path, None, None)?;
        match a.status {
            200 => Ok(Some(a.json::<RawInspect>(&format!("GET {path}"))?.into())),
            404 => Ok(None),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Inspects a local image; `None` if it is not there (nothing is ever pulled).
    pub fn image_inspect(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        let image = image_ref(image)?;
        let path = format!("/images/{image}/json");
        let a = self.call(Method::Get, &path, None, None)?;
        match a.status {
            200 => Ok(Some(a.json::<RawImage>(&format!("GET {path}"))?.into())),
            404 => Ok(None),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Creates a container named `name` from a create body (`Image`, `Env`, `Labels`,
    /// `HostConfig`, ...) and returns its id. `Conflict` if the name is taken, `NotFound` if
    /// the image is not there, both with the daemon's message.
    pub fn create(&self, name: &str, body: &serde_json::Value) -> Result<String, DockerError> {
        let name = object_name("container name", name)?;
        let q = query(&[("name", name)]);
        let a = self.call(
            Method::Post,
            &format!("/containers/create{q}"),
            Some(body),
            None,
        )?;
        match a.status {
            200 | 201 => {
                let created: RawCreated = a.json("POST /containers/create")?;
                for w in created.warnings.unwrap_or_default() {
                    log::warn!("docker: creating {name}: {w}");
                }
                if created.id.is_empty() {
                    return Err(DockerError::Protocol(
                        "POST /containers/create answered without an Id".into(),
                    ));
                }
                Ok(created.id)
            }
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Starts a container; already running (304) is fine.
    pub fn start(&self, id: &str) -> Result<(), DockerError> {
        let id = object_name("container id or name", id)?;
        let a = self.call(Method::Post, &format!("/containers/{id}/start"), None, None)?;
        match a.status {
            204 | 304 | 200 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Stops a container (SIGTERM, then SIGKILL after `timeout_secs`, or the container's own
    /// StopTimeout when `None`); already stopped (304) is fine, a missing one is `NotFound`.
    /// The call's budget is the client timeout plus the grace period (plus 60 s when `None`).
    pub fn stop(&self, id: &str, timeout_secs: Option<u64>) -> Result<(), DockerError> {
        let id = object_name("container id or name", id)?;
        let t = timeout_secs.map(|t| t.to_string());
        let q = match &t {
            Some(t) => query(&[("t", t)]),
            None => String::new(),
        };
        let budget = self.timeout + Duration::from_secs(timeout_secs.unwrap_or(60));
        let a = self.call(
            Method::Post,
            &format!("/containers/{id}/stop{q}"),
            None,
            Some(budget),
        )?;
        match a.status {
            204 | 304 | 200 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Sends SIGKILL. A container that is not running is `Conflict`, a missing one `NotFound`.
    pub fn kill(&self, id: &str) -> Result<(), DockerError> {
        let id = object_name("container id or name", id)?;
        let path = format!("/containers/{id}/kill{}", query(&[("signal", "SIGKILL")]));
        let a = self.call(Method::Post, &path, None, None)?;
        match a.status {
            204 | 200 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Removes a container and its anonymous volumes; `force` kills it first if running.
    /// Already gone (404) is fine; running without `force` is `Conflict`.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), DockerError> {
        let id = object_name("container id or name", id)?;
        let q = query(&[
            ("force", if force { "true" } else { "false" }),
            ("v", "true"),
        ]);
        let a = self.call(Method::Delete, &format!("/containers/{id}{q}"), None, None)?;
        match a.status {
            204 | 200 | 404 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// The last `n` lines of the container's stdout and stderr, interleaved as written,
    /// demultiplexed when the container has no TTY, invalid UTF-8 replaced.
    pub fn logs_tail(&self, id: &str, n: usize) -> Result<String, DockerError> {
        let id = object_name("container id or name", id)?;
        let tail = n.to_string();
        let q = query(&[("stdout", "true"), ("stderr", "true"), ("tail", &tail)]);
        let a = self.call(
            Method::Get,
            &format!("/containers/{id}/logs{q}"),
            None,
            None,
        )?;
        match a.status {
            200 => {
                let multiplexed = a.content_type.contains("multiplexed");
                Ok(demux_to_string(&a.body, multiplexed))
            }
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Inspects a network by exact name; `None` if there is none by that name. (The daemon
    /// also resolves id prefixes; a network found that way under another name is not ours.)
    fn find_network(&self, name: &str) -> Result<Option<RawNetwork>, DockerError> {
        let name = object_name("network name", name)?;
        let path = format!("/networks/{name}");
        let a = self.call(Method::Get, &path, None, None)?;
        match a.status {
            200 => {
                let net: RawNetwork = a.json(&format!("GET {path}"))?;
                Ok((net.name == name || net.id == name).then_some(net))
            }
            404 => Ok(None),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Whether a network called `name` exists.
    pub fn network_exists(&self, name: &str) -> Result<bool, DockerError> {
        Ok(self.find_network(name)?.is_some())
    }

    /// Creates a bridge network with these labels; one that already exists (409) is fine.
    pub fn create_network(&self, name: &str, labels: &[(&str, &str)]) -> Result<(), DockerError> {
        let name = object_name("network name", name)?;
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let body = serde_json::json!({
            "Name": name,
            "Driver": "bridge",
            "Labels": labels,
            // Before API 1.44 duplicates are allowed unless asked; later it is ignored.
            "CheckDuplicate": true,
        });
        let a = self.call(Method::Post, "/networks/create", Some(&body), None)?;
        match a.status {
            200 | 201 | 409 => Ok(()),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Removes the network called `name`; already gone is fine. Containers still attached
    /// give `Conflict` (the daemon's 403 "has active endpoints").
    pub fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        // Delete by the id found under this exact name, never by an id prefix.
        let Some(net) = self.find_network(name)? else {
            return Ok(());
        };
        let id = object_name("network id", &net.id)?;
        let a = self.call(Method::Delete, &format!("/networks/{id}"), None, None)?;
        match a.status {
            204 | 200 | 404 => Ok(()),
            403 | 409 => Err(DockerError::Conflict(daemon_message(a.status, &a.body))),
            s => Err(from_status(s, &a.body)),
        }
    }

    /// Follows container events for containers carrying `label` (`key=value`): start, die,
    /// stop, kill, destroy, oom and health_status, from now on. The stream has its own
    /// connection without an overall timeout and ends when the daemon goes away.
    pub fn events(&self, label: &str) -> Result<EventStream, DockerError> {
        let labels: &[&str] = if label.is_empty() { &[] } else { &[label] };
        let f = filters(&[
            ("type", &["container"]),
            ("label", labels),
            ("event", EVENT_ACTIONS),
        ]);
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let url = self.versioned_url(&format!(
            "/events{}",
            query(&[("since", &since), ("filters", &f)])
        ))?;
        // A fresh agent per stream, so EventStreamCloser can shut it down alone.
        let events_agent = agent(&self.socket, None, self.timeout);
        let mut resp = events_agent
            .get(&url)
            .call()
            .map_err(|e| from_ureq(&self.socket, "GET /events", e))?;
        expect_200(&mut resp)?;
        Ok(EventStream::new(
            resp.into_body(),
            events_agent,
            self.socket.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_choice() {
        assert_eq!(choose_version("1.41").unwrap().to_string(), "1.41");
        assert_eq!(choose_version("1.43").unwrap().to_string(), "1.43");
        assert_eq!(choose_version("1.52").unwrap().to_string(), "1.45");
        match choose_version("1.40") {
            Err(DockerError::TooOld { daemon, minimum }) => {
                assert_eq!((daemon.as_str(), minimum.as_str()), ("1.40", "1.41"))
            }
            other => panic!("{other:?}"),
        }
        // "1.9" is older than "1.41", not newer.
        assert!(matches!(
            choose_version("1.9"),
            Err(DockerError::TooOld { .. })
        ));
        assert!(matches!(choose_version("x"), Err(DockerError::Protocol(_))));
    }

    #[test]
    fn new_does_no_io() {
        let d = Docker::new(PathBuf::from("/nonexistent/docker.sock"));
        assert_eq!(d.socket(), Path::new("/nonexistent/docker.sock"));
        assert_eq!(d.api_version(), None);
    }

    #[test]
    fn unreachable_socket_is_named() {
        let d = Docker::new(PathBuf::from("/nonexistent/wakeproxy-test.sock"));
        let e = d.negotiate().unwrap_err();
        assert!(e.is_unreachable(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot reach the Docker daemon at /nonexistent/wakeproxy-test.sock: no such socket (is dockerd running?)"
        );
        // Later calls negotiate first and fail the same way.
        assert!(d.inspect("x").unwrap_err().is_unreachable());
    }

    #[test]
    fn bad_names_never_reach_the_socket() {
        let d = Docker::new(PathBuf::from("/nonexistent/wakeproxy-test.sock"));
        for bad in ["../x", "a/b", "a?b", ""] {
            assert!(matches!(
                d.inspect(bad),
                Err(DockerError::Api { status: 400, .. })
            ));
            assert!(matches!(
                d.remove(bad, true),
                Err(DockerError::Api { status: 400, .. })
            ));
        }
        assert!(matches!(
            d.image_inspect("a/../b"),
            Err(DockerError::Api { status: 400, .. })
        ));
    }

    #[test]
    fn client_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Docker>();
        fn assert_send<T: Send>() {}
        assert_send::<EventStream>();
    }
}
