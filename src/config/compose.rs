//! The Compose-style keys of an image service (`command`, `entrypoint`, `user`, `working_dir`,
//! `labels`, `env_file`, `extra_hosts`, `read_only`, `tmpfs`, `shm_size`, `cap_add`,
//! `cap_drop`, `gpus`), read into `RunSettings`, and the merge of `env_file` variables with
//! `environment`.

use serde_yaml_ng::{Mapping, Value};

use super::compose_values::{
    check_extra_host, check_label_key, check_user, check_working_dir, normalise_capability,
    parse_extra_host, parse_gpus, parse_label_item, parse_tmpfs,
};
use super::envfile::parse_env_file;
use super::read::{Ctx, FieldPath, Show, get};
use super::shellwords::split_words;
use super::{Gpus, RunSettings, Tmpfs, Volume};

/// The Compose-style keys (image services only).
pub(super) const COMPOSE_KEYS: &[&str] = &[
    "command",
    "entrypoint",
    "user",
    "working_dir",
    "labels",
    "env_file",
    "extra_hosts",
    "read_only",
    "tmpfs",
    "shm_size",
    "cap_add",
    "cap_drop",
    "gpus",
];

/// Reads the Compose-style keys of the service at `path`. `volumes` are its bind mounts (a
/// tmpfs may not take one's place).
pub(super) fn run_settings(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    volumes: &[Volume],
) -> RunSettings {
    let user = scalar(ctx, map, path, "user").filter(|u| checked(ctx, path, "user", check_user(u)));
    let working_dir = scalar(ctx, map, path, "working_dir")
        .filter(|d| checked(ctx, path, "working_dir", check_working_dir(d)));
    RunSettings {
        command: words(ctx, map, path, "command"),
        entrypoint: words(ctx, map, path, "entrypoint"),
        user,
        working_dir,
        labels: labels(ctx, map, path),
        extra_hosts: extra_hosts(ctx, map, path),
        read_only: ctx.key_bool(map, path, "read_only").unwrap_or(false),
        tmpfs: tmpfs(ctx, map, path, volumes),
        shm_size: shm_size(ctx, map, path),
        cap_add: capabilities(ctx, map, path, "cap_add"),
        cap_drop: capabilities(ctx, map, path, "cap_drop"),
        gpus: gpus(ctx, map, path),
    }
}

/// `shm_size`: a size above 0.
fn shm_size(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<u64> {
    let v = get(map, "shm_size")?;
    let p = path.key("shm_size");
    let bytes = ctx.size(v, &p)?;
    if bytes == 0 {
        ctx.issue(
            &p,
            "must be more than 0 (leave it out for Docker's default, 64m)",
        );
        return None;
    }
    Some(bytes)
}

/// Records `result`'s error at `path.key`; true when it is Ok.
fn checked(ctx: &mut Ctx, path: &FieldPath, key: &str, result: Result<(), String>) -> bool {
    result.map_err(|e| ctx.issue(&path.key(key), e)).is_ok()
}

/// A string (or number) under `key`.
fn scalar(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, key: &str) -> Option<String> {
    let v = get(map, key)?;
    ctx.scalar_string(v, &path.key(key))
}

/// A string or a list of strings (numbers count as their text), each with its field path.
/// None (the issue recorded) when it is something else.
fn one_or_list(
    ctx: &mut Ctx,
    v: &Value,
    p: &FieldPath,
    expected: &str,
) -> Option<Vec<(FieldPath, String)>> {
    match v {
        Value::Sequence(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let ip = p.index(i);
                    ctx.scalar_string(item, &ip).map(|s| (ip, s))
                })
                .collect(),
        ),
        Value::String(_) | Value::Number(_) => {
            ctx.scalar_string(v, p).map(|s| vec![(p.clone(), s)])
        }
        _ => {
            ctx.type_error(v, p, expected, Show::Value);
            None
        }
    }
}

/// `command` or `entrypoint`: one string split into words like a shell does, or a list of
/// words taken as they are. Never empty.
fn words(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, key: &str) -> Option<Vec<String>> {
    let v = get(map, key)?;
    let p = path.key(key);
    let words = match v {
        Value::Sequence(_) => {
            let items = one_or_list(ctx, v, &p, "a string or a list of strings")?;
            items.into_iter().map(|(_, s)| s).collect()
        }
        Value::String(_) => {
            let line = ctx.string(v, &p, Show::Value)?;
            split_words(&line).map_err(|e| ctx.issue(&p, e)).ok()?
        }
        _ => {
            let expected = "a string (split like a shell does) or a list of strings";
            ctx.type_error(v, &p, expected, Show::Value);
            return None;
        }
    };
    if words.is_empty() {
        let msg = format!("must not be empty (leave {key} out to keep the image's own)");
        ctx.issue(&p, msg);
        return None;
    }
    Some(words)
}

