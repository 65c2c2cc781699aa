//! `auto_certbot`: wakeproxy runs certbot itself. When the certificate files are missing it
//! runs `certbot certonly --webroot` once its HTTP port is up (the ACME server fetches the
//! challenge from that port), retrying with a growing delay on failure; then a timer runs
//! `certbot renew` twice a day. After a success the reload watcher checks the files at once.
//! Failures are logged with certbot's output and shown in `/proxy/status`; none is fatal.
//!
//! Outside the config file (they only matter to unusual set-ups and to tests):
//! - `WAKEPROXY_CERTBOT`: the certbot program (default `certbot`, found on `PATH`);
//! - `WAKEPROXY_CERTBOT_ARGS`: extra arguments for every run, split like a shell would split
//!   them (quotes, backslashes; no variables), e.g.
//!   `--server https://acme.test/dir --config-dir /srv/le`;
//! - `WAKEPROXY_CERTBOT_RENEW_INTERVAL`: seconds between `renew` runs (default 43200).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::CertStore;
use super::certs::CertFiles;
use super::state::{CertbotRun, HttpsState};
use super::watch::Trigger;
use crate::config::Global;

/// Default time between two `certbot renew` runs: twice a day, as certbot advises.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(12 * 3600);
/// A certbot run taking longer than this is killed.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// First wait after a failed `certonly`; it doubles up to the renew interval (ACME servers
/// limit failed validations, so no tight loop).
const FIRST_RETRY: Duration = Duration::from_secs(15 * 60);
/// Lines of certbot output kept for the log and the status endpoint.
const TAIL_LINES: usize = 25;

/// How to run certbot for this proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Certbot {
    pub program: String,
    pub extra_args: Vec<String>,
    pub domain: String,
    pub email: Option<String>,
    pub webroot: PathBuf,
    pub renew_every: Duration,
}

