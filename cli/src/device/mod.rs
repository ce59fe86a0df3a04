//! Everything that talks to a running device: byte streams (`link`), memory access (`memory`) and
//! the QEMU virtual board (`vboard`); `discover` lists what is connected.

pub mod discover;
pub mod link;
pub mod memory;
pub mod vboard;
