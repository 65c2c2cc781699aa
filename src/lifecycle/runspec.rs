//! The Compose-style settings of a service (`RunSettings`) in Docker's terms: their part of
//! the settings hash, of the body of `POST /containers/create`, and of a swarm service's
//! `ContainerSpec`; and the user's labels merged under wakeproxy's own. Pure.

use serde_json::{Map, Value, json};

use crate::config::{Gpus, RunSettings};

/// The rendering of `run` for the settings hash: empty when nothing is set, so the hash of a
/// service without these settings stays what it was before they existed. Every string is
/// written with its length, so no two different settings render alike.
pub(crate) fn hash_part(run: &RunSettings) -> String {
    if *run == RunSettings::default() {
        return String::new();
    }
    let s = |w: &str| format!("{}:{w}", w.len());
    let list = |ws: &[String]| ws.iter().map(|w| s(w)).collect::<Vec<_>>().join(",");
    let pairs = |ps: &[(String, String)]| {
        let ps = ps.iter().map(|(k, v)| format!("{}={}", s(k), s(v)));
        ps.collect::<Vec<_>>().join(",")
    };
    let mut out = String::from("|run");
    if let Some(c) = &run.command {
        out += &format!("|cmd=[{}]", list(c));
    }
    if let Some(e) = &run.entrypoint {
        out += &format!("|entrypoint=[{}]", list(e));
    }
    if let Some(u) = &run.user {
        out += &format!("|user={}", s(u));
    }
    if let Some(d) = &run.working_dir {
        out += &format!("|dir={}", s(d));
    }
    out += &format!("|labels=[{}]", pairs(&run.labels));
    out += &format!("|hosts=[{}]", pairs(&run.extra_hosts));
    out += &format!("|ro={}", run.read_only);
    let tmpfs: Vec<String> = run
        .tmpfs
        .iter()
        .map(|t| format!("{}={}", s(&t.path), s(&t.options)))
        .collect();
    out += &format!("|tmpfs=[{}]", tmpfs.join(","));
    out += &format!("|shm={:?}", run.shm_size);
    out += &format!(
        "|capadd=[{}]|capdrop=[{}]",
        list(&run.cap_add),
        list(&run.cap_drop)
    );
    out += &format!("|gpus={:?}", run.gpus);
    out
}

/// wakeproxy's `owner` labels with the user's labels added: a user label never replaces one
/// of wakeproxy's (the config refuses `wakeproxy.*` keys; this holds even if one got through).
pub(crate) fn merge_labels(owner: Map<String, Value>, user: &[(String, String)]) -> Value {
    let mut labels = Map::new();
    for (k, v) in user {
        labels.insert(k.clone(), json!(v));
    }
    labels.extend(owner);
    Value::Object(labels)
}

/// Adds `run` to a create body: `Cmd`, `Entrypoint`, `User` and `WorkingDir` to `body`, the
/// rest to its `host` config (`ExtraHosts`, `ReadonlyRootfs`, `Tmpfs`, `ShmSize`, `CapAdd`,
/// `CapDrop`, `DeviceRequests`). Only what is set is added.
pub(crate) fn apply_to_create(
    run: &RunSettings,
    body: &mut Map<String, Value>,
    host: &mut Map<String, Value>,
) {
    if let Some(c) = &run.command {
        body.insert("Cmd".into(), json!(c));
    }
    if let Some(e) = &run.entrypoint {
        body.insert("Entrypoint".into(), json!(e));
    }
    if let Some(u) = &run.user {
        body.insert("User".into(), json!(u));
    }
    if let Some(d) = &run.working_dir {
        body.insert("WorkingDir".into(), json!(d));
    }
    if !run.extra_hosts.is_empty() {
        let hosts: Vec<String> = run
            .extra_hosts
            .iter()
            .map(|(h, ip)| format!("{h}:{ip}"))
            .collect();
        host.insert("ExtraHosts".into(), json!(hosts));
    }
    if run.read_only {
        host.insert("ReadonlyRootfs".into(), json!(true));
    }
    if !run.tmpfs.is_empty() {
        let tmpfs: Map<String, Value> = run
            .tmpfs
            .iter()
            .map(|t| (t.path.clone(), json!(t.options)))
            .collect();
        host.insert("Tmpfs".into(), Value::Object(tmpfs));
    }
    if let Some(shm) = run.shm_size {
        host.insert("ShmSize".into(), json!(shm));
    }
    if !run.cap_add.is_empty() {
        host.insert("CapAdd".into(), json!(run.cap_add));
    }
    if !run.cap_drop.is_empty() {
        host.insert("CapDrop".into(), json!(run.cap_drop));
    }
    if let Some(gpus) = run.gpus {
        let count: i64 = match gpus {
            Gpus::All => -1,
            Gpus::Count(n) => i64::from(n),
        };
        host.insert(
            "DeviceRequests".into(),
            json!([{"Driver": "", "Count": count, "Capabilities": [["gpu"]]}]),
        );
    }
}

