//! Telemetry from a running target: the RTT reader (`rtt`), frames decoded into snapshots
//! (`model`) and the live monitor that ties them to a board (`monitor`).

pub mod model;
pub mod monitor;
pub mod rtt;
