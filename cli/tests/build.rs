//! `mpfr build` through the binary: the JSON line, the ELF, the last-build record, and the
//! errors a user meets first (board without reference firmware, missing cross compiler).

use std::path::Path;
use std::process::Command;

fn mpfr(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mpfr"));
    c.current_dir(dir)
        .env_remove("MPFR_BOARDS")
        .env_remove("MPFR_BOARD")
        .env_remove("MPFR_GCC")
        .env("NO_COLOR", "1")
        .env("MPFR_OUT", dir.join("out"))
        .env("MPFR_STATE_DIR", dir.join("state"));
    c
}

#[test]
fn build_prints_the_elf_and_records_it() {
    let d = tempfile::tempdir().unwrap();
    let out = mpfr(d.path())
        .args([
            "build",
            "--board",
            "qemu-mps2-an385",
            "--heap",
            "32k",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["type"], "build");
    let elf = Path::new(line["elf"].as_str().unwrap());
    assert!(elf.is_absolute() && elf.is_file(), "{elf:?}");
    assert!(elf.starts_with(d.path().join("out/qemu-mps2-an385").canonicalize().unwrap()));
    // The config flag reached the firmware's config.
    let header =
        std::fs::read_to_string(d.path().join("out/qemu-mps2-an385/config/mpfr_config.h")).unwrap();
    assert!(
        header.contains("#define configTOTAL_HEAP_SIZE 32768"),
        "{header}"
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("state/builds/qemu-mps2-an385.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["elf"], line["elf"]);
    assert_eq!(record["fingerprint"], line["fingerprint"]);
}

#[test]
fn build_refuses_boards_without_reference_firmware() {
    let d = tempfile::tempdir().unwrap();
    let out = mpfr(d.path())
        .args(["build", "--board", "rpi-pico"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mpfr::build::board"), "{err}");
    assert!(err.contains("qemu-mps2-an385"), "{err}");
}

#[test]
fn build_without_cross_compiler_names_the_packages() {
    let d = tempfile::tempdir().unwrap();
    let out = mpfr(d.path())
        .env("MPFR_GCC", d.path().join("no-such-gcc"))
        .args(["build", "--board", "qemu-mps2-an385"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gcc-arm-none-eabi"), "{err}");
    assert!(err.contains("libnewlib-arm-none-eabi"), "{err}");
    assert!(
        !d.path().join("state/builds").exists(),
        "no record for a failed build"
    );
}
