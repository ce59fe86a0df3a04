//! The fuzz targets' bodies, one module per parser of outside input, each with `run(data)`.
//! `fuzz_targets/*.rs` hand libFuzzer's inputs to them; `cli/tests/cli/fuzz_regressions.rs`
//! replays the committed regression inputs through the same functions on stable Rust.

pub mod boards_toml;
pub mod duration;
pub mod gdb_reply;
pub mod image;
pub mod repl_stream;
pub mod rtt;
pub mod sanitize;
pub mod size;
pub mod telemetry_frames;
