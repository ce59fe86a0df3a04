//! `mpfr threads ls/top` end to end: the host board against a real MicroPython process (table,
//! JSON, the interactive view in tmux), and the QEMU board's attach diagnostics against a real
//! QEMU running a tiny image.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::{Qemu, build_tiny_with};
use mpfr_tests::{PATIENCE, Tmux, wait_for};

/// A process started by a test, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const BUSY_SCRIPT: &str = "import _thread, time\n\
def spin(n):\n    x = 0\n    while True:\n        x += 1\n\
for i in range(2):\n    _thread.start_new_thread(spin, (i,))\n\
while True:\n    time.sleep(1)\n";

/// A MicroPython with two busy threads; returns once /proc shows all three threads.
fn micropython_with_threads(dir: &Path) -> Proc {
    let script = dir.join("busy.py");
    std::fs::write(&script, BUSY_SCRIPT).expect("write script");
    let child = Command::new(mpfr_tests::micropython())
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start .venv/bin/micropython (run scripts/setup.sh)");
    let p = Proc(child);
    let pid = p.0.id();
    wait_for("micropython to start its threads", PATIENCE, || {
        let n = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count();
        (n >= 3).then_some(())
    });
    p
}

fn mpfr(state: &Path, args: &[&str]) -> Output {
    Command::new(mpfr_tests::mpfr_bin())
        .args(args)
        .env("MPFR_STATE_DIR", state)
        .env_remove("MPFR_BOARD")
        .env_remove("MPFR_BOARDS")
        .env("NO_COLOR", "1")
        .current_dir(state)
        .stdin(Stdio::null())
        .output()
        .expect("run mpfr")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn host_ls_shows_the_micropython_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp = micropython_with_threads(dir.path());
    let pid = mp.0.id().to_string();
    let out = mpfr(
        dir.path(),
        &[
            "threads",
            "ls",
            "--board",
            "host",
            "--pid",
            &pid,
            "--interval",
            "300",
        ],
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    assert!(so.contains("NAME") && so.contains("CPU%"), "{so}");
    let rows = so.lines().filter(|l| l.starts_with("micropython")).count();
    assert!(rows >= 3, "{so}");
    assert!(so.contains("no service task"), "{so}");
}

#[test]
fn host_json_sample_has_cpu_for_busy_threads_and_no_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp = micropython_with_threads(dir.path());
    let pid = mp.0.id().to_string();
    let out = mpfr(
        dir.path(),
        &[
            "--json",
            "threads",
            "top",
            "--once",
            "--board",
            "host",
            "--pid",
            &pid,
            "--interval",
            "300",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let sample = lines
        .iter()
        .find(|v| v["type"] == "sample")
        .expect("a sample line");
    let tasks = sample["tasks"].as_array().expect("tasks");
    assert!(tasks.len() >= 3, "{sample}");
    assert!(
        tasks
            .iter()
            .all(|t| t["id"].as_u64().is_some() && t["state"].is_string())
    );
    // Two threads spin: together they use well over one core's tenth on this machine.
    let busy: f64 = tasks.iter().filter_map(|t| t["cpu_pct"].as_f64()).sum();
    assert!(busy > 10.0, "busy threads show no CPU: {sample}");
    assert!(sample["service"].is_null());
    assert!(
        sample["service_note"]
            .as_str()
            .is_some_and(|n| n.contains("no service task"))
    );
    assert_eq!(sample["source"], "procfs");
}

#[test]
fn host_missing_process_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mpfr(
        dir.path(),
        &["threads", "ls", "--board", "host", "--pid", "4000000000"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let se = text(&out.stderr);
    assert!(se.contains("process 4000000000"), "{se}");
    assert!(se.contains("--pid"), "{se}");
}

fn top_in_tmux(dir: &Path, pid: u32) -> Tmux {
    top_in_tmux_args(dir, &format!("--board host --pid {pid}"))
}

fn top_in_tmux_args(dir: &Path, args: &str) -> Tmux {
    let t = Tmux::new(dir.join("tmux.sock"), "top");
    let bin = mpfr_tests::mpfr_bin();
    let shell = format!(
        "cd '{}' && MPFR_STATE_DIR='{}' '{}' threads top {args} --interval 200; echo mpfr-exit=$?; sleep 600",
        dir.display(),
        dir.display(),
        bin.display()
    );
    let out = t.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        &shell,
    ]);
    assert!(out.status.success(), "tmux: {}", text(&out.stderr));
    t
}

#[test]
fn interactive_view_shows_the_table_sorts_and_quits_on_q() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp = micropython_with_threads(dir.path());
    let t = top_in_tmux(dir.path(), mp.0.id());
    let s = t.wait_until("the task table", |s| {
        s.contains("NAME") && s.contains("micropython") && s.contains("tasks (")
    });
    assert!(s.contains("q quit"), "{s}");
    assert!(s.contains("no service task"), "{s}");
    // Sort by name: the title says so.
    t.run(&["send-keys", "-t", "top", "n"]);
    t.wait_until("sort by name", |s| s.contains("sort name"));
    t.run(&["send-keys", "-t", "top", "q"]);
    let s = t.wait_until("mpfr to exit", |s| s.contains("mpfr-exit="));
    assert!(s.contains("mpfr-exit=0"), "{s}");
    // The alternate screen is gone: the table is no longer on screen.
    assert!(!s.contains("q quit"), "terminal not restored:\n{s}");
}

