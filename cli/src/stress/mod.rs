//! Thread stress and soak testing: built-in suites, external test directories, the runner with
//! its recovery ladder, and reports that lose nothing when the host or the board dies.
//!
//! The runner talks to a board through the small [`Executor`] trait: the REPL engine backs it
//! for MicroPython boards, the reference firmware's console for its native workloads, and a
//! scripted fake in unit tests.

pub mod capture;
pub mod connect;
pub mod fault;
pub mod native;
pub mod reference;
pub mod report;
pub mod runner;
pub mod runtests;
pub mod session;
pub mod suite;
pub mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use miette::Diagnostic;
use serde::{Deserialize, Serialize};

/// How one test run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The test ran and its checks held.
    Pass,
    /// The test ran and a check failed (or its output differed from the expectation).
    Fail,
    /// The test could not apply to this board (it says why).
    Skip,
    /// Misbehaviour that is the documented behaviour of this configuration (a data race with
    /// the GIL off); counts as passing.
    Expected,
    /// The wall-clock or inactivity limit passed; the board was interrupted.
    Timeout,
    /// The board died during the test (process killed, QEMU exited, link lost, reset).
    Crash,
    /// The test raised, printed no verdict, or the harness could not run it.
    Error,
}

crate::named_enum!(Verdict "verdict" {
    Pass => "PASS", Fail => "FAIL", Skip => "SKIP", Expected => "EXPECTED",
    Timeout => "TIMEOUT", Crash => "CRASH", Error => "ERROR",
});

impl Verdict {
    /// Whether the run may still exit 0 with this result.
    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Skip | Verdict::Expected)
    }

    /// Whether the board may be in a bad state afterwards (the recovery ladder runs).
    pub fn needs_recovery(self) -> bool {
        matches!(self, Verdict::Timeout | Verdict::Crash | Verdict::Error)
    }
}

/// Limits of one test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit from sending the test to its end.
    pub timeout: Duration,
    /// Longest silence from the board while the test runs.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            idle: Duration::from_secs(10),
        }
    }
}

/// Which limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeoutKind {
    Wall,
    Idle,
}

/// How an executor's run ended (the output itself went to the sink as it arrived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The code ran to its end; `exception` is the traceback when it raised.
    Finished { exception: Option<String> },
    /// A limit passed (the executor has already tried to interrupt the board).
    TimedOut { kind: TimeoutKind, after: Duration },
    /// The board went away: the process died, QEMU exited, the link dropped, it reset.
    Died { detail: String },
    /// The harness could not run the code (protocol trouble, no connection).
    Failed { detail: String },
}

/// Steps of the recovery ladder, gentlest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryStep {
    /// Ctrl-C whatever still runs.
    Interrupt,
    /// Soft reset (Ctrl-D); the host board respawns its process.
    SoftReset,
    /// Hard reset: process respawn (host), QEMU restart (virtual board), probe reset.
    HardReset,
}

impl RecoveryStep {
    pub const LADDER: [RecoveryStep; 3] = [
        RecoveryStep::Interrupt,
        RecoveryStep::SoftReset,
        RecoveryStep::HardReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStep::Interrupt => "interrupt",
            RecoveryStep::SoftReset => "soft-reset",
            RecoveryStep::HardReset => "hard-reset",
        }
    }
}

/// What the runner needs from a board. Implementations: the REPL session (MicroPython boards),
/// the reference firmware's console, a scripted fake (tests).
pub trait Executor {
    /// What this executes on, for messages (`host (micropython on /dev/pts/3)`).
    fn describe(&self) -> String;

    /// Runs `payload` within `limits`; output goes to `sink` as it arrives.
    fn run(&mut self, payload: &str, limits: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd;

    /// One step of the recovery ladder. `Ok` means the step was carried out (not yet that the
    /// board is healthy: the runner checks with [`Executor::healthy`]).
    fn recover(&mut self, step: RecoveryStep) -> Result<(), String>;

    /// A quick check that the board answers (e.g. `print(1+1)` gives `2`).
    fn healthy(&mut self) -> bool;

    /// What the board says about itself (GIL mode, version), if it can tell.
    fn identify(&mut self) -> BoardFacts {
        BoardFacts::default()
    }

    /// Isolation between tests (a soft reset for MicroPython boards); nothing by default.
    fn fresh(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// After a CRASH, before any recovery: a crash bundle of the board as it died (see
    /// `mpfr crash`), with `console` (what the test printed) as its console tail, or why none
    /// could be taken; `None` where the board cannot be halted.
    fn capture_crash(&mut self, console: &str) -> Option<Result<std::path::PathBuf, String>> {
        let _ = console;
        None
    }
}

/// What a board reported about itself at the start of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BoardFacts {
    /// `sys.implementation._thread`: `GIL`, `unsafe`, or absent.
    pub gil: Option<String>,
    /// `sys.version` or the firmware banner.
    pub version: Option<String>,
    /// Configuration fingerprint the firmware reports, if it does.
    pub fingerprint: Option<String>,
}

/// Failures of a stress run as a whole (a test's own failure is a verdict, not an error).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum StressError {
    /// `--tests DIR` is unusable.
    #[error("cannot use the test directory {}: {detail}", dir.display())]
    #[diagnostic(
        code(mpfr::stress::tests_dir),
        help("pass a directory of MicroPython test files (*.py, optionally with NAME.py.exp)")
    )]
    TestsDir { dir: PathBuf, detail: String },

    /// Nothing left to run.
    #[error("no test to run: {why}")]
    #[diagnostic(
        code(mpfr::stress::nothing),
        help("check --filter, --suite and --tests; `mpfr stress --list` shows the tests")
    )]
    NothingToRun { why: String },

    /// A report file could not be written; the run stops so that nothing is silently lost.
    #[error("cannot write the report {}", path.display())]
    #[diagnostic(
        code(mpfr::stress::report),
        help("check that the directory exists and is writable, and that the disk is not full")
    )]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The board cannot be reached or used for stress runs.
    #[error("{what}")]
    #[diagnostic(code(mpfr::stress::board), help("{help}"))]
    Board { what: String, help: String },
}

