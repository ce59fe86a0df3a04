//! What a board is, resolved once from its `boards.toml` entry: a QEMU machine, a chip behind a
//! debug probe, an ESP chip behind its ROM bootloader, or a process on this machine. Everything
//! that depends on the kind of board (flasher, memory access, memory map, reference firmware
//! build) asks the [`Platform`]; nothing decides by a board's name.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::Flasher;
use crate::util::size::Size;

/// A board's platform and the facts that come with it.
// Resolved once per board and a handful at most: the QEMU machine's size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// A QEMU machine started by mpfr (the virtual board).
    Qemu(QemuMachine),
    /// A chip that probe-rs flashes and reads through a debug probe.
    Probe(ProbeChip),
    /// An ESP chip flashed through its ROM bootloader (espflash).
    Esp(EspChip),
    /// A process on this machine (the MicroPython unix port).
    Host,
}

/// A QEMU machine as data: what `boards.toml` says under `[boards.NAME.qemu]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QemuMachine {
    /// QEMU's machine name (`-M`).
    pub machine: String,
    /// The CPU the machine emulates (for the reference firmware's compiler flags).
    pub cpu: String,
    /// How many CPUs the machine has: no board on it may claim more.
    pub cores: u32,
    /// Base address of UART0, the console (handed to the reference firmware).
    pub uart: u64,
    /// Extra QEMU arguments this machine needs (e.g. `-global sse-200.CPU0_FPU=true`).
    pub args: Vec<String>,
    /// The memory map: image placement and where RTT may live.
    pub memory: Vec<Region>,
    /// How the reference firmware is built for this machine, when it is (boxed: few machines
    /// have one, and it would make every platform large).
    pub reference: Option<Box<ReferenceBuild>>,
    /// How mpfr's MicroPython port is built for this machine, when it is.
    pub micropython: Option<MicroPythonBuild>,
}

/// Per-machine facts of mpfr's MicroPython port build (`mpfr build --firmware micropython`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicroPythonBuild {
    /// The port's folder among the firmware sources (`micropython/qemu`).
    pub port: String,
    /// `NAME=value` make variables that select this machine in the port (CPU, startup, linker
    /// script, kernel port), passed before the user's own.
    #[serde(default)]
    pub make_args: Vec<String>,
}

/// Per-machine facts of the reference firmware build (paths relative to the FreeRTOS kernel
/// folder or to the firmware sources).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceBuild {
    /// Compiler flags that select the CPU (`-mcpu=cortex-m3`, `-mthumb`, FPU flags).
    pub cflags: Vec<String>,
    /// The kernel's port folder (`portable/GCC/ARM_CM3`), an include folder.
    #[serde(default)]
    pub kernel_port: Option<String>,
    /// Or a port mpfr ships, a folder among the firmware sources (`smp/cm33_mps2`): it goes on
    /// the include path in place of the kernel's and its C files are compiled.
    #[serde(default)]
    pub firmware_port: Option<String>,
    /// Kernel files to compile.
    pub kernel_sources: Vec<String>,
    /// The linker script among the reference sources.
    pub linker_script: String,
    /// The startup file among the reference sources.
    pub startup: String,
}

/// A chip probe-rs knows by this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeChip {
    pub chip: String,
}

/// An ESP chip espflash knows by this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspChip {
    pub chip: String,
}

/// How mpfr reads a running target's memory (for RTT or thread statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryAccess {
    /// QEMU's gdbstub.
    Gdbstub,
    /// A debug probe through probe-rs.
    Probe,
    /// `/proc` of the host process.
    Procfs,
    /// No memory access from the host (telemetry only in-band).
    None,
}

/// A named memory region an image may be placed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    pub name: String,
    pub kind: RegionKind,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionKind {
    Flash,
    Ram,
    Other,
}

impl RegionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegionKind::Flash => "flash",
            RegionKind::Ram => "ram",
            RegionKind::Other => "other",
        }
    }
}

