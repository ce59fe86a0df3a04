//! The CPython reference for external tests without a `.exp` file: each file runs under the
//! test's own limits, lazily and ahead of the board (one CPython per core at a time), and a
//! reference that hangs or dies makes that test "not compared" instead of stopping the run.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use super::suite::Reference;

/// Expected outputs, computed ahead of the board by worker threads in plan order; a test's
/// judge waits only for its own file (moved to the front when nobody started it yet).
pub struct Prefetch {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

#[derive(Default)]
struct Queue {
    planned: std::collections::HashSet<PathBuf>,
    todo: VecDeque<PathBuf>,
    done: HashMap<PathBuf, Result<String, String>>,
    stop: bool,
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prefetch")
    }
}

impl Prefetch {
    /// Starts `workers` threads (at least one) over `files`.
    pub fn start(
        reference: Arc<dyn Reference + Send + Sync>,
        files: Vec<PathBuf>,
        workers: usize,
    ) -> Prefetch {
        let mut planned = std::collections::HashSet::new();
        let todo: VecDeque<PathBuf> = files
            .into_iter()
            .filter(|f| planned.insert(f.clone()))
            .collect();
        let n = workers.clamp(1, todo.len().max(1));
        let shared = Arc::new((
            Mutex::new(Queue {
                planned,
                todo,
                ..Queue::default()
            }),
            Condvar::new(),
        ));
        for _ in 0..n {
            let shared = shared.clone();
            let reference = reference.clone();
            std::thread::spawn(move || {
                loop {
                    let next = {
                        let mut q = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                        if q.stop {
                            return;
                        }
                        match q.todo.pop_front() {
                            Some(f) => f,
                            None => return,
                        }
                    };
                    let r = reference.expected_output(&next);
                    let mut q = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                    q.done.insert(next, r);
                    shared.1.notify_all();
                }
            });
        }
        Prefetch { shared }
    }

    /// One worker per core, leaving the cores' share the board needs to the scheduler.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The expectation for `file`, waiting for it when it is still being computed.
    pub fn get(&self, file: &Path) -> Result<String, String> {
        let (lock, cv) = &*self.shared;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = q.todo.iter().position(|f| f == file) {
            let f = q.todo.remove(i).expect("index from position");
            q.todo.push_front(f);
        } else if !q.planned.contains(file) {
            return Err(format!(
                "{} was not planned for the reference",
                file.display()
            ));
        }
        loop {
            if let Some(r) = q.done.get(file) {
                return r.clone();
            }
            if q.stop {
                return Err("the run ended".into());
            }
            q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        let mut q = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        q.stop = true;
        q.todo.clear();
    }
}
