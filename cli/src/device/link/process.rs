//! The `host` board: the MicroPython unix port run as a child process on a pty of its own.
//! Its raw-REPL soft reset (Ctrl-D) ends the process, so a reset here means a respawn.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{
    LocalFlags, SetArg, SpecialCharacterIndices, cfmakeraw, tcgetattr, tcsetattr,
};

use super::{Link, LinkError};

/// Where the host board's `micropython` comes from: `$MPFR_MICROPYTHON`, else `.venv/bin/<name>`
/// in the current directory or one above it (the project's virtualenv), else `<name>` on `PATH`.
pub fn resolve_micropython(name: &str) -> PathBuf {
    crate::util::paths::project_tool("MPFR_MICROPYTHON", name)
}

/// A spawned MicroPython on the slave side of a pty; mpfr holds the master.
pub struct ProcessLink {
    program: PathBuf,
    args: Vec<String>,
    child: Child,
    master: File,
    slave_name: String,
    /// Bytes read while waiting for the first prompt, handed out by the next reads.
    pending: Vec<u8>,
}

impl ProcessLink {
    pub fn spawn(program: &Path, args: &[String]) -> Result<ProcessLink, LinkError> {
        let (child, master, slave_name) = start(program, args)?;
        let mut link = ProcessLink {
            program: program.to_path_buf(),
            args: args.to_vec(),
            child,
            master,
            slave_name,
            pending: Vec::new(),
        };
        link.await_prompt()?;
        Ok(link)
    }

    /// Waits for the first `>>> `: until the unix port has put its terminal in raw mode, a
    /// Ctrl-C byte would be a SIGINT that kills it.
    fn await_prompt(&mut self) -> Result<(), LinkError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1024];
        while !self.pending.windows(4).any(|w| w == b">>> ") {
            if std::time::Instant::now() >= deadline {
                return Err(LinkError::Spawn {
                    command: self.program.display().to_string(),
                    reason: format!(
                        "no REPL prompt within 10 s; it printed {}",
                        super::escape(&self.pending)
                    ),
                });
            }
            let n = self.read_pty(&mut buf, Duration::from_millis(100))?;
            self.pending.extend_from_slice(&buf[..n]);
        }
        Ok(())
    }

    /// The child's process id (tests use it to kill the device).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exit_detail(&mut self) -> String {
        // The pty reports EIO as soon as the child closed its side; give the exit a moment to
        // be reaped so the message can say how it ended.
        for _ in 0..50 {
            match self.child.try_wait() {
                Ok(Some(st)) => return format!("the process exited ({st})"),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        "the process closed its terminal".into()
    }

    fn gone(&mut self) -> LinkError {
        let detail = self.exit_detail();
        LinkError::Disconnected {
            what: self.describe(),
            detail,
        }
    }

    fn read_pty(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
        let ready = {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return Ok(0),
                Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
                Err(nix::errno::Errno::EINTR) => return Ok(0),
                Err(e) => {
                    return Err(LinkError::Io {
                        context: "poll on the host board's pty".into(),
                        source: e.into(),
                    });
                }
            }
        };
        if ready.is_empty() {
            return Ok(0);
        }
        match self.master.read(buf) {
            Ok(0) => Err(self.gone()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            // EIO: every slave descriptor is closed, i.e. the process is gone.
            Err(_) => Err(self.gone()),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(program: &Path, args: &[String]) -> Result<(Child, File, String), LinkError> {
    let spawn_err = |reason: String| LinkError::Spawn {
        command: program.display().to_string(),
        reason,
    };
    let pty = openpty(None, None).map_err(|e| spawn_err(format!("no pty: {e}")))?;
    // Raw on the device side (no CR/LF rewriting, no echo: the protocol needs bytes verbatim)
    // except ISIG: the unix port learns of Ctrl-C only as SIGINT from its terminal, which it
    // switches back to these settings while it runs code.
    let mut t = tcgetattr(pty.slave.as_fd()).map_err(|e| spawn_err(format!("termios: {e}")))?;
    cfmakeraw(&mut t);
    t.local_flags |= LocalFlags::ISIG;
    t.control_chars[SpecialCharacterIndices::VINTR as usize] = 0x03;
    t.control_chars[SpecialCharacterIndices::VQUIT as usize] = 0;
    t.control_chars[SpecialCharacterIndices::VSUSP as usize] = 0;
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t)
        .map_err(|e| spawn_err(format!("termios: {e}")))?;
    let slave_name = nix::unistd::ttyname(pty.slave.as_fd())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "a pty".into());
    let dup = |fd: &OwnedFd| {
        fd.try_clone()
            .map(Stdio::from)
            .map_err(|e| spawn_err(format!("dup: {e}")))
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(dup(&pty.slave)?)
        .stdout(dup(&pty.slave)?)
        .stderr(dup(&pty.slave)?);
    let slave_fd = pty.slave.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec (setsid, prctl, ioctl).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            // Its own session: a Ctrl-C at mpfr's terminal must not reach the device directly
            // (mpfr forwards it as \x03), and the pty becomes its controlling terminal.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // It dies with mpfr, even when mpfr is killed outright.
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if nix::libc::ioctl(slave_fd, nix::libc::TIOCSCTTY as _, 0) != 0 {
                // Not fatal: the REPL works without a controlling terminal.
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
    drop(pty.slave);
    Ok((child, File::from(pty.master), slave_name))
}

impl Link for ProcessLink {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.read_pty(buf, timeout)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        match self.master.write_all(data) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.gone()),
        }
    }

    fn interrupt(&mut self) -> Result<(), LinkError> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        // Only while code runs does the unix port catch SIGINT (KeyboardInterrupt); the engine
        // calls this only then. Should the code end in the same instant the process dies, which
        // the next command reports as a disconnect and a reopen respawns.
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGINT).map_err(|_| self.gone())
    }

    fn reset(&mut self) -> Result<(), LinkError> {
        self.stop();
        let (child, master, slave_name) = start(&self.program, &self.args)?;
        self.child = child;
        self.master = master;
        self.slave_name = slave_name;
        self.pending.clear();
        self.await_prompt()
    }

    fn soft_reset_exits(&self) -> bool {
        true
    }

    fn owns_device(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "{} (pid {}) on {}",
            self.program.display(),
            self.child.id(),
            self.slave_name
        )
    }
}

impl Drop for ProcessLink {
    fn drop(&mut self) {
        self.stop();
    }
}
