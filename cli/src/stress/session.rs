//! The [`Executor`] for MicroPython boards: a thin adapter over the REPL engine's
//! [`Session`](crate::repl::Session).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::device::link::LinkError;
use crate::repl::{self, ReplError, Session};

use super::fault::FaultWatch;
use super::{BoardFacts, Executor, Limits, RecoveryStep, RunEnd, TimeoutKind};

/// A way to hard-reset a board the REPL link cannot reset by itself (restart QEMU).
pub type ResetHook = Box<dyn FnMut() -> Result<(), String>>;

/// Runs tests through the raw REPL of one board.
pub struct SessionExecutor {
    session: Session,
    cancel: Option<Arc<AtomicBool>>,
    hard_reset: Option<ResetHook>,
}

impl std::fmt::Debug for SessionExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionExecutor")
            .field("session", &self.session)
            .finish()
    }
}

/// Output on its way to the runner, watched for a fault banner.
struct Forward<'a>(&'a mut dyn FnMut(&[u8]), FaultWatch);

impl repl::Sink for Forward<'_> {
    fn stdout(&mut self, data: &[u8]) {
        self.1.feed(data);
        (self.0)(data)
    }

    fn stop_following(&mut self) -> bool {
        self.1.done()
    }
}

impl SessionExecutor {
    pub fn new(session: Session) -> SessionExecutor {
        SessionExecutor {
            session,
            cancel: None,
            hard_reset: None,
        }
    }

    /// Ctrl-C from the user: the running test is interrupted.
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> SessionExecutor {
        self.cancel = Some(cancel);
        self
    }

    /// Hard reset by other means than the link (e.g. restarting the virtual board).
    pub fn with_hard_reset(mut self, hook: ResetHook) -> SessionExecutor {
        self.hard_reset = Some(hook);
        self
    }

    fn quick(&mut self, code: &str) -> Option<String> {
        let limits = repl::Limits {
            timeout: Some(Duration::from_secs(5)),
            idle: Some(Duration::from_secs(5)),
            cancel: self.cancel.clone(),
        };
        let out = self
            .session
            .exec(code.as_bytes(), &limits, &mut repl::Discard)
            .ok()?;
        if out.exception.is_some() {
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"))
    }
}

/// Whether a REPL error means the board went away (rather than misbehaving).
fn died(e: &ReplError) -> bool {
    matches!(
        e,
        ReplError::Disconnected { .. } | ReplError::Link(LinkError::Disconnected { .. })
    )
}

impl Executor for SessionExecutor {
    fn describe(&self) -> String {
        self.session.describe()
    }

