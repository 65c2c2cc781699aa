//! Services on containers wakeproxy did not create: `container: NAME`, or `compose_project`
//! with `compose_service`, and every container service's `depends_on`; the checks across
//! services (a dependency cycle is an error with its line).

use serde_yaml_ng::{Mapping, Value};

use super::formats::is_docker_name;
use super::read::{Ctx, FieldPath, Show, get};
use super::{Backend, ContainerSpec, Existing, Pull, PullPolicy, Service};

/// The keys of this module, allowed in every service entry (and refused where they do not fit).
pub(super) const EXISTING_KEYS: &[&str] = &[
    "container",
    "compose_project",
    "compose_service",
    "depends_on",
];

/// The backend of a service on an existing container, when the entry names one (`container`
/// or `compose_project`); `None` otherwise. `container_keys` and `compose` are the keys of a
/// container wakeproxy creates, and the Compose-style ones: refused here (all but
/// `internal_port`).
pub(super) fn backend(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    name: Option<&str>,
    (container_keys, compose): (&[&str], &[&str]),
) -> Option<Backend> {
    let target = match (get(map, "container"), get(map, "compose_project")) {
        (None, None) => {
            if get(map, "compose_service").is_some() {
                ctx.issue(
                    &path.key("compose_service"),
                    "only allowed with compose_project",
                );
            }
            return None;
        }
        (Some(_), Some(_)) => {
            let msg = "give either container or compose_project, not both";
            ctx.issue(&path.key("compose_project"), msg);
            return None;
        }
        (Some(v), None) => match docker_name(ctx, v, &path.key("container")) {
            Some(n) => Existing::Named(n),
            // Refused (the issue is recorded): no other backend is looked for.
            None => return Some(Backend::Upstream(String::new())),
        },
        (None, Some(v)) => {
            let project = docker_name(ctx, v, &path.key("compose_project"));
            let service = match get(map, "compose_service") {
                Some(v) => docker_name(ctx, v, &path.key("compose_service")),
                None => name.map(str::to_string),
            };
            let (Some(project), Some(service)) = (project, service) else {
                return Some(Backend::Upstream(String::new()));
            };
            Existing::Compose { project, service }
        }
    };
    // Every key that shapes a container wakeproxy creates, but the port it listens on.
    let create_only = container_keys.iter().filter(|k| **k != "internal_port");
    for k in ["image", "upstream"]
        .iter()
        .chain(create_only)
        .chain(compose)
    {
        if get(map, k).is_some() {
            let msg = format!(
                "{k} does not go with {}: wakeproxy starts and stops that container and never \
                 creates one",
                if matches!(target, Existing::Named(_)) {
                    "container"
                } else {
                    "compose_project"
                }
            );
            ctx.issue(&path.key(k), msg);
        }
    }
    let internal_port = ctx
        .key_uint(map, path, "internal_port", 1, 65535)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(8000);
    Some(Backend::Container(spec(target, internal_port)))
}

/// The spec of a service on existing container `target`: nothing to create, nothing to pull.
fn spec(target: Existing, internal_port: u16) -> ContainerSpec {
    ContainerSpec {
        image: String::new(),
        internal_port,
        host_port: None,
        environment: Vec::new(),
        volumes: Vec::new(),
        mem_limit: None,
        cpus: None,
        init: false,
        swarm: None,
        pull: Pull {
            policy: PullPolicy::Never,
            timeout: super::pull::DEFAULT_PULL_TIMEOUT,
        },
        run: Box::default(),
        existing: Some(target),
        depends_on: Vec::new(),
        compose_depends_on: false,
    }
}

/// A container or project name as Docker accepts it.
fn docker_name(ctx: &mut Ctx, v: &Value, p: &FieldPath) -> Option<String> {
    let s = ctx.string(v, p, Show::Value)?;
    if is_docker_name(&s) {
        return Some(s);
    }
    let msg = format!(
        "{s:?} is not a container name: use letters, digits, \"_\", \".\" and \"-\", starting \
         with a letter or digit"
    );
    ctx.issue(p, msg);
    None
}

