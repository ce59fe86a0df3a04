//! What `mpfr threads top` attaches to: resolves a board to a memory transport (QEMU gdbstub
//! of the running virtual board, a debug probe, or a host process), then polls RTT and turns
//! the agent's frames into snapshots and events. One [`Monitor::step`] is one poll.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::board::{Board, MemoryAccess, Platform, Telemetry as TelemetryKind};
use crate::builder::BuildRecord;
use crate::device::memory::Memory;
use crate::device::memory::gdb::GdbClient;
use crate::device::memory::probe::ProbeMemory;
use crate::device::vboard::Instance;
use crate::util::probe::ProbeSelector;
use miette::Diagnostic;

use crate::device::memory::TargetError;
use crate::device::vboard::VboardError;
use crate::telemetry::model::{EventRow, EventType, HostSampler, Snapshot, Telemetry, Update};
use crate::telemetry::replay::ReplayMemory;
use crate::telemetry::rtt::RttError;
use crate::telemetry::rtt::{AdaptiveInterval, Locator, Rtt, Status, elf_info};
use crate::util::usage::Usage;

/// Why telemetry could not be read.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] TargetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Rtt(#[from] RttError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Vboard(#[from] VboardError),

    /// Nothing to attach to, or nothing arriving.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Usage(#[from] Usage),
}

impl Error {
    pub(crate) fn usage(what: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage(Usage::new(what, help))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to attach, resolved from the command line before any device I/O.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// The running image (RTT symbol); QEMU defaults to the virtual board's image.
    pub elf: Option<PathBuf>,
    /// Host board: the MicroPython process.
    pub pid: Option<u32>,
    /// Real boards: `VID:PID[:SERIAL]`.
    pub probe: Option<String>,
    /// Longest wait between polls (the view's refresh interval).
    pub interval: Duration,
}

impl AttachOptions {
    /// Polls as fast as 5 ms while data flows, as slow as the view's interval when idle.
    fn pace(&self) -> AdaptiveInterval {
        AdaptiveInterval::new(Duration::from_millis(5).min(self.interval), self.interval)
    }
}

/// The running virtual board of `board` (the record `mpfr flash` writes), or an error saying
/// how to start it.
pub fn vboard(board: &str) -> Result<Instance> {
    Instance::load(board)?.ok_or_else(|| {
        VboardError::NotRunning {
            board: board.to_string(),
        }
        .into()
    })
}

/// The newest `micropython` process of this user, for the host board without `--pid`.
pub fn find_micropython() -> Option<u32> {
    let me = my_uid();
    let mut best: Option<(u64, u32)> = None;
    for ent in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(ent.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "micropython" {
            continue;
        }
        if let (Some(me), Ok(meta)) = (me, ent.metadata()) {
            use std::os::unix::fs::MetadataExt;
            if meta.uid() != me {
                continue;
            }
        }
        let start = std::fs::read_to_string(ent.path().join("stat"))
            .ok()
            .and_then(|s| {
                let rest = s.get(s.rfind(')')? + 1..)?.to_string();
                rest.split_whitespace().nth(19)?.parse::<u64>().ok()
            })
            .unwrap_or(0);
        if best.is_none_or(|(s, _)| start >= s) {
            best = Some((start, pid));
        }
    }
    best.map(|(_, p)| p)
}

fn my_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// How long a one-shot sample waits for the agent's identity: a little over the period at
/// which the agent repeats its hello frame unasked (`MPFR_AGENT_HELLO_MS`, 2 s).
const HELLO_GRACE: Duration = Duration::from_millis(2500);

enum Source {
    Rtt {
        mem: Box<dyn Memory>,
        rtt: Rtt,
        tel: Box<Telemetry>,
        /// Up channel carrying frames, once known.
        channel: Option<usize>,
        text: Vec<u8>,
        /// When a `hello` was last asked for (the agent's board, fingerprint and counter rate
        /// come only in hello frames, sent at boot and every few seconds).
        hello_asked: Option<Instant>,
        /// The next data read is the backlog of a fresh attach: frames written while nobody
        /// read (after a full buffer, the *oldest* ones). Keep its events, drop its samples.
        backlog: bool,
    },
    Host(HostSampler),
}

/// An attached board being sampled.
pub struct Monitor {
    board: String,
    source: Source,
    pace: AdaptiveInterval,
    attached_at: Instant,
    /// Time from attach to the first snapshot.
    pub first_sample: Option<Duration>,
    /// Human description of the transport (`the QEMU gdbstub at ..`, `process 123`).
    pub transport: String,
    /// Notes for the user (e.g. what the host board lacks).
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("board", &self.board)
            .field("transport", &self.transport)
            .finish()
    }
}

