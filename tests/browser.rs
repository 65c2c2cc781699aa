//! Browser access with a real browser: a headless Chromium (Debian's `chromium` package) opens
//! a protected page, is sent to the login form, logs in and comes back to the page, opens a
//! WebSocket from it, the session cookie being its only credential; and, with containers on
//! the real Docker daemon, sees the waiting page while a slow container starts and then the
//! app without reloading, and the reason of a start that fails.
//!
//! `tests/py/browser_check.py` drives Chromium over the DevTools protocol and prints its findings
//! as JSON. Chromium only ever talks to 127.0.0.1 (the script lists the flags that make sure and
//! fails if Chromium still tries another host).
//!
//! Needs Chromium (`apt-get install -y chromium`) and python3 with the `websockets` package. A
//! missing Chromium fails this test; it is never skipped.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use support::*;

/// The script has its own deadlines (60 s overall); this one only guards against a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(200);

const INSTALL_HINT: &str = "chromium not found: apt-get install chromium";

struct Outcome {
    success: bool,
    json: serde_json::Value,
    stdout: String,
    stderr: String,
}

/// Runs `browser_check.py PROXY_URL TOKEN [EXTRA...]` with a deadline; on timeout it gets
/// SIGTERM (so it removes Chromium and its profile), then SIGKILL.
fn browser_check(proxy_url: &str, extra: &[&str]) -> Outcome {
    let script = format!("{}/tests/py/browser_check.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(proxy_url)
        .arg(TOKEN)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed (with the websockets package: pip install websockets)");
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
    .collect();

    let end = Instant::now() + SCRIPT_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end && !timed_out {
            timed_out = true;
            let _ = kill_process(Pid::from_child(&child), Signal::TERM);
            let grace = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = readers.into_iter().map(|h| h.join().unwrap());
    let (stdout, stderr) = (out.next().unwrap(), out.next().unwrap());
    assert!(
        !timed_out,
        "browser_check.py did not finish within {SCRIPT_TIMEOUT:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "browser_check.py printed no JSON result (python3 with the websockets package is needed: \
             pip install websockets)\nexit: {status}\nstdout: {stdout}\nstderr: {stderr}"
        )
    });
    Outcome {
        success: status.success(),
        json,
        stdout,
        stderr,
    }
}

#[test]
fn headless_chromium_logs_in_loads_a_page_and_opens_a_websocket() {
    let b = Backend::start("b");
    let p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n",
        b.addr
    )));
    let r = browser_check(&p.url(""), &[]);
    let v = &r.json;
    if v["error"] == INSTALL_HINT {
        panic!("{INSTALL_HINT}");
    }
    let report = || {
        format!(
            "{}\nstderr: {}\nproxy log:\n{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| r.stdout.clone()),
            r.stderr,
            p.proc.log()
        )
    };
    assert!(
        r.success && v["ok"] == true,
        "the browser check failed: {}",
        report()
    );

    // The protected page sends the browser to the form, and a wrong token gets the form
    // again without a cookie.
    assert_eq!(v["form"]["redirect_status"], 303, "{}", report());
    assert_eq!(
        v["form"]["redirect_to"],
        "/proxy/login?next=/app/wspage",
        "{}",
        report()
    );
    assert_eq!(v["form"]["status"], 200, "{}", report());
    assert_eq!(v["form"]["next"], "/app/wspage", "{}", report());
    assert_eq!(v["wrong_token"]["status"], 401, "{}", report());
    assert_eq!(v["wrong_token"]["form_again"], true, "{}", report());
    assert_eq!(v["wrong_token"]["session_cookie"], false, "{}", report());
    // The right token: 303 to the page, which loads through the proxy.
    assert_eq!(v["login"]["redirect_status"], 303, "{}", report());
    assert_eq!(v["login"]["location"], "/app/wspage", "{}", report());
    assert_eq!(v["login"]["page_status"], 200, "{}", report());
    // The page's WebSocket through the proxy, authorised by the cookie alone.
    assert_eq!(
        v["websocket"]["title"],
        "WS:hello from browser",
        "{}",
        report()
    );
    assert_eq!(v["websocket"]["handshake_status"], 101, "{}", report());
    // The cookie: HttpOnly, SameSite=Strict, not Secure over plain HTTP, not the raw token.
    assert_eq!(v["cookie"]["http_only"], true, "{}", report());
    assert_eq!(v["cookie"]["visible_to_script"], false, "{}", report());
    assert_eq!(v["cookie"]["same_site"], "Strict", "{}", report());
    assert_eq!(v["cookie"]["secure"], false, "{}", report());
    assert_eq!(v["cookie"]["value_is_token"], false, "{}", report());
    // A request from the page reaches the backend without the session cookie.
    assert_eq!(v["fetch"]["reached_backend"], true, "{}", report());
    assert_eq!(
        v["fetch"]["session_cookie_forwarded"],
        false,
        "{}",
        report()
    );
    // Chromium tried no other host, and nothing of it is left behind.
    assert_eq!(v["stray_requests"], serde_json::json!([]), "{}", report());
    assert_eq!(
        v["leftover_processes"],
        serde_json::json!([]),
        "{}",
        report()
    );
    assert_eq!(v["temp_dir_removed"], true, "{}", report());
}

