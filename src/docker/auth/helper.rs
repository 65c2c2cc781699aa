//! Docker credential helpers: `docker-credential-NAME get` run behind the narrow [`RunHelper`]
//! trait, and what its answer means (credentials, "not found", or a failure).
//!
//! The protocol (docker/docker-credential-helpers): the server URL on stdin; on success a JSON
//! object `{"ServerURL","Username","Secret"}` on stdout, where a `Username` of `<token>` makes
//! `Secret` an identity token; on failure a non-zero exit and a message on stdout, which is
//! exactly `credentials not found in native keychain` when the helper has nothing for that
//! server.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::credential::{CredentialSource, RegistryCredential};
use super::error::AuthError;

/// What every helper prints when it has no credentials for the server it was asked about.
const NOT_FOUND: &str = "credentials not found in native keychain";
/// The `Username` that marks `Secret` as an identity token.
const TOKEN_USERNAME: &str = "<token>";
/// More than any helper's answer; a helper that prints more is cut off here.
const MAX_OUTPUT: u64 = 64 * 1024;

/// What a helper run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelperOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code; none when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// Runs a credential helper: the one seam between a credential lookup and processes, so tests
/// can answer for helpers without running any.
pub trait RunHelper {
    /// Runs `program get` (`program` is a bare name such as `docker-credential-pass`) with
    /// `server_url` on its standard input. An error of kind `NotFound` means there is no such
    /// program; any other error means it could not be run or did not finish.
    fn get(&self, program: &str, server_url: &str) -> io::Result<HelperOutput>;
}

/// Asks the helper `name` (a `credsStore` or `credHelpers` value) for the credentials of
/// `server_url`: `Ok(None)` when it has none.
pub(super) fn ask(
    runner: &dyn RunHelper,
    name: &str,
    server_url: &str,
) -> Result<Option<RegistryCredential>, AuthError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(AuthError::BadHelperName(name.to_string()));
    }
    let program = format!("docker-credential-{name}");
    let out = runner
        .get(&program, server_url)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => AuthError::HelperMissing {
                program: program.clone(),
                registry: server_url.to_string(),
            },
            _ => AuthError::HelperUnusable {
                program: program.clone(),
                registry: server_url.to_string(),
                detail: e.to_string(),
            },
        })?;
    read_answer(&program, server_url, &out)
}

/// What the helper's output means.
fn read_answer(
    program: &str,
    server_url: &str,
    out: &HelperOutput,
) -> Result<Option<RegistryCredential>, AuthError> {
    if !out.success {
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.trim() == NOT_FOUND {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = if stdout.trim().is_empty() {
            stderr
        } else {
            stdout
        };
        return Err(AuthError::HelperFailed {
            program: program.to_string(),
            registry: server_url.to_string(),
            code: out.code,
            message: failure_message(&said),
        });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer =
        serde_json::from_slice(&out.stdout).map_err(|_| AuthError::HelperBadAnswer {
            program: program.to_string(),
            registry: server_url.to_string(),
        })?;
    let source = CredentialSource::Helper(program.to_string());
    Ok(match (a.username.as_str(), a.secret.as_str()) {
        ("", "") => None,
        (TOKEN_USERNAME, token) => Some(RegistryCredential::identity_token(
            server_url, token, source,
        )),
        (user, password) => Some(RegistryCredential::password(
            server_url, user, password, source,
        )),
    })
}

/// The first line of a failing helper's message, short, and withheld when it looks like it
/// could hold credentials (JSON, or a `Secret` field): a helper that failed after printing its
/// answer must not put the secret into a log line.
fn failure_message(said: &str) -> String {
    let line = said.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        None => "no message".to_string(),
        Some(l) if l.contains('{') || l.to_ascii_lowercase().contains("secret") => {
            "(its output is not shown: it may hold a secret)".to_string()
        }
        Some(l) if l.chars().count() > 200 => {
            let mut cut: String = l.chars().take(200).collect();
            cut.push('…');
            cut
        }
        Some(l) => l.to_string(),
    }
}

/// Runs helpers as processes, found on a search path that is given rather than read from the
/// environment (so tests can point at their own helpers without touching the process's PATH).
#[derive(Debug, Clone)]
pub struct HelperProcess {
    search_path: Option<OsString>,
    timeout: Duration,
}

impl HelperProcess {
    /// Helpers found on `search_path` (a `PATH` value: directories separated by `:`; empty
    /// entries are skipped rather than meaning the current directory). The helper gets the same
    /// `PATH`. A helper that runs longer than 30 s (one waiting for a passphrase, say) is
    /// killed.
    pub fn new(search_path: Option<OsString>) -> HelperProcess {
        HelperProcess {
            search_path,
            timeout: Duration::from_secs(30),
        }
    }

    /// The same with another time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> HelperProcess {
        self.timeout = timeout;
        self
    }
}

impl RunHelper for HelperProcess {
    fn get(&self, program: &str, server_url: &str) -> io::Result<HelperOutput> {
        let found = find_program(program, self.search_path.as_deref()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{program} not found"))
        })?;
        let mut cmd = Command::new(&found);
        cmd.arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.search_path {
            cmd.env("PATH", path);
        }
        run_with_input(cmd, server_url.as_bytes(), self.timeout)
    }
}

