//! Memory access to a running target, behind one small trait: the QEMU gdbstub (virtual board),
//! a debug probe through probe-rs (real boards) and `/proc` (the host board's process).

pub mod gdb;
pub mod probe;
pub mod procfs;

use std::ops::Range;

use miette::Diagnostic;

/// Reads and writes a target's memory while it keeps running (or stops it as briefly as the
/// transport allows). Addresses are target addresses; buffers are filled completely or an error
/// says why.
pub trait Memory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError>;
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError>;

    /// Starts a batch of accesses that should see one consistent state: transports that must
    /// stop the target to access memory (QEMU's gdbstub) stop it once here instead of once per
    /// access. Pair every `hold` with a [`Memory::release`].
    fn hold(&mut self) -> Result<(), TargetError> {
        Ok(())
    }

    /// Ends a batch started with [`Memory::hold`]: the target runs again.
    fn release(&mut self) -> Result<(), TargetError> {
        Ok(())
    }

    /// RAM the target has, where an RTT control block may live.
    fn ram_ranges(&self) -> Vec<Range<u64>>;

    /// Where the memory is, for messages (`QEMU gdbstub at /run/..`, `probe 2e8a:000c`).
    fn describe(&self) -> String;
}

/// Little-endian word helpers shared by the layers above.
pub fn read_u32(mem: &mut dyn Memory, addr: u64) -> Result<u32, TargetError> {
    let mut b = [0u8; 4];
    mem.read(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

pub fn write_u32(mem: &mut dyn Memory, addr: u64, v: u32) -> Result<(), TargetError> {
    mem.write(addr, &v.to_le_bytes())
}

/// What went wrong reaching a target's memory.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum TargetError {
    #[error("cannot connect to the QEMU gdbstub at {path}")]
    #[diagnostic(
        code(mpfr::target::gdb_connect),
        help(
            "is the virtual board running? Start it with `mpfr flash --board <virtual board>`; QEMU must run with `-gdb chardev:..` on this socket"
        )
    )]
    GdbConnect {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the QEMU gdbstub at {path} stopped answering ({what})")]
    #[diagnostic(
        code(mpfr::target::gdb_io),
        help(
            "QEMU may have exited or another debugger holds the socket; check the board's QEMU log"
        )
    )]
    GdbIo {
        path: String,
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the QEMU gdbstub did not answer {what} within {secs} s")]
    #[diagnostic(
        code(mpfr::target::gdb_timeout),
        help(
            "QEMU serves one debugger at a time: stop any gdb or other `mpfr threads top` attached to this board; if none is, QEMU is hung (`mpfr flash` of the board restarts it)"
        )
    )]
    GdbTimeout { what: String, secs: u64 },

    #[error("the QEMU gdbstub sent an unexpected reply to {what}: {reply:?}")]
    #[diagnostic(
        code(mpfr::target::gdb_protocol),
        help(
            "this QEMU's gdbstub speaks a dialect mpfr does not know; please report it with the QEMU version"
        )
    )]
    GdbProtocol { what: String, reply: String },

    #[error("cannot {op} {len} byte(s) at {addr:#010x} on {target}: {why}")]
    #[diagnostic(
        code(mpfr::target::access),
        help(
            "the address is probably outside the target's memory map (wrong --elf for the running firmware?)"
        )
    )]
    Access {
        op: &'static str,
        addr: u64,
        len: usize,
        target: String,
        why: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Probe(#[from] crate::util::probe::ProbeChoiceError),

    #[error("cannot attach to {chip} through {probe}: {why}")]
    #[diagnostic(
        code(mpfr::target::attach),
        help(
            "check the cable and the board's power, and that no other debugger (probe-rs, OpenOCD, a GDB server) holds the probe"
        )
    )]
    Attach {
        chip: String,
        probe: String,
        why: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Selector(#[from] crate::util::probe::SelectorError),

    #[error("cannot read the threads of process {pid} from /proc: {why}")]
    #[diagnostic(
        code(mpfr::target::procfs),
        help("is the process still running? Give the MicroPython process id with --pid")
    )]
    Procfs { pid: u32, why: String },
}

/// An in-memory target for unit tests of the layers above: a set of RAM regions.
#[cfg(test)]
pub mod fake {
    use super::*;

    #[derive(Debug, Clone)]
    pub struct FakeMemory {
        pub regions: Vec<(u64, Vec<u8>)>,
        pub reads: usize,
        pub holds: usize,
    }

    impl FakeMemory {
        pub fn new(base: u64, size: usize) -> Self {
            FakeMemory {
                regions: vec![(base, vec![0; size])],
                reads: 0,
                holds: 0,
            }
        }

        fn locate(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
            for (base, mem) in &mut self.regions {
                let end = *base + mem.len() as u64;
                if addr >= *base && addr + len as u64 <= end {
                    let off = (addr - *base) as usize;
                    return Some(&mut mem[off..off + len]);
                }
            }
            None
        }

        pub fn poke(&mut self, addr: u64, data: &[u8]) {
            self.locate(addr, data.len())
                .expect("poke inside fake RAM")
                .copy_from_slice(data);
        }

        pub fn poke32(&mut self, addr: u64, v: u32) {
            self.poke(addr, &v.to_le_bytes());
        }

        pub fn peek(&mut self, addr: u64, len: usize) -> Vec<u8> {
            self.locate(addr, len)
                .expect("peek inside fake RAM")
                .to_vec()
        }

        pub fn peek32(&mut self, addr: u64) -> u32 {
            let b = self.peek(addr, 4);
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    }

    impl Memory for FakeMemory {
        fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
            self.reads += 1;
            let len = buf.len();
            match self.locate(addr, len) {
                Some(m) => {
                    buf.copy_from_slice(m);
                    Ok(())
                }
                None => Err(TargetError::Access {
                    op: "read",
                    addr,
                    len,
                    target: "fake".into(),
                    why: "outside RAM".into(),
                }),
            }
        }

        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
            match self.locate(addr, data.len()) {
                Some(m) => {
                    m.copy_from_slice(data);
                    Ok(())
                }
                None => Err(TargetError::Access {
                    op: "write",
                    addr,
                    len: data.len(),
                    target: "fake".into(),
                    why: "outside RAM".into(),
                }),
            }
        }

        fn hold(&mut self) -> Result<(), TargetError> {
            self.holds += 1;
            Ok(())
        }

        fn ram_ranges(&self) -> Vec<Range<u64>> {
            self.regions
                .iter()
                .map(|(b, m)| *b..*b + m.len() as u64)
                .collect()
        }

        fn describe(&self) -> String {
            "fake memory".into()
        }
    }
}
