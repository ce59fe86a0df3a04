//! The mpfr telemetry wire protocol (spec: `docs/protocol.md`): frame types, a streaming
//! [`Decoder`] that resynchronises after garbage and counts what it lost, and an [`encode`]
//! function that mirrors the C encoder in `firmware/agent/` (used by tests and host fakes).
//!
//! Frame layout, all integers little-endian:
//!
//! ```text
//! 0  2  sync      0xA5 0x5A
//! 2  1  version   PROTOCOL_VERSION
//! 3  1  type      FrameType
//! 4  2  seq       sequence number, +1 per frame the agent produced (wraps)
//! 6  2  len       payload length, <= MAX_PAYLOAD
//! 8  len payload
//! .  2  crc       CRC-16/CCITT-FALSE over version..payload end
//! ```

use serde::Serialize;

/// The protocol version this decoder speaks (header byte 2 and the hello frame).
pub const PROTOCOL_VERSION: u8 = 1;
/// First two bytes of every frame.
pub const SYNC: [u8; 2] = [0xA5, 0x5A];
/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// Bytes after the payload (the CRC).
pub const TRAILER_LEN: usize = 2;
/// Largest payload a sender may put in one frame.
pub const MAX_PAYLOAD: usize = 1024;
/// Largest frame on the wire.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN;
/// Longest string field (board name, task name).
pub const MAX_NAME: usize = 32;
/// Longest event text.
pub const MAX_TEXT: usize = 64;
/// Most task entries in one tasks frame; larger tables are split over several frames.
pub const MAX_TASKS_PER_FRAME: usize = 16;
/// Most slots in one service frame.
pub const MAX_SLOTS: usize = 16;
/// Most cores in one system frame.
pub const MAX_CORES: usize = 8;
/// "Not known" for 32-bit quantities (GC heap on a firmware without MicroPython, ...).
pub const UNKNOWN: u32 = u32::MAX;
/// "Not known" for 16-bit counts (thread counts of a firmware without mpfr's thread registry).
pub const UNKNOWN16: u16 = u16::MAX;
/// "Not running on any core" in [`TaskEntry::core`].
pub const NO_CORE: u8 = 0xFF;

/// Frame type byte (header byte 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Hello = 1,
    Tasks = 2,
    Service = 3,
    System = 4,
    Event = 5,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<FrameType> {
        Some(match b {
            1 => FrameType::Hello,
            2 => FrameType::Tasks,
            3 => FrameType::Service,
            4 => FrameType::System,
            5 => FrameType::Event,
            _ => return None,
        })
    }
}

/// GIL mode reported by the firmware. The one Rust definition of its wire byte (the hello
/// frame's `gil`, the config header's `MPFR_GIL`): 0 off, 1 on, 0xFF unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GilMode {
    Off,
    On,
    Unknown,
}

impl GilMode {
    /// Every variant.
    pub const ALL: &'static [GilMode] = &[GilMode::Off, GilMode::On, GilMode::Unknown];

    /// Any byte other than 0 and 1 reads as unknown.
    pub fn from_wire(b: u8) -> GilMode {
        match b {
            0 => GilMode::Off,
            1 => GilMode::On,
            _ => GilMode::Unknown,
        }
    }

    pub fn to_wire(self) -> u8 {
        match self {
            GilMode::Off => 0,
            GilMode::On => 1,
            GilMode::Unknown => 0xFF,
        }
    }

    /// The name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GilMode::Off => "off",
            GilMode::On => "on",
            GilMode::Unknown => "unknown",
        }
    }
}

impl core::fmt::Display for GilMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Sent when the agent starts, and again every few seconds so a late host can attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hello {
    pub protocol: u8,
    pub fingerprint: u32,
    pub cores: u8,
    pub gil: GilMode,
    pub tick_hz: u32,
    /// Frequency of the run-time stats counter (task run times and service latencies count in it).
    pub runtime_hz: u32,
    pub sample_hz: u16,
    pub board: String,
    /// What runs the agent: `mpfr-ref` (reference firmware), `micropython`, ...
    pub firmware: String,
}

/// FreeRTOS task state (`eTaskState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    Ready,
    Blocked,
    Suspended,
    Deleted,
    Invalid,
    /// Finished, waiting for the reaper (the firmware's thread registry says so; FreeRTOS sees
    /// a parked task).
    Finished,
}

