//! Which `auths` entry or helper answers for an image, in the Docker CLI's order.

use std::path::Path;

use super::{FakeHelpers, TempDir, header_json, output};
use crate::docker::auth::{
    AuthEnv, AuthError, CredentialSource, DockerConfig, Registry, RegistryCredential,
    lookup_credential,
};

const FILE: &str = "/home/u/.docker/config.json";
/// base64 of `alice:s3cr3t`.
const ALICE: &str = "YWxpY2U6czNjcjN0";

fn config(json: &str) -> DockerConfig {
    DockerConfig::parse(json, Path::new(FILE)).unwrap()
}

/// Looks `image` up in `json` without any helper.
fn from_file(json: &str, image: &str) -> Option<RegistryCredential> {
    let registry = Registry::of_image(image).unwrap();
    config(json)
        .lookup(&registry, &FakeHelpers::none())
        .unwrap()
}

fn alice(server: &str) -> RegistryCredential {
    RegistryCredential::password(
        server,
        "alice",
        "s3cr3t",
        CredentialSource::ConfigFile(FILE.into()),
    )
}

#[test]
fn an_auth_value_is_user_and_password() {
    let json = format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{ALICE}"}}}}}}"#);
    let c = from_file(&json, "ghcr.io/org/app:1.4").unwrap();
    assert_eq!(c, alice("ghcr.io"));
    assert_eq!(
        header_json(&c.x_registry_auth()),
        serde_json::json!({"username": "alice", "password": "s3cr3t", "serveraddress": "ghcr.io"})
    );
}

#[test]
fn username_and_password_fields_and_identity_tokens() {
    let json = r#"{"auths": {
        "127.0.0.1:5000": {"username": "alice", "password": "s3cr3t"},
        "quay.io": {"identitytoken": "tok", "username": "ignored"},
        "both.example": {"auth": "Ym9iOnB3", "username": "alice", "password": "s3cr3t"}
    }}"#;
    assert_eq!(
        from_file(json, "127.0.0.1:5000/app"),
        Some(alice("127.0.0.1:5000"))
    );
    let t = from_file(json, "quay.io/org/app").unwrap();
    let source = CredentialSource::ConfigFile(FILE.into());
    assert_eq!(
        t,
        RegistryCredential::identity_token("quay.io", "tok", source)
    );
    assert_eq!(
        header_json(&t.x_registry_auth()),
        serde_json::json!({"identitytoken": "tok", "serveraddress": "quay.io"})
    );
    // `auth` (bob:pw) wins over the separate fields, as in the Docker CLI.
    assert_eq!(
        from_file(json, "both.example/app").unwrap().username(),
        Some("bob")
    );
}

