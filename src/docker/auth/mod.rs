//! Registry credentials for pulls: which registry an image is on, what the Docker client
//! config (`config.json`, its `auths`, `credsStore` and `credHelpers`) holds for it, and the
//! `X-Registry-Auth` header value to send with `POST /images/create`.
//!
//! ```text
//! let credential = docker::credential_for_image("ghcr.io/org/app:1.4", None)?;
//! let header = credential.map(|c| c.x_registry_auth()); // None: pull anonymously
//! ```
//!
//! Layout: `reference` (image → [`Registry`]), `config_file` (finding and reading
//! config.json, and the lookup order), `helper` (credential helpers behind [`RunHelper`]),
//! `credential` (the redacted [`RegistryCredential`] and its header), `base64` and `error`.
//! Out of scope: pulling itself, `docker login`, storing credentials.

mod base64;
mod config_file;
mod credential;
mod error;
mod helper;
mod reference;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use config_file::{AuthEnv, DockerConfig};
pub use credential::{CredentialSource, RegistryCredential};
pub use error::AuthError;
pub use helper::{HelperOutput, HelperProcess, RunHelper};
pub use reference::{DOCKER_HUB_KEY, Registry};

/// The credentials to pull `image` with, from the config file the Docker CLI would read
/// (`auth_file` when given, e.g. a `registry_auth_file` setting) and the helpers on this
/// process's `PATH`. `Ok(None)` means an anonymous pull.
pub fn credential_for_image(
    image: &str,
    auth_file: Option<&Path>,
) -> Result<Option<RegistryCredential>, AuthError> {
    let env = AuthEnv::from_process();
    let helpers = HelperProcess::new(env.path.clone());
    lookup_credential(image, auth_file, &env, &helpers)
}

/// [`credential_for_image`] with the environment and the way helpers are run given.
pub fn lookup_credential(
    image: &str,
    auth_file: Option<&Path>,
    env: &AuthEnv,
    helpers: &dyn RunHelper,
) -> Result<Option<RegistryCredential>, AuthError> {
    let registry = Registry::of_image(image)?;
    let config = DockerConfig::load(auth_file, env)?;
    let found = config.lookup(&registry, helpers)?;
    match &found {
        Some(c) => log::debug!("registry credentials for {image}: {c}"),
        None => {
            log::debug!("no registry credentials for {image} ({registry}): pulling anonymously")
        }
    }
    Ok(found)
}
