//! Activity shared by several wakeproxy instances in front of one swarm: each records its
//! latest activity of a swarm service in the service's own labels, and a scale to zero is
//! judged against the latest any of them recorded. Pure: the rules take times as values; the
//! swarm engine reads and writes the labels (versioned updates), the reaper asks when to write.
//!
//! The record lags a proxy's true activity by at most one write interval (a quarter of the
//! idle timeout) and a reaper tick, while another proxy scales down only a whole idle timeout
//! after the record: so a service is never scaled away under a proxy that served it within
//! three quarters of the idle timeout, and the final write of a burst brings that to the
//! whole timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};

/// Service label: the latest activity any proxy recorded, in Unix milliseconds.
pub(crate) const LABEL_LAST_ACTIVITY: &str = "wakeproxy.last-activity";
/// Service label: which proxy recorded it (`host:pid`), for people reading the labels.
pub(crate) const LABEL_LAST_ACTIVITY_BY: &str = "wakeproxy.last-activity-by";

/// Writes per idle timeout, at most, while traffic flows.
const WRITES_PER_IDLE: u32 = 4;
/// The shortest interval between two writes, whatever the idle timeout.
const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);

/// How long a proxy waits between two records of the same service's activity.
pub(crate) fn write_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / WRITES_PER_IDLE).max(MIN_WRITE_INTERVAL)
}

/// A time as the label holds it.
pub(crate) fn encode(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    ms.to_string()
}

/// `spec` (a swarm service spec) with its activity labels saying `at`, by `by`.
pub(crate) fn with_activity(mut spec: Value, at: SystemTime, by: &str) -> Value {
    if !spec["Labels"].is_object() {
        spec["Labels"] = json!({});
    }
    spec["Labels"][LABEL_LAST_ACTIVITY] = json!(encode(at));
    spec["Labels"][LABEL_LAST_ACTIVITY_BY] = json!(by);
    spec
}

/// The activity recorded in a service's labels, if any (a label that is not a number is none).
pub(crate) fn recorded(labels: &BTreeMap<String, String>) -> Option<SystemTime> {
    let ms: u64 = labels.get(LABEL_LAST_ACTIVITY)?.trim().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// What to do about a service this proxy found idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nobody recorded activity within the idle timeout: scale it to zero.
    ScaleDown,
    /// Some proxy recorded activity at this time, within the idle timeout: keep it.
    ActiveElsewhere(SystemTime),
}

/// Judges a scale to zero at `now` against the `recorded` activity. A record further in the
/// future than one idle timeout comes from a broken clock and is ignored (else it would keep
/// the service up until then); a nearer one counts as activity now.
pub(crate) fn judge(recorded: Option<SystemTime>, now: SystemTime, idle: Duration) -> Verdict {
    let Some(at) = recorded else {
        return Verdict::ScaleDown;
    };
    match now.duration_since(at) {
        Ok(ago) if ago >= idle => Verdict::ScaleDown,
        Ok(_) => Verdict::ActiveElsewhere(at),
        Err(ahead) if ahead.duration() <= idle => Verdict::ActiveElsewhere(now),
        Err(_) => Verdict::ScaleDown,
    }
}

/// Whether a record of `ours` should replace the `recorded` one: only a later time does.
pub(crate) fn newer(ours: SystemTime, recorded: Option<SystemTime>) -> bool {
    recorded.is_none_or(|r| ours > r)
}

/// What one proxy wrote of one service's activity, and when.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    inner: Mutex<Mark>,
    /// Records written, for the metrics.
    writes: AtomicU64,
    /// Idle stops not made because another proxy was active, for the metrics.
    kept: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Mark {
    /// The activity time last written (or seen recorded at least as late).
    written: Option<SystemTime>,
    /// When that write was made.
    at: Option<Instant>,
    /// A write is under way.
    writing: bool,
}

impl Marks {
    /// Whether a write of `last` (this proxy's latest activity) is due at `now`: it is later
    /// than what was written, and the previous write is one `interval` old. Claims the write:
    /// the caller must call `written` (or `failed`) when done.
    pub(crate) fn claim(&self, last: SystemTime, now: Instant, interval: Duration) -> bool {
        let mut m = self.inner.lock();
        let later = m.written.is_none_or(|w| last > w);
        let spaced =
            m.at.is_none_or(|at| now.saturating_duration_since(at) >= interval);
        if m.writing || !later || !spaced {
            return false;
        }
        m.writing = true;
        true
    }

