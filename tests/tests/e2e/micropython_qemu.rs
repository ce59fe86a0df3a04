//! mpfr's MicroPython port on the QEMU board, end to end through the `mpfr` binary:
//! `mpfr build --firmware micropython` against the MicroPython 1.25 source cache, `mpfr flash`
//! (the record says MicroPython), `mpfr exec`, `mpfr stress --suite quick`, MicroPython's own
//! `tests/thread` through `mpfr stress --tests`, and `mpfr threads ls/top` while four Python
//! threads run (and `threads ls` polled while `mpfr run` enters the raw REPL); `mpfr fs` and
//! `mpfr sync` on the port's RAM filesystem; a GIL-free build; and the bad inputs of the build.
//!
//! Builds go to a folder under the target directory, one per config, so a second run of this
//! binary only relinks nothing: the port's make finds everything up to date.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mpfr_tests::fs::{files, summary, write_project};
use mpfr_tests::{Env, QEMU_BOARD, Reap, report_results, root, wait_for};

/// Tests run in parallel, and two makes in one build folder would trip over each other: builds
/// into one folder take turns. Builds into different folders run at once (each make is partly
/// serial, so two keep both cores busy).
pub(super) fn build_turn(out: &Path) -> MutexGuard<'static, ()> {
    static FOLDERS: Mutex<BTreeMap<PathBuf, &'static Mutex<()>>> = Mutex::new(BTreeMap::new());
    let lock = *FOLDERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(out.to_path_buf())
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))));
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// The MicroPython 1.25 tree: `$MPFR_MICROPYTHON_TREE`, else the repository's source cache.
pub(super) fn tree() -> PathBuf {
    if let Some(t) = std::env::var_os("MPFR_MICROPYTHON_TREE") {
        return PathBuf::from(t);
    }
    let t = root().join(".cache/micropython/1.25.0");
    assert!(
        t.join("py/mkenv.mk").is_file(),
        "no MicroPython tree at {}: run scripts/micropython-source.sh (scripts/setup.sh does)",
        t.display()
    );
    t
}

/// The build cache of this test binary: kept between runs, below the target directory.
pub(super) fn build_root(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("mpfr-micropython").join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn check(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub(super) fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

/// `mpfr --json build --firmware micropython --out OUT EXTRA..` in `env`.
fn build_command(env: &Env, out: &Path, extra: &[&str]) -> std::process::Command {
    let out = out.to_str().expect("a UTF-8 path");
    let mut args = vec!["--json", "build", "--board", QEMU_BOARD];
    args.extend_from_slice(&["--firmware", "micropython", "--out", out]);
    args.extend_from_slice(extra);
    env.command(&args)
}

/// `mpfr stress --tests` over MicroPython's `tests/thread` (from the tree the port was built
/// from) on `board`, only the files named in `only` when it is not empty; returns the result
/// lines of the JSON Lines report and mpfr's output.
pub(super) fn tests_thread(
    env: &Env,
    board: &str,
    only: &[&str],
) -> (Vec<serde_json::Value>, Output) {
    let report = env.state().join("thread.jsonl");
    let dir = tree().join("tests/thread");
    let mut args = vec![
        "stress",
        "--board",
        board,
        "--suite",
        "none",
        "--tests",
        dir.to_str().expect("a UTF-8 path"),
        // Generous: QEMU on a loaded machine runs the heavier tests slowly.
        "--timeout",
        "300s",
        "--idle-timeout",
        "240s",
        "--jsonl",
        report.to_str().expect("a UTF-8 path"),
    ];
    for t in only {
        args.extend_from_slice(&["--filter", t]);
    }
    let out = env.mpfr(&args);
    (report_results(&report), out)
}

/// The results that are neither PASS nor SKIP, as `VERDICT test: detail`.
pub(super) fn not_passed(rs: &[serde_json::Value]) -> Vec<String> {
    rs.iter()
        .filter(|r| !["PASS", "SKIP"].contains(&r["verdict"].as_str().unwrap_or("")))
        .map(|r| format!("{} {}: {}", r["verdict"], r["test"], r["detail"]))
        .collect()
}

/// `mpfr build --firmware micropython` in `env`; returns the build line.
pub(super) fn build(env: &Env, out: &Path, extra: &[&str]) -> serde_json::Value {
    let turn = build_turn(out);
    let out = build_command(env, out, extra)
        .env("MPFR_MICROPYTHON_TREE", tree())
        .output()
        .expect("run mpfr");
    drop(turn);
    let so = check(&out, "mpfr build --firmware micropython");
    let line = json_lines(&so)
        .into_iter()
        .find(|v| v["type"] == "build")
        .expect("a build line");
    let elf = PathBuf::from(line["elf"].as_str().expect("elf"));
    assert!(elf.is_file(), "{line}");
    assert_eq!(
        Path::new(line["micropython"].as_str().expect("tree")),
        std::path::absolute(tree()).expect("an absolute tree path"),
        "{line}"
    );
    line
}

/// `sys.implementation._thread` of the running board, through `mpfr exec`.
fn thread_impl(env: &Env) -> String {
    let code = "import sys; print(sys.implementation._thread)";
    let out = env.mpfr(&["exec", "--board", QEMU_BOARD, code]);
    check(&out, "mpfr exec").trim().to_string()
}

/// What a killed or ended child printed on stdout and stderr.
fn said(child: &mut Child) -> String {
    let _ = child.kill();
    let mut said = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut said);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut said);
    }
    said
}

