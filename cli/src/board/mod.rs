//! The board catalog: `boards.toml` read into raw (serde) structs, then validated into [`Board`]s.
//!
//! The catalog shipped with mpfr is embedded in the binary. A user file extends it (boards
//! with the same name replace the built-in ones) or, with `catalog = "replace"`, replaces it.
//! The user file is `--boards FILE`, else `$MPFR_BOARDS`, else the first `boards.toml` found
//! walking up from the current directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub mod chip;
pub mod generic;
pub mod platform;

use crate::util::size::Size;
use chip::ChipInfo;
pub use platform::{MemoryAccess, Platform, QemuMachine, Region, RegionKind};

/// The catalog that ships inside the binary.
pub const BUILTIN_CATALOG: &str = include_str!("../../../boards.toml");
/// The name the built-in catalog is reported under in diagnostics.
pub const BUILTIN_NAME: &str = "<built-in boards.toml>";

// ---------------------------------------------------------------------------------------------
// Raw model: exactly what a file may say. Unknown keys are errors.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    catalog: CatalogMode,
    #[serde(default)]
    boards: BTreeMap<String, Spanned<RawBoard>>,
    /// The project's default board and port (read by `mpfr::project`).
    #[serde(default)]
    #[allow(dead_code)]
    defaults: Option<crate::project::ProjectDefaults>,
}

/// How a user boards file combines with the built-in catalog.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CatalogMode {
    #[default]
    Extend,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    description: String,
    chip: Spanned<String>,
    cores: Spanned<u32>,
    ram: Spanned<Size>,
    #[serde(default)]
    ram_reserved: Option<Size>,
    #[serde(default)]
    flash: Option<Size>,
    flasher: Flasher,
    /// The QEMU machine of a `flasher = "qemu"` board.
    #[serde(default)]
    qemu: Option<Spanned<platform::RawQemu>>,
    #[serde(default)]
    kernel: Kernel,
    telemetry: Telemetry,
    link: RawLink,
    port: PortInfo,
    defaults: Spanned<Defaults>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    #[serde(rename = "type")]
    kind: LinkKind,
    #[serde(default)]
    usb: Vec<Spanned<String>>,
    #[serde(default)]
    baud: Option<u32>,
    #[serde(default)]
    reset_on_open: bool,
    #[serde(default)]
    command: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated model.

/// Which tool writes an image to the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flasher {
    ProbeRs,
    Espflash,
    Qemu,
    None,
}

/// Which FreeRTOS the port runs: the upstream kernel (SMP when cores > 1) or ESP-IDF's fork.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    #[default]
    Freertos,
    EspIdf,
    /// No FreeRTOS at all (the unix port: threads are OS threads).
    Host,
}

/// Where thread statistics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Telemetry {
    /// The agent's SEGGER RTT block, read through a debug probe or QEMU.
    Rtt,
    /// `import mpfr` over the REPL (boards without a probe).
    Repl,
    /// The host OS's `/proc` (the unix port).
    Procfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// USB CDC serial, found by VID:PID.
    Usb,
    /// A plain UART (USB-serial bridge, or a probe's VCP).
    Uart,
    /// UART0 of the QEMU virtual board, on a pty.
    Qemu,
    /// A process on a pty (the MicroPython unix port).
    Process,
}

crate::named_enum!(Flasher "flasher" { ProbeRs => "probe-rs", Espflash => "espflash", Qemu => "qemu", None => "none" });
crate::named_enum!(Kernel "kernel" { Freertos => "freertos", EspIdf => "esp-idf", Host => "host" });
crate::named_enum!(Telemetry "telemetry source" { Rtt => "rtt", Repl => "repl", Procfs => "procfs" });
crate::named_enum!(LinkKind "link kind" { Usb => "usb", Uart => "uart", Qemu => "qemu", Process => "process" });

pub use crate::util::probe::UsbId;

/// How the host talks to the board's REPL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    #[serde(rename = "type")]
    pub kind: LinkKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usb: Vec<UsbId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// Whether opening the port may toggle DTR/RTS (which resets some boards). Off by default:
    /// opening a port never resets a board unless the board says it should.
    pub reset_on_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// MicroPython port facts: which port directory, which build system, which BOARD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortInfo {
    pub name: String,
    pub build: BuildSystem,
    pub board: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The make variable through which the port takes its GC heap size (the qemu port's
    /// `MICROPY_HEAP_SIZE`); `mpfr build --micropython` sets it to the config's `gc_heap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_heap_var: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildSystem {
    Make,
    Cmake,
}

