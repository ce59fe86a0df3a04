//! RP2 flashing without a debug probe: the image as UF2 blocks for the chip's family, written
//! to the BOOTSEL mass-storage drive (`RPI-RP2`, `RP2350`) or through the PICOBOOT USB
//! interface. Both sit behind small traits so the tests use a fake drive folder and a fake
//! PICOBOOT device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::Diagnostic;

use crate::image::Image;

/// UF2 family ids (from the UF2 specification's family list).
pub const FAMILY_RP2040: u32 = 0xe48b_ff56;
pub const FAMILY_RP2350_ARM_S: u32 = 0xe48b_ff59;

const MAGIC0: u32 = 0x0A32_4655;
const MAGIC1: u32 = 0x9E5D_5157;
const MAGIC_END: u32 = 0x0AB1_6F30;
const FLAG_FAMILY: u32 = 0x0000_2000;
/// Payload per block: one flash page, as the RP2 boot ROM requires.
pub const PAGE: usize = 256;
/// Flash erase unit.
pub const SECTOR: u32 = 4096;

/// USB ids of the boot ROM (PICOBOOT and the drive are interfaces of the same device).
pub const BOOT_USB_RP2040: (u16, u16) = (0x2e8a, 0x0003);
pub const BOOT_USB_RP2350: (u16, u16) = (0x2e8a, 0x000f);

/// How to get a board into BOOTSEL by hand; every "not found" error ends with it.
pub const BOOTSEL_HELP: &str = "hold the BOOTSEL button while plugging the board in (or while pressing RESET), then run the command again; the board then shows up as a drive named RPI-RP2 (RP2040) or RP2350. A board running MicroPython is put there by mpfr itself through its REPL (`machine.bootloader()`); a debug probe on the SWD pins avoids all this (if one is plugged in but not listed, install the udev rules: docs/flashing.md, scripts/udev/60-mpfr-probes.rules)";

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Uf2Error {
    #[error("{}no RP2 board in BOOTSEL mode: {looked}", if *.no_probe { "no debug probe found and " } else { "" })]
    #[diagnostic(code(mpfr::uf2::no_bootsel), help("{BOOTSEL_HELP}"))]
    NoBootsel { looked: String, no_probe: bool },

    #[error("{board_id} at {} did not take the image: its drive is still there {secs} s after the copy", path.display())]
    #[diagnostic(
        code(mpfr::uf2::not_taken),
        help(
            "the boot ROM reboots as soon as it has every block of a UF2 for its chip; check that the drive is the board's (INFO_UF2.TXT) and is not mounted read-only, then press BOOTSEL+reset and flash again"
        )
    )]
    NotTaken {
        path: PathBuf,
        board_id: String,
        secs: u64,
    },

    #[error("chip `{chip}` has no UF2 family mpfr knows")]
    #[diagnostic(
        code(mpfr::uf2::family),
        help("UF2 flashing covers RP2040 and RP2350 (Arm) boards")
    )]
    UnknownFamily { chip: String },

    #[error("the UF2 file is for family {found:#010x}, but {board} needs {want:#010x}")]
    #[diagnostic(
        code(mpfr::uf2::wrong_family),
        help("use a firmware built for this board (RP2040: 0xe48bff56, RP2350 Arm: 0xe48bff59)")
    )]
    WrongFamily {
        board: String,
        found: u32,
        want: u32,
    },

    #[error("segment at {addr:#010x} is not in the chip's flash (XIP at 0x10000000)")]
    #[diagnostic(
        code(mpfr::uf2::address),
        help("link the firmware for flash at 0x10000000, or give a raw binary its --base")
    )]
    NotInFlash { addr: u64 },

    #[error("writing {path}: {source}")]
    #[diagnostic(
        code(mpfr::uf2::drive),
        help("the drive may have been ejected; put the board in BOOTSEL again and retry")
    )]
    Drive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("PICOBOOT {stage}: {detail}")]
    #[diagnostic(
        code(mpfr::uf2::picoboot),
        help(
            "unplug and replug the board in BOOTSEL mode; on Linux, make sure udev lets you open 2e8a:0003/000f"
        )
    )]
    Picoboot { stage: &'static str, detail: String },

    #[error("verify failed at {addr:#010x}: flash holds other data than was written")]
    #[diagnostic(
        code(mpfr::uf2::verify),
        help("flash again; if it keeps failing, the flash chip may be worn or the image too big")
    )]
    Verify { addr: u32 },
}

