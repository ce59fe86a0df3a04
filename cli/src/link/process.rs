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
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use super::{Link, LinkError};

/// Where the host board's `micropython` comes from: `$MPFR_MICROPYTHON`, else `.venv/bin/<name>`
/// in the current directory or one above it (the project's virtualenv), else `<name>` on `PATH`.
pub fn resolve_micropython(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("MPFR_MICROPYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if name.contains('/') {
        return PathBuf::from(name);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join(".venv/bin").join(name);
            if cand.is_file() {
                return cand;
            }
        }
    }
    PathBuf::from(name)
}

/// A spawned MicroPython on the slave side of a pty; mpfr holds the master.
pub struct ProcessLink {
    program: PathBuf,
    args: Vec<String>,
    child: Child,
    master: File,
    slave_name: String,
}

impl ProcessLink {
    pub fn spawn(program: &Path, args: &[String]) -> Result<ProcessLink, LinkError> {
        let (child, master, slave_name) = start(program, args)?;
        Ok(ProcessLink {
            program: program.to_path_buf(),
            args: args.to_vec(),
            child,
            master,
            slave_name,
        })
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
    // Raw on the device side: no CR/LF rewriting, no echo, no signals from ^C (the REPL
    // protocol needs those bytes verbatim).
    let mut t = tcgetattr(pty.slave.as_fd()).map_err(|e| spawn_err(format!("termios: {e}")))?;
    cfmakeraw(&mut t);
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
    // SAFETY: only async-signal-safe calls between fork and exec (setsid, ioctl).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            // Its own session: a Ctrl-C at mpfr's terminal must not reach the device directly
            // (mpfr forwards it as \x03), and the pty becomes its controlling terminal.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
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

    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        match self.master.write_all(data) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.gone()),
        }
    }

    fn reset(&mut self) -> Result<(), LinkError> {
        self.stop();
        let (child, master, slave_name) = start(&self.program, &self.args)?;
        self.child = child;
        self.master = master;
        self.slave_name = slave_name;
        Ok(())
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
