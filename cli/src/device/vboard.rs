//! The QEMU virtual board: start `qemu-system-arm` in the background with an image, record where
//! its UART, gdbstub and QMP sockets are, find it again from later commands, and stop it.
//!
//! The record (`mpfr::util::paths::vboard_record(board)`, JSON of [`Instance`]) is how `repl`, `run`,
//! `threads top` and `stress` attach without flags. QEMU runs in its own process group so it
//! outlives the `mpfr flash` that started it and ignores the terminal's Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::board::{Board, QemuMachine};
use crate::device::link::{Link, LinkError, SerialLink};
use crate::util::lock::{BoardLock, lock_board};
use crate::util::paths;

/// Which console the image booted to (contract 3 in the design notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Console {
    /// The mpfr reference firmware (`mpfr-ref ` banner, `ref> ` prompt).
    Reference,
    /// A MicroPython REPL (`MicroPython v...`, `>>> `).
    Micropython,
    /// Nothing recognisable on UART0 before the deadline.
    Unknown,
}

impl std::fmt::Display for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Console::Reference => "the reference console",
            Console::Micropython => "a MicroPython REPL",
            Console::Unknown => "no recognisable console",
        })
    }
}

/// Which firmware an image is, from its ELF symbol table: what the record says runs on the
/// virtual board, and the console to expect when UART0 showed none in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// The mpfr reference firmware.
    Reference,
    /// MicroPython (mpfr's port or any other build for the machine).
    Micropython,
    /// Any other image, or one without symbols.
    #[default]
    Other,
}

/// Symbols only a MicroPython image links (the VM and the runtime's entry).
const MICROPYTHON_SYMBOLS: &[&str] = &["mp_execute_bytecode", "mp_init"];
/// A symbol only the reference firmware links (its console's receive hook).
const REFERENCE_SYMBOL: &str = "ref_console_rx";

impl Firmware {
    /// Reads the kind from `image`'s symbols (`Other` for an unreadable or stripped image).
    pub fn of_image(image: &Path) -> Firmware {
        use object::{Object, ObjectSymbol};
        let Ok(data) = std::fs::read(image) else {
            return Firmware::Other;
        };
        let Ok(file) = object::File::parse(&*data) else {
            return Firmware::Other;
        };
        let mut mp = 0;
        for s in file.symbols() {
            match s.name() {
                Ok(REFERENCE_SYMBOL) => return Firmware::Reference,
                Ok(n) if MICROPYTHON_SYMBOLS.contains(&n) => mp += 1,
                _ => {}
            }
        }
        if mp == MICROPYTHON_SYMBOLS.len() {
            Firmware::Micropython
        } else {
            Firmware::Other
        }
    }

    /// The console this firmware boots to.
    pub fn console(self) -> Console {
        match self {
            Firmware::Reference => Console::Reference,
            Firmware::Micropython => Console::Micropython,
            Firmware::Other => Console::Unknown,
        }
    }
}

/// A running virtual board, as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub board: String,
    pub pid: u32,
    /// UART0: open it like a serial port.
    pub uart_pty: PathBuf,
    /// Unix socket of QEMU's gdbstub (GDB remote protocol).
    pub gdb_socket: PathBuf,
    /// Unix socket of QMP (QEMU's JSON control protocol).
    pub qmp_socket: PathBuf,
    pub image: PathBuf,
    /// What the image is (records written before this field existed read as `other`).
    #[serde(default)]
    pub firmware: Firmware,
    /// The console UART0 showed (else the one the firmware kind implies).
    pub console: Console,
    /// QEMU's stdout and stderr.
    pub log: PathBuf,
    pub started_unix: u64,
}

/// What `Instance::stop` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// The record, when it could be read.
    pub instance: Option<Instance>,
    /// Why the record could not be read (it was removed all the same).
    pub unreadable: Option<String>,
    /// The QEMU processes stopped: the recorded one, and any other QEMU serving this board's
    /// control socket (found through /proc; its socket path is unique to the board).
    pub pids: Vec<u32>,
    /// False when no QEMU was running (then only the record was removed).
    pub was_running: bool,
    /// The end of QEMU's log when it had exited on its own.
    pub log_tail: Option<String>,
}

