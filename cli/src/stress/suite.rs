//! The built-in test suites (Python shipped inside the binary), external test directories, and
//! the `MPFR-RESULT` line every built-in test ends with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StressError, Verdict};
use crate::util::child::{Cut, output_within};

/// The helper block every built-in test starts with: `suites/helper.py`, put in front of each
/// test's own file when the binary is built (run one by hand with
/// `micropython -c "$(cat helper.py NAME.py)"`).
pub const HELPER: &str = include_str!("suites/helper.py");

/// Prefix of the one line a built-in test prints with its verdict and measurements.
pub const RESULT_PREFIX: &str = "MPFR-RESULT ";
/// Prefix of the keep-alive lines long tests print (dropped from recorded output).
pub const BEAT_PREFIX: &str = "MPFR-BEAT";

/// One built-in test: a standalone MicroPython file.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    pub source: &'static str,
}

macro_rules! builtin {
    ($name:literal, $summary:literal) => {
        Builtin {
            name: $name,
            summary: $summary,
            source: concat!(
                include_str!("suites/helper.py"),
                include_str!(concat!("suites/", $name, ".py"))
            ),
        }
    };
}

/// Every built-in test, in the order suites run them.
pub const BUILTINS: &[Builtin] = &[
    builtin!(
        "thread_churn",
        "start/finish threads in batches; heap back to baseline"
    ),
    builtin!(
        "thread_many",
        "threads until MemoryError/RuntimeError or a cap; no crash"
    ),
    builtin!(
        "lock_exact",
        "locked counter/list/dict mutation from threads is exact"
    ),
    builtin!(
        "unlocked_race",
        "unlocked mutation; lost updates are EXPECTED with the GIL off"
    ),
    builtin!(
        "gc_under_load",
        "gc.collect() while threads build and check data"
    ),
    builtin!(
        "stack_recursion",
        "deep recursion ends in RuntimeError, per thread stack size"
    ),
    builtin!(
        "schedule_latency",
        "micropython.schedule() latency while threads load the cores"
    ),
    builtin!(
        "soft_timer",
        "a periodic machine.Timer keeps firing under load"
    ),
    builtin!(
        "sleep_fairness",
        "sleeping threads keep waking while others burn CPU"
    ),
    builtin!(
        "lock_starvation",
        "threads fighting for one lock all get it"
    ),
];

/// A named set of built-in tests at one intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Suite {
    /// Every test, small sizes: seconds on the host board (CI).
    Quick,
    /// Every test, long runs and big sizes (tens of seconds each).
    Soak,
    /// No built-in tests (only `--tests DIR`, or the firmware's native workloads).
    None,
}

crate::named_enum!(Suite "suite" { Quick => "quick", Soak => "soak", None => "none" });

/// How a test's output is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judge {
    /// Built-in: the `MPFR-RESULT` line decides.
    ResultLine,
    /// External file: output must equal this (from `NAME.exp` or CPython), or say `SKIP`.
    Expect { expected: String, source: String },
    /// External file whose `.exp` MicroPython's run-tests reads as line patterns (see
    /// [`super::runtests`]).
    ExpectPatterns { expected: String, source: String },
    /// External file without `.exp`: compared with the reference's output for `file` (CPython),
    /// computed while the board runs; without one, as [`Judge::NoExpectation`].
    Reference { file: PathBuf },
    /// External file without a usable expectation: runs, passes unless it raises.
    NoExpectation { why: String },
    /// A native workload of the reference firmware: its `RESULT <name> PASS|FAIL` line decides.
    NativeResult,
}

/// One thing the runner runs.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    /// Where it comes from: `builtin:quick`, a file path, `firmware`.
    pub origin: String,
    /// What the executor is given (Python source, or a console command line).
    pub payload: String,
    pub judge: Judge,
}

