//! A QEMU mps2-an385 guest for tests: UART0 on the child's stdio, QMP on a unix socket, killed
//! and reaped on drop (also when a test panics).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Generous: the CI machine has two cores and runs tests in parallel.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Qemu {
    child: Child,
    stdin: ChildStdin,
    uart: Arc<Mutex<Vec<u8>>>,
    qmp: UnixStream,
    dir: tempfile::TempDir,
}

impl Qemu {
    /// Boots `elf` and connects to QMP.
    pub fn boot(elf: &Path) -> Qemu {
        let dir = tempfile::tempdir().expect("temp dir");
        let qmp_path = dir.path().join("qmp.sock");
        let mut child = Command::new("qemu-system-arm")
            .args(["-M", "mps2-an385", "-nographic", "-monitor", "none"])
            .args(["-serial", "stdio", "-kernel"])
            .arg(elf)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .arg("-gdb")
            .arg(format!(
                "unix:{},server=on,wait=off",
                dir.path().join("gdb.sock").display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-arm must be installed (scripts/setup.sh)");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let uart = Arc::new(Mutex::new(Vec::new()));
        let sink = uart.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("uart lock").extend_from_slice(&buf[..n]);
            }
        });
        let qmp = crate::wait_for("QEMU's QMP socket", DEADLINE, || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("qemu exited ({st}) before its QMP socket appeared");
            }
            UnixStream::connect(&qmp_path)
        });
        qmp.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut q = Qemu {
            child,
            stdin,
            uart,
            qmp,
            dir,
        };
        q.qmp_read_reply(); // greeting
        q.qmp(r#"{"execute":"qmp_capabilities"}"#);
        q
    }

    fn qmp_read_reply(&mut self) -> serde_json::Value {
        let mut r = BufReader::new(self.qmp.try_clone().expect("clone"));
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).expect("QMP read");
            assert!(n > 0, "QMP closed");
            let v: serde_json::Value = serde_json::from_str(&line).expect("QMP JSON");
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    /// Sends one QMP command and returns its reply (panics on an error reply).
    pub fn qmp(&mut self, cmd: &str) -> serde_json::Value {
        self.qmp.write_all(cmd.as_bytes()).expect("QMP write");
        self.qmp.write_all(b"\n").expect("QMP write");
        let v = self.qmp_read_reply();
        assert!(v.get("error").is_none(), "QMP error for {cmd}: {v}");
        v
    }

    /// Reads guest physical memory while the guest runs (QMP pmemsave into a temp file).
    pub fn read_mem(&mut self, addr: u32, len: u32) -> Vec<u8> {
        let file = self.dir.path().join("mem.bin");
        let cmd = serde_json::json!({
            "execute": "pmemsave",
            "arguments": {"val": addr, "size": len, "filename": file},
        });
        self.qmp(&cmd.to_string());
        std::fs::read(&file).expect("pmemsave output")
    }

    /// The gdbstub's unix socket.
    pub fn gdb_socket(&self) -> std::path::PathBuf {
        self.dir.path().join("gdb.sock")
    }

    /// Everything UART0 printed so far.
    pub fn uart(&self) -> String {
        String::from_utf8_lossy(&self.uart.lock().expect("uart lock")).into_owned()
    }

    pub fn send(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).expect("uart write");
        self.stdin.write_all(b"\r").expect("uart write");
        self.stdin.flush().expect("uart flush");
    }

    /// Waits until UART0 output after byte `from` satisfies `found`, returning it.
    pub fn wait_uart<T>(&mut self, from: usize, mut found: impl FnMut(&str) -> Option<T>) -> T {
        crate::wait_for("the console", DEADLINE, || {
            let text = self.uart();
            if let Some(t) = found(text.get(from..).unwrap_or("")) {
                return Ok(t);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("qemu exited ({st}); console:\n{text}");
            }
            Err(text)
        })
    }

    /// Sends a console command and returns its `RESULT <name> ...` line.
    pub fn command_result(&mut self, cmd: &str, name: &str) -> String {
        let from = self.uart().len();
        self.send(cmd);
        let tag = format!("RESULT {name} ");
        self.wait_uart(from, |t| {
            // Only whole lines: up to the last newline.
            let whole = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
            whole
                .lines()
                .find(|l| l.starts_with(&tag))
                .map(|l| l.trim_end().to_string())
        })
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Address of a global symbol in an ELF, read with arm-none-eabi-nm.
pub fn symbol(elf: &Path, name: &str) -> Option<u32> {
    let out = Command::new("arm-none-eabi-nm").arg(elf).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let addr = f.next()?;
        let _kind = f.next()?;
        (f.next()? == name).then(|| u32::from_str_radix(addr, 16).ok())?
    })
}
