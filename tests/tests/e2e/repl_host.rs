//! `mpfr exec`, `run` and `repl` end to end against the host board: the real MicroPython unix
//! port on a pty, started by mpfr itself.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mpfr_tests::{Tmux, micropython, mpfr_bin, wait_for};

/// Kills and reaps a child on every path out of a test.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mpfr(state: &Path) -> Command {
    let mut c = Command::new(mpfr_bin());
    c.env("MPFR_MICROPYTHON", micropython())
        .env("MPFR_STATE_DIR", state)
        .env_remove("MPFR_BOARD")
        .env_remove("MPFR_PORT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// Runs to completion, but never longer than `limit` (then the test fails).
fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpfr");
    let mut guard = Reap(child);
    let mut out = guard.0.stdout.take().expect("stdout");
    let mut err = guard.0.stderr.take().expect("stderr");
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_for("mpfr to finish", limit, || {
        guard.0.try_wait().expect("wait")
    });
    Output {
        status,
        stdout: t1.join().expect("stdout thread"),
        stderr: t2.join().expect("stderr thread"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn exec_prints_the_result() {
    let state = tempfile::tempdir().expect("tmp");
    let mut c = mpfr(state.path());
    c.args(["exec", "--board", "host", "print(6*7)"]);
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "42\n");
}

#[test]
fn exception_exits_1_with_the_device_traceback() {
    let state = tempfile::tempdir().expect("tmp");
    let mut c = mpfr(state.path());
    c.args([
        "exec",
        "-b",
        "host",
        "print('before')\nraise ValueError('bad value')",
    ]);
    let o = run_with_deadline(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "before\n");
    let err = text(&o.stderr);
    assert!(err.contains("Traceback (most recent call last):"), "{err}");
    assert!(err.contains("ValueError: bad value"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// Issue 16: the unix port ends its process on `SystemExit` right after `\x04\x04`; the
/// command is finished, not a lost device or a timeout.
#[test]
fn system_exit_ends_exec_cleanly() {
    let state = tempfile::tempdir().expect("tmp");
    let mut c = mpfr(state.path());
    c.args([
        "exec",
        "--board",
        "host",
        "--timeout",
        "30s",
        "print('SKIP'); raise SystemExit",
    ]);
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "SKIP\n");
}

#[test]
fn run_of_a_30k_script_uses_raw_paste() {
    let state = tempfile::tempdir().expect("tmp");
    let script = state.path().join("big.py");
    let mut body = String::new();
    let mut n = 0u64;
    let mut sum = 0u64;
    while body.len() < 30 * 1024 {
        body.push_str(&format!(
            "v{n} = {n}  # padding to make the script large enough\n"
        ));
        sum += n;
        n += 1;
    }
    body.push_str(&format!(
        "print(sum([{}]))\n",
        (0..n)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    ));
    std::fs::write(&script, &body).expect("write script");
    let mut c = mpfr(state.path());
    c.args(["--json", "run", "-b", "host"]).arg(&script);
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let result: serde_json::Value = text(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "result")
        .expect("a result record");
    assert_eq!(result["mode"], "raw-paste", "{result}");
    assert_eq!(result["ok"], true);
    assert_eq!(result["stdout"], format!("{sum}\n"));
}

/// `mpfr run` leaves comments out on the way, but the device still reports the file's own line
/// numbers, and strings that look like comments arrive intact.
#[test]
fn run_keeps_line_numbers_and_strings_when_it_drops_comments() {
    let state = tempfile::tempdir().expect("tmp");
    let script = state.path().join("lines.py");
    let body = "# a header comment\n\nx = '# kept'  # dropped\n\"\"\"doc\n# kept too\n\"\"\"\nprint(x)\n\n\nraise ValueError('line 10')  # here\n";
    std::fs::write(&script, body).expect("write script");
    for extra in [None, Some("--verbatim")] {
        let mut c = mpfr(state.path());
        c.args(["run", "-b", "host"]).args(extra).arg(&script);
        let o = run_with_deadline(c, LIMIT);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "# kept\n", "{extra:?}");
        let err = text(&o.stderr);
        assert!(err.contains("line 10"), "{extra:?}: {err}");
        assert!(err.contains("ValueError: line 10"), "{extra:?}: {err}");
    }
}

/// A script that prints forever and leaves a mark when it is interrupted.
fn forever_script(mark: &Path) -> String {
    format!(
        "try:\n    while True:\n        print('tick')\nexcept KeyboardInterrupt:\n    with open({:?}, 'w') as f:\n        f.write('interrupted')\n    raise\n",
        mark.display().to_string()
    )
}

#[test]
fn deadline_stops_a_script_that_prints_forever() {
    let state = tempfile::tempdir().expect("tmp");
    let mark = state.path().join("mark");
    let mut c = mpfr(state.path());
    c.args([
        "exec",
        "-b",
        "host",
        "--timeout",
        "2s",
        &forever_script(&mark),
    ]);
    let o = run_with_deadline(c, LIMIT);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("tick\n"));
    assert!(
        text(&o.stderr).contains("mpfr::repl::timeout"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("interrupted")
    );
}

#[test]
fn ctrl_c_interrupts_the_device_and_exits_130() {
    let state = tempfile::tempdir().expect("tmp");
    let mark = state.path().join("mark");
    let mut c = mpfr(state.path());
    c.args(["exec", "-b", "host", &forever_script(&mark)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Reap(c.spawn().expect("start mpfr"));
    let stdout = guard.0.stdout.take().expect("stdout");
    // Wait (condition, not time) until the script is running.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { break };
            if l == "tick" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(LIMIT).expect("the script never printed");
    let pid = guard.0.id().to_string();
    let st = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = wait_for("mpfr to exit on SIGINT", LIMIT, || {
        guard.0.try_wait().expect("wait")
    });
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("interrupted")
    );
}

#[test]
fn killed_device_is_a_clear_error() {
    let state = tempfile::tempdir().expect("tmp");
    let mut c = mpfr(state.path());
    // In the child shell $PPID is the MicroPython process itself.
    c.args([
        "exec",
        "-b",
        "host",
        "import os\nprint('dying')\nos.system('kill -9 $PPID')\nprint('survived')",
    ]);
    let o = run_with_deadline(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("mpfr::repl::disconnected"), "{err}");
    assert!(err.contains("disconnected while the code ran"), "{err}");
    assert!(!text(&o.stdout).contains("survived"));
}

/// Waits until the screen shows `n` `>>>` prompts after the last `marker`; returns the screen.
fn prompts_after(tmux: &Tmux, marker: &str, n: usize) -> String {
    tmux.wait_until(&format!("{n} prompt(s) after {marker:?}"), |s| {
        s.rsplit_once(marker)
            .is_some_and(|(_, rest)| rest.lines().filter(|l| l.starts_with(">>>")).count() >= n)
    })
}

#[test]
fn repl_in_a_terminal_shows_the_banner_and_evaluates() {
    let state = tempfile::tempdir().expect("tmp");
    let tmux = Tmux::new(state.path().join("tmux.sock"), "t");
    let done = state.path().join("done");
    let shell = format!(
        "MPFR_MICROPYTHON={mp:?} MPFR_STATE_DIR={st:?} {bin:?} repl --board host; echo exit=$? > {done:?}; sleep 60",
        mp = micropython().display().to_string(),
        st = state.path().display().to_string(),
        bin = mpfr_bin().display().to_string(),
        done = done.display().to_string(),
    );
    let st = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "40",
            &shell,
        ])
        .status()
        .expect("tmux");
    assert!(st.success(), "tmux did not start");
    // After running a line, the unix port puts its tty back in raw mode with TCSAFLUSH, which
    // drops keys that arrived since, and only then prints the next prompt: keys typed on seeing
    // the output (`42`) but before that prompt are lost under load. So each line is typed only
    // once the prompt after the previous output is on screen. A fresh process shows two
    // prompts: its own, and the one for the Enter mpfr sends when it connects.
    prompts_after(&tmux, "MicroPython", 2);
    tmux.type_line("print(6*7)");
    let screen = prompts_after(&tmux, "\n42\n", 1);
    assert!(screen.contains("print(6*7)"), "{screen}");
    // The device dies: mpfr says so, starts it again, and the new one answers (the first
    // banner is still on screen: count the prompts after the restart message).
    tmux.type_line("import os; os.system('kill -9 $PPID')");
    prompts_after(&tmux, "starting it again", 2);
    tmux.type_line("print(40+3)");
    prompts_after(&tmux, "\n43\n", 1);
    // Ctrl-] leaves.
    tmux.cmd()
        .args(["send-keys", "-t", "t", "C-]"])
        .status()
        .expect("keys");
    wait_for("Ctrl-] to end mpfr repl", LIMIT, || {
        if done.exists() {
            Ok(())
        } else {
            Err(tmux.screen())
        }
    });
    assert_eq!(
        std::fs::read_to_string(&done).expect("done").trim(),
        "exit=0"
    );
}

#[test]
fn exec_over_a_pty_port_keeps_the_device_usable() {
    let state = tempfile::tempdir().expect("tmp");
    let dev = state.path().join("dev");
    let socat = Command::new("socat")
        .arg(format!("PTY,link={},rawer", dev.display()))
        .arg(format!("EXEC:{},pty,rawer,setsid", micropython().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (installed by scripts/setup.sh)");
    let _socat = Reap(socat);
    wait_for("socat to create the pty link", LIMIT, || dev.exists());
    for (code, want) in [("print(6*7)", "42\n"), ("print('again')", "again\n")] {
        let mut c = mpfr(state.path());
        c.args(["exec", "-b", "host", "--port"]).arg(&dev).arg(code);
        let o = run_with_deadline(c, LIMIT);
        assert!(o.status.success(), "stderr: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), want);
    }
    // Exclusive: a port held by one mpfr is refused to a second opener, naming the holder.
    let mut holder = mpfr(state.path());
    holder
        .args(["exec", "-b", "host", "--port"])
        .arg(&dev)
        .arg("import time\nprint('holding')\ntime.sleep(30)")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut holder = Reap(holder.spawn().expect("holder"));
    let mut line = String::new();
    BufReader::new(holder.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "holding\n");
    let mut c = mpfr(state.path());
    c.args(["exec", "-b", "host", "--port"])
        .arg(&dev)
        .arg("pass");
    let o = run_with_deadline(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("mpfr::link::busy"), "{err}");
    assert!(err.contains(&format!("pid {}", holder.0.id())), "{err}");
}

/// The unix port behind a socat pty (`--port`, not started by mpfr), running `script` under
/// `mpfr run` until it prints `tick`, then SIGINT to mpfr. Returns mpfr's exit code and stderr,
/// with the socat bridge (still running) and the pty's path.
fn ctrl_c_of_run_over_a_pty(
    state: &Path,
    script: &str,
) -> (Option<i32>, String, Reap, std::path::PathBuf) {
    let dev = state.join("dev");
    // Raw on both sides: the unix port's terminal has no ISIG, so a Ctrl-C byte is no signal.
    let socat = Command::new("socat")
        .arg(format!("PTY,link={},rawer", dev.display()))
        .arg(format!("EXEC:{},pty,rawer,setsid", micropython().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (installed by scripts/setup.sh)");
    let socat = Reap(socat);
    wait_for("socat to create the pty link", LIMIT, || dev.exists());
    let path = state.join("forever.py");
    std::fs::write(&path, script).expect("script");
    let mut c = mpfr(state);
    c.args(["run", "-b", "host", "--port"])
        .arg(&dev)
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Reap(c.spawn().expect("start mpfr"));
    let stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(l) = line else { break };
            if l == "tick" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(LIMIT).expect("the script never printed");
    let st = Command::new("kill")
        .args(["-INT", &guard.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = wait_for("mpfr to exit on SIGINT", LIMIT, || {
        guard.0.try_wait().expect("wait")
    });
    let mut err = String::new();
    guard
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (status.code(), err, socat, dev)
}

#[test]
fn ctrl_c_of_run_over_a_pty_port_stops_the_device_loop() {
    let state = tempfile::tempdir().expect("tmp");
    let mark = state.path().join("mark");
    let (code, err, socat, dev) = ctrl_c_of_run_over_a_pty(state.path(), &forever_script(&mark));
    assert_eq!(code, Some(130), "{err}");
    // The unix port ignores the Ctrl-C byte (it reads no input while code runs); mpfr finds it
    // behind the pty and interrupts it with SIGINT: the loop ends with KeyboardInterrupt.
    assert!(!err.contains("did not stop"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("interrupted"),
        "{err}"
    );
    // And the device answers again, over the same pty.
    let mut c = mpfr(state.path());
    c.args(["exec", "-b", "host", "--port"])
        .arg(&dev)
        .arg("print(6 * 7)");
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "42");
    drop(socat);
}

#[test]
fn ctrl_c_of_run_over_a_pty_port_says_so_when_the_loop_goes_on() {
    let state = tempfile::tempdir().expect("tmp");
    // A loop that swallows KeyboardInterrupt: neither Ctrl-C nor SIGINT ends it.
    let script = "while True:\n    try:\n        print('tick')\n    except KeyboardInterrupt:\n        pass\n";
    let (code, err, socat, _dev) = ctrl_c_of_run_over_a_pty(state.path(), script);
    assert_eq!(code, Some(130), "{err}");
    assert!(!err.contains("left at its REPL"), "{err}");
    assert!(err.contains("did not stop"), "{err}");
    assert!(err.contains("reset"), "{err}");
    // The loop still runs: end it with its bridge (only the children of our socat).
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &socat.0.id().to_string()])
        .status();
}
