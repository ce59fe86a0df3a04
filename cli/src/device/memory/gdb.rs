//! A small GDB Remote Serial Protocol client for QEMU's gdbstub on a unix socket.
//!
//! QEMU answers memory packets only while the guest is stopped, so every access (or every
//! batch, see [`Memory::hold`]) is interrupt (0x03) -> read/write -> continue. A stop of a few
//! hundred microseconds is invisible to the firmware's tick-driven scheduler.
//!
//! [`PacketParser`] is the pure byte-level half (framing, checksums, escapes, run-length
//! decoding); [`GdbClient`] drives it over the socket.

use crate::util::sanitize::quote_bytes;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Memory, TargetError};

/// Longest packet body mpfr accepts; anything longer is garbage and is dropped.
const MAX_BODY: usize = 64 * 1024;
/// Bytes per `m`/`M` packet: QEMU's packet buffer holds 4 KiB of hex.
const CHUNK: usize = 1024;
/// How long one reply may take before the stub is declared hung. A live stub answers in
/// milliseconds, but QEMU starved of CPU on a loaded two-core machine took over 5 s to answer an
/// interrupt; only a hung QEMU waits the whole time, so the limit is generous.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// One thing the stub sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `+`: the last packet arrived intact.
    Ack,
    /// `-`: the last packet arrived damaged; send it again.
    Nack,
    /// A `$..#cs` packet with a good checksum, unescaped and run-length decoded.
    Packet(Vec<u8>),
    /// A `%..#cs` notification (non-stop mode), decoded.
    Notification(Vec<u8>),
    /// A packet whose checksum did not match (or was not hex).
    BadChecksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Body,
    Sum1,
    Sum2(u8),
}

/// Incremental RSP packet parser: feed it any split of the byte stream.
#[derive(Debug)]
pub struct PacketParser {
    state: State,
    notification: bool,
    raw: Vec<u8>,
    /// Bytes skipped outside packets or in over-long packets.
    pub garbage: u64,
}

impl Default for PacketParser {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Undoes `}` escapes and `*` run-length encoding of a packet body (the checksum covers the
/// encoded form). A repeat with nothing before it, or a dangling escape, is kept literally.
pub fn decode_body(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'}' if i + 1 < raw.len() => {
                out.push(raw[i + 1] ^ 0x20);
                i += 2;
            }
            b'*' if i + 1 < raw.len() && !out.is_empty() => {
                let n = raw[i + 1].saturating_sub(29) as usize;
                let last = *out.last().unwrap_or(&0);
                out.extend(std::iter::repeat_n(last, n));
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Frames `body` as `$body#cs`, escaping the bytes the protocol reserves.
pub fn encode_packet(body: &[u8]) -> Vec<u8> {
    let mut esc = Vec::with_capacity(body.len() + 4);
    for &b in body {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            esc.push(b'}');
            esc.push(b ^ 0x20);
        } else {
            esc.push(b);
        }
    }
    let cs = checksum(&esc);
    let mut out = Vec::with_capacity(esc.len() + 4);
    out.push(b'$');
    out.extend_from_slice(&esc);
    out.extend_from_slice(format!("#{cs:02x}").as_bytes());
    out
}

impl PacketParser {
    pub fn new() -> Self {
        PacketParser {
            state: State::Idle,
            notification: false,
            raw: Vec::new(),
            garbage: 0,
        }
    }

    /// Consumes `bytes`, appending every complete event to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        for &b in bytes {
            self.step(b, out);
        }
    }

    fn start(&mut self, notification: bool) {
        self.garbage += self.raw.len() as u64;
        self.raw.clear();
        self.notification = notification;
        self.state = State::Body;
    }

    fn step(&mut self, b: u8, out: &mut Vec<Event>) {
        match self.state {
            State::Idle => match b {
                b'+' => out.push(Event::Ack),
                b'-' => out.push(Event::Nack),
                b'$' => self.start(false),
                b'%' => self.start(true),
                _ => self.garbage += 1,
            },
            State::Body => match b {
                b'#' => self.state = State::Sum1,
                // A start byte inside a body means we joined mid-stream or the packet was cut:
                // resynchronise on the new packet.
                b'$' => self.start(false),
                _ if self.raw.len() >= MAX_BODY => {
                    self.garbage += self.raw.len() as u64 + 1;
                    self.raw.clear();
                    self.state = State::Idle;
                }
                _ => self.raw.push(b),
            },
            // '$' is never a checksum digit: the packet was cut, a new one starts.
            State::Sum1 | State::Sum2(_) if b == b'$' => self.start(false),
            State::Sum1 => self.state = State::Sum2(b),
            State::Sum2(hi) => {
                let ok = match (hex_val(hi), hex_val(b)) {
                    (Some(h), Some(l)) => (h << 4 | l) == checksum(&self.raw),
                    _ => false,
                };
                let raw = std::mem::take(&mut self.raw);
                self.state = State::Idle;
                out.push(if !ok {
                    Event::BadChecksum
                } else if self.notification {
                    Event::Notification(decode_body(&raw))
                } else {
                    Event::Packet(decode_body(&raw))
                });
            }
        }
    }
}

fn to_hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn from_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
        .collect()
}