#[test]
fn keys_with_a_scheme_or_a_path_still_match_their_host() {
    for key in [
        "ghcr.io",
        "https://ghcr.io",
        "https://ghcr.io/",
        "https://ghcr.io/v1/",
        "http://ghcr.io",
        "ghcr.io/v2/",
    ] {
        let json = format!(r#"{{"auths": {{"{key}": {{"auth": "{ALICE}"}}}}}}"#);
        assert_eq!(
            from_file(&json, "ghcr.io/org/app:1.4"),
            Some(alice("ghcr.io")),
            "{key}"
        );
        // Another host, or the same host on another port, is another registry.
        assert_eq!(from_file(&json, "ghcr.io:5000/org/app"), None, "{key}");
        assert_eq!(from_file(&json, "docker.io/org/app"), None, "{key}");
    }
    let json = format!(r#"{{"auths": {{"http://127.0.0.1:5000/v2/": {{"auth": "{ALICE}"}}}}}}"#);
    assert!(from_file(&json, "127.0.0.1:5000/app").is_some());
    assert_eq!(from_file(&json, "127.0.0.1/app"), None);
}

#[test]
fn the_exact_key_wins_over_a_reduced_one() {
    let json = format!(
        r#"{{"auths": {{"https://ghcr.io/v1/": {{"auth": "Ym9iOnB3"}}, "ghcr.io": {{"auth": "{ALICE}"}}}}}}"#
    );
    assert_eq!(from_file(&json, "ghcr.io/a"), Some(alice("ghcr.io")));
}

#[test]
fn docker_hub_is_under_its_v1_url() {
    let json = format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{ALICE}"}}}}}}"#);
    for image in [
        "nginx",
        "nginx:1.27",
        "library/nginx",
        "docker.io/library/nginx",
        "org/app@sha256:0123abcd",
    ] {
        let c = from_file(&json, image).unwrap();
        assert_eq!(c, alice("https://index.docker.io/v1/"), "{image}");
    }
    // Keys the Docker CLI does not use for Docker Hub are not used here either.
    for key in ["docker.io", "index.docker.io", "https://index.docker.io"] {
        let json = format!(r#"{{"auths": {{"{key}": {{"auth": "{ALICE}"}}}}}}"#);
        assert_eq!(from_file(&json, "nginx"), None, "{key}");
    }
}

#[test]
fn no_entry_is_an_anonymous_pull() {
    let json = format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{ALICE}"}}, "quay.io": {{}}}}}}"#);
    assert_eq!(from_file(&json, "registry.example.com/app"), None);
    assert_eq!(from_file(&json, "nginx"), None);
    // `docker login` with a helper leaves empty entries behind.
    assert_eq!(from_file(&json, "quay.io/app"), None);
    assert_eq!(from_file("{}", "ghcr.io/app"), None);
    assert_eq!(from_file("", "ghcr.io/app"), None);
}

#[test]
fn a_broken_entry_fails_its_own_registry_only() {
    let json = format!(
        r#"{{"auths": {{"ghcr.io": {{"auth": "not base64!"}}, "quay.io": {{"auth": "{ALICE}"}}}}}}"#
    );
    let registry = Registry::of_image("ghcr.io/app").unwrap();
    let e = config(&json)
        .lookup(&registry, &FakeHelpers::none())
        .unwrap_err();
    assert_eq!(
        e,
        AuthError::BadAuthEntry {
            path: FILE.into(),
            key: "ghcr.io".into(),
            detail: "auth is not base64".into(),
        }
    );
    assert_eq!(from_file(&json, "quay.io/app"), Some(alice("quay.io")));
}

/// A config with a helper for ghcr.io, a default store and file entries for both registries;
/// each helper answers with its own name as the user.
const LAYERED: &str = r#"{
    "auths": {"ghcr.io": {"auth": "YWxpY2U6czNjcjN0"}, "quay.io": {"auth": "YWxpY2U6czNjcjN0"}},
    "credHelpers": {"ghcr.io": "gh"},
    "credsStore": "store"
}"#;

fn named_helpers() -> FakeHelpers {
    FakeHelpers::new(|program, url| {
        let answer = format!(r#"{{"ServerURL":"{url}","Username":"{program}","Secret":"x"}}"#);
        Ok(output(true, 0, &answer, ""))
    })
}

fn user_of(json: &str, image: &str, helpers: &FakeHelpers) -> Option<String> {
    let registry = Registry::of_image(image).unwrap();
    let c = config(json).lookup(&registry, helpers).unwrap();
    c.and_then(|c| c.username().map(str::to_string))
}

#[test]
fn cred_helpers_then_creds_store_then_auths() {
    let h = named_helpers();
    // credHelpers for this registry wins over credsStore and over auths.
    let user = user_of(LAYERED, "ghcr.io/org/app", &h);
    assert_eq!(user.as_deref(), Some("docker-credential-gh"));
    // Then credsStore, for every other registry, over auths.
    let user = user_of(LAYERED, "quay.io/org/app", &h);
    assert_eq!(user.as_deref(), Some("docker-credential-store"));
    // The helper is asked about the config key: the host, or Docker Hub's URL.
    let user = user_of(LAYERED, "nginx", &h);
    assert_eq!(user.as_deref(), Some("docker-credential-store"));
    let asked: Vec<_> = h
        .asked
        .borrow()
        .iter()
        .map(|(_, url)| url.clone())
        .collect();
    assert_eq!(asked, ["ghcr.io", "quay.io", "https://index.docker.io/v1/"]);
    // Without any helper, auths.
    let no_store =
        r#"{"auths": {"quay.io": {"auth": "YWxpY2U6czNjcjN0"}}, "credHelpers": {"ghcr.io": "gh"}}"#;
    let user = user_of(no_store, "quay.io/org/app", &FakeHelpers::none());
    assert_eq!(user.as_deref(), Some("alice"));
}

#[test]
fn a_helper_with_nothing_means_anonymous_even_with_an_auths_entry() {
    let not_found = super::answering(false, 1, "credentials not found in native keychain", "");
    assert_eq!(user_of(LAYERED, "quay.io/org/app", &not_found), None);
    assert_eq!(not_found.asked.borrow().len(), 1);
}

#[test]
fn an_empty_cred_helper_means_the_file_even_with_a_store() {
    let json = r#"{"auths": {"quay.io": {"auth": "YWxpY2U6czNjcjN0"}}, "credHelpers": {"quay.io": ""}, "credsStore": "store"}"#;
    let user = user_of(json, "quay.io/org/app", &FakeHelpers::none());
    assert_eq!(user.as_deref(), Some("alice"));
    let json = r#"{"auths": {"quay.io": {"auth": "YWxpY2U6czNjcjN0"}}, "credsStore": ""}"#;
    let user = user_of(json, "quay.io/org/app", &FakeHelpers::none());
    assert_eq!(user.as_deref(), Some("alice"));
}

#[test]
fn config_files_on_disk() {
    let dir = TempDir::new("load");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let in_home = home.join(".docker/config.json");
    std::fs::write(
        &in_home,
        format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{ALICE}"}}}}}}"#),
    )
    .unwrap();
    let explicit = dir.write(
        "registry.json",
        r#"{"auths": {"ghcr.io": {"auth": "Ym9iOnB3"}}}"#,
    );
    let env = AuthEnv {
        home: Some(home.clone().into()),
        ..AuthEnv::default()
    };
    let user = |file: Option<&Path>, env: &AuthEnv| {
        let c = lookup_credential("ghcr.io/a", file, env, &FakeHelpers::none()).unwrap();
        c.map(|c| (c.username().unwrap().to_string(), c.source().clone()))
    };
    let from_home = CredentialSource::ConfigFile(in_home.clone());
    assert_eq!(user(None, &env), Some(("alice".into(), from_home)));
    let from_explicit = CredentialSource::ConfigFile(explicit.clone());
    assert_eq!(
        user(Some(&explicit), &env),
        Some(("bob".into(), from_explicit))
    );
    // DOCKER_CONFIG names a directory without config.json: no credentials, not $HOME's.
    let empty_dir = AuthEnv {
        docker_config: Some(dir.path().join("elsewhere").into()),
        ..env.clone()
    };
    assert_eq!(user(None, &empty_dir), None);
    // An explicit file must exist; so must be readable whichever file it is.
    let missing = dir.path().join("missing.json");
    let e = lookup_credential("ghcr.io/a", Some(&missing), &env, &FakeHelpers::none());
    let want = AuthError::ConfigUnreadable {
        path: missing,
        detail: "no such file".into(),
    };
    assert_eq!(e.unwrap_err(), want);
    let e = lookup_credential("ghcr.io/a", Some(dir.path()), &env, &FakeHelpers::none());
    assert!(
        matches!(e, Err(AuthError::ConfigUnreadable { .. })),
        "{e:?}"
    );
    // The image is checked first.
    let e = lookup_credential("a b", None, &env, &FakeHelpers::none());
    assert_eq!(e.unwrap_err(), AuthError::InvalidImage("a b".into()));
}
