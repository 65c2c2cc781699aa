//! The `/events` stream: one JSON object per line, parsed into [`Event`]s as they arrive.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{DockerError, describe_io};

/// A container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `start`, `die`, `stop`, `kill`, `destroy`, `oom`, or `health_status: healthy` (the
    /// health status is part of the action).
    pub action: String,
    /// The container id.
    pub id: String,
    /// The container name (from the `name` attribute).
    pub name: Option<String>,
    /// All attributes: the container's labels, `name`, `image`, and `exitCode` on `die`.
    pub attributes: BTreeMap<String, String>,
    /// The `exitCode` attribute, parsed (on `die`).
    pub exit_code: Option<i64>,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl Event {
    /// For `health_status: healthy`, `Some("healthy")`.
    pub fn health_status(&self) -> Option<&str> {
        self.action.strip_prefix("health_status:").map(str::trim)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEvent {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: Option<RawActor>,
    // Pre-1.22 fields, still sent by 20.10: used as fallbacks.
    status: String,
    id: String,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawActor {
    #[serde(rename = "ID")]
    id: String,
    attributes: Option<BTreeMap<String, String>>,
}

/// Parses one line of the stream. `Ok(None)` for events that are not about a container.
pub(super) fn parse_event(line: &str) -> Result<Option<Event>, serde_json::Error> {
    let raw: RawEvent = serde_json::from_str(line)?;
    if !raw.kind.is_empty() && raw.kind != "container" {
        return Ok(None);
    }
    let actor = raw.actor.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let id = if actor.id.is_empty() {
        raw.id
    } else {
        actor.id
    };
    let action = if raw.action.is_empty() {
        raw.status
    } else {
        raw.action
    };
    if action.is_empty() || id.is_empty() {
        return Ok(None);
    }
    Ok(Some(Event {
        name: attributes.get("name").cloned(),
        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
        time_nano: if raw.time_nano != 0 {
            raw.time_nano
        } else {
            raw.time.saturating_mul(1_000_000_000)
        },
        attributes,
        action,
        id,
    }))
}

/// A never-ending iterator of container events.
///
/// It yields `Some(Err(Unreachable))` once and then `None` when the connection to the daemon
/// breaks, or just `None` when the daemon closes the stream (as on a clean dockerd stop).
/// Reconnect by calling [`crate::docker::Docker::events`] again (after
/// [`crate::docker::Docker::negotiate`] if the daemon restarted).
pub struct EventStream {
    reader: BufReader<ureq::BodyReader<'static>>,
    agent: ureq::Agent,
    socket: PathBuf,
    line: String,
    done: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("socket", &self.socket)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Ends an [`EventStream`] from another thread: its blocked `next()` returns at once.
#[derive(Debug, Clone)]
pub struct EventStreamCloser {
    agent: ureq::Agent,
}

impl EventStreamCloser {
    /// Closes the stream's connection. Idempotent.
    pub fn close(&self) {
        self.agent.clone().shutdown();
    }
}

impl EventStream {
    pub(super) fn new(body: ureq::Body, agent: ureq::Agent, socket: PathBuf) -> EventStream {
        EventStream {
            reader: BufReader::new(body.into_reader()),
            agent,
            socket,
            line: String::new(),
            done: false,
        }
    }

    /// A handle that ends this stream from another thread.
    pub fn closer(&self) -> EventStreamCloser {
        EventStreamCloser {
            agent: self.agent.clone(),
        }
    }
}

impl Iterator for EventStream {
    type Item = Result<Event, DockerError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.reader.read_line(&mut self.line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    let line = self.line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    match parse_event(line) {
                        Ok(Some(event)) => return Some(Ok(event)),
                        Ok(None) => {}
                        Err(e) => log::warn!(
                            "docker events: skipping a line that is not an event ({e}): {line}"
                        ),
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(DockerError::Unreachable {
                        socket: self.socket.clone(),
                        detail: format!("the event stream broke: {}", describe_io(&e)),
                    }));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn die_event() {
        let line = r#"{"status":"die","id":"0123abc","from":"wakeproxy-testbackend:latest","Type":"container","Action":"die","Actor":{"ID":"0123abc","Attributes":{"exitCode":"137","image":"wakeproxy-testbackend:latest","name":"wp-web","wakeproxy.service":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#;
        let e = parse_event(line).unwrap().unwrap();
        assert_eq!(e.action, "die");
        assert_eq!(e.id, "0123abc");
        assert_eq!(e.name.as_deref(), Some("wp-web"));
        assert_eq!(e.exit_code, Some(137));
        assert_eq!(e.attributes["wakeproxy.service"], "web");
        assert_eq!(e.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(e.health_status(), None);
    }

    #[test]
    fn health_status_event() {
        let line = r#"{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"c1","Attributes":{"name":"n"}},"time":5,"timeNano":5000000001}"#;
        let e = parse_event(line).unwrap().unwrap();
        assert_eq!(e.action, "health_status: healthy");
        assert_eq!(e.health_status(), Some("healthy"));
        assert_eq!(e.exit_code, None);
    }

    #[test]
    fn legacy_fields_and_other_types() {
        let e = parse_event(r#"{"status":"start","id":"c2","time":7}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.action.as_str(), e.id.as_str(), e.time_nano),
            ("start", "c2", 7_000_000_000)
        );
        assert!(e.attributes.is_empty() && e.name.is_none());
        let net = r#"{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{}}}"#;
        assert_eq!(parse_event(net).unwrap(), None);
        assert!(parse_event("not json").is_err());
    }
}
