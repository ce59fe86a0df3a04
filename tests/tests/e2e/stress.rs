//! End-to-end tests of `mpfr stress` against the real MicroPython unix port (the host board):
//! the quick suite passes and both reports hold every test; a hanging, a crashing and a passing
//! test are told apart, the run goes on, and the JSON Lines report survives a SIGKILL of mpfr.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use mpfr_tests::{micropython, mpfr_bin, report_lines, report_results, root, wait_for};

/// Kills and reaps the child on drop, also when the test panics.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mpfr(state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(mpfr_bin());
    c.args(args)
        .current_dir(root())
        .env("MPFR_STATE_DIR", state)
        .env("MPFR_MICROPYTHON", micropython())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs to the end within `deadline` (the child is killed if it does not end).
fn run_within(mut cmd: Command, deadline: Duration) -> Output {
    let child = cmd.spawn().expect("mpfr starts");
    let mut guard = Reaped(Some(child));
    wait_for("mpfr to finish", deadline, || {
        let c = guard.0.as_mut().expect("child");
        c.try_wait().expect("wait").is_some()
    });
    let child = guard.0.take().expect("child");
    child.wait_with_output().expect("output")
}

fn skip_without_micropython() -> bool {
    if micropython().exists() {
        return false;
    }
    // scripts/setup.sh installs it; CI always has it.
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing (run scripts/setup.sh)",
        micropython().display()
    );
    true
}

const BUILTINS: [&str; 10] = [
    "thread_churn",
    "thread_many",
    "lock_exact",
    "unlocked_race",
    "gc_under_load",
    "stack_recursion",
    "schedule_latency",
    "soft_timer",
    "sleep_fairness",
    "lock_starvation",
];

