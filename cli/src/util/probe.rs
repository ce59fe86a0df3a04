//! Which USB device: [`UsbId`] (`VID:PID`, in board files) and [`ProbeSelector`]
//! (`--probe VID:PID[:SERIAL]`), each parsed in one place with one set of errors, and the one
//! rule that picks a debug probe from probe-rs's listing ([`select_probe`]), which also tells
//! a probe the user may not open (udev permissions) from a missing one.

use std::fmt;
use std::str::FromStr;

use miette::Diagnostic;
use probe_rs::probe::DebugProbeSelector;
use probe_rs::probe::list::{Accessibility, Lister};
use serde::Serialize;

const FORMAT_HELP: &str = "write VID:PID or VID:PID:SERIAL with the ids in hex, e.g. 2e8a:000c or 0483:374b:066DFF (mpfr lists the probes it sees when none matches)";

/// A `VID:PID` or `VID:PID[:SERIAL]` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
#[error("`{given}` is not {expected}: {why}")]
#[diagnostic(code(mpfr::probe::selector), help("{FORMAT_HELP}"))]
pub struct SelectorError {
    pub given: String,
    pub expected: &'static str,
    pub why: String,
}

/// A USB vendor and product id pair, written `2e8a:0005`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vid, self.pid)
    }
}

impl Serialize for UsbId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for UsbId {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let sel = parse(s, "VID:PID")?;
        if sel.serial.is_some() {
            return Err(error(s, "VID:PID", "a USB id has no serial part"));
        }
        Ok(sel.usb())
    }
}

/// `--probe VID:PID[:SERIAL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSelector {
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
}

impl ProbeSelector {
    pub fn usb(&self) -> UsbId {
        UsbId {
            vid: self.vid,
            pid: self.pid,
        }
    }

    /// Whether a device with these ids is the one meant (any serial when none was given).
    pub fn matches(&self, vid: u16, pid: u16, serial: Option<&str>) -> bool {
        self.vid == vid
            && self.pid == pid
            && self.serial.as_deref().is_none_or(|s| serial == Some(s))
    }

    /// The same selection in probe-rs's terms.
    pub fn to_probe_rs(&self) -> DebugProbeSelector {
        DebugProbeSelector {
            vendor_id: self.vid,
            product_id: self.pid,
            interface: None,
            serial_number: self.serial.clone(),
        }
    }
}

impl FromStr for ProbeSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        parse(s, "VID:PID[:SERIAL]")
    }
}

impl fmt::Display for ProbeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.usb())?;
        if let Some(s) = &self.serial {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

fn error(given: &str, expected: &'static str, why: impl Into<String>) -> SelectorError {
    SelectorError {
        given: given.to_string(),
        expected,
        why: why.into(),
    }
}

/// The one parser: two ids of 1-4 hex digits (an `0x` prefix is allowed), then an optional
/// serial, which is everything after the second colon (serials may contain colons).
fn parse(s: &str, expected: &'static str) -> Result<ProbeSelector, SelectorError> {
    let t = s.trim();
    let mut parts = t.splitn(3, ':');
    let mut id = |what: &str| -> Result<u16, SelectorError> {
        let x = parts.next().unwrap_or("");
        let digits = x
            .strip_prefix("0x")
            .or_else(|| x.strip_prefix("0X"))
            .unwrap_or(x);
        if x.is_empty() {
            return Err(error(s, expected, format!("the {what} is missing")));
        }
        if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(error(
                s,
                expected,
                format!("the {what} `{x}` is not a 16-bit hex number"),
            ));
        }
        u16::from_str_radix(digits, 16)
            .map_err(|_| error(s, expected, format!("the {what} `{x}` is out of range")))
    };
    let vid = id("vendor id")?;
    let pid = id("product id")?;
    let serial = match parts.next() {
        None => None,
        Some("") => return Err(error(s, expected, "the serial after the last `:` is empty")),
        Some(sn) => Some(sn.to_string()),
    };
    Ok(ProbeSelector { vid, pid, serial })
}

/// A probe as listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEntry {
    pub name: String,
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
    /// False when the OS lists the probe but the user may not open it.
    pub accessible: bool,
}

