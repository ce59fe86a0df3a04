//! Firmware images: ELF, Intel HEX, raw binary (with a base address), UF2 and ESP app images,
//! read into address-ordered segments, plus the checks that catch an image built for another chip.
//!
//! Everything here is pure: it reads a file and decides. Flashers take the [`Image`] it returns.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use serde::Serialize;

use crate::board::{Board, Platform, Region};

/// The formats mpfr reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Elf,
    Hex,
    Bin,
    Uf2,
    /// An ESP-IDF application image (`.bin` starting with 0xE9); flashed like a raw binary but
    /// its header names the chip.
    #[cfg_attr(feature = "cli", value(name = "esp-app"))]
    #[serde(rename = "esp-app")]
    EspApp,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Elf => "ELF",
            Format::Hex => "Intel HEX",
            Format::Bin => "raw binary",
            Format::Uf2 => "UF2",
            Format::EspApp => "ESP app image",
        })
    }
}

/// The CPU architecture an ELF was built for (`e_machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    Arm,
    Xtensa,
    RiscV,
    Other(u16),
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Arm => f.write_str("ARM"),
            Arch::Xtensa => f.write_str("Xtensa"),
            Arch::RiscV => f.write_str("RISC-V"),
            Arch::Other(m) => write!(f, "e_machine {m}"),
        }
    }
}

/// Bytes to place at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub data: Vec<u8>,
}

impl Segment {
    pub fn range(&self) -> Range<u64> {
        self.addr..self.addr + self.data.len() as u64
    }
}

/// A loaded image.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub format: Format,
    /// Address-ordered, non-overlapping, adjacent runs merged.
    pub segments: Vec<Segment>,
    /// ELF only.
    pub arch: Option<Arch>,
    pub entry: Option<u64>,
    /// The chip id an ESP app image header names (espflash's `Chip::id`).
    pub esp_chip_id: Option<u16>,
    /// The UF2 family id, when every block names the same one.
    pub uf2_family: Option<u32>,
    /// The file itself (espflash builds its app image from the ELF bytes).
    pub bytes: Vec<u8>,
}

/// How an image can be wrong.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ImageError {
    #[error("cannot read image {}", path.display())]
    #[diagnostic(
        code(mpfr::image::read),
        help("check the path; `mpfr build --board <board>` writes the default image")
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a valid {format}: {reason}", path.display())]
    #[diagnostic(
        code(mpfr::image::malformed),
        help("rebuild the image, or pass --format if mpfr guessed the format wrongly")
    )]
    Malformed {
        path: PathBuf,
        format: Format,
        reason: String,
    },

    #[error("{} is a raw binary: it does not say where it goes", path.display())]
    #[diagnostic(
        code(mpfr::image::no_base),
        help("pass --base ADDR (e.g. --base 0x10000000 for RP2040 flash, 0x08000000 for STM32)")
    )]
    NoBase { path: PathBuf },

    #[error("{} contains no loadable data", path.display())]
    #[diagnostic(
        code(mpfr::image::empty),
        help("an ELF needs PT_LOAD segments with file data; check the linker script")
    )]
    Empty { path: PathBuf },

    #[error("{} is built for {found}, but board `{board}` ({chip}) needs {expected}", path.display())]
    #[diagnostic(
        code(mpfr::image::wrong_chip),
        help(
            "build the image for this board (`mpfr build --board {board}`), or pick the board it was built for"
        )
    )]
    WrongChip {
        path: PathBuf,
        board: String,
        chip: String,
        found: String,
        expected: String,
    },

    #[error(
        "{} puts {len} bytes at {addr:#010x}, outside every memory region of {chip}",
        path.display()
    )]
    #[diagnostic(
        code(mpfr::image::outside_memory),
        help(
            "{chip} has: {regions}. The image was probably linked for another chip, or --base is wrong"
        )
    )]
    OutsideMemory {
        path: PathBuf,
        chip: String,
        addr: u64,
        len: u64,
        regions: String,
    },

    #[error("{flasher} cannot write a {format} image")]
    #[diagnostic(code(mpfr::image::unsupported), help("{help}"))]
    Unsupported {
        flasher: &'static str,
        format: Format,
        help: &'static str,
    },
}

