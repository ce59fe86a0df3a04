//! Snapshots of the stress reports for a recorded set of results: the human summary and the
//! JUnit XML, rendered by the library's report functions (no board, no MicroPython).

use std::time::Duration;

use mpfr::stress::report::{RunInfo, Summary, TelemetrySummary, TestResult, junit};
use mpfr::stress::{BoardFacts, Verdict};

fn info() -> RunInfo {
    RunInfo {
        board: "host".into(),
        fingerprint: "cfg-1a2b3c4d".into(),
        gil_configured: "off".into(),
        suite: "quick".into(),
        seed: 42,
        facts: BoardFacts {
            gil: Some("unsafe".into()),
            version: Some("3.4.0; MicroPython v1.24.0".into()),
            fingerprint: None,
        },
        cores: 2,
        started_unix: 1_700_000_000,
        config_mismatch: Vec::new(),
    }
}

fn result(test: &str, repeat: u32, verdict: Verdict, detail: &str, ms: u64) -> TestResult {
    let mut metrics = serde_json::Map::new();
    metrics.insert("threads".into(), 4.into());
    TestResult {
        test: test.into(),
        origin: "builtin".into(),
        verdict,
        detail: detail.into(),
        duration: Duration::from_millis(ms),
        repeat,
        seed: 42,
        board: "host".into(),
        fingerprint: "cfg-1a2b3c4d".into(),
        gil: "unsafe".into(),
        cores: 2,
        metrics,
        output: format!("{test}: {detail}\n"),
        recovery: if verdict.needs_recovery() {
            vec![("interrupt".into(), false), ("soft-reset".into(), true)]
        } else {
            Vec::new()
        },
        telemetry: (test == "lock_contention").then_some(TelemetrySummary {
            min_free_heap: Some(12_288),
            peak_tasks: Some(6),
            deepest_stack_use: Some(1_536),
            max_service_latency_us: Some(850),
            ran_on_cores: vec![0, 1],
            lost: None,
        }),
        interrupted: false,
        crash_bundle: None,
    }
}

/// Two rounds of every verdict, one test flaky, a character JUnit must escape in a detail.
fn recorded() -> Vec<TestResult> {
    let mut rs = Vec::new();
    for round in 0..2 {
        rs.push(result(
            "spawn_join",
            round,
            Verdict::Pass,
            "8 threads joined",
            120,
        ));
        rs.push(result(
            "lock_contention",
            round,
            if round == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            "counter 3998 != 4000 <lost updates> & more",
            2_450,
        ));
        rs.push(result(
            "unlocked_counter",
            round,
            Verdict::Expected,
            "race seen, GIL off",
            300,
        ));
        rs.push(result("pin_core", round, Verdict::Skip, "one core", 0));
    }
    rs.push(result(
        "deadlock",
        0,
        Verdict::Timeout,
        "no output for 10 s",
        10_000,
    ));
    rs.push(result(
        "stack_overflow",
        0,
        Verdict::Crash,
        "board reset",
        1_250,
    ));
    rs.push(result(
        "bad_import",
        0,
        Verdict::Error,
        "ImportError: no module named 'x'",
        15,
    ));
    rs
}

#[test]
fn stress_summary() {
    let rs = recorded();
    let s = Summary::of(&rs, Duration::from_millis(17_385), None);
    assert!(!s.ok);
    assert_eq!(s.flaky, ["lock_contention"]);
    insta::assert_snapshot!(s.render());
}

#[test]
fn stress_summary_aborted() {
    let rs = recorded();
    let s = Summary::of(
        &rs[..3],
        Duration::from_secs(5),
        Some("board did not answer".into()),
    );
    insta::assert_snapshot!(s.render());
}

#[test]
fn stress_junit() {
    let rs = recorded();
    let s = Summary::of(&rs, Duration::from_millis(17_385), None);
    insta::assert_snapshot!(junit(&info(), &rs, &s));
}