#[test]
fn interactive_view_exits_130_on_ctrl_c_and_restores_the_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp = micropython_with_threads(dir.path());
    let t = top_in_tmux(dir.path(), mp.0.id());
    t.wait_until("the task table", |s| s.contains("tasks ("));
    t.run(&["send-keys", "-t", "top", "C-c"]);
    let s = t.wait_until("mpfr to exit", |s| s.contains("mpfr-exit="));
    assert!(s.contains("mpfr-exit=130"), "{s}");
    assert!(!s.contains("q quit"), "terminal not restored:\n{s}");
}

/// QEMU started by the test on `image` (gdbstub and QMP on unix sockets), with the
/// running-virtual-board record `mpfr flash` would write, so `threads` attaches to it.
fn virtual_board(state: &Path, image: &Path) -> (Qemu, PathBuf) {
    let sock = state.join("gdb.sock");
    let qmp_sock = state.join("qmp.sock");
    let q = crate::support::start_qemu_with(
        image,
        &sock,
        &[
            "-qmp".to_string(),
            format!("unix:{},server=on,wait=off", qmp_sock.display()),
        ],
    );
    let dir = state.join("vboard");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let rec = serde_json::json!({
        "board": "qemu-mps2-an385",
        "pid": q.0.id(),
        "uart_pty": "/dev/null",
        "gdb_socket": sock,
        "qmp_socket": qmp_sock,
        "image": image,
        "console": "unknown",
        "log": state.join("qemu.log"),
        "started_unix": 0,
    });
    std::fs::write(dir.join("qemu-mps2-an385.json"), rec.to_string()).expect("write record");
    wait_for("the QMP socket", PATIENCE, || {
        qmp_sock.exists().then_some(())
    });
    (q, qmp_sock)
}

#[test]
fn qemu_without_agent_says_where_it_looked_and_what_the_elf_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = build_tiny_with(dir.path(), false);
    let _board = virtual_board(dir.path(), &elf);
    let out = mpfr(dir.path(), &["threads", "ls", "--board", "qemu-mps2-an385"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("no RTT control block"), "{se}");
    assert!(se.contains("0x20000000..0x20400000"), "{se}");
    assert!(se.contains("no `_SEGGER_RTT`"), "{se}");
    // How to add the agent, not a request for an image that would not help.
    assert!(se.contains("agent is not in this firmware"), "{se}");
    assert!(!se.contains("--elf"), "{se}");
}

#[test]
fn qemu_block_without_frames_is_reported_not_hung() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = build_tiny_with(dir.path(), true);
    let _board = virtual_board(dir.path(), &elf);
    let out = mpfr(
        dir.path(),
        &["threads", "ls", "--board", "qemu-mps2-an385", "--wait", "2"],
    );
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains("sends no telemetry frames") || se.contains("not initialised"),
        "{se}"
    );
}

