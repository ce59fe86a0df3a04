//! What is connected: USB serial ports classified (a MicroPython board, which catalog boards
//! match it, an ESP serial bridge, anything else), debug probes, and running virtual boards.
//! Listing opens nothing.

use std::path::PathBuf;

use serde::Serialize;

use crate::board::{Catalog, LinkKind, UsbId, generic};
use crate::device::link::{PortCandidate, list_ports};
use crate::device::vboard::Instance;

/// USB-serial bridges that ESP32 dev boards carry (and the ESP32-S3/C3 built-in USB-serial).
pub const ESP_BRIDGES: &[(UsbId, &str)] = &[
    (
        UsbId {
            vid: 0x10c4,
            pid: 0xea60,
        },
        "Silicon Labs CP210x",
    ),
    (
        UsbId {
            vid: 0x1a86,
            pid: 0x7523,
        },
        "WCH CH340",
    ),
    (
        UsbId {
            vid: 0x1a86,
            pid: 0x55d4,
        },
        "WCH CH9102",
    ),
    (
        UsbId {
            vid: 0x0403,
            pid: 0x6001,
        },
        "FTDI FT232R",
    ),
    (
        UsbId {
            vid: 0x0403,
            pid: 0x6010,
        },
        "FTDI FT2232",
    ),
    (
        UsbId {
            vid: 0x0403,
            pid: 0x6015,
        },
        "FTDI FT231X",
    ),
    (
        UsbId {
            vid: 0x303a,
            pid: 0x1001,
        },
        "Espressif USB-Serial/JTAG",
    ),
];

/// What a serial port looks like from its USB ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortKind {
    /// MicroPython's own USB stack (or a catalog board's ids).
    Micropython,
    /// A USB-serial bridge of the kind ESP32 boards carry.
    EspBridge,
    /// Any other serial port.
    Other,
}

/// One serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialDevice {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    pub kind: PortKind,
    /// Catalog boards whose `link.usb` lists these ids.
    pub boards: Vec<String>,
    /// For a bridge: which one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// One debug probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeDevice {
    pub name: String,
    pub usb: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    pub accessible: bool,
}

/// One running virtual board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualDevice {
    pub board: String,
    pub pid: u32,
    pub uart: PathBuf,
    pub console: crate::device::vboard::Console,
    pub image: PathBuf,
}

/// Everything found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Devices {
    pub serial: Vec<SerialDevice>,
    pub probes: Vec<ProbeDevice>,
    pub virtual_boards: Vec<VirtualDevice>,
}

/// Classifies serial ports against the catalog (pure: the tests feed it made-up ports).
pub fn classify(ports: Vec<PortCandidate>, cat: &Catalog) -> Vec<SerialDevice> {
    ports
        .into_iter()
        .map(|p| {
            let id = match (p.vid, p.pid) {
                (Some(vid), Some(pid)) => Some(UsbId { vid, pid }),
                _ => None,
            };
            let boards: Vec<String> = id
                .map(|id| {
                    cat.iter()
                        .filter(|b| b.link.usb.contains(&id))
                        .map(|b| b.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let bridge = id.and_then(|id| {
                ESP_BRIDGES
                    .iter()
                    .find(|(b, _)| *b == id)
                    .map(|(_, n)| n.to_string())
            });
            let upy = id.is_some_and(|id| generic::MICROPYTHON_USB.contains(&id));
            let kind = if bridge.is_some() {
                PortKind::EspBridge
            } else if upy || !boards.is_empty() {
                PortKind::Micropython
            } else {
                PortKind::Other
            };
            SerialDevice {
                path: p.path,
                usb: id.map(|i| i.to_string()),
                serial: p.serial,
                product: p.product,
                kind,
                boards,
                bridge,
            }
        })
        .collect()
}

/// The running virtual boards of the catalog's QEMU boards (dead records are left out).
pub fn virtual_boards(cat: &Catalog) -> Vec<VirtualDevice> {
    cat.iter()
        .filter(|b| b.link.kind == LinkKind::Qemu)
        .filter_map(|b| Instance::load(&b.name).ok().flatten())
        .map(|i| VirtualDevice {
            board: i.board,
            pid: i.pid,
            uart: i.uart_pty,
            console: i.console,
            image: i.image,
        })
        .collect()
}

/// Everything connected now. Serial ports without USB ids (built-in UARTs, ptys) are listed
/// only with `all`.
pub fn discover(cat: &Catalog, all: bool) -> Devices {
    let mut serial = classify(list_ports(), cat);
    if !all {
        serial.retain(|d| d.usb.is_some());
    }
    let probes = crate::util::probe::list_probes(&probe_rs::probe::list::Lister::new())
        .into_iter()
        .map(|p| ProbeDevice {
            name: p.name,
            usb: UsbId {
                vid: p.vid,
                pid: p.pid,
            }
            .to_string(),
            serial: p.serial,
            accessible: p.accessible,
        })
        .collect();
    Devices {
        serial,
        probes,
        virtual_boards: virtual_boards(cat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(path: &str, id: Option<(u16, u16)>) -> PortCandidate {
        PortCandidate {
            path: path.into(),
            vid: id.map(|i| i.0),
            pid: id.map(|i| i.1),
            serial: Some("E66".into()),
            product: None,
        }
    }

    #[test]
    fn ports_are_classified_by_usb_ids() {
        let cat = Catalog::builtin().unwrap();
        let d = classify(
            vec![
                port("/dev/ttyACM0", Some((0x2e8a, 0x0005))),
                port("/dev/ttyUSB0", Some((0x10c4, 0xea60))),
                port("/dev/ttyS0", None),
                port("/dev/ttyACM1", Some((0x1234, 0x5678))),
            ],
            &cat,
        );
        assert_eq!(d[0].kind, PortKind::Micropython);
        assert!(d[0].boards.contains(&"rpi-pico".to_string()), "{:?}", d[0]);
        assert_eq!(d[0].usb.as_deref(), Some("2e8a:0005"));
        assert_eq!(d[1].kind, PortKind::EspBridge);
        assert_eq!(d[1].bridge.as_deref(), Some("Silicon Labs CP210x"));
        assert_eq!(d[2].kind, PortKind::Other);
        assert_eq!(d[2].usb, None);
        assert_eq!(d[3].kind, PortKind::Other);
        assert!(d[3].boards.is_empty());
    }
}
