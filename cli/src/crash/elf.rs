//! The firmware's ELF for crash analysis: symbols, the FreeRTOS TCB layout from DWARF, names
//! and lines for addresses (addr2line), and stack unwinding from DWARF call frame information
//! (`.debug_frame`, which `gcc -g` emits) through gimli.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EndianRcSlice, LittleEndian, Reader, Register,
    RegisterRule, UnwindContext, UnwindSection,
};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use serde::{Deserialize, Serialize};

use super::Error;

type R = EndianRcSlice<LittleEndian>;

/// A symbol of the ELF (Thumb bit cleared for functions).
#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub function: bool,
}

/// One frame of a backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub pc: u32,
    /// Function name (the innermost when inlined), or the symbol's, or `None`.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// This frame was interrupted by an exception (the hardware stacked its registers): its PC
    /// is the instruction that was executing, not a return address.
    #[serde(default)]
    pub exception: bool,
    /// The compiler inlined this function into the next frame's (same PC).
    #[serde(default)]
    pub inlined: bool,
}

impl Frame {
    /// `file:line` with the file's last component only, or `?`.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => {
                let short = f.rsplit('/').next().unwrap_or(f);
                format!("{short}:{l}")
            }
            (Some(f), None) => f.rsplit('/').next().unwrap_or(f).to_string(),
            _ => "?".into(),
        }
    }
}

/// A loaded ELF.
pub struct Elf {
    pub symbols: Vec<Symbol>,
    text: Vec<Range<u64>>,
    ctx: addr2line::Context<R>,
    frame: DebugFrame<R>,
    /// Member offsets of FreeRTOS's `tskTaskControlBlock`.
    pub tcb: HashMap<String, u64>,
    /// Member offsets of the interpreter's structs the Python frame walk reads
    /// ([`super::python::STRUCTS`]), by struct name.
    pub structs: HashMap<String, HashMap<String, u64>>,
    /// The bytes of every loaded section with contents (address, data): constants such as
    /// MicroPython's qstr pools live in the code memory, which a capture need not hold.
    image: Vec<(u64, Vec<u8>)>,
}

fn load_dwarf(file: &object::File) -> Result<gimli::Dwarf<R>, gimli::Error> {
    gimli::Dwarf::load(|id| -> Result<R, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .map(|d| Rc::from(&*d))
            .unwrap_or_else(|| Rc::from(&[][..]));
        Ok(EndianRcSlice::new(data, LittleEndian))
    })
}