impl ProbeEntry {
    /// What to pass as `--probe` to choose exactly this probe.
    pub fn selector(&self) -> ProbeSelector {
        ProbeSelector {
            vid: self.vid,
            pid: self.pid,
            serial: self.serial.clone(),
        }
    }
}

impl fmt::Display for ProbeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.selector(), self.name)
    }
}

/// probe-rs's list of probes, with whether each may be opened.
pub fn list_probes(lister: &Lister) -> Vec<ProbeEntry> {
    lister
        .list_all_with_access()
        .into_iter()
        .map(|item| ProbeEntry {
            name: item.info.identifier.clone(),
            vid: item.info.vendor_id,
            pid: item.info.product_id,
            serial: item.info.serial_number.clone(),
            accessible: item.accessibility == Accessibility::Accessible,
        })
        .collect()
}

const UDEV_HELP: &str = "install mpfr's udev rules, which give the logged-in user access to common probes:\n  install -m 644 scripts/udev/60-mpfr-probes.rules /etc/udev/rules.d/ && udevadm control --reload && udevadm trigger\n(as root, e.g. via your admin), then unplug and replug the probe. If your probe is not in the file, add its VID:PID there.";

/// Why no probe could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Diagnostic)]
pub enum ProbeChoiceError {
    #[error("no debug probe found{}", sel_suffix(.selector))]
    #[diagnostic(
        code(mpfr::probe::none),
        help("connect a debug probe (Raspberry Pi Debug Probe/picoprobe, ST-LINK, J-Link, CMSIS-DAP) to the board's SWD pins and to USB.{}\nIf it is plugged in but not listed, install the udev rules: see docs/flashing.md (scripts/udev/60-mpfr-probes.rules)", seen_list(.seen))
    )]
    NoProbe {
        selector: Option<String>,
        seen: Vec<String>,
    },

    #[error("{} debug probes are connected; mpfr will not guess which one is on {board}", probes.len())]
    #[diagnostic(
        code(mpfr::probe::several),
        help("choose one with --probe VID:PID[:SERIAL]:\n{}", probes.join("\n"))
    )]
    SeveralProbes { board: String, probes: Vec<String> },

    #[error("permission denied opening debug probe {probe}")]
    #[diagnostic(code(mpfr::probe::permission), help("{UDEV_HELP}"))]
    Permission { probe: String },
}

fn sel_suffix(s: &Option<String>) -> String {
    s.as_deref()
        .map(|s| format!(" matching {s}"))
        .unwrap_or_default()
}

/// `\nConnected: a; b` for a help text, or nothing when nothing was seen.
pub(crate) fn seen_list(seen: &[String]) -> String {
    if seen.is_empty() {
        String::new()
    } else {
        format!("\nConnected: {}", seen.join("; "))
    }
}

/// Chooses the probe for `board`: the one matching `sel`, else the only one connected. Refuses
/// to guess between several, and reports a probe the user may not open as a permissions
/// problem. Pure, so the choice is unit-tested without USB.
pub fn select_probe(
    board: &str,
    found: &[ProbeEntry],
    sel: Option<&ProbeSelector>,
) -> Result<ProbeEntry, ProbeChoiceError> {
    let candidates: Vec<&ProbeEntry> = match sel {
        Some(s) => found
            .iter()
            .filter(|p| s.matches(p.vid, p.pid, p.serial.as_deref()))
            .collect(),
        None => found.iter().collect(),
    };
    match candidates.as_slice() {
        [] => Err(ProbeChoiceError::NoProbe {
            selector: sel.map(ToString::to_string),
            seen: found.iter().map(ToString::to_string).collect(),
        }),
        [one] if !one.accessible => Err(ProbeChoiceError::Permission {
            probe: one.to_string(),
        }),
        [one] => Ok((*one).clone()),
        many => Err(ProbeChoiceError::SeveralProbes {
            board: board.to_string(),
            probes: many
                .iter()
                .map(|p| format!("  --probe {}  ({})", p.selector(), p.name))
                .collect(),
        }),
    }
}

