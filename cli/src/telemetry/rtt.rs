//! SEGGER RTT on top of [`Memory`]: locate the control block (ELF symbol `_SEGGER_RTT`, else a
//! scan of the board's RAM), validate it, read the up channels, write the down channels, and
//! re-attach when the block moves or is cleared (target reset, reflash).
//!
//! Layout (32-bit targets): `id[16]` = "SEGGER RTT\0..", `i32 max_up` at +16, `i32 max_down`
//! at +20, then `max_up + max_down` descriptors of 24 bytes: `name*`, `buffer*`, `size`,
//! `WrOff`, `RdOff`, `flags` (low 2 bits: overflow mode). Up channels: the target writes
//! `WrOff`, the host advances `RdOff`. Down channels: the other way round.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use miette::Diagnostic;
use serde::Serialize;

use crate::device::memory::{Memory, TargetError};

/// The control block's id string.
pub const MAGIC: &[u8; 10] = b"SEGGER RTT";
/// The ELF symbol the agent exports.
pub const SYMBOL: &str = "_SEGGER_RTT";
const HEADER: usize = 24;
const DESC: usize = 24;
/// More channels than any real agent configures: a count above this is corruption.
pub const MAX_CHANNELS: u32 = 16;
/// Largest ring buffer accepted (1 MiB): bigger means a garbage size word.
pub const MAX_BUFFER: u32 = 1 << 20;
/// How often the RAM may be rescanned while no block is found (a scan stops QEMU for a while).
const RESCAN_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RttError {
    #[error("no RTT control block found on {target}: looked {looked}")]
    #[diagnostic(code(mpfr::rtt::absent), help("{elf_says}. {fix}"))]
    Absent {
        target: String,
        looked: String,
        elf_says: String,
        /// What to do, by what the ELF says.
        fix: String,
    },

    #[error("the RTT control block at {addr:#010x} is not initialised yet ({why})")]
    #[diagnostic(
        code(mpfr::rtt::not_initialised),
        help(
            "the firmware has not started the agent yet (still booting, or stopped before `mpfr_agent_init`; MicroPython with the mpfr module starts it with `import mpfr; mpfr.start(10)`); if it stays like this, check the firmware's console for a crash, or that the board runs this ELF (else pass its image with --elf)"
        )
    )]
    NotInitialised { addr: u64, why: String },

    #[error("cannot read the ELF {path}: {why}")]
    #[diagnostic(
        code(mpfr::rtt::elf),
        help("pass the firmware image the board runs with --elf (an ELF file, not .bin/.uf2)")
    )]
    Elf { path: String, why: String },

    #[error("no RTT up channel carries {what}; the block has: {have}")]
    #[diagnostic(
        code(mpfr::rtt::no_channel),
        help(
            "the firmware's agent is older or different from what mpfr expects; rebuild it with this mpfr"
        )
    )]
    NoChannel { what: String, have: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] TargetError),
}

/// What an ELF says about RTT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    pub path: PathBuf,
    /// Address of `_SEGGER_RTT`, if the image has it.
    pub symbol: Option<u64>,
    /// Number of symbols in the image (0: stripped).
    pub symbols: usize,
}

impl ElfInfo {
    /// One sentence for messages.
    pub fn says(&self) -> String {
        match self.symbol {
            Some(a) => format!("{} has `{SYMBOL}` at {a:#010x}", self.path.display()),
            None if self.symbols == 0 => format!(
                "{} has no symbol table (stripped), so the block cannot be found by name",
                self.path.display()
            ),
            None => format!(
                "{} has {} symbols but no `{SYMBOL}`: it was built without the RTT agent",
                self.path.display(),
                self.symbols
            ),
        }
    }
}

/// Reads the `_SEGGER_RTT` symbol from an ELF file.
pub fn elf_info(path: &Path) -> Result<ElfInfo, RttError> {
    use object::{Object, ObjectSymbol};
    let err = |why: String| RttError::Elf {
        path: path.display().to_string(),
        why,
    };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let file = object::File::parse(&*data).map_err(|e| err(e.to_string()))?;
    let symbols = file.symbols().count();
    let symbol = file
        .symbols()
        .find(|s| s.name() == Ok(SYMBOL))
        .map(|s| s.address());
    Ok(ElfInfo {
        path: path.to_path_buf(),
        symbol,
        symbols,
    })
}

/// What the target does when an up buffer is full (low 2 bits of the descriptor's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelMode {
    /// Drop the whole write that does not fit.
    NoBlockSkip,
    /// Write what fits, drop the rest.
    NoBlockTrim,
    /// Wait for the host to read (stalls the target without a host!).
    BlockIfFull,
    /// Reserved value 3.
    Unknown,
}

impl ChannelMode {
    pub fn from_flags(flags: u32) -> Self {
        match flags & 3 {
            0 => ChannelMode::NoBlockSkip,
            1 => ChannelMode::NoBlockTrim,
            2 => ChannelMode::BlockIfFull,
            _ => ChannelMode::Unknown,
        }
    }
}

/// One channel descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub index: usize,
    pub name: String,
    /// Target address of this descriptor.
    pub desc: u64,
    pub buffer: u64,
    pub size: u32,
    pub mode: ChannelMode,
}

impl Channel {
    /// A descriptor the firmware has not configured (no buffer): skipped when reading.
    pub fn configured(&self) -> bool {
        self.buffer != 0 && self.size != 0
    }
}

/// A validated control block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlBlock {
    pub addr: u64,
    pub up: Vec<Channel>,
    pub down: Vec<Channel>,
}

impl ControlBlock {
    fn len(&self) -> usize {
        HEADER + DESC * (self.up.len() + self.down.len())
    }

