//! The raw REPL state machine over one open link: entry, raw-paste with flow control and its
//! fallback, following output, interrupting and resetting.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{DeviceException, ExecOutcome, Limits, Mode, ReplError, SessionOptions, Sink};
use crate::device::link::{Link, LinkError};

const BANNER: &[u8] = b"raw REPL; CTRL-B to exit";
/// How many received bytes an error message quotes.
const TAIL: usize = 240;
/// Plain raw mode: chunk size and pause, so a UART without flow control keeps up.
const CHUNK: usize = 256;
const CHUNK_PAUSE: Duration = Duration::from_millis(10);
/// Waiting for the `>` that follows a finished command, and for an interrupted one to end.
const PROMPT_WAIT: Duration = Duration::from_secs(2);
/// After a retried raw REPL entry: how long the line must stay quiet before the last banner
/// counts as the answer.
const SETTLE: Duration = Duration::from_millis(300);

pub use crate::device::link::escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not known to be in the raw REPL (fresh link, after an interrupt or a reset).
    Unknown,
    /// At the raw REPL's `>` prompt (consumed).
    Raw,
    /// A command finished; its `>` prompt may still be on the way.
    PromptPending,
    /// The program raised `SystemExit`: the board soft-reboots and comes back at the raw REPL
    /// by itself (its banner and `>` may still be on the way).
    Rebooting,
}

/// A point in time to give up at, and the longest silence allowed.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Option<Instant>,
    idle: Option<Duration>,
    last_byte: Instant,
}

impl Deadline {
    fn new(total: Option<Duration>, idle: Option<Duration>) -> Deadline {
        let now = Instant::now();
        Deadline {
            at: total.map(|t| now + t),
            idle,
            last_byte: now,
        }
    }

    fn expired(&self) -> bool {
        let now = Instant::now();
        self.at.is_some_and(|a| now >= a) || self.idle.is_some_and(|i| now >= self.last_byte + i)
    }

    /// How long one read may wait (short, so cancellation is noticed).
    fn slice(&self) -> Duration {
        let now = Instant::now();
        let mut d = Duration::from_millis(50);
        if let Some(a) = self.at {
            d = d.min(a.saturating_duration_since(now));
        }
        if let Some(i) = self.idle {
            d = d.min((self.last_byte + i).saturating_duration_since(now));
        }
        d.max(Duration::from_millis(1))
    }
}

enum Stop {
    Timeout,
    Cancelled,
    /// The sink asked to stop ([`Sink::stop_following`]).
    Aborted,
}

pub(super) struct Conn {
    pub(super) link: Box<dyn Link>,
    buf: Vec<u8>,
    tail: Vec<u8>,
    state: State,
    /// The device ended with the last command (the unix port exits on `SystemExit`): the
    /// link must be reopened before the next one.
    pub(super) gone: bool,
    /// Where the wait that failed was (for messages).
    started: Instant,
}

impl Conn {
    pub(super) fn new(link: Box<dyn Link>) -> Conn {
        Conn {
            link,
            buf: Vec::new(),
            tail: Vec::new(),
            state: State::Unknown,
            gone: false,
            started: Instant::now(),
        }
    }

    pub(super) fn forget_state(&mut self) {
        self.state = State::Unknown;
        self.buf.clear();
    }

    fn seen(&self) -> String {
        escape(&self.tail[self.tail.len().saturating_sub(120)..])
    }

    fn disconnected(&self, stage: &'static str, e: LinkError) -> ReplError {
        match e {
            LinkError::Disconnected { detail, .. } => ReplError::Disconnected {
                link: self.link.describe(),
                stage,
                detail,
                seen: self.seen(),
            },
            other => ReplError::Link(other),
        }
    }

    fn write(&mut self, stage: &'static str, data: &[u8]) -> Result<(), ReplError> {
        self.link
            .write_all(data)
            .map_err(|e| self.disconnected(stage, e))
    }

