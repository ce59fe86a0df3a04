//! The host board: a MicroPython unix-port process seen through `/proc` (its OS threads with
//! name, state, CPU time and last CPU) and its memory through `/proc/PID/mem`.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use serde::Serialize;

use super::{Memory, TargetError};

/// One OS thread of a process, from `/proc/PID/task/TID/{stat,comm}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsThread {
    pub tid: u32,
    pub name: String,
    /// `R` running, `S` sleeping, `D` disk wait, `Z` zombie, `T` stopped, ...
    pub state: char,
    /// User + system CPU time in clock ticks (`utime + stime`).
    pub cpu_ticks: u64,
    /// Kernel priority and nice value.
    pub priority: i64,
    pub nice: i64,
    /// The CPU the thread last ran on.
    pub cpu: u32,
}

/// Fields of one `stat` line, parsed after the `(comm)` (which may itself hold spaces and `)`).
pub fn parse_stat(line: &str) -> Option<OsThread> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let tid = line[..open].trim().parse().ok()?;
    let name = line.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let f = |n: usize| rest.get(n - 3).copied();
    let num = |n: usize| f(n).and_then(|s| s.parse::<u64>().ok());
    let int = |n: usize| f(n).and_then(|s| s.parse::<i64>().ok());
    Some(OsThread {
        tid,
        name,
        state: f(3)?.chars().next()?,
        cpu_ticks: num(14)? + num(15)?,
        priority: int(18)?,
        nice: int(19)?,
        cpu: num(39)? as u32,
    })
}

/// Clock ticks per second (`utime`/`stime` unit).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Number of CPUs the host has online.
pub fn online_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Every thread of process `pid`, in tid order. Threads that exit while being listed are skipped.
pub fn threads(pid: u32) -> Result<Vec<OsThread>, TargetError> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let rd = std::fs::read_dir(&dir).map_err(|e| TargetError::Procfs {
        pid,
        why: format!("{}: {e}", dir.display()),
    })?;
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) else {
            continue;
        };
        if let Some(mut t) = parse_stat(stat.trim_end()) {
            // `comm` is the same name without the parsing ambiguity; prefer it when readable.
            if let Ok(c) = std::fs::read_to_string(ent.path().join("comm")) {
                t.name = c.trim_end_matches('\n').to_string();
            }
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(TargetError::Procfs {
            pid,
            why: "no threads listed (has it exited?)".into(),
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// The command line of `pid`, for messages (`micropython -i`).
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Some(parts.join(" "))
}

/// A process's memory through `/proc/PID/mem` (needs ptrace permission over it: same user and
/// a Yama `ptrace_scope` that allows it, or mpfr being its parent).
#[derive(Debug)]
pub struct ProcessMemory {
    pid: u32,
    file: File,
    ram: Vec<Range<u64>>,
}

impl ProcessMemory {
    pub fn open(pid: u32) -> Result<Self, TargetError> {
        let path = format!("/proc/{pid}/mem");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|_| File::open(&path))
            .map_err(|e| TargetError::Procfs {
                pid,
                why: format!("{path}: {e}"),
            })?;
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        Ok(ProcessMemory {
            pid,
            file,
            ram: writable_ranges(&maps),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// The private writable mappings of a `maps` listing: where a process keeps its data.
pub fn writable_ranges(maps: &str) -> Vec<Range<u64>> {
    maps.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (a, b) = it.next()?.split_once('-')?;
            let perms = it.next()?;
            if !perms.starts_with("rw") {
                return None;
            }
            Some(u64::from_str_radix(a, 16).ok()?..u64::from_str_radix(b, 16).ok()?)
        })
        .collect()
}

impl Memory for ProcessMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.file
            .read_exact_at(buf, addr)
            .map_err(|e| TargetError::Access {
                op: "read",
                addr,
                len: buf.len(),
                target: self.describe(),
                why: e.to_string(),
            })
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.file
            .write_all_at(data, addr)
            .map_err(|e| TargetError::Access {
                op: "write",
                addr,
                len: data.len(),
                target: self.describe(),
                why: e.to_string(),
            })
    }

    fn ram_ranges(&self) -> Vec<Range<u64>> {
        self.ram.clone()
    }

    fn describe(&self) -> String {
        format!("process {}", self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "4242 (my (odd) thr) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 3 0 \
                    12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let t = parse_stat(line).expect("parses");
        assert_eq!(t.tid, 4242);
        assert_eq!(t.name, "my (odd) thr");
        assert_eq!(t.state, 'S');
        assert_eq!(t.cpu_ticks, 10);
        assert_eq!(t.priority, 20);
        assert_eq!(t.nice, 0);
        assert_eq!(t.cpu, 1);
    }

    #[test]
    fn truncated_stat_is_none_not_panic() {
        let full =
            "1 (x) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 9 9 9 9 1 1 0 0 0 0 0 0 0 0 0 0 17 0";
        for i in 0..full.len() {
            let _ = parse_stat(&full[..i]);
        }
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn reads_own_threads_and_memory() {
        let pid = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name("mpfr-probe-me".into())
            .spawn(move || {
                let _ = started_tx.send(());
                let _ = rx.recv();
            })
            .expect("spawn");
        started_rx.recv().expect("thread started");
        let ts = threads(pid).expect("own threads");
        assert!(ts.iter().any(|t| t.name == "mpfr-probe-me"), "{ts:?}");
        drop(tx);
        let _ = h.join();

        let value: [u8; 8] = *b"mpfr-mem";
        let addr = value.as_ptr() as u64;
        let mut m = ProcessMemory::open(pid).expect("open own mem");
        let mut buf = [0u8; 8];
        m.read(addr, &mut buf).expect("read own memory");
        assert_eq!(&buf, b"mpfr-mem");
        assert!(m.ram_ranges().iter().any(|r| r.contains(&addr)));
    }

    #[test]
    fn missing_process_is_a_clear_error() {
        let e = threads(u32::MAX - 1).expect_err("no such pid");
        assert!(e.to_string().contains("process"), "{e}");
    }

    #[test]
    fn writable_ranges_from_maps() {
        let maps = "00400000-00452000 r-xp 00000000 08:02 1 /bin/x\n\
                    00651000-00652000 rw-p 00051000 08:02 1 /bin/x\n";
        assert_eq!(writable_ranges(maps), vec![0x651000..0x652000]);
    }
}
