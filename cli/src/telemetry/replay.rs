//! A recorded RTT memory image replayed as [`Memory`]: what the RTT reader read from a running
//! target, poll by poll, so telemetry can be decoded and rendered with no target at all (the
//! `threads ls` snapshot test, `mpfr threads ls --memory-image FILE`).
//!
//! The file is text. `#` starts a comment; `ram START END` bounds what a scan looks at (the
//! control block and its ring buffers); `block ADDR` is the control block; each `poll` starts
//! the bytes one poll read, as `ADDR HEX` lines. Bytes never recorded read as zero.
//!
//! The target "runs" between polls: the next poll's bytes appear at the start of a batch
//! ([`Memory::hold`]) once the reader has drained every up channel, so each recorded poll is
//! seen by exactly one poll of the reader, however often it holds the target in between (to
//! ask for a `hello`, say).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::device::memory::{Memory, TargetError};
use crate::telemetry::monitor::{Error, Result};
use crate::telemetry::rtt::up_drained;

/// Bytes at an address.
pub type Region = (u64, Vec<u8>);

/// A memory image: the RAM bounds, the control block and the bytes of each poll, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryImage {
    pub ram: Vec<Range<u64>>,
    pub block: u64,
    pub polls: Vec<Vec<Region>>,
}

/// Bytes per data line of the text form.
const LINE: usize = 32;