    /// The up channel with this name, case-insensitively.
    pub fn up_named(&self, name: &str) -> Option<&Channel> {
        self.up
            .iter()
            .find(|c| c.configured() && c.name.eq_ignore_ascii_case(name))
    }

    /// The down channel with this name, case-insensitively.
    pub fn down_named(&self, name: &str) -> Option<&Channel> {
        self.down
            .iter()
            .find(|c| c.configured() && c.name.eq_ignore_ascii_case(name))
    }

    /// Channel names for messages: `0 "Terminal", 1 "mpfr"`.
    pub fn list(&self) -> String {
        let mut v: Vec<String> = self
            .up
            .iter()
            .filter(|c| c.configured())
            .map(|c| format!("up {} {:?}", c.index, c.name))
            .collect();
        v.extend(
            self.down
                .iter()
                .filter(|c| c.configured())
                .map(|c| format!("down {} {:?}", c.index, c.name)),
        );
        if v.is_empty() {
            "no configured channels".into()
        } else {
            v.join(", ")
        }
    }
}

/// Raw descriptor words, before names are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawDesc {
    name: u32,
    buffer: u32,
    size: u32,
    wr: u32,
    rd: u32,
    flags: u32,
}

/// What the bytes at a candidate address are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A well-formed block.
    Valid,
    /// No id there at all (zeroed or other data).
    NoMagic,
    /// The id is there but the rest is not set up yet (zero counts or unconfigured buffers).
    Partial(String),
    /// The id is there but the contents are impossible.
    Corrupt(String),
}

fn word(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn counts(header: &[u8]) -> (u32, u32) {
    (word(header, 16), word(header, 20))
}

fn has_magic(b: &[u8]) -> bool {
    b.len() >= 11 && &b[..10] == MAGIC && b[10] == 0
}

fn in_ram(ram: &[Range<u64>], addr: u64, len: u64) -> bool {
    ram.iter()
        .any(|r| addr >= r.start && addr.saturating_add(len) <= r.end)
}

fn raw_descs(bytes: &[u8], n: usize) -> Vec<RawDesc> {
    (0..n)
        .map(|i| {
            let o = HEADER + i * DESC;
            RawDesc {
                name: word(bytes, o),
                buffer: word(bytes, o + 4),
                size: word(bytes, o + 8),
                wr: word(bytes, o + 12),
                rd: word(bytes, o + 16),
                flags: word(bytes, o + 20),
            }
        })
        .collect()
}

/// Whether the host has read every up channel of the block at `addr` (`RdOff == WrOff`).
pub fn up_drained(mem: &mut dyn Memory, addr: u64) -> Result<bool, TargetError> {
    let bytes = read_block_bytes(mem, addr)?;
    if bytes.len() == HEADER {
        return Ok(true);
    }
    let (up, _) = counts(&bytes);
    Ok(raw_descs(&bytes, up as usize)
        .iter()
        .all(|d| d.size == 0 || d.wr == d.rd))
}

/// Checks a block image (header and all descriptors) against the target's RAM. Pure.
pub fn validate(bytes: &[u8], ram: &[Range<u64>]) -> Verdict {
    if bytes.len() < HEADER || !has_magic(bytes) {
        return Verdict::NoMagic;
    }
    let (up, down) = counts(bytes);
    if up == 0 && down == 0 {
        return Verdict::Partial("no channels yet".into());
    }
    if up > MAX_CHANNELS || down > MAX_CHANNELS {
        return Verdict::Corrupt(format!("impossible channel counts ({up} up, {down} down)"));
    }
    let n = (up + down) as usize;
    if bytes.len() < HEADER + n * DESC {
        return Verdict::Corrupt("block shorter than its descriptors".into());
    }
    let descs = raw_descs(bytes, n);
    let mut configured = 0;
    for (i, d) in descs.iter().enumerate() {
        let which = if i < up as usize {
            format!("up {i}")
        } else {
            format!("down {}", i - up as usize)
        };
        if d.buffer == 0 && d.size == 0 {
            continue;
        }
        if d.buffer == 0 || d.size == 0 {
            return Verdict::Partial(format!("{which} is half set up"));
        }
        if d.size < 2 || d.size > MAX_BUFFER {
            return Verdict::Corrupt(format!("{which} has an impossible size {}", d.size));
        }
        if !in_ram(ram, d.buffer as u64, d.size as u64) {
            return Verdict::Corrupt(format!(
                "{which} buffer {:#010x}+{} lies outside RAM",
                d.buffer, d.size
            ));
        }
        if d.wr >= d.size || d.rd >= d.size {
            return Verdict::Corrupt(format!(
                "{which} offsets (wr {}, rd {}) outside its {}-byte buffer",
                d.wr, d.rd, d.size
            ));
        }
        configured += 1;
    }
    if configured == 0 {
        return Verdict::Partial("no channel has a buffer yet".into());
    }
    Verdict::Valid
}

fn read_name(mem: &mut dyn Memory, ptr: u32) -> String {
    if ptr == 0 {
        return String::new();
    }
    let mut b = [0u8; 32];
    // Names often live in flash; a failed read only costs the name.
    if mem.read(ptr as u64, &mut b).is_err() {
        return String::new();
    }
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    // Target memory: a name with controls in it is shown escaped wherever it appears.
    crate::util::sanitize::escape_text(&String::from_utf8_lossy(&b[..end]), 32)
}

fn build_block(mem: &mut dyn Memory, addr: u64, bytes: &[u8]) -> ControlBlock {
    let (up, down) = counts(bytes);
    let descs = raw_descs(bytes, (up + down) as usize);
    let mk = |mem: &mut dyn Memory, i: usize, index: usize, d: &RawDesc| Channel {
        index,
        name: read_name(mem, d.name),
        desc: addr + (HEADER + i * DESC) as u64,
        buffer: d.buffer as u64,
        size: d.size,
        mode: ChannelMode::from_flags(d.flags),
    };
    let mut cb = ControlBlock {
        addr,
        up: Vec::new(),
        down: Vec::new(),
    };
    for (i, d) in descs.iter().enumerate() {
        if i < up as usize {
            let c = mk(mem, i, i, d);
            cb.up.push(c);
        } else {
            let c = mk(mem, i, i - up as usize, d);
            cb.down.push(c);
        }
    }
    cb
}

/// Reads the header at `addr`, then the descriptors it announces.
fn read_block_bytes(mem: &mut dyn Memory, addr: u64) -> Result<Vec<u8>, TargetError> {
    let mut h = vec![0u8; HEADER];
    mem.read(addr, &mut h)?;
    if !has_magic(&h) {
        return Ok(h);
    }
    let (up, down) = counts(&h);
    if up > MAX_CHANNELS || down > MAX_CHANNELS || up + down == 0 {
        return Ok(h);
    }
    let mut all = vec![0u8; HEADER + DESC * (up + down) as usize];
    mem.read(addr, &mut all)?;
    Ok(all)
}

/// Where to look for the block.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    /// From the ELF, if one was given.
    pub elf: Option<ElfInfo>,
    /// RAM ranges to scan when there is no symbol (or the block is not at it).
    pub scan: Vec<Range<u64>>,
}

