//! Replays the inputs that fuzzing found bugs with (`cli/fuzz/regressions/<target>/`) and the
//! hand-written seeds (`cli/fuzz/seeds/<target>/`) through the fuzz targets' own bodies, on
//! stable Rust, so a plain `cargo test` keeps every fixed bug fixed.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod targets;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("boards_toml", targets::boards_toml::run),
    ("duration", targets::duration::run),
    ("gdb_reply", targets::gdb_reply::run),
    ("image", targets::image::run),
    ("repl_stream", targets::repl_stream::run),
    ("rtt", targets::rtt::run),
    ("sanitize", targets::sanitize::run),
    ("size", targets::size::run),
    ("telemetry_frames", targets::telemetry_frames::run),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `dir/<target>/`, with the target it belongs to. A folder named after no
/// target is an error: its inputs would silently never run.
fn inputs(dir: &Path) -> Vec<(PathBuf, Target)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let sub = e.expect("read a fuzz input folder").path();
        let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let target = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{} is named after no fuzz target", sub.display()))
            .1;
        for f in std::fs::read_dir(&sub).expect("list fuzz inputs") {
            out.push((f.expect("read a fuzz input").path(), target));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn replay(dir: &Path) -> usize {
    let all = inputs(dir);
    for (path, target) in &all {
        let data = std::fs::read(path).expect("read a fuzz input");
        let r = std::panic::catch_unwind(|| target(&data));
        assert!(r.is_ok(), "{} fails again", path.display());
    }
    all.len()
}

#[test]
fn regression_inputs_and_seeds_pass() {
    let n = replay(&fuzz_dir().join("regressions")) + replay(&fuzz_dir().join("seeds"));
    assert!(n > 0, "no fuzz inputs found under {}", fuzz_dir().display());
}

#[test]
fn every_fuzz_target_is_replayed_here() {
    let src = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("read fuzz/Cargo.toml");
    let bins: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "mpfr-fuzz")
        .collect();
    let mine: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        bins, mine,
        "cli/fuzz/Cargo.toml and this test list different targets"
    );
}
