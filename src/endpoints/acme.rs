//! Serving ACME http-01 challenge files from the webroot: token alphabet checked, no path
//! traversal, no symlink escaping the webroot.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::http::{Problem, Reply};

/// Largest challenge file served (real ones are under 100 bytes).
const MAX_FILE: u64 = 16 * 1024;

/// ACME tokens are base64url: `[A-Za-z0-9_-]+` (RFC 8555 section 8.3).
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `/.well-known/acme-challenge/<token>`: the file's content, or 404.
pub(crate) fn answer(webroot: &Path, token: &str) -> Reply {
    match challenge(webroot, token) {
        Ok(bytes) => Reply::ok("text/plain", bytes),
        Err(p) => p.into(),
    }
}

/// The content of `<webroot>/.well-known/acme-challenge/<token>`, or 404.
fn challenge(webroot: &Path, token: &str) -> Result<Vec<u8>, Problem> {
    let not_found = || Problem::NotFound("no such ACME challenge".into());
    if !valid_token(token) {
        return Err(not_found());
    }
    let dir = webroot.join(".well-known").join("acme-challenge");
    let file = dir.join(token);
    let (Ok(real_root), Ok(real_file)) = (fs::canonicalize(webroot), fs::canonicalize(&file))
    else {
        return Err(not_found());
    };
    if !real_file.starts_with(&real_root) {
        log::warn!("ACME challenge {token} resolves outside the webroot; refused");
        return Err(not_found());
    }
    let f = fs::File::open(&real_file).map_err(|_| not_found())?;
    let meta = f.metadata().map_err(|_| not_found())?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(not_found());
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE)
        .read_to_end(&mut out)
        .map_err(|_| not_found())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("wakeproxy-acme-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join(".well-known/acme-challenge")).unwrap();
        d
    }

    #[test]
    fn serves_valid_tokens_only() {
        let root = tmpdir("serve");
        fs::write(
            root.join(".well-known/acme-challenge/abc_DEF-123"),
            b"abc.key",
        )
        .unwrap();
        assert_eq!(challenge(&root, "abc_DEF-123").unwrap(), b"abc.key");
        assert!(challenge(&root, "missing").is_err());
        assert!(challenge(&root, "..").is_err());
        assert!(challenge(&root, "a/../b").is_err());
        assert!(challenge(&root, "").is_err());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn symlink_escape_is_refused() {
        let root = tmpdir("link");
        let outside = root.with_extension("outside");
        fs::write(&outside, b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".well-known/acme-challenge/evil")).unwrap();
        assert!(challenge(&root, "evil").is_err());
        let _ = fs::remove_file(&outside);
        let _ = fs::remove_dir_all(&root);
    }
}
