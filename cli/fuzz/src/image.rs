//! The firmware image loaders (ELF, Intel HEX, UF2, ESP app image, raw binary, and format
//! detection): never panic, and what they accept has address-ordered, non-empty segments,
//! touching ones merged, that hold no more bytes than the file. An accepted image that lies in
//! RP2 flash goes through the UF2 writer (`mpfr flash` to a BOOTSEL drive) and reads back as
//! the same flash pages.

use std::path::Path;

use mpfr::fuzzing::{FAMILY_RP2040, ImageFormat, parse_image, uf2_encode, uf2_pages};

/// One fuzz input.
pub fn run(data: &[u8]) {
    // The first byte picks the format (as `--format` would), or detection by content.
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let format = match pick % 6 {
        0 => None,
        1 => Some(ImageFormat::Elf),
        2 => Some(ImageFormat::Hex),
        3 => Some(ImageFormat::Uf2),
        4 => Some(ImageFormat::EspApp),
        _ => Some(ImageFormat::Bin),
    };
    let base = (pick & 0x80 != 0).then_some(0x1000_0000);
    let Ok(img) = parse_image(Path::new("fuzz.img"), bytes.to_vec(), format, base) else {
        return;
    };
    for (i, s) in img.segments.iter().enumerate() {
        assert!(!s.data.is_empty(), "segment {i} is empty");
        if let Some(prev) = i.checked_sub(1).map(|p| &img.segments[p]) {
            assert!(s.addr >= prev.addr, "segment {i} is out of order");
            assert!(
                s.addr != prev.range().end,
                "segment {i} touches the one before"
            );
        }
    }
    // Run-length or repeated records could claim more, but every loader copies file bytes:
    // never more data than the file has (HEX text holds at most one byte per two characters).
    assert!(
        img.total_bytes() <= bytes.len() as u64,
        "more data than the file has"
    );
    // Only images placed in flash have pages; anything else is refused, which is not a bug.
    let Ok(pages) = uf2_pages(&img) else {
        return;
    };
    let uf2 = uf2_encode(&pages, FAMILY_RP2040);
    let back = parse_image(Path::new("fuzz.uf2"), uf2, Some(ImageFormat::Uf2), None)
        .expect("the UF2 writer's output loads");
    assert_eq!(back.uf2_family, Some(FAMILY_RP2040), "the family is lost");
    let again = uf2_pages(&back).expect("pages read back lie in flash");
    assert!(again == pages, "the UF2 written reads back as other pages");
}
