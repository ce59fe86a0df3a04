//! mpfr's end-to-end tests, one module per area, linked into one test binary: every test binary
//! links the whole crate graph, which on a two-core machine takes minutes, so new end-to-end
//! tests go in a module here (`mod name;` below), not in a new file under `tests/tests/`.
//! Run one area with `cargo test -p mpfr-tests --test e2e firmware::`.

mod support;

mod crash;
mod devices;
mod fatal;
mod firmware;
mod flash;
mod fs_host;
mod micropython_an521;
mod micropython_make;
mod micropython_qemu;
mod reliability;
mod repl_host;
mod repl_qemu;
mod smp_an521;
mod stress;
mod stress_qemu;
mod target_gdb;
mod threads;