impl Region {
    pub fn contains(&self, r: &Range<u64>) -> bool {
        r.start >= self.start && r.end <= self.end
    }
}

/// `[boards.NAME.qemu]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQemu {
    machine: String,
    cpu: String,
    #[serde(default = "one_core")]
    cores: u32,
    uart: u64,
    #[serde(default)]
    args: Vec<String>,
    memory: Vec<RawRegion>,
    #[serde(default)]
    reference: Option<ReferenceBuild>,
    #[serde(default)]
    micropython: Option<MicroPythonBuild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    kind: RegionKind,
    start: u64,
    size: Size,
}

fn one_core() -> u32 {
    1
}

impl RawQemu {
    pub(super) fn validate(self, board: &str) -> Result<QemuMachine, String> {
        if self.machine.is_empty() {
            return Err(format!("board `{board}`: qemu.machine is empty"));
        }
        if self.cores == 0 {
            return Err(format!("board `{board}`: qemu.cores must be at least 1"));
        }
        if let Some(r) = &self.reference
            && r.kernel_port.is_some() == r.firmware_port.is_some()
        {
            return Err(format!(
                "board `{board}`: qemu.reference needs exactly one of `kernel_port` (a folder of the FreeRTOS kernel) and `firmware_port` (a folder of mpfr's firmware sources)"
            ));
        }
        if self.memory.is_empty() {
            return Err(format!(
                "board `{board}`: qemu.memory lists no region (the image needs somewhere to go)"
            ));
        }
        let mut memory = Vec::with_capacity(self.memory.len());
        for r in self.memory {
            let end = r.start.checked_add(r.size.bytes()).ok_or_else(|| {
                format!(
                    "board `{board}`: qemu.memory region `{}` runs past the end of the address space",
                    r.name
                )
            })?;
            memory.push(Region {
                name: r.name,
                kind: r.kind,
                start: r.start,
                end,
            });
        }
        Ok(QemuMachine {
            machine: self.machine,
            cpu: self.cpu,
            cores: self.cores,
            uart: self.uart,
            args: self.args,
            memory,
            reference: self.reference.map(Box::new),
            micropython: self.micropython,
        })
    }
}

impl Platform {
    /// Which tool writes an image to this board.
    pub fn flasher(&self) -> Flasher {
        match self {
            Platform::Qemu(_) => Flasher::Qemu,
            Platform::Probe(_) => Flasher::ProbeRs,
            Platform::Esp(_) => Flasher::Espflash,
            Platform::Host => Flasher::None,
        }
    }

    /// How the host reads the running target's memory.
    pub fn memory_access(&self) -> MemoryAccess {
        match self {
            Platform::Qemu(_) => MemoryAccess::Gdbstub,
            Platform::Probe(_) => MemoryAccess::Probe,
            Platform::Esp(_) => MemoryAccess::None,
            Platform::Host => MemoryAccess::Procfs,
        }
    }

    /// Where an image may be placed, when the memory map is known.
    pub fn memory_map(&self) -> Option<Vec<Region>> {
        match self {
            Platform::Qemu(m) => Some(m.memory.clone()),
            Platform::Probe(c) => super::chip::memory_regions(&c.chip),
            Platform::Esp(_) | Platform::Host => None,
        }
    }

    /// The QEMU machine, for a virtual board.
    pub fn qemu(&self) -> Option<&QemuMachine> {
        match self {
            Platform::Qemu(m) => Some(m),
            _ => None,
        }
    }

    /// True for a board whose whole device is a process mpfr starts (QEMU): restarting it is
    /// always possible.
    pub fn is_virtual(&self) -> bool {
        matches!(self, Platform::Qemu(_))
    }
}