#[test]
fn qemu_board_not_running_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mpfr(dir.path(), &["threads", "ls", "--board", "qemu-mps2-an385"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains("is not running") && se.contains("mpfr flash --board qemu-mps2-an385"),
        "{se}"
    );
}

// ---------------------------------------------------------------------------------------------
// Against the reference firmware (FreeRTOS + the mpfr agent) on QEMU.

/// The reference firmware image: `$MPFR_REF_ELF` when set (a prebuilt image), else built with
/// `mpfr build --board qemu-mps2-an385` into `dir`.
fn reference_elf(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("MPFR_REF_ELF") {
        return PathBuf::from(p);
    }
    reference_elf_with(dir, "")
}

/// The reference firmware built into `dir` with extra compiler flags (`MPFR_CFLAGS`).
fn reference_elf_with(dir: &Path, cflags: &str) -> PathBuf {
    let out = Command::new(mpfr_tests::mpfr_bin())
        .args(["build", "--board", "qemu-mps2-an385"])
        .env("MPFR_CFLAGS", cflags)
        .env("MPFR_OUT", dir.join("out"))
        .env("MPFR_STATE_DIR", dir)
        .current_dir(dir)
        .output()
        .expect("run mpfr build");
    assert!(
        out.status.success(),
        "mpfr build failed:\n{}",
        text(&out.stderr)
    );
    let elf = dir.join("out/qemu-mps2-an385/firmware.elf");
    assert!(elf.is_file(), "no {}", elf.display());
    elf
}

fn qmp(sock: &Path, command: &str) {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let s = UnixStream::connect(sock).expect("connect QMP");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).expect("QMP greeting");
    for cmd in ["qmp_capabilities", command] {
        writeln!(w, "{{\"execute\":\"{cmd}\"}}").expect("send");
        loop {
            line.clear();
            r.read_line(&mut line).expect("QMP reply");
            assert!(!line.is_empty(), "QMP closed");
            if line.contains("\"return\"") {
                break;
            }
            assert!(!line.contains("\"error\""), "QMP {cmd}: {line}");
        }
    }
}

/// The virtual board booted by `mpfr flash` with the reference firmware; stopped on drop.
struct FlashedBoard {
    state: PathBuf,
    record: serde_json::Value,
}

