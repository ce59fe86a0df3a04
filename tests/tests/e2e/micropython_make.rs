//! The MicroPython port in `firmware/micropython/qemu` on the FreeRTOS backend in
//! `firmware/micropython/freertos`, built with make alone, as a user's tree would build it: its
//! Makefile refuses bad input before building anything, and a real build against the MicroPython
//! 1.25 tree that `scripts/micropython-source.sh` unpacks boots under QEMU with threads, soft
//! timers, `micropython.schedule`, the RAM filesystem and `import mpfr` working.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn port_dir() -> PathBuf {
    mpfr_firmware::crate_dir().join("micropython/qemu")
}

/// The unpacked MicroPython tree: `$MPFR_MICROPYTHON_TREE`, else the project cache.
fn micropython_tree() -> PathBuf {
    if let Some(t) = std::env::var_os("MPFR_MICROPYTHON_TREE") {
        return PathBuf::from(t);
    }
    let t = mpfr_firmware::crate_dir().join("../.cache/micropython/1.25.0");
    assert!(
        t.join("py/mkenv.mk").is_file(),
        "no MicroPython tree at {}: run scripts/micropython-source.sh (scripts/setup.sh does) \
         or set MPFR_MICROPYTHON_TREE",
        t.display()
    );
    t
}

/// A config as `mpfr config` renders it for `qemu-mps2-an385`, reduced to what the port reads.
fn write_config(dir: &Path, gil: bool) {
    let text = format!(
        "#define MPFR_BOARD \"qemu-mps2-an385\"\n\
         #define MPFR_CONFIG_FINGERPRINT 0x1234UL\n\
         #define MPFR_GIL {g}\n\
         #define configNUMBER_OF_CORES 1\n\
         #define configTOTAL_HEAP_SIZE 65536\n\
         #define MICROPY_PY_THREAD 1\n\
         #define MICROPY_PY_THREAD_GIL {g}\n\
         #define MICROPY_GC_HEAP_SIZE 196608\n\
         #define MP_THREAD_MAIN_STACK_SIZE 8192\n",
        g = u8::from(gil)
    );
    std::fs::write(dir.join("mpfr_config.h"), text).expect("write mpfr_config.h");
}

fn make(vars: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(port_dir()).arg("-j2");
    for (k, v) in vars {
        cmd.arg(format!("{k}={}", v.display()));
    }
    cmd.output()
        .expect("make must be installed (scripts/setup.sh)")
}

#[test]
fn port_makefile_refuses_bad_input() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let build = tmp.path().join("build");
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    write_config(&cfg, true);
    // A tree of another version: only the two files the Makefile looks at.
    let old = tmp.path().join("mpy-1.22");
    std::fs::create_dir_all(old.join("py")).unwrap();
    std::fs::write(old.join("py/mkenv.mk"), "").unwrap();
    std::fs::write(
        old.join("py/mpconfig.h"),
        "#define MICROPY_VERSION_MAJOR 1\n#define MICROPY_VERSION_MINOR 22\n",
    )
    .unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let kernel = mpfr_firmware::freertos_kernel_dir();

    let cases: Vec<(Vec<(&str, &Path)>, &str)> = vec![
        (vec![("BUILD", &build)], "MICROPY_TOP is not set"),
        (
            vec![("MICROPY_TOP", &empty), ("BUILD", &build)],
            "is not a MicroPython tree",
        ),
        (
            vec![("MICROPY_TOP", &old), ("BUILD", &build)],
            "is MicroPython 1.22; this port supports 1.25",
        ),
    ];
    for (vars, want) in cases {
        let out = make(&vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "make succeeded for {vars:?}");
        assert!(err.contains(want), "{vars:?}: want {want:?} in:\n{err}");
    }
    // The remaining checks need a real tree.
    let tree = micropython_tree();
    let cases: Vec<(Vec<(&str, &Path)>, &str)> = vec![
        (
            vec![
                ("MICROPY_TOP", &tree),
                ("MPFR_CONFIG_DIR", &empty),
                ("BUILD", &build),
            ],
            "holds no mpfr_config.h",
        ),
        (
            vec![
                ("MICROPY_TOP", &tree),
                ("MPFR_CONFIG_DIR", &cfg),
                ("BUILD", &build),
            ],
            "FREERTOS_KERNEL is not set",
        ),
        (
            vec![
                ("MICROPY_TOP", &tree),
                ("MPFR_CONFIG_DIR", &cfg),
                ("FREERTOS_KERNEL", &empty),
                ("BUILD", &build),
            ],
            "holds no FreeRTOS kernel",
        ),
    ];
    for (vars, want) in cases {
        let out = make(&vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "make succeeded for {vars:?}");
        assert!(err.contains(want), "{vars:?}: want {want:?} in:\n{err}");
    }
    assert!(kernel.join("tasks.c").is_file());
    assert!(!build.exists(), "a refused build left {}", build.display());
}

