//! Unit tests of the host side of file operations: parsing the device's answers, encoding
//! data, naming device errors. The device side runs against the real unix port in
//! `tests/tests/e2e/fs_host.rs`.

use super::*;

fn exc(kind: &str, message: &str) -> DeviceException {
    DeviceException {
        traceback: format!("Traceback (most recent call last):\n{kind}: {message}\n"),
        kind: kind.into(),
        message: message.into(),
    }
}

#[test]
fn walk_output_parses_names_sizes_and_hashes() {
    // "lib" = 6c6962, "é z" = c3a9207a
    let out = b"d 0 - 6c6962\r\nf 12 abcd 6c69622fc3a9207a\r\n";
    let e = parse_walk(out, true).unwrap().unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].kind, Kind::Dir);
    assert_eq!(e[0].rel, "lib");
    assert_eq!(e[0].hash, None);
    assert_eq!(e[1].rel, "lib/é z");
    assert_eq!(e[1].size, 12);
    assert_eq!(e[1].hash.as_deref(), Some("abcd"));
    assert!(parse_walk(b"none\r\n", true).unwrap().is_none());
    // The path itself is a file: no name.
    let one = parse_walk(b"f 3 - \r\n", false).unwrap().unwrap();
    assert_eq!(one[0].rel, "");
    assert_eq!(one[0].hash, None);
    assert!(parse_walk(b"x 1 - 61\n", false).is_err());
    assert!(parse_walk(b"f 1 - zz\n", false).is_err());
}

fn caps(base64: bool, deflate: bool) -> Caps {
    Caps {
        hash: HashKind::Sha256,
        base64,
        deflate,
    }
}

/// What the device does with a `_Z` payload: base64, then raw deflate.
fn inflate_b64(b64: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let packed = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::DeflateDecoder::new(&packed[..]),
        &mut back,
    )
    .unwrap();
    back
}

#[test]
fn chunks_use_the_shortest_encoding() {
    let mut text = Vec::new();
    encode_write(b"print('hi')\n", caps(true, true), &mut text);
    assert_eq!(text, b"_W(b'print(\\'hi\\')\\n')\n");
    let mut bin = Vec::new();
    encode_write(&[0u8, 1, 2, 255, 254, 253], caps(true, true), &mut bin);
    assert_eq!(bin, b"_W(_B('AAEC//79'))\n");
    // Without base64 on the device, always a literal.
    let mut lit = Vec::new();
    encode_write(&[0u8, 255], caps(false, false), &mut lit);
    assert_eq!(lit, b"_W(b'\\x00\\xff')\n");
    // Repetitive text travels compressed, and inflates back to itself.
    let src: Vec<u8> = b"def f(x):\n    return x\n".repeat(80);
    let mut z = Vec::new();
    encode_write(&src, caps(true, true), &mut z);
    assert!(z.starts_with(b"_W(_Z('"), "{}", String::from_utf8_lossy(&z));
    assert!(z.len() < src.len() / 4, "{} of {}", z.len(), src.len());
    assert_eq!(inflate_b64(&z[7..z.len() - 4]), src);
    // Not without deflate on the device.
    let mut plain = Vec::new();
    encode_write(&src, caps(true, false), &mut plain);
    assert!(plain.starts_with(b"_W(b'"));
}

#[test]
fn device_errors_are_named_and_explained() {
    let p = RemotePath::parse(":lib/x.py").unwrap();
    let e = FsError::from_device("read", &p, &exc("OSError", "[Errno 2] ENOENT"));
    assert!(matches!(e, FsError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "read :lib/x.py: no such file or directory on the device"
    );
    let help = miette::Diagnostic::help(&e).unwrap().to_string();
    assert!(help.contains("mpfr fs ls :lib"), "{help}");
    let e = FsError::from_device("write", &p, &exc("OSError", "28"));
    assert!(matches!(e, FsError::NoSpace { .. }), "{e:?}");
    let e = FsError::from_device("write", &p, &exc("OSError", "[Errno 30] EROFS"));
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = FsError::from_device("rm", &p, &exc("OSError", "[Errno 21] EISDIR"));
    assert!(e.to_string().contains("EISDIR"), "{e}");
    // Not an OSError: the device's exception as it was.
    let e = FsError::from_device("read", &p, &exc("MemoryError", ""));
    assert!(matches!(e, FsError::Repl(ReplError::Exception(_))), "{e:?}");
}

#[test]
fn local_hashes_match_what_the_device_prints() {
    assert_eq!(
        HashKind::Sha256.of(b"abc").unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // binascii.crc32(b'abc') on MicroPython is 891568578.
    assert_eq!(
        HashKind::Crc32.of(b"abc").unwrap(),
        format!("{:08x}", 891568578u32)
    );
    assert_eq!(HashKind::None.of(b"abc"), None);
}

#[test]
fn the_packed_library_inflates_to_the_library() {
    let code = String::from_utf8(packed_lib()).unwrap();
    assert!(
        code.len() < DEVICE_LIB.len() * 3 / 4,
        "{} bytes",
        code.len()
    );
    assert!(DEVICE_LIB.len() < 4096, "wbits 12 covers at most 4 KiB");
    let b64 = code.split('\'').nth(3).unwrap();
    assert_eq!(inflate_b64(b64.as_bytes()), DEVICE_LIB.as_bytes());
}