impl Locator {
    fn looked(&self) -> String {
        let mut v = Vec::new();
        if let Some(a) = self.elf.as_ref().and_then(|e| e.symbol) {
            v.push(format!("at `{SYMBOL}` ({a:#010x})"));
        }
        if self.scan.is_empty() {
            v.push("nowhere else (no RAM ranges known to scan)".into());
        } else {
            let r: Vec<String> = self
                .scan
                .iter()
                .map(|r| format!("{:#010x}..{:#010x}", r.start, r.end))
                .collect();
            v.push(format!("in RAM {}", r.join(", ")));
        }
        v.join(" and ")
    }

    fn elf_says(&self) -> String {
        match &self.elf {
            Some(e) => e.says(),
            None => "no ELF was given (--elf), so only a RAM scan was possible".into(),
        }
    }

    /// The way out: naming another image helps only when this one could not tell.
    fn fix(&self) -> String {
        match &self.elf {
            Some(ElfInfo {
                symbol: None,
                symbols: 1..,
                ..
            }) => "The mpfr agent is not in this firmware, so there is nothing to attach to: \
                   build the firmware with it (`mpfr build --board <board>` for the reference \
                   firmware; `mpfr build --board <board> --micropython <tree>` links the `mpfr` \
                   module into MicroPython, then run `import mpfr; mpfr.start(10)` on the board), \
                   or link firmware/agent into your own (docs/firmware.md, \"The agent in \
                   other firmware\"), flash it, and try again"
                .into(),
            Some(ElfInfo {
                symbol: Some(_), ..
            }) => "The block is not at the symbol: the board \
                   may run another image than this one (flash it again, or pass the running \
                   image with --elf), or it has crashed before starting the agent (check its \
                   console)"
                .into(),
            _ => "The firmware must link the mpfr agent (which exports `_SEGGER_RTT`); pass the \
                  running image, unstripped, with --elf so mpfr can find the block by symbol"
                .into(),
        }
    }
}

/// Where the reader stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    /// Nothing attached yet.
    Detached,
    Attached {
        addr: u64,
    },
    /// A block is there but not usable yet (booting, mid-reset).
    NotInitialised {
        addr: u64,
        why: String,
    },
    /// No block anywhere mpfr looked.
    Absent {
        looked: String,
    },
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Poll {
    /// Bytes read per up channel index.
    pub data: Vec<(usize, Vec<u8>)>,
    /// The block was (re)found on this poll: a new block, a moved one, or after a reset.
    pub attached: bool,
    /// The block that was attached vanished or changed on this poll.
    pub lost: Option<String>,
    /// Fullest up buffer seen, 0.0..=1.0 (drives the adaptive interval).
    pub fill: f32,
}

impl Poll {
    pub fn bytes(&self) -> usize {
        self.data.iter().map(|(_, d)| d.len()).sum()
    }
}

/// Counters over the reader's life.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RttStats {
    pub polls: u64,
    pub bytes: u64,
    pub attaches: u64,
    pub losses: u64,
    pub scans: u64,
}

/// The RTT reader: locate, validate, read, write, re-attach.
#[derive(Debug)]
pub struct Rtt {
    locator: Locator,
    block: Option<ControlBlock>,
    status: Status,
    last_scan: Option<Instant>,
    pub stats: RttStats,
}

