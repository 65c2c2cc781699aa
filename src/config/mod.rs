//! Configuration: reading `proxy.yaml`, `${VAR}` expansion, validation, and the typed model.
pub mod model;
pub use model::*;