/// Everything that can go wrong with the virtual board.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum VboardError {
    #[error("`{board}` is not a QEMU board")]
    #[diagnostic(
        code(mpfr::vboard::not_qemu),
        help(
            "a virtual board has `flasher = \"qemu\"` and a qemu table in boards.toml; `mpfr boards` lists them"
        )
    )]
    NotQemu { board: String },

    #[error("the virtual board {board} is not running")]
    #[diagnostic(
        code(mpfr::vboard::not_running),
        help("start it with `mpfr flash --board {board}`")
    )]
    NotRunning { board: String },

    #[error("cannot run {program}")]
    #[diagnostic(
        code(mpfr::vboard::no_qemu),
        help(
            "install QEMU (Debian: `apt-get install qemu-system-arm`, or run scripts/setup.sh), or point $MPFR_QEMU at qemu-system-arm"
        )
    )]
    NoQemu {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("QEMU for {board} exited during start-up{}", status_suffix(.status))]
    #[diagnostic(
        code(mpfr::vboard::start_failed),
        help("QEMU said:\n{log_tail}\n(full log: {})", log.display())
    )]
    StartFailed {
        board: String,
        status: Option<String>,
        log: PathBuf,
        log_tail: String,
    },

    #[error("the virtual board {board} (QEMU pid {pid}) is no longer running")]
    #[diagnostic(
        code(mpfr::vboard::dead),
        help("its last words ({}):\n{log_tail}\nStart it again with `mpfr flash --board {board}`; `mpfr stop --board {board}` clears the record", log.display())
    )]
    Dead {
        board: String,
        pid: u32,
        log: PathBuf,
        log_tail: String,
    },

    #[error("QEMU did not answer on its control socket {}: {reason}", socket.display())]
    #[diagnostic(
        code(mpfr::vboard::qmp),
        help("see QEMU's log {}; `mpfr stop --board {board}` and flash again", log.display())
    )]
    Qmp {
        board: String,
        socket: PathBuf,
        log: PathBuf,
        reason: String,
    },

    #[error("socket path {} is too long for a unix socket ({len} bytes, limit 107)", path.display())]
    #[diagnostic(
        code(mpfr::vboard::path_too_long),
        help("point $MPFR_STATE_DIR at a shorter directory")
    )]
    PathTooLong { path: PathBuf, len: usize },

    #[error("the record {} is not a virtual board record: {reason}", path.display())]
    #[diagnostic(
        code(mpfr::vboard::bad_record),
        help(
            "`mpfr stop --board {board}` clears it (and stops the QEMU serving the board's socket)"
        )
    )]
    BadRecord {
        board: String,
        path: PathBuf,
        reason: String,
    },

    #[error("{context}")]
    #[diagnostic(code(mpfr::vboard::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn status_suffix(s: &Option<String>) -> String {
    s.as_deref().map(|s| format!(" ({s})")).unwrap_or_default()
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VboardError {
    let context = context.into();
    move |source| VboardError::Io { context, source }
}

/// How to start QEMU.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The QEMU executable: `$MPFR_QEMU`, else `qemu-system-arm` from PATH.
    pub qemu: PathBuf,
    /// How long to watch UART0 for a banner or prompt.
    pub detect_timeout: Duration,
    /// How long QEMU may take to open its sockets.
    pub start_timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            qemu: std::env::var_os("MPFR_QEMU")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("qemu-system-arm")),
            detect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// The QEMU machine of `board`, or the error saying it is no virtual board.
pub fn machine_of(board: &Board) -> Result<&QemuMachine, VboardError> {
    board.platform.qemu().ok_or_else(|| VboardError::NotQemu {
        board: board.name.clone(),
    })
}

/// Where a board's sockets and log live (under the state directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub record: PathBuf,
    pub qmp: PathBuf,
    pub gdb: PathBuf,
    pub log: PathBuf,
}

impl Files {
    pub fn for_board(board: &str) -> Files {
        let dir = paths::state_dir().join("vboard");
        Files {
            record: paths::vboard_record(board),
            qmp: dir.join(format!("{board}.qmp")),
            gdb: dir.join(format!("{board}.gdb")),
            log: dir.join(format!("{board}.log")),
        }
    }
}

