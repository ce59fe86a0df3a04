//! Children that die with mpfr: a command mpfr waits for (make, a compiler) must not run on,
//! unowned, when mpfr is killed outright (SIGKILL leaves no handler to clean up).

use std::os::unix::process::CommandExt;
use std::process::Command;

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