impl Elf {
    pub fn load(path: &Path) -> Result<Elf, Error> {
        let bad = |why: String| Error::Elf {
            path: path.to_path_buf(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Elf::parse(&bytes).map_err(bad)
    }

    pub fn parse(bytes: &[u8]) -> Result<Elf, String> {
        let file = object::File::parse(bytes).map_err(|e| format!("not an ELF file ({e})"))?;
        let mut symbols: Vec<Symbol> = file
            .symbols()
            .filter(|s| s.address() != 0 || s.size() != 0)
            .filter_map(|s| {
                let function = s.kind() == SymbolKind::Text;
                Some(Symbol {
                    name: s.name().ok()?.to_string(),
                    addr: if function {
                        s.address() & !1
                    } else {
                        s.address()
                    },
                    size: s.size(),
                    function,
                })
            })
            .filter(|s| !s.name.is_empty() && !s.name.starts_with('$'))
            .collect();
        symbols.sort_by_key(|s| s.addr);
        let text = file
            .sections()
            .filter(|s| s.kind() == object::SectionKind::Text)
            .map(|s| s.address()..s.address() + s.size())
            .collect();
        let debug_frame = file
            .section_by_name(".debug_frame")
            .and_then(|s| s.uncompressed_data().ok())
            .ok_or("it has no .debug_frame (build with -g)")?;
        let mut frame = DebugFrame::from(EndianRcSlice::new(Rc::from(&*debug_frame), LittleEndian));
        frame.set_address_size(4);
        let dwarf = load_dwarf(&file).map_err(|e| format!("bad DWARF: {e}"))?;
        let mut wanted = vec!["tskTaskControlBlock"];
        wanted.extend_from_slice(super::python::STRUCTS);
        let mut structs = struct_members(&dwarf, &wanted);
        let tcb = structs.remove("tskTaskControlBlock").unwrap_or_default();
        let image = file
            .sections()
            .filter(|s| {
                matches!(
                    s.kind(),
                    object::SectionKind::Text
                        | object::SectionKind::Data
                        | object::SectionKind::ReadOnlyData
                        | object::SectionKind::ReadOnlyString
                )
            })
            .filter_map(|s| Some((s.address(), s.data().ok()?.to_vec())))
            .collect();
        let ctx = addr2line::Context::from_dwarf(load_dwarf(&file).map_err(|e| e.to_string())?)
            .map_err(|e| format!("bad DWARF: {e}"))?;
        Ok(Elf {
            symbols,
            text,
            ctx,
            frame,
            tcb,
            structs,
            image,
        })
    }

    /// `len` bytes at `addr` as the ELF loads them, when one section holds them all.
    pub fn image_bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.image.iter().find_map(|(start, data)| {
            let off = addr.checked_sub(*start)? as usize;
            data.get(off..off.checked_add(len)?)
        })
    }

    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// The function symbol that holds `addr`.
    pub fn function_at(&self, addr: u64) -> Option<&Symbol> {
        self.symbols
            .iter()
            .rfind(|s| s.function && s.addr <= addr && addr < s.addr + s.size.max(1))
    }

    pub fn in_text(&self, addr: u64) -> bool {
        self.text.iter().any(|r| r.contains(&addr))
    }

    /// Names `pc` (looked up at `probe`, which is `pc` or a return address minus one): one
    /// frame per function, innermost first, when the compiler inlined some at this address.
    pub fn frames_at(&self, pc: u32, probe: u64, exception: bool) -> Vec<Frame> {
        let mut out = Vec::new();
        if let Ok(mut frames) = self.ctx.find_frames(probe).skip_all_loads() {
            while let Ok(Some(fr)) = frames.next() {
                let (file, line) = fr
                    .location
                    .map_or((None, None), |l| (l.file.map(str::to_string), l.line));
                out.push(Frame {
                    pc,
                    function: fr
                        .function
                        .and_then(|n| n.raw_name().ok().map(|s| s.into_owned())),
                    file,
                    line,
                    exception,
                    inlined: true,
                });
            }
        }
        if out.is_empty() {
            out.push(Frame {
                pc,
                function: None,
                file: None,
                line: None,
                exception,
                inlined: false,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
            if last.function.is_none() {
                last.function = self.function_at(probe).map(|s| s.name.clone());
            }
        }
        out
    }

    /// Unwinds from `regs` (r0-r15, `None` where unknown) through DWARF CFI. At an exception
    /// return address (EXC_RETURN) it continues in the interrupted code from the hardware's
    /// stacked frame, found on the main stack (the CFA) or on the process stack (`psp`: the
    /// known PSP, or a finder given the registers at exception entry).
    pub fn unwind(
        &self,
        mut regs: [Option<u32>; 16],
        mem: &dyn Fn(u64) -> Option<u32>,
        psp: &dyn Fn(&[Option<u32>; 16]) -> Option<u32>,
    ) -> Vec<Frame> {
        let mut frames = Vec::new();
        let bases = BaseAddresses::default();
        let mut ctx = UnwindContext::new();
        // The first frame and a frame right after an exception stop at their PC itself.
        let mut at_pc = true;
        let mut exception = false;
        for _ in 0..64 {
            let Some(pc) = regs[15] else { break };
            let pc = pc & !1;
            if pc == 0 || (!frames.is_empty() && !self.in_text(pc as u64)) {
                break;
            }
            // FreeRTOS ports put prvTaskExitError as the return address of a task's entry
            // function: the bottom of every task's stack.
            if self
                .function_at(pc as u64)
                .is_some_and(|s| s.name == "prvTaskExitError")
            {
                break;
            }
            let probe = if at_pc { pc as u64 } else { pc as u64 - 1 };
            frames.extend(self.frames_at(pc, probe, exception));
            let Some(sp) = regs[13] else { break };
            let row = self
                .frame
                .fde_for_address(&bases, probe, DebugFrame::cie_from_offset)
                .and_then(|fde| fde.unwind_info_for_address(&self.frame, &bases, &mut ctx, probe));
            let mut next = regs;
            let cfa = match row {
                Ok(row) => {
                    let cfa = match row.cfa() {
                        CfaRule::RegisterAndOffset { register, offset } => {
                            match regs.get(register.0 as usize).copied().flatten() {
                                Some(v) => (v as i64 + offset) as u32,
                                None => break,
                            }
                        }
                        _ => break,
                    };
                    for r in 0..16u16 {
                        next[r as usize] = match row.register(Register(r)) {
                            None | Some(RegisterRule::SameValue) => regs[r as usize],
                            Some(RegisterRule::Offset(o)) => mem((cfa as i64 + o) as u64),
                            Some(RegisterRule::ValOffset(o)) => Some((cfa as i64 + o) as u32),
                            Some(RegisterRule::Register(x)) => {
                                regs.get(x.0 as usize).copied().flatten()
                            }
                            Some(_) => None,
                        };
                    }
                    cfa
                }
                // No call frame information (hand-written assembly): only a leaf that has not
                // touched the stack can be stepped, through LR.
                Err(_) if frames.len() == 1 => sp,
                Err(_) => break,
            };
            let Some(ra) = next[14] else { break };
            if ra >= 0xff00_0000 {
                // EXC_RETURN: bit 2 says which stack holds the frame, bit 4 clear means it has
                // the floating-point part.
                let mut at_entry = next;
                at_entry[13] = Some(cfa);
                let frame_sp = if ra & 4 != 0 {
                    psp(&at_entry)
                } else {
                    Some(cfa)
                };
                let Some(fsp) = frame_sp else { break };
                let Some(restored) = stacked_frame(fsp as u64, ra, mem, &next) else {
                    break;
                };
                regs = restored;
                at_pc = true;
                exception = true;
                continue;
            }
            // The stack must unwind upwards (a leaf keeps it), and a frame that returns to
            // itself with the same stack is a loop: otherwise the information is wrong.
            if cfa < sp || (cfa == sp && ra & !1 == pc) {
                break;
            }
            next[13] = Some(cfa);
            next[15] = Some(ra);
            regs = next;
            at_pc = false;
            exception = false;
        }
        frames
    }
}

/// The registers of the code an exception interrupted, from the hardware frame at `sp`
/// (r0-r3, r12, lr, pc, xPSR, then s0-s15 and FPSCR when EXC_RETURN bit 4 is clear).
pub fn stacked_frame(
    sp: u64,
    exc_return: u32,
    mem: &dyn Fn(u64) -> Option<u32>,
    callee: &[Option<u32>; 16],
) -> Option<[Option<u32>; 16]> {
    let w = |i: u64| mem(sp + 4 * i);
    let xpsr = w(7)?;
    let mut size = if exc_return & 0x10 == 0 { 0x68 } else { 0x20 };
    if xpsr & (1 << 9) != 0 {
        size += 4;
    }
    let mut r = *callee;
    r[0] = w(0);
    r[1] = w(1);
    r[2] = w(2);
    r[3] = w(3);
    r[12] = w(4);
    r[14] = w(5);
    r[15] = Some(w(6)?);
    r[13] = Some((sp + size) as u32);
    Some(r)
}

/// Member name to byte offset of each C struct in `names` that DWARF describes, in one pass over
/// the units. A bit-field member (no byte location) gets the byte offset of its first bit.
fn struct_members(
    dwarf: &gimli::Dwarf<R>,
    names: &[&str],
) -> HashMap<String, HashMap<String, u64>> {
    let mut found: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        if found.len() == names.len() {
            break;
        }
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Ok(mut tree) = unit.entries_tree(None) else {
            continue;
        };
        let Ok(root) = tree.root() else { continue };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            if e.tag() != gimli::DW_TAG_structure_type {
                continue;
            }
            let Some(name) = e
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| dwarf.attr_string(&unit, v).ok())
                .and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned()))
            else {
                continue;
            };
            if !names.contains(&name.as_str()) || found.contains_key(&name) {
                continue;
            }
            let mut out = HashMap::new();
            let mut members = child.children();
            while let Ok(Some(m)) = members.next() {
                let m = m.entry();
                if m.tag() != gimli::DW_TAG_member {
                    continue;
                }
                let n = m
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| dwarf.attr_string(&unit, v).ok())
                    .and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned()));
                let off = m
                    .attr(gimli::DW_AT_data_member_location)
                    .and_then(|a| a.udata_value())
                    .or_else(|| {
                        m.attr(gimli::DW_AT_data_bit_offset)
                            .and_then(|a| a.udata_value())
                            .map(|bits| bits / 8)
                    });
                if let (Some(n), Some(off)) = (n, off) {
                    out.insert(n, off);
                }
            }
            // A declaration in one unit has no members; the definition is in another.
            if !out.is_empty() {
                found.insert(name, out);
            }
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::process::Command;

    /// Three functions with hand-written call frame information (so the stack layout is known
    /// without running them) and a fault handler entered from `leaf`.
    const ASM: &str = r#"
    .syntax unified
    .thumb
    .cfi_sections .debug_frame
    .text
    .global outer, middle, leaf, handler
    .type outer, %function