impl TestCase {
    /// The payload for one run: built-ins get their level and seed as globals in front.
    pub fn payload_for(&self, level: Suite, seed: u64) -> String {
        match self.judge {
            Judge::ResultLine => format!(
                "MPFR_LEVEL = {:?}\nMPFR_SEED = {}\n{}",
                level.as_str(),
                seed % 1_000_000_007,
                self.payload
            ),
            _ => self.payload.clone(),
        }
    }
}

/// The built-in tests of a suite.
pub fn builtin_cases(suite: Suite) -> Vec<TestCase> {
    if suite == Suite::None {
        return Vec::new();
    }
    BUILTINS
        .iter()
        .map(|b| TestCase {
            name: b.name.to_string(),
            origin: format!("builtin:{}", suite.as_str()),
            payload: b.source.to_string(),
            judge: Judge::ResultLine,
        })
        .collect()
}

/// How to get an expectation for an external test without `.exp`.
pub trait Reference {
    /// CPython's stdout for `file`, or why there is none.
    fn expected_output(&self, file: &Path) -> Result<String, String>;
}

/// Runs `python3 FILE` (the way MicroPython's own test runner gets expectations), under the
/// same wall-clock and inactivity limits as the test itself.
#[derive(Debug, Clone)]
pub struct CPython {
    pub program: PathBuf,
    pub limits: super::Limits,
}

impl Default for CPython {
    fn default() -> Self {
        CPython {
            program: PathBuf::from("python3"),
            limits: super::Limits::default(),
        }
    }
}

impl Reference for CPython {
    fn expected_output(&self, file: &Path) -> Result<String, String> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut cmd = std::process::Command::new(&self.program);
        cmd.arg(file.file_name().unwrap_or(file.as_os_str()))
            .current_dir(dir);
        let limits = &self.limits;
        let out = output_within(&mut cmd, limits.timeout, limits.idle).map_err(|e| match e {
            Cut::Timeout(_) => format!("CPython did not finish: {e} (--timeout)"),
            Cut::Idle(_) => format!("CPython did not finish: {e} (--idle-timeout)"),
            Cut::Io(_) => format!("cannot run {}: {e}", self.program.display()),
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("").trim();
            let last = crate::util::sanitize::escape_text(last, 300);
            return Err(format!("CPython cannot run it ({}): {last}", out.status));
        }
        Ok(normalise(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// Line ends as `\n`, no trailing blanks at the very end.
pub fn normalise(s: &str) -> String {
    let s = s.replace("\r\n", "\n");
    let trimmed = s.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}\n")
    }
}

/// MicroPython-style test files in `dir` (`*.py`, sorted), each with its `.exp` expectation or
/// a [`Judge::Reference`] (nothing is run here: `--list` and filtered-out files cost nothing).
pub fn external_cases(dir: &Path) -> Result<Vec<TestCase>, StressError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StressError::TestsDir {
        dir: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(StressError::TestsDir {
            dir: dir.to_path_buf(),
            detail: "it holds no *.py test files".into(),
        });
    }
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let payload = std::fs::read_to_string(&f).map_err(|e| StressError::TestsDir {
            dir: dir.to_path_buf(),
            detail: format!("cannot read {}: {e}", f.display()),
        })?;
        let exp_path = f.with_extension("py.exp");
        let judge = if exp_path.is_file() {
            let expected =
                std::fs::read_to_string(&exp_path).map_err(|e| StressError::TestsDir {
                    dir: dir.to_path_buf(),
                    detail: format!("cannot read {}: {e}", exp_path.display()),
                })?;
            let (expected, source) = (normalise(&expected), exp_path.display().to_string());
            if super::runtests::has_pattern_exp(&f) {
                Judge::ExpectPatterns { expected, source }
            } else {
                Judge::Expect { expected, source }
            }
        } else {
            Judge::Reference { file: f.clone() }
        };
        out.push(TestCase {
            name,
            origin: f.display().to_string(),
            payload,
            judge,
        });
    }
    Ok(out)
}