impl Rtt {
    pub fn new(locator: Locator) -> Self {
        Rtt {
            locator,
            block: None,
            status: Status::Detached,
            last_scan: None,
            stats: RttStats::default(),
        }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn block(&self) -> Option<&ControlBlock> {
        self.block.as_ref()
    }

    pub fn locator(&self) -> &Locator {
        &self.locator
    }

    /// One attempt to find a usable block: at the symbol, then (rate-limited) by a RAM scan.
    fn locate(&mut self, mem: &mut dyn Memory, force_scan: bool) -> Result<(), TargetError> {
        let mut partial: Option<(u64, String)> = None;
        let ram = mem.ram_ranges();
        // The ELF's symbol over still-zeroed memory: the right image, whose agent has not set
        // up the block yet. A scan could find nothing else and halts the target for seconds.
        let mut zeroed_at_symbol = false;
        if let Some(addr) = self.locator.elf.as_ref().and_then(|e| e.symbol) {
            let bytes = read_block_bytes(mem, addr)?;
            match validate(&bytes, &ram) {
                Verdict::Valid => {
                    self.adopt(build_block(mem, addr, &bytes));
                    return Ok(());
                }
                Verdict::NoMagic if bytes.iter().all(|b| *b == 0) => {
                    zeroed_at_symbol = true;
                    partial = Some((addr, "the block is still zeroed".into()));
                }
                Verdict::NoMagic => partial = Some((addr, "no id at the symbol".into())),
                Verdict::Partial(w) | Verdict::Corrupt(w) => partial = Some((addr, w)),
            }
        }
        // Even a forced scan (attach) is skipped over a zeroed symbol: the block will appear
        // there, and halting the target for a RAM scan stalls its console (a raw REPL entry
        // running meanwhile gives up).
        let due = force_scan || self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY);
        if due && !zeroed_at_symbol && !self.locator.scan.is_empty() {
            self.last_scan = Some(Instant::now());
            self.stats.scans += 1;
            let scan = self.locator.scan.clone();
            for r in &scan {
                // The bytes the scan validated: the target may have changed the block since.
                if let Some((found, bytes)) = scan_range(mem, r.clone(), &ram, &mut partial)? {
                    self.adopt(build_block(mem, found, &bytes));
                    return Ok(());
                }
            }
        }
        self.status = match partial {
            Some((addr, why)) => Status::NotInitialised { addr, why },
            None => Status::Absent {
                looked: self.locator.looked(),
            },
        };
        Ok(())
    }

    fn adopt(&mut self, cb: ControlBlock) {
        self.status = Status::Attached { addr: cb.addr };
        self.block = Some(cb);
        self.stats.attaches += 1;
    }

    /// Tries to attach now (scanning if needed). `Absent` becomes an error that says where mpfr
    /// looked and what the ELF says; `NotInitialised` is a status the caller may wait on.
    pub fn attach(&mut self, mem: &mut dyn Memory) -> Result<&Status, RttError> {
        mem.hold()?;
        let r = self.locate(mem, true);
        mem.release()?;
        r?;
        if let Status::Absent { looked } = &self.status {
            return Err(RttError::Absent {
                target: mem.describe(),
                looked: looked.clone(),
                elf_says: self.locator.elf_says(),
                fix: self.locator.fix(),
            });
        }
        Ok(&self.status)
    }

    /// The error for "still not initialised" when the caller gives up waiting.
    pub fn not_ready_error(&self, target: &str) -> RttError {
        match &self.status {
            Status::NotInitialised { addr, why } => RttError::NotInitialised {
                addr: *addr,
                why: why.clone(),
            },
            _ => RttError::Absent {
                target: target.to_string(),
                looked: self.locator.looked(),
                elf_says: self.locator.elf_says(),
                fix: self.locator.fix(),
            },
        }
    }

    /// Reads every configured up channel once, in one stop of the target.
    pub fn poll(&mut self, mem: &mut dyn Memory) -> Result<Poll, RttError> {
        mem.hold()?;
        let r = self.poll_held(mem);
        let rel = mem.release();
        let p = r?;
        rel?;
        self.stats.polls += 1;
        self.stats.bytes += p.bytes() as u64;
        Ok(p)
    }

    fn poll_held(&mut self, mem: &mut dyn Memory) -> Result<Poll, TargetError> {
        let mut poll = Poll::default();
        if let Some(cb) = &self.block {
            let mut bytes = vec![0u8; cb.len()];
            mem.read(cb.addr, &mut bytes)?;
            let ram = mem.ram_ranges();
            if same_layout(cb, &bytes, &ram) {
                self.read_up(mem, &bytes, &mut poll)?;
                return Ok(poll);
            }
            let why = match validate(&bytes, &ram) {
                Verdict::NoMagic => "the block was cleared (target reset or reflash)".to_string(),
                Verdict::Partial(w) => format!("the block is being set up again ({w})"),
                Verdict::Corrupt(w) => format!("the block became invalid ({w})"),
                Verdict::Valid => "the block's channels changed (new firmware)".to_string(),
            };
            self.block = None;
            self.stats.losses += 1;
            poll.lost = Some(why);
        }
        self.locate(mem, false)?;
        if let Some(cb) = &self.block {
            poll.attached = true;
            // The target runs on between locating the block and this read: its offsets are
            // only used once checked again (the next poll reports what changed).
            let mut bytes = vec![0u8; cb.len()];
            mem.read(cb.addr, &mut bytes)?;
            if same_layout(cb, &bytes, &mem.ram_ranges()) {
                self.read_up(mem, &bytes, &mut poll)?;
            }
        }
        Ok(poll)
    }

    fn read_up(
        &mut self,
        mem: &mut dyn Memory,
        bytes: &[u8],
        poll: &mut Poll,
    ) -> Result<(), TargetError> {
        let Some(cb) = &self.block else { return Ok(()) };
        let descs = raw_descs(bytes, cb.up.len());
        for (c, d) in cb.up.iter().zip(descs) {
            if !c.configured() || d.wr == d.rd {
                continue;
            }
            let size = d.size as u64;
            let (wr, rd) = (d.wr as u64, d.rd as u64);
            let avail = if wr > rd { wr - rd } else { size - rd + wr };
            poll.fill = poll.fill.max(avail as f32 / size as f32);
            let mut data = vec![0u8; avail as usize];
            let first = (size - rd).min(avail) as usize;
            mem.read(c.buffer + rd, &mut data[..first])?;
            if first < data.len() {
                mem.read(c.buffer, &mut data[first..])?;
            }
            let new_rd = ((rd + avail) % size) as u32;
            mem.write(c.desc + 16, &new_rd.to_le_bytes())?;
            poll.data.push((c.index, data));
        }
        Ok(())
    }

