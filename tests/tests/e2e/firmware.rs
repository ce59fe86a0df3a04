//! End to end: build the reference firmware with `mpfr build`'s library, boot it in QEMU
//! mps2-an385, read the agent's RTT buffer from guest RAM and decode it; drive the console's
//! stress commands and check their RESULT lines.

use std::path::PathBuf;
use std::sync::OnceLock;

use mpfr::board::Catalog;
use mpfr::builder::build_reference;
use mpfr::config::Overrides;
use mpfr_firmware::protocol::{Decoder, EventKind, Frame, GilMode, TaskEntry, TaskTable};
use mpfr_tests::qemu::{DEADLINE, Qemu, symbol};
use mpfr_tests::wait_for;

const BOARD: &str = "qemu-mps2-an385";

/// Builds once per test process; returns the ELF and the config fingerprint.
fn firmware() -> &'static (PathBuf, String) {
    static FW: OnceLock<(PathBuf, String)> = OnceLock::new();
    FW.get_or_init(|| {
        let cat = Catalog::builtin().expect("catalog");
        let board = cat.get(BOARD).expect("board");
        // Per process: test binaries of several checkouts or runs may share the target dir.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("reference-firmware-{}", std::process::id()));
        let mut compiled = 0;
        let built = build_reference(board, &Overrides::default(), Some(&out), &mut |e| {
            if let mpfr::builder::BuildEvent::Compiling { .. } = e {
                compiled += 1;
            }
        })
        .unwrap_or_else(|e| panic!("build failed: {e:?}"));
        assert!(
            compiled >= 10,
            "progress reported {compiled} compiled files"
        );
        assert!(built.elf.is_file());
        assert!(built.text > 0);
        (built.elf, built.fingerprint)
    })
}

fn boot() -> Qemu {
    let (elf, fp) = firmware();
    let mut q = Qemu::boot(elf);
    let banner = q.wait_uart(0, |t| {
        t.contains("ref> ")
            .then(|| {
                t.lines()
                    .find(|l| l.starts_with("mpfr-ref "))
                    .map(str::to_string)
            })
            .flatten()
    });
    assert!(banner.contains(&format!("board={BOARD}")), "{banner}");
    assert!(banner.contains(&format!("fingerprint={fp}")), "{banner}");
    q
}

/// What the test wants to have seen from the agent.
#[derive(Default)]
struct Seen {
    hello: Option<mpfr_firmware::protocol::Hello>,
    table: Option<Vec<TaskEntry>>,
    service: Option<mpfr_firmware::protocol::Service>,
    system: Option<mpfr_firmware::protocol::System>,
}

impl Seen {
    fn complete(&self) -> bool {
        self.hello.is_some()
            && self.table.is_some()
            && self.service.as_ref().is_some_and(|s| {
                s.isr_schedules > 0 && s.slots.iter().any(|sl| sl.slot == 0 && sl.dispatches > 0)
            })
            && self.system.is_some()
    }
}

/// Reads the telemetry up channel as the agent filled it (the test never consumes, so the
/// buffer holds the first frames since boot) and decodes it.
fn read_telemetry(q: &mut Qemu, cb: u32) -> (Vec<Frame>, mpfr_firmware::protocol::DecoderStats) {
    let block = q.read_mem(cb, 24 + 3 * 24);
    assert_eq!(block.len(), 96);
    let word = |off: usize| u32::from_le_bytes(block[off..off + 4].try_into().expect("4 bytes"));
    if &block[..10] != b"SEGGER RTT" {
        return (Vec::new(), Default::default());
    }
    assert_eq!((word(16), word(20)), (2, 1), "up/down channel counts");
    let up1 = 24 + 24;
    let (buf, size, wr, rd) = (word(up1 + 4), word(up1 + 8), word(up1 + 12), word(up1 + 16));
    assert!(size > 0 && wr < size && rd < size, "bad descriptor");
    let ring = q.read_mem(buf, size);
    let mut bytes = Vec::new();
    let mut i = rd;
    while i != wr {
        bytes.push(ring[i as usize]);
        i = (i + 1) % size;
    }
    let mut d = Decoder::new();
    let frames = d.feed(&bytes);
    (frames, d.stats())
}

