//! The GDB remote client and the RTT reader against a real QEMU mps2-an385 running a tiny test
//! image built here with arm-none-eabi-gcc (a counter in RAM and a minimal RTT block).

use mpfr::device::memory::Memory;
use mpfr::device::memory::gdb::GdbClient;
use mpfr::telemetry::rtt::{ElfInfo, Locator, Rtt, Status, elf_info};
use mpfr_tests::{PATIENCE, wait_for};

use crate::support::{RAM, build_tiny, read32, start_qemu, symbol};

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
    let b = wait_for("the counter to move", PATIENCE, || {
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
    wait_for("the counter to move after re-attach", PATIENCE, || {
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
    wait_for("the block to be set up", PATIENCE, || {
        matches!(rtt.attach(&mut g).expect("attach"), Status::Attached { .. }).then_some(())
    });
    assert_eq!(
        rtt.block().map(|b| b.up[0].name.clone()),
        Some("Terminal".into())
    );
    let mut got = Vec::new();
    wait_for("100 bytes on up 0", PATIENCE, || {
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
    wait_for("the target to consume the down byte", PATIENCE, || {
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
