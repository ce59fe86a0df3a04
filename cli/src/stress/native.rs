//! The reference firmware's native workloads: console commands (`spawn`, `churn`, `flood`,
//! `heap`, `load`) each ending with one `RESULT <name> PASS|FAIL key=value ...` line, run by the
//! same runner through an [`Executor`] over the board's console.

use std::time::{Duration, Instant};

use super::suite::{Judge, Suite, TestCase};
use super::{BoardFacts, Executor, Limits, RecoveryStep, RunEnd, TimeoutKind};
use crate::device::link::{Link, LinkError};

/// Prompt of the reference console.
pub const PROMPT: &[u8] = b"ref> ";
/// Start of the banner the firmware prints at boot.
pub const BANNER: &[u8] = b"mpfr-ref ";
/// Start of the line the firmware prints when it stops (assert, stack overflow, fault).
pub const FATAL: &[u8] = b"FATAL ";

/// A native workload: console lines to send; every `RESULT` line must pass.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub summary: &'static str,
    pub quick: &'static str,
    pub soak: &'static str,
    /// Cores the workload needs (the SMP checks exist only on firmware built for two).
    pub min_cores: u32,
}

/// The reference firmware's workloads, in run order.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn",
        summary: "threads created, run, finish and are reaped",
        quick: "spawn 16 20",
        soak: "spawn 32 50",
        min_cores: 1,
    },
    Workload {
        name: "churn",
        summary: "create/finish one thread at a time; the reaper keeps the heap flat",
        quick: "churn 50",
        soak: "churn 1000",
        min_cores: 1,
    },
    Workload {
        name: "service_flood",
        summary: "flood the service task; nested suspend holds callbacks back",
        quick: "flood 1000",
        soak: "flood 20000",
        min_cores: 1,
    },
    Workload {
        name: "heap",
        summary: "FreeRTOS heap blocks allocated, checked and freed back to the same level",
        quick: "heap 16 256",
        soak: "heap 64 1024",
        min_cores: 1,
    },
    Workload {
        name: "spawn_under_load",
        summary: "spawn while a busy task takes 90% of the CPU",
        quick: "load 90\nspawn 16 20\nload 0",
        soak: "load 90\nspawn 32 50\nload 0",
        min_cores: 1,
    },
    Workload {
        name: "churn_under_load",
        summary: "churn while a busy task takes 90% of the CPU",
        quick: "load 90\nchurn 50\nload 0",
        soak: "load 90\nchurn 500\nload 0",
        min_cores: 1,
    },
    Workload {
        name: "smp",
        summary: "run time over two cores, pinned and migrating tasks, a lock-free race that loses updates (EXPECTED), the same with a spinlock (exact), FPU state on both cores",
        quick: "smp 500",
        soak: "smp 5000",
        min_cores: 2,
    },
    Workload {
        name: "smp_pingpong",
        summary: "queue round trips between a task on core 0 and one pinned to core 1 (the cross-core wake-up)",
        quick: "pingpong 100",
        soak: "pingpong 2000",
        min_cores: 2,
    },
];

/// The native workloads at a suite's intensity (`none` gives none) for firmware on `cores` cores.
pub fn native_cases(suite: Suite, cores: u32) -> Vec<TestCase> {
    WORKLOADS
        .iter()
        .filter(|w| w.min_cores <= cores)
        .filter_map(|w| {
            let payload = match suite {
                Suite::Quick => w.quick,
                Suite::Soak => w.soak,
                Suite::None => return None,
            };
            Some(TestCase {
                name: w.name.to_string(),
                origin: format!("firmware:{}", suite.as_str()),
                payload: payload.to_string(),
                judge: Judge::NativeResult,
            })
        })
        .collect()
}

/// Runs console commands of the reference firmware.
pub struct Console {
    /// The board's UART; its reset is the board's hard reset.
    link: Box<dyn Link>,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    /// The last banner seen (board, fingerprint, GIL).
    banner: Option<String>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("link", &self.link.describe())
            .finish()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The whole line of `buf` that starts at `at`, if it has ended.
fn line_at(buf: &[u8], at: usize) -> Option<String> {
    let end = buf[at..].iter().position(|&b| b == b'\n')?;
    Some(
        String::from_utf8_lossy(&buf[at..at + end])
            .trim_end()
            .to_string(),
    )
}

/// A link failure as the runner reports it (the device going away).
fn died(e: LinkError) -> String {
    e.to_string()
}

impl Console {
    pub fn new(link: Box<dyn Link>) -> Console {
        Console {
            link,
            buf: Vec::new(),
            banner: None,
        }
    }