/// GIL mode of `_thread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Gil {
    On,
    Off,
}

/// Which cores Python threads may run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    Any,
    Core0,
    Core1,
}

crate::named_enum!(BuildSystem "build system" { Make => "make", Cmake => "cmake" });
crate::named_enum!(Gil "GIL mode" { On => "on", Off => "off" });

impl From<Gil> for mpfr_firmware::protocol::GilMode {
    fn from(g: Gil) -> Self {
        match g {
            Gil::On => Self::On,
            Gil::Off => Self::Off,
        }
    }
}
crate::named_enum!(Affinity "affinity" { Any => "any", Core0 => "core0", Core1 => "core1" });

/// A board's default configuration; `mpfr config` flags override each field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Cores FreeRTOS schedules on; defaults to all of the board's cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// MicroPython GC heap.
    pub gc_heap: Size,
    /// FreeRTOS heap (`configTOTAL_HEAP_SIZE`).
    pub heap: Size,
    /// Main (REPL) task stack.
    pub stack: Size,
    /// Default stack of a new Python thread.
    pub thread_stack: Size,
    pub service_stack: Size,
    pub service_priority: u8,
    pub gil: Gil,
    pub affinity: Affinity,
    #[serde(default = "default_tick")]
    pub tick_hz: u32,
}

fn default_tick() -> u32 {
    1000
}

/// Where a board's definition came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A validated board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    pub name: String,
    pub description: String,
    pub chip: String,
    pub cores: u32,
    pub ram: Size,
    /// RAM the port needs besides heaps and stacks (data, bss, USB, Wi-Fi buffers).
    pub ram_reserved: Size,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash: Option<Size>,
    /// What the board is (serialised as its `flasher`).
    #[serde(rename = "flasher", serialize_with = "platform::serialize_as_flasher")]
    pub platform: Platform,
    pub kernel: Kernel,
    pub telemetry: Telemetry,
    pub link: Link,
    pub port: PortInfo,
    pub defaults: Defaults,
    pub origin: Origin,
}

impl Board {
    /// What the probe-rs database says about the chip, when it knows it.
    pub fn chip_info(&self) -> Option<ChipInfo> {
        chip::lookup(&self.chip)
    }

    /// Which tool writes an image to this board.
    pub fn flasher(&self) -> Flasher {
        self.platform.flasher()
    }
}

/// All boards known to this invocation, in name order.
#[derive(Debug, Clone)]
pub struct Catalog {
    boards: BTreeMap<String, Board>,
    /// The user file that was read, if any.
    pub user_file: Option<PathBuf>,
    /// True when that file said `catalog = "replace"` (its boards are all there is).
    pub replaced: bool,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A problem in a boards file, pointing at the place.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(mpfr::boards::invalid))]
pub struct BoardsFileError {
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum BoardError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    File(Box<BoardsFileError>),

    #[error("cannot read boards file {}", path.display())]
    #[diagnostic(
        code(mpfr::boards::read),
        help("check the path given with --boards or $MPFR_BOARDS")
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("boards file {} is {size} bytes; mpfr reads boards files up to {limit} bytes", path.display())]
    #[diagnostic(
        code(mpfr::boards::too_large),
        help(
            "a boards file describes a few boards in a few KiB: check that --boards or $MPFR_BOARDS names the right file"
        )
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    #[error("unknown board `{name}`")]
    #[diagnostic(code(mpfr::boards::unknown), help("{help}"))]
    Unknown { name: String, help: String },
}

