//! Flashing: resolve a plan (board, flasher, image, regions, probe or port rule) without touching
//! hardware, then hand the image to one of the flashers behind [`Flasher`]: probe-rs (ARM boards),
//! espflash (ESP32 boards) or the QEMU virtual board.
//!
//! Progress is reported as [`Event`]s through a callback; rendering (bars, lines) is the caller's.

mod esp;
mod probe;
mod qemu;
pub mod uf2;

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use serde::Serialize;

use crate::board::{Board, Flasher as FlasherKind, Platform};
use crate::builder::BuildRecord;
use crate::device::vboard::{self, Instance, VboardError};
use crate::image::{self, Format, Image, ImageError};

pub use crate::util::probe::{ProbeEntry, ProbeSelector, select_probe};
pub use esp::EspFlasher;
pub use probe::ProbeRsFlasher;
pub use qemu::QemuFlasher;

/// The phases a flasher goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Connect,
    Erase,
    Program,
    Verify,
    Reset,
    Boot,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Connect => "Connecting",
            Phase::Erase => "Erasing",
            Phase::Program => "Programming",
            Phase::Verify => "Verifying",
            Phase::Reset => "Resetting",
            Phase::Boot => "Booting",
        })
    }
}

/// What a flasher reports while it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A phase began; `total` is its size in bytes when known.
    Start {
        phase: Phase,
        total: Option<u64>,
    },
    /// `bytes` more of the current phase are done.
    Progress {
        phase: Phase,
        bytes: u64,
    },
    Finish {
        phase: Phase,
    },
    /// Something worth telling the user (which probe, which chip).
    Note {
        message: String,
    },
}

/// The progress callback every flasher takes.
pub type Progress<'a> = &'a mut dyn FnMut(Event);

/// What a finished flash produced.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A real board was written (and verified when asked).
    Flashed {
        target: String,
        bytes: u64,
        verified: bool,
    },
    /// The virtual board runs the image.
    Booted { instance: Instance },
}

/// One flasher: writes an image to whatever the board is.
pub trait Flasher {
    fn name(&self) -> &'static str;
    fn flash(&mut self, image: &Image, progress: Progress<'_>) -> Result<Outcome, FlashError>;
}

/// Everything that can go wrong while flashing. Each says what is missing and how to fix it.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum FlashError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] ImageError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Uf2(#[from] uf2::Uf2Error),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Vboard(#[from] VboardError),

