//! Packaging: the test backend is a workspace member of its own (`testbackend/`, never
//! published), so the `wakeproxy` package has one binary and `cargo install` of it installs
//! the proxy only.

mod support;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The cargo that runs these tests (Cargo sets `CARGO` for them), else the one on PATH.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// Runs `cmd` to its end; fails the test with cargo's stderr unless it succeeded.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}); its stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn bin_targets(package: &Value) -> Vec<&str> {
    package["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| t["name"].as_str().expect("target name"))
        .collect()
}

#[test]
fn testbackend_is_a_separate_unpublished_package() {
    let out = run(cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(Path::new(REPO).join("Cargo.toml")));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let package = |name: &str| {
        packages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name} in {packages:#?}"))
    };
    let mut names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["wakeproxy", "wakeproxy-testbackend"]);

    let product = package("wakeproxy");
    assert_eq!(bin_targets(product), ["wakeproxy"]);

    let backend = package("wakeproxy-testbackend");
    assert_eq!(bin_targets(backend), ["wakeproxy-testbackend"]);
    // `publish = false` reads as an empty list of registries it may be published to.
    let publish = &backend["publish"];
    assert!(
        publish == &Value::Bool(false) || publish.as_array().is_some_and(Vec::is_empty),
        "wakeproxy-testbackend must not be publishable, metadata says publish = {publish}"
    );
    let manifest = backend["manifest_path"].as_str().expect("manifest_path");
    assert!(
        Path::new(manifest).starts_with(Path::new(REPO).join("testbackend")),
        "{manifest}"
    );
    assert_ne!(product["manifest_path"], backend["manifest_path"]);
}

/// Builds in a target directory of its own (kept, so later runs are incremental): the
/// `cargo test` running this may hold the lock of the main one.
#[test]
fn cargo_install_installs_the_proxy_only() {
    let repo = Path::new(REPO);
    let root = support::TempDir::new("install-root");
    run(cargo()
        .arg("install")
        .arg("--path")
        .arg(repo)
        .arg("--root")
        .arg(root.path())
        .args(["--debug", "--locked", "--offline", "--target-dir"])
        .arg(repo.join("target/install-check")));
    let mut installed: Vec<String> = std::fs::read_dir(root.path().join("bin"))
        .expect("the install's bin directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort_unstable();
    assert_eq!(
        installed,
        [format!("wakeproxy{}", std::env::consts::EXE_SUFFIX)]
    );
}