/// QEMU with UART0 on pipes; killed when dropped.
struct Qemu {
    child: Child,
    rx: mpsc::Receiver<Vec<u8>>,
    seen: String,
    /// How long `expect` waits for its text.
    patience: Duration,
}

impl Qemu {
    fn start(elf: &Path) -> Qemu {
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(["-M", "mps2-an385"]);
        let mut child = cmd
            .args(["-display", "none", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-serial", "stdio", "-kernel"])
            .arg(elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-arm must be installed (scripts/setup.sh)");
        let mut out = child.stdout.take().expect("QEMU's stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Qemu {
            child,
            rx,
            seen: String::new(),
            patience: Duration::from_secs(120),
        }
    }

    fn send(&mut self, s: &str) {
        let stdin = self.child.stdin.as_mut().expect("QEMU's stdin is piped");
        stdin
            .write_all(s.as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to QEMU's UART0");
    }

    /// Waits (generously: QEMU may be starved on a loaded machine) until `want` has appeared
    /// since the last call; returns everything read up to and including it.
    fn expect(&mut self, want: &str) -> String {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(i) = self.seen.find(want) {
                let upto: String = self.seen.drain(..i + want.len()).collect();
                return upto;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} from the port; got:\n{}",
                self.seen
            );
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!(
                    "QEMU ended or stayed silent waiting for {want:?}; got:\n{}",
                    self.seen
                ),
            }
        }
    }

    /// Runs code in the raw REPL (entered once with Ctrl-A); returns stdout, panics on an
    /// exception.
    fn exec(&mut self, code: &str) -> String {
        self.send(code);
        self.send("\x04");
        self.expect("OK");
        let out = self.expect("\x04");
        let err = self.expect("\x04");
        self.expect(">");
        assert!(err == "\x04", "{code:?} raised:\n{err}");
        out.trim_end_matches('\x04').replace('\r', "")
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn port_builds_and_boots_with_threads_timers_and_files() {
    let tree = micropython_tree();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = tmp.path().join("cfg");
    let build = tmp.path().join("build");
    std::fs::create_dir_all(&cfg).unwrap();
    write_config(&cfg, true);
    let out = make(&[
        ("MICROPY_TOP", &tree),
        ("MPFR_CONFIG_DIR", &cfg),
        ("FREERTOS_KERNEL", mpfr_firmware::freertos_kernel_dir()),
        ("BUILD", &build),
    ]);
    assert!(
        out.status.success(),
        "port build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = build.join("firmware.elf");
    assert!(elf.is_file());

    let mut q = Qemu::start(&elf);
    q.expect("MicroPython v1.25.0");
    q.expect(">>> ");
    q.send("\x01");
    q.expect("raw REPL; CTRL-B to exit\r\n>");
    assert_eq!(
        q.exec("import sys; print(sys.implementation._thread)"),
        "GIL\n"
    );
    // Four threads, each adding under a lock; the reaper frees them on later creates.
    let threads = "import _thread, time\n\
        lock = _thread.allocate_lock()\n\
        res = []\n\
        def w(n):\n    s = sum(range(n))\n    with lock:\n        res.append(s)\n\
        for k in range(4):\n    _thread.start_new_thread(w, (1000,))\n\
        t0 = time.ticks_ms()\n\
        while len(res) < 4 and time.ticks_diff(time.ticks_ms(), t0) < 60000:\n    time.sleep_ms(10)\n\
        print(res)\n";
    assert_eq!(q.exec(threads), "[499500, 499500, 499500, 499500]\n");
    // A soft timer through the service task, and a scheduled callback.
    let timers = "import machine, micropython, time\n\
        hits = []\n\
        tm = machine.Timer(period=10, callback=lambda t: hits.append(1))\n\
        time.sleep_ms(200)\n\
        tm.deinit()\n\
        got = []\n\
        micropython.schedule(got.append, 7)\n\
        time.sleep_ms(5)\n\
        print(len(hits) >= 5, got)\n";
    assert_eq!(q.exec(timers), "True [7]\n");
    // The RAM filesystem at /, and the agent, built in.
    let files = "import mpfr\n\
        with open('f.txt', 'w') as f:\n    f.write('kept')\n\
        print(open('/f.txt').read(), mpfr.stats()['board'])\n";
    assert_eq!(q.exec(files), "kept qemu-mps2-an385\n");
    // SystemExit ends the program as in upstream's bare-metal ports: the output is kept, the
    // board soft-resets back into the raw REPL, and the filesystem survives.
    q.send("print('SKIP')\nraise SystemExit\x04");
    q.expect("OK");
    assert_eq!(q.expect("\x04"), "SKIP\r\n\x04");
    assert_eq!(q.expect("\x04"), "\x04");
    q.expect("MPY: soft reboot");
    q.expect("raw REPL; CTRL-B to exit\r\n>");
    assert_eq!(q.exec("print(open('/f.txt').read())"), "kept\n");
}
