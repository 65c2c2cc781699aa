//! Browser access with a real browser: a headless Chromium (Debian's
//! `chromium` package) logs in through the form, loads a page through wakeproxy and opens a
//! WebSocket from it, the session cookie being its only credential.
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
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "chromium not found: apt-get install chromium";

struct Outcome {
    success: bool,
    json: serde_json::Value,
    stdout: String,
    stderr: String,
}

/// Runs `browser_check.py PROXY_URL TOKEN` with a deadline; on timeout it gets SIGTERM (so it
/// removes Chromium and its profile), then SIGKILL.
fn browser_check(proxy_url: &str) -> Outcome {
    let script = format!("{}/tests/py/browser_check.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(proxy_url)
        .arg(TOKEN)
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
    let r = browser_check(&p.url(""));
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

    // The form, and a wrong token that gets the form again without a cookie.
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
