//! `mpfr threads top` / `mpfr threads ls`: what every thread of a board is doing right now.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::top::{Exit, render_text};
use crate::ui::Printer;
use clap::{Args, Subcommand};
use mpfr::telemetry::model::Update;
use mpfr::telemetry::monitor::{AttachOptions, Monitor};

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Live view of every task: CPU%, stacks, service slots, heaps, events (`q` quits)
    Top(TopArgs),
    /// One table of every task, then exit (same as `top --once`)
    Ls(Common),
}

#[derive(Debug, Args, Clone)]
struct Common {
    #[command(flatten)]
    board: BoardArgs,
    /// Firmware image the board runs, to find the RTT block by symbol
    /// [default: the virtual board's image, or the last build]
    #[arg(long, value_name = "FILE")]
    elf: Option<PathBuf>,
    /// Refresh interval in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    interval: u64,
    /// Host board: the MicroPython process to watch [default: the newest `micropython` of this user]
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// How long to wait for the first sample, in seconds
    #[arg(long, value_name = "S", default_value_t = 15)]
    wait: u64,
    /// Read a recorded RTT memory image instead of the board (for tests)
    #[arg(long, hide = true, value_name = "FILE")]
    memory_image: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TopArgs {
    #[command(flatten)]
    common: Common,
    /// Print one sample as a table (or one JSON line with --json) and exit
    #[arg(long)]
    once: bool,
    /// Benchmark: attach, take N samples, print time to first sample and per-sample cost
    #[arg(long, hide = true, value_name = "N")]
    bench: Option<usize>,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        // Ctrl-C ends the loops cleanly so the target is detached (and QEMU keeps running).
        mpfr::util::cancel::install();
        match self.what {
            What::Ls(c) => once(g, p, &c),
            What::Top(t) => {
                if let Some(n) = t.bench {
                    return bench(g, p, &t.common, n);
                }
                if t.once {
                    return once(g, p, &t.common);
                }
                if p.json || !p.stdout_is_terminal() {
                    return stream(g, p, &t.common);
                }
                let mut m = attach(g, p, &t.common)?;
                match crate::top::run(&mut m)? {
                    Exit::Quit => Ok(ExitCode::SUCCESS),
                    Exit::Interrupted => Ok(ExitCode::from(130)),
                }
            }
        }
    }
}

fn attach(g: &GlobalArgs, p: &Printer, c: &Common) -> mpfr::Result<Monitor> {
    attach_board(&c.board.named(g)?, p, c)
}

fn attach_board(board: &mpfr::board::Board, p: &Printer, c: &Common) -> mpfr::Result<Monitor> {
    let opts = AttachOptions {
        elf: c.elf.clone(),
        pid: c.pid,
        probe: c.board.probe.clone(),
        interval: Duration::from_millis(c.interval),
    };
    let m = match &c.memory_image {
        Some(image) => Monitor::replay(&board.name, image, &opts)?,
        None => Monitor::attach(board, &opts)?,
    };
    p.verbose(format!("attached to {}", m.transport));
    for n in &m.notes {
        p.note(n);
    }
    Ok(m)
}

fn once(g: &GlobalArgs, p: &Printer, c: &Common) -> mpfr::Result<ExitCode> {
    let mut m = attach(g, p, c)?;
    let Some((snap, events)) = m.sample_with_deltas(Duration::from_secs(c.wait))? else {
        return Ok(ExitCode::from(130));
    };
    if p.json {
        for e in &events {
            p.json_line(&event_json(e))?;
        }
        p.json_line(&sample_json(&snap))?;
    } else {
        p.line(render_text(&snap, &events))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn sample_json(s: &mpfr::telemetry::model::Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), "sample".into());
    }
    v
}

fn event_json(e: &mpfr::telemetry::model::EventRow) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), "event".into());
    }
    v
}

/// Not a terminal (or --json): a stream of samples and events until interrupted.
fn stream(g: &GlobalArgs, p: &Printer, c: &Common) -> mpfr::Result<ExitCode> {
    let mut m = attach(g, p, c)?;
    let deadline = Instant::now() + Duration::from_secs(c.wait);
    let mut got_any = false;
    loop {
        for u in m.step()? {
            match u {
                Update::Sample(s) => {
                    got_any = true;
                    if p.json {
                        p.json_line(&sample_json(&s))?;
                    } else {
                        p.line(render_text(&s, &[]))?;
                        p.line("")?;
                    }
                }
                Update::Event(e) => {
                    if p.json {
                        p.json_line(&event_json(&e))?;
                    }
                }
            }
        }
        if !got_any && Instant::now() > deadline {
            return Err(m.not_ready_error().into());
        }
        if mpfr::util::cancel::requested() {
            return Ok(ExitCode::from(130));
        }
        std::thread::sleep(m.wait());
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `--bench N`: time to first sample after attach, and the cost of one poll.
fn bench(g: &GlobalArgs, p: &Printer, c: &Common, n: usize) -> mpfr::Result<ExitCode> {
    // Resolve the board first: the clock starts at attach, as a user of the view sees it.
    let board = &c.board.named(g)?;
    let t0 = Instant::now();
    let mut m = attach_board(board, p, c)?;
    let attach_ms = t0.elapsed().as_secs_f64() * 1e3;
    let deadline = Instant::now() + Duration::from_secs(c.wait);
    let first = loop {
        if m.step()?.iter().any(|u| matches!(u, Update::Sample(_))) {
            break t0.elapsed().as_secs_f64() * 1e3;
        }
        if Instant::now() > deadline {
            return Err(m.not_ready_error().into());
        }
        if mpfr::util::cancel::requested() {
            return Ok(ExitCode::from(130));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut costs = Vec::with_capacity(n);
    let mut samples = 0;
    for _ in 0..n.max(1) {
        if mpfr::util::cancel::requested() {
            return Ok(ExitCode::from(130));
        }
        let t = Instant::now();
        let u = m.step()?;
        costs.push(t.elapsed().as_secs_f64() * 1e3);
        samples += u.iter().filter(|u| matches!(u, Update::Sample(_))).count();
        std::thread::sleep(Duration::from_millis(c.interval.min(20)));
    }
    costs.sort_by(f64::total_cmp);
    let (p50, p95) = (percentile(&costs, 0.5), percentile(&costs, 0.95));
    let goal_first = 300.0;
    let goal_p95 = 5.0;
    if p.json {
        p.json_line(&serde_json::json!({
            "type": "bench",
            "board": m.board(),
            "transport": m.transport,
            "attach_ms": attach_ms,
            "first_sample_ms": first,
            "polls": costs.len(),
            "samples": samples,
            "poll_p50_ms": p50,
            "poll_p95_ms": p95,
            "goal_first_sample_ms": goal_first,
            "goal_poll_p95_ms": goal_p95,
        }))?;
    } else {
        p.line(format!("attach               {attach_ms:8.1} ms"))?;
        p.line(format!(
            "first sample         {first:8.1} ms   goal <= {goal_first} ms   ratio {:.2}  {}",
            first / goal_first,
            if first <= goal_first { "ok" } else { "MISSED" }
        ))?;
        p.line(format!(
            "poll p50 / p95       {p50:8.2} / {p95:.2} ms ({} polls, {samples} samples)   goal p95 <= {goal_p95} ms   ratio {:.2}  {}",
            costs.len(),
            p95 / goal_p95,
            if p95 <= goal_p95 { "ok" } else { "MISSED" }
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