/// Whether `p` is a stop reply (`S..`, `T..`) and the guest is now stopped.
fn is_stop_reply(p: &[u8]) -> bool {
    matches!(p.first(), Some(b'S' | b'T'))
}

/// A connection to QEMU's gdbstub.
#[derive(Debug)]
pub struct GdbClient {
    stream: UnixStream,
    path: PathBuf,
    parser: PacketParser,
    pending: VecDeque<Event>,
    no_ack: bool,
    /// The guest runs (we sent `c` and saw no stop since).
    running: bool,
    depth: u32,
    ram: Vec<Range<u64>>,
    /// Interrupt/continue cycles so far (benchmarks and tests read it).
    pub stops: u64,
    /// The handshake finished: only then is there a session to detach from.
    ready: bool,
    /// Processes attached with the multiprocess extension ([`GdbClient::cores`]); empty
    /// without it. Each is detached by its id.
    processes: Vec<u32>,
}

impl GdbClient {
    /// Connects to the gdbstub at `path` and lets the guest run (QEMU stops the guest when a
    /// debugger connects). `ram` is the board's RAM, where RTT may be searched.
    pub fn connect(path: &Path, ram: Vec<Range<u64>>) -> Result<Self, TargetError> {
        let stream = UnixStream::connect(path).map_err(|source| TargetError::GdbConnect {
            path: path.display().to_string(),
            source,
        })?;
        let mut c = GdbClient {
            stream,
            path: path.to_path_buf(),
            parser: PacketParser::new(),
            pending: VecDeque::new(),
            no_ack: false,
            running: false,
            depth: 0,
            ram,
            stops: 0,
            ready: false,
            processes: Vec::new(),
        };
        c.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| c.io("set a timeout", e))?;
        // The stub may not support no-ack mode: then an empty reply and we keep acknowledging.
        let r = c.request(b"QStartNoAckMode", "QStartNoAckMode")?;
        if r == b"OK" {
            c.no_ack = true;
        }
        let r = c.request(b"?", "the stop-reason query")?;
        if !is_stop_reply(&r) {
            return Err(TargetError::GdbProtocol {
                what: "`?`".into(),
                reply: quote_bytes(&r, 200),
            });
        }
        c.ready = true;
        c.resume()?;
        Ok(c)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &str, source: std::io::Error) -> TargetError {
        TargetError::GdbIo {
            path: self.path.display().to_string(),
            what: what.to_string(),
            source,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), TargetError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| self.io("write", e))
    }

    fn next_event(&mut self, what: &str, deadline: Instant) -> Result<Event, TargetError> {
        let mut buf = [0u8; 4096];
        let mut evs = Vec::new();
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(TargetError::GdbTimeout {
                    what: what.to_string(),
                    secs: REPLY_TIMEOUT.as_secs(),
                });
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(self.io(
                        "read",
                        std::io::Error::new(ErrorKind::UnexpectedEof, "QEMU closed the socket"),
                    ));
                }
                Ok(n) => {
                    self.parser.feed(&buf[..n], &mut evs);
                    self.pending.extend(evs.drain(..));
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io("read", e)),
            }
        }
    }

    /// Sends one packet, retransmitting on `-` while acks are on.
    fn send_packet(&mut self, body: &[u8], what: &str) -> Result<(), TargetError> {
        let frame = encode_packet(body);
        for _ in 0..4 {
            self.send_raw(&frame)?;
            if self.no_ack {
                return Ok(());
            }
            let deadline = Instant::now() + REPLY_TIMEOUT;
            match self.next_event(what, deadline)? {
                Event::Ack => return Ok(()),
                Event::Nack => {}
                // A packet before the ack (the stub skipped it): keep it for the reply.
                other => {
                    self.pending.push_front(other);
                    return Ok(());
                }
            }
        }
        Err(TargetError::GdbProtocol {
            what: what.to_string(),
            reply: "packet rejected four times".into(),
        })
    }

    /// Waits for the next packet, acknowledging it when acks are on. Stop replies are only an
    /// answer when `want_stop`; otherwise they are stale (QEMU sends one unasked when a debugger
    /// connects and stops the guest) and skipped: no other reply mpfr asks for starts with S/T.
    fn recv_packet(&mut self, what: &str, want_stop: bool) -> Result<Vec<u8>, TargetError> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.next_event(what, deadline)? {
                Event::Packet(p) => {
                    if !self.no_ack {
                        self.send_raw(b"+")?;
                    }
                    // Console output from the stub (`O..`) is not the answer.
                    if p.first() == Some(&b'O') && p.len() > 1 && p != b"OK" {
                        continue;
                    }
                    if !want_stop && is_stop_reply(&p) {
                        continue;
                    }
                    return Ok(p);
                }
                Event::BadChecksum if !self.no_ack => self.send_raw(b"-")?,
                Event::BadChecksum => {
                    return Err(TargetError::GdbProtocol {
                        what: what.to_string(),
                        reply: "a packet with a bad checksum".into(),
                    });
                }
                Event::Ack | Event::Nack | Event::Notification(_) => {}
            }
        }
    }

    fn request(&mut self, body: &[u8], what: &str) -> Result<Vec<u8>, TargetError> {
        self.send_packet(body, what)?;
        self.recv_packet(what, body == b"?")
    }

    /// Stops the guest (0x03) and waits for its stop reply.
    fn interrupt(&mut self) -> Result<(), TargetError> {
        if !self.running {
            return Ok(());
        }
        self.send_raw(&[0x03])?;
        loop {
            let p = self.recv_packet("the interrupt", true)?;
            if is_stop_reply(&p) {
                break;
            }
            if matches!(p.first(), Some(b'W' | b'X')) {
                return Err(TargetError::GdbProtocol {
                    what: "the interrupt".into(),
                    reply: format!("guest exited ({})", quote_bytes(&p, 200)),
                });
            }
        }
        self.running = false;
        self.stops += 1;
        Ok(())
    }

    /// Lets the guest run again; `c` has no reply until the next stop.
    fn resume(&mut self) -> Result<(), TargetError> {
        if self.running {
            return Ok(());
        }
        self.send_packet(b"c", "continue")?;
        self.running = true;
        Ok(())
    }

    fn read_stopped(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(CHUNK);
            let a = addr + done as u64;
            let r = self.request(format!("m{a:x},{n:x}").as_bytes(), "a memory read")?;
            let bytes = match from_hex(&r) {
                Some(b) if !b.is_empty() && b.len() <= n && !(r.len() == 3 && r[0] == b'E') => b,
                _ => {
                    return Err(TargetError::Access {
                        op: "read",
                        addr: a,
                        len: n,
                        target: self.describe(),
                        why: format!("gdbstub replied {}", quote_bytes(&r, 200)),
                    });
                }
            };
            buf[done..done + bytes.len()].copy_from_slice(&bytes);
            done += bytes.len();
        }
        Ok(())
    }

    fn write_stopped(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            let a = addr + (i * CHUNK) as u64;
            let body = format!("M{a:x},{:x}:{}", chunk.len(), to_hex(chunk));
            let r = self.request(body.as_bytes(), "a memory write")?;
            if r != b"OK" {
                return Err(TargetError::Access {
                    op: "write",
                    addr: a,
                    len: chunk.len(),
                    target: self.describe(),
                    why: format!("gdbstub replied {}", quote_bytes(&r, 200)),
                });
            }
        }
        Ok(())
    }

    /// Runs a QEMU monitor command through the stub (`qRcmd`), e.g. `system_reset`; returns
    /// the monitor's output.
    pub fn monitor(&mut self, command: &str) -> Result<String, TargetError> {
        self.hold()?;
        let body = format!("qRcmd,{}", to_hex(command.as_bytes()));
        self.send_packet(body.as_bytes(), "a monitor command")?;
        // Output arrives as `O<hex>` packets, then `OK` (or `E..`).
        let mut text = Vec::new();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let r = loop {
            match self.next_event("a monitor command", deadline) {
                Ok(Event::Packet(p)) => {
                    if !self.no_ack {
                        self.send_raw(b"+")?;
                    }
                    if p.len() > 1 && p[0] == b'O' && p != b"OK" {
                        text.extend(from_hex(&p[1..]).unwrap_or_default());
                        continue;
                    }
                    if is_stop_reply(&p) {
                        continue;
                    }
                    break Ok(p);
                }
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        self.release()?;
        let r = r?;
        if r != b"OK" && !r.is_empty() {
            return Err(TargetError::GdbProtocol {
                what: format!("monitor command `{command}`"),
                reply: quote_bytes(&r, 200),
            });
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Every CPU of the machine as a gdb thread id, while the guest is held ([`Memory::hold`]).
    ///
    /// QEMU puts each CPU cluster in a process of its own (mps2-an521: one per core) and shows
    /// a debugger only the first unless it speaks the multiprocess extension and attaches the
    /// others: this does both. Ids look like `p1.1`, `p2.2` (or `1` without the extension).
    pub fn cores(&mut self) -> Result<Vec<String>, TargetError> {
        let r = self.request(b"qSupported:multiprocess+", "qSupported")?;
        if String::from_utf8_lossy(&r).contains("multiprocess+") && self.processes.is_empty() {
            self.processes.push(1);
            // Attach processes 2, 3, .. until the stub says there is no such process.
            for pid in 2..=16u32 {
                self.send_packet(format!("vAttach;{pid:x}").as_bytes(), "vAttach")?;
                let r = self.recv_packet("vAttach", true)?;
                if !is_stop_reply(&r) {
                    break;
                }
                self.processes.push(pid);
            }
        }
        let mut ids = Vec::new();
        let mut r = self.request(b"qfThreadInfo", "the thread list")?;
        while r.first() == Some(&b'm') {
            ids.extend(
                String::from_utf8_lossy(&r[1..])
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
            r = self.request(b"qsThreadInfo", "the thread list")?;
        }
        if ids.is_empty() {
            return Err(TargetError::GdbProtocol {
                what: "qfThreadInfo".into(),
                reply: String::from_utf8_lossy(&r).into_owned(),
            });
        }
        Ok(ids)
    }

    /// Makes `thread` (an id from [`GdbClient::cores`]) the one that register and memory
    /// packets act on: memory too, so each core's private peripherals (its SCB) are read as
    /// that core sees them.
    pub fn select(&mut self, thread: &str) -> Result<(), TargetError> {
        let r = self.request(format!("Hg{thread}").as_bytes(), "Hg")?;
        if r != b"OK" {
            return Err(TargetError::GdbProtocol {
                what: format!("Hg{thread}"),
                reply: String::from_utf8_lossy(&r).into_owned(),
            });
        }
        Ok(())
    }

    /// The selected thread's general registers as the `g` packet lists them (32-bit words,
    /// target order: r0-r15 first on ARM).
    pub fn registers(&mut self) -> Result<Vec<u32>, TargetError> {
        let r = self.request(b"g", "the registers")?;
        let bytes = from_hex(&r).ok_or_else(|| TargetError::GdbProtocol {
            what: "g".into(),
            reply: String::from_utf8_lossy(&r).into_owned(),
        })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect())
    }

    /// One register of the selected thread by gdb number, or `None` when the stub has no
    /// such register.
    pub fn register(&mut self, n: u32) -> Result<Option<u32>, TargetError> {
        let r = self.request(format!("p{n:x}").as_bytes(), "a register")?;
        Ok(from_hex(&r)
            .filter(|b| b.len() >= 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// A target description file (`target.xml` and what it includes), or `None` when the stub
    /// does not serve it.
    pub fn target_xml(&mut self, name: &str) -> Result<Option<String>, TargetError> {
        let mut text = Vec::new();
        loop {
            let q = format!("qXfer:features:read:{name}:{:x},{:x}", text.len(), 0x800);
            let r = self.request(q.as_bytes(), "qXfer")?;
            match r.first() {
                Some(b'm') => text.extend_from_slice(&r[1..]),
                Some(b'l') => {
                    text.extend_from_slice(&r[1..]);
                    return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
                }
                _ => return Ok(None),
            }
        }
    }

    /// Detaches: QEMU lets the guest run on without a debugger.
    pub fn detach(mut self) -> Result<(), TargetError> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<(), TargetError> {
        if !self.ready {
            return Ok(());
        }
        self.ready = false;
        self.interrupt()?;
        if self.processes.is_empty() {
            self.send_packet(b"D", "detach")?;
            // QEMU answers OK and resumes the guest; the answer is not needed.
            let _ = self.recv_packet("detach", false);
        }
        // With several processes attached, each is detached by id; the last one lets it run.
        for pid in std::mem::take(&mut self.processes) {
            self.send_packet(format!("D;{pid:x}").as_bytes(), "detach")?;
            let _ = self.recv_packet("detach", false);
        }
        self.running = true;
        Ok(())
    }
}

impl Drop for GdbClient {
    fn drop(&mut self) {
        // QEMU keeps the guest paused after a debugger vanishes mid-stop: always detach.
        let _ = self.detach_inner();
    }
}

impl Memory for GdbClient {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.hold()?;
        let r = self.read_stopped(addr, buf);
        self.release()?;
        r
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.hold()?;
        let r = self.write_stopped(addr, data);
        self.release()?;
        r
    }

    fn hold(&mut self) -> Result<(), TargetError> {
        if self.depth == 0 {
            self.interrupt()?;
        }
        self.depth += 1;
        Ok(())
    }

    fn release(&mut self) -> Result<(), TargetError> {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.resume()?;
        }
        Ok(())
    }

    fn ram_ranges(&self) -> Vec<Range<u64>> {
        self.ram.clone()
    }

    fn describe(&self) -> String {
        format!("the QEMU gdbstub at {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = PacketParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    const STREAM: &[u8] = b"+$OK#9a-$T05thread:01;#07xx$0* #7a+%Stop:T05#99";

    fn expected() -> Vec<Event> {
        vec![
            Event::Ack,
            Event::Packet(b"OK".to_vec()),
            Event::Nack,
            Event::Packet(b"T05thread:01;".to_vec()),
            // `0* ` = '0' then ' '-29 = 3 more zeros.
            Event::Packet(b"0000".to_vec()),
            Event::Ack,
            Event::Notification(b"Stop:T05".to_vec()),
        ]
    }

    /// A stub whose reply carries an escape sequence and a bidi override: the error quotes it
    /// escaped and cut, never raw.
    #[test]
    fn a_stub_reply_with_controls_is_quoted_escaped_in_the_error() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("gdb");
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut evil = b"\x1b[2J\x1b]0;pwned\x07\xe2\x80\xae".to_vec();
            evil.extend(std::iter::repeat_n(b'x', 1000));
            // Every packet the client sends ends with `#` and two checksum digits.
            let replies = [encode_packet(b""), encode_packet(&evil)];
            let (mut seen, mut buf) = (Vec::new(), [0u8; 256]);
            for reply in replies {
                while !seen.contains(&b'#') {
                    let n = s.read(&mut buf).expect("read");
                    assert!(n > 0, "the client hung up");
                    seen.extend_from_slice(&buf[..n]);
                }
                let end = seen.iter().position(|b| *b == b'#').expect("#") + 3;
                while seen.len() < end {
                    let n = s.read(&mut buf).expect("read");
                    seen.extend_from_slice(&buf[..n]);
                }
                seen.drain(..end);
                s.write_all(b"+").expect("ack");
                s.write_all(&reply).expect("reply");
            }
            // Stay until the client hangs up: it acknowledges the last reply.
            while s.read(&mut buf).is_ok_and(|n| n > 0) {}
        });
        let err = GdbClient::connect(&sock, vec![]).expect_err("not a stop reply");
        server.join().expect("server");
        let text = err.to_string();
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("\\x1b[2J"), "{text}");
        assert!(text.contains("more bytes"), "{text}");
        assert!(text.len() < 600, "{text}");
    }

    #[test]
    fn checksums_of_fixtures_are_right() {
        assert_eq!(checksum(b"OK"), 0x9a);
        assert_eq!(checksum(b"T05thread:01;"), 0x07);
        assert_eq!(checksum(b"0* "), 0x7a);
        assert_eq!(checksum(b"Stop:T05"), 0x99);
    }

    #[test]
    fn parses_whole_stream() {
        assert_eq!(parse_all(&[STREAM]), expected());
    }

    #[test]
    fn parses_at_every_split_point() {
        for i in 0..=STREAM.len() {
            assert_eq!(
                parse_all(&[&STREAM[..i], &STREAM[i..]]),
                expected(),
                "split {i}"
            );
            for j in i..=STREAM.len() {
                assert_eq!(
                    parse_all(&[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]),
                    expected(),
                    "split {i}/{j}"
                );
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&chunks), expected());
    }

    #[test]
    fn bad_checksum_is_reported_and_parser_recovers() {
        let ev = parse_all(&[b"$OK#00$OK#zz$OK#9a"]);
        assert_eq!(
            ev,
            vec![
                Event::BadChecksum,
                Event::BadChecksum,
                Event::Packet(b"OK".to_vec())
            ]
        );
    }

    #[test]
    fn escapes_and_run_length() {
        // `}` escapes: 0x7d 0x03 -> '#'; `a*#` -> 'a' + 6 more.
        assert_eq!(decode_body(b"x}\x03y"), b"x#y");
        assert_eq!(decode_body(b"a*#"), b"aaaaaaa");
        // Escaped byte then a repeat repeats the unescaped byte.
        assert_eq!(decode_body(b"}\x04*!"), b"$$$$$");
        // Dangling escape and a leading repeat are kept, not a panic.
        assert_eq!(decode_body(b"*!"), b"*!");
        assert_eq!(decode_body(b"ab}"), b"ab}");
    }

    #[test]
    fn encode_round_trips_through_parser() {
        let body = b"M20000000,4:$#}*";
        let framed = encode_packet(body);
        assert_eq!(parse_all(&[&framed]), vec![Event::Packet(body.to_vec())]);
    }

    #[test]
    fn restart_inside_body_resyncs() {
        let ev = parse_all(&[b"$trunc$OK#9a"]);
        assert_eq!(ev, vec![Event::Packet(b"OK".to_vec())]);
    }

    #[test]
    fn overlong_body_is_dropped() {
        let mut big = vec![b'$'];
        big.extend(std::iter::repeat_n(b'a', MAX_BODY + 10));
        big.extend_from_slice(b"#00$OK#9a");
        let ev = parse_all(&[&big]);
        assert_eq!(ev.last(), Some(&Event::Packet(b"OK".to_vec())));
        assert!(
            !ev.iter()
                .any(|e| matches!(e, Event::Packet(p) if p.len() > 2))
        );
    }

    #[test]
    fn garbage_never_panics_and_valid_packets_still_come_through() {
        // Deterministic pseudo-random garbage (xorshift) around a valid packet.
        let mut x: u32 = 0x1234_5678;
        for round in 0..200 {
            let mut bytes = Vec::new();
            for _ in 0..(round * 7 % 300) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Keep '$' out of the garbage tail so the packet after it stays whole; '#' and
                // '%' and '}' may appear.
                let b = (x & 0xff) as u8;
                bytes.push(if b == b'$' { b'#' } else { b });
            }
            let mut p = PacketParser::new();
            let mut out = Vec::new();
            p.feed(&bytes, &mut out);
            // Any open packet is cut by the next start byte.
            p.feed(b"$OK#9a", &mut out);
            assert_eq!(
                out.last(),
                Some(&Event::Packet(b"OK".to_vec())),
                "round {round}"
            );
        }
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(from_hex(b"00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(from_hex(b"0"), None);
        assert_eq!(from_hex(b"zz"), None);
    }
}
