//! Byte streams to a device: a serial port (USB CDC, UART bridge, any pty), the MicroPython unix
//! port spawned on a pty (the `host` board), the QEMU virtual board's UART, and a scripted fake
//! for unit tests. Everything above (the REPL engine) sees only the [`Link`] trait.

mod detect;
pub mod fake;
mod process;
mod serial;

use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::Diagnostic;

use crate::board::{Board, LinkKind};

pub use detect::{PortCandidate, find_usb_port, list_ports};
pub use process::{ProcessLink, resolve_micropython};
pub use serial::SerialLink;

/// A bidirectional byte stream to a board's REPL.
pub trait Link: Send {
    /// Reads what is available, waiting at most `timeout` for the first byte. `Ok(0)` means
    /// nothing arrived in time; a vanished device is [`LinkError::Disconnected`].
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError>;

    /// Writes every byte (blocking until the OS took them).
    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError>;

    /// Interrupts code running on the device: Ctrl-C on the wire. (The unix port's raw REPL
    /// does not read its input while code runs, so the host link sends SIGINT instead.)
    fn interrupt(&mut self) -> Result<(), LinkError> {
        self.write_all(b"\x03")
    }

    /// Hard-resets the board: respawn the host process, pulse the reset lines of a serial port
    /// whose board allows it. Returns an error when this link cannot reset its board.
    fn reset(&mut self) -> Result<(), LinkError>;

    /// True when a soft reset (Ctrl-D in the raw REPL) ends the device instead of rebooting it:
    /// the unix port exits, so its link must [`Link::reset`] to get a board back.
    fn soft_reset_exits(&self) -> bool {
        false
    }

    /// True when the device ends with this link (a spawned process), so work cannot be left
    /// running on it after mpfr exits.
    fn owns_device(&self) -> bool {
        false
    }

    /// What this link talks to, for messages (`/dev/ttyACM0`, `micropython (pid 123) on /dev/pts/4`).
    fn describe(&self) -> String;
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        (**self).read(buf, timeout)
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        (**self).write_all(data)
    }
    fn interrupt(&mut self) -> Result<(), LinkError> {
        (**self).interrupt()
    }
    fn reset(&mut self) -> Result<(), LinkError> {
        (**self).reset()
    }
    fn soft_reset_exits(&self) -> bool {
        (**self).soft_reset_exits()
    }
    fn owns_device(&self) -> bool {
        (**self).owns_device()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Failures of a link.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LinkError {
    /// The device went away (unplugged, process exited, QEMU stopped).
    #[error("{what} disconnected{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    #[diagnostic(
        code(mpfr::link::disconnected),
        help(
            "check the cable or that the board is still powered; for the host board the MicroPython process ended"
        )
    )]
    Disconnected { what: String, detail: String },

    /// The port exists but could not be opened.
    #[error("cannot open {path}: {reason}")]
    #[diagnostic(code(mpfr::link::open), help("{help}"))]
    Open {
        path: String,
        reason: String,
        help: String,
    },

    /// The host board's MicroPython could not be started.
    #[error("cannot start `{command}`: {reason}")]
    #[diagnostic(
        code(mpfr::link::spawn),
        help(
            "run scripts/setup.sh to install the MicroPython unix port into .venv, or point $MPFR_MICROPYTHON at a `micropython` executable"
        )
    )]
    Spawn { command: String, reason: String },

    /// No device with the board's USB ids is attached (or several are and none was chosen).
    #[error("{what}")]
    #[diagnostic(code(mpfr::link::no_device), help("{help}"))]
    NoDevice { what: String, help: String },

    /// The link cannot do what was asked (e.g. a hard reset over a plain UART).
    #[error("{what}")]
    #[diagnostic(code(mpfr::link::unsupported), help("{help}"))]
    Unsupported { what: String, help: String },

    /// Reading or writing failed for another reason.
    #[error("{context}: {source}")]
    #[diagnostic(code(mpfr::link::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl LinkError {
    pub fn is_disconnect(&self) -> bool {
        matches!(self, LinkError::Disconnected { .. })
    }
}

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
    Qemu { board: String, path: PathBuf },
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
                board: board.name.clone(),
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
            Target::Qemu { board, path } => Ok(Box::new(QemuLink {
                board: board.clone(),
                inner: SerialLink::open(path, 115_200, false)?,
            })),
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
            Target::Qemu { board, path } => format!("{} (UART0 of {board})", path.display()),
        }
    }
}

/// The UART pty of the running virtual board, from its record (written by `mpfr flash`).
pub fn qemu_uart(board: &str) -> Result<PathBuf, LinkError> {
    match crate::device::vboard::Instance::load(board) {
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

/// The QEMU UART: a pty, whose board is reset by restarting QEMU on the same image.
struct QemuLink {
    board: String,
    inner: SerialLink,
}

impl Link for QemuLink {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inner.read(buf, timeout)
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        self.inner.write_all(data)
    }
    fn reset(&mut self) -> Result<(), LinkError> {
        let failed = |e: crate::device::vboard::VboardError| LinkError::Unsupported {
            what: format!("cannot restart the virtual board `{}`: {e}", self.board),
            help: format!("start it again with `mpfr flash --board {}`", self.board),
        };
        let inst = crate::device::vboard::Instance::load(&self.board)
            .map_err(failed)?
            .ok_or_else(|| LinkError::NoDevice {
                what: format!("the virtual board `{}` is not running", self.board),
                help: format!("start it with `mpfr flash --board {}`", self.board),
            })?;
        let new = inst.restart().map_err(failed)?;
        self.inner = SerialLink::open(&new.uart_pty, 115_200, false)?;
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} (UART0 of {})", self.inner.describe(), self.board)
    }
}
