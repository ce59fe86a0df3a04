//! Finding a board's serial port by its USB VID:PID (and serial number, when several match).

use std::path::PathBuf;

use crate::board::Board;

use super::LinkError;

/// A serial port the OS reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCandidate {
    pub path: PathBuf,
    pub vid: Option<u16>,
    pub pid: Option<u16>,
    pub serial: Option<String>,
    pub product: Option<String>,
}

impl PortCandidate {
    fn describe(&self) -> String {
        let mut s = self.path.display().to_string();
        if let (Some(v), Some(p)) = (self.vid, self.pid) {
            s.push_str(&format!(" {v:04x}:{p:04x}"));
        }
        if let Some(sn) = &self.serial {
            s.push_str(&format!(" serial {sn}"));
        }
        if let Some(pr) = &self.product {
            s.push_str(&format!(" ({pr})"));
        }
        s
    }
}

/// Every serial port the OS reports (empty when enumeration is unavailable).
pub fn list_ports() -> Vec<PortCandidate> {
    let ports = serialport::available_ports().unwrap_or_default();
    ports
        .into_iter()
        .map(|p| match p.port_type {
            serialport::SerialPortType::UsbPort(u) => PortCandidate {
                path: PathBuf::from(p.port_name),
                vid: Some(u.vid),
                pid: Some(u.pid),
                serial: u.serial_number,
                product: u.product,
            },
            _ => PortCandidate {
                path: PathBuf::from(p.port_name),
                vid: None,
                pid: None,
                serial: None,
                product: None,
            },
        })
        .collect()
}

/// The one port of `board` (by VID:PID), optionally the one with USB serial `serial`.
pub fn find_usb_port(board: &Board, serial: Option<&str>) -> Result<PortCandidate, LinkError> {
    select(board, serial, list_ports())
}

fn select(
    board: &Board,
    serial: Option<&str>,
    seen: Vec<PortCandidate>,
) -> Result<PortCandidate, LinkError> {
    let ids: Vec<String> = board.link.usb.iter().map(ToString::to_string).collect();
    if ids.is_empty() {
        return Err(LinkError::NoDevice {
            what: format!("board `{}` has no USB ids to look for", board.name),
            help: "pass the serial port with --port PATH".into(),
        });
    }
    let matching: Vec<PortCandidate> = seen
        .iter()
        .filter(|c| {
            board
                .link
                .usb
                .iter()
                .any(|id| c.vid == Some(id.vid) && c.pid == Some(id.pid))
        })
        .filter(|c| serial.is_none_or(|s| c.serial.as_deref() == Some(s)))
        .cloned()
        .collect();
    let seen_list = if seen.is_empty() {
        "no serial ports at all".to_string()
    } else {
        seen.iter()
            .map(PortCandidate::describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one element")),
        0 => Err(LinkError::NoDevice {
            what: match serial {
                Some(s) => format!(
                    "no `{}` with USB serial {s} ({}) is connected; seen: {seen_list}",
                    board.name,
                    ids.join(", ")
                ),
                None => format!(
                    "no `{}` ({}) is connected; seen: {seen_list}",
                    board.name,
                    ids.join(", ")
                ),
            },
            help: "plug the board in (in its MicroPython mode, not the bootloader), check the cable carries data and that you may open serial ports (group dialout), or pass --port PATH".into(),
        }),
        _ => Err(LinkError::NoDevice {
            what: format!(
                "{} boards match `{}`: {}",
                matching.len(),
                board.name,
                matching
                    .iter()
                    .map(PortCandidate::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            help: "choose one with --port PATH or --port USB-SERIAL-NUMBER".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Catalog;

    fn cand(path: &str, vid: u16, pid: u16, sn: &str) -> PortCandidate {
        PortCandidate {
            path: path.into(),
            vid: Some(vid),
            pid: Some(pid),
            serial: Some(sn.into()),
            product: None,
        }
    }

    #[test]
    fn selects_by_vid_pid_and_serial() {
        let cat = Catalog::builtin().expect("catalog");
        let pico = cat.get("rpi-pico").expect("pico");
        let seen = vec![
            cand("/dev/ttyACM0", 0x2e8a, 0x0005, "AAA"),
            cand("/dev/ttyUSB0", 0x10c4, 0xea60, "CCC"),
        ];
        let one = select(pico, None, seen.clone()).expect("one pico");
        assert_eq!(one.path, PathBuf::from("/dev/ttyACM0"));

        let mut two = seen.clone();
        two.push(cand("/dev/ttyACM1", 0x2e8a, 0x0005, "BBB"));
        let err = select(pico, None, two.clone()).expect_err("ambiguous");
        assert!(err.to_string().contains("2 boards match"), "{err}");
        let b = select(pico, Some("BBB"), two).expect("by serial");
        assert_eq!(b.path, PathBuf::from("/dev/ttyACM1"));
    }

    #[test]
    fn no_device_lists_what_was_seen() {
        let cat = Catalog::builtin().expect("catalog");
        let pico = cat.get("rpi-pico").expect("pico");
        let err = select(
            pico,
            None,
            vec![cand("/dev/ttyUSB0", 0x10c4, 0xea60, "CCC")],
        )
        .expect_err("none");
        let msg = err.to_string();
        assert!(msg.contains("2e8a:0005"), "{msg}");
        assert!(msg.contains("/dev/ttyUSB0 10c4:ea60 serial CCC"), "{msg}");
        let err = select(pico, None, vec![]).expect_err("none");
        assert!(err.to_string().contains("no serial ports at all"));
    }
}
