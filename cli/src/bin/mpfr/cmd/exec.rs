//! `mpfr exec`: run a line of Python on a board. Also home of what `exec` and `run` share:
//! the output sink, Ctrl-C handling and the result rendering.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::ui::Printer;
use clap::Args;
use mpfr::repl::{ExecOutcome, Limits, Mode, ReplError, Session, Sink};
use mpfr::util::sanitize::Sanitizer;

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    on: RunArgs,
    /// Python code to run
    code: String,
}

/// The board and `--timeout`, shared by `exec` and `run`.
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) board: BoardArgs,
    /// Give up (and interrupt the device) after this long: 30s, 500ms, 2m, 1h
    #[arg(long, value_name = "DURATION", value_parser = mpfr::util::duration::positive_arg)]
    pub(super) timeout: Option<Duration>,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = &self.on.board.board(g)?;
        // On a virtual board, wait for a flash or stop in progress: opening the UART while
        // QEMU is being replaced would attach to the old one. Held only while opening, so a
        // long-running exec does not keep `mpfr stop` waiting.
        let lock = match board.platform.qemu() {
            Some(_) if self.on.board.port.is_none() => Some(
                mpfr::util::lock::lock_board(&board.name, |holder| {
                    p.note(format!(
                        "waiting for {holder} to finish with {}",
                        board.name
                    ))
                })
                .map_err(|e| mpfr::Error::io(format!("cannot lock {}", board.name), e))?,
            ),
            _ => None,
        };
        let session = self.on.board.open(board, p)?;
        drop(lock);
        execute(
            p,
            &board.name,
            session,
            self.code.as_bytes(),
            self.on.timeout,
            true,
        )
    }
}

/// The cancellation token, with Ctrl-C (and SIGTERM) made to trip it instead of killing mpfr,
/// so the device can be interrupted.
pub(super) fn ctrl_c_flag() -> Arc<AtomicBool> {
    mpfr::util::cancel::install();
    mpfr::util::cancel::token()
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
        if self.passthrough {
            let r = self.p.raw(data);
            self.keep_error(r);
        } else {
            let mut out = Vec::new();
            self.clean.feed(data, &mut out);
            self.emit(&out);
        }
    }

    /// The output ended: a character cut short by the end is written as what it has.
    pub(super) fn finish(&mut self) {
        if self.failed.is_none() && !self.passthrough {
            let mut out = Vec::new();
            self.clean.finish(&mut out);
            self.emit(&out);
        }
    }

    fn emit(&mut self, out: &[u8]) {
        let r = if out.is_empty() {
            Ok(())
        } else if self.p.json {
            self.p.json_line(&serde_json::json!({
                "type": "output",
                "text": String::from_utf8_lossy(out),
            }))
        } else {
            self.p.raw(out)
        };
        self.keep_error(r);
    }

    fn keep_error(&mut self, r: mpfr::Result<()>) {
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
    sink.finish();
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