/// `labels`: a mapping of key: value, or a list of `KEY=VALUE`.
fn labels(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<(String, String)> {
    let Some(v) = get(map, "labels") else {
        return Vec::new();
    };
    let p = path.key("labels");
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add =
        |ctx: &mut Ctx, at: &FieldPath, label: Result<(String, String), String>| match label {
            Ok((k, _)) if out.iter().any(|(o, _)| *o == k) => {
                ctx.issue(at, format!("label {k:?} is given twice"));
            }
            Ok(label) => out.push(label),
            Err(e) => ctx.issue(at, e),
        };
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let Some(key) = k.as_str() else {
                    ctx.type_error(k, &p, "label keys (strings)", Show::Value);
                    continue;
                };
                let kp = p.key(key);
                let label = check_label_key(key).map(|()| ctx.scalar_string(val, &kp));
                match label {
                    Ok(Some(value)) => add(ctx, &kp, Ok((key.to_string(), value))),
                    Ok(None) => {}
                    Err(e) => add(ctx, &kp, Err(e)),
                }
            }
        }
        Value::Sequence(_) => {
            for (ip, item) in one_or_list(ctx, v, &p, "").unwrap_or_default() {
                add(ctx, &ip, parse_label_item(&item));
            }
        }
        _ => {
            let expected = "a mapping of key: value or a list of \"KEY=VALUE\"";
            ctx.type_error(v, &p, expected, Show::Value);
        }
    }
    out
}