impl Drop for FlashedBoard {
    fn drop(&mut self) {
        let _ = mpfr(&self.state, &["stop", "--board", "qemu-mps2-an385"]);
        // Belt and braces: the QEMU the record names must not outlive the test.
        if let Some(pid) = self.record["pid"].as_u64() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn reference_board(dir: &Path) -> (FlashedBoard, PathBuf, PathBuf) {
    let elf = reference_elf(dir);
    flash_reference(dir, &elf)
}

fn flash_reference(dir: &Path, elf: &Path) -> (FlashedBoard, PathBuf, PathBuf) {
    let out = mpfr(
        dir,
        &[
            "flash",
            "--board",
            "qemu-mps2-an385",
            &elf.display().to_string(),
        ],
    );
    let rec_path = dir.join("vboard/qemu-mps2-an385.json");
    let record: serde_json::Value = std::fs::read_to_string(&rec_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let board = FlashedBoard {
        state: dir.to_path_buf(),
        record,
    };
    assert!(
        out.status.success(),
        "mpfr flash failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let qmp = board.record["qmp_socket"]
        .as_str()
        .map(PathBuf::from)
        .expect("qmp socket in the record");
    (board, elf.to_path_buf(), qmp)
}

#[test]
fn qemu_reference_once_json_shows_threads_service_stacks_and_heaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_board, _elf, _qmp) = reference_board(dir.path());
    let out = mpfr(
        dir.path(),
        &[
            "--json",
            "threads",
            "top",
            "--once",
            "--board",
            "qemu-mps2-an385",
            "--interval",
            "100",
        ],
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let lines: Vec<serde_json::Value> = so
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(
        lines
            .iter()
            .all(|v| v["type"] == "sample" || v["type"] == "event")
    );
    let s = lines
        .iter()
        .find(|v| v["type"] == "sample")
        .expect("a sample");
    let tasks = s["tasks"].as_array().expect("tasks");
    let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
    // Every Python worker thread the firmware says is alive, and the service task.
    let workers = tasks.iter().filter(|t| t["py_thread"].is_u64()).count() as u64;
    assert!(workers >= 1, "{s}");
    assert_eq!(Some(workers), s["threads_live"].as_u64(), "{s}");
    assert!(names.contains(&"svc"), "no service task in {names:?}");
    // CPU% adds up to about 100 on the (single) core.
    let sum: f64 = tasks.iter().filter_map(|t| t["cpu_pct"].as_f64()).sum();
    assert!((90.0..=110.0).contains(&sum), "CPU% sums to {sum}: {s}");
    // Stack high-water marks below the stack size, for every task.
    for t in tasks {
        let (hw, size) = (t["stack_high_water"].as_u64(), t["stack_size"].as_u64());
        let (hw, size) = (hw.expect("high water"), size.expect("size"));
        assert!(hw > 0 && hw <= size, "{t}");
    }
    // Service slots with counts, heap figures.
    let slots = s["service"]["slots"].as_array().expect("service slots");
    assert!(!slots.is_empty(), "{s}");
    assert!(
        slots.iter().any(|sl| sl["dispatches"].as_u64() > Some(0)),
        "{s}"
    );
    // The hello mpfr asks for on attach: firmware, fingerprint, and so latencies in µs.
    assert_eq!(s["firmware"], "mpfr-ref", "{s}");
    assert!(
        s["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("0x")),
        "{s}"
    );
    assert!(slots.iter().all(|sl| sl["latency_avg_us"].is_f64()), "{s}");
    let heap = &s["heap"];
    let (total, free, min) = (
        heap["total"].as_u64(),
        heap["free"].as_u64(),
        heap["min_free"].as_u64(),
    );
    assert!(total > Some(0) && min <= free && free <= total, "{heap}");
}

/// The reference firmware's console on the virtual board's UART pty: one reader for the
/// board's life (ends when QEMU goes, with EIO).
struct Console {
    port: std::fs::File,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Console {
    fn open(board: &FlashedBoard) -> Console {
        use std::io::Read;
        let pty = board.record["uart_pty"]
            .as_str()
            .expect("uart pty in the record");
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pty)
            .expect("open the UART pty");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (sink, mut reader) = (seen.clone(), port.try_clone().expect("clone pty"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Console { port, seen }
    }

    /// Sends a command and returns its `RESULT <name> ...` line.
    fn result(&mut self, line: &str, name: &str) -> String {
        use std::io::Write;
        let from = self.seen.lock().expect("lock").len();
        self.port
            .write_all(format!("{line}\r").as_bytes())
            .expect("write the console");
        let tag = format!("RESULT {name} ");
        wait_for(&format!("`{line}` on the console"), PATIENCE, || {
            let t = self.seen.lock().expect("lock")[from..].to_string();
            let whole = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
            whole
                .lines()
                .find(|l| l.starts_with(&tag))
                .map(|l| l.trim_end().to_string())
                .ok_or(t)
        })
    }
}

/// 40 live tasks in one sample: more than the agent's task array (`MPFR_AGENT_MAX_TASKS`, 20),
/// with the task walk and without it (the uxTaskGetSystemState() fallback).
fn reference_shows_every_task(cflags: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = reference_elf_with(dir.path(), cflags);
    let (board, _elf, _qmp) = flash_reference(dir.path(), &elf);
    let mut console = Console::open(&board);
    let line = console.result("hold 36", "hold");
    assert!(line.starts_with("RESULT hold PASS"), "{line}");
    let tasks_on_target: usize = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("tasks="))
        .and_then(|v| v.parse().ok())
        .expect("tasks= in the result");
    assert!(tasks_on_target >= 40, "{line}");
    let out = mpfr(
        dir.path(),
        &["--json", "threads", "ls", "--board", "qemu-mps2-an385"],
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s: serde_json::Value = so
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "sample")
        .expect("a sample");
    let tasks = s["tasks"].as_array().expect("tasks");
    let held = tasks
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("hold-")))
        .count();
    assert_eq!(held, 36, "{s}");
    assert_eq!(tasks.len(), tasks_on_target, "{s}");
    assert_eq!(
        s["threads_live"].as_u64(),
        Some(tasks.iter().filter(|t| t["py_thread"].is_u64()).count() as u64),
        "{s}"
    );
    // Released, finished, not reaped yet: shown as finished, not as the parked task's state.
    let line = console.result("hold 0", "hold");
    assert!(line.starts_with("RESULT hold PASS"), "{line}");
    assert!(line.contains(" finished=36"), "{line}");
    let out = mpfr(
        dir.path(),
        &["--json", "threads", "ls", "--board", "qemu-mps2-an385"],
    );
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}\n{}", text(&out.stderr));
    let s: serde_json::Value = so
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "sample")
        .expect("a sample");
    let states: Vec<&str> = s["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("hold-")))
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert_eq!(states, vec!["finished"; 36], "{s}");
    assert_eq!(s["threads_finished"].as_u64(), Some(36), "{s}");
}

#[test]
fn qemu_reference_with_40_tasks_shows_all_40() {
    reference_shows_every_task("");
}

#[test]
fn qemu_reference_without_the_task_walk_shows_all_40_tasks() {
    reference_shows_every_task("-DMPFR_AGENT_TASK_WALK=0");
}

#[test]
fn qemu_reference_reattaches_after_the_firmware_restarts() {
    use mpfr::device::memory::gdb::GdbClient;
    use mpfr::telemetry::model::{EventType, Update};
    use mpfr::telemetry::monitor::Monitor;
    use mpfr::telemetry::rtt::AdaptiveInterval;

    let dir = tempfile::tempdir().expect("tempdir");
    let (board, elf, qmp_sock) = reference_board(dir.path());
    let sock = board.record["gdb_socket"]
        .as_str()
        .map(PathBuf::from)
        .expect("gdb socket");
    let mem = GdbClient::connect(&sock, vec![crate::support::RAM]).expect("gdb");
    let pace = AdaptiveInterval::new(Duration::from_millis(5), Duration::from_millis(50));
    let mut m =
        Monitor::attach_memory("qemu-mps2-an385", Box::new(mem), Some(elf), pace).expect("attach");
    let mut uptime_before = 0;
    wait_for("a sample before the reset", PATIENCE, || {
        for u in m.step().expect("step") {
            if let Update::Sample(s) = u {
                uptime_before = s.uptime_ms?;
                return Some(());
            }
        }
        std::thread::sleep(m.wait());
        None
    });
    // Let the firmware run a little longer so its uptime after the reset is clearly smaller.
    wait_for("uptime to pass 500 ms", PATIENCE, || {
        for u in m.step().expect("step") {
            if let Update::Sample(s) = u
                && s.uptime_ms? > 500
            {
                return Some(());
            }
        }
        std::thread::sleep(m.wait());
        None
    });
    qmp(&qmp_sock, "system_reset");
    let mut saw_restart = false;
    wait_for("a sample from the restarted firmware", PATIENCE, || {
        for u in m.step().expect("step survives the reset") {
            match u {
                Update::Event(e)
                    if matches!(
                        e.kind,
                        EventType::Lost | EventType::Reattached | EventType::Restarted
                    ) =>
                {
                    saw_restart = true;
                }
                Update::Sample(s) if saw_restart && s.uptime_ms.is_some_and(|u| u < 500) => {
                    return Some(());
                }
                _ => {}
            }
        }
        std::thread::sleep(m.wait());
        None
    });
    assert!(saw_restart);
}

#[test]
fn qemu_reference_interactive_view_shows_tasks_service_and_quits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_board, _elf, _qmp) = reference_board(dir.path());
    let t = top_in_tmux_args(dir.path(), "--board qemu-mps2-an385");
    let s = t.wait_until("tasks with CPU% and the service slots", |s| {
        s.contains("svc") && s.contains("DISPATCHES") && s.contains("FreeRTOS heap")
    });
    assert!(s.contains("service task: notifications"), "{s}");
    t.run(&["send-keys", "-t", "top", "/", "s", "v", "c", "Enter"]);
    t.wait_until("the filter", |s| {
        s.contains("filter \"svc\"") && !s.contains("IDLE")
    });
    t.run(&["send-keys", "-t", "top", "q"]);
    let s = t.wait_until("mpfr to exit", |s| s.contains("mpfr-exit="));
    assert!(s.contains("mpfr-exit=0"), "{s}");
}

