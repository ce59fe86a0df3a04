//! Terminal output. One [`Printer`] owns stdout and stderr: data goes to stdout (a table or
//! JSON Lines), status and notes to stderr. Nothing else in mpfr prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use mpfr::error::{Error, Result};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether a stream gets colour: `auto` means a terminal and no `NO_COLOR` (set and not
    /// empty, as no-color.org says).
    pub fn enabled(self, tty: bool) -> bool {
        self.decide(tty, std::env::var_os("NO_COLOR").as_deref())
    }

    fn decide(self, tty: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

/// The one place terminal output goes through.
#[derive(Debug, Clone)]
pub struct Printer {
    pub verbosity: Verbosity,
    /// Machine output: JSON Lines on stdout.
    pub json: bool,
    color_err: bool,
}

fn stdout_err(e: std::io::Error) -> Error {
    Error::io("cannot write to standard output", e)
}

impl Printer {
    pub fn new(verbosity: Verbosity, json: bool, color: ColorChoice) -> Self {
        Printer {
            verbosity,
            json,
            color_err: color.enabled(std::io::stderr().is_terminal()),
        }
    }

    pub fn stdout_is_terminal(&self) -> bool {
        std::io::stdout().is_terminal()
    }

    /// One line of data on stdout.
    pub fn line(&self, s: impl Display) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{s}").map_err(stdout_err)
    }

    /// Raw bytes to stdout, flushed (device output streaming through).
    pub fn raw(&self, bytes: &[u8]) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(stdout_err)
    }

    /// One JSON value as one line on stdout.
    pub fn json_line<T: Serialize + ?Sized>(&self, v: &T) -> Result<()> {
        let s = serde_json::to_string(v)
            .map_err(|e| Error::io("cannot encode JSON", std::io::Error::other(e)))?;
        self.line(s)
    }

    fn paint(&self, on: bool, style: Style, s: &str) -> String {
        if on {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }

    /// A status line on stderr (hidden with --quiet).
    pub fn status(&self, verb: &str, msg: impl Display) {
        if self.verbosity >= Verbosity::Normal {
            let v = self.paint(
                self.color_err,
                Style::new().bold().fg_color(Some(AnsiColor::Green.into())),
                &format!("{verb:>12}"),
            );
            eprintln!("{v} {msg}");
        }
    }

    /// `note: ...` on stderr (hidden with --quiet).
    pub fn note(&self, msg: impl Display) {
        if self.verbosity >= Verbosity::Normal {
            let n = self.paint(
                self.color_err,
                Style::new().bold().fg_color(Some(AnsiColor::Cyan.into())),
                "note",
            );
            eprintln!("{n}: {msg}");
        }
    }

    /// `warning: ...` on stderr (always shown).
    pub fn warn(&self, msg: impl Display) {
        let w = self.paint(
            self.color_err,
            Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
            "warning",
        );
        eprintln!("{w}: {msg}");
    }

    /// Text the device itself wrote as an error (its traceback), verbatim on stderr.
    pub fn device_stderr(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// A failed command's diagnostic, rendered by miette's handler, on stderr.
    pub fn error(&self, report: &miette::Report) {
        eprintln!("{report:?}");
    }

    /// Detail shown with --verbose only.
    pub fn verbose(&self, msg: impl Display) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{msg}");
        }
    }
}

pub use mpfr::text::table;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_counts_only_when_set_and_not_empty() {
        use std::ffi::OsStr;
        let auto = ColorChoice::Auto;
        assert!(auto.decide(true, None));
        // NO_COLOR="" does not disable colour (no-color.org); any other value does.
        assert!(auto.decide(true, Some(OsStr::new(""))));
        assert!(!auto.decide(true, Some(OsStr::new("1"))));
        assert!(!auto.decide(false, None));
        assert!(ColorChoice::Always.decide(false, Some(OsStr::new("1"))));
        assert!(!ColorChoice::Never.decide(true, None));
    }
}