/// `extra_hosts`: a list of `host:ip` (or `host=ip`), or a mapping of host: ip.
fn extra_hosts(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<(String, String)> {
    let Some(v) = get(map, "extra_hosts") else {
        return Vec::new();
    };
    let p = path.key("extra_hosts");
    let mut out = Vec::new();
    match v {
        Value::Sequence(_) => {
            for (ip, item) in one_or_list(ctx, v, &p, "").unwrap_or_default() {
                match parse_extra_host(&item) {
                    Ok(entry) => out.push(entry),
                    Err(e) => ctx.issue(&ip, e),
                }
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let Some(host) = k.as_str() else {
                    ctx.type_error(k, &p, "host names (strings) as keys", Show::Value);
                    continue;
                };
                let hp = p.key(host);
                let Some(addr) = ctx.scalar_string(val, &hp) else {
                    continue;
                };
                match check_extra_host(host, &addr) {
                    Ok(entry) => out.push(entry),
                    Err(e) => ctx.issue(&hp, e),
                }
            }
        }
        _ => {
            let expected = "a list of \"host:ip\" or a mapping of host: ip";
            ctx.type_error(v, &p, expected, Show::Value);
        }
    }
    out
}

/// `tmpfs`: one `path[:options]` or a list of them; no two at one path, none at a volume's.
fn tmpfs(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, volumes: &[Volume]) -> Vec<Tmpfs> {
    let Some(v) = get(map, "tmpfs") else {
        return Vec::new();
    };
    let p = path.key("tmpfs");
    let expected = "a path like /tmp or a list of \"/path[:options]\"";
    let mut out: Vec<Tmpfs> = Vec::new();
    for (ip, item) in one_or_list(ctx, v, &p, expected).unwrap_or_default() {
        let t = match parse_tmpfs(&item) {
            Ok(t) => t,
            Err(e) => {
                ctx.issue(&ip, e);
                continue;
            }
        };
        if out.iter().any(|o| o.path == t.path) {
            ctx.issue(&ip, format!("{:?} is already a tmpfs mount", t.path));
        } else if let Some(vol) = volumes.iter().find(|v| v.bind == t.path) {
            let msg = format!("{:?} is already the bind of volume {:?}", t.path, vol.host);
            ctx.issue(&ip, msg);
        } else {
            out.push(t);
        }
    }
    out
}

/// `cap_add` or `cap_drop`: a list of capability names, as Docker names them.
fn capabilities(ctx: &mut Ctx, map: &Mapping, path: &FieldPath, key: &str) -> Vec<String> {
    let Some(v) = get(map, key) else {
        return Vec::new();
    };
    let p = path.key(key);
    if !v.is_sequence() {
        let expected = "a list of capabilities like [NET_ADMIN, SYS_PTRACE]";
        ctx.type_error(v, &p, expected, Show::Value);
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (ip, item) in one_or_list(ctx, v, &p, "").unwrap_or_default() {
        match normalise_capability(&item) {
            Ok(cap) if out.contains(&cap) => {}
            Ok(cap) => out.push(cap),
            Err(e) => ctx.issue(&ip, e),
        }
    }
    out
}

/// `gpus`: `all` or a positive count.
fn gpus(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Option<Gpus> {
    let v = get(map, "gpus")?;
    let p = path.key("gpus");
    let parsed = match v {
        Value::String(_) => parse_gpus(&ctx.string(v, &p, Show::Value)?),
        Value::Number(n) => parse_gpus(&n.to_string()),
        _ => {
            ctx.type_error(v, &p, "all or a number of GPUs", Show::Value);
            return None;
        }
    };
    parsed.map_err(|e| ctx.issue(&p, e)).ok()
}

/// `env_file`: one path or a list, relative to the config's directory, read in order (a later
/// file overrides an earlier one). Its values are never shown in messages.
pub(super) fn env_files(ctx: &mut Ctx, map: &Mapping, path: &FieldPath) -> Vec<(String, String)> {
    let Some(v) = get(map, "env_file") else {
        return Vec::new();
    };
    let p = path.key("env_file");
    let expected = "a path or a list of paths (relative to the config file's directory)";
    let mut vars: Vec<(String, String)> = Vec::new();
    for (ip, name) in one_or_list(ctx, v, &p, expected).unwrap_or_default() {
        if name.trim().is_empty() {
            ctx.issue(&ip, "must not be empty");
            continue;
        }
        let (file, text) = ctx.read_named_file(&name);
        let parsed = text.map(|text| parse_env_file(&text, &|n| ctx.var(n)));
        match parsed {
            Ok(Ok(read)) => vars = merge_environment(vars, read),
            Ok(Err(errors)) => {
                for e in errors {
                    let msg = format!("{} line {}: {}", file.display(), e.line, e.message);
                    ctx.issue(&ip, msg);
                }
            }
            Err(e) => ctx.issue(&ip, e),
        }
    }
    vars
}

/// `base` with `over` laid on it: a variable of `over` replaces the same one of `base` in its
/// place, the others follow in their order.
pub(super) fn merge_environment(
    base: Vec<(String, String)>,
    over: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut out = base;
    for (k, v) in over {
        match out.iter_mut().find(|(o, _)| *o == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// What swarm services cannot do: `shm_size`, `gpus`, and tmpfs options other than `size` and
/// `mode` (a swarm `ContainerSpec` has no place for them). Records an issue for each.
pub(super) fn refuse_for_swarm(ctx: &mut Ctx, path: &FieldPath, run: &RunSettings) {
    if run.shm_size.is_some() {
        let msg = "swarm services have no shm_size (swarm's ContainerSpec cannot set it); \
                   remove it or run the service with mode: container";
        ctx.issue(&path.key("shm_size"), msg);
    }
    if run.gpus.is_some() {
        let msg = "swarm services cannot take gpus (swarm hands out GPUs as generic resources \
                   configured on each node); remove it or run the service with mode: container";
        ctx.issue(&path.key("gpus"), msg);
    }
    for t in &run.tmpfs {
        let other = t.options.split(',').find(|o| {
            let name = o.split('=').next().unwrap_or_default();
            !o.is_empty() && name != "size" && name != "mode"
        });
        if let Some(opt) = other {
            let msg = format!(
                "tmpfs {:?}: swarm services take only the size= and mode= options, found {opt:?}",
                t.path
            );
            ctx.issue(&path.key("tmpfs"), msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_env_files_in_place() {
        let files = pairs(&[("A", "file"), ("B", "file"), ("C", "file")]);
        let env = pairs(&[("B", "env"), ("D", "env")]);
        assert_eq!(
            merge_environment(files, env),
            pairs(&[("A", "file"), ("B", "env"), ("C", "file"), ("D", "env")])
        );
        let env = pairs(&[("X", "1"), ("Y", "2")]);
        assert_eq!(
            merge_environment(Vec::new(), env.clone()),
            env,
            "without env_file the environment is as written"
        );
    }
}
