//! Checks before the first request: what the Docker host offers each service (its image
//! present, pullable, or missing with `pull: never`; its existing container and dependencies
//! there, and not published on all addresses), whether `connect_mode: docker_dns` can
//! work where the proxy runs (in a container on `docker_network`), and whether the kernel offers IPVS for swarm VIPs. The facts are
//! gathered once (`gather`); what they mean is decided from values (`findings`), so the
//! judgement is tested without a daemon. `proxy-validate-config --docker` prints them; the
//! proxy logs them as warnings when it starts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, ConnectMode, EndpointMode, Existing, PullPolicy};
use crate::docker::Docker;
use crate::lifecycle::ExistingEngine;

/// What the daemon says of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// On the host.
    Present,
    /// Not on the host; the registry has it (`--docker` asks it).
    Pullable,
    /// Not on the host; the registry was not asked (at start-up, to keep it quick).
    Absent,
    /// Not on the host, and the registry says why not.
    Unavailable(String),
}

/// What the checks look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The proxy runs in a container on `docker_network` (so names on it resolve).
    pub on_network: bool,
    /// The kernel offers IPVS (`/proc/net/ip_vs`), which swarm VIPs need.
    pub ipvs: bool,
    pub images: BTreeMap<String, ImageState>,
    /// Every existing container a service runs on or depends on: `None` when it does not
    /// exist, else the internal ports it publishes on all addresses.
    pub existing: BTreeMap<Existing, Option<Vec<u16>>>,
}

/// One finding: `ok` lines say what is fine, the rest are warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub service: String,
    pub ok: bool,
    pub text: String,
}

/// What the facts mean for each service of `cfg`.
pub fn findings(cfg: &Config, facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &cfg.services {
        let Some(c) = s.container() else { continue };
        out.extend(existing_findings(&s.name, c, facts));
        if c.existing.is_some() {
            continue;
        }
        let say = |ok: bool, text: String| Finding {
            service: s.name.clone(),
            ok,
            text,
        };
        let policy = c.pull.policy;
        out.push(match (facts.images.get(&c.image), policy) {
            (Some(ImageState::Present), _) => say(true, format!("image {} present", c.image)),
            (_, PullPolicy::Never) => say(
                false,
                format!(
                    "image {} missing and pull: never: every request gets 503 until it is \
                     built or pulled (docker pull, or wakeproxy proxy-pull)",
                    c.image
                ),
            ),
            (Some(ImageState::Pullable), _) => say(
                true,
                format!("image {} pullable (the first request pulls it)", c.image),
            ),
            (Some(ImageState::Unavailable(why)), _) => say(
                false,
                format!("image {} missing and cannot be pulled: {why}", c.image),
            ),
            (Some(ImageState::Absent) | None, _) => say(
                true,
                format!(
                    "image {} not on this host: the first request pulls it",
                    c.image
                ),
            ),
        });
        if let Some(sw) = &c.swarm
            && sw.endpoint_mode == EndpointMode::Vip
            && !facts.ipvs
        {
            out.push(say(
                false,
                "endpoint_mode: vip needs IPVS, which this kernel lacks (no /proc/net/ip_vs): \
                 the service's virtual IP will not answer; use endpoint_mode: dnsrr"
                    .into(),
            ));
        }
    }
    let by_name = cfg.global.connect_mode == ConnectMode::DockerDns;
    let any_container = cfg.services.iter().any(|s| s.container().is_some());
    if by_name && any_container && !facts.on_network {
        let net = cfg.global.docker_network.as_deref().unwrap_or("(none)");
        out.push(Finding {
            service: "global".into(),
            ok: false,
            text: format!(
                "connect_mode: docker_dns reaches containers by name on network {net}, but this \
                 proxy does not run in a container on it, so the names will not resolve here: \
                 use connect_mode: host_port, or run the proxy in a container on {net}"
            ),
        });
    }
    out
}

/// Gathers the facts from the daemon and this host. `ask_registry`: for images not on the
/// host, ask their registry whether it has them (slow when a registry does not answer).
pub fn gather(cfg: &Config, docker: &Docker, ask_registry: bool) -> Result<Facts, String> {
    let mut images = BTreeMap::new();
    let creates = cfg.services.iter().filter_map(|s| s.container());
    for c in creates.filter(|c| c.existing.is_none()) {
        if images.contains_key(&c.image) {
            continue;
        }
        let state = match docker.image_inspect(&c.image) {
            Ok(Some(_)) => ImageState::Present,
            Ok(None) if !ask_registry || c.pull.policy == PullPolicy::Never => ImageState::Absent,
            Ok(None) => match docker.distribution_inspect(&c.image, None) {
                Ok(()) => ImageState::Pullable,
                Err(e) => ImageState::Unavailable(e.message()),
            },
            Err(e) => return Err(e.to_string()),
        };
        images.insert(c.image.clone(), state);
    }
    Ok(Facts {
        on_network: on_network(docker, cfg.global.docker_network.as_deref()),
        ipvs: Path::new("/proc/net/ip_vs").exists(),
        images,
        existing: existing_facts(cfg, docker)?,
    })
}

