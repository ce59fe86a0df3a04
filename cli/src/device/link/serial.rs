//! A serial port link: USB CDC, UART bridges, and any pty (QEMU's UART, a socat bridge).

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
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
        // Checked before opening: TIOCEXCL does not stop root, so an open that succeeds proves
        // nothing, and a port shared with a terminal loses bytes to it at random.
        check_free(path)?;
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

/// Other processes that have `path` open, as `(pid, command line)`, found through
/// /proc/<pid>/fd (processes of other users are not readable and are missed). A process that
/// also holds the pty's master (QEMU for its UART, a socat bridge and the program it runs) is the
/// device end, not a competitor, and is left out.
pub fn holders(path: &Path) -> Vec<(u32, String)> {
    let Ok(want) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id();
    // For a pty slave /dev/pts/N: N, to recognise the processes holding its master.
    let index = want
        .strip_prefix("/dev/pts")
        .ok()
        .and_then(|n| n.to_str().map(str::to_string));
    let pty_index = index.as_deref();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut device_ends = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let mut holds = false;
        let mut device_end = false;
        for fd in fds.flatten() {
            let Ok(t) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if t == want {
                holds = true;
            } else if let Some(n) = pty_index
                && t.file_name().is_some_and(|f| f == "ptmx")
            {
                // The master of this very pty: this process is the device (a socat bridge,
                // an emulator), which keeps the slave open too.
                let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                    .unwrap_or_default();
                device_end |= info
                    .lines()
                    .any(|l| l.strip_prefix("tty-index:").map(str::trim) == Some(n));
            }
        }
        if device_end {
            device_ends.push(pid);
        }
        if !holds || device_end {
            continue;
        }
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let words: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let program = words
            .first()
            .and_then(|w| Path::new(w).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if program.starts_with("qemu-system") {
            continue;
        }
        let line = crate::util::sanitize::Sanitizer::one_line(&words.join(" "), 80);
        found.push((pid, ppid, line));
    }
    // A child of the device end inherited the slave from it (socat's EXEC program): the device.
    found
        .into_iter()
        .filter(|(_, ppid, _)| !device_ends.contains(ppid))
        .map(|(pid, _, line)| (pid, line))
        .collect()
}

/// `Busy` naming the holders when another process has `path` open (see [`holders`]).
pub fn check_free(path: &Path) -> Result<(), LinkError> {
    let held = holders(path);
    if held.is_empty() {
        Ok(())
    } else {
        Err(busy(path, &held, None))
    }
}

fn busy(path: &Path, held: &[(u32, String)], os_said: Option<&str>) -> LinkError {
    let holders = if held.is_empty() {
        format!(
            "another program has it open ({})",
            os_said.unwrap_or("the OS did not say which")
        )
    } else {
        held.iter()
            .map(|(pid, cmd)| format!("pid {pid} ({cmd}) has it open"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let help = match held.first() {
        Some((pid, _)) => format!(
            "close that program first (or `kill {pid}`): two programs on one port each get part of its output"
        ),
        None => "close the other program (a terminal, mpremote, another mpfr) and try again".into(),
    };
    LinkError::Busy {
        path: path.display().to_string(),
        holders,
        help,
    }
}

fn open_error(path: &Path, e: serialport::Error) -> LinkError {
    let reason = e.to_string();
    if reason.contains("EBUSY") || reason.contains("busy") || reason.contains("EWOULDBLOCK") {
        return busy(path, &holders(path), Some(&reason));
    }
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

    fn interrupt_harder(&mut self) -> Result<bool, LinkError> {
        use nix::sys::signal::{Signal, kill};
        let Some(pid) = unix_port_behind(&self.path) else {
            return Ok(false);
        };
        Ok(kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGINT).is_ok())
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

/// The MicroPython unix port at the far end of the pty `path`, when there is exactly one: the
/// process holding the pty's master (a socat bridge, a terminal program) or a child or
/// grandchild of it, whose command names `micropython`, and which runs as this user. Anything
/// else (QEMU behind its UART, a real serial port, two candidates) is none: mpfr signals only
/// the device the user pointed it at.
pub fn unix_port_behind(path: &Path) -> Option<u32> {
    let want = std::fs::canonicalize(path).ok()?;
    let index = want.strip_prefix("/dev/pts").ok()?.to_str()?.to_string();
    let me = proc_uid(std::process::id())?;
    let mut masters = Vec::new();
    let mut parent = std::collections::HashMap::new();
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = proc_ppid(pid) {
            parent.insert(pid, ppid);
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds_master = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.file_name().is_some_and(|f| f == "ptmx"))
                && std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.strip_prefix("tty-index:").map(str::trim) == Some(&index))
        });
        if holds_master {
            masters.push(pid);
        }
    }
    let near = |pid: u32| {
        let up = parent.get(&pid).copied();
        masters.contains(&pid)
            || up.is_some_and(|u| masters.contains(&u))
            || up
                .and_then(|u| parent.get(&u))
                .is_some_and(|g| masters.contains(g))
    };
    let mut found = parent
        .keys()
        .copied()
        .filter(|&pid| near(pid) && proc_uid(pid) == Some(me) && names_micropython(pid));
    let pid = found.next()?;
    found.next().is_none().then_some(pid)
}

fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn proc_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Real, effective, saved, filesystem: the effective one decides who may signal it.
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether the program (or the script an interpreter runs, as in `python .../micropython`) is
/// named `micropython...`.
fn names_micropython(pid: u32) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmd.split(|b| *b == 0).take(2).any(|w| {
        Path::new(std::ffi::OsStr::from_bytes(w))
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b"micropython"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a pty has a far end: a file that is no pty, or no file, has no process to signal.
    /// (The pty case, found and not found, is the e2e tests' `ctrl_c_of_run_over_a_pty_port_*`:
    /// here, MicroPython children of the test binary from other tests would muddle it.)
    #[test]
    fn no_unix_port_behind_what_is_no_pty() {
        assert_eq!(unix_port_behind(Path::new("/dev/null")), None);
        assert_eq!(unix_port_behind(Path::new("/nonexistent/pty")), None);
    }
}