impl ImageError {
    fn malformed(path: &Path, format: Format, reason: impl Into<String>) -> Self {
        ImageError::Malformed {
            path: path.to_path_buf(),
            format,
            // Parsers may quote the file (a HEX record, a section name).
            reason: crate::util::sanitize::escape_text(&reason.into(), 300),
        }
    }
}

/// Parses `0x1000_0000`, `0X8000000` or decimal.
pub fn parse_addr(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("`{s}` is not an address (hex with 0x, or decimal)"))
}

/// Guesses the format from the first bytes, then the file extension.
pub fn detect_format(path: &Path, bytes: &[u8]) -> Format {
    if bytes.starts_with(b"\x7fELF") {
        return Format::Elf;
    }
    if bytes.len() >= 8 && le32(bytes, 0) == UF2_MAGIC0 && le32(bytes, 4) == UF2_MAGIC1 {
        return Format::Uf2;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("hex" | "ihex" | "ihx") => return Format::Hex,
        Some("elf" | "axf") => return Format::Elf,
        Some("uf2") => return Format::Uf2,
        _ => {}
    }
    if bytes.first() == Some(&b':') && bytes.iter().take(64).all(|b| b.is_ascii()) {
        return Format::Hex;
    }
    if bytes.len() >= ESP_HEADER_LEN && bytes[0] == ESP_MAGIC {
        return Format::EspApp;
    }
    Format::Bin
}

/// Reads and parses an image. `format` overrides detection; `base` places a raw binary.
pub fn load(path: &Path, format: Option<Format>, base: Option<u64>) -> Result<Image, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, bytes, format, base)
}

/// Parses image bytes already in memory (`path` is only for messages).
pub fn parse(
    path: &Path,
    bytes: Vec<u8>,
    format: Option<Format>,
    base: Option<u64>,
) -> Result<Image, ImageError> {
    let format = format.unwrap_or_else(|| detect_format(path, &bytes));
    let mut img = Image {
        path: path.to_path_buf(),
        format,
        segments: Vec::new(),
        arch: None,
        entry: None,
        esp_chip_id: None,
        uf2_family: None,
        bytes: Vec::new(),
    };
    let segments = match format {
        Format::Elf => {
            let e = parse_elf(path, &bytes)?;
            img.arch = Some(e.arch);
            img.entry = Some(e.entry);
            e.segments
        }
        Format::Hex => parse_hex(path, &bytes)?,
        Format::Uf2 => {
            let (segs, family) = parse_uf2(path, &bytes)?;
            img.uf2_family = family;
            segs
        }
        Format::Bin | Format::EspApp => {
            if format == Format::EspApp {
                img.esp_chip_id = Some(esp_chip_id(path, &bytes)?);
            }
            let addr = base.ok_or_else(|| ImageError::NoBase {
                path: path.to_path_buf(),
            })?;
            vec![Segment {
                addr,
                data: bytes.clone(),
            }]
        }
    };
    img.segments = merge(segments);
    if img.segments.iter().all(|s| s.data.is_empty()) {
        return Err(ImageError::Empty {
            path: path.to_path_buf(),
        });
    }
    img.bytes = bytes;
    Ok(img)
}