/// What answers on the board's console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsoleKind {
    /// MicroPython (REPL): built-in suites and external tests.
    MicroPython,
    /// The mpfr reference firmware: its native workloads.
    Reference,
}

/// What the user asked for, before anything is read or connected.
#[derive(Debug, Clone)]
pub struct Request {
    pub suite: suite::Suite,
    pub tests_dir: Option<PathBuf>,
    pub filters: Vec<String>,
    pub limits: Limits,
    pub repeat: Option<u32>,
    pub duration: Option<Duration>,
    pub seed: Option<u64>,
    pub isolate: bool,
    /// Cores the board's firmware runs on (native SMP workloads need two).
    pub cores: u32,
    /// `--skip PATTERN[=REASON]` entries, on top of run-tests' own rules.
    pub skips: Vec<String>,
}

/// Turns a request into a runnable plan: built-in tests of the suite, then the external test
/// directory, filtered. Fails when nothing is left.
pub fn plan(req: &Request, console: ConsoleKind) -> Result<runner::Plan, StressError> {
    let mut tests = match console {
        ConsoleKind::MicroPython => suite::builtin_cases(req.suite),
        ConsoleKind::Reference => native::native_cases(req.suite, req.cores),
    };
    if let Some(dir) = &req.tests_dir {
        if console == ConsoleKind::Reference {
            return Err(StressError::Board {
                what: format!(
                    "the tests in {} need MicroPython, but the board runs the reference firmware",
                    dir.display()
                ),
                help: "flash a MicroPython image (`mpfr flash --board <name> firmware.elf`), or drop --tests to run the firmware's native workloads".into(),
            });
        }
        tests.extend(suite::external_cases(dir)?);
    }
    let all = tests.len();
    tests.retain(|t| suite::matches_filter(&t.name, &req.filters));
    if tests.is_empty() {
        return Err(StressError::NothingToRun {
            why: if all == 0 {
                "the suite is `none` and no --tests directory was given".into()
            } else {
                format!(
                    "--filter {} matches none of the {all} tests",
                    req.filters.join(", ")
                )
            },
        });
    }
    if req.repeat == Some(0) {
        return Err(StressError::NothingToRun {
            why: "--repeat 0".into(),
        });
    }
    Ok(runner::Plan {
        tests,
        level: if req.suite == suite::Suite::Soak {
            suite::Suite::Soak
        } else {
            suite::Suite::Quick
        },
        limits: req.limits,
        repeat: req.repeat,
        duration: req.duration,
        seed: req.seed.unwrap_or_else(random_seed),
        isolate: req.isolate,
        reference: None,
        skips: runtests::builtin_skips()
            .into_iter()
            .chain(req.skips.iter().map(|s| runtests::parse_skip(s)))
            .collect(),
    })
}

/// The executor for `board` with the console `kind` (see [`connect::console_kind`]).
pub fn connect(
    board: &crate::board::Board,
    port: Option<&str>,
    kind: ConsoleKind,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<Box<dyn Executor>, StressError> {
    connect::connect(board, port, kind, cancel)
}

/// A seed from the clock (recorded with every result, so a run can be repeated with `--seed`).
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64 ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            suite: suite::Suite::Quick,
            tests_dir: None,
            filters: vec![],
            limits: Limits::default(),
            repeat: None,
            duration: None,
            seed: Some(5),
            isolate: true,
            cores: 1,
            skips: vec![],
        }
    }

    #[test]
    fn plans_builtins_then_external_tests_filtered() {
        let p = plan(&req(), ConsoleKind::MicroPython).unwrap();
        assert_eq!(p.tests.len(), suite::BUILTINS.len());
        assert_eq!(p.seed, 5);

        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("thread_x.py"), "print(1)\n").unwrap();
        let mut r = req();
        r.tests_dir = Some(d.path().to_path_buf());
        r.filters = vec!["thread_*".into()];
        r.suite = suite::Suite::Soak;
        let p = plan(&r, ConsoleKind::MicroPython).unwrap();
        let names: Vec<&str> = p.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["thread_churn", "thread_many", "thread_x"]);
        assert_eq!(p.level, suite::Suite::Soak);

        r.filters = vec!["zzz".into()];
        let e = plan(&r, ConsoleKind::MicroPython).unwrap_err().to_string();
        assert!(
            e.contains("--filter zzz matches none of the 11 tests"),
            "{e}"
        );
        let mut r = req();
        r.suite = suite::Suite::None;
        assert!(
            plan(&r, ConsoleKind::MicroPython)
                .unwrap_err()
                .to_string()
                .contains("suite is `none`")
        );
        let mut r = req();
        r.repeat = Some(0);
        assert!(plan(&r, ConsoleKind::MicroPython).is_err());
        r.repeat = None;
        r.seed = None;
        assert!(plan(&r, ConsoleKind::MicroPython).unwrap().seed < 1_000_000_000);

        let p = plan(&req(), ConsoleKind::Reference).unwrap();
        assert_eq!(p.tests[0].name, "spawn");
        assert!(p.tests.iter().all(|t| t.origin == "firmware:quick"));
        let mut r = req();
        r.tests_dir = Some(d.path().to_path_buf());
        let e = plan(&r, ConsoleKind::Reference).unwrap_err().to_string();
        assert!(e.contains("need MicroPython"), "{e}");
    }
}