impl From<Box<BoardsFileError>> for BoardError {
    fn from(e: Box<BoardsFileError>) -> Self {
        BoardError::File(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Where to look for a user boards file.
#[derive(Debug, Clone, Default)]
pub struct CatalogSource {
    /// `--boards FILE` or `$MPFR_BOARDS` (clap fills both into this).
    pub explicit: Option<PathBuf>,
    /// Directory to walk up from looking for `boards.toml`; `None` disables the walk.
    pub search_from: Option<PathBuf>,
}

impl CatalogSource {
    /// The file to read: explicit, else the nearest `boards.toml` above `search_from`.
    pub fn user_file(&self) -> Option<PathBuf> {
        if let Some(p) = &self.explicit {
            return Some(p.clone());
        }
        let mut dir = self.search_from.clone()?;
        loop {
            let cand = dir.join("boards.toml");
            if cand.is_file() {
                return Some(cand);
            }
            if !dir.pop() {
                return None;
            }
        }
    }
}

impl Catalog {
    /// The built-in catalog only.
    pub fn builtin() -> Result<Catalog, BoardError> {
        let boards = parse(BUILTIN_CATALOG, BUILTIN_NAME, &Origin::Builtin, None)?.1;
        Ok(Catalog {
            boards,
            user_file: None,
            replaced: false,
        })
    }

    /// The built-in catalog combined with the user file `source` finds.
    pub fn load(source: &CatalogSource) -> Result<Catalog, BoardError> {
        let mut cat = Catalog::builtin()?;
        let Some(path) = source.user_file() else {
            return Ok(cat);
        };
        // Checked before reading: parsing a huge file costs minutes and gigabytes for nothing.
        const LIMIT: u64 = 1024 * 1024;
        if let Ok(m) = std::fs::metadata(&path)
            && m.len() > LIMIT
        {
            return Err(BoardError::TooLarge {
                path,
                size: m.len(),
                limit: LIMIT,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| BoardError::Read {
            path: path.clone(),
            source: e,
        })?;
        cat.add_user_text(&text, path)?;
        Ok(cat)
    }

    /// The built-in catalog combined with a user boards file already read into `text` (`path`
    /// is only for messages and origins).
    pub fn with_user_text(text: &str, path: PathBuf) -> Result<Catalog, BoardError> {
        let mut cat = Catalog::builtin()?;
        cat.add_user_text(text, path)?;
        Ok(cat)
    }

    /// Adds (or with `catalog = "replace"`, puts in place of all) the boards of a user boards
    /// file already read into `text`.
    pub fn add_user_text(&mut self, text: &str, path: PathBuf) -> Result<(), BoardError> {
        let (mode, boards) = parse(
            text,
            &path.display().to_string(),
            &Origin::File(path.clone()),
            Some(&self.boards),
        )?;
        if mode == CatalogMode::Replace {
            self.boards.clear();
            self.replaced = true;
        }
        self.boards.extend(boards);
        self.user_file = Some(path);
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Board> {
        self.boards.values()
    }

    pub fn len(&self) -> usize {
        self.boards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boards.is_empty()
    }

    /// The board called `name`, or an error listing the nearest names.
    pub fn get(&self, name: &str) -> Result<&Board, BoardError> {
        self.boards.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.boards.keys().map(String::as_str).collect();
            let help = match nearest(name, &names) {
                Some(n) => format!("did you mean `{n}`? `mpfr boards` lists them all"),
                None => format!("known boards: {}", names.join(", ")),
            };
            BoardError::Unknown {
                name: name.to_string(),
                help,
            }
        })
    }
}

/// A board of the built-in catalog, for tests.
#[cfg(test)]
pub(crate) fn builtin(name: &str) -> Board {
    Catalog::builtin()
        .expect("builtin catalog")
        .get(name)
        .expect("board")
        .clone()
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Parses a boards file. Chip claims are checked against the probe-rs database for every board
/// except those in `trusted` unchanged: loading that database costs tens of milliseconds, and
/// the built-in catalog is checked by this module's tests.
fn parse(
    text: &str,
    name: &str,
    origin: &Origin,
    trusted: Option<&BTreeMap<String, Board>>,
) -> Result<(CatalogMode, BTreeMap<String, Board>), Box<BoardsFileError>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| Box::new(toml_error(text, name, &e)))?;
    let mut out = BTreeMap::new();
    for (board_name, raw_board) in raw.boards {
        let span = raw_board.span();
        let to_error = |(msg, sp, help): Problem| {
            file_error(text, name, msg, sp.unwrap_or(span.clone()), help)
        };
        let (board, spans) =
            validate(board_name.clone(), raw_board.into_inner(), origin).map_err(to_error)?;
        let known = trusted.and_then(|t| t.get(&board_name)).is_some_and(|t| {
            let as_builtin = Board {
                origin: t.origin.clone(),
                ..board.clone()
            };
            as_builtin == *t
        });
        if trusted.is_some() && !known {
            check_chip(&board, &spans).map_err(to_error)?;
        }
        out.insert(board_name, board);
    }
    Ok((raw.catalog, out))
}

/// Where a board's chip claims stand in its file, for diagnostics found after parsing.
struct ChipSpans {
    chip: std::ops::Range<usize>,
    cores: std::ops::Range<usize>,
    ram: std::ops::Range<usize>,
}

/// A board may not claim more cores or RAM than its chip has, and a probe-rs board must name a
/// chip probe-rs knows.
fn check_chip(board: &Board, spans: &ChipSpans) -> Result<(), Problem> {
    let name = &board.name;
    if let Some(info) = board.chip_info() {
        if board.cores > info.cores {
            return Err((
                format!(
                    "board `{name}` claims {} cores but {} has {}",
                    board.cores, info.target, info.cores
                ),
                Some(spans.cores.clone()),
                Some(format!("set `cores = {}` or fewer", info.cores)),
            ));
        }
        if board.ram > info.ram_total {
            return Err((
                format!(
                    "board `{name}` claims {} of RAM but {} has {}",
                    board.ram, info.target, info.ram_total
                ),
                Some(spans.ram.clone()),
                Some(format!(
                    "the chip's largest RAM region is {}",
                    info.ram_largest
                )),
            ));
        }
    } else if let Platform::Probe(_) = board.platform {
        let similar = chip::similar(&board.chip);
        return Err((
            format!(
                "board `{name}` uses probe-rs but probe-rs does not know chip `{}`",
                board.chip
            ),
            Some(spans.chip.clone()),
            Some(if similar.is_empty() {
                "use a target name from `probe-rs chip list`".to_string()
            } else {
                format!("probe-rs knows: {}", similar.join(", "))
            }),
        ));
    }
    Ok(())
}

type Problem = (String, Option<std::ops::Range<usize>>, Option<String>);

fn validate(name: String, raw: RawBoard, origin: &Origin) -> Result<(Board, ChipSpans), Problem> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err((
            format!("board name `{name}` must be letters, digits, `-` or `_`"),
            None,
            None,
        ));
    }
    let cores = *raw.cores.get_ref();
    if cores == 0 {
        return Err((
            format!("board `{name}`: cores must be at least 1"),
            Some(raw.cores.span()),
            None,
        ));
    }
    let spans = ChipSpans {
        chip: raw.chip.span(),
        cores: raw.cores.span(),
        ram: raw.ram.span(),
    };
    let mut usb = Vec::new();
    for id in &raw.link.usb {
        usb.push(
            id.get_ref()
                .parse::<UsbId>()
                .map_err(|e| (e.to_string(), Some(id.span()), None))?,
        );
    }
    if raw.link.kind == LinkKind::Usb && usb.is_empty() {
        return Err((
            format!("board `{name}`: a `usb` link needs at least one VID:PID in `link.usb`"),
            None,
            Some("e.g. usb = [\"2e8a:0005\"]".into()),
        ));
    }
    let defaults = raw.defaults.get_ref().clone();
    if let Some(dc) = defaults.cores
        && (dc == 0 || dc > cores)
    {
        return Err((
            format!("board `{name}`: defaults.cores = {dc} but the board has {cores} core(s)"),
            Some(raw.defaults.span()),
            None,
        ));
    }
    let platform = match (raw.flasher, raw.qemu) {
        (Flasher::Qemu, Some(q)) => {
            let span = q.span();
            Platform::Qemu(
                q.into_inner()
                    .validate(&name)
                    .map_err(|e| (e, Some(span), None))?,
            )
        }
        (Flasher::Qemu, None) => {
            return Err((
                format!("board `{name}`: a `qemu` board needs a [boards.{name}.qemu] table"),
                None,
                Some(
                    "give the machine as data: machine, cpu, uart, memory (see docs/boards.md)"
                        .into(),
                ),
            ));
        }
        (_, Some(q)) => {
            return Err((
                format!(
                    "board `{name}`: only a board with flasher = \"qemu\" takes a `qemu` table"
                ),
                Some(q.span()),
                None,
            ));
        }
        (Flasher::ProbeRs, None) => Platform::Probe(platform::ProbeChip {
            chip: raw.chip.get_ref().clone(),
        }),
        (Flasher::Espflash, None) => Platform::Esp(platform::EspChip {
            chip: raw.chip.get_ref().clone(),
        }),
        (Flasher::None, None) => Platform::Host,
    };
    if let Some(m) = platform.qemu()
        && cores > m.cores
    {
        return Err((
            format!(
                "board `{name}` claims {cores} cores but QEMU machine `{}` has {}",
                m.machine, m.cores
            ),
            Some(spans.cores.clone()),
            Some(format!("set `cores = {}` or fewer", m.cores)),
        ));
    }
    if (raw.link.kind == LinkKind::Qemu) != platform.is_virtual() {
        return Err((
            format!(
                "board `{name}`: link type \"qemu\" goes with flasher = \"qemu\" and only with it"
            ),
            None,
            Some("a virtual board has `flasher = \"qemu\"`, `link = { type = \"qemu\" }` and a qemu table".into()),
        ));
    }
    let board = Board {
        name,
        description: raw.description,
        chip: raw.chip.into_inner(),
        cores,
        ram: raw.ram.into_inner(),
        ram_reserved: raw.ram_reserved.unwrap_or_default(),
        flash: raw.flash,
        platform,
        kernel: raw.kernel,
        telemetry: raw.telemetry,
        link: Link {
            kind: raw.link.kind,
            usb,
            baud: raw.link.baud,
            reset_on_open: raw.link.reset_on_open,
            command: raw.link.command,
        },
        port: raw.port,
        defaults,
        origin: origin.clone(),
    };
    Ok((board, spans))
}

fn file_error(
    text: &str,
    name: &str,
    message: String,
    span: std::ops::Range<usize>,
    help: Option<String>,
) -> BoardsFileError {
    let key = key_path_at(text, span.start);
    let (line, _) = line_col(text, span.start);
    BoardsFileError {
        message: crate::util::sanitize::escape_text(&format!("{name}:{line}: {message}"), 1000),
        // Same length, so the span still points at the place.
        src: NamedSource::new(name, crate::util::sanitize::defang_same_len(text)),
        label: key
            .map(|k| crate::util::sanitize::escape_text(&format!("in `{k}`"), 200))
            .unwrap_or_else(|| "here".into()),
        span: span.into(),
        help,
    }
}

/// Turns a TOML/serde error into a diagnostic naming file, line and key, with the nearest
/// valid key when the key was unknown.
fn toml_error(text: &str, name: &str, e: &toml::de::Error) -> BoardsFileError {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    let mut help = None;
    let mut message = msg.clone();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = tail
            .split('`')
            .enumerate()
            .filter_map(|(i, s)| (i % 2 == 1).then_some(s))
            .collect();
        message = format!("unknown key `{field}`");
        help = Some(match nearest(field, &expected) {
            Some(n) => format!(
                "did you mean `{n}`? valid keys here: {}",
                expected.join(", ")
            ),
            None => format!("valid keys here: {}", expected.join(", ")),
        });
    } else if msg.starts_with("missing field `") {
        message = msg.replacen("missing field", "missing key", 1);
        help = Some("every board needs: description, chip, cores, ram, flasher, telemetry, link, port, defaults; see docs/boards.md".into());
    }
    file_error(text, name, message, span, help)
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key at `offset` (`boards.rpi-pico.defaults.heap`), for plain `key = value` files.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let header_of = |l: &str| -> Option<String> {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|h| h.split(']').next())
            .map(|h| h.trim_start_matches('[').trim().to_string())
    };
    if let Some(h) = header_of(line) {
        return Some(h);
    }
    let key = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|k| !k.is_empty())?;
    let table = text[..line_start].lines().rev().find_map(header_of);
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> BoardsFileError {
        match parse(
            text,
            "test.toml",
            &Origin::File("test.toml".into()),
            Some(&BTreeMap::new()),
        ) {
            Err(e) => *e,
            Ok(_) => panic!("expected an error for:\n{text}"),
        }
    }

    /// A boards file with an escape sequence and a bidi override: the error's message, label
    /// and snippet carry them replaced, and the label still points at the right place.
    #[test]
    fn controls_in_a_boards_file_do_not_reach_the_error() {
        let text =
            "[boards.\"e\\u001b[2J\"]\ndescription = \"x\"\nbogus\u{202e} = \"\x1b]0;t\x07\"\n";
        let e = err_of(text);
        let shown = format!("{} {}", e.message, e.label);
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
        let snippet = miette::SourceCode::read_span(&e.src, &e.span, 1, 1).expect("snippet");
        let snippet = String::from_utf8_lossy(snippet.data()).into_owned();
        assert!(
            !snippet.contains('\x1b') && !snippet.contains('\u{202e}'),
            "{snippet:?}"
        );
        assert_eq!(e.src.inner().len(), text.len());
    }

    #[test]
    fn platform_comes_from_flasher_and_qemu_table_and_they_must_agree() {
        let qemu = "[boards.b1.qemu]\nmachine = \"m\"\ncpu = \"c\"\ncores = 2\nuart = 0\nmemory = [{ name = \"r\", kind = \"ram\", start = 0, size = \"1k\" }]\n";
        // A qemu table on a probe-rs board.
        let e = err_of(&one_board(qemu));
        assert!(e.message.contains("takes a `qemu` table"), "{}", e.message);
        // A qemu board without its machine.
        let text = one_board("").replace("flasher = \"probe-rs\"", "flasher = \"qemu\"");
        let e = err_of(&text);
        assert!(
            e.message.contains("needs a [boards.b1.qemu] table"),
            "{}",
            e.message
        );
        // The machine, but a USB link.
        let e = err_of(&format!("{text}\n{qemu}"));
        assert!(e.message.contains("link type \"qemu\""), "{}", e.message);
        // Together they make a QEMU platform with the data as written.
        let text = format!("{text}\n{qemu}")
            .replace("type = \"usb\"\nusb = [\"2e8a:0005\"]", "type = \"qemu\"");
        let (_, boards) = parse(&text, "t", &Origin::Builtin, None).unwrap();
        let m = boards["b1"].platform.qemu().expect("a QEMU machine");
        assert_eq!(m.machine, "m");
        assert_eq!(boards["b1"].flasher(), Flasher::Qemu);
        assert_eq!(m.memory[0].end, 1024);
        assert_eq!(
            builtin("rpi-pico").platform.memory_access(),
            MemoryAccess::Probe
        );
        assert_eq!(builtin("host").platform, Platform::Host);
    }

    fn one_board(extra: &str) -> String {
        format!(
            r#"
[boards.b1]
description = "test"
chip = "RP2040"
cores = 2
ram = "264KiB"
flasher = "probe-rs"
telemetry = "rtt"
{extra}
[boards.b1.link]
type = "usb"
usb = ["2e8a:0005"]

[boards.b1.port]
name = "rp2"
build = "cmake"
board = "RPI_PICO"

[boards.b1.defaults]
gc_heap = "192K"
heap = "8k"
stack = "8KiB"
thread_stack = "4KiB"
service_stack = "2KiB"
service_priority = 3
gil = "off"
affinity = "any"
"#
        )
    }

    #[test]
    fn builtin_catalog_is_valid_and_complete() {
        let cat = Catalog::builtin().unwrap();
        for name in [
            "rpi-pico",
            "rpi-pico-w",
            "rpi-pico2",
            "rpi-pico2-w",
            "nucleo-f429zi",
            "esp32-devkitc",
            "esp32-s3-devkitc",
            "qemu-mps2-an385",
            "host",
        ] {
            cat.get(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(cat.get("rpi-pico").unwrap().chip_info().is_some());
        // Runtime skips the chip check for the built-in boards; this is where they get it.
        for b in cat.iter() {
            let spans = ChipSpans {
                chip: 0..0,
                cores: 0..0,
                ram: 0..0,
            };
            check_chip(b, &spans).unwrap_or_else(|e| panic!("{}: {}", b.name, e.0));
        }
    }

    #[test]
    fn a_good_file_parses() {
        let (_, boards) = parse(&one_board(""), "t", &Origin::Builtin, None).unwrap();
        let b = &boards["b1"];
        assert_eq!(b.defaults.heap, Size(8192));
        assert_eq!(
            b.link.usb,
            vec![UsbId {
                vid: 0x2e8a,
                pid: 5
            }]
        );
    }

    #[test]
    fn typo_key_names_line_key_and_nearest() {
        let text = one_board("").replace("thread_stack", "thread_stak");
        let e = err_of(&text);
        assert!(
            e.message.contains("unknown key `thread_stak`"),
            "{}",
            e.message
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("thread_stak"))
            .unwrap()
            + 1;
        assert!(
            e.message.starts_with(&format!("test.toml:{line}:")),
            "{}",
            e.message
        );
        assert_eq!(e.label, "in `boards.b1.defaults.thread_stak`");
        assert!(e.help.unwrap().starts_with("did you mean `thread_stack`?"));
    }

    #[test]
    fn bad_size_names_the_key() {
        let text = one_board("").replace("heap = \"8k\"", "heap = \"8 lots\"");
        let e = err_of(&text);
        assert!(e.message.contains("unknown unit `lots`"), "{}", e.message);
        assert_eq!(e.label, "in `boards.b1.defaults.heap`");
    }

    #[test]
    fn claims_beyond_the_qemu_machine_are_rejected() {
        let text = include_str!("../../../boards.toml");
        let start = text.find("[boards.qemu-mps2-an521]").unwrap();
        let end = text[start..].find("[boards.host]").unwrap() + start;
        let board = text[start..end].replacen("\ncores = 2\n", "\ncores = 3\n", 1);
        let e = err_of(&board);
        assert!(
            e.message
                .contains("claims 3 cores but QEMU machine `mps2-an521` has 2"),
            "{}",
            e.message
        );
    }

    #[test]
    fn claims_beyond_the_chip_are_rejected() {
        let e = err_of(&one_board("").replace("cores = 2", "cores = 4"));
        assert!(
            e.message.contains("claims 4 cores but RP2040 has 2"),
            "{}",
            e.message
        );
        assert_eq!(e.label, "in `boards.b1.cores`");
        let e = err_of(&one_board("").replace("ram = \"264KiB\"", "ram = \"4MiB\""));
        assert!(e.message.contains("claims 4MiB of RAM"), "{}", e.message);
    }

    #[test]
    fn unknown_probe_rs_chip_is_rejected_with_suggestions() {
        let e = err_of(&one_board("").replace("chip = \"RP2040\"", "chip = \"RP204\""));
        assert!(
            e.message.contains("does not know chip `RP204`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_usb_id_points_at_it() {
        let e = err_of(&one_board("").replace("2e8a:0005", "2e8a-0005"));
        assert!(e.message.contains("not VID:PID"), "{}", e.message);
    }

    #[test]
    fn missing_key_is_reported() {
        let e = err_of(&one_board("").replace("flasher = \"probe-rs\"\n", ""));
        assert!(e.message.contains("missing key `flasher`"), "{}", e.message);
    }

    #[test]
    fn user_file_extends_or_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("boards.toml");
        std::fs::write(&f, one_board("")).unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let src = CatalogSource {
            explicit: None,
            search_from: Some(sub),
        };
        assert_eq!(src.user_file().as_deref(), Some(f.as_path()));
        let cat = Catalog::load(&src).unwrap();
        assert!(cat.get("b1").is_ok());
        assert!(cat.get("rpi-pico").is_ok());
        assert_eq!(cat.get("b1").unwrap().origin, Origin::File(f.clone()));

        std::fs::write(&f, format!("catalog = \"replace\"\n{}", one_board(""))).unwrap();
        let cat = Catalog::load(&src).unwrap();
        assert_eq!(cat.len(), 1);
        let e = cat.get("rpi-pic").unwrap_err().to_string();
        assert_eq!(e, "unknown board `rpi-pic`");
    }

    #[test]
    fn unknown_board_suggests_nearest() {
        let cat = Catalog::builtin().unwrap();
        match cat.get("rpi-pico-ww") {
            Err(BoardError::Unknown { help, .. }) => {
                assert!(help.contains("`rpi-pico-w`"), "{help}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usb_ids_parse_and_print() {
        let id: UsbId = "2E8A:0005".parse().unwrap();
        assert_eq!(id.to_string(), "2e8a:0005");
        assert!("2e8a".parse::<UsbId>().is_err());
        assert!("zz:0005".parse::<UsbId>().is_err());
    }

    /// Poor man's fuzzing on stable: thousands of mutated catalogs must give Ok or a diagnostic,
    /// never a panic (byte offsets in spans and key lookups are the usual suspects).
    #[test]
    fn mutated_catalogs_never_panic() {
        let base = BUILTIN_CATALOG.as_bytes();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"=[]\"{}.,#\n ab9_-KiB\x00\xff";
        for _ in 0..3000 {
            let mut bytes = base.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = parse(&text, "fuzz.toml", &Origin::Builtin, Some(&BTreeMap::new())) {
                assert!(!e.message.is_empty());
                let _ = key_path_at(&text, e.span.offset());
            }
        }
    }

    #[test]
    fn line_col_and_key_path() {
        let t = "a = 1\n[x.y]\nkey = 2\n";
        assert_eq!(line_col(t, t.find("key").unwrap()), (3, 1));
        assert_eq!(
            key_path_at(t, t.find("2\n").unwrap()).as_deref(),
            Some("x.y.key")
        );
        assert_eq!(key_path_at(t, 0).as_deref(), Some("a"));
    }
}
