//! MicroPython's REPL over a [`Link`]: the raw REPL and raw-paste protocol behind one
//! [`Session`] that connects lazily, plus the friendly-REPL passthrough of `mpfr repl`. Device
//! output that goes to logs is cleaned by [`crate::util::sanitize`].
//!
//! Protocol in brief: Ctrl-A enters the raw REPL (`raw REPL; CTRL-B to exit` then `>`); code is
//! sent either in raw-paste mode (`\x05A\x01`, answered `R\x01` + window size, the device sends
//! `\x01` for each window it has room for, `\x04` ends) or in plain raw mode (code, `\x04`,
//! answered `OK`); the device then prints stdout, `\x04`, the exception text, `\x04>`.

mod engine;
pub mod strip;
pub mod terminal;

use crate::util::sanitize::escape_text;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use miette::Diagnostic;
use serde::Serialize;

use crate::board::Board;
use crate::device::link::{Link, LinkError};
use crate::device::{Target, vboard};

pub use engine::escape;

/// Limits of one `exec`.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Absolute limit for the whole command, from sending it to its result.
    pub timeout: Option<Duration>,
    /// Longest silence from the device while the command runs.
    pub idle: Option<Duration>,
    /// Set (e.g. from a SIGINT handler) to interrupt the device and return
    /// [`ReplError::Interrupted`].
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Where a command's output goes as it arrives.
pub trait Sink {
    /// Bytes the program (or another thread on the device) printed.
    fn stdout(&mut self, data: &[u8]);
    /// The exception text (traceback), once the command ended with one.
    fn exception(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// Asked while output arrives: `true` ends the command at once, without interrupting
    /// the device (e.g. the output says the firmware faulted and nothing more will come).
    fn stop_following(&mut self) -> bool {
        false
    }
}

/// A sink that drops everything (the outcome still holds the output).
#[derive(Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn stdout(&mut self, _: &[u8]) {}
}

impl Sink for Vec<u8> {
    fn stdout(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

/// How the code reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Raw-paste with window flow control.
    RawPaste,
    /// Plain raw REPL, sent in paced chunks (devices without raw-paste).
    Raw,
}

crate::named_enum!(Mode "REPL mode" { RawPaste => "raw-paste", Raw => "raw" });

/// An exception the device raised, with its traceback as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceException {
    /// Everything the device printed in the exception part (normalised to `\n` line ends).
    pub traceback: String,
    /// The exception type (`ZeroDivisionError`), from the last line.
    pub kind: String,
    /// The message after the type, if any.
    pub message: String,
}

impl DeviceException {
    pub fn parse(raw: &[u8]) -> DeviceException {
        let traceback = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let last = traceback
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        let (kind, message) = match last.split_once(':') {
            Some((k, m)) if !k.contains(' ') => (k.to_string(), m.trim().to_string()),
            _ if !last.contains(' ') => (last.clone(), String::new()),
            _ => ("Exception".to_string(), last.clone()),
        };
        DeviceException {
            traceback,
            kind,
            message,
        }
    }
}

/// What one `exec` produced.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    /// What the program printed (up to [`ExecOutcome::STDOUT_CAP`] bytes).
    pub stdout: Vec<u8>,
    /// True when more was printed than `stdout` keeps (the sink saw all of it).
    pub stdout_truncated: bool,
    /// The exception the program ended with, if any.
    pub exception: Option<DeviceException>,
    pub mode: Mode,
    pub elapsed: Duration,
}

impl ExecOutcome {
    pub const STDOUT_CAP: usize = 8 << 20;

    /// The outcome, or the device's exception as a typed error.
    pub fn check(self) -> Result<ExecOutcome, ReplError> {
        match self.exception {
            Some(e) => Err(ReplError::Exception(e)),
            None => Ok(self),
        }
    }
}

