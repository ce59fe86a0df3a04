//! The GDB remote client and the RTT reader against a real QEMU mps2-an385 running a tiny test
//! image built here with arm-none-eabi-gcc (a counter in RAM and a minimal RTT block).

#![allow(clippy::single_range_in_vec_init)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mpfr::rtt::{ElfInfo, Locator, Rtt, Status, elf_info};
use mpfr::target::Memory;
use mpfr::target::gdb::GdbClient;

const RAM: std::ops::Range<u64> = 0x2000_0000..0x2040_0000;

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
    const char *m = "SEGGER RTT";
    for (int i = 0; i < 11; i++) _SEGGER_RTT.id[i] = m[i];
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

fn build_tiny(dir: &Path) -> PathBuf {
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
            "-T",
        ])
        .arg(dir.join("link.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(dir.join("tiny.c"))
        .status()
        .expect("run arm-none-eabi-gcc (install gcc-arm-none-eabi)");
    assert!(st.success(), "arm-none-eabi-gcc failed");
    elf
}

struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_qemu(elf: &Path, sock: &Path) -> Qemu {
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
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    let q = Qemu(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "QEMU never created {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    q
}

fn symbol(elf: &Path, name: &str) -> u64 {
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

fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read32(m: &mut dyn Memory, addr: u64) -> u32 {
    mpfr::target::read_u32(m, addr).expect("read")
}

#[test]
fn gdb_client_reads_and_writes_ram_of_a_running_guest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = build_tiny(dir.path());
    let sock = dir.path().join("gdb.sock");
    let _q = start_qemu(&elf, &sock);
    let counter = symbol(&elf, "mpfr_counter");
    let mailbox = symbol(&elf, "mpfr_mailbox");

    let mut g = GdbClient::connect(&sock, vec![RAM]).expect("connect");
    // The guest runs between reads: the counter moves.
    let a = read32(&mut g, counter);
    let b = wait_until("the counter to move", || {
        let b = read32(&mut g, counter);
        (b != a).then_some(b)
    });
    assert_ne!(a, b);

    // A large read crosses several `m` packets and matches word-wise reads.
    g.hold().expect("hold");
    let mut big = vec![0u8; 5000];
    g.read(0, &mut big).expect("read flash");
    let w = read32(&mut g, 4);
    g.release().expect("release");
    assert_eq!(u32::from_le_bytes([big[4], big[5], big[6], big[7]]), w);
    assert_eq!(w & 1, 1, "reset vector has the thumb bit");

    // Writes land.
    g.write(mailbox, &0xdead_beefu32.to_le_bytes())
        .expect("write");
    assert_eq!(read32(&mut g, mailbox), 0xdead_beef);

    // Reading outside the memory map is an error, not a hang or a panic.
    let mut x = [0u8; 4];
    let e = g.read(0xf000_0000, &mut x).expect_err("unmapped");
    assert!(e.to_string().contains("0xf0000000"), "{e}");

    // After detaching, the guest keeps running (QEMU resumed it) and a new client can attach.
    drop(g);
    let mut g2 = GdbClient::connect(&sock, vec![RAM]).expect("reconnect");
    let c = read32(&mut g2, counter);
    wait_until("the counter to move after re-attach", || {
        (read32(&mut g2, counter) != c).then_some(())
    });
}

#[test]
fn rtt_reads_up_and_writes_down_through_qemu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = build_tiny(dir.path());
    let sock = dir.path().join("gdb.sock");
    let _q = start_qemu(&elf, &sock);
    let mailbox = symbol(&elf, "mpfr_mailbox");
    let info = elf_info(&elf).expect("elf");
    assert_eq!(info.symbol, Some(symbol(&elf, "_SEGGER_RTT")));

    let mut g = GdbClient::connect(&sock, vec![RAM]).expect("connect");
    let mut rtt = Rtt::new(Locator {
        elf: Some(info.clone()),
        scan: vec![],
    });
    wait_until("the block to be set up", || {
        matches!(rtt.attach(&mut g).expect("attach"), Status::Attached { .. }).then_some(())
    });
    assert_eq!(
        rtt.block().map(|b| b.up[0].name.clone()),
        Some("Terminal".into())
    );
    let mut got = Vec::new();
    wait_until("100 bytes on up 0", || {
        for (_, d) in rtt.poll(&mut g).expect("poll").data {
            got.extend(d);
        }
        (got.len() >= 100).then_some(())
    });
    // The target writes a-z in order: every byte follows the one before (no loss, no dupes).
    for w in got.windows(2) {
        assert_eq!(
            (w[0] - b'a' + 1) % 26,
            w[1] - b'a',
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    assert_eq!(rtt.write_down(&mut g, 0, b"Z").expect("write down"), 1);
    wait_until("the target to consume the down byte", || {
        (read32(&mut g, mailbox) == u32::from(b'Z')).then_some(())
    });

    // Without the symbol, the RAM scan finds the same block.
    let mut scan = Rtt::new(Locator {
        elf: Some(ElfInfo {
            symbol: None,
            ..info.clone()
        }),
        scan: vec![RAM],
    });
    scan.attach(&mut g).expect("scan attach");
    assert_eq!(
        scan.status(),
        &Status::Attached {
            addr: info.symbol.expect("symbol")
        }
    );
}