#[test]
fn quick_suite_passes_on_the_host_board_and_both_reports_hold_every_test() {
    if skip_without_micropython() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("J.xml");
    let jsonl = tmp.path().join("R.jsonl");
    let out = run_within(
        mpfr(
            tmp.path(),
            &[
                "stress",
                "--board",
                "host",
                "--suite",
                "quick",
                "--seed",
                "7",
                "--junit",
                junit.to_str().unwrap(),
                // The form CI scripts use: `--json FILE` after `stress` is the report.
                "--json",
                jsonl.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mpfr stress failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("result: ok"), "{stdout}");
    assert!(
        !stdout.contains("\"type\":"),
        "human output, not JSON on stdout"
    );

    let all = report_lines(&jsonl);
    assert_eq!(all.first().unwrap()["type"], "run");
    assert_eq!(all.first().unwrap()["facts"]["gil"], "unsafe");
    assert_eq!(all.last().unwrap()["type"], "summary");
    assert_eq!(all.last().unwrap()["ok"], true);
    let rs = report_results(&jsonl);
    assert_eq!(rs.len(), BUILTINS.len(), "{rs:#?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    for (r, name) in rs.iter().zip(BUILTINS) {
        assert_eq!(r["test"], name);
        let v = r["verdict"].as_str().unwrap();
        assert!(["PASS", "SKIP", "EXPECTED"].contains(&v), "{r:#}");
        assert_eq!(r["seed"], 7);
        assert_eq!(r["board"], "host");
        assert_eq!(r["gil"], "unsafe");
        assert!(r["fingerprint"].as_str().unwrap().starts_with("0x"));
        assert!(
            xml.contains(&format!("name=\"{name}\"")),
            "{name} missing in JUnit"
        );
    }
    // The unix port has no machine.Timer; lock_exact measured what it did.
    let by = |n: &str| rs.iter().find(|r| r["test"] == n).unwrap().clone();
    assert_eq!(by("soft_timer")["verdict"], "SKIP");
    assert_eq!(by("lock_exact")["metrics"]["counter"], 8000);
    assert!(xml.contains("tests=\"10\" failures=\"0\" errors=\"0\""));
}

/// A test directory with a hanging test, a crashing test and a passing test (in that order).
fn bad_tests_dir(dir: &Path) -> PathBuf {
    let d = dir.join("tests");
    std::fs::create_dir_all(&d).expect("test dir");
    std::fs::write(
        d.join("a_hang.py"),
        "import time\nprint('hanging now')\nwhile True:\n    time.sleep_ms(100)\n",
    )
    .expect("test file");
    // The unix port's os has no kill(): its shell kills its parent, the MicroPython process.
    std::fs::write(
        d.join("b_crash.py"),
        "import os\nprint('about to crash')\nos.system('kill -9 $PPID')\nprint('still alive')\n",
    )
    .expect("test file");
    std::fs::write(d.join("c_pass.py"), "print('fine', 6 * 7)\n").expect("test file");
    std::fs::write(d.join("c_pass.py.exp"), "fine 42\n").expect("test file");
    d
}

#[test]
fn hang_is_timeout_crash_is_crash_and_the_next_test_still_passes_even_after_sigkill() {
    if skip_without_micropython() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = bad_tests_dir(tmp.path());
    let jsonl = tmp.path().join("R.jsonl");
    let mut cmd = mpfr(
        tmp.path(),
        &[
            "stress",
            "--board",
            "host",
            "--suite",
            "none",
            "--tests",
            dir.to_str().unwrap(),
            "--timeout",
            "60s",
            "--idle-timeout",
            "3s",
            "--jsonl",
            jsonl.to_str().unwrap(),
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = Reaped(Some(cmd.spawn().expect("mpfr starts")));
    // Wait for the third result line, then kill mpfr at once: nothing may be lost.
    wait_for("three result lines", Duration::from_secs(120), || {
        let c = guard.0.as_mut().unwrap();
        let n = report_results(&jsonl).len();
        if let Some(status) = c.try_wait().unwrap() {
            // It may legitimately have finished between two polls.
            assert!(
                report_results(&jsonl).len() >= 3,
                "mpfr ended early: {status}"
            );
            return Ok(());
        }
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} results"))
        }
    });
    let c = guard.0.as_mut().unwrap();
    let _ = c.kill(); // SIGKILL
    let _ = c.wait();

    let rs = report_results(&jsonl);
    assert_eq!(rs.len(), 3, "{rs:#?}");
    assert_eq!(rs[0]["test"], "a_hang");
    assert_eq!(rs[0]["verdict"], "TIMEOUT", "{:#}", rs[0]);
    assert!(rs[0]["output"].as_str().unwrap().contains("hanging now"));
    assert_eq!(rs[1]["test"], "b_crash");
    assert_eq!(rs[1]["verdict"], "CRASH", "{:#}", rs[1]);
    assert!(
        rs[1]["output"].as_str().unwrap().contains("about to crash"),
        "{:#}",
        rs[1]
    );
    assert!(!rs[1]["output"].as_str().unwrap().contains("still alive"));
    assert_eq!(rs[2]["test"], "c_pass");
    assert_eq!(rs[2]["verdict"], "PASS", "{:#}", rs[2]);
    // The board was brought back after each bad test.
    for r in &rs[..2] {
        let steps = r["recovery"].as_array().unwrap();
        assert_eq!(steps.last().unwrap()[1], true, "{r:#}");
    }
}

#[test]
fn a_finished_run_with_failures_exits_1_and_writes_junit() {
    if skip_without_micropython() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("t");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("differs.py"), "print(1)\n").unwrap();
    std::fs::write(d.join("differs.py.exp"), "2\n").unwrap();
    std::fs::write(d.join("skips.py"), "print('SKIP')\n").unwrap();
    let junit = tmp.path().join("J.xml");
    let out = run_within(
        mpfr(
            tmp.path(),
            &[
                "stress",
                "-b",
                "host",
                "--suite",
                "none",
                "--tests",
                d.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("at line 1: got &quot;1&quot;, want &quot;2&quot;"),
        "{xml}"
    );
    // run-tests' result file beside it names the failing file.
    let rt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("_results.json")).unwrap())
            .unwrap();
    let failed = rt["failed_tests"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{rt}");
    assert!(failed[0].as_str().unwrap().ends_with("differs.py"), "{rt}");
}

/// A test directory whose tests also hang or die under CPython (no `.exp` files), plus one that
/// ends in `SystemExit` and one that passes.
fn reference_trouble_dir(dir: &Path) -> PathBuf {
    let d = dir.join("D");
    std::fs::create_dir_all(&d).expect("test dir");
    std::fs::write(d.join("a_hang.py"), "while True:\n    pass\n").expect("test file");
    std::fs::write(
        d.join("b_kill.py"),
        "import os\nprint('about to die')\nos.system('kill -9 $PPID')\n",
    )
    .expect("test file");
    std::fs::write(d.join("c_pass.py"), "print('fine', 6 * 7)\n").expect("test file");
    std::fs::write(d.join("d_skip.py"), "print('SKIP')\nraise SystemExit\n").expect("test file");
    d
}

/// Processes whose command line mentions `needle`, or that run in a folder under it.
fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat.rsplit(')').next()?.trim_start().starts_with('Z');
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let hit = String::from_utf8_lossy(&cmd).contains(needle) || cwd.starts_with(needle);
        (!zombie && hit).then_some(pid)
    })
    .collect()
}

