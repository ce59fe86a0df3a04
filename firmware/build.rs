//! Passes the vendored FreeRTOS kernel path on to the library (for `mpfr build`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_FREERTOS_KERNEL");
    let kernel = std::env::var("DEP_FREERTOS_KERNEL")
        .expect("freertos-next must export its kernel path (links = \"freertos\")");
    println!("cargo:rustc-env=MPFR_FREERTOS_KERNEL={kernel}");
    println!("cargo:KERNEL={kernel}");
}
