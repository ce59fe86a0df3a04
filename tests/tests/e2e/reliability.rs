//! Faults driven on purpose (issue "Reliability"): races between commands on one virtual board,
//! records that are corrupt or name an unrelated process, and processes that must not outlive
//! mpfr. Each test is one row of the fault matrix in docs/reliability.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mpfr_tests::{Env, QEMU_BOARD, wait_for};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Live QEMU processes whose command line mentions `dir` (this test's state directory: its
/// sockets live there, so no other test's or engineer's QEMU matches).
fn qemus_under(dir: &Path) -> Vec<u64> {
    let want = dir.display().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        let cmd = text(&cmd);
        if !zombie && cmd.contains("qemu-system") && cmd.contains(&want) {
            found.push(pid);
        }
    }
    found
}

/// Kills what `qemus_under` finds (the test's own QEMUs only), so a failing test leaves none.
struct Reap<'a>(&'a Path);

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        for pid in qemus_under(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn two_flashes_at_once_leave_one_qemu_and_stop_leaves_none() {
    let env = Env::new("mpfr-rel-");
    let _reap = Reap(env.state());
    let elf = mpfr_tests::uart_banner_elf(env.state());
    let elf = elf.to_str().unwrap();
    let spawn = || {
        env.command(&["flash", "--board", QEMU_BOARD, elf])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpfr flash")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "first flash: {}", text(&a.stderr));
    assert!(b.status.success(), "second flash: {}", text(&b.stderr));

    let running = qemus_under(env.state());
    let rec = env.record().expect("a record");
    assert_eq!(
        running,
        [rec["pid"].as_u64().unwrap()],
        "exactly the recorded QEMU runs"
    );
    // The later of the two replaced the earlier one and said so.
    let both = text(&a.stderr) + &text(&b.stderr);
    assert!(both.contains("replacing the running instance"), "{both}");

    let out = env.mpfr(&["stop", "--board", QEMU_BOARD]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("no QEMU of this test", Duration::from_secs(30), || {
        let left = qemus_under(env.state());
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert!(env.record().is_none());
}

#[test]
fn a_corrupt_record_is_cleared_by_stop_which_stops_its_qemu() {
    let env = Env::new("mpfr-rel-");
    let _reap = Reap(env.state());
    let elf = mpfr_tests::uart_banner_elf(env.state());
    let out = env.mpfr(&["-q", "flash", "--board", QEMU_BOARD, elf.to_str().unwrap()]);
    assert!(out.status.success(), "flash: {}", text(&out.stderr));
    // -q: nothing but errors (the socket lines included).
    assert_eq!(text(&out.stdout), "", "flash -q printed");
    assert_eq!(text(&out.stderr), "", "flash -q printed");
    let pid = env.record().unwrap()["pid"].as_u64().unwrap();
    let record = env
        .state()
        .join("vboard")
        .join(format!("{QEMU_BOARD}.json"));
    std::fs::write(&record, b"{\"board\": \"qemu-mps2-an385\", \"pid\": ").unwrap();

    // Commands that read the record point at `mpfr stop`...
    let out = env.mpfr(&["exec", "--board", QEMU_BOARD, "1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("mpfr stop"),
        "{}",
        text(&out.stderr)
    );

    // ...which clears it, stopping the QEMU it finds by the board's control socket.
    let out = env.mpfr(&["stop", "--board", QEMU_BOARD]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("unreadable"), "{err}");
    assert!(err.contains(&format!("QEMU pid {pid}")), "{err}");
    assert!(!record.exists(), "record left behind");
    wait_for("the QEMU to exit", Duration::from_secs(30), || {
        qemus_under(env.state()).is_empty()
    });

    // Nothing left to stop.
    let out = env.mpfr(&["stop", "--board", QEMU_BOARD]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not running"));
}

#[test]
fn a_stale_record_naming_an_unrelated_pid_is_not_replaced_or_killed() {
    let env = Env::new("mpfr-rel-");
    let _reap = Reap(env.state());
    // An unrelated process that happens to have the pid a stale record names.
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    let dir = env.state().join("vboard");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = serde_json::json!({
        "board": QEMU_BOARD,
        "pid": bystander.id(),
        "uart_pty": "/dev/pts/999",
        "gdb_socket": dir.join("old.gdb"),
        "qmp_socket": dir.join("old.qmp"),
        "image": "/old.elf",
        "console": "reference",
        "log": dir.join("old.log"),
        "started_unix": 1,
    });
    std::fs::write(dir.join(format!("{QEMU_BOARD}.json")), stale.to_string()).unwrap();

    let elf = mpfr_tests::uart_banner_elf(env.state());
    let out = env.mpfr(&["flash", "--board", QEMU_BOARD, elf.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("replacing the running instance"), "{err}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the unrelated process was killed"
    );
    let out = env.mpfr(&["stop", "--board", QEMU_BOARD]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bystander.try_wait().unwrap().is_none());
    let _ = bystander.kill();
    let _ = bystander.wait();
}

/// A program holding a port open: opens `path`, says `ready`, and waits to be killed.
fn hold_port(path: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut c = Command::new("python3")
        .args([
            "-c",
            "import os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_NOCTTY); print('ready', flush=True); time.sleep(600)",
            path,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(c.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the holder's first line");
    assert_eq!(line.trim(), "ready");
    c
}

#[test]
fn a_port_held_by_another_program_is_busy_naming_it_in_exec_run_repl_and_stress() {
    let env = Env::new("mpfr-rel-");
    let _reap = Reap(env.state());
    let elf = mpfr_tests::uart_banner_elf(env.state());
    let out = env.mpfr(&["flash", "--board", QEMU_BOARD, elf.to_str().unwrap()]);
    assert!(out.status.success(), "flash: {}", text(&out.stderr));
    let pty = env.record().unwrap()["uart_pty"]
        .as_str()
        .unwrap()
        .to_string();
    let mut holder = hold_port(&pty);
    let script = env.state().join("t.py");
    std::fs::write(&script, "print(1)\n").unwrap();
    let tests = env.state().join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(tests.join("t.py"), "print(1)\n").unwrap();
    let (script, tests) = (script.to_str().unwrap(), tests.to_str().unwrap());
    for args in [
        vec!["exec", "1"],
        vec!["run", script],
        vec!["repl"],
        vec!["stress", "--tests", tests],
    ] {
        let mut full = args.clone();
        // --port: the record says the reference firmware runs (no REPL), which exec, run and
        // repl would refuse before opening the UART.
        full.extend(["--board", QEMU_BOARD, "--port", &pty]);
        let out = env.mpfr(&full);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("{pty} is busy")), "{args:?}: {err}");
        assert!(
            err.contains(&format!("pid {}", holder.id())),
            "{args:?}: {err}"
        );
        assert!(!err.contains("is gone"), "{args:?}: {err}");
        assert!(!err.contains("connected"), "{args:?}: {err}");
    }
    let _ = holder.kill();
    let _ = holder.wait();
    // Released, the port is no longer busy (QEMU itself holding its pty does not count).
    let out = env.mpfr(&[
        "exec",
        "1",
        "--board",
        QEMU_BOARD,
        "--port",
        &pty,
        "--timeout",
        "5s",
    ]);
    assert!(!text(&out.stderr).contains("busy"), "{}", text(&out.stderr));
}

/// Every live descendant of `pid` (children, their children, ...), found through /proc.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        if let Some(pp) = f.get(1).and_then(|s| s.parse::<u32>().ok()) {
            let cmd = text(&std::fs::read(e.path().join("cmdline")).unwrap_or_default());
            parent_of.push((p, pp, cmd.replace('\0', " ")));
        }
    }
    let mut out: Vec<(u32, String)> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(q) = frontier.pop() {
        for (p, pp, cmd) in &parent_of {
            if *pp == q && !out.iter().any(|(o, _)| o == p) {
                out.push((*p, cmd.clone()));
                frontier.push(*p);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn sigkill_of_stress_leaves_no_micropython_or_cpython_behind() {
    let env = Env::new("mpfr-rel-");
    let tests = env.state().join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    // Slow under both interpreters, so both are running when mpfr is killed.
    std::fs::write(
        tests.join("slow.py"),
        "import time\nfor i in range(600):\n    time.sleep(0.1)\nprint(i)\n",
    )
    .unwrap();
    let mut mpfr = env
        .command(&[
            "stress",
            "--board",
            "host",
            "--tests",
            tests.to_str().unwrap(),
        ])
        .env("MPFR_MICROPYTHON", mpfr_tests::micropython())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = mpfr.id();
    let children = wait_for(
        "mpfr stress to start MicroPython",
        Duration::from_secs(60),
        || {
            let d = descendants(pid);
            let has_mp = d.iter().any(|(_, c)| c.contains("micropython"));
            if has_mp { Ok(d) } else { Err(format!("{d:?}")) }
        },
    );
    let _ = mpfr.kill(); // SIGKILL: no handler of mpfr's runs
    let _ = mpfr.wait();
    wait_for(
        "every process mpfr stress started to exit",
        Duration::from_secs(30),
        || {
            let left: Vec<_> = children.iter().filter(|(p, _)| alive(*p)).collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
}

#[test]
fn sigkill_of_build_leaves_no_make_behind() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("mpfr-rel-");
    let tree = env.state().join("tree");
    std::fs::create_dir_all(tree.join("py")).unwrap();
    std::fs::create_dir_all(tree.join("ports/qemu")).unwrap();
    // A make that says who it is and then takes its time, as a real port build does.
    let pidfile = env.state().join("make.pid");
    let make = env.state().join("make");
    std::fs::write(
        &make,
        format!(
            "#!/bin/sh\necho $$ > {}.tmp && mv {0}.tmp {0}\nexec sleep 300\n",
            pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&make, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut mpfr = env
        .command(&[
            "build",
            "--board",
            QEMU_BOARD,
            "--micropython",
            tree.to_str().unwrap(),
        ])
        .env("MPFR_MAKE", &make)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid: u32 = wait_for("make to start", Duration::from_secs(60), || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    // Should the test fail, the make it started must not outlive it either.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if alive(self.0) {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.0.to_string()])
                    .status();
            }
        }
    }
    let _guard = KillOnDrop(pid);
    let _ = mpfr.kill(); // SIGKILL
    let _ = mpfr.wait();
    let gone = wait_for("make to die with mpfr", Duration::from_secs(30), || {
        if alive(pid) {
            Err(format!("pid {pid} still runs"))
        } else {
            Ok(true)
        }
    });
    assert!(gone);
}