/// `mpfr threads ls` polled in a loop while `mpfr run` enters the raw REPL again and again, on
/// a board whose agent has not started (its RTT block still zeroed): every run must get
/// through. Attaching used to scan all RAM through the gdbstub with the guest stopped for
/// seconds, and the raw REPL entry running meanwhile gave up.
fn runs_survive_threads_ls_polling(env: &Env) {
    let script = env.state().join("short.py");
    std::fs::write(&script, "print('ran', 6 * 7)\n").expect("write the script");
    let stop = AtomicBool::new(false);
    let looks = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // Fails (no agent yet) after its --wait: it is the polling that matters.
                env.mpfr(&[
                    "--json", "threads", "ls", "--board", QEMU_BOARD, "--wait", "1",
                ]);
                looks.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(env.mpfr(&[
                "run",
                "--board",
                QEMU_BOARD,
                script.to_str().expect("a UTF-8 path"),
            ]));
        }
        stop.store(true, Ordering::Relaxed);
        for (i, out) in runs.iter().enumerate() {
            assert_eq!(
                check(out, &format!("mpfr run #{i} while threads ls polls")).trim(),
                "ran 42"
            );
        }
    });
    assert!(
        looks.load(Ordering::Relaxed) >= 2,
        "threads ls hardly ran beside the runs"
    );
}

