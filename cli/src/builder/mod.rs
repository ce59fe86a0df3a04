//! `mpfr build`: renders a board's config and compiles the reference firmware (FreeRTOS + agent)
//! with arm-none-eabi-gcc into `<out>/firmware.elf`; [`record`] makes it the board's last build.

use crate::util::sanitize::escape_text;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use miette::Diagnostic;

use crate::board::Board;
use crate::config::{Artifacts, ConfigError, Overrides, Resolved, resolve};

mod micropython;
mod mpport;
mod record;
pub use micropython::{HardCoded, build_micropython, find_hard_coded, tunables};
pub use mpport::{MICROPYTHON_VERSION, PortBuild, PortError, build_port, find_tree};
pub use record::{BuildRecord, RecordError};

/// The cross compiler the reference firmware needs.
pub const GCC: &str = "arm-none-eabi-gcc";
/// Debian packages that provide it and its C library.
pub const TOOLCHAIN_PACKAGES: &str = "gcc-arm-none-eabi libnewlib-arm-none-eabi";

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum BuildError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error("board `{board}` has no reference firmware")]
    #[diagnostic(
        code(mpfr::build::board),
        help(
            "the reference firmware runs on virtual boards whose qemu table has a `reference` build; `mpfr boards` lists the boards with flasher qemu"
        )
    )]
    NoReference { board: String },

    #[error("the ARM cross compiler `{tool}` was not found")]
    #[diagnostic(
        code(mpfr::build::toolchain),
        help(
            "install the Debian packages {TOOLCHAIN_PACKAGES} (`sudo apt-get install {TOOLCHAIN_PACKAGES}`, or run scripts/setup.sh), or set MPFR_GCC to the compiler"
        )
    )]
    ToolchainMissing { tool: String },

    #[error("the FreeRTOS kernel sources are missing from {}", dir.display())]
    #[diagnostic(
        code(mpfr::build::kernel),
        help(
            "mpfr takes the kernel from the crates.io crate freertos-next; rebuild mpfr (`cargo build`) so cargo fetches it again"
        )
    )]
    KernelMissing { dir: PathBuf },

    #[error("compiling {file} failed:\n{stderr}")]
    #[diagnostic(code(mpfr::build::compile), help("{hint}"))]
    Compile {
        file: String,
        stderr: String,
        hint: String,
    },

    #[error("{} is not a MicroPython tree with a `ports/{port}` port", dir.display())]
    #[diagnostic(
        code(mpfr::build::tree),
        help("pass the top folder of a MicroPython checkout (the one holding py/ and ports/)")
    )]
    NotMicroPython { dir: PathBuf, port: String },

    #[error(
        "the MicroPython tree hard-codes {count} tunables that mpfr_config.h must set:\n{list}"
    )]
    #[diagnostic(
        code(mpfr::build::hard_coded),
        help(
            "wrap each definition as `#ifndef NAME` / `#define NAME ...` / `#endif` (and drop NAME=... from CMake definitions) so the rendered config can set it"
        )
    )]
    HardCoded { count: usize, list: String },

    #[error("`{arg}` is not a make variable assignment")]
    #[diagnostic(
        code(mpfr::build::make_arg),
        help(
            "arguments after `--` go to the port's make as NAME=value, e.g. `-- FROZEN_MANIFEST=`"
        )
    )]
    MakeArg { arg: String },

    #[error("the {port} port build failed (whole log: {}):\n{tail}", log.display())]
    #[diagnostic(
        code(mpfr::build::port),
        help("the lines above are the end of make's errors; the log holds all of its output")
    )]
    PortBuild {
        port: String,
        tail: String,
        log: PathBuf,
    },

    #[error("the port build finished but left no firmware.elf in {}", dir.display())]
    #[diagnostic(
        code(mpfr::build::no_elf),
        help("check the port's BOARD name in boards.toml")
    )]
    NoElf { dir: PathBuf },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Port(#[from] PortError),

    #[error("{context}")]
    #[diagnostic(code(mpfr::build::io))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// What a build reports while it runs (the binary renders it).
#[derive(Debug, Clone)]
pub enum BuildEvent {
    Configured {
        fingerprint: String,
        dir: PathBuf,
    },
    Compiling {
        file: String,
        done: usize,
        total: usize,
    },
    Linking {
        elf: PathBuf,
    },
    /// An outside build (a MicroPython port's make) started.
    Running {
        command: String,
    },
    /// Objects the port's make keeps outside its build folder were removed so that they are
    /// rebuilt with this config.
    Stale {
        objects: Vec<PathBuf>,
    },
    /// The outside build went one step further (`done` files compiled so far).
    Step {
        what: String,
        done: usize,
    },
    /// Something the user should know about this build (printed as a warning).
    Warning {
        text: String,
    },
}

/// What a finished build produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildOutput {
    pub board: String,
    pub elf: PathBuf,
    pub fingerprint: String,
    /// Bytes of code+rodata, initialised data and zeroed data in the image.
    pub text: u64,
    pub data: u64,
    pub bss: u64,
}

