//! mpfr: developer CLI and board manager for MicroPython on FreeRTOS (SMP).
//!
//! All logic lives in this library; the `mpfr` binary only parses arguments, calls in here and
//! renders results. See `docs/architecture.md` for how the layers fit together.

pub mod board;
pub mod build;
pub mod chip;
pub mod config;
pub mod error;
pub mod flash;
pub mod image;
pub mod link;
pub mod monitor;
pub mod repl;
pub mod rtt;
pub mod stress;
pub mod target;
pub mod telemetry;
pub mod top;
pub mod ui;
pub mod util;
pub mod vboard;

pub use error::{Error, Result};
