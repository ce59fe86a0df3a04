//! The agent's C must compile for every kernel shape it claims to support, not only the
//! single-core reference firmware: this checks the SMP code paths (configNUMBER_OF_CORES 2,
//! core affinity) with the cross compiler, syntax and types only.

use std::process::Command;

const SMP_CONFIG: &str = r#"
#define configNUMBER_OF_CORES 2
#define configUSE_CORE_AFFINITY 1
#define configRUN_MULTIPLE_PRIORITIES 1
#define configUSE_PASSIVE_IDLE_HOOK 0
#define configUSE_PORT_OPTIMISED_TASK_SELECTION 0
#define configTOTAL_HEAP_SIZE 8192
#define configTICK_RATE_HZ 1000
#define configUSE_TRACE_FACILITY 1
#define configGENERATE_RUN_TIME_STATS 1
#define configRECORD_STACK_HIGH_ADDRESS 1
/* Stand-ins for the SMP hooks a real SMP port (rp2, ...) provides. */
#define portGET_CORE_ID() 0
#define portYIELD_CORE(x)
#define portGET_TASK_LOCK(x)
#define portRELEASE_TASK_LOCK(x)
#define portGET_ISR_LOCK(x)
#define portRELEASE_ISR_LOCK(x)
#define portSET_INTERRUPT_MASK() 0
#define portCLEAR_INTERRUPT_MASK(x) ((void)(x))
#define portENTER_CRITICAL_FROM_ISR() 0
#define portEXIT_CRITICAL_FROM_ISR(x) ((void)(x))
"#;

