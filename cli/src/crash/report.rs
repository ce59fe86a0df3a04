//! `mpfr crash show`: a bundle and its ELF turned into what happened — which core faulted and
//! why, the faulting instruction, a backtrace for every core and every FreeRTOS task, and the
//! Python traceback of every task that is a MicroPython thread.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Error;
use super::bundle::{Bundle, CoreState};
use super::elf::{Elf, Frame};
use super::fault::{self, Cause};
use super::python::{self, PyFrame};
use super::rtos;

/// The loops a firmware parks a faulted core in, waiting for a debugger: the reference
/// firmware's and the MicroPython port's.
pub const PARKING_LOOPS: &[&str] = &["ref_halted", "port_halted"];

/// One core's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CoreReport {
    pub index: u32,
    /// `thread mode`, `HardFault`, `PendSV`, ...
    pub mode: String,
    pub faulted: bool,
    /// The core waits in the firmware's fault parking loop.
    pub parked: bool,
    /// Which one ([`PARKING_LOOPS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_in: Option<String>,
    pub pc: u32,
    pub causes: Vec<Cause>,
    pub fault_regs: fault::FaultRegs,
    /// The instruction the fault hit (the frame the exception interrupted).
    pub faulting: Option<Frame>,
    /// The task current on this core.
    pub task: Option<String>,
    /// The fatal hook the core stopped in (`vApplicationStackOverflowHook`, an assert), if any.
    pub stopped_in: Option<Frame>,
    pub frames: Vec<Frame>,
}

/// One task's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    #[serde(flatten)]
    pub task: rtos::Task,
    pub frames: Vec<Frame>,
    /// The task runs Python (its thread state slot is set).
    pub python_thread: bool,
    /// Its Python frames, innermost first (CPython prints them the other way round).
    pub python: Vec<PyFrame>,
    /// Why the Python frames stop early, when they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_cut: Option<String>,
}

/// Everything `mpfr crash show` says.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub board: String,
    pub elf: PathBuf,
    /// False when the ELF is not the one the bundle was captured with (names may be wrong).
    pub elf_matches: Option<bool>,
    pub fingerprint: Option<String>,
    pub captured_unix: u64,
    /// The core that faulted first in the list (`None`: no core shows a fault).
    pub faulted_core: Option<u32>,
    pub cores: Vec<CoreReport>,
    pub tasks: Vec<TaskReport>,
    /// The console's last output, when the bundle has it.
    pub console_tail: Option<String>,
    pub notes: Vec<String>,
}

/// Functions firmware stops in for good after a fatal error other than a fault: FreeRTOS's
/// hooks, newlib's assert and abort, and the reference firmware's own.
pub const FATAL_HOOKS: &[&str] = &[
    "vApplicationStackOverflowHook",
    "vApplicationMallocFailedHook",
    "vAssertCalled",
    "ref_assert_failed",
    "__assert_func",
    "abort",
];