#[test]
fn qemu_reference_stream_goes_on_after_a_reflash() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let (_board, elf, _qmp) = reference_board(dir.path());
    let child = Command::new(mpfr_tests::mpfr_bin())
        .args(["--json", "threads", "top", "--board", "qemu-mps2-an385"])
        .env("MPFR_STATE_DIR", dir.path())
        .env_remove("MPFR_BOARD")
        .env_remove("MPFR_BOARDS")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start threads top");
    let mut top = Proc(child);
    let stdout = top.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { break };
            if let Ok(v) = serde_json::from_str(&l) {
                let _ = tx.send(v);
            }
        }
    });
    let mut seen = Vec::new();
    let mut next = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        wait_for(what, PATIENCE, || {
            while let Ok(v) = rx.try_recv() {
                let hit = pred(&v);
                seen.push(v);
                if hit {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            Err(format!("{} lines so far", seen.len()))
        });
    };
    let is_sample = |v: &serde_json::Value| v["type"] == "sample";
    next("a first sample", &is_sample);
    // Flashing again replaces QEMU (a new gdbstub): the stream must say so and go on.
    let out = mpfr(
        dir.path(),
        &[
            "flash",
            "--board",
            "qemu-mps2-an385",
            &elf.display().to_string(),
        ],
    );
    assert!(out.status.success(), "reflash: {}", text(&out.stderr));
    next("the stream to attach again", &|v| {
        v["type"] == "event" && v["kind"] == "reattached"
    });
    next("a sample after the reflash", &is_sample);
    assert!(
        top.0.try_wait().expect("wait").is_none(),
        "threads top ended"
    );
}

