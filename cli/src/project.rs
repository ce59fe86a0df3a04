//! Project defaults: a `[defaults]` table in the project's `boards.toml` names the board and
//! port, so that `mpfr run app.py` needs no flags. Command-line flags and `$MPFR_BOARD` /
//! `$MPFR_PORT` win over it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::board::CatalogSource;

/// The `[defaults]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDefaults {
    pub board: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    defaults: Option<ProjectDefaults>,
}

/// The defaults of the boards file `$MPFR_BOARDS` or the nearest `boards.toml` above `cwd`,
/// with the file they came from. A file that does not parse is left to the catalog to report.
pub fn load(explicit: Option<PathBuf>, cwd: Option<PathBuf>) -> Option<(PathBuf, ProjectDefaults)> {
    let path = CatalogSource {
        explicit,
        search_from: cwd,
    }
    .user_file()?;
    let d = read(&path)?;
    Some((path, d))
}

fn read(path: &Path) -> Option<ProjectDefaults> {
    let text = std::fs::read_to_string(path).ok()?;
    toml::from_str::<File>(&text).ok()?.defaults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_nearest_boards_file() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("src/app");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            d.path().join("boards.toml"),
            "[defaults]\nboard = \"rpi-pico\"\nport = \"/dev/ttyACM1\"\n",
        )
        .unwrap();
        let (path, got) = load(None, Some(sub)).unwrap();
        assert_eq!(path, d.path().join("boards.toml"));
        assert_eq!(got.board.as_deref(), Some("rpi-pico"));
        assert_eq!(got.port.as_deref(), Some("/dev/ttyACM1"));
        std::fs::write(d.path().join("boards.toml"), "[boards]\n").unwrap();
        assert!(load(None, Some(d.path().to_path_buf())).is_none());
    }
}
