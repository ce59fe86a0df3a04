//! A serial port link: USB CDC, UART bridges, and any pty (QEMU's UART, a socat bridge).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use super::{Link, LinkError};

/// An exclusively opened serial port.
pub struct SerialLink {
    port: TTYPort,
    path: PathBuf,
    reset_on_open: bool,
}

impl SerialLink {
    /// Opens `path` exclusively. DTR/RTS are left as the OS has them unless the board says
    /// opening should reset it (`link.reset_on_open`); on a pty those lines do not exist and the
    /// failure to set them is ignored.
    pub fn open(path: &Path, baud: u32, reset_on_open: bool) -> Result<SerialLink, LinkError> {
        let name = path.to_string_lossy().into_owned();
        let port = serialport::new(&name, baud)
            .timeout(Duration::from_millis(100))
            .preserve_dtr_on_open()
            .open_native()
            .map_err(|e| open_error(path, e))?;
        let mut link = SerialLink {
            port,
            path: path.to_path_buf(),
            reset_on_open,
        };
        if reset_on_open {
            link.pulse_reset();
        }
        Ok(link)
    }

    /// Pulses RTS (EN on ESP boards) with DTR released, the usual auto-reset wiring; a pty
    /// answers ENOTTY, which is fine.
    fn pulse_reset(&mut self) {
        let _ = self.port.write_data_terminal_ready(false);
        let _ = self.port.write_request_to_send(true);
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.port.write_request_to_send(false);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_error(path: &Path, e: serialport::Error) -> LinkError {
    let reason = e.to_string();
    let help = match e.kind() {
        serialport::ErrorKind::NoDevice => {
            "the device is gone; plug it in again or check the path with `ls /dev/tty*`".into()
        }
        serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => {
            "add yourself to the group owning the port (usually `dialout`) and log in again".into()
        }
        serialport::ErrorKind::Io(std::io::ErrorKind::NotFound) => {
            "no such port; check the path (QEMU prints its pty when it starts)".into()
        }
        _ if reason.contains("EBUSY")
            || reason.contains("busy")
            || reason.contains("EWOULDBLOCK") =>
        {
            "another program holds the port (a terminal, mpremote, another mpfr); close it".into()
        }
        _ => "check the path and that no other program holds the port".into(),
    };
    LinkError::Open {
        path: path.display().to_string(),
        reason,
        help,
    }
}

impl Link for SerialLink {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if timeout.is_zero() {
            // A poll: serialport's smallest timeout is 1 ms, too slow between raw-paste writes.
            match self.port.bytes_to_read() {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(self.gone(&e.to_string())),
            }
        }
        // serialport's timeout has millisecond resolution; zero would mean "block".
        let t = timeout.max(Duration::from_millis(1));
        if self.port.timeout() != t {
            self.port
                .set_timeout(t)
                .map_err(|e| self.io("cannot set the read timeout", e.into()))?;
        }
        match self.port.read(buf) {
            Ok(0) => Err(self.gone("end of file")),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(self.gone(&e.to_string())),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        let mut rest = data;
        while !rest.is_empty() {
            match self.port.write(rest) {
                Ok(0) => return Err(self.gone("write returned 0")),
                Ok(n) => rest = &rest[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(self.gone(&e.to_string())),
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), LinkError> {
        if !self.reset_on_open {
            return Err(LinkError::Unsupported {
                what: format!("{} has no reset line mpfr may use", self.path.display()),
                help: "reset the board by hand, use a debug probe, or set `reset_on_open = true` in the board's link if its DTR/RTS reset it".into(),
            });
        }
        self.pulse_reset();
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

impl SerialLink {
    fn gone(&self, detail: &str) -> LinkError {
        LinkError::Disconnected {
            what: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    fn io(&self, context: &str, source: std::io::Error) -> LinkError {
        LinkError::Io {
            context: format!("{}: {context}", self.path.display()),
            source,
        }
    }
}
