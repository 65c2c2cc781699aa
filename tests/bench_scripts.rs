//! The benchmark scripts keep working: `scripts/bench.sh`, `scripts/bench-coldstart.sh` and
//! `scripts/profile.sh` run end to end with tiny settings and write complete reports. Nothing here checks a speed (the
//! figures of a one-second cell mean nothing) or how busy the machine was (a row is found with
//! or without the mark bench.sh puts on cells other load disturbed); it checks that every cell
//! ran on both proxies with no errors, that the memory, footprint and cold-start rows are
//! there, and that the scripts stopped everything they started.
//!
//! Needs what the scripts need (they install nginx-light, wrk and friends with apt-get when
//! missing) and the Docker daemon for the cold-start script; a missing piece fails the test.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::*;

/// The two scripts pin processes to the same cores and measure the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `script` from the repository with `env` and `BENCH_OUT` set to a temporary directory,
/// within `timeout`; returns the report it wrote there as `report`. On timeout the script gets
/// SIGTERM (its trap stops what it started) before the test fails.
fn run_script(script: &str, env: &[(&str, &str)], report: &str, timeout: Duration) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = TempDir::new("bench-out");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join(script))
        .current_dir(repo)
        .env("BENCH_OUT", out.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(script, cmd);
    let end = Instant::now() + timeout;
    loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            // Let the output threads catch the last lines.
            std::thread::sleep(Duration::from_millis(200));
            assert!(st.success(), "{script} failed ({st}); output:\n{}", p.log());
            return std::fs::read_to_string(out.path().join(report))
                .unwrap_or_else(|e| panic!("no {report} ({e}); output:\n{}", p.log()));
        }
        if Instant::now() > end {
            let _ = Command::new("kill")
                .args(["-TERM", &p.pid().to_string()])
                .status();
            let _ = wait_for("the script to stop", Duration::from_secs(60), || {
                p.child.try_wait().unwrap()
            });
            panic!(
                "{script} did not finish within {timeout:?}; output:\n{}",
                p.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Marks that scripts/bench.sh appends to a row's label: `†` for a cell with a reading that
/// other load on the machine still disturbed. They say how busy the machine was, not whether
/// the cell ran, so a row is found with or without them.
const ROW_MARKS: &[char] = &['†'];

/// A row's label as the tests name it: its first cell without bold and without the marks.
fn row_label(cell: &str) -> &str {
    let cell = cell.trim();
    let cell = cell
        .strip_prefix("**")
        .and_then(|c| c.strip_suffix("**"))
        .unwrap_or(cell);
    cell.trim_end_matches(|c: char| ROW_MARKS.contains(&c) || c.is_whitespace())
}

/// The cells of the table row labelled `label` (marks allowed after the label), if any.
fn find_row<'a>(report: &'a str, label: &str) -> Option<Vec<&'a str>> {
    report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && l.len() > 1)
        .map(|l| {
            l[1..l.len() - 1]
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .find(|cells| row_label(cells[0]) == label)
}

/// The table row labelled `label`, split into its cells; fails the test when there is none.
fn row<'a>(report: &'a str, label: &str) -> Vec<&'a str> {
    find_row(report, label).unwrap_or_else(|| panic!("no row {label:?} in the report:\n{report}"))
}

