//! `mpfr fs` and `mpfr sync` end to end against the real MicroPython unix port: the host board
//! (whose filesystem is the folder mpfr runs in) and a unix port behind a socat pty reached with
//! `--port` alone.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mpfr_tests::fs::{files, json_lines, summary, write_project};
use mpfr_tests::{Reap, micropython, mpfr_bin, mpy_cross};

const LIMIT: Duration = Duration::from_secs(90);

/// The device folder (the unix port's working directory), a local folder and a state dir.
struct Bench {
    dev: tempfile::TempDir,
    local: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            dev: tempfile::tempdir().expect("tmp"),
            local: tempfile::tempdir().expect("tmp"),
            state: tempfile::tempdir().expect("tmp"),
        }
    }

    fn dev(&self) -> &Path {
        self.dev.path()
    }

    /// `mpfr ARGS` on the host board, run in the device folder.
    fn mpfr(&self, args: &[&str]) -> Output {
        let mut c = Command::new(mpfr_bin());
        c.args(args)
            .current_dir(self.dev())
            .env("MPFR_MICROPYTHON", micropython())
            .env("MPFR_MPY_CROSS", mpy_cross())
            .env("MPFR_STATE_DIR", self.state.path())
            .env("MPFR_BOARD", "host")
            .env_remove("MPFR_PORT")
            .env("NO_COLOR", "1");
        run_with_deadline(c, LIMIT)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.mpfr(args);
        assert!(
            o.status.success(),
            "mpfr {args:?} failed: {}\n{}",
            text(&o.stderr),
            text(&o.stdout)
        );
        o
    }

    fn project(&self) -> PathBuf {
        write_project(self.local.path())
    }
}

fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    let mut child = Reap(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mpfr"),
    );
    let mut out = child.0.stdout.take().expect("stdout");
    let mut err = child.0.stderr.take().expect("stderr");
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
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            start.elapsed() < limit,
            "mpfr did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t1.join().expect("stdout thread"),
        stderr: t2.join().expect("stderr thread"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn cp_ls_cat_sync_rm_on_the_host_board() {
    let b = Bench::new();
    let app = b.project();
    let app_s = app.to_str().unwrap();

    // Copy the tree; the device's copy is byte for byte the local one.
    let o = b.ok(&["fs", "cp", "-r", app_s, ":dir"]);
    assert!(
        o.stdout.is_empty(),
        "cp prints no data: {}",
        text(&o.stdout)
    );
    assert_eq!(files(&b.dev().join("dir")), files(&app));

    // ls: sizes and names, folders marked.
    let o = b.ok(&["fs", "ls", ":dir"]);
    let ls = text(&o.stdout);
    assert!(ls.contains(" lib/\n"), "{ls}");
    assert!(ls.contains("       30 main.py\n"), "{ls}");
    let o = b.ok(&["fs", "ls", "-r", ":dir/lib"]);
    assert!(
        text(&o.stdout).contains("deep dir/ünï cødé.txt"),
        "{}",
        text(&o.stdout)
    );

    // cat is byte for byte, binary included.
    let o = b.ok(&["fs", "cat", ":dir/main.py"]);
    assert_eq!(o.stdout, b"import lib.util\nprint('main')\n");
    let o = b.ok(&["fs", "cat", ":dir/lib/blob.bin"]);
    assert_eq!(o.stdout, std::fs::read(app.join("lib/blob.bin")).unwrap());
    let o = b.ok(&["fs", "cat", ":dir/lib/deep dir/ünï cødé.txt"]);
    assert_eq!(o.stdout, b"sp\xc3\xa4ce\r\nlines\n");

    // A second sync copies nothing.
    let o = b.ok(&["--json", "sync", app_s, ":dir"]);
    let s = summary(&o);
    assert_eq!(s["copied"], 0, "{}", text(&o.stdout));
    assert_eq!(s["unchanged"], 6, "{}", text(&o.stdout));
    assert_eq!(s["hash"], "sha256");

    // One changed file (same size: only the hash can tell) is the only one copied.
    std::fs::write(app.join("main.py"), "import lib.util\nprint('MAIN')\n").unwrap();
    let o = b.ok(&["sync", app_s, ":dir"]);
    assert_eq!(text(&o.stdout), "update  :dir/main.py\n");
    assert_eq!(
        std::fs::read(b.dev().join("dir/main.py")).unwrap(),
        b"import lib.util\nprint('MAIN')\n"
    );

    // --delete removes what is gone here; --dry-run only says so.
    std::fs::remove_file(app.join("big.txt")).unwrap();
    let o = b.ok(&["sync", "--delete", "--dry-run", app_s, ":dir"]);
    assert_eq!(text(&o.stdout), "delete :dir/big.txt\n");
    assert!(b.dev().join("dir/big.txt").exists());
    let o = b.ok(&["sync", "--delete", app_s, ":dir"]);
    assert_eq!(text(&o.stdout), "delete :dir/big.txt\n");
    assert_eq!(files(&b.dev().join("dir")), files(&app));

    // Back from the device, recursively.
    let back = b.local.path().join("back");
    b.ok(&["fs", "cp", "-r", ":dir", back.to_str().unwrap()]);
    assert_eq!(files(&back), files(&app));

    // rm -r leaves nothing behind.
    b.ok(&["fs", "rm", "-r", ":dir"]);
    assert!(!b.dev().join("dir").exists());
}

#[test]
fn sync_mpy_sends_compiled_modules_that_the_board_imports() {
    let b = Bench::new();
    let app = b.local.path().join("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::write(app.join("lib/util.py"), "def f():\n    return 6 * 7\n").unwrap();
    std::fs::write(
        app.join("main.py"),
        "import util\nprint('answer', util.f())\n",
    )
    .unwrap();
    // A stale source on the board would be imported before the compiled module.
    std::fs::create_dir_all(b.dev().join("dir/lib")).unwrap();
    std::fs::write(b.dev().join("dir/lib/util.py"), "def f():\n    return 0\n").unwrap();
    let app_s = app.to_str().unwrap();

    let o = b.ok(&["sync", "--mpy", app_s, ":dir"]);
    let out = text(&o.stdout);
    assert!(out.contains("new     :dir/lib/util.mpy\n"), "{out}");
    assert!(
        out.contains("new     :dir/main.py\n"),
        "main.py stays source: {out}"
    );
    assert!(out.contains("delete :dir/lib/util.py\n"), "{out}");
    let mpy = std::fs::read(b.dev().join("dir/lib/util.mpy")).unwrap();
    assert_eq!(mpy[0], b'M', "an .mpy file starts with 'M'");
    assert!(!b.dev().join("dir/lib/util.py").exists());

    // The board imports the compiled module.
    let o = b.ok(&[
        "exec",
        "import sys, os\nos.chdir('dir')\nsys.path.insert(0, 'lib')\nexec(open('main.py').read())",
    ]);
    assert!(text(&o.stdout).contains("answer 42"), "{}", text(&o.stdout));

    // Unchanged sources compile to the same bytes: nothing is copied again.
    let o = b.ok(&["--json", "sync", "--mpy", app_s, ":dir"]);
    assert_eq!(summary(&o)["copied"], 0, "{}", text(&o.stdout));

    // A source that does not compile stops the sync before anything is sent.
    std::fs::write(app.join("lib/bad.py"), "def broken(:\n").unwrap();
    let o = b.mpfr(&["sync", "--mpy", app_s, ":dir"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("mpy-cross could not compile"),
        "{}",
        text(&o.stderr)
    );
    assert!(!b.dev().join("dir/lib/bad.mpy").exists());
}

#[test]
fn sync_creates_the_target_and_cleans_leftovers_of_an_interrupted_copy() {
    let b = Bench::new();
    let app = b.project();
    let app_s = app.to_str().unwrap();
    // A copy cut short by a reset leaves its temporary file and no final name.
    std::fs::create_dir_all(b.dev().join("t/lib")).unwrap();
    std::fs::write(b.dev().join("t/lib/util.py.mpfr-part"), "X = 'é").unwrap();
    let o = b.ok(&["sync", app_s, ":t"]);
    let out = text(&o.stdout);
    assert!(out.contains("clean  :t/lib/util.py.mpfr-part\n"), "{out}");
    assert!(out.contains("new     :t/lib/util.py\n"), "{out}");
    assert_eq!(files(&b.dev().join("t")), files(&app));
}

#[test]
fn device_errors_are_named() {
    let b = Bench::new();
    let o = b.mpfr(&["fs", "cat", ":nope/x.py"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("read :nope/x.py: no such file or directory on the device"),
        "{err}"
    );
    assert!(err.contains("mpfr fs ls :nope"), "{err}");

    std::fs::create_dir(b.dev().join("d")).unwrap();
    std::fs::write(b.dev().join("d/f"), "x").unwrap();
    let o = b.mpfr(&["fs", "rm", ":d"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("EISDIR"), "{}", text(&o.stderr));
    let o = b.mpfr(&["fs", "rmdir", ":d"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("ENOTEMPTY"), "{}", text(&o.stderr));
    let o = b.mpfr(&["fs", "ls", ":../x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("goes above"),
        "{}",
        text(&o.stderr)
    );
    assert!(b.dev().join("d/f").exists());
}

#[test]
fn small_commands_work() {
    let b = Bench::new();
    b.ok(&["fs", "mkdir", "--parents", ":a/b c"]);
    assert!(b.dev().join("a/b c").is_dir());
    b.ok(&["fs", "touch", ":a/b c/t.py"]);
    assert_eq!(std::fs::read(b.dev().join("a/b c/t.py")).unwrap(), b"");
    std::fs::write(b.dev().join("a/x"), "abc").unwrap();
    let o = b.ok(&["fs", "sha256sum", ":a/x"]);
    assert_eq!(
        text(&o.stdout),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  :a/x\n"
    );
    let o = b.ok(&["fs", "tree", ":a"]);
    assert_eq!(text(&o.stdout), ":a\n├── b c/\n│   └── t.py\n└── x\n");
    let o = b.ok(&["--json", "fs", "df"]);
    let v = &json_lines(&o)[0];
    assert!(v["total"].as_u64().unwrap() > 0, "{v}");
    b.ok(&["fs", "rm", ":a/b c/t.py"]);
    b.ok(&["fs", "rmdir", ":a/b c"]);
    assert!(!b.dev().join("a/b c").exists());
}

/// The unix port behind a socat pty, living across mpfr invocations (like a USB board).
fn pty_device(dir: &Path) -> (Reap, PathBuf) {
    let link = dir.join("pty");
    let child = Command::new("socat")
        .arg(format!("PTY,link={},rawer", link.display()))
        .arg(format!("EXEC:{},pty,rawer,setsid", micropython().display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (install it with scripts/setup.sh)");
    let guard = Reap(child);
    let start = Instant::now();
    while !link.exists() {
        assert!(start.elapsed() < LIMIT, "socat made no pty");
        std::thread::sleep(Duration::from_millis(10));
    }
    (guard, link)
}

#[test]
fn port_alone_reaches_any_micropython_and_full_or_read_only_disks_are_named() {
    let b = Bench::new();
    let (_dev, pty) = pty_device(b.dev());
    let port = pty.to_str().unwrap();
    let mut c = Command::new(mpfr_bin());
    c.args(["exec", "--port", port, "print(1+1)"])
        .env("MPFR_STATE_DIR", b.state.path())
        .env_remove("MPFR_BOARD")
        .env_remove("MPFR_PORT");
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "2\n");

    // A 32 KiB littlefs RAM disk at /ram on that device, and a read-only one at /ro.
    let setup = "import os\nclass R:\n def __init__(s,n):s.d=bytearray(n*512)\n def readblocks(s,b,buf,o=0):buf[:]=s.d[b*512+o:b*512+o+len(buf)]\n def writeblocks(s,b,buf,o=0):s.d[b*512+o:b*512+o+len(buf)]=buf\n def ioctl(s,op,a):\n  if op==4:return len(s.d)//512\n  if op==5:return 512\n  if op==6:return 0\nfor n,m,ro in ((64,'/ram',False),(16,'/ro',True)):\n r=R(n);os.VfsLfs2.mkfs(r);os.mount(os.VfsLfs2(r),m,readonly=ro)\n";
    let mut c = Command::new(mpfr_bin());
    c.args(["exec", "--port", port, setup])
        .env("MPFR_STATE_DIR", b.state.path());
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let big = b.local.path().join("big");
    std::fs::create_dir(&big).unwrap();
    std::fs::write(big.join("a.py"), "a = 1\n").unwrap();
    std::fs::write(big.join("b.bin"), vec![7u8; 100 * 1024]).unwrap();
    let fs = |args: &[&str]| {
        let mut c = Command::new(mpfr_bin());
        c.arg("fs")
            .args(args)
            .args(["--port", port])
            .env("MPFR_STATE_DIR", b.state.path());
        run_with_deadline(c, LIMIT)
    };
    let o = fs(&["cp", "-r", big.to_str().unwrap(), ":/ram/big"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("filesystem is full"), "{err}");
    assert!(err.contains("after 1 file(s) were copied"), "{err}");
    // The file that did not fit is not there, not even half.
    let o = fs(&["ls", ":/ram/big"]);
    assert_eq!(text(&o.stdout), "        6 a.py\n", "{}", text(&o.stderr));

    let o = fs(&["touch", ":/ro/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("read-only"), "{}", text(&o.stderr));
}

#[test]
fn watch_syncs_and_runs_again_on_every_change_and_ctrl_c_ends_it() {
    let b = Bench::new();
    let app = b.local.path().join("w");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("main.py"), "print('version', 1)\n").unwrap();
    let out = b.local.path().join("out.txt");
    let mut c = Command::new(mpfr_bin());
    c.args(["watch", app.to_str().unwrap(), ":"])
        .current_dir(b.dev())
        .env("MPFR_MICROPYTHON", micropython())
        .env("MPFR_STATE_DIR", b.state.path())
        .env("MPFR_BOARD", "host")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    let mut child = Reap(c.spawn().expect("start mpfr watch"));
    let wait_for = |what: &str| {
        let start = Instant::now();
        loop {
            let got = std::fs::read_to_string(&out).unwrap_or_default();
            if got.contains(what) {
                return got;
            }
            assert!(start.elapsed() < LIMIT, "no `{what}` in: {got}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("version 1\n");
    std::fs::write(app.join("main.py"), "print('version', 2)\n").unwrap();
    wait_for("version 2\n");
    assert_eq!(
        std::fs::read(b.dev().join("main.py")).unwrap(),
        b"print('version', 2)\n"
    );
    let pid = child.0.id().to_string();
    let st = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(st.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "watch did not end after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
}

/// Children of `pid` (and theirs), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let tasks = format!("/proc/{pid}/task");
    for t in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for k in kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
        {
            out.extend(descendants(k));
            out.push(k);
        }
    }
    out
}

#[test]
fn a_device_that_vanishes_mid_copy_is_a_clear_error_and_sync_resumes() {
    let b = Bench::new();
    let first = b.dev().join("first");
    std::fs::create_dir(&first).expect("dir");
    let (dev, pty) = pty_device(&first);
    // Incompressible data, so the copy takes long enough to be cut.
    let src = b.local.path().join("big");
    std::fs::create_dir(&src).expect("dir");
    let mut x: u32 = 1;
    for i in 0..30 {
        let data: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        std::fs::write(src.join(format!("f{i:02}.bin")), data).expect("write");
    }
    let target = b.dev().join("t");
    let mut c = Command::new(mpfr_bin());
    c.args([
        "sync",
        "--port",
        pty.to_str().expect("utf-8"),
        src.to_str().expect("utf-8"),
    ])
    .arg(format!(":{}", target.display()))
    .env("MPFR_STATE_DIR", b.state.path())
    .env_remove("MPFR_BOARD")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = Reap(c.spawn().expect("start mpfr sync"));
    let start = Instant::now();
    while std::fs::read_dir(&target).map_or(0, |d| d.count()) < 2 {
        assert!(start.elapsed() < LIMIT, "the copy never started");
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "sync ended too early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The board goes away: its MicroPython and the pty.
    let socat = dev.0.id();
    for pid in descendants(socat) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    drop(dev);
    let mut err = String::new();
    let mut pipe = child.0.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < LIMIT,
            "sync did not notice the device went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    err.push_str(&reader.join().expect("stderr thread"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("went away") || err.contains("disconnected"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // No final name holds a partial file.
    for e in std::fs::read_dir(&target).expect("target").flatten() {
        let name = e.file_name().into_string().expect("utf-8");
        if let Some(stem) = name.strip_suffix(".mpfr-part") {
            assert!(
                !target.join(stem).exists() || files_equal(&target.join(stem), &src.join(stem))
            );
        } else {
            assert!(
                files_equal(&e.path(), &src.join(&name)),
                "{name} is partial"
            );
        }
    }
    // A new device (the board is back): sync resumes and completes.
    let second = b.dev().join("second");
    std::fs::create_dir(&second).expect("dir");
    let (dev2, pty2) = pty_device(&second);
    let mut c = Command::new(mpfr_bin());
    c.args([
        "sync",
        "--port",
        pty2.to_str().expect("utf-8"),
        src.to_str().expect("utf-8"),
    ])
    .arg(format!(":{}", target.display()))
    .env("MPFR_STATE_DIR", b.state.path())
    .env_remove("MPFR_BOARD");
    let o = run_with_deadline(c, LIMIT);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(files(&target), files(&src));
    for pid in descendants(dev2.0.id()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

fn files_equal(a: &Path, b: &Path) -> bool {
    std::fs::read(a).ok() == std::fs::read(b).ok()
}
