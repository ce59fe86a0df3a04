//! Golden vectors: the agent's C encoder, compiled for the host, must produce frames the Rust
//! decoder reads back exactly (and the same bytes the Rust encoder produces).

use std::path::PathBuf;
use std::process::Command;

use mpfr_firmware::protocol::*;

fn agent_dir() -> PathBuf {
    mpfr_firmware::crate_dir().join("agent")
}

/// Builds `agent/host/golden.c` + the encoder (and its whole-frame helpers in `host/frames.c`)
/// with the host C compiler and returns its output.
fn c_stream() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("golden");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(agent_dir().join("host/golden.c"))
        .arg(agent_dir().join("host/frames.c"))
        .arg(agent_dir().join("mpfr_proto.c"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the host C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "host build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run golden");
    assert!(
        run.status.success(),
        "golden failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    run.stdout
}

fn task(i: u32) -> TaskEntry {
    TaskEntry {
        name: format!("t{i:02}"),
        id: i + 1,
        py_thread: i * 3,
        state: [
            TaskState::Running,
            TaskState::Ready,
            TaskState::Blocked,
            TaskState::Suspended,
            TaskState::Deleted,
            TaskState::Invalid,
        ][(i % 6) as usize],
        base_priority: (i % 8) as u8,
        priority: (i % 8 + 1) as u8,
        core: if i.is_multiple_of(5) {
            NO_CORE
        } else {
            (i % 2) as u8
        },
        affinity: if i.is_multiple_of(3) {
            UNKNOWN
        } else {
            1 << (i % 2)
        },
        runtime: i.wrapping_mul(1_000_003),
        stack_size: 1024 + i * 256,
        stack_free_min: 64 + i,
    }
}

fn expected() -> Vec<(u16, Frame)> {
    let mut v = vec![
        (
            0,
            Frame::Hello(Hello {
                protocol: 1,
                fingerprint: 0x28da_8d97,
                cores: 2,
                gil: GilMode::Off,
                tick_hz: 1000,
                runtime_hz: 25_000_000,
                sample_hz: 10,
                board: "rpi-pico-w".into(),
                firmware: "mpfr-ref".into(),
            }),
        ),
        (
            1,
            Frame::Tasks(Tasks {
                sample: 42,
                total: 18,
                first: 0,
                tasks: (0..16).map(task).collect(),
            }),
        ),
        (
            2,
            Frame::Tasks(Tasks {
                sample: 42,
                total: 18,
                first: 16,
                tasks: (16..18).map(task).collect(),
            }),
        ),
        (
            3,
            Frame::Service(Service {
                notifications: 11,
                wakeups: 22,
                suspended_skips: 33,
                isr_schedules: 44,
                task_schedules: 55,
                suspend_depth: 2,
                slots: (0..3u32)
                    .map(|i| SlotStats {
                        slot: i as u8,
                        pending: (i % 2) as u8,
                        dispatches: 100 * i + 1,
                        latency_min: i,
                        latency_avg: i * 10,
                        latency_max: i * 100,
                        latency_last: i * 5,
                    })
                    .collect(),
            }),
        ),
        (
            4,
            Frame::System(System {
                uptime_ms: 123_456,
                ticks: 123_456,
                runtime_total: 0xDEAD_BEEF,
                heap_total: 65536,
                heap_free: 40000,
                heap_free_min: 30000,
                gc_total: UNKNOWN,
                gc_free: UNKNOWN,
                threads_live: 5,
                threads_finished: 1,
                agent_overflows: 7,
                heap_allocs: 42,
                cores: vec![
                    CoreStats {
                        idle_runtime: 1000,
                        running: 3,
                    },
                    CoreStats {
                        idle_runtime: 2000,
                        running: 4,
                    },
                ],
            }),
        ),
    ];
    let long = "a log line that is much longer than the sixty-four bytes an event may carry";
    let texts = [
        "worker-1",
        "worker-1",
        "worker-1",
        "wrk-hi",
        "",
        "tasks.c",
        &long[..64],
    ];
    let kinds = [
        EventKind::ThreadCreated,
        EventKind::ThreadFinished,
        EventKind::ThreadReaped,
        EventKind::StackOverflow,
        EventKind::MallocFailed,
        EventKind::Assert,
        EventKind::Log,
    ];
    for k in 1..=7u32 {
        v.push((
            4 + k as u16,
            Frame::Event(Event {
                kind: kinds[k as usize - 1],
                tick: 1000 * k,
                a: k * 7,
                b: k * 9,
                text: texts[k as usize - 1].into(),
            }),
        ));
    }
    let wrap = Event {
        kind: EventKind::Log,
        tick: 1,
        a: 2,
        b: 3,
        text: "wrap".into(),
    };
    v.push((65535, Frame::Event(wrap.clone())));
    v.push((0, Frame::Event(wrap)));
    v
}

#[test]
fn c_encoder_frames_decode_to_the_expected_values() {
    let bytes = c_stream();
    let want = expected();
    let mut d = Decoder::new();
    let got = d.feed(&bytes);
    let want_frames: Vec<Frame> = want.iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(got, want_frames);
    let s = d.stats();
    assert_eq!(s.frames, want.len() as u64);
    assert_eq!((s.bad_crc, s.malformed, s.resyncs), (0, 0, 0));
    // Sequence 11 then 65535: 65523 frames missing; then 65535 -> 0 wraps without a gap.
    assert_eq!(s.dropped, 65535 - 11 - 1);
}

#[test]
fn c_and_rust_encoders_agree_byte_for_byte() {
    let c = c_stream();
    let mut rust = Vec::new();
    for (seq, f) in expected() {
        rust.extend(encode(seq, &f).expect("encodes"));
    }
    assert_eq!(c.len(), rust.len(), "stream lengths differ");
    if let Some(i) = c.iter().zip(&rust).position(|(a, b)| a != b) {
        panic!(
            "first difference at byte {i}: C {:#04x}, Rust {:#04x}",
            c[i], rust[i]
        );
    }
}

#[test]
fn c_stream_survives_every_split_and_noise() {
    let bytes = c_stream();
    let n = expected().len();
    for cut in (0..=bytes.len()).step_by(7) {
        let mut d = Decoder::new();
        let mut noisy = vec![0x5A, 0xA5, 0x00];
        noisy.extend(&bytes[..cut]);
        let mut got = d.feed(&noisy);
        got.extend(d.feed(&bytes[cut..]));
        assert_eq!(got.len(), n, "cut {cut}");
    }
}
