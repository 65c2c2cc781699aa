//! Pure parsers and checks for the single values of the Compose-style settings: labels, extra
//! hosts, tmpfs mounts, capabilities, `user`, `working_dir` and `gpus`. Each returns
//! `Err(message)`; the caller adds the field path and line.

use std::net::IpAddr;

use super::formats::check_bind;
use super::units::parse_size;
use super::{Gpus, Tmpfs};

/// The label prefix that belongs to wakeproxy (`wakeproxy.managed`, `wakeproxy.instance`, ...).
const OWN_LABEL_PREFIX: &str = "wakeproxy.";

/// The Linux capabilities Docker knows, without their `CAP_` prefix.
const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// A label key: not empty, no blanks or control characters, and not one of wakeproxy's own.
pub(super) fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a label key must not be empty".into());
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "label key {key:?} must not contain blanks or control characters"
        ));
    }
    if key.to_ascii_lowercase().starts_with(OWN_LABEL_PREFIX) {
        return Err(format!(
            "label {key:?} is reserved: keys starting with \"{OWN_LABEL_PREFIX}\" are wakeproxy's \
             own (they say which proxy owns the container); use another prefix, such as \
             com.example."
        ));
    }
    Ok(())
}

/// One item of the list form of `labels`: `KEY=VALUE`, or `KEY` for an empty value.
pub(super) fn parse_label_item(item: &str) -> Result<(String, String), String> {
    let (key, value) = item.split_once('=').unwrap_or((item, ""));
    check_label_key(key)?;
    Ok((key.to_string(), value.to_string()))
}

/// One item of the list form of `extra_hosts`: `host:ip` or `host=ip` (IPv6 with or without
/// brackets: `host:::1`, `host=[::1]`).
pub(super) fn parse_extra_host(item: &str) -> Result<(String, String), String> {
    let split = match (item.find('='), item.find(':')) {
        (Some(e), _) => item.split_at(e),
        (None, Some(c)) => item.split_at(c),
        (None, None) => {
            return Err(format!(
                "expected host:ip or host=ip, like db.internal:10.0.0.5, found {item:?}"
            ));
        }
    };
    let (host, ip) = (split.0, &split.1[1..]);
    check_extra_host(host, ip)
}

/// A host name (letters, digits, `-`, `_` and `.`) and an IP address or `host-gateway`;
/// returns them with the address in its plain form (brackets removed).
pub(super) fn check_extra_host(host: &str, ip: &str) -> Result<(String, String), String> {
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, '-', '_' and '.')"
        ));
    }
    let ip = ip.trim();
    if ip == "host-gateway" {
        return Ok((host.to_string(), ip.to_string()));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    match bare.parse::<IpAddr>() {
        Ok(addr) => Ok((host.to_string(), addr.to_string())),
        Err(_) => Err(format!(
            "the address of {host:?} must be an IP address or host-gateway, found {ip:?}"
        )),
    }
}

/// One tmpfs mount: `/path` or `/path:options` (`size=64m,mode=1777,noexec`, ...).
pub(super) fn parse_tmpfs(item: &str) -> Result<Tmpfs, String> {
    let (path, options) = item.split_once(':').unwrap_or((item, ""));
    check_bind(path).map_err(|e| e.replacen("bind", "a tmpfs path", 1))?;
    let mut tmpfs = Tmpfs {
        path: path.to_string(),
        options: options.to_string(),
        size: None,
        mode: None,
    };
    if options.is_empty() {
        return Ok(tmpfs);
    }
    for opt in options.split(',') {
        let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let value_ok = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok || !value_ok {
            return Err(format!(
                "tmpfs options are comma-separated words or name=value pairs, like \
                 size=64m,mode=1777,noexec; found {opt:?}"
            ));
        }
        match name {
            "size" => tmpfs.size = Some(parse_size(value).map_err(|e| format!("size: {e}"))?),
            "mode" => {
                let mode = u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777);
                let mode = mode.ok_or_else(|| {
                    format!("mode must be octal permissions like 1777 or 0755, found {value:?}")
                })?;
                tmpfs.mode = Some(mode);
            }
            _ => {}
        }
    }
    Ok(tmpfs)
}

/// A capability as Docker names it: `NET_ADMIN`, `cap_net_admin` and `CAP_NET_ADMIN` all give
/// `CAP_NET_ADMIN`; `ALL` stays `ALL`.
pub(super) fn normalise_capability(raw: &str) -> Result<String, String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if CAPABILITIES.contains(&bare) {
        return Ok(format!("CAP_{bare}"));
    }
    Err(format!(
        "{raw:?} is not a Linux capability: expected a name like NET_ADMIN or CAP_SYS_PTRACE \
         (see capabilities(7)), or ALL"
    ))
}

/// `user`: `name`, `uid`, `name:group` or `uid:gid`.
pub(super) fn check_user(user: &str) -> Result<(), String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let ok = match user.split_once(':') {
        Some((u, g)) => part_ok(u) && part_ok(g),
        None => part_ok(user),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a user like 1000, 1000:1000, app or app:staff, found {user:?}"
        ))
    }
}

/// `working_dir`: an absolute path without control characters.
pub(super) fn check_working_dir(dir: &str) -> Result<(), String> {
    if dir.starts_with('/') && !dir.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(format!(
            "expected an absolute path like /app, found {dir:?}"
        ))
    }
}

