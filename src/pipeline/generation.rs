//! One configuration and everything built from it: the router and one `Route` per service
//! (its settings, its counters, its activity and, when on demand, its lifecycle). A reload
//! installs a new generation; requests already running keep the one they started with.
//! Counters and activity are kept by service name, so a reload loses neither.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::config::{Config, Global, Service};
use crate::endpoints::login::COOKIE;
use crate::endpoints::metrics::{Metrics, ServiceMetrics};
use crate::lifecycle::{Activity, Lifecycle, Wake};

use super::route::Router;

/// A service as requests reach it.
pub(crate) struct Route {
    pub service: Service,
    /// Requests in flight, open streams and last access (the reaper reads it).
    pub activity: Arc<Activity>,
    pub metrics: Arc<ServiceMetrics>,
    /// How an on-demand service is woken; `None` for upstreams (and for containers while
    /// the Docker daemon is not connected).
    pub wake: Option<Arc<dyn Wake>>,
    /// Whether the service's attempt to set the proxy's cookie has been logged (once).
    pub(super) cookie_logged: AtomicBool,
}

impl Route {
    /// The service tried to set the proxy's own cookie (the header was dropped): logged once.
    pub(super) fn own_cookie_dropped(&self) {
        if !self.cookie_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "service {}: dropped its Set-Cookie for {COOKIE}, the proxy's own session \
                 cookie (no service may set it); logged once",
                self.service.name
            );
        }
    }
}

/// One configuration, ready for requests.
pub(crate) struct Generation {
    pub global: Global,
    /// One per service, in config order.
    pub routes: Vec<Route>,
    pub(super) router: Router,
}

impl Generation {
    /// A generation with no services (before the first `install`).
    pub(super) fn empty(global: Global) -> Generation {
        Generation {
            router: Router::new(std::iter::empty()),
            routes: Vec::new(),
            global,
        }
    }
}

/// Activity records by service name, shared across generations.
#[derive(Default)]
pub(super) struct Activities(Mutex<HashMap<String, Arc<Activity>>>);

impl Activities {
    /// The activity of service `name` (created on first use).
    pub(super) fn of(&self, name: &str) -> Arc<Activity> {
        self.0
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Activity::new(Instant::now())))
            .clone()
    }
}

/// Builds the generation of `config`.
pub(super) fn build(
    config: Config,
    lifecycle: Option<&Lifecycle>,
    activities: &Activities,
    metrics: &Metrics,
) -> Generation {
    let router = Router::new(
        config
            .services
            .iter()
            .map(|s| (s.host.as_ref(), s.path.as_str())),
    );
    let routes = config
        .services
        .into_iter()
        .map(|service| Route {
            activity: activities.of(&service.name),
            metrics: metrics.service(&service.name),
            wake: lifecycle
                .and_then(|l| l.service(&service.name))
                .map(|m| m as Arc<dyn Wake>),
            cookie_logged: AtomicBool::new(false),
            service,
        })
        .collect();
    Generation {
        global: config.global,
        routes,
        router,
    }
}
