//! Raw REPL engine against the scripted fake device: every protocol edge, at every split point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::device::link::fake::{Action, FakeConfig, FakeDevice, PasteSupport, Program};

/// Error text built from what the device said shows its controls escaped (never raw) and cut.
#[test]
fn device_text_in_repl_errors_is_escaped() {
    let e = ReplError::Exception(DeviceException::parse(
        b"Traceback (most recent call last):\r\nValue\x1b[2JError: boom\x1b]0;t\x07\xe2\x80\xae\r\n",
    ));
    let text = e.to_string();
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(text.contains("boom\\x1b]0;t\\x07\\u{202e}"), "{text}");
    // The last bytes seen, as every REPL error quotes them: escaped, and only the tail.
    let mut seen = b"\x1b[2J".repeat(100);
    seen.extend_from_slice(b"\xe2\x80\xae>");
    let q = crate::device::link::escape(&seen);
    assert!(!q.chars().any(char::is_control), "{q:?}");
    assert!(
        q.starts_with("(148 bytes before)") && q.ends_with("\\xe2\\x80\\xae>\""),
        "{q}"
    );
}

/// The fake behind a lock, so the test can look at it after the session used it.
#[derive(Clone)]
struct Shared(Arc<Mutex<FakeDevice>>);

impl Link for Shared {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.0.lock().expect("lock").read(buf, timeout)
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        self.0.lock().expect("lock").write_all(data)
    }
    fn reset(&mut self) -> Result<(), LinkError> {
        self.0.lock().expect("lock").reset()
    }
    fn soft_reset_exits(&self) -> bool {
        self.0.lock().expect("lock").soft_reset_exits()
    }
    fn describe(&self) -> String {
        "fake device".into()
    }
}

fn fake(cfg: FakeConfig) -> (Session, Shared) {
    let dev = Shared(Arc::new(Mutex::new(FakeDevice::new(cfg))));
    let s = Session::from_link(Box::new(dev.clone())).with_options(SessionOptions {
        connect_timeout: Duration::from_secs(5),
        enter_attempts: 3,
    });
    (s, dev)
}

/// The fake running [`echo_program`], with `cfg`'s other settings.
fn echo(cfg: FakeConfig) -> (Session, Shared) {
    fake(FakeConfig {
        program: echo_program(),
        ..cfg
    })
}

/// The echoing fake whose replies break after `split` bytes, in chunks of `chunk` at most.
fn echo_split(split: usize, chunk: usize) -> (Session, Shared) {
    let (s, dev) = echo(FakeConfig::default());
    {
        let mut d = dev.0.lock().expect("lock");
        d.split_at = Some(split);
        d.max_chunk = chunk;
    }
    (s, dev)
}

/// Runs `print(6*7)` and checks the answer.
fn answers_42(s: &mut Session) -> ExecOutcome {
    let o = s
        .exec(b"print(6*7)", &limits(), &mut Discard)
        .expect("print(6*7)");
    assert_eq!(o.stdout, b"42\r\n");
    o
}

fn echo_program() -> Program {
    Box::new(|code: &[u8]| {
        match code {
        b"print(6*7)" => vec![Action::Out(b"42\r\n".to_vec())],
        b"1/0" => vec![Action::Raise(
            b"Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nZeroDivisionError: divide by zero\r\n".to_vec(),
        )],
        b"ctrl_d" => vec![Action::Out(b"a\x04b\x04c\r\n".to_vec())],
        b"die" => vec![Action::Out(b"partial".to_vec()), Action::Die],
        b"forever" => vec![Action::Forever(b"tick\r\n".to_vec())],
        b"exit" => vec![Action::Out(b"SKIP\r\n".to_vec()), Action::Exit],
        other => vec![Action::Out(format!("{} bytes\r\n", other.len()).into_bytes())],
    }
    })
}

fn limits() -> Limits {
    Limits {
        timeout: Some(Duration::from_secs(10)),
        idle: None,
        cancel: None,
    }
}

