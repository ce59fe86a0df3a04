//! `mpfr build --firmware micropython`: mpfr's own MicroPython port (`firmware/micropython/`, on
//! mpfr's FreeRTOS threading backend) built with the rendered config against a MicroPython source
//! tree: the one given, else the source cache `scripts/micropython-source.sh` unpacks.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use miette::Diagnostic;

use crate::board::Board;
use crate::config::{Artifacts, Overrides, resolve};

use super::{BuildEvent, BuildOutput, io};

/// The MicroPython release the port is written against (and the cache holds).
pub const MICROPYTHON_VERSION: &str = "1.25.0";
/// The releases the port builds with: major.minor of `py/mpconfig.h`.
pub const SUPPORTED: &str = "1.25";

/// How to get the tree when none is found.
const FETCH_HELP: &str = "fetch it with `scripts/micropython-source.sh` in the mpfr repository (scripts/setup.sh runs it; \
     `MPFR_CACHE_DIR=~/.cache/mpfr scripts/micropython-source.sh` puts it in the per-user cache), \
     set $MPFR_MICROPYTHON_TREE, or pass --micropython DIR";

/// What can go wrong building the port, each saying what and how to fix it.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum PortError {
    #[error("board `{board}` has no MicroPython port in mpfr")]
    #[diagnostic(
        code(mpfr::build::no_port),
        help(
            "`--firmware micropython` builds for virtual boards whose qemu table has a `micropython` table; build a MicroPython tree's own port with `mpfr build --board {board} --micropython DIR`"
        )
    )]
    NoPort { board: String },

    #[error("no MicroPython {MICROPYTHON_VERSION} source tree found (looked in {looked})")]
    #[diagnostic(code(mpfr::build::no_tree), help("{FETCH_HELP}"))]
    NoTree { looked: String },

    #[error("{} is not a MicroPython tree (no py/mkenv.mk or py/mpconfig.h)", dir.display())]
    #[diagnostic(
        code(mpfr::build::not_tree),
        help(
            "pass the top folder of a MicroPython {MICROPYTHON_VERSION} source tree (the one holding py/ and ports/), or drop --micropython to use the cache ({FETCH_HELP})"
        )
    )]
    NotTree { dir: PathBuf },

    #[error("{} is MicroPython {version}; mpfr's port supports {SUPPORTED}", dir.display())]
    #[diagnostic(
        code(mpfr::build::version),
        help(
            "use a MicroPython {MICROPYTHON_VERSION} tree: `scripts/micropython-source.sh` fetches it into the cache, which mpfr uses without --micropython"
        )
    )]
    Version { dir: PathBuf, version: String },

    #[error("make arguments after `--` need a MicroPython build")]
    #[diagnostic(
        code(mpfr::build::make_args),
        help(
            "the reference firmware is not built with make; pass --firmware micropython (mpfr's port) or --micropython DIR (a tree's own port)"
        )
    )]
    MakeArgsWithoutPort,

    #[error("the MicroPython port build failed:\n{first}")]
    #[diagnostic(
        code(mpfr::build::port_compile),
        help("the whole make log is in {}; `-v` shows the make command", log.display())
    )]
    Compile { first: String, log: PathBuf },
}

/// A finished port build and the tree it used.
#[derive(Debug, Clone)]
pub struct PortBuild {
    pub build: BuildOutput,
    /// The MicroPython tree it was built against (absolute).
    pub micropython: PathBuf,
}

