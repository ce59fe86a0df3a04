//! Fault banners on a board's console: the firmware stopped (HardFault, assert, stack
//! overflow, a fatal error) and nothing more will come, so the test is a CRASH at once rather
//! than a TIMEOUT after the inactivity limit.

use std::time::{Duration, Instant};

/// How a line that announces a stopped firmware starts, or what it holds.
const STARTS: &[&str] = &[
    // mpfr's reference firmware and runtime: `FATAL <what>`.
    "FATAL ",
    // MicroPython's stm32 and rp2 ports: `FATAL ERROR:`, `FATAL: uncaught exception`.
    "FATAL:",
    // ESP-IDF's panic handler.
    "Guru Meditation Error",
];
/// MicroPython's qemu port (and firmware built on it): `HardFault exception caught:` and the
/// other Cortex-M exception names, followed by a register dump ending in `xPSR:`.
const CAUGHT: &str = " exception caught:";
const DUMP_END: &str = "xPSR:";
/// How long to keep reading after a banner for the rest of its text (a register dump).
const TAIL_WAIT: Duration = Duration::from_millis(500);

/// Watches a test's output for a fault banner.
#[derive(Debug, Default)]
pub struct FaultWatch {
    line: Vec<u8>,
    banner: Option<String>,
    text: String,
    seen_at: Option<Instant>,
    complete: bool,
}

impl FaultWatch {
    /// Feeds output as it arrives.
    pub fn feed(&mut self, data: &[u8]) {
        for &c in data {
            if self.banner.is_some() && !self.complete {
                self.text.push(char::from(c));
            }
            if c == b'\n' || c == b'\r' {
                self.end_line();
            } else if self.line.len() < 512 {
                self.line.push(c);
            }
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line).trim().to_string();
        self.line.clear();
        if line.is_empty() {
            return;
        }
        match &self.banner {
            None if is_banner(&line) => {
                self.complete = !line.contains(CAUGHT);
                self.text = format!("{line}\n");
                self.banner = Some(line);
                self.seen_at = Some(Instant::now());
            }
            Some(_) if line.starts_with(DUMP_END) => self.complete = true,
            _ => {}
        }
    }

    /// The banner line, once one was seen.
    pub fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }

    /// The banner and what followed it (a register dump), as far as it came.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether to stop waiting for the test: a banner came and its text is complete (or has
    /// had a moment to come).
    pub fn done(&self) -> bool {
        self.seen_at
            .is_some_and(|t| self.complete || t.elapsed() >= TAIL_WAIT)
    }
}

fn is_banner(line: &str) -> bool {
    STARTS.iter().any(|s| line.starts_with(s))
        || (line.contains(CAUGHT)
            && line
                .split(CAUGHT)
                .next()
                .is_some_and(|name| name.ends_with("Fault") || name == "NMI"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(chunks: &[&[u8]]) -> FaultWatch {
        let mut w = FaultWatch::default();
        for c in chunks {
            w.feed(c);
        }
        w
    }

    #[test]
    fn banners_of_every_firmware_are_recognised_at_any_split() {
        let qemu = b"running\r\nHardFault exception caught:\r\nR0:   00000000 R1:   2000FF00\r\nxPSR: 61000000\r\n";
        for split in 0..qemu.len() {
            let w = watch(&[&qemu[..split], &qemu[split..]]);
            assert_eq!(
                w.banner(),
                Some("HardFault exception caught:"),
                "split {split}"
            );
            assert!(w.done(), "the dump is complete");
            assert!(w.text().contains("R1:   2000FF00"), "the text is kept");
        }
        let w = watch(&[b"UsageFault exception caught:\n"]);
        assert!(w.banner().is_some());
        assert!(!w.done(), "the register dump may still come");
        for line in [
            "\nFATAL stack overflow in churn\n",
            "FATAL assert tasks.c:123\n",
            "FATAL ERROR:\n",
            "FATAL: uncaught exception 2000a0b0\n",
            "Guru Meditation Error: Core  0 panic'ed (LoadProhibited)\n",
        ] {
            let w = watch(&[line.as_bytes()]);
            assert!(w.done(), "{line:?}");
        }
        for line in [
            "print('FATAL ')\n",
            "no FATAL here\n",
            "an exception caught: ValueError\n",
            "Traceback (most recent call last):\n",
        ] {
            assert!(watch(&[line.as_bytes()]).banner().is_none(), "{line:?}");
        }
    }
}