impl TaskState {
    /// Every variant.
    pub const ALL: &'static [TaskState] = &[
        TaskState::Running,
        TaskState::Ready,
        TaskState::Blocked,
        TaskState::Suspended,
        TaskState::Deleted,
        TaskState::Invalid,
        TaskState::Finished,
    ];

    /// The name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Ready => "ready",
            TaskState::Blocked => "blocked",
            TaskState::Suspended => "suspended",
            TaskState::Deleted => "deleted",
            TaskState::Invalid => "invalid",
            TaskState::Finished => "finished",
        }
    }

    fn from_u8(b: u8) -> TaskState {
        match b {
            0 => TaskState::Running,
            1 => TaskState::Ready,
            2 => TaskState::Blocked,
            3 => TaskState::Suspended,
            4 => TaskState::Deleted,
            6 => TaskState::Finished,
            _ => TaskState::Invalid,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            TaskState::Running => 0,
            TaskState::Ready => 1,
            TaskState::Blocked => 2,
            TaskState::Suspended => 3,
            TaskState::Deleted => 4,
            TaskState::Invalid => 5,
            TaskState::Finished => 6,
        }
    }
}

impl core::fmt::Display for TaskState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One task of the task table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskEntry {
    pub name: String,
    /// FreeRTOS task number (`uxTaskNumber`), unique while the task lives.
    pub id: u32,
    /// Python thread id (`_thread.get_ident()`), 0 when the task is no Python thread.
    pub py_thread: u32,
    pub state: TaskState,
    pub base_priority: u8,
    pub priority: u8,
    /// Core the task runs or last ran on, [`NO_CORE`] when unknown.
    pub core: u8,
    /// Core affinity mask; all ones = any core.
    pub affinity: u32,
    /// Run-time counter (wraps at 2^32), in units of `Hello::runtime_hz`.
    pub runtime: u32,
    /// Stack size in bytes, 0 when unknown.
    pub stack_size: u32,
    /// Least free stack ever, in bytes.
    pub stack_free_min: u32,
}

/// A part of one task-table sample: entries `first..first + tasks.len()` of `total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tasks {
    /// Sample number; all parts of one table carry the same.
    pub sample: u32,
    pub total: u16,
    pub first: u16,
    pub tasks: Vec<TaskEntry>,
}

/// Counters of one service-task dispatch slot. Latencies count in run-time counter units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotStats {
    pub slot: u8,
    pub pending: u8,
    pub dispatches: u32,
    pub latency_min: u32,
    pub latency_avg: u32,
    pub latency_max: u32,
    pub latency_last: u32,
}

/// The service task's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub notifications: u32,
    pub wakeups: u32,
    pub suspended_skips: u32,
    pub isr_schedules: u32,
    pub task_schedules: u32,
    pub suspend_depth: u8,
    pub slots: Vec<SlotStats>,
}

/// Per-core figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreStats {
    /// Run-time counter of this core's idle task.
    pub idle_runtime: u32,
    /// Task number of the task running on this core at sample time.
    pub running: u32,
}

/// Whole-system figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct System {
    pub uptime_ms: u32,
    pub ticks: u32,
    /// Total run-time counter (the denominator for CPU%).
    pub runtime_total: u32,
    pub heap_total: u32,
    pub heap_free: u32,
    pub heap_free_min: u32,
    /// MicroPython GC heap, [`UNKNOWN`] when not known.
    pub gc_total: u32,
    pub gc_free: u32,
    pub threads_live: u16,
    pub threads_finished: u16,
    /// Frames the agent produced but could not write because the RTT buffer was full.
    pub agent_overflows: u32,
    pub cores: Vec<CoreStats>,
    /// Successful FreeRTOS heap allocations ever: 0 = the heap was never used (heap_4 has not
    /// even initialised itself, so free and minimum read 0), [`UNKNOWN`] when the heap cannot
    /// say or the agent predates the field.
    pub heap_allocs: u32,
}

/// Kind of an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `a` = task number, `b` = Python thread id, text = task name.
    ThreadCreated,
    /// `a` = task number, `b` = Python thread id, text = task name.
    ThreadFinished,
    /// `a` = task number, `b` = bytes freed, text = task name.
    ThreadReaped,
    /// text = task name.
    StackOverflow,
    /// `a` = bytes requested (0 when unknown).
    MallocFailed,
    /// `a` = line, text = file.
    Assert,
    /// text = message.
    Log,
    /// A kind this decoder does not know (newer agent).
    Other(u8),
}

