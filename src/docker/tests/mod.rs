//! Client behaviour against the scripted fake daemon: negotiation, paths, status mapping, timeouts, the event stream's end.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod fake_daemon;

use crate::docker::{Docker, DockerError};
use fake_daemon::{FakeDaemon, FakeReply, chunked, ping, response};

const INSPECT: &str = r#"{"Id":"abc","Name":"/x","State":{"Status":"running","Running":true}}"#;

fn docker(d: &FakeDaemon) -> Docker {
    Docker::new(d.socket.clone())
}

#[test]
fn negotiation_caps_the_version_and_prefixes_later_paths() {
    let fake = FakeDaemon::start(|line, _| {
        if line.starts_with("GET /_ping ") {
            FakeReply::Send(ping("1.52"))
        } else {
            FakeReply::Send(response("200 OK", &[], INSPECT))
        }
    });
    let d = docker(&fake);
    assert_eq!(d.negotiate().unwrap(), "1.45");
    assert_eq!(d.api_version().as_deref(), Some("1.45"));
    let info = d.inspect("x").unwrap().unwrap();
    assert_eq!((info.id.as_str(), info.running), ("abc", true));
    assert_eq!(
        fake.request_lines(),
        [
            "GET /_ping HTTP/1.1",
            "GET /v1.45/containers/x/json HTTP/1.1"
        ]
    );
    // Keep-alive: both calls used one connection.
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn too_old_and_headerless_daemons_are_refused() {
    let fake = FakeDaemon::start(|_, _| FakeReply::Send(ping("1.40")));
    match docker(&fake).negotiate() {
        Err(DockerError::TooOld { daemon, minimum }) => {
            assert_eq!((daemon.as_str(), minimum.as_str()), ("1.40", "1.41"))
        }
        other => panic!("{other:?}"),
    }
    let fake = FakeDaemon::start(|_, _| FakeReply::Send(response("200 OK", &[], "OK")));
    let e = docker(&fake).negotiate().unwrap_err();
    assert!(
        matches!(&e, DockerError::Protocol(m) if m.contains("API-Version")),
        "{e:?}"
    );
}

#[test]
fn first_call_negotiates_and_filters_are_encoded() {
    let fake = FakeDaemon::start(|line, _| {
        if line.starts_with("GET /_ping ") {
            FakeReply::Send(ping("1.41"))
        } else {
            FakeReply::Send(response(
                "200 OK",
                &[],
                r#"[{"Id":"i1","Names":["/web"],"State":"running","Labels":{"a":"b"}}]"#,
            ))
        }
    });
    let list = docker(&fake).list_containers("a=b", true).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "web");
    assert_eq!(
        fake.request_lines()[1],
        "GET /v1.41/containers/json?all=true&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D HTTP/1.1"
    );
}

