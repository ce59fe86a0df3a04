//! The raw REPL engine (entry, raw-paste flow control and its fallback, following output,
//! tracebacks) over two links: a replayed byte stream the fuzzer writes outright, cut into
//! reads of fuzzer-chosen sizes, and the library's scripted fake device with fuzzed knobs and
//! program output. Never a panic or a hang; over a well-behaved device, the program's output
//! and exception arrive intact whatever the window size, split point or read size.

use std::collections::VecDeque;
use std::time::Duration;

use mpfr::fuzzing::{
    Action, FakeConfig, FakeDevice, Limits, Link, LinkError, PasteSupport, Session, SessionOptions,
};

const CODE: &[u8] = b"import _thread\nfor i in range(3):\n    print(i)\n";

/// A device that says exactly what the fuzzer wrote, whatever it is sent, then disconnects.
struct Replay {
    reads: VecDeque<Vec<u8>>,
}

impl Link for Replay {
    fn read(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<usize, LinkError> {
        let Some(mut chunk) = self.reads.pop_front() else {
            return Err(LinkError::Disconnected {
                what: "replay".into(),
                detail: "the script ended".into(),
            });
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.reads.push_front(chunk.split_off(n));
        }
        Ok(n)
    }

    fn write_all(&mut self, _data: &[u8]) -> Result<(), LinkError> {
        Ok(())
    }

    fn reset(&mut self) -> Result<(), LinkError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "replay".into()
    }
}

fn options() -> SessionOptions {
    SessionOptions {
        connect_timeout: Duration::from_secs(5),
        enter_attempts: 2,
    }
}

fn limits() -> Limits {
    Limits {
        timeout: Some(Duration::from_secs(5)),
        ..Limits::default()
    }
}

fn replay(seed: u8, script: &[u8]) {
    let mut reads = VecDeque::new();
    let mut rest = script;
    let mut k = usize::from(seed) | 1;
    while !rest.is_empty() {
        // Reads of 1..=64 bytes, never empty: an empty read means time passed, and the
        // replay has no time to pass.
        let n = (k % 64 + 1).min(rest.len());
        reads.push_back(rest[..n].to_vec());
        rest = &rest[n..];
        k = k.wrapping_mul(37).wrapping_add(n);
    }
    let mut s = Session::from_link(Box::new(Replay { reads })).with_options(options());
    let mut out = Vec::new();
    if let Ok(o) = s.exec(CODE, &limits(), &mut out) {
        assert!(
            o.stdout.len() <= script.len(),
            "more output than the device sent"
        );
        assert_eq!(o.stdout, out, "the sink and the outcome disagree");
    }
    let _ = s.exec(CODE, &limits(), &mut Vec::new());
    let _ = s.soft_reset();
}

/// Takes a length-prefixed piece off the front of `data`.
fn piece<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((&n, rest)) = data.split_first() else {
        return &[];
    };
    let n = usize::from(n).min(rest.len());
    let (p, r) = rest.split_at(n);
    *data = r;
    p
}

fn fake_device(knobs: &[u8], mut data: &[u8]) {
    let [paste, w0, w1, split, chunk, delay, ..] = *knobs else {
        return;
    };
    let paste = match paste % 4 {
        0 => PasteSupport::Refused,
        1 => PasteSupport::Unknown,
        _ => PasteSupport::Window(u16::from_le_bytes([w0, w1])),
    };
    // What a well-behaved device may say: no frame bytes (0x01, 0x04) in program output, no
    // prompt and no raw REPL banner in boot noise (with reads of one byte, noise outlasts the
    // engine's drain, and a banner in it would be taken as the answer).
    let garbage: Vec<u8> = piece(&mut data)
        .iter()
        .copied()
        .filter(|&c| c != b'>')
        .collect();
    if garbage.windows(8).any(|w| w == b"raw REPL") {
        return;
    }
    let clean = |p: &[u8]| -> Vec<u8> { p.iter().copied().filter(|&c| c != 1 && c != 4).collect() };
    let thread = clean(piece(&mut data));
    let output = clean(piece(&mut data));
    let raise = clean(piece(&mut data));
    // The exception part ends at `\x04>`: a traceback opening with `>` right after the `\x04`
    // that ends stdout reads the same. MicroPython's start with "Traceback".
    if raise.first() == Some(&b'>') {
        return;
    }

    let actions = {
        let mut a = vec![Action::Out(output.clone())];
        if !raise.is_empty() {
            a.push(Action::Raise(raise.clone()));
        }
        a
    };
    let cfg = FakeConfig {
        paste,
        banner_delay_reads: usize::from(delay % 4),
        garbage,
        thread_output_during_paste: thread.clone(),
        program: Box::new(move |_| actions.clone()),
        ..FakeConfig::default()
    };
    let mut dev = FakeDevice::new(cfg);
    dev.split_at = (split != 0).then_some(usize::from(split) * 3);
    dev.max_chunk = usize::from(chunk % 16) + 1;
    let mut s = Session::from_link(Box::new(dev)).with_options(options());
    let mut sink = Vec::new();
    let o = s
        .exec(CODE, &limits(), &mut sink)
        .unwrap_or_else(|e| panic!("a well-behaved device failed: {e}"));
    let mut with_thread = thread.clone();
    with_thread.extend_from_slice(&output);
    assert!(
        o.stdout == output || o.stdout == with_thread,
        "stdout {:?}, program printed {:?} (another thread {:?})",
        o.stdout.escape_ascii().to_string(),
        output.escape_ascii().to_string(),
        thread.escape_ascii().to_string()
    );
    match (&o.exception, raise.is_empty()) {
        (None, true) => {}
        (Some(e), false) => {
            let want = String::from_utf8_lossy(&raise).replace("\r\n", "\n");
            assert_eq!(e.traceback, want, "the traceback changed on the way");
        }
        (got, _) => panic!("exception {got:?}, device raised {raise:?}"),
    }
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        replay(mode, rest);
    } else if rest.len() >= 6 {
        fake_device(&rest[..6], &rest[6..]);
    }
}
