//! Graceful shutdown: the draining flag. Once set, the poller stops accepting and closes the
//! connections waiting in it, requests under way finish and their connections close.

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared by the poller, every worker and the signal handler.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    draining: AtomicBool,
}

impl Drain {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining; false when it had already begun.
    pub(super) fn begin(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }
}