impl Certbot {
    /// From the configuration (`certbot_path`, `certbot_args`), with the `WAKEPROXY_CERTBOT*`
    /// environment variables taking precedence (the program) or adding to it (the arguments).
    pub(crate) fn from_env(g: &Global) -> Result<Certbot, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut extra_args = g.certbot_args.clone();
        if let Some(s) = var("WAKEPROXY_CERTBOT_ARGS") {
            extra_args.extend(split_args(&s).map_err(|e| format!("WAKEPROXY_CERTBOT_ARGS: {e}"))?);
        }
        let renew_every = match var("WAKEPROXY_CERTBOT_RENEW_INTERVAL") {
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(format!(
                        "WAKEPROXY_CERTBOT_RENEW_INTERVAL: expected a number of seconds, found {s:?}"
                    ));
                }
            },
            None => RENEW_EVERY,
        };
        Ok(Certbot {
            program: var("WAKEPROXY_CERTBOT")
                .or_else(|| g.certbot_path.clone())
                .unwrap_or_else(|| "certbot".into()),
            extra_args,
            domain: g.domain.clone(),
            email: g.email.clone(),
            webroot: g.acme_webroot.clone(),
            renew_every,
        })
    }

    /// `certonly --webroot ...`: obtains a certificate for the domain, keeping a valid one.
    pub(crate) fn certonly_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["certonly", "--webroot", "-w"].map(String::from).to_vec();
        a.push(self.webroot.display().to_string());
        a.extend([
            "-d".to_string(),
            self.domain.clone(),
            "--cert-name".into(),
            self.domain.clone(),
        ]);
        match &self.email {
            Some(e) => a.extend(["--email".to_string(), e.clone(), "--no-eff-email".into()]),
            None => a.push("--register-unsafely-without-email".into()),
        }
        a.extend(["--agree-tos", "--non-interactive", "--keep-until-expiring"].map(String::from));
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// `renew`: renews what is due; never the random sleep of non-interactive runs.
    pub(crate) fn renew_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["renew", "--non-interactive", "--no-random-sleep-on-renew"]
            .map(String::from)
            .to_vec();
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// Where certbot puts the domain's certificate: `<config-dir>/live/<domain>/`, with the
    /// config dir from `--config-dir` in the extra arguments, else `/etc/letsencrypt`.
    pub(crate) fn default_files(&self) -> CertFiles {
        let mut config_dir = PathBuf::from("/etc/letsencrypt");
        let mut args = self.extra_args.iter();
        while let Some(a) = args.next() {
            if a == "--config-dir" || a == "-c" {
                if let Some(v) = args.next() {
                    config_dir = PathBuf::from(v);
                }
            } else if let Some(v) = a.strip_prefix("--config-dir=") {
                config_dir = PathBuf::from(v);
            }
        }
        let live = config_dir.join("live").join(&self.domain);
        CertFiles {
            cert: live.join("fullchain.pem"),
            key: live.join("privkey.pem"),
        }
    }

    /// Runs certbot with `args` (stdin closed, output collected, killed after `RUN_TIMEOUT`).
    pub(crate) fn run(&self, args: &[String]) -> CertbotRun {
        let command = args.first().cloned().unwrap_or_default();
        let at = SystemTime::now();
        log::info!("running {} {}", self.program, args.join(" "));
        let (ok, detail) = match run_collect(&self.program, args, RUN_TIMEOUT) {
            Ok((status, output)) if status.success() => {
                log::debug!("certbot {command} output:\n{}", output.trim_end());
                (true, String::new())
            }
            Ok((status, output)) => {
                let tail = tail(&output, TAIL_LINES);
                log::error!("certbot {command} failed ({status}):\n{tail}");
                (false, format!("{status}: {tail}"))
            }
            Err(e) => {
                let why = format!("cannot run {}: {e}", self.program);
                log::error!("certbot {command} failed: {why}");
                (false, why)
            }
        };
        if ok {
            log::info!("certbot {command} succeeded");
        }
        CertbotRun {
            command,
            at,
            ok,
            detail,
        }
    }

    /// Starts the certbot thread: `certonly` first when `need_certificate`, then `renew` on
    /// the timer. `files` are the files the proxy serves, to say so when certbot succeeds
    /// but they still do not exist (a `tls_certfile` outside certbot's `live/`).
    pub(crate) fn spawn(
        self,
        need_certificate: bool,
        files: CertFiles,
        store: Arc<CertStore>,
        state: Arc<HttpsState>,
        reload: Trigger,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("certbot".into())
            .spawn(move || {
                if need_certificate {
                    self.obtain(&files, &store, &state, &reload);
                }
                loop {
                    std::thread::sleep(self.renew_every);
                    let run = self.run(&self.renew_args());
                    let ok = run.ok;
                    state.set_certbot(run);
                    if ok {
                        reload.check_now();
                    }
                }
            })?;
        Ok(())
    }

    /// `certonly` until it succeeds (or the files appear by other means).
    fn obtain(&self, files: &CertFiles, store: &CertStore, state: &HttpsState, reload: &Trigger) {
        if let Err(e) = std::fs::create_dir_all(&self.webroot) {
            log::warn!(
                "cannot create the ACME webroot {}: {e}",
                self.webroot.display()
            );
        }
        let mut wait = FIRST_RETRY.min(self.renew_every);
        loop {
            if store.has_cert() {
                return;
            }
            let run = self.run(&self.certonly_args());
            let ok = run.ok;
            state.set_certbot(run);
            if ok {
                if !files.cert.exists() || !files.key.exists() {
                    log::warn!(
                        "certbot succeeded but {} or {} still does not exist: tls_certfile and tls_keyfile should point into certbot's live/{}/ directory",
                        files.cert.display(),
                        files.key.display(),
                        self.domain
                    );
                }
                reload.check_now();
                return;
            }
            log::info!(
                "trying certbot certonly again in {} min",
                wait.as_secs() / 60
            );
            let until = Instant::now() + wait;
            while Instant::now() < until && !store.has_cert() {
                std::thread::sleep(Duration::from_secs(2));
            }
            wait = (wait * 2).min(self.renew_every.max(FIRST_RETRY));
        }
    }
}