#[test]
fn gil_on_port_builds_boots_and_passes_exec_stress_and_threads_views() {
    let env = Env::new("mpfr-mpy-");
    let line = build(&env, &build_root("gil-on"), &[]);

    // `mpfr flash` takes the last build; the record says MicroPython runs.
    check(&env.mpfr(&["flash", "--board", QEMU_BOARD]), "mpfr flash");
    let rec = env.record().expect("a virtual board record");
    assert_eq!(rec["firmware"], "micropython", "{rec}");
    assert_eq!(rec["console"], "micropython", "{rec}");
    assert_eq!(rec["image"], line["elf"], "{rec}");

    assert_eq!(thread_impl(&env), "GIL");

    runs_survive_threads_ls_polling(&env);

    // The built-in quick suite over the REPL.
    let report = env.state().join("quick.jsonl");
    let out = env.mpfr(&[
        "stress",
        "--board",
        QEMU_BOARD,
        "--suite",
        "quick",
        // Generous: the guest stalls while the machine is busy (another build, other QEMUs).
        "--timeout",
        "120s",
        "--idle-timeout",
        "60s",
        "--jsonl",
        report.to_str().unwrap(),
    ]);
    check(&out, "mpfr stress --suite quick");
    let rs = report_results(&report);
    assert!(rs.len() >= 10, "{rs:#?}");
    for r in &rs {
        assert_eq!(r["verdict"], "PASS", "{r:#}");
        assert_eq!(r["gil"], "GIL", "{r:#}");
    }

    // Four Python threads and a soft timer while `mpfr threads` looks from outside.
    let script = env.state().join("four.py");
    std::fs::write(
        &script,
        "import _thread, machine, mpfr, time\n\
         mpfr.start(10)\n\
         ticks = []\n\
         tm = machine.Timer(period=20, callback=lambda t: ticks.append(1))\n\
         def spin(n):\n    while True:\n        time.sleep_ms(5)\n\
         for k in range(4):\n    _thread.start_new_thread(spin, (k,))\n\
         print('running')\n\
         time.sleep(600)\n",
    )
    .unwrap();
    // Look once the script runs: the threads must be there to be counted.
    let mut run = run_until_printed(
        &env,
        QEMU_BOARD,
        &script,
        "running",
        "the four-thread script",
    );
    // Wait until the agent reports four Python threads (the script needs a moment to start).
    let (tasks, sample) = wait_for(
        "four Python threads in `mpfr threads ls`",
        Duration::from_secs(180),
        || {
            if let Some(ended) = run.0.try_wait().ok().flatten() {
                panic!(
                    "mpfr run ended ({ended}) while waiting:\n{}",
                    said(&mut run.0)
                );
            }
            let out = env.mpfr(&["--json", "threads", "ls", "--board", QEMU_BOARD]);
            let so = text(&out.stdout);
            let Some(s) = json_lines(&so).into_iter().find(|v| v["type"] == "sample") else {
                return Err(format!("no sample:\n{so}{}", text(&out.stderr)));
            };
            let tasks = s["tasks"].as_array().cloned().unwrap_or_default();
            let py = tasks
                .iter()
                .filter(|t| t["name"] == "mp_thread" && t["py_thread"].is_u64())
                .count();
            if py >= 4 {
                Ok((tasks, s))
            } else {
                Err(format!("{py} Python threads in {s}"))
            }
        },
    );
    let workers: Vec<_> = tasks.iter().filter(|t| t["name"] == "mp_thread").collect();
    assert_eq!(workers.len(), 4, "{sample}");
    assert!(workers.iter().all(|t| t["py_thread"].is_u64()), "{sample}");
    let slots = sample["service"]["slots"]
        .as_array()
        .expect("service slots");
    let timer_slot = slots
        .iter()
        .find(|s| s["slot"] == 0)
        .unwrap_or_else(|| panic!("no soft-timer slot 0 in {sample}"));
    assert!(timer_slot["dispatches"].as_u64() > Some(0), "{sample}");

    let out = env.mpfr(&["--json", "threads", "top", "--once", "--board", QEMU_BOARD]);
    let so = check(&out, "mpfr threads top --once --json");
    assert!(
        json_lines(&so).iter().any(|v| v["type"] == "sample"),
        "{so}"
    );
}