    fn run(&mut self, payload: &str, limits: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd {
        let l = repl::Limits {
            timeout: Some(limits.timeout),
            idle: Some(limits.idle),
            cancel: self.cancel.clone(),
        };
        let start = std::time::Instant::now();
        let mut fwd = Forward(sink, FaultWatch::default());
        let r = self.session.exec(payload.as_bytes(), &l, &mut fwd);
        if let Some(banner) = fwd.1.banner() {
            // The firmware stopped: whatever the wait ended with, the board died.
            return RunEnd::Died {
                detail: format!("the firmware stopped: {banner}"),
            };
        }
        match r {
            Ok(o) => RunEnd::Finished {
                exception: o.exception.map(|e| e.traceback),
            },
            // A run that ended before the wall-clock limit can only have hit the inactivity one.
            Err(ReplError::Timeout { .. }) if start.elapsed() < limits.timeout => {
                RunEnd::TimedOut {
                    kind: TimeoutKind::Idle,
                    after: limits.idle,
                }
            }
            Err(ReplError::Timeout { .. }) => RunEnd::TimedOut {
                kind: TimeoutKind::Wall,
                after: limits.timeout,
            },
            Err(ReplError::Interrupted) => RunEnd::Failed {
                detail: "interrupted (Ctrl-C)".into(),
            },
            Err(e) if died(&e) => RunEnd::Died {
                detail: e.to_string(),
            },
            Err(e) => RunEnd::Failed {
                detail: e.to_string(),
            },
        }
    }

    fn recover(&mut self, step: RecoveryStep) -> Result<(), String> {
        let r = match step {
            RecoveryStep::Interrupt => self.session.interrupt(),
            RecoveryStep::SoftReset => self.session.soft_reset(),
            RecoveryStep::HardReset => match &mut self.hard_reset {
                Some(hook) => {
                    self.session.close();
                    return hook();
                }
                None => self.session.hard_reset(),
            },
        };
        r.map_err(|e| e.to_string())
    }

    fn healthy(&mut self) -> bool {
        self.quick("print(6 * 7)\n")
            .is_some_and(|s| s.lines().any(|l| l.trim() == "42"))
    }

    fn identify(&mut self) -> BoardFacts {
        let out = self.quick(
            "import sys\nprint('gil=' + str(getattr(sys.implementation, '_thread', None)))\nprint('version=' + sys.version)\ntry:\n    import mpfr\n    print('fp=0x%08x' % mpfr.stats()['fingerprint'])\nexcept Exception:\n    pass\n",
        );
        let mut facts = BoardFacts::default();
        for line in out.as_deref().unwrap_or("").lines() {
            if let Some(g) = line.strip_prefix("gil=") {
                facts.gil = (g != "None").then(|| g.trim().to_string());
            } else if let Some(v) = line.strip_prefix("version=") {
                facts.version = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("fp=") {
                facts.fingerprint = Some(v.trim().to_string());
            }
        }
        facts
    }

    fn fresh(&mut self) -> Result<(), String> {
        self.session.soft_reset().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::link::fake::{Action, FakeConfig, FakeDevice};

    fn executor() -> SessionExecutor {
        let cfg = FakeConfig {
            program: Box::new(|code: &[u8]| {
                let code = String::from_utf8_lossy(code);
                let out = |s: &str| vec![Action::Out(s.as_bytes().to_vec())];
                if code.contains("print(6 * 7)") {
                    out("42\r\n")
                } else if code.contains("gil=") {
                    out("gil=unsafe\r\nversion=3.4.0; MicroPython fake\r\nfp=0x0badf00d\r\n")
                } else if code.contains("#raise") {
                    vec![Action::Raise(b"Traceback\r\nValueError: x\r\n".to_vec())]
                } else if code.contains("#chatty") {
                    vec![Action::Forever(b".".to_vec())]
                } else if code.contains("#silent") {
                    vec![Action::Out(b"hi\r\n".to_vec()), Action::Forever(Vec::new())]
                } else if code.contains("#fault") {
                    // The qemu port's handler: banner, register dump, then silence for ever.
                    vec![
                        Action::Out(b"working\r\nHardFault exception caught:\r\nR0:   00000000 R1:   00000001\r\nxPSR: 61000000\r\n".to_vec()),
                        Action::Forever(Vec::new()),
                    ]
                } else if code.contains("#die") {
                    vec![Action::Out(b"bye\r\n".to_vec()), Action::Die]
                } else {
                    out("MPFR-RESULT {}\r\n")
                }
            }),
            ..FakeConfig::default()
        };
        let session = Session::from_link(Box::new(FakeDevice::new(cfg))).with_options(
            crate::repl::SessionOptions {
                connect_timeout: Duration::from_secs(2),
                enter_attempts: 2,
            },
        );
        SessionExecutor::new(session)
    }

    fn limits(timeout_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            timeout: Duration::from_millis(timeout_ms),
            idle: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn session_outcomes_map_to_run_ends() {
        let mut ex = executor();
        assert!(ex.healthy());
        let facts = ex.identify();
        assert_eq!(facts.gil.as_deref(), Some("unsafe"));
        assert_eq!(facts.version.as_deref(), Some("3.4.0; MicroPython fake"));
        assert_eq!(facts.fingerprint.as_deref(), Some("0x0badf00d"));

        let mut out = Vec::new();
        let end = ex.run("#ok", &limits(5000, 5000), &mut |b| {
            out.extend_from_slice(b)
        });
        assert_eq!(end, RunEnd::Finished { exception: None });
        assert!(String::from_utf8_lossy(&out).contains("MPFR-RESULT"));

        let end = ex.run("#raise", &limits(5000, 5000), &mut |_| {});
        assert!(
            matches!(&end, RunEnd::Finished { exception: Some(t) } if t.contains("ValueError: x")),
            "{end:?}"
        );
    }

    #[test]
    fn wall_and_idle_limits_are_told_apart() {
        let mut ex = executor();
        // Output keeps coming: only the wall-clock limit can end it.
        let end = ex.run("#chatty", &limits(300, 5000), &mut |_| {});
        assert_eq!(
            end,
            RunEnd::TimedOut {
                kind: TimeoutKind::Wall,
                after: Duration::from_millis(300)
            }
        );
        assert!(ex.healthy(), "interrupted and usable again");

        let end = ex.run("#silent", &limits(60_000, 200), &mut |_| {});
        assert_eq!(
            end,
            RunEnd::TimedOut {
                kind: TimeoutKind::Idle,
                after: Duration::from_millis(200)
            }
        );
    }

    /// Issue 16: a HardFault banner is a death at once (not the inactivity limit), with its
    /// text kept in the output.
    #[test]
    fn a_fault_banner_is_a_death_with_its_text() {
        let mut ex = executor();
        let mut out = Vec::new();
        // An idle limit the test would never reach waiting: only the banner can end it.
        let end = ex.run("#fault", &limits(600_000, 600_000), &mut |b| {
            out.extend_from_slice(b)
        });
        assert_eq!(
            end,
            RunEnd::Died {
                detail: "the firmware stopped: HardFault exception caught:".into()
            }
        );
        assert!(String::from_utf8_lossy(&out).contains("xPSR: 61000000"));
    }

    #[test]
    fn a_vanished_device_is_a_death() {
        let mut ex = executor();
        let mut out = Vec::new();
        let end = ex.run("#die", &limits(5000, 5000), &mut |b| {
            out.extend_from_slice(b)
        });
        assert!(matches!(end, RunEnd::Died { .. }), "{end:?}");
        assert!(String::from_utf8_lossy(&out).contains("bye"));
        // A given link cannot be reopened: the ladder has nothing to climb with.
        assert!(!ex.healthy());
    }
}
