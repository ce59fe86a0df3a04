//! Snapshot tests of the `mpfr` binary: exit code, stdout and stderr, with temp paths filtered.
//! One test binary for the whole CLI (each binary links the whole crate graph): further areas
//! are modules next to this file.

use std::path::Path;
use std::process::Command;

use insta_cmd::get_cargo_bin;

/// `mpfr` run in `dir` with no user boards file, no color and a fixed terminal width.
fn mpfr(dir: &Path) -> Command {
    let mut c = Command::new(get_cargo_bin("mpfr"));
    c.current_dir(dir)
        .env_remove("MPFR_BOARDS")
        .env_remove("MPFR_BOARD")
        .env("NO_COLOR", "1")
        .env("MPFR_OUT", dir.join("out"))
        .env("MPFR_STATE_DIR", dir.join("state"));
    c
}

macro_rules! snap {
    ($dir:expr, $cmd:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&crate::regex_escape(&$dir.display().to_string()), "[TEMP]");
        settings.bind(|| insta_cmd::assert_cmd_snapshot!($cmd));
    }};
}

/// Snapshots `mpfr ARGS` run in a fresh temporary folder.
macro_rules! snap_args {
    ($args:expr) => {{
        let d = tempfile::tempdir().unwrap();
        snap!(d.path(), mpfr(d.path()).args($args));
    }};
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

mod build;
mod crash;
mod flash_dry_run;
mod fuzz_regressions;
mod reliability;
mod stress_report;
mod threads_ls;

const GOOD_BOARD: &str = r#"
[boards.mine]
description = "my board"
chip = "RP2040"
cores = 2
ram = "264KiB"
flasher = "probe-rs"
telemetry = "rtt"
link = { type = "usb", usb = ["2e8a:0005"] }
port = { name = "rp2", build = "cmake", board = "RPI_PICO" }

[boards.mine.defaults]
gc_heap = "160KiB"
heap = "8KiB"
stack = "8KiB"
thread_stack = "4KiB"
service_stack = "2KiB"
service_priority = 3
gil = "off"
affinity = "any"
"#;

#[test]
fn boards_table() {
    snap_args!(["boards"]);
}

#[test]
fn boards_json_lists_every_board_with_required_fields() {
    let d = tempfile::tempdir().unwrap();
    let out = mpfr(d.path()).args(["boards", "--json"]).output().unwrap();
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["name", "chip", "cores", "flasher"] {
                assert!(!v[k].is_null(), "{k} missing in {l}");
            }
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    // Which boards are built in is the library's test; here every one of them is listed.
    let builtin = mpfr::board::Catalog::builtin().unwrap();
    let want: Vec<&str> = builtin.iter().map(|b| b.name.as_str()).collect();
    assert!(want.len() > 5, "{want:?}");
    assert_eq!(names, want);
}

#[test]
fn boards_show() {
    snap_args!(["boards", "show", "rpi-pico"]);
}

#[test]
fn boards_show_unknown() {
    snap_args!(["boards", "show", "rpi-pico-ww"]);
}

#[test]
fn config_writes_identical_bytes_twice() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("D");
    let run = || {
        let o = mpfr(d.path())
            .args([
                "config",
                "--board",
                "rpi-pico-w",
                "--gil",
                "off",
                "--cores",
                "2",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let first = run();
    let second = run();
    assert_eq!(first, second);
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["mpfr-board.json", "mpfr.cmake", "mpfr.mk", "mpfr_config.h"]
    );
    let header = String::from_utf8(first[3].1.clone()).unwrap();
    assert!(header.contains("#define configNUMBER_OF_CORES 2\n"));
    assert!(header.contains("#define MICROPY_PY_THREAD_GIL 0\n"));
    assert!(header.contains("#define MPFR_BOARD \"rpi-pico-w\"\n"));
}

#[test]
fn config_output_and_notes() {
    snap_args!(["config", "--board", "nucleo-f429zi", "--gil", "off"]);
}

#[test]
fn config_json() {
    let d = tempfile::tempdir().unwrap();
    let o = mpfr(d.path())
        .args(["config", "--board", "qemu-mps2-an385", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "config");
    assert_eq!(v["config"]["cores"], 1);
    assert!(v["fingerprint"].as_str().unwrap().starts_with("0x"));
    assert!(
        Path::new(v["out"].as_str().unwrap())
            .join("mpfr_config.h")
            .is_file()
    );
}

#[test]
fn config_too_many_cores() {
    snap_args!(["config", "--board", "rpi-pico", "--cores", "3"]);
}

#[test]
fn config_over_ram_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("never");
    snap!(
        d.path(),
        mpfr(d.path())
            .args([
                "config",
                "--board",
                "rpi-pico",
                "--gc-heap",
                "250K",
                "--out"
            ])
            .arg(&out)
    );
    assert!(
        !out.exists(),
        "a failed config must not create its output folder"
    );
}

#[test]
fn config_bad_size_flag() {
    snap_args!(["config", "--board", "rpi-pico", "--heap", "8 lots"]);
}

#[test]
fn boards_file_with_typo_key() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("boards.toml"),
        GOOD_BOARD.replace("thread_stack", "thread_stak"),
    )
    .unwrap();
    // Found by walking up from a subfolder.
    let sub = d.path().join("src/app");
    std::fs::create_dir_all(&sub).unwrap();
    snap!(d.path(), mpfr(&sub).arg("boards"));
}

