//! What a chip really has, from probe-rs's built-in target database (works offline).
//!
//! Boards claim cores and RAM; this module bounds those claims. Chips the database does not
//! know (ESP32 parts, the QEMU board) are described by the board file itself.

use std::ops::Range;
use std::sync::OnceLock;

use probe_rs::config::{MemoryRegion, Registry};

use crate::util::size::Size;

/// Cores and RAM of a chip as the probe-rs target database describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChipInfo {
    /// The target name probe-rs resolved the chip to (e.g. `RP2040`, `STM32F429ZITx`).
    pub target: String,
    pub cores: u32,
    /// Sum of the RAM regions. Some chips list aliased views of one SRAM, so this is an upper
    /// bound, not the usable figure: boards state their usable RAM themselves.
    pub ram_total: Size,
    /// The largest single RAM region: the most one contiguous heap can get.
    pub ram_largest: Size,
    #[serde(skip)]
    pub ram_regions: Vec<Range<u64>>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(Registry::from_builtin_families)
}

/// Looks `name` up in the probe-rs database. `None` when probe-rs does not know the chip.
pub fn lookup(name: &str) -> Option<ChipInfo> {
    let target = registry().get_target_by_name(name).ok()?;
    let ram_regions: Vec<Range<u64>> = target
        .memory_map
        .iter()
        .filter_map(|r| match r {
            MemoryRegion::Ram(ram) if !ram.is_alias => Some(ram.range.clone()),
            _ => None,
        })
        .collect();
    let sizes = ram_regions.iter().map(|r| r.end.saturating_sub(r.start));
    Some(ChipInfo {
        target: target.name.clone(),
        cores: u32::try_from(target.cores.len()).unwrap_or(u32::MAX),
        ram_total: Size(sizes.clone().sum()),
        ram_largest: Size(sizes.max().unwrap_or(0)),
        ram_regions,
    })
}

/// The full probe-rs target description of a chip (memory map, flash algorithms), if known.
pub fn target(name: &str) -> Option<probe_rs::config::Target> {
    registry().get_target_by_name(name).ok()
}

/// A chip's flash and RAM regions (aliases left out), for checking where an image lands.
pub fn memory_regions(name: &str) -> Option<Vec<super::Region>> {
    use super::{Region, RegionKind};
    let t = target(name)?;
    let regions = t
        .memory_map
        .iter()
        .filter_map(|r| {
            let (name, kind, range) = match r {
                MemoryRegion::Nvm(n) if !n.is_alias => {
                    (n.name.clone(), RegionKind::Flash, &n.range)
                }
                MemoryRegion::Ram(m) if !m.is_alias => (m.name.clone(), RegionKind::Ram, &m.range),
                MemoryRegion::Generic(g) => (g.name.clone(), RegionKind::Other, &g.range),
                _ => return None,
            };
            Some(Region {
                name: name.unwrap_or_else(|| format!("{kind:?}").to_lowercase()),
                kind,
                start: range.start,
                end: range.end,
            })
        })
        .collect();
    Some(regions)
}

/// Chip names probe-rs knows that start like `name`, for "did you mean" help.
pub fn similar(name: &str) -> Vec<String> {
    let mut v = registry().search_chips(name);
    v.truncate(5);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_catalog_chips() {
        let rp2040 = lookup("RP2040").expect("RP2040 in probe-rs db");
        assert_eq!(rp2040.cores, 2);
        assert_eq!(rp2040.ram_largest, Size::kib(264));
        let rp2350 = lookup("RP235x").expect("RP235x in probe-rs db");
        assert_eq!(rp2350.cores, 2);
        assert_eq!(rp2350.ram_largest, Size::kib(520));
        let f429 = lookup("STM32F429ZITx").expect("STM32F429ZITx in probe-rs db");
        assert_eq!(f429.cores, 1);
        assert!(f429.ram_total >= Size::kib(192), "{:?}", f429.ram_total);
    }

    #[test]
    fn unknown_chips_are_none() {
        assert!(lookup("mps2-an385").is_none());
        assert!(lookup("no-such-chip-xyz").is_none());
    }
}
