//! A scripted fake MicroPython device for unit tests: it answers the friendly REPL, raw REPL and
//! raw-paste protocol as a real board does, with knobs for every misbehaviour the engine must
//! survive (late banner, no raw-paste, odd window sizes, garbage, threads printing, dying
//! mid-command) and a split point so replies can be cut anywhere in the byte stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Link, LinkError};

/// What the fake does with code it is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Prints to stdout.
    Out(Vec<u8>),
    /// Ends with this exception text (a traceback).
    Raise(Vec<u8>),
    /// Prints this forever, until interrupted with Ctrl-C.
    Forever(Vec<u8>),
    /// The device vanishes (after what was printed so far).
    Die,
    /// The program raises `SystemExit`: `\x04\x04` with no prompt, then a soft reboot back
    /// to the raw REPL (or, with `soft_reset_exits`, the process ends as the unix port's does).
    Exit,
}

/// How the fake answers a raw-paste request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasteSupport {
    /// `R\x01` and this window size.
    Window(u16),
    /// `R\x00`: understood but refused.
    Refused,
    /// Firmware older than raw-paste: `\x05` is ignored and `\x01` re-enters the raw REPL.
    Unknown,
}

/// The fake's interpreter: code in, what the device does out.
pub type Program = Box<dyn FnMut(&[u8]) -> Vec<Action> + Send>;

/// Knobs of the fake.
pub struct FakeConfig {
    pub paste: PasteSupport,
    /// Empty reads before the raw REPL banner appears (a board still booting).
    pub banner_delay_reads: usize,
    /// Ctrl-A is ignored this many times (a board that misses the first attempt).
    pub ignore_ctrl_a: usize,
    /// Bytes the device prints before it answers anything (boot noise, line garbage).
    pub garbage: Vec<u8>,
    /// Printed by "another thread" when the first raw-paste window increment is sent.
    pub thread_output_during_paste: Vec<u8>,
    /// Ctrl-D in the raw REPL ends the device (the unix port) instead of a soft reboot.
    pub soft_reset_exits: bool,
    /// The device takes in nothing the host writes for this long after it starts; then it
    /// reads everything queued at once (QEMU polls a pty nobody had open only once a second).
    pub deaf_for: Duration,
    /// After its first raw REPL banner the device's output stalls this long, then goes on in
    /// order (a loaded host holding QEMU back between two answers).
    pub stall_after_banner: Duration,
    /// Runs code: what it prints, raises, or does.
    pub program: Program,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            paste: PasteSupport::Window(128),
            banner_delay_reads: 0,
            ignore_ctrl_a: 0,
            garbage: Vec::new(),
            thread_output_during_paste: Vec::new(),
            soft_reset_exits: false,
            deaf_for: Duration::ZERO,
            stall_after_banner: Duration::ZERO,
            program: Box::new(|_| Vec::new()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Friendly,
    Raw,
    Paste,
    Running,
    Dead,
}

/// The fake device, seen from the host as a [`Link`].
pub struct FakeDevice {
    cfg: FakeConfig,
    state: State,
    out: VecDeque<u8>,
    held_banner: Vec<u8>,
    delay: usize,
    ctrl_e: u8,
    code: Vec<u8>,
    window: usize,
    window_used: usize,
    thread_said: bool,
    forever: Vec<u8>,
    dead_after_output: bool,
    /// Every byte the host wrote.
    pub written: Vec<u8>,
    /// Programs the device received, in order.
    pub received: Vec<Vec<u8>>,
    /// Raw-paste requests seen.
    pub paste_requests: usize,
    /// How often the device was (re)started by a hard reset.
    pub resets: usize,
    /// No read returns bytes across this offset of the device's output stream.
    pub split_at: Option<usize>,
    /// Largest read (1 = byte by byte).
    pub max_chunk: usize,
    delivered: usize,
    deaf_until: Instant,
    inbox: Vec<u8>,
    /// Output said during a stall, and when the stall ends.
    stalled: Option<Instant>,
    stalled_out: VecDeque<u8>,
    stall_done: bool,
}

impl FakeDevice {
    pub fn new(cfg: FakeConfig) -> FakeDevice {
        let mut d = FakeDevice {
            out: cfg.garbage.iter().copied().collect(),
            cfg,
            state: State::Friendly,
            held_banner: Vec::new(),
            delay: 0,
            ctrl_e: 0,
            code: Vec::new(),
            window: 0,
            window_used: 0,
            thread_said: false,
            forever: Vec::new(),
            dead_after_output: false,
            written: Vec::new(),
            received: Vec::new(),
            paste_requests: 0,
            resets: 0,
            split_at: None,
            max_chunk: usize::MAX,
            delivered: 0,
            deaf_until: Instant::now(),
            inbox: Vec::new(),
            stalled: None,
            stalled_out: VecDeque::new(),
            stall_done: false,
        };
        d.deaf_until += d.cfg.deaf_for;
        d.say(b"MicroPython v1.29.0 on fake; fake with fake\r\nType \"help()\" for more information.\r\n>>> ");
        d
    }

