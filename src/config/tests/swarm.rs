//! Tests for `mode: swarm`: the global and per-service `mode`, `replicas`, `endpoint_mode`,
//! and what swarm mode needs from the rest of the config (docker_dns, a docker_network).

use super::support::*;
use crate::config::{EndpointMode, RunMode, SwarmSettings};

/// A container service on lines 4-6, then `extra` from line 7 on.
fn svc(extra: &str) -> String {
    with_services(&format!(
        "  - name: app\n    path: /\n    image: app:latest\n{extra}"
    ))
}

/// `global` lines from line 3 on, then one service (`extra` after its three lines).
fn doc(global: &str, extra: &str) -> String {
    format!(
        "global:\n  bearer_token: {TOKEN}\n{global}services:\n  - name: app\n    path: /\n    image: app:latest\n{extra}"
    )
}

#[test]
fn container_is_the_default_mode() {
    let c = ok(&svc(""));
    assert_eq!(c.global.mode, RunMode::Container);
    assert_eq!(c.services[0].container().unwrap().swarm, None);
}

#[test]
fn per_service_swarm_mode_with_defaults_and_every_key() {
    let c = ok(&svc("    mode: swarm\n"));
    assert_eq!(
        c.services[0].container().unwrap().swarm,
        Some(SwarmSettings {
            replicas: 1,
            endpoint_mode: EndpointMode::Vip
        })
    );
    let c = ok(&svc(
        "    mode: swarm\n    replicas: 3\n    endpoint_mode: dnsrr\n",
    ));
    assert_eq!(
        c.services[0].container().unwrap().swarm,
        Some(SwarmSettings {
            replicas: 3,
            endpoint_mode: EndpointMode::Dnsrr
        })
    );
    let env = |n: &str| (n == "REPLICAS").then(|| "4".to_string());
    let c = ok_env(&svc("    mode: swarm\n    replicas: ${REPLICAS}\n"), &env);
    assert_eq!(
        c.services[0].container().unwrap().swarm.unwrap().replicas,
        4
    );
}

#[test]
fn global_mode_is_the_default_a_service_can_override() {
    let text = format!(
        "global:\n  bearer_token: {TOKEN}\n  mode: swarm\nservices:\n\
         - name: aa\n  path: /a\n  image: i\n  replicas: 2\n\
         - name: bb\n  path: /b\n  image: i\n  mode: container\n\
         - name: cc\n  path: /c\n  upstream: 127.0.0.1:9\n"
    );
    let c = ok(&text);
    assert_eq!(c.global.mode, RunMode::Swarm);
    assert_eq!(
        c.services[0].container().unwrap().swarm.unwrap().replicas,
        2
    );
    assert_eq!(c.services[1].container().unwrap().swarm, None);
    assert!(c.services[2].container().is_none());
}

#[test]
fn each_swarm_error_names_field_line_and_problem() {
    #[rustfmt::skip]
    let cases: Vec<(String, &str, usize, &str)> = vec![
        (svc("    mode: kubernetes\n"), "services[0].mode", 7, "expected container or swarm, found \"kubernetes\""),
        (svc("    mode: swarm\n").replace("name: app", "name: my.app"), "services[0].name", 4, "\"my.app\" cannot name a swarm service"),
        (doc("  mode: swarm\n", "").replace("name: app", "name: app-"), "services[0].name", 5, "must end with a letter or digit"),
        (svc("    mode: 1\n"), "services[0].mode", 7, "expected a string, found an integer 1"),
        (svc("    mode: swarm\n    replicas: 0\n"), "services[0].replicas", 8, "between 1 and 1000, found 0"),
        (svc("    mode: swarm\n    replicas: 1001\n"), "services[0].replicas", 8, "between 1 and 1000, found 1001"),
        (svc("    mode: swarm\n    replicas: two\n"), "services[0].replicas", 8, "expected an integer"),
        (svc("    mode: swarm\n    endpoint_mode: ingress\n"), "services[0].endpoint_mode", 8, "expected vip or dnsrr, found \"ingress\""),
        (svc("    replicas: 2\n"), "services[0].replicas", 7, "only used by swarm services (mode: swarm)"),
        (svc("    mode: container\n    endpoint_mode: vip\n"), "services[0].endpoint_mode", 8, "only used by swarm services"),
        (doc("  connect_mode: host_port\n", "    mode: swarm\n"), "services[0].mode", 8, "needs global connect_mode: docker_dns"),
        (doc("  docker_network: \"\"\n", "    mode: swarm\n"), "services[0].mode", 8, "needs a global docker_network"),
        (doc("  mode: swarm\n  connect_mode: host_port\n", ""), "global.mode", 3, "needs global connect_mode: docker_dns"),
        (doc("  mode: swarm\n  docker_network: \"\"\n", ""), "global.mode", 3, "needs a global docker_network"),
        (doc("  mode: cluster\n", ""), "global.mode", 3, "expected container or swarm, found \"cluster\""),
        (with_services("  - name: u\n    path: /\n    upstream: 127.0.0.1:9\n    mode: swarm\n"), "services[0].mode", 7, "only allowed for image services"),
        (with_services("  - name: u\n    path: /\n    upstream: 127.0.0.1:9\n    replicas: 2\n"), "services[0].replicas", 7, "only allowed for image services"),
        (svc("    mode: swarm\n    replica: 2\n"), "services[0].replica", 8, "did you mean \"replicas\"?"),
    ];
    for (text, field, line, fragment) in cases {
        expect_one(&text, field, Some(line), fragment);
    }
}

#[test]
fn a_container_service_does_not_need_docker_dns() {
    // Host-port mode stays fine for containers, also next to a global default of container.
    let c = ok(&doc("  connect_mode: host_port\n  mode: container\n", ""));
    assert_eq!(c.services[0].container().unwrap().swarm, None);
}