/// The UF2 family of a catalog chip name.
pub fn family_for_chip(chip: &str) -> Option<u32> {
    match chip.to_ascii_uppercase().as_str() {
        "RP2040" => Some(FAMILY_RP2040),
        "RP235X" | "RP2350" | "RP2350A" | "RP2350B" => Some(FAMILY_RP2350_ARM_S),
        _ => None,
    }
}

/// The image as flash pages: page address -> 256 bytes (gaps inside a page are zero, as the
/// SDK's elf2uf2 leaves them).
pub fn pages(image: &Image) -> Result<BTreeMap<u32, [u8; PAGE]>, Uf2Error> {
    let mut out: BTreeMap<u32, [u8; PAGE]> = BTreeMap::new();
    for seg in &image.segments {
        if seg.data.is_empty() {
            continue;
        }
        let end = seg.addr + seg.data.len() as u64;
        if seg.addr < 0x1000_0000 || end > 0x2000_0000 {
            return Err(Uf2Error::NotInFlash { addr: seg.addr });
        }
        for (i, &b) in seg.data.iter().enumerate() {
            let a = seg.addr as u32 + i as u32;
            let page = a & !(PAGE as u32 - 1);
            out.entry(page).or_insert([0u8; PAGE])[(a - page) as usize] = b;
        }
    }
    Ok(out)
}

/// UF2 blocks for `pages`, naming `family`.
pub fn encode(pages: &BTreeMap<u32, [u8; PAGE]>, family: u32) -> Vec<u8> {
    let n = pages.len() as u32;
    let mut out = Vec::with_capacity(pages.len() * 512);
    for (i, (addr, data)) in pages.iter().enumerate() {
        let mut block = [0u8; 512];
        let words = [
            MAGIC0,
            MAGIC1,
            FLAG_FAMILY,
            *addr,
            PAGE as u32,
            i as u32,
            n,
            family,
        ];
        for (k, w) in words.iter().enumerate() {
            block[k * 4..k * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        block[32..32 + PAGE].copy_from_slice(data);
        block[508..512].copy_from_slice(&MAGIC_END.to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// A BOOTSEL drive: a mounted folder with `INFO_UF2.TXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    pub path: PathBuf,
    /// `RPI-RP2`, `RP2350`, ...
    pub board_id: String,
}

impl Drive {
    /// The drive at `dir`, when its `INFO_UF2.TXT` names an RP2 boot ROM.
    pub fn probe(dir: &Path) -> Option<Drive> {
        let info = std::fs::read_to_string(dir.join("INFO_UF2.TXT")).ok()?;
        let board_id = info
            .lines()
            .find_map(|l| l.strip_prefix("Board-ID:"))?
            .trim()
            .to_string();
        (board_id.starts_with("RPI-RP2") || board_id.starts_with("RP2350")).then(|| Drive {
            path: dir.to_path_buf(),
            board_id,
        })
    }

    /// The family this boot ROM takes.
    pub fn family(&self) -> u32 {
        if self.board_id.starts_with("RP2350") {
            FAMILY_RP2350_ARM_S
        } else {
            FAMILY_RP2040
        }
    }

    /// Whether the drive is still mounted (the boot ROM has not rebooted yet).
    pub fn present(&self) -> bool {
        self.path.join("INFO_UF2.TXT").is_file()
    }

    /// Copies the UF2 file onto the drive (the boot ROM writes and reboots once the last block
    /// arrives; the drive disappears then).
    pub fn write(&self, uf2: &[u8]) -> Result<(), Uf2Error> {
        let path = self.path.join("mpfr.uf2");
        let err = |source| Uf2Error::Drive {
            path: path.clone(),
            source,
        };
        use std::io::Write as _;
        let mut f = std::fs::File::create(&path).map_err(err)?;
        f.write_all(uf2).map_err(err)?;
        // The data must reach the device before mpfr reports success.
        f.sync_all().map_err(err)
    }
}

/// Mount points to look for BOOTSEL drives in: every vfat mount (from /proc/mounts) and the
/// folders under the usual automount roots.
pub fn mount_points() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, dir, fs) = (w.next()?, w.next()?, w.next()?);
            (fs == "vfat" || fs == "msdos").then(|| PathBuf::from(dir.replace("\\040", " ")))
        })
        .collect();
    let user = std::env::var("USER").unwrap_or_default();
    for root in [
        PathBuf::from("/media").join(&user),
        PathBuf::from("/run/media").join(&user),
        PathBuf::from("/media"),
    ] {
        if let Ok(rd) = std::fs::read_dir(&root) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    v.sort();
    v.dedup();
    v
}

/// The BOOTSEL drives among `dirs`.
pub fn find_drives(dirs: &[PathBuf]) -> Vec<Drive> {
    dirs.iter().filter_map(|d| Drive::probe(d)).collect()
}

// ---------------------------------------------------------------------------------------------
// PICOBOOT: the boot ROM's vendor USB interface (commands on a bulk OUT endpoint, data phases
// on the bulk endpoints, a zero-length acknowledgement in the other direction).

const PICOBOOT_MAGIC: u32 = 0x431f_d10b;

/// PICOBOOT command ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CmdId {
    ExclusiveAccess = 0x01,
    Reboot = 0x02,
    FlashErase = 0x03,
    Read = 0x84,
    Write = 0x05,
    ExitXip = 0x06,
    /// RP2350's reboot (the RP2040 `Reboot` is gone there).
    Reboot2 = 0x0a,
}

