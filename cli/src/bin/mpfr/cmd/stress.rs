//! `mpfr stress`: thread stress and soak tests on a board, with JSON Lines and JUnit reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::progress::Bars;
use crate::ui::Printer;
use clap::Args;
use mpfr::config::{Overrides, resolve};
use mpfr::stress::report::{JsonlWriter, RunInfo, TestResult, write_junit};
use mpfr::stress::runner::{self, Event};
use mpfr::stress::suite::{CPython, Suite};
use mpfr::stress::{self, Limits, Request, Verdict};
use mpfr::util::duration;

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Built-in suite to run
    #[arg(long, value_enum, default_value_t = Suite::Quick)]
    suite: Suite,
    /// Also run the MicroPython-style tests in DIR (compared with NAME.py.exp, else CPython)
    #[arg(long = "tests", value_name = "DIR")]
    tests_dir: Option<PathBuf>,
    /// Run only tests whose name contains this (or matches this glob); repeatable
    #[arg(long, value_name = "PATTERN")]
    filter: Vec<String>,
    /// Wall-clock limit per test
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::arg)]
    timeout: std::time::Duration,
    /// Longest silence from the board per test
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::arg)]
    idle_timeout: std::time::Duration,
    /// Rounds over all tests
    #[arg(long, value_name = "N")]
    repeat: Option<u32>,
    /// Keep running rounds until this much time has passed (e.g. 10m)
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    duration: Option<std::time::Duration>,
    /// Seed given to the tests (round r gets SEED + r) [default: from the clock]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Do not reset the board between tests
    #[arg(long)]
    no_reset: bool,
    /// Append every result to this JSON Lines file as each test ends
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Write a JUnit XML report here at the end
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Do not run tests matching PATTERN (name, glob, or DIR/glob); `=REASON` says why;
    /// repeatable
    #[arg(long, value_name = "PATTERN[=REASON]")]
    skip: Vec<String>,
    /// List the tests that would run, and exit
    #[arg(long)]
    list: bool,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let started = std::time::Instant::now();
        let board = &self.board.named(g)?;
        let resolved = resolve(board, &Overrides::default())?;
        let req = Request {
            suite: self.suite,
            tests_dir: self.tests_dir.clone(),
            filters: self.filter.clone(),
            limits: Limits {
                timeout: self.timeout,
                idle: self.idle_timeout,
            },
            repeat: self.repeat,
            duration: self.duration,
            seed: self.seed,
            isolate: !self.no_reset,
            cores: resolved.config.cores,
            skips: self.skip.clone(),
        };
        let console = stress::connect::console_kind(board, self.board.port.as_deref());
        let mut plan = stress::plan(&req, console)?;
        if self.list {
            for t in &plan.tests {
                if p.json {
                    p.json_line(
                        &serde_json::json!({"type": "test", "name": t.name, "origin": t.origin}),
                    )?;
                } else {
                    p.line(format!("{:<20} {}", t.name, t.origin))?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        // CPython's expectations are computed while the board runs, under the tests' limits.
        plan.start_reference(
            std::sync::Arc::new(CPython {
                limits: req.limits,
                ..CPython::default()
            }),
            stress::reference::Prefetch::default_workers(),
        );
        // Open the report before touching the board: a bad path fails fast.
        let mut jsonl = self.jsonl.as_deref().map(JsonlWriter::open).transpose()?;
        let cancel = super::exec::ctrl_c_flag();
        let mut exec = stress::connect(
            board,
            self.board.port.as_deref(),
            console,
            Some(cancel.clone()),
        )?;
        p.status("Connecting", exec.describe());
        let facts = exec.identify();
        let mut info = RunInfo {
            board: board.name.clone(),
            fingerprint: resolved.config.fingerprint.clone(),
            gil_configured: resolved.config.gil.to_string(),
            suite: self.suite.as_str().into(),
            seed: plan.seed,
            facts,
            cores: resolved.config.cores,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            config_mismatch: Vec::new(),
        };
        info.reconcile();
        for m in &info.config_mismatch {
            p.note(m);
        }
        if let Some(w) = &mut jsonl {
            w.append("run", &info)?;
        }
        if p.json {
            p.json_line(&tagged("run", &info))?;
        } else {
            p.status(
                "Running",
                format!(
                    "{} test(s) on {} (gil {}, fingerprint {}, seed {})",
                    plan.tests.len(),
                    info.board,
                    info.gil(),
                    info.fingerprint,
                    info.seed
                ),
            );
        }
        // Device output for -v, shown a whole line at a time.
        let mut pending: Vec<u8> = Vec::new();
        // One spinner for the running test; lines are printed with it hidden.
        let mut bars = Bars::new(p);
        let mut obs = |ev: Event<'_>| -> Result<(), stress::StressError> {
            match ev {
                Event::Started { test, repeat, .. } => {
                    if !p.json {
                        p.verbose(format!("--- {} (round {repeat})", test.name));
                        bars.spin("test", "Running", &test.name);
                    }
                }
                Event::Output(b) => {
                    if !p.json {
                        pending.extend_from_slice(b);
                        while let Some(nl) = pending.iter().position(|&c| c == b'\n') {
                            let line: Vec<u8> = pending.drain(..=nl).collect();
                            bars.suspend(|| {
                                p.verbose(mpfr::stress::report::sanitise(&line).trim_end())
                            });
                        }
                    }
                }
                Event::Recovery {
                    step,
                    healthy,
                    detail,
                    ..
                } => {
                    let msg = format!(
                        "recovery: {step} -> {}{}",
                        if healthy {
                            "board answers"
                        } else {
                            "no answer"
                        },
                        detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    );
                    if !p.json {
                        bars.suspend(|| p.note(msg));
                    }
                }
                Event::Finished(r) => {
                    bars.finish("test");
                    if !pending.is_empty() {
                        p.verbose(mpfr::stress::report::sanitise(&pending).trim_end());
                        pending.clear();
                    }
                    if let Some(w) = &mut jsonl {
                        w.append("result", r)?;
                    }
                    let _ = show_result(p, r);
                }
            }
            Ok(())
        };
        // Boards with RTT telemetry report heap, tasks, stacks and service latency per test.
        if board.telemetry == mpfr::board::Telemetry::Rtt
            && let Some(why) = stress::telemetry::agent_missing(board)
        {
            // Nothing to sample, and nothing to halt the guest for.
            p.note(format!("no telemetry: {why}"));
        }
        let sampler = stress::telemetry::Sampler::start(board, self.board.probe.clone());
        match sampler.as_ref().map(|s| s.wait_for_first(Duration::from_secs(5))) {
            Some(stress::telemetry::First::NotStarted) => p.note(
                "the board's agent is not started (MicroPython: `import mpfr; mpfr.start(10)`): results carry no heap, task or stack figures until it is",
            ),
            Some(stress::telemetry::First::Nothing) => p.note(
                "no telemetry from the board's agent yet: results may carry no heap, task or stack figures",
            ),
            _ => {}
        }
        // A crash on a virtual board leaves a bundle (`mpfr crash`) before the board restarts.
        let gate = sampler.as_ref().map(|s| s.gate());
        let mut exec = stress::capture::wrap(board, self.board.port.as_deref(), exec, gate);
        let mut obs = stress::telemetry::WithTelemetry {
            inner: &mut obs,
            sampler,
        };
        let mut outcome = runner::run(exec.as_mut(), &plan, &info, &mut obs, Some(&cancel))?;
        // The whole command's time: connecting and waiting for references count too.
        outcome.summary.duration = started.elapsed();
        if let Some(w) = &mut jsonl {
            w.append("summary", &outcome.summary)?;
        }
        if let Some(j) = &self.junit {
            write_junit(j, &info, &outcome.results, &outcome.summary)?;
            // run-tests' own result file, for tools that read it.
            let dir = j.parent().filter(|d| !d.as_os_str().is_empty());
            mpfr::stress::report::write_run_tests_results(
                dir.unwrap_or(std::path::Path::new(".")),
                &info,
                &outcome.results,
            )?;
        }
        if p.json {
            p.json_line(&tagged("summary", &outcome.summary))?;
        } else {
            p.line(outcome.summary.render())?;
        }
        Ok(if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            ExitCode::from(130)
        } else if outcome.summary.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

fn tagged(kind: &str, v: &impl serde::Serialize) -> serde_json::Value {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("type".into(), kind.into());
    }
    v
}

fn show_result(p: &Printer, r: &TestResult) -> mpfr::Result<()> {
    if p.json {
        return p.json_line(&tagged("result", r));
    }
    let round = if r.repeat > 0 {
        format!(" #{}", r.repeat)
    } else {
        String::new()
    };
    let line = format!(
        "{:<8} {}{round} ({:.2}s) {}",
        r.verdict,
        r.test,
        r.duration.as_secs_f64(),
        r.detail
    );
    if r.verdict.is_ok() {
        p.line(line)
    } else {
        p.line(line)?;
        if matches!(
            r.verdict,
            Verdict::Crash | Verdict::Error | Verdict::Timeout
        ) && !r.output.is_empty()
        {
            let tail: Vec<&str> = r.output.lines().rev().take(10).collect();
            for l in tail.into_iter().rev() {
                p.line(format!("         | {l}"))?;
            }
        }
        Ok(())
    }
}