/// The default output folder of a board's build.
pub fn out_dir(board: &str) -> PathBuf {
    crate::util::paths::out_root().join(board)
}

/// The compiler to use: `$MPFR_GCC`, else arm-none-eabi-gcc from PATH.
fn compiler() -> String {
    std::env::var("MPFR_GCC").unwrap_or_else(|_| GCC.to_string())
}

/// Creates the output folder (default [`out_dir`]) and renders the config into its `config/`.
/// Returns the absolute output folder, the config folder and what was written.
fn configure(
    board: &Board,
    resolved: &Resolved,
    out: Option<&Path>,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<(PathBuf, PathBuf, Artifacts), BuildError> {
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir(&board.name));
    std::fs::create_dir_all(&out).map_err(io(format!("cannot create {}", out.display())))?;
    let out =
        std::fs::canonicalize(&out).map_err(io(format!("cannot resolve {}", out.display())))?;
    let cfg_dir = out.join("config");
    let artifacts = Artifacts::render(board, &resolved.config);
    artifacts.write(&cfg_dir).map_err(io(format!(
        "cannot write the config into {}",
        cfg_dir.display()
    )))?;
    progress(BuildEvent::Configured {
        fingerprint: resolved.config.fingerprint.clone(),
        dir: cfg_dir.clone(),
    });
    Ok((out, cfg_dir, artifacts))
}

