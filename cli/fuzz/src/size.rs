//! The size parser (`8KiB`, `1M`, board files and `--heap`): never panics, and what it accepts
//! prints in a form that parses back to the same size.

use mpfr::fuzzing::Size;

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(size) = text.parse::<Size>() {
        let shown = size.to_string();
        assert_eq!(
            shown.parse::<Size>(),
            Ok(size),
            "{text:?} printed as {shown:?}"
        );
    }
    // Every size prints and parses back, whatever produced it.
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let shown = Size(n).to_string();
        assert_eq!(
            shown.parse::<Size>(),
            Ok(Size(n)),
            "{n} printed as {shown:?}"
        );
    }
}
