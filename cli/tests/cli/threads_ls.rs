//! `mpfr threads ls` (table and `--json`) rendered from a recorded RTT memory image: what the
//! reference firmware on qemu-mps2-an385 sent, replayed through the RTT reader, the telemetry
//! decoder and the renderer with no QEMU. The image, `threads_ls.mem`, is re-recorded by
//! `record_threads_ls_image` in `cli/src/telemetry/replay.rs`.

use std::path::PathBuf;

use crate::mpfr;

fn image() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/threads_ls.mem")
}

/// `threads ls` on the image; host times (when the host saw an event) are filtered out.
fn threads_ls(name: &str, json: bool) {
    let d = tempfile::tempdir().expect("temp dir");
    let mut cmd = mpfr(d.path());
    // A copy beside the run, named relatively: no checkout path in the snapshot.
    std::fs::copy(image(), d.path().join("threads_ls.mem")).expect("copy the image");
    cmd.args([
        "threads",
        "ls",
        "--board",
        "qemu-mps2-an385",
        "--interval",
        "10",
    ])
    .args(["--memory-image", "threads_ls.mem"]);
    if json {
        cmd.arg("--json");
    }
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"(?m)^ *\d+\.\ds ", "[HOST]s ");
    settings.add_filter(r#""host_ms":\d+"#, r#""host_ms":"[HOST]""#);
    settings.bind(|| insta_cmd::assert_cmd_snapshot!(name, cmd));
}

#[test]
fn threads_ls_table_from_a_memory_image() {
    threads_ls("threads_ls_table", false);
}

#[test]
fn threads_ls_json_from_a_memory_image() {
    threads_ls("threads_ls_json", true);
}
