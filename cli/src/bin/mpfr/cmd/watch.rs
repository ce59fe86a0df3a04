//! `mpfr watch LOCAL [--run main.py]`: sync LOCAL on every change, soft-reset, run the entry
//! file and stream its output; Ctrl-C leaves the board at its REPL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::ui::Printer;
use clap::Args;
use mpfr::fs::sync::{self, Options};
use mpfr::fs::{DeviceFs, RemotePath};
use mpfr::repl::{Limits, ReplError};

use super::exec::{OutputSink, ctrl_c_flag};
use super::sync::mpy_compiler;
use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
    /// Device file to run after each sync (relative to REMOTE)
    #[arg(long, default_value = "main.py", value_name = "FILE")]
    run: String,
    /// Also remove device files that are not in LOCAL
    #[arg(long)]
    delete: bool,
    /// Compile .py files (but boot.py and main.py) to .mpy with mpy-cross before copying
    #[arg(long)]
    mpy: bool,
    /// Local folder
    local: PathBuf,
    /// Device folder [default: `:`]
    #[arg(default_value = ":")]
    remote: String,
}

/// Newest modification time and entry count of the tree: a change in either means "sync".
fn fingerprint(root: &Path) -> (Option<SystemTime>, usize) {
    let Ok(tree) = sync::scan(root) else {
        return (None, 0);
    };
    let newest = tree
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).and_then(|m| m.modified()).ok())
        .max();
    (newest, tree.files.len() + tree.dirs.len())
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let remote = RemotePath::parse(&self.remote)?;
        let mpy = self.mpy.then(mpy_compiler).transpose()?;
        let (_, mut session) = self.board.session(g, p)?;
        let ctrl_c = ctrl_c_flag();
        let opts = Options {
            delete: self.delete,
            dry_run: false,
            mpy,
        };
        let entry = remote.join_rel(&self.run);
        loop {
            let seen = fingerprint(&self.local);
            let report = {
                let mut fs = DeviceFs::new(&mut session).with_cancel(ctrl_c.clone());
                sync::run(&mut fs, &self.local, &remote, &opts, &mut |_| {})
            };
            match report {
                Ok(r) => p.status(
                    "Synced",
                    format!(
                        "{} copied, {} unchanged",
                        r.plan
                            .actions
                            .iter()
                            .filter(|a| matches!(a, sync::Action::Copy { .. }))
                            .count(),
                        r.plan.unchanged
                    ),
                ),
                Err(e) if ctrl_c.load(Ordering::Relaxed) => {
                    drop(e);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            session.soft_reset()?;
            p.status("Running", entry.display());
            // A watcher thread stops the program when the tree changes or on Ctrl-C.
            let stop = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicBool::new(false));
            let watcher = {
                let (stop, done, ctrl_c) = (stop.clone(), done.clone(), ctrl_c.clone());
                let local = self.local.clone();
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        if ctrl_c.load(Ordering::Relaxed) || fingerprint(&local) != seen {
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    }
                })
            };
            let code = format!("exec(open({}).read())\n", entry.py());
            let limits = Limits {
                timeout: None,
                idle: None,
                cancel: Some(stop.clone()),
            };
            let mut sink = OutputSink::new(p);
            let r = session.exec(code.as_bytes(), &limits, &mut sink);
            match r {
                Ok(o) => {
                    if let Some(e) = o.exception {
                        p.device_stderr(&e.traceback);
                    }
                    p.note("finished; waiting for a change (Ctrl-C leaves)");
                    // Wait for the watcher's verdict.
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Err(ReplError::Interrupted) => {}
                Err(e) => {
                    done.store(true, Ordering::Relaxed);
                    let _ = watcher.join();
                    return Err(e.into());
                }
            }
            done.store(true, Ordering::Relaxed);
            let _ = watcher.join();
            if ctrl_c.load(Ordering::Relaxed) {
                break;
            }
            p.status("Changed", "syncing again");
        }
        session.close();
        p.warn("interrupted: the board was left at its REPL");
        Ok(ExitCode::from(130))
    }
}
