//! Byte streams to a device: a serial port (USB CDC, UART bridge, any pty), the MicroPython unix
//! port spawned on a pty (the `host` board), the QEMU virtual board's UART, and a scripted fake
//! for unit tests. Everything above (the REPL engine) sees only the [`Link`] trait.

mod detect;
pub mod fake;
mod process;
mod serial;

use std::time::Duration;

use miette::Diagnostic;

pub use detect::{PortCandidate, find_usb_port, list_ports};
pub use process::{ProcessLink, resolve_micropython};
pub use serial::{SerialLink, check_free, holders};

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

    /// Interrupts the device another way when Ctrl-C on the wire did not stop its code, where
    /// this link can: the MicroPython unix port behind a pty reads no input while code runs,
    /// so the process at the far end gets SIGINT. False when the link has no other way.
    fn interrupt_harder(&mut self) -> Result<bool, LinkError> {
        Ok(false)
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
    fn interrupt_harder(&mut self) -> Result<bool, LinkError> {
        (**self).interrupt_harder()
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

    /// Another process has the port open: two readers would each get part of the output.
    #[error("{path} is busy: {holders}")]
    #[diagnostic(code(mpfr::link::busy), help("{help}"))]
    Busy {
        path: String,
        /// Who holds it (`pid N (command)`), or what the OS said when /proc does not tell.
        holders: String,
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

/// Bytes a device sent, for error messages: printable ASCII with escapes, the last 256 bytes
/// (what came just before the failure).
pub fn escape(b: &[u8]) -> String {
    crate::util::sanitize::quote_tail(b, 256)
}

impl LinkError {
    pub fn is_disconnect(&self) -> bool {
        matches!(self, LinkError::Disconnected { .. })
    }
}
