//! Telemetry frames (from `mpfr_firmware::protocol`) turned into [`Snapshot`]s: tasks with CPU%
//! from run-time counter deltas, stacks, service slots with rates, heaps, per-core load, events
//! and losses. The host board builds the same snapshot from `/proc`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use mpfr_firmware::protocol::{
    Decoder, EventKind, Frame, GilMode, Hello, NO_CORE, Service, System, TaskEntry, TaskState,
    TaskTable, UNKNOWN, UNKNOWN16,
};
use serde::Serialize;

use crate::device::memory::TargetError;
use crate::device::memory::procfs::{self, OsThread};

/// State of a FreeRTOS task, or of an OS thread on the host board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Running,
    Ready,
    Blocked,
    Suspended,
    Deleted,
    Invalid,
    /// SMP: still a core's current task, but that core has been asked to switch it out (the
    /// kernel's "scheduled to yield"); the switch follows at its next PendSV.
    Yielding,
    /// A thread that has finished and waits for the reaper (the firmware's registry says so).
    Finished,
    /// Host threads (`/proc/PID/task/TID/stat`): S, D, Z, T/t, I, anything else.
    Sleeping,
    DiskWait,
    Zombie,
    Stopped,
    Idle,
    Other,
}

crate::named_enum!(TaskStatus "task state" {
    Running => "running", Ready => "ready", Blocked => "blocked", Suspended => "suspended",
    Deleted => "deleted", Invalid => "invalid", Yielding => "yielding", Finished => "finished", Sleeping => "sleeping", DiskWait => "disk-wait",
    Zombie => "zombie", Stopped => "stopped", Idle => "idle", Other => "other",
});

impl From<TaskState> for TaskStatus {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Running => TaskStatus::Running,
            TaskState::Ready => TaskStatus::Ready,
            TaskState::Blocked => TaskStatus::Blocked,
            TaskState::Suspended => TaskStatus::Suspended,
            TaskState::Deleted => TaskStatus::Deleted,
            TaskState::Invalid => TaskStatus::Invalid,
            TaskState::Finished => TaskStatus::Finished,
        }
    }
}

impl TaskStatus {
    /// From the state letter of `/proc/PID/task/TID/stat`.
    pub fn from_proc(c: char) -> TaskStatus {
        match c {
            'R' => TaskStatus::Running,
            'S' => TaskStatus::Sleeping,
            'D' => TaskStatus::DiskWait,
            'Z' => TaskStatus::Zombie,
            'T' | 't' => TaskStatus::Stopped,
            'I' => TaskStatus::Idle,
            _ => TaskStatus::Other,
        }
    }
}

/// The cores a task may run on. Prints `any`, `core0`, `core1`, or the mask (`0b101`) when it
/// names several but not all cores; JSON keeps the core list (`"any"`, `"1"`, `"0,2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreMask(u32);

impl CoreMask {
    pub const ANY: CoreMask = CoreMask(u32::MAX);

    /// The agent's mask on a board with `cores` cores: all ones, or every core, is `any`.
    pub fn new(mask: u32, cores: u32) -> CoreMask {
        let all = if cores >= 32 {
            u32::MAX
        } else {
            (1u32 << cores.max(1)) - 1
        };
        if mask & all == all {
            CoreMask::ANY
        } else {
            CoreMask(mask)
        }
    }

    pub fn is_any(self) -> bool {
        self == CoreMask::ANY
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    fn cores(self) -> impl Iterator<Item = u32> {
        (0..32).filter(move |i| self.0 & (1 << i) != 0)
    }
}

impl fmt::Display for CoreMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0.count_ones() {
            _ if self.is_any() => "any".to_string(),
            0 => "none".to_string(),
            1 => format!("core{}", self.0.trailing_zeros()),
            _ => format!("{:#b}", self.0),
        };
        f.pad(&text)
    }
}

impl Serialize for CoreMask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_any() {
            return s.serialize_str("any");
        }
        let list: Vec<String> = self.cores().map(|c| c.to_string()).collect();
        if list.is_empty() {
            s.serialize_str("none")
        } else {
            s.serialize_str(&list.join(","))
        }
    }
}

/// What an [`EventRow`] reports: the agent's event kinds, and the host's own notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ThreadCreated,
    ThreadFinished,
    ThreadReaped,
    StackOverflow,
    MallocFailed,
    Assert,
    Log,
    /// The target restarted under the host (uptime went backwards).
    Restarted,
    DroppedFrames,
    /// The RTT block was found again (after a reset or reflash).
    Reattached,
    /// The RTT block went away.
    Lost,
    /// The view's own sampling failed.
    Error,
    /// A task was seen running on another core than in the sample before (SMP).
    Migrated,
    /// A kind this host does not know (newer agent): `event_N`.
    Agent(u8),
}

impl EventType {
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match self {
            EventType::ThreadCreated => "thread_created",
            EventType::ThreadFinished => "thread_finished",
            EventType::ThreadReaped => "thread_reaped",
            EventType::StackOverflow => "stack_overflow",
            EventType::MallocFailed => "malloc_failed",
            EventType::Assert => "assert",
            EventType::Log => "log",
            EventType::Restarted => "restarted",
            EventType::DroppedFrames => "dropped_frames",
            EventType::Reattached => "reattached",
            EventType::Lost => "lost",
            EventType::Error => "error",
            EventType::Migrated => "migrated",
            EventType::Agent(n) => return std::borrow::Cow::Owned(format!("event_{n}")),
        })
    }
}

