//! Reading a swarm service's tasks: which are done, which is the latest, and the 503 detail
//! for one that failed while starting.

use crate::docker::TaskInfo;

/// A task that is done, one way or another.
pub(super) fn is_terminal(t: &TaskInfo) -> bool {
    matches!(
        t.state.as_str(),
        "complete" | "shutdown" | "failed" | "rejected" | "remove" | "orphaned"
    )
}

pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The latest of some tasks, by creation time.
pub(super) fn latest<'a>(tasks: impl Iterator<Item = &'a TaskInfo>) -> Option<&'a TaskInfo> {
    tasks.max_by_key(|t| time_key(&t.created_at))
}

/// An RFC 3339 UTC time as the daemon writes it (`2026-11-26T17:53:51.18870Z`, a fraction of
/// 0 to 9 digits) as a key that sorts in time order: (date and time, nanoseconds).
fn time_key(s: &str) -> (&str, u64) {
    let s = s.trim_end_matches('Z');
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    (whole, digits.parse().unwrap_or(0))
}

/// The 503 detail for a task that failed during a start.
pub(super) fn task_failure(name: &str, t: &TaskInfo, logs: Option<&str>) -> String {
    let mut why = format!(
        "swarm service {name}: task {} {} while starting",
        short(&t.id),
        t.state
    );
    match (t.err.trim(), t.exit_code) {
        ("", Some(code)) => why.push_str(&format!(" with exit code {code}")),
        (err, Some(code)) if t.state != "rejected" => {
            why.push_str(&format!(": {err} (exit code {code})"))
        }
        ("", None) => {}
        (err, _) => why.push_str(&format!(": {err}")),
    }
    if let Some(logs) = logs.map(str::trim_end).filter(|l| !l.is_empty()) {
        why.push_str(&format!("; last log lines:\n{logs}"));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: &str, err: &str, code: Option<i64>, created: &str) -> TaskInfo {
        TaskInfo {
            id: id.into(),
            service_id: "s".into(),
            slot: Some(1),
            node_id: "n".into(),
            desired_state: "shutdown".into(),
            state: state.into(),
            message: String::new(),
            err: err.into(),
            exit_code: code,
            container_id: if code.is_some() {
                "c".into()
            } else {
                String::new()
            },
            created_at: created.into(),
        }
    }

    #[test]
    fn failure_messages_carry_the_task_error_and_exit_code() {
        let t = task(
            "abcdefabcdefabcdef",
            "failed",
            "task: non-zero exit (3)",
            Some(3),
            "",
        );
        let m = task_failure("blog", &t, Some("exiting at start with code 3\n"));
        assert_eq!(
            m,
            "swarm service blog: task abcdefabcdef failed while starting: task: non-zero exit (3) (exit code 3); \
             last log lines:\nexiting at start with code 3"
        );
        let r = task("r", "rejected", "No such image: nope:1", None, "");
        assert_eq!(
            task_failure("blog", &r, None),
            "swarm service blog: task r rejected while starting: No such image: nope:1"
        );
        let c = task("c", "complete", "", Some(0), "");
        assert_eq!(
            task_failure("blog", &c, Some("")),
            "swarm service blog: task c complete while starting with exit code 0"
        );
    }

    #[test]
    fn latest_task_by_creation_time() {
        let a = task("a", "failed", "", None, "2026-11-26T17:53:51.9Z");
        let b = task("b", "failed", "", None, "2026-11-26T17:53:52.1Z");
        let c = task("c", "failed", "", None, "2026-11-26T17:53:51.95Z");
        let all = [a, b, c];
        assert_eq!(latest(all.iter()).unwrap().id, "b");
        assert!(latest([].iter()).is_none());
        assert!(is_terminal(&all[0]));
        let mut running = all[0].clone();
        running.state = "running".into();
        assert!(!is_terminal(&running));
    }
}
