//! The target half of mpfr: the telemetry wire format and its decoder ([`protocol`]), the C
//! sources of the agent and the reference firmware (embedded, so an installed `mpfr` can build
//! them), and where the FreeRTOS kernel lives.

use std::path::{Path, PathBuf};

pub mod protocol;

/// The FreeRTOS kernel tree vendored by the `freertos-next` crate (V11.2), as found at build time.
pub fn freertos_kernel_dir() -> &'static Path {
    Path::new(env!("MPFR_FREERTOS_KERNEL"))
}

/// One embedded C source file: its path below the firmware source folder, and its text.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile {
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! sources {
    ($($p:literal),* $(,)?) => {
        &[$(SourceFile { path: $p, text: include_str!(concat!("../", $p)) }),*]
    };
}

/// The agent (portable C99: RTT block, encoder, sampler): what ships into any firmware.
pub const AGENT_SOURCES: &[SourceFile] = sources![
    "agent/freertos_tasks_c_additions.h",
    "agent/mpfr_agent.c",
    "agent/mpfr_agent.h",
    "agent/mpfr_port.h",
    "agent/mpfr_proto.c",
    "agent/mpfr_proto.h",
    "agent/mpfr_rtt.c",
    "agent/mpfr_rtt.h",
    "agent/mpfr_walk.h",
];

/// The runtime pieces a firmware builds on (service task, thread registry with its reaper); the
/// MicroPython threading backend grows from them.
pub const RUNTIME_SOURCES: &[SourceFile] = sources![
    "runtime/mpfr_service.c",
    "runtime/mpfr_service.h",
    "runtime/mpfr_thread.c",
    "runtime/mpfr_thread.h",
];

/// The reference firmware for QEMU mps2-an385 (startup, linker script, console, workload).
pub const REFERENCE_SOURCES: &[SourceFile] = sources![
    "reference/FreeRTOSConfig.h",
    "reference/board.c",
    "reference/board.h",
    "reference/console.h",
    "reference/main.c",
    "reference/mps2_an385.ld",
    "reference/smp.c",
    "reference/startup.c",
];

/// What the reference firmware adds on QEMU mps2-an521 (two Cortex-M33): its startup (both cores'
/// vector tables) and linker script, next to [`REFERENCE_SOURCES`] minus `startup.c` and the an385
/// linker script.
pub const REFERENCE_AN521_SOURCES: &[SourceFile] =
    sources!["reference/mps2_an521.ld", "reference/startup_an521.c"];

/// mpfr's own FreeRTOS SMP port for the two Cortex-M33 cores of mps2-an521; its folder replaces
/// the kernel's port folder in the include path and its `port.c` the kernel's.
pub const SMP_SOURCES: &[SourceFile] =
    sources!["smp/cm33_mps2/port.c", "smp/cm33_mps2/portmacro.h"];

/// The MicroPython user C module (`import mpfr`); it compiles the agent from `../agent`.
pub const USERMOD_SOURCES: &[SourceFile] = sources![
    "usermod/micropython.cmake",
    "usermod/micropython.mk",
    "usermod/modmpfr.c",
];

