//! Where a board's console is and how to open it: `--port`, the host process, the running
//! virtual board's UART or the USB device found by VID:PID, resolved without device I/O.

use std::path::{Path, PathBuf};

use crate::board::{Board, LinkKind};

use super::link::{Link, LinkError, ProcessLink, SerialLink, find_usb_port, resolve_micropython};
use super::vboard::{Instance, UartLink};

/// Where a board's REPL is, resolved from the board and the command line without device I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A serial device path (a tty, a USB CDC port, any pty such as QEMU's UART).
    Port {
        path: PathBuf,
        baud: u32,
        reset_on_open: bool,
        /// USB serial number, when the port was found by VID:PID (used to find it again).
        usb_serial: Option<String>,
    },
    /// A local process on a pty (the host board).
    Process { program: PathBuf, args: Vec<String> },
    /// UART0 of the running QEMU virtual board `board` (a hard reset restarts QEMU).
    Qemu { board: Box<Board>, path: PathBuf },
}

impl Target {
    /// Resolves where `board` is: `--port` (a path, or a USB serial number among the board's
    /// devices) wins; otherwise the host process, the running virtual board's UART, or the USB
    /// device found by VID:PID.
    pub fn resolve(board: &Board, port: Option<&str>) -> Result<Target, LinkError> {
        let baud = board.link.baud.unwrap_or(115_200);
        let reset_on_open = board.link.reset_on_open;
        if let Some(p) = port {
            let path = Path::new(p);
            if path.exists() || p.starts_with('/') || p.contains(std::path::MAIN_SEPARATOR) {
                return Ok(Target::Port {
                    path: path.to_path_buf(),
                    baud,
                    reset_on_open,
                    usb_serial: None,
                });
            }
            // Not a path: a USB serial number choosing one of the board's devices.
            let found = find_usb_port(board, Some(p))?;
            return Ok(Target::Port {
                path: found.path,
                baud,
                reset_on_open,
                usb_serial: found.serial,
            });
        }
        match board.link.kind {
            LinkKind::Process => {
                let command = board.link.command.as_deref().unwrap_or("micropython");
                let mut words = command.split_whitespace();
                let program = words.next().unwrap_or("micropython");
                Ok(Target::Process {
                    program: resolve_micropython(program),
                    args: words.map(str::to_string).collect(),
                })
            }
            LinkKind::Qemu => Ok(Target::Qemu {
                board: Box::new(board.clone()),
                path: qemu_uart(&board.name)?,
            }),
            LinkKind::Usb | LinkKind::Uart => {
                let found = find_usb_port(board, None)?;
                Ok(Target::Port {
                    path: found.path,
                    baud,
                    reset_on_open,
                    usb_serial: found.serial,
                })
            }
        }
    }

    /// Opens the link (spawns the process, opens the port).
    pub fn open(&self) -> Result<Box<dyn Link>, LinkError> {
        match self {
            Target::Port {
                path,
                baud,
                reset_on_open,
                ..
            } => Ok(Box::new(SerialLink::open(path, *baud, *reset_on_open)?)),
            Target::Process { program, args } => Ok(Box::new(ProcessLink::spawn(program, args)?)),
            Target::Qemu { board, path } => Ok(Box::new(UartLink::open(board, path)?)),
        }
    }

    /// For messages before anything is opened.
    pub fn describe(&self) -> String {
        match self {
            Target::Port {
                path, usb_serial, ..
            } => match usb_serial {
                Some(s) => format!("{} (USB serial {s})", path.display()),
                None => path.display().to_string(),
            },
            Target::Process { program, .. } => format!("{} on a pty", program.display()),
            Target::Qemu { board, path } => {
                format!("{} (UART0 of {})", path.display(), board.name)
            }
        }
    }
}

/// The UART pty of the running virtual board, from its record (written by `mpfr flash`).
pub fn qemu_uart(board: &str) -> Result<PathBuf, LinkError> {
    match Instance::load(board) {
        Ok(Some(i)) => Ok(i.uart_pty),
        Ok(None) => Err(LinkError::NoDevice {
            what: format!("no running virtual board `{board}`"),
            help: format!(
                "start it with `mpfr flash --board {board}`, or pass the UART pty with --port /dev/pts/N"
            ),
        }),
        Err(e) => Err(LinkError::NoDevice {
            what: e.to_string(),
            help: format!("start it again with `mpfr flash --board {board}`"),
        }),
    }
}
