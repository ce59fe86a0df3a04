//! End-to-end tests of `mpfr flash` / `mpfr stop`: the QEMU virtual board booting a real image,
//! being found again, replaced, stopped and killed; and the hardware boards failing cleanly when
//! no probe or serial port is present.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mpfr_tests::{Env, is_our_qemu, wait_for};

const BOARD: &str = "qemu-mps2-an385";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A minimal little-endian ELF32 with one PT_LOAD at `addr`.
fn tiny_elf(machine: u16, addr: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    for v in [2u16, machine] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, addr, 52, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [52u16, 32, 1, 40, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, 84, addr, addr, len as u32, len as u32, 5, 4] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend(std::iter::repeat_n(0xA5u8, len));
    out
}

/// Opens the recorded pty, pokes it with CR and waits for the `ref> ` prompt.
fn attach_and_see_prompt(pty: &str) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(0o400 | 0o4000) // O_NOCTTY | O_NONBLOCK
        .open(pty)
        .expect("open the recorded UART pty");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let mut last_poke = Instant::now() - Duration::from_secs(10);
    wait_for(
        "the ref> prompt on the recorded pty",
        Duration::from_secs(30),
        || {
            if last_poke.elapsed() > Duration::from_secs(1) {
                let _ = f.write_all(b"\r");
                last_poke = Instant::now();
            }
            if let Ok(n) = f.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
            }
            if seen.windows(5).any(|w| w == b"ref> ") {
                Ok(())
            } else {
                Err(text(&seen))
            }
        },
    );
}

/// Asks the gdbstub why the target stopped (`?`), expects a stop reply, then detaches so the
/// guest runs on.
fn gdb_stop_reason(socket: &str) {
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect to gdb socket");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    s.write_all(b"$?#3f").expect("send ?");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    wait_for("a GDB stop reply", Duration::from_secs(30), || {
        if let Ok(n) = s.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        let t = text(&seen);
        if t.contains("$S") || t.contains("$T") {
            Ok(())
        } else {
            Err(t)
        }
    });
    s.write_all(b"+$D#44").expect("detach");
}

#[test]
fn qemu_board_boots_is_found_again_replaced_and_stopped() {
    let env = Env::new("mpfr-flash-");
    let elf = mpfr_tests::uart_banner_elf(env.state());
    let elf_s = elf.to_str().unwrap();

    let out = env.mpfr(&["flash", "--board", BOARD, elf_s, "--json"]);
    assert!(out.status.success(), "flash failed: {}", text(&out.stderr));
    let last: serde_json::Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .next_back()
        .expect("JSON output");
    assert_eq!(last["type"], "flashed");
    assert_eq!(last["result"]["instance"]["console"], "reference", "{last}");

    let rec = env.record().expect("record written");
    let pid1 = rec["pid"].as_u64().unwrap();
    let qmp1 = rec["qmp_socket"].as_str().unwrap().to_string();
    assert!(
        is_our_qemu(pid1, &qmp1),
        "QEMU {pid1} is not running after flash returned"
    );
    assert_eq!(rec["image"], elf_s);
    assert!(Path::new(rec["gdb_socket"].as_str().unwrap()).exists());

    // A later process attaches through the record alone.
    attach_and_see_prompt(rec["uart_pty"].as_str().unwrap());

    // The recorded gdbstub socket answers the GDB remote protocol.
    gdb_stop_reason(rec["gdb_socket"].as_str().unwrap());

    // Flashing again replaces the instance: a new pid, the old QEMU gone.
    let out = env.mpfr(&["flash", "--board", BOARD, elf_s]);
    assert!(
        out.status.success(),
        "second flash failed: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("reference console"),
        "{}",
        text(&out.stderr)
    );
    let rec2 = env.record().expect("record rewritten");
    let pid2 = rec2["pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    wait_for("the replaced QEMU to exit", Duration::from_secs(30), || {
        !is_our_qemu(pid1, &qmp1)
    });
    assert!(is_our_qemu(pid2, rec2["qmp_socket"].as_str().unwrap()));

    // Stop ends it and removes the record.
    let out = env.mpfr(&["stop", "--board", BOARD]);
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("pid {pid2}")),
        "{}",
        text(&out.stderr)
    );
    assert!(env.record().is_none(), "record left behind");
    wait_for("the stopped QEMU to exit", Duration::from_secs(30), || {
        !is_our_qemu(pid2, rec2["qmp_socket"].as_str().unwrap())
    });

    // Stopping again is fine and says so.
    let out = env.mpfr(&["stop", "--board", BOARD]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("not running"),
        "{}",
        text(&out.stderr)
    );
}