/// One 32-byte PICOBOOT command.
pub fn command(token: u32, id: CmdId, args: &[u8], transfer_len: u32) -> [u8; 32] {
    let mut c = [0u8; 32];
    c[0..4].copy_from_slice(&PICOBOOT_MAGIC.to_le_bytes());
    c[4..8].copy_from_slice(&token.to_le_bytes());
    c[8] = id as u8;
    c[9] = args.len() as u8;
    c[12..16].copy_from_slice(&transfer_len.to_le_bytes());
    c[16..16 + args.len()].copy_from_slice(args);
    c
}

/// The USB side of PICOBOOT: one command with its data phase and acknowledgement.
pub trait PicobootTransport {
    /// A command whose data (possibly none) goes to the device.
    fn send(&mut self, cmd: &[u8; 32], data: &[u8]) -> Result<(), Uf2Error>;
    /// A command whose data (`len` bytes) comes from the device.
    fn receive(&mut self, cmd: &[u8; 32], len: usize) -> Result<Vec<u8>, Uf2Error>;
}

/// PICOBOOT operations over a transport.
pub struct Picoboot<T: PicobootTransport> {
    io: T,
    token: u32,
    rp2350: bool,
}

fn range(addr: u32, size: u32) -> [u8; 8] {
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&addr.to_le_bytes());
    a[4..].copy_from_slice(&size.to_le_bytes());
    a
}

impl<T: PicobootTransport> Picoboot<T> {
    pub fn new(io: T, rp2350: bool) -> Self {
        Picoboot {
            io,
            token: 1,
            rp2350,
        }
    }

    pub fn into_inner(self) -> T {
        self.io
    }

    fn next(&mut self) -> u32 {
        self.token = self.token.wrapping_add(1);
        self.token
    }

    fn out(&mut self, id: CmdId, args: &[u8], data: &[u8]) -> Result<(), Uf2Error> {
        let c = command(self.next(), id, args, data.len() as u32);
        self.io.send(&c, data)
    }