/// The QEMU command line for a board (also shown by `mpfr flash --dry-run`).
pub fn qemu_args(machine: &QemuMachine, image: &Path, files: &Files) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-M".into(),
        machine.machine.clone(),
        "-kernel".into(),
        image.display().to_string(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-chardev".into(),
        "pty,id=uart0".into(),
        "-serial".into(),
        "chardev:uart0".into(),
        "-chardev".into(),
        format!(
            "socket,id=gdb0,path={},server=on,wait=off",
            files.gdb.display()
        ),
        "-gdb".into(),
        "chardev:gdb0".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", files.qmp.display()),
        // MicroPython's qemu port makes semihosting calls from its startup code and stops dead
        // without them. `target=native`: QEMU answers them itself, never the gdbstub client.
        "-semihosting-config".into(),
        "enable=on,target=native".into(),
        // Start halted: UART0 output written before anyone opens the pty is dropped, so the
        // banner is only seen if we attach first and then let the CPU run.
        "-S".into(),
    ];
    args.extend(machine.args.iter().cloned());
    args
}

impl Instance {
    /// The running instance of `board`, if one is recorded. A recorded QEMU that has exited is
    /// an error carrying the end of its log.
    pub fn load(board: &str) -> Result<Option<Instance>, VboardError> {
        match Self::read_record(board)? {
            None => Ok(None),
            Some(i) if i.is_alive() => Ok(Some(i)),
            Some(i) => Err(i.dead_error()),
        }
    }

