//! The friendly-REPL passthrough behind `mpfr repl`: bytes from the user's terminal to the
//! device and back, Ctrl-] to leave, and waiting for a device that went away to come back
//! (the same USB serial number, the same path, or a respawned host process).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use crate::device::Target;
use crate::device::link::{Link, LinkError, list_ports};

/// The key that leaves `mpfr repl` (Ctrl-]).
pub const EXIT_KEY: u8 = 0x1d;

/// What the passthrough tells its user about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermEvent {
    /// Connected to the device described.
    Connected(String),
    /// The device went away; waiting for it, for the reason given.
    Waiting(String),
}

/// Runs the passthrough until Ctrl-] (or the input closes). `input` carries the user's
/// keystrokes; `output` gets device bytes as they arrive; `events` hears about connection
/// changes. `link` is an already open link, if any.
pub fn passthrough(
    target: &Target,
    link: Option<Box<dyn Link>>,
    input: &Receiver<Vec<u8>>,
    output: &mut dyn FnMut(&[u8]),
    events: &mut dyn FnMut(TermEvent),
) -> Result<(), LinkError> {
    let mut link = match link {
        Some(l) => l,
        None => target.open()?,
    };
    events(TermEvent::Connected(link.describe()));
    // A fresh Enter shows the prompt straight away, also on a board already at its REPL.
    link.write_all(b"\r")?;
    let mut buf = [0u8; 4096];
    loop {
        let mut lost: Option<LinkError> = None;
        loop {
            match input.try_recv() {
                Ok(chunk) => {
                    if let Some(p) = chunk.iter().position(|&c| c == EXIT_KEY) {
                        let _ = link.write_all(&chunk[..p]);
                        return Ok(());
                    }
                    if let Err(e) = link.write_all(&chunk) {
                        lost = Some(e);
                        break;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if lost.is_none() {
            match link.read(&mut buf, Duration::from_millis(20)) {
                Ok(n) => output(&buf[..n]),
                Err(e) => lost = Some(e),
            }
        }
        let Some(e) = lost else { continue };
        if !e.is_disconnect() {
            return Err(e);
        }
        drop(link);
        match wait_for_device(target, &e, input, events)? {
            Some(l) => {
                link = l;
                events(TermEvent::Connected(link.describe()));
                link.write_all(b"\r")?;
            }
            None => return Ok(()),
        }
    }
}

/// Waits until the device can be opened again; `None` when the user left meanwhile.
fn wait_for_device(
    target: &Target,
    why: &LinkError,
    input: &Receiver<Vec<u8>>,
    events: &mut dyn FnMut(TermEvent),
) -> Result<Option<Box<dyn Link>>, LinkError> {
    match target {
        Target::Process { .. } => {
            events(TermEvent::Waiting(format!("{why}; starting it again")));
            target.open().map(Some)
        }
        Target::Qemu { board, .. } => {
            events(TermEvent::Waiting(format!(
                "{why}; waiting for the virtual board to run again (`mpfr flash --board {}`; Ctrl-] to quit)",
                board.name
            )));
            loop {
                match input.recv_timeout(Duration::from_millis(250)) {
                    Ok(chunk) if chunk.contains(&EXIT_KEY) => return Ok(None),
                    Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
                }
                // A restarted QEMU has a new pty: look it up again.
                if let Ok(path) = crate::device::qemu_uart(&board.name)
                    && let Ok(l) = (Target::Qemu {
                        board: board.clone(),
                        path,
                    })
                    .open()
                {
                    return Ok(Some(l));
                }
            }
        }
        Target::Port {
            path, usb_serial, ..
        } => {
            let what = match usb_serial {
                Some(s) => format!("the device with USB serial {s}"),
                None => path.display().to_string(),
            };
            events(TermEvent::Waiting(format!(
                "{why}; waiting for {what} to come back (Ctrl-] to quit)"
            )));
            loop {
                match input.recv_timeout(Duration::from_millis(250)) {
                    Ok(chunk) if chunk.contains(&EXIT_KEY) => return Ok(None),
                    Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
                }
                let again = match usb_serial {
                    Some(s) => list_ports()
                        .into_iter()
                        .find(|c| c.serial.as_deref() == Some(s.as_str()))
                        .map(|c| Target::Port {
                            path: c.path,
                            baud: match target {
                                Target::Port { baud, .. } => *baud,
                                _ => 115_200,
                            },
                            reset_on_open: false,
                            usb_serial: c.serial,
                        }),
                    None => path.exists().then(|| target.clone()),
                };
                // Never reset a board that just came back: it is already fresh.
                let again = again.map(|t| match t {
                    Target::Port {
                        path,
                        baud,
                        usb_serial,
                        ..
                    } => Target::Port {
                        path,
                        baud,
                        reset_on_open: false,
                        usb_serial,
                    },
                    other => other,
                });
                if let Some(t) = again
                    && let Ok(l) = t.open()
                {
                    return Ok(Some(l));
                }
            }
        }
    }
}
