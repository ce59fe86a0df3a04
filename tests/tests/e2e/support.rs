//! Shared helpers of the end-to-end tests that need QEMU: a tiny mps2-an385 image built with
//! arm-none-eabi-gcc (a counter in RAM and, optionally, a minimal RTT block), QEMU with its
//! gdbstub on a unix socket, and waiting on conditions.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use mpfr::device::memory::Memory;

pub const RAM: std::ops::Range<u64> = 0x2000_0000..0x2040_0000;

const TINY_C: &str = r#"
#include <stdint.h>
extern uint32_t _estack;
void reset(void);
__attribute__((section(".vectors"), used)) const void *vectors[2] = { &_estack, (void *)reset };
volatile uint32_t mpfr_counter;
volatile uint32_t mpfr_mailbox;
typedef struct { const char *name; char *buf; uint32_t size; volatile uint32_t wr; volatile uint32_t rd; uint32_t flags; } desc_t;
typedef struct { char id[16]; int32_t up, down; desc_t d[2]; } cb_t;
cb_t _SEGGER_RTT;
static char up0[64];
static char dn0[16];
void reset(void) {
    _SEGGER_RTT.up = 1;
    _SEGGER_RTT.down = 1;
    _SEGGER_RTT.d[0].name = "Terminal"; _SEGGER_RTT.d[0].buf = up0; _SEGGER_RTT.d[0].size = sizeof up0;
    _SEGGER_RTT.d[1].name = "Terminal"; _SEGGER_RTT.d[1].buf = dn0; _SEGGER_RTT.d[1].size = sizeof dn0;
#ifndef NO_ID
    const char *m = "SEGGER RTT";
    for (int i = 0; i < 11; i++) _SEGGER_RTT.id[i] = m[i];
#endif
    uint32_t seq = 0;
    for (;;) {
        mpfr_counter++;
        if ((mpfr_counter & 0x3fff) == 0) {
            desc_t *u = &_SEGGER_RTT.d[0];
            uint32_t next = (u->wr + 1) % u->size;
            if (next != u->rd) { u->buf[u->wr] = (char)('a' + seq % 26); seq++; u->wr = next; }
        }
        desc_t *d = &_SEGGER_RTT.d[1];
        if (d->rd != d->wr) { mpfr_mailbox = (uint8_t)d->buf[d->rd]; d->rd = (d->rd + 1) % d->size; }
    }
}
"#;

const LINK_LD: &str = r#"
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 4M }
_estack = ORIGIN(RAM) + LENGTH(RAM);
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
"#;

pub fn build_tiny(dir: &Path) -> PathBuf {
    build_tiny_with(dir, true)
}

/// `with_rtt = false` leaves out `_SEGGER_RTT` (an image without the agent).
pub fn build_tiny_with(dir: &Path, with_rtt: bool) -> PathBuf {
    std::fs::write(dir.join("tiny.c"), TINY_C).expect("write c");
    std::fs::write(dir.join("link.ld"), LINK_LD).expect("write ld");
    let elf = dir.join("tiny.elf");
    let st = Command::new("arm-none-eabi-gcc")
        .args([
            "-mcpu=cortex-m3",
            "-mthumb",
            "-O1",
            "-nostdlib",
            "-ffreestanding",
        ])
        .args(if with_rtt {
            &[][..]
        } else {
            &["-D_SEGGER_RTT=mpfr_no_agent", "-DNO_ID"][..]
        })
        .arg("-T")
        .arg(dir.join("link.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(dir.join("tiny.c"))
        .status()
        .expect("run arm-none-eabi-gcc (install gcc-arm-none-eabi)");
    assert!(st.success(), "arm-none-eabi-gcc failed");
    elf
}

/// A QEMU process, killed and reaped on drop (also when the test panics).
pub struct Qemu(pub Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_qemu(elf: &Path, sock: &Path) -> Qemu {
    start_qemu_with(elf, sock, &[])
}

/// QEMU with extra arguments (e.g. a QMP socket).
pub fn start_qemu_with(elf: &Path, sock: &Path, extra: &[String]) -> Qemu {
    let child = Command::new("qemu-system-arm")
        .args([
            "-M",
            "mps2-an385",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
        ])
        .arg("-kernel")
        .arg(elf)
        .arg("-chardev")
        .arg(format!(
            "socket,id=gdb0,path={},server=on,wait=off",
            sock.display()
        ))
        .args(["-gdb", "chardev:gdb0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    let q = Qemu(child);
    mpfr_tests::wait_for("QEMU's gdb socket", mpfr_tests::PATIENCE, || {
        sock.exists()
            .then_some(())
            .ok_or_else(|| sock.display().to_string())
    });
    q
}

pub fn symbol(elf: &Path, name: &str) -> u64 {
    let out = Command::new("arm-none-eabi-nm")
        .arg(elf)
        .output()
        .expect("nm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} not in {text}"));
    u64::from_str_radix(&line[..8], 16).expect("hex address")
}

pub fn read32(m: &mut dyn Memory, addr: u64) -> u32 {
    mpfr::device::memory::read_u32(m, addr).expect("read")
}

/// True when `qemu-system-arm` and `arm-none-eabi-gcc` run; under CI their absence fails the test
/// instead of skipping it.
pub fn qemu_tools_present() -> bool {
    let ok = |p: &str| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let present = ok("qemu-system-arm") && ok("arm-none-eabi-gcc");
    assert!(
        present || std::env::var_os("CI").is_none(),
        "qemu-system-arm and arm-none-eabi-gcc are missing (run scripts/setup.sh)"
    );
    present
}

/// Fails the test with both outputs when the `what` command failed.
pub fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Collects what a reader yields, on a thread of its own, until it ends.
pub fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    seen
}

/// What [`collect`] has gathered so far, as text.
pub fn text(seen: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned()
}
