//! End to end: a fatal event reaches the host although the firmware halts right after it. The
//! reference firmware (booted by `mpfr flash`) overflows a task's stack on the console command
//! `overflow`; its stack-overflow hook writes the event straight into RTT and halts; `mpfr
//! threads top --json`, attached over QEMU's gdbstub, decodes the event with the task's name.

use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::{collect, text};
use mpfr_tests::{Env, QEMU_BOARD, wait_for};

/// Generous: two cores shared by several test runs and QEMUs.
const DEADLINE: Duration = Duration::from_secs(120);

/// A child process killed and reaped on drop (also when the test panics).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `found` on the collected text until it answers, or fails the test after [`DEADLINE`].
fn wait<T>(what: &str, seen: &Arc<Mutex<Vec<u8>>>, mut found: impl FnMut(&str) -> Option<T>) -> T {
    wait_for(what, DEADLINE, || {
        let t = text(seen);
        found(&t).ok_or(t)
    })
}

fn json_lines(t: &str) -> Vec<serde_json::Value> {
    // Whole lines only: the last one may still be arriving.
    let whole = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn stack_overflow_event_reaches_the_host_before_the_firmware_halts() {
    let env = Env::new("mpfr-fatal-");
    let out = env.mpfr(&["build", "--board", QEMU_BOARD]);
    assert!(
        out.status.success(),
        "mpfr build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.mpfr(&["flash", "--board", QEMU_BOARD]);
    assert!(
        out.status.success(),
        "mpfr flash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = env.record().expect("mpfr flash writes the board's record");
    let pty = record["uart_pty"].as_str().expect("uart_pty").to_string();

    // The host reads RTT all along, as a developer watching `threads top` would.
    let mut top = Reaped(
        env.command(&[
            "--json",
            "threads",
            "top",
            "--board",
            QEMU_BOARD,
            "--interval",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mpfr threads top"),
    );
    let stdout = collect(top.0.stdout.take().expect("stdout"));
    let stderr = collect(top.0.stderr.take().expect("stderr"));
    wait("sample from the agent", &stdout, |t| {
        if let Ok(Some(st)) = top.0.try_wait() {
            panic!("mpfr threads top exited ({st}): {}", text(&stderr));
        }
        json_lines(t).into_iter().find(|v| v["type"] == "sample")
    });

    // UART0 (QEMU's pty, already in raw mode): the console command that overflows `ovf`.
    let uart = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty)
        .unwrap_or_else(|e| panic!("open UART0 pty {pty}: {e}"));
    let console = collect(uart.try_clone().expect("clone pty"));
    (&uart).write_all(b"overflow\r").expect("write UART0");

    // The firmware halts: the hook prints its last line after publishing the event.
    wait("FATAL line on UART0", &console, |t| {
        t.lines()
            .find(|l| l.contains("FATAL stack overflow in ovf"))
            .map(str::to_string)
    });
    let event = wait("stack_overflow event", &stdout, |t| {
        json_lines(t)
            .into_iter()
            .find(|v| v["type"] == "event" && v["kind"] == "stack_overflow")
    });
    assert_eq!(event["text"], "ovf", "{event}");
    assert!(event["tick"].as_u64().is_some(), "{event}");
    // Whatever came before it decoded cleanly (no CRC errors or resyncs reported as events).
    let lines = json_lines(&text(&stdout));
    assert!(
        !lines
            .iter()
            .any(|v| v["type"] == "event" && v["kind"] == "lost"),
        "{lines:?}"
    );
}