    #[error("no image given and no build recorded for {board}")]
    #[diagnostic(
        code(mpfr::flash::no_image),
        help(
            "run `mpfr build --board {board}` first (boards without mpfr's reference firmware, all but the QEMU ones, build MicroPython: add `--micropython DIR`, a MicroPython checkout), or pass the image: `mpfr flash --board {board} path/to/firmware.elf`"
        )
    )]
    NoImage { board: String },

    #[error("the last build record {} is unreadable: {reason}", path.display())]
    #[diagnostic(
        code(mpfr::flash::bad_build_record),
        help("run `mpfr build --board {board}` again, or pass the image explicitly")
    )]
    BadBuildRecord {
        board: String,
        path: PathBuf,
        reason: String,
    },

    #[error("board `{board}` has no flasher (flasher = \"none\")")]
    #[diagnostic(
        code(mpfr::flash::not_flashable),
        help("the host board runs the MicroPython unix port directly; nothing to flash")
    )]
    NotFlashable { board: String },

    #[error("--{option} does not apply to board `{board}` (it uses {flasher})")]
    #[diagnostic(code(mpfr::flash::option), help("{help}"))]
    Option {
        option: &'static str,
        board: String,
        flasher: &'static str,
        help: &'static str,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Probe(#[from] crate::util::probe::ProbeChoiceError),

    #[error("cannot open debug probe {probe}: {reason}")]
    #[diagnostic(
        code(mpfr::flash::probe_open),
        help(
            "unplug and replug the probe; close other debuggers (probe-rs, openocd, pyocd) that may hold it"
        )
    )]
    ProbeOpen { probe: String, reason: String },

    #[error("cannot attach to {chip} through {probe}: {reason}")]
    #[diagnostic(
        code(mpfr::flash::attach),
        help(
            "check the SWD wiring (SWDIO, SWCLK, GND) and that the board is powered; `--probe` picks another probe"
        )
    )]
    Attach {
        chip: String,
        probe: String,
        reason: String,
    },

    #[error("writing {chip} failed: {reason}")]
    #[diagnostic(
        code(mpfr::flash::program),
        help("retry; if it persists, power-cycle the board and check the wiring")
    )]
    Program { chip: String, reason: String },

    #[error("resetting {chip} failed: {reason}")]
    #[diagnostic(
        code(mpfr::flash::reset),
        help("retry; if it persists, power-cycle the board and check the wiring")
    )]
    Reset { chip: String, reason: String },

    #[error("verify failed at {addr:#010x}: wrote {expected:#04x}, read back {found:#04x}")]
    #[diagnostic(
        code(mpfr::flash::verify),
        help(
            "the flash did not keep what was written: retry, check the supply voltage, or erase the chip first"
        )
    )]
    VerifyMismatch { addr: u64, expected: u8, found: u8 },

    #[error("no serial port found for {board} (looked for USB {})", ids.join(", "))]
    #[diagnostic(
        code(mpfr::flash::no_port),
        help("connect the board's USB port (the one wired to the UART or USB-Serial/JTAG), or name the port: --port /dev/ttyUSB0.{}", crate::util::probe::seen_list(.seen))
    )]
    NoPort {
        board: String,
        ids: Vec<String>,
        seen: Vec<String>,
    },

    #[error("{} serial ports match {board}; mpfr will not guess", ports.len())]
    #[diagnostic(code(mpfr::flash::several_ports), help("choose one with --port:\n{}", ports.join("\n")))]
    SeveralPorts { board: String, ports: Vec<String> },

    #[error("cannot open serial port {port}: {reason}")]
    #[diagnostic(
        code(mpfr::flash::port_open),
        help(
            "check the port name; if it is permission denied, add yourself to the `dialout` group (`usermod -aG dialout $USER`, then log in again); close serial monitors that hold the port"
        )
    )]
    PortOpen { port: String, reason: String },

    #[error("cannot talk to the ESP bootloader on {port}: {reason}")]
    #[diagnostic(
        code(mpfr::flash::esp_connect),
        help(
            "hold BOOT, press and release RESET (EN), release BOOT, then retry; check that the port is the board's and not a probe's"
        )
    )]
    EspConnect { port: String, reason: String },

    #[error("the board on {port} is an {found}, but {board} is an {expected}")]
    #[diagnostic(
        code(mpfr::flash::chip_mismatch),
        help(
            "pick the board that matches the hardware (`mpfr boards`), or connect the right board"
        )
    )]
    ChipMismatch {
        port: String,
        board: String,
        expected: String,
        found: String,
    },

    #[error("espflash cannot prepare the app image: {reason}")]
    #[diagnostic(
        code(mpfr::flash::esp_image),
        help("pass the ESP-IDF application ELF (build/micropython.elf of the esp32 port)")
    )]
    EspImage { reason: String },
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The image; `None` means the last `mpfr build` output.
    pub image: Option<PathBuf>,
    pub format: Option<Format>,
    /// Where a raw binary goes.
    pub base: Option<u64>,
    pub probe: Option<ProbeSelector>,
    pub port: Option<String>,
    pub verify: bool,
}

/// Where the image path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    Argument,
    LastBuild,
}

/// One segment of the plan and where it lands.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedSegment {
    pub addr: u64,
    pub len: u64,
    /// The memory region it lands in, when the chip's map is known.
    pub region: Option<String>,
}

/// Everything resolved before any hardware is touched (`mpfr flash --dry-run` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub board: String,
    pub chip: String,
    pub flasher: FlasherKind,
    pub image: PathBuf,
    pub image_source: ImageSource,
    pub format: Format,
    pub bytes: u64,
    pub segments: Vec<PlannedSegment>,
    /// How the probe or port will be chosen.
    pub selection: String,
    pub verify: bool,
    /// What the flasher will do, step by step.
    pub steps: Vec<String>,
    /// Limits worth knowing (e.g. no hardware-free test path).
    pub notes: Vec<String>,
}

/// A flashing tool's error (espflash, probe-rs, a bootloader's reply) as text for a
/// [`FlashError`]: its words can quote what the device sent, so they are escaped and cut.
pub(crate) fn tool_text(e: impl std::fmt::Display) -> String {
    crate::util::sanitize::escape_text(&e.to_string(), 500)
}

