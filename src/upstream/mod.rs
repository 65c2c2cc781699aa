//! The upstream side of a request: connections to backends kept alive in a pool, forwarding
//! one request and relaying its response (`forward`), and byte tunnels after an upgrade
//! (`tunnel`).

pub(crate) mod forward;
pub(crate) mod pool;
pub(crate) mod tunnel;

pub(crate) use forward::{Failure, Outcome, Timeouts, TunnelCtx};
pub(crate) use pool::Pool;