#[test]
fn headless_chromium_waits_on_the_waiting_page_then_sees_the_app() {
    use support::docker::*;
    let mut g = DockerGuard::new("browser");
    let (slow, broken) = (g.name("slow"), g.name("broken"));
    let b = Backend::start("b");
    let global = format!(
        "  connect_mode: host_port\n  docker_network: ''\n  instance: {}\n",
        g.instance
    );
    let services = format!(
        "  - name: app\n    path: /app\n    upstream: {}\n\
         \x20 - name: {slow}\n    path: /slow\n    image: {IMAGE}\n    start_timeout: 60\n    environment:\n      STARTUP_DELAY_MS: 6000\n      NAME: slow-app\n\
         \x20 - name: {broken}\n    path: /broken\n    image: {IMAGE}\n    start_timeout: 60\n    environment:\n      EXIT_AT_START: 3\n",
        b.addr
    );
    let p = TestProxy::start(&config_with(&global, &services));
    let shot = format!("{}/waiting-page.png", env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::remove_file(&shot);
    let r = browser_check(
        &p.url(""),
        &[
            "--slow",
            "/slow/",
            "--failing",
            "/broken/",
            "--screenshot",
            &shot,
        ],
    );
    let v = &r.json;
    if v["error"] == INSTALL_HINT {
        panic!("{INSTALL_HINT}");
    }
    let report = || {
        format!(
            "{}\nstderr: {}\nproxy log:\n{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| r.stdout.clone()),
            r.stderr,
            p.proc.log()
        )
    };
    assert!(
        r.success && v["ok"] == true,
        "the browser check failed: {}",
        report()
    );
    let w = &v["waiting"];
    // The waiting page first: 200, never cached, naming the service and its stage.
    assert_eq!(w["status"], 200, "{}", report());
    assert_eq!(w["cache_control"], "no-store", "{}", report());
    assert_eq!(w["title"], format!("Starting {slow}"), "{}", report());
    let stages = ["creating the container", "starting", "waiting for health"];
    assert!(
        stages.contains(&w["stage"].as_str().unwrap_or_default()),
        "{}",
        report()
    );
    assert!(
        w["screenshot_bytes"].as_u64().unwrap_or(0) > 1000,
        "{}",
        report()
    );
    println!("the waiting page as Chromium showed it: {shot}");
    // Then the app, at the same URL, reached by the page itself: two documents, no more.
    assert_eq!(w["app"]["name"], "slow-app", "{}", report());
    assert_eq!(w["app"]["target"], "/", "{}", report());
    assert_eq!(w["location"], "/slow/", "{}", report());
    assert_eq!(
        w["documents"],
        serde_json::json!([200, 200]),
        "{}",
        report()
    );
    // A start that fails shows its reason: the exit code and the container's last words.
    let f = &v["failing"];
    let error = f["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("3") && error.contains("exiting at start with code 3"),
        "{}",
        report()
    );
    assert_eq!(f["stage"], "failed", "{}", report());
    assert_eq!(f["location"], "/broken/", "{}", report());
}
