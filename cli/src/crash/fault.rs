//! The Cortex-M fault status registers (SCB CFSR, HFSR, MMFAR, BFAR) decoded into words.

use serde::{Deserialize, Serialize};

/// Addresses of the fault registers in the System Control Block (the same on ARMv7-M and
/// ARMv8-M; on a multi-core part each core sees its own).
pub const CFSR: u64 = 0xE000_ED28;
pub const HFSR: u64 = 0xE000_ED2C;
pub const MMFAR: u64 = 0xE000_ED34;
pub const BFAR: u64 = 0xE000_ED38;

/// One core's fault registers as captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRegs {
    pub cfsr: u32,
    pub hfsr: u32,
    pub mmfar: u32,
    pub bfar: u32,
}

/// CFSR bits: (bit, name, what it means). MMFSR is bits 0-7, BFSR 8-15, UFSR 16-31.
const CFSR_BITS: &[(u32, &str, &str)] = &[
    (
        0,
        "IACCVIOL",
        "instruction fetch from a location the MPU forbids",
    ),
    (1, "DACCVIOL", "data access the MPU forbids"),
    (3, "MUNSTKERR", "MPU fault unstacking on exception return"),
    (4, "MSTKERR", "MPU fault stacking on exception entry"),
    (
        5,
        "MLSPERR",
        "MPU fault during lazy floating-point state preservation",
    ),
    (8, "IBUSERR", "bus fault on an instruction fetch"),
    (9, "PRECISERR", "precise bus fault"),
    (
        10,
        "IMPRECISERR",
        "imprecise bus fault (the stacked PC is after the faulting write)",
    ),
    (11, "UNSTKERR", "bus fault unstacking on exception return"),
    (
        12,
        "STKERR",
        "bus fault stacking on exception entry (stack pointer out of RAM?)",
    ),
    (
        13,
        "LSPERR",
        "bus fault during lazy floating-point state preservation",
    ),
    (16, "UNDEFINSTR", "undefined instruction"),
    (
        17,
        "INVSTATE",
        "invalid state (a branch to an address without the Thumb bit?)",
    ),
    (
        18,
        "INVPC",
        "invalid PC load on exception return (bad EXC_RETURN)",
    ),
    (
        19,
        "NOCP",
        "coprocessor instruction with the coprocessor off (FPU not enabled?)",
    ),
    (
        20,
        "STKOF",
        "stack overflow caught by a stack limit register (PSPLIM/MSPLIM)",
    ),
    (24, "UNALIGNED", "unaligned access with the trap on"),
    (25, "DIVBYZERO", "division by zero with the trap on"),
];
const MMARVALID: u32 = 1 << 7;
const BFARVALID: u32 = 1 << 15;
const HFSR_VECTTBL: u32 = 1 << 1;
const HFSR_FORCED: u32 = 1 << 30;
const HFSR_DEBUGEVT: u32 = 1 << 31;

/// One decoded cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The register bit's name (`PRECISERR`, `FORCED`).
    pub bit: String,
    /// The cause in words, with the fault address when the core recorded one.
    pub text: String,
}

impl FaultRegs {
    /// True when any fault bit is set.
    pub fn any(&self) -> bool {
        self.cfsr != 0 || self.hfsr & (HFSR_VECTTBL | HFSR_FORCED) != 0
    }

    /// Every set bit, most specific first (CFSR, then HFSR).
    pub fn causes(&self) -> Vec<Cause> {
        let mut out = Vec::new();
        for &(bit, name, text) in CFSR_BITS {
            if self.cfsr & (1 << bit) == 0 {
                continue;
            }
            let text = match name {
                "DACCVIOL" if self.cfsr & MMARVALID != 0 => {
                    format!("{text} at {:#010x} (MMFAR)", self.mmfar)
                }
                "PRECISERR" if self.cfsr & BFARVALID != 0 => {
                    format!("{text} reading or writing {:#010x} (BFAR)", self.bfar)
                }
                _ => text.to_string(),
            };
            out.push(Cause {
                bit: name.to_string(),
                text,
            });
        }
        if self.hfsr & HFSR_VECTTBL != 0 {
            out.push(Cause {
                bit: "VECTTBL".into(),
                text: "bus fault reading the vector table".into(),
            });
        }
        if self.hfsr & HFSR_FORCED != 0 {
            out.push(Cause {
                bit: "FORCED".into(),
                text: "a configurable fault escalated to HardFault (its handler is not enabled or it could not run)".into(),
            });
        }
        if self.hfsr & HFSR_DEBUGEVT != 0 {
            out.push(Cause {
                bit: "DEBUGEVT".into(),
                text: "debug event (a breakpoint without a debugger?)".into(),
            });
        }
        out
    }