/// Whether each existing container named by the config exists, and what it publishes on all
/// addresses.
fn existing_facts(
    cfg: &Config,
    docker: &Docker,
) -> Result<BTreeMap<Existing, Option<Vec<u16>>>, String> {
    let engine = ExistingEngine {
        docker: docker.clone(),
    };
    let mut out = BTreeMap::new();
    for c in cfg.services.iter().filter_map(|s| s.container()) {
        for e in c.existing.iter().chain(&c.depends_on) {
            if out.contains_key(e) {
                continue;
            }
            let found = engine.locate(e).map_err(|e| e.0)?;
            let open = found.map(|info| {
                let wide = |b: &crate::docker::PortBinding| {
                    matches!(b.host_ip.as_str(), "" | "0.0.0.0" | "::")
                };
                let ports = info.ports.iter().filter(|(_, b)| b.iter().any(wide));
                ports
                    .filter_map(|(p, _)| p.split('/').next()?.parse().ok())
                    .collect()
            });
            out.insert(e.clone(), open);
        }
    }
    Ok(out)
}

/// `proxy-validate-config --docker`: the existing containers that do not exist, as errors at
/// their field (`services[i].container`, `.compose_project` or `.depends_on`).
pub fn unknown_containers(cfg: &Config, facts: &Facts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let Some(c) = s.container() else { continue };
        let missing = |e: &Existing| matches!(facts.existing.get(e), Some(None));
        if let Some(e) = c.existing.as_ref().filter(|e| missing(e)) {
            let key = match e {
                Existing::Named(_) => "container",
                Existing::Compose { .. } => "compose_project",
            };
            out.push((
                format!("services[{i}].{key}"),
                format!("{e} does not exist"),
            ));
        }
        for e in c.depends_on.iter().filter(|e| missing(e)) {
            let msg = format!("unknown dependency: {e} does not exist");
            out.push((format!("services[{i}].depends_on"), msg));
        }
    }
    out
}

/// What the facts say of a service's existing container and its dependencies.
fn existing_findings(
    service: &str,
    c: &crate::config::ContainerSpec,
    facts: &Facts,
) -> Vec<Finding> {
    let say = |ok: bool, text: String| Finding {
        service: service.to_string(),
        ok,
        text,
    };
    let mut out = Vec::new();
    for e in c.existing.iter().chain(&c.depends_on) {
        match facts.existing.get(e) {
            None => {}
            Some(None) => out.push(say(
                false,
                format!("{e} does not exist: every request gets 503 until it does"),
            )),
            Some(Some(open)) if !open.is_empty() => out.push(say(
                false,
                format!(
                    "{e} publishes port {open:?} on all addresses: anyone can reach it there \
                     without the token; publish it on 127.0.0.1 only"
                ),
            )),
            Some(Some(_)) => out.push(say(true, format!("{e} present"))),
        }
    }
    out
}

/// Whether this process runs in a container attached to `network`: Docker names a container's
/// host after its id, so the hostname finds it on this daemon (a container this daemon does not
/// know, on another swarm node, is taken at its word).
fn on_network(docker: &Docker, network: Option<&str>) -> bool {
    let (Some(net), Ok(host)) = (
        network,
        std::fs::read_to_string("/proc/sys/kernel/hostname"),
    ) else {
        return false;
    };
    match docker.inspect(host.trim()) {
        Ok(Some(c)) => c.networks.contains_key(net),
        // Not a container of this daemon: maybe one on another swarm node, attached to the
        // overlay there. Then it has a route to the overlay's subnet (which, unlike a bridge
        // network's, no host has).
        Ok(None) => {
            let swarm = crate::docker::Swarm::from_docker(docker.clone());
            let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
            swarm.network(net).ok().flatten().is_some_and(|n| {
                n.driver == "overlay" && n.subnets.iter().any(|s| routes_to(&routes, s))
            })
        }
        Err(_) => false,
    }
}