impl Image {
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.data.len() as u64).sum()
    }

    /// Checks that this image can be meant for `board`: architecture, ESP chip id, UF2 family,
    /// and (for chips with a known memory map) that every segment lands in real memory.
    pub fn check_for_board(&self, board: &Board) -> Result<(), ImageError> {
        let wrong = |found: String, expected: String| ImageError::WrongChip {
            path: self.path.clone(),
            board: board.name.clone(),
            chip: board.chip.clone(),
            found,
            expected,
        };
        match &board.platform {
            Platform::Qemu(machine) => {
                if self.format != Format::Elf {
                    return Err(ImageError::Unsupported {
                        flasher: "the QEMU virtual board",
                        format: self.format,
                        help: "QEMU boots an ELF (`-kernel`); pass the firmware's .elf",
                    });
                }
                if self.arch != Some(Arch::Arm) {
                    return Err(wrong(
                        format!("{} ELF", self.arch.unwrap_or(Arch::Other(0))),
                        format!("an ARM ({}) ELF", machine.cpu),
                    ));
                }
                check_regions(self, &board.chip, &machine.memory)
            }
            Platform::Probe(_) => {
                if let Some(a) = self.arch
                    && a != Arch::Arm
                {
                    return Err(wrong(format!("{a}"), "ARM".into()));
                }
                if let Some(f) = self.uf2_family
                    && let Some(expected) = uf2_families_for(&board.chip)
                    && !expected.contains(&f)
                {
                    return Err(wrong(
                        format!("UF2 family {f:#010x}{}", uf2_family_name(f)),
                        format!("UF2 family {:#010x}", expected[0]),
                    ));
                }
                if let Some(regions) = board.platform.memory_map() {
                    check_regions(self, &board.chip, &regions)?;
                }
                Ok(())
            }
            Platform::Esp(_) => {
                let chip: Option<espflash::target::Chip> = board.chip.parse().ok();
                if self.format == Format::Uf2 {
                    return Err(ImageError::Unsupported {
                        flasher: "espflash",
                        format: Format::Uf2,
                        help: "pass the firmware's ELF (or its app .bin with --base 0x10000)",
                    });
                }
                if let Some(a) = self.arch {
                    let expected = match chip {
                        Some(c) if is_riscv(c) => Arch::RiscV,
                        _ => Arch::Xtensa,
                    };
                    if a != expected {
                        return Err(wrong(format!("{a}"), format!("{expected}")));
                    }
                }
                if let (Some(id), Some(c)) = (self.esp_chip_id, chip)
                    && id != c.id()
                {
                    return Err(wrong(
                        format!("chip id {id}{}", esp_chip_name(id)),
                        format!("chip id {} ({c})", c.id()),
                    ));
                }
                Ok(())
            }
            Platform::Host => Ok(()),
        }
    }
}

fn is_riscv(c: espflash::target::Chip) -> bool {
    use espflash::target::Chip as C;
    !matches!(c, C::Esp32 | C::Esp32s2 | C::Esp32s3)
}

fn esp_chip_name(id: u16) -> String {
    use espflash::target::Chip as C;
    [
        C::Esp32,
        C::Esp32c2,
        C::Esp32c3,
        C::Esp32c5,
        C::Esp32c6,
        C::Esp32c61,
        C::Esp32h2,
        C::Esp32h4,
        C::Esp32p4,
        C::Esp32s2,
        C::Esp32s3,
        C::Esp32s31,
    ]
    .into_iter()
    .find(|c| c.id() == id)
    .map(|c| format!(" ({c})"))
    .unwrap_or_default()
}

/// Which region each segment lands in (the first one containing it).
pub fn placement<'a>(img: &Image, regions: &'a [Region]) -> Vec<Option<&'a Region>> {
    img.segments
        .iter()
        .map(|s| regions.iter().find(|r| r.contains(&s.range())))
        .collect()
}

