//! `mpfr flash`: resolve the plan, then write the image (or boot the virtual board), rendering
//! the flasher's progress events.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::{Bars, Unit};
use crate::ui::Printer;
use clap::Args;
use mpfr::flash::{self, Event, Outcome, Phase, Plan, Request};
use mpfr::image::{Format, parse_addr};

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Image to flash: ELF, Intel HEX, raw BIN (with --base), UF2 [default: the last `mpfr build` output]
    #[arg(value_name = "IMAGE")]
    image: Option<PathBuf>,
    /// Image format [default: from its content, then its extension]
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
    /// Load address of a raw binary (e.g. 0x10000000)
    #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
    base: Option<u64>,
    /// Do not read the flash back after writing
    #[arg(long)]
    no_verify: bool,
    /// Resolve board, flasher, image and regions, print the plan, touch no hardware
    #[arg(long)]
    dry_run: bool,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = &self.board.named(g)?;
        let probe = self.board.probe_selector()?;
        let req = Request {
            image: self.image,
            format: self.format,
            base: self.base,
            probe,
            port: self.board.port.clone(),
            verify: !self.no_verify,
        };
        let (plan, image) = flash::plan(board, &req)?;
        if self.dry_run {
            print_plan(p, &plan)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut flasher = flash::flasher_for(board, &req)?;
        p.status(
            "Flashing",
            format!(
                "{} ({}, {} bytes) to {} with {}",
                plan.image.display(),
                plan.format,
                plan.bytes,
                plan.board,
                flasher.name()
            ),
        );
        let mut render = Renderer::new(p);
        let outcome = flasher.flash(&image, &mut |e| render.event(e));
        render.finish();
        let outcome = outcome?;
        if p.json {
            p.json_line(
                &serde_json::json!({ "type": "flashed", "board": plan.board, "result": outcome }),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        match outcome {
            Outcome::Flashed {
                target,
                bytes,
                verified,
            } => p.status(
                "Flashed",
                format!(
                    "{bytes} bytes to {target}{}; reset and running",
                    if verified { ", verified" } else { "" }
                ),
            ),
            Outcome::Booted { instance: i } => {
                p.status(
                    "Running",
                    format!("{} (QEMU pid {}), booted to {}", i.board, i.pid, i.console),
                );
                p.line(format!("uart       {}", i.uart_pty.display()))?;
                p.line(format!("gdb        {}", i.gdb_socket.display()))?;
                p.line(format!("qmp        {}", i.qmp_socket.display()))?;
                p.line(format!("log        {}", i.log.display()))?;
                if i.console == mpfr::device::vboard::Console::Unknown {
                    p.warn(format!(
                        "UART0 showed neither the reference console nor a MicroPython REPL; is the image built for {}?",
                        board.platform.qemu().map_or(board.chip.as_str(), |m| m.machine.as_str())
                    ));
                }
                p.note(format!("stop it with `mpfr stop --board {}`", i.board));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn flasher_name(plan: &Plan) -> &'static str {
    match plan.flasher {
        mpfr::board::Flasher::ProbeRs => "probe-rs",
        mpfr::board::Flasher::Espflash => "espflash",
        mpfr::board::Flasher::Qemu => "QEMU",
        mpfr::board::Flasher::None => "nothing",
    }
}

fn print_plan(p: &Printer, plan: &Plan) -> mpfr::Result<()> {
    if p.json {
        let mut v = serde_json::to_value(plan)
            .map_err(|e| mpfr::Error::io("cannot encode the plan", std::io::Error::other(e)))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), "plan".into());
        }
        return p.json_line(&v);
    }
    let source = match plan.image_source {
        flash::ImageSource::Argument => "",
        flash::ImageSource::LastBuild => " (last `mpfr build`)",
    };
    p.line(format!("board      {} ({})", plan.board, plan.chip))?;
    p.line(format!("flasher    {}", flasher_name(plan)))?;
    p.line(format!("image      {}{source}", plan.image.display()))?;
    p.line(format!("format     {}, {} bytes", plan.format, plan.bytes))?;
    for s in &plan.segments {
        p.line(format!(
            "segment    {:#010x}..{:#010x} {:>8} bytes  {}",
            s.addr,
            s.addr + s.len,
            s.len,
            s.region.as_deref().unwrap_or("(region unknown)")
        ))?;
    }
    p.line(format!("select     {}", plan.selection))?;
    p.line(format!(
        "verify     {}",
        if plan.verify { "yes" } else { "no" }
    ))?;
    for (i, s) in plan.steps.iter().enumerate() {
        p.line(format!("step {}     {s}", i + 1))?;
    }
    for n in &plan.notes {
        p.note(n);
    }
    Ok(())
}

/// Turns flasher events into bars (terminal), plain lines (pipes) or JSON Lines.
struct Renderer<'a> {
    p: &'a Printer,
    bars: Bars,
}

impl<'a> Renderer<'a> {
    fn new(p: &'a Printer) -> Self {
        Renderer {
            p,
            bars: Bars::new(p),
        }
    }

    fn event(&mut self, e: Event) {
        if self.p.json {
            // Progress ticks would flood a pipe; phases and notes are what a script needs.
            if !matches!(e, Event::Progress { .. }) {
                let mut v = serde_json::to_value(&e).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("type".into(), "progress".into());
                }
                let _ = self.p.json_line(&v);
            }
            return;
        }
        match e {
            Event::Start { phase, total } => {
                if self.bars.enabled() {
                    let key = phase.to_string();
                    match total {
                        Some(t) => self.bars.start(&key, &key, t, Unit::Bytes),
                        None => self.bars.spin(&key, &key, &key),
                    }
                } else {
                    let what = match (phase, total) {
                        (_, Some(t)) => format!("{t} bytes"),
                        (Phase::Connect, None) => "to the board".into(),
                        (Phase::Boot, None) => "QEMU".into(),
                        (_, None) => "...".into(),
                    };
                    self.p.status(&phase.to_string(), what);
                }
            }
            Event::Progress { phase, bytes } => self.bars.inc(&phase.to_string(), bytes),
            Event::Finish { phase } => self.bars.finish(&phase.to_string()),
            Event::Note { message } => self.bars.suspend(|| self.p.note(&message)),
        }
    }

    fn finish(&mut self) {
        self.bars.finish_all();
    }
}
