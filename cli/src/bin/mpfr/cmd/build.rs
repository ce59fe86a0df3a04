//! `mpfr build`: build the reference firmware, mpfr's MicroPython port, or a MicroPython tree's
//! own port for a board with its rendered config.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::{Bars, Unit};
use crate::ui::Printer;
use clap::Args;
use mpfr::builder::{BuildEvent, build_micropython, build_port, build_reference};

use super::GlobalArgs;
use super::config::ConfiguredBoard;

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    target: ConfiguredBoard,
    /// Output folder [default: mpfr-out/<board>]
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// What to build: the reference firmware, or mpfr's MicroPython port
    #[arg(long, value_enum, default_value = "reference")]
    firmware: Firmware,
    /// Build this MicroPython tree's own port (with the config and the mpfr module) instead of
    /// the reference firmware; with --firmware micropython: the tree to build mpfr's port against
    /// [default: the source cache]
    #[arg(long, value_name = "DIR")]
    micropython: Option<PathBuf>,
    /// NAME=value arguments for the port's make (after `--`)
    #[arg(last = true, value_name = "NAME=VALUE")]
    make_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Firmware {
    /// The mpfr reference firmware (FreeRTOS + agent, no MicroPython)
    Reference,
    /// mpfr's MicroPython port on its FreeRTOS threading backend
    Micropython,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let (board, ov) = &self.target.resolve(g)?;
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
            BuildEvent::Stale { objects } => {
                p.warn(format!(
                    "{} object(s) of this tree are built outside the port's build folder, where no config has its own copy; removed so they are rebuilt with this config:\n  {}",
                    objects.len(),
                    objects
                        .iter()
                        .map(|o| o.display().to_string())
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ));
            }
            BuildEvent::Warning { text } => p.warn(text),
            BuildEvent::Running { command } => {
                p.status("Building", "the MicroPython port (this takes a while)");
                p.verbose(&command);
                bars.spin("port", "Building", "make");
            }
            BuildEvent::Step { what, done } => {
                bars.set("port", done as u64, &format!("[{done}] {what}"));
            }
        };
        if self.firmware == Firmware::Reference
            && self.micropython.is_none()
            && !self.make_args.is_empty()
        {
            return Err(mpfr::builder::BuildError::from(
                mpfr::builder::PortError::MakeArgsWithoutPort,
            )
            .into());
        }
        let mut tree_used = None;
        let out = match &self.micropython {
            _ if self.firmware == Firmware::Micropython => {
                let built = build_port(
                    board,
                    ov,
                    self.micropython.as_deref(),
                    &self.make_args,
                    self.out.as_deref(),
                    &mut on_event,
                )?;
                tree_used = Some(built.micropython);
                built.build
            }
            Some(tree) => build_micropython(
                board,
                ov,
                tree,
                &self.make_args,
                self.out.as_deref(),
                &mut on_event,
            )?,
            None => build_reference(board, ov, self.out.as_deref(), &mut on_event)?,
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
                "micropython": tree_used,
            }))?;
        } else {
            p.status(
                "Built",
                format!(
                    "{} (text {} B, data {} B, bss {} B)",
                    board.name, out.text, out.data, out.bss
                ),
            );
            if let Some(t) = &tree_used {
                p.verbose(format!("MicroPython tree {}", t.display()));
            }
            p.line(out.elf.display())?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