/// Where the MicroPython tree comes from when `--micropython` is not given, in order:
/// `$MPFR_MICROPYTHON_TREE`; `$MPFR_CACHE_DIR/micropython/<ver>`; the nearest
/// `.cache/micropython/<ver>` from the working directory up (the repository's own cache);
/// `$XDG_CACHE_HOME/mpfr/micropython/<ver>` (else `~/.cache/mpfr/...`).
pub fn tree_candidates(cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let rel = Path::new("micropython").join(MICROPYTHON_VERSION);
    let mut out = Vec::new();
    if let Some(t) = env("MPFR_MICROPYTHON_TREE").filter(|t| !t.is_empty()) {
        out.push(PathBuf::from(t));
    }
    if let Some(c) = env("MPFR_CACHE_DIR").filter(|t| !t.is_empty()) {
        out.push(PathBuf::from(c).join(&rel));
    }
    for dir in cwd.ancestors() {
        let t = dir.join(".cache").join(&rel);
        if t.is_dir() {
            out.push(t);
            break;
        }
    }
    let user = env("XDG_CACHE_HOME")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(u) = user {
        out.push(u.join("mpfr").join(&rel));
    }
    out
}

/// The tree to build against: `arg` when given (checked), else the first candidate that exists.
pub fn find_tree(arg: Option<&Path>) -> Result<PathBuf, PortError> {
    let tree = match arg {
        Some(t) => t.to_path_buf(),
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let cands = tree_candidates(&cwd, &|k| std::env::var(k).ok());
            match cands.iter().find(|c| c.is_dir()) {
                Some(t) => t.clone(),
                None => {
                    let looked = cands
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(PortError::NoTree { looked });
                }
            }
        }
    };
    check_tree(&tree)?;
    Ok(std::path::absolute(&tree).unwrap_or(tree))
}

/// `major.minor.micro` of a tree, from `py/mpconfig.h`.
pub fn tree_version(tree: &Path) -> Option<String> {
    let text = std::fs::read_to_string(tree.join("py/mpconfig.h")).ok()?;
    let num = |name: &str| -> Option<u32> {
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("#define")?.trim_start();
            let v = rest.strip_prefix(name)?;
            v.trim().trim_matches(|c| c == '(' || c == ')').parse().ok()
        })
    };
    let (a, b) = (num("MICROPY_VERSION_MAJOR")?, num("MICROPY_VERSION_MINOR")?);
    let c = num("MICROPY_VERSION_MICRO").unwrap_or(0);
    Some(format!("{a}.{b}.{c}"))
}

/// Checks that `tree` is a MicroPython tree of a supported version.
pub fn check_tree(tree: &Path) -> Result<(), PortError> {
    if !tree.join("py/mkenv.mk").is_file() || !tree.join("py/mpconfig.h").is_file() {
        return Err(PortError::NotTree {
            dir: tree.to_path_buf(),
        });
    }
    let version = tree_version(tree).ok_or_else(|| PortError::NotTree {
        dir: tree.to_path_buf(),
    })?;
    let minor = version
        .rsplit_once('.')
        .map_or(version.as_str(), |(m, _)| m);
    if minor != SUPPORTED {
        return Err(PortError::Version {
            dir: tree.to_path_buf(),
            version,
        });
    }
    Ok(())
}

/// The first error in a make log: the compiler's first `error:` with its source excerpt, else
/// the linker's first complaint, else make's own `*** ...` message, else the log's last lines.
pub fn first_error(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    if let Some(i) = lines
        .iter()
        // collect2's "ld returned 1" only sums up the linker's errors, reported below.
        .position(|l| {
            !l.starts_with("collect2:") && (l.contains(": error:") || l.contains(": fatal error:"))
        })
    {
        // gcc follows the message with the source line and a caret, indented.
        let excerpt = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with(' '))
            .take(4);
        return std::iter::once(lines[i])
            .chain(excerpt.copied())
            .collect::<Vec<_>>()
            .join("\n");
    }
    if let Some(l) = lines
        .iter()
        .find(|l| l.contains("undefined reference to") || l.contains("ld: error"))
    {
        return l.to_string();
    }
    if let Some(l) = lines
        .iter()
        .find_map(|l| l.split_once("*** ").map(|(_, m)| m))
    {
        let m = l.trim_end().trim_end_matches("Stop.").trim_end();
        return m.trim_end_matches('.').to_string();
    }
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The build folder of a config: one per fingerprint, so a changed config never meets the
/// generated files (qstrs, objects) of another.
pub fn build_dir(out: &Path, fingerprint: &str) -> PathBuf {
    out.join(format!(
        "mpy-build-{}",
        fingerprint.trim_start_matches("0x")
    ))
}

