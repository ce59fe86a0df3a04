//! Per-board locks: every command that changes a board's state (flash, stop, the hard reset of
//! a virtual board, exec) holds an exclusive `flock` on `<state>/locks/<board>.lock` while it
//! does, so two of them never race (two `mpfr flash` at once would otherwise start two QEMUs).
//!
//! The kernel drops a flock when its holder dies, so a crashed mpfr never leaves a board locked.
//! Within one process the lock is re-entrant: `exec` holds it and its hard reset, which restarts
//! QEMU, takes it again without waiting on itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::util::paths;

/// Boards this process holds the lock of, and how many guards are out for each.
static HELD: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Holds a board's lock until dropped.
#[derive(Debug)]
pub struct BoardLock {
    board: String,
    /// The locked file; `None` for a nested guard (the outer one holds the flock).
    file: Option<File>,
}

/// The lock file of `board`.
pub fn lock_path(board: &str) -> PathBuf {
    paths::state_dir()
        .join("locks")
        .join(format!("{board}.lock"))
}

/// Takes `board`'s lock, waiting for the command holding it to finish. `waiting` is called
/// once, with who holds it (`pid N: mpfr flash ...`), before a wait.
pub fn lock_board(board: &str, waiting: impl FnOnce(&str)) -> std::io::Result<BoardLock> {
    {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_or_insert_with(HashMap::new).get_mut(board) {
            *n += 1;
            return Ok(BoardLock {
                board: board.to_string(),
                file: None,
            });
        }
    }
    let path = lock_path(board);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            waiting(if holder.is_empty() {
                "another mpfr command"
            } else {
                holder
            });
            file.lock()?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    // Say who holds it, for the next command that has to wait.
    let me = format!("pid {}: {}", std::process::id(), own_command());
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(me.as_bytes());
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(board.to_string(), 1);
    Ok(BoardLock {
        board: board.to_string(),
        file: Some(file),
    })
}

fn own_command() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut s = args.join(" ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl Drop for BoardLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let map = held.get_or_insert_with(HashMap::new);
        if let Some(n) = map.get_mut(&self.board) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.board);
            }
        }
        if let Some(f) = self.file.take() {
            // Clear the holder line first; closing the file releases the flock.
            let _ = f.set_len(0);
            let _ = f.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_guards_do_not_wait_on_their_own_process() {
        let d = tempfile::tempdir().unwrap();
        let board = format!("lock-test-{}", std::process::id());
        let path = d.path().join(format!("{board}.lock"));
        let outer = lock_at(&board, &path);
        let inner = lock_board(&board, |_| panic!("waited on itself"));
        assert!(inner.is_ok());
        drop(inner);
        // Still held by `outer`: another open file description cannot take it.
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(outer);
        other
            .try_lock()
            .expect("free once the outer guard is dropped");
    }

    /// `lock_board` with an explicit file, so the test does not depend on $MPFR_STATE_DIR.
    fn lock_at(board: &str, path: &std::path::Path) -> BoardLock {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        file.lock().unwrap();
        HELD.lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(board.to_string(), 1);
        BoardLock {
            board: board.to_string(),
            file: Some(file),
        }
    }
}