/// The image path for `board`: the argument, else the last build record.
pub fn resolve_image(
    board: &str,
    arg: Option<&Path>,
) -> Result<(PathBuf, ImageSource), FlashError> {
    if let Some(p) = arg {
        return Ok((p.to_path_buf(), ImageSource::Argument));
    }
    match BuildRecord::read(board) {
        Ok(Some(r)) => Ok((r.elf, ImageSource::LastBuild)),
        Ok(None) => Err(FlashError::NoImage {
            board: board.to_string(),
        }),
        Err(e) => Err(FlashError::BadBuildRecord {
            board: board.to_string(),
            path: e.path,
            reason: e.reason,
        }),
    }
}

/// Resolves a request for `board` into a plan and the loaded image. Reads files only.
pub fn plan(board: &Board, req: &Request) -> Result<(Plan, Image), FlashError> {
    let opt =
        |option: &'static str, flasher: &'static str, help: &'static str| FlashError::Option {
            option,
            board: board.name.clone(),
            flasher,
            help,
        };
    let not_flashable = || FlashError::NotFlashable {
        board: board.name.clone(),
    };
    // Options that do not fit the board fail before any file is read.
    match &board.platform {
        Platform::Host => return Err(not_flashable()),
        Platform::Qemu(_) => {
            if req.probe.is_some() {
                return Err(opt("probe", "the QEMU virtual board", "drop --probe"));
            }
            if req.port.is_some() {
                return Err(opt("port", "the QEMU virtual board", "drop --port"));
            }
        }
        Platform::Probe(_) => {
            if req.port.is_some() {
                return Err(opt(
                    "port",
                    "probe-rs (SWD)",
                    "select the debug probe with --probe VID:PID[:SERIAL]",
                ));
            }
        }
        Platform::Esp(_) => {
            if req.probe.is_some() {
                return Err(opt(
                    "probe",
                    "espflash (serial bootloader)",
                    "select the serial port with --port",
                ));
            }
        }
    }

    let (path, image_source) = resolve_image(&board.name, req.image.as_deref())?;
    let img = image::load(&path, req.format, req.base)?;
    img.check_for_board(board)?;

    let regions = board.platform.memory_map();
    let segments = img
        .segments
        .iter()
        .map(|s| PlannedSegment {
            addr: s.addr,
            len: s.data.len() as u64,
            region: regions
                .as_ref()
                .and_then(|rs| rs.iter().find(|r| r.contains(&s.range())))
                .map(|r| format!("{} ({})", r.name, r.kind.as_str())),
        })
        .collect();

    let mut notes = Vec::new();
    let (selection, steps) = match &board.platform {
        Platform::Probe(_) => {
            notes.push(probe::FAKE_PROBE_NOTE.to_string());
            (
                probe::selection_rule(req.probe.as_ref()),
                probe::steps(&board.chip, req.verify),
            )
        }
        Platform::Esp(_) => {
            if img.format == Format::Elf {
                notes.push(
                    "the ELF becomes an ESP-IDF app image written with espflash's bundled bootloader and partition table".into(),
                );
            }
            notes.push(
                "no hardware-free test path: espflash needs a real ESP ROM bootloader".into(),
            );
            (
                esp::selection_rule(board, req.port.as_deref()),
                esp::steps(&board.chip, req.verify),
            )
        }
        Platform::Qemu(machine) => {
            let files = vboard::Files::for_board(&board.name);
            let mut cmd = vec![vboard::StartOptions::default().qemu.display().to_string()];
            cmd.extend(vboard::qemu_args(machine, &img.path, &files));
            (
                "none: QEMU runs on this machine".to_string(),
                vec![
                    "stop the running instance of this board, if any".into(),
                    format!("start: {}", cmd.join(" ")),
                    format!("record the instance in {}", files.record.display()),
                    "watch UART0 for the reference console or a MicroPython REPL".into(),
                ],
            )
        }
        Platform::Host => return Err(not_flashable()),
    };
    let plan = Plan {
        board: board.name.clone(),
        chip: board.chip.clone(),
        flasher: board.flasher(),
        image: img.path.clone(),
        image_source,
        format: img.format,
        bytes: img.total_bytes(),
        segments,
        selection,
        verify: req.verify && !board.platform.is_virtual(),
        steps,
        notes,
    };
    Ok((plan, img))
}

