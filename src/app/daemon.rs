//! `proxy-daemon start|stop|restart|status|reload`: running the proxy in the background for
//! shell scripts, with a pid file (checked, never trusted blindly) and a log file. `start`
//! succeeds only when the process it started answers (`probe`): not when another process
//! already answers on the port.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

use super::cli::{CliError, DaemonArgs};
use super::probe::{self, START_NONCE_ENV, health_addr};
use crate::config::{self, Config, Probe};

/// How long `start` waits for `/proxy/healthz`.
const START_WAIT: Duration = Duration::from_secs(30);

/// How long `start` lets its proxy live on while another process answers on its port (the
/// proxy normally exits at once, unable to bind, and its log says why).
const FOREIGN_WAIT: Duration = Duration::from_secs(10);

/// Log lines shown when a start fails.
const TAIL_LINES: usize = 20;

/// Exit code when the daemon is not running (as LSB init scripts use for `status`).
pub const NOT_RUNNING: i32 = 3;

fn fail(code: i32, message: impl Into<String>) -> CliError {
    CliError::Daemon {
        code,
        message: message.into(),
    }
}

/// Paths used by the daemon: explicit ones, or beside the config file.
struct Paths {
    pid: PathBuf,
    log: PathBuf,
}

fn paths(args: &DaemonArgs) -> Paths {
    let dir = args
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Paths {
        pid: args
            .pid_file
            .clone()
            .unwrap_or_else(|| dir.join("wakeproxy.pid")),
        log: args
            .log_file
            .clone()
            .unwrap_or_else(|| dir.join("wakeproxy.log")),
    }
}

/// The pid in the pid file when that process is alive and is a wakeproxy proxy; a stale file
/// (dead process, or a pid reused by something else) is removed.
fn running_pid(pid_file: &Path) -> Option<Pid> {
    let text = fs::read_to_string(pid_file).ok()?;
    let raw: i32 = text.trim().parse().ok()?;
    let pid = Pid::from_raw(raw)?;
    let alive = test_kill_process(pid).is_ok();
    let cmdline = fs::read(format!("/proc/{raw}/cmdline")).unwrap_or_default();
    let ours = cmdline.split(|&b| b == 0).any(|a| a == b"proxy")
        && String::from_utf8_lossy(&cmdline).contains("wakeproxy");
    if alive && ours {
        Some(pid)
    } else {
        eprintln!(
            "wakeproxy: removing stale pid file {} (process {raw} is not a running wakeproxy)",
            pid_file.display()
        );
        let _ = fs::remove_file(pid_file);
        None
    }
}

fn log_tail(log: &Path, from: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(log) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn load(args: &DaemonArgs) -> Result<Config, CliError> {
    config::load(&args.config).map_err(CliError::Config)
}

fn start(args: &DaemonArgs, p: &Paths) -> Result<(), CliError> {
    let cfg = load(args)?;
    if let Some(pid) = running_pid(&p.pid) {
        println!(
            "wakeproxy is already running (pid {})",
            pid.as_raw_nonzero()
        );
        return Ok(());
    }
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .map_err(|e| fail(1, format!("cannot open log file {}: {e}", p.log.display())))?;
    let from = log.seek(SeekFrom::End(0)).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(|e| fail(1, format!("cannot find the wakeproxy binary: {e}")))?;
    let nonce = probe::new_nonce();
    let mut cmd = Command::new(exe);
    cmd.arg("proxy")
        .arg("--config")
        .arg(&args.config)
        .env(START_NONCE_ENV, &nonce);
    if args.no_tls {
        cmd.arg("--no-tls");
    }
    let err_log = log.try_clone().map_err(|e| fail(1, e.to_string()))?;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log))
        .process_group(0)
        .spawn()
        .map_err(|e| fail(1, format!("cannot start the proxy: {e}")))?;
    fs::write(&p.pid, format!("{}\n", child.id()))
        .map_err(|e| fail(1, format!("cannot write pid file {}: {e}", p.pid.display())))?;
    let started = Started {
        probe: Probe::from(&cfg.global),
        nonce,
        from,
    };
    match started.wait(&mut child, p) {
        Ok(()) => {
            println!(
                "wakeproxy started (pid {}), log: {}",
                child.id(),
                p.log.display()
            );
            Ok(())
        }
        Err(why) => {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = fs::remove_file(&p.pid);
            let tail = log_tail(&p.log, from, TAIL_LINES);
            Err(fail(1, format!("{why}; last log lines:\n{tail}")))
        }
    }
}

/// A proxy `start` just spawned, told `nonce` through the environment.
struct Started {
    probe: Probe,
    nonce: String,
    /// Where its part of the log begins.
    from: u64,
}