/// Failures of REPL operations.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ReplError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Link(#[from] LinkError),

    /// The raw REPL banner never came.
    #[error("{link} did not enter the raw REPL after {attempts} attempts; last bytes seen: {seen}")]
    #[diagnostic(
        code(mpfr::repl::enter),
        help(
            "is the board running MicroPython (not its bootloader or other firmware), and is no other program using the port? Reset the board and try again"
        )
    )]
    EnterRaw {
        link: String,
        attempts: u32,
        seen: String,
    },

    /// A deadline passed; the device was interrupted.
    #[error(
        "no result from {link} {stage} after {after:.1?}; the device was interrupted; last bytes seen: {seen}"
    )]
    #[diagnostic(
        code(mpfr::repl::timeout),
        help(
            "raise --timeout if the code needs longer; code that never ends needs a deadline or Ctrl-C"
        )
    )]
    Timeout {
        link: String,
        stage: &'static str,
        after: Duration,
        seen: String,
    },

    /// The device said something the protocol does not allow.
    #[error("unexpected answer from {link} {stage}: {seen}")]
    #[diagnostic(
        code(mpfr::repl::protocol),
        help(
            "another program may be talking to the board, or its firmware is not MicroPython; reset it and retry"
        )
    )]
    Protocol {
        link: String,
        stage: &'static str,
        seen: String,
    },

    /// The device went away during a command.
    #[error("{link} disconnected {stage}: {detail}; last bytes seen: {seen}")]
    #[diagnostic(
        code(mpfr::repl::disconnected),
        help(
            "the board reset, crashed or was unplugged (for the host board: the MicroPython process died); the next command reconnects"
        )
    )]
    Disconnected {
        link: String,
        stage: &'static str,
        detail: String,
        seen: String,
    },

    /// Stopped by the user (Ctrl-C); the device was interrupted.
    #[error("stopped following {link} on the caller's request; last bytes seen: {seen}")]
    #[diagnostic(code(mpfr::repl::aborted))]
    Aborted { link: String, seen: String },

    #[error("interrupted; the device was sent Ctrl-C")]
    #[diagnostic(code(mpfr::repl::interrupted))]
    Interrupted,

    /// Stopped by the user, but the device went on running the code: it ignored Ctrl-C (the
    /// MicroPython unix port behind a pty does; a busy loop with interrupts off would).
    #[error(
        "interrupted, but {link} did not stop: it was sent Ctrl-C 3 times and never came back to its prompt; last bytes seen: {seen}"
    )]
    #[diagnostic(
        code(mpfr::repl::still_running),
        help(
            "the code may still be running on the device: reset it (`mpfr reset`, its reset button, or power) before the next command"
        )
    )]
    StillRunning { link: String, seen: String },

    /// The program raised an exception on the device.
    #[error("the device raised {}{}", escape_text(&.0.kind, 80), if .0.message.is_empty() { String::new() } else { format!(": {}", escape_text(&.0.message, 500)) })]
    #[diagnostic(
        code(mpfr::repl::exception),
        help("the traceback above is the device's")
    )]
    Exception(DeviceException),

    /// A file to run could not be read.
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(mpfr::repl::read_file), help("check the path"))]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReplError {
    /// Whether the link went away (the board reset, crashed, or was unplugged).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            ReplError::Disconnected { .. } | ReplError::Link(LinkError::Disconnected { .. })
        )
    }

    /// 130 for Ctrl-C, 1 otherwise (device and environment problems the user can act on).
    pub fn exit_code(&self) -> u8 {
        match self {
            ReplError::Interrupted | ReplError::StillRunning { .. } => 130,
            _ => 1,
        }
    }
}

/// How the session finds its device.
enum Source {
    Target(Target),
    /// An already open link (tests, the fake device); it cannot be reopened.
    Given,
}

/// Session options.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Overall limit for getting into the raw REPL.
    pub connect_timeout: Duration,
    /// Attempts (interrupt, Ctrl-A, wait) before giving up.
    pub enter_attempts: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            connect_timeout: Duration::from_secs(10),
            enter_attempts: 3,
        }
    }
}

/// One conversation with a board's raw REPL. Nothing is opened until the first command.
pub struct Session {
    source: Source,
    conn: Option<engine::Conn>,
    opts: SessionOptions,
    /// Raw-paste refused once: remembered for the rest of the session.
    use_raw_paste: bool,
}

/// A session that ends leaves the board at its friendly prompt, whoever used it (`exec`,
/// `stress`, ...): a board left in the raw REPL takes typed lines without a word.
impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("link", &self.describe())
            .finish()
    }
}

impl Session {
    /// A session to `board`, at `port` when given (a path, or a USB serial number). Resolves
    /// where the board is without any device I/O.
    pub fn open(board: &Board, port: Option<&str>) -> Result<Session, ReplError> {
        let target = Target::resolve(board, port)?;
        if let Target::Qemu { board, .. } = &target
            && vboard::recorded_console(board) == Some(vboard::Console::Reference)
        {
            let board = &board.name;
            // Its line console is not MicroPython: no raw REPL to enter.
            return Err(ReplError::Link(LinkError::Unsupported {
                what: format!(
                    "the virtual board `{board}` runs the mpfr reference firmware, which has no MicroPython REPL"
                ),
                help: format!(
                    "flash a MicroPython image (`mpfr flash --board {board} firmware.elf`), or talk to the reference console with `mpfr repl --board {board}`"
                ),
            }));
        }
        Ok(Session::from_target(target))
    }

    pub fn from_target(target: Target) -> Session {
        Session {
            source: Source::Target(target),
            conn: None,
            opts: SessionOptions::default(),
            use_raw_paste: true,
        }
    }

