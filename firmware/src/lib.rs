//! The target half of mpfr: where the FreeRTOS kernel and the firmware sources live, and
//! (from the protocol work on) the telemetry wire format and its decoder.

use std::path::{Path, PathBuf};

pub mod protocol;

/// The FreeRTOS kernel tree vendored by the `freertos-next` crate (V11.2), as found at build time.
pub fn freertos_kernel_dir() -> &'static Path {
    Path::new(env!("MPFR_FREERTOS_KERNEL"))
}

/// This crate's own directory: the C sources of the agent and the reference firmware sit below it.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_tree_is_present() {
        let k = freertos_kernel_dir();
        assert!(k.join("tasks.c").is_file(), "no tasks.c in {}", k.display());
        assert!(k.join("portable/GCC/ARM_CM3/port.c").is_file());
    }
}