    /// The record as written, without checking that QEMU still runs.
    pub fn read_record(board: &str) -> Result<Option<Instance>, VboardError> {
        let path = paths::vboard_record(board);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| VboardError::BadRecord {
                board: board.to_string(),
                path,
                reason: e.to_string(),
            })
    }

    /// Starts `board` with `image`, replacing a running instance. Returns once UART0 showed a
    /// console (or the detection deadline passed: then `console` is `Unknown`).
    pub fn start(
        board: &Board,
        image: &Path,
        opts: &StartOptions,
    ) -> Result<Instance, VboardError> {
        let machine = machine_of(board)?;
        let board = board.name.as_str();
        let image = std::path::absolute(image)
            .map_err(io(format!("cannot resolve {}", image.display())))?;
        let firmware = Firmware::of_image(&image);
        // Held until the new record is written: a second flash waits, then replaces this one.
        let _lock = lock(board)?;
        Self::stop_named(board)?;
        let files = Files::for_board(board);
        for p in [&files.qmp, &files.gdb] {
            let len = p.as_os_str().len();
            if len > 107 {
                return Err(VboardError::PathTooLong {
                    path: p.clone(),
                    len,
                });
            }
            remove_if_exists(p)?;
        }
        let dir = files.record.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let log = std::fs::File::create(&files.log)
            .map_err(io(format!("cannot create {}", files.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io(format!("cannot open {}", files.log.display())))?;

        let mut child = Command::new(&opts.qemu)
            .args(qemu_args(machine, &image, &files))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|source| VboardError::NoQemu {
                program: opts.qemu.display().to_string(),
                source,
            })?;
        let pid = child.id();
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);

        let mut inst = Instance {
            board: board.to_string(),
            pid,
            uart_pty: PathBuf::new(),
            gdb_socket: files.gdb.clone(),
            qmp_socket: files.qmp.clone(),
            image,
            firmware,
            console: Console::Unknown,
            log: files.log.clone(),
            started_unix,
        };

        // From here on a failure must not leave QEMU behind.
        let result = (|| {
            let deadline = Instant::now() + opts.start_timeout;
            let mut qmp = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(VboardError::StartFailed {
                        board: board.to_string(),
                        status: Some(status.to_string()),
                        log: files.log.clone(),
                        log_tail: log_tail(&files.log),
                    });
                }
                match Qmp::connect(&files.qmp) {
                    Ok(q) => break q,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(inst.qmp_error(format!(
                            "not listening after {:?}: {e}",
                            opts.start_timeout
                        )));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            inst.uart_pty = qmp.uart_pty("uart0").map_err(|r| inst.qmp_error(r))?;
            let mut uart =
                SerialLink::open(&inst.uart_pty, 115_200, false).map_err(|e| VboardError::Io {
                    context: format!("cannot open UART0 pty {}", inst.uart_pty.display()),
                    source: std::io::Error::other(e.to_string()),
                })?;
            qmp.execute("cont").map_err(|r| inst.qmp_error(r))?;
            inst.console = detect_console(&mut uart, opts.detect_timeout, || {
                matches!(child.try_wait(), Ok(None))
            })?;
            // A banner that came too late (a loaded machine) or scrolled past: the symbols
            // still say which console the image has.
            if inst.console == Console::Unknown {
                inst.console = firmware.console();
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(VboardError::StartFailed {
                    board: board.to_string(),
                    status: Some(status.to_string()),
                    log: files.log.clone(),
                    log_tail: log_tail(&files.log),
                });
            }
            let json = serde_json::to_vec_pretty(&inst).map_err(|e| VboardError::Io {
                context: "cannot encode the virtual board record".into(),
                source: std::io::Error::other(e),
            })?;
            crate::util::fsutil::write_atomically(&files.record, &json)
                .map_err(io(format!("cannot write {}", files.record.display())))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        // QEMU keeps running after we return; it is reaped by whoever adopts it.
        drop(child);
        Ok(inst)
    }

    /// Stops `board`'s recorded QEMU (only the recorded pid, and only if it still is that
    /// QEMU) and removes the record. Returns what was recorded, if anything.
    pub fn stop(board: &Board) -> Result<Option<Stopped>, VboardError> {
        machine_of(board)?;
        let _lock = lock(&board.name)?;
        Self::stop_named(&board.name)
    }

    fn stop_named(board: &str) -> Result<Option<Stopped>, VboardError> {
        let files = Files::for_board(board);
        let (recorded, unreadable) = match Self::read_record(board) {
            Ok(r) => (r, None),
            // A record that cannot be read must not block clearing it (its own error says to
            // run `mpfr stop`): the QEMU it named is found by its control socket instead.
            Err(VboardError::BadRecord { reason, .. }) => (None, Some(reason)),
            Err(e) => return Err(e),
        };
        let mut pids = Vec::new();
        let mut was_running = false;
        if let Some(i) = recorded.as_ref().filter(|i| i.is_alive()) {
            i.terminate();
            pids.push(i.pid);
            was_running = true;
        }
        for pid in qemus_serving(&files.qmp) {
            if pids.contains(&pid) {
                continue;
            }
            let stray = Instance {
                board: board.to_string(),
                pid,
                uart_pty: PathBuf::new(),
                gdb_socket: files.gdb.clone(),
                qmp_socket: files.qmp.clone(),
                image: PathBuf::new(),
                firmware: Firmware::default(),
                console: Console::Unknown,
                log: files.log.clone(),
                started_unix: 0,
            };
            stray.terminate();
            pids.push(pid);
            was_running = true;
        }
        let record_existed = recorded.is_some() || unreadable.is_some();
        if !record_existed && pids.is_empty() {
            return Ok(None);
        }
        let log_tail = match &recorded {
            Some(i) if !was_running => Some(i.log_tail()),
            _ => None,
        };
        let mut remove = vec![files.record.clone(), files.qmp.clone(), files.gdb.clone()];
        if let Some(i) = &recorded {
            remove.extend([i.qmp_socket.clone(), i.gdb_socket.clone()]);
        }
        for p in &remove {
            remove_if_exists(p)?;
        }
        Ok(Some(Stopped {
            instance: recorded,
            unreadable,
            pids,
            was_running,
            log_tail,
        }))
    }

    /// True when the recorded pid is still this QEMU: a live process whose command line names
    /// this instance's QMP socket (a recycled pid will not).
    pub fn is_alive(&self) -> bool {
        let proc = PathBuf::from(format!("/proc/{}", self.pid));
        let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
            return false;
        };
        // Field 3 is the state; a zombie has exited already.
        if stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            == Some("Z")
        {
            return false;
        }
        let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let qmp = self.qmp_socket.display().to_string();
        args.first().is_some_and(|a| {
            Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a))
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu-system"))
        }) && args
            .iter()
            .any(|a| String::from_utf8_lossy(a).contains(&qmp))
    }

    /// The last lines QEMU wrote to its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    fn dead_error(&self) -> VboardError {
        VboardError::Dead {
            board: self.board.clone(),
            pid: self.pid,
            log: self.log.clone(),
            log_tail: self.log_tail(),
        }
    }

    fn qmp_error(&self, reason: String) -> VboardError {
        VboardError::Qmp {
            board: self.board.clone(),
            socket: self.qmp_socket.clone(),
            log: self.log.clone(),
            reason,
        }
    }

    /// Asks QEMU to quit over QMP, then SIGTERM, then SIGKILL, each with a deadline.
    fn terminate(&self) {
        if let Ok(mut q) = Qmp::connect(&self.qmp_socket) {
            let _ = q.execute("quit");
            if self.wait_gone(Duration::from_secs(5)) {
                return;
            }
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        if self.is_alive() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            if self.wait_gone(Duration::from_secs(5)) {
                return;
            }
        }
        if self.is_alive() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            self.wait_gone(Duration::from_secs(5));
        }
    }

    fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// Which console the virtual board's record says its firmware booted to (`None` for a board
