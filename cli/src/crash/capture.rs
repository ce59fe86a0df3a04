//! `mpfr crash capture`: halt the target once, read every core and all RAM, let it run again.
//!
//! The target is held for the whole read (one consistent state) and released whatever happens:
//! the read runs in a closure, and the release, then the detach, follow it on every path (the
//! client detaches on drop too), so a capture that fails halfway never leaves QEMU stopped.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::Error;
use super::bundle::{Block, Bundle, CoreState};
use super::fault::{self, FaultRegs};
use crate::board::{Board, Platform, Region, RegionKind};
use crate::builder::BuildRecord;
use crate::device::memory::gdb::GdbClient;
use crate::device::memory::{Memory, TargetError, read_u32};
use crate::telemetry::monitor::vboard;
use crate::util::usage::Usage;

/// Bytes per read while copying RAM.
const RAM_CHUNK: usize = 64 * 1024;

/// What `capture` needs besides the board.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// The ELF the target runs, when not the one mpfr booted.
    pub elf: Option<PathBuf>,
    /// What the board's console printed last, when the caller has it (a stress run has the
    /// crashed test's output); the bundle keeps its last [`CONSOLE_TAIL`] bytes.
    pub console_tail: Option<String>,
}

/// Most console bytes a bundle keeps.
pub const CONSOLE_TAIL: usize = 4096;

/// Halts `board` (a running virtual board), reads it into a bundle and lets it run again.
pub fn capture(board: &Board, opts: &CaptureOptions) -> Result<Bundle, Error> {
    let (mut gdb, rec, machine, ram) = connect(board, "capture")?;
    gdb.hold()?;
    let read = read_all(&mut gdb, &ram);
    // Release and detach on every path; a read error wins over a release error.
    let released = gdb.release();
    let detached = gdb.detach();
    let (cores, blocks, mut notes) = read?;
    released?;
    detached?;

    let elf = opts.elf.clone().unwrap_or(rec.image.clone());
    let record = BuildRecord::read(&board.name).ok().flatten();
    let fingerprint = record.filter(|r| r.elf == elf).map(|r| r.fingerprint);
    let (elf_sha256, build_id) = match std::fs::read(&elf) {
        Ok(bytes) => (Some(hex(&Sha256::digest(&bytes))), build_id(&bytes)),
        Err(e) => {
            notes.push(format!("cannot read the ELF {}: {e}", elf.display()));
            (None, None)
        }
    };
    let console_tail = opts.console_tail.as_deref().map(|t| tail(t, CONSOLE_TAIL));
    if console_tail.is_none() {
        notes.push("mpfr does not keep the virtual board's console: no console tail".into());
    }
    Ok(Bundle {
        board: board.name.clone(),
        cpu: machine.cpu.clone(),
        captured_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        elf: Some(elf),
        elf_sha256,
        build_id,
        fingerprint,
        transport: gdb_describe(&rec.gdb_socket),
        cores,
        console_tail,
        notes,
        memory: Vec::new(),
        blocks,
    })
}

/// What [`connect`] gives: the gdbstub connection, the virtual board's record, its machine and
/// RAM regions.
pub(crate) type Connected<'a> = (
    GdbClient,
    crate::device::vboard::Instance,
    &'a crate::board::QemuMachine,
    Vec<Region>,
);

/// A gdbstub connection to `board`'s running virtual board (for `crash <verb>`); a board mpfr
/// cannot halt is a clear error.
pub(crate) fn connect<'a>(board: &'a Board, verb: &str) -> Result<Connected<'a>, Error> {
    let machine = match &board.platform {
        Platform::Qemu(m) => m,
        Platform::Probe(_) => {
            return Err(Usage::new(
                format!("crash {verb} on probe boards ({}) is not supported yet", board.name),
                "use a QEMU board (qemu-mps2-an385, qemu-mps2-an521), or attach gdb through probe-rs",
            )
            .into());
        }
        _ => {
            return Err(Usage::new(
                format!("{} has no debug access mpfr can halt", board.name),
                format!("crash {verb} needs a QEMU board"),
            )
            .into());
        }
    };
    let rec = running_vboard(&board.name)?;
    let ram: Vec<Region> = machine
        .memory
        .iter()
        .filter(|r| r.kind == RegionKind::Ram)
        .cloned()
        .collect();
    let gdb = GdbClient::connect(
        &rec.gdb_socket,
        ram.iter().map(|r| r.start..r.end).collect(),
    )?;
    Ok((gdb, rec, machine, ram))
}

/// The running virtual board named `name`, or why there is none.
pub(crate) fn running_vboard(name: &str) -> Result<crate::device::vboard::Instance, Error> {
    vboard(name).map_err(|e| match e {
        crate::telemetry::monitor::Error::Vboard(v) => Error::Vboard(v),
        other => Error::Usage(Usage::new(
            other.to_string(),
            "start the virtual board with `mpfr flash --board <board>`",
        )),
    })
}