/// MicroPython's own `tests/thread` on the GIL build, on a board of its own: the longest part of
/// the port's checks, so it runs beside the others rather than after them.
#[test]
fn gil_on_port_passes_micropythons_tests_thread() {
    let env = Env::new("mpfr-mpy-thread-");
    build(&env, &build_root("gil-on"), &[]);
    check(&env.mpfr(&["flash", "--board", QEMU_BOARD]), "mpfr flash");

    // MicroPython's own thread tests, from the tree the port was built from.
    let (rs, out) = tests_thread(&env, QEMU_BOARD, &[]);
    let count = |v: &str| rs.iter().filter(|r| r["verdict"] == v).count();
    let bad = not_passed(&rs);
    assert!(
        bad.is_empty() && count("PASS") >= 30,
        "{} PASS; not passed: {bad:#?}\nstderr:\n{}",
        count("PASS"),
        text(&out.stderr)
    );
    for r in rs.iter().filter(|r| r["verdict"] == "SKIP") {
        assert!(
            r["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a SKIP without its reason: {r:#}"
        );
    }
    check(&out, "mpfr stress --tests tests/thread");
}

/// Issue 15's file workflow on the port's RAM filesystem: `fs cp -r`, `fs ls`, `fs cat`,
/// `sync` (a second run copies nothing; a changed file is the only one copied), `fs rm -r`.
#[test]
fn fs_and_sync_work_on_the_ports_ram_filesystem() {
    let env = Env::new("mpfr-mpy-fs-");
    build(&env, &build_root("gil-on"), &[]);
    check(&env.mpfr(&["flash", "--board", QEMU_BOARD]), "mpfr flash");
    let ok = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--board", QEMU_BOARD]);
        let out = env.mpfr(&all);
        check(&out, &format!("mpfr {args:?}"));
        out
    };
    let app = write_project(&env.state().join("local"));
    let app_s = app.to_str().unwrap();

    ok(&["fs", "cp", "-r", app_s, ":dir"]);
    let ls = text(&ok(&["fs", "ls", ":dir"]).stdout);
    assert!(ls.contains(" lib/\n"), "{ls}");
    assert!(ls.contains("       30 main.py\n"), "{ls}");
    assert!(ls.contains("    25000 big.txt\n"), "{ls}");
    let cat = ok(&["fs", "cat", ":dir/main.py"]).stdout;
    assert_eq!(cat, b"import lib.util\nprint('main')\n");
    let cat = ok(&["fs", "cat", ":dir/lib/blob.bin"]).stdout;
    assert_eq!(cat, std::fs::read(app.join("lib/blob.bin")).unwrap());

    // A second sync copies nothing.
    let o = ok(&["--json", "sync", app_s, ":dir"]);
    let sum = summary(&o);
    assert_eq!(sum["copied"], 0, "{sum}");
    assert_eq!(sum["unchanged"], 6, "{sum}");
    // One changed file (same size: only the hash tells) is the only one copied.
    std::fs::write(app.join("main.py"), "import lib.util\nprint('MAIN')\n").unwrap();
    let o = ok(&["sync", app_s, ":dir"]);
    assert_eq!(text(&o.stdout), "update  :dir/main.py\n");

    // The device's tree, read back, is the local one byte for byte.
    let back = env.state().join("back");
    ok(&["fs", "cp", "-r", ":dir", back.to_str().unwrap()]);
    assert_eq!(files(&back), files(&app));

    ok(&["fs", "rm", "-r", ":dir"]);
    let ls = text(&ok(&["fs", "ls", ":"]).stdout);
    assert!(!ls.contains("dir/"), "{ls}");
}

/// Ctrl-C of `mpfr run` on the port (its UART takes 0x03 as KeyboardInterrupt even inside a
/// loop that never calls out): the loop stops, mpfr exits 130 without claiming otherwise, and
/// the board's REPL answers the next command.
#[test]
fn ctrl_c_of_run_stops_a_busy_loop_and_the_repl_answers_again() {
    let env = Env::new("mpfr-mpy-int-");
    build(&env, &build_root("gil-on"), &[]);
    check(&env.mpfr(&["flash", "--board", QEMU_BOARD]), "mpfr flash");
    let script = env.state().join("busy.py");
    std::fs::write(&script, "print('looping')\nwhile True:\n    pass\n").expect("script");
    let run = env
        .command(&[
            "run",
            "--board",
            QEMU_BOARD,
            script.to_str().expect("UTF-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpfr run");
    let mut run = Reap(run);
    // Read stdout to its end (mpfr must never meet a closed pipe), noting the marker.
    let mut stdout = run.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut seen, mut buf, mut told) = (String::new(), [0u8; 256], false);
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if !told && seen.contains("looping") {
                told = tx.send(()).is_ok();
            }
        }
        seen
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(180)).is_ok(),
        "the busy loop never started"
    );
    let sent = std::process::Command::new("kill")
        .args(["-INT", &run.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "SIGINT to mpfr");
    let status = wait_for(
        "mpfr run to end on SIGINT",
        Duration::from_secs(120),
        || run.0.try_wait().expect("wait"),
    );
    let mut err = String::new();
    let _ = run
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    let out = reader.join().expect("reader");
    assert_eq!(status.code(), Some(130), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("did not stop"), "{err}");
    let again = env.mpfr(&["exec", "--board", QEMU_BOARD, "print(6 * 7)"]);
    assert_eq!(check(&again, "mpfr exec after the Ctrl-C").trim(), "42");
}