    /// Writes `pages` (erasing each touched sector first, keeping the rest of a sector's old
    /// content), verifies them when asked, and reboots into the new firmware.
    pub fn flash(
        &mut self,
        pages: &BTreeMap<u32, [u8; PAGE]>,
        verify: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Uf2Error> {
        // Exclusive access keeps the drive from being written at the same time.
        self.out(CmdId::ExclusiveAccess, &[1], &[])?;
        self.out(CmdId::ExitXip, &[], &[])?;
        let mut sectors: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &a in pages.keys() {
            sectors.entry(a & !(SECTOR - 1)).or_default().push(a);
        }
        for (sector, in_sector) in &sectors {
            // Pages of the sector the image does not cover keep what the flash held.
            let mut keep: Vec<(u32, Vec<u8>)> = Vec::new();
            for a in (*sector..sector + SECTOR).step_by(PAGE) {
                if !pages.contains_key(&a) {
                    let old = self.read(a, PAGE as u32)?;
                    if old.iter().any(|&b| b != 0xff) {
                        keep.push((a, old));
                    }
                }
            }
            self.out(CmdId::FlashErase, &range(*sector, SECTOR), &[])?;
            for (a, data) in keep {
                self.out(CmdId::Write, &range(a, PAGE as u32), &data)?;
            }
            for a in in_sector {
                self.out(CmdId::Write, &range(*a, PAGE as u32), &pages[a])?;
                progress(PAGE as u64);
            }
        }
        if verify {
            for (a, data) in pages {
                if self.read(*a, PAGE as u32)? != data[..] {
                    return Err(Uf2Error::Verify { addr: *a });
                }
            }
        }
        self.reboot()
    }

    pub fn read(&mut self, addr: u32, len: u32) -> Result<Vec<u8>, Uf2Error> {
        let c = command(self.next(), CmdId::Read, &range(addr, len), len);
        let d = self.io.receive(&c, len as usize)?;
        if d.len() != len as usize {
            return Err(Uf2Error::Picoboot {
                stage: "read",
                detail: format!("asked {len} bytes at {addr:#010x}, got {}", d.len()),
            });
        }
        Ok(d)
    }

    /// Reboots into flash (after 100 ms, so the acknowledgement gets out first).
    pub fn reboot(&mut self) -> Result<(), Uf2Error> {
        if self.rp2350 {
            // flags 0 = REBOOT2_FLAG_REBOOT_TYPE_NORMAL, delay, param0, param1
            let mut a = [0u8; 16];
            a[4..8].copy_from_slice(&100u32.to_le_bytes());
            self.out(CmdId::Reboot2, &a, &[])
        } else {
            // pc 0 and sp 0: a normal boot
            let mut a = [0u8; 12];
            a[8..12].copy_from_slice(&100u32.to_le_bytes());
            self.out(CmdId::Reboot, &a, &[])
        }
    }
}

/// A PICOBOOT device in memory: flash that must be erased before it is written, the commands
/// it received, and optional failures. The unit tests drive [`Picoboot`] against it.
#[derive(Debug, Default)]
pub struct FakePicoboot {
    pub flash: BTreeMap<u32, u8>,
    pub log: Vec<CmdId>,
    pub rebooted: bool,
    /// Corrupts what a read returns (to prove verification looks).
    pub corrupt_reads: bool,
}

impl FakePicoboot {
    fn parse(cmd: &[u8; 32]) -> Result<(CmdId, u32, u32), Uf2Error> {
        let bad = |d: String| Uf2Error::Picoboot {
            stage: "fake device",
            detail: d,
        };
        if u32::from_le_bytes(cmd[0..4].try_into().expect("4 bytes")) != PICOBOOT_MAGIC {
            return Err(bad("bad magic".into()));
        }
        let id = match cmd[8] {
            0x01 => CmdId::ExclusiveAccess,
            0x02 => CmdId::Reboot,
            0x03 => CmdId::FlashErase,
            0x84 => CmdId::Read,
            0x05 => CmdId::Write,
            0x06 => CmdId::ExitXip,
            0x0a => CmdId::Reboot2,
            x => return Err(bad(format!("unknown command {x:#x}"))),
        };
        let w = |i: usize| u32::from_le_bytes(cmd[i..i + 4].try_into().expect("4 bytes"));
        Ok((id, w(16), w(20)))
    }