    /// Reads once, waiting up to `wait`; appends to `buf`. Returns how many bytes came.
    fn fill(&mut self, stage: &'static str, wait: Duration) -> Result<usize, ReplError> {
        let mut tmp = [0u8; 4096];
        let n = match self.link.read(&mut tmp, wait) {
            Ok(n) => n,
            Err(e) => return Err(self.disconnected(stage, e)),
        };
        if n > 0 {
            self.buf.extend_from_slice(&tmp[..n]);
            self.tail.extend_from_slice(&tmp[..n]);
            if self.tail.len() > TAIL * 2 {
                let cut = self.tail.len() - TAIL;
                self.tail.drain(..cut);
            }
        }
        Ok(n)
    }

    /// Reads until `buf` satisfies `found` (returns the index just past the match), honouring
    /// the deadline and the cancel flag.
    fn wait_until(
        &mut self,
        stage: &'static str,
        dl: &mut Deadline,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        mut found: impl FnMut(&[u8]) -> Option<usize>,
    ) -> Result<Result<usize, Stop>, ReplError> {
        loop {
            if let Some(i) = found(&self.buf) {
                return Ok(Ok(i));
            }
            if let Some(stop) = self.read_more(stage, dl, cancel)? {
                return Ok(Err(stop));
            }
        }
    }

    /// One step of every wait: a cancel or a passed deadline stops it, else read what the
    /// device sends within the deadline's next slice (a byte restarts the inactivity clock).
    fn read_more(
        &mut self,
        stage: &'static str,
        dl: &mut Deadline,
        cancel: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<Option<Stop>, ReplError> {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(Some(Stop::Cancelled));
        }
        if dl.expired() {
            return Ok(Some(Stop::Timeout));
        }
        if self.fill(stage, dl.slice())? > 0 {
            dl.last_byte = Instant::now();
        }
        Ok(None)
    }

