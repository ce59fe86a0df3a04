//! End-to-end test of `mpfr stress` on the QEMU virtual board running the reference firmware:
//! the native workloads pass, and when QEMU is killed mid-run the test is CRASH, QEMU is
//! restarted (hard reset) and the run goes on.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{check, qemu_tools_present};
use mpfr_tests::{Env, report_results, wait_for};

const BOARD: &str = "qemu-mps2-an385";

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn native_workloads_pass_and_a_killed_qemu_is_restarted() {
    if !qemu_tools_present() {
        return;
    }
    let env = Env::new("mpfr-stress-");
    check(&env.mpfr(&["build", "--board", BOARD]), "mpfr build");
    check(&env.mpfr(&["flash", "--board", BOARD]), "mpfr flash");

    // 1. The quick workloads all pass, and both reports hold them.
    let jsonl = env.state().join("R.jsonl");
    let junit = env.state().join("J.xml");
    let out = env.mpfr(&[
        "stress",
        "--board",
        BOARD,
        "--jsonl",
        jsonl.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    check(&out, "mpfr stress");
    let rs = report_results(&jsonl);
    let names: Vec<&str> = rs.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "spawn",
            "churn",
            "service_flood",
            "heap",
            "spawn_under_load",
            "churn_under_load"
        ]
    );
    for r in &rs {
        assert_eq!(r["verdict"], "PASS", "{r:#}");
        assert_eq!(r["origin"], "firmware:quick");
    }
    assert_eq!(rs[1]["metrics"]["reaped"], 50);
    // The agent's telemetry, sampled while the tests ran, lands in every result.
    for r in &rs {
        let t = &r["telemetry"];
        assert!(t["min_free_heap"].as_u64().is_some_and(|h| h > 0), "{r:#}");
        assert!(t["peak_tasks"].as_u64().is_some_and(|n| n >= 3), "{r:#}");
        assert!(t["deepest_stack_use"].as_u64().is_some(), "{r:#}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"6\" failures=\"0\" errors=\"0\""),
        "{xml}"
    );

    // 2. Kill QEMU while the second of three rounds runs: CRASH, restart, the run goes on.
    let jsonl = env.state().join("R2.jsonl");
    let mut cmd = env.command(&[
        "stress",
        "--board",
        BOARD,
        "--suite",
        "soak",
        "--filter",
        "churn",
        "--repeat",
        "3",
        "--idle-timeout",
        "20s",
        "--jsonl",
        jsonl.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut run = Reaped(cmd.spawn().expect("mpfr starts"));
    wait_for("a first result", Duration::from_secs(120), || {
        assert!(run.0.try_wait().unwrap().is_none(), "mpfr ended early");
        !report_results(&jsonl).is_empty()
    });
    let pid = env
        .record()
        .and_then(|r| r["pid"].as_u64())
        .expect("a recorded QEMU");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(
        "mpfr to finish after the crash",
        Duration::from_secs(240),
        || run.0.try_wait().unwrap(),
    );
    assert_eq!(status.code(), Some(1), "a CRASH fails the run");
    let rs = report_results(&jsonl);
    let verdicts: Vec<&str> = rs.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    let crash = verdicts
        .iter()
        .position(|v| *v == "CRASH")
        .unwrap_or_else(|| panic!("no CRASH in {verdicts:?}"));
    let steps: Vec<&str> = rs[crash]["recovery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(steps.last(), Some(&"hard-reset"), "{:#}", rs[crash]);
    assert_eq!(
        rs[crash]["recovery"].as_array().unwrap().last().unwrap()[1],
        true
    );
    assert!(
        crash + 1 < rs.len(),
        "the run went on after the crash: {verdicts:?}"
    );
    assert!(
        verdicts[crash + 1..].iter().all(|v| *v == "PASS"),
        "{verdicts:?}"
    );
    assert_ne!(
        env.record().and_then(|r| r["pid"].as_u64()),
        Some(pid),
        "QEMU was restarted"
    );
}

/// Counts what gdb clients do through a proxy in front of the virtual board's gdbstub.
#[derive(Default)]
struct Stops {
    connections: std::sync::atomic::AtomicUsize,
    interrupts: std::sync::atomic::AtomicUsize,
}

/// Listens on `at` and forwards each connection to `real`, counting connections and the
/// `\x03` (halt the guest) bytes clients send.
fn counting_proxy(at: PathBuf, real: PathBuf, stops: std::sync::Arc<Stops>) {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::Ordering;
    let listener = UnixListener::bind(&at).expect("proxy socket");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            stops.connections.fetch_add(1, Ordering::SeqCst);
            let Ok(mut server) = UnixStream::connect(&real) else {
                continue;
            };
            let (mut c2, mut s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
            });
            let stops = stops.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 || server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let halts = buf[..n].iter().filter(|&&b| b == 0x03).count();
                    stops.interrupts.fetch_add(halts, Ordering::SeqCst);
                }
            });
        }
    });
}

/// Issue 16: a stress run against an image without the agent (no `_SEGGER_RTT` in its symbol
/// table) never attaches to the gdbstub, so it never halts the guest, and says why at once.
#[test]
fn an_image_without_the_agent_is_never_halted() {
    if !qemu_tools_present() {
        return;
    }
    let env = Env::new("mpfr-stress-noagent");
    let elf = mpfr_tests::uart_banner_elf(env.state());
    check(
        &env.mpfr(&["flash", "--board", BOARD, elf.to_str().unwrap()]),
        "mpfr flash",
    );
    // Put the proxy between the record and QEMU's gdbstub.
    let record_path = env.state().join("vboard").join(format!("{BOARD}.json"));
    let mut record = env.record().expect("a running virtual board");
    let real = PathBuf::from(record["gdb_socket"].as_str().expect("gdb socket"));
    let proxy = env.state().join("proxy.gdb");
    let stops = std::sync::Arc::new(Stops::default());
    counting_proxy(proxy.clone(), real, stops.clone());
    record["gdb_socket"] = proxy.to_str().unwrap().into();
    std::fs::write(&record_path, record.to_string()).expect("record");

    let json = env.state().join("R.jsonl");
    let mut cmd = env.command(&[
        "stress",
        "--board",
        BOARD,
        "--filter",
        "spawn",
        "--timeout",
        "5s",
        "--idle-timeout",
        "3s",
        "--jsonl",
        json.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Reaped(cmd.spawn().expect("mpfr starts"));
    wait_for("mpfr stress to finish", Duration::from_secs(240), || {
        child.0.try_wait().expect("wait").is_some()
    });
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(!report_results(&json).is_empty(), "no result: {err}");
    assert!(err.contains("built without the RTT agent"), "{err}");
    let n = stops.connections.load(std::sync::atomic::Ordering::SeqCst);
    let halts = stops.interrupts.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!((n, halts), (0, 0), "the gdbstub was used: {err}");
}