    fn byte(&self, a: u32) -> u8 {
        self.flash.get(&a).copied().unwrap_or(0xff)
    }
}

impl PicobootTransport for FakePicoboot {
    fn send(&mut self, cmd: &[u8; 32], data: &[u8]) -> Result<(), Uf2Error> {
        let (id, addr, size) = Self::parse(cmd)?;
        self.log.push(id);
        let fail = |d: String| Uf2Error::Picoboot {
            stage: "fake device",
            detail: d,
        };
        match id {
            CmdId::FlashErase => {
                if !addr.is_multiple_of(SECTOR) || !size.is_multiple_of(SECTOR) {
                    return Err(fail(format!("unaligned erase {addr:#x}+{size:#x}")));
                }
                for a in addr..addr + size {
                    self.flash.remove(&a);
                }
            }
            CmdId::Write => {
                if !addr.is_multiple_of(PAGE as u32) || data.len() != size as usize {
                    return Err(fail(format!("bad write {addr:#x}+{size:#x}")));
                }
                for (i, &b) in data.iter().enumerate() {
                    let a = addr + i as u32;
                    if self.byte(a) != 0xff {
                        return Err(fail(format!("write to unerased flash at {a:#x}")));
                    }
                    self.flash.insert(a, b);
                }
            }
            CmdId::Reboot | CmdId::Reboot2 => self.rebooted = true,
            _ => {}
        }
        Ok(())
    }