/// Polls the telemetry buffer until hello, a whole task table, service and system frames are in.
fn collect(q: &mut Qemu, cb: u32) -> (Seen, mpfr_firmware::protocol::DecoderStats) {
    wait_for(
        "hello, a whole task table, service and system frames",
        DEADLINE,
        || {
            let (frames, stats) = read_telemetry(q, cb);
            let mut tt = TaskTable::default();
            let mut seen = Seen::default();
            for f in frames {
                match f {
                    Frame::Hello(h) => seen.hello = Some(h),
                    Frame::Tasks(t) => {
                        if let Some(all) = tt.add(&t) {
                            seen.table = Some(all);
                        }
                    }
                    Frame::Service(s) => seen.service = Some(s),
                    Frame::System(s) => seen.system = Some(s),
                    Frame::Event(_) => {}
                }
            }
            if seen.complete() {
                Ok((seen, stats))
            } else {
                Err(format!("{stats:?}"))
            }
        },
    )
}

#[test]
fn agent_reports_hello_tasks_and_service_over_rtt() {
    let (elf, fp) = firmware();
    let cb = symbol(elf, "_SEGGER_RTT").expect("the ELF exports _SEGGER_RTT");
    assert!(cb >= 0x2000_0000, "control block in RAM: {cb:#x}");
    let mut q = boot();
    let (seen, stats) = collect(&mut q, cb);
    assert_eq!(
        stats.bad_crc + stats.malformed + stats.resyncs,
        0,
        "{stats:?}"
    );

    let hello = seen.hello.expect("hello");
    assert_eq!(hello.board, BOARD);
    assert_eq!(hello.firmware, "mpfr-ref");
    assert_eq!(format!("{:#010x}", hello.fingerprint), *fp);
    assert_eq!((hello.cores, hello.gil), (1, GilMode::On));
    assert_eq!((hello.tick_hz, hello.runtime_hz), (1000, 25_000_000));
    assert_eq!(hello.sample_hz, 10);

    let table = seen.table.expect("task table");
    let find = |n: &str| {
        table
            .iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("no task {n} in {table:#?}"))
    };
    for (name, prio) in [("wrk-lo", 1), ("wrk-mid", 2), ("wrk-hi", 4)] {
        let t = find(name);
        assert_eq!(t.base_priority, prio, "{name}");
        assert_ne!(t.py_thread, 0, "{name} is a registry thread");
        // FreeRTOS records the stack end aligned down to 8 bytes: 1024 shows as 1020.
        assert!(t.stack_size >= 1016, "{name}: stack {}", t.stack_size);
        assert!(t.stack_free_min > 0 && t.stack_free_min < t.stack_size);
    }
    let svc = find("svc");
    assert_eq!(
        svc.base_priority, 3,
        "service task priority from the config"
    );
    assert_eq!(svc.py_thread, 0);
    let idle = find("IDLE");
    assert!(idle.runtime > 0, "run-time stats count");

    // The reference firmware's agent has no task: the service task polls it from slot 4.
    assert!(
        table.iter().all(|t| t.name != "mpfr"),
        "no agent task expected"
    );
    let service = seen.service.expect("service");
    assert!(service.wakeups > 0 && service.notifications > 0);
    assert!(
        service
            .slots
            .iter()
            .any(|sl| sl.slot == 4 && sl.dispatches > 0),
        "agent poll slot: {:?}",
        service.slots
    );
    let system = seen.system.expect("system");
    assert_eq!(system.heap_total, 65536);
    assert!(system.heap_free > 0 && system.heap_free_min <= system.heap_free);
    assert_eq!(system.threads_live, 3);
    assert_eq!(system.cores.len(), 1);
    assert_eq!(system.cores[0].idle_runtime, idle.runtime);
}

