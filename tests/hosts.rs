//! Routing by host name through the real binary: several names on one port (raw requests and
//! curl `--resolve`), exact names, `*.` names, the fall-back to services without a host, 404
//! for an unknown name, the HTTPS redirect keeping only configured names, and
//! `proxy-validate-config` listing hosts and refusing a host and path used twice.
//!
//! Needs `curl` and `openssl` (scripts/test.sh installs them).

mod support;
mod tls_support;

use std::process::Command;

use support::*;
use tls_support::*;

/// Three backends, each answering with its own name in the echo.
struct Three {
    wiki: Backend,
    apps: Backend,
    rest: Backend,
}

impl Three {
    fn start() -> Three {
        Three {
            wiki: Backend::start("wiki"),
            apps: Backend::start("apps"),
            rest: Backend::start("rest"),
        }
    }

    /// `wiki.test` (with its own `/admin`), `*.apps.test`, and host-less services under
    /// `/rest` (and `/` when `with_root`).
    fn services(&self, with_root: bool) -> String {
        let mut s = format!(
            "  - name: wiki\n    host: Wiki.Test\n    upstream: {w}\n\
             \x20 - name: wiki-admin\n    host: wiki.test\n    path: /admin\n    upstream: {w}\n    strip_prefix: false\n\
             \x20 - name: apps\n    host: \"*.apps.test\"\n    upstream: {a}\n\
             \x20 - name: rest\n    path: /rest\n    upstream: {r}\n",
            w = self.wiki.addr,
            a = self.apps.addr,
            r = self.rest.addr,
        );
        if with_root {
            s += &format!(
                "  - name: root\n    path: /\n    upstream: {}\n",
                self.rest.addr
            );
        }
        s
    }
}

/// `GET path` with `Host: host` and the token: the status and the echo's backend name and
/// target (empty when the answer is not an echo).
fn ask(p: &TestProxy, host: &str, path: &str) -> (u16, String, String) {
    let r = raw_request(
        p.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    if r.status != 200 {
        return (r.status, String::new(), r.text());
    }
    let v = r.json();
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (r.status, field("name"), field("target"))
}

#[test]
fn names_first_then_wildcards_then_services_without_a_host() {
    let b = Three::start();
    let p = TestProxy::start(&config(&b.services(true)));
    let cases = [
        // (Host header, path, backend, target it got)
        ("wiki.test", "/page?x=1", "wiki", "/page?x=1"),
        ("WIKI.test.:8080", "/", "wiki", "/"),
        ("wiki.test", "/admin/users", "wiki", "/admin/users"),
        ("blog.apps.test", "/x", "apps", "/x"),
        ("shop.apps.test", "/rest/y", "apps", "/rest/y"),
        ("a.b.apps.test", "/x", "rest", "/x"),
        ("apps.test", "/x", "rest", "/x"),
        ("unknown.example", "/rest/z", "rest", "/z"),
        ("127.0.0.1", "/", "rest", "/"),
    ];
    for (host, path, backend, target) in cases {
        let (status, name, got) = ask(&p, host, path);
        assert_eq!(
            (status, name.as_str(), got.as_str()),
            (200, backend, target),
            "Host: {host}, {path}\n{}",
            p.proc.log()
        );
    }
    let wiki = service_status(p.addr, "wiki");
    assert_eq!(wiki["host"], "wiki.test", "{wiki}");
    assert_eq!(
        service_status(p.addr, "rest")["host"],
        serde_json::Value::Null
    );
    // The absolute-form authority takes the place of Host.
    let r = raw_request(
        p.addr,
        &format!(
            "GET http://x.apps.test/q HTTP/1.1\r\nHost: wiki.test\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.json()["name"], "apps", "{}", r.text());
    // curl sends the name it was given, resolved to the proxy's address.
    let port = p.addr.port();
    for (name, backend) in [("wiki.test", "wiki"), ("docs.apps.test", "apps")] {
        let (code, out) = curl(&[
            "-sf",
            "--resolve",
            &format!("{name}:{port}:127.0.0.1"),
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("http://{name}:{port}/from-curl"),
        ]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&format!("\"name\":\"{backend}\"")),
            "{name}: {out}"
        );
    }
}

#[test]
fn an_unknown_name_without_a_host_less_service_is_404() {
    let b = Three::start();
    let p = TestProxy::start(&config(&b.services(false)));
    let (status, _, body) = ask(&p, "unknown.example", "/x");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no service for host unknown.example and path /x"),
        "{body}"
    );
    assert_eq!(ask(&p, "wiki.test", "/x").1, "wiki");
    assert_eq!(ask(&p, "unknown.example", "/rest/x").1, "rest");
    // Own endpoints answer on any name.
    let r = raw_request(
        p.addr,
        "GET /proxy/healthz HTTP/1.1\r\nHost: unknown.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn the_https_redirect_keeps_a_configured_name_and_ignores_others() {
    let dir = TempDir::new("hosts-redirect");
    let pki = Pki::new(dir.path());
    let leaf = pki.leaf("ec", KeyKind::Ecdsa, "main.test", "E7");
    let b = Three::start();
    let yaml = tls_config(
        "main.test",
        free_port(),
        &leaf.fullchain,
        &leaf.key,
        &dir.path().join("webroot"),
        "",
        &b.services(true),
    );
    let p = start_proxy(dir.path(), &yaml, &[], &[]);
    let port = p.https.expect("an HTTPS listener").port();
    let location = |host: &str| {
        let r = raw_request(
            p.http,
            &format!("GET /a?b=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 308, "{host}: {}", r.head);
        r.header("location").unwrap_or_default().to_string()
    };
    let to = |name: &str| format!("https://{name}:{port}/a?b=1");
    assert_eq!(location("wiki.test"), to("wiki.test"));
    assert_eq!(location("Wiki.Test:80"), to("wiki.test"));
    assert_eq!(location("news.apps.test"), to("news.apps.test"));
    assert_eq!(location("main.test"), to("main.test"));
    assert_eq!(
        location("evil.example"),
        to("main.test"),
        "a name no service has"
    );
    assert_eq!(location("a.b.apps.test"), to("main.test"), "one label only");
    assert_eq!(location("bad/name"), to("main.test"));
}

#[test]
fn validate_config_lists_hosts_and_refuses_a_host_and_path_used_twice() {
    let b = Three::start();
    let dir = TempDir::new("hosts-validate");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, config(&b.services(true))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-validate-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text
        .lines()
        .find(|l| l.starts_with("NAME"))
        .expect("a table");
    assert!(header.contains("HOST"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("apps ") && l.contains("*.apps.test")),
        "{text}"
    );
    let twice = dir.path().join("twice.yaml");
    let services = b.services(false)
        + &format!(
            "  - name: wiki2\n    host: WIKI.test\n    path: /\n    upstream: {}\n",
            b.wiki.addr
        );
    std::fs::write(&twice, config(&services)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-validate-config", "--config"])
        .arg(&twice)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "path \"/\" on host wiki.test of service \"wiki2\" is already used by service \"wiki\""
        ),
        "{err}"
    );
}