    /// The cause in one line: the most specific one (`precise bus fault reading or writing
    /// 0xf0000000 (BFAR)`), or `no fault recorded`.
    pub fn summary(&self) -> String {
        self.causes()
            .into_iter()
            .next()
            .map_or_else(|| "no fault recorded".to_string(), |c| c.text)
    }
}

/// The name of exception number `n` (the IPSR field of xPSR).
pub fn exception_name(n: u32) -> String {
    match n {
        0 => "thread mode".into(),
        1 => "Reset".into(),
        2 => "NMI".into(),
        3 => "HardFault".into(),
        4 => "MemManage".into(),
        5 => "BusFault".into(),
        6 => "UsageFault".into(),
        7 => "SecureFault".into(),
        11 => "SVCall".into(),
        12 => "DebugMonitor".into(),
        14 => "PendSV".into(),
        15 => "SysTick".into(),
        n if n >= 16 => format!("IRQ {}", n - 16),
        n => format!("exception {n}"),
    }
}

/// True for the exceptions a fault lands in.
pub fn is_fault_exception(n: u32) -> bool {
    (3..=7).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precise_bus_fault_escalated_names_the_address() {
        // What QEMU's mps2-an521 core 1 shows after `fault 1 read`.
        let r = FaultRegs {
            cfsr: 0x0000_8200,
            hfsr: 0x4000_0000,
            mmfar: 0,
            bfar: 0xf000_0000,
        };
        let bits: Vec<_> = r.causes().into_iter().map(|c| c.bit).collect();
        assert_eq!(bits, ["PRECISERR", "FORCED"]);
        assert_eq!(
            r.summary(),
            "precise bus fault reading or writing 0xf0000000 (BFAR)"
        );
        assert!(r.any());
    }

    #[test]
    fn bfar_is_not_quoted_when_not_valid() {
        let r = FaultRegs {
            cfsr: 1 << 9,
            bfar: 0x1234,
            ..FaultRegs::default()
        };
        assert_eq!(r.summary(), "precise bus fault");
    }

    #[test]
    fn every_usage_fault_bit_has_a_name() {
        for (bit, name) in [
            (16, "UNDEFINSTR"),
            (17, "INVSTATE"),
            (18, "INVPC"),
            (19, "NOCP"),
            (20, "STKOF"),
            (24, "UNALIGNED"),
            (25, "DIVBYZERO"),
            (0, "IACCVIOL"),
            (8, "IBUSERR"),
            (10, "IMPRECISERR"),
            (11, "UNSTKERR"),
            (12, "STKERR"),
        ] {
            let r = FaultRegs {
                cfsr: 1 << bit,
                ..FaultRegs::default()
            };
            assert_eq!(r.causes()[0].bit, name, "bit {bit}");
        }
    }

    #[test]
    fn mpu_fault_quotes_mmfar_and_vecttbl_is_decoded() {
        let r = FaultRegs {
            cfsr: (1 << 1) | MMARVALID,
            hfsr: HFSR_VECTTBL,
            mmfar: 0x2000_0000,
            bfar: 0,
        };
        let c = r.causes();
        assert_eq!(
            c[0].text,
            "data access the MPU forbids at 0x20000000 (MMFAR)"
        );
        assert_eq!(c[1].bit, "VECTTBL");
    }

    #[test]
    fn nothing_set_is_no_fault() {
        let r = FaultRegs::default();
        assert!(!r.any());
        assert!(r.causes().is_empty());
        assert_eq!(r.summary(), "no fault recorded");
    }

    #[test]
    fn exception_names() {
        assert_eq!(exception_name(3), "HardFault");
        assert_eq!(exception_name(14), "PendSV");
        assert_eq!(exception_name(16 + 32), "IRQ 32");
        assert!(is_fault_exception(3) && !is_fault_exception(14));
    }
}
