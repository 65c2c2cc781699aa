//! Docker's client config file (`config.json`): where it is, what of it matters for pulls
//! (`auths`, `credsStore`, `credHelpers`), and which entry or helper answers for a registry,
//! in the order the Docker CLI asks them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::base64::{Alphabet, decode};
use super::credential::{CredentialSource, RegistryCredential};
use super::error::AuthError;
use super::helper::{self, RunHelper};
use super::reference::Registry;

/// The parts of the environment a credential lookup reads, taken as values so that tests (and
/// callers with their own settings) need not change the process's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthEnv {
    /// `DOCKER_CONFIG`: the directory holding `config.json`.
    pub docker_config: Option<OsString>,
    /// `HOME`: `config.json` is in `$HOME/.docker` when `DOCKER_CONFIG` is not set.
    pub home: Option<OsString>,
    /// `PATH`: where credential helpers are looked for.
    pub path: Option<OsString>,
}

impl AuthEnv {
    /// This process's `DOCKER_CONFIG`, `HOME` and `PATH`.
    pub fn from_process() -> AuthEnv {
        AuthEnv {
            docker_config: std::env::var_os("DOCKER_CONFIG"),
            home: std::env::var_os("HOME"),
            path: std::env::var_os("PATH"),
        }
    }
}

/// What a Docker client config file says about registry credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry. `auth` (base64 of `user:password`) wins over `username`/`password`, as
/// in the Docker CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The file as Docker writes it; every other key (`psFormat`, `proxies`, ...) is ignored.
#[derive(serde::Deserialize)]
struct RawConfig {
    auths: Option<BTreeMap<String, Option<AuthEntry>>>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers")]
    cred_helpers: Option<BTreeMap<String, String>>,
}

impl DockerConfig {
    /// Reads the config file the Docker CLI would: `explicit` when given (then it must
    /// exist), else `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. A default
    /// file that does not exist is an empty config (anonymous pulls); one that cannot be read
    /// or parsed is an error.
    pub fn load(explicit: Option<&Path>, env: &AuthEnv) -> Result<DockerConfig, AuthError> {
        let Some(path) = config_path(explicit, env) else {
            return Ok(DockerConfig::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => DockerConfig::parse(&text, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
                Ok(DockerConfig::default())
            }
            Err(e) => Err(AuthError::ConfigUnreadable {
                detail: describe_read_error(&e),
                path,
            }),
        }
    }

    /// Parses the text of the config file at `path` (named in errors and as the source of
    /// credentials). Empty text is an empty config, as for the Docker CLI. Entries are checked
    /// when they are used, so a broken entry for one registry does not stop pulls from others.
    pub fn parse(text: &str, path: &Path) -> Result<DockerConfig, AuthError> {
        let mut config = DockerConfig {
            path: Some(path.to_path_buf()),
            ..DockerConfig::default()
        };
        if text.trim().is_empty() {
            return Ok(config);
        }
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| AuthError::ConfigInvalid {
            path: path.to_path_buf(),
            detail: describe_parse_error(&e),
        })?;
        let auths = raw.auths.unwrap_or_default().into_iter();
        config.auths = auths.map(|(k, v)| (k, v.unwrap_or_default())).collect();
        config.creds_store = raw.creds_store;
        config.cred_helpers = raw.cred_helpers.unwrap_or_default();
        Ok(config)
    }

    /// The file this config was read from; none when there was no file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The credentials for `registry`, or `None` for an anonymous pull. As the Docker CLI does,
    /// the first of these that applies is the only one asked:
    ///
    /// 1. `credHelpers[key]`, the helper for this registry (an empty name means "use
    ///    `auths`");
    /// 2. `credsStore`, the helper for every registry;
    /// 3. `auths`: the entry whose key is exactly `key`, else one whose key reduces to it with
    ///    the scheme and path removed (`https://ghcr.io/v1/` → `ghcr.io`).
    ///
    /// `key` is [`Registry::config_key`]: the host, or `https://index.docker.io/v1/` for Docker
    /// Hub (whose entry therefore needs exactly that key). A helper that has no credentials
    /// gives `None`, without falling back to `auths` (the Docker CLI does not either).
    pub fn lookup(
        &self,
        registry: &Registry,
        helpers: &dyn RunHelper,
    ) -> Result<Option<RegistryCredential>, AuthError> {
        let key = registry.config_key();
        match self.helper_for(key) {
            Some(name) => helper::ask(helpers, name, key),
            None => self.in_auths(key),
        }
    }

