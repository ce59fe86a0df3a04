//! What a board's telemetry saw during one test: the lowest free heap, the most tasks, the
//! deepest stack use and the worst service latency, folded from samples taken while it ran.
//!
//! A sampler (RTT frames, `/proc` of the host process) turns each snapshot into a [`Sample`];
//! the runner's observer resets the window on `Started` and hands [`Window::summary`] back
//! through `Observer::telemetry` when the test ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::StressError;
use super::report::TelemetrySummary;
use super::runner::{Event, Observer};
use crate::board::{Board, Telemetry as TelemetryKind};
use crate::telemetry::model::Update;
use crate::telemetry::monitor::{AttachOptions, Monitor};
use crate::telemetry::rtt::Status;

/// One telemetry snapshot, reduced to what a result records. `None`: not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub free_heap: Option<u64>,
    pub tasks: Option<u32>,
    /// Deepest stack use of any task (stack size minus its high-water mark).
    pub stack_used: Option<u64>,
    /// Worst schedule-to-dispatch latency of the service task.
    pub service_latency_us: Option<u64>,
    /// Bit c: a task other than an idle task was running on core c.
    pub busy_cores: u32,
}

impl Sample {
    /// What one telemetry snapshot (`mpfr threads top`'s data) says: the FreeRTOS heap's free
    /// bytes (the least ever when the board reports it; the GC heap when there is no FreeRTOS
    /// heap), the task count, the most stack any task ever used, and the worst service latency.
    pub fn of(s: &crate::telemetry::model::Snapshot) -> Sample {
        let free_heap = s
            .heap
            .filter(|h| !h.unused())
            .map(|h| h.min_free.unwrap_or(h.free))
            .or(s.gc_heap.map(|h| h.free))
            .map(u64::from);
        let stack_used = s
            .tasks
            .iter()
            .filter_map(|t| t.stack_high_water)
            .max()
            .map(u64::from);
        let service_latency_us = s.service.as_ref().and_then(|v| {
            v.slots
                .iter()
                .filter_map(|slot| slot.latency_max_us)
                .filter(|l| l.is_finite() && *l >= 0.0)
                .map(|l| l.ceil() as u64)
                .max()
        });
        // FreeRTOS names its idle tasks IDLE (IDLE0, IDLE1 on SMP): those say nothing about
        // where the test's tasks ran.
        let busy_cores = s
            .tasks
            .iter()
            .filter(|t| !t.name.starts_with("IDLE"))
            .filter_map(|t| t.core)
            .filter(|c| *c < 32)
            .fold(0, |m, c| m | 1 << c);
        Sample {
            free_heap,
            tasks: u32::try_from(s.tasks.len()).ok(),
            stack_used,
            service_latency_us,
            busy_cores,
        }
    }
}

/// Extremes over the samples of one test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    acc: TelemetrySummary,
    samples: u64,
}

/// Said in a result whose test saw the telemetry link go away.
pub const LOST: &str =
    "telemetry lost during this test (the board restarted or its agent stopped answering)";

fn keep(slot: &mut Option<u64>, v: Option<u64>, better: fn(u64, u64) -> u64) {
    if let Some(v) = v {
        *slot = Some(slot.map_or(v, |old| better(old, v)));
    }
}

impl Window {
    /// Starts over (a new test).
    pub fn reset(&mut self) {
        *self = Window::default();
    }

    pub fn observe(&mut self, s: &Sample) {
        self.samples += 1;
        keep(&mut self.acc.min_free_heap, s.free_heap, u64::min);
        keep(&mut self.acc.deepest_stack_use, s.stack_used, u64::max);
        keep(
            &mut self.acc.max_service_latency_us,
            s.service_latency_us,
            u64::max,
        );
        for c in (0..32).filter(|c| s.busy_cores & 1 << c != 0) {
            if !self.acc.ran_on_cores.contains(&c) {
                self.acc.ran_on_cores.push(c);
                self.acc.ran_on_cores.sort_unstable();
            }
        }
        if let Some(t) = s.tasks {
            self.acc.peak_tasks = Some(self.acc.peak_tasks.map_or(t, |old| old.max(t)));
        }
    }

    /// The telemetry link went away: later figures would be stale.
    pub fn lose(&mut self) {
        self.acc.lost = Some(LOST.into());
    }

