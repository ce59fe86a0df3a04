//! `mpfr exec`: run a line of Python on a board. Also home of what `exec` and `run` share:
//! the output sink, Ctrl-C handling and the result rendering.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use mpfr::repl::sanitize::Sanitizer;
use mpfr::repl::{ExecOutcome, Limits, Mode, ReplError, Session, Sink};
use mpfr::ui::Printer;

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Give up (and interrupt the device) after this long: 30s, 500ms, 2m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Python code to run
    code: String,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let cat = g.catalog()?;
        let board = self.board.resolve(&cat)?;
        let board = &*board;
        let session = Session::open(board, self.board.port.as_deref())?;
        execute(
            p,
            &board.name,
            session,
            self.code.as_bytes(),
            self.timeout,
            true,
        )
    }
}

/// `--timeout` values: a number with `ms`, `s` or `m` (seconds when bare).
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "sec" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use ms, s or m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_sigint(_: nix::libc::c_int) {
    if let Some(c) = CANCEL.get() {
        c.store(true, Ordering::Relaxed);
    }
}

/// A flag that Ctrl-C (SIGINT) sets instead of killing mpfr, so the device can be interrupted.
pub(super) fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = CANCEL
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic that is initialised before installing it.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
    flag
}

/// Device output to the user: verbatim on a terminal, sanitised in pipes and logs, JSON
/// records with `--json`.
pub(super) struct OutputSink<'a> {
    p: &'a Printer,
    passthrough: bool,
    clean: Sanitizer,
    failed: Option<mpfr::Error>,
}

impl<'a> OutputSink<'a> {
    pub(super) fn new(p: &'a Printer) -> Self {
        OutputSink {
            p,
            passthrough: !p.json && p.stdout_is_terminal(),
            clean: Sanitizer::new(),
            failed: None,
        }
    }

    pub(super) fn write(&mut self, data: &[u8]) {
        if self.failed.is_some() || data.is_empty() {
            return;
        }
        let r = if self.passthrough {
            self.p.raw(data)
        } else {
            let mut out = Vec::new();
            self.clean.feed(data, &mut out);
            if out.is_empty() {
                Ok(())
            } else if self.p.json {
                self.p.json_line(&serde_json::json!({
                    "type": "output",
                    "text": String::from_utf8_lossy(&out),
                }))
            } else {
                self.p.raw(&out)
            }
        };
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }
}

impl Sink for OutputSink<'_> {
    fn stdout(&mut self, data: &[u8]) {
        self.write(data);
    }
}

/// Runs `code`, renders its output and result, closes the session; exit 1 on a device
/// exception, 130 on Ctrl-C.
pub(super) fn execute(
    p: &Printer,
    board: &str,
    mut session: Session,
    code: &[u8],
    timeout: Option<Duration>,
    follow: bool,
) -> mpfr::Result<ExitCode> {
    let limits = Limits {
        timeout,
        idle: None,
        cancel: Some(ctrl_c_flag()),
    };
    p.verbose(format!("board {board} via {}", session.describe()));
    if !follow {
        let mode = session.exec_no_follow(code, &limits);
        session.close();
        let mode = mode?;
        p.verbose(format!("mode: {}", mode.as_str()));
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "result", "board": board, "mode": mode, "ok": true, "followed": false,
            }))?;
        } else {
            p.status(
                "Started",
                format!("{} bytes on {board} ({})", code.len(), mode.as_str()),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut sink = OutputSink::new(p);
    let result = session.exec(code, &limits, &mut sink);
    // Leave the board at its friendly prompt whatever happened (also after Ctrl-C).
    session.close();
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    let outcome = match result {
        Ok(o) => o,
        Err(ReplError::Interrupted) => {
            p.warn("interrupted: the device was sent Ctrl-C and left at its REPL");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(e.into()),
    };
    render(p, board, &outcome)?;
    match outcome.exception {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            if !p.json {
                p.device_stderr(&e.traceback);
            }
            Err(ReplError::Exception(e).into())
        }
    }
}

fn render(p: &Printer, board: &str, o: &ExecOutcome) -> mpfr::Result<()> {
    p.verbose(format!(
        "mode: {} ({} bytes of output, {:.1?})",
        o.mode.as_str(),
        o.stdout.len(),
        o.elapsed
    ));
    if p.json {
        p.json_line(&serde_json::json!({
            "type": "result",
            "board": board,
            "mode": o.mode,
            "ok": o.exception.is_none(),
            "stdout": Sanitizer::clean(&o.stdout),
            "stdout_truncated": o.stdout_truncated,
            "exception": o.exception,
            "elapsed_ms": o.elapsed.as_millis() as u64,
        }))?;
    }
    let _ = Mode::Raw;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