/// Builds the reference firmware for `board` into `out` (default [`out_dir`]).
pub fn build_reference(
    board: &Board,
    overrides: &Overrides,
    out: Option<&Path>,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<BuildOutput, BuildError> {
    let Some((machine, facts)) = board
        .platform
        .qemu()
        .and_then(|m| Some((m, m.reference.as_ref()?)))
    else {
        return Err(BuildError::NoReference {
            board: board.name.clone(),
        });
    };
    let resolved = resolve(board, overrides)?;
    let gcc = compiler();
    check_tool(&gcc)?;
    let kernel = mpfr_firmware::freertos_kernel_dir();
    if !kernel.join("tasks.c").is_file() {
        return Err(BuildError::KernelMissing {
            dir: kernel.to_path_buf(),
        });
    }

    let (out, cfg_dir, _) = configure(board, &resolved, out, progress)?;
    let src_dir = out.join("src");
    let obj_dir = out.join("obj");
    mpfr_firmware::write_sources(&src_dir).map_err(io(format!(
        "cannot write sources into {}",
        src_dir.display()
    )))?;
    std::fs::create_dir_all(&obj_dir)
        .map_err(io(format!("cannot create {}", obj_dir.display())))?;

    let mut units: Vec<PathBuf> = facts
        .kernel_sources
        .iter()
        .map(|f| kernel.join(f))
        .collect();
    // The reference sources are shared by every machine except the startup files: each machine
    // names its own.
    for f in mpfr_firmware::AGENT_SOURCES
        .iter()
        .chain(mpfr_firmware::RUNTIME_SOURCES)
        .chain(mpfr_firmware::REFERENCE_SOURCES)
        .filter(|f| f.path.ends_with(".c") && !is_startup(f.path))
    {
        units.push(src_dir.join(f.path));
    }
    units.push(src_dir.join(&facts.startup));
    // A port mpfr ships (the SMP port) replaces the kernel's: its folder is on the include path
    // and its C files are compiled.
    let port_dir = match (&facts.kernel_port, &facts.firmware_port) {
        (_, Some(dir)) => {
            let dir = src_dir.join(dir);
            units.extend(c_files(&dir)?);
            dir
        }
        (Some(dir), None) => kernel.join(dir),
        (None, None) => kernel.join("portable"),
    };
    let mut flags: Vec<String> = facts.cflags.clone();
    flags.extend(
        [
            "-Os",
            "-g",
            "-std=gnu11",
            "-ffunction-sections",
            "-fdata-sections",
            "-Wall",
        ]
        .map(String::from),
    );
    flags.push(format!(
        "-DMPFR_REF_VERSION=\"{}\"",
        env!("CARGO_PKG_VERSION")
    ));
    flags.push(format!("-DMPFR_UART0_BASE={:#x}u", machine.uart));
    // Extra flags from the environment, after mpfr's own so they win (agent knobs such as
    // -DMPFR_AGENT_OWN_TASK=1; see docs/firmware.md). Split on whitespace, no quoting.
    if let Ok(extra) = std::env::var("MPFR_CFLAGS") {
        flags.extend(extra.split_whitespace().map(str::to_string));
    }
    for inc in [
        cfg_dir.clone(),
        src_dir.join("reference"),
        src_dir.join("agent"),
        src_dir.join("runtime"),
    ]
    .into_iter()
    .chain([kernel.join("include"), port_dir])
    {
        flags.push(format!("-I{}", inc.display()));
    }

    let objects = compile_all(&gcc, &flags, &units, &obj_dir, progress)?;

    let elf = out.join("firmware.elf");
    progress(BuildEvent::Linking { elf: elf.clone() });
    let tmp = out.join(".firmware.elf.tmp");
    let output = Command::new(&gcc)
        .args(&facts.cflags)
        .arg("-nostartfiles")
        .args(["--specs=nano.specs", "--specs=nosys.specs"])
        .arg(format!(
            "-T{}",
            src_dir.join(&facts.linker_script).display()
        ))
        .arg("-Wl,--gc-sections")
        .arg("-Wl,--undefined=_SEGGER_RTT")
        .arg(format!("-Wl,-Map={}", out.join("firmware.map").display()))
        .args(&objects)
        .arg("-o")
        .arg(&tmp)
        .output()
        .map_err(io(format!("cannot run {gcc}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(BuildError::Compile {
            file: "firmware.elf (link)".into(),
            hint: compile_hint(&gcc, &stderr),
            stderr: escape_text(&stderr, 8000),
        });
    }
    std::fs::rename(&tmp, &elf).map_err(io(format!("cannot write {}", elf.display())))?;
    let (text, data, bss) = sizes(&elf);

    let fingerprint = resolved.config.fingerprint.clone();
    Ok(BuildOutput {
        board: board.name.clone(),
        elf,
        fingerprint,
        text,
        data,
        bss,
    })
}

/// The C files of a folder, in name order (so builds are alike).
fn c_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(format!("cannot read {}", dir.display())))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    Ok(files)
}

/// A machine's startup file: only the one the machine names is compiled.
fn is_startup(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("startup"))
}

fn check_tool(gcc: &str) -> Result<(), BuildError> {
    match Command::new(gcc).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(BuildError::ToolchainMissing {
            tool: gcc.to_string(),
        }),
    }
}