#[test]
fn console_drives_native_stress_commands() {
    let mut q = boot();
    for (cmd, name) in [
        ("spawn 6 10", "spawn"),
        ("churn 25", "churn"),
        ("flood 300", "flood"),
        ("heap 8 512", "heap"),
        ("load 20", "load"),
        ("load 0", "load"),
    ] {
        let line = q.command_result(cmd, name);
        assert!(
            line.starts_with(&format!("RESULT {name} PASS")),
            "{cmd}: {line}"
        );
    }
    let churn = q.command_result("churn 10", "churn");
    assert!(churn.contains("reaped=10"), "{churn}");
    let bad = q.command_result("load 200", "load");
    assert!(bad.starts_with("RESULT load FAIL"), "{bad}");

    // The registry and service counters agree with what the commands did.
    let from = q.uart().len();
    q.send("stats");
    let threads = q.wait_uart(from, |t| {
        t.lines()
            .find(|l| l.starts_with("threads ") && t.contains("\nheap "))
            .map(str::to_string)
    });
    assert!(threads.contains("live=3"), "{threads}");
    assert!(threads.contains("finished=0"), "{threads}");
    assert!(threads.contains("created=44"), "{threads}");
    assert!(threads.contains("reaped=41"), "{threads}");
}

/// Host side of the RTT block over the gdbstub: drains up 1, writes down 0.
struct Rtt {
    gdb: mpfr_tests::gdb::Gdb,
    cb: u32,
}

impl Rtt {
    fn word(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
    }

    /// Halts, takes what the agent wrote to up 1, advances RdOff, continues.
    fn drain(&mut self) -> Vec<u8> {
        self.gdb.halt();
        let desc = self.cb + 24 + 24;
        let d = self.gdb.read(desc, 24);
        let (buf, size, wr, rd) = (
            Self::word(&d, 4),
            Self::word(&d, 8),
            Self::word(&d, 12),
            Self::word(&d, 16),
        );
        let mut out = Vec::new();
        if size > 0 && wr < size && rd < size && wr != rd {
            if wr > rd {
                out = self.gdb.read(buf + rd, wr - rd);
            } else {
                out = self.gdb.read(buf + rd, size - rd);
                if wr > 0 {
                    out.extend(self.gdb.read(buf, wr));
                }
            }
            self.gdb.write(desc + 16, &wr.to_le_bytes());
        }
        self.gdb.cont();
        out
    }

    /// Writes a command line into down 0.
    fn command(&mut self, line: &str) {
        self.gdb.halt();
        let desc = self.cb + 24 + 2 * 24;
        let d = self.gdb.read(desc, 24);
        let (buf, size, mut wr) = (Self::word(&d, 4), Self::word(&d, 8), Self::word(&d, 12));
        assert!(size as usize > line.len() + 1, "down buffer too small");
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            self.gdb.write(buf + wr, &[b]);
            wr = (wr + 1) % size;
        }
        self.gdb.write(desc + 12, &wr.to_le_bytes());
        self.gdb.cont();
    }
}

