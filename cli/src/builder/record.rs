//! The last-build record: which image `mpfr build` made for a board, so `flash` and
//! `threads top` find it without arguments. Written and read only here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the last build of a board produced (`<state>/builds/<board>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Absolute path of the image.
    pub elf: PathBuf,
    /// The config fingerprint the image was built with.
    pub fingerprint: String,
}

/// A record that exists but cannot be read.
#[derive(Debug)]
pub struct RecordError {
    pub path: PathBuf,
    pub reason: String,
}

impl BuildRecord {
    /// Makes this the board's last build (all-or-nothing).
    pub fn write(&self, board: &str) -> std::io::Result<PathBuf> {
        let path = crate::util::paths::last_build_record(board);
        self.write_to(&path)?;
        Ok(path)
    }

    /// The board's last build; `None` when there was none.
    pub fn read(board: &str) -> Result<Option<BuildRecord>, RecordError> {
        Self::read_from(crate::util::paths::last_build_record(board))
    }

    fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::util::fsutil::write_atomically(path, &bytes)
    }

    fn read_from(path: PathBuf) -> Result<Option<BuildRecord>, RecordError> {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(RecordError {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RecordError {
                path,
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_broken_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("builds/b.json");
        assert_eq!(BuildRecord::read_from(path.clone()).unwrap(), None);
        let r = BuildRecord {
            elf: "/x/firmware.elf".into(),
            fingerprint: "0x1".into(),
        };
        r.write_to(&path).unwrap();
        assert_eq!(BuildRecord::read_from(path.clone()).unwrap(), Some(r));
        std::fs::write(&path, "{\"fingerprint\": \"0x1\"}").unwrap();
        let e = BuildRecord::read_from(path.clone()).unwrap_err();
        assert!(e.reason.contains("elf"), "{}", e.reason);
        assert_eq!(e.path, path);
    }
}