    /// The extremes seen, or `None` when no sample arrived (and nothing was lost).
    pub fn summary(&self) -> Option<TelemetrySummary> {
        (self.samples > 0 || self.acc.lost.is_some()).then(|| self.acc.clone())
    }
}

/// Samples an RTT board's telemetry on a thread of its own while tests run, folding every
/// snapshot into the current test's [`Window`]. Attach failures (no agent yet, the board being
/// restarted by recovery) are retried quietly: a result then simply carries no figures.
#[derive(Debug)]
pub struct Sampler {
    window: Arc<Mutex<Latest>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    gate: Arc<super::capture::DebuggerGate>,
}

impl Sampler {
    /// Starts sampling `board` when its telemetry is RTT (the virtual board's gdbstub, or a debug
    /// probe chosen by `probe`); `None` for boards without it.
    /// Also `None` when the image the board runs has no agent ([`agent_missing`]).
    pub fn start(board: &Board, probe: Option<String>) -> Option<Sampler> {
        if board.telemetry != TelemetryKind::Rtt || agent_missing(board).is_some() {
            return None;
        }
        let window = Arc::new(Mutex::new(Latest::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(super::capture::DebuggerGate::default());
        let (w, st, board, g) = (window.clone(), stop.clone(), board.clone(), gate.clone());
        let opts = AttachOptions {
            probe,
            interval: Duration::from_millis(100),
            ..Default::default()
        };
        let thread = std::thread::Builder::new()
            .name("mpfr-stress-telemetry".into())
            .spawn(move || sample_until(&board, &opts, &w, &st, &g))
            .ok()?;
        Some(Sampler {
            window,
            stop,
            thread: Some(thread),
            gate,
        })
    }

    /// The gate through which a crash capture borrows the board's debugger connection.
    pub fn gate(&self) -> Arc<super::capture::DebuggerGate> {
        self.gate.clone()
    }

    /// Starts a new window (a new test), seeded with the newest sample: the state the test
    /// starts from counts, so a test shorter than the sampling period still gets figures.
    /// While the link is lost there is no newest sample, and the window says so.
    pub fn reset(&self) {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
    }

    /// The extremes seen since the last reset.
    pub fn summary(&self) -> Option<TelemetrySummary> {
        let l = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        l.window.summary()
    }

    /// Waits up to `timeout` for the first sample. Returns early when the agent's block was
    /// found not yet set up: firmware that starts its agent on request (MicroPython's
    /// `mpfr.start()`) would keep every run waiting the whole timeout for nothing.
    pub fn wait_for_first(&self, timeout: Duration) -> First {
        let until = Instant::now() + timeout;
        loop {
            let (seen, not_started) = {
                let l = self.window.lock().unwrap_or_else(PoisonError::into_inner);
                (l.last.is_some(), l.not_started)
            };
            if seen {
                return First::Sample;
            }
            if not_started {
                return First::NotStarted;
            }
            if Instant::now() >= until {
                return First::Nothing;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What [`Sampler::wait_for_first`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    Sample,
    /// The block is there but not set up: the agent has not been started.
    NotStarted,
    /// Nothing within the timeout.
    Nothing,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why an RTT board gets no sampler: the image it runs (the virtual board's, known from its
/// record) has a symbol table without `_SEGGER_RTT`, so there is no agent to find. Attaching
/// anyway would scan RAM through the gdbstub with the guest halted, again and again.
pub fn agent_missing(board: &Board) -> Option<String> {
    if !matches!(board.platform, crate::board::Platform::Qemu(_)) {
        return None;
    }
    let inst = crate::device::vboard::Instance::load(&board.name).ok()??;
    image_without_agent(&inst.image)
}

/// `Some(why)` when `elf` has symbols but no `_SEGGER_RTT` (a stripped or unreadable image
/// says nothing either way).
pub fn image_without_agent(elf: &std::path::Path) -> Option<String> {
    let info = crate::telemetry::rtt::elf_info(elf).ok()?;
    (info.symbol.is_none() && info.symbols > 0).then(|| info.says())
}

/// Sleeps `d` or until `stop` is set, whichever comes first.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
}

/// The current test's window and the newest sample.
#[derive(Debug, Default)]
struct Latest {
    window: Window,
    last: Option<Sample>,
    /// The last attach found the agent's block not set up yet.
    not_started: bool,
    /// The link went away after samples had come; no sample since.
    lost: bool,
}

impl Latest {
    fn reset(&mut self) {
        self.window.reset();
        if self.lost {
            self.window.lose();
        } else if let Some(s) = self.last {
            self.window.observe(&s);
        }
    }

    fn sample(&mut self, s: Sample) {
        self.lost = false;
        self.window.observe(&s);
        self.last = Some(s);
    }

    /// The link failed: the newest sample describes a board that may be gone.
    fn lose(&mut self) {
        if self.last.take().is_some() || self.lost {
            self.lost = true;
            self.window.lose();
        }
    }
}

fn sample_until(
    board: &Board,
    opts: &AttachOptions,
    window: &Mutex<Latest>,
    stop: &AtomicBool,
    gate: &super::capture::DebuggerGate,
) {
    while !stop.load(Ordering::Relaxed) {
        // QEMU serves one debugger: while a crash capture wants it, hold no connection.
        if gate.wanted() {
            gate.set_idle(true);
            nap(Duration::from_millis(20), stop);
            continue;
        }
        gate.set_idle(false);
        let Ok(mut m) = Monitor::attach(board, opts) else {
            nap(Duration::from_millis(250), stop);
            continue;
        };
        let not_started = matches!(m.rtt_status(), Some(Status::NotInitialised { .. }));
        window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .not_started = not_started;
        while !stop.load(Ordering::Relaxed) && !gate.wanted() {
            let Ok(updates) = m.step() else {
                window.lock().unwrap_or_else(PoisonError::into_inner).lose();
                break;
            };
            for u in updates {
                if let Update::Sample(snap) = u {
                    let s = Sample::of(&snap);
                    window
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .sample(s);
                }
            }
            nap(m.wait(), stop);
        }
    }
}

/// An observer that also resets the sampler's window when a test starts and hands its figures
/// to the runner when the test ends.
pub struct WithTelemetry<'a> {
    pub inner: &'a mut dyn Observer,
    pub sampler: Option<Sampler>,
}

impl Observer for WithTelemetry<'_> {
    fn event(&mut self, ev: Event<'_>) -> Result<(), StressError> {
        if let (Event::Started { .. }, Some(s)) = (&ev, &self.sampler) {
            s.reset();
        }
        self.inner.event(ev)
    }

    fn telemetry(&mut self) -> Option<TelemetrySummary> {
        self.sampler.as_ref()?.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler_with(latest: Latest) -> Sampler {
        Sampler {
            window: Arc::new(Mutex::new(latest)),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            gate: Default::default(),
        }
    }

    /// An agent that is not started (MicroPython before `mpfr.start()`) is not waited for: the
    /// whole timeout would be added to every stress run on such firmware.
    #[test]
    fn the_first_sample_is_not_waited_for_when_the_agent_is_not_started() {
        let s = sampler_with(Latest {
            not_started: true,
            ..Latest::default()
        });
        assert_eq!(
            s.wait_for_first(Duration::from_millis(30)),
            First::NotStarted
        );
        let s = sampler_with(Latest::default());
        assert_eq!(s.wait_for_first(Duration::from_millis(30)), First::Nothing);
        let mut l = Latest::default();
        l.sample(Sample::default());
        assert_eq!(
            sampler_with(l).wait_for_first(Duration::ZERO),
            First::Sample
        );
    }

    #[test]
    fn keeps_the_extremes_of_what_was_reported() {
        let mut w = Window::default();
        assert_eq!(w.summary(), None);
        w.observe(&Sample {
            free_heap: Some(5000),
            tasks: Some(4),
            stack_used: None,
            service_latency_us: Some(30),
            busy_cores: 0b10,
        });
        w.observe(&Sample {
            free_heap: Some(3000),
            tasks: Some(9),
            stack_used: Some(700),
            service_latency_us: Some(12),
            busy_cores: 0b01,
        });
        w.observe(&Sample {
            free_heap: Some(4000),
            tasks: Some(2),
            stack_used: Some(500),
            service_latency_us: None,
            busy_cores: 0b10,
        });
        let s = w.summary().unwrap();
        assert_eq!(s.min_free_heap, Some(3000));
        assert_eq!(s.peak_tasks, Some(9));
        assert_eq!(s.deepest_stack_use, Some(700));
        assert_eq!(s.max_service_latency_us, Some(30));
        assert_eq!(s.ran_on_cores, vec![0, 1]);
        w.reset();
        w.observe(&Sample::default());
        assert_eq!(w.summary(), Some(TelemetrySummary::default()));
    }

    /// Issue 16: the symbol table decides, without touching the board. This test binary has
    /// symbols and no `_SEGGER_RTT`.
    #[test]
    fn an_image_without_the_agent_is_known_from_its_symbols() {
        let me = std::env::current_exe().unwrap();
        let why = image_without_agent(&me).expect("no agent in a host binary");
        assert!(why.contains("built without the RTT agent"), "{why}");
        assert_eq!(image_without_agent("/nonexistent.elf".as_ref()), None);
    }

    /// Issue 16: after the link is lost (a QEMU restart), results say so instead of carrying
    /// the last sample from before; a new sample ends that.
    #[test]
    fn lost_telemetry_is_reported_not_the_stale_sample() {
        let mut l = Latest::default();
        let s = |heap| Sample {
            free_heap: Some(heap),
            ..Sample::default()
        };
        l.reset();
        assert_eq!(l.window.summary(), None, "no sample, nothing lost");
        l.sample(s(5000));
        l.reset();
        assert_eq!(l.window.summary().unwrap().min_free_heap, Some(5000));
        l.lose();
        let w = l.window.summary().unwrap();
        assert_eq!(w.lost.as_deref(), Some(LOST), "lost during this test");
        l.reset();
        let w = l.window.summary().unwrap();
        assert_eq!(
            w.min_free_heap, None,
            "the stale sample is not carried over"
        );
        assert!(w.lost.is_some());
        l.sample(s(4000));
        l.reset();
        let w = l.window.summary().unwrap();
        assert_eq!((w.min_free_heap, w.lost), (Some(4000), None));
    }

    #[test]
    fn a_snapshot_reduces_to_a_sample() {
        use crate::telemetry::model::{Heap, Losses, ServiceView, SlotRow, Snapshot, TaskRow};
        let task = |hw: Option<u32>| TaskRow {
            name: "t".into(),
            id: 1,
            py_thread: None,
            state: crate::telemetry::model::TaskStatus::Ready,
            priority: 1,
            base_priority: 1,
            affinity: crate::telemetry::model::CoreMask::ANY,
            core: None,
            cpu_pct: None,
            stack_size: Some(1024),
            stack_high_water: hw,
            stack_free_min: None,
        };
        let slot = |l: Option<f64>| SlotRow {
            slot: 0,
            dispatches: 1,
            per_sec: None,
            pending: 0,
            latency_avg_us: None,
            latency_max_us: l,
            latency_last_us: None,
        };
        let mut snap = Snapshot {
            board: "b".into(),
            source: "rtt",
            host_ms: 0,
            uptime_ms: None,
            firmware: None,
            fingerprint: None,
            gil: None,
            cores: vec![],
            tasks: vec![task(Some(300)), task(None), task(Some(812))],
            service: Some(ServiceView {
                notifications: 0,
                wakeups: 0,
                suspended_skips: 0,
                isr_schedules: 0,
                task_schedules: 0,
                suspend_depth: 0,
                slots: vec![slot(Some(12.2)), slot(None), slot(Some(40.5))],
            }),
            service_note: None,
            heap: Some(Heap {
                total: 65536,
                free: 6000,
                min_free: Some(4000),
                allocations: None,
            }),
            gc_heap: Some(Heap {
                total: 1,
                free: 1,
                min_free: None,
                allocations: None,
            }),
            threads_live: None,
            threads_finished: None,
            losses: Losses::default(),
        };
        let s = Sample::of(&snap);
        assert_eq!(s.free_heap, Some(4000));
        assert_eq!(s.tasks, Some(3));
        assert_eq!(s.stack_used, Some(812));
        assert_eq!(s.service_latency_us, Some(41));
        assert_eq!(s.busy_cores, 0, "no task runs now");
        snap.tasks[0].core = Some(1);
        snap.tasks[1].core = Some(0);
        snap.tasks[1].name = "IDLE0".into();
        assert_eq!(
            Sample::of(&snap).busy_cores,
            0b10,
            "idle tasks do not count"
        );
        snap.heap = None;
        snap.service = None;
        let s = Sample::of(&snap);
        assert_eq!(
            s.free_heap,
            Some(1),
            "the GC heap when there is no FreeRTOS heap"
        );
        assert_eq!(s.service_latency_us, None);
    }
}
