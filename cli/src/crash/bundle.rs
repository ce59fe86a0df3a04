//! The crash bundle: one file holding what `mpfr crash capture` read from a halted target, so
//! that `mpfr crash show` can explain it later, on another machine.
//!
//! Format (version 1): the line `MPFR-CRASH 1`, one line of JSON (the [`Bundle`] header, whose
//! `memory` array indexes the blocks), then each memory block as a zlib stream, in the order
//! of the index. A block's `compressed` says how many bytes its stream has.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::{Deserialize, Serialize};

use super::Error;
use super::fault::FaultRegs;

const MAGIC: &[u8] = b"MPFR-CRASH 1\n";

/// One core as the capture found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreState {
    pub index: u32,
    /// The debugger's thread id of this core (`p2.2`).
    pub thread: String,
    /// r0-r15 (r13 is the active stack pointer, r15 the PC).
    pub regs: Vec<u32>,
    pub xpsr: u32,
    /// Banked stack pointers and CONTROL, when the debugger could read them (QEMU 7's gdbstub
    /// cannot: then only the active one is known, as r13).
    pub msp: Option<u32>,
    pub psp: Option<u32>,
    pub control: Option<u32>,
    /// The core's SCB fault registers, read with the core selected.
    pub fault: FaultRegs,
}

impl CoreState {
    pub fn pc(&self) -> u32 {
        self.regs.get(15).copied().unwrap_or(0)
    }

    pub fn sp(&self) -> u32 {
        self.regs.get(13).copied().unwrap_or(0)
    }

    /// The exception the core is in (IPSR), 0 in thread mode.
    pub fn exception(&self) -> u32 {
        self.xpsr & 0x1ff
    }
}

/// Where a memory block sits in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    pub name: String,
    pub start: u64,
    pub size: u64,
    pub compressed: u64,
}

/// A range of target memory as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub start: u64,
    pub data: Vec<u8>,
}

/// Everything a capture holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub board: String,
    /// The CPU of the board (`cortex-m3`, `cortex-m33`): it decides the saved-context layout.
    pub cpu: String,
    /// Seconds since the Unix epoch.
    pub captured_unix: u64,
    /// The firmware the target was running, as mpfr knew it.
    pub elf: Option<PathBuf>,
    /// SHA-256 of that file (hex), to check an `--elf` given to `show`.
    pub elf_sha256: Option<String>,
    /// Its GNU build id (hex), when the linker wrote one.
    pub build_id: Option<String>,
    /// The config fingerprint of the build (`0x28da8d97`).
    pub fingerprint: Option<String>,
    /// How the target was halted (`QEMU gdbstub at ..`).
    pub transport: String,
    pub cores: Vec<CoreState>,
    /// The console's last lines, when mpfr had them.
    pub console_tail: Option<String>,
    /// What the capture could not do.
    pub notes: Vec<String>,
    /// Index of the memory blocks after the header.
    pub memory: Vec<BlockIndex>,
    #[serde(skip)]
    pub blocks: Vec<Block>,
}

