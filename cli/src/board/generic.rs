//! The generic MicroPython profile: what mpfr assumes about a board it was given only a port
//! for (`--port` without `--board`), like `mpremote connect PORT`. REPL and files work; there is
//! no telemetry, build or flash.

use crate::util::size::Size;

use super::{
    Affinity, Board, BuildSystem, Defaults, Gil, Kernel, Link, LinkKind, Origin, Platform,
    PortInfo, Telemetry, UsbId,
};

/// Its name in messages and `--json` output.
pub const NAME: &str = "micropython";

/// USB VID:PIDs that MicroPython's own USB stacks enumerate with (the ids `mpfr devices`
/// recognises as "some MicroPython board").
pub const MICROPYTHON_USB: &[UsbId] = &[
    UsbId {
        vid: 0x2e8a,
        pid: 0x0005,
    }, // Raspberry Pi RP2040/RP2350 MicroPython
    UsbId {
        vid: 0xf055,
        pid: 0x9800,
    }, // MicroPython (pyboard, mimxrt, samd, nrf, renesas)
    UsbId {
        vid: 0xf055,
        pid: 0x9802,
    }, // MicroPython (TinyUSB ports)
    UsbId {
        vid: 0x303a,
        pid: 0x4001,
    }, // Espressif native USB MicroPython (S2/S3)
];

/// A board reached only through `port` (a path or USB serial number).
pub fn micropython() -> Board {
    Board {
        name: NAME.into(),
        description: "any MicroPython board (REPL and files; no telemetry)".into(),
        chip: "unknown".into(),
        cores: 1,
        ram: Size(0),
        ram_reserved: Size(0),
        flash: None,
        // No flasher and no memory access: only the REPL link given with --port is used.
        platform: Platform::Host,
        kernel: Kernel::Freertos,
        telemetry: Telemetry::Repl,
        link: Link {
            kind: LinkKind::Usb,
            usb: MICROPYTHON_USB.to_vec(),
            baud: None,
            reset_on_open: false,
            command: None,
        },
        port: PortInfo {
            name: "unknown".into(),
            build: BuildSystem::Make,
            board: "unknown".into(),
            variant: None,
            gc_heap_var: None,
        },
        defaults: Defaults {
            cores: None,
            gc_heap: Size(0),
            heap: Size(0),
            stack: Size(0),
            thread_stack: Size(0),
            service_stack: Size(0),
            service_priority: 0,
            gil: Gil::On,
            affinity: Affinity::Any,
            tick_hz: 1000,
        },
        origin: Origin::Builtin,
    }
}
