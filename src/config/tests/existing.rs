//! Tests for services on existing containers (`container:`, `compose_project`) and
//! `depends_on`: values, what does not go with them, and dependency cycles with their line.

use super::support::*;
use crate::config::{Backend, Existing};

fn deps(c: &crate::config::Config, i: usize) -> Vec<String> {
    match &c.services[i].backend {
        Backend::Container(s) => s.depends_on.iter().map(ToString::to_string).collect(),
        Backend::Upstream(_) => Vec::new(),
    }
}

#[test]
fn existing_containers_and_compose_services_with_transitive_dependencies() {
    let c = ok(&with_services(
        "  - name: web
    path: /web
    compose_project: shop
    depends_on: [api]
  - name: api
    path: /api
    compose_project: shop
    compose_service: backend-api
    depends_on: [db, cache]
  - name: tool
    path: /tool
    container: my-tool
    internal_port: 9000
    depends_on: [pg]
  - name: img
    path: /img
    image: app:1
    depends_on: [pg]
",
    ));
    let spec = c.services[1].container().unwrap();
    assert_eq!(
        spec.existing,
        Some(Existing::Compose {
            project: "shop".into(),
            service: "backend-api".into()
        })
    );
    assert_eq!(
        c.services[0]
            .container()
            .unwrap()
            .existing
            .as_ref()
            .unwrap()
            .to_string(),
        "compose service web of project shop"
    );
    // web depends on api (compose service `api`, not backend-api), which is not a service's
    // container here: only its own list.
    assert_eq!(deps(&c, 0), ["compose service api of project shop"]);
    assert_eq!(
        deps(&c, 1),
        [
            "compose service db of project shop",
            "compose service cache of project shop"
        ]
    );
    let tool = c.services[2].container().unwrap();
    assert_eq!(tool.existing, Some(Existing::Named("my-tool".into())));
    assert_eq!(tool.internal_port, 9000);
    assert_eq!(deps(&c, 2), ["container pg"]);
    assert_eq!(
        deps(&c, 3),
        ["container pg"],
        "an image service may depend on a container"
    );
}

#[test]
fn dependencies_are_transitive_through_services_in_start_order() {
    let c = ok(&with_services(
        "  - name: web
    path: /web
    container: web-c
    depends_on: [api-c]
  - name: api
    path: /api
    container: api-c
    depends_on: [db-c]
",
    ));
    assert_eq!(deps(&c, 0), ["container db-c", "container api-c"]);
}

#[test]
fn cycles_and_misplaced_keys_are_errors_with_their_line() {
    let cycle = with_services(
        "  - name: a
    path: /a
    container: a-c
    depends_on: [b-c]
  - name: b
    path: /b
    container: b-c
    depends_on: [a-c]
",
    );
    let found = issues(&cycle);
    assert_eq!(found.len(), 2, "{found:#?}");
    expect_issue(
        &found[0],
        "services[0].depends_on",
        Some(7),
        "dependency cycle",
        &cycle,
    );
    expect_issue(
        &found[1],
        "services[1].depends_on",
        Some(11),
        "dependency cycle",
        &cycle,
    );
    let own =
        with_services("  - name: a\n    path: /a\n    container: a-c\n    depends_on: [a-c]\n");
    expect_one(
        &own,
        "services[0].depends_on[0]",
        Some(7),
        "cannot depend on its own",
    );
    let both = with_services("  - name: a\n    path: /a\n    container: a-c\n    image: x\n");
    expect_one(
        &both,
        "services[0].image",
        Some(7),
        "does not go with container",
    );
    let env = with_services(
        "  - name: a\n    path: /a\n    compose_project: p\n    environment: {A: b}\n",
    );
    expect_one(
        &env,
        "services[0].environment",
        Some(7),
        "never creates one",
    );
    let up = with_services(
        "  - name: a\n    path: /a\n    upstream: 127.0.0.1:9\n    depends_on: [x]\n",
    );
    expect_one(&up, "services[0].depends_on", Some(7), "not an upstream");
    let lone =
        with_services("  - name: aa\n    path: /a\n    image: x\n    compose_service: web\n");
    expect_one(
        &lone,
        "services[0].compose_service",
        Some(7),
        "only allowed with compose_project",
    );
    let bad = with_services("  - name: a\n    path: /a\n    container: \"-x\"\n");
    expect_one(
        &bad,
        "services[0].container",
        Some(6),
        "is not a container name",
    );
}
