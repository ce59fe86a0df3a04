//! End to end: crash capture on both QEMU boards. The reference firmware (built and booted by
//! mpfr) faults on purpose on a chosen core (`fault <core> read`); `mpfr crash capture` halts
//! the board into a bundle and lets it run; `mpfr crash show --json` must name the faulting
//! core, the cause (a precise bus fault at 0xf0000000), the faulting function, and give every
//! FreeRTOS task a backtrace that reaches its entry function. A stack overflow and a CRASH in
//! `mpfr stress` are captured too. On mpfr's MicroPython port a Python thread faults: the report
//! gives its Python traceback (function, file and line of the script).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::{collect, text};
use mpfr_tests::{Env, wait_for};

/// Generous: two cores shared by several test runs and QEMUs.
const DEADLINE: Duration = Duration::from_secs(120);

/// The function each task of the reference firmware starts in (by task name prefix).
const ENTRIES: &[(&str, &[&str])] = &[
    ("IDLE", &["prvIdleTask", "prvPassiveIdleTask"]),
    ("console", &["console"]),
    ("load", &["load_task"]),
    ("svc", &["service_main"]),
    ("wrk-", &["thread_entry"]),
    ("pin-", &["thread_entry"]),
    ("fault", &["fault_task"]),
];

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(frames: &serde_json::Value) -> Vec<String> {
    frames
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["function"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `mpfr crash capture --board BOARD --out <state>/NAME`; the bundle's path and its text.
fn capture(env: &Env, board: &str, name: &str) -> (std::path::PathBuf, String) {
    let bundle = env.state().join(name);
    let arg = bundle.display().to_string();
    ok(
        &env.mpfr(&["crash", "capture", "--board", board, "--out", &arg]),
        "mpfr crash capture",
    );
    (bundle, arg)
}

/// Builds and boots the reference firmware on `board`; its UART0 and what it printed so far,
/// once the console's prompt is there.
fn boot(board: &str) -> (Env, std::fs::File, Arc<Mutex<Vec<u8>>>) {
    let env = Env::new("mpfr-crash-");
    ok(&env.mpfr(&["build", "--board", board]), "mpfr build");
    ok(&env.mpfr(&["flash", "--board", board]), "mpfr flash");
    let record = env
        .record_of(board)
        .expect("mpfr flash writes the board's record");
    let pty = record["uart_pty"].as_str().expect("uart_pty").to_string();
    let uart = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty)
        .unwrap_or_else(|e| panic!("open UART0 pty {pty}: {e}"));
    let console = collect(uart.try_clone().expect("clone pty"));
    // The prompt says the console task runs and takes commands.
    wait_for("the reference console's prompt", DEADLINE, || {
        (&uart).write_all(b"\r").expect("write UART0");
        let t = text(&console);
        t.contains("ref> ").then_some(()).ok_or(t)
    });
    (env, uart, console)
}

/// Boots the reference firmware on `board`, faults `core`, captures and checks the report.
fn fault_capture_show(board: &str, core: u32) {
    if !crate::support::qemu_tools_present() {
        return;
    }
    let (env, uart, console) = boot(board);
    (&uart)
        .write_all(format!("fault {core} read\r").as_bytes())
        .expect("write UART0");
    // The other core's prompt may stand before it on the same line (two cores write the UART).
    wait_for("the FATAL line of the fault", DEADLINE, || {
        let t = text(&console);
        t.lines()
            .find(|l| l.contains("FATAL HardFault"))
            .map(str::to_string)
            .ok_or(t)
    });

    let (bundle, bundle_arg) = capture(&env, board, "fault.crash");
    assert!(bundle.exists(), "no bundle at {bundle_arg}");

    // The board runs on after the capture: the other core still answers on two cores.
    if board == "qemu-mps2-an521" {
        let before = text(&console).len();
        (&uart).write_all(b"help\r").expect("write UART0");
        wait_for("the console to answer after the capture", DEADLINE, || {
            let t = text(&console);
            t[before..].contains("commands:").then_some(()).ok_or(t)
        });
    }

    let out = ok(
        &env.mpfr(&["--json", "crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    let report: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("crash show --json is not one JSON object ({e}): {out}"));
    assert_eq!(report["type"], "crash_report", "{report:#}");
    assert_eq!(report["faulted_core"], core, "{report:#}");
    assert_eq!(report["elf_matches"], true, "{report:#}");
    let cores = report["cores"].as_array().expect("cores");
    let faulted = cores
        .iter()
        .find(|c| c["index"] == core)
        .expect("the faulted core");
    assert_eq!(faulted["mode"], "HardFault", "{faulted:#}");
    assert_eq!(faulted["parked"], true, "{faulted:#}");
    let bits: Vec<&str> = faulted["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["bit"].as_str())
        .collect();
    assert_eq!(bits, ["PRECISERR", "FORCED"], "{faulted:#}");
    assert_eq!(faulted["fault_regs"]["bfar"], 0xf000_0000u32, "{faulted:#}");
    assert_eq!(
        faulted["faulting"]["function"], "ref_fault_read",
        "{faulted:#}"
    );
    assert!(
        faulted["faulting"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("main.c")),
        "{faulted:#}"
    );
    assert_eq!(faulted["task"], "fault", "{faulted:#}");
    let chain = names(&faulted["frames"]);
    assert_eq!(
        chain.first().map(String::as_str),
        Some("ref_halted"),
        "{chain:?}"
    );
    assert!(
        chain
            .windows(2)
            .any(|w| w == ["ref_fault_read", "fault_task"]),
        "{chain:?}"
    );
    if board == "qemu-mps2-an521" {
        assert_eq!(cores.len(), 2, "{report:#}");
        let other = cores
            .iter()
            .find(|c| c["index"] != core)
            .expect("the other core");
        assert_eq!(other["faulted"], false, "{other:#}");
        assert!(!names(&other["frames"]).is_empty(), "{other:#}");
    }

    let tasks = report["tasks"].as_array().expect("tasks");
    assert!(tasks.len() >= 8, "{report:#}");
    for t in tasks {
        let name = t["name"].as_str().expect("name");
        let chain = names(&t["frames"]);
        let (_, want) = ENTRIES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("a task the test does not know: {t:#}"));
        assert!(
            chain.iter().any(|f| want.contains(&f.as_str())),
            "task {name}: backtrace {chain:?} does not reach {want:?}"
        );
    }
    let fault = tasks
        .iter()
        .find(|t| t["name"] == "fault")
        .expect("task fault");
    assert_eq!(fault["state"], "running", "{fault:#}");
    assert_eq!(fault["core"], core, "{fault:#}");

    // The human report says the same in words.
    let human = ok(
        &env.mpfr(&["crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    assert!(
        human.contains(&format!("core {core} faulted: HardFault"))
            && human.contains("precise bus fault reading or writing 0xf0000000")
            && human.contains("in ref_fault_read at main.c:"),
        "{human}"
    );
}

#[test]
fn fault_on_the_single_core_of_an385_is_captured_and_explained() {
    fault_capture_show("qemu-mps2-an385", 0);
}

#[test]
fn fault_on_core_1_of_an521_is_captured_and_explained() {
    fault_capture_show("qemu-mps2-an521", 1);
}

/// `mpfr crash watch` looks at a running board until a core faults, then captures it: exit code 1,
/// what it saw, and a bundle that `crash show` explains. The watch starts before the fault, so
/// its looks (holding the board each time) must leave the firmware working.
#[test]
fn crash_watch_sees_a_fault_and_captures_the_board() {
    if !crate::support::qemu_tools_present() {
        return;
    }
    let board = "qemu-mps2-an385";
    let (env, uart, console) = boot(board);
    let bundle = env.state().join("watched.crash");
    let bundle_arg = bundle.display().to_string();
    let child = env
        .command(&[
            "--json",
            "crash",
            "watch",
            "--board",
            board,
            "--out",
            &bundle_arg,
            "--every",
            "100ms",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mpfr crash watch");
    let mut watch = Watched(child);
    let out = collect(watch.0.stdout.take().expect("stdout"));
    let err = collect(watch.0.stderr.take().expect("stderr"));
    // The console still answers while the watch looks.
    let before = text(&console).len();
    (&uart).write_all(b"help\r").expect("write UART0");
    wait_for("the console to answer while watched", DEADLINE, || {
        let t = text(&console);
        t[before..].contains("commands:").then_some(()).ok_or(t)
    });
    if let Some(status) = watch.0.try_wait().expect("poll the watch") {
        panic!(
            "the watch ended ({status}) before the fault: {}",
            text(&err)
        );
    }
    (&uart).write_all(b"fault 0 read\r").expect("write UART0");
    let status = wait_for("crash watch to capture and end", DEADLINE, || {
        watch
            .0
            .try_wait()
            .expect("poll the watch")
            .ok_or_else(|| text(&out) + &text(&err))
    });
    // Its output pipes are drained by the collectors until they close.
    wait_for("the watch's output to end", DEADLINE, || {
        let t = text(&out);
        t.contains("crash_bundle").then_some(()).ok_or(t)
    });
    let lines: Vec<serde_json::Value> = text(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(status.code(), Some(1), "{lines:?} {}", text(&err));
    let detected = lines
        .iter()
        .find(|v| v["type"] == "crash_detected")
        .unwrap_or_else(|| panic!("no crash_detected line: {lines:?}"));
    let what = detected["what"].as_str().unwrap_or("");
    assert!(what.starts_with("core 0 is in HardFault"), "{what}");
    assert!(bundle.exists(), "no bundle at {bundle_arg}");
    let out = ok(
        &env.mpfr(&["--json", "crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    let report: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("crash show --json is not one JSON object ({e}): {out}"));
    assert_eq!(report["faulted_core"], 0, "{report:#}");
    assert!(
        report["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n
                .as_str()
                .is_some_and(|n| n.starts_with("mpfr crash watch: core 0")))),
        "{report:#}"
    );
}

/// Kills the watch when a test ends early.
struct Watched(std::process::Child);

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mpfr stress` on a reference firmware built to fault on `churn`: the CRASH result carries a
/// bundle (JSON Lines and JUnit), taken before the board was restarted, that `mpfr crash show`
/// explains.
#[test]
fn a_crash_in_stress_carries_its_bundle() {
    if !crate::support::qemu_tools_present() {
        return;
    }
    let board = "qemu-mps2-an385";
    let env = Env::new("mpfr-crash-stress-");
    ok(
        &env.command(&["build", "--board", board])
            .env("MPFR_CFLAGS", "-DMPFR_REF_FAULT_ON=\"churn\"")
            .output()
            .expect("run mpfr"),
        "mpfr build",
    );
    ok(&env.mpfr(&["flash", "--board", board]), "mpfr flash");
    let jsonl = env.state().join("R.jsonl");
    let junit = env.state().join("J.xml");
    let out = env.mpfr(&[
        "stress",
        "--board",
        board,
        "--filter",
        "churn",
        "--jsonl",
        jsonl.to_str().expect("utf-8 path"),
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a CRASH fails the run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = mpfr_tests::report_results(&jsonl);
    let crash = results
        .iter()
        .find(|r| r["test"] == "churn")
        .expect("a churn result");
    assert_eq!(crash["verdict"], "CRASH", "{crash:#}");
    let bundle = crash["crash_bundle"]
        .as_str()
        .unwrap_or_else(|| panic!("no crash_bundle: {crash:#}"));
    let bundle_path = env.state().join(bundle);
    assert!(bundle_path.exists(), "{bundle} does not exist");
    // The board was restarted after the capture, and the run went on.
    let steps: Vec<&str> = crash["recovery"]
        .as_array()
        .expect("recovery")
        .iter()
        .filter_map(|s| s[0].as_str())
        .collect();
    assert!(!steps.is_empty(), "{crash:#}");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report");
    assert!(
        xml.contains(&format!(
            "<property name=\"crash_bundle\" value=\"{bundle}\"/>"
        )) && xml.contains(&format!("crash bundle: {bundle}")),
        "{xml}"
    );

    let shown = ok(
        &env.mpfr(&["--json", "crash", "show", bundle]),
        "mpfr crash show",
    );
    let report: serde_json::Value = serde_json::from_str(shown.trim()).expect("one JSON object");
    assert_eq!(report["faulted_core"], 0, "{report:#}");
    let core = &report["cores"][0];
    assert_eq!(core["faulting"]["function"], "ref_fault_read", "{core:#}");
    assert_eq!(core["task"], "fault", "{core:#}");
    assert!(
        report["console_tail"]
            .as_str()
            .is_some_and(|t| t.contains("fault task=fault core=0") && t.contains("FATAL")),
        "the test's output is the bundle's console tail: {report:#}"
    );
    assert!(
        names(&core["frames"]).iter().any(|f| f == "fault_task"),
        "{core:#}"
    );
}

/// A stack overflow is no fault: the report says which fatal hook the core stopped in, and the
/// overflowing task's backtrace (from the context PendSV saved) shows its recursion.
#[test]
fn a_stack_overflow_is_shown_as_the_hook_the_core_stopped_in() {
    if !crate::support::qemu_tools_present() {
        return;
    }
    let board = "qemu-mps2-an385";
    let (env, uart, console) = boot(board);
    (&uart).write_all(b"overflow\r").expect("write UART0");
    wait_for("the FATAL line of the overflow", DEADLINE, || {
        let t = text(&console);
        t.contains("FATAL stack overflow in ovf")
            .then_some(())
            .ok_or(t)
    });
    let (_, bundle_arg) = capture(&env, board, "ovf.crash");
    let out = ok(
        &env.mpfr(&["--json", "crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert!(report["faulted_core"].is_null(), "{report:#}");
    let core = &report["cores"][0];
    assert_eq!(
        core["stopped_in"]["function"], "vApplicationStackOverflowHook",
        "{core:#}"
    );
    assert_eq!(core["task"], "ovf", "{core:#}");
    let ovf = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["name"] == "ovf")
        .expect("task ovf");
    let chain = names(&ovf["frames"]);
    assert!(
        chain.iter().filter(|f| *f == "dive").count() >= 2,
        "the recursion: {chain:?}"
    );
    let human = ok(
        &env.mpfr(&["crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    assert!(
        human.contains("core 0 stopped in vApplicationStackOverflowHook at main.c:"),
        "{human}"
    );
}

/// mpfr's MicroPython port on `qemu-mps2-an521`, the GIL off: a Python thread that finds itself
/// on core 1 (the SSE-200's `CPU_IDENTITY` through `machine.mem32`) reads an address nothing
/// answers. The port parks the core instead of ending QEMU, so `mpfr crash capture` finds core 1
/// faulted with the cause decoded, every task of the port has a backtrace, and the faulting
/// thread's Python traceback is `spin` at the line of the read, in `fault.py`.
#[test]
fn a_python_thread_faulting_on_core_1_of_the_an521_port_is_captured() {
    if !crate::support::qemu_tools_present() {
        return;
    }
    const BOARD: &str = "qemu-mps2-an521";
    let env = Env::new("mpfr-crash-mpy-");
    super::micropython_an521::build(&env);
    ok(&env.mpfr(&["flash", "--board", BOARD]), "mpfr flash");
    // Two spinning threads keep both cores busy, so one of them runs on core 1; that one faults
    // (AN521_MODULE). The code is a module on the board's filesystem, so its frames name the file.
    let main = put_module(&env, BOARD, AN521_MODULE);
    let _run = super::micropython_qemu::run_until_printed(&env, BOARD, &main, "running", "main.py");

    // Capture until a bundle shows the fault (the thread may need a moment to reach core 1).
    let (report, bundle_arg) = capture_until_faulted(&env, BOARD);
    assert_eq!(report["faulted_core"], 1, "{report:#}");
    assert_eq!(report["elf_matches"], true, "{report:#}");
    let cores = report["cores"].as_array().expect("cores");
    assert_eq!(cores.len(), 2, "{report:#}");
    let faulted = cores.iter().find(|c| c["index"] == 1).expect("core 1");
    assert_eq!(faulted["parked_in"], "port_halted", "{faulted:#}");
    assert_eq!(faulted["fault_regs"]["bfar"], 0xf000_0000u32, "{faulted:#}");
    let bits: Vec<&str> = faulted["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["bit"].as_str())
        .collect();
    assert!(bits.contains(&"PRECISERR"), "{faulted:#}");
    assert_eq!(faulted["task"], "mp_thread", "{faulted:#}");
    let tasks = report["tasks"].as_array().expect("tasks");
    assert!(tasks.len() >= 4, "{report:#}");
    for t in tasks {
        let chain = names(&t["frames"]);
        assert!(!chain.is_empty(), "task without a backtrace: {t:#}");
    }
    let human = ok(
        &env.mpfr(&["crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    assert!(
        human.contains("core 1 faulted: HardFault")
            && human.contains("precise bus fault reading or writing 0xf0000000")
            && human.contains("(parked in port_halted)"),
        "{human}"
    );
    // The faulting thread's Python traceback: `spin` at the read of 0xf0000000.
    let fault_line = line_of(AN521_MODULE, "            machine.mem32[0xF0000000]");
    let thread = tasks
        .iter()
        .find(|t| t["core"] == 1)
        .expect("the task running on core 1");
    assert_eq!(
        python_frames(thread),
        [("spin".to_string(), "fault.py".to_string(), fault_line)],
        "{thread:#}"
    );
    let want = format!(
        "  in Python thread mp_thread:\n    Traceback (most recent call last):\n      \
         File \"fault.py\", line {fault_line}, in spin\n"
    );
    assert!(human.contains(&want), "{want}\nnot in:\n{human}");
}

/// The module the an521 port faults in: two threads spin until one of them runs on core 1 (the
/// SSE-200's `CPU_IDENTITY`), which reads an address nothing answers. The check and the read run
/// with the core's interrupts masked (two `asm_thumb` helpers), or a thread that saw core 1 could
/// be switched to core 0 before its read and park core 0 as well, the main thread with it; the
/// threads wait for `go`, so the main thread prints its marker before anything faults.
const AN521_MODULE: &str = "import _thread, machine, micropython, time\n\
@micropython.asm_thumb\ndef irq_off():\n    cpsid(i)\n\
@micropython.asm_thumb\ndef irq_on():\n    cpsie(i)\n\
go = 0\n\
def spin():\n    while not go:\n        pass\n    while True:\n        irq_off()\n        \
if machine.mem32[0x5001F000] == 1:\n            machine.mem32[0xF0000000]\n        \
irq_on()\n\
def start():\n    global go\n    for k in range(2):\n        _thread.start_new_thread(spin, ())\n    \
print('running')\n    go = 1\n    time.sleep(600)\n";

/// On the an385: a thread sleeps a moment, then calls a function that reads an address nothing
/// answers.
const AN385_MODULE: &str = "import _thread, machine, time\n\
def read_bad():\n    return machine.mem32[0xF0000000]\n\
def spin():\n    time.sleep_ms(200)\n    read_bad()\n\
def start():\n    _thread.start_new_thread(spin, ())\n    print('running')\n    time.sleep(600)\n";

/// Captures `board` into `fault.crash` until `crash show` finds a faulted core (a Python thread
/// may need a moment to fault): the JSON report and the bundle's path.
fn capture_until_faulted(env: &Env, board: &str) -> (serde_json::Value, String) {
    let bundle = env.state().join("fault.crash");
    let bundle_arg = bundle.display().to_string();
    let report = wait_for("a capture showing a faulted core", DEADLINE, || {
        let cap = env.mpfr(&["crash", "capture", "--board", board, "--out", &bundle_arg]);
        if !cap.status.success() {
            return Err(String::from_utf8_lossy(&cap.stderr).into_owned());
        }
        let out = ok(
            &env.mpfr(&["--json", "crash", "show", &bundle_arg]),
            "mpfr crash show",
        );
        let report: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("crash show --json is not one JSON object ({e}): {out}"));
        if report["faulted_core"].is_null() {
            Err(format!("no fault yet: {report:#}"))
        } else {
            Ok(report)
        }
    });
    (report, bundle_arg)
}

/// The 1-based line of `text` in `module`.
fn line_of(module: &str, text: &str) -> u64 {
    module
        .lines()
        .position(|l| l == text)
        .unwrap_or_else(|| panic!("{text:?} is not a line of the module")) as u64
        + 1
}

/// Copies `module` to the board as `fault.py` and writes the script that runs it (`import fault;
/// fault.start()`), returned for `mpfr run`.
fn put_module(env: &Env, board: &str, module: &str) -> std::path::PathBuf {
    let file = env.state().join("fault.py");
    std::fs::write(&file, module).expect("write the module");
    ok(
        &env.mpfr(&[
            "fs",
            "cp",
            file.to_str().expect("a UTF-8 path"),
            ":fault.py",
            "--board",
            board,
        ]),
        "mpfr fs cp fault.py",
    );
    let main = env.state().join("main.py");
    std::fs::write(&main, "import fault\nfault.start()\n").expect("write the script");
    main
}

/// A task's Python frames from `crash show --json`, innermost first: (function, file, line).
fn python_frames(task: &serde_json::Value) -> Vec<(String, String, u64)> {
    task["python"]
        .as_array()
        .unwrap_or_else(|| panic!("no python array: {task:#}"))
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("").to_string(),
                f["file"].as_str().unwrap_or("").to_string(),
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// mpfr's MicroPython port on `qemu-mps2-an385` (one core): a Python thread calls a function
/// that reads an address nothing answers. The capture names the faulting thread, gives its
/// Python traceback (the functions, the module's file and the lines of the read and of the
/// call), and the main thread's too (the script, then the module's `start`).
#[test]
fn a_python_thread_faulting_on_the_an385_port_shows_its_python_traceback() {
    if !crate::support::qemu_tools_present() {
        return;
    }
    const BOARD: &str = "qemu-mps2-an385";
    let env = Env::new("mpfr-crash-py385-");
    super::micropython_qemu::build(&env, &super::micropython_qemu::build_root("gil-on"), &[]);
    ok(&env.mpfr(&["flash", "--board", BOARD]), "mpfr flash");
    let main = put_module(&env, BOARD, AN385_MODULE);
    let _run = super::micropython_qemu::run_until_printed(&env, BOARD, &main, "running", "main.py");

    let (report, bundle_arg) = capture_until_faulted(&env, BOARD);
    assert_eq!(report["faulted_core"], 0, "{report:#}");
    let tasks = report["tasks"].as_array().expect("tasks");
    let thread = tasks
        .iter()
        .find(|t| t["core"] == 0)
        .expect("the task running on the core");
    assert_eq!(thread["name"], "mp_thread", "{thread:#}");
    assert_eq!(thread["python_thread"], true, "{thread:#}");
    let read_line = line_of(AN385_MODULE, "    return machine.mem32[0xF0000000]");
    let call_line = line_of(AN385_MODULE, "    read_bad()");
    let f = |name: &str, file: &str, line| (name.to_string(), file.to_string(), line);
    assert_eq!(
        python_frames(thread),
        [
            f("read_bad", "fault.py", read_line),
            f("spin", "fault.py", call_line)
        ],
        "{thread:#}"
    );
    let main_task = tasks.iter().find(|t| t["name"] == "main").expect("main");
    let sleep_line = line_of(AN385_MODULE, "    time.sleep(600)");
    assert_eq!(
        python_frames(main_task),
        [
            f("start", "fault.py", sleep_line),
            f("<module>", "<stdin>", 2)
        ],
        "{main_task:#}"
    );
    // Tasks that run no Python have no frames.
    for t in tasks.iter().filter(|t| t["python_thread"] == false) {
        assert!(python_frames(t).is_empty(), "{t:#}");
    }
    let human = ok(
        &env.mpfr(&["crash", "show", &bundle_arg]),
        "mpfr crash show",
    );
    let want = format!(
        "  in Python thread mp_thread:\n    Traceback (most recent call last):\n      \
         File \"fault.py\", line {call_line}, in spin\n      \
         File \"fault.py\", line {read_line}, in read_bad\n"
    );
    assert!(human.contains(&want), "{want}\nnot in:\n{human}");
}
