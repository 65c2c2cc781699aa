//! Small pieces everything else builds on, and that depend on nothing of wakeproxy's: the
//! socket seam, RFC 3339 timestamps, and the histogram behind the metrics.

pub mod histogram;
pub mod rfc3339;
pub mod socket;

pub use histogram::Histogram;
pub use rfc3339::rfc3339;
pub use socket::{SharedTcp, Socket};
