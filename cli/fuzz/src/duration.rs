//! The duration parser (`--duration 1h30m`, `--timeout 2.5s`): never panics, accepts only
//! finite non-negative durations, and its own printed form of whole seconds parses back.

use mpfr::fuzzing::{format_duration, parse_duration};

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        let back = parse_duration(&shown)
            .unwrap_or_else(|e| panic!("{text:?} gave {d:?}, printed {shown:?}, refused: {e}"));
        // The printed form rounds (to 10 ms under a minute, to the second or minute above).
        let slack = std::time::Duration::from_secs(60);
        assert!(
            back.abs_diff(d) <= slack,
            "{text:?} gave {d:?}, printed {shown:?}, read back {back:?}"
        );
    }
}