#[test]
fn agent_compiles_for_smp_kernels() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mpfr_config.h"), SMP_CONFIG).expect("config");
    let fw = mpfr_firmware::crate_dir();
    let k = mpfr_firmware::freertos_kernel_dir();
    let units = [
        ("agent/mpfr_agent.c", Some("-DMPFR_AGENT_OWN_TASK=1")),
        ("agent/mpfr_agent.c", Some("-DMPFR_AGENT_OWN_TASK=0")),
        ("agent/mpfr_agent.c", Some("-DMPFR_AGENT_TASK_WALK=1")),
        ("runtime/mpfr_service.c", None),
        ("runtime/mpfr_thread.c", None),
    ];
    for (f, mode) in units {
        let out = Command::new("arm-none-eabi-gcc")
            .args(["-mcpu=cortex-m3", "-mthumb", "-std=gnu11", "-fsyntax-only"])
            .args(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])
            .args(mode)
            .arg(format!("-I{}", dir.path().display()))
            .arg(format!("-I{}", fw.join("reference").display()))
            .arg(format!("-I{}", fw.join("agent").display()))
            .arg(format!("-I{}", fw.join("runtime").display()))
            .arg(format!("-I{}", k.join("include").display()))
            .arg(format!("-I{}", k.join("portable/GCC/ARM_CM3").display()))
            .arg(fw.join(f))
            .output()
            .expect("arm-none-eabi-gcc must be installed (scripts/setup.sh)");
        assert!(
            out.status.success(),
            "{f} ({}) does not compile for SMP:\n{}",
            mode.unwrap_or("defaults"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// ESP-IDF ships its own FreeRTOS, with headers under `freertos/`, an ISR check named
/// `xPortInIsrContext()`, critical sections that take a spinlock and stacks counted in bytes.
/// There is no ESP-IDF here: this is a stand-in made from the real kernel headers, moved below
/// `freertos/`, with a port header of IDF's shape. It shows the agent's IDF branch compiles and
/// is the one compiled (the plain `FreeRTOS.h` is not on the path; the object calls IDF's
/// functions); it does not show that the agent builds against ESP-IDF itself.
const IDF_CONFIG: &str = r#"
#define configNUMBER_OF_CORES 2
#define configUSE_CORE_AFFINITY 1
#define configRUN_MULTIPLE_PRIORITIES 1
#define configUSE_PASSIVE_IDLE_HOOK 0
#define configUSE_PORT_OPTIMISED_TASK_SELECTION 0
#define configUSE_PREEMPTION 1
#define configUSE_IDLE_HOOK 0
#define configUSE_TICK_HOOK 0
#define configTICK_TYPE_WIDTH_IN_BITS TICK_TYPE_WIDTH_32_BITS
#define configMAX_PRIORITIES 25
#define configMINIMAL_STACK_SIZE 768
#define configMAX_TASK_NAME_LEN 16
#define configTICK_RATE_HZ 100
#define configSTACK_DEPTH_TYPE uint32_t
#define configUSE_TRACE_FACILITY 1
#define configGENERATE_RUN_TIME_STATS 1
#define configRECORD_STACK_HIGH_ADDRESS 1
#define configSUPPORT_STATIC_ALLOCATION 1
#define INCLUDE_xTaskGetIdleTaskHandle 1
#define INCLUDE_uxTaskGetStackHighWaterMark 1
#define portCONFIGURE_TIMER_FOR_RUN_TIME_STATS()
#define portGET_RUN_TIME_COUNTER_VALUE() 0
"#;

const IDF_PORTMACRO: &str = r#"
#include <stdint.h>
typedef uint8_t StackType_t; /* IDF counts stacks in bytes */
typedef int BaseType_t;
typedef unsigned UBaseType_t;
typedef uint32_t TickType_t;
#define portMAX_DELAY ((TickType_t)0xffffffffUL)
#define portTICK_TYPE_IS_ATOMIC 1
#define portSTACK_GROWTH (-1)
#define portBYTE_ALIGNMENT 16
#define portTICK_PERIOD_MS ((TickType_t)1000 / configTICK_RATE_HZ)
#define portNOP()
#define portYIELD()
#define portYIELD_WITHIN_API()
#define portYIELD_CORE(x)
#define portGET_CORE_ID() 0
typedef struct { uint32_t owner; uint32_t count; } portMUX_TYPE;
#define portMUX_INITIALIZER_UNLOCKED {0, 0}
BaseType_t xPortInIsrContext(void);
void vPortEnterCritical(portMUX_TYPE *mux);
void vPortExitCritical(portMUX_TYPE *mux);
#define portENTER_CRITICAL(mux) vPortEnterCritical(mux)
#define portEXIT_CRITICAL(mux) vPortExitCritical(mux)
#define portENTER_CRITICAL_ISR(mux) vPortEnterCritical(mux)
#define portEXIT_CRITICAL_ISR(mux) vPortExitCritical(mux)
#define portDISABLE_INTERRUPTS() ((void)0)
#define portENABLE_INTERRUPTS() ((void)0)
/* What the plain kernel's SMP headers insist on. */
#define portSET_INTERRUPT_MASK() 0
#define portCLEAR_INTERRUPT_MASK(x) ((void)(x))
#define portENTER_CRITICAL_FROM_ISR() 0
#define portEXIT_CRITICAL_FROM_ISR(x) ((void)(x))
#define portGET_TASK_LOCK(x)
#define portRELEASE_TASK_LOCK(x)
#define portGET_ISR_LOCK(x)
#define portRELEASE_ISR_LOCK(x)
"#;

/// Compiles `firmware/<unit>` for Cortex-M3 into an object with `args`; returns the symbols it
/// leaves undefined, or the compiler's complaint.
fn undefined_symbols(unit: &str, args: &[String]) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let obj = dir.path().join("unit.o");
    let out = Command::new("arm-none-eabi-gcc")
        .args(["-mcpu=cortex-m3", "-mthumb", "-std=gnu11", "-Os", "-c"])
        .args(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])
        .args(args)
        .arg(mpfr_firmware::crate_dir().join(unit))
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("arm-none-eabi-gcc must be installed (scripts/setup.sh)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let nm = Command::new("arm-none-eabi-nm")
        .arg("-u")
        .arg(&obj)
        .output()
        .expect("arm-none-eabi-nm");
    Ok(String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect())
}

#[test]
fn agent_compiles_for_an_esp_idf_layout_and_takes_its_branch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let idf = dir.path().join("freertos");
    std::fs::create_dir(&idf).expect("mkdir");
    let include = mpfr_firmware::freertos_kernel_dir().join("include");
    for e in std::fs::read_dir(&include).expect("kernel headers") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "h") {
            std::fs::copy(&p, idf.join(p.file_name().expect("name"))).expect("copy header");
        }
    }
    std::fs::write(dir.path().join("FreeRTOSConfig.h"), IDF_CONFIG).expect("config");
    std::fs::write(dir.path().join("portmacro.h"), IDF_PORTMACRO).expect("portmacro");
    let inc = |own_task: u8| {
        vec![
            format!("-I{}", dir.path().display()),
            format!("-I{}", mpfr_firmware::crate_dir().join("agent").display()),
            format!("-DMPFR_AGENT_OWN_TASK={own_task}"),
        ]
    };
    for own_task in [0, 1] {
        let mut args = inc(own_task);
        args.push("-DESP_PLATFORM".into());
        let syms = undefined_symbols("agent/mpfr_agent.c", &args)
            .unwrap_or_else(|e| panic!("the agent does not compile for ESP-IDF:\n{e}"));
        for idf_fn in [
            "xPortInIsrContext",
            "vPortEnterCritical",
            "vPortExitCritical",
        ] {
            assert!(
                syms.iter().any(|s| s == idf_fn),
                "{idf_fn} not called: {syms:?}"
            );
        }
        assert!(
            !syms.iter().any(|s| s == "xPortIsInsideInterrupt"),
            "{syms:?}"
        );
    }
    // Without ESP_PLATFORM the plain branch looks for a top-level FreeRTOS.h, which IDF lacks.
    let e = undefined_symbols("agent/mpfr_agent.c", &inc(0)).expect_err("plain branch");
    assert!(e.contains("FreeRTOS.h"), "{e}");
}

