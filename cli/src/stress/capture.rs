//! Crash bundles for stress runs: an executor wrapper that, when a test crashes a QEMU board,
//! halts the board into a bundle (`crate::crash`) before the recovery ladder restarts it.

use std::path::PathBuf;

use super::{BoardFacts, Executor, Limits, RecoveryStep, RunEnd};
use crate::board::Board;

/// An executor whose crashes leave a bundle in `dir`.
pub struct Capturing {
    inner: Box<dyn Executor>,
    board: Board,
    dir: PathBuf,
    taken: u32,
}

impl Capturing {
    pub fn new(inner: Box<dyn Executor>, board: Board, dir: PathBuf) -> Capturing {
        Capturing {
            inner,
            board,
            dir,
            taken: 0,
        }
    }
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

    fn capture_crash(&mut self) -> Option<Result<PathBuf, String>> {
        let run = || -> Result<PathBuf, String> {
            let bundle = crate::crash::capture(&self.board, &Default::default())
                .map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
            let path = self.dir.join(format!(
                "crash-{}-{}.crash",
                bundle.captured_unix, self.taken
            ));
            bundle.write(&path).map_err(|e| e.to_string())?;
            Ok(path)
        };
        let r = run();
        self.taken += 1;
        Some(r)
    }
}