    /// Sends Enter and waits for a fresh prompt.
    fn prompt(&mut self, wait: Duration) -> Result<bool, String> {
        self.buf.clear();
        self.link.write_all(b"\r").map_err(died)?;
        let start = Instant::now();
        let mut chunk = [0u8; 512];
        while start.elapsed() < wait {
            let n = self
                .link
                .read(&mut chunk, Duration::from_millis(100).min(wait))
                .map_err(died)?;
            self.buf.extend_from_slice(&chunk[..n]);
            self.note_banner();
            if find(&self.buf, PROMPT).is_some() {
                self.buf.clear();
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads and drops whatever is already on its way.
    fn drain(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 512];
        let start = Instant::now();
        loop {
            let n = self
                .link
                .read(&mut chunk, Duration::from_millis(30))
                .map_err(died)?;
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            self.note_banner();
            if start.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        self.buf.clear();
        Ok(())
    }

    fn note_banner(&mut self) {
        if let Some(at) = find(&self.buf, BANNER)
            && let Some(line) = line_at(&self.buf, at)
        {
            self.banner = Some(line);
        }
    }

    /// Runs one console line to its prompt, forwarding output. `None` when it ended normally.
    fn command(
        &mut self,
        line: &str,
        start: Instant,
        limits: &Limits,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Option<RunEnd> {
        // Prompts still on their way (Enter pressed by a health check) must not end this
        // command early.
        if let Err(e) = self.drain() {
            return Some(RunEnd::Died { detail: e });
        }
        self.buf.clear();
        if let Err(e) = self.link.write_all(format!("{line}\r").as_bytes()) {
            return Some(RunEnd::Died { detail: died(e) });
        }
        let mut last_byte = Instant::now();
        let mut chunk = [0u8; 1024];
        // The command ends at the prompt after its RESULT line, or (a command without one)
        // after the echo of the command line.
        let echo = format!("{line}\n").into_bytes();
        loop {
            if start.elapsed() >= limits.timeout {
                return Some(RunEnd::TimedOut {
                    kind: TimeoutKind::Wall,
                    after: start.elapsed(),
                });
            }
            if last_byte.elapsed() >= limits.idle {
                return Some(RunEnd::TimedOut {
                    kind: TimeoutKind::Idle,
                    after: last_byte.elapsed(),
                });
            }
            let n = match self.link.read(&mut chunk, Duration::from_millis(100)) {
                Ok(n) => n,
                Err(e) => return Some(RunEnd::Died { detail: died(e) }),
            };
            if n == 0 {
                continue;
            }
            last_byte = Instant::now();
            sink(&chunk[..n]);
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = find(&self.buf, FATAL) {
                let why = line_at(&self.buf, at)
                    .unwrap_or_else(|| String::from_utf8_lossy(&self.buf[at..]).into_owned());
                return Some(RunEnd::Died {
                    detail: format!("the firmware stopped: {why}"),
                });
            }
            if find(&self.buf, BANNER).is_some() {
                self.note_banner();
                return Some(RunEnd::Died {
                    detail: "the board rebooted during the command".into(),
                });
            }
            let clean: Vec<u8> = self.buf.iter().copied().filter(|&b| b != b'\r').collect();
            let after = find(&clean, b"RESULT ")
                .or_else(|| find(&clean, &echo))
                .and_then(|at| clean[at..].iter().position(|&b| b == b'\n').map(|n| at + n));
            if after.is_some_and(|at| find(&clean[at..], PROMPT).is_some()) {
                return None;
            }
        }
    }
}

impl Executor for Console {
    fn describe(&self) -> String {
        format!("reference console on {}", self.link.describe())
    }

    fn run(&mut self, payload: &str, limits: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd {
        let start = Instant::now();
        for line in payload.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(end) = self.command(line, start, limits, sink) {
                return end;
            }
        }
        RunEnd::Finished { exception: None }
    }

    fn recover(&mut self, step: RecoveryStep) -> Result<(), String> {
        match step {
            // The console has no Ctrl-C: Enter is all there is; a stuck command stays stuck.
            RecoveryStep::Interrupt => self.link.write_all(b"\r").map_err(died),
            RecoveryStep::SoftReset => Err("the reference console has no soft reset".into()),
            RecoveryStep::HardReset => {
                self.link.reset().map_err(died)?;
                self.buf.clear();
                Ok(())
            }
        }
    }

    fn healthy(&mut self) -> bool {
        self.prompt(Duration::from_secs(5)).unwrap_or(false)
    }

    fn identify(&mut self) -> BoardFacts {
        let _ = self.prompt(Duration::from_secs(5));
        let mut facts = BoardFacts::default();
        if let Some(b) = &self.banner {
            facts.version = Some(b.clone());
            for w in b.split_whitespace() {
                if let Some(f) = w.strip_prefix("fingerprint=") {
                    facts.fingerprint = Some(f.to_string());
                } else if let Some(g) = w.strip_prefix("gil=") {
                    facts.gil = Some(g.to_string());
                }
            }
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::Verdict;
    use crate::stress::report::RunInfo;
    use crate::stress::runner::{Event, Plan, run};
    use std::collections::VecDeque;

    /// A scripted console: answers each command line by its first word.
    struct FakePort {
        answers: Vec<(&'static str, Vec<&'static [u8]>)>,
        queue: VecDeque<Vec<u8>>,
        line: Vec<u8>,
        dead: bool,
        generation: u32,
    }

    impl FakePort {
        fn new(answers: Vec<(&'static str, Vec<&'static [u8]>)>) -> FakePort {
            FakePort {
                answers,
                queue: VecDeque::new(),
                line: vec![],
                dead: false,
                generation: 0,
            }
        }
    }

    impl Link for FakePort {
        fn read(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<usize, LinkError> {
            if self.dead {
                return Err(LinkError::Disconnected {
                    what: "fake".into(),
                    detail: "pty closed".into(),
                });
            }
            match self.queue.pop_front() {
                Some(c) => {
                    buf[..c.len()].copy_from_slice(&c);
                    Ok(c.len())
                }
                None => Ok(0),
            }
        }
        fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
            for &b in data {
                if b != b'\r' {
                    self.line.push(b);
                    continue;
                }
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                let mut echo = line.clone().into_bytes();
                echo.push(b'\n');
                self.queue.push_back(echo);
                let word = line.split_whitespace().next().unwrap_or("");
                if word.is_empty() {
                    self.queue.push_back(PROMPT.to_vec());
                    continue;
                }
                let chunks = self
                    .answers
                    .iter()
                    .find(|(w, _)| *w == word)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                for c in chunks {
                    if c == b"<die>" {
                        self.dead = true;
                    } else {
                        self.queue.push_back(c.to_vec());
                    }
                }
            }
            Ok(())
        }
        /// A hard reset brings the board back with an empty line and a new generation.
        fn reset(&mut self) -> Result<(), LinkError> {
            self.queue.clear();
            self.line.clear();
            self.dead = false;
            self.generation += 1;
            Ok(())
        }
        fn describe(&self) -> String {
            format!("fake#{}", self.generation)
        }
    }

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_secs(5),
            idle: Duration::from_millis(300),
        }
    }

    #[test]
    fn commands_end_at_the_prompt_even_when_split_anywhere() {
        let full: &[u8] = b"RESULT spawn PASS threads=16 reaped=16\nref> ";
        // Every split point of the answer.
        for cut in 0..full.len() {
            let (a, b) = full.split_at(cut);
            let a: &'static [u8] = Box::leak(a.to_vec().into_boxed_slice());
            let b: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
            let mut c = Console::new(Box::new(FakePort::new(vec![("spawn", vec![a, b])])));
            let mut out = Vec::new();
            let end = c.run("spawn 16 20", &limits(), &mut |x| out.extend_from_slice(x));
            assert_eq!(end, RunEnd::Finished { exception: None }, "cut {cut}");
            assert!(String::from_utf8_lossy(&out).contains("RESULT spawn PASS threads=16"));
        }
    }

    #[test]
    fn fatal_lines_reboots_silence_and_dead_ports_are_told_apart() {
        let mut c = Console::new(Box::new(FakePort::new(vec![
            (
                "churn",
                vec![b"working\n", b"\nFATAL stack overflow in churn\n"],
            ),
            (
                "heap",
                vec![b"\nmpfr-ref 0.1 board=qemu-mps2-an385 fingerprint=0x1 gil=on\n"],
            ),
            ("spawn", vec![b"started\n"]),
            ("flood", vec![b"<die>"]),
        ])));
        let mut sink = |_: &[u8]| {};
        let end = c.run("churn 5", &limits(), &mut sink);
        assert!(
            matches!(&end, RunEnd::Died { detail } if detail.contains("FATAL stack overflow in churn")),
            "{end:?}"
        );
        let end = c.run("heap 1 1", &limits(), &mut sink);
        assert!(matches!(&end, RunEnd::Died { detail } if detail.contains("rebooted")));
        assert_eq!(c.identify().fingerprint.as_deref(), Some("0x1"));
        let end = c.run("spawn 1", &limits(), &mut sink);
        assert!(matches!(
            end,
            RunEnd::TimedOut {
                kind: TimeoutKind::Idle,
                ..
            }
        ));
        let end = c.run("flood 9", &limits(), &mut sink);
        assert!(
            matches!(&end, RunEnd::Died { detail } if detail == "fake disconnected: pty closed")
        );
        assert!(!c.healthy());
    }

    #[test]
    fn workloads_run_through_the_runner_and_a_restart_revives_the_board() {
        let answers = || {
            vec![
                ("spawn", vec![&b"RESULT spawn PASS threads=16\nref> "[..]]),
                ("load", vec![&b"RESULT load PASS percent=90\nref> "[..]]),
                ("churn", vec![&b"<die>"[..]]),
                ("flood", vec![&b"RESULT flood FAIL coalesced=3\nref> "[..]]),
                ("heap", vec![&b"RESULT heap PASS blocks=16\nref> "[..]]),
            ]
        };
        let mut console = Console::new(Box::new(FakePort::new(answers())));
        let plan = Plan {
            tests: native_cases(Suite::Quick, 1),
            level: Suite::Quick,
            limits: limits(),
            repeat: None,
            duration: None,
            seed: 1,
            isolate: false,
            reference: None,
            skips: vec![],
        };
        let info = RunInfo::default();
        let o = run(&mut console, &plan, &info, &mut |_: Event<'_>| Ok(()), None).unwrap();
        let got: Vec<(String, Verdict)> = o
            .results
            .iter()
            .map(|r| (r.test.clone(), r.verdict))
            .collect();
        let want = [
            ("spawn", Verdict::Pass),
            ("churn", Verdict::Crash),
            ("service_flood", Verdict::Fail),
            ("heap", Verdict::Pass),
            ("spawn_under_load", Verdict::Pass),
            ("churn_under_load", Verdict::Crash),
        ];
        let want: Vec<(String, Verdict)> = want.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!(got, want);
        assert_eq!(o.results[0].metrics["threads"], 16);
        let ladder: Vec<&str> = o.results[1]
            .recovery
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(ladder, ["check", "interrupt", "soft-reset", "hard-reset"]);
        assert!(o.results[1].recovery.last().unwrap().1);
        assert!(console.describe().contains("fake#2"));
        // Under load the spawn result counts, not the `load` lines around it.
        assert!(
            o.results[4].detail.starts_with("spawn"),
            "{}",
            o.results[4].detail
        );
        assert_eq!(native_cases(Suite::None, 2).len(), 0);
        let names = |cores| -> Vec<String> {
            native_cases(Suite::Quick, cores)
                .into_iter()
                .map(|c| c.name)
                .collect()
        };
        assert!(!names(1).iter().any(|n| n.starts_with("smp")));
        let two = names(2);
        assert!(two.contains(&"smp".to_string()), "{two:?}");
        assert!(two.contains(&"smp_pingpong".to_string()), "{two:?}");
    }
}
