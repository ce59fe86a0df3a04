//! `mpfr repl`: an interactive terminal on a board's REPL (Ctrl-] leaves).

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::mpsc;

use crate::ui::Printer;
use clap::Args;
use mpfr::device::Target;
use mpfr::repl::terminal::{TermEvent, passthrough};
use mpfr::util::sanitize::Sanitizer;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use super::{BoardArgs, GlobalArgs};

#[derive(Debug, Args)]
pub struct Cmd {
    #[command(flatten)]
    board: BoardArgs,
}

/// The terminal settings to put back, for the panic hook.
static SAVED: Mutex<Option<nix::libc::termios>> = Mutex::new(None);

fn restore_saved() {
    let saved = SAVED.lock().ok().and_then(|mut s| s.take());
    if let Some(t) = saved {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &Termios::from(t));
    }
}

/// The user's terminal in raw mode for as long as this lives (and not a moment after a panic).
struct RawTerminal;

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let orig = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        if let Ok(mut s) = SAVED.lock() {
            *s = Some(orig.into());
        }
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_saved();
            prev(info);
        }));
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore_saved();
    }
}

impl Cmd {
    pub fn run(self, g: &GlobalArgs, p: &Printer) -> mpfr::Result<ExitCode> {
        let board = &self.board.board(g)?;
        let target = Target::resolve(board, self.board.port.as_deref())?;
        let link = target.open()?;

        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });

        let passthrough_out = !p.json && p.stdout_is_terminal();
        let mut clean = Sanitizer::new();
        // The unix port prints program output with bare `\n` (its pty is raw); a raw terminal
        // needs `\r\n` or lines stair-step.
        let mut last = 0u8;
        let mut failed: Option<mpfr::Error> = None;
        let raw = RawTerminal::enter();
        let mut output = |data: &[u8]| {
            if data.is_empty() || failed.is_some() {
                return;
            }
            let r = if passthrough_out {
                let mut fixed = Vec::with_capacity(data.len() + 8);
                for &c in data {
                    if c == b'\n' && last != b'\r' {
                        fixed.push(b'\r');
                    }
                    fixed.push(c);
                    last = c;
                }
                p.raw(&fixed)
            } else {
                let mut out = Vec::new();
                clean.feed(data, &mut out);
                if p.json {
                    if out.is_empty() {
                        Ok(())
                    } else {
                        p.json_line(&serde_json::json!({
                            "type": "output", "text": String::from_utf8_lossy(&out)
                        }))
                    }
                } else {
                    p.raw(&out)
                }
            };
            if let Err(e) = r {
                failed = Some(e);
            }
        };
        let mut events = |e: TermEvent| {
            let line = match e {
                TermEvent::Connected(what) => format!("[mpfr] connected to {what}; Ctrl-] quits"),
                TermEvent::Waiting(why) => format!("[mpfr] {why}"),
            };
            if p.json {
                let _ = p.json_line(&serde_json::json!({ "type": "status", "text": line }));
            } else {
                // Raw mode: lines need an explicit carriage return.
                let _ = p.raw(format!("\r\n{line}\r\n").as_bytes());
            }
        };
        let r = passthrough(&target, Some(link), &rx, &mut output, &mut events);
        drop(raw);
        if !p.json {
            let _ = p.raw(b"\r\n");
        }
        if let Some(e) = failed {
            return Err(e);
        }
        r?;
        Ok(ExitCode::SUCCESS)
    }
}
