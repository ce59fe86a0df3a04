//! The stress runner: runs each test under its limits, judges it, climbs the recovery ladder
//! when a test hangs or kills the board, and goes on; repeats, durations, seeds and filters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::reference::Prefetch;
use super::report::{
    RunInfo, Summary, TelemetrySummary, TestResult, cap_tail, sanitise, sanitise_all,
};
use super::runtests::{SkipRule, apply_patterns, skip_reason};
use super::suite::{
    BEAT_PREFIX, Judge, Reference, ResultLine, Suite, TestCase, normalise, result_lines,
};
use super::{Executor, Limits, RecoveryStep, RunEnd, StressError, TimeoutKind, Verdict};

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tests: Vec<TestCase>,
    /// Intensity given to built-in tests.
    pub level: Suite,
    pub limits: Limits,
    /// Rounds over all tests (default 1; with `duration`, an upper bound).
    pub repeat: Option<u32>,
    /// Keep starting rounds until this much time has passed (at least one round).
    pub duration: Option<Duration>,
    /// Base seed; round `r` runs with `seed + r`.
    pub seed: u64,
    /// Ask the executor for a fresh board before each test (soft reset).
    pub isolate: bool,
    /// Expected outputs of [`Judge::Reference`] tests, computed while the board runs.
    pub reference: Option<std::sync::Arc<Prefetch>>,
    /// Tests not to run on this board, with the reason (run-tests' rules and `--skip`).
    pub skips: Vec<SkipRule>,
}

impl Plan {
    /// Starts computing the reference outputs of the planned tests that need one, in the
    /// order they run, `workers` at a time.
    pub fn start_reference(
        &mut self,
        reference: std::sync::Arc<dyn Reference + Send + Sync>,
        workers: usize,
    ) {
        let files: Vec<std::path::PathBuf> = self
            .tests
            .iter()
            .filter_map(|t| match &t.judge {
                Judge::Reference { file } => Some(file.clone()),
                _ => None,
            })
            .collect();
        if !files.is_empty() {
            self.reference = Some(std::sync::Arc::new(Prefetch::start(
                reference, files, workers,
            )));
        }
    }

    /// How `case` is judged, with its reference output once there is one.
    fn judge_of(&self, case: &TestCase) -> Judge {
        match &case.judge {
            Judge::Reference { file } => match self.reference.as_ref().map(|r| r.get(file)) {
                Some(Ok(expected)) => Judge::Expect {
                    expected,
                    source: "CPython".into(),
                },
                Some(Err(why)) => Judge::NoExpectation { why },
                None => Judge::NoExpectation {
                    why: "no reference was run".into(),
                },
            },
            j => j.clone(),
        }
    }

    fn more_rounds(&self, done: u32, elapsed: Duration) -> bool {
        match (self.repeat, self.duration) {
            (n, None) => done < n.unwrap_or(1),
            (None, Some(d)) => done == 0 || elapsed < d,
            (Some(n), Some(d)) => done < n && (done == 0 || elapsed < d),
        }
    }
}

/// The seed of round `repeat`.
pub fn seed_for(base: u64, repeat: u32) -> u64 {
    base.wrapping_add(u64::from(repeat))
}

