//! `mpfr crash`: capture a halted picture of a board (`capture`) and explain it (`show`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ui::Printer;
use clap::{Args, Subcommand};

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Halt the board, read every core's registers, fault registers and RAM into one bundle
    /// file, and let it run again
    Capture(Capture),
    /// Explain a bundle: which core faulted and why, backtraces of every core and task
    Show(Show),
}

#[derive(Debug, Args)]
struct Capture {
    #[command(flatten)]
    board: BoardArgs,
    /// Where to write the bundle [default: $MPFR_OUT or mpfr-out, then <board>/crash-<unix time>.crash]
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// The ELF the board runs [default: the image the virtual board booted]
    #[arg(long, value_name = "ELF")]
    elf: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct Show {
    /// A bundle written by `mpfr crash capture`
    bundle: PathBuf,
    /// The firmware's ELF [default: the one the bundle names]
    #[arg(long, value_name = "ELF")]
    elf: Option<PathBuf>,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        match self.what {
            What::Capture(c) => {
                let board = c.board.named(g)?;
                let bundle = mpfr::crash::capture(
                    &board,
                    &mpfr::crash::CaptureOptions {
                        elf: c.elf,
                        console_tail: None,
                    },
                )?;
                let out = match c.out {
                    Some(o) => o,
                    None => {
                        let dir = mpfr::util::paths::out_root().join(&board.name);
                        std::fs::create_dir_all(&dir).map_err(|e| {
                            mpfr::Error::io(format!("cannot create {}", dir.display()), e)
                        })?;
                        dir.join(format!("crash-{}.crash", bundle.captured_unix))
                    }
                };
                bundle.write(&out)?;
                let faulted: Vec<u32> = bundle
                    .cores
                    .iter()
                    .filter(|c| {
                        c.fault.any() || mpfr::crash::fault::is_fault_exception(c.exception())
                    })
                    .map(|c| c.index)
                    .collect();
                if p.json {
                    p.json_line(&serde_json::json!({
                        "type": "crash_bundle",
                        "board": board.name,
                        "path": out,
                        "cores": bundle.cores.len(),
                        "faulted_cores": faulted,
                        "notes": bundle.notes,
                    }))?;
                } else {
                    p.status(
                        "Captured",
                        format!(
                            "{} ({} core(s), {} faulted) to {}",
                            board.name,
                            bundle.cores.len(),
                            faulted.len(),
                            out.display()
                        ),
                    );
                    p.line(out.display())?;
                }
                Ok(ExitCode::SUCCESS)
            }
            What::Show(s) => {
                let bundle = mpfr::crash::Bundle::read(&s.bundle)?;
                let report = mpfr::crash::analyse(&bundle, s.elf.as_deref())?;
                if p.json {
                    let mut v = serde_json::to_value(&report).expect("a report serialises");
                    v["type"] = "crash_report".into();
                    p.json_line(&v)?;
                } else {
                    p.line(report.to_string().trim_end())?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
