//! `mpfr crash` on bad input: each a clear error and exit code 1, no panic, no file written.

use super::mpfr;

fn run(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = mpfr(dir).args(args).output().expect("run mpfr");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn capture_on_a_probe_board_says_it_is_not_supported_yet() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run(d.path(), &["crash", "capture", "--board", "rpi-pico"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("crash capture on probe boards (rpi-pico) is not supported yet"),
        "{err}"
    );
    assert!(!d.path().join("out").exists(), "nothing written");
}

#[test]
fn capture_of_a_virtual_board_that_is_not_running_says_how_to_start_it() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run(
        d.path(),
        &["crash", "capture", "--board", "qemu-mps2-an385"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not running"), "{err}");
    assert!(err.contains("mpfr flash"), "{err}");
    assert!(!d.path().join("out").exists(), "nothing written");
}

#[test]
fn watch_needs_a_running_virtual_board_and_a_positive_interval() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run(d.path(), &["crash", "watch", "--board", "rpi-pico"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("crash watch on probe boards (rpi-pico) is not supported yet"),
        "{err}"
    );
    let (code, err) = run(d.path(), &["crash", "watch", "--board", "qemu-mps2-an385"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not running"), "{err}");
    assert!(err.contains("mpfr flash"), "{err}");
    let (code, err) = run(
        d.path(),
        &[
            "crash",
            "watch",
            "--board",
            "qemu-mps2-an385",
            "--every",
            "0s",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--every") && err.contains("longer than zero"),
        "{err}"
    );
    assert!(!d.path().join("out").exists(), "nothing written");
}

#[test]
fn show_of_a_missing_or_damaged_bundle_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run(d.path(), &["crash", "show", "nope.crash"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nope.crash"), "{err}");

    std::fs::write(d.path().join("bad.crash"), b"MPFR-CRASH 1\n{\"board\":1}\n").unwrap();
    let (code, err) = run(d.path(), &["crash", "show", "bad.crash"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.crash is not a crash bundle mpfr can read"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
