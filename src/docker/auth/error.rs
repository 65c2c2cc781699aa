//! What can go wrong while looking up registry credentials; no message ever holds a secret.

use std::fmt;
use std::path::PathBuf;

/// Everything that can stop a credential lookup. "No credentials" is not an error: a lookup
/// that finds none answers `Ok(None)` (an anonymous pull).
///
/// None of these carries a password, a token or an `auth` value: where a file is at fault, the
/// message says where, never what.
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
        }
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_the_entry_and_a_way_out() {
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