/// that is not virtual or has no record): how repl and stress tell the reference firmware from
/// MicroPython without talking to the board.
pub fn recorded_console(board: &Board) -> Option<Console> {
    machine_of(board).ok()?;
    Instance::read_record(&board.name)
        .ok()
        .flatten()
        .map(|i| i.console)
}

/// The hard reset of a virtual board, the only one: start the recorded image again on a new
/// QEMU. The record may name a QEMU that died: a crashed board is exactly what gets restarted.
pub fn restart(board: &Board) -> Result<Instance, VboardError> {
    let old = Instance::read_record(&board.name)?.ok_or_else(|| VboardError::NotRunning {
        board: board.name.clone(),
    })?;
    Instance::start(board, &old.image, &StartOptions::default())
}

/// UART0 of a running virtual board, as a [`Link`]; its hard reset restarts QEMU.
pub struct UartLink {
    board: Board,
    inner: SerialLink,
}

impl UartLink {
    pub fn open(board: &Board, pty: &Path) -> Result<UartLink, LinkError> {
        Ok(UartLink {
            board: board.clone(),
            inner: SerialLink::open(pty, 115_200, false)?,
        })
    }
}

impl Link for UartLink {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inner.read(buf, timeout)
    }
    fn write_all(&mut self, data: &[u8]) -> Result<(), LinkError> {
        self.inner.write_all(data)
    }
    fn reset(&mut self) -> Result<(), LinkError> {
        let new = restart(&self.board).map_err(|e| match e {
            VboardError::NotRunning { board } => LinkError::NoDevice {
                what: format!("the virtual board `{board}` is not running"),
                help: format!("start it with `mpfr flash --board {board}`"),
            },
            e => LinkError::Unsupported {
                what: format!(
                    "cannot restart the virtual board `{}`: {e}",
                    self.board.name
                ),
                help: format!(
                    "start it again with `mpfr flash --board {}`",
                    self.board.name
                ),
            },
        })?;
        self.inner = SerialLink::open(&new.uart_pty, 115_200, false)?;
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} (UART0 of {})", self.inner.describe(), self.board.name)
    }
}

/// `board`'s lock (see [`crate::util::lock`]), waiting silently; commands that want to say
/// they wait take it first themselves (it is re-entrant).
pub fn lock(board: &str) -> Result<BoardLock, VboardError> {
    lock_board(board, |_| {}).map_err(io(format!(
        "cannot lock {}",
        crate::util::lock::lock_path(board).display()
    )))
}

fn remove_if_exists(p: &Path) -> Result<(), VboardError> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("cannot remove {}", p.display()))(e)),
    }
}

/// Live QEMU processes whose QMP server is `qmp` (the exact `-qmp` argument mpfr passes), found
/// through /proc. The path lies in this user's state directory and names the board, so no
/// other board's or user's QEMU matches.
fn qemus_serving(qmp: &Path) -> Vec<u32> {
    let want = format!("unix:{},server=on,wait=off", qmp.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let is_qemu = args.next().is_some_and(|a| {
            Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a))
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu-system"))
        });
        if !is_qemu {
            continue;
        }
        let args: Vec<&[u8]> = args.collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"-qmp" && w[1] == want.as_bytes())
        {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            if !zombie {
                found.push(pid);
            }
        }
    }
    found
}

/// The last 20 lines of a log file (or a note that it is empty).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    // The guest can write there (semihosting, QEMU's own messages quoting it).
    let tail = crate::util::sanitize::escape_text(&tail, 4000);
    if tail.trim().is_empty() {
        "(QEMU wrote nothing)".to_string()
    } else {
        tail
    }
}

// ---------------------------------------------------------------------------------------------
// QMP: one JSON object per line; asynchronous events may come between a command and its reply.

struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path) -> std::io::Result<Qmp> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let writer = s.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(s),
            writer,
        };
        let greeting = q.read_value()?;
        if greeting.get("QMP").is_none() {
            return Err(std::io::Error::other("no QMP greeting"));
        }
        q.execute("qmp_capabilities")
            .map_err(std::io::Error::other)?;
        Ok(q)
    }

    fn read_value(&mut self) -> std::io::Result<serde_json::Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "QMP closed the connection",
            ));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    fn execute(&mut self, cmd: &str) -> Result<serde_json::Value, String> {
        let msg = serde_json::json!({ "execute": cmd });
        writeln!(self.writer, "{msg}").map_err(|e| format!("{cmd}: {e}"))?;
        loop {
            let v = match self.read_value() {
                Ok(v) => v,
                // `quit` may close the socket before answering.
                Err(e) if cmd == "quit" && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(serde_json::Value::Null);
                }
                Err(e) => return Err(format!("{cmd}: {e}")),
            };
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(format!("{cmd}: {e}"));
            }
        }
    }

    /// The pty path of chardev `label` (QEMU reports it as `pty:/dev/pts/N`).
    fn uart_pty(&mut self, label: &str) -> Result<PathBuf, String> {
        let r = self.execute("query-chardev")?;
        pty_of(&r, label).ok_or_else(|| format!("no pty chardev `{label}` in {r}"))
    }
}

fn pty_of(query_chardev: &serde_json::Value, label: &str) -> Option<PathBuf> {
    query_chardev.as_array()?.iter().find_map(|c| {
        (c.get("label")?.as_str()? == label)
            .then(|| {
                c.get("filename")?
                    .as_str()?
                    .strip_prefix("pty:")
                    .map(PathBuf::from)
            })
            .flatten()
    })
}

// ---------------------------------------------------------------------------------------------
// UART0 console detection.

/// What the bytes seen so far on UART0 say about the console.
pub fn classify(seen: &[u8]) -> Option<Console> {
    let has = |n: &[u8]| seen.windows(n.len()).any(|w| w == n);
    if has(b"mpfr-ref ") {
        Some(Console::Reference)
    } else if has(b"MicroPython v") || has(b">>> ") {
        Some(Console::Micropython)
    } else {
        None
    }
}