impl Monitor {
    /// Attaches to `board`. RTT boards fail here when no control block exists anywhere mpfr
    /// looked; a block that is there but not initialised yet is waited for by [`Monitor::step`].
    pub fn attach(board: &Board, opts: &AttachOptions) -> Result<Monitor> {
        let pace = opts.pace();
        let attached_at = Instant::now();
        if board.telemetry == TelemetryKind::Procfs {
            let pid = match opts.pid.or_else(find_micropython) {
                Some(p) => p,
                None => {
                    return Err(Error::usage(
                        "no MicroPython process to watch on the host board",
                        "start one (`mpfr repl --board host`, or `.venv/bin/micropython`) or name it with --pid PID",
                    ));
                }
            };
            // Fail now (not in the view) when the process is not there.
            crate::device::memory::procfs::threads(pid)?;
            let cmd = crate::device::memory::procfs::cmdline(pid).unwrap_or_default();
            return Ok(Monitor {
                board: board.name.clone(),
                source: Source::Host(HostSampler::new(pid)),
                // /proc has no buffer to drain: sample at the view's pace.
                pace: AdaptiveInterval::new(opts.interval, opts.interval),
                attached_at,
                first_sample: None,
                transport: format!("process {pid} ({cmd})"),
                notes: vec![crate::telemetry::model::HOST_SERVICE_NOTE.to_string()],
            });
        }
        if board.telemetry == TelemetryKind::Repl {
            return Err(Error::usage(
                format!(
                    "{} reports telemetry over the REPL, which `threads top` does not read yet",
                    board.name
                ),
                "use a board with a debug probe (RTT), or run `import mpfr; mpfr.stats()` in `mpfr repl`",
            ));
        }
        let (mem, default_elf): (Box<dyn Memory>, Option<PathBuf>) = match &board.platform {
            Platform::Qemu(machine) => {
                let rec = vboard(&board.name)?;
                let ram = machine.rtt_ranges(board.ram.bytes());
                (
                    Box::new(GdbClient::connect(&rec.gdb_socket, ram)?),
                    Some(rec.image),
                )
            }
            p if p.memory_access() == MemoryAccess::Probe => {
                let sel = opts
                    .probe
                    .as_deref()
                    .map(str::parse::<ProbeSelector>)
                    .transpose()
                    .map_err(crate::device::memory::TargetError::from)?;
                let ram = board.chip_info().map(|c| c.ram_regions).unwrap_or_default();
                let elf = BuildRecord::read(&board.name).ok().flatten().map(|r| r.elf);
                (
                    Box::new(ProbeMemory::attach(&board.chip, sel.as_ref(), ram)?),
                    elf,
                )
            }
            _ => {
                return Err(Error::usage(
                    format!(
                        "{} says `telemetry = \"rtt\"` but mpfr has no way to read its memory",
                        board.name
                    ),
                    "RTT needs a debug probe (flasher = \"probe-rs\") or the QEMU board; use `telemetry = \"repl\"` for this board",
                ));
            }
        };
        Self::attach_memory(&board.name, mem, opts.elf.clone().or(default_elf), pace)
    }