    fn helper_for(&self, key: &str) -> Option<&str> {
        match self.cred_helpers.get(key) {
            Some(name) => Some(name.as_str()),
            None => self.creds_store.as_deref(),
        }
        .filter(|name| !name.is_empty())
    }

    fn in_auths(&self, key: &str) -> Result<Option<RegistryCredential>, AuthError> {
        let found = self.auths.get_key_value(key).or_else(|| {
            // Sorted keys: when two keys reduce to the same host, the choice is stable.
            (self.auths.iter()).find(|(k, _)| hostname_of_key(k) == key)
        });
        let Some((entry_key, entry)) = found else {
            return Ok(None);
        };
        let path = self.path.clone().unwrap_or_default();
        let bad = |detail: &str| AuthError::BadAuthEntry {
            path: path.clone(),
            key: entry_key.clone(),
            detail: detail.to_string(),
        };
        let source = CredentialSource::ConfigFile(path.clone());
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(RegistryCredential::identity_token(key, token, source)));
        }
        let (user, password) = match entry.auth.as_deref().filter(|a| !a.is_empty()) {
            Some(auth) => decode_auth(auth).map_err(bad)?,
            None => (
                entry.username.clone().unwrap_or_default(),
                entry.password.clone().unwrap_or_default(),
            ),
        };
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(RegistryCredential::password(
            key, &user, &password, source,
        )))
    }
}

/// Where the config file is: `explicit`, `$DOCKER_CONFIG/config.json` or
/// `$HOME/.docker/config.json` (empty variables count as unset); none without any of them.
pub(super) fn config_path(explicit: Option<&Path>, env: &AuthEnv) -> Option<PathBuf> {
    let set = |v: &Option<OsString>| v.clone().filter(|v| !v.is_empty());
    if let Some(p) = explicit {
        Some(p.to_path_buf())
    } else if let Some(dir) = set(&env.docker_config) {
        Some(PathBuf::from(dir).join("config.json"))
    } else {
        set(&env.home).map(|home| PathBuf::from(home).join(".docker").join("config.json"))
    }
}

/// The host (with its port) an `auths` key names, the Docker CLI's way: `https://ghcr.io/v1/`,
/// `http://ghcr.io` and `ghcr.io/v2/` all give `ghcr.io`.
pub(super) fn hostname_of_key(key: &str) -> &str {
    if let Some((_, rest)) = key.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host.strip_suffix(':').unwrap_or(host);
        if !host.is_empty() {
            return host;
        }
    }
    key.split('/').next().unwrap_or_default()
}

/// `auth`: standard base64 of `user:password`, the user not empty. Docker trims NUL bytes
/// some tools leave at the end of the password.
fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    let bytes = decode(auth, Alphabet::Standard).map_err(|_| "auth is not base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "auth is not UTF-8 text")?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => {
            Ok((user.to_string(), password.trim_matches('\0').to_string()))
        }
        Some(_) => Err("auth has an empty user name"),
        None => Err("auth is not `user:password`"),
    }
}

fn describe_read_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "it is a directory".into(),
        io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// Where and what kind, never serde's own message: it can quote the value it met, and that
