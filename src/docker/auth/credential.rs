//! A registry credential whose password or token never shows when it is formatted, and the
//! `X-Registry-Auth` header value made from it.

use std::fmt;
use std::path::PathBuf;

use super::base64::{Alphabet, encode};

/// Credentials for one registry: a user name and password, or an identity token (what
/// `docker login` keeps for registries that hand out refresh tokens).
///
/// `Debug` and `Display` show the registry, the user name and where the credential came from;
/// the password or token only ever leaves through [`RegistryCredential::x_registry_auth`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    server_address: String,
    kind: Kind,
    source: CredentialSource,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Password { username: String, password: Secret },
    IdentityToken(Secret),
}

/// A string that formats as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An `auths` entry of this config file.
    ConfigFile(PathBuf),
    /// This credential helper program (`docker-credential-NAME`).
    Helper(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::ConfigFile(p) => write!(f, "{}", p.display()),
            CredentialSource::Helper(program) => write!(f, "credential helper {program}"),
        }
    }
}

impl RegistryCredential {
    /// A user name and password for the registry at `server_address` (its config key, e.g.
    /// `ghcr.io` or `https://index.docker.io/v1/`).
    pub fn password(
        server_address: &str,
        username: &str,
        password: &str,
        source: CredentialSource,
    ) -> RegistryCredential {
        RegistryCredential {
            server_address: server_address.to_string(),
            kind: Kind::Password {
                username: username.to_string(),
                password: Secret(password.to_string()),
            },
            source,
        }
    }

    /// An identity token for the registry at `server_address`.
    pub fn identity_token(
        server_address: &str,
        token: &str,
        source: CredentialSource,
    ) -> RegistryCredential {
        RegistryCredential {
            server_address: server_address.to_string(),
            kind: Kind::IdentityToken(Secret(token.to_string())),
            source,
        }
    }

    /// The registry these credentials are for, as its config key.
    pub fn server_address(&self) -> &str {
        &self.server_address
    }

    /// The user name; none for an identity token.
    pub fn username(&self) -> Option<&str> {
        match &self.kind {
            Kind::Password { username, .. } => Some(username),
            Kind::IdentityToken(_) => None,
        }
    }

    /// Where the credential was found.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The `X-Registry-Auth` header value for `POST /images/create`: base64url (RFC 4648
    /// section 5, padded, as the Docker CLI sends it) of `{"username","password",
    /// "serveraddress"}`, or of `{"identitytoken","serveraddress"}`.
    ///
    /// This is the only way the secret leaves the value: send it to the daemon, never log it.
    pub fn x_registry_auth(&self) -> String {
        let json = match &self.kind {
            Kind::Password { username, password } => serde_json::json!({
                "username": username,
                "password": password.0,
                "serveraddress": self.server_address,
            }),
            Kind::IdentityToken(token) => serde_json::json!({
                "identitytoken": token.0,
                "serveraddress": self.server_address,
            }),
        };
        encode(json.to_string().as_bytes(), Alphabet::UrlSafe)
    }
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RegistryCredential");
        d.field("server_address", &self.server_address);
        match &self.kind {
            Kind::Password { username, password } => {
                d.field("username", username).field("password", password)
            }
            Kind::IdentityToken(token) => d.field("identity_token", token),
        };
        d.field("source", &self.source).finish()
    }
}

impl fmt::Display for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Password { username, .. } => write!(f, "user {username:?}")?,
            Kind::IdentityToken(_) => f.write_str("an identity token")?,
        }
        write!(f, " for {} (from {})", self.server_address, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::super::base64::decode;
    use super::*;

    fn decoded(header: &str) -> serde_json::Value {
        // base64url: no `+`, `/` (nor anything else a header value cannot hold).
        assert!(
            header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=')),
            "{header}"
        );
        serde_json::from_slice(&decode(header, Alphabet::UrlSafe).unwrap()).unwrap()
    }

    #[test]
    fn x_registry_auth_with_a_password_decodes_to_the_engine_api_json() {
        let source = CredentialSource::ConfigFile("/c.json".into());
        let c = RegistryCredential::password("ghcr.io", "alice", "~~~???>>>", source);
        let header = c.x_registry_auth();
        assert_eq!(
            decoded(&header),
            serde_json::json!({"username": "alice", "password": "~~~???>>>", "serveraddress": "ghcr.io"})
        );
        // This password makes `+` and `/` in the standard alphabet: the header has `-` and `_`.
        let json = decode(&header, Alphabet::UrlSafe).unwrap();
        let standard = encode(&json, Alphabet::Standard);
        assert!(
            standard.contains('+') && standard.contains('/'),
            "{standard}"
        );
        assert_eq!(header, standard.replace('+', "-").replace('/', "_"));
        assert_eq!(c.username(), Some("alice"));
        assert_eq!(c.server_address(), "ghcr.io");
    }

    #[test]
    fn x_registry_auth_with_an_identity_token() {
        let source = CredentialSource::Helper("docker-credential-x".into());
        let c =
            RegistryCredential::identity_token("https://index.docker.io/v1/", "tok\"en", source);
        assert_eq!(
            decoded(&c.x_registry_auth()),
            serde_json::json!({"identitytoken": "tok\"en", "serveraddress": "https://index.docker.io/v1/"})
        );
        assert_eq!(c.username(), None);
    }

    #[test]
    fn formatting_says_who_and_where_but_not_the_secret() {
        let c = RegistryCredential::password(
            "ghcr.io",
            "alice",
            "hunter2",
            CredentialSource::Helper("docker-credential-pass".into()),
        );
        assert_eq!(
            c.to_string(),
            "user \"alice\" for ghcr.io (from credential helper docker-credential-pass)"
        );
        assert_eq!(
            format!("{c:?}"),
            "RegistryCredential { server_address: \"ghcr.io\", username: \"alice\", \
             password: <redacted>, source: Helper(\"docker-credential-pass\") }"
        );
        let t = RegistryCredential::identity_token(
            "ghcr.io",
            "hunter2",
            CredentialSource::ConfigFile("/c.json".into()),
        );
        assert_eq!(
            t.to_string(),
            "an identity token for ghcr.io (from /c.json)"
        );
        assert!(format!("{t:?}").contains("identity_token: <redacted>"));
    }
}
