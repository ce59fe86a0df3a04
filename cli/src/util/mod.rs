//! Small shared pieces, one of each: atomic file writes, where mpfr keeps things, byte sizes,
//! durations, the device-text sanitiser, cancellation and the probe selector.

pub mod cancel;
pub mod duration;
pub mod fsutil;
pub mod names;
pub mod paths;
pub mod probe;
pub mod sanitize;
pub mod size;
