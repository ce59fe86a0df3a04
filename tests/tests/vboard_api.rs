//! The `mpfr::device::vboard` API other commands build on (start, load, restart, stop), used in-process
//! against real QEMU. One test per file: it sets `MPFR_STATE_DIR` for this process.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mpfr::board::{Board, Catalog};
use mpfr::device::vboard::{self, Console, Instance, StartOptions, VboardError};
use mpfr_tests::{PATIENCE, wait_for};

const BOARD: &str = "qemu-mps2-an385";

/// Kills whatever QEMU the record names when the test ends, also on panic.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(Some(i)) = Instance::read_record(BOARD)
            && i.is_alive()
        {
            let _ = Command::new("kill")
                .args(["-KILL", &i.pid.to_string()])
                .status();
        }
        let _ = &self.0;
    }
}

fn board(name: &str) -> Board {
    Catalog::builtin()
        .expect("built-in catalog")
        .get(name)
        .expect("board")
        .clone()
}

#[test]
fn start_load_kill_restart_stop() {
    let dir = tempfile::Builder::new()
        .prefix("mpfr-vb-")
        .tempdir_in("/tmp")
        .unwrap();
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("MPFR_STATE_DIR", dir.path()) };
    let _guard = Guard(dir.path().to_path_buf());
    let elf = mpfr_tests::uart_banner_elf(dir.path());

    assert!(Instance::load(BOARD).unwrap().is_none());
    let opts = StartOptions {
        detect_timeout: Duration::from_secs(30),
        ..StartOptions::default()
    };
    let a = Instance::start(&board(BOARD), &elf, &opts).unwrap();
    assert_eq!(a.console, Console::Reference);
    assert!(a.is_alive());
    assert_eq!(Instance::load(BOARD).unwrap().as_ref(), Some(&a));

    // A QEMU that died is reported by `load`, with its last words.
    let st = Command::new("kill")
        .args(["-TERM", &a.pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for("QEMU to exit", PATIENCE, || !a.is_alive());
    match Instance::load(BOARD) {
        Err(VboardError::Dead { pid, log_tail, .. }) => {
            assert_eq!(pid, a.pid);
            assert!(log_tail.contains("terminating on signal 15"), "{log_tail}");
        }
        other => panic!("expected Dead, got {other:?}"),
    }

    // restart: same image, new QEMU, also when the recorded one died.
    let b = vboard::restart(&board(BOARD)).unwrap();
    assert_ne!(a.pid, b.pid);
    assert_eq!(b.image, a.image);
    assert!(b.is_alive());

    let s = Instance::stop(&board(BOARD))
        .unwrap()
        .expect("was recorded");
    assert!(s.was_running);
    assert_eq!(s.instance.pid, b.pid);
    wait_for("stopped QEMU to exit", PATIENCE, || !b.is_alive());
    assert!(Instance::load(BOARD).unwrap().is_none());
    assert!(!b.qmp_socket.exists() && !b.gdb_socket.exists());
    // Not a QEMU board: a clear error, nothing touched.
    assert!(matches!(
        Instance::stop(&board("rpi-pico")),
        Err(VboardError::NotQemu { .. })
    ));
}