fn check_regions(img: &Image, chip: &str, regions: &[Region]) -> Result<(), ImageError> {
    for (s, r) in img.segments.iter().zip(placement(img, regions)) {
        if r.is_none() {
            return Err(ImageError::OutsideMemory {
                path: img.path.clone(),
                chip: chip.to_string(),
                addr: s.addr,
                len: s.data.len() as u64,
                regions: regions
                    .iter()
                    .map(|r| format!("{} {:#010x}..{:#010x}", r.name, r.start, r.end))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

/// Sorts segments and joins the ones that touch; drops empty ones.
fn merge(mut segs: Vec<Segment>) -> Vec<Segment> {
    segs.retain(|s| !s.data.is_empty());
    segs.sort_by_key(|s| s.addr);
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs {
        match out.last_mut() {
            Some(last) if last.range().end == s.addr => last.data.extend_from_slice(&s.data),
            _ => out.push(s),
        }
    }
    out
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

// ---------------------------------------------------------------------------------------------
// ELF

struct Elf {
    arch: Arch,
    entry: u64,
    segments: Vec<Segment>,
}

fn parse_elf(path: &Path, bytes: &[u8]) -> Result<Elf, ImageError> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let bad = |r: String| ImageError::malformed(path, Format::Elf, r);
    let kind = object::FileKind::parse(bytes).map_err(|e| bad(e.to_string()))?;
    match kind {
        object::FileKind::Elf32 => {
            let h = object::elf::FileHeader32::<object::Endianness>::parse(bytes)
                .map_err(|e| bad(e.to_string()))?;
            let endian = h.endian().map_err(|e| bad(e.to_string()))?;
            let mut segments = Vec::new();
            for ph in h
                .program_headers(endian, bytes)
                .map_err(|e| bad(e.to_string()))?
            {
                if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_filesz(endian) == 0 {
                    continue;
                }
                let data = ph
                    .data(endian, bytes)
                    .map_err(|_| bad("a segment points past the end of the file".into()))?;
                // The load address (LMA): where the bytes must be stored, which for
                // initialised data in flash differs from where it runs.
                segments.push(Segment {
                    addr: u64::from(ph.p_paddr(endian)),
                    data: data.to_vec(),
                });
            }
            let arch = match h.e_machine(endian) {
                object::elf::EM_ARM => Arch::Arm,
                object::elf::EM_XTENSA => Arch::Xtensa,
                object::elf::EM_RISCV => Arch::RiscV,
                m => Arch::Other(m.0),
            };
            Ok(Elf {
                arch,
                entry: u64::from(h.e_entry(endian)),
                segments,
            })
        }
        object::FileKind::Elf64 => Err(bad(
            "a 64-bit ELF: microcontroller firmware is 32-bit (is this a host program?)".into(),
        )),
        _ => Err(bad("not an ELF file".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Intel HEX

fn parse_hex(path: &Path, bytes: &[u8]) -> Result<Vec<Segment>, ImageError> {
    use ihex::Record;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ImageError::malformed(path, Format::Hex, "not text"))?;
    let mut upper: u64 = 0;
    let mut segs = Vec::new();
    for (i, rec) in ihex::Reader::new(text).enumerate() {
        let rec = rec.map_err(|e| {
            ImageError::malformed(path, Format::Hex, format!("record {}: {e}", i + 1))
        })?;
        match rec {
            Record::Data { offset, value } => segs.push(Segment {
                addr: upper + u64::from(offset),
                data: value,
            }),
            Record::ExtendedSegmentAddress(s) => upper = u64::from(s) << 4,
            Record::ExtendedLinearAddress(s) => upper = u64::from(s) << 16,
            Record::StartSegmentAddress { .. } | Record::StartLinearAddress(_) => {}
            Record::EndOfFile => break,
        }
    }
    Ok(segs)
}

// ---------------------------------------------------------------------------------------------
// UF2

const UF2_MAGIC0: u32 = 0x0A32_4655;
const UF2_MAGIC1: u32 = 0x9E5D_5157;
const UF2_MAGIC_END: u32 = 0x0AB1_6F30;
const UF2_FLAG_NOT_MAIN_FLASH: u32 = 0x0000_0001;
const UF2_FLAG_FAMILY: u32 = 0x0000_2000;

fn uf2_families_for(chip: &str) -> Option<&'static [u32]> {
    let c = chip.to_ascii_lowercase();
    if c.starts_with("rp2040") {
        Some(&[0xe48b_ff56])
    } else if c.starts_with("rp235") {
        // RP2350 ARM secure, ARM non-secure, and the "absolute" family for boot blocks.
        Some(&[0xe48b_ff59, 0xe48b_ff5b, 0xe48b_ff57])
    } else if c.starts_with("stm32f4") {
        Some(&[0x5775_5a57])
    } else {
        None
    }
}

fn uf2_family_name(f: u32) -> &'static str {
    match f {
        0xe48b_ff56 => " (RP2040)",
        0xe48b_ff59 | 0xe48b_ff5b => " (RP2350)",
        0xe48b_ff57 => " (RP2xxx absolute)",
        0x5775_5a57 => " (STM32F4)",
        0x1c5f_21b0 => " (ESP32)",
        0xc47e_5767 => " (ESP32-S3)",
        _ => "",
    }
}

fn parse_uf2(path: &Path, bytes: &[u8]) -> Result<(Vec<Segment>, Option<u32>), ImageError> {
    let bad = |r: String| ImageError::malformed(path, Format::Uf2, r);
    if !bytes.len().is_multiple_of(512) {
        return Err(bad(format!(
            "{} bytes is not a whole number of 512-byte blocks",
            bytes.len()
        )));
    }
    let mut segs = Vec::new();
    let mut families = std::collections::BTreeSet::new();
    for (i, b) in bytes.chunks_exact(512).enumerate() {
        if le32(b, 0) != UF2_MAGIC0 || le32(b, 4) != UF2_MAGIC1 || le32(b, 508) != UF2_MAGIC_END {
            return Err(bad(format!("block {i} has a bad magic number")));
        }
        let flags = le32(b, 8);
        if flags & UF2_FLAG_NOT_MAIN_FLASH != 0 {
            continue;
        }
        let (addr, len) = (le32(b, 12), le32(b, 16) as usize);
        if len > 476 {
            return Err(bad(format!(
                "block {i} claims {len} payload bytes (max 476)"
            )));
        }
        if flags & UF2_FLAG_FAMILY != 0 {
            families.insert(le32(b, 28));
        }
        segs.push(Segment {
            addr: u64::from(addr),
            data: b[32..32 + len].to_vec(),
        });
    }
    let family = if families.len() == 1 {
        families.into_iter().next()
    } else {
        None
    };
    Ok((segs, family))
}

// ---------------------------------------------------------------------------------------------
// ESP app image header: magic 0xE9, segment count, SPI mode, size/freq, entry (4), then the
// extended header whose bytes 4..6 (file offset 12) hold the chip id.

const ESP_MAGIC: u8 = 0xE9;
const ESP_HEADER_LEN: usize = 24;

fn esp_chip_id(path: &Path, bytes: &[u8]) -> Result<u16, ImageError> {
    if bytes.len() < ESP_HEADER_LEN || bytes[0] != ESP_MAGIC {
        return Err(ImageError::malformed(
            path,
            Format::EspApp,
            "no ESP image header (magic 0xE9)",
        ));
    }
    Ok(u16::from_le_bytes([bytes[12], bytes[13]]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whatever a parser quotes from the file reaches the error escaped.
    #[test]
    fn image_errors_never_carry_controls_from_the_file() {
        for (name, bytes, format) in [
            ("a.hex", b":\x1b[2J\xe2\x80\xae\n".to_vec(), Format::Hex),
            ("a.hex", b":0000000\x1b]0;t\x07\n".to_vec(), Format::Hex),
            ("a.elf", b"\x7fELF\x1b[2J\x1b[2J".to_vec(), Format::Elf),
        ] {
            let e = parse(Path::new(name), bytes, Some(format), None).expect_err("malformed");
            let text = e.to_string();
            assert!(
                !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{text:?}"
            );
        }
        let e = ImageError::malformed(Path::new("a.bin"), Format::Hex, "quoted \x1b[2J\u{202e}");
        assert!(e.to_string().ends_with("quoted \\x1b[2J\\u{202e}"), "{e}");
    }

    /// A minimal little-endian ELF32 with one PT_LOAD per `(paddr, data)`.
    pub(crate) fn elf32(machine: u16, entry: u32, segs: &[(u32, &[u8])]) -> Vec<u8> {
        let phoff = 52u32;
        let mut data_off = phoff + 32 * segs.len() as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&phoff.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        out.extend_from_slice(&52u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        out.extend_from_slice(&40u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        for (addr, d) in segs {
            for v in [
                1,
                data_off,
                *addr,
                *addr,
                d.len() as u32,
                d.len() as u32,
                5,
                4,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            data_off += d.len() as u32;
        }
        for (_, d) in segs {
            out.extend_from_slice(d);
        }
        out
    }

    fn hex_record(kind: u8, addr: u16, data: &[u8]) -> String {
        let mut bytes = vec![data.len() as u8, (addr >> 8) as u8, addr as u8, kind];
        bytes.extend_from_slice(data);
        let sum = bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        bytes.push(sum.wrapping_neg());
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!(":{hex}\n")
    }

    fn uf2_block(flags: u32, addr: u32, data: &[u8], n: u32, total: u32, family: u32) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        for (i, v) in [
            UF2_MAGIC0,
            UF2_MAGIC1,
            flags,
            addr,
            data.len() as u32,
            n,
            total,
            family,
        ]
        .iter()
        .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b[32..32 + data.len()].copy_from_slice(data);
        b[508..].copy_from_slice(&UF2_MAGIC_END.to_le_bytes());
        b
    }

    use crate::board::builtin as board;

    fn p() -> &'static Path {
        Path::new("fw.elf")
    }

    #[test]
    fn elf_segments_become_merged_regions() {
        let elf = elf32(
            40,
            0x101,
            &[(0x100, &[1, 2]), (0x0, &[9; 4]), (0x102, &[3])],
        );
        let img = parse(p(), elf, None, None).unwrap();
        assert_eq!(img.format, Format::Elf);
        assert_eq!(img.arch, Some(Arch::Arm));
        assert_eq!(img.entry, Some(0x101));
        assert_eq!(
            img.segments,
            vec![
                Segment {
                    addr: 0,
                    data: vec![9; 4]
                },
                Segment {
                    addr: 0x100,
                    data: vec![1, 2, 3]
                },
            ]
        );
        assert_eq!(img.total_bytes(), 7);
    }

    #[test]
    fn truncated_elf_is_malformed_at_every_cut() {
        let elf = elf32(40, 0, &[(0x0, &[1, 2, 3, 4])]);
        // Every cut before the end of the segment data must be an error, never a panic.
        for cut in 0..elf.len() {
            let r = parse(p(), elf[..cut].to_vec(), Some(Format::Elf), None);
            assert!(r.is_err(), "cut at {cut} parsed");
        }
        assert!(parse(p(), elf, Some(Format::Elf), None).is_ok());
    }

    #[test]
    fn elf_without_load_data_is_empty() {
        let elf = elf32(40, 0, &[]);
        assert!(matches!(
            parse(p(), elf, None, None),
            Err(ImageError::Empty { .. })
        ));
    }

    #[test]
    fn hex_with_linear_and_segment_addresses() {
        let mut h = String::new();
        h += &hex_record(4, 0, &[0x10, 0x00]); // upper 0x1000_0000
        h += &hex_record(0, 0x0000, &[1, 2, 3]);
        h += &hex_record(0, 0x0003, &[4]);
        h += &hex_record(2, 0, &[0x10, 0x00]); // segment 0x1000 << 4 = 0x10000
        h += &hex_record(0, 0x0010, &[7]);
        h += &hex_record(1, 0, &[]);
        let img = parse(Path::new("a.hex"), h.into_bytes(), None, None).unwrap();
        assert_eq!(img.format, Format::Hex);
        assert_eq!(
            img.segments,
            vec![
                Segment {
                    addr: 0x10010,
                    data: vec![7]
                },
                Segment {
                    addr: 0x1000_0000,
                    data: vec![1, 2, 3, 4]
                },
            ]
        );
    }

    #[test]
    fn hex_with_bad_checksum_names_the_record() {
        let mut h = hex_record(0, 0, &[1, 2]);
        h = h.replace(":0200000001", ":0200000002");
        let e = parse(Path::new("a.hex"), h.into_bytes(), None, None).unwrap_err();
        assert!(e.to_string().contains("record 1"), "{e}");
    }

    #[test]
    fn bin_needs_a_base() {
        let e = parse(Path::new("a.bin"), vec![1, 2, 3], None, None).unwrap_err();
        assert!(matches!(e, ImageError::NoBase { .. }));
        let img = parse(Path::new("a.bin"), vec![1, 2, 3], None, Some(0x0800_0000)).unwrap();
        assert_eq!(img.format, Format::Bin);
        assert_eq!(img.segments[0].addr, 0x0800_0000);
    }

    #[test]
    fn parse_addr_forms() {
        assert_eq!(parse_addr("0x1000_0000"), Ok(0x1000_0000));
        assert_eq!(parse_addr("4096"), Ok(4096));
        assert!(parse_addr("0xzz").is_err());
    }

    #[test]
    fn uf2_blocks_and_family() {
        let mut f = uf2_block(UF2_FLAG_FAMILY, 0x1000_0000, &[1; 256], 0, 3, 0xe48b_ff56);
        f.extend(uf2_block(
            UF2_FLAG_FAMILY,
            0x1000_0100,
            &[2; 256],
            1,
            3,
            0xe48b_ff56,
        ));
        f.extend(uf2_block(
            UF2_FLAG_NOT_MAIN_FLASH,
            0x2000_0000,
            &[3; 4],
            2,
            3,
            0,
        ));
        let img = parse(Path::new("x.bin"), f.clone(), None, None).unwrap();
        assert_eq!(img.format, Format::Uf2);
        assert_eq!(img.uf2_family, Some(0xe48b_ff56));
        assert_eq!(img.segments.len(), 1);
        assert_eq!(img.total_bytes(), 512);
        img.check_for_board(&board("rpi-pico")).unwrap();
        let e = img.check_for_board(&board("rpi-pico2")).unwrap_err();
        assert!(e.to_string().contains("RP2040"), "{e}");
        for cut in [1, 100, 511, 513] {
            assert!(parse(Path::new("x.uf2"), f[..cut].to_vec(), None, None).is_err());
        }
    }

    fn esp_app(chip_id: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0] = ESP_MAGIC;
        b[1] = 1;
        b[12..14].copy_from_slice(&chip_id.to_le_bytes());
        b
    }

    #[test]
    fn esp_app_header_names_the_chip() {
        let img = parse(Path::new("app.bin"), esp_app(9), None, Some(0x10000)).unwrap();
        assert_eq!(img.format, Format::EspApp);
        assert_eq!(img.esp_chip_id, Some(9));
        img.check_for_board(&board("esp32-s3-devkitc")).unwrap();
        let e = img.check_for_board(&board("esp32-devkitc")).unwrap_err();
        assert!(matches!(e, ImageError::WrongChip { .. }));
        assert!(e.to_string().contains("esp32s3"), "{e}");
        // Too short for a header when the format is forced.
        assert!(
            parse(
                Path::new("a"),
                vec![0xE9; 10],
                Some(Format::EspApp),
                Some(0)
            )
            .is_err()
        );
    }

    #[test]
    fn elf_architecture_must_match_the_board() {
        let arm = parse(p(), elf32(40, 0, &[(0x1000_0000, &[0; 8])]), None, None).unwrap();
        let xtensa = parse(p(), elf32(94, 0, &[(0x4200_0000, &[0; 8])]), None, None).unwrap();
        assert_eq!(xtensa.arch, Some(Arch::Xtensa));
        arm.check_for_board(&board("rpi-pico")).unwrap();
        xtensa.check_for_board(&board("esp32-s3-devkitc")).unwrap();
        let e = arm.check_for_board(&board("esp32-s3-devkitc")).unwrap_err();
        assert!(e.to_string().contains("ARM"), "{e}");
        let e = xtensa.check_for_board(&board("rpi-pico")).unwrap_err();
        assert!(e.to_string().contains("Xtensa"), "{e}");
        let e = xtensa
            .check_for_board(&board("qemu-mps2-an385"))
            .unwrap_err();
        assert!(matches!(e, ImageError::WrongChip { .. }));
    }

    #[test]
    fn arm_segments_must_fall_in_the_chips_memory() {
        // An STM32 image (flash at 0x0800_0000) is not an RP2040 image.
        let stm = parse(p(), elf32(40, 0, &[(0x0800_0000, &[0; 8])]), None, None).unwrap();
        stm.check_for_board(&board("nucleo-f429zi")).unwrap();
        let e = stm.check_for_board(&board("rpi-pico")).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::OutsideMemory {
                    addr: 0x0800_0000,
                    ..
                }
            ),
            "{e}"
        );
        // QEMU's map: code at 0, data at 0x2000_0000; nothing at 0x1000_0000.
        let q = parse(
            p(),
            elf32(40, 0, &[(0, &[0; 8]), (0x2000_0000, &[1; 4])]),
            None,
            None,
        )
        .unwrap();
        q.check_for_board(&board("qemu-mps2-an385")).unwrap();
        let pico = parse(p(), elf32(40, 0, &[(0x1000_0000, &[0; 8])]), None, None).unwrap();
        assert!(pico.check_for_board(&board("qemu-mps2-an385")).is_err());
    }

    #[test]
    fn detection_by_content_then_extension() {
        assert_eq!(detect_format(Path::new("x"), b"\x7fELF...."), Format::Elf);
        assert_eq!(detect_format(Path::new("x.hex"), b""), Format::Hex);
        assert_eq!(
            detect_format(Path::new("x"), b":020000040800F2\n"),
            Format::Hex
        );
        assert_eq!(detect_format(Path::new("x.bin"), &[0u8; 32]), Format::Bin);
        assert_eq!(
            detect_format(Path::new("x.bin"), &esp_app(0)),
            Format::EspApp
        );
    }
}