/// The whole path a developer takes: build the reference firmware, flash it with no image
/// argument (the last build), attach to its console, stop it.
#[test]
fn reference_firmware_builds_flashes_from_the_last_build_and_stops() {
    let env = Env::new("mpfr-flash-");
    let out = env.mpfr(&["build", "--board", BOARD, "--json"]);
    assert!(out.status.success(), "build failed: {}", text(&out.stderr));
    let built: serde_json::Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["type"] == "build")
        .expect("a build line");
    let elf = built["elf"].as_str().expect("elf path").to_string();
    assert!(Path::new(&elf).is_file());

    let out = env.mpfr(&["flash", "--board", BOARD, "--json"]);
    assert!(out.status.success(), "flash failed: {}", text(&out.stderr));
    let rec = env.record().expect("record written");
    assert_eq!(
        rec["image"],
        elf.as_str(),
        "flash must default to the last build"
    );
    assert_eq!(rec["console"], "reference");
    attach_and_see_prompt(rec["uart_pty"].as_str().unwrap());

    let out = env.mpfr(&["stop", "--board", BOARD]);
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    assert!(env.record().is_none(), "record left behind");
    let pid = rec["pid"].as_u64().unwrap();
    let qmp = rec["qmp_socket"].as_str().unwrap().to_string();
    wait_for("the stopped QEMU to exit", Duration::from_secs(30), || {
        !is_our_qemu(pid, &qmp)
    });
}

#[test]
fn killed_qemu_is_detected_and_reported_with_its_stderr() {
    let env = Env::new("mpfr-flash-");
    let elf = mpfr_tests::uart_banner_elf(env.state());
    let out = env.mpfr(&["flash", "--board", BOARD, elf.to_str().unwrap()]);
    assert!(out.status.success(), "flash failed: {}", text(&out.stderr));
    let rec = env.record().expect("record");
    let pid = rec["pid"].as_u64().unwrap();
    let qmp = rec["qmp_socket"].as_str().unwrap().to_string();

    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for("QEMU to exit", Duration::from_secs(30), || {
        !is_our_qemu(pid, &qmp)
    });

    let out = env.mpfr(&["stop", "--board", BOARD]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("already exited"), "{err}");
    // QEMU's own last words, from its log.
    assert!(err.contains("terminating on signal 15"), "{err}");
    assert!(env.record().is_none());
}

#[test]
fn image_defaults_to_the_last_build() {
    let env = Env::new("mpfr-flash-");
    let out = env.mpfr(&["flash", "--board", BOARD, "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("mpfr build --board {BOARD}")),
        "{}",
        text(&out.stderr)
    );

    let elf = env.state().join("fw.elf");
    std::fs::write(&elf, tiny_elf(40, 0, 64)).unwrap();
    let builds = env.state().join("builds");
    std::fs::create_dir_all(&builds).unwrap();
    let rec = serde_json::json!({ "elf": elf, "fingerprint": "0x12345678" });
    std::fs::write(builds.join(format!("{BOARD}.json")), rec.to_string()).unwrap();
    let out = env.mpfr(&["flash", "--board", BOARD, "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(plan["type"], "plan");
    assert_eq!(plan["image_source"], "last-build");
    assert_eq!(plan["image"], elf.to_str().unwrap());
    assert_eq!(plan["segments"][0]["len"], 64);
    // A dry run starts nothing.
    assert!(env.record().is_none());
}

#[test]
fn rpi_pico_without_a_probe_exits_1_naming_the_probe() {
    let env = Env::new("mpfr-flash-");
    let elf = env.state().join("pico.elf");
    std::fs::write(&elf, tiny_elf(40, 0x1000_0000, 256)).unwrap();
    let out = env.mpfr(&["flash", "--board", "rpi-pico", elf.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no debug probe found"), "{err}");
    assert!(err.contains("60-mpfr-probes.rules"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The dry run resolves without hardware and says what the fake probe can and cannot test.
    let out = env.mpfr(&[
        "flash",
        "--board",
        "rpi-pico",
        elf.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("0x10000000"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("FakeProbe"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn esp32_s3_without_a_serial_port_exits_1_naming_the_port() {
    let env = Env::new("mpfr-flash-");
    let elf = env.state().join("esp.elf");
    std::fs::write(&elf, tiny_elf(94, 0x4200_0000, 256)).unwrap();
    let out = env.mpfr(&[
        "flash",
        "--board",
        "esp32-s3-devkitc",
        elf.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no serial port found"), "{err}");
    assert!(err.contains("--port"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An ARM image for an ESP board is refused before any port is opened.
    let arm = env.state().join("arm.elf");
    std::fs::write(&arm, tiny_elf(40, 0x1000_0000, 16)).unwrap();
    let out = env.mpfr(&[
        "flash",
        "--board",
        "esp32-s3-devkitc",
        arm.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("built for ARM"),
        "{}",
        text(&out.stderr)
    );
}