#[test]
fn agent_streams_without_gaps_and_obeys_down_channel_commands() {
    let (elf, _) = firmware();
    let cb = symbol(elf, "_SEGGER_RTT").expect("_SEGGER_RTT");
    let mut q = boot();
    let gdb = mpfr_tests::gdb::Gdb::connect(&q.gdb_socket(), DEADLINE);
    let mut rtt = Rtt { gdb, cb };
    let mut dec = Decoder::new();
    let mut tables = TaskTable::default();

    // Wait for the block to be initialised (the id is written last).
    wait_for("the RTT block to be initialised", DEADLINE, || {
        q.read_mem(cb, 10) == b"SEGGER RTT"
    });

    // Consume continuously: several whole samples, no sequence gaps.
    let mut samples = 0;
    let mut uptimes = Vec::new();
    wait_for("5 whole samples", DEADLINE, || {
        for f in dec.feed(&rtt.drain()) {
            match f {
                Frame::Tasks(t) => samples += usize::from(tables.add(&t).is_some()),
                Frame::System(s) => uptimes.push(s.uptime_ms),
                _ => {}
            }
        }
        if samples >= 5 && uptimes.len() >= 5 {
            Ok(())
        } else {
            Err(format!("{samples} task tables, uptimes {uptimes:?}"))
        }
    });
    assert!(uptimes.windows(2).all(|w| w[0] < w[1]), "{uptimes:?}");
    let s = dec.stats();
    assert_eq!((s.dropped, s.bad_crc, s.resyncs), (0, 0, 0), "{s:?}");

    // Thread events: two threads created, finished and reaped by the console's spawn.
    let line = q.command_result("spawn 2 10", "spawn");
    assert!(line.starts_with("RESULT spawn PASS"), "{line}");
    let mut events = Vec::new();
    wait_for("two threads reaped", DEADLINE, || {
        for f in dec.feed(&rtt.drain()) {
            if let Frame::Event(e) = f {
                events.push(e);
            }
        }
        let reaped = events
            .iter()
            .filter(|e: &&mpfr_firmware::protocol::Event| e.kind == EventKind::ThreadReaped)
            .count();
        if reaped >= 2 {
            Ok(())
        } else {
            Err(format!("{events:?}"))
        }
    });
    for kind in [EventKind::ThreadCreated, EventKind::ThreadFinished] {
        let of_kind: Vec<_> = events.iter().filter(|e| e.kind == kind).collect();
        assert_eq!(of_kind.len(), 2, "{kind:?}: {events:?}");
        assert!(
            of_kind
                .iter()
                .all(|e| e.text.starts_with("spawn-") && e.a > 0)
        );
    }
    let created: Vec<u32> = events
        .iter()
        .filter(|e| e.kind == EventKind::ThreadCreated)
        .map(|e| e.a)
        .collect();
    for e in events.iter().filter(|e| e.kind == EventKind::ThreadReaped) {
        assert!(
            created.contains(&e.a),
            "reaped task {} was not created",
            e.a
        );
        assert!(e.b >= 1024, "bytes freed: {}", e.b);
    }

    // `rate 20` answers with a hello carrying the new rate.
    let wait_hello = |rtt: &mut Rtt, dec: &mut Decoder, hz: u16| -> Vec<Frame> {
        let mut seen = Vec::new();
        wait_for(&format!("a hello with rate {hz}"), DEADLINE, || {
            for f in dec.feed(&rtt.drain()) {
                if matches!(&f, Frame::Hello(h) if h.sample_hz == hz) {
                    return Ok(std::mem::take(&mut seen));
                }
                seen.push(f);
            }
            Err(format!("{} other frames", seen.len()))
        })
    };
    rtt.command("rate 20");
    wait_hello(&mut rtt, &mut dec, 20);
    // `rate 0` stops sampling: between its hello and the next periodic hello, no samples.
    rtt.command("rate 0");
    wait_hello(&mut rtt, &mut dec, 0);
    let between = wait_hello(&mut rtt, &mut dec, 0);
    assert!(
        !between
            .iter()
            .any(|f| matches!(f, Frame::Tasks(_) | Frame::System(_))),
        "sampling continued at rate 0: {} frames",
        between.len()
    );
    assert_eq!(dec.stats().dropped, 0);
}