#[test]
fn prints_and_raises_at_every_split_point() {
    for split in 0..400 {
        for chunk in [usize::MAX, 1, 3] {
            let (mut s, _) = echo_split(split, chunk);
            let mut streamed = Vec::new();
            let o = s
                .exec(b"print(6*7)", &limits(), &mut streamed)
                .unwrap_or_else(|e| panic!("split {split} chunk {chunk}: {e}"));
            assert_eq!(o.stdout, b"42\r\n", "split {split}");
            assert_eq!(streamed, b"42\r\n");
            assert!(o.exception.is_none());
            assert_eq!(o.mode, Mode::RawPaste);

            let o = s.exec(b"1/0", &limits(), &mut Discard).expect("exec");
            assert!(o.stdout.is_empty(), "split {split}: {:?}", o.stdout);
            let e = o.exception.clone().expect("exception");
            assert_eq!(e.kind, "ZeroDivisionError");
            assert_eq!(e.message, "divide by zero");
            assert!(e.traceback.contains("line 1"));
            assert!(matches!(o.check(), Err(ReplError::Exception(_))));

            let o = s.exec(b"ctrl_d", &limits(), &mut Discard).expect("exec");
            assert_eq!(o.stdout, b"a\x04b\x04c\r\n", "split {split} chunk {chunk}");
            assert!(o.exception.is_none());
        }
    }
}

/// Issue 16: `print('SKIP'); raise SystemExit` ends with `\x04\x04` and a soft reboot (no
/// prompt after the second `\x04`); the command must finish at once, and the next one must
/// start clean after the reboot's banner.
#[test]
fn system_exit_finishes_at_once_at_every_split_point() {
    let n = b"OK".len()
        + b"SKIP\r\n\x04\x04MPY: soft reboot\r\n\r\nraw REPL; CTRL-B to exit\r\n>".len();
    for split in 0..(200 + n) {
        for chunk in [usize::MAX, 1] {
            let (mut s, dev) = echo_split(split, chunk);
            let o = s
                .exec(b"exit", &limits(), &mut Discard)
                .unwrap_or_else(|e| panic!("split {split} chunk {chunk}: {e}"));
            assert_eq!(o.stdout, b"SKIP\r\n", "split {split} chunk {chunk}");
            assert!(o.exception.is_none(), "SystemExit is a clean end");
            let o = s
                .exec(b"print(6*7)", &limits(), &mut Discard)
                .expect("next");
            assert_eq!(
                o.stdout, b"42\r\n",
                "split {split} chunk {chunk}: no leftovers"
            );
            let entries = dev
                .0
                .lock()
                .expect("lock")
                .written
                .iter()
                .filter(|&&c| c == 0x01)
                .count();
            // One Ctrl-A to enter, one per raw-paste request (two commands): no re-entry.
            assert_eq!(
                entries, 3,
                "split {split}: the reboot's own banner was used"
            );
        }
    }
    // The unix port exits on SystemExit: the command still ends cleanly.
    let (mut s, _dev) = echo(FakeConfig {
        soft_reset_exits: true,
        ..FakeConfig::default()
    });
    let o = s.exec(b"exit", &limits(), &mut Discard).expect("exit");
    assert_eq!(o.stdout, b"SKIP\r\n");
    assert!(o.exception.is_none());
}

#[test]
fn late_banner_and_missed_ctrl_a_are_retried() {
    let (mut s, _) = echo(FakeConfig {
        banner_delay_reads: 200,
        ..FakeConfig::default()
    });
    answers_42(&mut s);

    let (mut s, dev) = echo(FakeConfig {
        ignore_ctrl_a: 1,
        ..FakeConfig::default()
    });
    answers_42(&mut s);
    let w = dev.0.lock().expect("lock").written.clone();
    let ctrl_a = w.windows(2).filter(|p| p == b"\r\x01").count();
    assert_eq!(ctrl_a, 2, "two Ctrl-A: {w:?}");
}

/// A device that takes in nothing for a while and then every queued byte at once answers both
/// Ctrl-A of a retried entry: the second banner must not be taken for a raw-paste refusal.
#[test]
fn input_taken_in_late_answers_every_retry_and_the_session_stays_in_step() {
    let (mut s, dev) = echo(FakeConfig {
        deaf_for: Duration::from_millis(900),
        ..FakeConfig::default()
    });
    let o = answers_42(&mut s);
    assert_eq!(o.mode, Mode::RawPaste);
    let w = dev.0.lock().expect("lock").written.clone();
    let ctrl_a = w.windows(2).filter(|p| p == b"\r\x01").count();
    assert!(ctrl_a >= 2, "the entry was retried: {w:?}");
    let o = s.exec(b"1/0", &limits(), &mut Discard).expect("exec");
    assert_eq!(o.exception.expect("exception").kind, "ZeroDivisionError");
}

