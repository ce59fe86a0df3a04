//! Python call stacks of MicroPython threads in captured memory: the chain of running bytecode
//! frames mpfr's port keeps per FreeRTOS task (firmware/micropython/freertos/mpfr_pyframes.c),
//! each frame's function, file and line decoded from its bytecode the way MicroPython 1.25's VM
//! does for a traceback (py/vm.c, py/bc.h, py/bc.c).
//!
//! The port keeps, in a thread-local-storage slot of each task, the head of a list of records
//! `{code_state, prev}` (innermost first), one per running `mp_execute_bytecode`. A record's
//! `code_state->ip` is the op the frame is running (the VM stores it before every dispatch),
//! `code_state->fun_bc` the function, whose bytecode starts with the prelude that names it and
//! maps ops to lines. Names are qstrs, found through the interpreter's qstr pools. Every struct
//! layout comes from DWARF; every walk is bounded, so corrupt memory ends a walk, not the tool.

use std::collections::HashMap;

use serde::Serialize;

use super::bundle::Bundle;
use super::elf::Elf;

/// The C structs the walk reads, by DWARF name.
pub const STRUCTS: &[&str] = &[
    "_mpfr_pyframe_t",
    "_mp_code_state_t",
    "_mp_obj_fun_bc_t",
    "_mp_module_context_t",
    "_mp_module_constants_t",
    "_qstr_pool_t",
    "_mp_state_ctx_t",
    "_mp_state_vm_t",
];

/// The symbol holding the slot index; the port defines it only when it keeps the chain.
pub const SLOT_SYMBOL: &str = "mpfr_pyframes_tls_index";

/// Most frames read from one chain (deeper recursion is cut, and said).
const MAX_FRAMES: usize = 256;
/// Most qstr pools followed.
const MAX_POOLS: usize = 64;
/// Longest name read.
const MAX_NAME: usize = 256;
/// Largest line-number table believed.
const MAX_INFO: usize = 64 * 1024;

/// What a report says when a MicroPython firmware keeps no frame chain.
pub const NOT_EXPOSED: &str =
    "no Python frames: the firmware does not expose them (see docs/crash.md)";

/// One Python frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PyFrame {
    /// The function (`<module>` for a module's top level), `?` when unreadable.
    pub function: String,
    /// The source file as compiled (`fault.py`, `<stdin>`), `?` when unreadable.
    pub file: String,
    pub line: Option<u32>,
}

impl PyFrame {
    /// CPython's traceback line: `File "fault.py", line 5, in spin`.
    pub fn traceback_line(&self) -> String {
        match self.line {
            Some(l) => format!("File \"{}\", line {l}, in {}", self.file, self.function),
            None => format!("File \"{}\", line ?, in {}", self.file, self.function),
        }
    }
}

/// A task's chain as read: the frames (innermost first) and why the walk stopped early.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub frames: Vec<PyFrame>,
    pub cut: Option<String>,
}

/// Where everything the walk reads sits: struct offsets from DWARF, addresses from symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Offset in a TCB of the chain head (`pvThreadLocalStoragePointers[slot]`) and of the
    /// thread state (slot 0).
    pub tcb_head: u64,
    pub tcb_state: u64,
    pub rec_code_state: u64,
    pub rec_prev: u64,
    pub cs_fun_bc: u64,
    pub cs_ip: u64,
    pub fun_context: u64,
    pub fun_bytecode: u64,
    /// `context->constants` plus the member holding the file: `qstr_table` (MicroPython with
    /// `MICROPY_EMIT_BYTECODE_USES_QSTR_TABLE`: the bytecode's qstrs index it, entry 0 is the
    /// file) or `source_file` (the bytecode holds qstrs themselves).
    pub ctx_constants: u64,
    pub qstrs: QstrRef,
    pub pool_prev: u64,
    pub pool_total_prev_len: u64,
    pub pool_len: u64,
    pub pool_qstrs: u64,
    /// The address of `MP_STATE_VM(last_pool)`, and of the ROM pool when that cannot be read.
    pub last_pool: Option<u64>,
    pub const_pool: Option<u64>,
}

/// How the bytecode names qstrs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QstrRef {
    /// Indices into `constants.qstr_table` (16-bit `qstr_short_t`), at this offset.
    Table(u64),
    /// Qstrs themselves; the file is `constants.source_file`, at this offset.
    Direct(u64),
}

