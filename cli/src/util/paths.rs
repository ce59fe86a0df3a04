//! Where mpfr puts things: build outputs (in the project) and run state (per user).

use std::path::PathBuf;

/// Output root for `mpfr config` / `mpfr build`: `$MPFR_OUT`, else `./mpfr-out`.
pub fn out_root() -> PathBuf {
    std::env::var_os("MPFR_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("mpfr-out"))
}

/// Default output folder of `mpfr config` for a board.
pub fn config_dir(board: &str) -> PathBuf {
    out_root().join(board).join("config")
}

/// Run state (running virtual boards, last build per board): `$MPFR_STATE_DIR`, else
/// `$XDG_STATE_HOME/mpfr`, else `~/.local/state/mpfr`, else `./.mpfr`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MPFR_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("mpfr");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/state/mpfr");
    }
    PathBuf::from(".mpfr")
}

/// Record of the last `mpfr build` for a board (`{"elf": "/abs/path"}`), read by `mpfr flash`.
pub fn last_build_record(board: &str) -> PathBuf {
    state_dir().join("builds").join(format!("{board}.json"))
}

/// Record of a running virtual (QEMU) board, read by every command that attaches to it.
pub fn vboard_record(board: &str) -> PathBuf {
    state_dir().join("vboard").join(format!("{board}.json"))
}