/// Issue 14: a test that hangs under CPython (the reference) as on the board, one that kills
/// the interpreter, one that passes; issue 16: one that raises SystemExit after `SKIP`.
#[test]
fn tests_that_hang_or_die_under_cpython_too_finish_with_every_result() {
    if skip_without_micropython() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = reference_trouble_dir(tmp.path());
    let json = tmp.path().join("R.jsonl");
    let out = run_within(
        mpfr(
            tmp.path(),
            &[
                "stress",
                "--board",
                "host",
                "--suite",
                "none",
                "--tests",
                dir.to_str().unwrap(),
                "--timeout",
                "5s",
                "--json",
                json.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(180),
    );
    let rs = report_results(&json);
    let got: Vec<(String, String)> = rs
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a_hang".to_string(), "TIMEOUT".to_string()),
            ("b_kill".into(), "CRASH".into()),
            ("c_pass".into(), "PASS".into()),
            ("d_skip".into(), "SKIP".into()),
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rs[2]["detail"].as_str().unwrap().contains("CPython"),
        "{:#}",
        rs[2]
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        processes_with(dir.to_str().unwrap()).is_empty(),
        "a CPython reference outlived mpfr"
    );
}

/// Issue 14: killing mpfr (SIGKILL, no chance to clean up) takes its CPython reference with it.
#[test]
fn a_killed_mpfr_leaves_no_cpython_behind() {
    if skip_without_micropython() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("hangs");
    std::fs::create_dir_all(&d).unwrap();
    let name = format!("hang_{}.py", std::process::id());
    std::fs::write(d.join(&name), "while True:\n    pass\n").unwrap();
    let mut cmd = mpfr(
        tmp.path(),
        &[
            "stress",
            "-b",
            "host",
            "--suite",
            "none",
            "--tests",
            d.to_str().unwrap(),
            "--timeout",
            "10m",
            "--idle-timeout",
            "10m",
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = Reaped(Some(cmd.spawn().expect("mpfr starts")));
    // The board gets the file's text over its REPL; only CPython has it on its command line.
    let cpython = wait_for(
        &format!("CPython to start on {name}"),
        Duration::from_secs(120),
        || processes_with(&name).first().copied(),
    );
    let c = guard.0.as_mut().unwrap();
    let _ = c.kill();
    let _ = c.wait();
    wait_for(
        &format!("CPython {cpython} to end after mpfr was killed"),
        Duration::from_secs(60),
        || !processes_with(&name).contains(&cpython),
    );
}
