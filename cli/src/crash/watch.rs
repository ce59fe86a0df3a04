//! Watching a running board for the moment it dies (`mpfr crash watch`): at every look the board
//! is held for a moment through the QEMU gdbstub, each core's PC and exception number and the
//! kernel's tick count are read, and the board runs on. A core in a fault handler, in a fatal
//! hook or in a parking loop at two looks in a row is a crash; so is a tick count that stops moving for the stall time
//! (a wedged kernel, interrupts left off). The caller then captures the board
//! ([`super::capture`]) while it is still as it died.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::board::Board;
use crate::device::memory::gdb::GdbClient;
use crate::device::memory::{Memory, TargetError, read_u32};

use super::elf::Elf;
use super::{Error, fault};

/// What a watcher saw that means the firmware died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A core stopped where only a dead firmware stops.
    Stopped { core: u32, why: String },
    /// The tick count stood still this long while the board was running.
    Stalled { tick: u32, still: Duration },
}

impl std::fmt::Display for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detection::Stopped { core, why } => write!(f, "core {core} {why}"),
            Detection::Stalled { tick, still } => write!(
                f,
                "the tick count stayed at {tick} for {:.1} s",
                still.as_secs_f64()
            ),
        }
    }
}

/// One core as a look found it.
#[derive(Debug, Clone, Copy)]
pub struct CoreSeen {
    pub index: u32,
    pub pc: u32,
    /// The exception number from xPSR (0 in thread mode).
    pub exception: u32,
}

/// Whether `cores` show a dead firmware: a core in a fault handler, or in one of the functions a
/// firmware only reaches to stop (`function_at` names the function holding a PC).
pub fn judge_cores(
    cores: &[CoreSeen],
    function_at: &dyn Fn(u32) -> Option<String>,
) -> Option<Detection> {
    for c in cores {
        let function = function_at(c.pc);
        let place = function.as_deref().map_or_else(
            || format!("{:#010x}", c.pc),
            |f| format!("{f} ({:#010x})", c.pc),
        );
        if fault::is_fault_exception(c.exception) {
            return Some(Detection::Stopped {
                core: c.index,
                why: format!("is in {} at {place}", fault::exception_name(c.exception)),
            });
        }
        if let Some(f) = function.as_deref()
            && (super::report::PARKING_LOOPS.contains(&f)
                || super::report::FATAL_HOOKS.contains(&f))
        {
            return Some(Detection::Stopped {
                core: c.index,
                why: format!("stopped in {place}"),
            });
        }
    }
    None
}

/// Tick progress between looks: a stall once the count has not changed for `limit`.
#[derive(Debug)]
pub struct StallClock {
    limit: Duration,
    last: Option<(u32, Instant)>,
}

impl StallClock {
    pub fn new(limit: Duration) -> StallClock {
        StallClock { limit, last: None }
    }

    /// Takes the tick count read at `now`.
    pub fn see(&mut self, tick: u32, now: Instant) -> Option<Detection> {
        match self.last {
            Some((t, since)) if t == tick => {
                let still = now.saturating_duration_since(since);
                (still >= self.limit).then_some(Detection::Stalled { tick, still })
            }
            _ => {
                self.last = Some((tick, now));
                None
            }
        }
    }
}

/// A board being watched: one gdbstub connection held open between looks.
pub struct Watcher {
    gdb: GdbClient,
    elf: Elf,
    tick: Option<u64>,
    stall: StallClock,
    /// The core a previous look found stopped: a stop counts once the next look finds that
    /// core stopped again (a fatal hook that returns, as malloc-failed may, is only passed).
    stopped: Option<u32>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("tick", &self.tick)
            .field("stall", &self.stall)
            .finish()
    }
}

impl Watcher {
    /// Connects to `board`'s gdbstub. `elf` is the image it runs (the virtual board's own when
    /// `None`): its symbols name the stopping places and the tick count.
    pub fn attach(board: &Board, elf: Option<&Path>, stall: Duration) -> Result<Watcher, Error> {
        let (mut gdb, rec, _, _) = super::capture::connect(board, "watch")?;
        let elf_path = elf.map(Path::to_path_buf).unwrap_or(rec.image.clone());
        let image = Elf::load(&elf_path)?;
        let tick = image.symbol("xTickCount").map(|s| s.addr);
        // QEMU's stub answers `p` (one register) only to a client that has read the target
        // description; without it every register reads as nothing. It takes packets only
        // while the board is stopped.
        gdb.hold()?;
        let described = gdb.target_xml("target.xml");
        gdb.release()?;
        described?;
        Ok(Watcher {
            gdb,
            elf: image,
            tick,
            stall: StallClock::new(stall),
            stopped: None,
        })
    }

