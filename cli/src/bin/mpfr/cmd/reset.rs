//! `mpfr reset`: soft reset over the REPL, hard reset through the link (DTR/RTS where the board
//! allows it, QEMU restart, host respawn), or into the bootloader (`machine.bootloader()`).

use std::process::ExitCode;
use std::time::Duration;

use crate::ui::Printer;
use clap::Args;
use mpfr::board::Platform;
use mpfr::flash::{FlashError, ProbeRsFlasher};
use mpfr::repl::Limits;
use mpfr::util::probe::ProbeChoiceError;

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Soft reset: MicroPython restarts, the board does not (the default)
    #[arg(long, conflicts_with_all = ["hard", "bootloader"])]
    soft: bool,
    /// Hard reset: the debug probe (probe-rs boards with a probe connected), the reset line
    /// (boards with `reset_on_open`), a QEMU restart, a new host process
    #[arg(long, conflicts_with = "bootloader")]
    hard: bool,
    /// Into the bootloader (RP2: the BOOTSEL drive; ESP32: the ROM download mode)
    #[arg(long)]
    bootloader: bool,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = self.board.board(g)?;
        if self.hard
            && let Platform::Probe(chip) = &board.platform
        {
            let selector = self.board.probe_selector()?;
            let probe = ProbeRsFlasher::new(board.name.clone(), chip.chip.clone(), selector, false);
            match probe.reset(&mut |_| {}) {
                Ok(via) => return done(p, &board.name, "hard", Some(&via)),
                // No probe: the serial link's reset line may still do it.
                Err(FlashError::Probe(ProbeChoiceError::NoProbe { .. })) => {
                    p.warn("no debug probe is connected; trying the serial link's reset line");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut session = self.board.open(&board, p)?;
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
        done(p, &board.name, what, None)
    }
}

/// Reports a reset; `via` names the probe that did it.
fn done(p: &Printer, board: &str, kind: &str, via: Option<&str>) -> mpfr::Result<ExitCode> {
    if p.json {
        p.json_line(
            &serde_json::json!({"type": "reset", "board": board, "kind": kind, "via": via}),
        )?;
    }
    match via {
        Some(v) => p.status("Reset", format!("{board} ({kind}, through {v})")),
        None => p.status("Reset", format!("{board} ({kind})")),
    }
    Ok(ExitCode::SUCCESS)
}