    /// Takes in what the host wrote while the device was deaf, once it no longer is.
    fn hear(&mut self) {
        if !self.inbox.is_empty() && Instant::now() >= self.deaf_until {
            for c in std::mem::take(&mut self.inbox) {
                self.byte(c);
            }
        }
    }

    fn say(&mut self, b: &[u8]) {
        if self.stalled.is_some() {
            self.stalled_out.extend(b.iter().copied());
        } else {
            self.out.extend(b.iter().copied());
        }
    }

    fn banner(&mut self) {
        let b = b"\r\nraw REPL; CTRL-B to exit\r\n>";
        if self.delay > 0 {
            self.held_banner = b.to_vec();
        } else {
            self.say(b);
            if !self.stall_done && !self.cfg.stall_after_banner.is_zero() {
                self.stall_done = true;
                self.stalled = Some(Instant::now() + self.cfg.stall_after_banner);
            }
        }
    }

    fn run(&mut self) {
        let code = std::mem::take(&mut self.code);
        self.received.push(code.clone());
        let actions = (self.cfg.program)(&code);
        let mut err = Vec::new();
        for a in actions {
            match a {
                Action::Out(b) => self.say(&b),
                Action::Raise(b) => err = b,
                Action::Forever(line) => {
                    self.forever = line;
                    self.state = State::Running;
                    return;
                }
                Action::Die => {
                    self.dead_after_output = true;
                    self.state = State::Dead;
                    return;
                }
                Action::Exit => {
                    self.say(b"\x04\x04");
                    if self.cfg.soft_reset_exits {
                        self.dead_after_output = true;
                        self.state = State::Dead;
                    } else {
                        self.say(b"MPY: soft reboot\r\n");
                        self.state = State::Raw;
                        self.banner();
                    }
                    return;
                }
            }
        }
        self.say(b"\x04");
        self.say(&err);
        self.say(b"\x04>");
        self.state = State::Raw;
    }