    /// The claimed write of `value` ended at `now` (written, or found already recorded).
    pub(crate) fn written(&self, value: SystemTime, now: Instant) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut m = self.inner.lock();
        m.written = Some(m.written.map_or(value, |w| w.max(value)));
        m.at = Some(now);
        m.writing = false;
    }

    /// The claimed write failed at `now`; the next is due one interval later.
    pub(crate) fn failed(&self, now: Instant) {
        let mut m = self.inner.lock();
        m.at = Some(now);
        m.writing = false;
    }

    /// An idle stop was not made: another proxy was active.
    pub(crate) fn kept(&self) {
        self.kept.fetch_add(1, Ordering::Relaxed);
    }

    /// (records written, idle stops not made).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.kept.load(Ordering::Relaxed),
        )
    }

    /// The service was scaled up (its labels carry `value`) or down: start afresh from `value`.
    pub(crate) fn reset(&self, value: Option<SystemTime>) {
        let mut m = self.inner.lock();
        m.written = value;
        m.at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn labels_hold_unix_milliseconds() {
        let t = at(1_764_800_000_123);
        let labels = BTreeMap::from([(LABEL_LAST_ACTIVITY.to_string(), encode(t))]);
        assert_eq!(labels[LABEL_LAST_ACTIVITY], "1764800000123");
        assert_eq!(recorded(&labels), Some(t));
        let junk = BTreeMap::from([(LABEL_LAST_ACTIVITY.to_string(), "soon".to_string())]);
        assert_eq!(recorded(&junk), None);
        assert_eq!(recorded(&BTreeMap::new()), None);
    }

    #[test]
    fn activity_labels_join_the_others() {
        let at = UNIX_EPOCH + Duration::from_millis(1_500);
        let spec = json!({"Name": "api", "Labels": {"wakeproxy.managed": "true"}});
        let s = with_activity(spec, at, "h:1");
        assert_eq!(s["Labels"]["wakeproxy.managed"], "true");
        assert_eq!(s["Labels"][LABEL_LAST_ACTIVITY], "1500");
        assert_eq!(s["Labels"][LABEL_LAST_ACTIVITY_BY], "h:1");
        let bare = with_activity(json!({"Name": "api"}), at, "h:1");
        assert_eq!(bare["Labels"][LABEL_LAST_ACTIVITY], "1500");
    }

    #[test]
    fn scale_down_only_a_whole_idle_timeout_after_the_latest_record() {
        let idle = Duration::from_secs(60);
        let now = at(1_000_000);
        assert_eq!(judge(None, now, idle), Verdict::ScaleDown);
        assert_eq!(judge(Some(at(940_000)), now, idle), Verdict::ScaleDown);
        assert_eq!(
            judge(Some(at(940_001)), now, idle),
            Verdict::ActiveElsewhere(at(940_001))
        );
        // A clock a little ahead counts as activity now; one far ahead is ignored.
        assert_eq!(
            judge(Some(at(1_030_000)), now, idle),
            Verdict::ActiveElsewhere(now)
        );
        assert_eq!(judge(Some(at(2_000_000)), now, idle), Verdict::ScaleDown);
    }

    #[test]
    fn only_a_later_time_replaces_the_record() {
        assert!(newer(at(2), None));
        assert!(newer(at(2), Some(at(1))));
        assert!(!newer(at(2), Some(at(2))));
        assert!(!newer(at(1), Some(at(2))));
    }

    #[test]
    fn writes_are_spaced_by_the_interval_and_one_at_a_time() {
        let interval = write_interval(Duration::from_secs(60));
        assert_eq!(interval, Duration::from_secs(15));
        assert_eq!(
            write_interval(Duration::from_millis(400)),
            MIN_WRITE_INTERVAL
        );
        let t0 = Instant::now();
        let marks = Marks::default();
        marks.reset(Some(at(1_000)));
        // Nothing newer than the scale-up's own record: no write.
        assert!(!marks.claim(at(1_000), t0, interval));
        assert!(marks.claim(at(2_000), t0, interval));
        // One write at a time.
        assert!(!marks.claim(at(3_000), t0, interval));
        marks.written(at(2_000), t0);
        // Newer activity, but the last write is too recent.
        assert!(!marks.claim(at(3_000), t0 + Duration::from_secs(14), interval));
        assert!(marks.claim(at(3_000), t0 + Duration::from_secs(15), interval));
        marks.failed(t0 + Duration::from_secs(15));
        assert!(!marks.claim(at(3_000), t0 + Duration::from_secs(20), interval));
        assert!(marks.claim(at(3_000), t0 + Duration::from_secs(30), interval));
        marks.written(at(3_000), t0 + Duration::from_secs(30));
        marks.kept();
        assert_eq!(marks.counts(), (2, 1));
        // Traffic stopped: the last activity was written, nothing more to write.
        assert!(!marks.claim(at(3_000), t0 + Duration::from_secs(90), interval));
    }
}
