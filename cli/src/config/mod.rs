//! Board configuration: a board's defaults plus command-line overrides, resolved and checked
//! against the board and its chip, then rendered for the firmware (the config contract).

mod render;

use std::fmt::Write as _;

use miette::Diagnostic;
use serde::Serialize;

pub use render::{Artifacts, HEADER_FILE, MANIFEST_FILE, Manifest, read_manifest};

use crate::board::{Affinity, Board, Gil, Kernel};
use crate::util::size::Size;

/// Version of the config contract (header names and manifest layout).
pub const CONTRACT_VERSION: u32 = 1;

/// What the user asked to change from the board's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub cores: Option<u32>,
    pub heap: Option<Size>,
    pub gc_heap: Option<Size>,
    pub stack: Option<Size>,
    pub thread_stack: Option<Size>,
    pub gil: Option<Gil>,
    pub affinity: Option<Affinity>,
}

/// A resolved, validated configuration for one board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardConfig {
    pub board: String,
    pub chip: String,
    pub kernel: Kernel,
    pub cores: u32,
    pub gc_heap: Size,
    pub heap: Size,
    pub stack: Size,
    pub thread_stack: Size,
    pub service_stack: Size,
    pub service_priority: u8,
    pub gil: Gil,
    pub affinity: Affinity,
    pub tick_hz: u32,
    /// Stable hash of everything above, as `0x` + 8 hex digits.
    pub fingerprint: String,
}

/// One line of the RAM budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetLine {
    pub item: &'static str,
    pub size: Size,
}

/// What the configuration spends of the board's RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub lines: Vec<BudgetLine>,
    pub total: Size,
    pub ram: Size,
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for l in &self.lines {
            writeln!(f, "  {:<26} {:>10}", l.item, l.size.to_string())?;
        }
        writeln!(f, "  {:<26} {:>10}", "total", self.total.to_string())?;
        write!(f, "  {:<26} {:>10}", "board RAM", self.ram.to_string())
    }
}

/// A resolved config plus what the user should know about it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: BoardConfig,
    pub budget: Budget,
    /// Explanations of allowed but surprising choices (printed as `note:`).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    #[error("--cores {requested}: {board} has {available} core(s) ({chip})")]
    #[diagnostic(code(mpfr::config::cores), help("use --cores {available} or fewer"))]
    TooManyCores {
        board: String,
        chip: String,
        requested: u32,
        available: u32,
    },

    #[error("--cores 0: FreeRTOS needs at least one core")]
    #[diagnostic(code(mpfr::config::cores), help("use --cores 1 or more"))]
    NoCores,

    #[error(
        "the configuration needs {total} of RAM but {board} has {ram}\n{budget}",
        total = budget.total,
        ram = budget.ram
    )]
    #[diagnostic(
        code(mpfr::config::ram),
        help("lower --gc-heap, --heap or --stack (over by {over})")
    )]
    RamBudget {
        board: String,
        budget: Budget,
        over: Size,
    },

    #[error("--affinity {affinity}: the configuration runs on {cores} core(s)")]
    #[diagnostic(code(mpfr::config::affinity), help("{help}"))]
    Affinity {
        affinity: String,
        cores: u32,
        help: String,
    },

    #[error("--{what} {value} is too small: {why}")]
    #[diagnostic(code(mpfr::config::too_small), help("use at least {min}"))]
    TooSmall {
        what: &'static str,
        value: Size,
        min: Size,
        why: &'static str,
    },

    #[error("--{what} {value} is not a multiple of {align} bytes")]
    #[diagnostic(code(mpfr::config::alignment), help("round it to {rounded}"))]
    Alignment {
        what: &'static str,
        value: Size,
        align: u64,
        rounded: Size,
    },
}