/// Whether the IPv4 route table `routes` (`/proc/net/route`) has a route for exactly the
/// subnet `cidr` (`10.0.1.0/24`), as an interface on that network has.
fn routes_to(routes: &str, cidr: &str) -> bool {
    let Some((addr, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(bits)) = (addr.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits.min(32)).unwrap_or(0);
    let want = (u32::from(addr) & mask, mask);
    // Destination and Mask are 32-bit hex in the kernel's (little-endian) byte order.
    let hex = |f: &str| u32::from_str_radix(f, 16).ok().map(u32::swap_bytes);
    routes.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 7 && hex(f[1]).zip(hex(f[7])) == Some(want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_to_the_subnet_tells_an_attached_container() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                      eth1\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                      eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert!(routes_to(routes, "10.0.1.0/24"));
        assert!(!routes_to(routes, "10.0.2.0/24"));
        assert!(!routes_to(routes, "10.0.0.0/16"));
        assert!(!routes_to(routes, "bogus"));
        assert!(!routes_to("", "10.0.1.0/24"));
    }

    fn config(extra_global: &str, services: &str) -> Config {
        let text = format!(
            "global:\n  bearer_token: 7b160a90a2bba89b2100d1f018f8eaa4\n{extra_global}services:\n{services}"
        );
        crate::config::parse(&text, "t.yaml", &|_| None).unwrap()
    }

    #[test]
    fn each_service_is_judged_by_its_image_and_policy() {
        let cfg = config(
            "  connect_mode: host_port\n",
            "  - name: here\n    path: /a\n    image: here:1\n\
             \x20 - name: never\n    path: /b\n    image: gone:1\n    pull: never\n\
             \x20 - name: fetch\n    path: /c\n    image: remote:1\n\
             \x20 - name: nope\n    path: /d\n    image: nope:1\n",
        );
        let facts = Facts {
            on_network: false,
            ipvs: true,
            images: BTreeMap::from([
                ("here:1".into(), ImageState::Present),
                ("gone:1".into(), ImageState::Absent),
                ("remote:1".into(), ImageState::Pullable),
                (
                    "nope:1".into(),
                    ImageState::Unavailable("manifest unknown".into()),
                ),
            ]),
            existing: BTreeMap::new(),
        };
        let f = findings(&cfg, &facts);
        let of = |name: &str| f.iter().find(|x| x.service == name).unwrap();
        assert!(of("here").ok && of("here").text.contains("present"));
        assert!(!of("never").ok && of("never").text.contains("pull: never"));
        assert!(of("fetch").ok && of("fetch").text.contains("pullable"));
        assert!(!of("nope").ok && of("nope").text.contains("manifest unknown"));
        assert_eq!(f.len(), 4, "host_port needs no container: {f:?}");
    }

    #[test]
    fn swarm_vips_without_ipvs_and_docker_dns_outside_a_container_are_warned() {
        let cfg = config(
            "  connect_mode: docker_dns\n  docker_network: wp-net\n",
            "  - name: sw\n    path: /\n    image: app:1\n    mode: swarm\n",
        );
        let facts = Facts {
            on_network: false,
            ipvs: false,
            images: BTreeMap::from([("app:1".into(), ImageState::Present)]),
            existing: BTreeMap::new(),
        };
        let f = findings(&cfg, &facts);
        assert!(
            f.iter()
                .any(|x| !x.ok && x.service == "sw" && x.text.contains("endpoint_mode: dnsrr")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|x| !x.ok && x.service == "global" && x.text.contains("wp-net")),
            "{f:?}"
        );
        let fine = Facts {
            on_network: true,
            ipvs: true,
            ..facts
        };
        assert!(findings(&cfg, &fine).iter().all(|x| x.ok));
    }

    #[test]
    fn existing_containers_missing_or_published_widely_are_warned() {
        let cfg = config(
            "  connect_mode: host_port\n",
            "  - name: web\n    path: /\n    container: web-c\n    depends_on: [db-c, gone-c]\n",
        );
        let named = |n: &str| Existing::Named(n.into());
        let facts = Facts {
            existing: BTreeMap::from([
                (named("web-c"), Some(vec![8000])),
                (named("db-c"), Some(vec![])),
                (named("gone-c"), None),
            ]),
            ..Facts::default()
        };
        let f = findings(&cfg, &facts);
        let texts: Vec<(bool, &str)> = f.iter().map(|x| (x.ok, x.text.as_str())).collect();
        assert!(
            texts.contains(&(
                false,
                "container web-c publishes port [8000] on all addresses: anyone can reach it there \
             without the token; publish it on 127.0.0.1 only"
            )),
            "{texts:?}"
        );
        assert!(
            texts.contains(&(true, "container db-c present")),
            "{texts:?}"
        );
        assert!(
            texts.contains(&(
                false,
                "container gone-c does not exist: every request gets 503 until it does"
            )),
            "{texts:?}"
        );
        assert_eq!(
            f.len(),
            3,
            "no image findings for an existing container: {f:?}"
        );
    }
}
