//! Crash bundles for stress runs: an executor wrapper that, when a test crashes a QEMU board,
//! halts the board into a bundle (`crate::crash`) before the recovery ladder restarts it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{BoardFacts, Executor, Limits, RecoveryStep, RunEnd};
use crate::board::{Board, Platform};

/// How long a capture waits for the telemetry sampler to let go of the gdbstub.
const GATE_WAIT: Duration = Duration::from_secs(10);

/// Lends the one debugger connection a QEMU board serves: the telemetry sampler gives it up
/// while a capture [`DebuggerGate::take`]s it.
#[derive(Debug, Default)]
pub struct DebuggerGate {
    wanted: AtomicBool,
    idle: AtomicBool,
}

impl DebuggerGate {
    /// Asks the holder to let go and waits until it has (or `limit` passed: false).
    pub fn take(&self, limit: Duration) -> bool {
        self.wanted.store(true, Ordering::SeqCst);
        let until = Instant::now() + limit;
        while !self.idle.load(Ordering::SeqCst) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The holder may connect again.
    pub fn give_back(&self) {
        self.wanted.store(false, Ordering::SeqCst);
    }

    /// For the holder: a capture wants the connection.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::SeqCst)
    }

    /// For the holder: whether it holds no connection now.
    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::SeqCst);
    }
}

/// `exec` for `board`, capturing crashes when the board is a virtual board reached without
/// `--port`; `gate` is the telemetry sampler's, when one runs. Bundles go to
/// `<output root>/<board>/`.
pub fn wrap(
    board: &Board,
    port: Option<&str>,
    exec: Box<dyn Executor>,
    gate: Option<Arc<DebuggerGate>>,
) -> Box<dyn Executor> {
    match (&board.platform, port) {
        (Platform::Qemu(_), None) => Box::new(Capturing {
            inner: exec,
            board: board.clone(),
            dir: crate::util::paths::out_root().join(&board.name),
            gate,
            taken: 0,
        }),
        _ => exec,
    }
}

/// An executor whose crashes leave a bundle in `dir`.
pub struct Capturing {
    inner: Box<dyn Executor>,
    board: Board,
    dir: PathBuf,
    gate: Option<Arc<DebuggerGate>>,
    taken: u32,
}

impl Executor for Capturing {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn run(&mut self, payload: &str, limits: &Limits, sink: &mut dyn FnMut(&[u8])) -> RunEnd {
        self.inner.run(payload, limits, sink)
    }

    fn recover(&mut self, step: RecoveryStep) -> Result<(), String> {
        self.inner.recover(step)
    }

    fn healthy(&mut self) -> bool {
        self.inner.healthy()
    }

    fn identify(&mut self) -> BoardFacts {
        self.inner.identify()
    }

    fn fresh(&mut self) -> Result<(), String> {
        self.inner.fresh()
    }

    fn capture_crash(&mut self, console: &str) -> Option<Result<PathBuf, String>> {
        let opts = crate::crash::CaptureOptions {
            elf: None,
            console_tail: Some(console.to_string()),
        };
        let run = || -> Result<PathBuf, String> {
            let bundle = crate::crash::capture(&self.board, &opts).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
            let path = self.dir.join(format!(
                "crash-{}-{}.crash",
                bundle.captured_unix, self.taken
            ));
            bundle.write(&path).map_err(|e| e.to_string())?;
            Ok(path)
        };
        let r = match &self.gate {
            Some(g) if !g.take(GATE_WAIT) => {
                Err("the telemetry sampler did not let go of the gdbstub".to_string())
            }
            _ => run(),
        };
        if let Some(g) = &self.gate {
            g.give_back();
        }
        self.taken += 1;
        Some(r)
    }
}
