//! Helpers of the `mpfr fs` / `mpfr sync` end-to-end tests, shared by the host board's tests and
//! the QEMU MicroPython board's: the project fixture, reading a tree back, and mpfr's JSON lines.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Writes a project under `dir/app` and returns its path: text files, a binary file with every
/// byte value, names with spaces and non-ASCII letters, nested folders, 25 KB of data in one
/// file, an empty file (six files).
pub fn write_project(dir: &Path) -> PathBuf {
    let root = dir.join("app");
    std::fs::create_dir_all(root.join("lib/deep dir")).expect("test fixture");
    std::fs::write(root.join("main.py"), "import lib.util\nprint('main')\n").expect("test fixture");
    std::fs::write(root.join("lib/util.py"), "X = 'é\\'\\\\'\n").expect("test fixture");
    std::fs::write(root.join("lib/deep dir/ünï cødé.txt"), "späce\r\nlines\n")
        .expect("test fixture");
    let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    std::fs::write(root.join("lib/blob.bin"), &all).expect("test fixture");
    let big: String = (0..1000)
        .map(|i| format!("line {i:05} of a big file\n"))
        .collect();
    std::fs::write(root.join("big.txt"), big).expect("test fixture");
    std::fs::write(root.join("empty.py"), "").expect("test fixture");
    root
}

/// Every file under `root`, relative path -> content, sorted.
pub fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).expect("test fixture") {
            let e = e.expect("test fixture");
            let name = e.file_name().into_string().expect("test fixture");
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().expect("test fixture").is_dir() {
                walk(&e.path(), &sub, out);
            } else {
                out.push((sub, std::fs::read(e.path()).expect("test fixture")));
            }
        }
    }
    let mut v = Vec::new();
    walk(root, "", &mut v);
    v.sort();
    v
}

/// Every stdout line of a `--json` run, parsed.
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The `summary` record of a `--json` sync.
pub fn summary(o: &Output) -> serde_json::Value {
    json_lines(o)
        .into_iter()
        .find(|v| v["type"] == "summary")
        .expect("a summary record")
}