    /// Writes as much of `data` as fits into down channel `index`; returns the bytes written.
    pub fn write_down(
        &mut self,
        mem: &mut dyn Memory,
        index: usize,
        data: &[u8],
    ) -> Result<usize, RttError> {
        let Some(c) = self
            .block
            .as_ref()
            .and_then(|b| b.down.get(index))
            .filter(|c| c.configured())
            .cloned()
        else {
            return Err(RttError::NoChannel {
                what: format!("down channel {index}"),
                have: self.block.as_ref().map(|b| b.list()).unwrap_or_default(),
            });
        };
        mem.hold()?;
        let r = write_ring(mem, &c, data);
        mem.release()?;
        Ok(r?)
    }
}

/// Whether `bytes` (the block read again) is still a valid block with `cb`'s channels, so its
/// ring offsets can be trusted.
fn same_layout(cb: &ControlBlock, bytes: &[u8], ram: &[Range<u64>]) -> bool {
    validate(bytes, ram) == Verdict::Valid
        && counts(bytes) == (cb.up.len() as u32, cb.down.len() as u32)
        && raw_descs(bytes, cb.up.len() + cb.down.len())
            .iter()
            .zip(cb.up.iter().chain(cb.down.iter()))
            .all(|(d, c)| d.buffer as u64 == c.buffer && d.size == c.size)
}

fn write_ring(mem: &mut dyn Memory, c: &Channel, data: &[u8]) -> Result<usize, TargetError> {
    let mut w = [0u8; 8];
    mem.read(c.desc + 12, &mut w)?;
    let size = c.size as u64;
    let wr = word(&w, 0) as u64;
    let rd = word(&w, 4) as u64;
    if wr >= size || rd >= size {
        return Err(TargetError::Access {
            op: "write",
            addr: c.desc,
            len: data.len(),
            target: mem.describe(),
            why: "down channel offsets are outside its buffer".into(),
        });
    }
    let free = if rd > wr {
        rd - wr - 1
    } else {
        size - wr + rd - 1
    };
    let n = (data.len() as u64).min(free) as usize;
    let first = ((size - wr) as usize).min(n);
    mem.write(c.buffer + wr, &data[..first])?;
    if first < n {
        mem.write(c.buffer, &data[first..n])?;
    }
    let new_wr = ((wr + n as u64) % size) as u32;
    mem.write(c.desc + 12, &new_wr.to_le_bytes())?;
    Ok(n)
}

