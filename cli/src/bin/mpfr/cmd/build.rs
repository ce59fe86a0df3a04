//! `mpfr build`: build the reference firmware for a board with its rendered config.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::{Bars, Unit};
use crate::ui::Printer;
use clap::Args;
use mpfr::builder::{BuildEvent, build_micropython, build_reference};

use super::config::ConfigFlags;
use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    #[command(flatten)]
    flags: ConfigFlags,
    /// Output folder [default: mpfr-out/<board>]
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build this MicroPython tree's port (with the config and the mpfr module) instead of the
    /// reference firmware
    #[arg(long, value_name = "DIR")]
    micropython: Option<PathBuf>,
    /// With --micropython: NAME=value arguments for the port's make (after `--`)
    #[arg(last = true, value_name = "NAME=VALUE", requires = "micropython")]
    make_args: Vec<String>,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let cat = g.catalog()?;
        let board = cat.get(self.board.name()?)?;
        let mut bars = Bars::new(p);
        let mut on_event = |e: BuildEvent| match e {
            BuildEvent::Configured { fingerprint, dir } => {
                p.status(
                    "Configured",
                    format!("{} (fingerprint {fingerprint})", board.name),
                );
                p.verbose(format!("config in {}", dir.display()));
            }
            BuildEvent::Compiling { file, done, total } => {
                if !bars.is_active("compile") {
                    bars.start("compile", "Compiling", total as u64, Unit::Items);
                }
                bars.set("compile", done as u64, &file);
                bars.suspend(|| p.verbose(format!("[{done}/{total}] {file}")));
            }
            BuildEvent::Linking { elf } => {
                bars.finish("compile");
                bars.spin("link", "Linking", &elf.display().to_string());
                p.verbose(format!("linking {}", elf.display()));
            }
            BuildEvent::Running { command } => {
                p.status("Building", "the MicroPython port (this takes a while)");
                p.verbose(&command);
                bars.spin("port", "Building", &command);
            }
        };
        let ov = self.flags.overrides();
        let out = match &self.micropython {
            Some(tree) => build_micropython(
                board,
                &ov,
                tree,
                &self.make_args,
                self.out.as_deref(),
                &mut on_event,
            )?,
            None => build_reference(board, &ov, self.out.as_deref(), &mut on_event)?,
        };
        bars.finish_all();
        mpfr::builder::record(&out)?;
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "build",
                "board": out.board,
                "elf": out.elf,
                "fingerprint": out.fingerprint,
                "text": out.text,
                "data": out.data,
                "bss": out.bss,
            }))?;
        } else {
            p.status(
                "Built",
                format!(
                    "{} (text {} B, data {} B, bss {} B)",
                    board.name, out.text, out.data, out.bss
                ),
            );
            p.line(out.elf.display())?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
