//! Longest-prefix routing on path-segment boundaries. Pure.

/// A prefix and the index of the service it leads to.
#[derive(Debug, Clone)]
struct Prefix {
    prefix: String,
    service: usize,
}

/// Longest-prefix router over the services' paths.
#[derive(Debug, Clone, Default)]
pub(super) struct Router {
    /// Sorted by prefix length (longest first), then by service index: deterministic.
    routes: Vec<Prefix>,
}

/// The route chosen for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Match<'a> {
    pub service: usize,
    /// The matched prefix as configured.
    pub prefix: &'a str,
}

impl Router {
    /// `paths[i]` is service i's normalised prefix.
    pub(super) fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Router {
        let mut routes: Vec<Prefix> = paths
            .into_iter()
            .enumerate()
            .map(|(service, p)| Prefix {
                prefix: p.to_string(),
                service,
            })
            .collect();
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.service.cmp(&b.service))
        });
        Router { routes }
    }

    /// The longest prefix matching `path` on a segment boundary.
    pub(super) fn lookup(&self, path: &str) -> Option<Match<'_>> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.prefix, path))
            .map(|r| Match {
                service: r.service,
                prefix: &r.prefix,
            })
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
        Router::new(["/app", "/", "/app/admin", "/api/v1", "/dup", "/dup"])
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router();
        let svc = |p: &str| r.lookup(p).map(|m| m.service);
        assert_eq!(svc("/app"), Some(0));
        assert_eq!(svc("/app/"), Some(0));
        assert_eq!(svc("/app/x/y"), Some(0));
        assert_eq!(svc("/apps"), Some(1));
        assert_eq!(svc("/app/admin/x"), Some(2));
        assert_eq!(svc("/app/administrator"), Some(0));
        assert_eq!(svc("/api/v1/users"), Some(3));
        assert_eq!(svc("/api/v2"), Some(1));
        assert_eq!(svc("/dup/x"), Some(4), "ties go to the earlier service");
        let no_root = Router::new(["/app"]);
        assert_eq!(no_root.lookup("/apps"), None);
        assert_eq!(no_root.lookup("/"), None);
    }
}
