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

/// Builds the `tests/fixtures/uart-banner` image (a few lines of C that print a reference-console
/// banner on UART0 and loop) with arm-none-eabi-gcc into `dir`, and returns its path.
pub fn uart_banner_elf(dir: &std::path::Path) -> PathBuf {
    let src = root().join("tests/fixtures/uart-banner");
    let out = dir.join("uart-banner.elf");
    let st = std::process::Command::new("arm-none-eabi-gcc")
        .args([
            "-mcpu=cortex-m3",
            "-mthumb",
            "-O1",
            "-nostdlib",
            "-nostartfiles",
            "-T",
        ])
        .arg(src.join("link.ld"))
        .arg(src.join("main.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("arm-none-eabi-gcc (installed by scripts/setup.sh)");
    assert!(st.success(), "building the uart-banner fixture failed");
    out
}