/// Explains `bundle` with the ELF at `elf` (the bundle's own when `None`).
pub fn analyse(bundle: &Bundle, elf: Option<&Path>) -> Result<Report, Error> {
    let path = match elf.map(Path::to_path_buf).or_else(|| bundle.elf.clone()) {
        Some(p) => p,
        None => {
            return Err(crate::util::usage::Usage::new(
                "the bundle names no ELF",
                "give the firmware's ELF with --elf",
            )
            .into());
        }
    };
    let bytes = std::fs::read(&path).map_err(|e| Error::Elf {
        path: path.clone(),
        why: e.to_string(),
    })?;
    let elf_matches = bundle.elf_sha256.as_ref().map(|want| {
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        &got == want
    });
    let image = Elf::parse(&bytes).map_err(|why| Error::Elf {
        path: path.clone(),
        why,
    })?;
    let mut notes = bundle.notes.clone();
    if elf_matches == Some(false) {
        notes.push(format!(
            "{} is not the ELF the bundle was captured with: names and lines may be wrong",
            path.display()
        ));
    }
    let kernel = rtos::kernel(bundle, &image);
    if kernel.is_none() {
        notes.push("no FreeRTOS kernel symbols in the ELF: no task list".into());
    }
    let kernel = kernel.unwrap_or_default();
    let mem = |a: u64| bundle.u32_at(a);
    let py = python::support(&image);
    if let python::Support::Absent(why) = &py {
        notes.push(why.clone());
    }
    let py_mem = python::Memory {
        bundle,
        elf: Some(&image),
    };

    let mut cores = Vec::new();
    for c in &bundle.cores {
        let current = kernel.current.get(c.index as usize).copied().flatten();
        let task = current.and_then(|t| kernel.tasks.iter().find(|k| k.tcb == t));
        let psp = |at_entry: &[Option<u32>; 16]| -> Option<u32> {
            c.psp.or_else(|| {
                let t = task?;
                find_process_frame(bundle, &image, t.stack_base, at_entry)
            })
        };
        let frames = image.unwind(regs_of(c), &mem, &psp);
        let exception = c.exception();
        let faulted = fault::is_fault_exception(exception) || c.fault.any();
        let parked_in = image
            .function_at(c.pc() as u64)
            .filter(|s| PARKING_LOOPS.contains(&s.name.as_str()))
            .map(|s| s.name.clone());
        cores.push(CoreReport {
            index: c.index,
            mode: fault::exception_name(exception),
            faulted,
            parked: parked_in.is_some(),
            parked_in,
            pc: c.pc(),
            causes: c.fault.causes(),
            fault_regs: c.fault,
            faulting: faulted
                .then(|| frames.iter().find(|f| f.exception).cloned())
                .flatten(),
            task: task.map(|t| t.name.clone()),
            stopped_in: frames
                .iter()
                .find(|f| {
                    f.function
                        .as_deref()
                        .is_some_and(|n| FATAL_HOOKS.contains(&n))
                })
                .cloned(),
            frames,
        });
    }
    let mut tasks = Vec::new();
    for t in &kernel.tasks {
        let saved = || match rtos::saved_registers(bundle, t.top_of_stack, &bundle.cpu) {
            Some(regs) => image.unwind(regs, &mem, &|_| None),
            None => Vec::new(),
        };
        let mut frames = match t.core.and_then(|c| cores.iter().find(|r| r.index == c)) {
            // A running task's context is in its core's registers: the frames of the thread
            // code (after the last exception entry, or all of them in thread mode).
            Some(core) => match core.frames.iter().rposition(|f| f.exception) {
                Some(mut i) => {
                    // Back to the innermost of the functions inlined at that PC.
                    while i > 0
                        && core.frames[i - 1].exception
                        && core.frames[i - 1].pc == core.frames[i].pc
                    {
                        i -= 1;
                    }
                    core.frames[i..].to_vec()
                }
                None if core.mode == "thread mode" => core.frames.clone(),
                None => Vec::new(),
            },
            None => saved(),
        };
        // A core halted while switching this task out (PendSV, a stack-overflow hook) has
        // already saved its context: that is where the task stands.
        if frames.is_empty() && t.core.is_some() {
            frames = saved();
        }
        let (python_thread, chain) = match &py {
            python::Support::Present(lay) => (
                python::is_python_thread(&py_mem, lay, t.tcb),
                python::chain(&py_mem, lay, t.tcb),
            ),
            _ => (false, python::Chain::default()),
        };
        tasks.push(TaskReport {
            task: t.clone(),
            frames,
            python_thread,
            python: chain.frames,
            python_cut: chain.cut,
        });
    }
    Ok(Report {
        board: bundle.board.clone(),
        elf: path,
        elf_matches,
        fingerprint: bundle.fingerprint.clone(),
        captured_unix: bundle.captured_unix,
        faulted_core: cores.iter().find(|c| c.faulted).map(|c| c.index),
        cores,
        tasks,
        console_tail: bundle.console_tail.clone(),
        notes,
    })
}

fn regs_of(c: &CoreState) -> [Option<u32>; 16] {
    let mut r = [None; 16];
    for (i, v) in c.regs.iter().take(16).enumerate() {
        r[i] = Some(*v);
    }
    r
}

/// Where the hardware frame of an exception taken in thread mode sits on the task's stack,
/// when the debugger could not read PSP (QEMU 7's gdbstub): the lowest word at or above the
/// stack base that holds a plausible frame (a thread-mode xPSR with the Thumb bit, a PC in the
/// code, not the stack fill pattern) that the unwinder can name. Frames left below the live part
/// of the stack by earlier, deeper calls could be mistaken for it; docs/crash.md says so.
fn find_process_frame(
    b: &Bundle,
    elf: &Elf,
    stack_base: u32,
    at_entry: &[Option<u32>; 16],
) -> Option<u32> {
    let mem = |a: u64| b.u32_at(a);
    let mut a = stack_base as u64 & !3;
    let limit = a + 64 * 1024;
    while a < limit {
        let xpsr = mem(a + 28)?;
        let pc = mem(a + 24)?;
        if xpsr & (1 << 24) != 0
            && xpsr & 0x1ff == 0
            && pc & 1 == 0
            && elf.in_text(pc as u64)
            && mem(a) != Some(0xa5a5_a5a5)
            && let Some(regs) = super::elf::stacked_frame(a, 0xffff_fffd, &mem, at_entry)
            && !elf.unwind(regs, &mem, &|_| None).is_empty()
        {
            return Some(a as u32);
        }
        a += 4;
    }
    None
}

