//! `mpfr devices` without hardware: it runs, lists no USB devices that are not there, and names
//! the running virtual board; and RP2 flashing without a probe or BOOTSEL drive fails at once
//! saying how to enter BOOTSEL.

use std::time::{Duration, Instant};

use mpfr_tests::{Env, QEMU_BOARD};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn records(out: &std::process::Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn devices_json_lists_the_running_virtual_board() {
    let env = Env::new("mpfr-devices-");
    let out = env.mpfr(&["devices", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        records(&out).iter().all(|r| r["type"] != "virtual"),
        "{}",
        text(&out.stdout)
    );

    let elf = mpfr_tests::uart_banner_elf(env.state());
    let out = env.mpfr(&["flash", "--board", QEMU_BOARD, elf.to_str().unwrap()]);
    assert!(out.status.success(), "flash failed: {}", text(&out.stderr));
    let rec = env.record().expect("record");

    let out = env.mpfr(&["devices", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Vec<_> = records(&out)
        .into_iter()
        .filter(|r| r["type"] == "virtual")
        .collect();
    assert_eq!(v.len(), 1, "{}", text(&out.stdout));
    assert_eq!(v[0]["board"], QEMU_BOARD);
    assert_eq!(v[0]["pid"], rec["pid"]);
    assert_eq!(v[0]["uart"], rec["uart_pty"]);
    assert_eq!(v[0]["console"], "reference");

    let out = env.mpfr(&["devices"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(QEMU_BOARD),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn rp2_flash_without_probe_or_bootsel_fails_fast_saying_how_to_enter_bootsel() {
    let env = Env::new("mpfr-uf2-");
    let bin = env.state().join("firmware.bin");
    std::fs::write(&bin, vec![0u8; 1024]).unwrap();
    let uf2 = env.state().join("firmware.uf2");
    // A UF2 file: the converted BIN, written by mpfr's own encoder.
    let img = mpfr::image::load(&bin, None, Some(0x1000_0000)).unwrap();
    let pages = mpfr::flash::uf2::pages(&img).unwrap();
    std::fs::write(
        &uf2,
        mpfr::flash::uf2::encode(&pages, mpfr::flash::uf2::FAMILY_RP2040),
    )
    .unwrap();
    let start = Instant::now();
    let out = env.mpfr(&["flash", "--board", "rpi-pico", uf2.to_str().unwrap()]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no RP2 board in BOOTSEL mode"), "{err}");
    assert!(err.contains("hold the BOOTSEL button"), "{err}");
    assert!(err.contains("UF2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