    fn byte(&mut self, c: u8) {
        match self.state {
            State::Dead => {}
            State::Friendly => match c {
                0x01 => {
                    if self.cfg.ignore_ctrl_a > 0 {
                        self.cfg.ignore_ctrl_a -= 1;
                    } else {
                        self.state = State::Raw;
                        self.delay = self.cfg.banner_delay_reads;
                        self.banner();
                    }
                }
                0x03 => self.say(b"\r\n>>> "),
                b'\r' => self.say(b"\r\n>>> "),
                _ => self.out.push_back(c),
            },
            State::Running => {
                if c == 0x03 {
                    self.say(b"\x04Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nKeyboardInterrupt: \r\n\x04>");
                    self.state = State::Raw;
                }
            }
            State::Raw => {
                if self.ctrl_e == 1 && c == b'A' {
                    self.ctrl_e = 2;
                    return;
                }
                if self.ctrl_e == 2 && c == 0x01 {
                    self.ctrl_e = 0;
                    self.paste_requests += 1;
                    match self.cfg.paste {
                        PasteSupport::Window(w) => {
                            self.say(b"R\x01");
                            self.say(&w.to_le_bytes());
                            self.say(b"\x01");
                            self.window = usize::from(w);
                            self.window_used = 0;
                            self.code.clear();
                            self.state = State::Paste;
                        }
                        PasteSupport::Refused => self.say(b"R\x00"),
                        PasteSupport::Unknown => {
                            // `A` went into the buffer, Ctrl-A re-entered the raw REPL.
                            self.code.clear();
                            self.banner();
                        }
                    }
                    return;
                }
                let unknown = self.cfg.paste == PasteSupport::Unknown;
                if self.ctrl_e == 2 && unknown {
                    self.code.push(b'A');
                }
                self.ctrl_e = 0;
                match c {
                    0x05 if !unknown => self.ctrl_e = 1,
                    0x05 => self.ctrl_e = 1,
                    0x01 => {
                        self.code.clear();
                        self.banner();
                    }
                    0x02 => {
                        self.state = State::Friendly;
                        self.say(b"\r\n>>> ");
                    }
                    0x03 => self.code.clear(),
                    0x04 if self.code.is_empty() => {
                        self.say(b"OK");
                        if self.cfg.soft_reset_exits {
                            self.state = State::Dead;
                            self.dead_after_output = true;
                        } else {
                            self.say(b"MPY: soft reboot\r\n");
                            self.banner();
                        }
                    }
                    0x04 => {
                        self.say(b"OK");
                        self.run();
                    }
                    _ => self.code.push(c),
                }
            }
            State::Paste => match c {
                0x04 => {
                    self.say(b"\x04");
                    self.run();
                }
                _ => {
                    self.code.push(c);
                    self.window_used += 1;
                    if self.window_used >= self.window && self.window > 0 {
                        self.window_used = 0;
                        if !self.thread_said && !self.cfg.thread_output_during_paste.is_empty() {
                            self.thread_said = true;
                            let t = self.cfg.thread_output_during_paste.clone();
                            self.say(&t);
                        }
                        self.say(b"\x01");
                    }
                }
            },
        }
    }
}

impl Link for FakeDevice {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.hear();
        if self.stalled.is_some_and(|t| Instant::now() >= t) {
            self.stalled = None;
            let held = std::mem::take(&mut self.stalled_out);
            self.out.extend(held);
        }
        if self.out.is_empty() {
            if self.delay > 0 {
                self.delay -= 1;
                if self.delay == 0 {
                    let b = std::mem::take(&mut self.held_banner);
                    self.say(&b);
                }
            } else if self.state == State::Running {
                let l = self.forever.clone();
                self.say(&l);
            }
        }
        if self.out.is_empty() {
            if self.state == State::Dead && self.dead_after_output {
                return Err(LinkError::Disconnected {
                    what: "fake device".into(),
                    detail: "it died".into(),
                });
            }
            // Time passes for the host; keep it short so tests stay fast.
            std::thread::sleep(timeout.min(Duration::from_micros(200)));
            return Ok(0);
        }
        let mut n = buf.len().min(self.out.len()).min(self.max_chunk);
        if let Some(s) = self.split_at
            && self.delivered < s
        {
            n = n.min(s - self.delivered);
        }
        for slot in buf.iter_mut().take(n) {
            *slot = self.out.pop_front().unwrap_or(0);
        }
        self.delivered += n;
        Ok(n)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        if self.state == State::Dead && self.out.is_empty() {
            return Err(LinkError::Disconnected {
                what: "fake device".into(),
                detail: "it died".into(),
            });
        }
        self.written.extend_from_slice(data);
        self.inbox.extend_from_slice(data);
        self.hear();
        Ok(())
    }

    fn reset(&mut self) -> Result<(), LinkError> {
        self.resets += 1;
        self.state = State::Friendly;
        self.out.clear();
        self.code.clear();
        self.ctrl_e = 0;
        self.dead_after_output = false;
        self.say(b"MicroPython v1.29.0 on fake\r\n>>> ");
        Ok(())
    }

    fn soft_reset_exits(&self) -> bool {
        self.cfg.soft_reset_exits
    }

    fn describe(&self) -> String {
        "fake device".into()
    }
}