impl MemoryImage {
    /// Reads the text form; a malformed line is a usage error naming the file and line.
    pub fn load(path: &Path) -> Result<MemoryImage> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(
                format!("cannot read the memory image {}: {e}", path.display()),
                "pass a memory image recorded as docs/threads.md describes",
            )
        })?;
        Self::parse(&text).map_err(|(line, why)| {
            // Line 0: the file as a whole.
            let at = match line {
                0 => path.display().to_string(),
                n => format!("{}:{n}", path.display()),
            };
            Error::usage(
                format!("{at}: {why}"),
                "a memory image has `ram START END`, `block ADDR`, then `poll` sections of `ADDR HEX` lines",
            )
        })
    }

    /// Parses the text form; errors are (line number, or 0 for the whole file, what is wrong).
    pub fn parse(text: &str) -> Result<MemoryImage, (usize, String)> {
        let mut img = MemoryImage::default();
        let mut block = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["ram", start, end] => {
                    let (s, e) = (
                        hex_u64(start).map_err(|w| (n, w))?,
                        hex_u64(end).map_err(|w| (n, w))?,
                    );
                    if e <= s {
                        return Err((n, format!("empty RAM range {start}..{end}")));
                    }
                    img.ram.push(s..e);
                }
                ["block", addr] => block = Some(hex_u64(addr).map_err(|w| (n, w))?),
                ["poll"] => img.polls.push(Vec::new()),
                [addr, bytes] => {
                    let Some(poll) = img.polls.last_mut() else {
                        return Err((n, "bytes before the first `poll`".into()));
                    };
                    let addr = hex_u64(addr).map_err(|w| (n, w))?;
                    let bytes = hex_bytes(bytes).map_err(|w| (n, w))?;
                    // Consecutive lines of one read join again into one region.
                    match poll.last_mut() {
                        Some((a, b)) if *a + b.len() as u64 == addr => b.extend(bytes),
                        _ => poll.push((addr, bytes)),
                    }
                }
                _ => return Err((n, format!("cannot read `{line}`"))),
            }
        }
        img.block = block.ok_or((0, "no `block ADDR` line".to_string()))?;
        if img.ram.is_empty() || img.polls.is_empty() {
            return Err((0, "no `ram` line or no `poll`".into()));
        }
        Ok(img)
    }

    /// The text form [`MemoryImage::parse`] reads, after a `#` comment `header`.
    pub fn to_text(&self, header: &str) -> String {
        let mut out = String::new();
        for l in header.lines() {
            let _ = writeln!(out, "# {l}");
        }
        for r in &self.ram {
            let _ = writeln!(out, "ram {:#010x} {:#010x}", r.start, r.end);
        }
        let _ = writeln!(out, "block {:#010x}", self.block);
        for poll in &self.polls {
            out.push_str("poll\n");
            for (addr, bytes) in poll {
                for (i, chunk) in bytes.chunks(LINE).enumerate() {
                    let _ = write!(out, "{:#010x} ", addr + (i * LINE) as u64);
                    for b in chunk {
                        let _ = write!(out, "{b:02x}");
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn hex_u64(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| format!("`{s}` is not a hex address"))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{s}` is not hex bytes"))
        })
        .collect()
}

/// A [`MemoryImage`] played back as a running target.
#[derive(Debug)]
pub struct ReplayMemory {
    path: PathBuf,
    ram: Vec<Range<u64>>,
    block: u64,
    /// Polls the reader has not seen yet.
    pending: VecDeque<Vec<Region>>,
    /// The memory now: later regions cover earlier ones (the host's writes land here too).
    now: Vec<Region>,
}

impl ReplayMemory {
    /// The target as the first recorded poll saw it.
    pub fn new(image: MemoryImage, path: PathBuf) -> Self {
        let mut pending: VecDeque<_> = image.polls.into();
        let now = pending.pop_front().unwrap_or_default();
        ReplayMemory {
            path,
            ram: image.ram,
            block: image.block,
            pending,
            now,
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self::new(MemoryImage::load(path)?, path.to_path_buf()))
    }
}

impl Memory for ReplayMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        buf.fill(0);
        let end = addr + buf.len() as u64;
        for (at, bytes) in &self.now {
            let (s, e) = ((*at).max(addr), (at + bytes.len() as u64).min(end));
            if s < e {
                buf[(s - addr) as usize..(e - addr) as usize]
                    .copy_from_slice(&bytes[(s - at) as usize..(e - at) as usize]);
            }
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.now.push((addr, data.to_vec()));
        Ok(())
    }

    fn hold(&mut self) -> Result<(), TargetError> {
        let block = self.block;
        if !self.pending.is_empty() && up_drained(self, block)? {
            let next = self.pending.pop_front().unwrap_or_default();
            self.now.extend(next);
        }
        Ok(())
    }

    fn ram_ranges(&self) -> Vec<Range<u64>> {
        self.ram.clone()
    }

    fn describe(&self) -> String {
        format!("the memory image {}", self.path.display())
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_joins_lines() {
        let img = MemoryImage {
            ram: vec![0x2000_0000..0x2000_1000],
            block: 0x2000_0100,
            polls: vec![
                vec![(0x2000_0100, (0..70).collect())],
                vec![(0x2000_0200, vec![1, 2]), (0x2000_0300, vec![3])],
            ],
        };
        let text = img.to_text("made by a test");
        assert!(text.starts_with("# made by a test\n"), "{text}");
        assert_eq!(MemoryImage::parse(&text), Ok(img));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = MemoryImage::parse("ram 0 100\nblock 10\npoll\n10 abc\n").unwrap_err();
        assert_eq!(e.0, 4, "{e:?}");
        assert!(e.1.contains("odd number"), "{e:?}");
        let e = MemoryImage::parse("10 ab\n").unwrap_err();
        assert_eq!(e, (1, "bytes before the first `poll`".into()));
        let e = MemoryImage::parse("ram 0 100\npoll\n").unwrap_err();
        assert!(e.1.contains("block"), "{e:?}");
    }

    /// A block with one up channel (buffer at 0x200, 16 bytes) whose `WrOff` is `wr`, `RdOff` 0.
    fn block(wr: u32) -> Region {
        let mut b = vec![0u8; 48];
        b[..10].copy_from_slice(b"SEGGER RTT");
        b[16] = 1;
        b[28..32].copy_from_slice(&0x200u32.to_le_bytes());
        b[32..36].copy_from_slice(&16u32.to_le_bytes());
        b[36..40].copy_from_slice(&wr.to_le_bytes());
        (0x100, b)
    }

    #[test]
    fn the_next_poll_appears_only_once_the_reader_drained_the_last() {
        let img = MemoryImage {
            ram: vec![0..0x1000],
            block: 0x100,
            polls: vec![
                vec![block(2), (0x200, vec![7, 8])],
                vec![block(3), (0x202, vec![9])],
            ],
        };
        let mut m = ReplayMemory::new(img, "x".into());
        let mut b = [0u8; 3];
        m.hold().unwrap();
        m.read(0x200, &mut b).unwrap();
        assert_eq!(b, [7, 8, 0], "unrecorded bytes read as zero");
        m.hold().unwrap();
        m.read(0x200, &mut b).unwrap();
        assert_eq!(b, [7, 8, 0], "poll 2 shown before the reader took poll 1");
        // The reader advances RdOff to WrOff: the target runs on to the next poll.
        m.write(0x100 + 24 + 16, &2u32.to_le_bytes()).unwrap();
        m.hold().unwrap();
        m.read(0x200, &mut b).unwrap();
        assert_eq!(b, [7, 8, 9]);
    }

    /// Logs every read of the memory it wraps: the bytes one poll of the reader needed.
    struct Recorder {
        inner: Box<dyn Memory>,
        log: Vec<Region>,
    }

    impl Memory for Recorder {
        fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
            self.inner.read(addr, buf)?;
            self.log.push((addr, buf.to_vec()));
            Ok(())
        }
        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
            self.inner.write(addr, data)
        }
        fn hold(&mut self) -> Result<(), TargetError> {
            self.inner.hold()
        }
        fn release(&mut self) -> Result<(), TargetError> {
            self.inner.release()
        }
        fn ram_ranges(&self) -> Vec<Range<u64>> {
            self.inner.ram_ranges()
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// One poll's reads as runs of bytes: a byte read twice keeps its later value.
    fn merged(log: Vec<Region>) -> Vec<Region> {
        let mut bytes = std::collections::BTreeMap::new();
        for (addr, data) in log {
            for (i, b) in data.into_iter().enumerate() {
                bytes.insert(addr + i as u64, b);
            }
        }
        let mut out: Vec<Region> = Vec::new();
        for (a, b) in bytes {
            match out.last_mut() {
                Some((at, run)) if *at + run.len() as u64 == a => run.push(b),
                _ => out.push((a, vec![b])),
            }
        }
        out
    }

    /// Re-records `cli/tests/cli/threads_ls.mem` (the `threads ls` snapshot test's input) from
    /// the reference firmware on a freshly started virtual board:
    ///
    /// ```text
    /// cargo test -p mpfr --lib --no-run && mpfr build --board qemu-mps2-an385
    /// mpfr flash --board qemu-mps2-an385
    /// cargo test -p mpfr --lib record_threads_ls_image -- --ignored
    /// mpfr stop --board qemu-mps2-an385
    /// ```
    ///
    /// (the same `MPFR_STATE_DIR` for all; built first so the recording starts within a second
    /// of boot, while the backlog is small and nothing has overflowed). It reads like `threads ls` does: the boot
    /// backlog first, a `hello` request, then polls until a fresh sample has CPU shares.
    #[test]
    #[ignore = "needs the reference firmware running on the qemu-mps2-an385 virtual board"]
    fn record_threads_ls_image() {
        use crate::board::Platform;
        use crate::device::memory::gdb::GdbClient;
        use crate::telemetry::model::{Telemetry, Update};
        use crate::telemetry::rtt::{Locator, Rtt, Status, elf_info};
        use std::time::{Duration, Instant};

        let board = crate::board::builtin("qemu-mps2-an385");
        let Platform::Qemu(machine) = &board.platform else {
            panic!("qemu-mps2-an385 is a QEMU board");
        };
        let vb = crate::telemetry::monitor::vboard(&board.name).expect("a running virtual board");
        let ram = machine.rtt_ranges(board.ram.bytes());
        let gdb = GdbClient::connect(&vb.gdb_socket, ram.clone()).expect("its gdbstub");
        let mut mem = Recorder {
            inner: Box::new(gdb),
            log: Vec::new(),
        };
        let elf = elf_info(&vb.image).expect("the image's ELF");
        let mut rtt = Rtt::new(Locator {
            elf: Some(elf),
            scan: Vec::new(),
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(
            rtt.attach(&mut mem).expect("attach"),
            Status::Attached { .. }
        ) {
            assert!(
                Instant::now() < deadline,
                "the agent never set up its block"
            );
            mem.log.clear();
            std::thread::sleep(Duration::from_millis(20));
        }
        let cb = rtt.block().expect("attached").clone();
        let channel = cb.up_named("mpfr").expect("the telemetry channel").index;
        let mut tel = Telemetry::new(&board.name);
        let mut polls = Vec::new();
        let mut fresh = 0;
        while fresh == 0 {
            assert!(
                Instant::now() < deadline,
                "no sample with CPU shares within a minute"
            );
            let poll = rtt.poll(&mut mem).expect("poll");
            if poll.bytes() == 0 && !polls.is_empty() {
                mem.log.clear();
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            for (idx, data) in &poll.data {
                if *idx == channel && !polls.is_empty() {
                    let samples = tel.feed(data).into_iter();
                    fresh += samples.filter(|u| matches!(u, Update::Sample(s) if s.tasks.iter().any(|t| t.cpu_pct.is_some()))).count();
                }
            }
            polls.push(merged(std::mem::take(&mut mem.log)));
            if polls.len() == 1 {
                // As the monitor does after the backlog: ask for the board facts.
                let down = cb
                    .down_named("mpfr-cmd")
                    .expect("the command channel")
                    .index;
                rtt.write_down(&mut mem, down, b"hello\n").expect("hello");
                tel.target_restarted();
            }
        }
        // Bound the scan to the block and its buffers, inside the machine's RAM.
        let n = (cb.up.len() + cb.down.len()) as u64;
        let pieces: Vec<Range<u64>> = std::iter::once(cb.addr..cb.addr + 24 + 24 * n)
            .chain(
                cb.up
                    .iter()
                    .chain(&cb.down)
                    .map(|c| c.buffer..c.buffer + c.size as u64),
            )
            .collect();
        let ram = ram
            .iter()
            .filter_map(|r| {
                let inside: Vec<_> = pieces.iter().filter(|p| r.contains(&p.start)).collect();
                let start = inside.iter().map(|p| p.start).min()?;
                Some(start..inside.iter().map(|p| p.end).max()?)
            })
            .collect();
        let img = MemoryImage {
            ram,
            block: cb.addr,
            polls,
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/threads_ls.mem");
        let header = "What `mpfr threads ls` read over RTT from the reference firmware on qemu-mps2-an385,\n\
                      poll by poll. Re-record: see `record_threads_ls_image` in cli/src/telemetry/replay.rs.";
        std::fs::write(&path, img.to_text(header)).expect("write the image");
        eprintln!("wrote {}", path.display());
    }
}
