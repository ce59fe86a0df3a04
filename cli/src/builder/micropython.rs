//! `mpfr build --micropython DIR`: builds a MicroPython tree's own port for a board with the
//! rendered config and the mpfr user C module, after checking that the tree lets the config
//! through (no tunable hard-coded without an `#ifndef` guard).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::{Board, BuildSystem};
use crate::config::{HEADER_FILE, Overrides, resolve};

use super::{BuildError, BuildEvent, BuildOutput, io};

/// A `#define` of a tunable that `mpfr_config.h` cannot override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardCoded {
    pub file: PathBuf,
    pub line: usize,
    pub name: String,
}

impl std::fmt::Display for HardCoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.name)
    }
}

/// The tunables a rendered header sets: every `#define NAME` except mpfr's own `MPFR_*` names.
pub fn tunables(header: &str) -> Vec<String> {
    header
        .lines()
        .filter_map(|l| directive(l).filter(|(d, _)| *d == "define").map(|(_, r)| r))
        .filter_map(|rest| rest.split_whitespace().next())
        // The run-time counter macros are the firmware's own when it has them (the header
        // defines them only on request), so a port defining them is not a conflict.
        .filter(|n| !n.starts_with("MPFR_") && !n.starts_with("port"))
        .map(str::to_string)
        .collect()
}

/// `("define", "NAME value")` for a preprocessor line, `None` for any other line.
fn directive(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start().strip_prefix('#')?.trim_start();
    let end = t
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(t.len());
    Some((&t[..end], t[end..].trim()))
}

#[derive(Debug, PartialEq)]
enum Cond {
    /// `#ifndef NAME` / `#if !defined(NAME)`: a define inside is only a default.
    Guard(String),
    Other,
}

fn guarded_name(cond: &str) -> Option<String> {
    let c = cond.trim().strip_prefix('!')?.trim_start();
    let c = c.strip_prefix("defined")?.trim_start();
    let c = c.strip_prefix('(').unwrap_or(c);
    let name: String = c
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Line numbers (1-based) and names of unguarded `#define`s of `tunables` in C text.
pub fn scan_c(text: &str, tunables: &[String]) -> Vec<(usize, String)> {
    let mut stack: Vec<Cond> = Vec::new();
    let mut hits = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((d, rest)) = directive(line) else {
            continue;
        };
        match d {
            "ifndef" => stack.push(Cond::Guard(
                rest.split_whitespace().next().unwrap_or("").to_string(),
            )),
            "if" => stack.push(guarded_name(rest).map_or(Cond::Other, Cond::Guard)),
            "ifdef" => stack.push(Cond::Other),
            "elif" | "else" => {
                if let Some(top) = stack.last_mut() {
                    *top = Cond::Other;
                }
            }
            "endif" => {
                stack.pop();
            }
            "define" => {
                let name = rest.split(|c: char| c.is_whitespace() || c == '(').next();
                if let Some(name) = name.filter(|n| tunables.iter().any(|t| t == n)) {
                    let guarded = stack.iter().any(|c| *c == Cond::Guard(name.to_string()));
                    if !guarded {
                        hits.push((i + 1, name.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    hits
}

/// Tunables set on the compiler command line by CMake files (`NAME=value` in definitions).
fn scan_cmake(text: &str, tunables: &[String]) -> Vec<(usize, String)> {
    let mut hits = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        for t in tunables {
            let pat = format!("{t}=");
            if let Some(pos) = code.find(&pat) {
                let before = code[..pos].chars().last();
                if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
                    hits.push((i + 1, t.clone()));
                }
            }
        }
    }
    hits
}

/// The folders of a tree that a port build compiles and that may set tunables: the port (only
/// the selected board below `boards/`) and the FreeRTOS threading backend.
fn scan_roots(tree: &Path, port: &str) -> Vec<PathBuf> {
    vec![tree.join("ports").join(port), tree.join("extmod/freertos")]
}

/// The C and CMake files of the port build of `port_board` that may set tunables, sorted.
pub fn port_files(tree: &Path, port: &str, port_board: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for root in scan_roots(tree, port) {
        if root.is_dir() {
            collect(&root, port_board, 0, &mut files)?;
        }
    }
    files.sort();
    Ok(files)
}

/// Whether any of `files` defines one of `names` (guarded or not).
pub fn defines_any(files: &[PathBuf], names: &[&str]) -> bool {
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|text| {
            text.lines().filter_map(directive).any(|(d, rest)| {
                d == "define"
                    && rest
                        .split(|c: char| c.is_whitespace() || c == '(')
                        .next()
                        .is_some_and(|n| names.contains(&n))
            })
        })
    })
}

/// Every hard-coded tunable in the files the port build of `board` uses, in path order.
pub fn find_hard_coded(
    tree: &Path,
    port: &str,
    port_board: &str,
    tunables: &[String],
) -> std::io::Result<Vec<HardCoded>> {
    let files = port_files(tree, port, port_board)?;
    Ok(hard_coded_in(tree, &files, tunables))
}

/// The hard-coded tunables in `files` (paths shown relative to `tree`).
fn hard_coded_in(tree: &Path, files: &[PathBuf], tunables: &[String]) -> Vec<HardCoded> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue; // not text: not a source
        };
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let hits = if name.ends_with(".cmake") || name == "CMakeLists.txt" {
            scan_cmake(&text, tunables)
        } else {
            scan_c(&text, tunables)
        };
        let rel = f.strip_prefix(tree).unwrap_or(f).to_path_buf();
        out.extend(hits.into_iter().map(|(line, name)| HardCoded {
            file: rel.clone(),
            line,
            name,
        }));
    }
    out
}