impl Started {
    /// Waits until the proxy answers `/proxy/healthz` with its nonce. Fails when it exits,
    /// when another process keeps answering on its port instead, or after `START_WAIT`.
    fn wait(&self, child: &mut Child, p: &Paths) -> Result<(), String> {
        let deadline = Instant::now() + START_WAIT;
        // When a process that is not this proxy was first seen answering, and where.
        let mut foreign = None;
        let pid = child.id();
        let elsewhere = |addr| {
            format!(
                "another process already answers /proxy/healthz on {addr}: not the proxy just \
                 started (pid {pid}). Is another wakeproxy running on this port? Stop it or \
                 change listen_http"
            )
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // It may have died (unable to bind) before the other process was seen.
                let other = foreign.map(|(_, addr)| addr).or_else(|| {
                    health_addr(&self.probe, &p.log, self.from)
                        .filter(|addr| probe::healthz(*addr).is_some())
                });
                return Err(match other {
                    Some(addr) => format!("the proxy exited ({status}); {}", elsewhere(addr)),
                    None => format!("the proxy exited ({status}) during start-up"),
                });
            }
            if let Some(addr) = health_addr(&self.probe, &p.log, self.from) {
                match probe::healthz(addr) {
                    Some(h) if h.nonce.as_deref() == Some(self.nonce.as_str()) => return Ok(()),
                    Some(_) => {
                        foreign.get_or_insert((Instant::now(), addr));
                    }
                    None => {}
                }
            }
            if let Some((since, addr)) = foreign
                && since.elapsed() > FOREIGN_WAIT
            {
                return Err(format!("{}; it was stopped", elsewhere(addr)));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the proxy did not answer /proxy/healthz within {} s",
                    START_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn stop(args: &DaemonArgs, p: &Paths) -> Result<(), CliError> {
    let Some(pid) = running_pid(&p.pid) else {
        println!("wakeproxy is not running");
        return Ok(());
    };
    // The drain may take shutdown_timeout; allow that plus a margin.
    let grace = config::load_probe(&args.config)
        .map_or(Duration::from_secs(30), |c| c.shutdown_timeout)
        + Duration::from_secs(10);
    kill_process(pid, Signal::TERM).map_err(|e| {
        fail(
            1,
            format!("cannot signal pid {}: {e}", pid.as_raw_nonzero()),
        )
    })?;
    let deadline = Instant::now() + grace;
    while test_kill_process(pid).is_ok() && !is_zombie(pid) {
        if Instant::now() > deadline {
            return Err(fail(
                1,
                format!(
                    "pid {} did not exit within {} s",
                    pid.as_raw_nonzero(),
                    grace.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(&p.pid);
    println!("wakeproxy stopped");
    Ok(())
}

/// A process that exited but was not reaped yet (its parent is gone or busy) counts as stopped.
fn is_zombie(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn status(args: &DaemonArgs, p: &Paths) -> Result<(), CliError> {
    let Some(pid) = running_pid(&p.pid) else {
        return Err(fail(NOT_RUNNING, "wakeproxy is not running"));
    };
    let listen = config::load_probe(&args.config).map_err(CliError::Config)?;
    match health_addr(&listen, &p.log, 0) {
        Some(addr) if probe::healthz(addr).is_some() => {
            println!(
                "wakeproxy is running (pid {}) and answering on {addr}",
                pid.as_raw_nonzero()
            );
            Ok(())
        }
        _ => Err(fail(
            1,
            format!(
                "wakeproxy runs (pid {}) but does not answer /proxy/healthz",
                pid.as_raw_nonzero()
            ),
        )),
    }
}

fn reload(args: &DaemonArgs, p: &Paths) -> Result<(), CliError> {
    let Some(pid) = running_pid(&p.pid) else {
        return Err(fail(NOT_RUNNING, "wakeproxy is not running"));
    };
    load(args)?; // refuse to signal a reload of a config that would be rejected anyway
    kill_process(pid, Signal::HUP).map_err(|e| {
        fail(
            1,
            format!("cannot signal pid {}: {e}", pid.as_raw_nonzero()),
        )
    })?;
    println!("reload requested (pid {})", pid.as_raw_nonzero());
    Ok(())
}

/// `healthcheck`: exit 0 when `/proxy/healthz` of the configured listener answers 200. Reads
/// only the listener from the config (`config::load_probe`): no token is needed.
pub fn healthcheck(config_path: &Path) -> Result<(), CliError> {
    let listen = config::load_probe(config_path).map_err(CliError::Config)?;
    match health_addr(&listen, Path::new("/nonexistent"), 0) {
        Some(addr) if probe::healthz(addr).is_some() => Ok(()),
        Some(addr) => Err(fail(
            1,
            format!("no healthy answer from http://{addr}/proxy/healthz"),
        )),
        None => Err(fail(1, "listen_http is 0: nothing fixed to probe")),
    }
}

/// Runs `proxy-daemon ACTION`.
pub fn run(args: &DaemonArgs) -> Result<(), CliError> {
    let p = paths(args);
    match args.action.as_str() {
        "start" => start(args, &p),
        "stop" => stop(args, &p),
        "restart" => {
            stop(args, &p)?;
            start(args, &p)
        }
        "status" => status(args, &p),
        "reload" => reload(args, &p),
        other => Err(CliError::Usage(format!(
            "unknown proxy-daemon action {other:?}; use start, stop, restart, status or reload"
        ))),
    }
}