/// As above, but the device's output stalls between the two banners for longer than the entry
/// waits for quiet (a loaded host): the second banner comes after the raw-paste request and must
/// not be taken for a firmware without raw-paste. Taken for one, the code went out in plain raw
/// mode to a device in raw-paste mode, and the session waited for an `OK` that never came while
/// the program's output piled up unseen.
#[test]
fn a_banner_stalled_past_the_entry_is_not_taken_for_a_raw_paste_refusal() {
    for chunk in [usize::MAX, 8, 1] {
        let (mut s, dev) = echo(FakeConfig {
            deaf_for: Duration::from_millis(900),
            stall_after_banner: Duration::from_millis(500),
            ..FakeConfig::default()
        });
        dev.0.lock().expect("lock").max_chunk = chunk;
        let o = answers_42(&mut s);
        assert_eq!(o.mode, Mode::RawPaste, "chunk {chunk}");
        let o = s.exec(b"1/0", &limits(), &mut Discard).expect("exec");
        assert_eq!(o.exception.expect("exception").kind, "ZeroDivisionError");
    }
}

#[test]
fn a_dropped_session_leaves_the_raw_repl() {
    let (mut s, dev) = echo(FakeConfig::default());
    answers_42(&mut s);
    assert!(!dev.0.lock().expect("lock").written.ends_with(b"\x02"));
    drop(s);
    let mut d = dev.0.lock().expect("lock");
    assert!(d.written.ends_with(b"\r\x02"), "{:?}", d.written);
    // The device is back at its friendly prompt: a typed line is echoed again.
    let mut buf = [0u8; 256];
    while d.read(&mut buf, Duration::ZERO).expect("read") > 0 {}
    d.write_all(b"x").expect("write");
    let n = d.read(&mut buf, Duration::ZERO).expect("read");
    assert_eq!(&buf[..n], b"x");
}

#[test]
fn no_banner_gives_up_with_the_bytes_seen() {
    let (s, _) = fake(FakeConfig {
        ignore_ctrl_a: 1000,
        garbage: b"boot noise".to_vec(),
        ..FakeConfig::default()
    });
    let mut s = s.with_options(SessionOptions {
        connect_timeout: Duration::from_millis(600),
        enter_attempts: 2,
    });
    let e = s
        .exec(b"pass", &limits(), &mut Discard)
        .expect_err("no raw REPL");
    let msg = e.to_string();
    assert!(matches!(e, ReplError::EnterRaw { .. }), "{msg}");
    assert!(msg.contains(">>> "), "{msg}");
}

#[test]
fn garbage_before_the_banner_is_skipped() {
    let (mut s, _) = echo(FakeConfig {
        garbage: b"\xff\x00\x1b[2Jjunk >raw REPL; CTRL-B".to_vec(),
        ..FakeConfig::default()
    });
    answers_42(&mut s);
}

fn big_code(n: usize) -> Vec<u8> {
    let mut c = Vec::new();
    let mut i = 0;
    while c.len() < n {
        c.extend_from_slice(format!("x{i} = {i}\n").as_bytes());
        i += 1;
    }
    c
}

#[test]
fn without_raw_paste_falls_back_once_per_session() {
    for support in [
        PasteSupport::Refused,
        PasteSupport::Unknown,
        PasteSupport::Window(0),
    ] {
        let (mut s, dev) = echo(FakeConfig {
            paste: support,
            ..FakeConfig::default()
        });
        let code = big_code(700);
        for _ in 0..2 {
            let o = s.exec(&code, &limits(), &mut Discard).expect("exec");
            assert_eq!(o.mode, Mode::Raw, "{support:?}");
            assert_eq!(o.stdout, format!("{} bytes\r\n", code.len()).as_bytes());
        }
        assert!(!s.raw_paste_enabled());
        let d = dev.0.lock().expect("lock");
        assert_eq!(d.paste_requests, 1, "{support:?}");
        let last = d.received.last().expect("received");
        assert_eq!(last, &code, "{support:?}");
    }
}

#[test]
fn windows_small_and_large_deliver_the_code_intact() {
    for w in [1u16, 2, 127, 128, 4096, u16::MAX] {
        let (mut s, dev) = echo(FakeConfig {
            paste: PasteSupport::Window(w),
            ..FakeConfig::default()
        });
        let code = big_code(30 * 1024);
        let o = s.exec(&code, &limits(), &mut Discard).expect("exec");
        assert_eq!(o.mode, Mode::RawPaste, "window {w}");
        assert_eq!(dev.0.lock().expect("lock").received[0], code, "window {w}");
    }
}

