//! The Docker Engine API client (HTTP over the daemon's Unix socket).
//!
//! [`Docker`] makes the few calls wakeproxy needs (ping and version negotiation, containers,
//! images, networks, logs and the event stream) with ureq over a Unix socket. Calls block and
//! return typed values; statuses are mapped to [`DockerError`] with the daemon's own message.
//!
//! Layout: `transport` (the socket plumbing for ureq and `DOCKER_HOST`), `request` (a method
//! and a response read whole), `client` (the calls), `swarm` (the calls for services, tasks
//! and overlay networks of swarm mode), `types` and `swarm_types` (what the calls return, and
//! the raw JSON it is read from), `events`, `logs` (frame demultiplexing), `pull` (images from
//! their registry, with progress), `encode` (URL building, name checks, API versions),
//! `error`, and `auth` (registry credentials for pulls: config.json, credential helpers, the
//! `X-Registry-Auth` header).

mod auth;
mod client;
mod encode;
mod error;
mod events;
mod logs;
mod pull;
mod request;
mod swarm;
mod swarm_types;
#[cfg(test)]
mod tests;
mod transport;
mod types;

pub use auth::{
    AuthEnv, AuthError, CredentialSource, DOCKER_HUB_KEY, DockerConfig, HelperOutput,
    HelperProcess, Registry, RegistryCredential, RunHelper, credential_for_image,
    lookup_credential,
};
pub use client::Docker;
pub use encode::ApiVersion;
pub use error::DockerError;
pub use events::{Event, EventStream, EventStreamCloser};
pub use pull::{PullFailure, PullFigures, PullProgress, split_reference};
pub use swarm::{Swarm, is_not_manager};
pub use swarm_types::{NetworkInfo, NodeInfo, ServiceInfo, SwarmInfo, TaskInfo};
pub use types::{ContainerInfo, ContainerSummary, ImageInfo, PortBinding};
