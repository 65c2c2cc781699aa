//! wakeproxy: a reverse proxy that starts Docker containers when their route is first asked
//! for and stops them when they go idle.
//!
//! # The life of a request
//!
//! The `server`'s poller accepts a connection (within `max_connections` and the per-address
//! cap) and holds it, at the cost of a socket and a small buffer, while it waits: for its TLS
//! handshake, for its request head, or between keep-alive requests, each with a deadline.
//! Once a head is complete a worker (at most `max_workers`) takes the connection and hands
//! the request to the pipeline with blocking I/O; after the answer it waits briefly for the
//! next request, then gives the connection back to the poller. The `pipeline` reads top to bottom as
//! named phases, each returning "continue with this" or "answer with this": framing, the
//! proxy's own endpoint, the HTTPS redirect, auth, route, limits, wake, forward. Its `respond`
//! step ends every request alike: the proxy's own answer rendered (HEAD, keep-alive and framing
//! decided once for all answers), the request counted, the access line written. `wake` asks
//! the `lifecycle` to make an on-demand service ready (concurrent first requests share one
//! start), `forward` sends the request `upstream` over a pooled keep-alive connection and
//! streams the answer back, or turns the connection into a tunnel after an upgrade.
//!
//! # Layers
//!
//! Modules depend one way, from the top down (`tests/architecture.rs` checks it):
//!
//! - [`app`]: the commands (`proxy`, `proxy-status`, `proxy-daemon`, ...) that build and run
//!   everything below;
//! - `server`: the poller, admission limits and deadlines, workers, graceful drain;
//! - `pipeline`: the phases above, routing, auth and the login session;
//! - `endpoints` (healthz, ACME, login, status, metrics, the HTTPS redirect), `upstream`
//!   (forward, pool, tunnel), `lifecycle` (start, reap, reconcile, events, the Docker
//!   engines) and [`tls`] (rustls, certificate reloads, certbot): each knows nothing of the
//!   layers above;
//! - [`http`] (parsing, framing, header rules, the proxy's own responses), [`config`] (the
//!   validated YAML) and [`docker`] (the Engine API client);
//! - `base`: the socket seam, timestamps, histograms.
//!
//! The binary (`src/main.rs`) is a thin shell over [`app`]. The library is public only as far
//! as the binary, the integration tests and the fuzz targets need it.
#![forbid(unsafe_code)]
// Items are `pub` only where the binary, the integration tests or the fuzz targets reach them.
#![warn(unreachable_pub)]

pub mod app;
mod base;
pub mod config;
pub mod docker;
mod endpoints;
pub mod http;
mod lifecycle;
mod pipeline;
mod server;
mod tls;
mod upstream;