/// Reads UART0 until it shows a console or `timeout` passes; sends `\r` now and then to provoke
/// a prompt from firmware that printed its banner before we looked.
fn detect_console(
    uart: &mut dyn Link,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<Console, VboardError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut seen = Vec::new();
    let mut next_poke = start + Duration::from_millis(1500);
    let mut buf = [0u8; 512];
    loop {
        let now = Instant::now();
        if now >= deadline || !alive() {
            // A reference banner may have scrolled past: a bare `ref> ` prompt still tells.
            if seen.windows(5).any(|w| w == b"ref> ") {
                return Ok(Console::Reference);
            }
            return Ok(Console::Unknown);
        }
        if now >= next_poke {
            let _ = uart.write_all(b"\r");
            next_poke = now + Duration::from_secs(2);
        }
        let wait = deadline
            .min(next_poke)
            .saturating_duration_since(now)
            .min(Duration::from_millis(200));
        match uart.read(&mut buf, wait) {
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            // QEMU closed the pty (it exited): `alive` says so on the next turn.
            Err(_) => std::thread::sleep(wait),
        }
        if let Some(c) = classify(&seen) {
            return Ok(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's log (which the guest can write to) is quoted in errors escaped.
    #[test]
    fn the_qemu_log_in_errors_is_escaped() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("qemu.log");
        std::fs::write(&log, "ok\nguest: \x1b[2J\x1b]0;t\x07\u{202e}\r\n").expect("log");
        let t = log_tail(&log);
        assert_eq!(t, "ok\nguest: \\x1b[2J\\x1b]0;t\\x07\\u{202e}");
    }

    use crate::board::builtin as board;

    #[test]
    fn qemu_answers_semihosting_itself() {
        let b = board("qemu-mps2-an385");
        let files = Files::for_board(&b.name);
        let mut machine = machine_of(&b).unwrap().clone();
        machine.args = vec!["-global".into(), "x.y=true".into()];
        let args = qemu_args(&machine, Path::new("fw.elf"), &files);
        assert_eq!(args[..2], ["-M", "mps2-an385"]);
        // The machine's own flags are passed as they are written.
        assert!(
            args.windows(2).any(|w| w == ["-global", "x.y=true"]),
            "{args:?}"
        );
        let i = args
            .iter()
            .position(|a| a == "-semihosting-config")
            .expect("semihosting on");
        assert_eq!(args[i + 1], "enable=on,target=native");
        assert!(args.iter().any(|a| a == "-S"), "{args:?}");
    }

    #[test]
    fn classify_consoles() {
        assert_eq!(
            classify(b"mpfr-ref 0.1 board=qemu-mps2-an385 fingerprint=0x00000000\r\nref> "),
            Some(Console::Reference)
        );
        assert_eq!(
            classify(b"MicroPython v1.27.0 on 2025-01-01; mps2-an385\r\n"),
            Some(Console::Micropython)
        );
        assert_eq!(classify(b"\r\n>>> "), Some(Console::Micropython));
        assert_eq!(classify(b"booting..."), None);
        // Split anywhere, the full text still classifies once all bytes are in.
        let text = b"xx mpfr-ref board=q";
        for cut in 0..text.len() {
            let mut seen = text[..cut].to_vec();
            seen.extend_from_slice(&text[cut..]);
            assert_eq!(classify(&seen), Some(Console::Reference));
        }
    }

    #[test]
    fn machine_from_the_board_data() {
        assert_eq!(
            machine_of(&board("qemu-mps2-an385")).unwrap().machine,
            "mps2-an385"
        );
        assert!(matches!(
            machine_of(&board("rpi-pico")),
            Err(VboardError::NotQemu { .. })
        ));
    }

    #[test]
    fn pty_from_query_chardev() {
        let v = serde_json::json!([
            {"frontend-open": true, "filename": "unix:/tmp/x.gdb,server=on", "label": "gdb0"},
            {"frontend-open": true, "filename": "pty:/dev/pts/7", "label": "uart0"}
        ]);
        assert_eq!(pty_of(&v, "uart0"), Some(PathBuf::from("/dev/pts/7")));
        assert_eq!(pty_of(&v, "gdb0"), None);
        assert_eq!(pty_of(&serde_json::json!({}), "uart0"), None);
    }

    #[test]
    fn record_round_trips_with_contract_field_names() {
        let i = Instance {
            board: "qemu-mps2-an385".into(),
            pid: 42,
            uart_pty: "/dev/pts/3".into(),
            gdb_socket: "/s/q.gdb".into(),
            qmp_socket: "/s/q.qmp".into(),
            image: "/fw.elf".into(),
            firmware: Firmware::Reference,
            console: Console::Reference,
            log: "/s/q.log".into(),
            started_unix: 7,
        };
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["console"], "reference");
        assert_eq!(v["firmware"], "reference");
        assert_eq!(v["uart_pty"], "/dev/pts/3");
        let back: Instance = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, i);
        // A record from before the firmware field still reads.
        let mut old = v;
        old.as_object_mut().unwrap().remove("firmware");
        let back: Instance = serde_json::from_value(old).unwrap();
        assert_eq!(back.firmware, Firmware::Other);
    }

    #[test]
    fn the_firmware_kind_comes_from_the_symbol_table() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("plain.elf");
        std::fs::write(&plain, crate::image::tests::elf32(40, 0, &[(0, &[1; 16])])).unwrap();
        assert_eq!(Firmware::of_image(&plain), Firmware::Other);
        assert_eq!(
            Firmware::of_image(&d.path().join("missing.elf")),
            Firmware::Other
        );
        assert_eq!(Firmware::Micropython.console(), Console::Micropython);
        assert_eq!(Firmware::Reference.console(), Console::Reference);
    }

    #[test]
    fn a_pid_that_is_not_our_qemu_is_not_alive() {
        let i = Instance {
            board: "qemu-mps2-an385".into(),
            pid: std::process::id(),
            uart_pty: "/dev/null".into(),
            gdb_socket: "/nonexistent.gdb".into(),
            qmp_socket: "/nonexistent.qmp".into(),
            image: "/fw.elf".into(),
            firmware: Firmware::Other,
            console: Console::Unknown,
            log: "/nonexistent.log".into(),
            started_unix: 0,
        };
        // Our own pid is alive but is not QEMU: never treat (or kill) it as the board.
        assert!(!i.is_alive());
        assert_eq!(i.log_tail(), "(QEMU wrote nothing)");
    }
}