/// The first executable file called `program` in the directories of `search_path`.
pub(super) fn find_program(program: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(search_path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Spawns `cmd`, writes `input` to it and closes its stdin, then collects its output; kills it
/// after `timeout`.
fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> io::Result<HelperOutput> {
    let mut child = spawn(&mut cmd)?;
    // Pipes are read on their own threads, so a helper that writes much before reading its
    // input (or writes to both pipes) cannot block on a full pipe.
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading: a broken pipe here is its answer, not an error.
        let _ = stdin.write_all(input);
    }
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            // The reader threads end when the pipes close; a grandchild holding them must not
            // hold us too, so they are not joined.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "did not answer within {} s and was killed",
                    timeout.as_secs_f32()
                ),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(HelperOutput {
        success: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Spawns `cmd`, trying again for a moment while the program is "busy": a file just written
/// (a helper being installed) cannot be run while another process that forked meanwhile still
/// has it open for writing.
fn spawn(cmd: &mut Command) -> io::Result<Child> {
    for _ in 0..10 {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::auth::tests::{FakeHelpers, answering};

    #[test]
    fn a_json_answer_is_a_password_or_an_identity_token() {
        let h = answering(
            true,
            0,
            r#"{"ServerURL":"ghcr.io","Username":"alice","Secret":"pw"}"#,
            "",
        );
        let c = ask(&h, "pass", "ghcr.io").unwrap().unwrap();
        let want = RegistryCredential::password(
            "ghcr.io",
            "alice",
            "pw",
            CredentialSource::Helper("docker-credential-pass".into()),
        );
        assert_eq!(c, want);
        assert_eq!(
            *h.asked.borrow(),
            [("docker-credential-pass".to_string(), "ghcr.io".to_string())]
        );
        let h = answering(true, 0, r#"{"Username":"<token>","Secret":"tk"}"#, "");
        let c = ask(&h, "x", "ghcr.io").unwrap().unwrap();
        let source = CredentialSource::Helper("docker-credential-x".into());
        assert_eq!(
            c,
            RegistryCredential::identity_token("ghcr.io", "tk", source)
        );
        // An empty answer is no credentials.
        let h = answering(
            true,
            0,
            r#"{"ServerURL":"ghcr.io","Username":"","Secret":""}"#,
            "",
        );
        assert_eq!(ask(&h, "x", "ghcr.io").unwrap(), None);
    }

    #[test]
    fn credentials_not_found_is_an_anonymous_pull() {
        let h = answering(false, 1, "credentials not found in native keychain\n", "");
        assert_eq!(ask(&h, "pass", "ghcr.io").unwrap(), None);
    }

    #[test]
    fn other_failures_are_errors_with_the_helpers_message() {
        let h = answering(false, 3, "", "pass: store is locked\nmore\n");
        assert_eq!(
            ask(&h, "pass", "ghcr.io").unwrap_err(),
            AuthError::HelperFailed {
                program: "docker-credential-pass".into(),
                registry: "ghcr.io".into(),
                code: Some(3),
                message: "pass: store is locked".into(),
            }
        );
        let h = answering(false, 1, r#"{"Username":"u","Secret":"s3"}"#, "");
        let e = ask(&h, "pass", "ghcr.io").unwrap_err();
        assert!(
            matches!(&e, AuthError::HelperFailed { message, .. } if message.contains("not shown")),
            "{e:?}"
        );
        let h = answering(true, 0, "user:password", "");
        assert_eq!(
            ask(&h, "pass", "ghcr.io").unwrap_err(),
            AuthError::HelperBadAnswer {
                program: "docker-credential-pass".into(),
                registry: "ghcr.io".into(),
            }
        );
        assert_eq!(failure_message(&"x".repeat(300)).chars().count(), 201);
        assert_eq!(failure_message("  \n"), "no message");
    }

    #[test]
    fn a_missing_helper_is_not_a_failed_one() {
        let missing = FakeHelpers::new(|_, _| Err(io::ErrorKind::NotFound.into()));
        assert_eq!(
            ask(&missing, "gone", "ghcr.io").unwrap_err(),
            AuthError::HelperMissing {
                program: "docker-credential-gone".into(),
                registry: "ghcr.io".into(),
            }
        );
        let denied = FakeHelpers::new(|_, _| Err(io::ErrorKind::PermissionDenied.into()));
        let e = ask(&denied, "x", "ghcr.io").unwrap_err();
        assert!(matches!(e, AuthError::HelperUnusable { .. }), "{e:?}");
    }

    #[test]
    fn helper_names_cannot_reach_outside_the_search_path() {
        for bad in ["", "../../bin/sh", "a/b", "x\0y"] {
            let h = answering(true, 0, "{}", "");
            assert_eq!(
                ask(&h, bad, "ghcr.io").unwrap_err(),
                AuthError::BadHelperName(bad.to_string())
            );
            assert!(h.asked.borrow().is_empty(), "{bad:?} was run");
        }
    }
}