fn gdb_describe(p: &std::path::Path) -> String {
    format!("QEMU gdbstub at {}", p.display())
}

type Read = (Vec<CoreState>, Vec<Block>, Vec<String>);

/// Everything read while the target is held.
fn read_all(gdb: &mut GdbClient, ram: &[crate::board::Region]) -> Result<Read, TargetError> {
    let mut notes = Vec::new();
    let threads = gdb.cores()?;
    let sysregs = system_register_numbers(gdb)?;
    if !["msp", "psp", "control"]
        .iter()
        .all(|n| sysregs.iter().any(|(name, _)| name == n))
    {
        notes.push("the gdbstub does not show MSP, PSP and CONTROL: the active stack pointer is r13, the other is found from the stacks".into());
    }
    let mut cores = Vec::new();
    for (index, thread) in threads.iter().enumerate() {
        gdb.select(thread)?;
        let all = gdb.registers()?;
        if all.len() < 16 {
            return Err(TargetError::GdbProtocol {
                what: "g".into(),
                reply: format!("{} registers", all.len()),
            });
        }
        // xPSR is register 25 in gdb's ARM numbering (after the old FPA registers).
        let xpsr = gdb.register(25)?.unwrap_or(0);
        let mut named = |name: &str| -> Result<Option<u32>, TargetError> {
            match sysregs.iter().find(|(n, _)| n == name) {
                Some((_, num)) => gdb.register(*num),
                None => Ok(None),
            }
        };
        let (msp, psp, control) = (named("msp")?, named("psp")?, named("control")?);
        let fault = FaultRegs {
            cfsr: read_u32(gdb, fault::CFSR)?,
            hfsr: read_u32(gdb, fault::HFSR)?,
            mmfar: read_u32(gdb, fault::MMFAR)?,
            bfar: read_u32(gdb, fault::BFAR)?,
        };
        cores.push(CoreState {
            index: index as u32,
            thread: thread.clone(),
            regs: all[..16].to_vec(),
            xpsr,
            msp,
            psp,
            control,
            fault,
        });
    }
    if let Some(first) = threads.first() {
        gdb.select(first)?;
    }
    let mut blocks = Vec::new();
    for r in ram {
        let mut data = vec![0u8; (r.end - r.start) as usize];
        for (i, chunk) in data.chunks_mut(RAM_CHUNK).enumerate() {
            gdb.read(r.start + (i * RAM_CHUNK) as u64, chunk)?;
        }
        blocks.push(Block {
            name: r.name.clone(),
            start: r.start,
            data,
        });
    }
    Ok((cores, blocks, notes))
}

/// Register names and gdb numbers from the stub's target description (`msp`, `psp`, `control`
/// on stubs that describe the M-profile system registers).
fn system_register_numbers(gdb: &mut GdbClient) -> Result<Vec<(String, u32)>, TargetError> {
    let Some(top) = gdb.target_xml("target.xml")? else {
        return Ok(Vec::new());
    };
    let mut docs = vec![top.clone()];
    for inc in attr_values(&top, "xi:include", "href") {
        if let Some(d) = gdb.target_xml(&inc)? {
            docs.push(d);
        }
    }
    let mut out = Vec::new();
    let mut next = 0u32;
    for d in &docs {
        for tag in d.split("<reg ").skip(1) {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            if let Some(n) = attr(tag, "regnum").and_then(|v| v.parse().ok()) {
                next = n;
            }
            if let Some(name) = attr(tag, "name") {
                out.push((name.to_lowercase(), next));
            }
            next += 1;
        }
    }
    Ok(out)
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[at..].find('"')?;
    Some(tag[at..at + end].to_string())
}

fn attr_values(doc: &str, element: &str, name: &str) -> Vec<String> {
    doc.split(&format!("<{element} "))
        .skip(1)
        .filter_map(|t| attr(&t[..t.find('>').unwrap_or(t.len())], name))
        .collect()
}

/// The last `max` bytes of `text` at most, starting on a character.
fn tail(text: &str, max: usize) -> String {
    let mut at = text.len().saturating_sub(max);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    text[at..].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The GNU build id of an ELF, when it has one.
fn build_id(bytes: &[u8]) -> Option<String> {
    use object::Object;
    let f = object::File::parse(bytes).ok()?;
    f.build_id().ok().flatten().map(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_tail_is_cut_on_a_character() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        // 'é' is two bytes: a cut inside it moves past it.
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
    }

    #[test]
    fn register_attributes_are_read() {
        let tag = r#"name="msp" bitsize="32" regnum="91" type="data_ptr"/"#;
        assert_eq!(attr(tag, "name").as_deref(), Some("msp"));
        assert_eq!(attr(tag, "regnum").as_deref(), Some("91"));
        assert_eq!(attr(tag, "group"), None);
        let doc = r#"<target><xi:include href="arm-m-profile.xml"/><xi:include href="sys.xml"/></target>"#;
        assert_eq!(
            attr_values(doc, "xi:include", "href"),
            ["arm-m-profile.xml", "sys.xml"]
        );
    }
}