/// `gpus` written as a string: `all` or a positive count.
pub(super) fn parse_gpus(raw: &str) -> Result<Gpus, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("all") {
        return Ok(Gpus::All);
    }
    match raw.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Gpus::Count(n)),
        _ => Err(format!(
            "expected all or a number of GPUs (at least 1), found {raw:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_the_user_and_the_reserved_prefix() {
        assert_eq!(
            parse_label_item("com.example.team=web"),
            Ok(("com.example.team".into(), "web".into()))
        );
        assert_eq!(
            parse_label_item("a=b=c"),
            Ok(("a".into(), "b=c".into())),
            "the value may hold ="
        );
        assert_eq!(parse_label_item("flag"), Ok(("flag".into(), String::new())));
        for key in [
            "wakeproxy.instance",
            "wakeproxy.managed=false",
            "Wakeproxy.Service=x",
        ] {
            let e = parse_label_item(key).unwrap_err();
            assert!(e.contains("is reserved"), "{key}: {e}");
            assert!(e.contains("keys starting with \"wakeproxy.\""), "{e}");
        }
        assert!(check_label_key("wakeproxyish").is_ok());
        assert!(check_label_key("").unwrap_err().contains("empty"));
        assert!(check_label_key("a b").unwrap_err().contains("blanks"));
        assert!(parse_label_item("=x").unwrap_err().contains("empty"));
    }

    #[test]
    fn extra_hosts_in_every_form() {
        let ok = |item: &str, host: &str, ip: &str| {
            assert_eq!(
                parse_extra_host(item),
                Ok((host.to_string(), ip.to_string())),
                "{item}"
            );
        };
        ok("db.internal:10.0.0.5", "db.internal", "10.0.0.5");
        ok("db=10.0.0.5", "db", "10.0.0.5");
        ok("v6:::1", "v6", "::1");
        ok("v6=[fd00::1]", "v6", "fd00::1");
        ok("v6:[fd00::1]", "v6", "fd00::1");
        ok("gw:host-gateway", "gw", "host-gateway");
        for (item, fragment) in [
            ("nocolon", "expected host:ip"),
            ("db:10.0.0.300", "must be an IP address or host-gateway"),
            ("db:example.com", "must be an IP address"),
            (":10.0.0.1", "is not a host name"),
            ("a b:10.0.0.1", "is not a host name"),
        ] {
            let e = parse_extra_host(item).unwrap_err();
            assert!(e.contains(fragment), "{item}: {e}");
        }
    }

    #[test]
    fn tmpfs_paths_and_options() {
        let t = parse_tmpfs("/run").unwrap();
        assert_eq!(
            (t.path.as_str(), t.options.as_str(), t.size, t.mode),
            ("/run", "", None, None)
        );
        let t = parse_tmpfs("/tmp:size=64m,mode=1777,noexec").unwrap();
        assert_eq!(t.options, "size=64m,mode=1777,noexec");
        assert_eq!((t.size, t.mode), (Some(64 << 20), Some(0o1777)));
        assert_eq!(parse_tmpfs("/x:uid=1000,nr_inodes=5k").unwrap().size, None);
        for (item, fragment) in [
            ("tmp", "a tmpfs path must be an absolute path"),
            ("/tmp:size=lots", "size: expected a size like 512m"),
            ("/tmp:mode=999", "mode must be octal"),
            ("/tmp:mode=17777", "mode must be octal"),
            ("/tmp:size=1m,,noexec", "found \"\""),
            ("/tmp:Size=1m", "comma-separated"),
            ("/tmp:a b", "comma-separated"),
        ] {
            let e = parse_tmpfs(item).unwrap_err();
            assert!(e.contains(fragment), "{item}: {e}");
        }
    }

    #[test]
    fn capabilities_with_or_without_the_prefix() {
        for (raw, want) in [
            ("NET_ADMIN", "CAP_NET_ADMIN"),
            ("CAP_NET_ADMIN", "CAP_NET_ADMIN"),
            ("cap_sys_ptrace", "CAP_SYS_PTRACE"),
            ("chown", "CAP_CHOWN"),
            ("ALL", "ALL"),
            ("all", "ALL"),
        ] {
            assert_eq!(normalise_capability(raw).as_deref(), Ok(want), "{raw}");
        }
        for raw in ["NET_ADMN", "CAP_", "", "CAP_ALL", "NET ADMIN"] {
            let e = normalise_capability(raw).unwrap_err();
            assert!(e.contains("is not a Linux capability"), "{raw}: {e}");
            assert!(e.contains("like NET_ADMIN or CAP_SYS_PTRACE"), "{e}");
        }
    }

    #[test]
    fn users_directories_and_gpus() {
        for ok in ["1000", "1000:1000", "app", "app:staff", "www-data"] {
            assert!(check_user(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":", "1000:", "a b", "a:b:c", "root;rm"] {
            let e = check_user(bad).unwrap_err();
            assert!(e.contains("expected a user like 1000"), "{bad}: {e}");
        }
        assert!(check_working_dir("/srv/app").is_ok());
        let e = check_working_dir("srv").unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
        assert_eq!(parse_gpus("all"), Ok(Gpus::All));
        assert_eq!(parse_gpus("ALL"), Ok(Gpus::All));
        assert_eq!(parse_gpus("2"), Ok(Gpus::Count(2)));
        for bad in ["0", "-1", "some", "1.5"] {
            let e = parse_gpus(bad).unwrap_err();
            assert!(e.contains("expected all or a number of GPUs"), "{bad}: {e}");
        }
    }
}
