//! `mpfr reset`: soft reset over the REPL, hard reset through the link (DTR/RTS where the board
//! allows it, QEMU restart, host respawn), or into the bootloader (`machine.bootloader()`).

use std::process::ExitCode;
use std::time::Duration;

use crate::ui::Printer;
use clap::Args;
use mpfr::repl::{Limits, Session};

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Soft reset: MicroPython restarts, the board does not (the default)
    #[arg(long, conflicts_with_all = ["hard", "bootloader"])]
    soft: bool,
    /// Hard reset: the reset line (boards with `reset_on_open`), a QEMU restart, a new host process
    #[arg(long, conflicts_with = "bootloader")]
    hard: bool,
    /// Into the bootloader (RP2: the BOOTSEL drive; ESP32: the ROM download mode)
    #[arg(long)]
    bootloader: bool,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let cat = g.catalog()?;
        let board = self.board.resolve(&cat)?;
        let mut session = Session::open(&board, self.board.port.as_deref())?;
        p.verbose(format!("board {} via {}", board.name, session.describe()));
        let what = if self.bootloader {
            let limits = Limits {
                timeout: Some(Duration::from_secs(10)),
                ..Limits::default()
            };
            session.exec_no_follow(b"import machine\nmachine.bootloader()\n", &limits)?;
            // The board re-enumerates as its bootloader; nothing to leave the REPL of.
            drop(session.into_link());
            "into its bootloader"
        } else if self.hard {
            session.hard_reset()?;
            session.close();
            "hard"
        } else {
            session.soft_reset()?;
            session.close();
            "soft"
        };
        if p.json {
            p.json_line(&serde_json::json!({"type": "reset", "board": board.name, "kind": what}))?;
        }
        p.status("Reset", format!("{} ({what})", board.name));
        Ok(ExitCode::SUCCESS)
    }
}
