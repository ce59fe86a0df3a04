//! Writing files so that a reader never sees half of them.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes every `(file name, bytes)` into `dir` (created if missing) all-or-nothing: each file
/// goes to a temporary sibling first and is synced; only when all are written are they renamed
/// into place, and if one of those renames fails the files already replaced get their old
/// contents back. On error no temporary is left behind and every destination is as it was.
/// The files get the mode any new file gets (0666 less the umask), not a temporary's 0600.
pub fn write_files_atomically(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    write_files_with(dir, files, |_| false)
}

/// [`write_files_atomically`], with `fail_rename(i)` making the i-th rename fail (tests).
fn write_files_with(
    dir: &Path,
    files: &[(&str, Vec<u8>)],
    fail_rename: impl Fn(usize) -> bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    // A directory (or anything but a file) in the way would fail its rename halfway through.
    for (name, _) in files {
        let dest = dir.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&dest)
            && m.is_dir()
        {
            return Err(std::io::Error::other(format!(
                "{} is a directory; remove it or choose another output folder",
                dest.display()
            )));
        }
    }
    let mut staged: Vec<(tempfile::NamedTempFile, PathBuf)> = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        // Created with 0666 so the umask decides, as for any new file.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        staged.push((tmp, dir.join(name)));
    }
    // Keep the old contents under a second name (a hard link: no copy) until all renames are done.
    let mut backups: Vec<(PathBuf, Option<tempfile::TempPath>)> = Vec::new();
    for (_, dest) in &staged {
        let backup = match std::fs::symlink_metadata(dest) {
            Ok(_) => {
                let name = dest.file_name().unwrap_or_default().to_string_lossy();
                let path = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".old")
                    .tempfile_in(dir)?
                    .into_temp_path();
                std::fs::remove_file(&path)?;
                std::fs::hard_link(dest, &path)?;
                Some(path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        backups.push((dest.clone(), backup));
    }
    for (i, (tmp, dest)) in staged.into_iter().enumerate() {
        let renamed = if fail_rename(i) {
            Err(std::io::Error::other("injected failure"))
        } else {
            tmp.persist(&dest).map(|_| ()).map_err(|e| e.error)
        };
        if let Err(e) = renamed {
            for (dest, backup) in &backups[..i] {
                let _ = match backup {
                    Some(b) => std::fs::rename(b, dest),
                    None => std::fs::remove_file(dest),
                };
            }
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot replace {}: {e}", dest.display()),
            ));
        }
    }
    // Dropping the backups' TempPaths removes the old contents.
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

    #[test]
    fn a_directory_in_place_of_one_file_replaces_none() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.h", "b.json", "d.mk"] {
            std::fs::write(d.path().join(n), b"old").unwrap();
        }
        std::fs::create_dir(d.path().join("c.cmake")).unwrap();
        let files: Vec<(&str, Vec<u8>)> = ["a.h", "b.json", "c.cmake", "d.mk"]
            .into_iter()
            .map(|n| (n, b"new".to_vec()))
            .collect();
        let e = write_files_atomically(d.path(), &files).unwrap_err();
        assert!(e.to_string().contains("c.cmake"), "{e}");
        for n in ["a.h", "b.json", "d.mk"] {
            assert_eq!(std::fs::read(d.path().join(n)).unwrap(), b"old", "{n}");
        }
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a.h", "b.json", "c.cmake", "d.mk"]);
    }

    #[test]
    fn a_rename_failing_midway_restores_the_files_already_replaced() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.h", "b.json"] {
            std::fs::write(d.path().join(n), b"old").unwrap();
        }
        let files = [("a.h", b"new".to_vec()), ("b.json", b"new".to_vec())];
        // The second rename fails (as a full disk or a racing writer would make it).
        let e = write_files_with(d.path(), &files, |i| i == 1).unwrap_err();
        assert!(e.to_string().contains("b.json"), "{e}");
        for n in ["a.h", "b.json"] {
            assert_eq!(std::fs::read(d.path().join(n)).unwrap(), b"old", "{n}");
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn files_get_the_mode_of_any_new_file_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("plain"), b"").unwrap();
        write_atomically(&d.path().join("x.h"), b"x").unwrap();
        let mode = |n: &str| {
            std::fs::metadata(d.path().join(n))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("x.h"), mode("plain"));
    }
}
