//! Operations: graceful shutdown on SIGTERM, and proxy-daemon driven from a shell script.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config_with(
        "  shutdown_timeout: 20\n",
        &format!("  - name: app\n    path: /app\n    upstream: {}\n", b.addr),
    ));
    let addr = p.addr;
    // 100 slow requests in flight...
    let slow: Vec<_> = (0..100)
        .map(|i| std::thread::spawn(move || get(addr, &format!("/app/sleep?ms=2000&i={i}"))))
        .collect();
    // ...and a slow upload, written over about 2 s.
    let upload = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let total = 400 * 1024;
        (&s).write_all(
            format!("POST /app/sink HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let chunk = vec![b'u'; 4096];
        for _ in 0..100 {
            (&s).write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        read_response(&mut BufReader::new(s), false)
    });
    wait_for(
        "the requests to be in flight",
        Duration::from_secs(10),
        || {
            (get(addr, "/proxy/status").json()["services"][0]["in_flight"]
                .as_u64()
                .unwrap()
                >= 101)
                .then_some(())
        },
    );
    let t0 = Instant::now();
    signal(p.proc.pid(), "-TERM");
    p.proc.wait_line("shutting down", Duration::from_secs(5));
    // New connections are no longer served.
    std::thread::sleep(Duration::from_millis(100));
    let refused = match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(s) => {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = (&s).write_all(b"GET /proxy/healthz HTTP/1.1\r\nHost: h\r\n\r\n");
            let mut buf = [0u8; 1];
            matches!(std::io::Read::read(&mut &s, &mut buf), Ok(0) | Err(_))
        }
    };
    assert!(refused, "a new connection was served after SIGTERM");
    for (i, h) in slow.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), "slept");
    }
    let up = upload.join().unwrap();
    assert_eq!(up.status, 200);
    assert_eq!(up.json()["bytes"], 400 * 1024, "the whole upload arrived");
    let status = wait_for("the proxy to exit", Duration::from_secs(20), || {
        p.proc.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{}", p.proc.log());
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "exited after {:?}",
        t0.elapsed()
    );
}

#[test]
fn idle_keep_alive_connections_do_not_delay_the_exit() {
    let b = Backend::start("b");
    let mut p = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n",
        b.addr
    )));
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(
        format!("GET /app/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r, false).status, 200);
    let t0 = Instant::now();
    signal(p.proc.pid(), "-TERM");
    let status = wait_for("the proxy to exit", Duration::from_secs(40), || {
        p.proc.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    // An idle connection would hold the exit for the whole shutdown_timeout (30 s).
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "an idle keep-alive connection held the exit for {:?}",
        t0.elapsed()
    );
}

#[test]
fn proxy_daemon_from_a_shell_script() {
    let b = Backend::start("b");
    let dir = TempDir::new("daemon");
    let script = format!("{}/tests/scripts/daemon.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .args([
            &script,
            env!("CARGO_BIN_EXE_wakeproxy"),
            dir.path().to_str().unwrap(),
            &b.addr.to_string(),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("wakeproxy.log")).unwrap_or_default();
    assert!(out.status.success(), "{text}\n--- daemon log ---\n{log}");
    assert!(text.contains(" 0 failed"), "{text}");
}

/// What users saw: `start` printed "started" and exited 0 while another wakeproxy answered on
/// its port and its own proxy had died with "Address already in use". Now it succeeds only
/// when the proxy it started answers (`/proxy/healthz` carries that start's nonce).
#[test]
fn proxy_daemon_start_fails_when_another_proxy_holds_the_port() {
    let b = Backend::start("b");
    let other = TestProxy::start(&config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n",
        b.addr
    )));
    let dir = TempDir::new("daemon-busy");
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        format!(
            "global:\n  bearer_token: {TOKEN}\n  listen_address: 127.0.0.1\n  listen_http: {}\nservices:\n  - name: app\n    path: /app\n    upstream: {}\n",
            other.addr.port(),
            b.addr
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wakeproxy"))
        .args(["proxy-daemon", "--config", path.to_str().unwrap(), "start"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("started"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "another process already answers /proxy/healthz on {}",
            other.addr
        )),
        "{stderr}"
    );
    // The last lines of its log say why its own proxy could not serve.
    assert!(
        stderr.contains("last log lines:") && stderr.contains("Address already in use"),
        "{stderr}"
    );
    assert!(!dir.path().join("wakeproxy.pid").exists(), "pid file left");
    // The proxy that held the port is untouched.
    assert_eq!(get(other.addr, "/app/x").status, 200);
}

#[test]
fn sighup_reload_adds_and_changes_routes_while_a_websocket_stays_open() {
    let one = Backend::start("one");
    let two = Backend::start("two");
    let services = |extra: &str| {
        format!(
            "  - name: app\n    path: /app\n    upstream: {}\n  - name: ws\n    path: /ws\n    upstream: {}\n{extra}",
            one.addr, one.addr
        )
    };
    let mut p = TestProxy::start(&config(&services("")));
    // A WebSocket through /ws echoes every 0.2 s until told to stop.
    let stop_file = p.dir.path().join("stop-ws");
    let script = format!("{}/tests/ws/ws_client.py", env!("CARGO_MANIFEST_DIR"));
    let url = format!("ws://{}/ws/ws", p.addr);
    let ws = Command::new("python3")
        .args([
            script.as_str(),
            "hold-until",
            &url,
            TOKEN,
            stop_file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with websockets");
    wait_for("the WebSocket to open", Duration::from_secs(10), || {
        (get(p.addr, "/proxy/status").json()["services"][1]["open_tunnels"] == 1).then_some(())
    });
    assert_eq!(get(p.addr, "/new/x").status, 404);
    assert_eq!(get(p.addr, "/app/x").json()["name"], "one");

    // Add /new and point /app at the other backend.
    let changed = config(&format!(
        "  - name: app\n    path: /app\n    upstream: {}\n  - name: ws\n    path: /ws\n    upstream: {}\n  - name: new\n    path: /new\n    upstream: {}\n",
        two.addr, one.addr, two.addr
    ));
    std::fs::write(&p.config_path, changed).unwrap();
    signal(p.proc.pid(), "-HUP");
    p.proc
        .wait_line("configuration reloaded", Duration::from_secs(10));
    let r = get(p.addr, "/new/x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "two");
    assert_eq!(
        get(p.addr, "/app/x").json()["name"],
        "two",
        "the changed route applies"
    );

    // An invalid config changes nothing and is logged.
    std::fs::write(
        &p.config_path,
        "global:\n  bearer_token: short\nservices: []\n",
    )
    .unwrap();
    signal(p.proc.pid(), "-HUP");
    p.proc.wait_line("reload refused", Duration::from_secs(10));
    assert_eq!(
        get(p.addr, "/new/x").status,
        200,
        "the running configuration stays"
    );

    // The WebSocket opened before both reloads still echoes.
    std::fs::write(&stop_file, b"").unwrap();
    let out = ws.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the WebSocket broke during the reloads: {text}\n{}",
        p.proc.log()
    );
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    // hold-until sends one last echo after it sees the stop file, i.e. after both reloads.
    assert!(v["ticks"].as_u64().unwrap() >= 2, "{v}");
}
