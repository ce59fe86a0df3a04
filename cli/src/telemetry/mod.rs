//! Telemetry from a running target: the RTT reader (`rtt`), frames decoded into snapshots
//! (`model`), the live monitor that ties them to a board (`monitor`) and a recorded memory image
//! replayed in its place (`replay`).

pub mod model;
pub mod monitor;
pub mod replay;
pub mod rtt;
