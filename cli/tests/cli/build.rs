//! `mpfr build` through the binary: the JSON line, the ELF, the last-build record, and the
//! errors a user meets first (board without reference firmware, missing cross compiler).

use std::path::Path;
use std::process::{Command, Output};

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

/// Runs `cmd` and checks its exit code (its stderr shown when that fails).
fn exits(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().expect("run mpfr");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    out
}

/// Runs `cmd`, checks it exits 1 (an error the user can fix) and returns its stderr.
fn fails_with_1(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&exits(cmd, 1).stderr).into_owned()
}

#[test]
fn build_prints_the_elf_and_records_it() {
    let d = tempfile::tempdir().unwrap();
    let out = exits(
        mpfr(d.path()).args([
            "build",
            "--board",
            "qemu-mps2-an385",
            "--heap",
            "32k",
            "--json",
        ]),
        0,
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
    let err = fails_with_1(mpfr(d.path()).args(["build", "--board", "rpi-pico"]));
    assert!(err.contains("mpfr::build::board"), "{err}");
    assert!(err.contains("mpfr boards"), "{err}");
}

#[test]
fn build_without_cross_compiler_names_the_packages() {
    let d = tempfile::tempdir().unwrap();
    let err = fails_with_1(
        mpfr(d.path())
            .env("MPFR_GCC", d.path().join("no-such-gcc"))
            .args(["build", "--board", "qemu-mps2-an385"]),
    );
    assert!(err.contains("gcc-arm-none-eabi"), "{err}");
    assert!(err.contains("libnewlib-arm-none-eabi"), "{err}");
    assert!(
        !d.path().join("state/builds").exists(),
        "no record for a failed build"
    );
}

/// A port's own FreeRTOSConfig.h in the shape MicroPython ports have: the kernel basics, guarded
/// tunables, and no run-time counter of its own.
const PORT_FREERTOS_CONFIG: &str = r#"
#ifndef FREERTOS_CONFIG_H
#define FREERTOS_CONFIG_H
#include <stdint.h>
#define configCPU_CLOCK_HZ 25000000u
#define configKERNEL_INTERRUPT_PRIORITY 0xE0
#define configMAX_SYSCALL_INTERRUPT_PRIORITY 0x80
#define configUSE_PREEMPTION 1
#define configTICK_TYPE_WIDTH_IN_BITS TICK_TYPE_WIDTH_32_BITS
#define configMAX_PRIORITIES 8
#define configMINIMAL_STACK_SIZE 128
#define configUSE_IDLE_HOOK 0
#define configUSE_TICK_HOOK 0
#define configSUPPORT_STATIC_ALLOCATION 1
#define configSUPPORT_DYNAMIC_ALLOCATION 1
#define configNUM_THREAD_LOCAL_STORAGE_POINTERS 1
#define configUSE_MUTEXES 1
#define configUSE_RECURSIVE_MUTEXES 1
#ifndef configTOTAL_HEAP_SIZE
#define configTOTAL_HEAP_SIZE 4096
#endif
#define INCLUDE_vTaskDelay 1
#endif
"#;

/// Syntax-checks `file` with the rendered header forced in first, as `mpfr build --micropython`
/// does, plus `extra` flags.
fn compile_with_config(
    cfg: &Path,
    port: &Path,
    file: &Path,
    extra: &[&str],
) -> std::process::Output {
    let k = mpfr_firmware::freertos_kernel_dir();
    Command::new("arm-none-eabi-gcc")
        .args([
            "-mcpu=cortex-m3",
            "-mthumb",
            "-std=gnu11",
            "-fsyntax-only",
            "-Werror",
        ])
        .arg("-include")
        .arg(cfg.join("mpfr_config.h"))
        .args(extra)
        .arg(format!("-I{}", port.display()))
        .arg(format!(
            "-I{}",
            mpfr_firmware::crate_dir().join("agent").display()
        ))
        .arg(format!("-I{}", k.join("include").display()))
        .arg(format!("-I{}", k.join("portable/GCC/ARM_CM3").display()))
        .arg(file)
        .output()
        .expect("arm-none-eabi-gcc must be installed (scripts/setup.sh)")
}

#[test]
fn the_tick_counter_switch_lets_a_port_without_a_counter_build_the_kernel_and_agent() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("cfg");
    exits(
        mpfr(d.path())
            .args(["config", "--board", "qemu-mps2-an385", "--out"])
            .arg(&cfg),
        0,
    );
    let port = d.path().join("port");
    std::fs::create_dir_all(&port).unwrap();
    std::fs::write(port.join("FreeRTOSConfig.h"), PORT_FREERTOS_CONFIG).unwrap();
    let tasks = mpfr_firmware::freertos_kernel_dir().join("tasks.c");

    // Run-time stats on, no counter: the kernel refuses to build.
    let plain = compile_with_config(&cfg, &port, &tasks, &[]);
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("portGET_RUN_TIME_COUNTER_VALUE"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );

    // With the switch the tick count stands in, for the kernel and the agent alike.
    let agent = mpfr_firmware::crate_dir().join("agent/mpfr_agent.c");
    for file in [&tasks, &agent] {
        let o = compile_with_config(&cfg, &port, file, &["-DMPFR_RUNTIME_COUNTER_TICKS=1"]);
        assert!(
            o.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