/// The tree's own (guarded) FreeRTOS heap size and where it is defined (`file:line`).
fn firmware_heap_default(tree: &Path, files: &[PathBuf]) -> Option<(u64, String)> {
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        let (i, v) = text
            .lines()
            .enumerate()
            .find_map(|(i, l)| Some((i, crate::config::firmware_heap_define(l)?)))?;
        let rel = f.strip_prefix(tree).unwrap_or(f);
        Some((v, format!("{}:{}", rel.display(), i + 1)))
    })
}

/// Checks that every extra make argument is a `NAME=value` assignment (never a target).
pub(super) fn check_make_args(args: &[String]) -> Result<(), BuildError> {
    for a in args {
        let name = a.split_once('=').map_or("", |(n, _)| n);
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(BuildError::MakeArg { arg: a.clone() });
        }
    }
    Ok(())
}

fn collect(
    dir: &Path,
    port_board: &str,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    if depth > 6 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type()?;
        if ty.is_dir() {
            // Build outputs and other boards' folders are not part of this build.
            if name.starts_with("build") || name.starts_with('.') {
                continue;
            }
            if dir.file_name().is_some_and(|d| d == "boards") && name != port_board {
                continue;
            }
            collect(&path, port_board, depth + 1, out)?;
        } else if ty.is_file()
            && !is_template(&name)
            && (name.ends_with(".h")
                || name.ends_with(".c")
                || name.ends_with(".cmake")
                || name == "CMakeLists.txt")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Files a port copies from or reads as documentation (`FreeRTOSConfig_template.h`), never
/// compiled: their defines are examples, not hard-codes.
fn is_template(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower
        .rsplit_once('.')
        .map_or(lower.as_str(), |(stem, _)| stem);
    stem.ends_with("template") || stem.ends_with("example")
}

/// What mpfr adds to a port build besides the config and the module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortOptions {
    /// The port has no run-time counter: build with the tick count standing in.
    pub tick_counter: bool,
    /// The tree's FreeRTOS kernel submodule is empty: use this kernel (`FREERTOS_DIR=`).
    pub kernel_dir: Option<PathBuf>,
    /// The port's GC heap variable and the size to give it (make ports).
    pub gc_heap: Option<(String, u64)>,
    /// The port's build folder (`BUILD=`, relative to the port), one per config.
    pub build_dir: Option<String>,
    /// `NAME=value` arguments passed on to make as they are (after mpfr's own, so they win).
    pub make_args: Vec<String>,
}

