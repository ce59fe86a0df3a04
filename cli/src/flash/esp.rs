//! The espflash flasher for the ESP32 boards: find the serial port, talk to the ROM bootloader,
//! identify the chip, build the ESP-IDF app image from the ELF, write, verify, reset.

use std::time::Duration;

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::{FlashData, FlashSettings};
use espflash::image_format::{ImageFormat, idf::IdfBootloaderFormat};
use espflash::target::{Chip, ProgressCallbacks};
use serialport::{SerialPortType, UsbPortInfo};

use super::{Event, FlashError, Flasher, Outcome, Phase, Progress};
use crate::board::{Board, UsbId};
use crate::image::{Format, Image};

/// USB-Serial/JTAG of the S3/C3/C6 family: reset into the bootloader through USB, not DTR/RTS.
const ESPRESSIF_USB_JTAG: UsbId = UsbId {
    vid: 0x303a,
    pid: 0x1001,
};

pub fn selection_rule(board: &Board, port: Option<&str>) -> String {
    match port {
        Some(p) => format!("serial port {p} (--port)"),
        None => {
            let ids: Vec<String> = board.link.usb.iter().map(ToString::to_string).collect();
            format!(
                "the only serial port with USB id {} (several: choose with --port)",
                ids.join(" or ")
            )
        }
    }
}

pub fn steps(chip: &str, verify: bool) -> Vec<String> {
    let mut v = vec![
        "open the serial port at 115200 baud and reset into the ROM bootloader".to_string(),
        format!("identify the chip; refuse anything but {chip}"),
        "load the flasher stub and detect the flash size".into(),
        "write bootloader, partition table and app image".into(),
    ];
    if verify {
        v.push("verify each region's MD5 against the image".into());
    }
    v.push("hard-reset into the application".into());
    v
}

/// A serial port as enumeration saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    pub name: String,
    pub usb: Option<UsbId>,
}

/// The port: `--port`, else the one port whose USB id the board lists.
pub fn select_port(
    board: &Board,
    explicit: Option<&str>,
    found: &[PortEntry],
) -> Result<String, FlashError> {
    if let Some(p) = explicit {
        return Ok(p.to_string());
    }
    let matching: Vec<&PortEntry> = found
        .iter()
        .filter(|p| p.usb.is_some_and(|id| board.link.usb.contains(&id)))
        .collect();
    match matching.as_slice() {
        [] => Err(FlashError::NoPort {
            board: board.name.clone(),
            ids: board.link.usb.iter().map(ToString::to_string).collect(),
            seen: found
                .iter()
                .map(|p| match p.usb {
                    Some(id) => format!("{} ({id})", p.name),
                    None => p.name.clone(),
                })
                .collect(),
        }),
        [one] => Ok(one.name.clone()),
        many => Err(FlashError::SeveralPorts {
            board: board.name.clone(),
            ports: many
                .iter()
                .map(|p| format!("  --port {}", p.name))
                .collect(),
        }),
    }
}

fn list_ports() -> Vec<(PortEntry, Option<UsbPortInfo>)> {
    serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .map(|p| match p.port_type {
            SerialPortType::UsbPort(info) => (
                PortEntry {
                    name: p.port_name,
                    usb: Some(UsbId {
                        vid: info.vid,
                        pid: info.pid,
                    }),
                },
                Some(info),
            ),
            _ => (
                PortEntry {
                    name: p.port_name,
                    usb: None,
                },
                None,
            ),
        })
        .collect()
}

/// Writes through espflash.
pub struct EspFlasher {
    board: Board,
    port: Option<String>,
    verify: bool,
}

impl EspFlasher {
    pub fn new(board: &Board, port: Option<String>, verify: bool) -> Self {
        EspFlasher {
            board: board.clone(),
            port,
            verify,
        }
    }
}

/// espflash's progress callbacks, turned into our events.
struct Bridge<'a, 'b> {
    progress: &'a mut Progress<'b>,
    last: usize,
    verifying: bool,
}

impl ProgressCallbacks for Bridge<'_, '_> {
    fn init(&mut self, _addr: u32, total: usize) {
        self.last = 0;
        self.verifying = false;
        (self.progress)(Event::Start {
            phase: Phase::Program,
            total: Some(total as u64),
        });
    }
    fn update(&mut self, current: usize) {
        let delta = current.saturating_sub(self.last);
        self.last = current;
        (self.progress)(Event::Progress {
            phase: Phase::Program,
            bytes: delta as u64,
        });
    }
    fn verifying(&mut self) {
        self.verifying = true;
        (self.progress)(Event::Finish {
            phase: Phase::Program,
        });
        (self.progress)(Event::Start {
            phase: Phase::Verify,
            total: None,
        });
    }
    fn finish(&mut self, _skipped: bool) {
        let phase = if self.verifying {
            Phase::Verify
        } else {
            Phase::Program
        };
        (self.progress)(Event::Finish { phase });
    }
}

