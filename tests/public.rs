//! Public services (`auth: none`) through the real binary: reachable without the token, given
//! the client's own `Authorization` header and never the proxy's token or session cookie,
//! while the services next to them still need the token; the start-up log and
//! `proxy-validate-config` name them loudly.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

fn services(b: &Backend) -> String {
    format!(
        "  - name: forum\n    path: /forum\n    auth: none\n    upstream: {a}\n\
         \x20 - name: private\n    path: /\n    upstream: {a}\n",
        a = b.addr
    )
}

fn ask(p: &TestProxy, path: &str, headers: &str) -> RawResponse {
    raw_request(
        p.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: h\r\n{headers}Connection: close\r\n\r\n"),
    )
}

#[test]
fn a_public_service_needs_no_token_and_gets_the_clients_own_authorization() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config(&services(&b)));
    p.proc.wait_line(
        "service forum (/forum) is PUBLIC (auth: none)",
        Duration::from_secs(5),
    );
    assert!(
        !p.proc.log().contains("service private"),
        "{}",
        p.proc.log()
    );

    // No credential at all: the public service answers, the other one does not.
    let r = ask(&p, "/forum/topics?page=2", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/topics?page=2");
    assert_eq!(ask(&p, "/other", "").status, 401);

    // The app's own login reaches the app.
    let r = ask(&p, "/forum/me", "Authorization: Basic YWxpY2U6cHc=\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        echoed_header(&r.json(), "authorization"),
        ["Basic YWxpY2U6cHc="]
    );

    // The proxy's token (in any header form) and session cookie never do.
    for header in [
        format!("Authorization: Bearer {TOKEN}\r\n"),
        format!("Authorization: Token {TOKEN}\r\n"),
        format!("Cookie: a=1; wakeproxy_session=abc\r\nAuthorization: bearer {TOKEN}\r\n"),
    ] {
        let r = ask(&p, "/forum/x", &header);
        assert_eq!(r.status, 200, "{header}: {}", r.text());
        let echo = r.text();
        assert!(!echo.contains(TOKEN), "the token reached the app: {echo}");
        assert!(!echo.contains("wakeproxy_session"), "{echo}");
        assert!(
            echoed_header(&r.json(), "authorization").is_empty(),
            "{echo}"
        );
    }

    // A wrong token to the public service is not a guess: it is never checked.
    for _ in 0..10 {
        assert_eq!(
            ask(&p, "/forum/x", "Authorization: Bearer wrong\r\n").status,
            200
        );
    }
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(ask(&p, "/other", &auth).status, 200, "no lock-out followed");
    let status = service_status(p.addr, "forum");
    assert_eq!(status["auth"], "none", "{status}");
    assert_eq!(service_status(p.addr, "private")["auth"], "token");
}

#[test]
fn validate_config_names_public_services_and_refuses_them_an_auth_token() {
    let b = Backend::start("b");
    let dir = TempDir::new("public-validate");
    let run = |yaml: &str| {
        let path = dir.path().join("proxy.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
            .args(["proxy-validate-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = run(&config(&services(&b)));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warning: service forum (/forum) is PUBLIC (auth: none)"),
        "{text}"
    );
    let with_token = services(&b).replace(
        "auth: none\n",
        "auth: none\n    auth_token: 4f1b7d2e9a8c6b5d3e2f1a0b9c8d7e6f\n",
    );
    let (code, text) = run(&config(&with_token));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("auth: none cannot go with auth_token"),
        "{text}"
    );
    let (code, text) = run(&config(&services(&b).replace("auth: none", "auth: maybe")));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("expected token or none, found \"maybe\""),
        "{text}"
    );
}