/// value can be a password.
fn describe_parse_error(e: &serde_json::Error) -> String {
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "unexpected value at {at}: auths maps registries to objects, credHelpers maps \
             registries to helper names, credsStore is a helper name"
        ),
        serde_json::error::Category::Eof => format!("the JSON ends early ({at})"),
        _ => format!("not JSON ({at})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(docker_config: Option<&str>, home: Option<&str>) -> AuthEnv {
        AuthEnv {
            docker_config: docker_config.map(Into::into),
            home: home.map(Into::into),
            path: None,
        }
    }

    #[test]
    fn where_the_config_file_is() {
        let explicit = Path::new("/etc/wakeproxy/registry.json");
        let both = env(Some("/dc"), Some("/home/u"));
        assert_eq!(config_path(Some(explicit), &both).unwrap(), explicit);
        assert_eq!(
            config_path(None, &both).unwrap(),
            Path::new("/dc/config.json")
        );
        assert_eq!(
            config_path(None, &env(Some(""), Some("/home/u"))).unwrap(),
            Path::new("/home/u/.docker/config.json")
        );
        assert_eq!(config_path(None, &env(None, None)), None);
        assert_eq!(config_path(None, &env(None, Some(""))), None);
    }

    #[test]
    fn auths_keys_reduce_to_hosts() {
        for (key, host) in [
            ("ghcr.io", "ghcr.io"),
            ("https://ghcr.io", "ghcr.io"),
            ("https://ghcr.io/", "ghcr.io"),
            ("https://ghcr.io/v1/", "ghcr.io"),
            ("http://ghcr.io", "ghcr.io"),
            ("ghcr.io/v2/", "ghcr.io"),
            ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("https://user@reg.example:443", "reg.example:443"),
            ("https://reg.example:/", "reg.example"),
            ("https://index.docker.io/v1/", "index.docker.io"),
        ] {
            assert_eq!(hostname_of_key(key), host, "{key}");
        }
    }

    #[test]
    fn auth_values_decode_to_user_and_password() {
        // "alice:pa:ss\0" (a `:` in the password stays; the trailing NUL goes).
        assert_eq!(
            decode_auth("YWxpY2U6cGE6c3MA").unwrap(),
            ("alice".to_string(), "pa:ss".to_string())
        );
        assert_eq!(
            decode_auth("YWxpY2U6").unwrap(),
            ("alice".into(), "".into())
        );
        assert_eq!(decode_auth("%%%%"), Err("auth is not base64"));
        assert_eq!(decode_auth("YWxpY2U"), Err("auth is not `user:password`"));
        assert_eq!(decode_auth("OnB3"), Err("auth has an empty user name"));
        assert_eq!(decode_auth("/w=="), Err("auth is not UTF-8 text"));
    }

    #[test]
    fn parse_errors_say_where_but_not_what() {
        let p = Path::new("/c/config.json");
        let e = DockerConfig::parse(r#"{"auths": {"ghcr.io": "c2VjcmV0"}}"#, p).unwrap_err();
        let AuthError::ConfigInvalid { path, detail } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(path, p);
        assert!(
            detail.starts_with("unexpected value at line 1, column "),
            "{detail}"
        );
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        let e = DockerConfig::parse("{\n\"auths\": {", p).unwrap_err();
        assert!(e.to_string().contains("ends early (line 2"), "{e}");
        let e = DockerConfig::parse("auths=1", p).unwrap_err();
        assert!(e.to_string().contains("not JSON (line 1, column 1)"), "{e}");
    }

    #[test]
    fn empty_and_null_parts_are_empty() {
        let p = Path::new("/c/config.json");
        for text in [
            "",
            " \n",
            "{}",
            r#"{"auths":null,"credHelpers":null,"psFormat":"x"}"#,
        ] {
            let c = DockerConfig::parse(text, p).unwrap();
            assert!(c.auths.is_empty() && c.cred_helpers.is_empty(), "{text:?}");
            assert_eq!(c.creds_store, None);
            assert_eq!(c.path(), Some(p));
        }
        let c = DockerConfig::parse(r#"{"auths":{"ghcr.io":null}}"#, p).unwrap();
        assert_eq!(c.auths["ghcr.io"], AuthEntry::default());
    }
}