/// Whether the ELF's firmware keeps a frame chain the host can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Not MicroPython: nothing to say.
    NotPython,
    /// MicroPython without the chain (or without the DWARF to read it): why.
    Absent(String),
    Present(Layout),
}

/// What the ELF says about Python frames.
pub fn support(elf: &Elf) -> Support {
    if elf.symbol("mp_execute_bytecode").is_none() {
        return Support::NotPython;
    }
    let Some(slot_sym) = elf.symbol(SLOT_SYMBOL) else {
        return Support::Absent(NOT_EXPOSED.into());
    };
    let slot = elf
        .image_bytes(slot_sym.addr, 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match layout(elf, slot) {
        Ok(l) => Support::Present(l),
        Err(why) => Support::Absent(format!("no Python frames: {why}")),
    }
}

fn layout(elf: &Elf, slot: Option<u32>) -> Result<Layout, String> {
    let slot = slot.ok_or(format!("{SLOT_SYMBOL} is not in the ELF's loaded data"))? as u64;
    let member = |s: &str, m: &str| -> Result<u64, String> {
        elf.structs
            .get(s)
            .and_then(|x| x.get(m))
            .copied()
            .ok_or(format!(
                "the ELF's DWARF has no {s}.{m} (build the firmware with -g)"
            ))
    };
    let tls = elf
        .tcb
        .get("pvThreadLocalStoragePointers")
        .copied()
        .ok_or("the ELF's DWARF has no tskTaskControlBlock.pvThreadLocalStoragePointers")?;
    let constants = elf.structs.get("_mp_module_constants_t");
    let qstrs = match (
        constants.and_then(|c| c.get("qstr_table")),
        constants.and_then(|c| c.get("source_file")),
    ) {
        (Some(&t), _) => QstrRef::Table(t),
        (None, Some(&f)) => QstrRef::Direct(f),
        _ => return Err("the ELF's DWARF has no _mp_module_constants_t".into()),
    };
    let last_pool = match (elf.symbol("mp_state_ctx"), member("_mp_state_ctx_t", "vm")) {
        (Some(s), Ok(vm)) => member("_mp_state_vm_t", "last_pool")
            .ok()
            .map(|p| s.addr + vm + p),
        _ => None,
    };
    Ok(Layout {
        tcb_head: tls + 4 * slot,
        tcb_state: tls,
        rec_code_state: member("_mpfr_pyframe_t", "code_state")?,
        rec_prev: member("_mpfr_pyframe_t", "prev")?,
        cs_fun_bc: member("_mp_code_state_t", "fun_bc")?,
        cs_ip: member("_mp_code_state_t", "ip")?,
        fun_context: member("_mp_obj_fun_bc_t", "context")?,
        fun_bytecode: member("_mp_obj_fun_bc_t", "bytecode")?,
        ctx_constants: member("_mp_module_context_t", "constants")?,
        qstrs,
        pool_prev: member("_qstr_pool_t", "prev")?,
        pool_total_prev_len: member("_qstr_pool_t", "total_prev_len")?,
        pool_len: member("_qstr_pool_t", "len")?,
        pool_qstrs: member("_qstr_pool_t", "qstrs")?,
        last_pool,
        const_pool: elf.symbol("mp_qstr_const_pool").map(|s| s.addr),
    })
}

/// Target memory as captured: the bundle's RAM, then what the ELF loads (code and constants).
pub struct Memory<'a> {
    pub bundle: &'a Bundle,
    pub elf: Option<&'a Elf>,
}