impl EventKind {
    fn from_u8(b: u8) -> EventKind {
        match b {
            1 => EventKind::ThreadCreated,
            2 => EventKind::ThreadFinished,
            3 => EventKind::ThreadReaped,
            4 => EventKind::StackOverflow,
            5 => EventKind::MallocFailed,
            6 => EventKind::Assert,
            7 => EventKind::Log,
            o => EventKind::Other(o),
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            EventKind::ThreadCreated => 1,
            EventKind::ThreadFinished => 2,
            EventKind::ThreadReaped => 3,
            EventKind::StackOverflow => 4,
            EventKind::MallocFailed => 5,
            EventKind::Assert => 6,
            EventKind::Log => 7,
            EventKind::Other(o) => o,
        }
    }
}

/// Something that happened on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// Tick count when it happened.
    pub tick: u32,
    pub a: u32,
    pub b: u32,
    pub text: String,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "frame", rename_all = "lowercase")]
pub enum Frame {
    Hello(Hello),
    Tasks(Tasks),
    Service(Service),
    System(System),
    Event(Event),
}

impl Frame {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Tasks(_) => FrameType::Tasks,
            Frame::Service(_) => FrameType::Service,
            Frame::System(_) => FrameType::System,
            Frame::Event(_) => FrameType::Event,
        }
    }
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// What the decoder lost or skipped, cumulative since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DecoderStats {
    /// Frames decoded and returned.
    pub frames: u64,
    /// Frames missing according to sequence numbers (the agent dropped them, or they were lost).
    pub dropped: u64,
    /// Frames whose CRC did not match.
    pub bad_crc: u64,
    /// Frames with a valid CRC but a payload that does not parse (or an unknown type).
    pub malformed: u64,
    /// Frames with a valid CRC from another protocol version.
    pub unsupported_version: u64,
    /// Times the decoder had to skip bytes to find the next frame.
    pub resyncs: u64,
    /// Bytes skipped while resynchronising.
    pub skipped_bytes: u64,
}

/// Streaming frame decoder: feed it bytes in any split, get whole frames back.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    last_seq: Option<u16>,
    /// True while the bytes being skipped belong to one run of garbage (counted as one resync).
    skipping: bool,
    stats: DecoderStats,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Sequence number of the last good frame.
    pub fn last_seq(&self) -> Option<u16> {
        self.last_seq
    }

    /// Forgets the sequence (after the target restarted) so the next frame counts no gap.
    pub fn reset_sequence(&mut self) {
        self.last_seq = None;
    }

    /// Adds `bytes` and returns every frame completed by them, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match self.step(pos) {
                Step::NeedMore => break,
                Step::Skip => {
                    if !self.skipping {
                        self.skipping = true;
                        self.stats.resyncs += 1;
                    }
                    self.stats.skipped_bytes += 1;
                    pos += 1;
                }
                Step::Consumed(n, frame) => {
                    self.skipping = false;
                    pos += n;
                    if let Some(f) = frame {
                        out.push(f);
                    }
                }
            }
        }
        self.buf.drain(..pos);
        out
    }

    fn step(&mut self, pos: usize) -> Step {
        let b = &self.buf[pos..];
        if b.is_empty() {
            return Step::NeedMore;
        }
        if b[0] != SYNC[0] {
            return Step::Skip;
        }
        if b.len() < 2 {
            return Step::NeedMore;
        }
        if b[1] != SYNC[1] {
            return Step::Skip;
        }
        if b.len() < HEADER_LEN {
            return Step::NeedMore;
        }
        let len = usize::from(u16::from_le_bytes([b[6], b[7]]));
        if len > MAX_PAYLOAD {
            return Step::Skip;
        }
        let total = HEADER_LEN + len + TRAILER_LEN;
        if b.len() < total {
            return Step::NeedMore;
        }
        let crc = u16::from_le_bytes([b[total - 2], b[total - 1]]);
        if crc16(&b[2..total - 2]) != crc {
            // Not necessarily a frame at all: the sync may be payload bytes. Skip one byte only.
            self.stats.bad_crc += 1;
            return Step::Skip;
        }
        let version = b[2];
        let ty = b[3];
        let seq = u16::from_le_bytes([b[4], b[5]]);
        if version != PROTOCOL_VERSION {
            self.stats.unsupported_version += 1;
            return Step::Consumed(total, None);
        }
        if let Some(last) = self.last_seq {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            self.stats.dropped += u64::from(gap);
        }
        self.last_seq = Some(seq);
        let frame =
            FrameType::from_u8(ty).and_then(|t| parse_payload(t, &b[HEADER_LEN..total - 2]));
        match frame {
            Some(f) => {
                self.stats.frames += 1;
                Step::Consumed(total, Some(f))
            }
            None => {
                self.stats.malformed += 1;
                Step::Consumed(total, None)
            }
        }
    }
}