/// Heaps without xPortGetMinimumEverFreeHeapSize() (heap_1, heap_2) or without any figures
/// (heap_3, a port's own allocator): with the switches off, the agent must not call them, so it
/// links against such a heap (what it reports then is checked in tests/tests/e2e/firmware.rs).
#[test]
fn heap_switches_keep_the_agent_off_missing_heap_functions() {
    let fw = mpfr_firmware::crate_dir();
    let k = mpfr_firmware::freertos_kernel_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mpfr_config.h"), "").expect("config");
    let base = [
        format!("-I{}", dir.path().display()),
        format!("-I{}", fw.join("reference").display()),
        format!("-I{}", fw.join("agent").display()),
        format!("-I{}", k.join("include").display()),
        format!("-I{}", k.join("portable/GCC/ARM_CM3").display()),
    ];
    let calls = |flags: &[&str]| {
        let mut args = base.to_vec();
        args.extend(flags.iter().map(|f| f.to_string()));
        let syms = undefined_symbols("agent/mpfr_agent.c", &args)
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        (
            syms.iter().any(|s| s == "xPortGetFreeHeapSize"),
            syms.iter().any(|s| s == "xPortGetMinimumEverFreeHeapSize"),
            syms.iter().any(|s| s == "vPortGetHeapStats"),
        )
    };
    assert_eq!(
        calls(&[]),
        (false, false, true),
        "heap_4/heap_5: every figure and the allocation count in one call"
    );
    assert_eq!(calls(&["-DMPFR_AGENT_HEAP_ALLOCS=0"]), (true, true, false));
    assert_eq!(
        calls(&["-DMPFR_AGENT_HEAP_MIN_FREE=0"]),
        (true, false, false)
    );
    assert_eq!(calls(&["-DMPFR_AGENT_HEAP_STATS=0"]), (false, false, false));
}

/// RTT publishes an offset only after the data it covers: a `dmb` on ARMv7-M and ARMv8-M (as
/// SEGGER's RTT), none on ARMv6-M, where the core's stores are seen in order.
#[test]
fn rtt_publishes_behind_a_memory_barrier_on_v7m_and_v8m() {
    let src = mpfr_firmware::crate_dir().join("agent/mpfr_rtt.c");
    for (cpu, want) in [
        ("cortex-m3", true),
        ("cortex-m33", true),
        ("cortex-m0plus", false),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let obj = dir.path().join("rtt.o");
        let st = Command::new("arm-none-eabi-gcc")
            .args(["-mthumb", "-Os", "-c", &format!("-mcpu={cpu}")])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("arm-none-eabi-gcc");
        assert!(st.success(), "{cpu}");
        let dis = Command::new("arm-none-eabi-objdump")
            .args(["-d", "--disassemble=mpfr_rtt_commit"])
            .arg(&obj)
            .output()
            .expect("arm-none-eabi-objdump");
        let text = String::from_utf8_lossy(&dis.stdout);
        assert!(text.contains("<mpfr_rtt_commit>:"), "{text}");
        assert_eq!(text.contains("dmb"), want, "{cpu}:\n{text}");
    }
}

/// What ships into any firmware stands apart from the runtime: no agent file includes a runtime
/// header (service counters and thread counts come through `mpfr_agent_sources_t`). The object
/// checks above compile the agent with no runtime folder on the include path as well.
#[test]
fn agent_includes_no_runtime_header() {
    let runtime_headers: Vec<&str> = mpfr_firmware::RUNTIME_SOURCES
        .iter()
        .filter(|f| f.path.ends_with(".h"))
        .filter_map(|f| f.path.rsplit('/').next())
        .collect();
    assert!(!runtime_headers.is_empty());
    for f in mpfr_firmware::AGENT_SOURCES {
        for line in f
            .text
            .lines()
            .filter(|l| l.trim_start().starts_with("#include"))
        {
            assert!(
                !runtime_headers.iter().any(|h| line.contains(h)),
                "{} includes a runtime header: {line}",
                f.path
            );
        }
    }
}