/// Writes the rendered files into `dir` unless they are there already: the port's make tracks
/// `mpfr_config.h` as a dependency of every object, so rewriting it would rebuild everything.
fn write_if_changed(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    let same = files
        .iter()
        .all(|(n, b)| std::fs::read(dir.join(n)).is_ok_and(|old| old == *b));
    if same {
        Ok(())
    } else {
        crate::util::fsutil::write_files_atomically(dir, files)
    }
}

/// Builds mpfr's MicroPython port for `board` against `tree` (else the cache) into
/// `<out>/mpy-build-<fingerprint>/firmware.elf`.
pub fn build_port(
    board: &Board,
    overrides: &Overrides,
    tree: Option<&Path>,
    make_args: &[String],
    out: Option<&Path>,
    progress: &mut dyn FnMut(BuildEvent),
) -> crate::Result<PortBuild> {
    let make = std::env::var("MPFR_MAKE").unwrap_or_else(|_| "make".into());
    build_port_with(&make, board, overrides, tree, make_args, out, progress)
}

fn build_port_with(
    make: &str,
    board: &Board,
    overrides: &Overrides,
    tree: Option<&Path>,
    make_args: &[String],
    out: Option<&Path>,
    progress: &mut dyn FnMut(BuildEvent),
) -> crate::Result<PortBuild> {
    let port = board
        .platform
        .qemu()
        .and_then(|m| m.micropython.as_ref())
        .ok_or_else(|| PortError::NoPort {
            board: board.name.clone(),
        })
        .map_err(super::BuildError::from)?;
    super::micropython::check_make_args(make_args)?;
    let resolved = resolve(board, overrides)?;
    let tree = find_tree(tree).map_err(super::BuildError::from)?;
    super::check_tool(&super::compiler())?;
    let kernel = mpfr_firmware::freertos_kernel_dir();
    if !kernel.join("tasks.c").is_file() {
        return Err(super::BuildError::KernelMissing {
            dir: kernel.to_path_buf(),
        }
        .into());
    }

    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| super::out_dir(&board.name));
    std::fs::create_dir_all(&out).map_err(io(format!("cannot create {}", out.display())))?;
    let out =
        std::fs::canonicalize(&out).map_err(io(format!("cannot resolve {}", out.display())))?;
    let fingerprint = resolved.config.fingerprint.clone();
    let build = build_dir(&out, &fingerprint);
    let artifacts = Artifacts::render(board, &resolved.config);
    let cfg_dir = out.join("config");
    // The config the user sees, and the copy this build folder compiles with (left untouched
    // while unchanged, so a rebuild of the same config is incremental).
    let build_cfg = build.join("mpfr-config");
    for dir in [&cfg_dir, &build_cfg] {
        write_if_changed(dir, &artifacts.files).map_err(io(format!(
            "cannot write the config into {}",
            dir.display()
        )))?;
    }
    progress(BuildEvent::Configured {
        fingerprint: fingerprint.clone(),
        dir: cfg_dir,
    });
    let src_dir = out.join("src");
    mpfr_firmware::write_sources(&src_dir).map_err(io(format!(
        "cannot write sources into {}",
        src_dir.display()
    )))?;

    let mut cmd = Command::new(make);
    cmd.arg("-C").arg(src_dir.join(&port.port)).arg("-j2");
    cmd.arg(format!("MICROPY_TOP={}", tree.display()));
    cmd.arg(format!("MPFR_CONFIG_DIR={}", build_cfg.display()));
    cmd.arg(format!("FREERTOS_KERNEL={}", kernel.display()));
    cmd.arg(format!("BUILD={}", build.display()));
    if let Ok(gcc) = std::env::var("MPFR_GCC")
        && let Some(prefix) = gcc.strip_suffix("gcc")
    {
        cmd.arg(format!("CROSS_COMPILE={prefix}"));
    }
    cmd.args(&port.make_args).args(make_args);
    progress(BuildEvent::Running {
        command: format!("{cmd:?}"),
    });
    let log_path = build.join("make.log");
    let (ok, log) = run_make(cmd, progress)?;
    let _ = std::fs::write(&log_path, &log);
    if !ok {
        return Err(super::BuildError::from(PortError::Compile {
            first: first_error(&log),
            log: log_path,
        })
        .into());
    }
    let elf = build.join("firmware.elf");
    if !elf.is_file() {
        return Err(super::BuildError::NoElf { dir: build }.into());
    }
    let (text, data, bss) = super::sizes(&elf);
    Ok(PortBuild {
        build: BuildOutput {
            board: board.name.clone(),
            elf,
            fingerprint,
            text,
            data,
            bss,
        },
        micropython: tree,
    })
}