impl From<EventKind> for EventType {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::ThreadCreated => EventType::ThreadCreated,
            EventKind::ThreadFinished => EventType::ThreadFinished,
            EventKind::ThreadReaped => EventType::ThreadReaped,
            EventKind::StackOverflow => EventType::StackOverflow,
            EventKind::MallocFailed => EventType::MallocFailed,
            EventKind::Assert => EventType::Assert,
            EventKind::Log => EventType::Log,
            EventKind::Other(n) => EventType::Agent(n),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// One task (or OS thread) row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub name: String,
    /// FreeRTOS task number, or the OS thread id on the host.
    pub id: u32,
    /// Python thread id, when the task is a Python thread.
    pub py_thread: Option<u32>,
    pub state: TaskStatus,
    pub priority: i64,
    pub base_priority: i64,
    /// The cores the task may run on.
    pub affinity: CoreMask,
    /// Core it runs or last ran on.
    pub core: Option<u32>,
    /// Share of one core since the previous sample, in percent (None on the first sample).
    pub cpu_pct: Option<f64>,
    pub stack_size: Option<u32>,
    /// Most stack ever used (size minus least free ever).
    pub stack_high_water: Option<u32>,
    /// Least free stack ever.
    pub stack_free_min: Option<u32>,
}

/// Load of one core since the previous sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreLoad {
    pub core: u32,
    /// 100 minus the idle task's share (None on the first sample).
    pub load_pct: Option<f64>,
    /// The CPU% of the tasks that ran on this core (idle included): ~100 when complete. On SMP
    /// the tasks pinned to the core count whole; the unpinned tasks' time (the kernel does not
    /// say on which core it was spent) is shared out in proportion to what the pinned ones left.
    pub tasks_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotRow {
    pub slot: u8,
    pub dispatches: u32,
    pub per_sec: Option<f64>,
    pub pending: u8,
    /// Schedule-to-dispatch latency in microseconds (None without the hello's counter rate).
    pub latency_avg_us: Option<f64>,
    pub latency_max_us: Option<f64>,
    pub latency_last_us: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    pub notifications: u32,
    pub wakeups: u32,
    pub suspended_skips: u32,
    pub isr_schedules: u32,
    pub task_schedules: u32,
    pub suspend_depth: u8,
    pub slots: Vec<SlotRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heap {
    pub total: u32,
    pub free: u32,
    /// Least free ever (FreeRTOS heap only).
    pub min_free: Option<u32>,
    /// Successful allocations ever (FreeRTOS heap_4/heap_5 only): 0 means the firmware never
    /// used this heap, so `free` 0 is "unused", not "exhausted".
    pub allocations: Option<u32>,
}

impl Heap {
    /// Never allocated from (its free figures are those of a heap not yet initialised).
    pub fn unused(&self) -> bool {
        self.allocations == Some(0)
    }
}

/// Frames lost or damaged on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Losses {
    /// Sequence gaps seen by the host decoder.
    pub dropped_frames: u64,
    /// Frames with a wrong CRC, an unparsable payload or another protocol version.
    pub bad_frames: u64,
    /// Bytes the decoder skipped to find the next frame (garbage in the ring, the rest of a
    /// damaged frame): they are lost data even when no frame header survived to be counted.
    pub bad_bytes: u64,
    pub resyncs: u64,
    /// Frames the agent could not write because the RTT buffer was full.
    pub agent_overflows: u32,
}

/// Everything the live view shows at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub board: String,
    /// `rtt` or `procfs`.
    pub source: &'static str,
    /// Milliseconds since the host attached.
    pub host_ms: u64,
    pub uptime_ms: Option<u64>,
    pub firmware: Option<String>,
    pub fingerprint: Option<String>,
    pub gil: Option<GilMode>,
    pub cores: Vec<CoreLoad>,
    pub tasks: Vec<TaskRow>,
    pub service: Option<ServiceView>,
    /// Why there is no service section, when there is none.
    pub service_note: Option<String>,
    pub heap: Option<Heap>,
    pub gc_heap: Option<Heap>,
    pub threads_live: Option<u32>,
    pub threads_finished: Option<u32>,
    pub losses: Losses,
}

/// One event for the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub host_ms: u64,
    pub tick: Option<u32>,
    pub kind: EventType,
    pub text: String,
}

/// What feeding bytes produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Sample(Box<Snapshot>),
    Event(EventRow),
}

fn event_text(e: &mpfr_firmware::protocol::Event) -> String {
    match e.kind {
        EventKind::ThreadCreated | EventKind::ThreadFinished => {
            format!("{} (task {}, thread {})", e.text, e.a, e.b)
        }
        EventKind::ThreadReaped => format!("{} (task {}, {} bytes freed)", e.text, e.a, e.b),
        EventKind::MallocFailed => format!("{} bytes requested", e.a),
        EventKind::Assert => format!("{}:{}", e.text, e.a),
        _ => e.text.clone(),
    }
}

/// Builds snapshots from the agent's frame stream.
#[derive(Debug)]
pub struct Telemetry {
    board: String,
    started: Instant,
    decoder: Decoder,
    table: TaskTable,
    hello: Option<Hello>,
    tasks: Option<Vec<TaskEntry>>,
    system: Option<System>,
    service: Option<Service>,
    /// Counters of the previous emitted sample: (runtime_total, per task runtime, per core
    /// idle runtime, uptime ms, per slot dispatches).
    prev: Option<Prev>,
    last_dropped: u64,
    /// Sequence jumps that were restarts, not losses.
    dropped_bias: u64,
    /// The core each task was last seen running on, and moves seen in the last sample cut.
    last_core: HashMap<u32, u32>,
    moves: Vec<EventRow>,
    pub samples: u64,
}