#[test]
fn gil_off_build_reports_unsafe_and_keeps_thread_data_under_the_collector() {
    let env = Env::new("mpfr-mpy-nogil-");
    build(&env, &build_root("gil-off"), &["--gil", "off"]);
    check(&env.mpfr(&["flash", "--board", QEMU_BOARD]), "mpfr flash");
    assert_eq!(thread_impl(&env), "unsafe");
    collector_keeps_thread_data(&env, QEMU_BOARD);
}

/// Four threads build, keep and check their own bytearrays while the main thread calls
/// `gc.collect()` in a loop; prints the finished count, what went wrong, and a checksum.
pub(super) const COLLECTOR_SCRIPT: &str = "import _thread, gc, time\n\
        lk = _thread.allocate_lock()\n\
        done = [0]\n\
        bad = []\n\
        sums = [0] * 4\n\
        def work(t):\n    \
            try:\n        \
                keep = []\n        \
                for r in range(60):\n            \
                    seed = (t * 7919 + r * 131) & 0xFF\n            \
                    data = [bytearray((seed + i) & 0xFF for _ in range(16)) for i in range(8)]\n            \
                    keep.append((seed, data))\n            \
                    if len(keep) > 4:\n                keep.pop(0)\n            \
                    for s, d in keep:\n                \
                        for i in range(8):\n                    \
                            if d[i][0] != (s + i) & 0xFF or d[i][15] != (s + i) & 0xFF:\n                        \
                                bad.append((t, r))\n                        return\n            \
                    sums[t] += sum(data[7])\n    \
            except Exception as e:\n        bad.append((t, repr(e)))\n    \
            finally:\n        with lk:\n            done[0] += 1\n\
        for t in range(4):\n    _thread.start_new_thread(work, (t,))\n\
        t0 = time.ticks_ms()\n\
        while done[0] < 4 and time.ticks_diff(time.ticks_ms(), t0) < 600000:\n    gc.collect()\n\
        print(done[0], bad, sum(sums))\n";

/// Runs [`COLLECTOR_SCRIPT`] on `board` with `mpfr run` and checks that no thread's data changed.
/// Before the backend held the GC lock across the whole allocator call, most GIL-free runs failed
/// here (changed bytes, odd `TypeError`s, a hard fault): a thread preempted between `gc_alloc()`
/// releasing the lock and forming the new block's address had its block collected
/// (docs/firmware.md, "The GIL-free collection").
pub(super) fn collector_keeps_thread_data(env: &Env, board: &str) {
    let script = env.state().join("collector.py");
    std::fs::write(&script, COLLECTOR_SCRIPT).expect("write the collector script");
    // Every collection waits for the other threads to stop; on a loaded machine a run on an521
    // took almost three minutes.
    let out = env.mpfr(&[
        "run",
        "--board",
        board,
        "--timeout",
        "15m",
        script.to_str().expect("a UTF-8 path"),
    ]);
    let got = check(&out, "mpfr run collector.py");
    let want: u32 = (0..4u32)
        .flat_map(|t| (0..60u32).map(move |r| 16 * ((((t * 7919 + r * 131) & 0xFF) + 7) & 0xFF)))
        .sum();
    assert_eq!(
        got.replace('\r', ""),
        format!("4 [] {want}\n"),
        "the collector script"
    );
}

/// Runs a build expected to fail; returns its stderr after checking exit code 1 and that no
/// build was recorded and no build folder was left.
fn failing_build(env: &Env, args: &[&str], cwd: &Path, vars: &[(&str, &Path)]) -> String {
    let out_dir = env.state().join("o");
    let mut cmd = build_command(env, &out_dir, args);
    cmd.current_dir(cwd)
        .env_remove("MPFR_MICROPYTHON_TREE")
        .env_remove("MPFR_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run mpfr");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    assert!(
        !env.state().join("builds").exists(),
        "{args:?} recorded a build"
    );
    let left = std::fs::read_dir(&out_dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("mpy-build"))
        })
        .unwrap_or(false);
    assert!(
        !left,
        "{args:?} left a build folder in {}",
        out_dir.display()
    );
    text(&out.stderr)
}

