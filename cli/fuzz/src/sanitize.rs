//! The streaming sanitiser for device text: any split of the input into chunks gives the same
//! output as one feed, and the output holds no escape sequence or control character (ESC,
//! other C0 controls but tab and newline, DEL).

use mpfr::fuzzing::Sanitizer;

/// One fuzz input.
pub fn run(data: &[u8]) {
    // The first byte picks chunk sizes; the rest is the device's output.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    Sanitizer::new().feed(input, &mut whole);

    let mut split = Vec::new();
    let mut s = Sanitizer::new();
    let mut rest = input;
    let mut k = usize::from(seed);
    while !rest.is_empty() {
        let n = (k % 7 + 1).min(rest.len());
        s.feed(&rest[..n], &mut split);
        rest = &rest[n..];
        k = k / 7 + usize::from(seed) + n;
    }
    assert_eq!(whole, split, "a chunked feed differs from one feed");

    for (i, &b) in whole.iter().enumerate() {
        assert!(
            b == b'\n' || b == b'\t' || (b >= 0x20 && b != 0x7f),
            "control byte {b:#04x} kept at {i}"
        );
    }
}