/// Whether opening a listed probe failed for want of permission (then the udev advice of
/// [`ProbeChoiceError::Permission`] applies), rather than for another reason.
pub fn is_permission_denied(e: &probe_rs::probe::DebugProbeError) -> bool {
    use probe_rs::probe::{DebugProbeError as D, ProbeCreationError as C};
    match e {
        D::Usb(io) | D::ProbeCouldNotBeCreated(C::Usb(io)) => {
            io.kind() == std::io::ErrorKind::PermissionDenied
        }
        _ => e
            .to_string()
            .to_ascii_lowercase()
            .contains("permission denied"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vid: u16, pid: u16, serial: &str, accessible: bool) -> ProbeEntry {
        ProbeEntry {
            name: "probe".into(),
            vid,
            pid,
            serial: Some(serial.into()),
            accessible,
        }
    }

    #[test]
    fn selector_parses_and_prints() {
        let s: ProbeSelector = "2e8a:000c".parse().unwrap();
        assert_eq!((s.vid, s.pid, s.serial.as_deref()), (0x2e8a, 0x000c, None));
        assert_eq!(s.to_string(), "2e8a:000c");
        let s: ProbeSelector = " 0483:374b:066DFF ".parse().unwrap();
        assert_eq!(s.to_string(), "0483:374b:066DFF");
        let s: ProbeSelector = "0x2E8A:c:a:b".parse().unwrap();
        assert_eq!(s.to_string(), "2e8a:000c:a:b");
        let p = s.to_probe_rs();
        assert_eq!((p.vendor_id, p.product_id), (0x2e8a, 0x000c));
        assert_eq!(p.serial_number.as_deref(), Some("a:b"));
    }

    #[test]
    fn bad_selectors_say_which_part_is_wrong() {
        for (bad, why) in [
            ("", "vendor id is missing"),
            ("2e8a", "product id is missing"),
            ("2e8a:", "product id is missing"),
            (":0001", "vendor id is missing"),
            ("xyz:0001", "vendor id `xyz`"),
            ("12345:1", "vendor id `12345`"),
            ("2e8a:0x", "product id `0x`"),
            // A trailing colon used to be taken as "no serial" by one parser, refused by another.
            ("2e8a:000c:", "serial after the last `:` is empty"),
        ] {
            let e = bad.parse::<ProbeSelector>().unwrap_err();
            assert!(e.why.contains(why), "{bad:?}: {e}");
            assert!(e.to_string().contains("VID:PID[:SERIAL]"), "{e}");
        }
    }

    #[test]
    fn usb_ids_have_no_serial() {
        assert_eq!(
            "2e8a:0005".parse::<UsbId>().unwrap(),
            UsbId {
                vid: 0x2e8a,
                pid: 5
            }
        );
        let e = "2e8a:0005:X".parse::<UsbId>().unwrap_err();
        assert!(e.to_string().contains("no serial part"), "{e}");
        let e = "2e8a".parse::<UsbId>().unwrap_err();
        assert!(e.to_string().starts_with("`2e8a` is not VID:PID"), "{e}");
    }

    #[test]
    fn selection_rules() {
        let a = entry(0x2e8a, 0x000c, "A", true);
        let b = entry(0x0483, 0x374b, "B", true);
        let locked = entry(0x1366, 0x0101, "C", false);
        assert!(matches!(
            select_probe("rpi-pico", &[], None),
            Err(ProbeChoiceError::NoProbe { .. })
        ));
        assert_eq!(
            select_probe("rpi-pico", std::slice::from_ref(&a), None).unwrap(),
            a
        );
        let e = select_probe("rpi-pico", &[a.clone(), b.clone()], None).unwrap_err();
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(
            help.contains("--probe 2e8a:000c:A") && help.contains("--probe 0483:374b:B"),
            "{help}"
        );
        let sel: ProbeSelector = "0483:374b".parse().unwrap();
        assert_eq!(
            select_probe("x", &[a.clone(), b.clone()], Some(&sel)).unwrap(),
            b
        );
        let sel: ProbeSelector = "0483:374b:Z".parse().unwrap();
        let e = select_probe("x", &[a.clone(), b], Some(&sel)).unwrap_err();
        assert!(e.to_string().contains("matching 0483:374b:Z"), "{e}");
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(help.contains("Connected: 2e8a:000c:A (probe)"), "{help}");
        let e = select_probe("x", &[locked], None).unwrap_err();
        assert!(matches!(e, ProbeChoiceError::Permission { .. }));
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(
            help.contains("60-mpfr-probes.rules") && !help.contains("sudo"),
            "{help}"
        );
    }
}
