//! `mpfr boards`: the board catalog.

use std::process::ExitCode;

use crate::ui::{Printer, table};
use clap::{Args, Subcommand};
use mpfr::board::Board;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(subcommand)]
    show: Option<Show>,
}

#[derive(Debug, Subcommand)]
enum Show {
    /// Everything mpfr knows about one board
    Show {
        /// Board name
        name: String,
    },
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let cat = g.catalog()?;
        match self.show {
            None => {
                if p.json {
                    for b in cat.iter() {
                        p.json_line(&summary_json(b))?;
                    }
                } else {
                    let rows: Vec<Vec<String>> = cat
                        .iter()
                        .map(|b| {
                            vec![
                                b.name.clone(),
                                b.chip.clone(),
                                b.cores.to_string(),
                                b.ram.to_string(),
                                b.flasher().to_string(),
                                b.telemetry.to_string(),
                                b.description.clone(),
                            ]
                        })
                        .collect();
                    p.line(table(
                        &[
                            "BOARD",
                            "CHIP",
                            "CORES",
                            "RAM",
                            "FLASHER",
                            "TELEMETRY",
                            "DESCRIPTION",
                        ],
                        &rows,
                    ))?;
                    if let Some(f) = &cat.user_file {
                        p.note(format!(
                            "boards from {} added to the built-in catalog",
                            f.display()
                        ));
                    }
                }
            }
            Some(Show::Show { name }) => {
                let b = cat.get(&name)?;
                if p.json {
                    let mut v = serde_json::to_value(b).unwrap_or_default();
                    v["chip_info"] = serde_json::to_value(b.chip_info()).unwrap_or_default();
                    p.json_line(&v)?;
                } else {
                    p.line(details(b))?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn summary_json(b: &Board) -> serde_json::Value {
    serde_json::json!({
        "name": b.name,
        "description": b.description,
        "chip": b.chip,
        "cores": b.cores,
        "ram": b.ram.bytes(),
        "flasher": b.flasher(),
        "kernel": b.kernel,
        "telemetry": b.telemetry,
        "link": b.link.kind,
        "port": b.port.name,
        "origin": b.origin,
    })
}

fn details(b: &Board) -> String {
    let d = &b.defaults;
    let chip = match &b.chip_info() {
        Some(i) => format!(
            "{} (probe-rs: {}, {} core(s), RAM regions {} in all, largest {})",
            b.chip, i.target, i.cores, i.ram_total, i.ram_largest
        ),
        None => format!(
            "{} (not in the probe-rs target database; facts from the board file)",
            b.chip
        ),
    };
    let link = {
        let mut s = b.link.kind.to_string();
        if !b.link.usb.is_empty() {
            let ids: Vec<String> = b.link.usb.iter().map(ToString::to_string).collect();
            s.push_str(&format!(" {}", ids.join(", ")));
        }
        if let Some(baud) = b.link.baud {
            s.push_str(&format!(" @ {baud} baud"));
        }
        if let Some(c) = &b.link.command {
            s.push_str(&format!(" `{c}`"));
        }
        s
    };
    let rows = [
        ("board", b.name.clone()),
        ("description", b.description.clone()),
        ("chip", chip),
        ("cores", b.cores.to_string()),
        (
            "ram",
            format!("{} ({} reserved by the port)", b.ram, b.ram_reserved),
        ),
        (
            "flash",
            b.flash.map(|f| f.to_string()).unwrap_or_else(|| "-".into()),
        ),
        ("flasher", b.flasher().to_string()),
        ("kernel", b.kernel.to_string()),
        ("telemetry", b.telemetry.to_string()),
        ("link", link),
        (
            "port",
            format!(
                "{} ({}, BOARD={}{})",
                b.port.name,
                b.port.build,
                b.port.board,
                b.port
                    .variant
                    .as_deref()
                    .map(|v| format!(", VARIANT={v}"))
                    .unwrap_or_default()
            ),
        ),
        ("defined in", b.origin.to_string()),
        (
            "defaults",
            format!(
                "cores={} gc_heap={} heap={} stack={} thread_stack={} service_stack={} service_priority={} gil={} affinity={} tick_hz={}",
                d.cores.unwrap_or(b.cores),
                d.gc_heap,
                d.heap,
                d.stack,
                d.thread_stack,
                d.service_stack,
                d.service_priority,
                d.gil,
                d.affinity,
                d.tick_hz
            ),
        ),
    ];
    rows.iter()
        .map(|(k, v)| format!("{k:<12} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}
