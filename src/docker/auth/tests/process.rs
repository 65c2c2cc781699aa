//! Real helper programs: shell scripts written into a temporary directory that is given as the
//! search path (the test process's own `PATH` is never changed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{TempDir, header_json};
use crate::docker::auth::helper::find_program;
use crate::docker::auth::{AuthEnv, AuthError, HelperProcess, RunHelper, lookup_credential};

/// Answers like a real helper: JSON for ghcr.io (echoing the server URL it read on stdin), an
/// identity token for Docker Hub, a failure for `locked.example`, and "not found" otherwise.
/// It also checks that it was called as `get` and that its `PATH` is the one it was found on.
const HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "called with: $*" >&2; exit 2; }
case ":$PATH:" in *":$WP_BIN:"*) ;; *) echo "PATH is $PATH" >&2; exit 2 ;; esac
read -r url || true
case "$url" in
  ghcr.io) printf '{"ServerURL":"%s","Username":"alice","Secret":"from-helper"}\n' "$url" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"hub-token"}' "$url" ;;
  locked.example) echo "the store is locked" >&2; exit 3 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

/// Writes an executable `name` into `dir`.
fn executable(dir: &Path, name: &str, script: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A `bin` directory with the helper `docker-credential-wpt` and a config using it as the
/// store; the environment points at both (`WP_BIN` is read by the script to check its `PATH`).
struct Setup {
    _dir: TempDir,
    env: AuthEnv,
}

fn setup(config: &str) -> Setup {
    let dir = TempDir::new("helpers");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = HELPER.replace("$WP_BIN", &bin.display().to_string());
    executable(&bin, "docker-credential-wpt", &script);
    dir.write("config.json", config);
    let search_path = std::env::join_paths([
        Path::new("/nonexistent-wp"),
        &bin,
        Path::new("/bin"),
        Path::new("/usr/bin"),
    ])
    .unwrap();
    let env = AuthEnv {
        docker_config: Some(dir.path().into()),
        home: None,
        path: Some(search_path),
    };
    Setup { _dir: dir, env }
}

impl Setup {
    fn lookup(&self, image: &str) -> Result<Option<crate::docker::RegistryCredential>, AuthError> {
        let helpers = HelperProcess::new(self.env.path.clone());
        lookup_credential(image, None, &self.env, &helpers)
    }
}

#[test]
fn a_helper_on_the_path_answers_json() {
    let s = setup(r#"{"credsStore": "wpt"}"#);
    let c = s.lookup("ghcr.io/org/app:1.4").unwrap().unwrap();
    assert_eq!(c.username(), Some("alice"));
    assert_eq!(
        c.to_string(),
        "user \"alice\" for ghcr.io (from credential helper docker-credential-wpt)"
    );
    assert_eq!(
        header_json(&c.x_registry_auth()),
        serde_json::json!({"username": "alice", "password": "from-helper", "serveraddress": "ghcr.io"})
    );
    let hub = s.lookup("nginx").unwrap().unwrap();
    assert_eq!(
        header_json(&hub.x_registry_auth()),
        serde_json::json!({"identitytoken": "hub-token", "serveraddress": "https://index.docker.io/v1/"})
    );
    assert_eq!(s.lookup("quay.io/org/app").unwrap(), None);
}

#[test]
fn a_helper_that_fails_is_an_error_with_its_message() {
    let s = setup(r#"{"credsStore": "wpt"}"#);
    let e = s.lookup("locked.example/app").unwrap_err();
    assert_eq!(
        e,
        AuthError::HelperFailed {
            program: "docker-credential-wpt".into(),
            registry: "locked.example".into(),
            code: Some(3),
            message: "the store is locked".into(),
        }
    );
}

#[test]
fn a_missing_helper_is_an_error_that_says_so() {
    let s = setup(r#"{"credHelpers": {"ghcr.io": "absent"}, "credsStore": "wpt"}"#);
    let e = s.lookup("ghcr.io/org/app").unwrap_err();
    assert_eq!(
        e,
        AuthError::HelperMissing {
            program: "docker-credential-absent".into(),
            registry: "ghcr.io".into(),
        }
    );
    assert!(e.to_string().contains("not on the search path"), "{e}");
    // The default store still answers for other registries.
    assert!(s.lookup("nginx").unwrap().is_some());
}

#[test]
fn only_executable_files_on_the_search_path_are_helpers() {
    let dir = TempDir::new("find");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(a.join("docker-credential-x"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir(a.join("docker-credential-d")).unwrap();
    executable(&b, "docker-credential-x", "#!/bin/sh\n");
    // An empty entry is skipped, not read as the current directory.
    let path = format!(":{}::{}", a.display(), b.display());
    assert_eq!(
        find_program("docker-credential-x", Some(path.as_ref())),
        Some(b.join("docker-credential-x"))
    );
    assert_eq!(
        find_program("docker-credential-d", Some(path.as_ref())),
        None
    );
    assert_eq!(find_program("docker-credential-x", None), None);
    let e = HelperProcess::new(Some(path.into()))
        .get("docker-credential-none", "ghcr.io")
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_helper_that_hangs_is_killed_after_the_time_limit() {
    let dir = TempDir::new("slow");
    executable(
        dir.path(),
        "docker-credential-slow",
        "#!/bin/sh\nexec sleep 600\n",
    );
    let path = std::env::join_paths([dir.path(), Path::new("/bin"), Path::new("/usr/bin")]);
    let helpers = HelperProcess::new(path.ok()).with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let e = helpers
        .get("docker-credential-slow", "ghcr.io")
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("did not answer within 0.3 s"), "{e}");
    // Not a speed bound: the helper would sleep 10 minutes; the lookup must not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "waited for the helper: {:?}",
        started.elapsed()
    );
}