#[test]
fn boards_file_with_bad_size() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("my-boards.toml");
    std::fs::write(&f, GOOD_BOARD.replace("\"160KiB\"", "\"160 KiBB\"")).unwrap();
    snap!(
        d.path(),
        mpfr(d.path()).arg("--boards").arg(&f).args(["boards"])
    );
}

#[test]
fn boards_file_extends_the_catalog() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("extra.toml");
    std::fs::write(&f, GOOD_BOARD).unwrap();
    let o = mpfr(d.path())
        .env("MPFR_BOARDS", &f)
        .args(["boards", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("\"name\":\"mine\"")));
    assert!(text.lines().any(|l| l.contains("\"name\":\"rpi-pico\"")));
}

#[test]
fn missing_boards_file() {
    snap_args!(["--boards", "nope.toml", "boards"]);
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let d = tempfile::tempdir().unwrap();
    let o = mpfr(d.path())
        .args(["config", "--board", "rpi-pico", "--gil", "maybe"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("possible values: on, off"));
    let o = mpfr(d.path()).args(["config", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--thread-stack <SIZE>"));
}

#[test]
fn broken_pipe_exits_quietly() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let mut child = mpfr(d.path())
        .args(["boards"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end of stdout at once: mpfr's writes then fail with EPIPE.
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success() || status.code() == Some(0),
        "{status:?} {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hard_reset_of_a_probe_board_without_hardware_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let o = mpfr(dir.path())
        .args(["reset", "--hard", "--board", "nucleo-f429zi"])
        .env_remove("MPFR_PORT")
        .env_remove("MPFR_PROBE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no debug probe is connected"), "{err}");
    assert!(err.contains("nucleo-f429zi"), "{err}");
    // A malformed probe selector is a usage error before anything is opened.
    let o = mpfr(dir.path())
        .args([
            "reset",
            "--hard",
            "--board",
            "nucleo-f429zi",
            "--probe",
            "nonsense",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("`nonsense` is not VID:PID"), "{err}");
    assert!(!err.contains("no debug probe"), "{err}");
}

/// The library builds without the terminal crates (issue 11): `cargo tree` of the package
/// without its `cli` feature names none of them.
#[test]
fn the_library_has_no_terminal_crates() {
    let o = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "mpfr",
            "--no-default-features",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && tree.contains("probe-rs"),
        "{tree}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for name in ["clap", "ratatui", "crossterm", "indicatif"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(name)),
            "{name} in the library's dependencies:\n{tree}"
        );
    }
}
