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
        let stopped = Instance::stop(board)?;
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "stopped",
                "board": board.name,
                "was_recorded": stopped.is_some(),
                "was_running": stopped.as_ref().is_some_and(|s| s.was_running),
                "pid": stopped.as_ref().map(|s| s.instance.pid),
                "log_tail": stopped.as_ref().and_then(|s| s.log_tail.clone()),
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        match stopped {
            None => p.note(format!("{} is not running", board.name)),
            Some(s) if s.was_running => p.status(
                "Stopped",
                format!("{} (QEMU pid {})", board.name, s.instance.pid),
            ),
            Some(s) => {
                p.warn(format!(
                    "{} (QEMU pid {}) had already exited; removed its record. QEMU's last output:\n{}",
                    board.name,
                    s.instance.pid,
                    s.log_tail.unwrap_or_default()
                ));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