#[test]
fn bad_trees_and_a_missing_cache_are_clear_errors() {
    let env = Env::new("mpfr-mpy-bad-");
    let empty = env.state().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let with_tree = |dir: &Path| {
        let dir = dir.to_str().expect("a UTF-8 path");
        failing_build(&env, &["--micropython", dir], env.state(), &[])
    };
    // Not a tree.
    let err = with_tree(&empty);
    assert!(err.contains("is not a MicroPython tree"), "{err}");
    assert!(err.contains("micropython-source.sh"), "{err}");
    // Another version.
    let old = env.state().join("mpy-1.22");
    std::fs::create_dir_all(old.join("py")).unwrap();
    std::fs::write(old.join("py/mkenv.mk"), "").unwrap();
    std::fs::write(
        old.join("py/mpconfig.h"),
        "#define MICROPY_VERSION_MAJOR (1)\n#define MICROPY_VERSION_MINOR (22)\n#define MICROPY_VERSION_MICRO (2)\n",
    )
    .unwrap();
    let err = with_tree(&old);
    assert!(err.contains("is MicroPython 1.22.2"), "{err}");
    assert!(err.contains("supports 1.25"), "{err}");
    // No cache anywhere: the error names where it looked and how to fetch.
    let home = env.state().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let err = failing_build(&env, &[], env.state(), &[("HOME", &home)]);
    assert!(err.contains("no MicroPython 1.25.0 source tree"), "{err}");
    assert!(
        err.contains(
            &home
                .join(".cache/mpfr/micropython/1.25.0")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(err.contains("scripts/micropython-source.sh"), "{err}");
    // The cache set through $MPFR_CACHE_DIR but holding a broken tree.
    let cache = env.state().join("cache");
    std::fs::create_dir_all(cache.join("micropython/1.25.0")).unwrap();
    let err = failing_build(&env, &[], env.state(), &[("MPFR_CACHE_DIR", &cache)]);
    assert!(err.contains("is not a MicroPython tree"), "{err}");
}

#[test]
fn a_compile_error_shows_the_compilers_first_error_not_the_make_log() {
    let env = Env::new("mpfr-mpy-cc-");
    let out_dir = env.state().join("o");
    // A second definition of a name the port sets on the command line: an error under -Werror.
    let out = env
        .command(&[
            "build",
            "--board",
            QEMU_BOARD,
            "--firmware",
            "micropython",
            "--out",
            out_dir.to_str().unwrap(),
            "--",
            "CFLAGS_EXTRA=-DMICROPY_HW_BOARD_NAME=1",
        ])
        .env("MPFR_MICROPYTHON_TREE", tree())
        .output()
        .expect("run mpfr");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains("make.log"), "{err}");
    assert!(
        err.lines().count() < 40,
        "the whole log, not the first error:\n{err}"
    );
    assert!(!env.state().join("builds").exists());
}

/// Starts `mpfr run SCRIPT` on `board` and returns once it printed `marker` (within 180 s); the
/// run is killed when the returned guard drops. A run that ends first fails at once with its exit
/// status, output and errors; a timeout shows what the run printed so far.
pub(super) fn run_until_printed(
    env: &Env,
    board: &str,
    script: &std::path::Path,
    marker: &'static str,
    what: &str,
) -> Reap {
    let run = env
        .command(&[
            "run",
            "--board",
            board,
            script.to_str().expect("a UTF-8 path"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpfr run");
    let mut run = Reap(run);
    let mut stdout = run.0.stdout.take().expect("piped stdout");
    let seen = std::sync::Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader_seen = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            let n = stdout.read(&mut buf).unwrap_or(0);
            if n == 0 {
                // The run ended (or closed its output) without the marker.
                let _ = tx.send(false);
                return;
            }
            let mut seen = reader_seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains(marker) {
                let _ = tx.send(true);
                return;
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(180));
    let printed = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match got {
        Ok(true) => run,
        Ok(false) => {
            let status = run.0.wait().expect("wait for mpfr run");
            let mut err = String::new();
            if let Some(mut e) = run.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "{what}: mpfr run ended ({status}) before printing `{marker}`; \
                 it printed {printed:?}; stderr:\n{err}"
            )
        }
        Err(_) => panic!("{what} never printed `{marker}` within 180 s; it printed {printed:?}"),
    }
}