/// Resolves `board`'s defaults plus `ov` and validates the result. Does no I/O.
pub fn resolve(board: &Board, ov: &Overrides) -> Result<Resolved, ConfigError> {
    let d = &board.defaults;
    let cores = ov.cores.or(d.cores).unwrap_or(board.cores);
    if cores == 0 {
        return Err(ConfigError::NoCores);
    }
    if cores > board.cores {
        let chip = match &board.chip_info() {
            Some(info) => format!(
                "{}: {} cores per the probe-rs target database",
                info.target, info.cores
            ),
            None => board.chip.clone(),
        };
        return Err(ConfigError::TooManyCores {
            board: board.name.clone(),
            chip,
            requested: cores,
            available: board.cores,
        });
    }
    let mut notes = Vec::new();
    let gil = ov.gil.unwrap_or(d.gil);
    let affinity = ov.affinity.unwrap_or(d.affinity);
    let cfg = BoardConfig {
        board: board.name.clone(),
        chip: board.chip.clone(),
        kernel: board.kernel,
        cores,
        gc_heap: ov.gc_heap.unwrap_or(d.gc_heap),
        heap: ov.heap.unwrap_or(d.heap),
        stack: ov.stack.unwrap_or(d.stack),
        thread_stack: ov.thread_stack.unwrap_or(d.thread_stack),
        service_stack: d.service_stack,
        service_priority: d.service_priority,
        gil,
        affinity,
        tick_hz: d.tick_hz,
        fingerprint: String::new(),
    };

    if board.kernel != Kernel::Host {
        check_stack(
            "stack",
            cfg.stack,
            Size(1024),
            "the main task runs the REPL and the compiler",
        )?;
        check_stack(
            "thread-stack",
            cfg.thread_stack,
            Size(1024),
            "a Python thread needs room for the VM's frames",
        )?;
        check_min(
            "gc-heap",
            cfg.gc_heap,
            Size::kib(16),
            "MicroPython cannot start with less GC heap",
        )?;
        if board.kernel == Kernel::Freertos {
            check_min(
                "heap",
                cfg.heap,
                Size::kib(2),
                "FreeRTOS allocates its idle and timer tasks from it",
            )?;
        }
    }

    match (affinity, cores) {
        (Affinity::Core1, 1) => {
            return Err(ConfigError::Affinity {
                affinity: "core1".into(),
                cores,
                help: "core1 exists only with --cores 2; use --affinity core0 or any".into(),
            });
        }
        (Affinity::Core0 | Affinity::Core1, _) if board.kernel == Kernel::Host => {
            notes.push(format!(
                "--affinity {} has no effect on the host board: threads are OS threads",
                affinity.as_str()
            ));
        }
        _ => {}
    }
    if gil == Gil::Off && cores == 1 && board.kernel != Kernel::Host {
        notes.push(
            "GIL off on one core is allowed: threads still preempt each other on that core, so \
             unlocked dict/list/set mutation from several threads remains a data race; with one \
             core, GIL on costs little"
                .into(),
        );
    }
    if gil == Gil::Off && cores > 1 {
        notes.push(
            "GIL off: Python threads run truly in parallel; protect shared dict/list/set \
             mutation with _thread locks (`sys.implementation._thread` reports \"unsafe\")"
                .into(),
        );
    }
    if board.kernel == Kernel::EspIdf {
        notes.push(
            "ESP-IDF owns the kernel settings: apply sdkconfig.mpfr (cores, tick, trace switches) \
             with the header"
                .into(),
        );
    }

    let budget = budget(board, &cfg);
    if budget.total > budget.ram {
        let over = Size(budget.total.0 - budget.ram.0);
        return Err(ConfigError::RamBudget {
            board: board.name.clone(),
            budget,
            over,
        });
    }
    if cfg.thread_stack.0 * 4 > cfg.gc_heap.0 && board.kernel != Kernel::Host {
        notes.push(format!(
            "thread stacks come from the GC heap: with --thread-stack {} only {} threads fit in a {} GC heap",
            cfg.thread_stack,
            cfg.gc_heap.0 / cfg.thread_stack.0.max(1),
            cfg.gc_heap
        ));
    }
    let config = BoardConfig {
        fingerprint: fingerprint(&cfg),
        ..cfg
    };
    Ok(Resolved {
        config,
        budget,
        notes,
    })
}

fn check_min(
    what: &'static str,
    value: Size,
    min: Size,
    why: &'static str,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::TooSmall {
            what,
            value,
            min,
            why,
        });
    }
    Ok(())
}

fn check_stack(
    what: &'static str,
    value: Size,
    min: Size,
    why: &'static str,
) -> Result<(), ConfigError> {
    check_min(what, value, min, why)?;
    if !value.0.is_multiple_of(8) {
        return Err(ConfigError::Alignment {
            what,
            value,
            align: 8,
            rounded: Size(value.0.div_ceil(8) * 8),
        });
    }
    Ok(())
}