#[test]
fn config_flags_reach_the_running_firmware() {
    let cat = Catalog::builtin().expect("catalog");
    let board = cat.get(BOARD).expect("board");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let out = tmp.path().join("fw");
    let ov = Overrides {
        heap: Some(mpfr::util::size::Size(32 * 1024)),
        ..Default::default()
    };
    let built = build_reference(board, &ov, Some(&out), &mut |_| {}).expect("build");
    let (_, default_fp) = firmware();
    assert_ne!(
        &built.fingerprint, default_fp,
        "another config, another fingerprint"
    );
    let mut q = Qemu::boot(&built.elf);
    let banner = q.wait_uart(0, |t| {
        t.contains("ref> ")
            .then(|| {
                t.lines()
                    .find(|l| l.starts_with("mpfr-ref "))
                    .map(str::to_string)
            })
            .flatten()
    });
    // FreeRTOSConfig.h only supplies defaults: the rendered configTOTAL_HEAP_SIZE wins.
    assert!(banner.contains("heap=32768"), "{banner}");
    assert!(
        banner.contains(&format!("fingerprint={}", built.fingerprint)),
        "{banner}"
    );
    let heap = q.command_result("heap 4 1024", "heap");
    assert!(heap.starts_with("RESULT heap PASS"), "{heap}");
}

/// The agent's other mode, its own task (the default outside the reference firmware), built with
/// `MPFR_CFLAGS` through the `mpfr` binary: same frames, plus the `mpfr` task in the table.
#[test]
fn agent_with_its_own_task_reports_the_same() {
    let out = tempfile::tempdir().expect("temp dir");
    let st = std::process::Command::new(mpfr_tests::mpfr_bin())
        .args(["build", "--board", BOARD, "--quiet", "--out"])
        .arg(out.path())
        .env("MPFR_CFLAGS", "-DMPFR_AGENT_OWN_TASK=1")
        .output()
        .expect("run mpfr build");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let elf = out.path().join("firmware.elf");
    let cb = symbol(&elf, "_SEGGER_RTT").expect("_SEGGER_RTT");
    let mut q = Qemu::boot(&elf);
    let (seen, stats) = collect(&mut q, cb);
    assert_eq!(
        stats.bad_crc + stats.malformed + stats.resyncs,
        0,
        "{stats:?}"
    );
    assert_eq!(seen.hello.expect("hello").sample_hz, 10);
    let table = seen.table.expect("task table");
    let agent = table
        .iter()
        .find(|t| t.name == "mpfr")
        .unwrap_or_else(|| panic!("no agent task in {table:#?}"));
    assert!(agent.stack_size >= 1016 && agent.stack_free_min > 0);
    assert!(table.iter().any(|t| t.name == "wrk-hi"));
    let service = seen.service.expect("service");
    assert!(
        service.slots.iter().all(|sl| sl.slot != 4),
        "nothing polls the agent from the service task: {:?}",
        service.slots
    );
}

/// A heap without a minimum-ever-free figure (heap_1/2/3 or a port's own): built with
/// `MPFR_AGENT_HEAP_MIN_FREE=0`, the agent reports that figure as unknown and the others still.
#[test]
fn heap_without_minimum_ever_free_is_reported_unknown() {
    let out = tempfile::tempdir().expect("temp dir");
    let st = std::process::Command::new(mpfr_tests::mpfr_bin())
        .args(["build", "--board", BOARD, "--quiet", "--out"])
        .arg(out.path())
        .env("MPFR_CFLAGS", "-DMPFR_AGENT_HEAP_MIN_FREE=0")
        .output()
        .expect("run mpfr build");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let elf = out.path().join("firmware.elf");
    let cb = symbol(&elf, "_SEGGER_RTT").expect("_SEGGER_RTT");
    let mut q = Qemu::boot(&elf);
    let (seen, _) = collect(&mut q, cb);
    let sys = seen.system.expect("system frame");
    assert_eq!(
        sys.heap_free_min,
        mpfr_firmware::protocol::UNKNOWN,
        "{sys:?}"
    );
    assert_eq!(sys.heap_total, 65536, "{sys:?}");
    assert!(
        sys.heap_free > 0 && sys.heap_free < sys.heap_total,
        "{sys:?}"
    );
}
