//! Cancellation: one process-wide token that SIGINT and SIGTERM trip instead of killing mpfr,
//! so long operations end cleanly (the device is sent Ctrl-C and left at its prompt, a debugger
//! detaches and lets a paused guest run). The binary calls [`install`] for the commands that
//! poll; the library only polls ([`requested`], or the flag from [`token`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};

static TOKEN: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static INSTALL: Once = Once::new();

fn shared() -> &'static Arc<AtomicBool> {
    TOKEN.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe. The token exists before the handler is set.
    if let Some(t) = TOKEN.get() {
        t.store(true, Ordering::SeqCst);
    }
}

/// Makes SIGINT and SIGTERM set the token rather than end the process. Idempotent.
pub fn install() {
    shared();
    INSTALL.call_once(|| {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        // SA_RESTART: reads and writes in progress go on; the loops see the token next round.
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic initialised above.
            let _ = unsafe { sigaction(sig, &action) };
        }
    });
}

/// The process-wide token, for APIs that take a flag (`repl::Limits::cancel`, the stress
/// runner). Not tripped by signals until [`install`] ran.
pub fn token() -> Arc<AtomicBool> {
    shared().clone()
}

/// True once cancellation was requested.
pub fn requested() -> bool {
    shared().load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{Signal, raise};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    /// In a child process, so the token of the test process (polled by other tests) stays
    /// untouched: without the handler the child dies of the signal.
    fn child_survives(sig: Signal) -> WaitStatus {
        // Allocated before fork: the child only sets handlers, raises and reads an atomic.
        let _ = token();
        // SAFETY: the child makes no allocation and ends with _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                install();
                let _ = raise(sig);
                // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
                unsafe { libc::_exit(if requested() { 0 } else { 3 }) }
            }
            ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
        }
    }

    #[test]
    fn sigint_and_sigterm_trip_the_token_instead_of_killing() {
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            match child_survives(sig) {
                WaitStatus::Exited(_, 0) => {}
                other => panic!("{sig}: {other:?}"),
            }
        }
        assert!(!requested(), "the test process itself was not cancelled");
    }
}
