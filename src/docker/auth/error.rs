//! What can go wrong while looking up registry credentials; no message ever holds a secret.

use std::fmt;
use std::path::PathBuf;

/// Everything that can stop a credential lookup. "No credentials" is not an error: a lookup
/// that finds none answers `Ok(None)` (an anonymous pull).
///
/// None of these carries a password, a token or an `auth` value: where a file or a helper's
/// output is at fault, the message says where, never what.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The image reference cannot be read (empty, or characters Docker never allows).
    InvalidImage(String),
    /// The config file could not be read (other than being absent from its default place).
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// What happened, in lower case.
        detail: String,
    },
    /// The config file is not JSON, or not in the shape Docker writes.
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// Where and what kind of problem (line and column, never the text there).
        detail: String,
    },
    /// An `auths` entry that is needed cannot be used: its `auth` is not base64 of
    /// `user:password`.
    BadAuthEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key in `auths`.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A `credsStore` or `credHelpers` value that cannot name a program (empty, or with a `/`).
    BadHelperName(String),
    /// The credential helper program is not on the search path.
    HelperMissing {
        /// The program, `docker-credential-NAME`.
        program: String,
        /// The registry whose credentials were asked for.
        registry: String,
    },
    /// The helper could not be run or did not finish (permission denied, timed out).
    HelperUnusable {
        /// The program.
        program: String,
        /// The registry.
        registry: String,
        /// What happened.
        detail: String,
    },
    /// The helper exited with a failure other than "credentials not found".
    HelperFailed {
        /// The program.
        program: String,
        /// The registry.
        registry: String,
        /// Its exit code (none when killed by a signal).
        code: Option<i32>,
        /// Its message, or a note that it was withheld because it might hold a secret.
        message: String,
    },
    /// The helper succeeded but its answer is not `{"ServerURL","Username","Secret"}` JSON.
    HelperBadAnswer {
        /// The program.
        program: String,
        /// The registry.
        registry: String,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::InvalidImage(image) => {
                write!(
                    f,
                    "invalid image reference {image:?}: no registry can be read from it"
                )
            }
            AuthError::ConfigUnreadable { path, detail } => {
                write!(f, "cannot read Docker config {}: {detail}", path.display())
            }
            AuthError::ConfigInvalid { path, detail } => {
                write!(f, "Docker config {} is not valid: {detail}", path.display())
            }
            AuthError::BadAuthEntry { path, key, detail } => write!(
                f,
                "Docker config {}: auths[{key:?}]: {detail} (run `docker login {key}` again)",
                path.display()
            ),
            AuthError::BadHelperName(name) => write!(
                f,
                "credential helper name {name:?} is not usable: it names docker-credential-NAME \
                 on the search path, so it must be non-empty and have no `/`"
            ),
            AuthError::HelperMissing { program, registry } => write!(
                f,
                "credential helper {program} (for {registry}) is not on the search path: \
                 install it, or remove it from credsStore/credHelpers in the Docker config"
            ),
            AuthError::HelperUnusable {
                program,
                registry,
                detail,
            } => write!(f, "credential helper {program} (for {registry}): {detail}"),
            AuthError::HelperFailed {
                program,
                registry,
                code,
                message,
            } => {
                let code = code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
                write!(
                    f,
                    "credential helper {program} failed for {registry} ({code}): {message}"
                )
            }
            AuthError::HelperBadAnswer { program, registry } => write!(
                f,
                "credential helper {program} (for {registry}) answered something other than \
                 {{\"ServerURL\",\"Username\",\"Secret\"}} JSON (its output is not shown: it may \
                 hold a secret)"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_program_the_registry_and_a_way_out() {
        let e = AuthError::HelperMissing {
            program: "docker-credential-pass".into(),
            registry: "ghcr.io".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("docker-credential-pass") && s.contains("ghcr.io") && s.contains("install"),
            "{s}"
        );
        let e = AuthError::HelperFailed {
            program: "docker-credential-x".into(),
            registry: "ghcr.io".into(),
            code: Some(3),
            message: "locked".into(),
        };
        assert_eq!(
            e.to_string(),
            "credential helper docker-credential-x failed for ghcr.io (exit code 3): locked"
        );
        let e = AuthError::BadAuthEntry {
            path: "/h/.docker/config.json".into(),
            key: "ghcr.io".into(),
            detail: "auth is not base64".into(),
        };
        assert_eq!(
            e.to_string(),
            "Docker config /h/.docker/config.json: auths[\"ghcr.io\"]: auth is not base64 \
             (run `docker login ghcr.io` again)"
        );
    }
}