impl Flasher for EspFlasher {
    fn name(&self) -> &'static str {
        "espflash"
    }

    fn flash(&mut self, image: &Image, mut progress: Progress<'_>) -> Result<Outcome, FlashError> {
        let expected: Chip = self.board.chip.parse().map_err(|_| FlashError::EspImage {
            reason: format!("espflash does not know chip `{}`", self.board.chip),
        })?;
        progress(Event::Start {
            phase: Phase::Connect,
            total: None,
        });
        let ports = list_ports();
        let entries: Vec<PortEntry> = ports.iter().map(|(e, _)| e.clone()).collect();
        let port = select_port(&self.board, self.port.as_deref(), &entries)?;
        let usb_info = ports
            .iter()
            .find(|(e, _)| e.name == port)
            .and_then(|(_, i)| i.clone());
        let serial = serialport::new(&port, 115_200)
            .timeout(Duration::from_secs(3))
            .open_native()
            .map_err(|e| FlashError::PortOpen {
                port: port.clone(),
                reason: super::tool_text(e),
            })?;
        let usb_id = usb_info.as_ref().map(|i| UsbId {
            vid: i.vid,
            pid: i.pid,
        });
        let before = if usb_id == Some(ESPRESSIF_USB_JTAG) {
            ResetBeforeOperation::UsbReset
        } else {
            ResetBeforeOperation::DefaultReset
        };
        let info = usb_info.unwrap_or(UsbPortInfo {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
            location: None,
            interface: None,
        });
        let conn = Connection::new(
            serial,
            info,
            ResetAfterOperation::HardReset,
            before,
            115_200,
        );
        let mut flasher =
            espflash::flasher::Flasher::connect(conn, true, self.verify, false, None, None)
                .map_err(|e| FlashError::EspConnect {
                    port: port.clone(),
                    reason: super::tool_text(e),
                })?;
        let found = flasher.chip();
        if found != expected {
            return Err(FlashError::ChipMismatch {
                port,
                board: self.board.name.clone(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        progress(Event::Note {
            message: format!("{found} on {port}"),
        });
        progress(Event::Finish {
            phase: Phase::Connect,
        });

        let mut bridge = Bridge {
            progress: &mut progress,
            last: 0,
            verifying: false,
        };
        let write_err = |e: espflash::Error| FlashError::Program {
            chip: expected.to_string(),
            reason: super::tool_text(e),
        };
        match image.format {
            Format::Elf => {
                let data = FlashData::new(
                    FlashSettings::default(),
                    0,
                    None,
                    expected,
                    expected.default_xtal_frequency(),
                );
                let idf = IdfBootloaderFormat::new(&image.bytes, &data, None, None, None, None)
                    .map_err(|e| FlashError::EspImage {
                        reason: super::tool_text(e),
                    })?;
                flasher
                    .load_image_to_flash(&mut bridge, ImageFormat::EspIdf(idf))
                    .map_err(write_err)?;
            }
            _ => {
                for s in &image.segments {
                    let addr = u32::try_from(s.addr).map_err(|_| FlashError::EspImage {
                        reason: format!("address {:#x} is beyond 4 GiB", s.addr),
                    })?;
                    flasher
                        .write_bin_to_flash(addr, &s.data, &mut bridge)
                        .map_err(write_err)?;
                }
            }
        }
        progress(Event::Start {
            phase: Phase::Reset,
            total: None,
        });
        flasher
            .connection()
            .reset_after(true, found)
            .map_err(write_err)?;
        progress(Event::Finish {
            phase: Phase::Reset,
        });
        Ok(Outcome::Flashed {
            target: format!("{found} on {port}"),
            bytes: image.total_bytes(),
            verified: self.verify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::board::builtin as board;

    fn port(name: &str, id: Option<&str>) -> PortEntry {
        PortEntry {
            name: name.into(),
            usb: id.map(|i| i.parse().unwrap()),
        }
    }

    #[test]
    fn port_selection() {
        let b = board("esp32-s3-devkitc");
        assert_eq!(
            select_port(&b, Some("/dev/ttyX"), &[]).unwrap(),
            "/dev/ttyX"
        );
        let e = select_port(&b, None, &[port("/dev/ttyACM0", Some("2e8a:0005"))]).unwrap_err();
        assert!(matches!(e, FlashError::NoPort { .. }));
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(help.contains("/dev/ttyACM0 (2e8a:0005)"), "{help}");
        assert!(e.to_string().contains("303a:1001"), "{e}");
        let found = [
            port("/dev/ttyACM0", Some("303a:1001")),
            port("/dev/ttyS0", None),
        ];
        assert_eq!(select_port(&b, None, &found).unwrap(), "/dev/ttyACM0");
        let two = [
            port("/dev/ttyACM0", Some("303a:1001")),
            port("/dev/ttyUSB0", Some("10c4:ea60")),
        ];
        assert!(matches!(
            select_port(&b, None, &two),
            Err(FlashError::SeveralPorts { .. })
        ));
    }

    #[test]
    fn a_pty_is_not_an_esp_bootloader() {
        // A real pty with nothing behind it: connecting must fail cleanly, not hang or panic.
        let pty =
            rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY);
        let Ok(master) = pty else { return };
        let _ = rustix::pty::grantpt(&master);
        let _ = rustix::pty::unlockpt(&master);
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        let path = name.to_string_lossy().to_string();
        let img = crate::image::parse(
            std::path::Path::new("fw.elf"),
            crate::image::tests::elf32(94, 0, &[(0x4200_0000, &[0; 16])]),
            None,
            None,
        )
        .unwrap();
        let mut f = EspFlasher::new(&board("esp32-s3-devkitc"), Some(path), true);
        let e = f.flash(&img, &mut |_| {}).unwrap_err();
        assert!(
            matches!(
                e,
                FlashError::EspConnect { .. } | FlashError::PortOpen { .. }
            ),
            "{e:?}"
        );
    }
}