#[derive(Debug, Clone)]
struct Prev {
    total: u32,
    task: HashMap<u32, u32>,
    idle: Vec<u32>,
    uptime_ms: u32,
    slots: HashMap<u8, u32>,
}

impl Telemetry {
    pub fn new(board: &str) -> Self {
        Telemetry {
            board: board.to_string(),
            started: Instant::now(),
            decoder: Decoder::new(),
            table: TaskTable::default(),
            hello: None,
            tasks: None,
            system: None,
            service: None,
            prev: None,
            last_dropped: 0,
            dropped_bias: 0,
            last_core: HashMap::new(),
            moves: Vec::new(),
            samples: 0,
        }
    }

    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    fn host_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The target restarted (RTT block re-found): counters start over, so the next sample has
    /// no deltas and the sequence restart is not a loss.
    pub fn target_restarted(&mut self) {
        self.decoder.reset_sequence();
        self.last_dropped = self.decoder.stats().dropped;
        self.prev = None;
        self.tasks = None;
        self.system = None;
        self.service = None;
        self.table = TaskTable::default();
        self.last_core.clear();
    }

    /// A host-side event (re-attach, lost block) for the same log.
    pub fn note(&self, kind: EventType, text: impl Into<String>) -> EventRow {
        EventRow {
            host_ms: self.host_ms(),
            tick: None,
            kind,
            text: text.into(),
        }
    }