#[test]
fn qemu_reference_interactive_view_reattaches_after_a_reflash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_board, elf, _qmp) = reference_board(dir.path());
    let t = top_in_tmux_args(dir.path(), "--board qemu-mps2-an385");
    t.wait_until("the task table", |s| s.contains("DISPATCHES"));
    let out = mpfr(
        dir.path(),
        &[
            "flash",
            "--board",
            "qemu-mps2-an385",
            &elf.display().to_string(),
        ],
    );
    assert!(out.status.success(), "reflash: {}", text(&out.stderr));
    // Re-attached: the event log says so and the header no longer says STALE.
    let s = t.wait_until("the view to attach again", |s| {
        s.contains("reattached") && !s.contains("STALE")
    });
    // The error was logged once, not once per poll.
    assert!(s.matches("error").count() <= 2, "{s}");
    t.run(&["send-keys", "-t", "top", "q"]);
    let s = t.wait_until("mpfr to exit", |s| s.contains("mpfr-exit="));
    assert!(s.contains("mpfr-exit=0"), "{s}");
}

/// Writes `n` bytes of garbage into the agent's telemetry ring as if the target had sent them
/// (at the write offset, which then moves past them), with the target held so the agent cannot
/// write in between. Returns how many bytes went in (at most the room the ring has).
fn garbage_into_the_telemetry_ring(board: &FlashedBoard, elf: &Path, n: u32) -> u32 {
    use mpfr::device::memory::gdb::GdbClient;
    use mpfr::device::memory::{Memory, read_u32, write_u32};
    let sock = board.record["gdb_socket"]
        .as_str()
        .map(PathBuf::from)
        .expect("gdb socket");
    let mut mem = GdbClient::connect(&sock, vec![crate::support::RAM]).expect("gdb");
    // The control block: 16-byte id, two counts, then 24-byte channels; up 1 is "mpfr".
    let up1 = crate::support::symbol(elf, "_SEGGER_RTT") + 16 + 8 + 24;
    mem.hold().expect("halt");
    let field = |m: &mut GdbClient, off: u64| read_u32(m, up1 + off).expect("read") as u64;
    let (buf, size, wr, rd) = (
        field(&mut mem, 4),
        field(&mut mem, 8),
        field(&mut mem, 12),
        field(&mut mem, 16),
    );
    assert!(size > 0 && wr < size && rd < size, "{size} {wr} {rd}");
    let room = if rd > wr {
        rd - wr - 1
    } else {
        size - (wr - rd) - 1
    };
    let n = u64::from(n).min(room);
    // Deterministic noise with no frame sync in it, so every byte must be skipped.
    let mut x: u32 = 0x2545_f491;
    let junk: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x as u8 {
                0xA5 => 0x5A,
                b => b,
            }
        })
        .collect();
    let first = (size - wr).min(n) as usize;
    mem.write(buf + wr, &junk[..first]).expect("write");
    mem.write(buf, &junk[first..]).expect("write");
    write_u32(&mut mem, up1 + 12, ((wr + n) % size) as u32).expect("move the write offset");
    mem.release().expect("resume");
    n as u32
}

