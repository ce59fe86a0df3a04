//! Reports that lose nothing: a JSON Lines file appended and synced as each test ends, a JUnit
//! XML file written atomically at the end, and the human summary.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{BoardFacts, StressError, Verdict};
use crate::util::duration::format_duration;
use crate::util::sanitize::Sanitizer;

/// The longest output kept per result (the tail is kept: that is where things went wrong).
pub const OUTPUT_CAP: usize = 64 * 1024;

/// What a whole run is about: recorded once at the top of the JSON Lines file and with every
/// result, so that each line stands on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    pub board: String,
    /// Configuration fingerprint: the one the running firmware reports, else the board
    /// profile's (see [`RunInfo::reconcile`]).
    pub fingerprint: String,
    /// GIL mode of the board profile (`on`/`off`).
    pub gil_configured: String,
    pub suite: String,
    pub seed: u64,
    /// What the board said about itself.
    pub facts: BoardFacts,
    /// Cores the board's firmware schedules on.
    pub cores: u32,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Where the running firmware contradicts the board profile, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_mismatch: Vec<String>,
}

impl RunInfo {
    /// Lets what the running firmware says win over the profile (`fingerprint` and `facts`
    /// are then what the board runs) and records every contradiction in `config_mismatch`.
    pub fn reconcile(&mut self) {
        if let Some(fp) = self.facts.fingerprint.clone()
            && !fp.eq_ignore_ascii_case(&self.fingerprint)
        {
            self.config_mismatch.push(format!(
                "the firmware reports configuration fingerprint {fp}, the board profile {}: the board runs another build than the profile describes",
                self.fingerprint
            ));
            self.fingerprint = fp;
        }
        let running = match self.facts.gil.as_deref() {
            Some("GIL") => Some("on"),
            Some("unsafe") => Some("off"),
            _ => None,
        };
        if let Some(g) = running
            && !self.gil_configured.is_empty()
            && g != self.gil_configured
        {
            self.config_mismatch.push(format!(
                "the firmware runs with the GIL {g} (sys.implementation._thread == {:?}), the board profile says {}",
                self.facts.gil.as_deref().unwrap_or_default(),
                self.gil_configured
            ));
        }
    }

    /// The GIL mode the board reported, else the configured one.
    pub fn gil(&self) -> String {
        self.facts
            .gil
            .clone()
            .unwrap_or_else(|| self.gil_configured.clone())
    }
}

/// Telemetry seen during one test, when the board has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TelemetrySummary {
    pub min_free_heap: Option<u64>,
    pub peak_tasks: Option<u32>,
    pub deepest_stack_use: Option<u64>,
    pub max_service_latency_us: Option<u64>,
    /// The cores a task other than an idle task was seen running on while the test ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ran_on_cores: Vec<u32>,
    /// The telemetry link was lost during this test (e.g. the board was restarted and its
    /// agent did not answer again); the figures cover only the time before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

/// One test run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    pub test: String,
    pub origin: String,
    pub verdict: Verdict,
    /// Why, in one line (the test's own detail, or what the runner saw).
    pub detail: String,
    #[serde(with = "secs")]
    pub duration: Duration,
    /// 0-based round of `--repeat`/`--duration`.
    pub repeat: u32,
    pub seed: u64,
    pub board: String,
    pub fingerprint: String,
    /// GIL mode the test saw (`GIL`, `unsafe`), else the configured one.
    pub gil: String,
    /// Cores the board's firmware schedules on.
    pub cores: u32,
    /// The test's measurements.
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// Output, sanitised (control characters dropped) and capped at its tail.
    pub output: String,
    /// Recovery steps run after this test, with whether the board answered afterwards.
    pub recovery: Vec<(String, bool)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySummary>,
    /// Ctrl-C ended this run: its verdict says nothing about the test (not counted towards
    /// flakiness).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// The crash bundle taken when this test crashed the board (`mpfr crash show` reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_bundle: Option<std::path::PathBuf>,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// Printable text from device bytes, cleaned by [`Sanitizer`] (escape sequences, controls other
/// than newline and tab, and bidi overrides dropped; `\r\n` made `\n`; invalid UTF-8
/// replaced), only the last [`OUTPUT_CAP`] bytes kept.
pub fn sanitise(bytes: &[u8]) -> String {
    cap_tail(sanitise_all(bytes))
}