#[test]
fn thread_output_during_paste_is_kept() {
    let (mut s, _) = echo(FakeConfig {
        paste: PasteSupport::Window(64),
        thread_output_during_paste: b"[thread] hello\r\n".to_vec(),
        ..FakeConfig::default()
    });
    let code = big_code(1000);
    let mut streamed = Vec::new();
    let o = s.exec(&code, &limits(), &mut streamed).expect("exec");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.starts_with("[thread] hello\r\n"), "{text:?}");
    assert!(
        text.ends_with(&format!("{} bytes\r\n", code.len())),
        "{text:?}"
    );
    assert_eq!(streamed, o.stdout);
}

#[test]
fn disconnect_mid_command_is_an_error_and_keeps_the_output() {
    for split in 0..120 {
        let (mut s, _) = echo_split(split, usize::MAX);
        let mut streamed = Vec::new();
        let e = s.exec(b"die", &limits(), &mut streamed).expect_err("died");
        assert!(matches!(e, ReplError::Disconnected { .. }), "{e}");
        assert!(e.to_string().contains("it died"), "{e}");
        assert_eq!(streamed, b"partial", "split {split}");
    }
}

#[test]
fn deadline_interrupts_a_program_that_prints_forever() {
    let (mut s, dev) = echo(FakeConfig::default());
    let mut streamed = Vec::new();
    let lim = Limits {
        timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    let e = s
        .exec(b"forever", &lim, &mut streamed)
        .expect_err("deadline");
    assert!(matches!(e, ReplError::Timeout { .. }), "{e}");
    assert!(streamed.starts_with(b"tick\r\n"));
    assert!(dev.0.lock().expect("lock").written.ends_with(b"\x03"));
    // The session recovers.
    answers_42(&mut s);
}

#[test]
fn idle_deadline_fires_on_silence() {
    let (mut s, _) = fake(FakeConfig {
        program: Box::new(|_| vec![Action::Forever(Vec::new())]),
        ..FakeConfig::default()
    });
    let lim = Limits {
        idle: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let e = s.exec(b"silent", &lim, &mut Discard).expect_err("idle");
    assert!(matches!(e, ReplError::Timeout { .. }), "{e}");
}

struct CancelAfterOutput(Arc<AtomicBool>, Vec<u8>);

impl Sink for CancelAfterOutput {
    fn stdout(&mut self, data: &[u8]) {
        self.1.extend_from_slice(data);
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn cancel_interrupts_the_device() {
    let (mut s, dev) = echo(FakeConfig::default());
    let flag = Arc::new(AtomicBool::new(false));
    let lim = Limits {
        cancel: Some(flag.clone()),
        ..Limits::default()
    };
    let mut sink = CancelAfterOutput(flag, Vec::new());
    let e = s.exec(b"forever", &lim, &mut sink).expect_err("cancelled");
    assert!(matches!(e, ReplError::Interrupted));
    assert_eq!(e.exit_code(), 130);
    assert!(dev.0.lock().expect("lock").written.ends_with(b"\x03"));
    s.close();
    assert!(dev.0.lock().expect("lock").written.ends_with(b"\r\x02"));
}

#[test]
fn soft_reset_reboots_or_respawns() {
    let (mut s, dev) = echo(FakeConfig::default());
    s.soft_reset().expect("soft reset");
    answers_42(&mut s);
    assert_eq!(dev.0.lock().expect("lock").resets, 0);

    let (mut s, dev) = echo(FakeConfig {
        soft_reset_exits: true,
        ..FakeConfig::default()
    });
    answers_42(&mut s);
    s.soft_reset().expect("respawn");
    assert_eq!(dev.0.lock().expect("lock").resets, 1);
    answers_42(&mut s);
}

#[test]
fn exception_text_parses() {
    let e = DeviceException::parse(b"Traceback (most recent call last):\r\n  File \"<stdin>\", line 2\r\nValueError: bad: value\r\n");
    assert_eq!(e.kind, "ValueError");
    assert_eq!(e.message, "bad: value");
    assert!(e.traceback.ends_with("bad: value\n"));
    let e = DeviceException::parse(b"Traceback:\r\nKeyboardInterrupt\r\n");
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("KeyboardInterrupt", "")
    );
}