    /// Feeds bytes from the telemetry channel.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Update> {
        let mut out = Vec::new();
        for f in self.decoder.feed(bytes) {
            match f {
                Frame::Hello(h) => self.hello = Some(h),
                Frame::Tasks(t) => {
                    if let Some(all) = self.table.add(&t) {
                        self.tasks = Some(all);
                    }
                }
                Frame::Service(s) => self.service = Some(s),
                Frame::System(s) => {
                    // Uptime going backwards: the target restarted under us (a reset quicker
                    // than one poll, so the RTT block never looked cleared). Deltas over the
                    // restart would be garbage.
                    if self
                        .prev
                        .as_ref()
                        .is_some_and(|p| s.uptime_ms < p.uptime_ms)
                    {
                        self.prev = None;
                        // The sequence restarted too: that jump is not a loss.
                        let d = self.decoder.stats().dropped;
                        self.dropped_bias += d - self.last_dropped;
                        self.last_dropped = d;
                        out.push(Update::Event(EventRow {
                            host_ms: self.host_ms(),
                            tick: None,
                            kind: EventType::Restarted,
                            text: format!("target restarted (uptime {} ms)", s.uptime_ms),
                        }));
                    }
                    self.system = Some(s);
                }
                Frame::Event(e) => out.push(Update::Event(EventRow {
                    host_ms: self.host_ms(),
                    tick: Some(e.tick),
                    kind: e.kind.into(),
                    text: event_text(&e),
                })),
            }
            // A sample is complete once a whole task table and a system frame have arrived
            // (in either order); the service frame of the same sample comes with them.
            if self.tasks.is_some() && self.system.is_some() {
                let snap = self.cut();
                out.extend(self.moves.drain(..).map(Update::Event));
                out.push(Update::Sample(Box::new(snap)));
            }
        }
        let dropped = self.decoder.stats().dropped;
        if dropped > self.last_dropped {
            out.push(Update::Event(EventRow {
                host_ms: self.host_ms(),
                tick: None,
                kind: EventType::DroppedFrames,
                text: format!("{} frame(s) lost", dropped - self.last_dropped),
            }));
            self.last_dropped = dropped;
        }
        out
    }

    fn cut(&mut self) -> Snapshot {
        let tasks = self.tasks.take().unwrap_or_default();
        let sys = self.system.take();
        let svc = self.service.clone();
        let hello = self.hello.clone();
        let ncores = hello
            .as_ref()
            .map(|h| h.cores as u32)
            .or_else(|| sys.as_ref().map(|s| s.cores.len() as u32))
            .unwrap_or(1)
            .max(1);
        let prev = self.prev.take();
        let total = sys.as_ref().map(|s| s.runtime_total).unwrap_or(0);
        let dtotal = prev.as_ref().map(|p| total.wrapping_sub(p.total));
        let pct = |now: u32, before: Option<u32>| -> Option<f64> {
            let d = dtotal.filter(|d| *d > 0)?;
            Some(now.wrapping_sub(before?) as f64 * 100.0 / d as f64)
        };

        let mut rows = Vec::with_capacity(tasks.len());
        // Per core: the CPU% of the tasks pinned to it (its idle task included); the unpinned
        // tasks' time is shared out afterwards, as the kernel counts run time per task only.
        let mut per_core: BTreeMap<u32, f64> = BTreeMap::new();
        let mut unpinned = 0.0;
        for t in &tasks {
            let cpu = pct(
                t.runtime,
                prev.as_ref().and_then(|p| p.task.get(&t.id).copied()),
            );
            let core = (t.core != NO_CORE).then_some(t.core as u32);
            let affinity = CoreMask::new(t.affinity, ncores);
            let home = if ncores == 1 {
                Some(0)
            } else if affinity.bits().count_ones() == 1 {
                Some(affinity.bits().trailing_zeros())
            } else {
                None
            };
            match (home, cpu) {
                (Some(c), Some(v)) => *per_core.entry(c).or_default() += v,
                (None, Some(v)) => unpinned += v,
                _ => {}
            }
            if let Some(c) = core {
                let before = self.last_core.insert(t.id, c);
                if let Some(b) = before.filter(|b| *b != c) {
                    self.moves.push(EventRow {
                        host_ms: self.host_ms(),
                        tick: sys.as_ref().map(|s| s.ticks),
                        kind: EventType::Migrated,
                        text: format!("{} (task {}) core {b} -> core {c}", t.name, t.id),
                    });
                }
            }
            let mut state: TaskStatus = t.state.into();
            if core.is_some() && state != TaskStatus::Running && ncores > 1 {
                state = TaskStatus::Yielding;
            }
            let known = t.stack_size != 0;
            rows.push(TaskRow {
                name: t.name.clone(),
                id: t.id,
                py_thread: (t.py_thread != 0).then_some(t.py_thread),
                state,
                priority: t.priority as i64,
                base_priority: t.base_priority as i64,
                affinity,
                core,
                cpu_pct: cpu,
                stack_size: known.then_some(t.stack_size),
                stack_high_water: known.then(|| t.stack_size.saturating_sub(t.stack_free_min)),
                stack_free_min: Some(t.stack_free_min),
            });
        }

        // The unpinned tasks ran where the pinned ones left time: shared in proportion to it.
        if prev.is_some() && ncores > 1 {
            let gaps: Vec<f64> = (0..ncores)
                .map(|c| (100.0 - per_core.get(&c).copied().unwrap_or(0.0)).max(0.0))
                .collect();
            let room: f64 = gaps.iter().sum();
            for (c, gap) in gaps.iter().enumerate() {
                let share = if room > 0.0 {
                    unpinned * gap / room
                } else {
                    unpinned / ncores as f64
                };
                *per_core.entry(c as u32).or_default() += share;
            }
        }
        let cores: Vec<CoreLoad> = match &sys {
            Some(s) => s
                .cores
                .iter()
                .enumerate()
                .map(|(i, c)| CoreLoad {
                    core: i as u32,
                    load_pct: pct(
                        c.idle_runtime,
                        prev.as_ref().and_then(|p| p.idle.get(i).copied()),
                    )
                    .map(|idle| (100.0 - idle).clamp(0.0, 100.0)),
                    tasks_pct: per_core.get(&(i as u32)).copied(),
                })
                .collect(),
            None => Vec::new(),
        };

        let uptime = sys.as_ref().map(|s| s.uptime_ms);
        let dt_s = match (uptime, prev.as_ref()) {
            (Some(u), Some(p)) if u.wrapping_sub(p.uptime_ms) > 0 => {
                Some(u.wrapping_sub(p.uptime_ms) as f64 / 1000.0)
            }
            _ => None,
        };
        let rt_hz = hello.as_ref().map(|h| h.runtime_hz).filter(|hz| *hz > 0);
        let us = |v: u32| rt_hz.map(|hz| v as f64 * 1e6 / hz as f64);
        let service = svc.as_ref().map(|s| ServiceView {
            notifications: s.notifications,
            wakeups: s.wakeups,
            suspended_skips: s.suspended_skips,
            isr_schedules: s.isr_schedules,
            task_schedules: s.task_schedules,
            suspend_depth: s.suspend_depth,
            slots: s
                .slots
                .iter()
                .map(|sl| SlotRow {
                    slot: sl.slot,
                    dispatches: sl.dispatches,
                    per_sec: match (dt_s, prev.as_ref().and_then(|p| p.slots.get(&sl.slot))) {
                        (Some(dt), Some(before)) => {
                            Some(sl.dispatches.wrapping_sub(*before) as f64 / dt)
                        }
                        _ => None,
                    },
                    pending: sl.pending,
                    latency_avg_us: us(sl.latency_avg),
                    latency_max_us: us(sl.latency_max),
                    latency_last_us: us(sl.latency_last),
                })
                .collect(),
        });

        let st = self.decoder.stats();
        let known = |v: u32| (v != UNKNOWN).then_some(v);
        let snap = Snapshot {
            board: hello
                .as_ref()
                .map(|h| h.board.clone())
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| self.board.clone()),
            source: "rtt",
            host_ms: self.host_ms(),
            uptime_ms: uptime.map(u64::from),
            firmware: hello.as_ref().map(|h| h.firmware.clone()),
            fingerprint: hello.as_ref().map(|h| format!("{:#010x}", h.fingerprint)),
            gil: hello.as_ref().map(|h| h.gil),
            cores,
            tasks: rows,
            service_note: service
                .is_none()
                .then(|| "no service frame received yet".to_string()),
            service,
            heap: sys.as_ref().map(|s| Heap {
                total: s.heap_total,
                free: s.heap_free,
                min_free: Some(s.heap_free_min),
                allocations: known(s.heap_allocs),
            }),
            gc_heap: sys.as_ref().and_then(|s| {
                Some(Heap {
                    total: known(s.gc_total)?,
                    free: known(s.gc_free)?,
                    min_free: None,
                    allocations: None,
                })
            }),
            // A firmware without mpfr's thread registry cannot count its threads: the Python
            // threads in the table are the live ones then.
            threads_live: sys.as_ref().map(|s| match s.threads_live {
                UNKNOWN16 => tasks.iter().filter(|t| t.py_thread != 0).count() as u32,
                n => n as u32,
            }),
            threads_finished: sys.as_ref().and_then(|s| {
                (s.threads_finished != UNKNOWN16).then_some(s.threads_finished as u32)
            }),
            losses: Losses {
                dropped_frames: st.dropped - self.dropped_bias,
                bad_frames: st.bad_crc + st.malformed + st.unsupported_version,
                bad_bytes: st.skipped_bytes,
                resyncs: st.resyncs,
                agent_overflows: sys.as_ref().map(|s| s.agent_overflows).unwrap_or(0),
            },
        };
        self.prev = Some(Prev {
            total,
            task: tasks.iter().map(|t| (t.id, t.runtime)).collect(),
            idle: sys
                .as_ref()
                .map(|s| s.cores.iter().map(|c| c.idle_runtime).collect())
                .unwrap_or_default(),
            uptime_ms: uptime.unwrap_or(0),
            slots: svc
                .as_ref()
                .map(|s| s.slots.iter().map(|sl| (sl.slot, sl.dispatches)).collect())
                .unwrap_or_default(),
        });
        self.samples += 1;
        snap
    }
}