enum Step {
    NeedMore,
    Skip,
    Consumed(usize, Option<Frame>),
}

/// Bounds-checked little-endian reader over a payload.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn str(&mut self, max: usize) -> Option<String> {
        let n = usize::from(self.u8()?);
        if n > max {
            return None;
        }
        self.take(n)
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
}

fn parse_payload(ty: FrameType, payload: &[u8]) -> Option<Frame> {
    let mut r = Rd { b: payload };
    let f = match ty {
        FrameType::Hello => Frame::Hello(Hello {
            protocol: r.u8()?,
            gil: GilMode::from_wire(r.u8()?),
            cores: r.u8()?,
            sample_hz: {
                let _reserved = r.u8()?;
                r.u16()?
            },
            fingerprint: {
                let _reserved = r.u16()?;
                r.u32()?
            },
            tick_hz: r.u32()?,
            runtime_hz: r.u32()?,
            board: r.str(MAX_NAME)?,
            firmware: r.str(MAX_NAME)?,
        }),
        FrameType::Tasks => {
            let sample = r.u32()?;
            let total = r.u16()?;
            let first = r.u16()?;
            let n = usize::from(r.u8()?);
            if n > MAX_TASKS_PER_FRAME || usize::from(first) + n > usize::from(total) {
                return None;
            }
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                tasks.push(TaskEntry {
                    id: r.u32()?,
                    py_thread: r.u32()?,
                    state: TaskState::from_u8(r.u8()?),
                    base_priority: r.u8()?,
                    priority: r.u8()?,
                    core: r.u8()?,
                    affinity: r.u32()?,
                    runtime: r.u32()?,
                    stack_size: r.u32()?,
                    stack_free_min: r.u32()?,
                    name: r.str(MAX_NAME)?,
                });
            }
            Frame::Tasks(Tasks {
                sample,
                total,
                first,
                tasks,
            })
        }
        FrameType::Service => {
            let notifications = r.u32()?;
            let wakeups = r.u32()?;
            let suspended_skips = r.u32()?;
            let isr_schedules = r.u32()?;
            let task_schedules = r.u32()?;
            let suspend_depth = r.u8()?;
            let n = usize::from(r.u8()?);
            if n > MAX_SLOTS {
                return None;
            }
            let mut slots = Vec::with_capacity(n);
            for _ in 0..n {
                slots.push(SlotStats {
                    slot: r.u8()?,
                    pending: r.u8()?,
                    dispatches: r.u32()?,
                    latency_min: r.u32()?,
                    latency_avg: r.u32()?,
                    latency_max: r.u32()?,
                    latency_last: r.u32()?,
                });
            }
            Frame::Service(Service {
                notifications,
                wakeups,
                suspended_skips,
                isr_schedules,
                task_schedules,
                suspend_depth,
                slots,
            })
        }
        FrameType::System => {
            let mut s = System {
                uptime_ms: r.u32()?,
                ticks: r.u32()?,
                runtime_total: r.u32()?,
                heap_total: r.u32()?,
                heap_free: r.u32()?,
                heap_free_min: r.u32()?,
                gc_total: r.u32()?,
                gc_free: r.u32()?,
                threads_live: r.u16()?,
                threads_finished: r.u16()?,
                agent_overflows: r.u32()?,
                cores: Vec::new(),
                heap_allocs: UNKNOWN,
            };
            let n = usize::from(r.u8()?);
            if n > MAX_CORES {
                return None;
            }
            for _ in 0..n {
                s.cores.push(CoreStats {
                    idle_runtime: r.u32()?,
                    running: r.u32()?,
                });
            }
            // Added at the end within version 1: older agents stop before it.
            if let Some(v) = r.u32() {
                s.heap_allocs = v;
            }
            Frame::System(s)
        }
        FrameType::Event => Frame::Event(Event {
            kind: EventKind::from_u8(r.u8()?),
            tick: r.u32()?,
            a: r.u32()?,
            b: r.u32()?,
            text: r.str(MAX_TEXT)?,
        }),
    };
    // Trailing bytes are allowed: a newer agent of the same version may append fields.
    Some(f)
}

/// Little-endian writer used by [`encode`].
struct Wr(Vec<u8>);

impl Wr {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str, max: usize) {
        let b = s.as_bytes();
        let n = b.len().min(max);
        self.u8(n as u8);
        self.0.extend_from_slice(&b[..n]);
    }
}

