//! A real image registry on 127.0.0.1 for the tests: Debian's `docker-registry` (distribution
//! 2.8), started on a free port with its storage in a temporary folder, stopped on drop. The
//! Docker daemon talks plain HTTP to registries on 127.0.0.0/8 without any configuration.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::docker::docker;
use super::{Proc, wait_for};

pub struct Registry {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Registry {
    /// Starts a registry keeping its data under `dir`.
    pub fn start(dir: &Path) -> Registry {
        let bin = "/usr/bin/docker-registry";
        assert!(
            Path::new(bin).exists(),
            "these tests need Debian's docker-registry package (apt-get install docker-registry); scripts/test.sh installs it"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = dir.join("registry.yml");
        let storage = dir.join("registry-data");
        std::fs::create_dir_all(&storage).unwrap();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let proc = Proc::spawn("docker-registry", cmd);
        wait_for("the registry to answer", Duration::from_secs(20), || {
            let s = std::net::TcpStream::connect(addr).ok()?;
            drop(s);
            Some(())
        });
        Registry { proc, addr }
    }

    /// `127.0.0.1:PORT/name:tag`.
    pub fn image(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.addr)
    }

    /// Tags local image `local` as `remote`, pushes it, and removes the local tag, so that
    /// the daemon must pull `remote` to have it. Returns the pushed image's id.
    pub fn push(&self, local: &str, remote: &str) -> String {
        docker(&["tag", local, remote]);
        docker(&["push", "-q", remote]);
        let id = docker(&["image", "inspect", "-f", "{{.Id}}", remote]);
        docker(&["rmi", remote]);
        id
    }
}
