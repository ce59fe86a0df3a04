//! Real boards: memory through a debug probe with probe-rs, attached without halting the core
//! (Cortex-M reads memory through the debug access port while the CPU runs).

use std::ops::Range;

use probe_rs::probe::DebugProbeSelector;
use probe_rs::probe::list::Lister;
use probe_rs::{MemoryInterface, Permissions, Session};

use super::{Memory, TargetError};

/// `--probe VID:PID[:SERIAL]`, parsed before any USB access.
pub fn parse_selector(s: &str) -> Result<DebugProbeSelector, TargetError> {
    let bad = || TargetError::ProbeSelector { given: s.into() };
    let t = s.trim();
    let (vid, rest) = t.split_once(':').ok_or_else(bad)?;
    let pid = rest.split(':').next().unwrap_or("");
    let hex4 = |x: &str| !x.is_empty() && x.len() <= 4 && x.chars().all(|c| c.is_ascii_hexdigit());
    if !hex4(vid) || !hex4(pid) {
        return Err(bad());
    }
    t.parse::<DebugProbeSelector>().map_err(|_| bad())
}

/// A probe as the lister reported it, for messages.
fn describe_info(i: &probe_rs::probe::DebugProbeInfo) -> String {
    match &i.serial_number {
        Some(s) => format!(
            "{} ({:04x}:{:04x}:{s})",
            i.identifier, i.vendor_id, i.product_id
        ),
        None => format!(
            "{} ({:04x}:{:04x})",
            i.identifier, i.vendor_id, i.product_id
        ),
    }
}

/// Picks the probe to use from what the lister saw: the one matching `selector`, or the only
/// one there is. Pure, so the choice is unit-tested without USB.
pub fn choose<'a>(
    seen: &'a [probe_rs::probe::DebugProbeInfo],
    selector: Option<&DebugProbeSelector>,
) -> Result<&'a probe_rs::probe::DebugProbeInfo, TargetError> {
    let list = || seen.iter().map(describe_info).collect::<Vec<_>>();
    let selector_text = selector.map(|s| s.to_string()).unwrap_or_default();
    let matching: Vec<_> = seen
        .iter()
        .filter(|i| {
            selector.is_none_or(|s| {
                s.vendor_id == i.vendor_id
                    && s.product_id == i.product_id
                    && (s.serial_number.is_none() || s.serial_number == i.serial_number)
            })
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(TargetError::NoProbe {
            selector: selector_text,
            seen: list(),
        }),
        _ => Err(TargetError::NoProbe {
            selector: "exactly one probe (several are connected)".into(),
            seen: list(),
        }),
    }
}

/// An attached probe-rs session.
pub struct ProbeMemory {
    session: Session,
    chip: String,
    probe: String,
    ram: Vec<Range<u64>>,
}

impl std::fmt::Debug for ProbeMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeMemory")
            .field("chip", &self.chip)
            .field("probe", &self.probe)
            .finish()
    }
}

impl ProbeMemory {
    /// Finds the probe (fails fast, listing what it saw, when there is none) and attaches to
    /// `chip` without halting it.
    pub fn attach(
        chip: &str,
        selector: Option<&DebugProbeSelector>,
        ram: Vec<Range<u64>>,
    ) -> Result<Self, TargetError> {
        let lister = Lister::new();
        let seen = lister.list_all();
        let info = choose(&seen, selector)?;
        let probe_name = describe_info(info);
        let attach_err = |why: String| TargetError::Attach {
            chip: chip.into(),
            probe: probe_name.clone(),
            why,
        };
        let probe = info.open().map_err(|e| attach_err(e.to_string()))?;
        let session = probe
            .attach(chip, Permissions::default())
            .map_err(|e| attach_err(e.to_string()))?;
        Ok(ProbeMemory {
            session,
            chip: chip.into(),
            probe: probe_name,
            ram,
        })
    }

    fn access_err(
        &self,
        op: &'static str,
        addr: u64,
        len: usize,
        e: probe_rs::Error,
    ) -> TargetError {
        TargetError::Access {
            op,
            addr,
            len,
            target: self.describe(),
            why: e.to_string(),
        }
    }
}

impl Memory for ProbeMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let r = match self.session.core(0) {
            Ok(mut core) => core.read_8(addr, buf),
            Err(e) => Err(e),
        };
        r.map_err(|e| self.access_err("read", addr, buf.len(), e))
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        let r = match self.session.core(0) {
            Ok(mut core) => core.write_8(addr, data),
            Err(e) => Err(e),
        };
        r.map_err(|e| self.access_err("write", addr, data.len(), e))
    }

    fn ram_ranges(&self) -> Vec<Range<u64>> {
        self.ram.clone()
    }

    fn describe(&self) -> String {
        format!("{} through probe {}", self.chip, self.probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parsing() {
        let s = parse_selector("2e8a:000c").expect("vid:pid");
        assert_eq!((s.vendor_id, s.product_id), (0x2e8a, 0x000c));
        assert_eq!(s.serial_number, None);
        let s = parse_selector("0483:374b:066DFF").expect("with serial");
        assert_eq!(s.serial_number.as_deref(), Some("066DFF"));
        for bad in ["", "2e8a", "xyz:0001", "12345:1", ":0001", "2e8a:"] {
            assert!(
                matches!(parse_selector(bad), Err(TargetError::ProbeSelector { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn no_probe_lists_nothing_and_says_how_to_fix() {
        let e = choose(&[], None).expect_err("no probes");
        let msg = e.to_string();
        assert_eq!(msg, "no debug probe found");
        let help = miette::Diagnostic::help(&e)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("connect the board's debug probe"), "{help}");
    }

    #[test]
    fn attach_without_hardware_fails_fast_with_a_clear_error() {
        // This machine has no probe; the lister must come back empty (or with probes that do
        // not match a selector nobody has) instead of hanging.
        let sel = parse_selector("dead:beef:nothere").expect("selector");
        let e = ProbeMemory::attach("RP2040", Some(&sel), vec![]).expect_err("no such probe");
        assert!(matches!(e, TargetError::NoProbe { .. }), "{e:?}");
    }
}