/// Runs `program args`, collecting stdout and stderr (in that order) and killing it after
/// `timeout`.
fn run_collect(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> std::io::Result<(ExitStatus, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            out
        })
    })
    .collect();
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let st = child.wait()?;
            log::error!(
                "{program} did not finish within {} s and was killed",
                timeout.as_secs()
            );
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = String::new();
    for r in readers {
        output.push_str(&String::from_utf8_lossy(&r.join().unwrap_or_default()));
    }
    Ok((status, output))
}

/// The last `n` non-empty lines.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Splits a command line the way a shell splits words: whitespace separates, `'...'` keeps
/// everything, `"..."` keeps everything but `\"` and `\\`, a backslash outside quotes escapes
/// the next character.
pub(crate) fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certbot(extra: &[&str]) -> Certbot {
        Certbot {
            program: "certbot".into(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            domain: "example.com".into(),
            email: Some("ops@example.com".into()),
            webroot: "/var/www/acme".into(),
            renew_every: RENEW_EVERY,
        }
    }

    #[test]
    fn certonly_command_line() {
        let c = certbot(&["--server", "https://127.0.0.1:14000/dir"]);
        assert_eq!(
            c.certonly_args().join(" "),
            "certonly --webroot -w /var/www/acme -d example.com --cert-name example.com --email ops@example.com \
             --no-eff-email --agree-tos --non-interactive --keep-until-expiring --server https://127.0.0.1:14000/dir"
        );
        let mut anonymous = certbot(&[]);
        anonymous.email = None;
        assert!(
            anonymous
                .certonly_args()
                .contains(&"--register-unsafely-without-email".to_string())
        );
    }

    #[test]
    fn renew_never_sleeps_at_random() {
        assert_eq!(
            certbot(&["--config-dir", "/x"]).renew_args().join(" "),
            "renew --non-interactive --no-random-sleep-on-renew --config-dir /x"
        );
    }

    #[test]
    fn default_files_follow_the_config_dir() {
        assert_eq!(
            certbot(&[]).default_files().cert,
            PathBuf::from("/etc/letsencrypt/live/example.com/fullchain.pem")
        );
        assert_eq!(
            certbot(&["--config-dir", "/srv/le"]).default_files().key,
            PathBuf::from("/srv/le/live/example.com/privkey.pem")
        );
        assert_eq!(
            certbot(&["--config-dir=/srv/x"]).default_files().cert,
            PathBuf::from("/srv/x/live/example.com/fullchain.pem")
        );
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split_args("").unwrap(), Vec::<String>::new());
        assert_eq!(split_args("  a  b\tc ").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_args(r#"--x 'a b' "c \"d\"" e\ f ''"#).unwrap(),
            ["--x", "a b", "c \"d\"", "e f", ""]
        );
        assert!(split_args("'open").is_err());
        assert!(split_args("\"open").is_err());
        assert!(split_args("end\\").is_err());
    }

    #[test]
    fn failures_keep_the_output_tail() {
        let c = Certbot {
            program: "sh".into(),
            ..certbot(&[])
        };
        let run = c.run(&["-c".into(), "echo out; echo problem >&2; exit 3".into()]);
        assert!(!run.ok);
        assert_eq!(run.command, "-c");
        assert!(
            run.detail.contains("problem") && run.detail.contains("out"),
            "{}",
            run.detail
        );
        let ok = c.run(&["-c".into(), "true".into()]);
        assert!(ok.ok && ok.detail.is_empty());
        let missing = Certbot {
            program: "/nonexistent/certbot".into(),
            ..certbot(&[])
        };
        let run = missing.run(&["renew".into()]);
        assert!(
            !run.ok && run.detail.contains("cannot run /nonexistent/certbot"),
            "{}",
            run.detail
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
