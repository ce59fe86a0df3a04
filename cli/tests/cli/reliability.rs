//! Faults found by trying to break mpfr (docs/reliability.md): each test is one row of the
//! fault matrix that needs no board.

use crate::mpfr;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn huge_sizes_in_config_are_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    for flag in ["--gc-heap", "--heap", "--stack"] {
        let o = mpfr(d.path())
            .args(["config", "--board", "qemu-mps2-an385", flag])
            .arg("18446744073709551615")
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag}: {err}");
        assert!(err.contains("is larger than"), "{flag}: {err}");
        assert!(!err.contains("panicked"), "{flag}: {err}");
    }
    assert!(!d.path().join("out").exists(), "nothing written");
}

#[test]
fn config_out_with_a_directory_in_the_way_replaces_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cfg");
    let run = |extra: &[&str]| {
        mpfr(d.path())
            .args(["config", "--board", "qemu-mps2-an385", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    let before: Vec<(String, Vec<u8>)> = {
        let mut v: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // One of the outputs becomes a directory; a changed config must then replace none.
    let victim = out.join(&before.last().unwrap().0);
    std::fs::remove_file(&victim).unwrap();
    std::fs::create_dir(&victim).unwrap();
    let o = run(&["--gc-heap", "128k"]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("is a directory"), "{err}");
    for (name, bytes) in &before[..before.len() - 1] {
        assert_eq!(
            &std::fs::read(out.join(name)).unwrap(),
            bytes,
            "{name} was replaced"
        );
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        before.len(),
        "temporaries left"
    );
}

#[test]
fn config_files_get_the_umask_mode_not_0600() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cfg");
    let o = mpfr(d.path())
        .args(["config", "--board", "qemu-mps2-an385", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = d.path().join("plain");
    std::fs::write(&plain, b"").unwrap();
    let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    for e in std::fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{:?}", e.file_name());
    }
}

#[test]
fn boards_json_objects_carry_their_type() {
    let d = tempfile::tempdir().unwrap();
    let o = mpfr(d.path()).args(["boards", "--json"]).output().unwrap();
    assert!(o.status.success());
    for l in text(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["type"], "board", "{l}");
    }
    let o = mpfr(d.path())
        .args(["boards", "show", "host", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "board");
}

#[test]
fn a_replacing_boards_file_with_no_boards_does_not_say_added() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("none.toml");
    std::fs::write(&f, "catalog = \"replace\"\n").unwrap();
    let o = mpfr(d.path())
        .env("MPFR_BOARDS", &f)
        .arg("boards")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(!err.contains("added"), "{err}");
    assert!(err.contains("replaces the built-in catalog"), "{err}");
    assert!(err.contains("no boards"), "{err}");
}

#[test]
fn threads_wait_0_is_refused_as_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let o = mpfr(d.path())
        .args([
            "threads",
            "top",
            "--board",
            "qemu-mps2-an385",
            "--once",
            "--wait",
            "0",
        ])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--wait"), "{err}");
    assert!(!err.contains("sends no telemetry"), "{err}");
}

#[test]
fn flash_without_an_image_says_how_to_build_micropython_for_the_board() {
    let d = tempfile::tempdir().unwrap();
    let o = mpfr(d.path())
        .args(["flash", "--board", "rpi-pico", "--dry-run"])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mpfr build --board rpi-pico"), "{err}");
    assert!(err.contains("--micropython"), "{err}");
}

#[test]
fn a_host_compiler_in_mpfr_gcc_is_named_not_a_tunable() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    // A compiler that knows no ARM flag, as a host gcc would answer.
    let gcc = d.path().join("gcc");
    std::fs::write(
        &gcc,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'gcc 12'; exit 0; }\n\
         echo \"gcc: error: unrecognized command-line option '-mthumb'\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = mpfr(d.path())
        .env("MPFR_GCC", &gcc)
        .args(["build", "--board", "qemu-mps2-an385"])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("does not compile for ARM"), "{err}");
    assert!(err.contains("MPFR_GCC"), "{err}");
    assert!(!err.contains("tunable"), "{err}");
}

#[test]
fn a_huge_boards_file_is_refused_before_it_is_read() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("huge.toml");
    // Sparse: 74 MB on paper, nothing on disk.
    std::fs::File::create(&f)
        .unwrap()
        .set_len(74 * 1024 * 1024)
        .unwrap();
    let o = mpfr(d.path())
        .env("MPFR_BOARDS", &f)
        .arg("boards")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mpfr reads boards files up to"), "{err}");
}

/// Error text quotes files and devices; whatever it quotes reaches the terminal escaped. A
/// boards file with an escape sequence, an OSC title and a bidi override in it: the snippet
/// mpfr shows has them replaced, the JSON error line carries none of them.
#[test]
fn control_bytes_in_a_boards_file_reach_the_terminal_escaped() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("evil.toml");
    std::fs::write(
        &f,
        "name = \"a\x1b[2J\x1b]0;pwned\x07b\u{202e}c\u{9b}1m\"\n",
    )
    .unwrap();
    for json in [false, true] {
        let mut c = mpfr(d.path());
        if json {
            c.arg("--json");
        }
        let o = c.env("MPFR_BOARDS", &f).arg("boards").output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        for bad in ['\x1b', '\x07', '\u{202e}', '\u{9b}'] {
            assert!(!all.contains(bad), "{bad:?} reached the terminal:\n{all}");
        }
        assert!(all.contains("evil.toml:1"), "{all}");
    }
}
