//! `mpfr devices`: connected MicroPython boards, ESP serial bridges, debug probes and running
//! virtual boards.

use std::process::ExitCode;

use crate::ui::Printer;
use clap::Args;
use mpfr::device::discover::{self, PortKind};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct Cmd {
    /// Also list serial ports without USB ids (built-in UARTs)
    #[arg(long)]
    all: bool,
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let cat = g.catalog()?;
        let d = discover::discover(&cat, self.all);
        if p.json {
            for s in &d.serial {
                p.json_line(&tagged("serial", s))?;
            }
            for s in &d.probes {
                p.json_line(&tagged("probe", s))?;
            }
            for s in &d.virtual_boards {
                p.json_line(&tagged("virtual", s))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        for s in &d.serial {
            let what = match s.kind {
                PortKind::Micropython => "micropython",
                PortKind::EspBridge => "esp-bridge",
                PortKind::Other => "serial",
            };
            let detail = match (&s.bridge, s.boards.is_empty()) {
                (Some(b), _) => b.clone(),
                (None, false) => s.boards.join(", "),
                (None, true) => s.product.clone().unwrap_or_default(),
            };
            rows.push(vec![
                what.into(),
                s.path.display().to_string(),
                s.usb.clone().unwrap_or_else(|| "-".into()),
                s.serial.clone().unwrap_or_else(|| "-".into()),
                detail,
            ]);
        }
        for pr in &d.probes {
            rows.push(vec![
                "probe".into(),
                pr.name.clone(),
                pr.usb.clone(),
                pr.serial.clone().unwrap_or_else(|| "-".into()),
                if pr.accessible {
                    String::new()
                } else {
                    "no access (udev rules?)".into()
                },
            ]);
        }
        for v in &d.virtual_boards {
            rows.push(vec![
                "virtual".into(),
                v.uart.display().to_string(),
                "-".into(),
                format!("pid {}", v.pid),
                format!("{} ({})", v.board, v.console),
            ]);
        }
        if rows.is_empty() {
            p.note(
                "nothing connected: no USB serial ports, debug probes or running virtual boards",
            );
            return Ok(ExitCode::SUCCESS);
        }
        p.line(mpfr::text::table(&["kind", "where", "usb", "serial", "board"], &rows).trim_end())?;
        Ok(ExitCode::SUCCESS)
    }
}

fn tagged(kind: &str, v: &impl serde::Serialize) -> serde_json::Value {
    let mut j = serde_json::to_value(v).unwrap_or_default();
    if let Some(o) = j.as_object_mut() {
        o.insert("type".into(), kind.into());
    }
    j
}
