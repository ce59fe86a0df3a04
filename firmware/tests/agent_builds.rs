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