    /// Reads what is already waiting, without blocking for more than a moment.
    fn drain_now(&mut self, stage: &'static str) -> Result<(), ReplError> {
        for _ in 0..64 {
            if self.fill(stage, Duration::ZERO)? == 0 {
                break;
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Gets to the raw REPL prompt: interrupt, drain, Ctrl-A, wait for the banner and `>`;
    /// bounded retries within an overall deadline.
    pub(super) fn ensure_raw(&mut self, opts: &SessionOptions) -> Result<(), ReplError> {
        const STAGE: &str = "while entering the raw REPL";
        if self.state == State::Raw {
            return Ok(());
        }
        if self.state == State::PromptPending {
            let mut dl = Deadline::new(Some(PROMPT_WAIT), None);
            if let Ok(i) =
                self.wait_until(STAGE, &mut dl, None, |b| find(b, b">").map(|i| i + 1))?
            {
                self.buf.drain(..i);
                self.state = State::Raw;
                return Ok(());
            }
            self.state = State::Unknown;
        }
        if self.state == State::Rebooting {
            // The board re-enters the raw REPL by itself after the reboot; entering it again
            // now would leave a second banner behind for the next command.
            let mut dl = Deadline::new(Some(opts.connect_timeout), Some(PROMPT_WAIT));
            if let Ok(i) = self.wait_until(STAGE, &mut dl, None, |b| {
                let at = find(b, BANNER)? + BANNER.len();
                find(&b[at..], b">").map(|j| at + j + 1)
            })? {
                self.buf.drain(..i);
                self.state = State::Raw;
                return Ok(());
            }
            self.state = State::Unknown;
        }
        self.started = Instant::now();
        let overall = self.started + opts.connect_timeout;
        let attempts = opts.enter_attempts.max(1);
        for attempt in 1..=attempts {
            self.write(STAGE, b"\r\x03\x03")?;
            self.drain_now(STAGE)?;
            self.write(STAGE, b"\r\x01")?;
            // Later attempts wait longer: a board still booting answers late.
            let per = Duration::from_millis(700) * attempt;
            let left = overall.saturating_duration_since(Instant::now());
            let mut dl = Deadline::new(Some(left), Some(per));
            let got = self.wait_until(STAGE, &mut dl, None, |b| {
                let at = find(b, BANNER)? + BANNER.len();
                find(&b[at..], b">").map(|j| at + j + 1)
            })?;
            if let Ok(mut i) = got {
                if attempt > 1 {
                    // An earlier Ctrl-A may have reached the device late (QEMU takes in a pty
                    // it was not polling only after up to a second) and its banner may still
                    // be on the way: wait for the line to go quiet and start after the last.
                    i = self.settle_after_banners(STAGE, overall, i)?;
                }
                self.buf.drain(..i);
                self.state = State::Raw;
                return Ok(());
            }
            if Instant::now() >= overall {
                return Err(ReplError::EnterRaw {
                    link: self.link.describe(),
                    attempts: attempt,
                    seen: self.seen(),
                });
            }
        }
        Err(ReplError::EnterRaw {
            link: self.link.describe(),
            attempts,
            seen: self.seen(),
        })
    }

    /// Reads until nothing came for [`SETTLE`] (or `overall` passes) and returns the index
    /// just past the last raw REPL banner and prompt in `buf` (at least `first`).
    fn settle_after_banners(
        &mut self,
        stage: &'static str,
        overall: Instant,
        first: usize,
    ) -> Result<usize, ReplError> {
        let mut end = first;
        let mut quiet_since = Instant::now();
        loop {
            while let Some(at) = find(&self.buf[end..], BANNER) {
                let from = end + at + BANNER.len();
                match find(&self.buf[from..], b">") {
                    Some(j) => end = from + j + 1,
                    None => break,
                }
            }
            let now = Instant::now();
            if now >= overall || now.duration_since(quiet_since) >= SETTLE {
                return Ok(end);
            }
            let wait = SETTLE
                .saturating_sub(now.duration_since(quiet_since))
                .min(overall.saturating_duration_since(now));
            if self.fill(stage, wait)? > 0 {
                quiet_since = Instant::now();
            }
        }
    }

    /// Runs one command. `paste` is the session's raw-paste flag (cleared when refused).
    pub(super) fn exec(
        &mut self,
        code: &[u8],
        limits: &Limits,
        sink: &mut dyn Sink,
        opts: &SessionOptions,
        paste: &mut bool,
        follow: bool,
    ) -> Result<ExecOutcome, ReplError> {
        self.ensure_raw(opts)?;
        let start = Instant::now();
        self.tail.clear();
        let mut dl = Deadline::new(limits.timeout, limits.idle);
        let cancel = limits.cancel.as_deref();
        let mut out = Collected::new(sink);
        let mut mode = Mode::Raw;
        let mut sent = false;
        if *paste {
            match self.raw_paste(code, &mut dl, cancel, &mut out)? {
                Paste::Sent => {
                    mode = Mode::RawPaste;
                    sent = true;
                }
                Paste::Refused => *paste = false,
                Paste::Stopped(s) => {
                    return self.stop(s, "while sending the code", limits, &mut out);
                }
            }
        }
        if !sent && let Err(s) = self.raw_chunked(code, &mut dl, cancel, &mut out)? {
            return self.stop(s, "while sending the code", limits, &mut out);
        }
        self.state = State::Unknown;
        if !follow {
            return Ok(out.finish(None, mode, start));
        }
        match self.follow(&mut dl, cancel, &mut out)? {
            Ok(exc) => {
                let exception = exc.map(|e| DeviceException::parse(&e));
                Ok(out.finish(exception, mode, start))
            }
            Err(s) => self.stop(s, "while the code ran", limits, &mut out),
        }
    }

    /// Raw-paste: request, window flow control, end marker, acknowledgement.
    fn raw_paste(
        &mut self,
        code: &[u8],
        dl: &mut Deadline,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        out: &mut Collected<'_>,
    ) -> Result<Paste, ReplError> {
        const STAGE: &str = "during raw-paste";
        self.write(STAGE, b"\x05A\x01")?;
        // The answer, possibly after output of other threads: `R\x01` + window, `R\x00`, or
        // (firmware without raw-paste) the raw REPL banner again, whichever comes first. A banner
        // may also be the late answer to an earlier Ctrl-A of the entry, when a loaded host held
        // the device's output back for longer than the entry waited for quiet: the device's own
        // answer then follows. So a banner is dropped and the answer given PROMPT_WAIT to come;
        // taken for a refusal, the code went out in plain raw mode to a device in raw-paste mode,
        // and the session waited for an `OK` that never came while the output piled up unseen.
        let answer = |b: &[u8]| {
            let paste = find(b, b"R\x01").and_then(|i| (b.len() >= i + 4).then_some(i));
            let refused = find(b, b"R\x00");
            let banner = find(b, BANNER).filter(|&at| find(&b[at..], b">").is_some());
            [paste, refused, banner].into_iter().flatten().min()
        };
        let mut after_banner: Option<Deadline> = None;
        let i = loop {
            let got = match after_banner.as_mut() {
                Some(pd) => self.wait_until(STAGE, pd, cancel, answer)?,
                None => self.wait_until(STAGE, dl, cancel, answer)?,
            };
            let i = match got {
                Ok(i) => i,
                // Firmware without raw-paste: its banner was the answer.
                Err(Stop::Timeout) if after_banner.is_some() => return Ok(Paste::Refused),
                Err(s) => return Ok(Paste::Stopped(s)),
            };
            if self.buf[i..].starts_with(b"R\x01") || self.buf[i..].starts_with(b"R\x00") {
                break i;
            }
            // Whatever precedes a banner is not program output.
            let end = find(&self.buf[i..], b">").map_or(self.buf.len(), |j| i + j + 1);
            self.buf.drain(..end);
            after_banner = Some(Deadline::new(Some(PROMPT_WAIT), None));
        };
        if self.buf[i..].starts_with(b"R\x00") {
            out.stdout(&self.buf[..i]);
            self.buf.drain(..i + 2);
            return Ok(Paste::Refused);
        }
        out.stdout(&self.buf[..i]);
        let window = usize::from(u16::from_le_bytes([self.buf[i + 2], self.buf[i + 3]]));
        self.buf.drain(..i + 4);
        if window == 0 {
            // A device that grants no room can never receive the code: end this (empty)
            // paste, discard its empty result, and use plain raw mode from now on.
            self.write(STAGE, b"\x04")?;
            let r = self.wait_until(STAGE, dl, cancel, |b| {
                let a = find(b, b"\x04")?;
                let s = find(&b[a + 1..], b"\x04>")?;
                Some(a + 1 + s + 2)
            })?;
            return match r {
                Ok(end) => {
                    self.buf.drain(..end);
                    Ok(Paste::Refused)
                }
                Err(s) => Ok(Paste::Stopped(s)),
            };
        }
        let mut room = window;
        let mut i = 0;
        while i < code.len() {
            // Take every window increment already here; wait for one when out of room.
            loop {
                let mut abort = false;
                let mut keep = Vec::new();
                for &c in &self.buf {
                    match c {
                        0x01 => room += window,
                        0x04 => abort = true,
                        _ => keep.push(c),
                    }
                }
                self.buf.clear();
                out.stdout(&keep);
                if abort {
                    // The device ended the paste early (e.g. it was interrupted); acknowledge.
                    self.write(STAGE, b"\x04")?;
                    return Ok(Paste::Sent);
                }
                if room > 0 {
                    break;
                }
                if let Some(stop) = self.read_more(STAGE, dl, cancel)? {
                    return Ok(Paste::Stopped(stop));
                }
            }
            let n = room.min(code.len() - i);
            self.write(STAGE, &code[i..i + n])?;
            room -= n;
            i += n;
            if room > 0 {
                // Pick up increments that arrived meanwhile without waiting.
                self.fill(STAGE, Duration::ZERO)?;
            }
        }
        self.write(STAGE, b"\x04")?;
        // The device acknowledges the end with `\x04`; window increments and other threads'
        // output may come before it.
        let r = self.wait_until(STAGE, dl, cancel, |b| find(b, b"\x04"))?;
        match r {
            Ok(a) => {
                let keep: Vec<u8> = self.buf[..a]
                    .iter()
                    .copied()
                    .filter(|&c| c != 0x01)
                    .collect();
                out.stdout(&keep);
                self.buf.drain(..=a);
                Ok(Paste::Sent)
            }
            Err(s) => Ok(Paste::Stopped(s)),
        }
    }

    /// Plain raw mode: code in paced chunks, `\x04`, then `OK`.
    fn raw_chunked(
        &mut self,
        code: &[u8],
        dl: &mut Deadline,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        out: &mut Collected<'_>,
    ) -> Result<Result<(), Stop>, ReplError> {
        const STAGE: &str = "while sending the code";
        for (n, chunk) in code.chunks(CHUNK).enumerate() {
            if n > 0 {
                std::thread::sleep(CHUNK_PAUSE);
            }
            self.write(STAGE, chunk)?;
        }
        self.write(STAGE, b"\x04")?;
        let r = self.wait_until(STAGE, dl, cancel, |b| find(b, b"OK"))?;
        match r {
            Ok(i) => {
                out.stdout(&self.buf[..i]);
                self.buf.drain(..i + 2);
                Ok(Ok(()))
            }
            Err(s) => Ok(Err(s)),
        }
    }

    /// Streams stdout until `\x04`, then collects the exception part until `\x04>`. A `\x04`
    /// the program printed itself is recognised because it is not followed by the ending.
    fn follow(
        &mut self,
        dl: &mut Deadline,
        cancel: Option<&std::sync::atomic::AtomicBool>,
        out: &mut Collected<'_>,
    ) -> Result<Result<Option<Vec<u8>>, Stop>, ReplError> {
        const STAGE: &str = "while the code ran";
        // Phase 1: stdout.
        loop {
            if let Some(i) = find(&self.buf, b"\x04") {
                let head: Vec<u8> = self.buf.drain(..=i).collect();
                out.stdout(&head[..i]);
                break;
            }
            let all = std::mem::take(&mut self.buf);
            out.stdout(&all);
            if out.sink.stop_following() {
                return Ok(Err(Stop::Aborted));
            }
            if let Some(stop) = self.read_more(STAGE, dl, cancel)? {
                return Ok(Err(stop));
            }
        }
        // Phase 2: exception text, ended by `\x04` and the prompt `>`.
        let mut held: Vec<u8> = Vec::new();
        loop {
            if let Some(i) = find(&self.buf, b"\x04") {
                // `\x04\x04` with no prompt after it is how a program that raised
                // `SystemExit` ends: the board soft-reboots (or, the unix port, exits).
                let maybe_exit = held.is_empty() && i == 0;
                let undecided = |b: &[u8]| {
                    b.len() == i + 1 || (maybe_exit && reboot_follows(&b[i + 1..]) == Reboot::Maybe)
                };
                if undecided(&self.buf) {
                    // Need the bytes after it; wait briefly for the prompt or the reboot.
                    let mut pd = Deadline::new(Some(PROMPT_WAIT), None);
                    let waited =
                        self.wait_until(STAGE, &mut pd, cancel, |b| (!undecided(b)).then_some(0));
                    match waited {
                        Err(e) if maybe_exit && e.is_disconnect() => {
                            self.buf.clear();
                            self.state = State::Unknown;
                            self.gone = true;
                            return Ok(Ok(None));
                        }
                        r => {
                            let _ = r?;
                        }
                    }
                    if maybe_exit && self.buf.len() > i + 1 && self.buf[i + 1] != b'>' {
                        // A reboot message, whole or (silence since) in part.
                        self.buf.drain(..=i);
                        self.state = State::Rebooting;
                        return Ok(Ok(None));
                    }
                    if self.buf.len() == i + 1 {
                        // No prompt came yet; take the exception as complete and look for
                        // the prompt before the next command.
                        held.extend_from_slice(&self.buf[..i]);
                        self.buf.clear();
                        self.state = State::PromptPending;
                        return Ok(Ok(nonempty(held)));
                    }
                }
                if maybe_exit && reboot_follows(&self.buf[i + 1..]) == Reboot::Yes {
                    self.buf.drain(..=i);
                    self.state = State::Rebooting;
                    return Ok(Ok(None));
                }
                if self.buf[i + 1] == b'>' {
                    held.extend_from_slice(&self.buf[..i]);
                    self.buf.drain(..i + 2);
                    // The prompt is consumed: the device is at the raw REPL again.
                    self.state = State::Raw;
                    return Ok(Ok(nonempty(held)));
                }
                // The earlier `\x04` was program output: give it back to stdout.
                let mut back = vec![0x04];
                back.extend_from_slice(&held);
                back.extend_from_slice(&self.buf[..i]);
                out.stdout(&back);
                held.clear();
                self.buf.drain(..=i);
                continue;
            }
            held.append(&mut self.buf);
            if let Some(stop) = self.read_more(STAGE, dl, cancel)? {
                return Ok(Err(stop));
            }
        }
    }

    /// After a deadline or Ctrl-C: interrupt the device, let the command end, report.
    fn stop(
        &mut self,
        why: Stop,
        stage: &'static str,
        limits: &Limits,
        out: &mut Collected<'_>,
    ) -> Result<ExecOutcome, ReplError> {
        let waited = self.started_exec(limits);
        match why {
            Stop::Aborted => {
                // Nothing is interrupted: the sink saw the device is past answering.
                self.forget_state();
                Err(ReplError::Aborted {
                    link: self.link.describe(),
                    seen: self.seen(),
                })
            }
            Stop::Cancelled => match self.interrupt_and_settle(out) {
                // Only a device seen back at its prompt was stopped; saying so otherwise would
                // leave the user believing a loop ended that still runs.
                Ok(true) | Err(_) => Err(ReplError::Interrupted),
                Ok(false) => Err(ReplError::StillRunning {
                    link: self.link.describe(),
                    seen: self.seen(),
                }),
            },
            Stop::Timeout => {
                let _ = self.interrupt_and_settle(out);
                Err(ReplError::Timeout {
                    link: self.link.describe(),
                    stage,
                    after: waited,
                    seen: self.seen(),
                })
            }
        }
    }

    fn started_exec(&self, limits: &Limits) -> Duration {
        limits.timeout.or(limits.idle).unwrap_or_default()
    }

    /// Ctrl-C, then wait (bounded) for the interrupted command to end at the raw prompt,
    /// passing its remaining output on. False when the device never came back to it.
    fn interrupt_and_settle(&mut self, out: &mut Collected<'_>) -> Result<bool, ReplError> {
        const STAGE: &str = "while interrupting";
        for attempt in 0..3 {
            // Ctrl-C on the wire first; a device that ignored it gets the link's other way where
            // it has one (SIGINT to the unix port behind a pty), else Ctrl-C again.
            let harder = attempt > 0
                && self
                    .link
                    .interrupt_harder()
                    .map_err(|e| self.disconnected(STAGE, e))?;
            if !harder {
                self.link
                    .interrupt()
                    .map_err(|e| self.disconnected(STAGE, e))?;
            }
            let mut dl = Deadline::new(Some(PROMPT_WAIT), None);
            let r = self.wait_until(STAGE, &mut dl, None, |b| find(b, b"\x04>").map(|i| i + 2))?;
            if let Ok(end) = r {
                // Output before the first `\x04` is the program's.
                let first = find(&self.buf, b"\x04").unwrap_or(end);
                let head: Vec<u8> = self.buf[..first].to_vec();
                out.stdout(&head);
                self.buf.drain(..end);
                self.state = State::Raw;
                return Ok(true);
            }
            let all = std::mem::take(&mut self.buf);
            out.stdout(&all);
        }
        self.state = State::Unknown;
        Ok(false)
    }

    pub(super) fn interrupt(&mut self) -> Result<(), ReplError> {
        self.link
            .interrupt()
            .map_err(|e| self.disconnected("while interrupting", e))?;
        self.forget_state();
        Ok(())
    }

    pub(super) fn soft_reset(&mut self, opts: &SessionOptions) -> Result<(), ReplError> {
        const STAGE: &str = "during a soft reset";
        if self.link.soft_reset_exits() {
            return self.hard_reset();
        }
        self.ensure_raw(opts)?;
        self.write(STAGE, b"\x04")?;
        self.state = State::Unknown;
        let mut dl = Deadline::new(Some(opts.connect_timeout), None);
        let r = self.wait_until(STAGE, &mut dl, None, |b| {
            let s = find(b, b"soft reboot")?;
            let at = s + find(&b[s..], BANNER)? + BANNER.len();
            find(&b[at..], b">").map(|j| at + j + 1)
        })?;
        match r {
            Ok(i) => {
                self.buf.drain(..i);
                self.state = State::Raw;
                Ok(())
            }
            Err(_) => Err(ReplError::Timeout {
                link: self.link.describe(),
                stage: "after a soft reset",
                after: opts.connect_timeout,
                seen: self.seen(),
            }),
        }
    }

    pub(super) fn hard_reset(&mut self) -> Result<(), ReplError> {
        self.link.reset()?;
        self.forget_state();
        self.tail.clear();
        Ok(())
    }

    pub(super) fn leave_raw(&mut self) {
        let _ = self.link.write_all(b"\r\x02");
        self.state = State::Unknown;
    }
}

enum Paste {
    Sent,
    Refused,
    Stopped(Stop),
}

/// What a board prints first when it soft-reboots after `SystemExit` in the raw REPL
/// (MicroPython since 1.20, older ports, or straight back to the raw REPL).
const REBOOT_MARKERS: [&[u8]; 3] = [b"MPY: soft reboot", b"soft reboot", BANNER];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reboot {
    Yes,
    /// Too few bytes yet to tell.
    Maybe,
    No,
}

/// Whether `after` (the bytes after a command's `\x04\x04`) is a soft reboot.
fn reboot_follows(after: &[u8]) -> Reboot {
    let start = after
        .iter()
        .position(|c| !matches!(c, b'\r' | b'\n'))
        .unwrap_or(after.len());
    let t = &after[start..];
    if t.is_empty() {
        return Reboot::Maybe;
    }
    if REBOOT_MARKERS.iter().any(|m| t.starts_with(m)) {
        Reboot::Yes
    } else if REBOOT_MARKERS.iter().any(|m| m.starts_with(t)) {
        Reboot::Maybe
    } else {
        Reboot::No
    }
}

fn nonempty(v: Vec<u8>) -> Option<Vec<u8>> {
    (!v.is_empty()).then_some(v)
}

/// stdout on its way to the sink, with a bounded copy for the outcome.
struct Collected<'a> {
    sink: &'a mut dyn Sink,
    stdout: Vec<u8>,
    truncated: bool,
}

impl<'a> Collected<'a> {
    fn new(sink: &'a mut dyn Sink) -> Self {
        Collected {
            sink,
            stdout: Vec::new(),
            truncated: false,
        }
    }

    fn stdout(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        self.sink.stdout(b);
        let room = ExecOutcome::STDOUT_CAP.saturating_sub(self.stdout.len());
        if b.len() > room {
            self.truncated = true;
        }
        self.stdout.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn finish(self, exc: Option<DeviceException>, mode: Mode, start: Instant) -> ExecOutcome {
        if let Some(e) = &exc {
            self.sink.exception(e.traceback.as_bytes());
        }
        ExecOutcome {
            stdout: self.stdout,
            stdout_truncated: self.truncated,
            exception: exc,
            mode,
            elapsed: start.elapsed(),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
