//! `auto_certbot`: wakeproxy runs certbot itself, for `domain` (the default pair) and for each
//! service's exact `host` that no configured certificate names, one certificate (certbot
//! lineage, `live/<name>/`) per name, so that a name failing validation never holds up the
//! others. For each certificate whose files are missing it runs `certbot certonly --webroot`
//! once its HTTP port is up (the ACME server fetches the challenge from that port), one name
//! at a time, each retried on its own with a growing delay; a timer runs `certbot renew`
//! (every lineage) twice a day. After a success the reload watcher checks the files at once.
//! Wildcard hosts cannot be validated over http-01: they are left out, with a warning.
//! Failures are logged with certbot's output and shown in `/proxy/status`; none is fatal.
//!
//! Outside the config file (they only matter to unusual set-ups and to tests):
//! - `WAKEPROXY_CERTBOT`: the certbot program (default `certbot`, found on `PATH`);
//! - `WAKEPROXY_CERTBOT_ARGS`: extra arguments for every run, split like a shell would split
//!   them (quotes, backslashes; no variables), e.g.
//!   `--server https://acme.test/dir --config-dir /srv/le`;
//! - `WAKEPROXY_CERTBOT_RENEW_INTERVAL`: seconds between `renew` runs (default 43200).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::CertStore;
use super::certs::CertFiles;
use super::command::{run_collect, split_args, tail};
use super::state::{CertbotRun, HttpsState};
use super::watch::Trigger;
use crate::config::{Global, Service};

/// Default time between two `certbot renew` runs: twice a day, as certbot advises.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(12 * 3600);
/// A certbot run taking longer than this is killed.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// First wait after a failed `certonly`; it doubles up to the renew interval (ACME servers
/// limit failed validations, so no tight loop).
const FIRST_RETRY: Duration = Duration::from_secs(15 * 60);
/// Lines of certbot output kept for the log and the status endpoint.
const TAIL_LINES: usize = 25;
/// How often the thread looks whether a wanted certificate appeared by other means.
const CHECK: Duration = Duration::from_secs(2);

/// A certificate certbot is to obtain: for `name`, served from `slot`, from `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub name: String,
    pub slot: usize,
    pub files: CertFiles,
}

/// Which services' hosts get a certificate of their own from certbot.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HostPlan {
    /// Exact hosts, each once, in config order; never `domain` (the default pair's name).
    pub obtain: Vec<String>,
    /// Exact hosts a configured certificate names already: nothing to obtain.
    pub covered: Vec<String>,
    /// `(service, host)` for wildcard hosts, which http-01 cannot validate.
    pub wildcards: Vec<(String, String)>,
}

/// Sorts the services' hosts for certbot; `covered` says whether a configured certificate
/// (`tls_certfile`, `tls_certificates`) loaded at start-up names a host.
pub(crate) fn host_plan(
    domain: &str,
    services: &[Service],
    covered: impl Fn(&str) -> bool,
) -> HostPlan {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut plan = HostPlan::default();
    for s in services {
        let Some(host) = &s.host else { continue };
        let Some(name) = host.exact() else {
            plan.wildcards.push((s.name.clone(), host.to_string()));
            continue;
        };
        let seen = plan.obtain.iter().chain(&plan.covered).any(|n| n == name);
        if name == domain || seen {
            continue;
        }
        match covered(name) {
            true => plan.covered.push(name.to_string()),
            false => plan.obtain.push(name.to_string()),
        }
    }
    plan
}

/// The warning for a wildcard `host` of `service` with `auto_certbot`.
pub(crate) fn wildcard_warning(service: &str, host: &str) -> String {
    format!(
        "service {service}: auto_certbot cannot obtain a certificate for the wildcard host {host} \
         (http-01 validates exact names only); list one in tls_certificates"
    )
}