/// The build folder for `port_board` with the config `fingerprint`: MicroPython's make does not
/// notice a changed config (its generated qstr list goes stale, and a GIL switch then fails to
/// compile), so every config builds in its own folder; an unchanged config builds incrementally.
pub fn build_dir_name(port_board: &str, fingerprint: &str) -> String {
    let fp = fingerprint.trim_start_matches("0x");
    format!("build-{port_board}-mpfr-{fp}")
}

impl PortOptions {
    /// Decides the options from the tree: its run-time counter and its kernel submodule.
    pub fn for_tree(tree: &Path, files: &[PathBuf], make_args: &[String]) -> PortOptions {
        let has_counter = defines_any(
            files,
            &[
                "portGET_RUN_TIME_COUNTER_VALUE",
                "portALT_GET_RUN_TIME_COUNTER_VALUE",
            ],
        );
        let kernel_dir = (!tree.join(TREE_KERNEL).join("tasks.c").is_file())
            .then(|| mpfr_firmware::freertos_kernel_dir().to_path_buf());
        PortOptions {
            tick_counter: !has_counter,
            kernel_dir,
            gc_heap: None,
            build_dir: None,
            make_args: make_args.to_vec(),
        }
    }
}

/// Where a MicroPython tree keeps the FreeRTOS kernel (a git submodule, empty until initialised).
const TREE_KERNEL: &str = "lib/FreeRTOS-Kernel";

/// The command that builds the port: `make -C ports/<port> BOARD=.. USER_C_MODULES=..` plus the
/// config (CFLAGS_EXTRA for make ports, a CMake project include for CMake ports).
pub fn port_command(
    tree: &Path,
    board: &Board,
    cfg_dir: &Path,
    src_dir: &Path,
    opts: &PortOptions,
) -> Command {
    let port_dir = tree.join("ports").join(&board.port.name);
    let mut c = Command::new(std::env::var("MPFR_MAKE").unwrap_or_else(|_| "make".into()));
    crate::util::child::dies_with_mpfr(&mut c);
    c.arg("-C").arg(&port_dir);
    c.arg(format!("BOARD={}", board.port.board));
    if let Some(v) = &board.port.variant {
        c.arg(format!("BOARD_VARIANT={v}"));
    }
    c.arg(format!(
        "-j{}",
        std::thread::available_parallelism().map_or(2, |n| n.get())
    ));
    if let Some(b) = &opts.build_dir {
        c.arg(format!("BUILD={b}"));
    }
    match board.port.build {
        BuildSystem::Make => {
            c.arg(format!("USER_C_MODULES={}", src_dir.display()));
            let counter = if opts.tick_counter {
                " -DMPFR_RUNTIME_COUNTER_TICKS=1"
            } else {
                ""
            };
            c.arg(format!(
                "CFLAGS_EXTRA=-include {} -I{}{counter}",
                cfg_dir.join(HEADER_FILE).display(),
                cfg_dir.display()
            ));
            if let Some(k) = &opts.kernel_dir {
                c.arg(format!("FREERTOS_DIR={}", k.display()));
            }
            if let Some((var, bytes)) = &opts.gc_heap {
                c.arg(format!("{var}={bytes}"));
            }
        }
        BuildSystem::Cmake => {
            c.arg(format!(
                "USER_C_MODULES={}",
                src_dir.join("usermod/micropython.cmake").display()
            ));
            let counter = if opts.tick_counter {
                " -DMPFR_RUNTIME_COUNTER_TICKS=1"
            } else {
                ""
            };
            c.arg(format!(
                "CMAKE_ARGS=-DCMAKE_PROJECT_INCLUDE={}{counter}",
                cfg_dir.join("mpfr.cmake").display()
            ));
        }
    }
    c.args(&opts.make_args);
    c
}

