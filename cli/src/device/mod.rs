//! Everything that talks to a running device: byte streams (`link`), memory access (`memory`) and
//! the QEMU virtual board (`vboard`), and [`Target`]: where a board's console is; `discover`
//! lists what is connected.

mod connect;
pub mod discover;
pub mod link;
pub mod memory;
pub mod vboard;

pub use connect::{Target, qemu_uart};
