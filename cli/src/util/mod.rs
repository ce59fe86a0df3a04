//! Small shared pieces, one of each: atomic file writes, where mpfr keeps things, byte sizes,
//! durations, the device-text sanitiser, cancellation, the probe selector and the usage error.

pub mod cancel;
pub mod duration;
pub mod fsutil;
pub mod names;
pub mod paths;
pub mod probe;
pub mod sanitize;
pub mod size;
pub mod usage;