/// Why [`encode`] refused a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("{what}: {n} exceeds the protocol limit of {max}")]
    TooMany {
        what: &'static str,
        n: usize,
        max: usize,
    },
}

fn check(what: &'static str, n: usize, max: usize) -> Result<(), EncodeError> {
    if n > max {
        Err(EncodeError::TooMany { what, n, max })
    } else {
        Ok(())
    }
}

/// Encodes `frame` with sequence number `seq`, byte for byte as the C agent does. Strings longer
/// than their limit are cut; tables longer than theirs are an error.
pub fn encode(seq: u16, frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    let mut w = Wr(Vec::with_capacity(64));
    match frame {
        Frame::Hello(h) => {
            w.u8(h.protocol);
            w.u8(h.gil.to_wire());
            w.u8(h.cores);
            w.u8(0);
            w.u16(h.sample_hz);
            w.u16(0);
            w.u32(h.fingerprint);
            w.u32(h.tick_hz);
            w.u32(h.runtime_hz);
            w.str(&h.board, MAX_NAME);
            w.str(&h.firmware, MAX_NAME);
        }
        Frame::Tasks(t) => {
            check("tasks in one frame", t.tasks.len(), MAX_TASKS_PER_FRAME)?;
            check(
                "first + tasks",
                usize::from(t.first) + t.tasks.len(),
                usize::from(t.total),
            )?;
            w.u32(t.sample);
            w.u16(t.total);
            w.u16(t.first);
            w.u8(t.tasks.len() as u8);
            for e in &t.tasks {
                w.u32(e.id);
                w.u32(e.py_thread);
                w.u8(e.state.to_u8());
                w.u8(e.base_priority);
                w.u8(e.priority);
                w.u8(e.core);
                w.u32(e.affinity);
                w.u32(e.runtime);
                w.u32(e.stack_size);
                w.u32(e.stack_free_min);
                w.str(&e.name, MAX_NAME);
            }
        }
        Frame::Service(s) => {
            check("service slots", s.slots.len(), MAX_SLOTS)?;
            w.u32(s.notifications);
            w.u32(s.wakeups);
            w.u32(s.suspended_skips);
            w.u32(s.isr_schedules);
            w.u32(s.task_schedules);
            w.u8(s.suspend_depth);
            w.u8(s.slots.len() as u8);
            for sl in &s.slots {
                w.u8(sl.slot);
                w.u8(sl.pending);
                w.u32(sl.dispatches);
                w.u32(sl.latency_min);
                w.u32(sl.latency_avg);
                w.u32(sl.latency_max);
                w.u32(sl.latency_last);
            }
        }
        Frame::System(s) => {
            check("cores", s.cores.len(), MAX_CORES)?;
            w.u32(s.uptime_ms);
            w.u32(s.ticks);
            w.u32(s.runtime_total);
            w.u32(s.heap_total);
            w.u32(s.heap_free);
            w.u32(s.heap_free_min);
            w.u32(s.gc_total);
            w.u32(s.gc_free);
            w.u16(s.threads_live);
            w.u16(s.threads_finished);
            w.u32(s.agent_overflows);
            w.u8(s.cores.len() as u8);
            for c in &s.cores {
                w.u32(c.idle_runtime);
                w.u32(c.running);
            }
            w.u32(s.heap_allocs);
        }
        Frame::Event(e) => {
            w.u8(e.kind.to_u8());
            w.u32(e.tick);
            w.u32(e.a);
            w.u32(e.b);
            w.str(&e.text, MAX_TEXT);
        }
    }
    let payload = w.0;
    check("payload bytes", payload.len(), MAX_PAYLOAD)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&SYNC);
    out.push(PROTOCOL_VERSION);
    out.push(frame.frame_type() as u8);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc16(&out[2..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Collects the parts of task-table samples into whole tables.
#[derive(Debug, Default)]
pub struct TaskTable {
    sample: Option<u32>,
    total: u16,
    tasks: Vec<TaskEntry>,
}

impl TaskTable {
    /// Adds one part; returns the whole table when this part completes its sample. Parts of an
    /// older sample still being collected are dropped when a new sample starts.
    pub fn add(&mut self, part: &Tasks) -> Option<Vec<TaskEntry>> {
        if self.sample != Some(part.sample) || usize::from(part.first) != self.tasks.len() {
            if part.first != 0 {
                self.sample = None;
                self.tasks.clear();
                return None;
            }
            self.sample = Some(part.sample);
            self.total = part.total;
            self.tasks.clear();
        }
        self.tasks.extend(part.tasks.iter().cloned());
        if self.tasks.len() >= usize::from(self.total) {
            self.sample = None;
            return Some(std::mem::take(&mut self.tasks));
        }
        None
    }
}

/// The byte each of these has on the wire, public so that tests can hold the Rust side against
/// the C agent's header (`firmware/tests/constants.rs`).
pub mod wire {
    use super::{EventKind, GilMode, TaskState};

    pub fn gil(g: GilMode) -> u8 {
        g.to_wire()
    }

    pub fn task_state(s: TaskState) -> u8 {
        s.to_u8()
    }

    pub fn event_kind(k: EventKind) -> u8 {
        k.to_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(i: u32) -> TaskEntry {
        TaskEntry {
            name: format!("task{i}"),
            id: i,
            py_thread: if i.is_multiple_of(2) {
                0x2000_0000 + i
            } else {
                0
            },
            state: TaskState::from_u8((i % 6) as u8),
            base_priority: (i % 5) as u8,
            priority: (i % 7) as u8,
            core: if i.is_multiple_of(3) { NO_CORE } else { 0 },
            affinity: UNKNOWN,
            runtime: 1000 * i,
            stack_size: 4096,
            stack_free_min: 100 + i,
        }
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                fingerprint: 0x28da_8d97,
                cores: 2,
                gil: GilMode::Off,
                tick_hz: 1000,
                runtime_hz: 25_000_000,
                sample_hz: 10,
                board: "rpi-pico-w".into(),
                firmware: "mpfr-ref".into(),
            }),
            Frame::Tasks(Tasks {
                sample: 7,
                total: 20,
                first: 16,
                tasks: (16..20).map(task).collect(),
            }),
            Frame::Service(Service {
                notifications: 1,
                wakeups: 2,
                suspended_skips: 3,
                isr_schedules: 4,
                task_schedules: 5,
                suspend_depth: 1,
                slots: vec![SlotStats {
                    slot: 0,
                    pending: 1,
                    dispatches: 99,
                    latency_min: 3,
                    latency_avg: 5,
                    latency_max: 40,
                    latency_last: 6,
                }],
            }),
            Frame::System(System {
                uptime_ms: 123_456,
                ticks: 123_456,
                runtime_total: 999,
                heap_total: 65536,
                heap_free: 30000,
                heap_free_min: 20000,
                gc_total: UNKNOWN,
                gc_free: UNKNOWN,
                threads_live: 4,
                threads_finished: 1,
                agent_overflows: 0,
                heap_allocs: 7,
                cores: vec![
                    CoreStats {
                        idle_runtime: 500,
                        running: 3,
                    },
                    CoreStats {
                        idle_runtime: 400,
                        running: 9,
                    },
                ],
            }),
            Frame::Event(Event {
                kind: EventKind::Assert,
                tick: 77,
                a: 1234,
                b: 0,
                text: "tasks.c".into(),
            }),
        ]
    }

    fn stream(frames: &[Frame], first_seq: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.extend(encode(first_seq.wrapping_add(i as u16), f).unwrap());
        }
        out
    }

    #[test]
    fn gil_wire_bytes() {
        for (b, g) in [
            (0, GilMode::Off),
            (1, GilMode::On),
            (0xFF, GilMode::Unknown),
        ] {
            assert_eq!(GilMode::from_wire(b), g);
            assert_eq!(g.to_wire(), b);
        }
        // Bytes a newer agent might send read as unknown, not as on.
        assert_eq!(GilMode::from_wire(2), GilMode::Unknown);
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn round_trip_every_frame_type() {
        let frames = samples();
        let mut d = Decoder::new();
        assert_eq!(d.feed(&stream(&frames, 0)), frames);
        let s = d.stats();
        assert_eq!(s.frames, frames.len() as u64);
        assert_eq!((s.dropped, s.bad_crc, s.resyncs, s.malformed), (0, 0, 0, 0));
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let frames = samples();
        let bytes = stream(&frames, 100);
        for cut in 0..=bytes.len() {
            let mut d = Decoder::new();
            let mut got = d.feed(&bytes[..cut]);
            got.extend(d.feed(&bytes[cut..]));
            assert_eq!(got, frames, "split at {cut}");
            assert_eq!(d.stats().resyncs, 0, "split at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let frames = samples();
        let mut d = Decoder::new();
        let got: Vec<Frame> = stream(&frames, 5)
            .iter()
            .flat_map(|b| d.feed(&[*b]))
            .collect();
        assert_eq!(got, frames);
    }

    #[test]
    fn truncation_yields_nothing_until_completed() {
        let frames = samples();
        for f in &frames {
            let bytes = encode(1, f).unwrap();
            for cut in 0..bytes.len() {
                let mut d = Decoder::new();
                assert!(d.feed(&bytes[..cut]).is_empty(), "cut {cut}");
                assert_eq!(d.feed(&bytes[cut..]), vec![f.clone()]);
            }
        }
    }

    #[test]
    fn truncated_frame_followed_by_good_ones_resyncs() {
        let frames = samples();
        let first = encode(0, &frames[0]).unwrap();
        // A cut header's length field swallows bytes of the next frames, so recovery may need
        // up to MAX_FRAME more bytes of traffic: keep the stream going like a live agent does.
        let mut rest = frames[1..].to_vec();
        while stream(&rest, 1).len() < 3 * MAX_FRAME {
            rest.push(frames[4].clone());
        }
        for cut in 1..first.len() {
            let mut bytes = first[..cut].to_vec();
            bytes.extend(stream(&rest, 1));
            let mut d = Decoder::new();
            let got = d.feed(&bytes);
            assert_eq!(got[..4], frames[1..], "cut {cut}");
            assert!(got.len() > rest.len() - 4, "cut {cut}");
        }
    }

    #[test]
    fn bad_checksum_is_counted_and_skipped() {
        let frames = samples();
        let good = stream(&frames, 0);
        let first_len = encode(0, &frames[0]).unwrap().len();
        for i in 2..first_len {
            let mut bytes = good.clone();
            bytes[i] ^= 0x40;
            let mut d = Decoder::new();
            let got = d.feed(&bytes);
            assert_eq!(got, frames[1..].to_vec(), "corrupt byte {i}");
            let s = d.stats();
            assert!(s.resyncs >= 1, "corrupt byte {i}");
            // A corrupted length may make the frame look longer than what follows; either way
            // the later frames are all recovered.
            assert!(s.bad_crc >= 1 || s.skipped_bytes > 0, "corrupt byte {i}");
        }
    }

    #[test]
    fn garbage_before_between_and_after() {
        let frames = samples();
        let garbage: &[u8] = &[0x00, 0xA5, 0xA5, 0x5A, 0x01, 0xFF, 0x13, b'x', 0xA5];
        let mut bytes = garbage.to_vec();
        for (i, f) in frames.iter().enumerate() {
            bytes.extend(encode(i as u16, f).unwrap());
            bytes.extend(garbage);
        }
        for cut in 0..=bytes.len() {
            let mut d = Decoder::new();
            let mut got = d.feed(&bytes[..cut]);
            got.extend(d.feed(&bytes[cut..]));
            assert_eq!(got, frames, "split at {cut}");
            assert_eq!(d.stats().dropped, 0);
            assert!(d.stats().resyncs >= frames.len() as u64);
        }
    }

    #[test]
    fn oversized_length_is_not_waited_for() {
        let frames = samples();
        let mut bytes = vec![0xA5, 0x5A, 1, 1, 0, 0, 0xFF, 0xFF];
        bytes.extend(stream(&frames, 0));
        let mut d = Decoder::new();
        assert_eq!(d.feed(&bytes), frames);
        assert_eq!(d.stats().resyncs, 1);
        assert_eq!(d.stats().skipped_bytes, 8);
    }

    #[test]
    fn sequence_gaps_count_dropped_frames_across_wrap() {
        let f = samples().remove(4);
        let mut d = Decoder::new();
        let mut bytes = Vec::new();
        for seq in [65533u16, 65534, 0, 1, 5] {
            bytes.extend(encode(seq, &f).unwrap());
        }
        assert_eq!(d.feed(&bytes).len(), 5);
        // 65535 missing, then 2, 3, 4 missing.
        assert_eq!(d.stats().dropped, 4);
        assert_eq!(d.last_seq(), Some(5));
        d.reset_sequence();
        d.feed(&encode(1000, &f).unwrap());
        assert_eq!(d.stats().dropped, 4);
    }

    #[test]
    fn other_version_and_unknown_type_are_skipped_and_counted() {
        let f = samples().remove(4);
        let mut v2 = encode(0, &f).unwrap();
        v2[2] = 2;
        let n = v2.len();
        let crc = crc16(&v2[2..n - 2]).to_le_bytes();
        v2[n - 2..].copy_from_slice(&crc);
        let mut unknown = encode(1, &f).unwrap();
        unknown[3] = 99;
        let crc = crc16(&unknown[2..n - 2]).to_le_bytes();
        unknown[n - 2..].copy_from_slice(&crc);
        let mut bytes = v2;
        bytes.extend(unknown);
        bytes.extend(encode(2, &f).unwrap());
        let mut d = Decoder::new();
        assert_eq!(d.feed(&bytes), vec![f]);
        let s = d.stats();
        assert_eq!((s.unsupported_version, s.malformed, s.resyncs), (1, 1, 0));
    }

    #[test]
    fn system_frame_of_an_older_agent_has_no_heap_allocation_count() {
        let sys = samples()
            .into_iter()
            .find(|f| matches!(f, Frame::System(_)))
            .unwrap();
        let new = encode(5, &sys).unwrap();
        // The same frame without its last field (4 bytes before the CRC), as agents before the
        // field wrote it.
        let n = new.len();
        let mut old = new[..n - 6].to_vec();
        let plen = (u16::from_le_bytes([old[6], old[7]]) - 4).to_le_bytes();
        old[6..8].copy_from_slice(&plen);
        let crc = crc16(&old[2..]).to_le_bytes();
        old.extend(crc);
        let got = Decoder::new().feed(&old);
        let Some(Frame::System(s)) = got.first() else {
            panic!("{got:?}");
        };
        assert_eq!(s.heap_allocs, UNKNOWN);
        let Frame::System(want) = sys else {
            unreachable!()
        };
        assert_eq!(s.heap_free, want.heap_free);
        assert_eq!(want.heap_allocs, 7);
    }

    #[test]
    fn payload_with_lying_counts_is_malformed_not_a_panic() {
        // A tasks frame claiming 16 entries but carrying none.
        let payload = [0u8, 0, 0, 0, 16, 0, 0, 0, 16];
        let mut bytes = vec![0xA5, 0x5A, 1, 2, 0, 0, payload.len() as u8, 0];
        bytes.extend(payload);
        let crc = crc16(&bytes[2..]).to_le_bytes();
        bytes.extend(crc);
        let mut d = Decoder::new();
        assert!(d.feed(&bytes).is_empty());
        assert_eq!(d.stats().malformed, 1);
    }

    #[test]
    fn encoder_enforces_limits() {
        let t = Tasks {
            sample: 0,
            total: 17,
            first: 0,
            tasks: (0..17).map(task).collect(),
        };
        assert!(encode(0, &Frame::Tasks(t)).is_err());
        let big = encode(
            0,
            &Frame::Tasks(Tasks {
                sample: 0,
                total: 16,
                first: 0,
                tasks: (0..16)
                    .map(|i| TaskEntry {
                        name: "n".repeat(100),
                        ..task(i)
                    })
                    .collect(),
            }),
        )
        .unwrap();
        assert!(big.len() <= MAX_FRAME);
    }

    /// Deterministic mutation run: random flips, cuts and inserted bytes never panic, never
    /// yield a frame that was not sent, and the buffer stays bounded.
    #[test]
    fn mutated_streams_never_panic_or_invent_frames() {
        let frames = samples();
        let good = stream(&frames, 0);
        let mut x: u32 = 0x1234_5678;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..(rnd() % 4 + 1) {
                let i = rnd() as usize % bytes.len();
                match rnd() % 3 {
                    0 => bytes[i] ^= 1 << (rnd() % 8),
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, rnd() as u8),
                }
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(rnd() as usize % 64 + 1) {
                got.extend(d.feed(chunk));
                assert!(d.buf.len() <= MAX_FRAME + 64);
            }
            for f in &got {
                assert!(frames.contains(f), "invented {f:?}");
            }
        }
    }

    #[test]
    fn task_table_assembles_parts() {
        let all: Vec<TaskEntry> = (0..20).map(task).collect();
        let p1 = Tasks {
            sample: 3,
            total: 20,
            first: 0,
            tasks: all[..16].to_vec(),
        };
        let p2 = Tasks {
            sample: 3,
            total: 20,
            first: 16,
            tasks: all[16..].to_vec(),
        };
        let mut tt = TaskTable::default();
        assert!(tt.add(&p2).is_none(), "a second part alone is no table");
        assert!(tt.add(&p1).is_none());
        assert_eq!(tt.add(&p2), Some(all.clone()));
        let mut other = p2.clone();
        other.sample = 4;
        assert!(tt.add(&p1).is_none());
        assert!(tt.add(&other).is_none(), "parts of different samples");
    }
}
