//! Which registry an image reference names, read the way Docker reads it, and the key its
//! credentials are stored under in config.json.

use std::fmt;

use super::error::AuthError;
use crate::docker::encode::image_ref;

/// The key Docker stores Docker Hub's credentials under (`docker login` with no server).
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The host name Docker gives Docker Hub in image references.
const DOCKER_HUB_HOST: &str = "docker.io";

/// The registry an image is pulled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `docker.io` for Docker Hub, otherwise the first path component as written
    /// (`ghcr.io`, `127.0.0.1:5000`, `localhost:5000`).
    host: String,
}

impl Registry {
    /// The registry of `image`, with Docker's rule: the part before the first `/` is a registry
    /// when it contains `.` or `:`, is `localhost`, or has an upper-case letter (repository
    /// paths are lower case); otherwise the image is on Docker Hub. `index.docker.io` is
    /// Docker Hub's old name.
    ///
    /// `nginx`, `library/nginx`, `docker.io/library/nginx` and `nginx@sha256:…` are all on
    /// Docker Hub; `ghcr.io/org/app:1.4` is on `ghcr.io`; `localhost:5000/x/y@sha256:…` on
    /// `localhost:5000`.
    pub fn of_image(image: &str) -> Result<Registry, AuthError> {
        let invalid = || AuthError::InvalidImage(image.to_string());
        let image = image_ref(image).map_err(|_| invalid())?;
        let host = match image.split_once('/') {
            Some((first, _)) if names_a_registry(first) => first,
            _ => DOCKER_HUB_HOST,
        };
        // `:5000/app` has a port and no host.
        if host.starts_with(':') || host.contains('@') {
            return Err(invalid());
        }
        let host = if host == "index.docker.io" {
            DOCKER_HUB_HOST
        } else {
            host
        };
        Ok(Registry {
            host: host.to_string(),
        })
    }

    /// `docker.io` for Docker Hub, otherwise the registry's `host` or `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether this is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.host == DOCKER_HUB_HOST
    }

    /// The key the Docker CLI stores and looks up this registry's credentials under, also the
    /// server URL a credential helper is asked about: [`DOCKER_HUB_KEY`] for Docker Hub, the
    /// host (with its port) for any other registry.
    pub fn config_key(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_KEY
        } else {
            &self.host
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

fn names_a_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_image_references() {
        for (image, host) in [
            ("ghcr.io/org/app:1.4", "ghcr.io"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000"),
            ("localhost:5000/x/y@sha256:0123abcd", "localhost:5000"),
            ("localhost/app", "localhost"),
            (
                "registry.example.com:443/a/b/c:t",
                "registry.example.com:443",
            ),
            ("Registry/app", "Registry"),
            // Docker Hub, however it is written.
            ("nginx", "docker.io"),
            ("nginx:1.27", "docker.io"),
            ("nginx@sha256:0123abcd", "docker.io"),
            ("library/nginx", "docker.io"),
            ("docker.io/library/nginx", "docker.io"),
            ("index.docker.io/library/nginx", "docker.io"),
            ("org/app:1.4", "docker.io"),
            // A port without a `/` after it is a tag: the image `localhost`, tag `5000`.
            ("localhost:5000", "docker.io"),
        ] {
            let r = Registry::of_image(image).unwrap();
            assert_eq!(r.host(), host, "{image}");
            assert_eq!(r.to_string(), host);
            assert_eq!(r.is_docker_hub(), host == "docker.io", "{image}");
        }
    }

    #[test]
    fn config_keys() {
        let key = |image| Registry::of_image(image).unwrap().config_key().to_string();
        assert_eq!(key("nginx"), "https://index.docker.io/v1/");
        assert_eq!(
            key("docker.io/library/nginx"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(key("ghcr.io/org/app"), "ghcr.io");
        assert_eq!(key("127.0.0.1:5000/app"), "127.0.0.1:5000");
    }

    #[test]
    fn unreadable_references_are_refused_by_name() {
        for bad in [
            "",
            "a b/c",
            "/app",
            "x//y",
            "../x/y",
            ":5000/app",
            "ghcr.io/a?b",
        ] {
            let e = Registry::of_image(bad).unwrap_err();
            assert_eq!(e, AuthError::InvalidImage(bad.to_string()), "{bad:?}");
        }
    }
}