/// Progress of a run, for whoever renders it (and writes the JSON Lines report).
#[derive(Debug)]
pub enum Event<'a> {
    /// A test is about to run.
    Started {
        test: &'a TestCase,
        repeat: u32,
        seed: u64,
    },
    /// Output of the running test, as it arrives.
    Output(&'a [u8]),
    /// One step of the recovery ladder finished.
    Recovery {
        step: &'a str,
        done: bool,
        healthy: bool,
        detail: Option<&'a str>,
    },
    /// A test ended; its result is final.
    Finished(&'a TestResult),
}

/// Receives a run's events. An error stops the run (a report that cannot be written must not
/// be ignored).
pub trait Observer {
    fn event(&mut self, ev: Event<'_>) -> Result<(), StressError>;

    /// What the board's telemetry saw since the last [`Event::Started`] (minimum free heap,
    /// peak task count, deepest stack use, service latency); attached to the result before it
    /// is reported. Boards without telemetry: `None`.
    fn telemetry(&mut self) -> Option<TelemetrySummary> {
        None
    }
}

impl<F: FnMut(Event<'_>) -> Result<(), StressError>> Observer for F {
    fn event(&mut self, ev: Event<'_>) -> Result<(), StressError> {
        self(ev)
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub results: Vec<TestResult>,
    pub summary: Summary,
}

/// Runs `plan` on `exec`. Test failures are results; only a failing observer is an error.
pub fn run(
    exec: &mut dyn Executor,
    plan: &Plan,
    info: &RunInfo,
    obs: &mut dyn Observer,
    cancel: Option<&AtomicBool>,
) -> Result<Outcome, StressError> {
    let start = Instant::now();
    let mut results: Vec<TestResult> = Vec::new();
    let mut aborted: Option<String> = None;
    let mut round = 0u32;
    'rounds: while plan.more_rounds(round, start.elapsed()) {
        for case in &plan.tests {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                aborted = Some("interrupted (Ctrl-C)".into());
                break 'rounds;
            }
            let seed = seed_for(plan.seed, round);
            if let Some(why) = skip_reason(&plan.skips, &case.name, &case.origin, &info.facts) {
                obs.event(Event::Started {
                    test: case,
                    repeat: round,
                    seed,
                })?;
                let mut r = judge(
                    case,
                    &RunEnd::Finished { exception: None },
                    b"",
                    info,
                    round,
                    seed,
                    Duration::ZERO,
                );
                r.verdict = Verdict::Skip;
                r.detail = format!("not run: {why}");
                r.metrics = Default::default();
                obs.event(Event::Finished(&r))?;
                results.push(r);
                continue;
            }
            let mut result = run_one(exec, case, plan, info, round, seed, obs)?;
            result.telemetry = obs.telemetry();
            let cancelled = cancel.is_some_and(|c| c.load(Ordering::Relaxed));
            result.interrupted = cancelled && !result.verdict.is_ok();
            // The board as it died, before the ladder restarts it.
            if result.verdict == Verdict::Crash && !cancelled {
                match exec.capture_crash(&result.output) {
                    Some(Ok(path)) => result.crash_bundle = Some(path),
                    Some(Err(why)) => {
                        result.detail = format!("{} (no crash bundle: {why})", result.detail)
                    }
                    None => {}
                }
            }
            let healthy = if result.verdict.needs_recovery() && !cancelled {
                climb_ladder(exec, &mut result, obs)?
            } else {
                true
            };
            obs.event(Event::Finished(&result))?;
            let test = result.test.clone();
            results.push(result);
            if !healthy {
                aborted = Some(format!(
                    "the board did not recover after {test} (tried {})",
                    RecoveryStep::LADDER
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                break 'rounds;
            }
        }
        round += 1;
    }
    let summary = Summary::of(&results, start.elapsed(), aborted);
    Ok(Outcome { results, summary })
}

fn run_one(
    exec: &mut dyn Executor,
    case: &TestCase,
    plan: &Plan,
    info: &RunInfo,
    repeat: u32,
    seed: u64,
    obs: &mut dyn Observer,
) -> Result<TestResult, StressError> {
    obs.event(Event::Started {
        test: case,
        repeat,
        seed,
    })?;
    let started = Instant::now();
    let mut output: Vec<u8> = Vec::new();
    let reset = if plan.isolate { exec.fresh() } else { Ok(()) };
    let end = match reset {
        Err(e) => RunEnd::Failed {
            detail: format!("could not reset the board before the test: {e}"),
        },
        Ok(()) => {
            let payload = case.payload_for(plan.level, seed);
            let mut obs_err = None;
            let end = exec.run(&payload, &plan.limits, &mut |b: &[u8]| {
                output.extend_from_slice(b);
                if obs_err.is_none() {
                    obs_err = obs.event(Event::Output(b)).err();
                }
            });
            if let Some(e) = obs_err {
                return Err(e);
            }
            end
        }
    };
    // Only a finished run is compared: a hang or a crash need not wait for the reference.
    let judged = TestCase {
        judge: match end {
            RunEnd::Finished { .. } => plan.judge_of(case),
            _ => case.judge.clone(),
        },
        ..case.clone()
    };
    Ok(judge(
        &judged,
        &end,
        &output,
        info,
        repeat,
        seed,
        started.elapsed(),
    ))
}

/// Output as judged: sanitised, keep-alive lines dropped, whole (the report keeps its tail).
fn recorded_output(raw: &[u8]) -> String {
    let text = sanitise_all(raw);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.starts_with(BEAT_PREFIX) {
            out.push_str(line);
        }
    }
    out
}

/// Decides a test's verdict from how it ended and what it printed.
pub fn judge(
    case: &TestCase,
    end: &RunEnd,
    raw: &[u8],
    info: &RunInfo,
    repeat: u32,
    seed: u64,
    duration: Duration,
) -> TestResult {
    let output = recorded_output(raw);
    let mut r = TestResult {
        test: case.name.clone(),
        origin: case.origin.clone(),
        verdict: Verdict::Error,
        detail: String::new(),
        duration,
        repeat,
        seed,
        board: info.board.clone(),
        fingerprint: info.fingerprint.clone(),
        gil: info.gil(),
        cores: info.cores,
        metrics: Default::default(),
        output: String::new(),
        recovery: Vec::new(),
        telemetry: None,
        interrupted: false,
        crash_bundle: None,
    };
    let (verdict, detail) = match end {
        RunEnd::TimedOut { kind, after } => (
            Verdict::Timeout,
            match kind {
                TimeoutKind::Wall => format!("still running after {after:.1?} (--timeout)"),
                TimeoutKind::Idle => format!("silent for {after:.1?} (--idle-timeout)"),
            },
        ),
        RunEnd::Died { detail } => (Verdict::Crash, format!("the board died: {detail}")),
        RunEnd::Failed { detail } => (Verdict::Error, detail.clone()),
        RunEnd::Finished { exception } => {
            let exc = exception.as_deref().map(|t| sanitise(t.as_bytes()));
            match &case.judge {
                Judge::ResultLine => judge_result_line(case, &output, exc.as_deref(), &mut r),
                Judge::Expect { expected, source } | Judge::ExpectPatterns { expected, source } => {
                    let mut actual = output.clone();
                    if let Some(t) = &exc {
                        actual.push_str(t);
                    }
                    let mut actual = normalise(&actual);
                    if matches!(case.judge, Judge::ExpectPatterns { .. }) {
                        actual = apply_patterns(&actual, expected);
                    }
                    if is_skip(&actual) {
                        (Verdict::Skip, "the test printed SKIP".into())
                    } else if &actual == expected {
                        (Verdict::Pass, format!("output matches {source}"))
                    } else {
                        (Verdict::Fail, first_difference(&actual, expected, source))
                    }
                }
                Judge::NoExpectation { why } => {
                    if is_skip(&normalise(&output)) {
                        (Verdict::Skip, "the test printed SKIP".into())
                    } else if let Some(t) = &exc {
                        (Verdict::Fail, format!("raised {}", last_line(t)))
                    } else {
                        (
                            Verdict::Pass,
                            format!("ran without an exception; output not compared: {why}"),
                        )
                    }
                }
                Judge::NativeResult => judge_native(case, &output, &mut r),
                Judge::Reference { .. } => (
                    Verdict::Error,
                    "the reference output was not resolved before judging".into(),
                ),
            }
        }
    };
    r.verdict = verdict;
    r.detail = detail;
    let mut recorded = output;
    if let RunEnd::Finished { exception: Some(t) } = end {
        recorded.push_str(&sanitise(t.as_bytes()));
    }
    r.output = cap_tail(recorded);
    r
}

fn is_skip(actual: &str) -> bool {
    actual.lines().next().is_some_and(|l| l.trim() == "SKIP")
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn first_difference(actual: &str, expected: &str, source: &str) -> String {
    let a: Vec<&str> = actual.lines().collect();
    let e: Vec<&str> = expected.lines().collect();
    for i in 0..a.len().max(e.len()) {
        let (x, y) = (a.get(i), e.get(i));
        if x != y {
            let show = |v: Option<&&str>| v.map_or("<end of output>".to_string(), |s| cut_line(s));
            return format!(
                "output differs from {source} at line {}: got {}, want {}",
                i + 1,
                show(x),
                show(y)
            );
        }
    }
    format!("output differs from {source}")
}

/// A line for a message: quoted, and cut after [`SHOWN`] characters saying how many more.
fn cut_line(s: &str) -> String {
    const SHOWN: usize = 120;
    let n = s.chars().count();
    if n <= SHOWN {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(SHOWN).collect();
    format!("{head:?} (+{} more characters)", n - SHOWN)
}

fn judge_result_line(
    case: &TestCase,
    output: &str,
    exception: Option<&str>,
    r: &mut TestResult,
) -> (Verdict, String) {
    if let Some(t) = exception {
        return (Verdict::Error, format!("raised {}", last_line(t)));
    }
    let lines: Vec<Result<ResultLine, String>> = result_lines(output);
    let mut best: Option<(Verdict, ResultLine)> = None;
    for l in lines {
        let l = match l {
            Ok(l) => l,
            Err(e) => return (Verdict::Error, format!("unreadable result line: {e}")),
        };
        if l.test != case.name {
            continue;
        }
        let Some(v) = l.verdict() else {
            return (
                Verdict::Error,
                format!("unknown verdict {:?} in the result line", l.verdict),
            );
        };
        // Several lines: the worst one counts.
        let worse = best.as_ref().is_none_or(|(b, _)| rank(v) > rank(*b));
        if worse {
            best = Some((v, l));
        }
    }
    match best {
        Some((v, l)) => {
            r.metrics = l.metrics;
            if let Some(g) = l.gil {
                r.gil = g;
            }
            (v, l.detail)
        }
        None => (
            Verdict::Error,
            format!("printed no result line for {}", case.name),
        ),
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Pass => 0,
        Verdict::Skip => 1,
        Verdict::Expected => 2,
        Verdict::Fail => 3,
        Verdict::Timeout => 4,
        Verdict::Error => 5,
        Verdict::Crash => 6,
    }
}

/// One `RESULT <name> PASS|FAIL key=value ...` line (the reference firmware's console).
pub type NativeResult = (String, Verdict, serde_json::Map<String, serde_json::Value>);

/// Every `RESULT` line in `output`, in order.
pub fn parse_native_results(output: &str) -> Vec<NativeResult> {
    output
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let mut words = line.strip_prefix("RESULT ")?.split_whitespace();
            let name = words.next()?.to_string();
            let verdict = match words.next()? {
                "PASS" => Verdict::Pass,
                "FAIL" => Verdict::Fail,
                "EXPECTED" => Verdict::Expected,
                _ => return None,
            };
            let mut metrics = serde_json::Map::new();
            for w in words {
                if let Some((k, v)) = w.split_once('=') {
                    let value = v
                        .parse::<i64>()
                        .map(serde_json::Value::from)
                        .or_else(|_| v.parse::<f64>().map(serde_json::Value::from))
                        .unwrap_or_else(|_| serde_json::Value::from(v));
                    metrics.insert(k.to_string(), value);
                }
            }
            Some((name, verdict, metrics))
        })
        .collect()
}

/// Every RESULT line must pass; the workload's own line (not the `load` settings around it)
/// gives the measurements.
fn judge_native(case: &TestCase, output: &str, r: &mut TestResult) -> (Verdict, String) {
    let all = parse_native_results(output);
    let main = all
        .iter()
        .rev()
        .find(|(n, _, _)| n != "load")
        .or(all.last());
    let Some((name, _, metrics)) = main else {
        return (
            Verdict::Error,
            format!("the firmware printed no RESULT line for {}", case.name),
        );
    };
    r.metrics = metrics.clone();
    // A workload with several checks of its own (`smp`: race, lock, FPU, ...) keeps each one's
    // verdict and figures under its name; an EXPECTED check (lost updates without a lock) is
    // what the workload means to show, so it does not fail the test.
    let checks: Vec<&NativeResult> = all.iter().filter(|(n, _, _)| n != "load").collect();
    if checks.len() > 1 {
        r.metrics = checks
            .iter()
            .map(|(n, v, m)| {
                let mut m = m.clone();
                m.insert("verdict".into(), v.as_str().into());
                (n.clone(), serde_json::Value::Object(m))
            })
            .collect();
    }
    let failed = all.iter().find(|(_, v, _)| *v == Verdict::Fail);
    let (verdict, (name, metrics)) = match failed {
        Some((n, _, m)) => (Verdict::Fail, (n, m)),
        None => (Verdict::Pass, (name, metrics)),
    };
    let kv: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if checks.len() > 1 && verdict == Verdict::Pass {
        let each: Vec<String> = checks
            .iter()
            .map(|(n, v, _)| format!("{n} {}", v.as_str()))
            .collect();
        return (verdict, each.join(", "));
    }
    (verdict, format!("{name}: {}", kv.join(" ")))
}

/// Brings the board back after a bad test: a health check first, then each step of the ladder
/// until the board answers. Returns whether it does.
fn climb_ladder(
    exec: &mut dyn Executor,
    r: &mut TestResult,
    obs: &mut dyn Observer,
) -> Result<bool, StressError> {
    let healthy = exec.healthy();
    r.recovery.push(("check".into(), healthy));
    obs.event(Event::Recovery {
        step: "check",
        done: true,
        healthy,
        detail: None,
    })?;
    if healthy {
        return Ok(true);
    }
    for step in RecoveryStep::LADDER {
        let res = exec.recover(step);
        let healthy = res.is_ok() && exec.healthy();
        r.recovery.push((step.as_str().into(), healthy));
        obs.event(Event::Recovery {
            step: step.as_str(),
            done: res.is_ok(),
            healthy,
            detail: res.as_ref().err().map(String::as_str),
        })?;
        if healthy {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::BoardFacts;
    use crate::stress::suite::builtin_cases;

    /// What the fake board does for a payload containing a marker.
    #[derive(Clone)]
    enum Act {
        Print(&'static str),
        Raise(&'static str),
        Hang,
        Die,
    }

    /// A scripted board: acts by markers found in the payload; dead until a step revives it.
    struct Fake {
        script: Vec<(&'static str, Act)>,
        alive: bool,
        /// The first recovery step that revives a dead board.
        revived_by: Option<RecoveryStep>,
        log: Vec<String>,
        payloads: Vec<String>,
        /// What `capture_crash` answers (`None`: the board cannot be halted).
        bundle: Option<Result<std::path::PathBuf, String>>,
    }

    impl Fake {
        fn new(script: Vec<(&'static str, Act)>) -> Fake {
            Fake {
                script,
                alive: true,
                revived_by: Some(RecoveryStep::SoftReset),
                log: vec![],
                payloads: vec![],
                bundle: None,
            }
        }
    }

    impl Executor for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn run(&mut self, payload: &str, limits: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd {
            self.payloads.push(payload.to_string());
            if !self.alive {
                return RunEnd::Failed {
                    detail: "not connected".into(),
                };
            }
            let act = self
                .script
                .iter()
                .find(|(m, _)| payload.contains(m))
                .map(|(_, a)| a.clone())
                .unwrap_or(Act::Print("nothing\n"));
            match act {
                Act::Print(s) => {
                    sink(b"MPFR-BEAT\n");
                    sink(s.as_bytes());
                    RunEnd::Finished { exception: None }
                }
                Act::Raise(t) => RunEnd::Finished {
                    exception: Some(t.into()),
                },
                Act::Hang => {
                    sink(b"started\n");
                    self.alive = false;
                    RunEnd::TimedOut {
                        kind: TimeoutKind::Idle,
                        after: limits.idle,
                    }
                }
                Act::Die => {
                    sink(b"about to die\n");
                    self.alive = false;
                    RunEnd::Died {
                        detail: "process exited (signal 9)".into(),
                    }
                }
            }
        }
        fn recover(&mut self, step: RecoveryStep) -> Result<(), String> {
            self.log.push(step.as_str().into());
            if Some(step) == self.revived_by {
                self.alive = true;
            }
            if step == RecoveryStep::HardReset && self.revived_by.is_none() {
                return Err("no reset line".into());
            }
            Ok(())
        }
        fn healthy(&mut self) -> bool {
            self.log.push("healthy?".into());
            self.alive
        }
        fn fresh(&mut self) -> Result<(), String> {
            self.log.push("fresh".into());
            Ok(())
        }
        fn capture_crash(&mut self, console: &str) -> Option<Result<std::path::PathBuf, String>> {
            self.log
                .push(format!("capture alive={} console={console:?}", self.alive));
            self.bundle.clone()
        }
    }

    fn case(name: &str, judge: Judge) -> TestCase {
        TestCase {
            name: name.into(),
            origin: "t".into(),
            payload: format!("#{name}\n"),
            judge,
        }
    }

    fn plan(tests: Vec<TestCase>) -> Plan {
        Plan {
            tests,
            level: Suite::Quick,
            limits: Limits::default(),
            repeat: None,
            duration: None,
            seed: 100,
            isolate: false,
            reference: None,
            skips: vec![],
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            board: "fake".into(),
            fingerprint: "0xabcdef01".into(),
            gil_configured: "off".into(),
            suite: "quick".into(),
            seed: 100,
            facts: BoardFacts::default(),
            cores: 1,
            started_unix: 0,
            config_mismatch: vec![],
        }
    }

    fn go(fake: &mut Fake, p: &Plan) -> (Outcome, Vec<String>) {
        let mut events = Vec::new();
        let mut obs = |e: Event<'_>| {
            events.push(match e {
                Event::Started { test, repeat, seed } => {
                    format!("start {} #{repeat} seed={seed}", test.name)
                }
                Event::Output(b) => format!("out {}", String::from_utf8_lossy(b).trim()),
                Event::Recovery { step, healthy, .. } => format!("recover {step} {healthy}"),
                Event::Finished(r) => format!("end {} {}", r.test, r.verdict),
            });
            Ok(())
        };
        let o = run(fake, p, &info(), &mut obs, None).unwrap();
        (o, events)
    }

    const PASS_A: &str = "MPFR-RESULT {\"test\":\"a\",\"verdict\":\"PASS\",\"detail\":\"fine\",\"gil\":\"unsafe\",\"metrics\":{\"threads\":4}}\n";

    #[test]
    fn a_crash_is_captured_before_the_ladder_and_only_a_crash() {
        let mut fake = Fake::new(vec![("#hang", Act::Hang), ("#crash", Act::Die)]);
        fake.bundle = Some(Ok("out/crash-1-0.crash".into()));
        let p = plan(vec![
            case("hang", Judge::ResultLine),
            case("crash", Judge::ResultLine),
        ]);
        let (o, _) = go(&mut fake, &p);
        assert_eq!(o.results[0].crash_bundle, None, "a hang is not a crash");
        assert_eq!(
            o.results[1].crash_bundle.as_deref(),
            Some(std::path::Path::new("out/crash-1-0.crash"))
        );
        // Taken while the board was still dead, before the first recovery step of the crash.
        let at = fake
            .log
            .iter()
            .position(|l| l.starts_with("capture"))
            .unwrap();
        assert_eq!(
            fake.log[at], "capture alive=false console=\"about to die\\n\"",
            "what the test printed is the bundle's console tail"
        );
        assert_eq!(
            fake.log.iter().filter(|l| l.starts_with("capture")).count(),
            1
        );
        assert_eq!(fake.log[at + 1], "healthy?", "{:?}", fake.log);

        let mut fake = Fake::new(vec![("#crash", Act::Die)]);
        fake.bundle = Some(Err("QEMU exited".into()));
        let (o, _) = go(&mut fake, &plan(vec![case("crash", Judge::ResultLine)]));
        assert_eq!(o.results[0].crash_bundle, None);
        assert!(
            o.results[0]
                .detail
                .ends_with("(no crash bundle: QEMU exited)"),
            "{}",
            o.results[0].detail
        );
    }

    #[test]
    fn a_hang_and_a_crash_are_recovered_and_the_run_goes_on() {
        let mut fake = Fake::new(vec![
            ("#a", Act::Print(PASS_A)),
            ("#hang", Act::Hang),
            ("#crash", Act::Die),
        ]);
        let p = plan(vec![
            case("hang", Judge::ResultLine),
            case("crash", Judge::ResultLine),
            case("a", Judge::ResultLine),
        ]);
        let (o, events) = go(&mut fake, &p);
        let v: Vec<Verdict> = o.results.iter().map(|r| r.verdict).collect();
        assert_eq!(v, [Verdict::Timeout, Verdict::Crash, Verdict::Pass]);
        assert!(o.results[0].detail.contains("--idle-timeout"));
        assert_eq!(o.results[0].output, "started\n");
        assert!(o.results[1].detail.contains("signal 9"));
        assert_eq!(o.results[1].output, "about to die\n");
        assert_eq!(
            o.results[0].recovery,
            [
                ("check".to_string(), false),
                ("interrupt".to_string(), false),
                ("soft-reset".to_string(), true)
            ]
        );
        assert_eq!(o.results[2].metrics["threads"], 4);
        assert_eq!(o.results[2].gil, "unsafe");
        assert_eq!(o.results[2].output, PASS_A, "keep-alive lines are dropped");
        assert!(!o.summary.ok);
        assert!(o.summary.aborted.is_none());
        // The result event comes after the recovery it records.
        let i_rec = events
            .iter()
            .position(|e| e == "recover soft-reset true")
            .unwrap();
        let i_end = events.iter().position(|e| e == "end hang TIMEOUT").unwrap();
        assert!(i_rec < i_end, "{events:?}");
    }

    #[test]
    fn an_unrecoverable_board_stops_the_run() {
        let mut fake = Fake::new(vec![("#crash", Act::Die)]);
        fake.revived_by = None;
        let p = plan(vec![
            case("crash", Judge::ResultLine),
            case("a", Judge::ResultLine),
        ]);
        let (o, _) = go(&mut fake, &p);
        assert_eq!(o.results.len(), 1);
        assert!(
            o.summary
                .aborted
                .as_deref()
                .unwrap()
                .contains("did not recover after crash")
        );
        assert_eq!(o.results[0].recovery.len(), 4);
        assert!(!o.summary.ok);
    }

    #[test]
    fn verdicts_from_result_lines_exceptions_and_silence() {
        let fail_b = "MPFR-RESULT {\"test\":\"b\",\"verdict\":\"PASS\"}\nMPFR-RESULT {\"test\":\"b\",\"verdict\":\"FAIL\",\"detail\":\"lost 3\"}\n";
        let mut fake = Fake::new(vec![
            ("#b", Act::Print(fail_b)),
            ("#c", Act::Raise("Traceback:\nValueError: nope\n")),
            ("#d", Act::Print("no verdict here\n")),
            (
                "#e",
                Act::Print("MPFR-RESULT {\"test\":\"e\",\"verdict\":\"CRASH\"}\n"),
            ),
            (
                "#f",
                Act::Print(
                    "MPFR-RESULT {\"test\":\"f\",\"verdict\":\"EXPECTED\",\"detail\":\"race\"}\n",
                ),
            ),
            ("#g", Act::Print("MPFR-RESULT {oops\n")),
        ]);
        let names = ["b", "c", "d", "e", "f", "g"];
        let p = plan(names.iter().map(|n| case(n, Judge::ResultLine)).collect());
        let (o, _) = go(&mut fake, &p);
        let got: Vec<(Verdict, &str)> = o
            .results
            .iter()
            .map(|r| (r.verdict, r.detail.as_str()))
            .collect();
        assert_eq!(got[0], (Verdict::Fail, "lost 3"), "the worst line counts");
        assert_eq!(got[1], (Verdict::Error, "raised ValueError: nope"));
        assert_eq!(got[2], (Verdict::Error, "printed no result line for d"));
        assert!(got[3].1.contains("unknown verdict"));
        assert_eq!(got[4], (Verdict::Expected, "race"));
        assert!(got[5].1.contains("unreadable result line"));
        assert!(o.results[1].output.contains("ValueError: nope"));
        // Errors with a healthy board: a check, and no ladder.
        assert_eq!(o.results[1].recovery, [("check".to_string(), true)]);
        assert!(!fake.log.iter().any(|l| l == "interrupt"));
    }

    #[test]
    fn external_tests_compare_output_and_honour_skip() {
        let mut fake = Fake::new(vec![
            ("#same", Act::Print("1\r\n2\r\n")),
            ("#diff", Act::Print("1\n3\n")),
            ("#skip", Act::Print("SKIP\n")),
            ("#short", Act::Print("1\n")),
            ("#noexp", Act::Print("whatever\n")),
            ("#raises", Act::Raise("Traceback\nOSError: 5\n")),
        ]);
        let exp = |s: &str| Judge::Expect {
            expected: s.into(),
            source: "x.py.exp".into(),
        };
        let p = plan(vec![
            case("same", exp("1\n2\n")),
            case("diff", exp("1\n2\n")),
            case("skip", exp("1\n")),
            case("short", exp("1\n2\n")),
            case(
                "noexp",
                Judge::NoExpectation {
                    why: "no python3".into(),
                },
            ),
            case("raises", Judge::NoExpectation { why: "-".into() }),
        ]);
        let (o, _) = go(&mut fake, &p);
        let v: Vec<Verdict> = o.results.iter().map(|r| r.verdict).collect();
        assert_eq!(
            v,
            [
                Verdict::Pass,
                Verdict::Fail,
                Verdict::Skip,
                Verdict::Fail,
                Verdict::Pass,
                Verdict::Fail
            ]
        );
        assert_eq!(
            o.results[1].detail,
            "output differs from x.py.exp at line 2: got \"3\", want \"2\""
        );
        assert!(o.results[3].detail.contains("got <end of output>"));
        assert!(o.results[4].detail.contains("no python3"));
        assert!(o.results[5].detail.contains("OSError: 5"));
    }

    /// Issue 14: the reference runs beside the board, and one that cannot finish (a hang
    /// under CPython, killed at the test's limit) makes the test "not compared", not a hang.
    #[test]
    fn reference_outputs_are_fetched_lazily_and_a_failed_one_is_not_compared() {
        struct Ref;
        impl Reference for Ref {
            fn expected_output(&self, f: &std::path::Path) -> Result<String, String> {
                match f.file_name().and_then(|n| n.to_str()) {
                    Some("same.py") => Ok("1\n".into()),
                    Some("other.py") => Ok("2\n".into()),
                    _ => Err("CPython did not finish: still running after 5.0s (--timeout)".into()),
                }
            }
        }
        let mut fake = Fake::new(vec![
            ("#same", Act::Print("1\n")),
            ("#other", Act::Print("1\n")),
            ("#hang", Act::Print("whatever\n")),
        ]);
        let r = |n: &str| Judge::Reference {
            file: format!("/d/{n}.py").into(),
        };
        let mut p = plan(vec![
            case("same", r("same")),
            case("other", r("other")),
            case("hang", r("hang")),
        ]);
        let (o, _) = go(&mut fake, &p);
        assert!(
            o.results
                .iter()
                .all(|r| r.verdict == Verdict::Pass && r.detail.contains("no reference was run")),
            "without a started reference nothing is compared"
        );
        p.start_reference(std::sync::Arc::new(Ref), 2);
        let (o, _) = go(&mut fake, &p);
        let got: Vec<(Verdict, &str)> = o
            .results
            .iter()
            .map(|r| (r.verdict, r.detail.as_str()))
            .collect();
        assert_eq!(got[0], (Verdict::Pass, "output matches CPython"));
        assert_eq!(got[1].0, Verdict::Fail);
        assert_eq!(got[2].0, Verdict::Pass);
        assert!(
            got[2].1.contains("not compared: CPython did not finish"),
            "{}",
            got[2].1
        );
    }

    /// Issue 16: run-tests' rules: pattern `.exp` files, and `thread/mutate_*` not run with
    /// the GIL off.
    #[test]
    fn pattern_exp_files_and_skip_rules_follow_run_tests() {
        let mut fake = Fake::new(vec![
            (
                "#thread_exc2",
                Act::Print(
                    "Unhandled exception in thread started by <function f at 0x7ef0>\nValueError: \ndone\n",
                ),
            ),
            ("#mutate_list", Act::Print("1\n")),
        ]);
        let mut p = plan(vec![
            case(
                "thread_exc2",
                Judge::ExpectPatterns {
                    expected: "Unhandled exception in thread started by <function f at 0x\\[0-9a-f\\]\\+>\n########\ndone\n".into(),
                    source: "thread_exc2.py.exp".into(),
                },
            ),
            case("mutate_list", Judge::NoExpectation { why: "-".into() }),
        ]);
        p.tests[1].origin = "/m/tests/thread/mutate_list.py".into();
        p.skips = crate::stress::runtests::builtin_skips();
        let mut i = info();
        i.facts.gil = Some("unsafe".into());
        let o = run(&mut fake, &p, &i, &mut |_: Event<'_>| Ok(()), None).unwrap();
        assert_eq!(
            o.results[0].verdict,
            Verdict::Pass,
            "{}",
            o.results[0].detail
        );
        assert_eq!(o.results[1].verdict, Verdict::Skip);
        assert!(
            o.results[1].detail.contains("GIL"),
            "{}",
            o.results[1].detail
        );
        assert_eq!(fake.payloads.len(), 1, "a skipped test is not sent");
    }

    /// Issue 14: 1 MB of output equal to the expectation passes (compared whole, not the
    /// report's 64 KiB tail), and a differing 1 MB line is shown cut.
    #[test]
    fn big_outputs_are_compared_whole_and_differences_shown_cut() {
        let line = "x".repeat(1 << 20);
        let want = format!("{line}\nend\n");
        let case_of = |expected: &str| TestCase {
            judge: Judge::Expect {
                expected: expected.into(),
                source: "big.py.exp".into(),
            },
            ..case("big", Judge::ResultLine)
        };
        let end = RunEnd::Finished { exception: None };
        let z = Duration::ZERO;
        let r = judge(&case_of(&want), &end, want.as_bytes(), &info(), 0, 1, z);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.detail);
        assert!(r.output.len() < crate::stress::report::OUTPUT_CAP + 100);

        let other = format!("{}y\nend\n", "x".repeat((1 << 20) - 1));
        let r = judge(&case_of(&want), &end, other.as_bytes(), &info(), 0, 1, z);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.detail
                .starts_with("output differs from big.py.exp at line 1")
        );
        assert!(r.detail.contains("more characters"), "{}", &r.detail[..200]);
        assert!(r.detail.len() < 1000, "{} bytes of detail", r.detail.len());
    }

    #[test]
    fn native_results_parse_key_values() {
        let all =
            parse_native_results("noise\r\nRESULT spawn PASS threads=64 ms=12.5 mode=smp\r\nref> ");
        let (name, v, m) = all[0].clone();
        assert_eq!((name.as_str(), v), ("spawn", Verdict::Pass));
        assert_eq!(m["threads"], 64);
        assert_eq!(m["ms"], 12.5);
        assert_eq!(m["mode"], "smp");
        assert!(parse_native_results("RESULT x MAYBE").is_empty());
        assert!(parse_native_results("nothing").is_empty());
        let mut fake = Fake::new(vec![
            ("#n1", Act::Print("RESULT n1 FAIL lost=2\n")),
            ("#n2", Act::Print("ref> \n")),
        ]);
        let p = plan(vec![
            case("n1", Judge::NativeResult),
            case("n2", Judge::NativeResult),
        ]);
        let (o, _) = go(&mut fake, &p);
        assert_eq!(o.results[0].verdict, Verdict::Fail);
        assert_eq!(o.results[0].detail, "n1: lost=2");
        assert_eq!(o.results[1].verdict, Verdict::Error);
    }

    #[test]
    fn repeats_vary_the_seed_and_flakiness_is_reported() {
        struct Flip(u32);
        impl Executor for Flip {
            fn describe(&self) -> String {
                "flip".into()
            }
            fn run(&mut self, p: &str, _: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd {
                self.0 += 1;
                let v = if self.0.is_multiple_of(2) {
                    "FAIL"
                } else {
                    "PASS"
                };
                let name = if p.contains("thread_churn") {
                    "thread_churn"
                } else {
                    "other"
                };
                let seed = p.lines().nth(1).unwrap_or("").to_string();
                sink(
                    format!("{seed}\nMPFR-RESULT {{\"test\":\"{name}\",\"verdict\":\"{v}\"}}\n")
                        .as_bytes(),
                );
                RunEnd::Finished { exception: None }
            }
            fn recover(&mut self, _: RecoveryStep) -> Result<(), String> {
                Ok(())
            }
            fn healthy(&mut self) -> bool {
                true
            }
        }
        let mut p = plan(builtin_cases(Suite::Quick)[..1].to_vec());
        p.repeat = Some(3);
        let mut ex = Flip(0);
        let o = run(&mut ex, &p, &info(), &mut |_: Event<'_>| Ok(()), None).unwrap();
        assert_eq!(o.results.len(), 3);
        let seeds: Vec<u64> = o.results.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, [100, 101, 102]);
        assert!(o.results[1].output.contains("MPFR_SEED = 101"));
        assert_eq!(o.results[2].repeat, 2);
        assert_eq!(o.summary.flaky, ["thread_churn"]);
        assert!(o.summary.tests["thread_churn"].flaky);
    }

    #[test]
    fn rounds_follow_repeat_and_duration() {
        let mut p = plan(vec![]);
        let z = Duration::ZERO;
        assert!(p.more_rounds(0, z) && !p.more_rounds(1, z));
        p.repeat = Some(3);
        assert!(p.more_rounds(2, z) && !p.more_rounds(3, z));
        p.repeat = None;
        p.duration = Some(Duration::from_secs(10));
        assert!(
            p.more_rounds(0, Duration::from_secs(99)),
            "at least one round"
        );
        assert!(p.more_rounds(5, Duration::from_secs(9)));
        assert!(!p.more_rounds(5, Duration::from_secs(10)));
        p.repeat = Some(2);
        assert!(!p.more_rounds(2, Duration::from_secs(1)));
    }

    #[test]
    fn isolation_resets_before_each_test_and_cancel_stops() {
        let mut fake = Fake::new(vec![("#a", Act::Print(PASS_A))]);
        let mut p = plan(vec![
            case("a", Judge::ResultLine),
            case("a", Judge::ResultLine),
        ]);
        p.isolate = true;
        let (o, _) = go(&mut fake, &p);
        assert_eq!(o.results.len(), 2);
        assert_eq!(fake.log.iter().filter(|l| *l == "fresh").count(), 2);

        let cancel = AtomicBool::new(true);
        let o = run(
            &mut fake,
            &p,
            &info(),
            &mut |_: Event<'_>| Ok(()),
            Some(&cancel),
        )
        .unwrap();
        assert!(o.results.is_empty());
        assert_eq!(o.summary.aborted.as_deref(), Some("interrupted (Ctrl-C)"));
    }

    #[test]
    fn telemetry_from_the_observer_lands_in_each_result() {
        struct Tap(u64, Vec<String>);
        impl Observer for Tap {
            fn event(&mut self, ev: Event<'_>) -> Result<(), StressError> {
                match ev {
                    Event::Started { .. } => self.0 += 1000,
                    Event::Finished(r) => self.1.push(format!("{:?}", r.telemetry)),
                    _ => {}
                }
                Ok(())
            }
            fn telemetry(&mut self) -> Option<TelemetrySummary> {
                Some(TelemetrySummary {
                    min_free_heap: Some(self.0),
                    ..Default::default()
                })
            }
        }
        let mut fake = Fake::new(vec![("#a", Act::Print(PASS_A))]);
        let p = plan(vec![
            case("a", Judge::ResultLine),
            case("a", Judge::ResultLine),
        ]);
        let mut tap = Tap(0, vec![]);
        let o = run(&mut fake, &p, &info(), &mut tap, None).unwrap();
        let heaps: Vec<Option<u64>> = o
            .results
            .iter()
            .map(|r| r.telemetry.as_ref().and_then(|t| t.min_free_heap))
            .collect();
        assert_eq!(heaps, [Some(1000), Some(2000)]);
        assert!(
            tap.1[0].contains("min_free_heap: Some(1000)"),
            "reported with it"
        );
    }

    #[test]
    fn ctrl_c_during_a_test_stops_without_climbing_the_ladder() {
        struct Interrupted<'a>(&'a AtomicBool, u32);
        impl Executor for Interrupted<'_> {
            fn describe(&self) -> String {
                "x".into()
            }
            fn run(&mut self, _: &str, _: &Limits, _: &mut dyn FnMut(&[u8])) -> RunEnd {
                self.0.store(true, Ordering::Relaxed);
                RunEnd::Failed {
                    detail: "interrupted (Ctrl-C)".into(),
                }
            }
            fn recover(&mut self, _: RecoveryStep) -> Result<(), String> {
                self.1 += 1;
                Ok(())
            }
            fn healthy(&mut self) -> bool {
                self.1 += 1;
                false
            }
        }
        let cancel = AtomicBool::new(false);
        let mut ex = Interrupted(&cancel, 0);
        let p = plan(vec![
            case("a", Judge::ResultLine),
            case("b", Judge::ResultLine),
        ]);
        let o = run(
            &mut ex,
            &p,
            &info(),
            &mut |_: Event<'_>| Ok(()),
            Some(&cancel),
        )
        .unwrap();
        assert_eq!(o.results.len(), 1);
        assert_eq!(o.results[0].verdict, Verdict::Error);
        assert!(o.results[0].interrupted);
        assert_eq!(ex.1, 0, "no health check or recovery after Ctrl-C");
        assert_eq!(o.summary.aborted.as_deref(), Some("interrupted (Ctrl-C)"));
    }

    #[test]
    fn an_observer_error_stops_the_run() {
        let mut fake = Fake::new(vec![]);
        let p = plan(vec![
            case("a", Judge::ResultLine),
            case("b", Judge::ResultLine),
        ]);
        let mut obs = |e: Event<'_>| match e {
            Event::Finished(_) => Err(StressError::Report {
                path: "r.jsonl".into(),
                source: std::io::Error::other("disk full"),
            }),
            _ => Ok(()),
        };
        let e = run(&mut fake, &p, &info(), &mut obs, None).unwrap_err();
        assert!(e.to_string().contains("r.jsonl"));
        assert_eq!(fake.payloads.len(), 1);
    }
}