impl Memory<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.bundle
            .mem(addr, len)
            .or_else(|| self.elf.and_then(|e| e.image_bytes(addr, len)))
    }

    fn u32(&self, addr: u64) -> Option<u32> {
        self.bytes(addr, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&self, addr: u64) -> Option<u16> {
        self.bytes(addr, 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// A NUL-terminated string of at most [`MAX_NAME`] bytes.
    fn c_str(&self, addr: u64) -> Option<String> {
        let mut out = Vec::new();
        while out.len() < MAX_NAME {
            let b = self.bytes(addr + out.len() as u64, 1)?[0];
            if b == 0 {
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            out.push(b);
        }
        None
    }

    /// The longest run of bytes from `addr` up to `max` that one block holds.
    fn up_to(&self, addr: u64, max: usize) -> Option<&[u8]> {
        let mut len = max;
        while len > 0 {
            if let Some(b) = self.bytes(addr, len) {
                return Some(b);
            }
            len /= 2;
        }
        None
    }
}

/// Whether the task is a Python thread (its slot 0 holds a thread state).
pub fn is_python_thread(mem: &Memory, lay: &Layout, tcb: u32) -> bool {
    mem.u32(tcb as u64 + lay.tcb_state).is_some_and(|s| s != 0)
}

/// The Python frames of the task whose TCB is at `tcb`, innermost first.
pub fn chain(mem: &Memory, lay: &Layout, tcb: u32) -> Chain {
    let mut out = Chain::default();
    let mut qstrs = QstrCache::default();
    let mut rec = match mem.u32(tcb as u64 + lay.tcb_head) {
        Some(r) => r,
        None => {
            out.cut = Some(format!("the TCB at {tcb:#010x} is not in the capture"));
            return out;
        }
    };
    while rec != 0 {
        if out.frames.len() == MAX_FRAMES {
            out.cut = Some(format!(
                "more than {MAX_FRAMES} frames: the outer ones are cut"
            ));
            break;
        }
        let (Some(cs), Some(prev)) = (
            mem.u32(rec as u64 + lay.rec_code_state),
            mem.u32(rec as u64 + lay.rec_prev),
        ) else {
            out.cut = Some(format!("frame record {rec:#010x} is not in the capture"));
            break;
        };
        out.frames.push(frame(mem, lay, cs, &mut qstrs));
        // Each record lives in its wrapper's C frame, above the frames it calls: a chain that
        // does not climb the stack is corrupt (and would loop).
        if prev != 0 && prev <= rec {
            out.cut = Some(format!(
                "frame record {rec:#010x} points down the stack ({prev:#010x}): the chain is damaged"
            ));
            break;
        }
        rec = prev;
    }
    out
}

fn frame(mem: &Memory, lay: &Layout, cs: u32, qstrs: &mut QstrCache) -> PyFrame {
    let unknown = PyFrame {
        function: "?".into(),
        file: "?".into(),
        line: None,
    };
    let cs = cs as u64;
    let (Some(fun), Some(ip)) = (mem.u32(cs + lay.cs_fun_bc), mem.u32(cs + lay.cs_ip)) else {
        return unknown;
    };
    let (Some(code), Some(context)) = (
        mem.u32(fun as u64 + lay.fun_bytecode),
        mem.u32(fun as u64 + lay.fun_context),
    ) else {
        return unknown;
    };
    // The prelude's two varint headers take a few bytes; then the info section, n_info long.
    let Some(head) = mem.up_to(code as u64, 16) else {
        return unknown;
    };
    let Some(pre) = Prelude::decode(head) else {
        return unknown;
    };
    let info_end = pre.info_start + pre.n_info.min(MAX_INFO);
    let Some(code_bytes) = mem.bytes(code as u64, info_end) else {
        return unknown;
    };
    let ip_offset = (ip as u64).checked_sub(code as u64).map(|o| o as usize);
    let Some(info) = pre.frame_info(code_bytes, ip_offset) else {
        return unknown;
    };
    let constants = context as u64 + lay.ctx_constants;
    let (name_q, file_q) = match lay.qstrs {
        QstrRef::Table(off) => {
            let table = mem.u32(constants + off);
            let at = |i: u32| table.and_then(|t| mem.u16(t as u64 + 2 * i as u64));
            (at(info.name).map(u32::from), at(0).map(u32::from))
        }
        QstrRef::Direct(off) => (Some(info.name), mem.u32(constants + off)),
    };
    let name = |q: Option<u32>, c: &mut QstrCache| {
        q.and_then(|q| c.get(mem, lay, q))
            .unwrap_or_else(|| "?".into())
    };
    PyFrame {
        function: name(name_q, qstrs),
        file: name(file_q, qstrs),
        line: info.line,
    }
}

/// Qstrs already resolved in one walk.
#[derive(Default)]
struct QstrCache(HashMap<u32, Option<String>>);

impl QstrCache {
    fn get(&mut self, mem: &Memory, lay: &Layout, q: u32) -> Option<String> {
        self.0.entry(q).or_insert_with(|| qstr(mem, lay, q)).clone()
    }
}

/// The text of qstr `q`, as py/qstr.c's `find_qstr`: from the newest pool back to the pool whose
/// first qstr is at or below `q`.
pub fn qstr(mem: &Memory, lay: &Layout, q: u32) -> Option<String> {
    let mut pool = lay
        .last_pool
        .and_then(|a| mem.u32(a))
        .filter(|&p| p != 0)
        .map(u64::from)
        .or(lay.const_pool)?;
    for _ in 0..MAX_POOLS {
        // total_prev_len is the low 31 bits of its word (is_sorted is the top bit).
        let first = mem.u32(pool + lay.pool_total_prev_len)? & 0x7fff_ffff;
        if q >= first {
            let i = q - first;
            if i >= mem.u32(pool + lay.pool_len)? {
                return None;
            }
            let s = mem.u32(pool + lay.pool_qstrs + 4 * i as u64)?;
            return mem.c_str(s as u64);
        }
        pool = mem.u32(pool + lay.pool_prev).filter(|&p| p != 0)? as u64;
    }
    None
}

/// A bytecode function's prelude, as `MP_BC_PRELUDE_SIG_DECODE` and `MP_BC_PRELUDE_SIZE_DECODE`
/// read it (py/bc.h); offsets are from the start of the bytecode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prelude {
    pub n_state: usize,
    pub n_pos_args: usize,
    pub n_kwonly_args: usize,
    /// Size of the info section (the name, the argument names, the line-number table).
    pub n_info: usize,
    pub n_cell: usize,
    /// Where the info section starts (after the two headers).
    pub info_start: usize,
}

/// What a frame's info section says at an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's name: a qstr, or an index into the qstr table.
    pub name: u32,
    pub line: Option<u32>,
}

impl Prelude {
    /// Decodes the two headers at the start of `code`; `None` when they run past its end.
    pub fn decode(code: &[u8]) -> Option<Prelude> {
        let mut p = 0;
        let mut next = || {
            let b = *code.get(p)?;
            p += 1;
            Some(b as usize)
        };
        // Signature: xSSSSEAA, then while x: xFSSKAED.
        let mut z = next()?;
        let mut s = (z >> 3) & 0xf;
        let mut a = z & 0x3;
        let mut k = 0;
        let mut n = 0;
        while z & 0x80 != 0 {
            if n > 8 {
                return None;
            }
            z = next()?;
            s |= (z & 0x30) << (2 * n);
            a |= (z & 0x4) << n;
            k |= ((z & 0x08) >> 3) << n;
            n += 1;
        }
        // Sizes: xIIIIIIC while x.
        let (mut info, mut cell) = (0usize, 0usize);
        for n in 0.. {
            if n > 4 {
                return None;
            }
            let z = next()?;
            cell |= (z & 1) << n;
            info |= ((z & 0x7e) >> 1) << (6 * n);
            if z & 0x80 == 0 {
                break;
            }
        }
        Some(Prelude {
            n_state: s + 1,
            n_pos_args: a,
            n_kwonly_args: k,
            n_info: info,
            n_cell: cell,
            info_start: p,
        })
    }

    /// The name and the source line at `ip_offset` (the op's offset from the start of `code`),
    /// as py/vm.c finds them for a traceback. `code` holds at least the info section.
    pub fn frame_info(&self, code: &[u8], ip_offset: Option<usize>) -> Option<FrameInfo> {
        let info_top = self.info_start + self.n_info;
        let info = code.get(self.info_start..info_top)?;
        let mut p = 0;
        let name = decode_uint(info, &mut p)?;
        // The name, then one qstr per positional and keyword-only argument.
        for _ in 0..self.n_pos_args + self.n_kwonly_args {
            decode_uint(info, &mut p)?;
        }
        let bytecode_start = info_top + self.n_cell;
        let line = ip_offset
            .and_then(|ip| ip.checked_sub(bytecode_start))
            .map(|bc| source_line(&info[p..], bc));
        Some(FrameInfo { name, line })
    }
}

/// `mp_decode_uint`: seven bits a byte, most significant first, the top bit saying more follow.
pub fn decode_uint(b: &[u8], p: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for _ in 0..5 {
        let x = *b.get(*p)?;
        *p += 1;
        v = (v << 7) | (x & 0x7f) as u32;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `mp_bytecode_get_source_line`: the line of the op `bc_offset` bytes into the code, from the
/// line-number table (each entry adds B bytes of code and L lines: `0LLBBBBB`, or `1LLLBBBB
/// LLLLLLLL`).
pub fn source_line(table: &[u8], mut bc_offset: usize) -> u32 {
    let mut line: u32 = 1;
    let mut p = 0;
    while p < table.len() {
        let c = table[p] as usize;
        let (b, l) = if c & 0x80 == 0 {
            p += 1;
            (c & 0x1f, c >> 5)
        } else {
            let Some(&lo) = table.get(p + 1) else { break };
            p += 2;
            (c & 0xf, ((c << 4) & 0x700) | lo as usize)
        };
        if bc_offset >= b {
            bc_offset -= b;
            line += l as u32;
        } else {
            break;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::bundle::Block;

    #[test]
    fn uint_varints_at_every_length() {
        for (bytes, want) in [
            (&[0x05][..], 5u32),
            (&[0x7f], 127),
            (&[0x81, 0x00], 128),
            (&[0x82, 0x2c], 300),
            (&[0x81, 0x80, 0x00], 1 << 14),
        ] {
            let mut p = 0;
            assert_eq!(decode_uint(bytes, &mut p), Some(want), "{bytes:x?}");
            assert_eq!(p, bytes.len());
            // Cut anywhere before the end: no value.
            for cut in 0..bytes.len() {
                let mut p = 0;
                assert_eq!(decode_uint(&bytes[..cut], &mut p), None);
            }
        }
        let mut p = 0;
        assert_eq!(decode_uint(&[0xff; 8], &mut p), None, "too long");
    }

    #[test]
    fn prelude_headers_one_byte_and_extended() {
        // xSSSSEAA: S=3 (n_state 4), E=0, A=1; sizes xIIIIIIC: n_info 5, n_cell 0.
        let p = Prelude::decode(&[(3 << 3) | 1, 5 << 1]).expect("prelude");
        assert_eq!(
            p,
            Prelude {
                n_state: 4,
                n_pos_args: 1,
                n_kwonly_args: 0,
                n_info: 5,
                n_cell: 0,
                info_start: 2
            }
        );
        // Extended: a second signature byte adds S bits 4-5 (0x10: S += 16), A bit 2 (+4) and
        // K (1); a two-byte size: n_info = 1 + (2 << 6) = 129, n_cell = 1 (bit 0 of the first).
        let code = [
            0x80 | (1 << 3) | 2,
            0x10 | 0x04 | 0x08,
            0x80 | (1 << 1) | 1,
            2 << 1,
        ];
        let p = Prelude::decode(&code).expect("prelude");
        assert_eq!(p.n_state, 1 + (1 | 16));
        assert_eq!(p.n_pos_args, 2 | 4);
        assert_eq!(p.n_kwonly_args, 1);
        assert_eq!((p.n_info, p.n_cell, p.info_start), (129, 1, 4));
        for cut in 0..code.len() {
            assert_eq!(Prelude::decode(&code[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn line_table_short_and_long_entries() {
        // Each entry: after B more bytes of code, L more lines. 2 bytes (+0), 3 bytes (+1),
        // 4 bytes (+300, the long form): ops 0-4 are line 1, 5-8 line 2, from 9 line 302.
        let long = 0x80 | ((300 >> 8) << 4) as u8 | 4;
        let table = [2, (1 << 5) | 3, long, (300 & 0xff) as u8];
        for (bc, want) in [(0, 1), (2, 1), (4, 1), (5, 2), (8, 2), (9, 302), (100, 302)] {
            assert_eq!(source_line(&table, bc), want, "offset {bc}");
        }
        // A long entry cut in half ends the table.
        assert_eq!(source_line(&table[..3], 100), 2);
        assert_eq!(source_line(&[], 7), 1);
    }

    /// A function `spin(n)` compiled from a file: prelude, info (name qstr index 1, one argument
    /// name, the line table: no code and +2 lines, then 4 bytes and +2 lines), then 10 bytes of
    /// ops; line 3 covers ops 0-3, line 5 ops 4-9.
    fn spin_code() -> Vec<u8> {
        let info = [1u8, 2, 2 << 5, (2 << 5) | 4];
        let mut code = vec![(3 << 3) | 1, (info.len() as u8) << 1];
        code.extend(info);
        code.extend([0u8; 10]);
        code
    }

    #[test]
    fn frame_info_names_the_function_and_the_line_of_an_op() {
        let code = spin_code();
        let p = Prelude::decode(&code).expect("prelude");
        let ops = p.info_start + p.n_info;
        for (op, want) in [(0, 3), (3, 3), (4, 5), (9, 5)] {
            let i = p.frame_info(&code, Some(ops + op)).expect("info");
            assert_eq!(
                i,
                FrameInfo {
                    name: 1,
                    line: Some(want)
                },
                "op {op}"
            );
        }
        // An ip before the ops (damaged) has no line; a table cut short has no info.
        assert_eq!(p.frame_info(&code, Some(1)).expect("info").line, None);
        assert_eq!(p.frame_info(&code[..4], Some(ops)), None);
    }

    /// Bytecode as the port compiles it: `read_bad` and `spin` of the e2e test's `fault.py`
    /// (tests/tests/e2e/crash.rs), read from a capture of the an385 port faulting in
    /// `read_bad` (the code at `fun_bc->bytecode`, and each frame's `code_state->ip` offset).
    #[test]
    fn frames_of_code_the_real_firmware_compiled() {
        // def read_bad():                      (line 2)
        //     return machine.mem32[0xF0000000] (line 3; the fault at LOAD_SUBSCR, 0x55)
        let read_bad = [
            0x08, 0x04, 0x05, 0x40, 0x12, 0x03, 0x13, 0x06, 0x23, 0x00, 0x55, 0x63,
        ];
        let p = Prelude::decode(&read_bad).expect("prelude");
        assert_eq!((p.n_state, p.n_pos_args, p.n_info, p.n_cell), (2, 0, 2, 0));
        assert_eq!(read_bad[10], 0x55, "the op at ip");
        let i = p.frame_info(&read_bad, Some(10)).expect("info");
        assert_eq!(
            i,
            FrameInfo {
                name: 5,
                line: Some(3)
            }
        );
        // def spin():            (line 4)
        //     time.sleep_ms(200) (line 5)
        //     read_bad()         (line 6; the call at ip offset 18)
        let spin = [
            0x10, 0x08, 0x07, 0x60, 0x20, 0x2a, 0x12, 0x04, 0x14, 0x08, 0x22, 0x81, 0x48, 0x36,
            0x01, 0x59, 0x12, 0x05, 0x34, 0x00, 0x59, 0x51, 0x63,
        ];
        let p = Prelude::decode(&spin).expect("prelude");
        assert_eq!((p.n_info, p.info_start), (4, 2));
        assert_eq!(spin[18], 0x34, "CALL_FUNCTION at ip");
        let at = |ip| p.frame_info(&spin, Some(ip)).expect("info").line;
        assert_eq!(at(18), Some(6));
        assert_eq!(at(6), Some(5), "the first op");
        assert_eq!(at(15), Some(5), "the last op of line 5");
        assert_eq!(at(16), Some(6), "the first op of line 6");
    }

    /// An ELF assembled from `asm` (`None` without the cross compiler, outside CI).
    fn assemble(asm: &str) -> Option<Elf> {
        let dir = tempfile::tempdir().expect("tempdir");
        let elf = dir.path().join("t.elf");
        if !crate::crash::elf::tests::assemble_to(dir.path(), asm, &[], &elf) {
            return None;
        }
        Some(Elf::load(&elf).expect("load"))
    }

    #[test]
    fn support_says_what_the_firmware_exposes() {
        const HEAD: &str = ".syntax unified\n.thumb\n.cfi_sections .debug_frame\n.text\n\
            .global _start\n.type _start, %function\n_start:\n.cfi_startproc\nb _start\n\
            .cfi_endproc\n.size _start, . - _start\n";
        const VM: &str = ".global mp_execute_bytecode\n.type mp_execute_bytecode, %function\n\
            mp_execute_bytecode:\n.cfi_startproc\nbx lr\n.cfi_endproc\n\
            .size mp_execute_bytecode, . - mp_execute_bytecode\n";
        const SLOT: &str = ".section .rodata\n.global mpfr_pyframes_tls_index\n\
            .type mpfr_pyframes_tls_index, %object\nmpfr_pyframes_tls_index:\n.word 1\n\
            .size mpfr_pyframes_tls_index, 4\n";
        let Some(plain) = assemble(HEAD) else { return };
        assert_eq!(support(&plain), Support::NotPython);
        let no_chain = assemble(&format!("{HEAD}{VM}")).expect("elf");
        assert_eq!(support(&no_chain), Support::Absent(NOT_EXPOSED.into()));
        // The chain's symbol without the structs' DWARF (assembly has none): said, not guessed.
        let no_dwarf = assemble(&format!("{HEAD}{VM}{SLOT}")).expect("elf");
        match support(&no_dwarf) {
            Support::Absent(why) => assert!(why.contains("DWARF"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// Memory of a fake target: a TCB whose slot holds a chain of two records, for `spin`
    /// (faulting at line 5) called from `<module>` (at line 3), with a qstr table and two qstr
    /// pools (the ROM one and one grown at run time).
    struct Fake {
        ram: Vec<u8>,
        lay: Layout,
    }

    const BASE: u64 = 0x2000_0000;
    const TCB: u64 = BASE + 0x100;

    impl Fake {
        fn put(&mut self, a: u64, v: u32) {
            let o = (a - BASE) as usize;
            self.ram[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn put_bytes(&mut self, a: u64, b: &[u8]) {
            let o = (a - BASE) as usize;
            self.ram[o..o + b.len()].copy_from_slice(b);
        }
        fn bundle(&self) -> Bundle {
            let mut b = crate::crash::bundle::tests::sample();
            b.blocks = vec![Block {
                name: "ram".into(),
                start: BASE,
                data: self.ram.clone(),
            }];
            b
        }

        fn new() -> Fake {
            let lay = Layout {
                tcb_head: 0x44,
                tcb_state: 0x40,
                rec_code_state: 0,
                rec_prev: 4,
                cs_fun_bc: 0,
                cs_ip: 4,
                fun_context: 4,
                fun_bytecode: 12,
                ctx_constants: 8,
                qstrs: QstrRef::Table(0),
                pool_prev: 0,
                pool_total_prev_len: 4,
                pool_len: 12,
                pool_qstrs: 24,
                last_pool: Some(BASE + 0x10),
                const_pool: None,
            };
            let mut f = Fake {
                ram: vec![0; 0x2000],
                lay,
            };
            // qstrs: ROM pool 0x600 holds 0..3 ("", "<module>", "spin"); the RAM pool 0x700
            // holds 3..5 ("fault.py", "main").
            let rom = BASE + 0x600;
            let ram_pool = BASE + 0x700;
            f.put(BASE + 0x10, ram_pool as u32);
            f.put(rom, 0);
            f.put(rom + 4, 0x8000_0000); // is_sorted set, total_prev_len 0
            f.put(rom + 12, 3);
            f.put(ram_pool, rom as u32);
            f.put(ram_pool + 4, 3);
            f.put(ram_pool + 12, 2);
            let strs = BASE + 0x800;
            let mut at = strs;
            for (pool, i, s) in [
                (rom, 0, ""),
                (rom, 1, "<module>"),
                (rom, 2, "spin"),
                (ram_pool, 0, "fault.py"),
                (ram_pool, 1, "main"),
            ] {
                f.put(pool + 24 + 4 * i, at as u32);
                f.put_bytes(at, s.as_bytes());
                at += s.len() as u64 + 1;
            }
            // The module's qstr table: [file, "spin", "<module>"] = [3, 2, 1].
            let table = BASE + 0x900;
            f.put_bytes(table, &[3, 0, 2, 0, 1, 0]);
            let context = BASE + 0x980;
            f.put(context + 8, table as u32);
            // Two functions: spin (name index 1) and the module (name index 2).
            let spin = BASE + 0xa00;
            let module = BASE + 0xb00;
            let mut mcode = spin_code();
            mcode[2] = 2; // the module's name is qstr table entry 2
            f.put_bytes(spin, &spin_code());
            f.put_bytes(module, &mcode);
            let ops = 2 + 4;
            for (fun, code) in [(BASE + 0xc00, spin), (BASE + 0xc40, module)] {
                f.put(fun + 4, context as u32);
                f.put(fun + 12, code as u32);
            }
            // code states: spin at op 5 (line 5), the module at op 1 (line 3).
            f.put(BASE + 0xd00, (BASE + 0xc00) as u32);
            f.put(BASE + 0xd04, (spin + ops + 5) as u32);
            f.put(BASE + 0xd40, (BASE + 0xc40) as u32);
            f.put(BASE + 0xd44, (module + ops + 1) as u32);
            // Records on the stack: innermost lower.
            let inner = BASE + 0x1800;
            let outer = BASE + 0x1900;
            f.put(inner, (BASE + 0xd00) as u32);
            f.put(inner + 4, outer as u32);
            f.put(outer, (BASE + 0xd40) as u32);
            f.put(outer + 4, 0);
            f.put(TCB + 0x40, 0x1234);
            f.put(TCB + 0x44, inner as u32);
            f
        }
    }

    fn frames(c: &Chain) -> Vec<String> {
        c.frames.iter().map(PyFrame::traceback_line).collect()
    }

    #[test]
    fn the_chain_of_a_task_innermost_first() {
        let f = Fake::new();
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        assert!(is_python_thread(&mem, &f.lay, TCB as u32));
        let c = chain(&mem, &f.lay, TCB as u32);
        assert_eq!(c.cut, None);
        assert_eq!(
            frames(&c),
            [
                "File \"fault.py\", line 5, in spin",
                "File \"fault.py\", line 3, in <module>"
            ]
        );
        assert_eq!(qstr(&mem, &f.lay, 4).as_deref(), Some("main"));
        assert_eq!(qstr(&mem, &f.lay, 2).as_deref(), Some("spin"));
        assert_eq!(qstr(&mem, &f.lay, 5), None, "past the newest pool");
    }

    #[test]
    fn an_empty_chain_and_a_task_outside_the_capture() {
        let mut f = Fake::new();
        f.put(TCB + 0x44, 0);
        f.put(TCB + 0x40, 0);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        assert!(!is_python_thread(&mem, &f.lay, TCB as u32));
        assert_eq!(chain(&mem, &f.lay, TCB as u32), Chain::default());
        let gone = chain(&mem, &f.lay, 0x1000);
        assert!(gone.frames.is_empty());
        assert!(gone.cut.unwrap().contains("not in the capture"));
    }

    #[test]
    fn damaged_chains_end_the_walk() {
        // A record pointing at itself (or down the stack) would loop.
        let mut f = Fake::new();
        f.put(BASE + 0x1900 + 4, (BASE + 0x1800) as u32);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        let c = chain(&mem, &f.lay, TCB as u32);
        assert_eq!(c.frames.len(), 2);
        assert!(c.cut.unwrap().contains("damaged"));
        // A record outside memory.
        let mut f = Fake::new();
        f.put(BASE + 0x1804, 0x9000_0000);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        let c = chain(&mem, &f.lay, TCB as u32);
        assert_eq!(c.frames.len(), 1);
        assert!(c.cut.unwrap().contains("not in the capture"));
        // Garbage code state: the frame is kept, unnamed.
        let mut f = Fake::new();
        f.put(BASE + 0xd00, 0x9000_0000);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        let c = chain(&mem, &f.lay, TCB as u32);
        assert_eq!(frames(&c)[0], "File \"?\", line ?, in ?");
        assert_eq!(c.frames.len(), 2);
        // A pool chain that loops ends after MAX_POOLS pools.
        let mut f = Fake::new();
        let rom = BASE + 0x600;
        f.put(rom + 4, 10);
        f.put(rom, rom as u32);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        assert_eq!(qstr(&mem, &f.lay, 1), None);
    }

    #[test]
    fn a_deep_chain_is_cut() {
        let mut f = Fake::new();
        // MAX_FRAMES + 10 records climbing the stack, each the spin frame.
        let start = BASE + 0x1000;
        let n = MAX_FRAMES as u64 + 10;
        f.ram.resize(0x1000 + 8 * n as usize + 0x100, 0);
        for i in 0..n {
            let r = start + 8 * i;
            f.put(r, (BASE + 0xd00) as u32);
            f.put(r + 4, if i + 1 == n { 0 } else { (r + 8) as u32 });
        }
        f.put(TCB + 0x44, start as u32);
        let b = f.bundle();
        let mem = Memory {
            bundle: &b,
            elf: None,
        };
        let c = chain(&mem, &f.lay, TCB as u32);
        assert_eq!(c.frames.len(), MAX_FRAMES);
        assert!(c.cut.unwrap().contains("cut"));
    }
}
