//! Snapshots of `mpfr flash --dry-run` for each kind of board (probe-rs, espflash, QEMU, none),
//! human and `--json`. The images are tiny ELF files generated here, so no toolchain is needed
//! and the plan is the same on every machine.

use std::path::Path;

use crate::mpfr;

const EM_ARM: u16 = 40;
const EM_XTENSA: u16 = 94;

/// A minimal little-endian ELF32 executable with one PT_LOAD segment of `len` bytes at `addr`
/// (no sections: the flash plan reads program headers only).
fn elf32(machine: u16, addr: u32, len: u32) -> Vec<u8> {
    let phoff = 52u32;
    let data_off = phoff + 32;
    let mut out = b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    for v in [2u16, machine] {
        out.extend_from_slice(&v.to_le_bytes()); // ET_EXEC, e_machine
    }
    for v in [1u32, addr | 1, phoff, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // version, entry, phoff, shoff, flags
    }
    for v in [52u16, 32, 1, 40, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, ...
    }
    for v in [1u32, data_off, addr, addr, len, len, 5, 4] {
        out.extend_from_slice(&v.to_le_bytes()); // PT_LOAD, R+X
    }
    out.extend((0..len).map(|i| i as u8));
    out
}

/// Writes `name` into `dir` and snapshots `mpfr [--json] flash --board BOARD --dry-run name`.
fn plan(dir: &Path, board: &str, name: &str, image: &[u8], json: bool) -> std::process::Command {
    std::fs::write(dir.join(name), image).expect("write the image");
    let mut c = mpfr(dir);
    if json {
        c.arg("--json");
    }
    c.args(["flash", "--board", board, "--dry-run", name]);
    c
}

/// Snapshots the plan for `board` and `image`, as text and then as JSON.
macro_rules! snap_plan {
    ($d:expr, $board:expr, $name:expr, $img:expr) => {{
        for json in [false, true] {
            snap!($d.path(), plan($d.path(), $board, $name, $img, json));
        }
    }};
}

#[test]
fn flash_dry_run_probe_rs() {
    let d = tempfile::tempdir().unwrap();
    let img = elf32(EM_ARM, 0x1000_0000, 1024);
    snap_plan!(d, "rpi-pico", "pico.elf", &img);
}

#[test]
fn flash_dry_run_espflash() {
    let d = tempfile::tempdir().unwrap();
    let img = elf32(EM_XTENSA, 0x400d_0000, 1024);
    snap_plan!(d, "esp32-devkitc", "esp.elf", &img);
}

#[test]
fn flash_dry_run_qemu() {
    let d = tempfile::tempdir().unwrap();
    let img = elf32(EM_ARM, 0, 1024);
    snap_plan!(d, "qemu-mps2-an385", "an385.elf", &img);
    // Dry run means no QEMU and no instance record.
    assert!(!d.path().join("state/vboard/qemu-mps2-an385.json").exists());
}

#[test]
fn flash_dry_run_host_has_no_flasher() {
    let d = tempfile::tempdir().unwrap();
    let img = elf32(EM_ARM, 0, 64);
    snap_plan!(d, "host", "an385.elf", &img);
}

#[test]
fn flash_dry_run_image_for_another_chip() {
    let d = tempfile::tempdir().unwrap();
    let img = elf32(EM_ARM, 0x1000_0000, 256);
    snap!(
        d.path(),
        plan(d.path(), "qemu-mps2-an385", "pico.elf", &img, false)
    );
    let img = elf32(EM_ARM, 0x400d_0000, 256);
    snap!(
        d.path(),
        plan(d.path(), "esp32-devkitc", "arm.elf", &img, false)
    );
}