    /// Attaches to a recorded memory image instead of a running target
    /// (see [`crate::telemetry::replay`]).
    pub fn replay(board: &str, image: &Path, opts: &AttachOptions) -> Result<Monitor> {
        let mem = ReplayMemory::load(image)?;
        Self::attach_memory(board, Box::new(mem), opts.elf.clone(), opts.pace())
    }

    /// Attaches RTT over an already open memory transport.
    pub fn attach_memory(
        board: &str,
        mut mem: Box<dyn Memory>,
        elf: Option<PathBuf>,
        pace: AdaptiveInterval,
    ) -> Result<Monitor> {
        let attached_at = Instant::now();
        let elf = match elf {
            Some(p) => Some(elf_info(&p)?),
            None => None,
        };
        let mut rtt = Rtt::new(Locator {
            elf,
            scan: mem.ram_ranges(),
        });
        rtt.attach(mem.as_mut())?;
        let transport = mem.describe();
        Ok(Monitor {
            board: board.to_string(),
            source: Source::Rtt {
                mem,
                rtt,
                tel: Box::new(Telemetry::new(board)),
                channel: None,
                text: Vec::new(),
                hello_asked: None,
                backlog: true,
            },
            pace,
            attached_at,
            first_sample: None,
            transport,
            notes: Vec::new(),
        })
    }

    pub fn board(&self) -> &str {
        &self.board
    }

    /// RTT status (None on the host board).
    pub fn rtt_status(&self) -> Option<&Status> {
        match &self.source {
            Source::Rtt { rtt, .. } => Some(rtt.status()),
            Source::Host(_) => None,
        }
    }

    /// The error to give when no sample arrives in time.
    pub fn not_ready_error(&self) -> Error {
        match &self.source {
            Source::Rtt { rtt, mem, .. } => match rtt.status() {
                Status::Attached { addr } => Error::usage(
                    format!(
                        "the agent's RTT block at {addr:#010x} is there but sends no telemetry frames"
                    ),
                    "the agent may be paused (`rate 0`) or the firmware stuck; check its console",
                ),
                _ => rtt.not_ready_error(&mem.describe()).into(),
            },
            Source::Host(_) => {
                Error::usage("no sample from /proc", "is the process still running?")
            }
        }
    }

    /// How long to wait before the next [`Monitor::step`].
    pub fn wait(&self) -> Duration {
        self.pace.current()
    }

