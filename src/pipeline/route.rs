//! Routing: by the request's host name first, then by longest prefix on path-segment
//! boundaries. Pure.

use std::collections::HashMap;

use crate::config::HostPattern;

/// A prefix and the index of the service it leads to.
#[derive(Debug, Clone)]
struct Prefix {
    prefix: String,
    service: usize,
}

/// Longest-prefix routes of one host (or of services without a host).
#[derive(Debug, Clone, Default)]
struct Paths {
    /// Sorted by prefix length (longest first), then by service index: deterministic.
    routes: Vec<Prefix>,
}

impl Paths {
    fn add(&mut self, prefix: &str, service: usize) {
        self.routes.push(Prefix {
            prefix: prefix.to_string(),
            service,
        });
        self.routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.service.cmp(&b.service))
        });
    }

    fn lookup(&self, path: &str) -> Option<Match<'_>> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.prefix, path))
            .map(|r| Match {
                service: r.service,
                prefix: &r.prefix,
            })
    }
}

/// The router: by host first (exact names, then `*.` names), then by longest prefix; the
/// services without a host answer what no host's services do.
#[derive(Debug, Clone, Default)]
pub(super) struct Router {
    exact: HashMap<String, Paths>,
    /// At most one matches a name: a wildcard stands for exactly one label.
    wildcard: Vec<(HostPattern, Paths)>,
    any: Paths,
}

/// The route chosen for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Match<'a> {
    pub service: usize,
    /// The matched prefix as configured.
    pub prefix: &'a str,
}

impl Router {
    /// `services[i]` is service i's host (if any) and normalised prefix.
    pub(super) fn new<'a>(
        services: impl IntoIterator<Item = (Option<&'a HostPattern>, &'a str)>,
    ) -> Router {
        let mut r = Router::default();
        for (service, (host, path)) in services.into_iter().enumerate() {
            let paths = match host {
                None => &mut r.any,
                Some(HostPattern::Exact(name)) => r.exact.entry(name.clone()).or_default(),
                Some(h) => match r.wildcard.iter().position(|(w, _)| w == h) {
                    Some(i) => &mut r.wildcard[i].1,
                    None => {
                        r.wildcard.push((h.clone(), Paths::default()));
                        &mut r.wildcard.last_mut().expect("just pushed").1
                    }
                },
            };
            paths.add(path, service);
        }
        r
    }

    /// Whether any service has a host (else the request's name need not be read).
    pub(super) fn has_hosts(&self) -> bool {
        !self.exact.is_empty() || !self.wildcard.is_empty()
    }

    /// Whether `name` is one some service answers for by its `host`.
    pub(super) fn knows(&self, name: &str) -> bool {
        self.exact.contains_key(name) || self.wildcard.iter().any(|(w, _)| w.matches(name))
    }

    /// The service for a request to `name` (see `http::host::request_name`) and `path`.
    pub(super) fn lookup(&self, name: Option<&str>, path: &str) -> Option<Match<'_>> {
        let by_name = name.and_then(|n| {
            let exact = self.exact.get(n).and_then(|p| p.lookup(path));
            exact.or_else(|| {
                let (_, paths) = self.wildcard.iter().find(|(w, _)| w.matches(n))?;
                paths.lookup(path)
            })
        });
        by_name.or_else(|| self.any.lookup(path))
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let paths = ["/app", "/", "/app/admin", "/api/v1", "/dup", "/dup"];
        Router::new(paths.iter().map(|p| (None, *p)))
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router();
        let svc = |p: &str| r.lookup(None, p).map(|m| m.service);
        assert_eq!(svc("/app"), Some(0));
        assert_eq!(svc("/app/"), Some(0));
        assert_eq!(svc("/app/x/y"), Some(0));
        assert_eq!(svc("/apps"), Some(1));
        assert_eq!(svc("/app/admin/x"), Some(2));
        assert_eq!(svc("/app/administrator"), Some(0));
        assert_eq!(svc("/api/v1/users"), Some(3));
        assert_eq!(svc("/api/v2"), Some(1));
        assert_eq!(svc("/dup/x"), Some(4), "ties go to the earlier service");
        assert_eq!(
            r.lookup(Some("any.name"), "/app").map(|m| m.service),
            Some(0)
        );
        assert!(!r.has_hosts());
        let no_root = Router::new([(None, "/app")]);
        assert_eq!(no_root.lookup(None, "/apps"), None);
        assert_eq!(no_root.lookup(None, "/"), None);
    }

    fn host(h: &str) -> HostPattern {
        HostPattern::parse(h).unwrap()
    }

    #[test]
    fn hosts_first_then_wildcards_then_any_name() {
        let (wiki, apps, api, star_api) = (
            host("wiki.example.com"),
            host("*.example.com"),
            host("api.example.com"),
            host("*.api.example.com"),
        );
        let r = Router::new([
            (Some(&wiki), "/"),      // 0
            (Some(&apps), "/"),      // 1
            (Some(&api), "/v1"),     // 2
            (None, "/"),             // 3
            (None, "/v1"),           // 4
            (Some(&star_api), "/"),  // 5
            (Some(&wiki), "/admin"), // 6
        ]);
        let svc = |h: Option<&str>, p: &str| r.lookup(h, p).map(|m| m.service);
        assert!(r.has_hosts());
        assert_eq!(svc(Some("wiki.example.com"), "/x"), Some(0));
        assert_eq!(svc(Some("wiki.example.com"), "/admin/x"), Some(6));
        assert_eq!(svc(Some("blog.example.com"), "/v1"), Some(1), "wildcard");
        assert_eq!(
            svc(Some("api.example.com"), "/v1/x"),
            Some(2),
            "exact before wildcard"
        );
        assert_eq!(
            svc(Some("api.example.com"), "/other"),
            Some(1),
            "the exact name has no route for the path: the wildcard's"
        );
        assert_eq!(
            svc(Some("x.api.example.com"), "/v1"),
            Some(5),
            "one label only"
        );
        assert_eq!(svc(Some("a.b.api.example.com"), "/v1"), Some(4), "any name");
        assert_eq!(svc(Some("example.com"), "/"), Some(3));
        assert_eq!(svc(None, "/v1"), Some(4));
        assert!(r.knows("wiki.example.com") && r.knows("zz.example.com"));
        assert!(!r.knows("example.com") && !r.knows("evil.test"));
        let hosts_only = Router::new([(Some(&wiki), "/")]);
        assert_eq!(hosts_only.lookup(Some("evil.test"), "/"), None);
        assert_eq!(hosts_only.lookup(None, "/"), None);
    }
}