impl QemuMachine {
    /// Where RTT may live, in scan order: the RAM regions up to the board's RAM, then the code
    /// memory (writable in QEMU; MicroPython's qemu port keeps its data, `_SEGGER_RTT` too,
    /// there). A scan without the ELF symbol looks in this order, so the reference firmware's
    /// block is found first.
    pub fn rtt_ranges(&self, board_ram: u64) -> Vec<Range<u64>> {
        let mut left = board_ram;
        let mut out = Vec::new();
        for r in self.memory.iter().filter(|r| r.kind == RegionKind::Ram) {
            if left == 0 {
                break;
            }
            let len = (r.end - r.start).min(left);
            out.push(r.start..r.start + len);
            left -= len;
        }
        out.extend(
            self.memory
                .iter()
                .filter(|r| r.kind == RegionKind::Flash)
                .map(|r| r.start..r.end),
        );
        out
    }
}

/// Serialises a platform as the flasher it implies (the `flasher` key of `mpfr boards --json`).
pub(super) fn serialize_as_flasher<S: serde::Serializer>(
    p: &Platform,
    s: S,
) -> Result<S::Ok, S::Error> {
    p.flasher().serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn an385() -> QemuMachine {
        crate::board::builtin("qemu-mps2-an385")
            .platform
            .qemu()
            .unwrap()
            .clone()
    }

    #[test]
    fn rtt_ranges_cover_the_sram_then_the_code_ssram_that_micropython_uses() {
        let m = an385();
        let ram = m.rtt_ranges(4 << 20);
        // MicroPython's qemu port links data and bss into SSRAM1 (e.g. _SEGGER_RTT at 0x333cc).
        assert!(ram.iter().any(|r| r.contains(&0x0003_33cc)), "{ram:?}");
        assert_eq!(ram[0], 0x2000_0000..0x2000_0000 + (4 << 20));
        assert!(!ram.iter().any(|r| r.contains(&0x1000_0000)), "{ram:?}");
        // A smaller board RAM bounds the scan.
        assert_eq!(m.rtt_ranges(1 << 20)[0], 0x2000_0000..0x2010_0000);
    }

    #[test]
    fn qemu_tables_are_checked() {
        let raw: RawQemu = toml::from_str(
            "machine = \"m\"\ncpu = \"c\"\nuart = 0\nmemory = [{ name = \"r\", kind = \"ram\", start = 0xffffffffffffff00, size = \"1k\" }]",
        )
        .unwrap();
        assert!(raw.validate("b").unwrap_err().contains("past the end"));
        let raw: RawQemu =
            toml::from_str("machine = \"m\"\ncpu = \"c\"\nuart = 0\nmemory = []").unwrap();
        assert!(raw.validate("b").unwrap_err().contains("no region"));
        let region = "memory = [{ name = \"r\", kind = \"ram\", start = 0, size = \"1k\" }]";
        let raw: RawQemu = toml::from_str(&format!(
            "machine = \"m\"\ncpu = \"c\"\ncores = 0\nuart = 0\n{region}"
        ))
        .unwrap();
        assert!(raw.validate("b").unwrap_err().contains("cores"));
        let reference = |ports: &str| {
            let raw: RawQemu = toml::from_str(&format!(
                "machine = \"m\"\ncpu = \"c\"\nuart = 0\n{region}\n[reference]\ncflags = []\nkernel_sources = []\nlinker_script = \"l\"\nstartup = \"s\"\n{ports}"
            ))
            .unwrap();
            raw.validate("b")
        };
        let both = "kernel_port = \"k\"\nfirmware_port = \"f\"";
        assert!(reference(both).unwrap_err().contains("exactly one"));
        assert!(reference("").unwrap_err().contains("exactly one"));
        let m = reference("firmware_port = \"smp/x\"").unwrap();
        assert_eq!(m.cores, 1, "a machine has one core unless it says");
        assert!(
            toml::from_str::<RawQemu>(
                "machine = \"m\"\ncpu = \"c\"\nuart = 0\nmemory = []\nmachin = 1"
            )
            .is_err()
        );
    }
}