fn frame_line(f: &Frame) -> String {
    format!(
        "{:#010x} {} ({}){}",
        f.pc,
        f.function.as_deref().unwrap_or("??"),
        f.location(),
        match (f.exception, f.inlined) {
            (true, _) => "  <- interrupted here",
            (false, true) => "  (inlined)",
            _ => "",
        }
    )
}

/// A task's Python frames as CPython prints a traceback: the outermost call first.
fn write_traceback(f: &mut fmt::Formatter<'_>, t: &TaskReport, indent: &str) -> fmt::Result {
    writeln!(f, "{indent}Traceback (most recent call last):")?;
    if let Some(why) = &t.python_cut {
        writeln!(f, "{indent}  ({why})")?;
    }
    for fr in t.python.iter().rev() {
        writeln!(f, "{indent}  {}", fr.traceback_line())?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "crash on {} (ELF {})", self.board, self.elf.display())?;
        if let Some(fp) = &self.fingerprint {
            writeln!(f, "config fingerprint {fp}")?;
        }
        match self
            .faulted_core
            .and_then(|i| self.cores.iter().find(|c| c.index == i))
        {
            Some(c) => {
                writeln!(f, "\ncore {} faulted: {}", c.index, c.mode)?;
                for cause in &c.causes {
                    writeln!(f, "  {:<11} {}", cause.bit, cause.text)?;
                }
                let r = &c.fault_regs;
                writeln!(
                    f,
                    "  CFSR={:#010x} HFSR={:#010x} MMFAR={:#010x} BFAR={:#010x}",
                    r.cfsr, r.hfsr, r.mmfar, r.bfar
                )?;
                if let Some(at) = &c.faulting {
                    writeln!(
                        f,
                        "  faulting instruction: {:#010x} in {} at {}",
                        at.pc,
                        at.function.as_deref().unwrap_or("??"),
                        at.location()
                    )?;
                }
                // The Python thread that ran on the faulted core.
                if let Some(t) = self
                    .tasks
                    .iter()
                    .find(|t| t.task.core == Some(c.index) && !t.python.is_empty())
                {
                    writeln!(f, "  in Python thread {}:", t.task.name)?;
                    write_traceback(f, t, "    ")?;
                }
            }
            None => match self.cores.iter().find(|c| c.stopped_in.is_some()) {
                Some(c) => {
                    let at = c.stopped_in.as_ref().expect("checked");
                    writeln!(
                        f,
                        "\ncore {} stopped in {} at {}{}",
                        c.index,
                        at.function.as_deref().unwrap_or("??"),
                        at.location(),
                        c.task
                            .as_ref()
                            .map(|t| format!(" (task {t})"))
                            .unwrap_or_default()
                    )?;
                }
                None => writeln!(f, "\nno core shows a fault")?,
            },
        }
        for c in &self.cores {
            writeln!(
                f,
                "\ncore {}: {}{}{}, pc {:#010x}",
                c.index,
                c.mode,
                c.parked_in
                    .as_ref()
                    .map(|l| format!(" (parked in {l})"))
                    .unwrap_or_default(),
                c.task
                    .as_ref()
                    .map(|t| format!(", task {t}"))
                    .unwrap_or_default(),
                c.pc
            )?;
            for (i, fr) in c.frames.iter().enumerate() {
                writeln!(f, "  #{i:<2} {}", frame_line(fr))?;
            }
        }
        writeln!(f, "\ntasks ({}):", self.tasks.len())?;
        for t in &self.tasks {
            writeln!(
                f,
                "\n  {} [{}{}] prio {} tcb {:#010x}",
                t.task.name,
                t.task.state,
                t.task
                    .core
                    .map(|c| format!(" on core {c}"))
                    .unwrap_or_default(),
                t.task.priority,
                t.task.tcb
            )?;
            if t.frames.is_empty() {
                writeln!(f, "    (no backtrace)")?;
            }
            for (i, fr) in t.frames.iter().enumerate() {
                writeln!(f, "    #{i:<2} {}", frame_line(fr))?;
            }
            if !t.python.is_empty() || t.python_cut.is_some() {
                write_traceback(f, t, "    ")?;
            } else if t.python_thread {
                writeln!(f, "    Python: no frame running")?;
            }
        }
        if let Some(t) = &self.console_tail {
            writeln!(f, "\nconsole (last lines):")?;
            let lines: Vec<&str> = t.lines().collect();
            for l in &lines[lines.len().saturating_sub(10)..] {
                writeln!(f, "  | {l}")?;
            }
        }
        for n in &self.notes {
            writeln!(f, "\nnote: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::bundle::Block;
    use crate::crash::fault::FaultRegs;

    /// A one-core bundle: the core in HardFault inside `handler`, entered from `leaf` (called
    /// by `middle`) with the hardware frame on the main stack, UNDEFINSTR escalated.
    fn bundle(s: &std::collections::HashMap<String, u32>, elf: &Path, sha: String) -> Bundle {
        let base = 0x2000_0000u64;
        let mut ram = vec![0u8; 0x4000];
        let mut put = |a: u64, v: u32| {
            let o = (a - base) as usize;
            ram[o..o + 4].copy_from_slice(&v.to_le_bytes());
        };
        let m = base + 0x2000;
        put(m, 0x4444_4444);
        put(m + 4, 0xffff_fff9);
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
            put(m + 8 + 4 * i as u64, *v);
        }
        put(m + 8 + 0x20 + 12, 0);
        let mut regs = vec![0u32; 16];
        regs[13] = m as u32;
        regs[15] = s["handler_pc"];
        Bundle {
            board: "qemu-mps2-an385".into(),
            cpu: "cortex-m3".into(),
            captured_unix: 0,
            elf: Some(elf.to_path_buf()),
            elf_sha256: Some(sha),
            build_id: None,
            fingerprint: None,
            transport: "test".into(),
            cores: vec![CoreState {
                index: 0,
                thread: "1".into(),
                regs,
                xpsr: 0x0100_0003,
                msp: None,
                psp: None,
                control: None,
                fault: FaultRegs {
                    cfsr: 1 << 16,
                    hfsr: 1 << 30,
                    mmfar: 0,
                    bfar: 0,
                },
            }],
            console_tail: None,
            notes: vec![],
            memory: vec![],
            blocks: vec![Block {
                name: "ram".into(),
                start: base,
                data: ram,
            }],
        }
    }

    #[test]
    fn the_faulted_core_its_cause_and_the_faulting_function() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some((_, s, path)) = crate::crash::elf::tests::build_in(dir.path()) else {
            return;
        };
        let sha: String = Sha256::digest(std::fs::read(&path).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let r = analyse(&bundle(&s, &path, sha), None).expect("analyse");
        assert_eq!(r.faulted_core, Some(0));
        assert_eq!(r.elf_matches, Some(true));
        let c = &r.cores[0];
        assert_eq!(c.mode, "HardFault");
        assert_eq!(c.causes[0].bit, "UNDEFINSTR");
        let at = c.faulting.as_ref().expect("a faulting frame");
        assert_eq!(at.function.as_deref(), Some("leaf"));
        assert_eq!(at.pc, s["leaf_pc"]);
        let names: Vec<_> = c
            .frames
            .iter()
            .filter_map(|f| f.function.as_deref())
            .collect();
        assert_eq!(names, ["handler", "leaf", "middle"]);
        assert!(r.tasks.is_empty());
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("no FreeRTOS kernel symbols"))
        );
        // Not MicroPython: nothing about Python frames.
        assert!(
            r.notes.iter().all(|n| !n.contains("Python")),
            "{:?}",
            r.notes
        );
        let text = r.to_string();
        assert!(text.contains("core 0 faulted: HardFault"), "{text}");
        assert!(text.contains("UNDEFINSTR  undefined instruction"), "{text}");
        assert!(text.contains(" in leaf at unwind.s:"), "{text}");
    }

    #[test]
    fn another_elf_than_the_captured_one_is_said() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some((_, s, path)) = crate::crash::elf::tests::build_in(dir.path()) else {
            return;
        };
        let r = analyse(&bundle(&s, &path, "00".repeat(32)), Some(&path)).expect("analyse");
        assert_eq!(r.elf_matches, Some(false));
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("is not the ELF the bundle was captured with")),
            "{:?}",
            r.notes
        );
        let missing = analyse(
            &bundle(&s, &dir.path().join("gone.elf"), String::new()),
            None,
        );
        assert!(
            matches!(missing, Err(Error::Elf { .. })),
            "{:?}",
            missing.err()
        );
    }
}