    fn receive(&mut self, cmd: &[u8; 32], len: usize) -> Result<Vec<u8>, Uf2Error> {
        let (id, addr, _) = Self::parse(cmd)?;
        self.log.push(id);
        let mut d: Vec<u8> = (0..len as u32).map(|i| self.byte(addr + i)).collect();
        if self.corrupt_reads && !d.is_empty() {
            d[0] ^= 1;
        }
        Ok(d)
    }
}

/// A board in BOOTSEL as seen on USB without its drive mounted (the boot ROM's ids).
fn bootrom_on_usb() -> Option<(u16, u16)> {
    use nusb::MaybeFuture as _;
    let devices = nusb::list_devices().wait().ok()?;
    devices
        .map(|d| (d.vendor_id(), d.product_id()))
        .find(|id| *id == BOOT_USB_RP2040 || *id == BOOT_USB_RP2350)
}

/// RP2 flashing through the BOOTSEL drive: REPL -> `machine.bootloader()` -> drive -> copy ->
/// the board reboots and its MicroPython port comes back.
pub struct Uf2Flasher {
    board: crate::board::Board,
    /// Chosen because no debug probe is connected (said in the error when BOOTSEL fails too).
    no_probe: bool,
    /// Where to look for drives (the real mount points, or test folders).
    pub mounts: Box<dyn Fn() -> Vec<PathBuf>>,
    /// How long to wait for the drive after asking the board to enter BOOTSEL.
    pub wait: std::time::Duration,
    /// How long the boot ROM may take to reboot after the copy.
    pub settle: std::time::Duration,
    /// How long MicroPython's serial port may take to come back after that.
    pub reconnect: std::time::Duration,
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_until(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl Uf2Flasher {
    pub fn new(board: &crate::board::Board, no_probe: bool) -> Self {
        Uf2Flasher {
            board: board.clone(),
            no_probe,
            mounts: Box::new(mount_points),
            wait: std::time::Duration::from_secs(15),
            settle: std::time::Duration::from_secs(10),
            reconnect: std::time::Duration::from_secs(10),
        }
    }

    fn drive(&self) -> Option<Drive> {
        find_drives(&(self.mounts)()).into_iter().next()
    }

    /// Asks a running MicroPython (found by the board's USB ids) to enter its bootloader.
    /// Returns what happened, for messages.
    fn ask_repl(&self) -> String {
        let Ok(target) = crate::device::Target::resolve(&self.board, None) else {
            return format!(
                "no MicroPython serial port with {}'s USB ids to send to BOOTSEL",
                self.board.name
            );
        };
        let mut s = crate::repl::Session::from_target(target);
        let limits = crate::repl::Limits {
            timeout: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        let r = s.exec_no_follow(b"import machine\nmachine.bootloader()\n", &limits);
        let link = s.describe();
        // The port vanishes as the board resets; leaving the raw REPL would only fail.
        drop(s.into_link());
        match r {
            Ok(_) => format!("{link} was sent `machine.bootloader()`"),
            Err(e) => format!("asking the board's REPL to enter BOOTSEL failed: {e}"),
        }
    }
}

impl super::Flasher for Uf2Flasher {
    fn name(&self) -> &'static str {
        "UF2 (BOOTSEL drive)"
    }

    fn flash(
        &mut self,
        image: &Image,
        progress: super::Progress<'_>,
    ) -> Result<super::Outcome, super::FlashError> {
        use super::{Event, Phase};
        let want = family_for_chip(&self.board.chip).ok_or_else(|| Uf2Error::UnknownFamily {
            chip: self.board.chip.clone(),
        })?;
        if let Some(found) = image.uf2_family
            && found != want
        {
            return Err(Uf2Error::WrongFamily {
                board: self.board.name.clone(),
                found,
                want,
            }
            .into());
        }
        let pages = pages(image)?;
        progress(Event::Start {
            phase: Phase::Connect,
            total: None,
        });
        let drive = match self.drive() {
            Some(d) => d,
            None => {
                let asked = self.ask_repl();
                let start = std::time::Instant::now();
                let mut found = None;
                if asked.contains("was sent") {
                    while start.elapsed() < self.wait {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if let Some(d) = self.drive() {
                            found = Some(d);
                            break;
                        }
                    }
                }
                match found {
                    Some(d) => d,
                    None => {
                        let usb = match bootrom_on_usb() {
                            Some((v, p)) => format!(
                                "; a boot ROM is on USB ({v:04x}:{p:04x}) but its drive is not mounted (mount it, e.g. `udisksctl mount -b /dev/sdX1`)"
                            ),
                            None => String::new(),
                        };
                        return Err(Uf2Error::NoBootsel {
                            looked: format!(
                                "no drive with INFO_UF2.TXT among the mounted filesystems; {asked}{usb}"
                            ),
                            no_probe: self.no_probe,
                        }
                        .into());
                    }
                }
            }
        };
        progress(Event::Finish {
            phase: Phase::Connect,
        });
        if drive.family() != want {
            return Err(Uf2Error::WrongFamily {
                board: self.board.name.clone(),
                found: drive.family(),
                want,
            }
            .into());
        }
        let uf2 = encode(&pages, want);
        progress(Event::Start {
            phase: Phase::Program,
            total: Some(uf2.len() as u64),
        });
        drive.write(&uf2)?;
        progress(Event::Progress {
            phase: Phase::Program,
            bytes: uf2.len() as u64,
        });
        progress(Event::Finish {
            phase: Phase::Program,
        });
        // The check a drive copy allows: the boot ROM reboots once it holds every block, and
        // its drive goes away; a drive that stays means it took nothing.
        progress(Event::Start {
            phase: Phase::Verify,
            total: None,
        });
        if !wait_until(self.settle, || !drive.present()) {
            return Err(Uf2Error::NotTaken {
                path: drive.path.clone(),
                board_id: drive.board_id.clone(),
                secs: self.settle.as_secs(),
            }
            .into());
        }
        progress(Event::Finish {
            phase: Phase::Verify,
        });
        progress(Event::Note {
            message: format!("{} took the image and rebooted into it", drive.board_id),
        });
        // Reconnect: MicroPython's USB serial port comes back under the board's ids.
        let mut port = None;
        wait_until(self.reconnect, || {
            port = crate::device::Target::resolve(&self.board, None)
                .ok()
                .map(|t| t.describe());
            port.is_some()
        });
        progress(Event::Note {
            message: match port {
                Some(p) => format!("MicroPython is back on {p}"),
                None => format!(
                    "no MicroPython serial port with {}'s USB ids appeared within {} s (an image without MicroPython's USB REPL shows none)",
                    self.board.name,
                    self.reconnect.as_secs()
                ),
            },
        });
        Ok(super::Outcome::Flashed {
            target: format!("{} ({})", drive.path.display(), drive.board_id),
            bytes: (pages.len() * PAGE) as u64,
            verified: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Format, Segment};

    fn image(segs: Vec<(u64, Vec<u8>)>) -> Image {
        Image {
            path: "fw.elf".into(),
            format: Format::Elf,
            segments: segs
                .into_iter()
                .map(|(addr, data)| Segment { addr, data })
                .collect(),
            arch: None,
            entry: None,
            esp_chip_id: None,
            uf2_family: None,
            bytes: Vec::new(),
        }
    }

    #[test]
    fn blocks_follow_the_uf2_layout() {
        let img = image(vec![(0x1000_0000, vec![0xaa; 300])]);
        let p = pages(&img).unwrap();
        assert_eq!(
            p.keys().copied().collect::<Vec<_>>(),
            [0x1000_0000, 0x1000_0100]
        );
        let uf2 = encode(&p, FAMILY_RP2040);
        assert_eq!(uf2.len(), 1024);
        let w = |off: usize| u32::from_le_bytes(uf2[off..off + 4].try_into().unwrap());
        assert_eq!(w(0), MAGIC0);
        assert_eq!(w(4), MAGIC1);
        assert_eq!(w(8), FLAG_FAMILY);
        assert_eq!(w(12), 0x1000_0000);
        assert_eq!(w(16), 256);
        assert_eq!(w(20), 0);
        assert_eq!(w(24), 2);
        assert_eq!(w(28), FAMILY_RP2040);
        assert_eq!(w(508), MAGIC_END);
        assert_eq!(w(512 + 12), 0x1000_0100);
        assert_eq!(w(512 + 20), 1);
        // The second page: 44 bytes of data, then zeros.
        assert_eq!(uf2[512 + 32 + 43], 0xaa);
        assert_eq!(uf2[512 + 32 + 44], 0);
        // And mpfr's own UF2 reader reads it back.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.uf2");
        std::fs::write(&f, &uf2).unwrap();
        let back = crate::image::load(&f, None, None).unwrap();
        assert_eq!(back.uf2_family, Some(FAMILY_RP2040));
        assert_eq!(back.segments[0].addr, 0x1000_0000);
        assert_eq!(&back.segments[0].data[..300], &[0xaa; 300][..]);
    }

    #[test]
    fn families_and_addresses() {
        assert_eq!(family_for_chip("RP2040"), Some(FAMILY_RP2040));
        assert_eq!(family_for_chip("RP235x"), Some(FAMILY_RP2350_ARM_S));
        assert_eq!(family_for_chip("ESP32"), None);
        let ram = image(vec![(0x2000_0000, vec![1])]);
        assert!(matches!(pages(&ram), Err(Uf2Error::NotInFlash { .. })));
    }

    #[test]
    fn the_fake_drive_is_found_and_written() {
        let root = tempfile::tempdir().unwrap();
        let drive = root.path().join("RPI-RP2");
        let other = root.path().join("USB STICK");
        std::fs::create_dir_all(&drive).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            drive.join("INFO_UF2.TXT"),
            "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n",
        )
        .unwrap();
        std::fs::write(other.join("INFO_UF2.TXT"), "Board-ID: SAMD21\n").unwrap();
        let found = find_drives(&[other.clone(), drive.clone(), root.path().join("none")]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].board_id, "RPI-RP2");
        assert_eq!(found[0].family(), FAMILY_RP2040);
        let uf2 = encode(
            &pages(&image(vec![(0x1000_0000, vec![7; 10])])).unwrap(),
            FAMILY_RP2040,
        );
        found[0].write(&uf2).unwrap();
        assert_eq!(std::fs::read(drive.join("mpfr.uf2")).unwrap(), uf2);
    }

    /// A fake BOOTSEL drive under a mount root, and a flasher that looks only there.
    fn fake_drive_flasher(settle_ms: u64) -> (tempfile::TempDir, PathBuf, Uf2Flasher) {
        let root = tempfile::tempdir().unwrap();
        let drive = root.path().join("RPI-RP2");
        std::fs::create_dir_all(&drive).unwrap();
        std::fs::write(drive.join("INFO_UF2.TXT"), "Board-ID: RPI-RP2\n").unwrap();
        let mut f = Uf2Flasher::new(&crate::board::builtin("rpi-pico"), true);
        let mount = root.path().to_path_buf();
        f.mounts = Box::new(move || vec![mount.join("RPI-RP2")]);
        f.settle = std::time::Duration::from_millis(settle_ms);
        // No board comes back on this machine's USB; the note says so without a long wait.
        f.reconnect = std::time::Duration::from_millis(100);
        (root, drive, f)
    }

    #[test]
    fn a_drive_that_takes_the_image_goes_away_and_one_that_stays_is_an_error() {
        use crate::flash::{Event, Flasher as _, Phase};
        let img = image(vec![(0x1000_0000, vec![7; 300])]);
        // The boot ROM stand-in: once the file is complete, the drive unmounts.
        let (_root, drive, mut f) = fake_drive_flasher(20_000);
        let rom = {
            let drive = drive.clone();
            std::thread::spawn(move || {
                let file = drive.join("mpfr.uf2");
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_secs(20) {
                    if std::fs::metadata(&file).is_ok_and(|m| m.len() == 2 * 512) {
                        std::fs::remove_dir_all(&drive).unwrap();
                        return true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                false
            })
        };
        let mut events = Vec::new();
        let out = f.flash(&img, &mut |e| events.push(e)).unwrap();
        assert!(rom.join().unwrap(), "the copy never completed");
        assert!(
            matches!(&out, crate::flash::Outcome::Flashed { bytes: 512, .. }),
            "{out:?}"
        );
        assert!(events.contains(&Event::Finish {
            phase: Phase::Verify
        }));
        assert!(
            events.iter().any(
                |e| matches!(e, Event::Note { message } if message.contains("took the image"))
            )
        );

        // A drive that keeps the file took nothing.
        let (_root, drive, mut f) = fake_drive_flasher(300);
        let e = f.flash(&img, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("did not take the image"), "{e}");
        assert!(drive.join("mpfr.uf2").is_file());
    }

    #[test]
    fn picoboot_erases_writes_verifies_and_reboots() {
        let mut fake = FakePicoboot::default();
        // Old content in the same sector, past the image: it must survive the erase.
        for i in 0..16u32 {
            fake.flash.insert(0x1000_0f00 + i, 0x55);
        }
        // Old content in a sector the image does not touch.
        fake.flash.insert(0x1000_2000, 0x66);
        let img = image(vec![(0x1000_0000, (0..600u32).map(|i| i as u8).collect())]);
        let p = pages(&img).unwrap();
        let mut pb = Picoboot::new(fake, false);
        let mut done = 0;
        pb.flash(&p, true, &mut |n| done += n).unwrap();
        let fake = pb.into_inner();
        assert_eq!(done, 3 * 256);
        assert!(fake.rebooted);
        assert_eq!(fake.log.first(), Some(&CmdId::ExclusiveAccess));
        assert_eq!(fake.log.last(), Some(&CmdId::Reboot));
        for i in 0..600u32 {
            assert_eq!(fake.byte(0x1000_0000 + i), i as u8);
        }
        assert_eq!(fake.byte(0x1000_0000 + 600), 0, "rest of the last page");
        assert_eq!(fake.byte(0x1000_0f00), 0x55);
        assert_eq!(fake.byte(0x1000_2000), 0x66);
    }

    #[test]
    fn picoboot_verification_catches_bad_flash_and_rp2350_reboots_with_reboot2() {
        let img = image(vec![(0x1000_0000, vec![1; 256])]);
        let p = pages(&img).unwrap();
        let fake = FakePicoboot {
            corrupt_reads: true,
            ..FakePicoboot::default()
        };
        let mut pb = Picoboot::new(fake, false);
        let e = pb.flash(&p, true, &mut |_| {}).unwrap_err();
        assert!(matches!(e, Uf2Error::Verify { addr: 0x1000_0000 }), "{e}");
        assert!(!pb.into_inner().rebooted);

        let mut pb = Picoboot::new(FakePicoboot::default(), true);
        pb.flash(&p, false, &mut |_| {}).unwrap();
        let fake = pb.into_inner();
        assert!(fake.rebooted);
        assert_eq!(fake.log.last(), Some(&CmdId::Reboot2));
        // Without verification the only reads are of the sector's 15 pages the image leaves
        // alone (their old content is kept).
        let reads = fake.log.iter().filter(|c| **c == CmdId::Read).count();
        assert_eq!(reads, 15);
    }

    #[test]
    fn commands_have_the_picoboot_layout() {
        let c = command(7, CmdId::Write, &range(0x1000_0000, 256), 256);
        assert_eq!(&c[0..4], &0x431f_d10bu32.to_le_bytes());
        assert_eq!(&c[4..8], &7u32.to_le_bytes());
        assert_eq!(c[8], 0x05);
        assert_eq!(c[9], 8);
        assert_eq!(&c[12..16], &256u32.to_le_bytes());
        assert_eq!(&c[16..20], &0x1000_0000u32.to_le_bytes());
        assert_eq!(&c[20..24], &256u32.to_le_bytes());
    }
}