fn budget(board: &Board, cfg: &BoardConfig) -> Budget {
    let mut lines = vec![
        BudgetLine {
            item: "MicroPython GC heap",
            size: cfg.gc_heap,
        },
        BudgetLine {
            item: "FreeRTOS heap",
            size: cfg.heap,
        },
        BudgetLine {
            item: "main task stack",
            size: cfg.stack,
        },
        BudgetLine {
            item: "service task stack",
            size: cfg.service_stack,
        },
    ];
    if board.ram_reserved.0 > 0 {
        lines.push(BudgetLine {
            item: "reserved by the port",
            size: board.ram_reserved,
        });
    }
    let total = Size(lines.iter().map(|l| l.size.0).sum());
    Budget {
        lines,
        total,
        ram: board.ram,
    }
}

/// FNV-1a (32-bit) over a canonical `key=value` listing of the resolved config. Stable across
/// runs and platforms; changes whenever any tunable does.
fn fingerprint(cfg: &BoardConfig) -> String {
    let mut canon = String::new();
    let _ = write!(
        canon,
        "contract={CONTRACT_VERSION}\nboard={}\nchip={}\nkernel={:?}\ncores={}\ngc_heap={}\nheap={}\n\
         stack={}\nthread_stack={}\nservice_stack={}\nservice_priority={}\ngil={:?}\naffinity={:?}\ntick_hz={}\n",
        cfg.board,
        cfg.chip,
        cfg.kernel,
        cfg.cores,
        cfg.gc_heap.0,
        cfg.heap.0,
        cfg.stack.0,
        cfg.thread_stack.0,
        cfg.service_stack.0,
        cfg.service_priority,
        cfg.gil,
        cfg.affinity,
        cfg.tick_hz
    );
    let mut h: u32 = 0x811c_9dc5;
    for b in canon.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("0x{h:08x}")
}

/// The value of a firmware's own `#define configTOTAL_HEAP_SIZE` line, in bytes, when it is a
/// plain number, possibly in parentheses, a cast or `* 1024` (`(size_t)(4 * 1024)`); `None` for
/// other lines or expressions mpfr cannot evaluate.
pub fn firmware_heap_define(line: &str) -> Option<u64> {
    let rest = line
        .trim_start()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("define")?
        .trim_start()
        .strip_prefix("configTOTAL_HEAP_SIZE")?;
    let expr = rest.split("/*").next()?.split("//").next()?;
    let expr = expr
        .replace("size_t", "")
        .replace(['(', ')', ' ', '\t'], "");
    let mut value: u64 = 1;
    for factor in expr.split('*') {
        let digits = factor.trim_end_matches(['u', 'U', 'l', 'L']);
        value = value.checked_mul(digits.parse().ok()?)?;
    }
    Some(value)
}