/// [`sanitise`] without the cap: what outputs are compared on.
pub fn sanitise_all(bytes: &[u8]) -> String {
    Sanitizer::clean(bytes)
}

/// Only the last [`OUTPUT_CAP`] bytes, saying how much was cut.
pub fn cap_tail(mut out: String) -> String {
    if out.len() > OUTPUT_CAP {
        let mut cut = out.len() - OUTPUT_CAP;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("[... {cut} bytes cut ...]\n{}", &out[cut..]);
    }
    out
}

/// The JSON Lines report: one `run` line, a `result` line as each test ends (each written,
/// flushed and synced before the next test starts), a `summary` line at the end.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
}

impl JsonlWriter {
    /// Opens `path` for appending (created if missing; earlier runs stay).
    pub fn open(path: &Path) -> Result<JsonlWriter, StressError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| StressError::Report {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(JsonlWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one JSON value tagged with `type`, then syncs it to disk.
    pub fn append(&mut self, kind: &str, value: &impl Serialize) -> Result<(), StressError> {
        let err = |source| StressError::Report {
            path: self.path.clone(),
            source,
        };
        let mut v = serde_json::to_value(value).map_err(|e| err(std::io::Error::other(e)))?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("type".into(), kind.into());
        }
        let mut line = serde_json::to_vec(&v).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        // One write per line: a crash leaves whole lines behind.
        self.file.write_all(&line).map_err(err)?;
        self.file.flush().map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

/// Per-test outcome across repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TestTally {
    pub runs: u32,
    pub verdicts: BTreeMap<String, u32>,
    /// Passed in some rounds and not in others.
    pub flaky: bool,
    /// Runs ended by Ctrl-C (in `runs`, not in `verdicts`).
    #[serde(skip_serializing_if = "is_zero")]
    pub interrupted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Counts over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: u32,
    pub counts: BTreeMap<String, u32>,
    pub tests: BTreeMap<String, TestTally>,
    pub flaky: Vec<String>,
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Everything passed (SKIP and EXPECTED count as passing).
    pub ok: bool,
    /// The run stopped early (board unrecoverable, Ctrl-C), with why.
    pub aborted: Option<String>,
    /// Test names in the order they first ran (the human summary follows it).
    #[serde(skip)]
    pub order: Vec<String>,
}

impl Summary {
    pub fn of(results: &[TestResult], duration: Duration, aborted: Option<String>) -> Summary {
        let mut s = Summary {
            duration,
            aborted,
            ..Summary::default()
        };
        for r in results {
            s.total += 1;
            *s.counts.entry(r.verdict.as_str().into()).or_default() += 1;
            if !s.tests.contains_key(&r.test) {
                s.order.push(r.test.clone());
            }
            let t = s.tests.entry(r.test.clone()).or_default();
            t.runs += 1;
            if r.interrupted {
                t.interrupted += 1;
                continue;
            }
            *t.verdicts.entry(r.verdict.as_str().into()).or_default() += 1;
        }
        for (name, t) in &mut s.tests {
            let passing = VERDICT_ORDER
                .iter()
                .filter(|v| v.is_ok())
                .any(|v| t.verdicts.contains_key(v.as_str()));
            let failing = VERDICT_ORDER
                .iter()
                .filter(|v| !v.is_ok())
                .any(|v| t.verdicts.contains_key(v.as_str()));
            t.flaky = passing && failing;
            if t.flaky {
                s.flaky.push(name.clone());
            }
        }
        s.ok = s.aborted.is_none() && results.iter().all(|r| r.verdict.is_ok());
        s
    }

    /// The human summary: one line per test, then the totals.
    pub fn render(&self) -> String {
        let mut rows = Vec::new();
        for (name, t) in self
            .order
            .iter()
            .filter_map(|n| self.tests.get(n).map(|t| (n, t)))
        {
            let verdicts: Vec<String> = VERDICT_ORDER
                .iter()
                .filter_map(|v| t.verdicts.get(v.as_str()).map(|n| format!("{v} x{n}")))
                .collect();
            rows.push(vec![
                name.clone(),
                t.runs.to_string(),
                verdicts.join(", "),
                if t.flaky {
                    "flaky".into()
                } else {
                    String::new()
                },
            ]);
        }
        let mut out = crate::text::table(&["TEST", "RUNS", "VERDICTS", ""], &rows);
        let counts: Vec<String> = VERDICT_ORDER
            .iter()
            .filter_map(|v| self.counts.get(v.as_str()).map(|n| format!("{n} {v}")))
            .collect();
        out.push_str(&format!(
            "\n\n{} run(s) in {}: {}",
            self.total,
            format_duration(self.duration),
            if counts.is_empty() {
                "nothing ran".to_string()
            } else {
                counts.join(", ")
            }
        ));
        if !self.flaky.is_empty() {
            out.push_str(&format!("\nflaky: {}", self.flaky.join(", ")));
        }
        if let Some(why) = &self.aborted {
            out.push_str(&format!("\nstopped early: {why}"));
        }
        out.push_str(if self.ok {
            "\nresult: ok"
        } else {
            "\nresult: FAILED"
        });
        out
    }
}

/// Verdicts in the order reports list them.
pub const VERDICT_ORDER: [Verdict; 7] = [
    Verdict::Pass,
    Verdict::Expected,
    Verdict::Skip,
    Verdict::Fail,
    Verdict::Timeout,
    Verdict::Crash,
    Verdict::Error,
];

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot hold most control characters, even escaped.
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `host.builtin.quick`, `host.firmware.quick`, `host.tests` (external files: the path is in
/// the output, not in the class name).
fn class_name(board: &str, origin: &str) -> String {
    match origin.split_once(':') {
        Some((kind, level)) if kind == "builtin" || kind == "firmware" => {
            format!("{board}.{kind}.{level}")
        }
        _ => format!("{board}.tests"),
    }
}

/// The JUnit XML document for a run: one `<testcase>` per test run (repeats named `name#N`).
pub fn junit(info: &RunInfo, results: &[TestResult], summary: &Summary) -> String {
    let failures = results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .count();
    let errors = results
        .iter()
        .filter(|r| {
            matches!(
                r.verdict,
                Verdict::Timeout | Verdict::Crash | Verdict::Error
            )
        })
        .count();
    let skipped = results
        .iter()
        .filter(|r| r.verdict == Verdict::Skip)
        .count();
    let repeated = results.iter().any(|r| r.repeat > 0);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"mpfr stress\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        results.len(),
        summary.duration.as_secs_f64()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        xml_escape(&format!("{}.{}", info.board, info.suite)),
        results.len(),
        summary.duration.as_secs_f64()
    ));
    x.push_str("    <properties>\n");
    let mut props = vec![
        ("board", info.board.clone()),
        ("fingerprint", info.fingerprint.clone()),
        ("gil", info.gil()),
        ("suite", info.suite.clone()),
        ("seed", info.seed.to_string()),
    ];
    if let Some(v) = &info.facts.version {
        props.push(("version", v.clone()));
    }
    if !summary.flaky.is_empty() {
        props.push(("flaky", summary.flaky.join(",")));
    }
    for (k, v) in props {
        x.push_str(&format!(
            "      <property name=\"{k}\" value=\"{}\"/>\n",
            xml_escape(&v)
        ));
    }
    x.push_str("    </properties>\n");
    for r in results {
        let name = if repeated {
            format!("{}#{}", r.test, r.repeat)
        } else {
            r.test.clone()
        };
        x.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
            xml_escape(&class_name(&info.board, &r.origin)),
            xml_escape(&name),
            r.duration.as_secs_f64()
        ));
        let msg = xml_escape(&format!("{}: {}", r.verdict, r.detail));
        match r.verdict {
            Verdict::Pass | Verdict::Expected => {}
            Verdict::Skip => x.push_str(&format!("      <skipped message=\"{msg}\"/>\n")),
            Verdict::Fail => x.push_str(&format!(
                "      <failure message=\"{msg}\" type=\"FAIL\"/>\n"
            )),
            v => x.push_str(&format!("      <error message=\"{msg}\" type=\"{v}\"/>\n")),
        }
        if let Some(b) = &r.crash_bundle {
            x.push_str(&format!(
                "      <properties>\n        <property name=\"crash_bundle\" value=\"{}\"/>\n      </properties>\n",
                xml_escape(&b.display().to_string())
            ));
        }
        let mut out = format!("verdict: {}\nseed: {}\n", r.verdict, r.seed);
        if let Some(b) = &r.crash_bundle {
            out.push_str(&format!("crash bundle: {}\n", b.display()));
        }
        if !r.metrics.is_empty() {
            out.push_str(&format!(
                "metrics: {}\n",
                serde_json::Value::Object(r.metrics.clone())
            ));
        }
        out.push_str(&r.output);
        x.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            xml_escape(&out)
        ));
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Writes the JUnit file atomically (a reader never sees half of it).
pub fn write_junit(
    path: &Path,
    info: &RunInfo,
    results: &[TestResult],
    summary: &Summary,
) -> Result<(), StressError> {
    crate::util::fsutil::write_atomically(path, junit(info, results, summary).as_bytes()).map_err(
        |source| StressError::Report {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// The file name MicroPython's run-tests writes its outcome to.
pub const RUN_TESTS_RESULTS: &str = "_results.json";

/// run-tests' `_results.json`: `{"args": {...}, "failed_tests": [file, ...]}`, the files of the
/// tests that did not pass (by origin, each once), so tools that read run-tests' results read
/// mpfr's.
pub fn run_tests_results(info: &RunInfo, results: &[TestResult]) -> serde_json::Value {
    let mut failed: Vec<&str> = Vec::new();
    for r in results.iter().filter(|r| !r.verdict.is_ok()) {
        if !failed.contains(&r.origin.as_str()) {
            failed.push(&r.origin);
        }
    }
    serde_json::json!({
        "args": {"board": info.board, "suite": info.suite, "seed": info.seed},
        "failed_tests": failed,
    })
}

/// Writes [`run_tests_results`] as [`RUN_TESTS_RESULTS`] in `dir`, atomically.
pub fn write_run_tests_results(
    dir: &Path,
    info: &RunInfo,
    results: &[TestResult],
) -> Result<(), StressError> {
    let path = dir.join(RUN_TESTS_RESULTS);
    let text = serde_json::to_string(&run_tests_results(info, results)).unwrap_or_default();
    crate::util::fsutil::write_atomically(&path, text.as_bytes())
        .map_err(|source| StressError::Report { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(test: &str, verdict: Verdict, repeat: u32) -> TestResult {
        TestResult {
            test: test.into(),
            origin: "builtin:quick".into(),
            verdict,
            detail: format!("{test} said <so> & \"so\""),
            duration: Duration::from_millis(1500),
            repeat,
            seed: 7,
            board: "host".into(),
            fingerprint: "0x12345678".into(),
            gil: "unsafe".into(),
            cores: 2,
            metrics: serde_json::json!({"n": 3}).as_object().cloned().unwrap(),
            output: "line\x01\n".into(),
            recovery: vec![],
            telemetry: None,
            interrupted: false,
            crash_bundle: None,
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            board: "host".into(),
            fingerprint: "0x12345678".into(),
            gil_configured: "off".into(),
            suite: "quick".into(),
            seed: 7,
            facts: BoardFacts {
                gil: Some("unsafe".into()),
                version: Some("3.4.0; MicroPython".into()),
                fingerprint: None,
            },
            cores: 2,
            started_unix: 1,
            config_mismatch: vec![],
        }
    }

    #[test]
    fn run_tests_results_list_each_failing_file_once() {
        let mut a = result("a", Verdict::Fail, 0);
        a.origin = "/t/thread/a.py".into();
        let mut a2 = a.clone();
        a2.repeat = 1;
        let mut b = result("b", Verdict::Pass, 0);
        b.origin = "/t/thread/b.py".into();
        let v = run_tests_results(&info(), &[a, a2, b]);
        assert_eq!(v["failed_tests"], serde_json::json!(["/t/thread/a.py"]));
        assert_eq!(v["args"]["board"], "host");
        let d = tempfile::tempdir().unwrap();
        write_run_tests_results(d.path(), &info(), &[]).unwrap();
        let back: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join(RUN_TESTS_RESULTS)).unwrap(),
        )
        .unwrap();
        assert_eq!(back["failed_tests"], serde_json::json!([]));
    }

    /// Issue 16: the running firmware's word wins over the profile, and a mismatch is said.
    #[test]
    fn the_firmware_wins_over_the_profile_and_mismatches_are_reported() {
        let mut i = info();
        i.reconcile();
        assert!(i.config_mismatch.is_empty(), "GIL off both ways");
        i.gil_configured = "on".into();
        i.facts.fingerprint = Some("0x0BADF00D".into());
        i.reconcile();
        assert_eq!(i.fingerprint, "0x0BADF00D");
        assert_eq!(i.gil(), "unsafe");
        assert_eq!(i.config_mismatch.len(), 2, "{:?}", i.config_mismatch);
        assert!(i.config_mismatch[0].contains("0x12345678"));
        assert!(i.config_mismatch[1].contains("GIL off"));
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["config_mismatch"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn sanitise_drops_escapes_and_controls_and_keeps_the_tail() {
        assert_eq!(
            sanitise(b"a\x1b[31mred\x1b[0m\r\nb\x07\tc\xff"),
            "ared\nb\tc\u{fffd}"
        );
        assert_eq!(sanitise(b"x\x1b(By"), "xy");
        // OSC payloads and bidi overrides used to reach the report as text.
        assert_eq!(sanitise(b"a\x1b]0;title\x07b"), "ab");
        assert_eq!(sanitise("ok\u{202e}kO".as_bytes()), "okkO");
        let big = vec![b'z'; OUTPUT_CAP + 10];
        let s = sanitise(&big);
        assert!(s.starts_with("[... 10 bytes cut ...]\n"));
        assert!(s.ends_with('z'));
        // A multi-byte character straddling the cut is not split.
        let mut big = "é".repeat(OUTPUT_CAP / 2 + 3).into_bytes();
        big.push(b'!');
        assert!(sanitise(&big).ends_with("é!"));
    }

    #[test]
    fn jsonl_lines_are_whole_tagged_and_appended() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.jsonl");
        {
            let mut w = JsonlWriter::open(&p).unwrap();
            w.append("run", &info()).unwrap();
            w.append("result", &result("a", Verdict::Pass, 0)).unwrap();
        }
        // Read back while no writer is open: everything is on disk already.
        let mut w = JsonlWriter::open(&p).unwrap();
        w.append("result", &result("b", Verdict::Crash, 0)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["type"], "run");
        assert_eq!(lines[0]["facts"]["gil"], "unsafe");
        assert_eq!(lines[1]["type"], "result");
        assert_eq!(lines[1]["verdict"], "PASS");
        assert_eq!(lines[1]["duration"], 1.5);
        assert_eq!(lines[1]["metrics"]["n"], 3);
        assert_eq!(lines[1]["gil"], "unsafe");
        assert_eq!(lines[1]["fingerprint"], "0x12345678");
        assert_eq!(lines[2]["verdict"], "CRASH");
        assert!(lines[1].get("telemetry").is_none());
    }

    #[test]
    fn jsonl_open_failure_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/r.jsonl");
        let e = JsonlWriter::open(&p).unwrap_err();
        assert!(e.to_string().contains("r.jsonl"));
    }

    #[test]
    fn summary_counts_verdicts_and_finds_flaky_tests() {
        let rs = vec![
            result("a", Verdict::Pass, 0),
            result("a", Verdict::Timeout, 1),
            result("b", Verdict::Expected, 0),
            result("b", Verdict::Skip, 1),
            result("c", Verdict::Fail, 0),
            result("c", Verdict::Fail, 1),
        ];
        let s = Summary::of(&rs, Duration::from_secs(3), None);
        assert_eq!(s.total, 6);
        assert_eq!(s.counts["FAIL"], 2);
        assert_eq!(s.flaky, ["a"]);
        assert!(!s.tests["b"].flaky && !s.tests["c"].flaky);
        assert!(!s.ok);
        let text = s.render();
        let firsts: Vec<&str> = text.lines().skip(1).take(3).map(|l| &l[..1]).collect();
        assert_eq!(firsts, ["a", "b", "c"], "run order: {text}");
        let line_a = text.lines().find(|l| l.starts_with("a ")).unwrap();
        assert!(
            line_a.contains("PASS x1, TIMEOUT x1") && line_a.ends_with("flaky"),
            "{text}"
        );
        assert!(text.contains("6 run(s) in 3.00s"));
        assert!(text.ends_with("result: FAILED"));

        // Issue 14: a run ended by Ctrl-C says nothing about the test.
        let mut cut = result("d", Verdict::Error, 1);
        cut.interrupted = true;
        let s = Summary::of(&[result("d", Verdict::Pass, 0), cut], Duration::ZERO, None);
        assert!(s.flaky.is_empty(), "{:?}", s.flaky);
        assert_eq!((s.tests["d"].runs, s.tests["d"].interrupted), (2, 1));

        let ok = Summary::of(
            &[
                result("a", Verdict::Pass, 0),
                result("b", Verdict::Skip, 0),
                result("c", Verdict::Expected, 0),
            ],
            Duration::ZERO,
            None,
        );
        assert!(ok.ok);
        assert!(ok.render().ends_with("result: ok"));
        let aborted = Summary::of(
            &[result("a", Verdict::Pass, 0)],
            Duration::ZERO,
            Some("board gone".into()),
        );
        assert!(!aborted.ok);
        assert!(aborted.render().contains("stopped early: board gone"));
    }

    #[test]
    fn a_crash_bundle_is_in_the_json_line_and_the_junit_case() {
        let mut crashed = result("d", Verdict::Crash, 0);
        crashed.crash_bundle = Some("out/crash-1-0.crash".into());
        let rs = vec![result("a", Verdict::Pass, 0), crashed];
        let v = serde_json::to_value(&rs[1]).unwrap();
        assert_eq!(v["crash_bundle"], "out/crash-1-0.crash");
        let v = serde_json::to_value(&rs[0]).unwrap();
        assert!(
            v.get("crash_bundle").is_none(),
            "only crashed tests carry one"
        );
        let s = Summary::of(&rs, Duration::from_secs(1), None);
        let x = junit(&info(), &rs, &s);
        assert_eq!(
            x.matches("<property name=\"crash_bundle\" value=\"out/crash-1-0.crash\"/>")
                .count(),
            1,
            "{x}"
        );
        assert!(x.contains("crash bundle: out/crash-1-0.crash\n"), "{x}");
        // The property sits inside the crashed test's case.
        let case_d = &x[x.find("name=\"d\"").unwrap()..];
        assert!(case_d.contains("crash_bundle"), "{x}");
    }

    #[test]
    fn junit_holds_every_run_escaped() {
        let rs = vec![
            result("a", Verdict::Pass, 0),
            result("b", Verdict::Skip, 0),
            result("c", Verdict::Fail, 0),
            result("d", Verdict::Crash, 0),
            result("e", Verdict::Expected, 0),
        ];
        let s = Summary::of(&rs, Duration::from_secs(2), None);
        let x = junit(&info(), &rs, &s);
        assert!(x.contains("tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"1\""));
        assert_eq!(x.matches("<testcase ").count(), 5);
        assert!(x.contains("<property name=\"gil\" value=\"unsafe\"/>"));
        assert!(x.contains("<skipped message=\"SKIP: b said &lt;so&gt; &amp; &quot;so&quot;\"/>"));
        assert!(x.contains("<failure message=\"FAIL: c said"));
        assert!(x.contains("<error message=\"CRASH: d said"));
        assert!(!x.contains('\x01'), "control characters must not reach XML");
        assert!(x.contains("name=\"a\""), "no #N suffix without repeats");
        assert!(x.contains("classname=\"host.builtin.quick\""));
        assert_eq!(class_name("host", "/tmp/t/x.py"), "host.tests");

        let rs = vec![result("a", Verdict::Pass, 0), result("a", Verdict::Pass, 1)];
        let s = Summary::of(&rs, Duration::ZERO, None);
        let x = junit(&info(), &rs, &s);
        assert!(x.contains("name=\"a#0\"") && x.contains("name=\"a#1\""));

        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.xml");
        write_junit(&p, &info(), &rs, &s).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), x);
    }
}