#[test]
fn statuses_map_to_results() {
    let fake = FakeDaemon::start(|line, _| {
        let path = line.split(' ').nth(1).unwrap_or("");
        let msg = |status: &str, m: &str| {
            FakeReply::Send(response(status, &[], &format!(r#"{{"message":"{m}"}}"#)))
        };
        match path {
            "/_ping" => FakeReply::Send(ping("1.41")),
            "/v1.41/containers/running/start" => {
                FakeReply::Send(response("304 Not Modified", &[], ""))
            }
            "/v1.41/containers/broken/start" => msg("500 Internal Server Error", "boom"),
            "/v1.41/containers/gone/stop?t=1" => msg("404 Not Found", "No such container: gone"),
            "/v1.41/containers/gone?force=true&v=true" => {
                msg("404 Not Found", "No such container: gone")
            }
            "/v1.41/containers/busy?force=false&v=true" => msg("409 Conflict", "stop it first"),
            "/v1.41/containers/exited/kill?signal=SIGKILL" => msg("409 Conflict", "is not running"),
            "/v1.41/containers/create?name=taken" => msg("409 Conflict", "name taken"),
            "/v1.41/containers/create?name=noimage" => msg("404 Not Found", "No such image: x:y"),
            "/v1.41/containers/create?name=ok" => FakeReply::Send(response(
                "201 Created",
                &[],
                r#"{"Id":"newid","Warnings":["careful"]}"#,
            )),
            "/v1.41/containers/gone/json" => msg("404 Not Found", "No such container: gone"),
            _ => msg("418 I'm a teapot", &format!("unexpected {line}")),
        }
    });
    let d = docker(&fake);
    let body = serde_json::json!({"Image": "x:y"});
    d.start("running").unwrap();
    assert!(
        matches!(d.start("broken"), Err(DockerError::Api { status: 500, ref message }) if message == "boom")
    );
    assert!(
        matches!(d.stop("gone", Some(1)), Err(DockerError::NotFound(ref m)) if m == "No such container: gone")
    );
    d.remove("gone", true).unwrap();
    assert!(
        matches!(d.remove("busy", false), Err(DockerError::Conflict(ref m)) if m == "stop it first")
    );
    assert!(matches!(d.kill("exited"), Err(DockerError::Conflict(_))));
    assert!(
        matches!(d.create("taken", &body), Err(DockerError::Conflict(ref m)) if m == "name taken")
    );
    assert!(
        matches!(d.create("noimage", &body), Err(DockerError::NotFound(ref m)) if m == "No such image: x:y")
    );
    assert_eq!(d.create("ok", &body).unwrap(), "newid");
    assert_eq!(d.inspect("gone").unwrap(), None);
}

#[test]
fn a_silent_daemon_times_out() {
    let fake = FakeDaemon::start(|line, _| {
        if line.starts_with("GET /_ping ") {
            FakeReply::Send(ping("1.41"))
        } else {
            FakeReply::Hang
        }
    });
    let d = docker(&fake).with_timeout(Duration::from_millis(300));
    let t0 = Instant::now();
    let e = d.inspect("x").unwrap_err();
    // Before the client's default 30 s: the 300 ms budget applied.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(e.is_unreachable(), "{e:?}");
    assert!(
        e.to_string()
            .contains("no answer to GET /containers/x/json"),
        "{e}"
    );
}

#[test]
fn a_connection_closed_by_the_daemon_is_not_reused() {
    let fake = FakeDaemon::start(|line, _| {
        if line.starts_with("GET /_ping ") {
            FakeReply::SendAndClose(ping("1.41"))
        } else {
            FakeReply::Send(response("200 OK", &[], INSPECT))
        }
    });
    let d = docker(&fake);
    d.negotiate().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(d.inspect("x").unwrap().is_some());
    assert_eq!(fake.connections.load(Ordering::SeqCst), 2);
}

const START: &str = r#"{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}},"timeNano":1}"#;
const DIE: &str = r#"{"Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"name":"web","exitCode":"1"}},"timeNano":2}"#;
const NETWORK: &str = r#"{"Type":"network","Action":"connect","Actor":{"ID":"n1"}}"#;

fn events_daemon(tail: &'static str, close: bool) -> FakeDaemon {
    FakeDaemon::start(move |line, _| {
        if line.starts_with("GET /_ping ") {
            return FakeReply::Send(ping("1.41"));
        }
        assert!(line.starts_with("GET /v1.41/events?since="), "{line}");
        assert!(line.contains("filters=%7B%22"), "{line}");
        let mut bytes = chunked(
            "200 OK",
            &[
                &format!("{START}\n"),
                "garbage\n",
                &format!("{NETWORK}\n{DIE}\n"),
            ],
        );
        bytes.extend_from_slice(tail.as_bytes());
        if close {
            FakeReply::SendAndClose(bytes)
        } else {
            FakeReply::Send(bytes)
        }
    })
}

#[test]
fn events_end_cleanly_when_the_daemon_ends_the_stream() {
    let fake = events_daemon("0\r\n\r\n", true);
    let mut s = docker(&fake).events("a=b").unwrap();
    let first = s.next().unwrap().unwrap();
    assert_eq!(
        (first.action.as_str(), first.name.as_deref()),
        ("start", Some("web"))
    );
    let second = s.next().unwrap().unwrap();
    assert_eq!((second.action.as_str(), second.exit_code), ("die", Some(1)));
    assert!(s.next().is_none());
    assert!(s.next().is_none());
}

#[test]
fn events_report_an_error_once_when_the_daemon_vanishes() {
    let fake = events_daemon("", true);
    let s = docker(&fake).events("a=b").unwrap();
    let items: Vec<_> = s.collect();
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[0].is_ok() && items[1].is_ok());
    let e = items[2].as_ref().unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    assert!(e.to_string().contains("event stream broke"), "{e}");
}

#[test]
fn events_closer_interrupts_a_blocked_read() {
    let fake = events_daemon("", false);
    let mut s = docker(&fake).events("").unwrap();
    assert!(s.next().unwrap().is_ok());
    assert!(s.next().unwrap().is_ok());
    let closer = s.closer();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        closer.close();
    });
    let t0 = Instant::now();
    // Blocks (no more events) until the closer fires.
    let rest: Vec<_> = s.by_ref().collect();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the closer ended the stream"
    );
    assert!(rest.iter().all(|r| r.is_err()), "{rest:?}");
    t.join().unwrap();
}