/// Adds `run` to a swarm `ContainerSpec`: `entrypoint` as `Command`, `command` as `Args`,
/// `User`, `Dir`, `Hosts` (`"ip host"`), `ReadOnly`, tmpfs `Mounts` (size and mode),
/// `CapabilityAdd` and `CapabilityDrop`. The config refuses what swarm has no place for
/// (`shm_size`, `gpus`, other tmpfs options).
pub(crate) fn apply_to_swarm(run: &RunSettings, spec: &mut Map<String, Value>) {
    if let Some(e) = &run.entrypoint {
        spec.insert("Command".into(), json!(e));
    }
    if let Some(c) = &run.command {
        spec.insert("Args".into(), json!(c));
    }
    if let Some(u) = &run.user {
        spec.insert("User".into(), json!(u));
    }
    if let Some(d) = &run.working_dir {
        spec.insert("Dir".into(), json!(d));
    }
    if !run.extra_hosts.is_empty() {
        let hosts: Vec<String> = run
            .extra_hosts
            .iter()
            .map(|(h, ip)| format!("{ip} {h}"))
            .collect();
        spec.insert("Hosts".into(), json!(hosts));
    }
    if run.read_only {
        spec.insert("ReadOnly".into(), json!(true));
    }
    if !run.tmpfs.is_empty() {
        let mounts = spec.entry("Mounts").or_insert_with(|| json!([]));
        for t in &run.tmpfs {
            let mut options = Map::new();
            if let Some(size) = t.size {
                options.insert("SizeBytes".into(), json!(size));
            }
            if let Some(mode) = t.mode {
                options.insert("Mode".into(), json!(mode));
            }
            if let Some(list) = mounts.as_array_mut() {
                list.push(json!({"Type": "tmpfs", "Target": t.path, "TmpfsOptions": options}));
            }
        }
    }
    if !run.cap_add.is_empty() {
        spec.insert("CapabilityAdd".into(), json!(run.cap_add));
    }
    if !run.cap_drop.is_empty() {
        spec.insert("CapabilityDrop".into(), json!(run.cap_drop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tmpfs;

    /// Every setting set.
    fn full() -> RunSettings {
        RunSettings {
            command: Some(vec!["--listen".into(), "0.0.0.0:8000".into()]),
            entrypoint: Some(vec!["/app".into()]),
            user: Some("1000:1000".into()),
            working_dir: Some("/work".into()),
            labels: vec![("com.example.team".into(), "web".into())],
            extra_hosts: vec![
                ("db.internal".into(), "10.0.0.5".into()),
                ("v6".into(), "::1".into()),
            ],
            read_only: true,
            tmpfs: vec![
                Tmpfs {
                    path: "/tmp".into(),
                    options: "size=64m,mode=1777".into(),
                    size: Some(64 << 20),
                    mode: Some(0o1777),
                },
                Tmpfs {
                    path: "/run".into(),
                    options: String::new(),
                    size: None,
                    mode: None,
                },
            ],
            shm_size: Some(128 << 20),
            cap_add: vec!["CAP_NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            gpus: Some(Gpus::All),
        }
    }

    #[test]
    fn nothing_set_adds_nothing() {
        let run = RunSettings::default();
        assert_eq!(hash_part(&run), "");
        let (mut body, mut host) = (Map::new(), Map::new());
        apply_to_create(&run, &mut body, &mut host);
        assert!(body.is_empty() && host.is_empty());
        let mut spec = Map::new();
        apply_to_swarm(&run, &mut spec);
        assert!(spec.is_empty());
    }

    #[test]
    fn the_create_body_carries_every_setting() {
        let (mut body, mut host) = (Map::new(), Map::new());
        apply_to_create(&full(), &mut body, &mut host);
        let (b, h) = (Value::Object(body), Value::Object(host));
        assert_eq!(b["Cmd"], json!(["--listen", "0.0.0.0:8000"]));
        assert_eq!(b["Entrypoint"], json!(["/app"]));
        assert_eq!(b["User"], "1000:1000");
        assert_eq!(b["WorkingDir"], "/work");
        assert_eq!(h["ExtraHosts"], json!(["db.internal:10.0.0.5", "v6:::1"]));
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(
            h["Tmpfs"],
            json!({"/tmp": "size=64m,mode=1777", "/run": ""})
        );
        assert_eq!(h["ShmSize"], 128u64 << 20);
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(
            h["DeviceRequests"],
            json!([{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}])
        );
    }

    #[test]
    fn a_gpu_count_is_sent_as_the_count() {
        let mut run = full();
        run.gpus = Some(Gpus::Count(2));
        let (mut body, mut host) = (Map::new(), Map::new());
        apply_to_create(&run, &mut body, &mut host);
        assert_eq!(host["DeviceRequests"][0]["Count"], 2);
        assert_eq!(host["DeviceRequests"][0]["Capabilities"], json!([["gpu"]]));
    }

    #[test]
    fn the_swarm_spec_carries_what_swarm_supports() {
        let mut spec = Map::new();
        spec.insert(
            "Mounts".into(),
            json!([{"Type": "bind", "Target": "/data"}]),
        );
        apply_to_swarm(&full(), &mut spec);
        let c = Value::Object(spec);
        assert_eq!(c["Command"], json!(["/app"]), "the entrypoint");
        assert_eq!(
            c["Args"],
            json!(["--listen", "0.0.0.0:8000"]),
            "the command"
        );
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["Dir"], "/work");
        assert_eq!(c["Hosts"], json!(["10.0.0.5 db.internal", "::1 v6"]));
        assert_eq!(c["ReadOnly"], true);
        assert_eq!(c["Mounts"][0]["Type"], "bind", "volumes stay first");
        assert_eq!(
            c["Mounts"][1],
            json!({"Type": "tmpfs", "Target": "/tmp",
                   "TmpfsOptions": {"SizeBytes": 64u64 << 20, "Mode": 0o1777}})
        );
        assert_eq!(
            c["Mounts"][2],
            json!({"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {}})
        );
        assert_eq!(c["CapabilityAdd"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(c["CapabilityDrop"], json!(["ALL"]));
        for absent in ["ShmSize", "DeviceRequests", "Entrypoint", "Cmd"] {
            assert!(c.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn user_labels_never_replace_wakeproxys_own() {
        let mut owner = Map::new();
        owner.insert("wakeproxy.service".into(), json!("blog"));
        let user = [
            ("wakeproxy.service".to_string(), "forged".to_string()),
            ("com.example.team".to_string(), "web".to_string()),
        ];
        let labels = merge_labels(owner, &user);
        assert_eq!(labels["wakeproxy.service"], "blog");
        assert_eq!(labels["com.example.team"], "web");
        assert_eq!(labels.as_object().unwrap().len(), 2);
    }

    #[test]
    fn every_setting_changes_the_hash_part() {
        let base = hash_part(&full());
        type Change = Box<dyn Fn(&mut RunSettings)>;
        let changes: Vec<(&str, Change)> = vec![
            (
                "command",
                Box::new(|r| r.command = Some(vec!["--listen 0.0.0.0:8000".into()])),
            ),
            ("entrypoint", Box::new(|r| r.entrypoint = None)),
            ("user", Box::new(|r| r.user = Some("1000".into()))),
            (
                "working_dir",
                Box::new(|r| r.working_dir = Some("/".into())),
            ),
            ("labels", Box::new(|r| r.labels[0].1 = "api".into())),
            ("extra_hosts", Box::new(|r| r.extra_hosts.truncate(1))),
            ("read_only", Box::new(|r| r.read_only = false)),
            ("tmpfs", Box::new(|r| r.tmpfs[1].options = "noexec".into())),
            ("shm_size", Box::new(|r| r.shm_size = None)),
            (
                "cap_add",
                Box::new(|r| r.cap_add.push("CAP_SYS_PTRACE".into())),
            ),
            ("cap_drop", Box::new(|r| r.cap_drop.clear())),
            ("gpus", Box::new(|r| r.gpus = Some(Gpus::Count(1)))),
        ];
        for (what, change) in changes {
            let mut run = full();
            change(&mut run);
            assert_ne!(
                hash_part(&run),
                base,
                "changing {what} must change the hash"
            );
        }
        let mut split = full();
        split.command = Some(vec!["--listen".into(), "0.0.0.0:8000".into()]);
        assert_eq!(hash_part(&split), base, "the same settings hash alike");
    }
}
