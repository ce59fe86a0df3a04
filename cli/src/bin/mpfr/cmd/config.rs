//! `mpfr config`: resolve and render a board configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ui::Printer;
use clap::Args;
use mpfr::board::{Affinity, Board, Gil};
use mpfr::config::{Artifacts, Overrides, resolve};
use mpfr::util::size::Size;

use super::{BoardArgs, GlobalArgs};

/// Config overrides, shared with `mpfr build`.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigFlags {
    /// Cores FreeRTOS schedules on
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,
    /// FreeRTOS heap (configTOTAL_HEAP_SIZE), e.g. 8k
    #[arg(long, value_name = "SIZE")]
    pub heap: Option<Size>,
    /// MicroPython GC heap, e.g. 192K
    #[arg(long, value_name = "SIZE")]
    pub gc_heap: Option<Size>,
    /// Main task stack, e.g. 8KiB
    #[arg(long, value_name = "SIZE")]
    pub stack: Option<Size>,
    /// Default stack of a new Python thread
    #[arg(long, value_name = "SIZE")]
    pub thread_stack: Option<Size>,
    /// GIL mode
    #[arg(long, value_enum)]
    pub gil: Option<Gil>,
    /// Cores Python threads may run on
    #[arg(long, value_enum)]
    pub affinity: Option<Affinity>,
}

impl ConfigFlags {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            cores: self.cores,
            heap: self.heap,
            gc_heap: self.gc_heap,
            stack: self.stack,
            thread_stack: self.thread_stack,
            gil: self.gil,
            affinity: self.affinity,
        }
    }
}

/// A catalog board and the flags that change its defaults, shared with `mpfr build`.
#[derive(Debug, Args)]
pub struct ConfiguredBoard {
    #[command(flatten)]
    board: BoardArgs,
    #[command(flatten)]
    flags: ConfigFlags,
}

impl ConfiguredBoard {
    /// The board and what the flags change of its defaults.
    pub fn resolve(&self, g: &GlobalArgs) -> mpfr::Result<(Board, Overrides)> {
        Ok((self.board.named(g)?, self.flags.overrides()))
    }
}

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    target: ConfiguredBoard,
    /// Output folder [default: mpfr-out/<board>/config]
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let (board, ov) = &self.target.resolve(g)?;
        let resolved = resolve(board, ov)?;
        let out = self
            .out
            .unwrap_or_else(|| mpfr::util::paths::config_dir(&board.name));
        let artifacts = Artifacts::render(board, &resolved.config);
        artifacts.write(&out).map_err(|e| {
            mpfr::Error::io(format!("cannot write the config into {}", out.display()), e)
        })?;
        for n in &resolved.notes {
            p.note(n);
        }
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "config",
                "board": board.name,
                "out": out,
                "fingerprint": resolved.config.fingerprint,
                "config": resolved.config,
                "budget": resolved.budget,
                "files": artifacts.manifest.files,
                "notes": resolved.notes,
            }))?;
        } else {
            p.status(
                "Configured",
                format!(
                    "{} (fingerprint {})",
                    board.name, resolved.config.fingerprint
                ),
            );
            p.verbose(format!("RAM budget:\n{}", resolved.budget));
            for (name, _) in &artifacts.files {
                p.line(out.join(name).display())?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
