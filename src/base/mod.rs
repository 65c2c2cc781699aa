//! Small pieces everything else builds on, and that depend on nothing of wakeproxy's: the
//! socket seam, the pipe that `splice(2)` moves bytes through, RFC 3339 timestamps, and the
//! histogram behind the metrics.

pub(crate) mod client;
pub(crate) mod histogram;
pub(crate) mod load;
pub(crate) mod pipe;
pub(crate) mod rfc3339;
pub(crate) mod socket;

pub(crate) use histogram::Histogram;
pub(crate) use rfc3339::rfc3339;
pub(crate) use socket::{SharedTcp, Socket};