/// MicroPython: mpfr's FreeRTOS threading backend (`micropython/freertos/`, make and CMake
/// fragments for any port) and the QEMU port built on it (`micropython/qemu/`, a Makefile taking
/// `MICROPY_TOP`, `MPFR_CONFIG_DIR`, `FREERTOS_KERNEL`, `MACHINE` and `BUILD`; on `mps2-an521` it
/// takes the SMP port from [`SMP_SOURCES`]). The port compiles the
/// runtime's service task, the agent and the user module from their folders beside it.
pub const MICROPYTHON_SOURCES: &[SourceFile] = sources![
    "micropython/freertos/micropython.cmake",
    "micropython/freertos/micropython.mk",
    "micropython/freertos/mpfr_mphal.c",
    "micropython/freertos/mpfr_mphal.h",
    "micropython/freertos/mpfr_pyframes.c",
    "micropython/freertos/mpthreadport.c",
    "micropython/freertos/mpthreadport.h",
    "micropython/qemu/FreeRTOSConfig.h",
    "micropython/qemu/Makefile",
    "micropython/qemu/fatal.c",
    "micropython/qemu/fatal.h",
    "micropython/qemu/main.c",
    "micropython/qemu/modmachine_port.c",
    "micropython/qemu/modtime_port.c",
    "micropython/qemu/mpconfigport.h",
    "micropython/qemu/mphalport.c",
    "micropython/qemu/mphalport.h",
    "micropython/qemu/mps2_an385.ld",
    "micropython/qemu/mps2_an521.ld",
    "micropython/qemu/qstrdefsport.h",
    "micropython/qemu/ramdisk.c",
    "micropython/qemu/ramdisk.h",
    "micropython/qemu/semihosting.h",
    "micropython/qemu/startup.c",
    "micropython/qemu/startup_an521.c",
    "micropython/qemu/uart.c",
    "micropython/qemu/uart.h",
];

/// Writes the agent, runtime, reference, user-module and MicroPython sources below `dir` (`agent/...`, ...),
/// leaving files whose content is already right untouched so build tools see no change.
pub fn write_sources(dir: &Path) -> std::io::Result<()> {
    for f in AGENT_SOURCES
        .iter()
        .chain(RUNTIME_SOURCES)
        .chain(REFERENCE_SOURCES)
        .chain(REFERENCE_AN521_SOURCES)
        .chain(SMP_SOURCES)
        .chain(USERMOD_SOURCES)
        .chain(MICROPYTHON_SOURCES)
    {
        let path = dir.join(f.path);
        if std::fs::read(&path).is_ok_and(|old| old == f.text.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, f.text)?;
    }
    Ok(())
}

/// The kernel files the reference firmware compiles (relative to [`freertos_kernel_dir`]).
pub const KERNEL_SOURCES: &[&str] = &[
    "tasks.c",
    "list.c",
    "queue.c",
    "portable/GCC/ARM_CM3/port.c",
    "portable/MemMang/heap_4.c",
];

/// Kernel include folders for the Cortex-M3 port (relative to [`freertos_kernel_dir`]).
pub const KERNEL_INCLUDES: &[&str] = &["include", "portable/GCC/ARM_CM3"];

/// This crate's own directory: the C sources of the agent and the reference firmware sit below it.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_tree_is_present() {
        let k = freertos_kernel_dir();
        assert!(k.join("tasks.c").is_file(), "no tasks.c in {}", k.display());
        for f in KERNEL_SOURCES {
            assert!(k.join(f).is_file(), "{f} missing");
        }
    }

    #[test]
    fn embedded_sources_are_every_c_file_in_the_tree() {
        for sub in [
            "agent",
            "runtime",
            "reference",
            "smp/cm33_mps2",
            "usermod",
            "micropython/freertos",
            "micropython/qemu",
        ] {
            let listed: Vec<&str> = AGENT_SOURCES
                .iter()
                .chain(RUNTIME_SOURCES)
                .chain(REFERENCE_SOURCES)
                .chain(REFERENCE_AN521_SOURCES)
                .chain(SMP_SOURCES)
                .chain(USERMOD_SOURCES)
                .chain(MICROPYTHON_SOURCES)
                .map(|f| f.path)
                .collect();
            for e in std::fs::read_dir(crate_dir().join(sub)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    let p = format!("{sub}/{}", e.file_name().to_string_lossy());
                    assert!(listed.contains(&p.as_str()), "{p} is not embedded");
                }
            }
        }
    }

    #[test]
    fn write_sources_round_trips() {
        let d = tempfile::tempdir().unwrap();
        write_sources(d.path()).unwrap();
        write_sources(d.path()).unwrap();
        let main = std::fs::read_to_string(d.path().join("reference/main.c")).unwrap();
        assert!(main.contains("mpfr-ref "));
        let port = std::fs::read_to_string(d.path().join("micropython/qemu/Makefile")).unwrap();
        assert!(port.contains("micropython/freertos/micropython.mk"));
    }
}
