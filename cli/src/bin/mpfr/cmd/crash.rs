//! `mpfr crash`: capture a halted picture of a board (`capture`), explain it (`show`), and
//! watch a running board until it dies, then capture it (`watch`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Watch a running board until a core faults or stops in a fatal hook, or its tick count
    /// stands still; then capture it (exit code 1) as `capture` does. Ctrl-C ends the watch
    Watch(Watch),
}

#[derive(Debug, Args)]
struct Watch {
    #[command(flatten)]
    board: BoardArgs,
    #[command(flatten)]
    bundle: BundleArgs,
    /// A tick count that stands still this long is a crash (a wedged kernel)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = mpfr::util::duration::positive_arg)]
    stall: Duration,
    /// Time between looks (each holds the board for a moment)
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = mpfr::util::duration::positive_arg)]
    every: Duration,
}

#[derive(Debug, Args)]
struct Capture {
    #[command(flatten)]
    board: BoardArgs,
    #[command(flatten)]
    bundle: BundleArgs,
}

/// Where a capture goes and which ELF it is read with (`capture` and `watch`).
#[derive(Debug, Args)]
struct BundleArgs {
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
                capture_to(&board, c.bundle, None, p)?;
                Ok(ExitCode::SUCCESS)
            }
            What::Watch(w) => {
                let board = w.board.named(g)?;
                mpfr::util::cancel::install();
                let mut watcher =
                    mpfr::crash::watch::Watcher::attach(&board, w.bundle.elf.as_deref(), w.stall)?;
                if !p.json {
                    p.status(
                        "Watching",
                        format!(
                            "{} every {} ms{} (Ctrl-C ends)",
                            board.name,
                            w.every.as_millis(),
                            if watcher.sees_ticks() {
                                format!(", a stall after {} s", w.stall.as_secs_f64())
                            } else {
                                ": no xTickCount in the ELF, so no stall check".into()
                            }
                        ),
                    );
                }
                let found = loop {
                    if mpfr::util::cancel::requested() {
                        break None;
                    }
                    if let Some(d) = watcher.look()? {
                        break Some(d);
                    }
                    std::thread::sleep(w.every);
                };
                watcher.detach()?;
                let Some(found) = found else {
                    return Ok(ExitCode::SUCCESS);
                };
                if p.json {
                    p.json_line(&serde_json::json!({
                        "type": "crash_detected",
                        "board": board.name,
                        "what": found.to_string(),
                    }))?;
                } else {
                    p.status("Crashed", format!("{}: {found}", board.name));
                }
                capture_to(&board, w.bundle, Some(&found.to_string()), p)?;
                Ok(ExitCode::from(1))
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

/// Captures `board` into a bundle at `out` (or the default place) and says where it went.
fn capture_to(
    board: &mpfr::board::Board,
    BundleArgs { out, elf }: BundleArgs,
    detected: Option<&str>,
    p: &Printer,
) -> mpfr::Result<()> {
    let mut bundle = mpfr::crash::capture(
        board,
        &mpfr::crash::CaptureOptions {
            elf,
            console_tail: None,
        },
    )?;
    if let Some(d) = detected {
        bundle.notes.insert(0, format!("mpfr crash watch: {d}"));
    }
    let out = match out {
        Some(o) => o,
        None => {
            let dir = mpfr::util::paths::out_root().join(&board.name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| mpfr::Error::io(format!("cannot create {}", dir.display()), e))?;
            dir.join(format!("crash-{}.crash", bundle.captured_unix))
        }
    };
    bundle.write(&out)?;
    let faulted: Vec<u32> = bundle
        .cores
        .iter()
        .filter(|c| c.fault.any() || mpfr::crash::fault::is_fault_exception(c.exception()))
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
    Ok(())
}
