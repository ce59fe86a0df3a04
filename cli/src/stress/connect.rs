//! Which executor a board gets: the reference firmware's console (native workloads) when the
//! running virtual board booted to it, else the MicroPython REPL session.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::board::{Board, LinkKind};
use crate::device::link::{Link, LinkError, Target};
use crate::device::vboard::{Console as VConsole, Instance};

use super::native::{Console, Port};
use super::session::SessionExecutor;
use super::{ConsoleKind, Executor, StressError};

/// Decides the console without talking to the board: a virtual board whose record says it
/// booted to the reference console runs native workloads; everything else is MicroPython.
pub fn console_kind(board: &Board, port: Option<&str>) -> ConsoleKind {
    let reference = port.is_none()
        && board.link.kind == LinkKind::Qemu
        && Instance::read_record(&board.name)
            .ok()
            .flatten()
            .is_some_and(|i| i.console == VConsole::Reference);
    if reference {
        ConsoleKind::Reference
    } else {
        ConsoleKind::MicroPython
    }
}

/// A [`Link`] as the console's byte stream.
struct LinkPort(Box<dyn Link>);

impl Port for LinkPort {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, String> {
        self.0.read(buf, timeout).map_err(|e| e.to_string())
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        self.0.write_all(data).map_err(|e| e.to_string())
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

fn unreachable(board: &Board, e: LinkError) -> StressError {
    StressError::Board {
        what: format!("cannot reach {}: {e}", board.name),
        help: "check that the board is connected (a virtual board: started with `mpfr flash --board <name>`)".into(),
    }
}

/// The executor for `board` with the given console. MicroPython sessions connect on first use;
/// the reference console's UART is opened now.
pub fn connect(
    board: &Board,
    port: Option<&str>,
    kind: ConsoleKind,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<Box<dyn Executor>, StressError> {
    match kind {
        ConsoleKind::MicroPython => {
            let target = Target::resolve(board, port).map_err(|e| unreachable(board, e))?;
            let mut exec = SessionExecutor::new(crate::repl::Session::from_target(target));
            if let Some(c) = cancel {
                exec = exec.with_cancel(c);
            }
            Ok(Box::new(exec))
        }
        ConsoleKind::Reference => {
            let target = Target::resolve(board, port).map_err(|e| unreachable(board, e))?;
            let link = target.open().map_err(|e| unreachable(board, e))?;
            let b = board.clone();
            // Hard reset of the virtual board: restart QEMU and open its new UART pty.
            let restart = move || -> Result<LinkPort, String> {
                // The record, dead or alive: a crashed QEMU is exactly what gets restarted.
                let inst = Instance::read_record(&b.name)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no running virtual board {} to restart", b.name))?;
                inst.restart().map_err(|e| e.to_string())?;
                let link = Target::resolve(&b, None)
                    .and_then(|t| t.open())
                    .map_err(|e| e.to_string())?;
                Ok(LinkPort(link))
            };
            Ok(Box::new(
                Console::new(LinkPort(link)).with_restart(Box::new(restart)),
            ))
        }
    }
}