    /// Whether the ELF lets the watcher see stalls (it has the kernel's tick count).
    pub fn sees_ticks(&self) -> bool {
        self.tick.is_some()
    }

    /// One look: holds the board, reads every core and the tick count, lets it run again.
    pub fn look(&mut self) -> Result<Option<Detection>, Error> {
        self.gdb.hold()?;
        let seen = self.read();
        let released = self.gdb.release();
        let (cores, tick) = seen?;
        released?;
        let elf = &self.elf;
        let stop = judge_cores(&cores, &|pc| {
            elf.function_at(pc as u64).map(|s| s.name.clone())
        });
        match stop {
            Some(Detection::Stopped { core, .. }) if self.stopped == Some(core) => {
                return Ok(stop);
            }
            Some(Detection::Stopped { core, .. }) => self.stopped = Some(core),
            _ => self.stopped = None,
        }
        Ok(tick.and_then(|t| self.stall.see(t, Instant::now())))
    }

    fn read(&mut self) -> Result<(Vec<CoreSeen>, Option<u32>), TargetError> {
        let threads = self.gdb.cores()?;
        let mut cores = Vec::new();
        for (index, thread) in threads.iter().enumerate() {
            self.gdb.select(thread)?;
            let pc = self.gdb.register(15)?.unwrap_or(0);
            // xPSR is register 25 in gdb's ARM numbering (as in capture).
            let xpsr = self.gdb.register(25)?.unwrap_or(0);
            cores.push(CoreSeen {
                index: index as u32,
                pc,
                exception: xpsr & 0x1ff,
            });
        }
        if let Some(first) = threads.first() {
            self.gdb.select(first)?;
        }
        let tick = match self.tick {
            Some(a) => Some(read_u32(&mut self.gdb, a)?),
            None => None,
        };
        Ok((cores, tick))
    }

    /// Lets go of the board (a capture opens its own connection).
    pub fn detach(self) -> Result<(), Error> {
        Ok(self.gdb.detach()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pc: u32) -> Option<String> {
        match pc >> 8 {
            0x10 => Some("main_loop".into()),
            0x20 => Some("port_halted".into()),
            0x30 => Some("vApplicationStackOverflowHook".into()),
            _ => None,
        }
    }

    #[test]
    fn a_core_in_a_fault_handler_or_a_stopping_place_is_a_crash() {
        let running = CoreSeen {
            index: 0,
            pc: 0x1004,
            exception: 0,
        };
        assert_eq!(judge_cores(&[running], &names), None);
        // An interrupt that is not a fault is not a crash.
        let irq = CoreSeen {
            exception: 16 + 3,
            ..running
        };
        assert_eq!(judge_cores(&[irq], &names), None);
        let hard = CoreSeen {
            index: 1,
            pc: 0x4000,
            exception: 3,
        };
        assert_eq!(
            judge_cores(&[running, hard], &names),
            Some(Detection::Stopped {
                core: 1,
                why: "is in HardFault at 0x00004000".into()
            })
        );
        let parked = CoreSeen {
            index: 1,
            pc: 0x2002,
            exception: 0,
        };
        let hook = CoreSeen {
            index: 0,
            pc: 0x3010,
            exception: 0,
        };
        let d = judge_cores(&[running, parked], &names).expect("parked");
        assert_eq!(d.to_string(), "core 1 stopped in port_halted (0x00002002)");
        let d = judge_cores(&[hook], &names).expect("hook");
        assert!(
            d.to_string().contains("vApplicationStackOverflowHook"),
            "{d}"
        );
    }

    #[test]
    fn a_tick_count_standing_still_for_the_limit_is_a_stall() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut clock = StallClock::new(s(5));
        assert_eq!(clock.see(10, t0), None);
        assert_eq!(clock.see(10, t0 + s(4)), None);
        // Moving resets the clock.
        assert_eq!(clock.see(11, t0 + s(6)), None);
        assert_eq!(clock.see(11, t0 + s(10)), None);
        assert_eq!(
            clock.see(11, t0 + s(11)),
            Some(Detection::Stalled {
                tick: 11,
                still: s(5)
            })
        );
        // A wrapped count is movement too.
        let mut clock = StallClock::new(s(1));
        assert_eq!(clock.see(u32::MAX, t0), None);
        assert_eq!(clock.see(0, t0 + s(2)), None);
    }
}
