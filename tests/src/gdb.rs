//! A minimal GDB remote-protocol client for tests: halt, read and write memory, continue.
//! (The product's full client lives in `mpfr::device::memory`; this one only has to reach guest RAM.)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct Gdb {
    s: UnixStream,
}

fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

impl Gdb {
    /// Connects to QEMU's gdbstub (which stops the guest on attach) and continues the guest.
    pub fn connect(path: &Path, deadline: Duration) -> Gdb {
        let s = crate::wait_for("QEMU's gdb socket", deadline, || UnixStream::connect(path));
        s.set_read_timeout(Some(deadline)).expect("timeout");
        let mut g = Gdb { s };
        // QEMU announces the attach stop unasked, then answers `?` with another stop packet:
        // a memory read afterwards brings the stream in step (its reply is the first non-stop).
        g.send("?");
        let _ = g.read(0, 4);
        g.cont();
        g
    }

    fn send(&mut self, body: &str) {
        let pkt = format!("${body}#{:02x}", checksum(body.as_bytes()));
        self.s.write_all(pkt.as_bytes()).expect("gdb write");
    }

    /// Reads one packet, acknowledging it; skips acks and notifications.
    fn recv(&mut self) -> String {
        let mut byte = [0u8; 1];
        loop {
            self.s.read_exact(&mut byte).expect("gdb read");
            if byte[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            self.s.read_exact(&mut byte).expect("gdb read");
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut cs = [0u8; 2];
        self.s.read_exact(&mut cs).expect("gdb read");
        self.s.write_all(b"+").expect("gdb ack");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Sends a command and returns its reply, skipping stop packets (never a memory reply).
    fn command(&mut self, body: &str) -> String {
        self.send(body);
        loop {
            let r = self.recv();
            if !(r.starts_with('T') || r.starts_with('S')) {
                return r;
            }
        }
    }

    /// Stops the guest (Ctrl-C) and waits for the stop reply.
    pub fn halt(&mut self) {
        self.s.write_all(&[0x03]).expect("gdb interrupt");
        let r = self.recv();
        assert!(r.starts_with('T') || r.starts_with('S'), "stop reply {r}");
    }

    pub fn cont(&mut self) {
        self.send("c");
    }

    pub fn read(&mut self, addr: u32, len: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(len as usize);
        let mut a = addr;
        while out.len() < len as usize {
            let n = (len as usize - out.len()).min(1024);
            let r = self.command(&format!("m{a:x},{n:x}"));
            assert!(!r.starts_with('E') && r.len() == 2 * n, "read {a:#x}: {r}");
            for i in 0..n {
                out.push(u8::from_str_radix(&r[2 * i..2 * i + 2], 16).expect("hex"));
            }
            a += n as u32;
        }
        out
    }

    pub fn write(&mut self, addr: u32, data: &[u8]) {
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        let r = self.command(&format!("M{addr:x},{:x}:{hex}", data.len()));
        assert_eq!(r, "OK", "write {addr:#x}");
    }
}
