//! One definition of every encoding: the C agent's header (`agent/mpfr_proto.h`) and the Rust
//! decoder must agree on each wire constant. `agent/host/constants.c`, compiled for the host,
//! prints the C values; each is checked against the Rust one, and every C constant must be known
//! here (a new one fails until it is paired with its Rust counterpart).

use std::collections::BTreeMap;
use std::process::Command;

use mpfr_firmware::protocol::{self, EventKind, FrameType, GilMode, TaskState, wire};

fn c_constants() -> BTreeMap<String, u64> {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("constants");
    let agent = mpfr_firmware::crate_dir().join("agent");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(agent.join("host/constants.c"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the host C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "host build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run constants");
    assert!(run.status.success());
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| {
            let (name, v) = l.split_once(' ').expect("NAME VALUE");
            (name.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

/// Every C constant's Rust counterpart.
fn rust_constants() -> BTreeMap<&'static str, u64> {
    let n = |v: usize| v as u64;
    let mut m = BTreeMap::from([
        ("MPFR_PROTO_VERSION", u64::from(protocol::PROTOCOL_VERSION)),
        ("MPFR_PROTO_SYNC0", u64::from(protocol::SYNC[0])),
        ("MPFR_PROTO_SYNC1", u64::from(protocol::SYNC[1])),
        ("MPFR_PROTO_HEADER", n(protocol::HEADER_LEN)),
        ("MPFR_PROTO_TRAILER", n(protocol::TRAILER_LEN)),
        ("MPFR_PROTO_MAX_PAYLOAD", n(protocol::MAX_PAYLOAD)),
        ("MPFR_PROTO_MAX_NAME", n(protocol::MAX_NAME)),
        ("MPFR_PROTO_MAX_TEXT", n(protocol::MAX_TEXT)),
        (
            "MPFR_PROTO_MAX_TASKS_PER_FRAME",
            n(protocol::MAX_TASKS_PER_FRAME),
        ),
        ("MPFR_PROTO_MAX_SLOTS", n(protocol::MAX_SLOTS)),
        ("MPFR_PROTO_MAX_CORES", n(protocol::MAX_CORES)),
        ("MPFR_PROTO_UNKNOWN", u64::from(protocol::UNKNOWN)),
        ("MPFR_PROTO_NO_CORE", u64::from(protocol::NO_CORE)),
        ("MPFR_PROTO_UNKNOWN16", u64::from(protocol::UNKNOWN16)),
        ("MPFR_FRAME_HELLO", FrameType::Hello as u64),
        ("MPFR_FRAME_TASKS", FrameType::Tasks as u64),
        ("MPFR_FRAME_SERVICE", FrameType::Service as u64),
        ("MPFR_FRAME_SYSTEM", FrameType::System as u64),
        ("MPFR_FRAME_EVENT", FrameType::Event as u64),
    ]);
    for (name, g) in [
        ("MPFR_GIL_OFF", GilMode::Off),
        ("MPFR_GIL_ON", GilMode::On),
        ("MPFR_GIL_UNKNOWN", GilMode::Unknown),
    ] {
        m.insert(name, u64::from(wire::gil(g)));
    }
    for (name, s) in [
        ("MPFR_TASK_RUNNING", TaskState::Running),
        ("MPFR_TASK_READY", TaskState::Ready),
        ("MPFR_TASK_BLOCKED", TaskState::Blocked),
        ("MPFR_TASK_SUSPENDED", TaskState::Suspended),
        ("MPFR_TASK_DELETED", TaskState::Deleted),
        ("MPFR_TASK_INVALID", TaskState::Invalid),
        ("MPFR_TASK_FINISHED", TaskState::Finished),
    ] {
        m.insert(name, u64::from(wire::task_state(s)));
    }
    for (name, k) in [
        ("MPFR_EV_THREAD_CREATED", EventKind::ThreadCreated),
        ("MPFR_EV_THREAD_FINISHED", EventKind::ThreadFinished),
        ("MPFR_EV_THREAD_REAPED", EventKind::ThreadReaped),
        ("MPFR_EV_STACK_OVERFLOW", EventKind::StackOverflow),
        ("MPFR_EV_MALLOC_FAILED", EventKind::MallocFailed),
        ("MPFR_EV_ASSERT", EventKind::Assert),
        ("MPFR_EV_LOG", EventKind::Log),
    ] {
        m.insert(name, u64::from(wire::event_kind(k)));
    }
    m
}

#[test]
fn c_header_and_rust_decoder_share_every_wire_constant() {
    let c = c_constants();
    let rust = rust_constants();
    assert!(c.len() >= 30, "the host program printed too little: {c:?}");
    for (name, value) in &c {
        let r = rust.get(name.as_str()).unwrap_or_else(|| {
            panic!("{name} (= {value}) in mpfr_proto.h has no Rust counterpart in this test")
        });
        assert_eq!(value, r, "{name}: C says {value}, Rust says {r}");
    }
    for name in rust.keys() {
        assert!(
            c.contains_key(*name),
            "{name} is not printed by host/constants.c"
        );
    }
}

/// Every event kind the agent can send is one the decoder names (none decodes as `Other`).
#[test]
fn every_c_event_kind_decodes_to_a_known_kind() {
    for (name, v) in c_constants() {
        if name.starts_with("MPFR_EV_") {
            let bytes = protocol::encode(
                1,
                &protocol::Frame::Event(protocol::Event {
                    kind: EventKind::Other(v as u8),
                    tick: 0,
                    a: 0,
                    b: 0,
                    text: String::new(),
                }),
            )
            .expect("encode");
            let frames = protocol::Decoder::new().feed(&bytes);
            match &frames[..] {
                [protocol::Frame::Event(e)] => {
                    assert!(
                        !matches!(e.kind, EventKind::Other(_)),
                        "{name} = {v} decodes as {:?}",
                        e.kind
                    )
                }
                f => panic!("{name}: {f:?}"),
            }
        }
    }
}
