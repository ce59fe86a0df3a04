//! Real boards: memory through a debug probe with probe-rs, attached without halting the core
//! (Cortex-M reads memory through the debug access port while the CPU runs).

use std::ops::Range;

use probe_rs::probe::list::Lister;
use probe_rs::{MemoryInterface, Permissions, Session};

use super::{Memory, TargetError};
use crate::util::probe::{
    ProbeChoiceError, ProbeSelector, is_permission_denied, list_probes, select_probe,
};

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
    /// Finds the probe (fails fast, listing what it saw, when there is none; a probe the user
    /// may not open is a permissions problem) and attaches to `chip` without halting it.
    pub fn attach(
        chip: &str,
        selector: Option<&ProbeSelector>,
        ram: Vec<Range<u64>>,
    ) -> Result<Self, TargetError> {
        let lister = Lister::new();
        let entry = select_probe(chip, &list_probes(&lister), selector)?;
        let probe_name = entry.to_string();
        let attach_err = |why: String| TargetError::Attach {
            chip: chip.into(),
            probe: probe_name.clone(),
            why,
        };
        let probe = lister
            .open(entry.selector().to_probe_rs())
            .map_err(|e| -> TargetError {
                if is_permission_denied(&e) {
                    ProbeChoiceError::Permission {
                        probe: probe_name.clone(),
                    }
                    .into()
                } else {
                    attach_err(e.to_string())
                }
            })?;
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
    fn attach_without_hardware_fails_fast_with_a_clear_error() {
        // This machine has no probe; the lister must come back empty (or with probes that do
        // not match a selector nobody has) instead of hanging.
        let sel: ProbeSelector = "dead:beef:nothere".parse().expect("selector");
        let e = ProbeMemory::attach("RP2040", Some(&sel), vec![]).expect_err("no such probe");
        assert!(
            matches!(e, TargetError::Probe(ProbeChoiceError::NoProbe { .. })),
            "{e:?}"
        );
        let help = miette::Diagnostic::help(&e)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("connect a debug probe"), "{help}");
    }
}