/// One wanted certificate's turn: when `certonly` runs for it next, and the wait after that.
struct Turn {
    wanted: Wanted,
    next: Instant,
    wait: Duration,
}

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

    /// `certonly --webroot ...`: obtains a certificate for `name` alone, in the lineage of
    /// that name, keeping a valid one.
    pub(crate) fn certonly_args(&self, name: &str) -> Vec<String> {
        let mut a: Vec<String> = ["certonly", "--webroot", "-w"].map(String::from).to_vec();
        a.push(self.webroot.display().to_string());
        a.extend(["-d", name, "--cert-name", name].map(String::from));
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

    /// Where certbot puts the domain's certificate (see `live_files`).
    pub(crate) fn default_files(&self) -> CertFiles {
        self.live_files(&self.domain)
    }

    /// Where certbot puts the certificate for `name`: `<config-dir>/live/<name>/`, with the
    /// config dir from `--config-dir` in the extra arguments, else `/etc/letsencrypt`.
    pub(crate) fn live_files(&self, name: &str) -> CertFiles {
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
        let live = config_dir.join("live").join(name);
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

    /// Starts the certbot thread: `certonly` for each `wanted` certificate (see `serve`), then
    /// `renew` on the timer.
    pub(crate) fn spawn(
        self,
        wanted: Vec<Wanted>,
        store: Arc<CertStore>,
        state: Arc<HttpsState>,
        reload: Trigger,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("certbot".into())
            .spawn(move || self.serve(wanted, &store, &state, &reload))?;
        Ok(())
    }

    /// The thread: one run at a time (certbot locks its directories), `certonly` for each
    /// wanted certificate until it succeeds or its files appear by other means, each retried on
    /// its own with a growing delay, and `renew` every `renew_every`.
    fn serve(&self, wanted: Vec<Wanted>, store: &CertStore, state: &HttpsState, reload: &Trigger) {
        if !wanted.is_empty()
            && let Err(e) = std::fs::create_dir_all(&self.webroot)
        {
            let root = self.webroot.display();
            log::warn!("cannot create the ACME webroot {root}: {e}");
        }
        let (now, first) = (Instant::now(), FIRST_RETRY.min(self.renew_every));
        let mut turns: Vec<Turn> = wanted
            .into_iter()
            .map(|wanted| Turn {
                wanted,
                next: now,
                wait: first,
            })
            .collect();
        let mut renew_at = now + self.renew_every;
        loop {
            turns.retain(|t| !store.is_loaded(t.wanted.slot));
            let now = Instant::now();
            if let Some(i) = turns.iter().position(|t| t.next <= now) {
                if self.obtain(&turns[i].wanted, state, reload) {
                    turns.remove(i);
                    continue;
                }
                let t = &mut turns[i];
                let (name, min) = (&t.wanted.name, t.wait.as_secs() / 60);
                log::info!("trying certbot certonly for {name} again in {min} min");
                t.next = Instant::now() + t.wait;
                t.wait = (t.wait * 2).min(self.renew_every.max(FIRST_RETRY));
            } else if now >= renew_at {
                let run = self.run(&self.renew_args());
                let ok = run.ok;
                state.set_certbot(run, None);
                if ok {
                    reload.check_now();
                }
                renew_at = Instant::now() + self.renew_every;
            } else {
                let until = turns.iter().map(|t| t.next).fold(renew_at, Instant::min);
                std::thread::sleep(until.saturating_duration_since(now).min(CHECK));
            }
        }
    }

    /// One `certonly` for `w`; whether certbot succeeded.
    fn obtain(&self, w: &Wanted, state: &HttpsState, reload: &Trigger) -> bool {
        let run = self.run(&self.certonly_args(&w.name));
        let ok = run.ok;
        state.set_certbot(run, Some(w.slot));
        if ok {
            let (cert, key) = (&w.files.cert, &w.files.key);
            if !cert.exists() || !key.exists() {
                log::warn!(
                    "certbot succeeded but {} or {} still does not exist: tls_certfile and tls_keyfile should point into certbot's live/{}/ directory",
                    cert.display(),
                    key.display(),
                    w.name
                );
            }
            reload.check_now();
        }
        ok
    }
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
            c.certonly_args("example.com").join(" "),
            "certonly --webroot -w /var/www/acme -d example.com --cert-name example.com --email ops@example.com \
             --no-eff-email --agree-tos --non-interactive --keep-until-expiring --server https://127.0.0.1:14000/dir"
        );
        let mut anonymous = certbot(&[]);
        anonymous.email = None;
        assert!(
            anonymous
                .certonly_args("a.example.com")
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

    fn service(name: &str, host: Option<&str>) -> Service {
        let text = format!(
            "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\nservices:\n  - name: {name}\n    path: /\n    upstream: 127.0.0.1:9\n{}",
            host.map_or(String::new(), |h| format!("    host: \"{h}\"\n"))
        );
        let mut c = crate::config::parse(&text, "t.yaml", &|_| None).unwrap();
        c.services.remove(0)
    }

    #[test]
    fn each_exact_host_gets_its_own_certificate_once() {
        let services = [
            service("a", Some("A.example.com")),
            service("any", None),
            service("wild", Some("*.apps.example.com")),
            service("b", Some("b.example.com")),
            service("a2", Some("a.example.com")),
            service("root", Some("example.com")),
            service("mine", Some("mine.example.com")),
        ];
        let plan = host_plan("Example.com", &services, |h| h == "mine.example.com");
        assert_eq!(
            plan,
            HostPlan {
                obtain: vec!["a.example.com".into(), "b.example.com".into()],
                covered: vec!["mine.example.com".into()],
                wildcards: vec![("wild".into(), "*.apps.example.com".into())],
            },
            "the domain has the default pair"
        );
        assert_eq!(
            host_plan("x", &services[1..2], |_| false),
            HostPlan::default()
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
        let app = certbot(&["-c", "/le"]).live_files("app.example.com");
        assert_eq!(
            (app.cert, app.key),
            (
                PathBuf::from("/le/live/app.example.com/fullchain.pem"),
                PathBuf::from("/le/live/app.example.com/privkey.pem")
            )
        );
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
}
