//! The RTT control-block validator and ring reader over a fake target memory that the fuzzer
//! fills, and that the "target" keeps writing to between the host's reads (as a running target
//! does). The reader must never touch memory outside RAM, never hand out more than a ring holds,
//! and only ever write read offsets inside their ring (and down-channel data inside its ring).

// One RAM range, written as the one-element list the reader takes.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;
use std::path::PathBuf;

use mpfr::fuzzing::{ElfInfo, Locator, Memory, Rtt, TargetError};

const RAM: u64 = 0x2000_0000;
const RAM_LEN: usize = 4096;
const MAGIC: &[u8; 11] = b"SEGGER RTT\0";

/// RAM the fuzzer wrote, plus the target's own writes, one applied before each host read.
struct FakeTarget {
    ram: Vec<u8>,
    racing: Vec<(usize, [u8; 4])>,
    writes: Vec<(u64, Vec<u8>)>,
}

impl FakeTarget {
    fn slot(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let off = usize::try_from(addr.checked_sub(RAM)?).ok()?;
        self.ram.get_mut(off..off.checked_add(len)?)
    }

    fn outside(op: &'static str, addr: u64, len: usize) -> TargetError {
        TargetError::Access {
            op,
            addr,
            len,
            target: "fuzz".into(),
            why: "outside RAM".into(),
        }
    }
}

impl Memory for FakeTarget {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        if let Some((off, word)) = self.racing.pop() {
            self.ram[off..off + 4].copy_from_slice(&word);
        }
        let len = buf.len();
        let m = self
            .slot(addr, len)
            .ok_or_else(|| Self::outside("read", addr, len))?;
        buf.copy_from_slice(m);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.writes.push((addr, data.to_vec()));
        let m = self
            .slot(addr, data.len())
            .ok_or_else(|| Self::outside("write", addr, data.len()))?;
        m.copy_from_slice(data);
        Ok(())
    }

    fn ram_ranges(&self) -> Vec<Range<u64>> {
        vec![RAM..RAM + RAM_LEN as u64]
    }

    fn describe(&self) -> String {
        "fuzz target".into()
    }
}

fn word(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    for (i, x) in w.iter_mut().enumerate() {
        *x = b.get(at + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(w)
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let flags = data[0];
    let cb = (usize::from(data[1]) * 8) % (RAM_LEN - 64);
    let setup_len = usize::from(u16::from_le_bytes([data[2], data[3]])).min(data.len() - 4);
    let (setup, tail) = data[4..].split_at(setup_len);

    let mut ram = vec![0u8; RAM_LEN];
    let n = setup.len().min(RAM_LEN - cb);
    ram[cb..cb + n].copy_from_slice(&setup[..n]);
    if flags & 1 != 0 {
        ram[cb..cb + MAGIC.len()].copy_from_slice(MAGIC);
    }
    if flags & 2 != 0 {
        // Descriptors that point into RAM with small rings: past the validator more often.
        for i in 0..6 {
            let d = cb + 24 + i * 24;
            if d + 24 > RAM_LEN {
                break;
            }
            let buf = RAM + u64::from(word(&ram, d + 4)) % RAM_LEN as u64;
            let size = word(&ram, d + 8) % 600;
            ram[d + 4..d + 8].copy_from_slice(&(buf as u32).to_le_bytes());
            ram[d + 8..d + 12].copy_from_slice(&size.to_le_bytes());
            for at in [d + 12, d + 16] {
                let v = word(&ram, at) % size.max(1);
                ram[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    // The target's writes while the host reads: 6 bytes each, an offset and a word.
    let mut racing: Vec<(usize, [u8; 4])> = tail
        .chunks_exact(6)
        .map(|c| {
            let off = usize::from(u16::from_le_bytes([c[0], c[1]])) % (RAM_LEN - 3);
            (off, [c[2], c[3], c[4], c[5]])
        })
        .collect();
    racing.reverse();

    let mut mem = FakeTarget {
        ram,
        racing,
        writes: Vec::new(),
    };
    let locator = Locator {
        elf: (flags & 4 != 0).then(|| ElfInfo {
            path: PathBuf::from("fuzz.elf"),
            symbol: Some(RAM + cb as u64),
            symbols: 1,
        }),
        scan: vec![RAM..RAM + RAM_LEN as u64],
    };
    let mut rtt = Rtt::new(locator);
    let _ = rtt.attach(&mut mem);
    for round in 0..3 {
        mem.writes.clear();
        let poll = rtt
            .poll(&mut mem)
            .unwrap_or_else(|e| panic!("poll {round} failed on a target whose RAM answers: {e}"));
        let Some(block) = rtt.block() else {
            assert!(poll.data.is_empty(), "data without a block");
            continue;
        };
        for (index, bytes) in &poll.data {
            let c = &block.up[*index];
            assert!(
                bytes.len() < c.size as usize,
                "up {index}: {} bytes out of a {}-byte ring",
                bytes.len(),
                c.size
            );
        }
        for (addr, bytes) in &mem.writes {
            let c = block
                .up
                .iter()
                .find(|c| c.desc + 16 == *addr)
                .unwrap_or_else(|| panic!("wrote {bytes:?} at {addr:#x}, not a read offset"));
            assert_eq!(bytes.len(), 4);
            let rd = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert!(
                rd < c.size,
                "read offset {rd} outside a {}-byte ring",
                c.size
            );
        }
    }
    // The host's side of a down channel: data lands inside its ring, offsets stay inside.
    let down = rtt.block().and_then(|b| b.down.first().cloned());
    mem.writes.clear();
    if let (Some(c), Ok(n)) = (down, rtt.write_down(&mut mem, 0, b"print('fuzz')\r\n")) {
        assert!(n <= 15);
        for (addr, bytes) in &mem.writes {
            let in_ring =
                *addr >= c.buffer && addr + bytes.len() as u64 <= c.buffer + c.size as u64;
            let is_wr = *addr == c.desc + 12 && bytes.len() == 4;
            assert!(
                in_ring || is_wr,
                "down write of {} bytes at {addr:#x}",
                bytes.len()
            );
        }
    }
}
