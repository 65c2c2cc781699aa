//! No secret in any credential or error, however it is formatted: each is made the way the
//! lookup makes it, from inputs that hold the secret.

use std::path::Path;

use super::{FakeHelpers, answering, header_json};
use crate::docker::auth::base64::{Alphabet, encode};
use crate::docker::auth::{
    AuthEnv, AuthError, DockerConfig, Registry, RegistryCredential, lookup_credential,
};

const SECRET: &str = "Zq9-hunter2-7x";
const FILE: &str = "/home/u/.docker/config.json";

fn lookup(
    json: &str,
    image: &str,
    helpers: &FakeHelpers,
) -> Result<Option<RegistryCredential>, AuthError> {
    let config = DockerConfig::parse(json, Path::new(FILE))?;
    config.lookup(&Registry::of_image(image).unwrap(), helpers)
}

/// Every credential the lookup can make, each holding [`SECRET`].
fn credentials() -> Vec<RegistryCredential> {
    let auth = encode(format!("alice:{SECRET}").as_bytes(), Alphabet::Standard);
    let helper_json =
        format!(r#"{{"ServerURL":"ghcr.io","Username":"alice","Secret":"{SECRET}"}}"#);
    let helper_token = format!(r#"{{"Username":"<token>","Secret":"{SECRET}"}}"#);
    let found = [
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}}}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":{{"username":"alice","password":"{SECRET}"}}}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":{{"identitytoken":"{SECRET}"}}}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        lookup(
            r#"{"credsStore":"s"}"#,
            "ghcr.io/a",
            &answering(true, 0, &helper_json, ""),
        ),
        lookup(
            r#"{"credsStore":"s"}"#,
            "ghcr.io/a",
            &answering(true, 0, &helper_token, ""),
        ),
    ];
    found.into_iter().map(|c| c.unwrap().unwrap()).collect()
}

/// Every error the lookup can give, from inputs holding [`SECRET`] wherever one can be.
fn errors() -> Vec<AuthError> {
    let helper_json =
        format!(r#"{{"ServerURL":"ghcr.io","Username":"alice","Secret":"{SECRET}"}}"#);
    let store = r#"{"credsStore":"s"}"#;
    let results = [
        // An `auth` that is not base64 (the `-`): the value may be the password itself.
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{SECRET}"}}}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        // A value of the wrong type, which serde's own message would quote.
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":"{SECRET}"}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        lookup(
            &format!(r#"{{"auths":{{"ghcr.io":{{"password":"{SECRET}",}}}}}}"#),
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        // A helper that prints its answer and then fails, on stdout or on stderr.
        lookup(store, "ghcr.io/a", &answering(false, 1, &helper_json, "")),
        lookup(
            store,
            "ghcr.io/a",
            &answering(false, 1, "", &format!("{{\"Secret\": \"{SECRET}\"}}")),
        ),
        // A helper whose answer is not JSON.
        lookup(
            store,
            "ghcr.io/a",
            &answering(true, 0, &format!("alice:{SECRET}"), ""),
        ),
        lookup(
            store,
            "ghcr.io/a",
            &answering(true, 0, &helper_json[..40], ""),
        ),
        lookup(
            store,
            "ghcr.io/a",
            &FakeHelpers::new(|_, _| Err(std::io::ErrorKind::NotFound.into())),
        ),
        lookup(
            store,
            "ghcr.io/a",
            &FakeHelpers::new(|_, _| Err(std::io::ErrorKind::PermissionDenied.into())),
        ),
        lookup(
            r#"{"credsStore":"../x"}"#,
            "ghcr.io/a",
            &FakeHelpers::none(),
        ),
        Registry::of_image("a b").map(|_| None),
        lookup_credential(
            "ghcr.io/a",
            Some(Path::new("/nonexistent/c.json")),
            &AuthEnv::default(),
            &FakeHelpers::none(),
        ),
    ];
    results.into_iter().map(|r| r.unwrap_err()).collect()
}

#[test]
fn no_secret_in_any_formatted_credential_or_error() {
    let credentials = credentials();
    let errors = errors();
    // Each error kind is here at least once.
    let kinds: std::collections::BTreeSet<_> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    for c in &credentials {
        for text in [format!("{c}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        // The secret is there to leak: the header carries it to the daemon.
        let json = header_json(&c.x_registry_auth()).to_string();
        assert!(json.contains(SECRET), "{json}");
    }
    for e in &errors {
        for text in [format!("{e}"), format!("{e:?}"), format!("{e:#?}")] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