/// Builds host-board snapshots from `/proc/PID/task`.
#[derive(Debug)]
pub struct HostSampler {
    pid: u32,
    started: Instant,
    prev: Option<(Instant, HashMap<u32, u64>)>,
    hz: u64,
    cpus: u32,
    seen: HashMap<u32, String>,
    pub samples: u64,
}

/// What the host board has instead of a service task.
pub const HOST_SERVICE_NOTE: &str = "the host board has no service task: MicroPython threads are OS threads scheduled by the host kernel";

impl HostSampler {
    pub fn new(pid: u32) -> Self {
        HostSampler {
            pid,
            started: Instant::now(),
            prev: None,
            hz: procfs::clock_ticks_per_sec(),
            cpus: procfs::online_cpus(),
            seen: HashMap::new(),
            samples: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// One sample, and thread start/exit events since the previous one.
    pub fn sample(&mut self) -> Result<(Snapshot, Vec<EventRow>), TargetError> {
        let threads = procfs::threads(self.pid)?;
        let now = Instant::now();
        let host_ms = self.started.elapsed().as_millis() as u64;
        let snap = host_snapshot(
            &threads,
            self.prev
                .as_ref()
                .map(|(t, m)| (now.duration_since(*t).as_secs_f64(), m)),
            self.hz,
            self.cpus,
            host_ms,
        );
        let mut events = Vec::new();
        let current: HashMap<u32, String> =
            threads.iter().map(|t| (t.tid, t.name.clone())).collect();
        if self.samples > 0 {
            for (tid, name) in &current {
                if !self.seen.contains_key(tid) {
                    events.push(EventRow {
                        host_ms,
                        tick: None,
                        kind: EventType::ThreadCreated,
                        text: format!("{name} (tid {tid})"),
                    });
                }
            }
            for (tid, name) in &self.seen {
                if !current.contains_key(tid) {
                    events.push(EventRow {
                        host_ms,
                        tick: None,
                        kind: EventType::ThreadFinished,
                        text: format!("{name} (tid {tid})"),
                    });
                }
            }
        }
        self.seen = current;
        self.prev = Some((now, threads.iter().map(|t| (t.tid, t.cpu_ticks)).collect()));
        self.samples += 1;
        Ok((snap, events))
    }
}

/// The host snapshot from one `/proc` listing and the previous CPU times (`dt` seconds ago). Pure.
pub fn host_snapshot(
    threads: &[OsThread],
    prev: Option<(f64, &HashMap<u32, u64>)>,
    hz: u64,
    cpus: u32,
    host_ms: u64,
) -> Snapshot {
    let mut per_core: BTreeMap<u32, f64> = BTreeMap::new();
    let tasks: Vec<TaskRow> = threads
        .iter()
        .map(|t| {
            let cpu = prev.and_then(|(dt, m)| {
                let before = m.get(&t.tid)?;
                (dt > 0.0).then(|| {
                    t.cpu_ticks.saturating_sub(*before) as f64 * 100.0 / (dt * hz.max(1) as f64)
                })
            });
            if let Some(v) = cpu {
                *per_core.entry(t.cpu).or_default() += v;
            }
            TaskRow {
                name: t.name.clone(),
                id: t.tid,
                py_thread: None,
                state: TaskStatus::from_proc(t.state),
                priority: t.priority,
                base_priority: t.priority,
                affinity: CoreMask::ANY,
                core: Some(t.cpu),
                cpu_pct: cpu,
                stack_size: None,
                stack_high_water: None,
                stack_free_min: None,
            }
        })
        .collect();
    let cores = (0..cpus)
        .map(|c| CoreLoad {
            core: c,
            load_pct: prev.map(|_| per_core.get(&c).copied().unwrap_or(0.0).min(100.0)),
            tasks_pct: prev.map(|_| per_core.get(&c).copied().unwrap_or(0.0)),
        })
        .collect();
    Snapshot {
        board: "host".into(),
        source: "procfs",
        host_ms,
        uptime_ms: None,
        firmware: Some("micropython (unix port)".into()),
        fingerprint: None,
        gil: None,
        cores,
        tasks,
        service: None,
        service_note: Some(HOST_SERVICE_NOTE.into()),
        heap: None,
        gc_heap: None,
        threads_live: Some(threads.len() as u32),
        threads_finished: None,
        losses: Losses::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpfr_firmware::protocol::{CoreStats, Event, GilMode, SlotStats, Tasks, encode};

    fn task(name: &str, id: u32, core: u8, runtime: u32) -> TaskEntry {
        TaskEntry {
            name: name.into(),
            id,
            py_thread: if id > 2 { 1000 + id } else { 0 },
            state: TaskState::Ready,
            base_priority: 1,
            priority: 1,
            core,
            affinity: u32::MAX,
            runtime,
            stack_size: 4096,
            stack_free_min: 1000,
        }
    }

    fn frames(seq: &mut u16, sample: u32, runtimes: [u32; 4], total: u32, uptime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |f: Frame| {
            out.extend(encode(*seq, &f).expect("encode"));
            *seq = seq.wrapping_add(1);
        };
        let all = [
            task("IDLE0", 1, 0, runtimes[0]),
            task("IDLE1", 2, 1, runtimes[1]),
            task("worker-a", 3, 0, runtimes[2]),
            task("worker-b", 4, 1, runtimes[3]),
        ];
        // Split over two frames to exercise the table assembly.
        push(Frame::Tasks(Tasks {
            sample,
            total: 4,
            first: 0,
            tasks: all[..2].to_vec(),
        }));
        push(Frame::Tasks(Tasks {
            sample,
            total: 4,
            first: 2,
            tasks: all[2..].to_vec(),
        }));
        push(Frame::Service(Service {
            notifications: 10 * sample,
            wakeups: 5,
            suspended_skips: 0,
            isr_schedules: 1,
            task_schedules: 2,
            suspend_depth: 0,
            slots: vec![SlotStats {
                slot: 0,
                pending: 1,
                dispatches: 50 * sample,
                latency_min: 1,
                latency_avg: 10,
                latency_max: 100,
                latency_last: 5,
            }],
        }));
        push(Frame::System(two_core_system(
            uptime,
            total,
            [runtimes[0], runtimes[1]],
            [3, 4],
        )));
        out
    }

    /// A system frame of a two-core board: each core's idle run time and its running task id.
    fn two_core_system(uptime: u32, total: u32, idle: [u32; 2], running: [u32; 2]) -> System {
        System {
            uptime_ms: uptime,
            ticks: uptime,
            runtime_total: total,
            heap_total: 8192,
            heap_free: 4000,
            heap_free_min: 3000,
            gc_total: UNKNOWN,
            gc_free: UNKNOWN,
            threads_live: 2,
            threads_finished: 0,
            agent_overflows: 0,
            heap_allocs: UNKNOWN,
            cores: idle
                .iter()
                .zip(running)
                .map(|(&idle_runtime, running)| CoreStats {
                    idle_runtime,
                    running,
                })
                .collect(),
        }
    }

    fn hello() -> Vec<u8> {
        encode(
            0,
            &Frame::Hello(Hello {
                protocol: 1,
                fingerprint: 0x1234_5678,
                cores: 2,
                gil: GilMode::Off,
                tick_hz: 1000,
                runtime_hz: 1_000_000,
                sample_hz: 10,
                board: "rpi-pico".into(),
                firmware: "mpfr-ref".into(),
            }),
        )
        .expect("encode")
    }

    fn samples(u: Vec<Update>) -> Vec<Snapshot> {
        u.into_iter()
            .filter_map(|u| match u {
                Update::Sample(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// One SMP sample: idle tasks and `pin-c0` pinned, `mig` unpinned on `mig_core`.
    fn smp_frames(seq: &mut u16, sample: u32, runtimes: [u32; 4], mig_core: u8) -> Vec<u8> {
        let entry = |name: &str, id, core, affinity, runtime, state| TaskEntry {
            state,
            affinity,
            ..task(name, id, core, runtime)
        };
        let tasks = vec![
            entry("IDLE0", 1, NO_CORE, 0b01, runtimes[0], TaskState::Ready),
            // Still core 1's current task, but not running: scheduled to yield.
            entry("IDLE1", 2, 1, 0b10, runtimes[1], TaskState::Ready),
            entry("pin-c0", 3, NO_CORE, 0b01, runtimes[2], TaskState::Blocked),
            entry("mig", 4, mig_core, 0b11, runtimes[3], TaskState::Running),
        ];
        let mut out = Vec::new();
        for f in [
            Frame::Tasks(Tasks {
                sample,
                total: 4,
                first: 0,
                tasks,
            }),
            Frame::System(two_core_system(
                sample * 100,
                (sample - 1) * 1000,
                [runtimes[0], runtimes[1]],
                [4, 2],
            )),
        ] {
            out.extend(encode(*seq, &f).expect("encode"));
            *seq = seq.wrapping_add(1);
        }
        out
    }

    #[test]
    fn smp_cores_add_up_to_100_each_with_unpinned_time_shared_out() {
        let mut t = Telemetry::new("qemu-mps2-an521");
        let mut seq = 1;
        t.feed(&hello());
        let first = t.feed(&smp_frames(&mut seq, 1, [0, 0, 0, 0], 1));
        assert!(
            !first
                .iter()
                .any(|u| matches!(u, Update::Event(e) if e.kind == EventType::Migrated))
        );
        // Over 1000 units: core 0 idle 30% + pin-c0 50%, core 1 idle 60%; mig (unpinned) 60%
        // fills the 20% and 40% the pinned tasks left.
        let u = t.feed(&smp_frames(&mut seq, 2, [300, 600, 500, 600], 0));
        let moved: Vec<&EventRow> = u
            .iter()
            .filter_map(|u| match u {
                Update::Event(e) if e.kind == EventType::Migrated => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(moved.len(), 1, "{u:?}");
        assert!(
            moved[0].text.contains("mig (task 4) core 1 -> core 0"),
            "{moved:?}"
        );
        let s = &samples(u)[0];
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
        assert!(near(s.cores[0].tasks_pct, 100.0), "{:?}", s.cores);
        assert!(near(s.cores[1].tasks_pct, 100.0), "{:?}", s.cores);
        assert!(near(s.cores[0].load_pct, 70.0), "{:?}", s.cores);
        assert!(near(s.tasks[3].cpu_pct, 60.0), "a task's share of one core");
        assert_eq!(s.tasks[0].affinity.to_string(), "core0");
        assert_eq!(s.tasks[3].affinity, CoreMask::ANY);
        assert_eq!(s.tasks[1].state, TaskStatus::Yielding);
        assert_eq!(s.tasks[3].state, TaskStatus::Running);
        assert_eq!(s.tasks[2].state, TaskStatus::Blocked);
    }

    #[test]
    fn without_a_thread_registry_the_python_threads_in_the_table_are_the_live_ones() {
        let mut seq = 1;
        let decoded = Decoder::new().feed(&frames(&mut seq, 1, [0; 4], 0, 0));
        let mut bytes = Vec::new();
        for (seq, f) in (seq..).zip(decoded) {
            let f = match f {
                Frame::System(mut s) => {
                    s.threads_live = UNKNOWN16;
                    s.threads_finished = UNKNOWN16;
                    Frame::System(s)
                }
                f => f,
            };
            bytes.extend(encode(seq, &f).expect("encode"));
        }
        let mut t = Telemetry::new("b");
        let s = samples(t.feed(&bytes)).pop().expect("a sample");
        // worker-a and worker-b carry Python thread ids; the idle tasks do not.
        assert_eq!(s.threads_live, Some(2));
        assert_eq!(s.threads_finished, None);
    }

    #[test]
    fn cpu_percent_from_deltas_sums_to_100_per_core() {
        let mut t = Telemetry::new("rpi-pico");
        let mut seq = 1;
        assert!(samples(t.feed(&hello())).is_empty());
        let s1 = samples(t.feed(&frames(&mut seq, 1, [0, 0, 0, 0], 0, 0)));
        assert_eq!(s1.len(), 1);
        assert_eq!(
            s1[0].tasks[2].cpu_pct, None,
            "no deltas on the first sample"
        );
        // 1000 counter units later: core 0 idle 250 + worker-a 750, core 1 idle 900 + b 100.
        let s2 = samples(t.feed(&frames(&mut seq, 2, [250, 900, 750, 100], 1000, 100)));
        let s = &s2[0];
        assert_eq!(s.tasks[2].cpu_pct, Some(75.0));
        assert_eq!(s.tasks[3].cpu_pct, Some(10.0));
        assert_eq!(s.cores[0].tasks_pct, Some(100.0));
        assert_eq!(s.cores[1].tasks_pct, Some(100.0));
        assert_eq!(s.cores[0].load_pct, Some(75.0));
        assert_eq!(s.tasks[2].py_thread, Some(1003));
        assert_eq!(s.tasks[2].stack_high_water, Some(3096));
        assert_eq!(s.tasks[2].affinity, CoreMask::ANY);
        let svc = s.service.as_ref().expect("service");
        // 50 dispatches in 100 ms.
        assert_eq!(svc.slots[0].per_sec, Some(500.0));
        assert_eq!(svc.slots[0].latency_avg_us, Some(10.0));
        assert_eq!(s.heap.map(|h| h.min_free), Some(Some(3000)));
        assert_eq!(s.gc_heap, None);
        assert_eq!(s.fingerprint.as_deref(), Some("0x12345678"));
        assert_eq!(s.gil, Some(GilMode::Off));
        assert_eq!(s.losses.dropped_frames, 0);
    }

    #[test]
    fn counters_wrapping_at_2_32_still_give_right_deltas() {
        let mut t = Telemetry::new("b");
        let mut seq = 1;
        let base = u32::MAX - 100;
        t.feed(&frames(&mut seq, 1, [base, base, base, base], base, 0));
        let w = |d: u32| base.wrapping_add(d);
        let s = samples(t.feed(&frames(
            &mut seq,
            2,
            [w(50), w(200), w(150), w(0)],
            w(200),
            100,
        )));
        assert_eq!(s[0].tasks[0].cpu_pct, Some(25.0));
        assert_eq!(s[0].tasks[2].cpu_pct, Some(75.0));
    }

    #[test]
    fn lost_frames_become_an_event_and_a_counter() {
        let mut t = Telemetry::new("b");
        let mut seq = 1;
        t.feed(&frames(&mut seq, 1, [0; 4], 0, 0));
        seq += 3; // three frames the agent dropped
        let u = t.feed(&frames(&mut seq, 2, [1; 4], 4, 100));
        assert!(u.iter().any(|u| matches!(u, Update::Event(e) if e.kind == EventType::DroppedFrames && e.text.starts_with("3 "))), "{u:?}");
        assert_eq!(samples(u)[0].losses.dropped_frames, 3);
    }

    /// Garbage in the ring (no frame header in it) and a frame damaged on the way are both
    /// damage the user must see: the skipped bytes count, not only the frames that kept a header.
    #[test]
    fn skipped_garbage_counts_as_bad_bytes_and_the_identity_comes_back() {
        let mut t = Telemetry::new("b");
        let mut seq = 1;
        t.feed(&frames(&mut seq, 1, [0; 4], 0, 0));
        let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7 % 0xA0) as u8).collect();
        let hello_at = |seq: u16| {
            let mut h = hello();
            h[4..6].copy_from_slice(&seq.to_le_bytes());
            let crc = mpfr_firmware::protocol::crc16(&h[2..h.len() - 2]);
            let n = h.len();
            h[n - 2..].copy_from_slice(&crc.to_le_bytes());
            h
        };
        let mut damaged = hello_at(seq);
        seq += 1;
        let last = damaged.len() - 3;
        damaged[last] ^= 0x40;
        let mut stream = garbage.clone();
        stream.extend_from_slice(&damaged);
        stream.extend_from_slice(&hello_at(seq));
        seq += 1;
        stream.extend(frames(&mut seq, 2, [1; 4], 4, 100));
        let s = samples(t.feed(&stream));
        let l = s[0].losses;
        assert_eq!(l.bad_frames, 1, "{l:?}");
        assert_eq!(l.bad_bytes, (garbage.len() + damaged.len()) as u64, "{l:?}");
        assert_eq!(l.resyncs, 1, "{l:?}");
        assert_eq!(s[0].firmware.as_deref(), Some("mpfr-ref"));
        assert_eq!(s[0].gil, Some(GilMode::Off));
        // The damaged hello never decoded, so its sequence number shows as one gap too.
        assert_eq!(l.dropped_frames, 1, "{l:?}");
    }

    #[test]
    fn events_are_forwarded_with_text() {
        let mut t = Telemetry::new("b");
        let bytes = encode(
            1,
            &Frame::Event(Event {
                kind: EventKind::ThreadReaped,
                tick: 77,
                a: 5,
                b: 4096,
                text: "thread-5".into(),
            }),
        )
        .expect("encode");
        let u = t.feed(&bytes);
        assert_eq!(
            u,
            vec![Update::Event(EventRow {
                host_ms: match &u[0] {
                    Update::Event(e) => e.host_ms,
                    _ => 0,
                },
                tick: Some(77),
                kind: EventType::ThreadReaped,
                text: "thread-5 (task 5, 4096 bytes freed)".into(),
            })]
        );
    }

    #[test]
    fn restart_clears_deltas() {
        let mut t = Telemetry::new("b");
        let mut seq = 1;
        t.feed(&frames(&mut seq, 1, [0; 4], 0, 0));
        t.target_restarted();
        let mut seq = 1;
        let s = samples(t.feed(&frames(&mut seq, 1, [5; 4], 10, 1)));
        assert_eq!(s[0].tasks[0].cpu_pct, None);
        assert_eq!(s[0].losses.dropped_frames, 0);
    }

    #[test]
    fn uptime_going_backwards_is_a_restart() {
        let mut t = Telemetry::new("b");
        let mut seq = 1;
        t.feed(&frames(&mut seq, 1, [0; 4], 0, 5000));
        // The agent restarts its sequence numbers too.
        let mut seq = 0;
        let u = t.feed(&frames(&mut seq, 1, [5; 4], 10, 100));
        assert!(
            u.iter()
                .any(|u| matches!(u, Update::Event(e) if e.kind == EventType::Restarted))
        );
        let s = samples(u);
        assert_eq!(s[0].tasks[0].cpu_pct, None);
        assert_eq!(s[0].losses.dropped_frames, 0);
    }

    #[test]
    fn a_sequence_restart_read_apart_from_its_system_frame_is_no_loss() {
        let mut t = Telemetry::new("b");
        let mut seq = 2300;
        for i in 0..3 {
            t.feed(&frames(
                &mut seq,
                i + 1,
                [i * 10; 4],
                i * 40,
                5000 + i * 100,
            ));
        }
        // A QMP reset: the agent says hello again from sequence 0, and that hello is all one
        // poll reads; the frames of its first sample come with the next poll.
        let u = t.feed(&hello());
        assert!(
            !u.iter()
                .any(|u| matches!(u, Update::Event(e) if e.kind == EventType::DroppedFrames)),
            "{u:?}"
        );
        let mut seq = 1;
        let s = samples(t.feed(&frames(&mut seq, 1, [1; 4], 4, 100)));
        assert_eq!(s[0].losses.dropped_frames, 0);
        // A real gap after the restart still counts.
        seq += 2;
        let s = samples(t.feed(&frames(&mut seq, 2, [2; 4], 8, 200)));
        assert_eq!(s[0].losses.dropped_frames, 2);
    }

    #[test]
    fn affinity_prints_cores_and_keeps_its_json() {
        let m = |mask, cores| CoreMask::new(mask, cores);
        let json = |c: CoreMask| serde_json::to_value(c).unwrap();
        for (mask, cores, text, js) in [
            (u32::MAX, 2, "any", "any"),
            (0b11, 2, "any", "any"),
            (0b1, 1, "any", "any"),
            (0b01, 2, "core0", "0"),
            (0b10, 2, "core1", "1"),
            (0b101, 4, "0b101", "0,2"),
            (0, 2, "none", "none"),
        ] {
            assert_eq!(m(mask, cores).to_string(), text, "{mask:#b} on {cores}");
            assert_eq!(json(m(mask, cores)), js, "{mask:#b} on {cores}");
        }
    }

    #[test]
    fn task_states_and_event_types_keep_their_json_names() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for t in TaskStatus::ALL {
            assert_eq!(json(serde_json::to_value(t).unwrap()), t.to_string());
        }
        assert_eq!(TaskStatus::from(TaskState::Blocked).to_string(), "blocked");
        assert_eq!(TaskStatus::from_proc('D').to_string(), "disk-wait");
        assert_eq!(
            json(serde_json::to_value(EventType::from(EventKind::Other(9))).unwrap()),
            "event_9"
        );
        assert_eq!(
            EventType::from(EventKind::StackOverflow).to_string(),
            "stack_overflow"
        );
    }

    #[test]
    fn host_snapshot_cpu_and_note() {
        let th = |tid, ticks, cpu| OsThread {
            tid,
            name: format!("t{tid}"),
            state: 'R',
            cpu_ticks: ticks,
            priority: 20,
            nice: 0,
            cpu,
        };
        let before: HashMap<u32, u64> = [(1, 0), (2, 10)].into_iter().collect();
        let s = host_snapshot(
            &[th(1, 50, 0), th(2, 60, 1)],
            Some((1.0, &before)),
            100,
            2,
            5,
        );
        assert_eq!(s.tasks[0].cpu_pct, Some(50.0));
        assert_eq!(s.tasks[1].cpu_pct, Some(50.0));
        assert_eq!(s.cores[1].load_pct, Some(50.0));
        assert!(s.service.is_none());
        assert!(
            s.service_note
                .as_deref()
                .is_some_and(|n| n.contains("no service task"))
        );
    }
}