/// Objects on disk that the port's make writes outside `build` (some trees' makefiles put
/// `extmod/freertos` or kernel objects beside their sources). Config switches reach the compiler
/// as flags, which no make rule depends on, so make would link such an object as built for an
/// earlier config: a dry run that rebuilds everything (`make -n -B`) names every object with
/// its `-o`, and those outside `build` that exist are returned. A dry run only prints, so one
/// that runs for minutes or falls silent is hung (a recursive make waiting on something): it is
/// cut, and the error says so.
fn objects_outside(
    cmd: &Command,
    port_dir: &Path,
    build: &Path,
    limit: std::time::Duration,
) -> Result<Vec<PathBuf>, String> {
    use crate::util::child::output_within;
    let mut dry = Command::new(cmd.get_program());
    dry.args(cmd.get_args()).args(["-n", "-B"]);
    if let Some(dir) = cmd.get_current_dir() {
        dry.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => dry.env(k, v),
            None => dry.env_remove(k),
        };
    }
    let out = output_within(&mut dry, limit, limit)
        .map_err(|e| format!("the dry run `make -n -B` {e}"))?;
    let build = lexical(build);
    let mut found = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            let obj = if w == "-o" {
                words.next()
            } else {
                w.strip_prefix("-o")
            };
            let Some(obj) = obj.filter(|o| o.ends_with(".o")) else {
                continue;
            };
            // make runs in the port folder (`make -C`).
            let path = lexical(&port_dir.join(obj));
            if !path.starts_with(&build) && path.is_file() {
                found.insert(path);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// How long the dry run of [`objects_outside`] may run, and stay silent.
const DRY_RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `path` made absolute with `.` and `..` resolved by name (the objects need not exist).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Builds `tree`'s port for `board`. Stops before running anything when the tree hard-codes a
/// tunable.
pub fn build_micropython(
    board: &Board,
    overrides: &Overrides,
    tree: &Path,
    make_args: &[String],
    out: Option<&Path>,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<BuildOutput, BuildError> {
    let port_dir = tree.join("ports").join(&board.port.name);
    if !tree.join("py").is_dir() || !port_dir.is_dir() {
        return Err(BuildError::NotMicroPython {
            dir: tree.to_path_buf(),
            port: board.port.name.clone(),
        });
    }
    check_make_args(make_args)?;
    let resolved = resolve(board, overrides)?;
    let (out, cfg_dir, artifacts) = super::configure(board, &resolved, out, progress)?;
    let src_dir = out.join("src");
    let header = artifacts
        .files
        .iter()
        .find(|(n, _)| *n == HEADER_FILE)
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let files = port_files(tree, &board.port.name, &board.port.board)
        .map_err(io(format!("cannot read {}", tree.display())))?;
    let found = hard_coded_in(tree, &files, &tunables(&header));
    if !found.is_empty() {
        return Err(BuildError::HardCoded {
            count: found.len(),
            list: found
                .iter()
                .map(|h| format!("  {}", h))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    if let Some((theirs, at)) = firmware_heap_default(tree, &files)
        && let Some(text) =
            crate::config::heap_growth_warning(&resolved.config, overrides, theirs, &at)
    {
        progress(BuildEvent::Warning { text });
    }
    mpfr_firmware::write_sources(&src_dir).map_err(io(format!(
        "cannot write sources into {}",
        src_dir.display()
    )))?;

    let mut opts = PortOptions::for_tree(tree, &files, make_args);
    opts.gc_heap = board
        .port
        .gc_heap_var
        .clone()
        .map(|v| (v, resolved.config.gc_heap.0));
    let build_name = build_dir_name(&board.port.board, &resolved.config.fingerprint);
    opts.build_dir = Some(build_name.clone());
    let mut cmd = port_command(tree, board, &cfg_dir, &src_dir, &opts);
    let stale = objects_outside(&cmd, &port_dir, &port_dir.join(&build_name), DRY_RUN_LIMIT).unwrap_or_else(|why| {
        progress(BuildEvent::Warning {
            text: format!(
                "{why}; objects the port keeps outside its build folder were not checked for an earlier config (delete them by hand if the build misbehaves)"
            ),
        });
        Vec::new()
    });
    if !stale.is_empty() {
        for o in &stale {
            std::fs::remove_file(o).map_err(io(format!(
                "cannot remove {}, built outside the port's build folder with another config (remove it by hand)",
                o.display()
            )))?;
        }
        progress(BuildEvent::Stale { objects: stale });
    }
    progress(BuildEvent::Running {
        command: format!("{cmd:?}"),
    });
    let output = cmd.output().map_err(io(
        "cannot run make (install the port's toolchain and make)",
    ))?;
    if !output.status.success() {
        // The whole log goes to a file: the error shows only its last lines.
        let log = out.join("make.log");
        std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat())
            .map_err(io(format!("cannot write {}", log.display())))?;
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        return Err(BuildError::PortBuild {
            port: board.port.name.clone(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            log,
        });
    }
    let build_dir = port_dir.join(build_name);
    let elf = ["firmware.elf", "firmware"]
        .iter()
        .map(|n| build_dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| BuildError::NoElf {
            dir: build_dir.clone(),
        })?;
    let (text, data, bss) = super::sizes(&elf);
    Ok(BuildOutput {
        board: board.name.clone(),
        elf,
        fingerprint: resolved.config.fingerprint,
        text,
        data,
        bss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Catalog;
    use crate::config::Artifacts;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn names() -> Vec<String> {
        [
            "MICROPY_PY_THREAD_GIL",
            "configNUMBER_OF_CORES",
            "configTOTAL_HEAP_SIZE",
            "MP_THREAD_DEFAULT_STACK_SIZE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn tunables_come_from_the_rendered_header() {
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("rpi-pico-w").unwrap();
        let a = Artifacts::render(b, &resolve(b, &Overrides::default()).unwrap().config);
        let h = String::from_utf8_lossy(&a.files[0].1).into_owned();
        let t = tunables(&h);
        for n in [
            "configNUMBER_OF_CORES",
            "configTOTAL_HEAP_SIZE",
            "MICROPY_PY_THREAD_GIL",
        ] {
            assert!(t.iter().any(|x| x == n), "{n} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x.starts_with("MPFR_")), "{t:?}");
    }

    #[test]
    fn scanner_knows_guards_else_branches_and_nesting() {
        let src = "\
#define MICROPY_PY_THREAD_GIL (0)
#ifndef configTOTAL_HEAP_SIZE
#define configTOTAL_HEAP_SIZE (8192)
#else
#define configNUMBER_OF_CORES 2
#endif
#if !defined(MP_THREAD_DEFAULT_STACK_SIZE)
#  if FOO
#    define MP_THREAD_DEFAULT_STACK_SIZE 4096
#  endif
#endif
#ifdef X
#define configTOTAL_HEAP_SIZE 1
#endif
";
        assert_eq!(
            scan_c(src, &names()),
            vec![
                (1, "MICROPY_PY_THREAD_GIL".to_string()),
                (5, "configNUMBER_OF_CORES".to_string()),
                (13, "configTOTAL_HEAP_SIZE".to_string()),
            ]
        );
    }

    /// A small fake tree (never real MicroPython sources).
    fn fake_tree(root: &Path) {
        write(
            root,
            "py/mpconfig.h",
            "#ifndef MICROPY_PY_THREAD_GIL\n#define MICROPY_PY_THREAD_GIL (1)\n#endif\n",
        );
        write(
            root,
            "ports/qemu/mpconfigport.h",
            "// port config\n#include <stdint.h>\n#define MICROPY_PY_THREAD_GIL (1)\n",
        );
        write(
            root,
            "ports/qemu/boards/MPS2_AN385_THREAD/FreeRTOSConfig.h",
            "#ifndef configTOTAL_HEAP_SIZE\n#define configTOTAL_HEAP_SIZE 8192\n#endif\n#define configNUMBER_OF_CORES 1\n",
        );
        write(
            root,
            "ports/qemu/boards/OTHER/FreeRTOSConfig.h",
            "#define configNUMBER_OF_CORES 1\n",
        );
        write(
            root,
            "ports/qemu/build-MPS2_AN385_THREAD/genhdr/x.h",
            "#define configNUMBER_OF_CORES 1\n",
        );
        write(
            root,
            "ports/qemu/CMakeLists.txt",
            "add_compile_definitions(MICROPY_PY_THREAD_GIL=0)\n",
        );
        // A template the port copies from: never compiled, so not a hard-code.
        write(
            root,
            "extmod/freertos/FreeRTOSConfig_template.h",
            "#define configTOTAL_HEAP_SIZE (4096)\n#define configNUMBER_OF_CORES (1)\n",
        );
        write(
            root,
            "extmod/freertos/mpthreadport.h",
            "#if !defined(MP_THREAD_DEFAULT_STACK_SIZE)\n#define MP_THREAD_DEFAULT_STACK_SIZE 4096\n#endif\n",
        );
    }

    #[test]
    fn finds_every_hard_coded_tunable_in_a_fake_tree_with_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        fake_tree(d.path());
        let found = find_hard_coded(d.path(), "qemu", "MPS2_AN385_THREAD", &names()).unwrap();
        let shown: Vec<String> = found.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "ports/qemu/CMakeLists.txt:1: MICROPY_PY_THREAD_GIL",
                "ports/qemu/boards/MPS2_AN385_THREAD/FreeRTOSConfig.h:4: configNUMBER_OF_CORES",
                "ports/qemu/mpconfigport.h:3: MICROPY_PY_THREAD_GIL",
            ]
        );
    }

    #[test]
    fn build_stops_on_hard_coded_tunables_before_running_make() {
        let d = tempfile::tempdir().unwrap();
        fake_tree(d.path());
        // A Makefile that would leave a trace if it ran.
        write(d.path(), "ports/qemu/Makefile", "all:\n\ttouch ran\n");
        let out = tempfile::tempdir().unwrap();
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let err = build_micropython(
            b,
            &Overrides::default(),
            d.path(),
            &[],
            Some(out.path()),
            &mut |_| {},
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("3 tunables"), "{text}");
        assert!(
            text.contains("ports/qemu/mpconfigport.h:3: MICROPY_PY_THREAD_GIL"),
            "{text}"
        );
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(help.contains("#ifndef"), "{help}");
        assert!(!d.path().join("ports/qemu/ran").exists());
    }

    #[test]
    fn a_clean_tree_runs_the_port_build_with_config_and_module() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        // Stand-in port Makefile: records its variables and produces an ELF-named file.
        write(
            d.path(),
            "ports/qemu/Makefile",
            "all:\n\tmkdir -p $(BUILD)\n\techo '$(USER_C_MODULES)|$(CFLAGS_EXTRA)' > $(BUILD)/firmware.elf\n",
        );
        let out = tempfile::tempdir().unwrap();
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let mut events = Vec::new();
        let built = build_micropython(
            b,
            &Overrides::default(),
            d.path(),
            &[],
            Some(out.path()),
            &mut |e| events.push(format!("{e:?}")),
        )
        .unwrap();
        let rec = std::fs::read_to_string(&built.elf).unwrap();
        let (modules, cflags) = rec.trim().split_once('|').unwrap();
        assert!(
            Path::new(modules).join("usermod/micropython.mk").is_file(),
            "{modules}"
        );
        assert!(
            cflags.starts_with("-include ") && cflags.contains("mpfr_config.h"),
            "{cflags}"
        );
        assert!(
            events.iter().any(|e| e.starts_with("Running")),
            "{events:?}"
        );
    }

    #[test]
    fn a_heap_larger_than_the_trees_own_default_is_a_warning_naming_the_knob() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(
            d.path(),
            "extmod/freertos/FreeRTOSConfig.h",
            "#ifndef configTOTAL_HEAP_SIZE\n#define configTOTAL_HEAP_SIZE (4 * 1024)\n#endif\n",
        );
        write(
            d.path(),
            "ports/qemu/Makefile",
            "all:\n\tmkdir -p $(BUILD)\n\ttouch $(BUILD)/firmware.elf\n",
        );
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let run = |ov: &Overrides| {
            let out = tempfile::tempdir().unwrap();
            let mut warnings = Vec::new();
            build_micropython(b, ov, d.path(), &[], Some(out.path()), &mut |e| {
                if let BuildEvent::Warning { text } = e {
                    warnings.push(text);
                }
            })
            .unwrap();
            warnings
        };
        let w = run(&Overrides::default());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("configTOTAL_HEAP_SIZE"), "{}", w[0]);
        assert!(w[0].contains("--heap 4KiB"), "{}", w[0]);
        assert!(
            w[0].contains("extmod/freertos/FreeRTOSConfig.h:2"),
            "{}",
            w[0]
        );
        // The user chose the size: nothing to warn about.
        let chosen = Overrides {
            heap: Some(crate::util::size::Size::kib(64)),
            ..Overrides::default()
        };
        assert!(run(&chosen).is_empty());
    }

    #[test]
    fn a_hung_dry_run_is_cut_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        // `+` runs a recipe line even under `make -n`: this dry run never ends by itself.
        write(d.path(), "Makefile", "all:\n\t+sleep 600\n");
        let mut make = Command::new("make");
        make.arg("-C").arg(d.path());
        let t0 = std::time::Instant::now();
        let why = objects_outside(
            &make,
            d.path(),
            &d.path().join("build"),
            std::time::Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(why.starts_with("the dry run `make -n -B` "), "{why}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(300),
            "not cut"
        );
    }

    #[test]
    fn a_failed_port_build_names_a_log_holding_all_of_makes_output() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(
            d.path(),
            "ports/qemu/Makefile",
            "all:\n\t@echo compiling first.c\n\t@echo 'first.c:1: error: boom' >&2\n\t@false\n",
        );
        let out = tempfile::tempdir().unwrap();
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let err = build_micropython(
            b,
            &Overrides::default(),
            d.path(),
            &[],
            Some(out.path()),
            &mut |_| {},
        )
        .unwrap_err();
        let BuildError::PortBuild { ref log, .. } = err else {
            panic!("{err}");
        };
        let text = err.to_string();
        assert!(text.contains("first.c:1: error: boom"), "{text}");
        assert!(text.contains(&log.display().to_string()), "{text}");
        let whole = std::fs::read_to_string(log).unwrap();
        assert!(
            whole.contains("compiling first.c") && whole.contains("error: boom"),
            "{whole}"
        );
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(!help.contains("-v"), "{help}");
    }

    #[test]
    fn templates_are_not_scanned_but_real_headers_are() {
        assert!(is_template("FreeRTOSConfig_template.h"));
        assert!(is_template("config.example.h"));
        assert!(!is_template("FreeRTOSConfig.h"));
        assert!(!is_template("templates.c"));
    }

    #[test]
    fn the_port_counter_macros_are_not_tunables() {
        let h = "#define configTOTAL_HEAP_SIZE 1\n#if defined(MPFR_RUNTIME_COUNTER_TICKS)\n#define portGET_RUN_TIME_COUNTER_VALUE() xTaskGetTickCount()\n#endif\n";
        assert_eq!(tunables(h), vec!["configTOTAL_HEAP_SIZE".to_string()]);
    }

    #[test]
    fn make_args_must_be_assignments() {
        assert!(check_make_args(&["FROZEN_MANIFEST=".into(), "V=1".into()]).is_ok());
        for bad in ["clean", "=x", "1X=2", "A B=1"] {
            let e = check_make_args(&[bad.to_string()]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    /// Stand-in port Makefile: records the variables mpfr passes, produces an ELF-named file.
    const RECORDING_MAKEFILE: &str = "all:\n\tmkdir -p $(BUILD)\n\techo 'cflags=$(CFLAGS_EXTRA)|kernel=$(FREERTOS_DIR)|frozen=$(FROZEN_MANIFEST)|heap=$(MICROPY_HEAP_SIZE)|' > $(BUILD)/firmware.elf\n";

    fn build_recorded(tree: &Path, make_args: &[String]) -> String {
        let out = tempfile::tempdir().unwrap();
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let built = build_micropython(
            b,
            &Overrides::default(),
            tree,
            make_args,
            Some(out.path()),
            &mut |_| {},
        )
        .unwrap();
        std::fs::read_to_string(&built.elf).unwrap()
    }

    #[test]
    fn a_tree_without_counter_or_kernel_gets_the_tick_counter_and_mpfrs_kernel() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(d.path(), "ports/qemu/Makefile", RECORDING_MAKEFILE);
        // An uninitialised submodule is an empty folder.
        std::fs::create_dir_all(d.path().join("lib/FreeRTOS-Kernel")).unwrap();
        let rec = build_recorded(d.path(), &["FROZEN_MANIFEST=none".to_string()]);
        assert!(rec.contains("-DMPFR_RUNTIME_COUNTER_TICKS=1"), "{rec}");
        let kernel = mpfr_firmware::freertos_kernel_dir().display().to_string();
        assert!(rec.contains(&format!("kernel={kernel}|")), "{rec}");
        assert!(rec.contains("frozen=none|"), "{rec}");
        // The qemu board's GC heap goes through the port's own make variable.
        assert!(rec.contains("heap=262144|"), "{rec}");
    }

    #[test]
    fn a_tree_with_its_own_counter_and_kernel_keeps_them() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(d.path(), "ports/qemu/Makefile", RECORDING_MAKEFILE);
        write(
            d.path(),
            "ports/qemu/FreeRTOSConfig.h",
            "#define portGET_RUN_TIME_COUNTER_VALUE() timer_now()\n",
        );
        write(d.path(), "lib/FreeRTOS-Kernel/tasks.c", "\n");
        let rec = build_recorded(d.path(), &[]);
        assert!(!rec.contains("MPFR_RUNTIME_COUNTER_TICKS"), "{rec}");
        assert!(rec.contains("kernel=|"), "{rec}");
    }

    #[test]
    fn objects_built_outside_the_build_folder_are_rebuilt_for_a_new_config() {
        // Like trees whose makefiles compile extmod/freertos beside its sources: the object
        // exists after one config and make would reuse it for the next.
        let mk = "OBJ = ../../extmod/freertos/mpthreadport.o\n\
all: $(OBJ)\n\tmkdir -p $(BUILD)\n\techo linked > $(BUILD)/firmware.elf\n\
$(OBJ):\n\tmkdir -p ../../extmod/freertos\n\techo '$(CFLAGS_EXTRA)' > $@ # cc -c -o $(OBJ) mpthreadport.c\n";
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(d.path(), "ports/qemu/Makefile", mk);
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let obj = d.path().join("extmod/freertos/mpthreadport.o");
        let mut stale_seen = Vec::new();
        for gil in [crate::board::Gil::On, crate::board::Gil::Off] {
            let out = tempfile::tempdir().unwrap();
            let ov = Overrides {
                gil: Some(gil),
                ..Default::default()
            };
            build_micropython(b, &ov, d.path(), &[], Some(out.path()), &mut |e| {
                if let BuildEvent::Stale { objects } = e {
                    stale_seen.push(objects);
                }
            })
            .unwrap();
            // The object was compiled with this build's config header.
            let flags = std::fs::read_to_string(&obj).unwrap();
            let cfg = out.path().canonicalize().unwrap();
            assert!(
                flags.contains(&cfg.display().to_string()),
                "{gil:?}: {flags}"
            );
        }
        // The first build had nothing to remove; the second named the object it removed.
        assert_eq!(stale_seen.len(), 1, "{stale_seen:?}");
        assert_eq!(stale_seen[0], vec![lexical(&obj)]);
    }

    #[test]
    fn each_config_builds_in_its_own_folder() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "py/mpconfig.h", "\n");
        write(d.path(), "ports/qemu/Makefile", RECORDING_MAKEFILE);
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let mut elfs = Vec::new();
        for gil in [
            crate::board::Gil::On,
            crate::board::Gil::Off,
            crate::board::Gil::On,
        ] {
            let out = tempfile::tempdir().unwrap();
            let ov = Overrides {
                gil: Some(gil),
                ..Default::default()
            };
            let built =
                build_micropython(b, &ov, d.path(), &[], Some(out.path()), &mut |_| {}).unwrap();
            let fp = built.fingerprint.trim_start_matches("0x").to_string();
            assert_eq!(
                built.elf,
                d.path().join(format!(
                    "ports/qemu/build-MPS2_AN385_THREAD-mpfr-{fp}/firmware.elf"
                ))
            );
            elfs.push(built.elf);
        }
        assert_ne!(elfs[0], elfs[1], "a GIL switch is another folder");
        assert_eq!(
            elfs[0], elfs[2],
            "the same config builds where it built before"
        );
    }
}
