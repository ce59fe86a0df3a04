//! The CPython reference for external tests without a `.exp` file: each file runs under the
//! test's own limits, lazily and ahead of the board (one CPython per core at a time), and a
//! reference that hangs or dies makes that test "not compared" instead of stopping the run.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Limits;
use super::suite::Reference;

/// A command run to its end within limits, with the guarantees every child of mpfr has: its
/// own process group (a Ctrl-C at the terminal is mpfr's to handle), killed with its group when
/// a limit passes, and killed by the kernel when the thread that started it (or mpfr) dies.
pub fn output_within(cmd: &mut Command, limits: &Limits) -> Result<std::process::Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let start = Instant::now();
    // Milliseconds since `start` of the last byte on either stream (the inactivity clock).
    let last = Arc::new(AtomicU64::new(0));
    let reader = |mut r: Box<dyn Read + Send>| {
        let last = last.clone();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            all
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let now = start.elapsed();
        let silent = now.saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let passed = if now >= limits.timeout {
            Some(format!(
                "still running after {:.1?} (--timeout)",
                limits.timeout
            ))
        } else if silent >= limits.idle {
            Some(format!("silent for {:.1?} (--idle-timeout)", limits.idle))
        } else {
            None
        };
        if let Some(why) = passed {
            kill_group(&mut child);
            // The readers end once every process of the group is gone.
            let _ = out.join();
            let _ = err.join();
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Its own process group, and SIGKILL when the starting thread ends (mpfr killed, even with
/// `kill -9`, takes its children with it).
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the child's own group (created with process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

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