impl Bundle {
    /// The bundle as bytes, in the format above.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut streams = Vec::new();
        let mut index = Vec::new();
        for b in &self.blocks {
            let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
            z.write_all(&b.data)
                .and_then(|_| z.finish())
                .map(|s| {
                    index.push(BlockIndex {
                        name: b.name.clone(),
                        start: b.start,
                        size: b.data.len() as u64,
                        compressed: s.len() as u64,
                    });
                    streams.push(s);
                })
                .map_err(|e| Error::Io {
                    context: "compress the captured memory".into(),
                    source: e,
                })?;
        }
        let header = Bundle {
            memory: index,
            blocks: Vec::new(),
            ..self.clone()
        };
        let mut out = MAGIC.to_vec();
        out.extend(serde_json::to_vec(&header).expect("a bundle header serialises"));
        out.push(b'\n');
        for s in streams {
            out.extend(s);
        }
        Ok(out)
    }

    /// Reads bytes written by [`Bundle::to_bytes`]; `what` names them in errors.
    pub fn from_bytes(bytes: &[u8], what: &Path) -> Result<Bundle, Error> {
        let bad = |why: String| Error::BadBundle {
            path: what.to_path_buf(),
            why,
        };
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("it does not start with `MPFR-CRASH 1`".into()))?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("the header line has no end".into()))?;
        let mut bundle: Bundle = serde_json::from_slice(&rest[..nl])
            .map_err(|e| bad(format!("the header is not a bundle header: {e}")))?;
        let mut pos = nl + 1;
        for ix in &bundle.memory {
            let end = pos
                .checked_add(ix.compressed as usize)
                .filter(|&e| e <= rest.len())
                .ok_or_else(|| bad(format!("block {} is cut short", ix.name)))?;
            let mut data = Vec::with_capacity(ix.size.min(1 << 26) as usize);
            ZlibDecoder::new(&rest[pos..end])
                .take(ix.size + 1)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("block {} does not decompress: {e}", ix.name)))?;
            if data.len() as u64 != ix.size {
                return Err(bad(format!(
                    "block {} holds {} bytes, its index says {}",
                    ix.name,
                    data.len(),
                    ix.size
                )));
            }
            bundle.blocks.push(Block {
                name: ix.name.clone(),
                start: ix.start,
                data,
            });
            pos = end;
        }
        Ok(bundle)
    }

    /// Reads a bundle file.
    pub fn read(path: &Path) -> Result<Bundle, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            context: format!("read the crash bundle {}", path.display()),
            source: e,
        })?;
        Bundle::from_bytes(&bytes, path)
    }

    /// Writes the bundle all-or-nothing: a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let bytes = self.to_bytes()?;
        crate::util::fsutil::write_atomically(path, &bytes).map_err(|e| Error::Io {
            context: format!("write the crash bundle {}", path.display()),
            source: e,
        })
    }

    /// `len` bytes of captured memory at `addr`, when one block holds them all.
    pub fn mem(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.blocks.iter().find_map(|b| {
            let off = addr.checked_sub(b.start)? as usize;
            b.data.get(off..off.checked_add(len)?)
        })
    }

    pub fn u32_at(&self, addr: u64) -> Option<u32> {
        self.mem(addr, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Bundle {
        let mut ram = vec![0u8; 64 * 1024];
        ram[16..20].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        Bundle {
            board: "qemu-mps2-an521".into(),
            cpu: "cortex-m33".into(),
            captured_unix: 1_700_000_000,
            elf: Some("/x/firmware.elf".into()),
            elf_sha256: Some("ab".repeat(32)),
            build_id: None,
            fingerprint: Some("0xc4e17560".into()),
            transport: "test".into(),
            cores: vec![CoreState {
                index: 1,
                thread: "p2.2".into(),
                regs: (0..16).collect(),
                xpsr: 0x4100_0003,
                msp: None,
                psp: Some(0x3800_0100),
                control: None,
                fault: FaultRegs {
                    cfsr: 0x8200,
                    hfsr: 0x4000_0000,
                    mmfar: 0,
                    bfar: 0xf000_0000,
                },
            }],
            console_tail: Some("FATAL HardFault core=1\n".into()),
            notes: vec![],
            memory: vec![],
            blocks: vec![
                Block {
                    name: "ssram23".into(),
                    start: 0x3800_0000,
                    data: ram,
                },
                Block {
                    name: "empty".into(),
                    start: 0x2100_0000,
                    data: vec![],
                },
            ],
        }
    }

    #[test]
    fn round_trip_keeps_everything() {
        let b = sample();
        let bytes = b.to_bytes().expect("encode");
        // 64 KiB of mostly zeros compresses.
        assert!(bytes.len() < 4096, "{} bytes", bytes.len());
        let back = Bundle::from_bytes(&bytes, Path::new("t")).expect("decode");
        assert_eq!(back.blocks, b.blocks);
        assert_eq!(back.cores, b.cores);
        assert_eq!(back.memory.len(), 2);
        assert_eq!(back.u32_at(0x3800_0010), Some(0xdead_beef));
        assert_eq!(back.u32_at(0x3801_0000), None, "one past the end");
        assert_eq!(back.cores[0].exception(), 3);
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let bytes = sample().to_bytes().expect("encode");
        for (cut, want) in [
            (&bytes[..5], "does not start"),
            (&bytes[..MAGIC.len() + 10], "header line has no end"),
            (&bytes[..bytes.len() - 3], "cut short"),
        ] {
            let e = Bundle::from_bytes(cut, Path::new("b.crash")).expect_err("damaged");
            let msg = format!("{e}: {e:?}");
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("b.crash"), "{msg}");
        }
        let mut other = bytes.clone();
        let at = MAGIC.len() + 1;
        other[at] = b'#';
        assert!(Bundle::from_bytes(&other, Path::new("b")).is_err());
    }

    #[test]
    fn write_then_read_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.crash");
        sample().write(&p).expect("write");
        let back = Bundle::read(&p).expect("read");
        assert_eq!(back.board, "qemu-mps2-an521");
        assert_eq!(back.fingerprint.as_deref(), Some("0xc4e17560"));
    }
}