/// The warning for a rendered FreeRTOS heap larger than the firmware's own default (`theirs`,
/// defined at `at`) that the user did not ask for: the kernel reserves it all as static RAM,
/// used or not, and a firmware whose threads live in the GC heap may never touch it.
pub fn heap_growth_warning(
    cfg: &BoardConfig,
    ov: &Overrides,
    theirs: u64,
    at: &str,
) -> Option<String> {
    if ov.heap.is_some() || cfg.kernel != Kernel::Freertos || cfg.heap.0 <= theirs {
        return None;
    }
    Some(format!(
        "mpfr_config.h raises the FreeRTOS heap (configTOTAL_HEAP_SIZE) from this firmware's {} \
         ({at}) to the board's {}: {} more static RAM, reserved whether the firmware allocates \
         from that heap or not. If its threads take their memory from the GC heap, keep its \
         size with --heap {} (`mpfr threads ls` shows the heap as unused when nothing was ever \
         allocated from it)",
        Size(theirs),
        cfg.heap,
        Size(cfg.heap.0 - theirs),
        Size(theirs),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Catalog;

    #[test]
    fn firmware_heap_defines_are_read_in_their_usual_forms() {
        assert_eq!(
            firmware_heap_define("#define configTOTAL_HEAP_SIZE (4096)"),
            Some(4096)
        );
        assert_eq!(
            firmware_heap_define("  #  define configTOTAL_HEAP_SIZE ((size_t)(64 * 1024)) /* x */"),
            Some(65536)
        );
        assert_eq!(
            firmware_heap_define("#define configTOTAL_HEAP_SIZE 8192UL"),
            Some(8192)
        );
        assert_eq!(
            firmware_heap_define("#define configTOTAL_HEAP_SIZE HEAP_BYTES"),
            None
        );
        assert_eq!(
            firmware_heap_define("#define configTICK_RATE_HZ 1000"),
            None
        );
    }

    #[test]
    fn a_heap_grown_past_the_firmwares_own_default_is_said_with_the_knob() {
        let cat = Catalog::builtin().unwrap();
        let b = cat.get("qemu-mps2-an385").unwrap();
        let r = resolve(b, &Overrides::default()).unwrap();
        assert!(r.config.heap.0 > 4096);
        let w = heap_growth_warning(
            &r.config,
            &Overrides::default(),
            4096,
            "FreeRTOSConfig.h:12",
        )
        .expect("a warning");
        assert!(
            w.contains("configTOTAL_HEAP_SIZE") && w.contains("--heap"),
            "{w}"
        );
        assert!(w.contains("FreeRTOSConfig.h:12"), "{w}");
        // Asked for, or not larger: nothing to say.
        let asked = Overrides {
            heap: Some(r.config.heap),
            ..Overrides::default()
        };
        assert!(heap_growth_warning(&r.config, &asked, 4096, "x").is_none());
        assert!(
            heap_growth_warning(&r.config, &Overrides::default(), r.config.heap.0, "x").is_none()
        );
    }

    fn board(name: &str) -> Board {
        Catalog::builtin().unwrap().get(name).unwrap().clone()
    }

    #[test]
    fn defaults_resolve_for_every_builtin_board() {
        for b in Catalog::builtin().unwrap().iter() {
            let r = resolve(b, &Overrides::default()).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert!(r.budget.total <= r.budget.ram, "{}", b.name);
            assert_eq!(r.config.fingerprint.len(), 10);
        }
    }

    #[test]
    fn three_cores_on_rp2040_fails_naming_the_chip() {
        let e = resolve(
            &board("rpi-pico"),
            &Overrides {
                cores: Some(3),
                ..Default::default()
            },
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--cores 3"), "{msg}");
        assert!(msg.contains("RP2040: 2 cores"), "{msg}");
    }

    #[test]
    fn ram_overrun_shows_the_budget() {
        let e = resolve(
            &board("rpi-pico"),
            &Overrides {
                gc_heap: Some(Size::kib(256)),
                ..Default::default()
            },
        )
        .unwrap_err();
        match &e {
            ConfigError::RamBudget { over, budget, .. } => {
                assert_eq!(budget.total.0 - budget.ram.0, over.0);
                assert!(e.to_string().contains("MicroPython GC heap"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gil_off_on_one_core_is_allowed_but_explained() {
        let r = resolve(
            &board("nucleo-f429zi"),
            &Overrides {
                gil: Some(Gil::Off),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.config.gil, Gil::Off);
        assert!(
            r.notes.iter().any(|n| n.contains("GIL off on one core")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn core1_affinity_needs_two_cores() {
        let e = resolve(
            &board("rpi-pico"),
            &Overrides {
                cores: Some(1),
                affinity: Some(Affinity::Core1),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Affinity { .. }));
    }

    #[test]
    fn tiny_or_misaligned_stacks_are_rejected() {
        let b = board("rpi-pico");
        let e = resolve(
            &b,
            &Overrides {
                stack: Some(Size(512)),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::TooSmall { what: "stack", .. }));
        let e = resolve(
            &b,
            &Overrides {
                thread_stack: Some(Size(4100)),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Alignment {
                rounded: Size(4104),
                ..
            }
        ));
    }

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        let b = board("rpi-pico-w");
        let a = resolve(&b, &Overrides::default())
            .unwrap()
            .config
            .fingerprint;
        assert_eq!(
            a,
            resolve(&b, &Overrides::default())
                .unwrap()
                .config
                .fingerprint
        );
        let c = resolve(
            &b,
            &Overrides {
                heap: Some(Size::kib(12)),
                ..Default::default()
            },
        )
        .unwrap()
        .config
        .fingerprint;
        assert_ne!(a, c);
    }
}
