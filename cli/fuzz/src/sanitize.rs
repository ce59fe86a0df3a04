//! The streaming sanitiser for device text: any split of the input into chunks gives the same
//! output as one feed, and what a reader decodes from the output holds no escape sequence, no
//! C0 or C1 control but tab and newline, no DEL, no bidi override or isolate and no Unicode line
//! or paragraph separator.

use mpfr::fuzzing::Sanitizer;

/// One fuzz input.
pub fn run(data: &[u8]) {
    // The first byte picks chunk sizes; the rest is the device's output.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    let mut s = Sanitizer::new();
    s.feed(input, &mut whole);
    s.finish(&mut whole);

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
    s.finish(&mut split);
    assert_eq!(whole, split, "a chunked feed differs from one feed");

    // As the terminal, log or JSON reader sees it: bytes that are not UTF-8 become U+FFFD.
    for (i, c) in String::from_utf8_lossy(&whole).chars().enumerate() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        let separator = matches!(c, '\u{2028}' | '\u{2029}');
        assert!(
            c == '\n' || c == '\t' || !(c.is_control() || bidi || separator),
            "{c:?} kept at character {i}"
        );
    }
}