/// `--filter`: a glob (`*`, `?`) when the pattern has one, else a substring.
pub fn matches_filter(name: &str, patterns: &[String]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| pattern_matches(p, name))
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    fn glob(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
            (Some('?'), Some(_)) => glob(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

/// What a built-in test reported about itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultLine {
    pub test: String,
    pub verdict: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub gil: Option<String>,
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl ResultLine {
    /// The verdict a test may give itself (the runner alone gives TIMEOUT/CRASH/ERROR).
    pub fn verdict(&self) -> Option<Verdict> {
        match self.verdict.as_str() {
            "PASS" => Some(Verdict::Pass),
            "FAIL" => Some(Verdict::Fail),
            "SKIP" => Some(Verdict::Skip),
            "EXPECTED" => Some(Verdict::Expected),
            _ => None,
        }
    }
}

/// Every `MPFR-RESULT` line in `output`, parsed; unparsable ones as errors with the line.
pub fn result_lines(output: &str) -> Vec<Result<ResultLine, String>> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let at = l.find(RESULT_PREFIX)?;
            let json = &l[at + RESULT_PREFIX.len()..];
            Some(serde_json::from_str::<ResultLine>(json).map_err(|e| format!("{e}: {l}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_starts_with_the_shared_helper_and_names_itself() {
        assert!(HELPER.contains("def emit("));
        for b in BUILTINS {
            assert!(b.source.starts_with(HELPER), "{} lacks the helper", b.name);
            assert!(
                b.source.contains(&format!("TEST = \"{}\"", b.name)),
                "{}.py does not report under its own name",
                b.name
            );
            assert!(b.source[HELPER.len()..].starts_with(&format!("# {}:", b.name)));
        }
        let mut names: Vec<_> = BUILTINS.iter().map(|b| b.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BUILTINS.len());
    }

    #[test]
    fn payload_carries_level_and_seed_only_for_builtins() {
        let c = &builtin_cases(Suite::Soak)[0];
        let p = c.payload_for(Suite::Soak, 42);
        assert!(p.starts_with("MPFR_LEVEL = \"soak\"\nMPFR_SEED = 42\n"));
        let ext = TestCase {
            name: "x".into(),
            origin: "x.py".into(),
            payload: "print(1)\n".into(),
            judge: Judge::NoExpectation { why: "-".into() },
        };
        assert_eq!(ext.payload_for(Suite::Quick, 1), "print(1)\n");
        assert!(builtin_cases(Suite::None).is_empty());
    }

    #[test]
    fn result_lines_are_found_and_parsed() {
        let out = "noise\r\nMPFR-RESULT {\"test\":\"a\",\"verdict\":\"PASS\",\"detail\":\"ok\",\"gil\":\"unsafe\",\"metrics\":{\"n\":3}}\r\n\
                   MPFR-RESULT {broken\n";
        let r = result_lines(out);
        assert_eq!(r.len(), 2);
        let a = r[0].as_ref().unwrap();
        assert_eq!(a.test, "a");
        assert_eq!(a.verdict(), Some(Verdict::Pass));
        assert_eq!(a.metrics["n"], 3);
        assert_eq!(a.gil.as_deref(), Some("unsafe"));
        assert!(r[1].as_ref().unwrap_err().contains("MPFR-RESULT {broken"));
        let bad = ResultLine {
            test: "b".into(),
            verdict: "CRASH".into(),
            detail: String::new(),
            gil: None,
            metrics: Default::default(),
        };
        assert_eq!(bad.verdict(), None, "tests cannot claim runner verdicts");
    }

    #[test]
    fn filters_are_substrings_or_globs() {
        let f = |p: &[&str], n: &str| {
            matches_filter(n, &p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert!(f(&[], "anything"));
        assert!(f(&["lock"], "lock_exact"));
        assert!(f(&["lock"], "unlocked_race"));
        assert!(!f(&["lock*"], "unlocked_race"));
        assert!(f(&["lock*"], "lock_starvation"));
        assert!(f(&["*_race", "gc*"], "gc_under_load"));
        assert!(f(&["thread_?any"], "thread_many"));
        assert!(!f(&["thread_?any"], "thread_churn"));
    }

    #[test]
    fn normalise_unifies_line_ends() {
        assert_eq!(normalise("a\r\nb\r\n\r\n"), "a\nb\n");
        assert_eq!(normalise(""), "");
        assert_eq!(normalise("\n"), "");
        assert_eq!(normalise("x"), "x\n");
    }

    #[test]
    fn external_cases_prefer_exp_files_then_the_reference() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.py"), "print(2)\n").unwrap();
        std::fs::write(d.path().join("a.py"), "print(1)\n").unwrap();
        std::fs::write(d.path().join("a.py.exp"), "1\r\n").unwrap();
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        let cases = external_cases(d.path()).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "a");
        assert!(
            matches!(&cases[0].judge, Judge::Expect { expected, source } if expected == "1\n" && source.ends_with("a.py.exp"))
        );
        assert!(matches!(&cases[1].judge, Judge::Reference { file } if file.ends_with("b.py")));

        let empty = tempfile::tempdir().unwrap();
        let e = external_cases(empty.path()).unwrap_err();
        assert!(e.to_string().contains("no *.py"));
        let e = external_cases(&empty.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"));
    }

    #[test]
    fn cpython_reference_runs_python3_when_present() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t.py");
        std::fs::write(&f, "print('hi')\r\n").unwrap();
        let r = CPython::default().expected_output(&f);
        // No python3 on the machine is a reason, not a panic.
        match r {
            Ok(s) => assert_eq!(s, "hi\n"),
            Err(e) => assert!(e.contains("python3"), "{e}"),
        }
        std::fs::write(&f, "raise SystemExit(3)\n").unwrap();
        assert!(CPython::default().expected_output(&f).is_err());
    }

    /// Issue 14: a test that hangs under CPython must not hang the run; a CPython killed by a
    /// signal is a reason too. Both end as "not compared" reasons.
    #[test]
    fn cpython_reference_is_bounded_and_killed_with_its_group() {
        if std::process::Command::new("python3")
            .arg("-c")
            .arg("pass")
            .output()
            .is_err()
        {
            return; // no python3: covered by the test above
        }
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("child.pid");
        let f = d.path().join("hang.py");
        // The hang starts a child of its own, which must die with it (the limit leaves a
        // loaded machine time to start both before it passes).
        std::fs::write(
            &f,
            format!(
                "import subprocess, time\np = subprocess.Popen(['sleep', '300'])\nopen({:?}, 'w').write(str(p.pid))\nwhile True: pass\n",
                mark.display().to_string()
            ),
        )
        .unwrap();
        let cp = CPython {
            limits: super::super::Limits {
                timeout: std::time::Duration::from_secs(8),
                idle: std::time::Duration::from_secs(60),
            },
            ..CPython::default()
        };
        let e = cp.expected_output(&f).unwrap_err();
        assert!(
            e.contains("did not finish") && e.contains("--timeout"),
            "{e}"
        );
        let pid: i32 = std::fs::read_to_string(&mark)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signal 0 only checks whether the process exists.
        let alive =
            || unsafe { libc::kill(pid, 0) } == 0 && !crate::util::child::gone_or_zombie(pid);
        // The group's SIGKILL is sent; on a loaded machine the child may take a moment to die.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive(), "the hanging test's own child was left running");

        std::fs::write(&f, "import time\nprint('a', flush=True)\ntime.sleep(300)\n").unwrap();
        let cp = CPython {
            limits: super::super::Limits {
                timeout: std::time::Duration::from_secs(300),
                idle: std::time::Duration::from_millis(500),
            },
            ..CPython::default()
        };
        let e = cp.expected_output(&f).unwrap_err();
        assert!(e.contains("--idle-timeout"), "{e}");

        std::fs::write(&f, "import os\nos.system('kill -9 $PPID')\n").unwrap();
        let e = CPython::default().expected_output(&f).unwrap_err();
        assert!(e.contains("signal: 9"), "{e}");
    }
}