/// One `threads top --once --json` sample.
fn once_json(dir: &Path) -> serde_json::Value {
    let out = mpfr(
        dir,
        &[
            "--json",
            "threads",
            "top",
            "--once",
            "--board",
            "qemu-mps2-an385",
            "--interval",
            "100",
        ],
    );
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    so.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .find(|v| v["type"] == "sample")
        .unwrap_or_else(|| panic!("no sample in\n{so}"))
}

#[test]
fn garbage_in_the_telemetry_ring_counts_as_bad_and_the_identity_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (board, elf, _qmp) = reference_board(dir.path());
    let before = once_json(dir.path());
    assert_eq!(before["firmware"], "mpfr-ref", "{before}");
    assert_eq!(before["losses"]["bad_bytes"], 0, "{before}");
    let n = garbage_into_the_telemetry_ring(&board, &elf, 3000);
    assert!(n >= 1000, "only {n} bytes of room in the ring");
    // The run that reads the garbage counts every byte of it, and still knows who is talking.
    let hit = once_json(dir.path());
    let bad = hit["losses"]["bad_bytes"].as_u64().expect("bad_bytes");
    assert!(
        bad >= u64::from(n),
        "{n} bytes of garbage, {bad} counted: {hit}"
    );
    // Every later run: the identity (from the hello frame mpfr asks for) and no stale losses.
    for _ in 0..2 {
        let s = once_json(dir.path());
        for key in ["firmware", "fingerprint", "gil"] {
            assert_eq!(s[key], before[key], "{key}: {s}");
            assert_eq!(hit[key], before[key], "{key}: {hit}");
        }
        assert_eq!(s["losses"]["bad_bytes"], 0, "{s}");
    }
    // Garbage in the command channel (no newline, longer than any command): the agent takes
    // the `hello` mpfr asks for as the tail of a junk line and ignores it, so that run gets
    // the identity only from the hello the agent repeats on its own.
    {
        use mpfr::device::memory::gdb::GdbClient;
        use mpfr::device::memory::{Memory, read_u32, write_u32};
        let sock = board.record["gdb_socket"]
            .as_str()
            .map(PathBuf::from)
            .expect("gdb socket");
        let mut mem = GdbClient::connect(&sock, vec![crate::support::RAM]).expect("gdb");
        let down0 = crate::support::symbol(&elf, "_SEGGER_RTT") + 16 + 8 + 24 * 2;
        mem.hold().expect("halt");
        let field = |m: &mut GdbClient, off: u64| read_u32(m, down0 + off).expect("read") as u64;
        let (buf, size, wr) = (field(&mut mem, 4), field(&mut mem, 8), field(&mut mem, 12));
        let junk = b"zzzzzzzzzzzzzzzz";
        for (i, b) in junk.iter().enumerate() {
            mem.write(buf + (wr + i as u64) % size, &[*b])
                .expect("write");
        }
        write_u32(
            &mut mem,
            down0 + 12,
            ((wr + junk.len() as u64) % size) as u32,
        )
        .expect("move the write offset");
        mem.release().expect("resume");
    }
    {
        let s = once_json(dir.path());
        for key in ["firmware", "fingerprint", "gil"] {
            assert_eq!(
                s[key], before[key],
                "{key} after junk in the command channel: {s}"
            );
        }
    }
}
