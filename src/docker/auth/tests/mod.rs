//! Registry credentials end to end: the lookup order with fake helpers, config files on disk,
//! real helper scripts, and that no secret is ever formatted.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{HelperOutput, RunHelper};

mod lookup;
mod process;
mod redaction;

type Reply = dyn Fn(&str, &str) -> io::Result<HelperOutput>;

/// Answers every `get` with `reply(program, server_url)`, recording what it was asked.
pub(super) struct FakeHelpers {
    reply: Box<Reply>,
    pub(super) asked: RefCell<Vec<(String, String)>>,
}

impl FakeHelpers {
    pub(super) fn new(
        reply: impl Fn(&str, &str) -> io::Result<HelperOutput> + 'static,
    ) -> FakeHelpers {
        FakeHelpers {
            reply: Box::new(reply),
            asked: RefCell::new(Vec::new()),
        }
    }

    /// For lookups that must not run any helper.
    pub(super) fn none() -> FakeHelpers {
        FakeHelpers::new(|program, _| panic!("{program} was run"))
    }
}

impl RunHelper for FakeHelpers {
    fn get(&self, program: &str, server_url: &str) -> io::Result<HelperOutput> {
        let asked = (program.to_string(), server_url.to_string());
        self.asked.borrow_mut().push(asked);
        (self.reply)(program, server_url)
    }
}

/// A fake helper that always answers with this exit and output.
pub(super) fn answering(success: bool, code: i32, stdout: &str, stderr: &str) -> FakeHelpers {
    let out = output(success, code, stdout, stderr);
    FakeHelpers::new(move |_, _| Ok(out.clone()))
}

pub(super) fn output(success: bool, code: i32, stdout: &str, stderr: &str) -> HelperOutput {
    HelperOutput {
        success,
        code: Some(code),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

/// A unique temporary directory, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wp-regauth-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in the directory and returns its path.
    pub(super) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON an `X-Registry-Auth` value encodes.
pub(super) fn header_json(header: &str) -> serde_json::Value {
    let bytes = super::base64::decode(header, super::base64::Alphabet::UrlSafe).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
