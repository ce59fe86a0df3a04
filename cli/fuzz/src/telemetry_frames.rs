//! The telemetry frame decoder (RTT bytes from the target's agent): any split of the stream
//! gives the same frames and counters as one feed, every decoded frame encodes and decodes back
//! to itself, and task-table parts assemble without panicking.

use mpfr_firmware::protocol::{Decoder, Frame, TaskTable, encode};

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut one = Decoder::new();
    let whole = one.feed(stream);

    let mut chunked = Decoder::new();
    let mut split = Vec::new();
    let mut rest = stream;
    let mut k = usize::from(seed) | 1;
    while !rest.is_empty() {
        let n = (k % 29 + 1).min(rest.len());
        split.extend(chunked.feed(&rest[..n]));
        rest = &rest[n..];
        k = k.wrapping_mul(17).wrapping_add(n);
    }
    assert_eq!(whole, split, "a chunked feed differs from one feed");
    assert_eq!(one.stats(), chunked.stats(), "counters differ");

    let mut table = TaskTable::default();
    for frame in &whole {
        if let Frame::Tasks(part) = frame {
            let _ = table.add(part);
        }
        let bytes = encode(7, frame).unwrap_or_else(|e| panic!("{frame:?} does not encode: {e}"));
        let back = Decoder::new().feed(&bytes);
        assert_eq!(back, vec![frame.clone()], "round trip of {frame:?}");
    }
}