/// `depends_on`: a list of container names; with `compose_project`, of that project's
/// services. Only for container services.
pub(super) fn depends_on(
    ctx: &mut Ctx,
    map: &Mapping,
    path: &FieldPath,
    backend: &Backend,
) -> Vec<Existing> {
    let p = path.key("depends_on");
    let Some(v) = get(map, "depends_on") else {
        return Vec::new();
    };
    let Backend::Container(spec) = backend else {
        ctx.issue(
            &p,
            "only container services have dependencies (not an upstream)",
        );
        return Vec::new();
    };
    let Some(list) = v.as_sequence() else {
        ctx.type_error(v, &p, "a list of container names", Show::Value);
        return Vec::new();
    };
    let project = match &spec.existing {
        Some(Existing::Compose { project, .. }) => Some(project.as_str()),
        _ => None,
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(name) = docker_name(ctx, item, &p.index(i)) else {
            continue;
        };
        let dep = match project {
            Some(project) => Existing::Compose {
                project: project.to_string(),
                service: name,
            },
            None => Existing::Named(name),
        };
        if spec.existing.as_ref() == Some(&dep) {
            ctx.issue(
                &p.index(i),
                format!("a service cannot depend on its own {dep}"),
            );
        } else if out.contains(&dep) {
            ctx.issue(&p.index(i), format!("{dep} is listed twice"));
        } else {
            out.push(dep);
        }
    }
    out
}

/// Every container service's dependencies, made transitive through the services that are
/// dependencies themselves (a service on container `db` that depends on `cache` makes
/// `cache` a dependency of everything that depends on `db`), in start order. A cycle is an
/// error on the `depends_on` of the service where it closes.
pub(super) fn resolve(ctx: &mut Ctx, services: &mut [Service], paths: &[FieldPath]) {
    let direct: Vec<(Option<Existing>, Vec<Existing>)> = services
        .iter()
        .map(|s| match s.container() {
            Some(c) => (c.existing.clone(), c.depends_on.clone()),
            None => (None, Vec::new()),
        })
        .collect();
    let deps_of = |e: &Existing| -> Vec<Existing> {
        direct
            .iter()
            .find(|(own, _)| own.as_ref() == Some(e))
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    for (i, s) in services.iter_mut().enumerate() {
        let Backend::Container(c) = &mut s.backend else {
            continue;
        };
        let mut order = Vec::new();
        let mut trail = Vec::new();
        for d in &direct[i].1 {
            if let Err(cycle) = visit(d, &deps_of, &mut order, &mut trail) {
                let msg = format!("dependency cycle: {}", cycle.join(" -> "));
                ctx.issue(&paths[i].key("depends_on"), msg);
                break;
            }
        }
        if let Some(own) = &c.existing
            && order.contains(own)
        {
            let msg = format!("dependency cycle: {own} depends on itself through its dependencies");
            ctx.issue(&paths[i].key("depends_on"), msg);
        }
        c.depends_on = order;
    }
}

/// Depth first: `e`'s dependencies, then `e`, into `order`; `Err` with the cycle's members.
fn visit(
    e: &Existing,
    deps_of: &dyn Fn(&Existing) -> Vec<Existing>,
    order: &mut Vec<Existing>,
    trail: &mut Vec<Existing>,
) -> Result<(), Vec<String>> {
    if order.contains(e) {
        return Ok(());
    }
    if let Some(at) = trail.iter().position(|t| t == e) {
        let mut cycle: Vec<String> = trail[at..].iter().map(ToString::to_string).collect();
        cycle.push(e.to_string());
        return Err(cycle);
    }
    trail.push(e.clone());
    for d in deps_of(e) {
        visit(&d, deps_of, order, trail)?;
    }
    trail.pop();
    order.push(e.clone());
    Ok(())
}