/// The flasher for a board and request.
pub fn flasher_for(board: &Board, req: &Request) -> Result<Box<dyn Flasher>, FlashError> {
    Ok(match &board.platform {
        // RP2 boards without a probe (or given a UF2 file) go through the BOOTSEL drive.
        Platform::Probe(_) if let Some(no_probe) = uf2_instead(board, req) => {
            Box::new(uf2::Uf2Flasher::new(board, no_probe))
        }
        Platform::Probe(c) => Box::new(ProbeRsFlasher::new(
            board.name.clone(),
            c.chip.clone(),
            req.probe.clone(),
            req.verify,
        )),
        Platform::Esp(_) => Box::new(EspFlasher::new(board, req.port.clone(), req.verify)),
        Platform::Qemu(_) => Box::new(QemuFlasher::new(board.clone())),
        Platform::Host => {
            return Err(FlashError::NotFlashable {
                board: board.name.clone(),
            });
        }
    })
}

/// For an RP2 board with no `--probe`: `Some(no_probe)` when the image goes through BOOTSEL
/// instead (a UF2 file: `Some(false)`; no probe connected: `Some(true)`).
pub fn uf2_instead(board: &Board, req: &Request) -> Option<bool> {
    if uf2::family_for_chip(&board.chip).is_none() || req.probe.is_some() {
        return None;
    }
    let uf2_file = req.format == Some(Format::Uf2)
        || req
            .image
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("uf2")));
    if uf2_file {
        return Some(false);
    }
    crate::util::probe::list_probes(&probe_rs::probe::list::Lister::new())
        .is_empty()
        .then_some(true)
}

#[cfg(test)]
mod tests {
    /// What espflash or probe-rs say reaches a flash error escaped and cut.
    #[test]
    fn tool_errors_are_escaped_and_cut() {
        let t = super::tool_text("bootloader said \x1b[2J\u{202e}");
        assert_eq!(t, "bootloader said \\x1b[2J\\u{202e}");
        assert!(super::tool_text("x".repeat(600)).ends_with("… (100 more characters)"));
    }

    use super::*;

    use crate::board::builtin as board;

    #[test]
    fn no_image_and_no_build_record_says_run_build() {
        // A board name no test ever records a build for.
        let e = resolve_image("no-such-board-xyz", None).unwrap_err();
        assert!(matches!(e, FlashError::NoImage { .. }));
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(
            help.contains("mpfr build --board no-such-board-xyz"),
            "{help}"
        );
    }

    #[test]
    fn plan_for_qemu_lists_regions_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let elf = crate::image::tests::elf32(40, 0, &[(0, &[1; 16]), (0x2000_0000, &[2; 8])]);
        let path = dir.path().join("fw.elf");
        std::fs::write(&path, elf).unwrap();
        let req = Request {
            image: Some(path.clone()),
            verify: true,
            ..Request::default()
        };
        let (plan, img) = plan(&board("qemu-mps2-an385"), &req).unwrap();
        assert_eq!(img.total_bytes(), 24);
        assert_eq!(plan.format, Format::Elf);
        assert_eq!(plan.segments.len(), 2);
        assert_eq!(plan.segments[0].region.as_deref(), Some("ssram1 (flash)"));
        assert_eq!(plan.segments[1].region.as_deref(), Some("ssram23 (ram)"));
        assert!(
            plan.steps.iter().any(|s| s.contains("-M mps2-an385")),
            "{:?}",
            plan.steps
        );
        assert!(!plan.verify);
    }

    #[test]
    fn plan_for_pico_names_the_probe_rule_and_fake_probe_note() {
        let dir = tempfile::tempdir().unwrap();
        let elf = crate::image::tests::elf32(40, 0, &[(0x1000_0000, &[1; 256])]);
        let path = dir.path().join("fw.elf");
        std::fs::write(&path, elf).unwrap();
        let req = Request {
            image: Some(path),
            verify: true,
            probe: Some("2e8a:000c".parse().unwrap()),
            ..Request::default()
        };
        let (plan, _) = plan(&board("rpi-pico"), &req).unwrap();
        assert!(plan.selection.contains("2e8a:000c"), "{}", plan.selection);
        assert!(
            plan.segments[0]
                .region
                .as_deref()
                .unwrap_or("")
                .contains("flash")
        );
        assert!(plan.verify);
        let bad = Request {
            port: Some("/dev/ttyACM0".into()),
            ..req
        };
        assert!(matches!(
            super::plan(&board("rpi-pico"), &bad),
            Err(FlashError::Option { option: "port", .. })
        ));
    }

    #[test]
    fn host_board_is_not_flashable() {
        let e = plan(&board("host"), &Request::default()).unwrap_err();
        assert!(matches!(e, FlashError::NotFlashable { .. }));
    }
}
