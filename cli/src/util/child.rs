//! Children that die with mpfr: a command mpfr waits for (make, a compiler) must not run on,
//! unowned, when mpfr is killed outright (SIGKILL leaves no handler to clean up).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Makes `cmd`'s process receive SIGKILL when the mpfr thread that starts it ends
/// (`PR_SET_PDEATHSIG`), which for a command run to completion is when mpfr dies.
pub fn dies_with_mpfr(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // mpfr died between fork and prctl: the signal will never come, so do not start.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("mpfr exited"));
            }
            Ok(())
        });
    }
    cmd
}

/// Why [`output_within`] has no output to give.
#[derive(Debug)]
pub enum Cut {
    /// Still running when the wall-clock limit passed; killed with its group.
    Timeout(Duration),
    /// Printed nothing for the inactivity limit; killed with its group.
    Idle(Duration),
    /// It could not be started or waited for.
    Io(std::io::Error),
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Timeout(d) => write!(f, "still running after {d:.1?}"),
            Cut::Idle(d) => write!(f, "silent for {d:.1?}"),
            Cut::Io(e) => e.fmt(f),
        }
    }
}

/// Runs `cmd` to its end within limits, with stdin closed and both streams captured: in its own
/// process group (a Ctrl-C at the terminal is mpfr's to handle), killed with its whole group when
/// it runs `timeout` in all or prints nothing for `idle`, and killed by the kernel when mpfr dies.
pub fn output_within(cmd: &mut Command, timeout: Duration, idle: Duration) -> Result<Output, Cut> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    dies_with_mpfr(cmd);
    let mut child = cmd.spawn().map_err(Cut::Io)?;
    let start = Instant::now();
    // Milliseconds since `start` of the last byte on either stream (the inactivity clock).
    let last = Arc::new(AtomicU64::new(0));
    let reader = |mut r: Box<dyn Read + Send>| {
        let last = last.clone();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            all
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout is piped")));
    let err = reader(Box::new(child.stderr.take().expect("stderr is piped")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(Cut::Io(e));
            }
        }
        let now = start.elapsed();
        let silent = now.saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let cut = if now >= timeout {
            Some(Cut::Timeout(timeout))
        } else if silent >= idle {
            Some(Cut::Idle(idle))
        } else {
            None
        };
        if let Some(cut) = cut {
            kill_group(&mut child);
            // The readers end once every process of the group is gone.
            let _ = out.join();
            let _ = err.join();
            return Err(cut);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the child's own group (created with process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether process `pid` has ended: gone, or a zombie its parent has not reaped yet.
#[cfg(test)]
pub(crate) fn gone_or_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_command_that_ends_gives_its_output() {
        let out = output_within(
            &mut sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn silence_and_overtime_are_cut_and_the_whole_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // A grandchild that would outlive a kill of the shell alone.
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let cut = output_within(
            &mut sh(&script),
            Duration::from_secs(60),
            Duration::from_millis(300),
        );
        assert!(matches!(cut, Err(Cut::Idle(_))), "{cut:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // Killed means gone or a zombie (its parent died too; whoever adopted it reaps it).
        let pid: i32 = pid.trim().parse().unwrap();
        let dead = || gone_or_zombie(pid);
        let t0 = Instant::now();
        while !dead() && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dead(), "the grandchild {pid} outlived the cut");

        let cut = output_within(
            &mut sh("while :; do echo tick; sleep 0.05; done"),
            Duration::from_millis(400),
            Duration::from_secs(60),
        );
        assert!(matches!(cut, Err(Cut::Timeout(_))), "{cut:?}");
        assert_eq!(cut.unwrap_err().to_string(), "still running after 400.0ms");
    }
}