/// Runs make, reporting each file it compiles; returns its success and its whole output
/// (stdout and stderr interleaved as they came).
fn run_make(
    mut cmd: Command,
    progress: &mut dyn FnMut(BuildEvent),
) -> crate::Result<(bool, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(
            "cannot run make (Debian: `apt-get install make`, or scripts/setup.sh)",
        ))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut log = String::new();
    let mut done = 0;
    for line in rx {
        // MicroPython's make prints `CC file.c` per object (`GEN`, `QSTR`, `LINK` for the rest).
        if let Some(file) = line.strip_prefix("CC ") {
            done += 1;
            progress(BuildEvent::Step {
                what: file.trim().to_string(),
                done,
            });
        } else if line.starts_with("LINK ") {
            progress(BuildEvent::Step {
                what: line.clone(),
                done,
            });
        }
        log.push_str(&line);
        log.push('\n');
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().map_err(io("make did not finish"))?;
    Ok((status.success(), log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Catalog;

    fn fake_tree(root: &Path, minor: u32) {
        std::fs::create_dir_all(root.join("py")).unwrap();
        std::fs::write(root.join("py/mkenv.mk"), "").unwrap();
        std::fs::write(
            root.join("py/mpconfig.h"),
            format!(
                "#define MICROPY_VERSION_MAJOR (1)\n#define MICROPY_VERSION_MINOR ({minor})\n#define MICROPY_VERSION_MICRO (0)\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn the_tree_is_looked_for_in_env_cache_then_up_from_cwd_then_per_user() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        let cached = repo.join(".cache/micropython").join(MICROPYTHON_VERSION);
        std::fs::create_dir_all(&cached).unwrap();
        let cwd = repo.join("a/b");
        std::fs::create_dir_all(&cwd).unwrap();
        let env = |k: &str| match k {
            "MPFR_MICROPYTHON_TREE" => Some("/t".to_string()),
            "MPFR_CACHE_DIR" => Some("/c".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        let c = tree_candidates(&cwd, &env);
        assert_eq!(
            c,
            vec![
                PathBuf::from("/t"),
                PathBuf::from("/c/micropython/1.25.0"),
                cached,
                PathBuf::from("/h/.cache/mpfr/micropython/1.25.0"),
            ]
        );
        // Nothing set and no cache above: only the per-user cache is left.
        let c = tree_candidates(d.path(), &|k| (k == "XDG_CACHE_HOME").then(|| "/x".into()));
        assert_eq!(c, vec![PathBuf::from("/x/mpfr/micropython/1.25.0")]);
    }

    #[test]
    fn bad_trees_are_refused_with_what_and_how() {
        let d = tempfile::tempdir().unwrap();
        let e = check_tree(d.path()).unwrap_err();
        assert!(matches!(e, PortError::NotTree { .. }), "{e}");
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(help.contains("micropython-source.sh"), "{help}");
        fake_tree(d.path(), 22);
        let e = check_tree(d.path()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is MicroPython 1.22.0; mpfr's port supports 1.25"),
            "{e}"
        );
        fake_tree(d.path(), 25);
        check_tree(d.path()).unwrap();
        assert_eq!(tree_version(d.path()).as_deref(), Some("1.25.0"));
    }

    #[test]
    fn the_first_compiler_error_is_picked_from_the_log() {
        let log = "CC ../../py/a.c\nIn file included from x.h:1:\n/t/py/b.c:12:5: error: 'y' undeclared\n   12 |     y = 1;\n      |     ^\n/t/py/b.c:13:1: error: later\nmake: *** [x] Error 1\n";
        assert_eq!(
            first_error(log),
            "/t/py/b.c:12:5: error: 'y' undeclared\n   12 |     y = 1;\n      |     ^"
        );
        let log = "Makefile:17: *** MICROPY_TOP is not set: pass it.  Stop.\n";
        assert_eq!(first_error(log), "MICROPY_TOP is not set: pass it");
        let log = "LINK x\nmain.o: in function `f':\nmain.c:(.text+0x4): undefined reference to `g'\ncollect2: error: ld returned 1 exit status\n";
        assert!(first_error(log).contains("undefined reference to `g'"));
    }

    #[test]
    fn boards_without_the_port_are_refused_before_anything_is_written() {
        let cat = Catalog::builtin().unwrap();
        let out = tempfile::tempdir().unwrap();
        let e = build_port(
            cat.get("rpi-pico").unwrap(),
            &Overrides::default(),
            None,
            &[],
            Some(&out.path().join("o")),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("has no MicroPython port"), "{e}");
        assert!(!out.path().join("o").exists());
    }

    #[test]
    fn a_tree_of_another_version_is_refused_before_anything_is_written() {
        let cat = Catalog::builtin().unwrap();
        let d = tempfile::tempdir().unwrap();
        fake_tree(d.path(), 24);
        let out = d.path().join("o");
        let e = build_port(
            cat.get("qemu-mps2-an385").unwrap(),
            &Overrides::default(),
            Some(d.path()),
            &[],
            Some(&out),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("MicroPython 1.24.0"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn the_port_make_gets_tree_config_kernel_and_build_folder() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fake_tree(&tree, 25);
        // A stand-in make: records its arguments and writes an ELF-named file into BUILD.
        let make = d.path().join("make.sh");
        std::fs::write(
            &make,
            "#!/bin/sh\nfor a; do case $a in BUILD=*) b=${a#BUILD=};; esac; done\necho 'CC main.c'\necho \"$@\" > \"$b/firmware.elf\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&make, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let out = d.path().join("o");
        let mut steps = 0;
        let built = build_port_with(
            make.to_str().unwrap(),
            b,
            &Overrides::default(),
            Some(&tree),
            &["V=1".into()],
            Some(&out),
            &mut |e| steps += usize::from(matches!(e, BuildEvent::Step { .. })),
        )
        .unwrap();
        assert_eq!(steps, 1);
        let args = std::fs::read_to_string(&built.build.elf).unwrap();
        let out = out.canonicalize().unwrap();
        let fp = built.build.fingerprint.trim_start_matches("0x");
        assert!(
            args.contains(&format!("BUILD={}/mpy-build-{fp}", out.display())),
            "{args}"
        );
        assert!(
            args.contains(&format!("MICROPY_TOP={}", tree.display())),
            "{args}"
        );
        assert!(args.contains("MPFR_CONFIG_DIR="), "{args}");
        assert!(args.trim_end().ends_with("V=1"), "{args}");
        assert!(out.join("config/mpfr_config.h").is_file());
        assert!(out.join("src/micropython/qemu/Makefile").is_file());
        assert_eq!(built.micropython, tree);
    }
}
