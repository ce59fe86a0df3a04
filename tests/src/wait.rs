//! The one way end-to-end tests wait: poll a condition until it holds or a deadline passes, and
//! on timeout say what was awaited and what was last seen.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// A generous limit for things a loaded 2-core machine may be slow at (QEMU boot, MicroPython
/// start, a console command).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What one look at the condition found: done with a value, or not yet with an observation.
pub trait Poll {
    type Out;
    /// `Ok` when the wait is over; `Err` carries what was seen instead.
    fn poll(self) -> Result<Self::Out, String>;
}

impl Poll for bool {
    type Out = ();
    fn poll(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Poll for Option<T> {
    type Out = T;
    fn poll(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".into())
    }
}

impl<T, S: Display> Poll for Result<T, S> {
    type Out = T;
    fn poll(self) -> Result<T, String> {
        self.map_err(|s| s.to_string())
    }
}

/// Calls `look` until it is done (`true`, `Some(v)`, `Ok(v)`) and returns the value; panics
/// after `limit` naming `what` and the last observation (`Err(seen)` gives the best message).
/// Polls quickly at first, then every 100 ms, so short waits stay short and long ones cheap.
pub fn wait_for<P: Poll>(what: &str, limit: Duration, mut look: impl FnMut() -> P) -> P::Out {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let seen = match look().poll() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() >= limit {
            panic!("timed out after {limit:?} waiting for {what}; last seen:\n{seen}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_done() {
        let mut n = 0;
        let v = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            if n >= 3 {
                Ok(n)
            } else {
                Err(format!("n = {n}"))
            }
        });
        assert_eq!(v, 3);
    }

    #[test]
    fn timeout_names_the_wait_and_the_last_observation() {
        let r = std::panic::catch_unwind(|| {
            wait_for("a miracle", Duration::from_millis(30), || {
                Err::<(), _>("still nothing")
            })
        });
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().expect("message");
        assert!(msg.contains("waiting for a miracle"), "{msg}");
        assert!(msg.contains("still nothing"), "{msg}");
    }

    #[test]
    fn bool_and_option_conditions() {
        wait_for("true", Duration::from_secs(1), || true);
        assert_eq!(wait_for("some", Duration::from_secs(1), || Some(7)), 7);
    }
}
