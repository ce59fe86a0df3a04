//! Crash capture (`mpfr crash`): halt a target, read every core's registers, fault registers and
//! RAM into one bundle file ([`bundle`]), and explain it later from the bundle and the ELF
//! ([`report`]): which core faulted and why, a backtrace of every core and FreeRTOS task, and the
//! Python call stack of every MicroPython thread.
//!
//! Layers: `capture` uses device memory access; `elf` (symbols, DWARF unwinding), `rtos` (the
//! FreeRTOS task lists), `python` (MicroPython's frames) and `report` work offline on a
//! [`bundle::Bundle`].

pub mod bundle;
pub mod capture;
pub mod elf;
pub mod fault;
pub mod python;
pub mod report;
pub mod rtos;
pub mod watch;

use std::path::PathBuf;

use miette::Diagnostic;

pub use bundle::Bundle;
pub use capture::{CaptureOptions, capture};
pub use report::{Report, analyse};

/// What went wrong capturing or showing a crash.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] crate::device::memory::TargetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Vboard(#[from] crate::device::vboard::VboardError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Usage(#[from] crate::util::usage::Usage),

    #[error("cannot {context}")]
    #[diagnostic(code(mpfr::crash::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a crash bundle mpfr can read: {why}")]
    #[diagnostic(
        code(mpfr::crash::bundle),
        help(
            "give a file written by `mpfr crash capture`; a damaged or truncated copy cannot be read"
        )
    )]
    BadBundle { path: PathBuf, why: String },

    #[error("cannot use {path} as the firmware's ELF: {why}")]
    #[diagnostic(
        code(mpfr::crash::elf),
        help(
            "give the ELF the target ran with --elf (the bundle names the one it was captured with)"
        )
    )]
    Elf { path: PathBuf, why: String },
}