outer:
    .cfi_startproc
    push {r4, lr}
    .cfi_def_cfa_offset 8
    .cfi_offset r4, -8
    .cfi_offset lr, -4
    bl middle
    .global ret_outer
ret_outer:
    pop {r4, pc}
    .cfi_endproc
    .size outer, . - outer

    .type middle, %function
middle:
    .cfi_startproc
    push {r7, lr}
    .cfi_def_cfa_offset 8
    .cfi_offset r7, -8
    .cfi_offset lr, -4
    sub sp, #8
    .cfi_def_cfa_offset 16
    bl leaf
    .global ret_middle
ret_middle:
    add sp, #8
    pop {r7, pc}
    .cfi_endproc
    .size middle, . - middle

    .type leaf, %function
leaf:
    .cfi_startproc
    nop
    .global leaf_pc
leaf_pc:
    ldr r0, [r0]
    bx lr
    .cfi_endproc
    .size leaf, . - leaf

    .type handler, %function
handler:
    .cfi_startproc
    push {r4, lr}
    .cfi_def_cfa_offset 8
    .cfi_offset r4, -8
    .cfi_offset lr, -4
    .global handler_pc
handler_pc:
    b handler_pc
    .cfi_endproc
    .size handler, . - handler
"#;

    /// Assembles ASM (arm-none-eabi-gcc); `None` when the compiler is missing outside CI.
    fn build() -> Option<(Elf, HashMap<String, u32>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        build_in(dir.path()).map(|(e, s, _)| (e, s))
    }

    /// Assembles `asm` in `dir` into the Cortex-M3 ELF `out` with arm-none-eabi-gcc, with debug
    /// info and no C library, plus `extra` flags. False when the compiler is missing outside CI
    /// (the tests that need it have nothing to run on); in CI a missing compiler fails.
    pub(crate) fn assemble_to(dir: &Path, asm: &str, extra: &[&str], out: &Path) -> bool {
        let src = dir.join(out.with_extension("s").file_name().expect("a file name"));
        std::fs::write(&src, asm).expect("write asm");
        let st = Command::new("arm-none-eabi-gcc")
            .args(["-mcpu=cortex-m3", "-mthumb", "-g", "-nostdlib"])
            .args(extra)
            .arg("-o")
            .arg(out)
            .arg(&src)
            .status();
        match st {
            Ok(s) => {
                assert!(s.success(), "arm-none-eabi-gcc failed");
                true
            }
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "arm-none-eabi-gcc is missing ({e}): run scripts/setup.sh"
                );
                false
            }
        }
    }

    /// [`build`] into `dir`, also giving the ELF's path.
    pub(crate) fn build_in(dir: &Path) -> Option<(Elf, HashMap<String, u32>, std::path::PathBuf)> {
        let elf = dir.join("unwind.elf");
        if !assemble_to(dir, ASM, &["-Wl,-Ttext=0x1000", "-Wl,-eouter"], &elf) {
            return None;
        }
        let e = Elf::load(&elf).expect("load the ELF");
        let syms = e
            .symbols
            .iter()
            .map(|s| (s.name.clone(), s.addr as u32))
            .collect();
        Some((e, syms, elf))
    }

    fn names(frames: &[Frame]) -> Vec<&str> {
        frames
            .iter()
            .map(|f| f.function.as_deref().unwrap_or("??"))
            .collect()
    }

    #[test]
    fn unwinds_a_call_chain_from_cfi() {
        let Some((elf, s)) = build() else { return };
        // leaf (no frame) runs with sp = S and lr = ret_middle; middle's frame: [S, S+8)
        // locals, r7 at S+8, lr = ret_outer at S+12; outer's: r4 at S+16, lr = 0 (the bottom).
        let sp = 0x2000_1000u32;
        let mut mem = HashMap::new();
        mem.insert(sp as u64 + 8, 0x7777_7777);
        mem.insert(sp as u64 + 12, s["ret_outer"] | 1);
        mem.insert(sp as u64 + 16, 0x4444_4444);
        mem.insert(sp as u64 + 20, 0);
        let mut regs = [None; 16];
        regs[13] = Some(sp);
        regs[14] = Some(s["ret_middle"] | 1);
        regs[15] = Some(s["leaf_pc"]);
        let read = |a: u64| mem.get(&a).copied();
        let frames = elf.unwind(regs, &read, &|_| None);
        assert_eq!(names(&frames), ["leaf", "middle", "outer"]);
        assert_eq!(frames[0].pc, s["leaf_pc"]);
        assert!(
            frames[0]
                .file
                .as_deref()
                .is_some_and(|f| f.ends_with("unwind.s"))
        );
        assert!(frames[0].line.is_some());
        assert!(frames.iter().all(|f| !f.exception));
    }

    #[test]
    fn unwinds_through_an_exception_frame_on_either_stack() {
        let Some((elf, s)) = build() else { return };
        for exc_return in [0xffff_fff9u32, 0xffff_fffd] {
            // The handler pushed r4 and lr (EXC_RETURN) on the main stack at M; the hardware
            // frame (r0-r3, r12, lr, pc, xPSR) is right above it (MSP) or on the process
            // stack at P (PSP); leaf faulted with lr = ret_middle.
            let m = 0x2000_2000u64;
            let p = 0x2000_3000u64;
            let frame = if exc_return & 4 != 0 { p } else { m + 8 };
            let mut mem = HashMap::new();
            mem.insert(m, 0x4444_4444);
            mem.insert(m + 4, exc_return);
            let hw = [
                1,
                2,
                3,
                4,
                12,
                s["ret_middle"] | 1,
                s["leaf_pc"],
                0x0100_0000,
            ];
            for (i, v) in hw.iter().enumerate() {
                mem.insert(frame + 4 * i as u64, *v);
            }
            // middle's frame above the hardware frame: r7, then lr = 0 (the bottom).
            let s2 = frame + 0x20;
            mem.insert(s2 + 8, 0x7777_7777);
            mem.insert(s2 + 12, 0);
            let mut regs = [None; 16];
            regs[13] = Some(m as u32);
            regs[15] = Some(s["handler_pc"]);
            let read = |a: u64| mem.get(&a).copied();
            let asked = std::cell::Cell::new(false);
            let psp = |_: &[Option<u32>; 16]| {
                asked.set(true);
                Some(p as u32)
            };
            let frames = elf.unwind(regs, &read, &psp);
            assert_eq!(
                names(&frames),
                ["handler", "leaf", "middle"],
                "{exc_return:#x}"
            );
            assert!(frames[1].exception && !frames[2].exception);
            assert_eq!(frames[1].pc, s["leaf_pc"]);
            assert_eq!(asked.get(), exc_return & 4 != 0, "{exc_return:#x}");
        }
    }

    #[test]
    fn stacked_frame_sizes() {
        let mut mem = HashMap::new();
        for i in 0..8u64 {
            mem.insert(0x100 + 4 * i, i as u32);
        }
        let read = |a: u64| mem.get(&a).copied();
        let base = [None; 16];
        // Basic frame, then with the alignment word (xPSR bit 9), then the FP frame.
        mem_frame(&read, &base, 0xffff_fffd, 0x100 + 0x20);
        let mut mem2 = mem.clone();
        mem2.insert(0x100 + 28, 1 << 9);
        let read2 = |a: u64| mem2.get(&a).copied();
        mem_frame(&read2, &base, 0xffff_fffd, 0x100 + 0x24);
        mem_frame(&read, &base, 0xffff_ffed, 0x100 + 0x68);
    }

    fn mem_frame(read: &dyn Fn(u64) -> Option<u32>, base: &[Option<u32>; 16], exc: u32, sp: u32) {
        let r = stacked_frame(0x100, exc, read, base).expect("frame");
        assert_eq!(r[0], Some(0));
        assert_eq!(r[12], Some(4));
        assert_eq!(r[14], Some(5));
        assert_eq!(r[15], Some(6));
        assert_eq!(r[13], Some(sp), "{exc:#x}");
    }

    #[test]
    fn not_an_elf_is_a_clear_error() {
        let e = Elf::parse(b"hello").err().expect("error");
        assert!(e.contains("not an ELF"), "{e}");
    }
}
