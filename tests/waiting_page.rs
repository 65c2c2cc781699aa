//! The waiting page against the real Docker daemon, without a browser: only a browser's page
//! load gets it (API calls and `fetch` wait for the app as before), a `loading_page` template
//! replaces it, `loading_page_after: off` turns it off, and `/proxy/waking/<service>` says how
//! the start goes (with the token, or without for a public service).
//! The browser's side (the page polling, then showing the app) is in tests/browser.rs.

mod support;

use std::time::Duration;

use support::docker::*;
use support::*;

const TEMPLATE: &str =
    "<p id=\"x\">{{service}}|{{stage}}|{{state}}|{{elapsed}}</p>{{refresh}}{{script}}";

fn slow(name: &str, path: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    path: {path}\n    image: {IMAGE}\n    start_timeout: 60\n    environment:\n      STARTUP_DELAY_MS: 4000\n      NAME: {name}\n{extra}"
    )
}

fn ask(p: &TestProxy, path: &str, headers: &str) -> RawResponse {
    raw_request(
        p.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: h\r\n{headers}Connection: close\r\n\r\n"),
    )
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

const NAVIGATE: &str = "Sec-Fetch-Mode: navigate\r\nAccept: text/html,*/*;q=0.8\r\n";

#[test]
fn only_page_loads_get_the_page_and_everything_else_waits_for_the_app() {
    let mut g = DockerGuard::new("waitpage");
    let (a, quiet, open) = (g.name("a"), g.name("quiet"), g.name("open"));
    let global = format!(
        "  connect_mode: host_port\n  docker_network: ''\n  instance: {}\n  loading_page: wait.html\n",
        g.instance
    );
    let services = slow(&a, "/a", "")
        + &slow(&quiet, "/quiet", "    loading_page_after: off\n")
        + &slow(&open, "/open", "    auth: none\n");
    let p = TestProxy::start_with_files(
        &config_with(&global, &services),
        &[("wait.html", TEMPLATE)],
        &[],
    );

    // An API call starts the service and is held until it answers.
    let addr = p.addr;
    let api = std::thread::spawn(move || {
        let r = raw_request(
            addr,
            &format!(
                "GET /a/api HTTP/1.1\r\nHost: h\r\n{}Accept: application/json\r\nConnection: close\r\n\r\n",
                bearer()
            ),
        );
        (r.status, r.text())
    });
    // A page load meanwhile gets the template, filled.
    let page = ask(&p, "/a/page", &(bearer() + NAVIGATE));
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let body = page.text();
    assert!(body.starts_with(&format!("<p id=\"x\">{a}|")), "{body}");
    assert!(body.contains("|starting|"), "{body}");
    assert!(body.contains(&format!("/proxy/waking/{a}")), "{body}");
    assert!(body.contains("http-equiv=\"refresh\""), "{body}");

    // Its progress, for the page's script: with the token only.
    let waking = ask(&p, &format!("/proxy/waking/{a}"), &bearer());
    assert_eq!(waking.status, 200, "{}", waking.text());
    assert_eq!(waking.json()["state"], "starting", "{}", waking.text());
    assert!(waking.json()["stage"].is_string(), "{}", waking.text());
    assert_eq!(ask(&p, &format!("/proxy/waking/{a}"), "").status, 401);
    assert_eq!(ask(&p, "/proxy/waking/nothing", &bearer()).status, 404);

    // A fetch() that asks for HTML is not a page load: it waits, as the API call did.
    let fetch = ask(
        &p,
        "/a/fetched",
        &(bearer() + "Sec-Fetch-Mode: cors\r\nAccept: text/html\r\n"),
    );
    assert_eq!(fetch.status, 200, "{}", fetch.text());
    assert_eq!(fetch.json()["target"], "/fetched");
    let (status, text) = api.join().unwrap();
    assert_eq!(status, 200, "{text}\n{}", p.proc.log());
    let ready = ask(&p, &format!("/proxy/waking/{a}"), &bearer());
    assert_eq!(ready.json()["state"], "ready", "{}", ready.text());
    // Once ready, a page load goes straight to the app.
    let app = ask(&p, "/a/page", &(bearer() + NAVIGATE));
    assert_eq!(app.json()["name"], a.as_str(), "{}", app.text());

    // With the page off, a page load waits for the app like anything else.
    let held = ask(&p, "/quiet/", &(bearer() + NAVIGATE));
    assert_eq!(held.status, 200, "{}", held.text());
    assert_eq!(held.json()["name"], quiet.as_str(), "{}", held.text());

    // A public service's page and progress need no token.
    let page = ask(&p, "/open/", NAVIGATE);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().starts_with(&format!("<p id=\"x\">{open}|")),
        "{}",
        page.text()
    );
    let waking = ask(&p, &format!("/proxy/waking/{open}"), "");
    assert_eq!(waking.status, 200, "{}", waking.text());
    wait_for(
        "the public service to be ready",
        Duration::from_secs(60),
        || {
            let s = ask(&p, &format!("/proxy/waking/{open}"), "").json();
            (s["state"] == "ready").then_some(())
        },
    );
    let app = ask(&p, "/open/", NAVIGATE);
    assert_eq!(app.json()["name"], open.as_str(), "{}", app.text());
}
