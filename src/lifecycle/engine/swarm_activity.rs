//! The swarm side of shared activity (`lifecycle::shared_activity`): recording this proxy's
//! latest activity in a service's labels, and scaling to zero only when no proxy recorded any
//! within the idle timeout. Both are versioned updates: a write that crossed another proxy's
//! is read again and judged again, so the swarm's store is the only lock, and a proxy that
//! dies leaves nothing held.
//!
//! A label-only update changes `Spec.Labels` of the service, not its `TaskTemplate`: swarm
//! keeps the running tasks (checked on Engine 20.10: same task ids before and after, also by
//! tests/swarm_nodes.rs under steady traffic).

use std::time::{Duration, SystemTime};

use crate::docker::{DockerError, ServiceInfo};
use crate::lifecycle::shared_activity::{
    LABEL_LAST_ACTIVITY_BY, Verdict, judge, newer, recorded, with_activity,
};

use super::swarm::SwarmEngine;
use super::{EngineError, IdleStop, ours};

impl SwarmEngine {
    /// Records `last` as service `id`'s latest activity unless a later one is recorded.
    /// Returns whether a write was made.
    pub(super) fn write_activity(
        &self,
        instance: &str,
        id: &str,
        last: SystemTime,
    ) -> Result<bool, EngineError> {
        let outcome = self.swarm().update_service_with(id, &mut |s| {
            if !ours(&s.labels, instance) || s.replicas.unwrap_or(0) == 0 {
                return None;
            }
            newer(last, recorded(&s.labels))
                .then(|| with_activity(s.spec.clone(), last, self.identity()))
        });
        match outcome {
            Ok(found) => Ok(found.is_some_and(|(_, updated)| updated)),
            Err(DockerError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Scales service `id` to 0 unless some proxy recorded activity within `idle` of `now`
    /// (read again, and judged again, whenever the service changed under the update).
    pub(super) fn scale_down_when_idle(
        &self,
        id: &str,
        idle: Duration,
        now: SystemTime,
    ) -> Result<IdleStop, EngineError> {
        let mut busy = None;
        self.scale_to_zero(id, &mut |s| {
            busy = match judge(recorded(&s.labels), now, idle) {
                Verdict::ActiveElsewhere(at) => Some((at, by_whom(s), s.name.clone())),
                Verdict::ScaleDown => None,
            };
            busy.is_some()
        })?;
        let Some((at, by, name)) = busy else {
            return Ok(IdleStop::Stopped);
        };
        let ago = now.duration_since(at).unwrap_or_default();
        log::info!(
            "not scaling swarm service {name} down: {by} recorded activity {:.1} s ago",
            ago.as_secs_f64()
        );
        Ok(IdleStop::ActiveElsewhere(at))
    }
}

/// Who recorded a service's activity, for the log.
fn by_whom(s: &ServiceInfo) -> String {
    match s.labels.get(LABEL_LAST_ACTIVITY_BY) {
        Some(by) if !by.is_empty() => format!("proxy {by}"),
        _ => "a proxy".to_string(),
    }
}