    /// A session over an open link (the fake device in tests).
    pub fn from_link(link: Box<dyn Link>) -> Session {
        Session {
            source: Source::Given,
            conn: Some(engine::Conn::new(link)),
            opts: SessionOptions::default(),
            use_raw_paste: true,
        }
    }

    pub fn with_options(mut self, opts: SessionOptions) -> Session {
        self.opts = opts;
        self
    }

    pub fn target(&self) -> Option<&Target> {
        match &self.source {
            Source::Target(t) => Some(t),
            Source::Given => None,
        }
    }

    /// What the session talks to.
    pub fn describe(&self) -> String {
        match (&self.conn, &self.source) {
            (Some(c), _) => c.link.describe(),
            (None, Source::Target(t)) => t.describe(),
            (None, Source::Given) => "a closed link".into(),
        }
    }

    /// Whether raw-paste is still tried (false after the device refused it once).
    pub fn raw_paste_enabled(&self) -> bool {
        self.use_raw_paste
    }

    fn conn(&mut self) -> Result<&mut engine::Conn, ReplError> {
        if self.conn.is_none() {
            match &self.source {
                Source::Target(t) => self.conn = Some(engine::Conn::new(t.open()?)),
                Source::Given => {
                    return Err(ReplError::Link(LinkError::Disconnected {
                        what: "the link".into(),
                        detail: "it was closed and cannot be reopened".into(),
                    }));
                }
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Opens the link and enters the raw REPL now (otherwise the first command does).
    pub fn connect(&mut self) -> Result<(), ReplError> {
        let opts = self.opts.clone();
        let r = self.conn()?.ensure_raw(&opts);
        self.after(r)
    }

    /// Runs `code` on the device; output streams to `sink` as it arrives. A device exception
    /// is part of the outcome (see [`ExecOutcome::check`]); deadlines, Ctrl-C and a vanished
    /// device are errors.
    pub fn exec(
        &mut self,
        code: &[u8],
        limits: &Limits,
        sink: &mut dyn Sink,
    ) -> Result<ExecOutcome, ReplError> {
        let opts = self.opts.clone();
        let mut paste = self.use_raw_paste;
        let r = self
            .conn()
            .and_then(|c| c.exec(code, limits, sink, &opts, &mut paste, true));
        self.use_raw_paste = paste;
        self.after(r)
    }

    /// Sends `code` and returns once the device has it, without waiting for it to finish.
    pub fn exec_no_follow(&mut self, code: &[u8], limits: &Limits) -> Result<Mode, ReplError> {
        let opts = self.opts.clone();
        let mut paste = self.use_raw_paste;
        let r = self.conn().and_then(|c| {
            c.exec(code, limits, &mut Discard, &opts, &mut paste, false)
                .map(|o| o.mode)
        });
        self.use_raw_paste = paste;
        let mode = self.after(r)?;
        // The device is busy now; whoever comes next must interrupt and re-enter.
        if let Some(c) = &mut self.conn {
            c.forget_state();
        }
        Ok(mode)
    }

    /// Interrupts whatever runs on the device (Ctrl-C); the next command re-enters the raw REPL.
    pub fn interrupt(&mut self) -> Result<(), ReplError> {
        if let Some(c) = &mut self.conn {
            let r = c.interrupt();
            return self.after(r);
        }
        Ok(())
    }

    /// Soft reset (Ctrl-D in the raw REPL). For the host board, whose process exits on it,
    /// this respawns the process.
    pub fn soft_reset(&mut self) -> Result<(), ReplError> {
        let opts = self.opts.clone();
        let r = self.conn().and_then(|c| c.soft_reset(&opts));
        self.after(r)
    }

    /// Hard reset: respawn the host process, or pulse the reset line of a board that allows
    /// it. The link is reopened on the next command if the device re-enumerates.
    pub fn hard_reset(&mut self) -> Result<(), ReplError> {
        let r = self.conn().and_then(|c| c.hard_reset());
        self.after(r)
    }

    /// Leaves the raw REPL (Ctrl-B) so the board is left at its friendly prompt, and closes
    /// the link.
    pub fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.leave_raw();
        }
    }

    /// Gives the link to the caller (e.g. `mpfr repl` after a command), ending the session.
    pub fn into_link(mut self) -> Option<Box<dyn Link>> {
        self.conn.take().map(|c| c.link)
    }

    fn after<T>(&mut self, r: Result<T, ReplError>) -> Result<T, ReplError> {
        let gone = self.conn.as_ref().is_some_and(|c| c.gone);
        if gone || r.as_ref().err().is_some_and(ReplError::is_disconnect) {
            // Reopen on the next command (a board that reset and came back, a respawned process).
            if matches!(self.source, Source::Target(_)) {
                self.conn = None;
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