fn number(cell: &str) -> f64 {
    let digits: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(|c| *c != ',')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} does not start with a number"))
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn bench_sh_runs_every_cell_on_both_proxies_and_reports_memory_and_footprint() {
    let report = run_script(
        "scripts/bench.sh",
        &[
            ("DURATION", "1"),
            ("ROUNDS", "1"),
            ("WARMUP", "1"),
            ("IDLE_CONNS", "100"),
            ("STARTS", "2"),
            ("QUIET_BUDGET", "0"),
            ("CELL_TRIES", "1"),
        ],
        "results.md",
        Duration::from_secs(900),
    );
    let cells = [
        "keep-alive 13 B",
        "keep-alive 64 KiB",
        "new connection per request, 13 B",
        "new connection per request, 64 KiB",
        "keep-alive 13 B, 16 connections",
        "keep-alive 13 B, 256 connections",
        "keep-alive 13 B, 1024 connections",
        "TLS keep-alive 13 B",
        "TLS keep-alive 64 KiB",
        "TLS new connection per request, 13 B",
    ];
    for cell in cells {
        let r = row(&report, cell);
        assert!(number(r[1]) > 0.0, "{cell}: nginx served nothing: {r:?}");
        assert!(
            number(r[2]) > 0.0,
            "{cell}: wakeproxy served nothing: {r:?}"
        );
        assert_eq!(r.last(), Some(&"0/0"), "{cell}: errors: {r:?}");
    }
    // Switches and syscalls per request, counted during the warm-up: every cell, both proxies
    // (a proxy makes at least one syscall per request; nginx may not switch at all).
    let (_, counted) = report
        .split_once("Per request, counted by")
        .unwrap_or_else(|| panic!("no per-request counts:\n{report}"));
    for cell in cells {
        let r = row(counted, cell);
        for (i, what) in [(1, "nginx switches"), (2, "wakeproxy switches")] {
            assert!(number(r[i]) >= 0.0, "{cell}: {what}: {r:?}");
        }
        for (i, what) in [(3, "nginx syscalls"), (4, "wakeproxy syscalls")] {
            assert!(number(r[i]) > 0.0, "{cell}: {what}: {r:?}");
        }
    }
    // The sweep, side by side.
    let (_, sweep) = report
        .split_once("Connection sweep")
        .unwrap_or_else(|| panic!("no connection sweep:\n{report}"));
    for conns in ["16", "64", "256", "1,024"] {
        let r = row(sweep, conns);
        assert!(number(r[1]) > 0.0 && number(r[2]) > 0.0, "{conns}: {r:?}");
    }
    for label in [
        "idle, before any load",
        "with 100 idle keep-alive connections, plain HTTP",
        "with 100 idle keep-alive connections, TLS",
    ] {
        let r = row(&report, label);
        assert!(number(r[2]) > 0.0, "{label}: {r:?}");
    }
    let size = row(&report, "release binary, stripped");
    assert!(number(size[2]) > 0.0, "{size:?}");
    let start = row(
        &report,
        "start to listening, plain HTTP (median / max of 2)",
    );
    assert!(number(start[2]) > 0.0, "{start:?}");
    // Everything the script started is gone (its processes all run from its temporary dir).
    let left = processes_with("wakeproxy-bench.");
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn bench_coldstart_sh_measures_the_overhead_and_one_start_per_burst() {
    let report = run_script(
        "scripts/bench-coldstart.sh",
        &[("N", "2"), ("CONCURRENT", "10"), ("QUIET_WAIT", "0")],
        "coldstart.md",
        Duration::from_secs(600),
    );
    let ttfb = row(
        &report,
        "(b) wakeproxy: TTFB of a request to the stopped service",
    );
    assert!(number(ttfb[1]) > 0.0, "{ttfb:?}");
    for state in ["container stopped", "container removed"] {
        let r = row(&report, state);
        assert_eq!(r[1], "10", "{state}: {r:?}");
        assert_eq!(r.last(), Some(&"1 / 1"), "{state}: one start: {r:?}");
    }
    assert!(
        report.contains(
            "All requests were answered 200; each burst caused exactly one container start."
        ),
        "{report}"
    );
}

#[test]
fn profile_sh_splits_the_cpu_of_both_loads_into_named_costs() {
    let report = run_script(
        "scripts/profile.sh",
        &[("SECONDS_PER_LOAD", "1")],
        "report.md",
        Duration::from_secs(600),
    );
    for load in ["keep-alive, 13 B", "a new connection per request, 13 B"] {
        let at = report
            .find(&format!("## {load}"))
            .unwrap_or_else(|| panic!("no section for {load}:\n{report}"));
        let section = &report[at..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        let cpu = section
            .split("CPU per request: **")
            .nth(1)
            .map(number)
            .unwrap_or_else(|| panic!("{load}: no CPU figure:\n{section}"));
        assert!(cpu > 0.0, "{load}: {section}");
        let costs: Vec<Vec<&str>> = section
            .lines()
            .filter(|l| l.starts_with("| ") && l.ends_with(" |") && l.contains('%'))
            .take_while(|l| !l.contains('`'))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        let share: f64 = costs.iter().map(|r| number(r[1])).sum();
        assert!(
            (share - 100.0).abs() < 1.0,
            "{load}: shares add up to {share}:\n{section}"
        );
        let named = costs
            .iter()
            .filter(|r| !r[0].starts_with("unresolved") && number(r[1]) > 0.0)
            .count();
        assert!(
            named >= 3,
            "{load}: the samples fall into named costs:\n{section}"
        );
        assert!(
            section.contains("context-switches per request"),
            "{section}"
        );
    }
}

/// A made-up report in the scripts' format, for the row lookup's own tests (no script runs).
const SAMPLE_REPORT: &str = "\
| cell | nginx req/s | wakeproxy req/s | errors (n/w) |
|---|---:|---:|---:|
| keep-alive 13 B † | 1,000 | 2,000 | 0/0 |
| TLS keep-alive 13 B | 900 | 1,800 | 0/0 |
| **(b) − (a): wakeproxy's overhead** | **3.0 ms** | 4.0 ms |
";

#[test]
fn a_row_is_found_with_or_without_the_disturbance_mark() {
    let r = row(SAMPLE_REPORT, "keep-alive 13 B");
    assert_eq!(r, ["keep-alive 13 B †", "1,000", "2,000", "0/0"]);
    assert_eq!(number(r[1]), 1000.0);
    assert_eq!(row(SAMPLE_REPORT, "TLS keep-alive 13 B")[2], "1,800");
    assert_eq!(
        row(SAMPLE_REPORT, "(b) − (a): wakeproxy's overhead")[2],
        "4.0 ms"
    );
    // A row is matched on its whole label, never on a part of it.
    for missing in [
        "keep-alive 64 KiB",
        "keep-alive",
        "13 B",
        "TLS keep-alive 13 B †x",
        "new connection per request, 13 B",
    ] {
        assert_eq!(find_row(SAMPLE_REPORT, missing), None, "{missing}");
    }
}

#[test]
#[should_panic(expected = "no row \"TLS keep-alive 64 KiB\" in the report")]
fn a_missing_row_fails_the_test() {
    row(SAMPLE_REPORT, "TLS keep-alive 64 KiB");
}