    /// One poll: new snapshots and events.
    pub fn step(&mut self) -> Result<Vec<Update>> {
        let mut out = Vec::new();
        match &mut self.source {
            Source::Host(h) => {
                let (snap, evs) = h.sample()?;
                out.extend(evs.into_iter().map(Update::Event));
                out.push(Update::Sample(Box::new(snap)));
            }
            Source::Rtt {
                mem,
                rtt,
                tel,
                channel,
                text,
                hello_asked,
                backlog,
            } => {
                let poll = rtt.poll(mem.as_mut()).map_err(Error::from)?;
                if let Some(why) = &poll.lost {
                    out.push(Update::Event(tel.note(EventType::Lost, why.clone())));
                    *channel = None;
                    text.clear();
                    tel.target_restarted();
                }
                if poll.attached {
                    if let Some(b) = rtt.block() {
                        out.push(Update::Event(tel.note(
                            EventType::Reattached,
                            format!("RTT block at {:#010x}", b.addr),
                        )));
                    }
                    *channel = None;
                    *hello_asked = None;
                    *backlog = true;
                    tel.target_restarted();
                }
                if tel.hello().is_none()
                    && hello_asked.is_none_or(|t| t.elapsed() > Duration::from_secs(1))
                    && let Some(down) = rtt.block().and_then(|b| b.down_named("mpfr-cmd"))
                {
                    let index = down.index;
                    *hello_asked = Some(Instant::now());
                    // Best effort: an agent that cannot take it sends hello on its own later.
                    let _ = rtt.write_down(mem.as_mut(), index, b"hello\n");
                }
                if channel.is_none() {
                    *channel = rtt.block().map(|b| {
                        b.up_named("mpfr")
                            .map(|c| c.index)
                            .unwrap_or(if b.up.len() > 1 { 1 } else { 0 })
                    });
                }
                let was_backlog = *backlog && rtt.block().is_some();
                for (idx, data) in &poll.data {
                    if Some(*idx) == *channel {
                        let updates = tel.feed(data);
                        if was_backlog {
                            out.extend(
                                updates
                                    .into_iter()
                                    .filter(|u| matches!(u, Update::Event(_))),
                            );
                        } else {
                            out.extend(updates);
                        }
                    } else if *idx == 0 {
                        text.extend_from_slice(data);
                        while let Some(nl) = text.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = text.drain(..=nl).collect();
                            let s = String::from_utf8_lossy(&line).trim_end().to_string();
                            if !s.is_empty() {
                                out.push(Update::Event(tel.note(EventType::Log, s)));
                            }
                        }
                        if text.len() > 4096 {
                            text.clear();
                        }
                    }
                }
                if was_backlog {
                    // Samples start from the next fresh frames; the gap between the backlog and
                    // them is the agent's overflow (counted by the agent), not a host loss.
                    *backlog = false;
                    tel.target_restarted();
                }
                self.pace.next(poll.bytes(), poll.fill);
            }
        }
        if self.first_sample.is_none() && out.iter().any(|u| matches!(u, Update::Sample(_))) {
            self.first_sample = Some(self.attached_at.elapsed());
        }
        Ok(out)
    }

    /// Polls until a snapshot with CPU% (deltas) arrives, or `timeout`. Events seen meanwhile
    /// are returned too. `None` when cancelled (see [`crate::util::cancel`]).
    pub fn sample_with_deltas(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(Snapshot, Vec<EventRow>)>> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        let mut first_host = true;
        // A sample without the agent's identity (its hello frame lost, or a command channel
        // that no longer takes the request) waits a little for the hello the agent repeats on
        // its own, so one-shot views do not come out blank.
        let mut anonymous: Option<(Snapshot, Instant)> = None;
        loop {
            for u in self.step()? {
                match u {
                    Update::Sample(s) => {
                        let has_deltas = s.tasks.iter().any(|t| t.cpu_pct.is_some());
                        let rtt = matches!(self.source, Source::Rtt { .. });
                        if has_deltas && (s.firmware.is_some() || !rtt) {
                            return Ok(Some((*s, events)));
                        }
                        if has_deltas {
                            let since = anonymous.as_ref().map_or_else(Instant::now, |a| a.1);
                            anonymous = Some((*s, since));
                        }
                    }
                    Update::Event(e) => events.push(e),
                }
            }
            if let Some((_, since)) = &anonymous
                && (since.elapsed() >= HELLO_GRACE || Instant::now() >= deadline)
            {
                let (s, _) = anonymous.take().expect("checked above");
                return Ok(Some((s, events)));
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready_error());
            }
            if crate::util::cancel::requested() {
                return Ok(None);
            }
            let wait = match &self.source {
                // Two /proc samples need time between them to give a CPU share.
                Source::Host(_) if first_host => {
                    first_host = false;
                    self.pace.max.min(Duration::from_millis(500))
                }
                _ => self.wait(),
            };
            std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::memory::fake::FakeMemory;
    use mpfr_firmware::protocol::{
        CoreStats, Event, EventKind, Frame, System, TaskEntry, TaskState, Tasks, encode,
    };

    #[test]
    fn rtt_on_a_board_without_memory_access_is_a_usage_error() {
        let mut b = crate::board::builtin("esp32-devkitc");
        b.telemetry = TelemetryKind::Rtt;
        let Err(e) = Monitor::attach(&b, &AttachOptions::default()) else {
            panic!("attached to a board without memory access");
        };
        assert!(
            matches!(&e, Error::Usage(u) if u.what.contains("no way to read its memory")),
            "{e:?}"
        );
    }

    const RAM: u64 = 0x2000_0000;
    const CB: u64 = RAM + 0x100;
    const UP1: u64 = RAM + 0x1000;
    const DN0: u64 = RAM + 0x3000;
    const NAMES: u64 = RAM + 0x40;

    /// An agent-like block: up 0 "Terminal" (unused here), up 1 "mpfr", down 0 "mpfr-cmd".
    fn target() -> FakeMemory {
        let mut m = FakeMemory::new(RAM, 0x8000);
        m.poke(NAMES, b"mpfr\0");
        m.poke(NAMES + 8, b"mpfr-cmd\0");
        m.poke(CB, b"SEGGER RTT\0");
        m.poke32(CB + 16, 2);
        m.poke32(CB + 20, 1);
        let descs = [(0, 0, 0), (NAMES, UP1, 4096), (NAMES + 8, DN0, 64)];
        for (i, (name, buf, size)) in descs.into_iter().enumerate() {
            let d = CB + 24 + 24 * i as u64;
            m.poke32(d, name as u32);
            m.poke32(d + 4, buf as u32);
            m.poke32(d + 8, size);
        }
        m
    }

    fn emit(m: &mut FakeMemory, bytes: &[u8]) {
        let d = CB + 24 + 24;
        let mut wr = m.peek32(d + 12) as u64;
        for b in bytes {
            m.poke(UP1 + wr, &[*b]);
            wr = (wr + 1) % 4096;
        }
        m.poke32(d + 12, wr as u32);
    }

    fn sample(seq: &mut u16, runtime: u32, uptime: u32) -> Vec<u8> {
        let task = TaskEntry {
            name: "w".into(),
            id: 1,
            py_thread: 1,
            state: TaskState::Running,
            base_priority: 1,
            priority: 1,
            core: 0,
            affinity: u32::MAX,
            runtime,
            stack_size: 512,
            stack_free_min: 100,
        };
        let mut out = Vec::new();
        for f in [
            Frame::Tasks(Tasks {
                sample: runtime,
                total: 1,
                first: 0,
                tasks: vec![task],
            }),
            Frame::System(System {
                uptime_ms: uptime,
                ticks: uptime,
                runtime_total: runtime,
                heap_total: 100,
                heap_free: 50,
                heap_free_min: 40,
                gc_total: u32::MAX,
                gc_free: u32::MAX,
                threads_live: 1,
                threads_finished: 0,
                agent_overflows: 0,
                heap_allocs: 0,
                cores: vec![CoreStats {
                    idle_runtime: 0,
                    running: 1,
                }],
            }),
        ] {
            out.extend(encode(*seq, &f).expect("encode"));
            *seq = seq.wrapping_add(1);
        }
        out
    }

    /// Appends `bytes` to the up ring through the memory the monitor reads.
    fn emit_through(mon: &mut Monitor, bytes: &[u8]) {
        let Source::Rtt { mem, .. } = &mut mon.source else {
            panic!("rtt source");
        };
        let d = CB + 48;
        let mut w = [0u8; 4];
        mem.read(d + 12, &mut w).expect("wr");
        let mut wr = u32::from_le_bytes(w) as u64;
        for b in bytes {
            mem.write(UP1 + wr, &[*b]).expect("write");
            wr = (wr + 1) % 4096;
        }
        mem.write(d + 12, &(wr as u32).to_le_bytes()).expect("wr");
    }

    /// A one-shot sample waits for the agent's identity (the hello it repeats unasked) a
    /// little, then gives the sample without it rather than nothing; with a hello there, at once.
    #[test]
    fn a_one_shot_sample_waits_a_little_for_the_identity() {
        let pace = AdaptiveInterval::new(Duration::from_millis(1), Duration::from_millis(10));
        let mut mon = Monitor::attach_memory("b", Box::new(target()), None, pace).expect("attach");
        mon.step().expect("attach step");
        let mut seq = 0;
        let mut two = sample(&mut seq, 1000, 1000);
        two.extend(sample(&mut seq, 2000, 1100));
        emit_through(&mut mon, &two);
        let t0 = Instant::now();
        let (s, _) = mon
            .sample_with_deltas(Duration::from_secs(60))
            .expect("sample")
            .expect("not cancelled");
        assert!(t0.elapsed() >= HELLO_GRACE, "{:?}", t0.elapsed());
        assert_eq!(s.firmware, None);

        let hello = Frame::Hello(mpfr_firmware::protocol::Hello {
            protocol: 1,
            fingerprint: 0x1234_5678,
            cores: 1,
            gil: mpfr_firmware::protocol::GilMode::On,
            tick_hz: 1000,
            runtime_hz: 1000,
            sample_hz: 10,
            board: "b".into(),
            firmware: "mpfr-ref".into(),
        });
        let mut more = encode(seq, &hello).expect("encode");
        seq += 1;
        more.extend(sample(&mut seq, 3000, 1200));
        emit_through(&mut mon, &more);
        let (s, _) = mon
            .sample_with_deltas(Duration::from_secs(60))
            .expect("sample")
            .expect("not cancelled");
        assert_eq!(s.firmware.as_deref(), Some("mpfr-ref"));
    }

    #[test]
    fn backlog_gives_events_not_samples_and_hello_is_requested() {
        let mut m = target();
        let mut seq = 0;
        // Backlog: an event and two old samples from boot.
        let ev = Frame::Event(Event {
            kind: EventKind::ThreadCreated,
            tick: 1,
            a: 1,
            b: 1,
            text: "w".into(),
        });
        let mut backlog = encode(seq, &ev).expect("encode");
        seq += 1;
        backlog.extend(sample(&mut seq, 10, 10));
        backlog.extend(sample(&mut seq, 20, 20));
        emit(&mut m, &backlog);

        let pace = AdaptiveInterval::new(Duration::from_millis(1), Duration::from_millis(10));
        // The monitor owns the memory from here on; the test drives the target through it.
        let mut mon = Monitor::attach_memory("b", Box::new(m), None, pace).expect("attach by scan");
        let u = mon.step().expect("step");
        assert!(
            u.iter()
                .any(|u| matches!(u, Update::Event(e) if e.kind == EventType::ThreadCreated))
        );
        assert!(!u.iter().any(|u| matches!(u, Update::Sample(_))), "{u:?}");

        // The agent got `hello\n` on its command channel.
        let Source::Rtt { mem, .. } = &mut mon.source else {
            panic!("rtt source");
        };
        let mut cmd = [0u8; 6];
        mem.read(DN0, &mut cmd).expect("read down buffer");
        assert_eq!(&cmd, b"hello\n");

        // Fresh frames after a gap (frames the agent dropped while the buffer was full): two
        // samples give one with CPU%, and the gap is not a host-side loss.
        let mut fresh = Vec::new();
        seq += 5;
        fresh.extend(sample(&mut seq, 1000, 1000));
        fresh.extend(sample(&mut seq, 2000, 1100));
        {
            let Source::Rtt { mem, .. } = &mut mon.source else {
                panic!("rtt source");
            };
            // Append through the same Memory the monitor reads.
            let d = CB + 48;
            let mut w = [0u8; 4];
            mem.read(d + 12, &mut w).expect("wr");
            let mut wr = u32::from_le_bytes(w) as u64;
            for b in &fresh {
                mem.write(UP1 + wr, &[*b]).expect("write");
                wr = (wr + 1) % 4096;
            }
            mem.write(d + 12, &(wr as u32).to_le_bytes()).expect("wr");
        }
        let samples: Vec<Snapshot> = mon
            .step()
            .expect("step")
            .into_iter()
            .filter_map(|u| match u {
                Update::Sample(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!(samples[1].tasks[0].cpu_pct, Some(100.0));
        assert_eq!(samples[1].losses.dropped_frames, 0);
        assert!(mon.first_sample.is_some());
    }
}