/// Compiles every unit, two at a time (the machines this runs on are small), reporting progress
/// from the calling thread.
fn compile_all(
    gcc: &str,
    flags: &[String],
    units: &[PathBuf],
    obj_dir: &Path,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Vec<PathBuf>, BuildError> {
    let objects: Vec<PathBuf> = units
        .iter()
        .map(|u| {
            let stem = u.file_stem().map(|s| s.to_string_lossy().into_owned());
            obj_dir.join(format!("{}.o", stem.unwrap_or_default()))
        })
        .collect();
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<(), BuildError>)>();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            let objects = &objects;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= units.len() {
                        break;
                    }
                    let r = compile_one(gcc, flags, &units[i], &objects[i]);
                    let failed = r.is_err();
                    if tx.send((i, r)).is_err() || failed {
                        // Stop taking work after a failure; the first error is reported.
                        next.store(units.len(), Ordering::SeqCst);
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        let mut first_err = None;
        for (i, r) in rx {
            match r {
                Ok(()) => {
                    done += 1;
                    progress(BuildEvent::Compiling {
                        file: file_label(&units[i]),
                        done,
                        total: units.len(),
                    });
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(objects.clone()),
        }
    })
}

fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn compile_one(gcc: &str, flags: &[String], src: &Path, obj: &Path) -> Result<(), BuildError> {
    let out = Command::new(gcc)
        .args(flags)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(obj)
        .output()
        .map_err(io(format!("cannot run {gcc}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(BuildError::Compile {
            file: src.display().to_string(),
            hint: compile_hint(gcc, &stderr),
            stderr: escape_text(&stderr, 8000),
        })
    }
}

/// What to check after a failed compile: a compiler that refuses the ARM flags is the wrong
/// compiler (a host gcc in MPFR_GCC), not a bad tunable.
fn compile_hint(gcc: &str, stderr: &str) -> String {
    // mpfr passes only flags arm-none-eabi-gcc knows: any refused flag means another compiler.
    let not_arm = [
        "unrecognized command-line option",
        "unrecognized command line option",
        "unknown target CPU",
        "unrecognized argument in option",
    ]
    .iter()
    .any(|m| stderr.contains(m));
    if not_arm {
        format!(
            "`{gcc}` does not compile for ARM Cortex-M: point MPFR_GCC at arm-none-eabi-gcc (Debian: gcc-arm-none-eabi), or unset it"
        )
    } else {
        "a tunable in the rendered mpfr_config.h may be out of range; check `mpfr config` output"
            .into()
    }
}

/// Section sizes from arm-none-eabi-size (zeros when it is unavailable: sizes are informative).
fn sizes(elf: &Path) -> (u64, u64, u64) {
    let size = compiler().replace("gcc", "size");
    let Ok(out) = Command::new(size).arg(elf).output() else {
        return (0, 0, 0);
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|n| n.parse().ok())
        .collect();
    match nums[..] {
        [t, d, b] => (t, d, b),
        _ => (0, 0, 0),
    }
}

/// Makes `out` the board's last build, which `mpfr flash` and `threads top` read back.
pub fn record(out: &BuildOutput) -> Result<(), BuildError> {
    let rec = BuildRecord {
        elf: out.elf.clone(),
        fingerprint: out.fingerprint.clone(),
    };
    rec.write(&out.board).map(drop).map_err(io(format!(
        "cannot write {}",
        crate::util::paths::last_build_record(&out.board).display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Catalog;

    /// A compiler's stderr is quoted in the error: its escape sequences arrive escaped.
    #[test]
    fn compiler_output_in_a_build_error_is_escaped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let gcc = dir.path().join("fake-gcc");
        std::fs::write(
            &gcc,
            "#!/bin/sh\nprintf 'x.c:1: \\033[1;31merror\\033[0m \\342\\200\\256\\n' >&2\nexit 1\n",
        )
        .expect("script");
        std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let src = dir.path().join("x.c");
        let e = compile_one(
            gcc.to_str().expect("utf-8"),
            &[],
            &src,
            &dir.path().join("x.o"),
        )
        .expect_err("the compiler failed");
        let text = e.to_string();
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("\\x1b[1;31merror"), "{text}");
    }

    #[test]
    fn boards_without_reference_firmware_are_refused() {
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("rpi-pico").unwrap();
        let err = build_reference(b, &Overrides::default(), None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, BuildError::NoReference { .. }));
    }

    #[test]
    fn missing_toolchain_names_the_packages() {
        let e = check_tool("/nonexistent/arm-none-eabi-gcc").unwrap_err();
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(help.contains("gcc-arm-none-eabi"), "{help}");
        assert!(help.contains("libnewlib-arm-none-eabi"), "{help}");
    }
}
