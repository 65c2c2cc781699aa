//! The certificate keys of `global:`: the default pair (`tls_certfile` and `tls_keyfile`), the
//! `tls_certificates` list of more pairs, and the rule that each file belongs to one pair.

use std::path::PathBuf;

use serde_yaml_ng::{Mapping, Value};

use super::CertPair;
use super::read::{Ctx, FieldPath, Show, get};

/// The keys of one `tls_certificates` entry.
const PAIR_KEYS: &[&str] = &["certfile", "keyfile"];

/// What the certificate keys hold.
pub(super) struct TlsFiles {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub certificates: Vec<CertPair>,
}

/// Reads `tls_certfile`, `tls_keyfile` and `tls_certificates` of the `global:` mapping `map`.
pub(super) fn read(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> TlsFiles {
    let (certfile, keyfile) = default_pair(ctx, map, path);
    let listed = certificates(ctx, map, path);
    // Every file with where it is named and which pair it belongs to (a pair may name one
    // file twice: a chain and its key in one PEM file).
    let mut files: Vec<(&PathBuf, FieldPath, usize)> = Vec::new();
    for (name, file) in [("tls_certfile", &certfile), ("tls_keyfile", &keyfile)] {
        if let Some(f) = file {
            files.push((f, path.key(name), 0));
        }
    }
    for (i, (pair, p)) in listed.iter().enumerate() {
        files.push((&pair.certfile, p.key("certfile"), i + 1));
        files.push((&pair.keyfile, p.key("keyfile"), i + 1));
    }
    for (k, (file, field, owner)) in files.iter().enumerate() {
        let earlier = files[..k].iter().find(|(f, _, o)| f == file && o != owner);
        if let Some((_, first, _)) = earlier {
            let msg = format!(
                "{} is already used by {first}: each file belongs to one certificate, list \
                 each certificate once",
                file.display()
            );
            ctx.issue(field, msg);
        }
    }
    TlsFiles {
        certfile,
        keyfile,
        certificates: listed.into_iter().map(|(pair, _)| pair).collect(),
    }
}

/// `tls_certfile` and `tls_keyfile`: both or neither.
fn default_pair(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let key = |k: &str| path.key(k);
    let certfile = file_path(ctx, map, path, "tls_certfile");
    let keyfile = file_path(ctx, map, path, "tls_keyfile");
    let msg = "missing: tls_certfile and tls_keyfile must be given together";
    match (get(map, "tls_certfile"), get(map, "tls_keyfile")) {
        (Some(_), None) => ctx.issue_at(&key("tls_keyfile"), &key("tls_certfile"), msg),
        (None, Some(_)) => ctx.issue_at(&key("tls_certfile"), &key("tls_keyfile"), msg),
        _ => {}
    }
    (certfile, keyfile)
}

/// `tls_certificates`: a list of `{certfile, keyfile}`; each read entry with its path.
fn certificates(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<(CertPair, FieldPath)> {
    let p = path.key("tls_certificates");
    let Some(v) = get(map, "tls_certificates") else {
        return Vec::new();
    };
    let Some(list) = v.as_sequence() else {
        let expected = "a list of certificates, each with certfile and keyfile";
        ctx.type_error(v, &p, expected, Show::Value);
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let at = p.index(i);
            pair(ctx, item, &at).map(|pair| (pair, at))
        })
        .collect()
}

/// One entry: a mapping with both `certfile` and `keyfile` and nothing else.
fn pair(ctx: &mut Ctx, v: &Value, p: &FieldPath) -> Option<CertPair> {
    let Some(map) = v.as_mapping() else {
        ctx.type_error(v, p, "a mapping with certfile and keyfile", Show::Value);
        return None;
    };
    ctx.check_keys(map, p, PAIR_KEYS);
    let certfile = file_path(ctx, map, p, "certfile");
    let keyfile = file_path(ctx, map, p, "keyfile");
    for key in PAIR_KEYS {
        if get(map, key).is_none() {
            let msg = "missing: each certificate needs both certfile and keyfile";
            ctx.issue_at(&p.key(key), p, msg);
        }
    }
    Some(CertPair {
        certfile: certfile?,
        keyfile: keyfile?,
    })
}

/// A non-empty path (which may use `${VAR}`) under `name` in `map`, if set.
pub(super) fn file_path(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    name: &str,
) -> Option<PathBuf> {
    let p = path.key(name);
    let s = get(map, name).and_then(|v| ctx.string(v, &p, Show::Value))?;
    if s.trim().is_empty() {
        ctx.issue(&p, "must not be empty");
        return None;
    }
    Some(PathBuf::from(s))
}
