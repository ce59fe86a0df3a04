//! Which executor a board gets: the reference firmware's console (native workloads) when the
//! running virtual board booted to it, else the MicroPython REPL session.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::board::Board;
use crate::device::Target;
use crate::device::link::LinkError;
use crate::device::link::check_free;
use crate::device::vboard::{self, Console as VConsole};

use super::native::Console;
use super::session::SessionExecutor;
use super::{ConsoleKind, Executor, StressError};

/// Decides the console without talking to the board: a virtual board whose record says it
/// booted to the reference console runs native workloads; everything else is MicroPython.
pub fn console_kind(board: &Board, port: Option<&str>) -> ConsoleKind {
    if port.is_none() && vboard::recorded_console(board) == Some(VConsole::Reference) {
        ConsoleKind::Reference
    } else {
        ConsoleKind::MicroPython
    }
}

fn unreachable(board: &Board, e: LinkError) -> StressError {
    if let LinkError::Busy { help, .. } = &e {
        return StressError::Board {
            what: format!("cannot reach {}: {e}", board.name),
            help: help.clone(),
        };
    }
    StressError::Board {
        what: format!("cannot reach {}: {e}", board.name),
        help: "check that the board is connected (a virtual board: started with `mpfr flash --board <name>`)".into(),
    }
}

/// The executor for `board` with the given console. MicroPython sessions connect on first use;
/// the reference console's UART is opened now (its link's reset is the board's hard reset).
pub fn connect(
    board: &Board,
    port: Option<&str>,
    kind: ConsoleKind,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<Box<dyn Executor>, StressError> {
    let target = Target::resolve(board, port).map_err(|e| unreachable(board, e))?;
    // A port another program holds fails every test the same way: say so once, up front.
    if let Target::Port { path, .. } | Target::Qemu { path, .. } = &target {
        check_free(path).map_err(|e| unreachable(board, e))?;
    }
    match kind {
        ConsoleKind::MicroPython => {
            let mut exec = SessionExecutor::new(crate::repl::Session::from_target(target));
            if let Some(c) = cancel {
                exec = exec.with_cancel(c);
            }
            Ok(Box::new(exec))
        }
        ConsoleKind::Reference => {
            let link = target.open().map_err(|e| unreachable(board, e))?;
            Ok(Box::new(Console::new(link)))
        }
    }
}
