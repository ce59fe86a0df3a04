//! Helpers for mpfr's end-to-end tests: finding the `mpfr` binary and the project's tools,
//! running commands with deadlines, and cleaning up every process a test starts.

use std::path::PathBuf;

pub mod gdb;
pub mod qemu;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The `mpfr` binary built by cargo for this test run (`$MPFR_BIN` overrides).
pub fn mpfr_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MPFR_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug").join("mpfr")
}

/// The MicroPython unix port from the project's virtualenv (`$MPFR_MICROPYTHON` overrides).
pub fn micropython() -> PathBuf {
    std::env::var_os("MPFR_MICROPYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/micropython"))
}
