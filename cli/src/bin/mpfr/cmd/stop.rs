//! `mpfr stop`: end a running virtual board and remove its record.

use std::process::ExitCode;

use crate::ui::Printer;
use clap::Args;
use mpfr::device::vboard::Instance;

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = &self.board.named(g)?;
        let _lock = mpfr::util::lock::lock_board(&board.name, |holder| {
            p.note(format!(
                "waiting for {holder} to finish with {}",
                board.name
            ))
        })
        .map_err(|e| mpfr::Error::io(format!("cannot lock {}", board.name), e))?;
        let stopped = Instance::stop(board)?;
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "stopped",
                "board": board.name,
                "was_recorded": stopped.as_ref().is_some_and(|s| s.instance.is_some() || s.unreadable.is_some()),
                "was_running": stopped.as_ref().is_some_and(|s| s.was_running),
                "pid": stopped.as_ref().and_then(|s| s.pids.first().copied().or(s.instance.as_ref().map(|i| i.pid))),
                "pids": stopped.as_ref().map(|s| s.pids.clone()).unwrap_or_default(),
                "unreadable_record": stopped.as_ref().and_then(|s| s.unreadable.clone()),
                "log_tail": stopped.as_ref().and_then(|s| s.log_tail.clone()),
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        let Some(s) = stopped else {
            p.note(format!("{} is not running", board.name));
            return Ok(ExitCode::SUCCESS);
        };
        if let Some(why) = &s.unreadable {
            p.warn(format!(
                "the record of {} was unreadable ({why}); removed it",
                board.name
            ));
        }
        let pids = |v: &[u32]| {
            v.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (&s.instance, s.was_running) {
            (_, true) => p.status(
                "Stopped",
                format!(
                    "{} (QEMU pid {}{})",
                    board.name,
                    pids(&s.pids),
                    if s.instance.as_ref().is_some_and(|i| s.pids.contains(&i.pid)) {
                        ""
                    } else {
                        ", found by its control socket"
                    }
                ),
            ),
            (Some(i), false) => p.warn(format!(
                "{} (QEMU pid {}) had already exited; removed its record. QEMU's last output:\n{}",
                board.name,
                i.pid,
                s.log_tail.clone().unwrap_or_default()
            )),
            (None, false) => p.note(format!("no QEMU of {} was running", board.name)),
        }
        Ok(ExitCode::SUCCESS)
    }
}
