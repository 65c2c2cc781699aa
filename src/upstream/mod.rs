//! The upstream side of a request: connections to backends kept alive in a pool, forwarding
//! one request and relaying its response (`forward`), and byte tunnels after an upgrade
//! (`tunnel`).

pub mod forward;
pub mod pool;
pub mod tunnel;

pub use forward::{Failure, Outcome, Timeouts, TunnelCtx};
pub use pool::Pool;