/// Scans `range` for a valid block (its address and the bytes found valid); remembers the
/// first partial one for the message.
fn scan_range(
    mem: &mut dyn Memory,
    range: Range<u64>,
    ram: &[Range<u64>],
    partial: &mut Option<(u64, String)>,
) -> Result<Option<(u64, Vec<u8>)>, TargetError> {
    const WINDOW: u64 = 16 * 1024;
    let mut at = range.start;
    while at < range.end {
        let window_start = Instant::now();
        let len = WINDOW.min(range.end - at) as usize;
        let mut buf = vec![0u8; len];
        mem.read(at, &mut buf)?;
        let mut i = 0;
        while i + MAGIC.len() <= buf.len() {
            if buf[i..].starts_with(MAGIC) {
                let addr = at + i as u64;
                let bytes = read_block_bytes(mem, addr)?;
                match validate(&bytes, ram) {
                    Verdict::Valid => return Ok(Some((addr, bytes))),
                    Verdict::Partial(w) | Verdict::Corrupt(w) if partial.is_none() => {
                        *partial = Some((addr, w));
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        if at + len as u64 >= range.end {
            break;
        }
        // Let the target run between windows, as long as the window kept it stopped: a scan
        // of megabytes through QEMU's gdbstub on a busy machine would otherwise stop it for
        // seconds (its UART input, its timers).
        mem.release()?;
        std::thread::sleep(window_start.elapsed());
        mem.hold()?;
        // Overlap windows so an id split across two windows is still seen.
        at += len as u64 - (MAGIC.len() as u64 - 1);
    }
    Ok(None)
}

/// Poll pacing: fast while data flows (and when a buffer fills), slower when idle, between
/// `min` and `max`.
#[derive(Debug, Clone)]
pub struct AdaptiveInterval {
    pub min: Duration,
    pub max: Duration,
    cur: Duration,
}

impl AdaptiveInterval {
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        AdaptiveInterval { min, max, cur: max }
    }

    pub fn current(&self) -> Duration {
        self.cur
    }

    /// The wait before the next poll, given what the last one found.
    pub fn next(&mut self, bytes: usize, fill: f32) -> Duration {
        self.cur = if fill >= 0.5 {
            self.min
        } else if bytes > 0 {
            (self.cur / 2).max(self.min)
        } else {
            (self.cur * 3 / 2).min(self.max)
        };
        self.cur
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::device::memory::fake::FakeMemory;

    const RAM: u64 = 0x2000_0000;
    const CB: u64 = RAM + 0x100;
    const NAME0: u64 = RAM + 0x80;
    const BUF_UP0: u64 = RAM + 0x1000;
    const BUF_UP1: u64 = RAM + 0x2000;
    const BUF_DN0: u64 = RAM + 0x3000;

    /// Channel names live in target memory; one holding an escape sequence is shown escaped.
    #[test]
    fn a_channel_name_with_controls_is_escaped() {
        let mut m = FakeMemory::new(RAM, 0x10000);
        m.poke(NAME0, b"ev\x1b[2Jil\xe2\x80\xae\0");
        let name = read_name(&mut m, NAME0 as u32);
        assert_eq!(name, "ev\\x1b[2Jil\\u{202e}");
    }

    fn put_block(m: &mut FakeMemory, at: u64, sizes: [u32; 3]) {
        m.poke(NAME0, b"Terminal\0");
        m.poke(NAME0 + 16, b"mpfr\0");
        m.poke(at, b"SEGGER RTT\0\0\0\0\0\0");
        m.poke32(at + 16, 2);
        m.poke32(at + 20, 1);
        let descs = [
            (NAME0, BUF_UP0, sizes[0], 1u32),
            (NAME0 + 16, BUF_UP1, sizes[1], 0),
            (0, BUF_DN0, sizes[2], 0),
        ];
        for (i, (name, buf, size, flags)) in descs.iter().enumerate() {
            let d = at + 24 + 24 * i as u64;
            m.poke32(d, *name as u32);
            m.poke32(d + 4, *buf as u32);
            m.poke32(d + 8, *size);
            m.poke32(d + 12, 0);
            m.poke32(d + 16, 0);
            m.poke32(d + 20, *flags);
        }
    }

    fn image() -> FakeMemory {
        let mut m = FakeMemory::new(RAM, 0x10000);
        put_block(&mut m, CB, [64, 32, 16]);
        m
    }

    fn with_symbol(addr: u64) -> Locator {
        Locator {
            elf: Some(ElfInfo {
                path: "fw.elf".into(),
                symbol: Some(addr),
                symbols: 10,
            }),
            scan: vec![],
        }
    }

    /// Target side of an up channel: append bytes at WrOff.
    fn target_write(m: &mut FakeMemory, desc: u64, data: &[u8]) {
        let buf = m.peek32(desc + 4) as u64;
        let size = m.peek32(desc + 8) as u64;
        let mut wr = m.peek32(desc + 12) as u64;
        for b in data {
            m.poke(buf + wr, &[*b]);
            wr = (wr + 1) % size;
        }
        m.poke32(desc + 12, wr as u32);
    }

    #[test]
    fn attaches_by_symbol_and_reads_channels_with_names_and_modes() {
        let mut m = image();
        let mut r = Rtt::new(with_symbol(CB));
        assert_eq!(
            r.attach(&mut m).expect("attach"),
            &Status::Attached { addr: CB }
        );
        let cb = r.block().expect("block");
        assert_eq!(cb.up[0].name, "Terminal");
        assert_eq!(cb.up[0].mode, ChannelMode::NoBlockTrim);
        assert_eq!(cb.up_named("MPFR").map(|c| c.index), Some(1));
        target_write(&mut m, CB + 24 + 24, b"frame");
        let p = r.poll(&mut m).expect("poll");
        assert_eq!(p.data, vec![(1, b"frame".to_vec())]);
        // RdOff advanced: the next poll is empty.
        assert_eq!(m.peek32(CB + 24 + 24 + 16), 5);
        assert!(r.poll(&mut m).expect("poll").data.is_empty());
    }

    #[test]
    fn scan_finds_block_and_skips_stale_and_corrupt_copies() {
        let mut m = image();
        // A stale copy of an old block earlier in RAM: offsets beyond its buffer.
        let stale = RAM + 0x40;
        m.poke(stale, b"SEGGER RTT\0");
        m.poke32(stale + 16, 1);
        m.poke32(stale + 20, 0);
        m.poke32(stale + 24 + 4, BUF_UP0 as u32);
        m.poke32(stale + 24 + 8, 16);
        m.poke32(stale + 24 + 12, 99);
        let mut r = Rtt::new(Locator {
            elf: None,
            scan: vec![RAM..RAM + 0x10000],
        });
        assert_eq!(
            r.attach(&mut m).expect("attach"),
            &Status::Attached { addr: CB }
        );
    }

    #[test]
    fn scan_sees_magic_across_window_boundary() {
        let mut m = FakeMemory::new(RAM, 0x10000);
        let at = RAM + 16 * 1024 - 5;
        put_block(&mut m, at, [64, 32, 16]);
        let mut r = Rtt::new(Locator {
            elf: None,
            scan: vec![RAM..RAM + 0x10000],
        });
        assert_eq!(
            r.attach(&mut m).expect("attach"),
            &Status::Attached { addr: at }
        );
    }

    #[test]
    fn absent_says_where_it_looked_and_what_the_elf_says() {
        let mut m = FakeMemory::new(RAM, 0x4000);
        let mut r = Rtt::new(Locator {
            elf: Some(ElfInfo {
                path: "fw.elf".into(),
                symbol: None,
                symbols: 42,
            }),
            scan: vec![RAM..RAM + 0x4000],
        });
        let e = r.attach(&mut m).expect_err("absent");
        let msg = e.to_string();
        assert!(msg.contains("0x20000000..0x20004000"), "{msg}");
        let help = miette::Diagnostic::help(&e)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("no `_SEGGER_RTT`"), "{help}");
        // Another image cannot help: the agent is missing from this one.
        assert!(help.contains("agent is not in this firmware"), "{help}");
        assert!(help.contains("mpfr build --board"), "{help}");
        assert!(!help.contains("--elf"), "{help}");
    }

    #[test]
    fn absent_without_an_elf_asks_for_one() {
        let mut m = FakeMemory::new(RAM, 0x4000);
        let mut r = Rtt::new(Locator {
            elf: None,
            scan: vec![RAM..RAM + 0x4000],
        });
        let e = r.attach(&mut m).expect_err("absent");
        let help = miette::Diagnostic::help(&e)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("--elf"), "{help}");
    }

    #[test]
    fn zeroed_block_at_symbol_is_not_initialised_not_absent() {
        let mut m = FakeMemory::new(RAM, 0x10000);
        let mut r = Rtt::new(with_symbol(CB));
        let s = r.attach(&mut m).expect("not an error").clone();
        assert!(
            matches!(s, Status::NotInitialised { addr: CB, .. }),
            "{s:?}"
        );
        // Partial: magic but no channels.
        m.poke(CB, b"SEGGER RTT\0");
        let s = r.attach(&mut m).expect("not an error").clone();
        assert!(
            matches!(&s, Status::NotInitialised { why, .. } if why.contains("no channels")),
            "{s:?}"
        );
        // Then the firmware finishes init: the next poll attaches.
        put_block(&mut m, CB, [64, 32, 16]);
        let p = r.poll(&mut m).expect("poll");
        assert!(p.attached);
    }

    #[test]
    fn validator_rejects_corruption() {
        let ram = vec![RAM..RAM + 0x10000];
        let base = {
            let mut m = image();
            m.peek(CB, 24 + 3 * 24)
        };
        assert_eq!(validate(&base, &ram), Verdict::Valid);
        let set = |off: usize, v: u32| {
            let mut b = base.clone();
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        assert!(matches!(
            validate(&set(16, 1000), &ram),
            Verdict::Corrupt(_)
        ));
        // Buffer pointer outside RAM.
        assert!(matches!(
            validate(&set(24 + 4, 0x0800_0000), &ram),
            Verdict::Corrupt(_)
        ));
        // Buffer running past the end of RAM.
        assert!(matches!(
            validate(&set(24 + 4, (RAM + 0xfff0) as u32), &ram),
            Verdict::Corrupt(_)
        ));
        // Absurd size.
        assert!(matches!(
            validate(&set(24 + 8, 0x7fff_ffff), &ram),
            Verdict::Corrupt(_)
        ));
        // WrOff / RdOff beyond the buffer.
        assert!(matches!(
            validate(&set(24 + 12, 64), &ram),
            Verdict::Corrupt(_)
        ));
        assert!(matches!(
            validate(&set(24 + 16, 1000), &ram),
            Verdict::Corrupt(_)
        ));
        // Half set up.
        assert!(matches!(
            validate(&set(24 + 8, 0), &ram),
            Verdict::Partial(_)
        ));
        // Damaged id.
        let mut b = base.clone();
        b[3] = b'x';
        assert_eq!(validate(&b, &ram), Verdict::NoMagic);
        // Truncated images never panic.
        for i in 0..base.len() {
            let _ = validate(&base[..i], &ram);
        }
    }

    #[test]
    fn reattaches_when_block_is_cleared_then_moves() {
        let mut m = image();
        let mut r = Rtt::new(Locator {
            elf: Some(ElfInfo {
                path: "fw.elf".into(),
                symbol: Some(CB),
                symbols: 10,
            }),
            scan: vec![RAM..RAM + 0x10000],
        });
        r.attach(&mut m).expect("attach");
        // Target reset: RAM cleared.
        m.poke(CB, &[0u8; 24 + 72]);
        let p = r.poll(&mut m).expect("poll");
        assert!(
            p.lost.as_deref().is_some_and(|w| w.contains("cleared")),
            "{p:?}"
        );
        assert!(matches!(r.status(), Status::NotInitialised { .. }));
        // New firmware puts the block elsewhere and other data where it was: attach scans
        // (over a still-zeroed symbol it would wait instead, see below).
        m.poke(CB, &[0x55u8; 24]);
        let moved = RAM + 0x800;
        put_block(&mut m, moved, [64, 32, 16]);
        target_write(&mut m, moved + 24, b"hi");
        r.attach(&mut m).expect("re-attach");
        assert_eq!(r.status(), &Status::Attached { addr: moved });
        let p = r.poll(&mut m).expect("poll");
        assert_eq!(p.data, vec![(0, b"hi".to_vec())]);
        assert_eq!(r.stats.losses, 1);
        assert_eq!(r.stats.attaches, 2);
    }

    /// A block still zeroed at the ELF's symbol is an agent that has not started yet: neither
    /// attach nor polls scan RAM (a scan halts the target for seconds through QEMU's gdbstub,
    /// long enough to break a raw REPL entry on its console).
    #[test]
    fn a_zeroed_block_at_the_symbol_is_waited_for_not_rescanned() {
        let mut m = FakeMemory::new(RAM, 0x10000);
        let mut r = Rtt::new(Locator {
            scan: vec![RAM..RAM + 0x10000],
            ..with_symbol(CB)
        });
        r.attach(&mut m).expect("attach");
        assert!(matches!(r.status(), Status::NotInitialised { .. }));
        assert_eq!(
            r.stats.scans, 0,
            "attach must not scan over a zeroed symbol"
        );
        for _ in 0..3 {
            r.last_scan = Some(Instant::now() - RESCAN_EVERY * 2);
            r.poll(&mut m).expect("poll");
        }
        assert_eq!(r.stats.scans, 0, "polls must not scan");
        // The agent starts: the next poll attaches at the symbol.
        put_block(&mut m, CB, [64, 32, 16]);
        let p = r.poll(&mut m).expect("poll");
        assert!(p.attached, "{p:?}");
        assert_eq!(r.status(), &Status::Attached { addr: CB });
    }

    /// Target memory that changes one word just before a chosen read: the target overwriting
    /// its block while the host looks.
    struct Racing {
        m: FakeMemory,
        reads: usize,
        at_read: usize,
        poke: (u64, u32),
    }

    impl Racing {
        fn new(m: FakeMemory, poke: (u64, u32)) -> Self {
            Racing {
                m,
                reads: 0,
                at_read: usize::MAX,
                poke,
            }
        }
    }

    impl Memory for Racing {
        fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
            self.reads += 1;
            if self.reads == self.at_read {
                self.m.poke32(self.poke.0, self.poke.1);
            }
            self.m.read(addr, buf)
        }
        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
            self.m.write(addr, data)
        }
        fn ram_ranges(&self) -> Vec<Range<u64>> {
            self.m.ram_ranges()
        }
        fn describe(&self) -> String {
            self.m.describe()
        }
    }

    /// A block found during a poll was read again and its ring read with unchecked offsets,
    /// handing out bytes from past the end of the ring (the bound the `rtt` fuzz target checks).
    #[test]
    fn offsets_read_again_after_attaching_in_a_poll_are_checked() {
        // Up 0's WrOff past its 64-byte ring.
        let mut m = Racing::new(FakeMemory::new(RAM, 0x10000), (CB + 24 + 12, 64 + 10));
        let mut r = Rtt::new(with_symbol(CB));
        r.attach(&mut m).expect("attach");
        put_block(&mut m.m, CB, [64, 32, 16]);
        // The poll reads the header and the block (valid), then the block again: corrupt.
        m.at_read = m.reads + 5;
        let p = r.poll(&mut m).expect("poll");
        assert!(p.attached, "{p:?}");
        assert!(p.data.is_empty(), "read a ring with bad offsets: {p:?}");
        assert_eq!(m.m.peek32(CB + 24 + 16), 0, "moved RdOff on bad offsets");
    }

    /// Found by the `rtt` fuzz target (`cli/fuzz/regressions/rtt/`): a block the scan had
    /// validated was read again and built unchecked; new channel counts in that read
    /// indexed past the bytes read (a panic).
    #[test]
    fn a_block_found_by_scan_is_built_from_the_bytes_validated() {
        // The scan reads a window, then the header and the block; then the counts change.
        let mut m = Racing::new(image(), (CB + 16, MAX_CHANNELS + 1));
        m.at_read = 4;
        let mut r = Rtt::new(Locator {
            elf: None,
            scan: vec![RAM..RAM + 0x10000],
        });
        assert_eq!(
            r.attach(&mut m).expect("attach"),
            &Status::Attached { addr: CB }
        );
        assert_eq!(r.block().map(|b| b.up.len()), Some(2));
    }

    #[test]
    fn changed_channel_layout_is_a_reattach() {
        let mut m = image();
        let mut r = Rtt::new(with_symbol(CB));
        r.attach(&mut m).expect("attach");
        // Same place, different buffer size (reflashed firmware with bigger buffers).
        put_block(&mut m, CB, [128, 32, 16]);
        let p = r.poll(&mut m).expect("poll");
        assert!(p.lost.is_some() && p.attached, "{p:?}");
        assert_eq!(r.block().map(|b| b.up[0].size), Some(128));
    }

    #[test]
    fn up_ring_wraps_at_every_offset() {
        for size in [2u32, 3, 8, 17] {
            for start in 0..size {
                for len in 0..size {
                    let mut m = image();
                    put_block(&mut m, CB, [size, 32, 16]);
                    let d = CB + 24;
                    m.poke32(d + 12, start);
                    m.poke32(d + 16, start);
                    let mut r = Rtt::new(with_symbol(CB));
                    r.attach(&mut m).expect("attach");
                    let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(7) + 1).collect();
                    target_write(&mut m, d, &data);
                    let p = r.poll(&mut m).expect("poll");
                    let got: Vec<u8> = p
                        .data
                        .iter()
                        .filter(|(i, _)| *i == 0)
                        .flat_map(|(_, d)| d.clone())
                        .collect();
                    assert_eq!(got, data, "size {size} start {start} len {len}");
                    assert_eq!(m.peek32(d + 16), (start + len) % size);
                }
            }
        }
    }

    #[test]
    fn down_ring_wraps_and_never_overruns_the_reader() {
        for start in 0..16u32 {
            for rd_gap in 0..16u32 {
                let mut m = image();
                let d = CB + 24 + 2 * 24;
                let rd = (start + rd_gap) % 16;
                m.poke32(d + 12, start);
                m.poke32(d + 16, rd);
                let mut r = Rtt::new(with_symbol(CB));
                r.attach(&mut m).expect("attach");
                let data: Vec<u8> = (1..=20).collect();
                let n = r.write_down(&mut m, 0, &data).expect("write");
                let free = if rd > start {
                    rd - start - 1
                } else {
                    16 - start + rd - 1
                };
                assert_eq!(n as u32, free, "start {start} rd {rd}");
                for (i, b) in data[..n].iter().enumerate() {
                    let at = BUF_DN0 + ((start as u64 + i as u64) % 16);
                    assert_eq!(m.peek(at, 1)[0], *b);
                }
                assert_eq!(m.peek32(d + 12), (start + n as u32) % 16);
            }
        }
    }

    #[test]
    fn poll_holds_the_target_once() {
        let mut m = image();
        let mut r = Rtt::new(with_symbol(CB));
        r.attach(&mut m).expect("attach");
        let before = m.holds;
        target_write(&mut m, CB + 24, b"x");
        target_write(&mut m, CB + 48, b"y");
        r.poll(&mut m).expect("poll");
        assert_eq!(m.holds, before + 1);
    }

    #[test]
    fn adaptive_interval_speeds_up_and_backs_off() {
        let mut a = AdaptiveInterval::new(Duration::from_millis(5), Duration::from_millis(100));
        assert_eq!(a.next(10, 0.1), Duration::from_millis(50));
        assert_eq!(a.next(10, 0.9), Duration::from_millis(5));
        let mut last = a.current();
        for _ in 0..20 {
            let n = a.next(0, 0.0);
            assert!(n >= last);
            last = n;
        }
        assert_eq!(last, Duration::from_millis(100));
    }

    #[test]
    fn elf_without_file_is_a_clear_error() {
        let e = elf_info(Path::new("/nonexistent/fw.elf")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/fw.elf"));
    }
}
