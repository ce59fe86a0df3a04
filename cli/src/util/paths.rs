//! Where mpfr puts things: build outputs (in the project) and run state (per user).

use std::path::PathBuf;

/// A helper program: `$ENV` when set and not empty, else `.venv/bin/<name>` in the current
/// directory or one above it (the project's virtualenv, made by scripts/setup.sh), else `<name>`
/// on `PATH`. A `name` with a `/` is taken as a path.
pub fn project_tool(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if name.contains('/') {
        return PathBuf::from(name);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join(".venv/bin").join(name);
            if cand.is_file() {
                return cand;
            }
        }
    }
    PathBuf::from(name)
}

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
