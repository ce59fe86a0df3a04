//! mpfr: developer CLI and board manager for MicroPython on FreeRTOS (SMP).
//!
//! All logic lives in this library; the `mpfr` binary only parses arguments, calls in here and
//! renders results. See `docs/architecture.md` for how the layers fit together.

pub mod board;
pub mod builder;
pub mod config;
pub mod crash;
pub mod device;
pub mod error;
pub mod flash;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod project;
pub mod repl;
pub mod stress;
pub mod telemetry;
pub mod text;
pub mod util;

pub use error::{Error, Result};
