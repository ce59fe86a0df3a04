//! FreeRTOS tasks in captured memory: the kernel's lists walked from the ELF's symbols, and
//! each switched-out task's saved context as the port's PendSV left it.

use serde::Serialize;

use super::bundle::Bundle;
use super::elf::Elf;

/// Most items mpfr follows in one list (a corrupted list must not loop forever).
const MAX_ITEMS: usize = 512;

/// A task found in the kernel's lists.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub tcb: u32,
    pub name: String,
    pub priority: u32,
    /// `running`, `ready`, `blocked`, `suspended`, `pending ready`, `deleted`.
    pub state: String,
    /// The core it runs on (running tasks only).
    pub core: Option<u32>,
    pub top_of_stack: u32,
    pub stack_base: u32,
}

/// What the kernel's variables say: every task, and the task current on each core.
#[derive(Debug, Clone, Default)]
pub struct Kernel {
    pub tasks: Vec<Task>,
    pub current: Vec<Option<u32>>,
}

fn list_items(b: &Bundle, list: u64) -> Vec<u32> {
    // List_t: uxNumberOfItems, pxIndex, xListEnd { xItemValue, pxNext, pxPrevious };
    // ListItem_t: xItemValue, pxNext, pxPrevious, pvOwner, pxContainer.
    let end = list + 8;
    let mut out = Vec::new();
    let mut item = b.u32_at(end + 4);
    while let Some(i) = item {
        if i as u64 == end || out.len() >= MAX_ITEMS || i == 0 {
            break;
        }
        match b.u32_at(i as u64 + 12) {
            Some(owner) => out.push(owner),
            None => break,
        }
        item = b.u32_at(i as u64 + 4);
    }
    out
}

fn name_at(b: &Bundle, addr: u64) -> String {
    let bytes = b.mem(addr, 16).unwrap_or(&[]);
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Walks the kernel's task lists. `None` when the ELF has no FreeRTOS kernel symbols.
pub fn kernel(b: &Bundle, elf: &Elf) -> Option<Kernel> {
    let ready = elf.symbol("pxReadyTasksLists")?;
    let off = |m: &str| elf.tcb.get(m).copied();
    let name_off = off("pcTaskName")?;
    let mut lists: Vec<(u64, &str)> = (0..ready.size / 20)
        .map(|i| (ready.addr + 20 * i, "ready"))
        .collect();
    for (sym, state) in [
        ("xDelayedTaskList1", "blocked"),
        ("xDelayedTaskList2", "blocked"),
        ("xPendingReadyList", "pending ready"),
        ("xSuspendedTaskList", "suspended"),
        ("xTasksWaitingTermination", "deleted"),
    ] {
        if let Some(s) = elf.symbol(sym) {
            lists.push((s.addr, state));
        }
    }
    let current: Vec<Option<u32>> = match elf.symbol("pxCurrentTCBs") {
        Some(s) => (0..s.size / 4)
            .map(|i| b.u32_at(s.addr + 4 * i).filter(|&t| t != 0))
            .collect(),
        None => vec![
            elf.symbol("pxCurrentTCB")
                .and_then(|s| b.u32_at(s.addr))
                .filter(|&t| t != 0),
        ],
    };
    let task = |tcb: u32, state: &str, core: Option<u32>| Task {
        tcb,
        name: name_at(b, tcb as u64 + name_off),
        priority: off("uxPriority")
            .and_then(|o| b.u32_at(tcb as u64 + o))
            .unwrap_or(0),
        state: if core.is_some() { "running" } else { state }.to_string(),
        core,
        top_of_stack: b.u32_at(tcb as u64).unwrap_or(0),
        stack_base: off("pxStack")
            .and_then(|o| b.u32_at(tcb as u64 + o))
            .unwrap_or(0),
    };
    let mut tasks: Vec<Task> = Vec::new();
    for (list, state) in lists {
        for tcb in list_items(b, list) {
            if !tasks.iter().any(|t| t.tcb == tcb) {
                let core = current.iter().position(|c| *c == Some(tcb));
                tasks.push(task(tcb, state, core.map(|c| c as u32)));
            }
        }
    }
    // A running task may be in no list the walk reads (SMP: taken out while it runs).
    for (c, tcb) in current.iter().enumerate() {
        if let Some(tcb) = *tcb
            && !tasks.iter().any(|t| t.tcb == tcb)
        {
            tasks.push(task(tcb, "running", Some(c as u32)));
        }
    }
    Some(Kernel { tasks, current })
}

/// The registers a switched-out task resumes with, from its saved context at `top`.
///
/// The Cortex-M3 port saves r4-r11 below the hardware frame; mpfr's Cortex-M33 SMP port saves
/// r4-r11 and EXC_RETURN, then s16-s31 when the task used the FPU (EXC_RETURN bit 4 clear).
pub fn saved_registers(b: &Bundle, top: u32, cpu: &str) -> Option<[Option<u32>; 16]> {
    let w = |i: u64| b.u32_at(top as u64 + 4 * i);
    let mut regs = [None; 16];
    for (i, r) in (4..12).enumerate() {
        regs[r] = w(i as u64);
    }
    let (frame_at, exc_return) = if cpu == "cortex-m3" {
        (top as u64 + 32, 0xffff_fffd)
    } else {
        let exc = w(8)?;
        let fp = if exc & 0x10 == 0 { 16 * 4 } else { 0 };
        (top as u64 + 36 + fp, exc)
    };
    let mem = |a: u64| b.u32_at(a);
    super::elf::stacked_frame(frame_at, exc_return, &mem, &regs)
}
