//! The GDB remote protocol reply parser (QEMU's gdbstub): any split of a reply stream gives the
//! same events as one feed, and every packet body the client frames comes back as one packet.

use mpfr::fuzzing::{GdbEvent, PacketParser, decode_body, encode_packet};

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    PacketParser::new().feed(stream, &mut whole);

    let mut split = Vec::new();
    let mut p = PacketParser::new();
    let mut rest = stream;
    let mut k = usize::from(seed) | 1;
    while !rest.is_empty() {
        let n = (k % 13 + 1).min(rest.len());
        p.feed(&rest[..n], &mut split);
        rest = &rest[n..];
        k = k.wrapping_mul(31).wrapping_add(n);
    }
    assert_eq!(whole, split, "a chunked feed differs from one feed");

    // Round trip: a body framed by the client is one intact packet for the parser (up to the
    // parser's 64 KiB body limit).
    let framed = encode_packet(stream);
    if framed.len() < 60_000 {
        let mut events = Vec::new();
        PacketParser::new().feed(&framed, &mut events);
        assert_eq!(events, vec![GdbEvent::Packet(stream.to_vec())]);
    }

    // Run-length expansion is bounded: at most 113 bytes out per 2 bytes in.
    assert!(decode_body(stream).len() <= stream.len() * 113 + 1);
}
